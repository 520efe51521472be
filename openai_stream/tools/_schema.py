"""JSON schemas from Python type hints, and the way back from the model's JSON to Python values.

One walk over an annotation gives both its JSON schema (sent to the model) and
a converter (applied to the arguments the model sends back), so the two always
agree. Supported annotations:

=================================  ===========================================
``str``, ``int``, ``float``,       ``string``, ``integer``, ``number``,
``bool``, ``None``                 ``boolean``, ``null``
``Optional[X]``, ``Union[X, Y]``,  nullable ``X``; ``anyOf``
``X | Y``
``Literal["a", 1]``, ``Enum``      ``enum`` (converted back to the member)
``list[X]``, ``tuple[X, ...]``,    ``array`` (a ``tuple`` comes back as one)
``tuple[X, Y]``
``dict[str, X]``                   ``object`` with ``additionalProperties``
``TypedDict``, dataclasses         ``object`` with properties (a dataclass
                                   comes back as an instance), nested inline
``Annotated[X, "text"]``           ``X`` with ``"text"`` as its description
``Any``                            any JSON value
=================================  ===========================================

A parameter or field with a default is not required. In strict mode
(OpenAI's ``strict: true``) every object gets ``additionalProperties: false``
and lists all its properties as required; those with a default become nullable,
and a ``null`` sent for them means "use the default". Annotations strict mode
cannot express (``dict[str, X]``, fixed-length tuples, ``Any``, bare
containers) are rejected when the tool is defined, as is anything not listed.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import sys
import types
from typing import Any, Callable, Dict, List, Literal, Mapping, NamedTuple, NoReturn, Optional, Union

import typing_extensions
from typing_extensions import Annotated, NotRequired, Required, get_args, get_origin, get_type_hints

from .._pydantic import is_model_class, model_schema, validation_problems
from ..errors import OpenAIError, ToolDefinitionError
from ._docstrings import parse_docstring

__all__ = ["ToolDefinitionError", "ArgumentsMismatch", "Parameters", "function_parameters"]

_NoneType = type(None)
_UNION_ORIGINS: tuple[Any, ...] = (Union,)
if sys.version_info >= (3, 10):
    _UNION_ORIGINS += (types.UnionType,)

_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", _NoneType: "null"}



class ArgumentsMismatch(Exception):
    """Arguments that do not fit the declared types; ``problems`` lists each, with its path."""

    def __init__(self, problems: List[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


Converter = Callable[[Any, str], Any]


class _Type(NamedTuple):
    schema: Dict[str, Any]
    convert: Converter
    nullable: bool  # whether JSON null is a valid value


class _Field(NamedTuple):
    name: str
    type: _Type
    has_default: bool
    default: Any
    description: Optional[str]


class Parameters(NamedTuple):
    """A function's parameters: the JSON ``schema``, its ``description`` and the argument converter."""

    schema: Dict[str, Any]
    description: str
    convert: Callable[[Any], Dict[str, Any]]


def _mismatch(path: str, message: str) -> NoReturn:
    raise ArgumentsMismatch([f"{path}: {message}" if path else message])


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:60] + "..."


def _with_null(schema: Dict[str, Any]) -> Dict[str, Any]:
    """The same schema, also accepting ``null``."""
    result = dict(schema)
    if "anyOf" in result:
        result["anyOf"] = [*result["anyOf"], {"type": "null"}]
        return result
    kind = result.get("type")
    if kind is None:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = list(kind) if isinstance(kind, list) else [kind]
    if "null" not in kinds:
        result["type"] = [*kinds, "null"]
    if "enum" in result and None not in result["enum"]:
        result["enum"] = [*result["enum"], None]
    return result


def _described(schema: Dict[str, Any], description: Optional[str]) -> Dict[str, Any]:
    if not description:
        return schema
    if "description" in schema:
        return {**schema, "description": description}
    return {"description": description, **schema}


