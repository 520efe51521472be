"""The events a stream emits. Each is an immutable object whose ``type`` is its name.

Events are frozen, slotted objects: two events are equal only when they are
of the same class with the same values, they never unpack as tuples, and
assigning to one raises. Their values live in one tuple slot, which makes
them cheaper to create on the hot path than named tuples.

The ``snapshot`` of a delta event is built on first access from the text
received up to that event, so streams that never read it stay linear in
their length. Parsed JSON (``parsed_arguments``, ``partial_arguments``,
``parsed``) is likewise computed only when a handler reads it.

This module is sans-I/O: the accumulators build these events, so it imports
no ``requests``, ``threading``, ``socket`` or ``pyee``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Mapping, NoReturn, Optional, Tuple, Union

from ..errors import ToolArgumentsError
from ._parsing import parse_arguments, parse_partial, parse_structured

if TYPE_CHECKING:
    from ..chat._completion import ChatCompletion, Usage

__all__ = [
    "Event",
    "TextBuffer",
    "ResponseEvent",
    "ChunkEvent",
    "ContentDeltaEvent",
    "ContentDoneEvent",
    "StructuredContentDoneEvent",
    "ParsedContentDoneEvent",
    "RefusalDeltaEvent",
    "RefusalDoneEvent",
    "ReasoningDeltaEvent",
    "ReasoningDoneEvent",
    "ToolCallDeltaEvent",
    "ToolCallDoneEvent",
    "ModelToolCallDoneEvent",
    "UsageEvent",
    "DoneEvent",
    "CompletionEvent",
    "ErrorEvent",
    "AnyEvent",
    "EVENT_TYPES",
]


class TextBuffer:
    """Text received in fragments: O(1) appends, the text joined only when read.

    Fragments are merged into blocks every ``BLOCK`` appends, so a long stream
    of tiny fragments holds about one copy of its text rather than one string
    object per fragment. :meth:`text` joins what is held and cuts it at an
    offset, which is how a delta event's ``snapshot`` is built on demand.

    One thread appends (the stream's); any thread may read at the same time.
    The blocks and the list of fragments since the last merge are published
    together as one immutable pair, replaced whole by a merge and never
    changed afterwards except by appending to the current list, so a reader
    sees either the state before a merge or the one after it, never half of
    each. No lock is needed, with or without a GIL.
    """

    __slots__ = ("_state", "length")
    BLOCK = 256

    def __init__(self) -> None:
        self._state: Tuple[Tuple[str, ...], List[str]] = ((), [])
        self.length = 0

    def append(self, fragment: str) -> int:
        """Add ``fragment``; return the text's length after it (a delta event's ``end``)."""
        blocks, parts = self._state
        parts.append(fragment)
        self.length += len(fragment)
        if len(parts) >= self.BLOCK:
            self._state = ((*blocks, "".join(parts)), [])
        return self.length

    def settle(self, text: str) -> bool:
        """Hold ``text`` as the only block when it is exactly the text held, so it is kept once.

        For a text that also arrives whole (a Responses API ``*.done`` event):
        the buffer then shares that string instead of keeping its own copy.
        Compared piece by piece, without joining. Returns whether it did.
        """
        blocks, parts = self._state
        if len(text) != self.length:
            return False
        position = 0
        for piece in (*blocks, *parts):
            if not text.startswith(piece, position):
                return False
            position += len(piece)
        self._state = ((text,), [])  # published whole, as a merge is
        return True

    def text(self, end: Optional[int] = None) -> str:
        """The text received so far, or its first ``end`` characters."""
        blocks, parts = self._state
        text = "".join(blocks) + "".join(parts)
        return text if end is None or end >= len(text) else text[:end]


class Event:
    """Base class of every event: frozen, slotted, compared by class and values.

    ``type`` is the event's name, the one handlers register for. ``to_dict()``
    gives the public fields as a plain dict.
    """

    __slots__ = ("_values",)
    type: ClassVar[str] = ""
    _fields: ClassVar[Tuple[str, ...]] = ()
    """The public fields, in order: repr, to_dict."""
    _values: Tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        _set_values(self, values)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values == other._values

    def __ne__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values != other._values

    def __hash__(self) -> int:
        return hash((type(self), self._values))

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), self._values)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def to_dict(self) -> Dict[str, Any]:
        """The public fields as a dict (values as they are, not copied)."""
        return {name: getattr(self, name) for name in self._fields}


_set_values = Event.__dict__["_values"].__set__  # writes the slot past the frozen __setattr__


class ResponseEvent(Event):
    """The HTTP response headers arrived (status, headers and the request id)."""

    __slots__ = ()
    type: ClassVar[str] = "response"
    _fields = ("status_code", "headers", "request_id")
    _values: Tuple[int, Mapping[str, str], Optional[str]]

    def __init__(self, status_code: int, headers: Mapping[str, str], request_id: Optional[str]) -> None:
        _set_values(self, (status_code, headers, request_id))

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return self._values[0]

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (case-insensitive)."""
        return self._values[1]

    @property
    def request_id(self) -> Optional[str]:
        """The ``x-request-id`` header, if the server sent one."""
        return self._values[2]


