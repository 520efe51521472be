"""JSON the model wrote: tool-call arguments, arguments still streaming, structured content.

Complete JSON is parsed with the standard library and fails with a typed error
that names the tool. Incomplete JSON (arguments mid-stream) is parsed
best-effort with jiter's partial mode, which keeps every value that is complete
so far and the text of a string still being written.
"""

from __future__ import annotations

import json
from collections import abc
from typing import Any, Mapping, Optional

import jiter

from ..errors import StructuredOutputError, ToolArgumentsError

__all__ = [
    "ToolArgumentsError",
    "StructuredOutputError",
    "parse_arguments",
    "parse_partial",
    "parse_structured",
    "parsed_or_none",
    "wants_json",
]




def _excerpt(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_arguments(arguments: str, *, name: Optional[str], call_id: Optional[str] = None) -> Any:
    """Parse a complete tool call's arguments; empty text counts as ``{}``.

    Raises :class:`ToolArgumentsError` naming the tool when the text is not JSON.
    """
    if not arguments.strip():
        return {}
    try:
        return json.loads(arguments)
    except ValueError as exc:
        raise ToolArgumentsError(
            f"the arguments of tool call {name!r} (id {call_id}) are not valid JSON ({exc}): "
            f"{_excerpt(arguments)}; the model produced malformed arguments, or the stream was cut off",
            name=name,
            call_id=call_id,
            arguments=arguments,
        ) from None


def parse_partial(text: str) -> Any:
    """Best-effort parse of JSON that may be cut off anywhere; ``None`` when nothing is usable yet.

    Complete values are kept, a string being written is kept as far as it
    goes, a number being written reads as its digits so far (``31`` cut
    after the ``3`` reads ``3``; ``1.5e`` or a lone ``-`` is left out), and
    ``true``/``false``/``null`` or a key still being written is left out.
    Text that can never become JSON also gives ``None``.
    """
    if not text:
        return None
    try:
        return jiter.from_json(text.encode(), partial_mode="trailing-strings")
    except ValueError:
        return None


def wants_json(response_format: Optional[Mapping[str, Any]]) -> bool:
    """Whether a request's ``response_format`` asks for JSON content (``json_schema`` or ``json_object``)."""
    return isinstance(response_format, abc.Mapping) and response_format.get("type") in (
        "json_schema",
        "json_object",
    )


def parse_structured(content: str) -> Any:
    """Parse the content of a ``response_format`` answer; raises :class:`StructuredOutputError`."""
    try:
        return json.loads(content)
    except ValueError as exc:
        raise StructuredOutputError(
            f"the content is not valid JSON ({exc}): {_excerpt(content)}; the answer was probably "
            "cut off (finish_reason 'length': raise max_tokens) or the model ignored response_format",
            content=content,
        ) from None


def parsed_or_none(content: Optional[str]) -> Any:
    """The content decoded as JSON, or ``None`` when there is none or it is not valid JSON."""
    if content is None:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None
