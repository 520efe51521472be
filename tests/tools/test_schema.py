"""JSON schema generation from type hints and docstrings, and the conversion of arguments back."""

from __future__ import annotations

import dataclasses
import enum
import sys
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import pytest
from typing_extensions import Annotated, NotRequired, Required, TypedDict

from openai_stream import ToolArgumentsError, ToolDefinitionError, tool
from openai_stream.tools._docstrings import parse_docstring


def params(fn: Any, strict: bool = False) -> Dict[str, Any]:
    schema: Dict[str, Any] = tool(fn, strict=strict).parameters
    return schema


def prop(fn: Any, strict: bool = False) -> Any:
    """The schema of the single parameter ``x`` of ``fn``."""
    return params(fn, strict)["properties"]["x"]


class Color(enum.Enum):
    """A primary color."""

    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    """A point on the map.

    Attributes:
        lat: Latitude in degrees.
        lon: Longitude in degrees.
    """

    lat: float
    lon: float = 0.0
    label: str = dataclasses.field(default="", metadata={"description": "A name for it."})


@dataclasses.dataclass
class Route:
    stops: List[Point]
    mode: Literal["walk", "drive"] = "walk"


@dataclasses.dataclass
class Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must not be negative")


class Address(TypedDict):
    """A postal address.

    Attributes:
        street: Street and number.
    """

    street: str
    zip: NotRequired[str]


class Partial(TypedDict, total=False):
    a: int
    b: Required[str]


@dataclasses.dataclass
class Node:
    value: int
    children: List[Node]


# -- one function per annotation, each with a single parameter x ------------------------------


def f_str(x: str) -> None: ...
def f_int(x: int) -> None: ...
def f_float(x: float) -> None: ...
def f_bool(x: bool) -> None: ...
def f_none(x: None) -> None: ...
def f_optional(x: Optional[int]) -> None: ...
def f_union(x: Union[int, str]) -> None: ...
def f_union_none(x: Union[int, str, None]) -> None: ...
def f_list(x: List[str]) -> None: ...
def f_builtin_list(x: list[int]) -> None: ...
def f_tuple_var(x: Tuple[float, ...]) -> None: ...
def f_tuple_fixed(x: Tuple[int, str]) -> None: ...
def f_dict(x: Dict[str, int]) -> None: ...
def f_bare_list(x: list) -> None: ...  # type: ignore[type-arg]
def f_bare_dict(x: dict) -> None: ...  # type: ignore[type-arg]
def f_literal(x: Literal["a", "b"]) -> None: ...
def f_literal_mixed(x: Literal["a", 1, None]) -> None: ...
def f_enum(x: Color) -> None: ...
def f_int_enum(x: Level) -> None: ...
def f_typeddict(x: Address) -> None: ...
def f_partial(x: Partial) -> None: ...
def f_dataclass(x: Point) -> None: ...
def f_nested(x: Route) -> None: ...
def f_list_of_dicts(x: List[Dict[str, List[Optional[bool]]]]) -> None: ...
def f_annotated(x: Annotated[int, "How many."]) -> None: ...
def f_any(x: Any) -> None: ...


SCHEMAS = [
    (f_str, {"type": "string"}),
    (f_int, {"type": "integer"}),
    (f_float, {"type": "number"}),
    (f_bool, {"type": "boolean"}),
    (f_none, {"type": "null"}),
    (f_optional, {"type": ["integer", "null"]}),
    (f_union, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
    (f_union_none, {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}),
    (f_list, {"type": "array", "items": {"type": "string"}}),
    (f_builtin_list, {"type": "array", "items": {"type": "integer"}}),
    (f_tuple_var, {"type": "array", "items": {"type": "number"}}),
    (
        f_tuple_fixed,
        {
            "type": "array",
            "prefixItems": [{"type": "integer"}, {"type": "string"}],
            "minItems": 2,
            "maxItems": 2,
        },
    ),
    (f_dict, {"type": "object", "additionalProperties": {"type": "integer"}}),
    (f_bare_list, {"type": "array"}),
    (f_bare_dict, {"type": "object"}),
    (f_literal, {"type": "string", "enum": ["a", "b"]}),
    (f_literal_mixed, {"type": ["string", "integer", "null"], "enum": ["a", 1, None]}),
    (f_enum, {"description": "A primary color.", "type": "string", "enum": ["red", "green"]}),
    (f_int_enum, {"type": "integer", "enum": [1, 2]}),
    (
        f_typeddict,
        {
            "description": "A postal address.",
            "type": "object",
            "properties": {
                "street": {"description": "Street and number.", "type": "string"},
                "zip": {"type": "string"},
            },
            "required": ["street"],
        },
    ),
    (
        f_partial,
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
            "required": ["b"],
        },
    ),
    (
        f_dataclass,
        {
            "description": "A point on the map.",
            "type": "object",
            "properties": {
                "lat": {"description": "Latitude in degrees.", "type": "number"},
                "lon": {"description": "Longitude in degrees.", "type": "number", "default": 0.0},
                "label": {"description": "A name for it.", "type": "string", "default": ""},
            },
            "required": ["lat"],
        },
    ),
    (
        f_list_of_dicts,
        {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": ["boolean", "null"]}},
            },
        },
    ),
    (f_annotated, {"description": "How many.", "type": "integer"}),
    (f_any, {}),
]


