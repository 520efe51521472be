"""Pydantic models as structured output: strict JSON schemas, validation into instances, function tools.

Optional: ``pip install 'openai-stream-events[pydantic]'`` (pydantic 2). Nothing
here imports pydantic until a model is given, so the rest of the package
works without it: a class can only be a pydantic model once pydantic has been
imported, which :func:`is_model_class` uses to answer without importing it.
pydantic 1.x, and pydantic 2's ``pydantic.v1`` models, are refused with an
error that says what to install or use.

The strict schema follows the rules of openai-python's
``to_strict_json_schema`` (what OpenAI's ``strict: true`` accepts): every
object gets ``additionalProperties: false`` and lists all its properties as
required; ``$defs`` are kept and walked; a single-entry ``allOf`` is merged
into its parent; a ``default`` of ``None`` is dropped; a ``$ref`` with
sibling keys is replaced by what it refers to.

For the Responses API: :func:`text_format` builds the ``text.format`` of a
request and :class:`ModelParser` validates the output text.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ._version import __distribution__
from .errors import OpenAIError, StructuredOutputError, ToolArgumentsError

if TYPE_CHECKING:
    import pydantic

__all__ = [
    "ModelParser",
    "ToolArgumentsParser",
    "chat_response_format",
    "is_model_class",
    "model_tool_parsers",
    "pydantic_function_tool",
    "strict_json_schema",
    "text_format",
]

_NAME = re.compile(r"[^A-Za-z0-9_-]")


def is_model_class(value: Any) -> bool:
    """Whether ``value`` is a pydantic (2) model class; pydantic is not imported to find out.

    Raises :class:`OpenAIError` for a model of pydantic 1.x, and
    :class:`TypeError` for a ``pydantic.v1`` model under pydantic 2.
    """
    if not isinstance(value, type):
        return False
    module = sys.modules.get("pydantic")
    if module is None:  # no pydantic model exists before pydantic is imported
        return False
    base = getattr(module, "BaseModel", None)
    if not isinstance(base, type) or not issubclass(value, base):
        v1 = sys.modules.get("pydantic.v1")
        v1_base = getattr(v1, "BaseModel", None)
        if isinstance(v1_base, type) and issubclass(value, v1_base):
            raise TypeError(
                f"{value.__name__} is a pydantic.v1 model; structured output needs a pydantic 2 model: "
                "derive it from pydantic.BaseModel"
            )
        return False
    version = str(getattr(module, "VERSION", getattr(module, "__version__", "")))
    if not version.startswith("2."):
        raise OpenAIError(
            f"pydantic {version or '(unknown version)'} is installed, but models as response_format and "
            f"tool parameters need pydantic 2: pip install '{__distribution__}[pydantic]'"
        )
    return True


def strict_json_schema(model: type[pydantic.BaseModel]) -> Dict[str, Any]:
    """The model's JSON schema in the strict form OpenAI's structured outputs accept (see the module)."""
    schema: Dict[str, Any] = model.model_json_schema()
    return _strict(schema, (), schema)


def _strict(node: Any, path: Tuple[str, ...], root: Dict[str, Any]) -> Dict[str, Any]:
    if not isinstance(node, dict):
        raise TypeError(f"expected a JSON schema object at {'/'.join(path) or 'the root'}, got {node!r:.80}")
    for key in ("$defs", "definitions"):
        defs = node.get(key)
        if isinstance(defs, dict):
            for name, sub in defs.items():
                _strict(sub, (*path, key, name), root)
    if node.get("type") == "object" and "additionalProperties" not in node:
        node["additionalProperties"] = False
    properties = node.get("properties")
    if isinstance(properties, dict):
        node["required"] = list(properties)
        node["properties"] = {
            name: _strict(sub, (*path, "properties", name), root) for name, sub in properties.items()
        }
    items = node.get("items")
    if isinstance(items, dict):
        node["items"] = _strict(items, (*path, "items"), root)
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        node["anyOf"] = [_strict(sub, (*path, "anyOf", str(i)), root) for i, sub in enumerate(any_of)]
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1:
            node.update(_strict(all_of[0], (*path, "allOf", "0"), root))
            node.pop("allOf")
        else:
            node["allOf"] = [_strict(sub, (*path, "allOf", str(i)), root) for i, sub in enumerate(all_of)]
    if "default" in node and node["default"] is None:
        node.pop("default")  # the field stays nullable; None is what the model gets anyway
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        # A $ref with sibling keys (a description...) is not allowed there: inline what it names.
        target = _resolve(root, ref)
        node.update({**target, **node})
        node.pop("$ref")
        return _strict(node, path, root)
    return node


def _resolve(root: Dict[str, Any], ref: str) -> Dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"cannot resolve $ref {ref!r}: only references inside the schema (#/...) work")
    found: Any = root
    for key in ref[2:].split("/"):
        found = found[key]
    if not isinstance(found, dict):
        raise ValueError(f"$ref {ref!r} does not name a schema object")
    return found


def _schema_name(model: type) -> str:
    """The name the API accepts from the class name (``Page[int]``: ``Page_int_``)."""
    return _NAME.sub("_", model.__name__)[:64] or "output"


def chat_response_format(model: type[pydantic.BaseModel]) -> Dict[str, Any]:
    """The Chat Completions ``response_format`` for ``model``: a strict ``json_schema``."""
    return {
        "type": "json_schema",
        "json_schema": {"name": _schema_name(model), "schema": strict_json_schema(model), "strict": True},
    }


def text_format(model: type[pydantic.BaseModel]) -> Dict[str, Any]:
    """The Responses API's ``text.format`` for ``model`` (``text={"format": text_format(Model)}``)."""
    schema = strict_json_schema(model)
    return {"type": "json_schema", "name": _schema_name(model), "schema": schema, "strict": True}


