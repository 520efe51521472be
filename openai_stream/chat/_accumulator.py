"""The sans-I/O core: chunk dicts in, events out, the completion assembled on the way.

:class:`ChatCompletionAccumulator` knows nothing of sockets, threads or
emitters, so it can be driven by any transport and tested chunk by chunk.
The merging rules come from real streams of many providers; each rule is
stated where it is applied.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from ..engine._arguments import call_arguments_parser, event_arguments_or_none
from ..engine._events import (
    ChunkEvent,
    CompletionEvent,
    ContentDeltaEvent,
    ContentDoneEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    ModelToolCallDoneEvent,
    ParsedContentDoneEvent,
    ReasoningDeltaEvent,
    ReasoningDoneEvent,
    RefusalDeltaEvent,
    RefusalDoneEvent,
    StructuredContentDoneEvent,
    TextBuffer,
    ToolCallDeltaEvent,
    ToolCallDoneEvent,
    UsageEvent,
    _set_values,
)
from ..engine._parsing import parsed_or_none, wants_json
from ..errors import InvalidStreamDataError, OpenAIError, StructuredOutputError, error_from_payload
from ._completion import ChatCompletion, Usage

__all__ = ["ChatCompletionAccumulator"]

# The fast path builds its events as object.__new__ plus the values their __init__ would set,
# without the class call and its Python frame (about a fifth of building one; most chunks take it).
# tests/chat/test_fast_path_events.py checks they equal the events the classes build.
_new_event = object.__new__

_CHUNK_KEYS = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "choices", "usage", "error"}
)
_CHOICE_KEYS = frozenset({"index", "delta", "finish_reason", "logprobs", "message"})
_DELTA_KEYS = frozenset(
    {"role", "content", "refusal", "reasoning_content", "reasoning", "tool_calls"}
)
_TOOL_KEYS = frozenset({"index", "id", "type", "function"})
_FUNCTION_KEYS = frozenset({"name", "arguments"})
_CUSTOM_KEYS = frozenset({"name", "input"})
# Lists that arrive as fragments and are appended. Any other unknown delta field: a string
# is a fragment of text, concatenated as OpenAI's own SDKs do; anything else is a whole value
# that providers repeat, so the last non-null one wins.
_APPENDED = frozenset({"annotations", "reasoning_details"})
# Unknown delta strings that are labels repeated whole in every chunk, not text: the last value
# wins. "index" and "type" as OpenAI's own SDK treats them; "channel" is Groq's (gpt-oss).
_LABELS = frozenset({"channel", "index", "type"})
# Fields of delta.audio whose fragments are joined; its other fields (id, expires_at) keep their last value.
_AUDIO_TEXT = frozenset({"data", "transcript"})
# Chunk fields that are not part of the answer: OpenAI's per-chunk padding (include_obfuscation).
_DROPPED = frozenset({"obfuscation"})
_THINKING_KEYS = frozenset({"type", "thinking", "signature"})


class _ToolCall:
    __slots__ = (
        "arguments", "done", "done_event", "extra", "function_extra", "id", "kind", "name", "position", "type"
    )

    def __init__(self, position: int) -> None:
        self.position = position
        self.id: Optional[str] = None
        self.type: Optional[str] = None
        self.name: Optional[str] = None
        # A function call's arguments, or a custom (freeform) call's input.
        self.arguments = TextBuffer()
        self.extra: Dict[str, Any] = {}
        self.function_extra: Dict[str, Any] = {}
        self.kind = "function"  # or "custom": the call's fields live under "custom", not "function"
        self.done = False
        # Its tool_call.done event, which decodes (or validates) the arguments once for the message too.
        self.done_event: Optional[ToolCallDoneEvent] = None

    def to_dict(self) -> Dict[str, Any]:
        if self.kind == "custom":
            custom: Dict[str, Any] = {"name": self.name, "input": self.arguments.text()}
            custom.update(self.function_extra)
            call: Dict[str, Any] = {"id": self.id, "type": self.type or "custom", "custom": custom}
        else:
            function: Dict[str, Any] = {"name": self.name, "arguments": self.arguments.text()}
            function.update(self.function_extra)
            call = {"id": self.id, "type": self.type or "function", "function": function}
        call.update(self.extra)
        return call


class _Choice:
    __slots__ = (
        "calls",
        "calls_by_id",
        "calls_by_index",
        "choice_extra",
        "content",
        "finish_reason",
        "finished",
        "function_call",
        "index",
        "logprobs",
        "message_extra",
        "reasoning",
        "reasoning_key",
        "refusal",
        "role",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.role: Optional[str] = None
        self.content: Optional[TextBuffer] = None
        self.refusal: Optional[TextBuffer] = None
        self.reasoning: Optional[TextBuffer] = None
        self.reasoning_key = "reasoning_content"
        self.calls: List[_ToolCall] = []
        self.calls_by_index: Dict[Any, _ToolCall] = {}
        self.calls_by_id: Dict[str, _ToolCall] = {}
        self.function_call: Optional[Dict[str, Any]] = None
        self.finish_reason: Optional[str] = None
        self.finished = False
        self.logprobs: Optional[Dict[str, Any]] = None
        self.message_extra: Dict[str, Any] = {}
        self.choice_extra: Dict[str, Any] = {}

    def to_dict(self) -> Dict[str, Any]:
        message: Dict[str, Any] = {
            "role": self.role or "assistant",
            "content": self.content.text() if self.content is not None else None,
        }
        if self.refusal is not None:
            message["refusal"] = self.refusal.text()
        if self.reasoning is not None:
            message[self.reasoning_key] = self.reasoning.text()
        if self.calls:
            message["tool_calls"] = [call.to_dict() for call in self.calls]
        if self.function_call is not None:
            message["function_call"] = dict(self.function_call)
        for key, value in self.message_extra.items():
            message[key] = _plain_extra(value)
        choice: Dict[str, Any] = {
            "index": self.index,
            "message": message,
            "finish_reason": self.finish_reason,
            "logprobs": _copy_logprobs(self.logprobs),
        }
        choice.update(self.choice_extra)
        return choice


def _copy_logprobs(logprobs: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if logprobs is None:
        return None
    return {k: list(v) if isinstance(v, list) else v for k, v in logprobs.items()}


class ChatCompletionAccumulator:
    """Turns the chunks of one streamed chat completion into events and a completion.

    Feed each decoded ``data:`` payload with :meth:`feed`; it returns the events
    derived from that chunk, starting with a ``chunk`` event. When the stream
    ends, :meth:`end` returns the remaining ``*.done`` events and the
    ``completion`` event. :meth:`completion` gives the completion so far at any
    time.

    An error that the server sent inside the stream comes back as an
    :class:`~openai_stream.ErrorEvent` at the end of the list; a chunk
    that cannot be understood raises :class:`~openai_stream.errors.InvalidStreamDataError`
    whose ``events`` are the ones that chunk produced before it failed.
    Either way ``error.completion`` holds everything received before it.

    Give the request's ``response_format``: when it asks for JSON
    (``json_schema`` or ``json_object``), ``content.done`` events and the final
    message carry ``parsed``, the content decoded as JSON.

    ``parse`` (a pydantic model's :class:`~openai_stream._pydantic.ModelParser`)
    validates each choice's content once, when the choice finishes:
    ``parsed`` is then the model instance, and a content that does not fit
    ends the stream with :class:`~openai_stream.StructuredOutputError` (an
    error event in place of ``completion``). ``tool_parsers`` maps tool names
    to the parsers of their arguments (``pydantic_function_tool``), and
    ``strict_tools`` names the other function tools declared strict: as
    openai-python's ``ParsedFunctionToolCall``, the final message's function
    calls then carry ``function.parsed_arguments`` (the model instance for a
    pydantic tool, the decoded JSON for a strict one, else ``None``; ``None``
    too when the arguments do not fit, which reading ``tool_call.done``'s
    ``parsed_arguments`` raises). See :mod:`openai_stream.engine._arguments`.
    """

    def __init__(
        self,
        *,
        response_format: Optional[Mapping[str, Any]] = None,
        parse: Optional[Callable[[str], Any]] = None,
        tool_parsers: Optional[Mapping[str, Callable[..., Any]]] = None,
        strict_tools: Iterable[str] = (),
    ) -> None:
        self._structured = wants_json(response_format) or parse is not None
        self._parse = parse
        self._tool_parsers = dict(tool_parsers or {})
        self._strict_tools = frozenset(strict_tools)
        # choice index -> (instance, error) of the parse, once the choice finished
        self._parsed: Dict[int, Tuple[Any, Optional[StructuredOutputError]]] = {}
        self._id: Optional[str] = None
        self._model: Optional[str] = None
        self._created: Optional[int] = None
        self._fingerprint: Optional[str] = None
        self._settled = False  # id, model and created are known: the fast path may skip them
        self._usage: Optional[Dict[str, Any]] = None
        self._extra: Dict[str, Any] = {}
        self._choices: Dict[int, _Choice] = {}
        self._chunks = 0
        self._ended = False

    @property
    def chunk_count(self) -> int:
        """How many chunks have been fed."""
        return self._chunks

    @property
    def all_choices_finished(self) -> bool:
        """True when at least one choice arrived and every choice has a finish reason."""
        return bool(self._choices) and all(c.finished for c in self._choices.values())

    finished = all_choices_finished
    """The stream engine's name for :attr:`all_choices_finished`: a body may end here without [DONE]."""

    def feed(self, chunk: Mapping[str, Any], raw_events: bool = True) -> List[Event]:
        """Take one chunk (the JSON object of one ``data:`` line) and return its events.

        The first event is the ``chunk`` event, unless ``raw_events`` is false
        (the stream engine's way of saying that nobody listens to it).
        """
        # The common chunks, most of every stream: one choice whose delta is one more fragment of
        # content, or of the arguments of a tool call, that it already has; nothing else. Each
        # rule the general path below would apply is checked not to apply here.
        choices = chunk.get("choices") if type(chunk) is dict else None
        if type(choices) is list and len(choices) == 1:
            choice = choices[0]
            delta = choice.get("delta") if type(choice) is dict else None
            if (
                type(delta) is dict
                and len(delta) == 1
                and self._settled
                and "x_groq" not in chunk  # other fields only go to _extra (below), as in _feed
                and choice.get("finish_reason") is None
                and not choice.get("logprobs")
                and chunk.get("usage") is None
                and chunk.get("error") is None
                and chunk.get("object") != "error"
                and (self._fingerprint is not None or not chunk.get("system_fingerprint"))
            ):
                index = choice.get("index", 0)
                state = self._choices.get(index) if type(index) is int else None
                if state is not None and not state.finished:
                    event = _fast_delta(state, delta)
                    if event is not None:
                        self._chunks += 1
                        if not _CHUNK_KEYS.issuperset(chunk):  # OpenAI's service_tier, obfuscation...
                            self._keep_extra(chunk)
                        if not _CHOICE_KEYS.issuperset(choice):  # Azure's content_filter_results...
                            _keep_choice_extra(state, choice)
                        # (no typing.cast here: it costs a call and a subscript per chunk)
                        if not raw_events:
                            return [event]
                        raw = _new_event(ChunkEvent)
                        _set_values(raw, (chunk,))
                        return [raw, event]
        if not isinstance(chunk, dict):
            raise InvalidStreamDataError(
                f"expected a JSON object as a stream chunk, got {type(chunk).__name__}: "
                f"{_quote(chunk)}; the server is not speaking the Chat Completions protocol",
                body=chunk,
                completion=self.completion(),
            )
        self._chunks += 1
        events: List[Event] = [ChunkEvent(chunk)] if raw_events else []
        try:
            self._feed(chunk, events)
        except OpenAIError:
            raise
        except _ProtocolViolation as exc:
            error = InvalidStreamDataError(
                f"{exc} (chunk {self._chunks}: {_quote(chunk)}); the completion so far is attached "
                "as error.completion",
                body=chunk,
                completion=self.completion(),
            )
            error.events = tuple(events)
            raise error from None
        except (TypeError, AttributeError, ValueError, KeyError) as exc:
            error = InvalidStreamDataError(
                f"could not understand a stream chunk ({type(exc).__name__}: {exc}): {_quote(chunk)}",
                body=chunk,
                completion=self.completion(),
            )
            # State changes as fields are read, so the completion may already hold part of this
            # chunk: its events travel with the error (this costs nothing on chunks that succeed).
            error.events = tuple(events)
            raise error from exc
        return events

    def _feed(self, chunk: Dict[str, Any], events: List[Event]) -> None:
        if self._id is None or self._model is None or self._created is None:
            self._take_identity(chunk)
        if self._fingerprint is None:
            fingerprint = chunk.get("system_fingerprint")
            if fingerprint:
                self._fingerprint = fingerprint
        if not _CHUNK_KEYS.issuperset(chunk):
            self._keep_extra(chunk)
        choices = chunk.get("choices")
        if choices is not None:
            if not isinstance(choices, list):
                raise TypeError("'choices' is not a list")
            for choice in choices:
                self._feed_choice(choice, events)
        usage = chunk.get("usage")
        if usage is not None:
            if not isinstance(usage, dict):
                raise TypeError("'usage' is not an object")
            self._usage = usage
            events.append(UsageEvent(Usage(usage)))
        elif self._usage is None and "x_groq" in chunk:
            # Groq's compound models report usage only under x_groq.
            x_groq = chunk["x_groq"]
            usage = x_groq.get("usage") if isinstance(x_groq, dict) else None
            if isinstance(usage, dict):
                self._usage = usage
                events.append(UsageEvent(Usage(usage)))
        if chunk.get("error") is not None or chunk.get("object") == "error":
            events.append(ErrorEvent(self.error_from_payload(chunk)))

    def _keep_extra(self, chunk: Mapping[str, Any]) -> None:
        """Keep the chunk's unknown fields (the last value of each) for the completion."""
        for key, value in chunk.items():
            if key not in _CHUNK_KEYS and value is not None and key not in _DROPPED:
                self._extra[key] = value

    def error_from_payload(self, payload: Mapping[str, Any]) -> OpenAIError:
        """The typed error for an error payload received in the stream, with the completion so far."""
        return error_from_payload(payload, completion=self.completion())

    def _take_identity(self, chunk: Dict[str, Any]) -> None:
        if self._id is None and chunk.get("id"):
            self._id = chunk["id"]
        if self._model is None and chunk.get("model"):
            self._model = chunk["model"]
        if self._created is None and chunk.get("created"):
            self._created = chunk["created"]
        self._settled = self._id is not None and self._model is not None and self._created is not None

    def _feed_choice(self, choice: Dict[str, Any], events: List[Event]) -> None:
        index = choice.get("index", 0)
        if type(index) is not int:
            raise TypeError(f"choice index {index!r} is not an integer")
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice(index)
        # A whole non-streamed answer carries "message" where a chunk carries "delta".
        delta = choice.get("delta") or choice.get("message")
        if delta:
            self._feed_delta(state, delta, events)
        if not _CHOICE_KEYS.issuperset(choice):
            _keep_choice_extra(state, choice)
        logprobs = choice.get("logprobs")
        if logprobs:
            self._feed_logprobs(state, logprobs)
        finish_reason = choice.get("finish_reason")
        if finish_reason and not state.finished:
            state.finish_reason = finish_reason
            self._finish(state, events)

    def _feed_delta(self, state: _Choice, delta: Dict[str, Any], events: List[Event]) -> None:
        index = state.index
        content = delta.get("content")
        if type(content) is str:
            if content:
                buf = state.content
                if buf is None:
                    buf = state.content = TextBuffer()
                events.append(ContentDeltaEvent(index, content, buf, buf.append(content)))
            elif state.content is None:
                state.content = TextBuffer()  # "" sent: the content is empty, not absent
        elif content is not None:
            self._feed_content_parts(state, content, events)
        refusal = delta.get("refusal")
        if refusal:
            self._append_refusal(state, _text(refusal, "refusal"), events)
        reasoning = delta.get("reasoning_content")
        key = "reasoning_content"
        if not reasoning:
            reasoning = delta.get("reasoning")
            key = "reasoning"
        if reasoning:
            self._append_reasoning(state, _text(reasoning, key), key, events)
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            if not isinstance(tool_calls, list):
                raise TypeError("'tool_calls' is not a list")
            for fragment in tool_calls:
                self._feed_tool_call(state, fragment, events)
        if state.role is None and delta.get("role"):
            state.role = delta["role"]
        if not _DELTA_KEYS.issuperset(delta):
            self._feed_delta_extra(state, delta)

    def _feed_delta_extra(self, state: _Choice, delta: Dict[str, Any]) -> None:
        """Delta fields outside the usual few: the slow path, off the common chunk's way."""
        extra = state.message_extra
        for key, value in delta.items():
            if key in _DELTA_KEYS or value is None or key == "function_call":
                continue
            current = extra.get(key)
            if key in _APPENDED and isinstance(value, list):
                if isinstance(current, list):
                    current.extend(value)
                else:
                    extra[key] = list(value)
            elif key == "thinking_blocks" and isinstance(value, list):
                if not isinstance(current, _ThinkingBlocks):
                    current = extra[key] = _ThinkingBlocks()
                current.add(value)
            elif key == "audio" and isinstance(value, dict):
                if not isinstance(current, _Audio):
                    current = extra[key] = _Audio()
                current.add(value)
            elif isinstance(value, str) and key not in _LABELS:
                if not isinstance(current, TextBuffer):
                    current = extra[key] = TextBuffer()
                current.append(value)
            else:
                extra[key] = value
        function_call = delta.get("function_call")
        if function_call:
            self._feed_function_call(state, function_call)

    def _append_refusal(self, state: _Choice, text: str, events: List[Event]) -> None:
        buf = state.refusal
        if buf is None:
            buf = state.refusal = TextBuffer()
        events.append(RefusalDeltaEvent(state.index, text, buf, buf.append(text)))

    def _append_reasoning(self, state: _Choice, text: str, key: str, events: List[Event]) -> None:
        buf = state.reasoning
        if buf is None:
            buf = state.reasoning = TextBuffer()
            state.reasoning_key = key
        events.append(ReasoningDeltaEvent(state.index, text, buf, buf.append(text)))

    def _feed_content_parts(self, state: _Choice, parts: Any, events: List[Event]) -> None:
        """Content as a list of typed parts (Mistral Magistral): text and thinking."""
        if not isinstance(parts, list):
            raise TypeError(f"'content' is neither a string nor a list of parts: {parts!r:.80}")
        for part in parts:
            if isinstance(part, str):
                part = {"type": "text", "text": part}
            kind = part.get("type")
            if kind == "text":
                text = part.get("text")
                if text:
                    self._feed_delta(state, {"content": _text(text, "text")}, events)
            elif kind == "thinking":
                for text in _thinking_texts(part.get("thinking")):
                    self._append_reasoning(state, text, "reasoning_content", events)
            else:
                state.message_extra.setdefault("content_parts", []).append(part)

    def _feed_tool_call(self, state: _Choice, fragment: Dict[str, Any], events: List[Event]) -> None:
        function = fragment.get("function") or {}
        name = function.get("name")
        extra = not _TOOL_KEYS.issuperset(fragment)
        custom: Optional[Dict[str, Any]] = None
        if extra and fragment.get("custom") is not None:
            # A custom (freeform) tool call: {"type": "custom", "custom": {"name", "input"}}.
            custom = fragment["custom"]
            if not isinstance(custom, dict):
                raise TypeError("'custom' of a tool call is not an object")
            function = custom
            name = name or custom.get("name")
        call_id = fragment.get("id")
        position = fragment.get("index")
        call: Optional[_ToolCall]
        if position is not None:
            if type(position) is not int:
                # "0" and 0 would silently make two calls of one.
                raise TypeError(f"tool call index {position!r} is not an integer")
            call = state.calls_by_index.get(position)
            if call_id and call is not None and call.id and call_id != call.id:
                by_id = state.calls_by_id.get(call_id)
                if by_id is not None:
                    call = by_id  # the index names one call, the id an earlier one: the id wins
                elif name:
                    call = None  # Ollama sends parallel calls all at index 0, each with its own id and name
                # else LM Studio: a new id on a continuation of the same call
        elif call_id:
            call = state.calls_by_id.get(call_id)
        else:
            call = state.calls[-1] if state.calls else None
        if (call is not None and call.done) or (call is None and state.finished):
            raise _ProtocolViolation(_late_fragment(state, call))
        announce = False
        if call is None:
            # A new call closes the earlier ones whose arguments are already a whole JSON object.
            # The others stay open until the choice ends: Gemini announces parallel calls
            # together and sends their arguments afterwards, and a call with "" (or half its
            # arguments) is not known to be complete, so no tool may run with it yet.
            for earlier in state.calls:
                if not earlier.done and _is_json_object(earlier.arguments.text()):
                    self._finish_call(state, earlier, events)
            call = _ToolCall(len(state.calls))
            state.calls.append(call)
            if position is not None:
                state.calls_by_index[position] = call
            announce = True
        if call_id and call.id is None:
            call.id = call_id
            state.calls_by_id[call_id] = call
        if name and call.name is None:
            call.name = name
            announce = True
        kind = fragment.get("type")
        if kind and call.type is None:
            call.type = kind
            if kind == "custom":
                call.kind = "custom"
        if custom is not None:
            call.kind = "custom"
            arguments = custom.get("input")
            if arguments is not None:
                arguments = _text(arguments, "custom input")
            known = _CUSTOM_KEYS
        else:
            arguments = function.get("arguments")
            known = _FUNCTION_KEYS
        if extra:
            for key, value in fragment.items():
                if key not in _TOOL_KEYS and value is not None and key != "custom":
                    call.extra[key] = value
        if not known.issuperset(function):
            for key, value in function.items():
                if key not in known and value is not None:
                    call.function_extra[key] = value
        buf = call.arguments
        if arguments:
            if type(arguments) is not str:
                # Some servers send already-parsed arguments; keep them as JSON text.
                arguments = json.dumps(arguments)
            end = buf.append(arguments)
        elif announce:
            end = buf.length
        else:
            return
        events.append(
            ToolCallDeltaEvent(
                state.index, call.position, call.id, call.name, arguments or "", buf, end, call.kind
            )
        )

    def _feed_function_call(self, state: _Choice, fragment: Any) -> None:
        """The legacy ``function_call`` delta: the name once, the arguments concatenated."""
        if not isinstance(fragment, dict):
            raise TypeError("'function_call' is not an object")
        current = state.function_call
        if current is None:
            current = state.function_call = {"name": None, "arguments": ""}
        if fragment.get("name") and not current["name"]:
            current["name"] = fragment["name"]
        if fragment.get("arguments"):
            current["arguments"] += _text(fragment["arguments"], "arguments")

    def _feed_logprobs(self, state: _Choice, logprobs: Any) -> None:
        if not isinstance(logprobs, dict):
            raise TypeError("'logprobs' is not an object")
        merged = state.logprobs
        if merged is None:
            merged = state.logprobs = {}
        for key, value in logprobs.items():
            if isinstance(value, list):
                existing = merged.get(key)
                if isinstance(existing, list):
                    existing.extend(value)
                else:
                    merged[key] = list(value)
            elif value is not None or key not in merged:
                merged[key] = value

    def _finish_call(self, state: _Choice, call: _ToolCall, events: List[Event]) -> None:
        call.done = True
        parse = self._tool_parsers.get(call.name or "") if self._tool_parsers else None
        if parse is not None and call.kind == "function":
            event: ToolCallDoneEvent = ModelToolCallDoneEvent(
                state.index, call.position, call.id, call.name, call.arguments.text(), call.kind, parse
            )
        else:
            event = ToolCallDoneEvent(
                state.index, call.position, call.id, call.name, call.arguments.text(), call.kind
            )
        call.done_event = event
        events.append(event)

    def _finish(self, state: _Choice, events: List[Event]) -> None:
        state.finished = True
        index = state.index
        if state.reasoning is not None:
            events.append(ReasoningDoneEvent(index, state.reasoning.text()))
        content = state.content
        # Empty content beside a refusal or tool calls is a placeholder, not an answer: no content.done.
        if content is not None and (content.length or (state.refusal is None and not state.calls)):
            # A refusal replaces the answer: its content is not parsed (parsed is None).
            structured = self._structured and state.refusal is None
            if structured and self._parse is not None:
                text = content.text()
                events.append(ParsedContentDoneEvent(index, text, *self._parse_choice(index, text)))
            else:
                done = StructuredContentDoneEvent if structured else ContentDoneEvent
                events.append(done(index, content.text()))
        if state.refusal is not None:
            events.append(RefusalDoneEvent(index, state.refusal.text()))
        for call in state.calls:
            if not call.done:
                self._finish_call(state, call, events)
        events.append(DoneEvent(index, state.finish_reason))

    def end(self) -> List[Event]:
        """Close the stream: ``*.done`` events for unfinished choices, then ``completion``.

        Calling it again returns an empty list.
        """
        if self._ended:
            return []
        self._ended = True
        events: List[Event] = []
        for index in sorted(self._choices):
            state = self._choices[index]
            if not state.finished:
                self._finish(state, events)
        if self._parse is not None:
            for index in sorted(self._choices):
                state = self._choices[index]
                if index not in self._parsed and state.refusal is None and not state.calls:
                    # Asked for a model, got neither content nor a refusal nor tool calls.
                    self._parsed[index] = (None, _no_content(index, state.finish_reason, len(self._choices)))
        completion = self.completion()
        outcomes = [self._parsed[i][1] for i in sorted(self._parsed)]
        failed = [error for error in outcomes if error is not None]
        if failed:
            # A model was asked for and a choice's content does not fit it: not a completion.
            error = failed[0]
            error.completion = completion
            events.append(ErrorEvent(error))
            return events
        events.append(CompletionEvent(completion))
        return events

    def _parse_choice(self, index: int, text: str) -> Tuple[Any, Optional[StructuredOutputError]]:
        """Validate a finished choice's content once; the outcome is kept for the message's ``parsed``."""
        assert self._parse is not None
        try:
            outcome: Tuple[Any, Optional[StructuredOutputError]] = (self._parse(text), None)
        except StructuredOutputError as exc:
            if len(self._choices) > 1:
                exc.args = (f"choice {index}: {exc.args[0]}",)
            outcome = (None, exc)
        self._parsed[index] = outcome
        return outcome

    def snapshot(self) -> ChatCompletion:
        """The stream engine's name for :meth:`completion`."""
        return self.completion()

    def completion(self) -> ChatCompletion:
        """The completion assembled so far, shaped like the non-streamed response."""
        data: Dict[str, Any] = {
            "id": self._id or "",
            "object": "chat.completion",
            "created": self._created or 0,
            "model": self._model or "",
        }
        if self._fingerprint is not None:
            data["system_fingerprint"] = self._fingerprint
        data["choices"] = [self._choices[i].to_dict() for i in sorted(self._choices)]
        if self._parse is not None:
            for choice in data["choices"]:
                # The instance validated when the choice finished; None before, and for a refusal.
                outcome = self._parsed.get(choice["index"])
                message = choice["message"]
                message["parsed"] = outcome[0] if outcome is not None and not message.get("refusal") else None
        elif self._structured:
            for choice in data["choices"]:
                set_parsed(choice["message"])
        if self._tool_parsers or self._strict_tools:
            for choice in data["choices"]:
                self._set_parsed_arguments(self._choices[choice["index"]], choice["message"])
        data["usage"] = self._usage
        for key, value in self._extra.items():
            if key not in data:
                data[key] = value
        return ChatCompletion(data)

    def _set_parsed_arguments(self, state: _Choice, message: Dict[str, Any]) -> None:
        """Each function call's ``parsed_arguments``: its done event's (parsed once), None until done."""
        calls = message.get("tool_calls")
        if not calls:
            return
        for call, data in zip(state.calls, calls):
            if call.kind != "function":
                continue
            event = call.done_event
            wanted = call_arguments_parser(call.name, self._tool_parsers, self._strict_tools) is not None
            data["function"]["parsed_arguments"] = (
                event_arguments_or_none(event) if wanted and event is not None else None
            )


def set_parsed(message: Dict[str, Any]) -> None:
    """Give the message of a JSON ``response_format`` answer its ``parsed`` content.

    ``None`` when the content is missing or not valid JSON (an answer cut off by
    ``length``), and when the model refused (a refusal replaces the answer).
    Streamed and non-streamed answers go through here alike.
    """
    message["parsed"] = None if message.get("refusal") else parsed_or_none(message.get("content"))


class _Audio:
    """``delta.audio`` so far: ``data`` and ``transcript`` fragments joined, other fields the last value."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: Dict[str, Any] = {}

    def add(self, fragment: Dict[str, Any]) -> None:
        fields = self.fields
        for key, value in fragment.items():
            if value is None:
                continue
            if key in _AUDIO_TEXT and isinstance(value, str):
                buf = fields.get(key)
                if not isinstance(buf, TextBuffer):
                    buf = fields[key] = TextBuffer()
                buf.append(value)
            else:
                fields[key] = value

    def to_dict(self) -> Dict[str, Any]:
        return {k: v.text() if isinstance(v, TextBuffer) else v for k, v in self.fields.items()}


class _ThinkingBlocks:
    """``thinking_blocks`` so far (LiteLLM's passthrough of Claude's thinking).

    Blocks are appended like ``reasoning_details``, except that a fragment of
    thinking text continues the block before it while that block is unsigned
    thinking, and a fragment carrying only a signature signs the block before
    it: each block ends up whole with its signature, as Claude needs it back.
    """

    __slots__ = ("blocks", "open", "texts")

    def __init__(self) -> None:
        self.blocks: List[Any] = []
        self.texts: Dict[int, TextBuffer] = {}  # position of a thinking block -> its text
        self.open: Optional[TextBuffer] = None  # the last block's text while it is unsigned thinking

    def add(self, fragments: List[Any]) -> None:
        blocks = self.blocks
        for fragment in fragments:
            if not isinstance(fragment, dict):
                blocks.append(fragment)
                self.open = None
                continue
            text = fragment.get("thinking")
            signature = fragment.get("signature")
            thinking_only = (
                fragment.get("type", "thinking") == "thinking"
                and _THINKING_KEYS.issuperset(fragment)
                and (text is None or isinstance(text, str))
            )
            if thinking_only and self.open is not None:
                if text:
                    self.open.append(text)
                if signature:
                    blocks[-1]["signature"] = signature
                    self.open = None
                continue
            last = blocks[-1] if blocks else None
            unsigned = isinstance(last, dict) and not last.get("signature")
            if thinking_only and not text and signature and unsigned:
                last["signature"] = signature  # type: ignore[index]
                continue
            block = dict(fragment)  # merged into later: never the chunk's own dict
            self.open = None
            if block.get("type") == "thinking" and not signature and (text is None or isinstance(text, str)):
                self.open = self.texts[len(blocks)] = TextBuffer()
                if text:
                    self.open.append(text)
            blocks.append(block)

    def to_list(self) -> List[Any]:
        out = []
        for position, block in enumerate(self.blocks):
            buf = self.texts.get(position)
            if buf is not None and (buf.length or block.get("thinking") is not None):
                block = {**block, "thinking": buf.text()}
            elif isinstance(block, dict):
                block = dict(block)
            out.append(block)
        return out


def _plain_extra(value: Any) -> Any:
    """A message field as the completion shows it (text joined, merged fields built)."""
    if isinstance(value, TextBuffer):
        return value.text()
    if isinstance(value, list):
        return list(value)
    if isinstance(value, _Audio):
        return value.to_dict()
    if isinstance(value, _ThinkingBlocks):
        return value.to_list()
    return value


def _is_json_object(text: str) -> bool:
    if not text.rstrip().endswith("}"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _no_content(index: int, finish_reason: Optional[str], choices: int) -> StructuredOutputError:
    where = f"choice {index}: " if choices > 1 else ""
    return StructuredOutputError(
        f"{where}the answer has no content to parse into the response_format model (finish_reason "
        f"{finish_reason!r}); with 'length', raise max_tokens",
        content="",
    )


class _ProtocolViolation(ValueError):
    """The stream broke a rule of the protocol; raised as InvalidStreamDataError by feed()."""


def _late_fragment(state: _Choice, call: Optional[_ToolCall]) -> str:
    if call is None:
        return (
            f"a tool call fragment for choice {state.index} arrived after the choice finished "
            f"(finish_reason {state.finish_reason!r}); the server broke the Chat Completions "
            "protocol and this call cannot be trusted: retry the request"
        )
    return (
        f"a fragment for tool call {call.position} of choice {state.index} (id {call.id!r}, "
        f"name {call.name!r}) arrived after the call was reported complete (tool_call.done: its "
        "arguments were a whole JSON object when a later call started, or the choice had "
        "finished); the server sent more for a finished call, so its arguments cannot be "
        "trusted: retry the request"
    )


def _keep_choice_extra(state: _Choice, choice: Dict[str, Any]) -> None:
    """Keep the choice's unknown fields (the last value of each) for the completion's choice."""
    for key, value in choice.items():
        if key not in _CHOICE_KEYS and value is not None:
            state.choice_extra[key] = value


def _fast_delta(state: _Choice, delta: Dict[str, Any]) -> Optional[Event]:
    """The event of a one-key delta that only extends text the choice already has, else None.

    Content its choice already has, or an arguments fragment, addressed by index
    alone, of an open function call: the general path would do exactly this.
    """
    content = delta.get("content")
    if content is not None:
        buf = state.content
        if type(content) is str and content and buf is not None:
            text_event = _new_event(ContentDeltaEvent)
            _set_values(text_event, (state.index, content, buf, buf.append(content)))
            return text_event
        return None
    calls = delta.get("tool_calls")
    if type(calls) is not list or len(calls) != 1:
        return None
    fragment = calls[0]
    if type(fragment) is not dict or len(fragment) != 2:
        return None
    function = fragment.get("function")
    position = fragment.get("index")
    if type(function) is not dict or len(function) != 1 or type(position) is not int:
        return None
    arguments = function.get("arguments")
    call = state.calls_by_index.get(position)
    if type(arguments) is not str or not arguments or call is None or call.done or call.kind != "function":
        return None
    buf = call.arguments
    event = _new_event(ToolCallDeltaEvent)
    end = buf.append(arguments)
    _set_values(event, (state.index, call.position, call.id, call.name, arguments, buf, end, call.kind))
    return event


def _text(value: Any, field: str) -> str:
    if type(value) is not str:
        raise TypeError(f"{field!r} is not a string: {value!r:.80}")
    return value


def _thinking_texts(thinking: Any) -> List[str]:
    if isinstance(thinking, str):
        return [thinking] if thinking else []
    if not isinstance(thinking, list):
        raise TypeError("'thinking' is neither a string nor a list of parts")
    texts = []
    for part in thinking:
        text = part.get("text") if isinstance(part, dict) else part
        if text:
            texts.append(_text(text, "thinking text"))
    return texts


def _quote(value: Any, limit: int = 200) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
