"""The events a stream emits. Each is an immutable object whose ``type`` is its name.

Events are named tuples, so they are cheap to create on the hot path. The
``snapshot`` of a delta event is built on first access from the text received
up to that event, so streams that never read it stay linear in their length.
Parsed JSON (``parsed_arguments``, ``partial_arguments``, ``parsed``) is
likewise computed only when a handler reads it.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any, ClassVar, Dict, List, Mapping, NamedTuple, NoReturn, Optional, Union

from ..chat._completion import ChatCompletion
from ._parsing import parse_arguments, parse_partial, parse_structured

__all__ = [
    "TextBuffer",
    "ResponseEvent",
    "ChunkEvent",
    "ContentDeltaEvent",
    "ContentDoneEvent",
    "StructuredContentDoneEvent",
    "RefusalDeltaEvent",
    "RefusalDoneEvent",
    "ReasoningDeltaEvent",
    "ReasoningDoneEvent",
    "ToolCallDeltaEvent",
    "ToolCallDoneEvent",
    "UsageEvent",
    "DoneEvent",
    "CompletionEvent",
    "ErrorEvent",
    "Event",
    "EVENT_TYPES",
]


class TextBuffer:
    """Text received in fragments: O(1) appends, the text joined only when read.

    Fragments are merged into blocks every ``BLOCK`` appends, so a long stream
    of tiny fragments holds about one copy of its text rather than one string
    object per fragment. :meth:`text` joins what is held (then keeps it as one
    block) and cuts it at an offset, which is how a delta event's ``snapshot``
    is built on demand.
    """

    __slots__ = ("_blocks", "_parts", "length")
    BLOCK = 256

    def __init__(self) -> None:
        self._blocks: List[str] = []
        self._parts: List[str] = []
        self.length = 0

    def append(self, fragment: str) -> int:
        """Add ``fragment``; return the text's length after it (a delta event's ``end``)."""
        parts = self._parts
        parts.append(fragment)
        self.length += len(fragment)
        if len(parts) >= self.BLOCK:
            with _MERGE_LOCK:
                self._merge()
        return self.length

    def text(self, end: Optional[int] = None) -> str:
        """The text received so far, or its first ``end`` characters."""
        with _MERGE_LOCK:
            self._merge()
            blocks = self._blocks
            if len(blocks) > 1:
                blocks[:] = ["".join(blocks)]
            text = blocks[0] if blocks else ""
        return text if end is None or end >= len(text) else text[:end]

    def _merge(self) -> None:
        # Another thread may read (current_completion) while the stream appends: merges take
        # _MERGE_LOCK, and appends, which take no lock, only add after the fragments moved here.
        parts = self._parts
        count = len(parts)
        if count:
            self._blocks.append("".join(parts[:count]))
            del parts[:count]


_MERGE_LOCK = threading.Lock()


class _ResponseFields(NamedTuple):
    status_code: int
    headers: Mapping[str, str]
    request_id: Optional[str]


class ResponseEvent(_ResponseFields):
    """The HTTP response headers arrived (status, headers and the request id)."""

    __slots__ = ()
    type: ClassVar[str] = "response"


class _ChunkFields(NamedTuple):
    chunk: Dict[str, Any]


class ChunkEvent(_ChunkFields):
    """One decoded chunk, before the events derived from it."""

    __slots__ = ()
    type: ClassVar[str] = "chunk"


class _DeltaFields(NamedTuple):
    choice_index: int
    delta: str
    buffer: TextBuffer
    end: int


class _TextDelta(_DeltaFields):
    __slots__ = ()

    @property
    def snapshot(self) -> str:
        """The choice's text of this kind up to and including this fragment."""
        return self.buffer.text(self.end)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(choice_index={self.choice_index}, delta={self.delta!r})"


class ContentDeltaEvent(_TextDelta):
    """A non-empty content fragment; ``snapshot`` is the content so far."""

    __slots__ = ()
    type: ClassVar[str] = "content.delta"


class RefusalDeltaEvent(_TextDelta):
    """A refusal fragment; ``snapshot`` is the refusal so far."""

    __slots__ = ()
    type: ClassVar[str] = "refusal.delta"


class ReasoningDeltaEvent(_TextDelta):
    """A reasoning fragment (``reasoning_content`` or ``reasoning``); ``snapshot`` so far."""

    __slots__ = ()
    type: ClassVar[str] = "reasoning.delta"


class _ContentDoneFields(NamedTuple):
    choice_index: int
    content: str


class ContentDoneEvent(_ContentDoneFields):
    """A choice's content is complete.

    ``parsed`` is the content decoded as JSON when the request asked for it
    with ``response_format`` (see :class:`StructuredContentDoneEvent`), else ``None``.
    """

    __slots__ = ()
    type: ClassVar[str] = "content.done"

    @property
    def parsed(self) -> Any:
        """``None``: the request did not ask for JSON content."""
        return None


