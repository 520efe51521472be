"""Python functions as tools: the ``@tool`` decorator and the :class:`Tool` it returns.

::

    @openai_stream.tool
    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
        '''The current weather in a city.

        Args:
            city: The city, e.g. "Paris".
            unit: Celsius or Fahrenheit.
        '''

    get_weather.definition   # {"type": "function", "function": {"name": "get_weather", ...}}
    get_weather("Paris")     # still the plain function

The schema comes from the type hints (see :mod:`openai_stream.tools._schema` for what
is supported) and the descriptions from the docstring (Google, Sphinx or NumPy
style, see :mod:`openai_stream.tools._docstrings`). Anything that cannot be expressed
raises :class:`ToolDefinitionError` when the tool is defined, not when the
model first calls it.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import json
import re
from typing import Any, Callable, Dict, Generic, Mapping, Optional, TypeVar, Union, overload

from typing_extensions import ParamSpec

from ..engine._parsing import parse_arguments
from ..errors import ToolArgumentsError, ToolDefinitionError, UnknownToolError
from ._schema import ArgumentsMismatch, function_parameters

__all__ = [
    "Tool",
    "tool",
    "ToolDefinitionError",
    "ToolArgumentsError",
    "UnknownToolError",
    "result_text",
]

P = ParamSpec("P")
R = TypeVar("R")

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")



class Tool(Generic[P, R]):
    """A Python function the model can call, with its JSON definition.

    Calling the tool calls the function. :attr:`definition` is what goes in
    the request's ``tools`` list; :meth:`invoke` runs the function on the JSON
    arguments of a tool call, converted to the declared types (an ``Enum``
    parameter receives the member, a dataclass parameter an instance).
    """

    __name__: str  # copied from the function, like the rest of its metadata
    function: Callable[P, R]
    name: str
    description: str
    strict: bool
    parameters: Dict[str, Any]

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        strict: bool = False,
    ) -> None:
        if not callable(function):
            raise ToolDefinitionError(f"a tool must be a function, got {type(function).__name__}")
        if name is None:
            name = getattr(function, "__name__", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ToolDefinitionError(
                f"tool name {name!r} is not allowed: use 1 to 64 letters, digits, '_' or '-' "
                "(pass name=... to choose one)"
            )
        params = function_parameters(function, name=name, strict=strict)
        functools.update_wrapper(self, function)
        self.function = function
        self.name = name
        self.description = params.description if description is None else description
        self.strict = strict
        self.parameters = params.schema
        self._convert = params.convert

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}{' strict' if self.strict else ''}>"

    @property
    def definition(self) -> Dict[str, Any]:
        """The entry for the request's ``tools`` list (a fresh copy each time)."""
        function: Dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = copy.deepcopy(self.parameters)
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    def to_dict(self) -> Dict[str, Any]:
        """Same as :attr:`definition`."""
        return self.definition

    def parse_arguments(
        self, arguments: Union[str, Mapping[str, Any]], *, call_id: Optional[str] = None
    ) -> Dict[str, Any]:
        """The keyword arguments for the function, from a tool call's JSON arguments.

        Raises :class:`ToolArgumentsError` (naming this tool and every problem)
        when the text is not JSON or does not fit the parameters.
        """
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        value = (
            parse_arguments(arguments, name=self.name, call_id=call_id)
            if isinstance(arguments, str)
            else arguments
        )
        try:
            return self._convert(value)
        except ArgumentsMismatch as exc:
            raise ToolArgumentsError(
                f"the arguments for tool {self.name!r} do not match its parameters: {exc}",
                name=self.name,
                call_id=call_id,
                arguments=text,
            ) from None

    def invoke(self, arguments: Union[str, Mapping[str, Any]]) -> R:
        """Run the function on a tool call's JSON arguments (text or already decoded)."""
        kwargs = self.parse_arguments(arguments)
        return self.function(**kwargs)  # type: ignore[call-arg]


@overload
def tool(
    function: Callable[P, R],
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    strict: bool = False,
) -> Tool[P, R]: ...


@overload
def tool(
    function: None = None,
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    strict: bool = False,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    function: Optional[Callable[P, R]] = None,
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    strict: bool = False,
) -> Union[Tool[P, R], Callable[[Callable[P, R]], Tool[P, R]]]:
    """Make a :class:`Tool` of a typed function: ``@tool``, ``@tool(strict=True)`` or ``tool(fn, name=...)``.

    ``name`` defaults to the function's name and ``description`` to its
    docstring's description. ``strict`` asks the provider to follow the schema
    exactly (OpenAI's structured outputs); see :mod:`openai_stream.tools._schema`.
    """

    def make(fn: Callable[P, R]) -> Tool[P, R]:
        if isinstance(fn, Tool):
            return Tool(
                fn.function,
                name=name or fn.name,
                description=fn.description if description is None else description,
                strict=strict,
            )
        return Tool(fn, name=name, description=description, strict=strict)

    if function is None:
        return make
    return make(function)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    for method in ("model_dump", "to_dict"):  # pydantic models, APIObject and the like
        dump = getattr(value, method, None)
        if callable(dump):
            return dump()
    raise TypeError(f"a {type(value).__name__} is not JSON serializable")


def result_text(value: Any) -> str:
    """What the model sees of a tool's return value: a string as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=_jsonable)