def describe_errors(errors: Sequence[Mapping[str, Any]], limit: int = 5) -> str:
    """pydantic's errors as ``where: what`` phrases (the first ``limit``)."""
    phrases = []
    for error in errors[:limit]:
        where = ".".join(str(part) for part in error.get("loc", ())) or "(the whole value)"
        phrases.append(f"{where}: {error.get('msg')}")
    more = len(errors) - limit
    return "; ".join(phrases) + (f"; and {more} more" if more > 0 else "")


class ModelParser:
    """Validates JSON text into an instance of ``model``; a picklable callable."""

    __slots__ = ("model",)

    def __init__(self, model: type[pydantic.BaseModel]) -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"ModelParser({self.model.__name__})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelParser) and other.model is self.model

    def __hash__(self) -> int:
        return hash(self.model)

    def __reduce__(self) -> Tuple[Any, ...]:
        return (ModelParser, (self.model,))

    def __call__(self, content: str) -> Any:
        """The instance, or :class:`StructuredOutputError` with pydantic's ``errors``."""
        from pydantic import ValidationError

        try:
            return self.model.model_validate_json(content)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            excerpt = repr(content if len(content) <= 120 else content[:120] + "...")
            raise StructuredOutputError(
                f"the content does not fit {self.model.__name__} ({len(errors)} error"
                f"{'' if len(errors) == 1 else 's'}: {describe_errors(errors)}): {excerpt}; an answer cut "
                "off by max_tokens (finish_reason 'length') or a server that ignored the schema gives "
                "this; error.errors is pydantic's list",
                content=content,
                errors=[dict(e) for e in errors],
            ) from None


class ToolArgumentsParser:
    """Validates a tool call's JSON arguments into an instance of ``model``; a picklable callable."""

    __slots__ = ("model",)

    def __init__(self, model: type[pydantic.BaseModel]) -> None:
        self.model = model

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ToolArgumentsParser) and other.model is self.model

    def __hash__(self) -> int:
        return hash(self.model)

    def __reduce__(self) -> Tuple[Any, ...]:
        return (ToolArgumentsParser, (self.model,))

    def __call__(self, arguments: str, *, name: Optional[str], call_id: Optional[str]) -> Any:
        """The instance, or :class:`ToolArgumentsError` naming the call and pydantic's errors."""
        from pydantic import ValidationError

        try:
            return self.model.model_validate_json(arguments or "{}")
        except ValidationError as exc:
            raise ToolArgumentsError(
                f"the arguments of tool call {name!r} (id {call_id}) do not fit {self.model.__name__}: "
                f"{describe_errors(exc.errors(include_url=False))}",
                name=name,
                call_id=call_id,
                arguments=arguments,
            ) from None


class PydanticFunctionTool(Dict[str, Any]):
    """The ``function`` of a tool made by :func:`pydantic_function_tool`: a dict that remembers its model."""

    model: type[pydantic.BaseModel]

    def __init__(self, definition: Mapping[str, Any], model: type[pydantic.BaseModel]) -> None:
        super().__init__(definition)
        self.model = model


def pydantic_function_tool(
    model: type[pydantic.BaseModel], *, name: Optional[str] = None, description: Optional[str] = None
) -> Dict[str, Any]:
    """A strict function tool whose parameters are ``model``'s fields, for the ``tools`` of a request.

    The name defaults to the class name and the description to its
    docstring. In a stream, ``tool_call.done`` events of this tool have
    ``parsed_arguments`` as a ``model`` instance (a mismatch raises
    :class:`~openai_stream.ToolArgumentsError` when read). It only describes
    a tool: for ``run_tools``, write a ``@tool`` function whose parameter is
    the model.
    """
    if not is_model_class(model):
        raise TypeError(f"pydantic_function_tool() takes a pydantic model class, not {model!r:.80}")
    if description is None and model.__doc__:
        description = inspect.cleandoc(model.__doc__)
    function: Dict[str, Any] = {
        "name": name or model.__name__,
        "strict": True,
        "parameters": strict_json_schema(model),
    }
    if description:
        function["description"] = description
    return {"type": "function", "function": PydanticFunctionTool(function, model)}


def model_tool_parsers(tools: Any) -> Dict[str, Callable[..., Any]]:
    """For the ``tools`` of a request: the argument parser of each tool that carries a pydantic model.

    Finds the tools :func:`pydantic_function_tool` made (and openai-python's,
    which carry their model the same way).
    """
    found: Dict[str, Callable[..., Any]] = {}
    if not isinstance(tools, (list, tuple)):
        return found
    for entry in tools:
        function = entry.get("function") if isinstance(entry, Mapping) else None
        model: Any = getattr(function, "model", None)
        if isinstance(function, Mapping) and is_model_class(model) and isinstance(function.get("name"), str):
            found[function["name"]] = ToolArgumentsParser(model)
    return found


def model_schema(model: type[pydantic.BaseModel], *, strict: bool) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """A model's schema for use inside another schema: the schema without its ``$defs``, and the ``$defs``.

    The references stay ``#/$defs/...``: the caller puts the definitions at its root.
    """
    schema = strict_json_schema(model) if strict else model.model_json_schema()
    defs = schema.pop("$defs", {})
    return schema, dict(defs)


def validation_problems(model: type[pydantic.BaseModel], value: Any, where: str) -> Tuple[Any, List[str]]:
    """``model`` validated from ``value``: the instance and no problems, or ``None`` and each problem."""
    from pydantic import ValidationError

    try:
        return model.model_validate(value), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = ".".join(str(part) for part in error.get("loc", ()))
            path = ".".join(p for p in (where, loc) if p)
            problems.append(f"{path or model.__name__}: {error.get('msg')}")
        return None, problems