class StructuredContentDoneEvent(ContentDoneEvent):
    """``content.done`` of a request with a ``json_schema`` or ``json_object`` ``response_format``.

    ``parsed`` decodes the content on first access and keeps the result; it
    raises :class:`~openai_stream.StructuredOutputError` when the content
    is not valid JSON (for instance when the answer was cut off by ``length``).
    """

    # No __slots__: the instance dict only holds the cached ``parsed``.

    @cached_property
    def parsed(self) -> Any:
        """The content decoded as JSON."""
        return parse_structured(self.content)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")


class _RefusalDoneFields(NamedTuple):
    choice_index: int
    refusal: str


class RefusalDoneEvent(_RefusalDoneFields):
    """A choice's refusal is complete."""

    __slots__ = ()
    type: ClassVar[str] = "refusal.done"


class _ReasoningDoneFields(NamedTuple):
    choice_index: int
    reasoning: str


class ReasoningDoneEvent(_ReasoningDoneFields):
    """A choice's reasoning is complete."""

    __slots__ = ()
    type: ClassVar[str] = "reasoning.done"


class _ToolDeltaFields(NamedTuple):
    choice_index: int
    index: int  # type: ignore[assignment]
    call_id: Optional[str]
    name: Optional[str]
    arguments_delta: str
    buffer: TextBuffer
    end: int


class ToolCallDeltaEvent(_ToolDeltaFields):
    """A fragment of a tool call. ``index`` is the call's position in the final list.

    The first fragment may carry an empty ``arguments_delta``: it announces the name.
    """

    __slots__ = ()
    type: ClassVar[str] = "tool_call.delta"

    @property
    def arguments_snapshot(self) -> str:
        """The call's arguments up to and including this fragment."""
        return self.buffer.text(self.end)

    @property
    def partial_arguments(self) -> Any:
        """A best-effort parse of ``arguments_snapshot``, computed each time it is read.

        Values complete so far are kept and a string being written is kept as
        far as it goes; ``None`` until anything is usable. Costs one parse of
        the snapshot per read (see :func:`~openai_stream.parse_partial`).
        """
        return parse_partial(self.buffer.text(self.end))

    def __repr__(self) -> str:
        return (
            f"ToolCallDeltaEvent(choice_index={self.choice_index}, index={self.index}, "
            f"call_id={self.call_id!r}, name={self.name!r}, arguments_delta={self.arguments_delta!r})"
        )


class _ToolCallDoneFields(NamedTuple):
    choice_index: int
    index: int  # type: ignore[assignment]
    call_id: Optional[str]
    name: Optional[str]
    arguments: str


class ToolCallDoneEvent(_ToolCallDoneFields):
    """A tool call is complete: the next call of its choice started, or the choice finished.

    ``parsed_arguments`` decodes ``arguments`` on first access and keeps the
    result (empty arguments count as ``{}``); it raises
    :class:`~openai_stream.ToolArgumentsError`, naming the tool, when
    they are not valid JSON.
    """

    # No __slots__: the instance dict only holds the cached ``parsed_arguments``.
    type: ClassVar[str] = "tool_call.done"

    @cached_property
    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON."""
        return parse_arguments(self.arguments, name=self.name, call_id=self.call_id)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")


class _UsageFields(NamedTuple):
    usage: Dict[str, Any]


class UsageEvent(_UsageFields):
    """A usage object arrived (token counts, as the provider sent them)."""

    __slots__ = ()
    type: ClassVar[str] = "usage"


class _DoneFields(NamedTuple):
    choice_index: int
    finish_reason: Optional[str]


class DoneEvent(_DoneFields):
    """A choice finished; ``finish_reason`` is ``None`` when the provider never sent one."""

    __slots__ = ()
    type: ClassVar[str] = "done"


class _CompletionFields(NamedTuple):
    completion: ChatCompletion


class CompletionEvent(_CompletionFields):
    """The stream ended normally; ``completion`` is the final result. Always last."""

    __slots__ = ()
    type: ClassVar[str] = "completion"


class _ErrorFields(NamedTuple):
    error: BaseException


class ErrorEvent(_ErrorFields):
    """An error ended the stream."""

    __slots__ = ()
    type: ClassVar[str] = "error"


Event = Union[
    ResponseEvent,
    ChunkEvent,
    ContentDeltaEvent,
    ContentDoneEvent,
    RefusalDeltaEvent,
    RefusalDoneEvent,
    ReasoningDeltaEvent,
    ReasoningDoneEvent,
    ToolCallDeltaEvent,
    ToolCallDoneEvent,
    UsageEvent,
    DoneEvent,
    CompletionEvent,
    ErrorEvent,
]

EVENT_TYPES = (
    "response",
    "chunk",
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
)
