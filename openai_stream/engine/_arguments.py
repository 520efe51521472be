"""Which tool calls of a final message carry ``parsed_arguments``, and what it holds.

The rule is openai-python's (``ParsedFunctionToolCall`` for chat,
``ParsedResponseFunctionToolCall`` for responses): a call of a tool given by
``pydantic_function_tool(Model)`` gets a ``Model`` instance; a call of a plain
function tool declared ``"strict": true`` gets its arguments decoded as JSON
(a dict); any other call gets ``None``. Where openai-python raises (arguments
that do not fit the model, or are not JSON), the message's field is ``None``
here: the ``tool_call.done`` event's ``parsed_arguments`` raises the typed
:class:`~openai_stream.ToolArgumentsError` for that call, and the message
keeps what was received (``arguments``).
"""

from __future__ import annotations

from collections import abc
from typing import Any, Callable, FrozenSet, List, Mapping, Optional

from ..errors import ToolArgumentsError
from ._parsing import parse_arguments

__all__ = [
    "arguments_or_none",
    "call_arguments_parser",
    "event_arguments_or_none",
    "fill_parsed_arguments",
    "strict_tool_names",
]


def strict_tool_names(tools: Any) -> FrozenSet[str]:
    """The names of the function tools of a request's ``tools`` declared strict (pydantic ones aside).

    Reads the chat shape (``{"type": "function", "function": {...}}``), the
    Responses API's flat shape (``{"type": "function", "name": ...}``) and
    ``@openai_stream.tool`` functions (their definition).
    """
    if not isinstance(tools, (list, tuple)):
        return frozenset()
    names: List[str] = []
    for entry in tools:
        definition = getattr(entry, "definition", None) if not isinstance(entry, abc.Mapping) else entry
        if not isinstance(definition, abc.Mapping) or definition.get("type", "function") != "function":
            continue
        function = definition.get("function")
        declared = function if isinstance(function, abc.Mapping) else definition
        if getattr(declared, "model", None) is not None:
            continue  # pydantic_function_tool(): its model gives the instance
        name = declared.get("name")
        if declared.get("strict") is True and isinstance(name, str):
            names.append(name)
    return frozenset(names)


def call_arguments_parser(
    name: Optional[str],
    model_parsers: Optional[Mapping[str, Callable[..., Any]]],
    strict: FrozenSet[str],
) -> Optional[Callable[..., Any]]:
    """The parser of a call's arguments for its message (a model's, or JSON for a strict tool), or None."""
    if name is None:
        return None
    parse = model_parsers.get(name) if model_parsers else None
    if parse is not None:
        return parse
    return parse_arguments if name in strict else None


def arguments_or_none(
    parse: Optional[Callable[..., Any]], arguments: Any, *, name: Optional[str], call_id: Optional[str]
) -> Any:
    """``parse(arguments)`` for a message's ``parsed_arguments``; None without a parser or a fit."""
    if parse is None or not isinstance(arguments, str):
        return None
    try:
        return parse(arguments, name=name, call_id=call_id)
    except ToolArgumentsError:
        return None  # the tool_call.done event raises it; the message keeps the arguments as sent


def event_arguments_or_none(event: Any) -> Any:
    """A ``tool_call.done`` event's ``parsed_arguments`` (decoded once, kept by the event), or None.

    The event keeps its first result; a snapshot from another thread racing a
    handler that reads it may decode once more, with an equal result.
    """
    try:
        return event.parsed_arguments
    except ToolArgumentsError:
        return None


def fill_parsed_arguments(
    holders: Any,
    model_parsers: Optional[Mapping[str, Callable[..., Any]]],
    strict: FrozenSet[str],
) -> None:
    """Give each function call of a whole (non-streamed) answer its ``parsed_arguments``, in place.

    ``holders`` are a chat message's ``tool_calls`` (the value goes in each
    call's ``function``) or a response's ``output`` items (it goes in each
    ``function_call`` item).
    """
    for entry in holders if isinstance(holders, list) else ():
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == "function_call":
            holder, call_id = entry, entry.get("call_id")
        elif isinstance(entry.get("function"), dict) and entry.get("type", "function") == "function":
            holder, call_id = entry["function"], entry.get("id")
        else:
            continue
        name = holder.get("name")
        parse = call_arguments_parser(name if isinstance(name, str) else None, model_parsers, strict)
        holder["parsed_arguments"] = arguments_or_none(
            parse, holder.get("arguments"), name=name, call_id=call_id
        )