@pytest.mark.parametrize(("fn", "expected"), SCHEMAS, ids=[fn.__name__ for fn, _ in SCHEMAS])
def test_schema_for_each_annotation(fn: Any, expected: Dict[str, Any]) -> None:
    schema = params(fn)
    assert schema["properties"]["x"] == expected
    assert schema["required"] == ["x"]
    assert schema["type"] == "object"
    assert "additionalProperties" not in schema


def test_nested_dataclass_inlines_its_fields() -> None:
    route = prop(f_nested)
    assert route["required"] == ["stops"]
    assert route["properties"]["mode"] == {"type": "string", "enum": ["walk", "drive"], "default": "walk"}
    stop = route["properties"]["stops"]["items"]
    assert stop["properties"]["lat"] == {"description": "Latitude in degrees.", "type": "number"}


@pytest.mark.skipif(sys.version_info < (3, 10), reason="X | Y needs Python 3.10")
def test_pep604_unions() -> None:
    namespace: Dict[str, Any] = {}
    exec("def f(x: int | None, y: 'str | int') -> None: ...", namespace)
    schema = params(namespace["f"])
    assert schema["properties"]["x"] == {"type": ["integer", "null"]}
    assert schema["properties"]["y"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_defaults_are_not_required_and_documented() -> None:
    def search(query: str, limit: int = 10, color: Color = Color.RED, tags: Tuple[str, ...] = ()) -> None:
        """Search the catalogue.

        Longer explanation
        over two lines.

        Args:
            query: What to look for.
            limit (int): At most this many
                results.

        Returns:
            Nothing.
        """

    t = tool(search)
    assert t.description == "Search the catalogue.\n\nLonger explanation\nover two lines."
    schema = t.parameters
    assert schema["required"] == ["query"]
    assert schema["properties"]["query"] == {"description": "What to look for.", "type": "string"}
    assert schema["properties"]["limit"] == {
        "description": "At most this many results.",
        "type": "integer",
        "default": 10,
    }
    assert schema["properties"]["color"]["default"] == "red"
    assert schema["properties"]["tags"]["default"] == []


def test_default_without_json_form_is_left_out() -> None:
    sentinel = object()

    def f(x: Optional[int] = sentinel) -> None:  # type: ignore[assignment]
        ...

    assert prop(f) == {"type": ["integer", "null"]}


# -- strict mode -------------------------------------------------------------------------------


def test_strict_mode_requires_everything_and_makes_defaults_nullable() -> None:
    def plan(route: Route, when: Optional[str], speed: float = 1.0, color: Color = Color.RED) -> None: ...

    t = tool(plan, strict=True)
    assert t.definition["function"]["strict"] is True
    schema = t.parameters
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["route", "when", "speed", "color"]
    assert schema["properties"]["when"] == {"type": ["string", "null"]}
    assert schema["properties"]["speed"] == {"type": ["number", "null"]}
    assert schema["properties"]["color"]["type"] == ["string", "null"]
    assert schema["properties"]["color"]["enum"] == ["red", "green", None]
    route = schema["properties"]["route"]
    assert route["additionalProperties"] is False
    assert route["required"] == ["stops", "mode"]
    assert route["properties"]["mode"] == {"type": ["string", "null"], "enum": ["walk", "drive", None]}
    point = route["properties"]["stops"]["items"]
    assert point["additionalProperties"] is False and point["required"] == ["lat", "lon", "label"]

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            assert "default" not in obj
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(schema)


def test_strict_null_means_default() -> None:
    calls: List[Tuple[Any, ...]] = []

    def plan(when: Optional[str], speed: float = 1.0, color: Color = Color.RED) -> None:
        calls.append((when, speed, color))

    t = tool(plan, strict=True)
    t.invoke('{"when": null, "speed": null, "color": null}')
    t.invoke('{"when": "now", "speed": 2, "color": "green"}')
    assert calls == [(None, 1.0, Color.RED), ("now", 2.0, Color.GREEN)]


def test_strict_typeddict_optional_keys_are_nullable_and_dropped_when_null() -> None:
    def send(to: Address) -> Address:
        return to

    t = tool(send, strict=True)
    address = t.parameters["properties"]["to"]
    assert address["required"] == ["street", "zip"]
    assert address["properties"]["zip"] == {"type": ["string", "null"]}
    assert t.invoke('{"to": {"street": "1 Main St", "zip": null}}') == {"street": "1 Main St"}


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (f_dict, r"dict\[str, \.\.\.\] cannot be expressed in strict mode"),
        (f_tuple_fixed, "fixed-length tuples"),
        (f_any, "Any cannot be expressed in strict mode"),
        (f_bare_list, "a bare list"),
    ],
)
def test_strict_mode_rejects_what_it_cannot_express(fn: Any, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message):
        tool(fn, strict=True)
    tool(fn)  # fine without strict


