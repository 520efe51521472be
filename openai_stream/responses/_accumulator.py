"""The sans-I/O core of a Responses API stream: event payloads in, events out, the response built.

:class:`ResponseAccumulator` knows nothing of sockets, threads or emitters. The
rules it applies, where the API documentation leaves room or servers differ:

- Items are keyed by ``item_id``; an event without one names its item by
  ``output_index``, else it belongs to the newest item of its kind. Items are
  ordered by arrival (``response.output_item.added``), which is the
  ``output_index`` order whenever the server sends indexes. Parts are found by
  ``content_index``/``summary_index`` when sent, else the newest part of the
  right type. An event for an item or part never announced creates it.
- ``sequence_number``, when sent, is checked: a gap is counted
  (:attr:`~ResponseAccumulator.sequence_gaps`, :attr:`~ResponseAccumulator.missed_events`)
  and the event applied; an event whose number is not above the last one seen
  (a repeat, as after a resume that overlaps) is counted in
  :attr:`~ResponseAccumulator.repeated_events` and dropped, so nothing is applied twice.
- The terminal snapshot (``response.completed``, ``.incomplete``, ``.failed``)
  is the final word on every field it carries; its ``output``, when it sends
  a non-empty one, replaces the items the events built (items it does not list
  are kept after it). Fields it lacks are filled from what the stream built.
  Within an item, ``response.output_item.done`` is the final word on that item,
  ``response.content_part.done`` on a part, and a ``*.done`` text on that text.
- Top-level fields a terminal event carries beside ``response`` (llama.cpp's
  ``timings``) are kept on the response, as the chat accumulator keeps them.
- ``response.incomplete`` is not an error: the response completes with its
  ``status`` and ``incomplete_details``. ``response.failed`` and the ``error``
  event give an ``error`` event with a typed exception (the same status
  mapping as chat streams) that carries the response so far. A second
  response in the same body (llama.cpp streams one per ``n``) raises
  :class:`~openai_stream.errors.InvalidStreamDataError`.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from ..chat._completion import _plain
from ..engine._arguments import arguments_or_none, call_arguments_parser, event_arguments_or_none
from ..engine._events import (
    ContentDeltaEvent,
    ContentDoneEvent,
    DoneEvent,
    ErrorEvent,
    ModelToolCallDoneEvent,
    ParsedContentDoneEvent,
    RefusalDeltaEvent,
    RefusalDoneEvent,
    StructuredContentDoneEvent,
    TextBuffer,
    ToolCallDeltaEvent,
    ToolCallDoneEvent,
)
from ..engine._parsing import parsed_or_none, wants_json
from ..errors import (
    APIError,
    InvalidStreamDataError,
    OpenAIError,
    StructuredOutputError,
    error_from_payload,
)
from ._events import (
    CustomToolCallDeltaEvent,
    CustomToolCallDoneEvent,
    ResponseCompletionEvent,
    ResponseReasoningDeltaEvent,
    ResponseReasoningDoneEvent,
    ResponseUsageEvent,
    server_event,
)
from ._response import Response, ResponseUsage, output_text

__all__ = ["ResponseAccumulator"]

# The key that holds a part's text, per part type.
_TEXT_KEY = {"output_text": "text", "refusal": "refusal", "reasoning_text": "text", "summary_text": "text"}
# The item field a streamed value builds, per item type.
_VALUE_KEY = {
    "function_call": "arguments",
    "custom_tool_call": "input",
    "code_interpreter_call": "code",
    "mcp_call": "arguments",
}
_TOOL_CALLS = frozenset({"function_call", "custom_tool_call"})
# incomplete_details.reason -> the finish_reason a chat handler knows.
_FINISH_REASONS = {"max_output_tokens": "length", "max_tokens": "length", "content_filter": "content_filter"}
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _Part:
    """One content or summary part of an item."""

    __slots__ = ("buffer", "closed", "data", "done_data", "extra_annotations", "final", "kind", "logprobs")

    def __init__(self, data: Dict[str, Any], kind: str) -> None:
        self.data = data  # the part as announced (content_part.added) or implied
        self.kind = kind
        self.buffer = TextBuffer()
        self.final: Optional[str] = None  # the text of the *.done event
        self.done_data: Optional[Dict[str, Any]] = None  # the part of content_part.done
        self.extra_annotations: List[Any] = []
        self.logprobs: List[Any] = []
        self.closed = False  # its high-level *.done event was emitted

    def text(self) -> str:
        if self.done_data is not None:
            value = self.done_data.get(_TEXT_KEY.get(self.kind, "text"))
            if isinstance(value, str):
                return value
        return self.final if self.final is not None else self.buffer.text()

    def to_dict(self) -> Dict[str, Any]:
        if self.done_data is not None:
            return dict(self.done_data)
        part = dict(self.data)
        part[_TEXT_KEY.get(self.kind, "text")] = self.text()
        if self.kind == "output_text":
            announced = part.get("annotations")
            part["annotations"] = (list(announced) if isinstance(announced, list) else []) + list(
                self.extra_annotations
            )
            announced = part.get("logprobs")
            part["logprobs"] = (list(announced) if isinstance(announced, list) else []) + self.logprobs
        return part


class _Item:
    """One output item, as built from its events."""

    __slots__ = (
        "announced",
        "buffer",
        "data",
        "done_data",
        "done_event",
        "final",
        "id",
        "implicit",
        "in_final",
        "kind",
        "newest_part",
        "parts",
        "parts_by_index",
        "status",
        "summary",
        "summary_by_index",
        "tool_closed",
        "tool_index",
    )

    def __init__(self, data: Dict[str, Any]) -> None:
        self.data = data
        self.id: Optional[str] = data.get("id")
        self.kind: str = data.get("type") or ""
        self.parts: List[_Part] = []
        self.parts_by_index: Dict[int, _Part] = {}
        self.summary: List[_Part] = []
        self.summary_by_index: Dict[int, _Part] = {}
        self.newest_part: Dict[str, _Part] = {}
        self.buffer = TextBuffer()  # arguments / input / code
        self.final: Optional[str] = None  # from its *.done event
        self.done_data: Optional[Dict[str, Any]] = None  # from response.output_item.done
        self.status: Optional[str] = None  # from hosted tool progress events
        self.tool_index: Optional[int] = None  # position among the response's tool calls
        self.tool_closed = False
        self.announced = False  # a tool_call.delta named this call
        self.implicit = False  # created by an event that named it before it was announced
        self.in_final = False  # listed in the terminal snapshot's output
        # A function call's tool_call.done event, which decodes (or validates) the arguments once
        # for the response's parsed_arguments too.
        self.done_event: Optional[ToolCallDoneEvent] = None

    def value(self) -> str:
        if self.done_data is not None:
            value = self.done_data.get(_VALUE_KEY.get(self.kind, ""))
            if isinstance(value, str):
                return value
        return self.final if self.final is not None else self.buffer.text()

    def to_dict(self) -> Dict[str, Any]:
        if self.done_data is not None:
            return _plain(self.done_data)  # type: ignore[no-any-return]
        item = _plain(self.data)
        if self.parts or self.kind == "message":
            item["content"] = [part.to_dict() for part in self.parts]
        if self.summary:
            item["summary"] = [part.to_dict() for part in self.summary]
        key = _VALUE_KEY.get(self.kind)
        if key is not None and (self.buffer.length or self.final is not None or key not in item):
            item[key] = self.value()
        if self.status is not None:
            item["status"] = self.status
        return item  # type: ignore[no-any-return]


_Handler = Callable[["ResponseAccumulator", Dict[str, Any], List[Any]], None]


class ResponseAccumulator:
    """Turns the events of one streamed response into typed events and a :class:`Response`.

    Feed each decoded ``data:`` payload with :meth:`feed`; it returns the
    server's event as a typed object, then the high-level events derived from
    it (``content.delta``, ``tool_call.done``, ...). When the body ends,
    :meth:`end` returns the ``*.done`` events still owed and the
    ``completion`` event. :meth:`response` gives the response so far at any
    time; it is built when called, so reading it often costs what the
    response weighs, while feeding costs the same per event however long the
    stream is.

    A ``response.failed`` or ``error`` event comes back as an
    :class:`~openai_stream.engine._events.ErrorEvent` at the end of the list; a
    payload that cannot be understood raises
    :class:`~openai_stream.errors.InvalidStreamDataError` whose ``events``
    are the ones it produced before it failed. Either way ``error.completion``
    holds the response built so far.

    Give the request's ``text`` parameter: when its ``format`` asks for JSON
    (``json_schema`` or ``json_object``), ``content.done`` events and the
    response carry ``parsed``. ``parse`` (a pydantic model's
    :class:`~openai_stream._pydantic.ModelParser`) validates the output text
    instead: ``content.done`` carries the instance, the response's ``parsed``
    is the instance once the stream completed, and an answer that does not fit
    ends the stream with :class:`~openai_stream.StructuredOutputError` in
    place of ``completion``. ``tool_parsers`` maps tool names to the parsers
    of their pydantic models (``parsed_arguments`` is then an instance), and
    ``strict_tools`` names the other function tools declared strict: as
    openai-python's ``ParsedResponseFunctionToolCall``, the response's
    ``function_call`` items then carry ``parsed_arguments`` (see
    :mod:`openai_stream.engine._arguments`).
    ``starting_after`` is the ``sequence_number`` a resumed stream starts
    after: events up to it count as already seen.

    Threads: it takes no lock of its own. The stream engine holds one lock
    around every :meth:`feed`, :meth:`end` and :meth:`snapshot`, which is what
    makes reading the response from another thread mid-stream safe.

    :attr:`finished`, :meth:`snapshot`, :meth:`feed`, :meth:`end` and
    :meth:`error_from_payload` are the accumulator protocol of
    :class:`~openai_stream.engine._stream.BaseStream`.
    """

    def __init__(
        self,
        *,
        text: Optional[Mapping[str, Any]] = None,
        parse: Optional[Callable[[str], Any]] = None,
        tool_parsers: Optional[Mapping[str, Callable[..., Any]]] = None,
        starting_after: Optional[int] = None,
        strict_tools: Iterable[str] = (),
    ) -> None:
        fmt = text.get("format") if isinstance(text, Mapping) else None
        self._structured = wants_json(fmt if isinstance(fmt, Mapping) else None) or parse is not None
        self._parse = parse
        self._tool_parsers = dict(tool_parsers or {})
        self._strict_tools = frozenset(strict_tools)
        # The last parse of an output text: (text, instance, error); the response's parse reuses
        # the content.done one when the output is that one part.
        self._parsed: Optional[Tuple[str, Any, Optional[StructuredOutputError]]] = None
        self._final_parsed: Optional[Tuple[Any, Optional[StructuredOutputError]]] = None
        self._items: List[_Item] = []
        self._by_id: Dict[str, _Item] = {}
        self._by_index: Dict[int, _Item] = {}
        self._newest: Dict[str, _Item] = {}  # newest item of each type
        self._tool_calls = 0
        self._response_id: Optional[str] = None
        self._snapshot: Optional[Dict[str, Any]] = None  # the latest response object the server sent
        self._terminal: Optional[str] = None  # the terminal event's type, once it arrived
        self._extra: Dict[str, Any] = {}
        self._last_sequence: Optional[int] = starting_after
        self._events = 0
        self._gaps = 0
        self._missed = 0
        self._repeats = 0
        self._done_sent = False
        self._ended = False

    # ------------------------------------------------------------------ protocol
    @property
    def chunk_count(self) -> int:
        """How many payloads have been fed (repeats included)."""
        return self._events

    @property
    def is_complete(self) -> bool:
        """True once ``response.completed`` or ``response.incomplete`` arrived.

        A body that ends before that was cut short (``response.failed`` ends
        the stream with an error instead).
        """
        return self._terminal in ("response.completed", "response.incomplete")

    @property
    def sequence_number(self) -> Optional[int]:
        """The highest ``sequence_number`` seen (what a resumed stream starts after), or ``None``."""
        return self._last_sequence

    @property
    def response_id(self) -> Optional[str]:
        """The response's ``id``, once the server sent it (what a resumed stream asks for), or ``None``."""
        return self._response_id

    @property
    def sequence_gaps(self) -> int:
        """How many times ``sequence_number`` jumped ahead (events were missed)."""
        return self._gaps

    @property
    def missed_events(self) -> int:
        """How many sequence numbers the gaps skipped in all."""
        return self._missed

    @property
    def repeated_events(self) -> int:
        """How many events were dropped because their ``sequence_number`` was not new."""
        return self._repeats

    def feed(self, payload: Mapping[str, Any], raw_events: bool = True) -> List[Any]:
        """Take one event payload (the JSON object of one ``data:`` line) and return its events.

        The first event is the server's own, under its type name, unless
        ``raw_events`` is false (the stream engine's way of saying that nobody
        listens to those names and nobody iterates).
        """
        if not isinstance(payload, dict):
            raise InvalidStreamDataError(
                f"expected a JSON object as a stream event, got {type(payload).__name__}: "
                f"{_quote(payload)}; the server is not speaking the Responses API",
                body=payload,
                completion=self.response(),
            )
        self._events += 1
        sequence = payload.get("sequence_number")
        if type(sequence) is int:
            last = self._last_sequence
            if last is not None and sequence <= last:
                self._repeats += 1
                return []
            if last is not None and sequence > last + 1:
                self._gaps += 1
                self._missed += sequence - last - 1
            self._last_sequence = sequence
        kind = payload.get("type")
        if kind == "response.output_text.delta":
            fast = self._text_delta_fast(payload, raw_events)
            if fast is not None:
                return fast
        events: List[Any] = []
        try:
            if type(kind) is not str:
                self._untyped(payload, events)
                return events
            handler = _HANDLERS.get(kind)
            if raw_events and kind != "error":
                events.append(server_event(payload))
            if handler is not None:
                handler(self, payload, events)
        except OpenAIError as exc:
            if isinstance(exc, InvalidStreamDataError) and not exc.events:
                exc.events = tuple(events)
            raise
        except (TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
            error = InvalidStreamDataError(
                f"could not understand a stream event ({type(exc).__name__}: {exc}): {_quote(payload)}",
                body=payload,
                completion=self.response(),
            )
            # State changes as fields are read, so the response may already hold part of this
            # event: its events travel with the error.
            error.events = tuple(events)
            raise error from exc
        return events

    def _text_delta_fast(self, payload: Dict[str, Any], raw_events: bool) -> Optional[List[Any]]:
        """The events of an output text fragment for a part already known, or None for the general path.

        The common event of every stream, so it is handled here when no rule but
        "append it" applies: its item and part are known by id and index (or, without
        an index, its part is the open one), no logprobs, a non-empty string.
        """
        # Every field is type-checked before it is looked up: an odd value (a list as an id) takes
        # the general path, which reports it as invalid data instead of a bare TypeError.
        item_id = payload.get("item_id")
        item = self._by_id.get(item_id) if type(item_id) is str else None
        delta = payload.get("delta")
        if item is None or type(delta) is not str or not delta or payload.get("logprobs"):
            return None
        output_index = payload.get("output_index")
        if output_index is not None and (type(output_index) is not int or output_index not in self._by_index):
            return None
        index = payload.get("content_index")
        if index is not None:
            if type(index) is not int:
                return None
            part = item.parts_by_index.get(index)
            if part is None:
                return None
        else:
            part = item.newest_part.get("output_text")
            if part is None or part.closed or part.done_data is not None:
                return None
        if part.kind != "output_text":
            return None
        buf = part.buffer
        event = ContentDeltaEvent(0, delta, buf, buf.append(delta))
        return [server_event(payload), event] if raw_events else [event]

    def end(self) -> List[Any]:
        """Close the stream: the ``*.done`` events still owed, ``done``, then ``completion``.

        Calling it again returns an empty list.
        """
        if self._ended:
            return []
        self._ended = True
        events: List[Any] = []
        for item in self._items:
            self._close_item(item, events)
        if not self._done_sent:
            self._done_sent = True
            events.append(DoneEvent(0, self._finish_reason()))
        if self._parse is not None:
            error = self._parse_response()
            if error is not None:
                # A model was asked for and the answer does not fit it: not a completed response.
                error.completion = self.response()
                events.append(ErrorEvent(error))
                return events
        events.append(ResponseCompletionEvent(self.response()))
        return events

    def _parse_text(self, text: str) -> Tuple[Any, Optional[StructuredOutputError]]:
        """Validate one output text with ``parse`` (once per text)."""
        cached = self._parsed
        if cached is not None and cached[0] == text:
            return cached[1], cached[2]
        assert self._parse is not None
        try:
            outcome: Tuple[Any, Optional[StructuredOutputError]] = (self._parse(text), None)
        except StructuredOutputError as exc:
            outcome = (None, exc)
        self._parsed = (text, *outcome)
        return outcome

    def _parse_response(self) -> Optional[StructuredOutputError]:
        """Validate the whole output text into the model; the error, if it does not fit."""
        output = self.response().to_dict()["output"]
        items = [item for item in output if isinstance(item, dict)]
        kinds = {
            part.get("type")
            for item in items
            if item.get("type") == "message"
            for part in item.get("content") or ()
            if isinstance(part, dict)
        }
        if "refusal" in kinds or any(item.get("type") in _TOOL_CALLS for item in items):
            # A refusal replaces the answer, tool calls come instead of one: nothing to validate.
            self._final_parsed = (None, None)
            return None
        if "output_text" not in kinds:
            self._final_parsed = (None, None)
            return StructuredOutputError(
                "the response has no output text to parse into the text_format model (status "
                f"{(self._snapshot or {}).get('status')!r}); an answer cut by max_output_tokens gives "
                "this: raise it",
                content="",
            )
        self._final_parsed = self._parse_text(output_text(output))
        return self._final_parsed[1]

    @property
    def finished(self) -> bool:
        """The stream engine's name for :attr:`is_complete`: a body may end here."""
        return self.is_complete

    def snapshot(self) -> Response:
        """The stream engine's name for :meth:`response`."""
        return self.response()

    def error_from_payload(self, payload: Mapping[str, Any]) -> APIError:
        """The typed error for an error payload received in the stream, with the response so far.

        Takes the Responses API's ``error`` event (``{"type": "error", "code", "message",
        "param"}``, or with the fields under ``error``), which arrives as an ``event: error``
        frame, as well as the usual ``{"error": {...}}`` shapes.
        """
        if payload.get("type") == "error" and not isinstance(payload.get("error"), Mapping):
            fields = {k: v for k, v in payload.items() if k not in ("type", "sequence_number")}
            payload = {"error": fields}
        return error_from_payload(payload, completion=self.response())

    def response(self) -> Response:
        """The response built so far, shaped like the non-streamed answer."""
        snapshot = self._snapshot
        data: Dict[str, Any] = _plain(snapshot) if snapshot is not None else {}
        data.setdefault("id", self._response_id or "")
        data.setdefault("object", "response")
        if data.get("status") is None:
            data["status"] = "in_progress"
        sent = data.get("output")
        if self._terminal is not None and isinstance(sent, list) and sent:
            data["output"] = sent + [item.to_dict() for item in list(self._items) if not item.in_final]
        else:
            data["output"] = [item.to_dict() for item in list(self._items)]
        for key, value in list(self._extra.items()):
            data.setdefault(key, value)
        if self._parse is not None:
            # The instance validated when the stream completed; None before, and when it did not fit.
            data["parsed"] = self._final_parsed[0] if self._final_parsed is not None else None
        elif self._structured:
            data["parsed"] = parsed_or_none(output_text(data["output"]))
        if self._tool_parsers or self._strict_tools:
            self._set_parsed_arguments(data["output"])
        return Response(data)

    def _set_parsed_arguments(self, output: List[Any]) -> None:
        """Each ``function_call`` item's ``parsed_arguments``: its done event's (parsed once) or None."""
        events: Dict[Any, ToolCallDoneEvent] = {}
        for item in self._items:
            if item.done_event is not None:
                events[item.id] = events[item.done_event.call_id] = item.done_event
        for entry in output:
            if not isinstance(entry, dict) or entry.get("type") != "function_call":
                continue
            name, arguments = entry.get("name"), entry.get("arguments")
            parse = call_arguments_parser(name if isinstance(name, str) else None, self._tool_parsers,
                                          self._strict_tools)
            event = events.get(entry.get("id")) or events.get(entry.get("call_id"))
            if parse is None or (event is None and entry.get("status") == "in_progress"):
                entry["parsed_arguments"] = None
            elif event is not None and event.arguments == arguments:
                entry["parsed_arguments"] = event_arguments_or_none(event)
            else:  # the terminal snapshot's arguments, when they differ from what the events built
                entry["parsed_arguments"] = arguments_or_none(
                    parse, arguments, name=name, call_id=entry.get("call_id")
                )

    completion = response
    """The same as :meth:`response` (the name the chat accumulator uses)."""

    # ------------------------------------------------------------------ lifecycle
    def _untyped(self, payload: Dict[str, Any], events: List[Any]) -> None:
        if payload.get("error") is not None or payload.get("object") == "error":
            events.append(ErrorEvent(self.error_from_payload(payload)))
            return
        hint = (
            "this looks like a Chat Completions chunk: stream it with client.chat.completions.stream()"
            if "choices" in payload
            else "the server is not speaking the Responses API"
        )
        raise InvalidStreamDataError(
            f"a stream event has no 'type': {_quote(payload)}; {hint}",
            body=payload,
            completion=self.response(),
        )

    def _take_snapshot(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        response = payload.get("response")
        if not isinstance(response, dict):
            raise TypeError("'response' is not an object")
        new_id = response.get("id")
        if new_id:
            if self._response_id is None:
                self._response_id = new_id
            elif new_id != self._response_id:
                raise InvalidStreamDataError(
                    f"the stream carries a second response ({new_id}) after {self._response_id}; "
                    "a Responses API stream holds one response. llama.cpp streams one response per "
                    "`n` in the same body: drop `n` and send one request per answer",
                    body=payload,
                    completion=self.response(),
                )
        self._snapshot = response
        return response

    def _on_progress(self, payload: Dict[str, Any], events: List[Any]) -> None:
        self._take_snapshot(payload)

    def _on_terminal(self, payload: Dict[str, Any], events: List[Any]) -> None:
        if self._terminal is not None:
            self._take_snapshot(payload)  # sent again (without sequence numbers): nothing new to emit
            return
        response = self._take_snapshot(payload)
        self._terminal = payload["type"]
        for key, value in payload.items():
            if key not in ("type", "response", "sequence_number"):
                self._extra[key] = value
        if payload["type"] == "response.failed":
            events.append(ErrorEvent(self._failure(response)))
            return
        # The snapshot's items are the final word: reconcile each with what the events built.
        output = response.get("output")
        if isinstance(output, list):
            for position, data in enumerate(output):
                if isinstance(data, dict):
                    item = self._find_item(data.get("id"), position, data.get("type") or "")
                    item.in_final = True
                    if item.done_data is None:
                        self._reconcile(item, data, events)
                    else:
                        _share_texts(item, data)
        for item in self._items:
            self._close_item(item, events)
        usage = response.get("usage")
        if isinstance(usage, dict):
            events.append(ResponseUsageEvent(ResponseUsage(usage)))
        self._done_sent = True
        events.append(DoneEvent(0, self._finish_reason()))

    def _failure(self, response: Dict[str, Any]) -> APIError:
        error = response.get("error")
        if isinstance(error, dict):
            return error_from_payload(
                {"error": error}, completion=self.response(), where="and failed the response"
            )
        return APIError(
            "the server reported response.failed without an error object; see error.completion "
            "for what was generated",
            body=response,
            completion=self.response(),
        )

    def _on_error(self, payload: Dict[str, Any], events: List[Any]) -> None:
        events.append(ErrorEvent(self.error_from_payload(payload)))

    def _finish_reason(self) -> Optional[str]:
        snapshot = self._snapshot or {}
        status = snapshot.get("status")
        if self._terminal == "response.incomplete" or status == "incomplete":
            details = snapshot.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            return _FINISH_REASONS.get(reason, reason) if isinstance(reason, str) else "length"
        if self._terminal == "response.completed":
            return "tool_calls" if self._tool_calls else "stop"
        return None

    # ------------------------------------------------------------------ items
    def _find_item(self, item_id: Any, index: Any, kind: str) -> _Item:
        """The item an event names (by id, else output index, else the newest of its kind), or a new one."""
        item: Optional[_Item] = None
        if item_id is not None:
            item = self._by_id.get(item_id)
        elif index is not None:
            item = self._by_index.get(index)
            if item is None and type(index) is int:
                item = _unindexed_at(self._items, self._by_index, index)
        elif kind:
            item = self._newest.get(kind)
        if item is None:
            data: Dict[str, Any] = {"type": kind} if item_id is None else {"id": item_id, "type": kind}
            item = self._add_item(data, index)
            item.implicit = True
        elif index is not None and index not in self._by_index:
            self._by_index[index] = item
        return item

    def _add_item(self, data: Dict[str, Any], index: Any) -> _Item:
        item = _Item(data)
        self._items.append(item)
        if item.id is not None:
            self._by_id[item.id] = item
        if type(index) is int:
            self._by_index[index] = item
        self._newest[item.kind] = item
        if item.kind in _TOOL_CALLS:
            item.tool_index = self._tool_calls
            self._tool_calls += 1
        return item

    def _on_item_added(self, payload: Dict[str, Any], events: List[Any]) -> None:
        data = payload["item"]
        if not isinstance(data, dict):
            raise TypeError("'item' is not an object")
        item_id = data.get("id")
        known = self._by_id.get(item_id) if item_id is not None else None
        if known is not None:
            if known.implicit:  # its events came first: the announcement fills in the rest
                known.implicit = False
                known.data = dict(data)
                if known.tool_index is not None and not known.announced:
                    self._announce_call(known, events)
            return  # otherwise announced twice: the first announcement stands
        item = self._add_item(data, payload.get("output_index"))
        if item.tool_index is not None:
            self._announce_call(item, events)

    def _on_item_done(self, payload: Dict[str, Any], events: List[Any]) -> None:
        data = payload["item"]
        if not isinstance(data, dict):
            raise TypeError("'item' is not an object")
        item = self._find_item(data.get("id"), payload.get("output_index"), data.get("type") or "")
        self._reconcile(item, data, events)

    def _reconcile(self, item: _Item, data: Dict[str, Any], events: List[Any]) -> None:
        """Take ``data`` as the item's final form; emit whatever its events did not yet say."""
        if item.kind == "" and data.get("type"):
            item.kind = data["type"]
        if item.tool_index is None and item.kind in _TOOL_CALLS:
            item.tool_index = self._tool_calls
            self._tool_calls += 1
        _share_texts(item, data)
        item.done_data = data
        if item.tool_index is not None and not item.announced:
            self._announce_call(item, events)
        for key, parts in (("content", item.parts), ("summary", item.summary)):
            final_parts = data.get(key)
            if not isinstance(final_parts, list):
                continue
            for position, part_data in enumerate(final_parts):
                if not isinstance(part_data, dict):
                    continue
                kind = part_data.get("type") or ""
                if position < len(parts) and parts[position].kind == kind:
                    part = parts[position]
                else:
                    part = self._add_part(item, {"type": kind}, kind, position, summary=key == "summary")
                if not part.closed:
                    part.done_data = part_data
                    self._catch_up(item, part, events)
        self._close_item(item, events)

    def _announce_call(self, item: _Item, events: List[Any]) -> None:
        item.announced = True
        self._call_delta(item, "", item.buffer.length, events)

    def _close_item(self, item: _Item, events: List[Any]) -> None:
        for part in item.summary:
            self._close_part(item, part, events)
        for part in item.parts:
            self._close_part(item, part, events)
        if item.tool_index is not None and not item.tool_closed:
            item.tool_closed = True
            value = item.value()
            if not item.buffer.length and value:
                self._tool_delta(item, value, events)  # the arguments arrived only whole
            call_id, name = _call_id(item), _name(item)
            if item.kind == "custom_tool_call":
                events.append(CustomToolCallDoneEvent(0, item.tool_index, call_id, name, value, "custom"))
            else:
                parse = self._tool_parsers.get(name or "") if self._tool_parsers else None
                index = item.tool_index
                if parse is not None:
                    done: ToolCallDoneEvent = ModelToolCallDoneEvent(
                        0, index, call_id, name, value, "function", parse
                    )
                else:
                    done = ToolCallDoneEvent(0, index, call_id, name, value)
                item.done_event = done
                events.append(done)

    # ------------------------------------------------------------------ parts
    def _add_part(self, item: _Item, data: Dict[str, Any], kind: str, index: Any, *, summary: bool) -> _Part:
        part = _Part(data, kind)
        if summary:
            item.summary.append(part)
            if type(index) is int:
                item.summary_by_index[index] = part
        else:
            item.parts.append(part)
            if type(index) is int:
                item.parts_by_index[index] = part
        item.newest_part[kind] = part
        return part

    def _find_part(
        self, item: _Item, payload: Dict[str, Any], kind: str, *, summary: bool = False, ending: bool = False
    ) -> _Part:
        """The part an event names (by index, else the newest of its type), or a new one.

        Without an index, new text after a finished part starts a new part;
        an event that ends a part (``ending``) finishes the newest one.
        """
        index = payload.get("summary_index" if summary else "content_index")
        if index is not None:
            by_index = item.summary_by_index if summary else item.parts_by_index
            part = by_index.get(index)
            if part is None and type(index) is int:
                part = _unindexed_at(item.summary if summary else item.parts, by_index, index)
        else:
            part = item.newest_part.get(kind)
            if part is not None and not ending and (part.closed or part.done_data is not None):
                part = None
        if part is None:
            part = self._add_part(item, {"type": kind}, kind, index, summary=summary)
        return part

    def _on_part_added(self, payload: Dict[str, Any], events: List[Any]) -> None:
        summary = payload["type"] == "response.reasoning_summary_part.added"
        data = payload["part"]
        if not isinstance(data, dict):
            raise TypeError("'part' is not an object")
        kind = data.get("type") or ("summary_text" if summary else "output_text")
        item = self._find_item(
            payload.get("item_id"), payload.get("output_index"), "reasoning" if summary else "message"
        )
        index = payload.get("summary_index" if summary else "content_index")
        by_index = item.summary_by_index if summary else item.parts_by_index
        if index is not None and index in by_index:
            return  # announced twice
        self._add_part(item, dict(data), kind, index, summary=summary)

    def _on_part_done(self, payload: Dict[str, Any], events: List[Any]) -> None:
        summary = payload["type"] == "response.reasoning_summary_part.done"
        data = payload["part"]
        if not isinstance(data, dict):
            raise TypeError("'part' is not an object")
        kind = data.get("type") or ("summary_text" if summary else "output_text")
        item = self._find_item(
            payload.get("item_id"), payload.get("output_index"), "reasoning" if summary else "message"
        )
        part = self._find_part(item, payload, kind, summary=summary, ending=True)
        if not part.closed:
            _share_text(part, data)
            part.done_data = data
            self._catch_up(item, part, events)
            self._close_part(item, part, events)

    def _text_delta(self, payload: Dict[str, Any], events: List[Any], item_kind: str, part_kind: str) -> None:
        delta = payload["delta"]
        if type(delta) is not str:
            raise TypeError(f"'delta' is not a string: {delta!r:.80}")
        item = self._find_item(payload.get("item_id"), payload.get("output_index"), item_kind)
        part = self._find_part(item, payload, part_kind, summary=part_kind == "summary_text")
        logprobs = payload.get("logprobs")
        if logprobs:
            part.logprobs.extend(logprobs)
        if delta:
            self._emit_delta(part, delta, events)

    def _emit_delta(self, part: _Part, delta: str, events: List[Any]) -> None:
        buf = part.buffer
        end = buf.append(delta)
        kind = part.kind
        if kind == "output_text":
            events.append(ContentDeltaEvent(0, delta, buf, end))
        elif kind == "refusal":
            events.append(RefusalDeltaEvent(0, delta, buf, end))
        elif kind == "reasoning_text":
            events.append(ResponseReasoningDeltaEvent(0, delta, buf, end, "reasoning_text"))
        elif kind == "summary_text":
            events.append(ResponseReasoningDeltaEvent(0, delta, buf, end, "reasoning_summary_text"))

    def _text_done(
        self, payload: Dict[str, Any], events: List[Any], item_kind: str, part_kind: str, key: str
    ) -> None:
        text = payload[key]
        if type(text) is not str:
            raise TypeError(f"{key!r} is not a string: {text!r:.80}")
        item = self._find_item(payload.get("item_id"), payload.get("output_index"), item_kind)
        part = self._find_part(item, payload, part_kind, summary=part_kind == "summary_text", ending=True)
        if not part.closed:
            part.final = text
            self._catch_up(item, part, events)
            self._close_part(item, part, events)

    def _catch_up(self, item: _Item, part: _Part, events: List[Any]) -> None:
        """A part whose final text arrived without its deltas gets one delta with the whole text."""
        if not part.buffer.length:
            text = part.text()
            if text:
                self._emit_delta(part, text, events)

    def _close_part(self, item: _Item, part: _Part, events: List[Any]) -> None:
        if part.closed:
            return
        part.closed = True
        whole = part.done_data.get(_TEXT_KEY.get(part.kind, "text")) if part.done_data else part.final
        if isinstance(whole, str) and part.buffer.length:
            part.buffer.settle(whole)  # the deltas' text and the final one, kept once when equal
        kind = part.kind
        if kind == "output_text":
            if self._parse is not None:
                text = part.text()
                events.append(ParsedContentDoneEvent(0, text, *self._parse_text(text)))
            else:
                done = StructuredContentDoneEvent if self._structured else ContentDoneEvent
                events.append(done(0, part.text()))
        elif kind == "refusal":
            events.append(RefusalDoneEvent(0, part.text()))
        elif kind == "reasoning_text":
            events.append(ResponseReasoningDoneEvent(0, part.text(), "reasoning_text"))
        elif kind == "summary_text":
            events.append(ResponseReasoningDoneEvent(0, part.text(), "reasoning_summary_text"))

    def _on_annotation(self, payload: Dict[str, Any], events: List[Any]) -> None:
        item = self._find_item(payload.get("item_id"), payload.get("output_index"), "message")
        part = self._find_part(item, payload, "output_text")
        part.extra_annotations.append(payload.get("annotation"))

    # ------------------------------------------------------------------ tool calls and other values
    def _value_delta(self, payload: Dict[str, Any], events: List[Any], item_kind: str) -> None:
        delta = payload["delta"]
        if type(delta) is not str:
            delta = json.dumps(delta)  # some servers send already-parsed values; keep them as JSON text
        item = self._find_item(payload.get("item_id"), payload.get("output_index"), item_kind)
        if item.tool_index is not None:
            if delta and item.tool_closed:
                # As in a chat stream: a fragment for a call already reported done is never
                # appended (a tool may have run with the arguments as they were): the stream fails.
                raise InvalidStreamDataError(
                    f"a fragment of tool call {_name(item)!r} (id {_call_id(item)}) arrived after the "
                    f"call was done: {_quote(payload)}; the server broke the Responses protocol and "
                    "this call cannot be trusted: retry the request",
                    body=payload,
                    completion=self.response(),
                )
            if delta:
                self._tool_delta(item, delta, events)
        elif delta:
            item.buffer.append(delta)

    def _tool_delta(self, item: _Item, delta: str, events: List[Any]) -> None:
        item.announced = True
        buf = item.buffer
        end = buf.append(delta)
        self._call_delta(item, delta, end, events)

    def _call_delta(self, item: _Item, delta: str, end: int, events: List[Any]) -> None:
        index, call_id, name, buf = item.tool_index or 0, _call_id(item), _name(item), item.buffer
        if item.kind == "custom_tool_call":
            events.append(CustomToolCallDeltaEvent(0, index, call_id, name, delta, buf, end, "custom"))
        else:
            events.append(ToolCallDeltaEvent(0, index, call_id, name, delta, buf, end))

    def _value_done(self, payload: Dict[str, Any], events: List[Any], item_kind: str, key: str) -> None:
        value = payload[key]
        if type(value) is not str:
            value = json.dumps(value)
        item = self._find_item(payload.get("item_id"), payload.get("output_index"), item_kind)
        item.final = value
        if item.tool_index is not None and not item.tool_closed:
            self._close_item(item, events)

    def _on_progress_status(self, payload: Dict[str, Any], events: List[Any]) -> None:
        """A hosted tool's progress event (``response.web_search_call.searching``, ...) sets its status."""
        family, _, status = payload["type"][len("response.") :].rpartition(".")
        item = self._find_item(payload.get("item_id"), payload.get("output_index"), family)
        if item.done_data is None:
            item.status = status


def _share_text(part: _Part, data: Dict[str, Any]) -> None:
    """Point ``data``'s text at the equal string the part already holds, so it is kept once.

    A finished text arrives up to four times (``*.done``, the part's and the
    item's ``.done``, ``response.completed``); each payload decodes its own copy.
    """
    key = _TEXT_KEY.get(part.kind, "text")
    value = data.get(key)
    held = part.done_data.get(key) if part.done_data is not None else part.final
    if isinstance(value, str) and isinstance(held, str) and value is not held and value == held:
        data[key] = held


def _share_texts(item: _Item, data: Dict[str, Any]) -> None:
    """:func:`_share_text` for each part of an item's final form that the item already holds."""
    for key, parts in (("content", item.parts), ("summary", item.summary)):
        final_parts = data.get(key)
        if not isinstance(final_parts, list):
            continue
        for part, part_data in zip(parts, final_parts):
            if isinstance(part_data, dict) and part_data.get("type") == part.kind:
                _share_text(part, part_data)


def _unindexed_at(entries: List[Any], by_index: Dict[int, Any], index: int) -> Any:
    """The entry at ``index`` in arrival order, if it was announced without an index (then it takes it)."""
    if 0 <= index < len(entries):
        entry = entries[index]
        if entry not in by_index.values():
            by_index[index] = entry
            return entry
    return None


def _call_id(item: _Item) -> Optional[str]:
    data = item.done_data or item.data
    value = data.get("call_id") or item.data.get("call_id")
    return value if isinstance(value, str) else None


def _name(item: _Item) -> Optional[str]:
    data = item.done_data or item.data
    value = data.get("name") or item.data.get("name")
    return value if isinstance(value, str) else None


def _quote(value: Any, limit: int = 200) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _text_delta(item_kind: str, part_kind: str) -> _Handler:
    return lambda self, payload, events: self._text_delta(payload, events, item_kind, part_kind)


def _text_done(item_kind: str, part_kind: str, key: str) -> _Handler:
    return lambda self, payload, events: self._text_done(payload, events, item_kind, part_kind, key)


def _value_delta(item_kind: str) -> _Handler:
    return lambda self, payload, events: self._value_delta(payload, events, item_kind)


def _value_done(item_kind: str, key: str) -> _Handler:
    return lambda self, payload, events: self._value_done(payload, events, item_kind, key)


_HANDLERS: Dict[str, _Handler] = {
    "response.created": ResponseAccumulator._on_progress,
    "response.queued": ResponseAccumulator._on_progress,
    "response.in_progress": ResponseAccumulator._on_progress,
    "response.completed": ResponseAccumulator._on_terminal,
    "response.incomplete": ResponseAccumulator._on_terminal,
    "response.failed": ResponseAccumulator._on_terminal,
    "error": ResponseAccumulator._on_error,
    "response.output_item.added": ResponseAccumulator._on_item_added,
    "response.output_item.done": ResponseAccumulator._on_item_done,
    "response.content_part.added": ResponseAccumulator._on_part_added,
    "response.content_part.done": ResponseAccumulator._on_part_done,
    "response.reasoning_summary_part.added": ResponseAccumulator._on_part_added,
    "response.reasoning_summary_part.done": ResponseAccumulator._on_part_done,
    "response.output_text.delta": _text_delta("message", "output_text"),
    "response.output_text.done": _text_done("message", "output_text", "text"),
    "response.refusal.delta": _text_delta("message", "refusal"),
    "response.refusal.done": _text_done("message", "refusal", "refusal"),
    "response.reasoning_text.delta": _text_delta("reasoning", "reasoning_text"),
    "response.reasoning_text.done": _text_done("reasoning", "reasoning_text", "text"),
    "response.reasoning_summary_text.delta": _text_delta("reasoning", "summary_text"),
    "response.reasoning_summary_text.done": _text_done("reasoning", "summary_text", "text"),
    "response.output_text.annotation.added": ResponseAccumulator._on_annotation,
    "response.function_call_arguments.delta": _value_delta("function_call"),
    "response.function_call_arguments.done": _value_done("function_call", "arguments"),
    "response.custom_tool_call_input.delta": _value_delta("custom_tool_call"),
    "response.custom_tool_call_input.done": _value_done("custom_tool_call", "input"),
    "response.code_interpreter_call_code.delta": _value_delta("code_interpreter_call"),
    "response.code_interpreter_call_code.done": _value_done("code_interpreter_call", "code"),
    "response.mcp_call_arguments.delta": _value_delta("mcp_call"),
    "response.mcp_call_arguments.done": _value_done("mcp_call", "arguments"),
}
# Hosted tools report progress by event; their items' status follows it (until output_item.done).
for _family, _statuses in (
    ("web_search_call", ("in_progress", "searching", "completed")),
    ("file_search_call", ("in_progress", "searching", "completed")),
    ("code_interpreter_call", ("in_progress", "interpreting", "completed")),
    ("image_generation_call", ("in_progress", "generating", "completed")),
    ("mcp_call", ("in_progress", "completed", "failed")),
):
    for _status in _statuses:
        _HANDLERS[f"response.{_family}.{_status}"] = ResponseAccumulator._on_progress_status