class ChunkEvent(Event):
    """One decoded payload (a chat chunk), before the events derived from it."""

    __slots__ = ()
    type: ClassVar[str] = "chunk"
    _fields = ("chunk",)
    _values: Tuple[Dict[str, Any]]

    def __init__(self, chunk: Dict[str, Any]) -> None:
        _set_values(self, (chunk,))

    @property
    def chunk(self) -> Dict[str, Any]:
        """The chunk as the server sent it."""
        return self._values[0]


class _TextDelta(Event):
    __slots__ = ()
    _fields = ("choice_index", "delta")
    _values: Tuple[int, str, TextBuffer, int]

    def __init__(self, choice_index: int, delta: str, buffer: TextBuffer, end: int) -> None:
        _set_values(self, (choice_index, delta, buffer, end))

    @property
    def choice_index(self) -> int:
        """The choice this fragment belongs to (0 unless ``n > 1``)."""
        return self._values[0]

    @property
    def delta(self) -> str:
        """The fragment."""
        return self._values[1]

    @property
    def snapshot(self) -> str:
        """The choice's text of this kind up to and including this fragment (built when read)."""
        values = self._values
        return values[2].text(values[3])

    def __eq__(self, other: object) -> bool:
        # The buffer and offset place the fragment; equal events are the same fragment of the same text.
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self._values, other._values
        return bool(mine[0] == theirs[0] and mine[1] == theirs[1] and mine[3] == theirs[3])

    def __hash__(self) -> int:
        values = self._values
        return hash((type(self), values[0], values[1], values[3]))


class ContentDeltaEvent(_TextDelta):
    """A non-empty content fragment; ``snapshot`` is the content so far."""

    __slots__ = ()
    type: ClassVar[str] = "content.delta"

    @property
    def partial_parsed(self) -> Any:
        """The content so far parsed as JSON that may be cut off (jiter's partial mode), when read.

        A dict while a JSON object is being written (complete values kept, a
        string being written kept as far as it goes), ``None`` until anything
        is usable or when the content is not JSON. Costs one parse of the
        snapshot per read: read it per redraw, not necessarily per delta.
        """
        values = self._values
        return parse_partial(values[2].text(values[3]))


class RefusalDeltaEvent(_TextDelta):
    """A refusal fragment; ``snapshot`` is the refusal so far."""

    __slots__ = ()
    type: ClassVar[str] = "refusal.delta"


class ReasoningDeltaEvent(_TextDelta):
    """A reasoning fragment (``reasoning_content`` or ``reasoning``); ``snapshot`` so far."""

    __slots__ = ()
    type: ClassVar[str] = "reasoning.delta"


_UNSET: Any = object()