# -- errors at definition time -----------------------------------------------------------------


def g_set(x: set) -> None: ...  # type: ignore[type-arg]
def g_bytes(x: bytes) -> None: ...
def g_object(x: object) -> None: ...
def g_int_keys(x: Dict[int, str]) -> None: ...
def g_bad_literal(x: Literal[b"raw"]) -> None: ...
def g_unannotated(x) -> None: ...  # type: ignore[no-untyped-def]
def g_args(*x: int) -> None: ...
def g_kwargs(**x: int) -> None: ...
def g_positional(x: int, /) -> None: ...
def g_recursive(x: Node) -> None: ...
def g_missing(x: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821


class Mixed(enum.Enum):
    A = (1, 2)


def g_enum_tuple(x: Mixed) -> None: ...


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (g_set, "cannot express set"),
        (g_bytes, "cannot express bytes"),
        (g_object, "cannot express object"),
        (g_int_keys, "dict keys must be str"),
        (g_bad_literal, "not a JSON scalar"),
        (g_unannotated, "x: has no type annotation"),
        (g_args, "\\*args and \\*\\*kwargs"),
        (g_kwargs, "\\*args and \\*\\*kwargs"),
        (g_positional, "positional-only"),
        (g_recursive, "Node refers to itself"),
        (g_missing, "NoSuchType"),
        (g_enum_tuple, "not a string or number"),
    ],
)
def test_unsupported_annotations_fail_when_the_tool_is_defined(fn: Any, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message) as info:
        tool(fn)
    assert f"tool {fn.__name__!r}" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_local_types_give_a_clear_error() -> None:
    namespace: Dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "def make():\n"
        "    class Local: ...\n"
        "    def f(x: Local) -> None: ...\n"
        "    return f\n",
        namespace,
    )
    with pytest.raises(ToolDefinitionError, match="top level of a module"):
        tool(namespace["make"]())


def test_return_annotation_is_never_evaluated() -> None:
    namespace: Dict[str, Any] = {}
    exec("from __future__ import annotations\ndef f(x: int) -> Undefined: ...\n", namespace)
    assert tool(namespace["f"]).parameters["required"] == ["x"]


# -- converting arguments back -----------------------------------------------------------------


def everything(
    point: Point,
    route: Route,
    color: Color,
    level: Level,
    address: Address,
    pair: Tuple[int, str],
    many: Tuple[float, ...],
    mode: Literal["a", 1],
    scores: Dict[str, int],
    maybe: Optional[int] = None,
    either: Union[int, str] = 0,
) -> Dict[str, Any]:
    return dict(locals())