def _json_default(value: Any) -> Any:
    """A default value as JSON, or ``dataclasses.MISSING`` when it has no JSON form."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return dataclasses.MISSING
    return value


class _Compiler:
    """Compiles annotations of one tool; ``where`` names it in error messages."""

    def __init__(self, where: str, strict: bool) -> None:
        self.where = where
        self.strict = strict
        self._open: List[type] = []
        self.defs: Dict[str, Any] = {}  # pydantic models' $defs, put at the root of the parameters

    def fail(self, path: str, message: str) -> NoReturn:
        raise ToolDefinitionError(f"{self.where}: {path}: {message}")

    def compile(self, tp: Any, path: str) -> _Type:
        origin = get_origin(tp)
        args = get_args(tp)
        if origin is Annotated:
            inner = self.compile(args[0], path)
            text = next((a for a in args[1:] if isinstance(a, str)), None)
            return inner._replace(schema=_described(inner.schema, text))
        if tp is Any:
            if self.strict:
                self.fail(path, "Any cannot be expressed in strict mode; give a concrete type")
            return _Type({}, _identity, True)
        if tp is None or tp is _NoneType:
            return _Type({"type": "null"}, _convert_none, True)
        if tp in (str, bool, int, float):
            return _Type({"type": _JSON_TYPES[tp]}, _PRIMITIVE_CONVERTERS[tp], False)
        if origin is Literal:
            return self._literal(args, path)
        if origin in _UNION_ORIGINS:
            return self._union(args, path)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._enum(tp, path)
        if tp in (list, tuple, dict) or origin in (list, tuple, dict):
            return self._container(origin or tp, args, path)
        if typing_extensions.is_typeddict(tp):
            return self._typeddict(tp, path)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self._dataclass(tp, path)
        if self._is_pydantic(tp, path):
            return self._pydantic(tp, path)
        if origin in (Required, NotRequired):
            self.fail(path, f"{_name(tp)} is only allowed on TypedDict keys")
        self.fail(
            path,
            f"cannot express {_name(tp)} as JSON schema; use str, int, float, bool, None, Optional, "
            "Union, Literal, an Enum, list/tuple/dict of those, a TypedDict or a dataclass",
        )

    def _literal(self, values: tuple[Any, ...], path: str) -> _Type:
        kinds: List[str] = []
        for value in values:
            if type(value) not in _JSON_TYPES:
                self.fail(path, f"Literal value {value!r} is not a JSON scalar (str, int, float, bool, None)")
            kind = _JSON_TYPES[type(value)]
            if kind not in kinds:
                kinds.append(kind)
        schema = {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": list(values)}

        def convert(value: Any, where: str) -> Any:
            for allowed in values:
                if allowed == value and type(allowed) is type(value):
                    return allowed
            if type(value) is int and float in map(type, values) and float(value) in values:
                return float(value)
            _mismatch(where, f"expected one of {_show(list(values))}, got {_show(value)}")

        return _Type(schema, convert, None in values)

    def _union(self, members: tuple[Any, ...], path: str) -> _Type:
        has_null = _NoneType in members
        compiled = [self.compile(m, path) for m in members if m is not _NoneType]
        if len(compiled) == 1:
            base = compiled[0]
        else:
            base = _Type(
                {"anyOf": [c.schema for c in compiled]},
                _first_fit([c.convert for c in compiled]),
                any(c.nullable for c in compiled),
            )
        if not has_null or base.nullable:
            return base
        inner = base.convert

        def convert(value: Any, where: str) -> Any:
            return None if value is None else inner(value, where)

        return _Type(_with_null(base.schema), convert, True)

    def _enum(self, cls: type[enum.Enum], path: str) -> _Type:
        values = [member.value for member in cls]
        kinds: List[str] = []
        for value in values:
            if type(value) not in (str, int, float):
                self.fail(path, f"{cls.__name__} has a value {value!r} that is not a string or number")
            if _JSON_TYPES[type(value)] not in kinds:
                kinds.append(_JSON_TYPES[type(value)])
        schema: Dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": values}
        doc = cls.__dict__.get("__doc__")
        if doc and doc != "An enumeration.":
            schema = _described(schema, parse_docstring(doc).description)

        def convert(value: Any, where: str) -> Any:
            for member in cls:
                if member.value == value and type(member.value) is type(value):
                    return member
            _mismatch(where, f"expected one of {_show(values)}, got {_show(value)}")

        return _Type(schema, convert, False)

    def _container(self, origin: Any, args: tuple[Any, ...], path: str) -> _Type:
        name = origin.__name__
        if not args:
            if self.strict:
                self.fail(
                    path, f"a bare {name} cannot be expressed in strict mode; write e.g. {name}[str]"
                )
            kind = "object" if origin is dict else "array"
            return _Type({"type": kind}, _checker(origin, kind), False)
        if origin is dict:
            if args[0] is not str:
                self.fail(path, f"dict keys must be str (JSON object keys are strings), got {_name(args[0])}")
            if self.strict:
                self.fail(
                    path,
                    "dict[str, ...] cannot be expressed in strict mode (strict objects need fixed keys); "
                    "use a TypedDict or dataclass, or strict=False",
                )
            value = self.compile(args[1], f"{path}[]")
            return _Type(
                {"type": "object", "additionalProperties": value.schema}, _dict_of(value.convert), False
            )
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if args == ((),) or not args:
                self.fail(path, "an empty tuple cannot be expressed; use tuple[X, ...]")
            if self.strict:
                self.fail(
                    path,
                    "fixed-length tuples cannot be expressed in strict mode; "
                    "use tuple[X, ...] or a dataclass",
                )
            items = [self.compile(a, f"{path}[{i}]") for i, a in enumerate(args)]
            schema = {
                "type": "array",
                "prefixItems": [t.schema for t in items],
                "minItems": len(items),
                "maxItems": len(items),
            }
            return _Type(schema, _fixed_tuple([t.convert for t in items]), False)
        item = self.compile(args[0], f"{path}[]")
        return _Type({"type": "array", "items": item.schema}, _list_of(item.convert, origin is tuple), False)

    def _typeddict(self, cls: type, path: str) -> _Type:
        with self._opening(cls, path):
            hints = self._hints(cls, path)
            required_keys = getattr(cls, "__required_keys__", frozenset(hints))
            docs = parse_docstring(cls.__dict__.get("__doc__"))
            fields = []
            for key, hint in hints.items():
                required = key in required_keys
                while get_origin(hint) in (Required, NotRequired):
                    required = get_origin(hint) is Required
                    hint = get_args(hint)[0]
                field_type = self.compile(hint, f"{path}.{key}")
                description = docs.params.get(key)
                fields.append(_Field(key, field_type, not required, dataclasses.MISSING, description))
            return self._object(fields, dict, docs.description, path)

    def _dataclass(self, cls: type, path: str) -> _Type:
        with self._opening(cls, path):
            hints = self._hints(cls, path)
            doc = cls.__dict__.get("__doc__") or ""
            if doc.startswith(cls.__name__ + "("):  # the signature dataclass() puts there
                doc = ""
            docs = parse_docstring(doc)
            fields = []
            for f in dataclasses.fields(cls):
                if not f.init:
                    continue
                has_default = not (f.default is f.default_factory is dataclasses.MISSING)
                description = f.metadata.get("description") or docs.params.get(f.name)
                field_type = self.compile(hints[f.name], f"{path}.{f.name}")
                fields.append(_Field(f.name, field_type, has_default, f.default, description))
            return self._object(fields, cls, docs.description, path)

    def _is_pydantic(self, tp: Any, path: str) -> bool:
        try:
            return is_model_class(tp)
        except (TypeError, OpenAIError) as exc:  # pydantic 1.x, or a pydantic.v1 model
            self.fail(path, str(exc))

    def _pydantic(self, model: Any, path: str) -> _Type:
        """A pydantic model: its schema (strict when the tool is); arguments validated into an instance."""
        schema, defs = model_schema(model, strict=self.strict)
        for name, sub in defs.items():
            if self.defs.setdefault(name, sub) != sub:
                self.fail(path, f"two different types are named {name!r} in the parameters; rename one")

        def convert(value: Any, where: str) -> Any:
            instance, problems = validation_problems(model, value, where)
            if problems:
                raise ArgumentsMismatch(problems)
            return instance

        return _Type(schema, convert, False)

    def function(self, fn: Callable[..., Any], param_docs: Mapping[str, str]) -> _Type:
        """The object schema of a function's parameters; the converter returns keyword arguments."""
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            self.fail("signature", f"cannot read the signature ({exc})")
        hints = self._parameter_hints(fn, signature)
        fields = []
        for param in signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                self.fail(param.name, "*args and **kwargs cannot be described to a model; name each one")
            if param.kind is param.POSITIONAL_ONLY:
                self.fail(param.name, "positional-only parameters cannot be passed by name; remove the '/'")
            if param.name not in hints:
                self.fail(param.name, "has no type annotation; annotate it (e.g. city: str)")
            field_type = self.compile(hints[param.name], param.name)
            has_default = param.default is not param.empty
            fields.append(
                _Field(param.name, field_type, has_default, param.default, param_docs.get(param.name))
            )
        compiled = self._object(fields, dict, None, "")
        if self.defs:
            compiled.schema["$defs"] = self.defs
        return compiled

    def _object(
        self, fields: List[_Field], build: Callable[..., Any], description: Optional[str], path: str
    ) -> _Type:
        properties: Dict[str, Any] = {}
        required: List[str] = []
        for f in fields:
            schema = f.type.schema
            if self.strict:
                if f.has_default and not f.type.nullable:
                    schema = _with_null(schema)
                required.append(f.name)
            elif f.has_default:
                default = _json_default(f.default)
                if default is not dataclasses.MISSING:
                    schema = {**schema, "default": default}
            else:
                required.append(f.name)
            properties[f.name] = _described(schema, f.description)
        schema = {"type": "object", "properties": properties, "required": required}
        if self.strict:
            schema["additionalProperties"] = False
        schema = _described(schema, description)
        by_name = {f.name: f for f in fields}

        def convert(value: Any, where: str) -> Any:
            if not isinstance(value, dict):
                _mismatch(where, f"expected an object, got {_show(value)}")
            problems: List[str] = []
            unknown = [key for key in value if key not in by_name]
            if unknown:
                names = ", ".join(repr(key) for key in unknown)
                expected = ", ".join(by_name) or "no fields"
                problems.append(f"{where or 'arguments'}: unexpected {names}; expected {expected}")
            result: Dict[str, Any] = {}
            for name, f in by_name.items():
                sub = f"{where}.{name}" if where else name
                if name not in value:
                    if not f.has_default:
                        problems.append(f"{sub}: missing (required)")
                    continue
                item = value[name]
                if item is None and f.has_default and not f.type.nullable:
                    continue  # strict mode's way of leaving it out
                try:
                    result[name] = f.type.convert(item, sub)
                except ArgumentsMismatch as exc:
                    problems.extend(exc.problems)
            if problems:
                raise ArgumentsMismatch(problems)
            if build is dict:
                return result
            try:
                return build(**result)
            except (TypeError, ValueError) as exc:  # a dataclass's own validation
                _mismatch(where, f"{type(exc).__name__}: {exc}")

        return _Type(schema, convert, False)

    def _hints(self, obj: Any, path: str, globalns: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        try:
            return dict(get_type_hints(obj, globalns=globalns, include_extras=True))
        except Exception as exc:
            hint = ""
            if isinstance(exc, TypeError) and "|" in str(exc):
                hint = "; on Python 3.9 write Optional[X] / Union[X, Y] instead of X | Y"
            self.fail(
                path,
                f"cannot resolve its type hint ({type(exc).__name__}: {exc}){hint}; types named "
                "in annotations must be defined at the top level of a module, not inside a function",
            )

    def _parameter_hints(self, fn: Callable[..., Any], signature: inspect.Signature) -> Dict[str, Any]:
        """Each parameter's resolved hint (the return annotation is never needed, so never evaluated)."""
        target: Any = fn
        if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
            target = type(fn).__call__  # a callable object: its class's module
        globalns = getattr(inspect.unwrap(target), "__globals__", {})
        hints: Dict[str, Any] = {}
        for name, param in signature.parameters.items():
            if param.annotation is not param.empty:
                holder = types.SimpleNamespace(__annotations__={name: param.annotation})
                hints[name] = self._hints(holder, name, globalns)[name]
        return hints

    def _opening(self, cls: type, path: str) -> _Opening:
        if cls in self._open:
            self.fail(path, f"{cls.__name__} refers to itself; recursive types cannot be inlined")
        return _Opening(self._open, cls)


class _Opening:
    """Marks a class as being compiled, to catch recursive types."""

    def __init__(self, stack: List[type], cls: type) -> None:
        self.stack = stack
        self.cls = cls

    def __enter__(self) -> None:
        self.stack.append(self.cls)

    def __exit__(self, *exc: object) -> None:
        self.stack.pop()


def _name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__qualname__
    return repr(tp).replace("typing.", "").replace("typing_extensions.", "")


def _identity(value: Any, where: str) -> Any:
    return value


def _convert_none(value: Any, where: str) -> None:
    if value is not None:
        _mismatch(where, f"expected null, got {_show(value)}")


def _convert_str(value: Any, where: str) -> str:
    if type(value) is not str:
        _mismatch(where, f"expected a string, got {_show(value)}")
    return value


def _convert_bool(value: Any, where: str) -> bool:
    if type(value) is not bool:
        _mismatch(where, f"expected true or false, got {_show(value)}")
    return value


def _convert_int(value: Any, where: str) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    _mismatch(where, f"expected an integer, got {_show(value)}")


def _convert_float(value: Any, where: str) -> float:
    if type(value) in (int, float):
        return float(value)
    _mismatch(where, f"expected a number, got {_show(value)}")


_PRIMITIVE_CONVERTERS: Dict[Any, Converter] = {
    str: _convert_str,
    bool: _convert_bool,
    int: _convert_int,
    float: _convert_float,
}


def _first_fit(converters: List[Converter]) -> Converter:
    def convert(value: Any, where: str) -> Any:
        problems: List[str] = []
        for candidate in converters:
            try:
                return candidate(value, where)
            except ArgumentsMismatch as exc:
                problems.extend(exc.problems)
        _mismatch(where, "matches none of the allowed types (" + "; ".join(problems) + ")")

    return convert


def _checker(kind: type, name: str) -> Converter:
    def convert(value: Any, where: str) -> Any:
        if not isinstance(value, dict if kind is dict else list):
            _mismatch(where, f"expected an {name}, got {_show(value)}")
        return tuple(value) if kind is tuple else value

    return convert


def _list_of(item: Converter, as_tuple: bool) -> Converter:
    def convert(value: Any, where: str) -> Any:
        if not isinstance(value, list):
            _mismatch(where, f"expected an array, got {_show(value)}")
        items = _each(item, enumerate(value), where)
        return tuple(items.values()) if as_tuple else list(items.values())

    return convert


def _fixed_tuple(items: List[Converter]) -> Converter:
    def convert(value: Any, where: str) -> Any:
        if not isinstance(value, list) or len(value) != len(items):
            _mismatch(where, f"expected an array of {len(items)} items, got {_show(value)}")
        problems: List[str] = []
        result = []
        for i, (conv, item) in enumerate(zip(items, value)):
            try:
                result.append(conv(item, f"{where}[{i}]"))
            except ArgumentsMismatch as exc:
                problems.extend(exc.problems)
        if problems:
            raise ArgumentsMismatch(problems)
        return tuple(result)

    return convert


def _dict_of(item: Converter) -> Converter:
    def convert(value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            _mismatch(where, f"expected an object, got {_show(value)}")
        return _each(item, value.items(), where)

    return convert


def _each(item: Converter, pairs: Any, where: str) -> Dict[Any, Any]:
    problems: List[str] = []
    result: Dict[Any, Any] = {}
    for key, value in pairs:
        try:
            result[key] = item(value, f"{where}[{key!r}]" if isinstance(key, str) else f"{where}[{key}]")
        except ArgumentsMismatch as exc:
            problems.extend(exc.problems)
    if problems:
        raise ArgumentsMismatch(problems)
    return result


def function_parameters(fn: Callable[..., Any], *, name: str, strict: bool) -> Parameters:
    """The JSON schema, description and argument converter of ``fn``'s parameters.

    Raises :class:`ToolDefinitionError` for anything that cannot be expressed.
    """
    docs = parse_docstring(getattr(fn, "__doc__", None))
    compiled = _Compiler(f"tool {name!r}", strict).function(fn, docs.params)
    convert = compiled.convert

    def to_kwargs(arguments: Any) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = convert(arguments, "")
        return kwargs

    return Parameters(compiled.schema, docs.description, to_kwargs)