class ContentDoneEvent(Event):
    """A choice's content is complete.

    ``parsed`` is the content decoded as JSON when the request asked for it
    with ``response_format`` (see :class:`StructuredContentDoneEvent`), else ``None``.
    """

    __slots__ = ()
    type: ClassVar[str] = "content.done"
    _fields = ("choice_index", "content")
    _values: Tuple[int, str]

    def __init__(self, choice_index: int, content: str) -> None:
        _set_values(self, (choice_index, content))

    @property
    def choice_index(self) -> int:
        """The choice (0 unless ``n > 1``)."""
        return self._values[0]

    @property
    def content(self) -> str:
        """The whole content of the choice."""
        return self._values[1]

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

    __slots__ = ("_parsed",)
    _parsed: Any

    def __init__(self, choice_index: int, content: str) -> None:
        _set_values(self, (choice_index, content))
        _set_parsed(self, _UNSET)

    @property
    def parsed(self) -> Any:
        """The content decoded as JSON (decoded once, on first access)."""
        value = self._parsed
        if value is _UNSET:
            value = parse_structured(self._values[1])
            _set_parsed(self, value)
        return value


_set_parsed = StructuredContentDoneEvent.__dict__["_parsed"].__set__


class ParsedContentDoneEvent(StructuredContentDoneEvent):
    """``content.done`` of a request whose ``response_format`` is a pydantic model.

    ``parsed`` is the model instance, validated once when the choice
    finished; reading it raises the :class:`~openai_stream.StructuredOutputError`
    (with pydantic's ``errors``) when the content did not fit the model.
    """

    __slots__ = ()
    _values: Tuple[int, str, Any, Optional[BaseException]]  # type: ignore[assignment]

    def __init__(self, choice_index: int, content: str, parsed: Any, error: Optional[BaseException]) -> None:
        _set_values(self, (choice_index, content, parsed, error))
        _set_parsed(self, _UNSET)

    @property
    def parsed(self) -> Any:
        """The model instance (raises the validation error when the content did not fit)."""
        error = self._values[3]
        if error is not None:
            raise error
        return self._values[2]


class RefusalDoneEvent(Event):
    """A choice's refusal is complete."""

    __slots__ = ()
    type: ClassVar[str] = "refusal.done"
    _fields = ("choice_index", "refusal")
    _values: Tuple[int, str]

    def __init__(self, choice_index: int, refusal: str) -> None:
        _set_values(self, (choice_index, refusal))

    @property
    def choice_index(self) -> int:
        """The choice (0 unless ``n > 1``)."""
        return self._values[0]

    @property
    def refusal(self) -> str:
        """The whole refusal."""
        return self._values[1]


class ReasoningDoneEvent(Event):
    """A choice's reasoning is complete."""

    __slots__ = ()
    type: ClassVar[str] = "reasoning.done"
    _fields = ("choice_index", "reasoning")
    _values: Tuple[int, str]

    def __init__(self, choice_index: int, reasoning: str) -> None:
        _set_values(self, (choice_index, reasoning))

    @property
    def choice_index(self) -> int:
        """The choice (0 unless ``n > 1``)."""
        return self._values[0]

    @property
    def reasoning(self) -> str:
        """The whole reasoning."""
        return self._values[1]


class ToolCallDeltaEvent(Event):
    """A fragment of a tool call. ``index`` is the call's position in the final list.

    The first fragment may carry an empty ``arguments_delta``: it announces the name.
    For a custom (freeform) tool call, ``call_type`` is ``"custom"`` and
    ``arguments_delta`` / ``arguments_snapshot`` hold its ``input`` text.
    """

    __slots__ = ()
    type: ClassVar[str] = "tool_call.delta"
    _fields = ("choice_index", "index", "call_id", "name", "arguments_delta", "call_type")
    _values: Tuple[int, int, Optional[str], Optional[str], str, TextBuffer, int, str]

    def __init__(
        self,
        choice_index: int,
        index: int,
        call_id: Optional[str],
        name: Optional[str],
        arguments_delta: str,
        buffer: TextBuffer,
        end: int,
        call_type: str = "function",
    ) -> None:
        _set_values(self, (choice_index, index, call_id, name, arguments_delta, buffer, end, call_type))

    @property
    def choice_index(self) -> int:
        """The choice (0 unless ``n > 1``)."""
        return self._values[0]

    @property
    def index(self) -> int:
        """The call's position in the choice's final ``tool_calls`` list."""
        return self._values[1]

    @property
    def call_id(self) -> Optional[str]:
        """The call's id (``None`` until the provider sent one)."""
        return self._values[2]

    @property
    def name(self) -> Optional[str]:
        """The tool's name (``None`` until the provider sent one)."""
        return self._values[3]

    @property
    def arguments_delta(self) -> str:
        """This fragment of the arguments (may be empty)."""
        return self._values[4]

    @property
    def arguments_snapshot(self) -> str:
        """The call's arguments up to and including this fragment."""
        values = self._values
        return values[5].text(values[6])

    @property
    def partial_arguments(self) -> Any:
        """A best-effort parse of ``arguments_snapshot``, computed each time it is read.

        Values complete so far are kept and a string being written is kept as
        far as it goes; ``None`` until anything is usable. Costs one parse of
        the snapshot per read (see :func:`~openai_stream.engine._parsing.parse_partial`).
        """
        values = self._values
        return parse_partial(values[5].text(values[6]))

    @property
    def call_type(self) -> str:
        """``"function"``, or ``"custom"`` for a custom (freeform) tool call."""
        return self._values[7]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self._values, other._values
        return bool(mine[:5] == theirs[:5] and mine[6:] == theirs[6:])

    def __hash__(self) -> int:
        values = self._values
        return hash((type(self), values[:5], values[6:]))


class ToolCallDoneEvent(Event):
    """A tool call is complete: its choice finished, or a later call started while its arguments were whole.

    "Whole" means a complete JSON object; a call announced with ``""`` stays
    open while other calls start (Gemini fills in parallel calls afterwards).

    ``parsed_arguments`` decodes ``arguments`` on first access and keeps the
    result (empty arguments count as ``{}``); it raises
    :class:`~openai_stream.ToolArgumentsError`, naming the tool, when
    they are not valid JSON.

    A custom (freeform) tool call has ``call_type`` ``"custom"`` and its text
    in ``input`` (also in ``arguments``); its ``parsed_arguments`` raises, as
    the text is not JSON arguments. ``input`` is ``None`` for function calls.
    """

    __slots__ = ("_parsed",)
    _parsed: Any
    type: ClassVar[str] = "tool_call.done"
    _fields = ("choice_index", "index", "call_id", "name", "arguments", "call_type")
    _values: Tuple[int, int, Optional[str], Optional[str], str, str]

    def __init__(
        self,
        choice_index: int,
        index: int,
        call_id: Optional[str],
        name: Optional[str],
        arguments: str,
        call_type: str = "function",
    ) -> None:
        _set_values(self, (choice_index, index, call_id, name, arguments, call_type))
        _set_call_parsed(self, _UNSET)

    @property
    def call_type(self) -> str:
        """``"function"``, or ``"custom"`` for a custom (freeform) tool call."""
        return self._values[5]

    @property
    def input(self) -> Optional[str]:
        """A custom tool call's freeform input; ``None`` for a function call."""
        values = self._values
        return values[4] if values[5] == "custom" else None

    @property
    def choice_index(self) -> int:
        """The choice (0 unless ``n > 1``)."""
        return self._values[0]

    @property
    def index(self) -> int:
        """The call's position in the choice's final ``tool_calls`` list."""
        return self._values[1]

    @property
    def call_id(self) -> Optional[str]:
        """The call's id, as the provider sent it."""
        return self._values[2]

    @property
    def name(self) -> Optional[str]:
        """The tool's name."""
        return self._values[3]

    @property
    def arguments(self) -> str:
        """The whole arguments, as JSON text."""
        return self._values[4]

    @property
    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (decoded once, on first access)."""
        value = self._parsed
        if value is _UNSET:
            values = self._values
            if values[5] == "custom":
                raise ToolArgumentsError(
                    f"tool call {values[3]!r} (id {values[2]}) is a custom tool call: its input is "
                    "freeform text, not JSON arguments; read event.input",
                    name=values[3],
                    call_id=values[2],
                    arguments=values[4],
                )
            value = parse_arguments(values[4], name=values[3], call_id=values[2])
            _set_call_parsed(self, value)
        return value


_set_call_parsed = ToolCallDoneEvent.__dict__["_parsed"].__set__


class ModelToolCallDoneEvent(ToolCallDoneEvent):
    """``tool_call.done`` of a tool that carries a pydantic model (``pydantic_function_tool``).

    ``parsed_arguments`` is a model instance, validated on first access; it
    raises :class:`~openai_stream.ToolArgumentsError` naming the call and
    every mismatch when the arguments do not fit.
    """

    __slots__ = ()
    _values: Tuple[int, int, Optional[str], Optional[str], str, str, Any]  # type: ignore[assignment]

    def __init__(
        self,
        choice_index: int,
        index: int,
        call_id: Optional[str],
        name: Optional[str],
        arguments: str,
        call_type: str,
        parse: Any,
    ) -> None:
        _set_values(self, (choice_index, index, call_id, name, arguments, call_type, parse))
        _set_call_parsed(self, _UNSET)

    @property
    def parsed_arguments(self) -> Any:
        """The arguments validated into the tool's model (once, on first access)."""
        value = self._parsed
        if value is _UNSET:
            values = self._values
            value = values[6](values[4], name=values[3], call_id=values[2])
            _set_call_parsed(self, value)
        return value