def test_arguments_convert_to_the_declared_types() -> None:
    t = tool(everything)
    got = t.invoke(
        {
            "point": {"lat": 48.85, "lon": 2},
            "route": {"stops": [{"lat": 1}], "mode": "drive"},
            "color": "green",
            "level": 2,
            "address": {"street": "x"},
            "pair": [1, "a"],
            "many": [1, 2.5],
            "mode": 1,
            "scores": {"a": 1},
            "maybe": None,
            "either": "s",
        }
    )
    assert got["point"] == Point(48.85, 2.0)
    assert isinstance(got["point"].lon, float)
    assert got["route"] == Route([Point(1.0)], "drive")
    assert got["color"] is Color.GREEN and got["level"] is Level.HIGH
    assert got["address"] == {"street": "x"}
    assert got["pair"] == (1, "a") and got["many"] == (1.0, 2.5)
    assert got["mode"] == 1 and got["scores"] == {"a": 1}
    assert got["maybe"] is None and got["either"] == "s"


def test_mismatches_are_all_reported_with_their_paths() -> None:
    t = tool(everything)
    with pytest.raises(ToolArgumentsError) as info:
        t.parse_arguments(
            '{"point": {"lat": "north"}, "route": {"stops": [{"lat": 1}, 5]}, "color": "blue", "level": true,'
            ' "address": {}, "pair": [1], "many": [1, "x"], "mode": "b", "scores": {"a": 1.5}, "extra": 1}'
        )
    message = str(info.value)
    assert "tool 'everything'" in message
    for expected in (
        "unexpected 'extra'",
        'point.lat: expected a number, got "north"',
        "route.stops[1]: expected an object, got 5",
        'color: expected one of ["red", "green"], got "blue"',
        "level: expected one of [1, 2], got true",
        "address.street: missing (required)",
        "pair: expected an array of 2 items",
        "many[1]: expected a number",
        "mode: expected one of",
        "scores['a']: expected an integer, got 1.5",
    ):
        assert expected in message, expected
    assert info.value.name == "everything"


def test_dataclass_validation_errors_reach_the_model() -> None:
    def f(x: Checked) -> int:
        return x.n

    t = tool(f)
    assert t.invoke('{"x": {"n": 3}}') == 3
    with pytest.raises(ToolArgumentsError, match="x: ValueError: n must not be negative"):
        t.invoke('{"x": {"n": -1}}')


def test_integers_accept_integral_floats_and_bools_stay_apart() -> None:
    def f(n: int, flag: bool) -> Tuple[int, bool]:
        return n, flag

    t = tool(f)
    assert t.invoke('{"n": 3.0, "flag": false}') == (3, False)
    with pytest.raises(ToolArgumentsError, match="n: expected an integer, got true"):
        t.invoke('{"n": true, "flag": false}')
    with pytest.raises(ToolArgumentsError, match="flag: expected true or false, got 1"):
        t.invoke('{"n": 1, "flag": 1}')


# -- docstrings --------------------------------------------------------------------------------


def google(city: str, days: int) -> None:
    """Forecast.

    Args:
        city: The city.
        days (int): How many
            days ahead.

    Raises:
        ValueError: never documented as a parameter.
    """


def sphinx(city: str, days: int) -> None:
    """Forecast.

    :param city: The city.
    :param int days: How many
        days ahead.
    :raises ValueError: not a parameter.
    """


def numpy(city: str, days: int) -> None:
    """Forecast.

    Parameters
    ----------
    city : str
        The city.
    days : int
        How many
        days ahead.

    Returns
    -------
    None
    """


@pytest.mark.parametrize("fn", [google, sphinx, numpy])
def test_docstring_styles(fn: Any) -> None:
    t = tool(fn)
    assert t.description == "Forecast."
    props = t.parameters["properties"]
    assert props["city"]["description"] == "The city."
    assert props["days"]["description"] == "How many days ahead."
    assert "ValueError" not in props


def test_docstring_edge_cases() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("   ") == ("", {})
    assert parse_docstring("Only a summary.") == ("Only a summary.", {})
    doc = parse_docstring("Summary.\n\n    Args:\n        a, b: not a valid entry\n        c: fine\n")
    assert doc.params == {"c": "fine"}


def test_description_and_name_overrides() -> None:
    t = tool(google, name="forecast-v2", description="Custom.")
    definition = t.definition
    assert definition == {
        "type": "function",
        "function": {"name": "forecast-v2", "description": "Custom.", "parameters": t.parameters},
    }
    assert "strict" not in definition["function"]


def test_no_parameters() -> None:
    def now() -> str:
        return "12:00"

    t = tool(now)
    assert t.parameters == {"type": "object", "properties": {}, "required": []}
    assert "description" not in t.definition["function"]
    assert t.invoke("") == "12:00" and t.invoke("{}") == "12:00"
    assert tool(now, strict=True).parameters == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }
