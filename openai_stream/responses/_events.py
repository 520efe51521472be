"""The events of a Responses API stream.

Two layers, both emitted for every server event:

- the server's own event, under its own name (``response.output_text.delta``,
  ``response.output_item.done``, ...), as a :class:`ResponseStreamEvent`: its
  fields are attributes (``event.delta``, ``event.item_id``), and the fields its
  type documents but the server left out read as ``None`` (llama.cpp sends no
  ``output_index`` or ``sequence_number``);
- the same high-level events as a chat stream, with the same fields, so a
  handler written for chat works unchanged: ``content.delta``/``content.done``,
  ``refusal.*``, ``reasoning.*``, ``tool_call.*``, ``usage``, ``done``,
  ``completion``, ``error``. Most are the chat classes themselves
  (``choice_index`` is always 0); the reasoning events are subclasses that add
  ``kind`` (which text it was), custom tool calls keep their free-form input as
  is, ``usage`` carries the response's usage (which also answers to
  ``prompt_tokens``/``completion_tokens``) and ``completion`` the
  :class:`~openai_stream.responses.Response`.

The server's top-level ``error`` event shares its name with the high-level
``error`` event: it is delivered once, as an ``error`` event whose ``error`` is
the typed exception (its ``body`` is what the server sent).
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from ..chat._completion import APIObject
from ..engine._events import (
    Event,
    ReasoningDeltaEvent,
    ReasoningDoneEvent,
    TextBuffer,
    ToolCallDeltaEvent,
    ToolCallDoneEvent,
    _set_values,
)
from ._response import Response, ResponseOutputItem, ResponseUsage

__all__ = [
    "ResponseStreamEvent",
    "ResponseLifecycleEvent",
    "ResponseOutputItemEvent",
    "ResponsePartEvent",
    "ResponseDeltaEvent",
    "ResponseTextDoneEvent",
    "ResponseAnnotationEvent",
    "ResponseReasoningDeltaEvent",
    "ResponseReasoningDoneEvent",
    "CustomToolCallDeltaEvent",
    "CustomToolCallDoneEvent",
    "ResponseUsageEvent",
    "ResponseCompletionEvent",
    "SERVER_EVENT_TYPES",
    "RESPONSE_EVENT_TYPES",
    "server_event",
]


class ResponseStreamEvent(APIObject):
    """One event as the server sent it; ``type`` is its name, every other field is an attribute.

    ``to_dict()`` gives the payload back. Subclasses name the fields of their
    event family, so a field the server left out reads as ``None``.
    """

    __slots__ = ("type",)
    type: str
    sequence_number: Optional[int]

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "type", data["type"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"


class ResponseLifecycleEvent(ResponseStreamEvent):
    """``response.created``, ``.queued``, ``.in_progress``, ``.completed``, ``.incomplete``, ``.failed``.

    ``response`` is the response object as the server sent it with this event.
    """

    __slots__ = ()
    response: Response
    _nested = {"response": Response}


class ResponseOutputItemEvent(ResponseStreamEvent):
    """``response.output_item.added`` and ``.done``: ``item`` is the output item as sent."""

    __slots__ = ()
    item: ResponseOutputItem
    output_index: Optional[int]
    _nested = {"item": ResponseOutputItem}


class ResponsePartEvent(ResponseStreamEvent):
    """``response.content_part.added/.done`` and ``response.reasoning_summary_part.added/.done``."""

    __slots__ = ()
    item_id: Optional[str]
    output_index: Optional[int]
    content_index: Optional[int]
    summary_index: Optional[int]
    part: APIObject


class ResponseDeltaEvent(ResponseStreamEvent):
    """Any ``*.delta`` event: ``delta`` is the new fragment of the item named by ``item_id``."""

    __slots__ = ()
    item_id: Optional[str]
    output_index: Optional[int]
    content_index: Optional[int]
    summary_index: Optional[int]
    delta: Any
    logprobs: Optional[List[APIObject]]
    obfuscation: Optional[str]


class ResponseTextDoneEvent(ResponseStreamEvent):
    """A streamed value is complete: ``*.text.done`` (``text``), ``response.refusal.done``
    (``refusal``), ``response.function_call_arguments.done`` (``arguments``),
    ``response.custom_tool_call_input.done`` (``input``), ``...call_code.done`` (``code``)."""

    __slots__ = ()
    item_id: Optional[str]
    output_index: Optional[int]
    content_index: Optional[int]
    summary_index: Optional[int]
    text: Optional[str]
    refusal: Optional[str]
    arguments: Optional[str]
    input: Optional[str]
    code: Optional[str]
    name: Optional[str]


class ResponseAnnotationEvent(ResponseStreamEvent):
    """``response.output_text.annotation.added``: a citation or file path for an ``output_text`` part."""

    __slots__ = ()
    item_id: Optional[str]
    output_index: Optional[int]
    content_index: Optional[int]
    annotation_index: Optional[int]
    annotation: APIObject


_LIFECYCLE = (
    "response.created",
    "response.queued",
    "response.in_progress",
    "response.completed",
    "response.incomplete",
    "response.failed",
)

SERVER_EVENT_TYPES = (
    *_LIFECYCLE,
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.output_text.annotation.added",
    "response.refusal.delta",
    "response.refusal.done",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.custom_tool_call_input.delta",
    "response.custom_tool_call_input.done",
    "response.web_search_call.in_progress",
    "response.web_search_call.searching",
    "response.web_search_call.completed",
    "response.file_search_call.in_progress",
    "response.file_search_call.searching",
    "response.file_search_call.completed",
    "response.code_interpreter_call.in_progress",
    "response.code_interpreter_call.interpreting",
    "response.code_interpreter_call.completed",
    "response.code_interpreter_call_code.delta",
    "response.code_interpreter_call_code.done",
    "response.image_generation_call.in_progress",
    "response.image_generation_call.generating",
    "response.image_generation_call.partial_image",
    "response.image_generation_call.completed",
    "response.mcp_call.in_progress",
    "response.mcp_call.completed",
    "response.mcp_call.failed",
    "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done",
    "response.mcp_list_tools.in_progress",
    "response.mcp_list_tools.completed",
    "response.mcp_list_tools.failed",
    "response.audio.delta",
    "response.audio.done",
    "response.audio.transcript.delta",
    "response.audio.transcript.done",
    "response.shell_call_command.added",
    "response.shell_call_command.delta",
    "response.shell_call_command.done",
    "response.shell_call_output_content.delta",
    "response.shell_call_output_content.done",
    "response.compaction.compacting",
)
"""The server event names documented by OpenAI (openai-python 3.63's ``ResponseStreamEvent``),
except ``error`` (delivered as the high-level ``error`` event). Names not listed
here are still emitted, as plain :class:`ResponseStreamEvent` objects."""

_CLASSES: Dict[str, type] = {name: ResponseLifecycleEvent for name in _LIFECYCLE}
_CLASSES.update(
    {
        "response.output_item.added": ResponseOutputItemEvent,
        "response.output_item.done": ResponseOutputItemEvent,
        "response.content_part.added": ResponsePartEvent,
        "response.content_part.done": ResponsePartEvent,
        "response.reasoning_summary_part.added": ResponsePartEvent,
        "response.reasoning_summary_part.done": ResponsePartEvent,
        "response.output_text.annotation.added": ResponseAnnotationEvent,
    }
)
for _name in SERVER_EVENT_TYPES:
    if _name.endswith(".delta"):
        _CLASSES[_name] = ResponseDeltaEvent
    elif _name.endswith(".done") and _name not in _CLASSES and "audio" not in _name:
        _CLASSES[_name] = ResponseTextDoneEvent


def server_event(data: Mapping[str, Any]) -> ResponseStreamEvent:
    """The typed event object for one server payload (which has a string ``type``)."""
    cls = _CLASSES.get(data["type"], ResponseStreamEvent)
    event: ResponseStreamEvent = cls(data)
    return event


# --------------------------------------------------------------------------- high-level events
class ResponseReasoningDeltaEvent(ReasoningDeltaEvent):
    """``reasoning.delta`` of a response: the chat event's fields, plus ``kind``.

    ``kind`` is ``"reasoning_text"`` (the model's raw reasoning) or
    ``"reasoning_summary_text"`` (a summary of it); ``snapshot`` is the text of
    that reasoning part so far.
    """

    __slots__ = ()
    _fields = ("choice_index", "delta", "kind")  # type: ignore[assignment]
    _values: Tuple[int, str, TextBuffer, int, str]  # type: ignore[assignment]

    def __init__(self, choice_index: int, delta: str, buffer: TextBuffer, end: int, kind: str) -> None:
        _set_values(self, (choice_index, delta, buffer, end, kind))

    @property
    def kind(self) -> str:
        """Which reasoning this is: ``reasoning_text`` or ``reasoning_summary_text``."""
        return self._values[4]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(super().__eq__(other) and self._values[4] == other._values[4])

    def __hash__(self) -> int:
        return hash((super().__hash__(), self._values[4]))


class ResponseReasoningDoneEvent(ReasoningDoneEvent):
    """``reasoning.done`` of a response: one reasoning part (raw text or one summary part) is complete."""

    __slots__ = ()
    _fields = ("choice_index", "reasoning", "kind")  # type: ignore[assignment]
    _values: Tuple[int, str, str]  # type: ignore[assignment]

    def __init__(self, choice_index: int, reasoning: str, kind: str) -> None:
        _set_values(self, (choice_index, reasoning, kind))

    @property
    def kind(self) -> str:
        """Which reasoning this is: ``reasoning_text`` or ``reasoning_summary_text``."""
        return self._values[2]


class CustomToolCallDeltaEvent(ToolCallDeltaEvent):
    """``tool_call.delta`` of a custom tool (free-form input, not JSON).

    ``arguments_delta`` is a fragment of the input; ``partial_arguments`` is
    the input so far, as text.
    """

    __slots__ = ()

    @property
    def partial_arguments(self) -> Any:
        """The custom tool's input so far (plain text: nothing to parse)."""
        return self.arguments_snapshot


class CustomToolCallDoneEvent(ToolCallDoneEvent):
    """``tool_call.done`` of a custom tool: ``arguments`` and ``parsed_arguments`` are its input text."""

    __slots__ = ()

    @property
    def parsed_arguments(self) -> Any:
        """The custom tool's input, as sent (custom tools take free-form text)."""
        return self.arguments


class ResponseUsageEvent(Event):
    """``usage``: the response's token counts arrived (with its terminal event).

    ``usage`` is the response's :class:`~openai_stream.responses.ResponseUsage`;
    it also answers to the chat names ``prompt_tokens`` and ``completion_tokens``.
    """

    __slots__ = ()
    type: ClassVar[str] = "usage"
    _fields = ("usage",)
    _values: Tuple[ResponseUsage]

    def __init__(self, usage: ResponseUsage) -> None:
        _set_values(self, (usage,))

    @property
    def usage(self) -> ResponseUsage:
        """The token counts, as the response's ``usage`` has them."""
        return self._values[0]


class ResponseCompletionEvent(Event):
    """``completion``: the stream ended normally; ``completion`` (also ``response``) is the
    :class:`~openai_stream.responses.Response`. Always the last event."""

    __slots__ = ()
    type: ClassVar[str] = "completion"
    _fields = ("completion",)
    _values: Tuple[Response]

    def __init__(self, completion: Response) -> None:
        _set_values(self, (completion,))

    @property
    def completion(self) -> Response:
        """The final response."""
        return self._values[0]

    @property
    def response(self) -> Response:
        """The final response (the same object as ``completion``)."""
        return self._values[0]


RESPONSE_EVENT_TYPES = (
    "response",
    "content.delta",
    "content.done",
    "refusal.delta",
    "refusal.done",
    "reasoning.delta",
    "reasoning.done",
    "tool_call.delta",
    "tool_call.done",
    "usage",
    "done",
    "completion",
    "error",
    *SERVER_EVENT_TYPES,
)
"""Every event name a responses stream emits: the high-level ones shared with
chat streams (``response`` is the HTTP response event of the engine), then the
documented server events."""