class UsageEvent(Event):
    """A usage object arrived (token counts, as the provider sent them)."""

    __slots__ = ()
    type: ClassVar[str] = "usage"
    _fields = ("usage",)
    _values: Tuple[Usage]

    def __init__(self, usage: Usage) -> None:
        _set_values(self, (usage,))

    @property
    def usage(self) -> Usage:
        """The token counts, as the completion's ``usage`` has them."""
        return self._values[0]


class DoneEvent(Event):
    """A choice finished; ``finish_reason`` is ``None`` when the provider never sent one."""

    __slots__ = ()
    type: ClassVar[str] = "done"
    _fields = ("choice_index", "finish_reason")
    _values: Tuple[int, Optional[str]]

    def __init__(self, choice_index: int, finish_reason: Optional[str]) -> None:
        _set_values(self, (choice_index, finish_reason))

    @property
    def choice_index(self) -> int:
        """The choice (0 unless ``n > 1``)."""
        return self._values[0]

    @property
    def finish_reason(self) -> Optional[str]:
        """Why the choice ended (``stop``, ``length``, ``tool_calls``...), or ``None``."""
        return self._values[1]


class CompletionEvent(Event):
    """The stream ended normally; ``completion`` is the final result. Always last."""

    __slots__ = ()
    type: ClassVar[str] = "completion"
    _fields = ("completion",)
    _values: Tuple[ChatCompletion]

    def __init__(self, completion: ChatCompletion) -> None:
        _set_values(self, (completion,))

    @property
    def completion(self) -> ChatCompletion:
        """The final result."""
        return self._values[0]


class ErrorEvent(Event):
    """An error ended the stream."""

    __slots__ = ()
    type: ClassVar[str] = "error"
    _fields = ("error",)
    _values: Tuple[BaseException]

    def __init__(self, error: BaseException) -> None:
        _set_values(self, (error,))

    @property
    def error(self) -> BaseException:
        """The exception (it is raised too)."""
        return self._values[0]


AnyEvent = Union[
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
"""Every chat stream event, for type checkers."""

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
"""The names of the events a chat stream emits."""
