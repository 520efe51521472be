"""The tool runner: stream a round, run each tool as soon as its call is complete, send the results back.

One runner for both APIs: ``client.chat.completions.run_tools(...)`` returns a
:class:`ToolRunner`, ``client.responses.run_tools(...)`` a
:class:`ResponseToolRunner`; they differ only in how a round is requested and
how its answer and the tools' results join the conversation (see
:class:`ResponseToolRunner` for the Responses API's items). Each
round streams one completion and re-emits its events; a ``tool_call.done`` of
choice 0 whose arguments are a complete JSON object starts that tool on a
thread pool while later calls still stream (other calls wait for the choice's
``done``). Before anything is sent back, every call that ran is checked
against the final message (:class:`~openai_stream.ToolCallMismatchError`).
A custom (freeform) tool call cannot be run here: the model gets a tool
message saying so, as for an unknown tool.
When the round ends, the assistant message (as received: tool calls,
reasoning, unknown fields) and one tool message per call, in call order, are
appended to :attr:`ToolRunner.messages`, and the next round starts. The run
ends with the first round that asks for no tool.

All handlers run on the thread that called :meth:`ToolRunner.until_done`,
``tool.result`` included: a result is reported between two stream events once
it and every earlier call's result are ready, or after the stream ended.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

from pyee import EventEmitter

from .._params import to_json
from ..chat._completion import APIObject, ChatCompletion, sendable
from ..chat._stream import OPENAI_PYTHON_EVENTS
from ..engine._events import EVENT_TYPES, DoneEvent, ErrorEvent, ToolCallDoneEvent
from ..engine._metrics import Recording, StreamMetrics, combine
from ..engine._metrics import now as metrics_clock
from ..engine._stream import BaseStream, check_event_name, finish_reasons
from ..errors import (
    APIUserAbortError,
    MaxRoundsExceededError,
    OpenAIError,
    ToolArgumentsError,
    ToolCallMismatchError,
    ToolDefinitionError,
    UnknownToolError,
)
from ..hooks import Hooks, RunnerEndInfo, RunnerStartInfo, ToolEndInfo, ToolStartInfo
from ..responses._events import RESPONSE_EVENT_TYPES
from ..responses._response import Response
from ..responses._stream import RESPONSE_EVENT_ALIASES
from ._tool import Tool, result_text, tool

if TYPE_CHECKING:
    from ..chat._resource import Completions
    from ..responses._resource import Responses

__all__ = [
    "ToolRunner",
    "ResponseToolRunner",
    "ToolResultEvent",
    "MessageEvent",
    "RoundEvent",
    "MaxRoundsExceededError",
    "RUNNER_EVENT_TYPES",
]

RUNNER_EVENT_TYPES = ("tool.result", "message", "round")
"""Events a :class:`ToolRunner` emits besides every stream event of each round."""


class _ToolResultFields(NamedTuple):
    index: int  # type: ignore[assignment]
    call_id: str
    name: Optional[str]
    arguments: str
    result: Any
    exception: Optional[BaseException]
    seconds: float
    content: str


class ToolResultEvent(_ToolResultFields):
    """A tool finished (or could not run).

    ``result`` is the function's raw return value; ``exception`` is what went
    wrong (the tool's own exception, :class:`~openai_stream.ToolArgumentsError`
    or :class:`~openai_stream.UnknownToolError`), else ``None``. ``content``
    is the text the model receives; ``seconds`` how long the call took.
    ``index`` is the call's position in the assistant message.
    """

    __slots__ = ()
    type: ClassVar[str] = "tool.result"


class _MessageFields(NamedTuple):
    message: Dict[str, Any]


class MessageEvent(_MessageFields):
    """A message was appended to the conversation (the assistant's, or a tool result)."""

    __slots__ = ()
    type: ClassVar[str] = "message"


class _RoundFields(NamedTuple):
    number: int
    completion: Any


class RoundEvent(_RoundFields):
    """Round ``number`` (from 1) ended: its assistant and tool messages are in the conversation.

    ``completion`` is the round's :class:`~openai_stream.ChatCompletion`, or
    its :class:`~openai_stream.Response` in a :class:`ResponseToolRunner`
    (``response`` names it too).
    """

    @property
    def response(self) -> Any:
        """The round's result (the same object as ``completion``)."""
        return self.completion

    __slots__ = ()
    type: ClassVar[str] = "round"



class _Outcome(NamedTuple):
    result: Any
    exception: Optional[BaseException]
    seconds: float
    content: str


class _Sent(NamedTuple):
    """A tool call as the round's final answer has it."""

    call_id: str
    name: Optional[str]
    text: str  # a function's arguments, a custom call's input
    kind: str  # "function" or "custom"


class _Call:
    __slots__ = ("arguments", "call_id", "future", "index", "name", "reported")

    def __init__(
        self, index: int, call_id: str, name: Optional[str], arguments: str, future: Future[_Outcome]
    ) -> None:
        self.index = index
        self.call_id = call_id
        self.name = name
        self.arguments = arguments
        self.future = future
        self.reported = False


class _Runner(EventEmitter):
    """What both runners share: the tools, the rounds, running calls early, reporting results."""

    _event_types: ClassVar[FrozenSet[str]] = frozenset(EVENT_TYPES) | frozenset(RUNNER_EVENT_TYPES)
    """Every event a runner emits: each round's stream events, and its own."""
    _event_aliases: ClassVar[Mapping[str, str]] = OPENAI_PYTHON_EVENTS

    def __init__(
        self,
        *,
        model: str,
        tools: Sequence[Union[Tool[Any, Any], Callable[..., Any]]],
        max_rounds: int,
        max_workers: Optional[int],
        params: Dict[str, Any],
        hooks: Optional[Hooks] = None,
    ) -> None:
        super().__init__()
        if max_rounds < 1:
            raise ValueError("max_rounds must be 1 or more")
        self._model = model
        self._params = params
        self._max_rounds = max_rounds
        self._tools: Dict[str, Tool[Any, Any]] = {}
        for item in tools:
            if isinstance(item, Mapping):
                raise ToolDefinitionError(
                    f"run_tools runs functions, and {str(item)[:80]}... only describes a tool (as "
                    "pydantic_function_tool() makes): write a @tool function, with the model as its "
                    "parameter's type for a pydantic model"
                )
            as_tool = item if isinstance(item, Tool) else tool(item)
            if as_tool.name in self._tools:
                raise ToolDefinitionError(
                    f"two tools are named {as_tool.name!r}; give one another name with tool(fn, name=...)"
                )
            self._tools[as_tool.name] = as_tool
        self._definitions = [t.definition for t in self._tools.values()]
        self._workers = 1 if params.get("parallel_tool_calls") is False else max_workers
        self._conversation: List[Dict[str, Any]] = []
        self._results: List[Any] = []
        self._result: Any = None
        self._error: Optional[BaseException] = None
        self._started = False
        self._closed = False
        self._start_lock = threading.Lock()
        self._stream: Optional[BaseStream[Any]] = None
        self._hooks = hooks if hooks is not None else Hooks()  # the client's (openai_stream.hooks)
        self.hook_state: Dict[str, Any] = {}
        """Per-runner state for client hooks (an OpenTelemetry span...); lives as long as the runner."""
        # Each finished round's recording (its final metrics and their moments), appended by the
        # running thread; read as a copy (one list operation). _end_lock guards _final_metrics and _ended.
        self._rounds: List[Recording] = []
        self._started_at: Optional[float] = None
        self._ended_at: Optional[float] = None
        self._end_lock = threading.Lock()
        self._ended = False
        self._final_metrics: Optional[StreamMetrics] = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} model={self._model!r} tools={list(self._tools)} "
            f"rounds={len(self._results)}>"
        )

    def _add_event_handler(self, event: str, k: Callable[..., Any], v: Callable[..., Any]) -> None:
        # on, once, add_listener and their decorator forms all arrive here.
        check_event_name(type(self).__name__, event, self._event_types, self._event_aliases)
        super()._add_event_handler(event, k, v)

    def listeners(self, event: str) -> List[Callable[..., Any]]:
        """The listeners of ``event``, in the order they were added."""
        check_event_name(type(self).__name__, event, self._event_types, self._event_aliases)
        return super().listeners(event)

    @property
    def tools(self) -> Dict[str, Tool[Any, Any]]:
        """The tools by name."""
        return dict(self._tools)

    @property
    def metrics(self) -> StreamMetrics:
        """What the run measured so far, every round added up (final once it ended); any thread.

        Times count from the start of ``until_done()``; ``rounds`` is the
        number of streams so far (the running one included). See
        :class:`~openai_stream.StreamMetrics`.
        """
        final = self._final_metrics
        if final is not None:
            return final
        return self._measure(finished=False)

    def _measure(self, *, finished: bool) -> StreamMetrics:
        parts = list(self._rounds)
        stream = self._stream
        if stream is not None and not finished:
            parts.append(stream.recording)  # the running round (left out by combine until it starts)
        result = self._last_result()
        return combine(
            parts,
            started=self._started_at,
            ended=self._ended_at,
            finished=finished,
            finish_reasons=finish_reasons(result),
        )

    def _last_result(self) -> Any:
        """The final result, else the last round's (``None`` before the first round ended)."""
        if self._result is not None:
            return self._result
        return self._results[-1] if self._results else None

    def _report_end(self) -> None:
        """Freeze the metrics and call the ``runner.end`` hooks (once)."""
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
            self._ended_at = metrics_clock()
            metrics = self._final_metrics = self._measure(finished=True)
        hooks = self._hooks
        if hooks.active and hooks.wants("runner.end"):
            error = self._error
            if self._result is not None:
                outcome = "done"
            elif isinstance(error, (APIUserAbortError, KeyboardInterrupt, SystemExit)):
                outcome = "closed"
            else:
                outcome = "failed"
            hooks.emit("runner.end", RunnerEndInfo(self, metrics, outcome, error, self._last_result()))

    # ------------------------------------------------------------------ what each API says
    def _open_round(self, number: int) -> BaseStream[Any]:
        """The stream of round ``number``."""
        raise NotImplementedError

    def _final_calls(self, result: Any, number: int) -> List[_Sent]:
        """The tool calls the round's final answer holds, in order."""
        raise NotImplementedError

    def _record_answer(self, result: Any, number: int) -> None:
        """Append the round's answer to the conversation."""
        raise NotImplementedError

    def _result_entry(self, sent: _Sent, content: str) -> Dict[str, Any]:
        """The conversation entry that gives a call's result back to the model."""
        raise NotImplementedError

    def _unit(self) -> str:
        """What the conversation is called (``messages``, ``input``), for messages."""
        raise NotImplementedError

    # ------------------------------------------------------------------ running
    def _run_rounds(self) -> Any:
        """Run every round and return the last round's result (see the subclasses' ``until_done``)."""
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise self._error
        with self._start_lock:
            if self._started:
                raise OpenAIError("this runner is already running on another thread")
            self._started = True
        executor = ThreadPoolExecutor(self._workers, thread_name_prefix="openai_stream-tool")
        self._started_at = metrics_clock()
        hooks = self._hooks
        if hooks.active and hooks.wants("runner.start"):
            body = {"model": self._model, **self._params, "tools": self._definitions}
            hooks.emit("runner.start", RunnerStartInfo(self, self._model, body))
        try:
            for number in range(1, self._max_rounds + 1):
                result, called = self._round(number, executor)
                if not called:
                    self._result = result
                    return result
            raise MaxRoundsExceededError(
                f"the model still called tools after {self._max_rounds} rounds (max_rounds="
                f"{self._max_rounds}); error.messages holds the conversation so far: raise max_rounds, "
                "or check what the tools answered",
                messages=[dict(m) for m in self._conversation],
                completion=result,
                max_rounds=self._max_rounds,
            )
        except BaseException as exc:
            self._error = exc
            if isinstance(exc, Exception) and "error" in self._events:
                try:
                    self.emit("error", ErrorEvent(exc))
                except Exception as listener_error:
                    # The same outcome every time, as on a stream: the listener's error, chained.
                    listener_error.__cause__ = exc
                    self._error = listener_error
                    raise listener_error from exc
            raise
        finally:
            # Tools still running after a failure are left to finish on their own; none is waited for.
            executor.shutdown(wait=False, cancel_futures=True)
            self._report_end()

    def close(self) -> None:
        """Stop after the current stream: it is closed, and no further round starts. Any thread."""
        self._closed = True
        stream = self._stream
        if stream is not None:
            stream.close()

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _round(self, number: int, executor: ThreadPoolExecutor) -> tuple[Any, bool]:
        if self._closed:
            raise APIUserAbortError(f"the runner was closed before it finished; see runner.{self._unit()}")
        stream = self._open_round(number)
        stream.parent = self  # named in its stream.start and stream.end hooks
        self._stream = stream
        if self._closed:
            stream.close()
        # Calls of choice 0 by position: started (_Call), or waiting for the choice's end (their
        # ToolCallDoneEvent). Calls may be done out of order; results are reported in call order.
        slots: Dict[int, Union[_Call, ToolCallDoneEvent]] = {}
        cursor = 0
        listeners = self._events  # membership tests without the lock, as the stream does
        try:
            with stream:
                for event in stream:
                    kind = event.type
                    if isinstance(event, ToolCallDoneEvent):
                        if not event.choice_index:
                            if event.index in slots:
                                first = slots[event.index].arguments
                                raise _reported_twice(event, first, stream.snapshot())
                            # Before its choice ends, a call runs only when its arguments are a
                            # whole JSON object: empty or unparsable ones wait for the choice's end.
                            early = _is_object(event.arguments)
                            slots[event.index] = self._start(event, number, executor) if early else event
                    elif isinstance(event, DoneEvent) and not event.choice_index:
                        for index, slot in slots.items():
                            slots[index] = self._start_waiting(slot, number, executor)
                    if kind in listeners:
                        self.emit(kind, event)
                    while cursor in slots:
                        slot = slots[cursor]
                        if not isinstance(slot, _Call) or not slot.future.done():
                            break
                        self._report(slot)
                        cursor += 1
                result = stream.until_done()
        finally:
            self._rounds.append(stream.recording)  # final: the with block ended the stream
            self._stream = None
        self._results.append(result)
        calls = self._final_calls(result, number)
        _check_executed([s for s in slots.values() if isinstance(s, _Call)], calls, result)
        started = [self._start_waiting(slot, number, executor) for slot in slots.values()]
        self._record_answer(result, number)
        by_index = {call.index: call for call in started}
        for position, sent in enumerate(calls):
            call = by_index.get(position)
            if call is None:  # a call without tool_call.done: not expected, but never left unanswered
                event = ToolCallDoneEvent(0, position, sent.call_id, sent.name, sent.text, sent.kind)
                call = self._start(event, number, executor)
            outcome = self._report(call)
            self._append(self._result_entry(sent, outcome.content))
        if "round" in listeners:
            self.emit("round", RoundEvent(number, result))
        return result, bool(calls)

    def _start(self, event: ToolCallDoneEvent, number: int, executor: ThreadPoolExecutor) -> _Call:
        call_id = event.call_id or _call_id(number, event.index)
        job: Callable[[], _Outcome]
        if event.call_type == "custom":
            job = functools.partial(_refuse_custom, self._tools, event.name)
        else:
            job = functools.partial(_execute, self._tools, event.name, event.arguments, call_id)
        if self._hooks.active:
            job = functools.partial(self._observed, job, event.index, call_id, event.name, event.arguments)
        future = executor.submit(job)
        return _Call(event.index, call_id, event.name, event.arguments, future)

    def _observed(
        self, job: Callable[[], _Outcome], index: int, call_id: str, name: Optional[str], arguments: str
    ) -> _Outcome:
        """Run one tool call between its ``tool.start`` and ``tool.end`` hooks, on the worker thread."""
        hooks = self._hooks
        state: Dict[str, Any] = {}
        if hooks.wants("tool.start"):
            hooks.emit("tool.start", ToolStartInfo(self, name, call_id, arguments, index, state))
        start = time.perf_counter()
        outcome: Optional[_Outcome] = None
        raised: Optional[BaseException] = None
        try:
            outcome = job()
            return outcome
        except BaseException as exc:
            raised = exc
            raise
        finally:
            if hooks.wants("tool.end"):
                if outcome is not None:
                    error, result, content = outcome.exception, outcome.result, outcome.content
                    seconds = outcome.seconds
                else:
                    error, result, content, seconds = raised, None, "", time.perf_counter() - start
                end = ToolEndInfo(
                    self, name, call_id, index, "failed" if error is not None else "done", error, result,
                    content, seconds, state,
                )
                hooks.emit("tool.end", end)

    def _start_waiting(
        self, slot: Union[_Call, ToolCallDoneEvent], number: int, executor: ThreadPoolExecutor
    ) -> _Call:
        return slot if isinstance(slot, _Call) else self._start(slot, number, executor)

    def _report(self, call: _Call) -> _Outcome:
        """Wait for the call's outcome and emit its ``tool.result`` once."""
        outcome = call.future.result()
        if not call.reported:
            call.reported = True
            if "tool.result" in self._events:
                self.emit(
                    "tool.result",
                    ToolResultEvent(
                        call.index,
                        call.call_id,
                        call.name,
                        call.arguments,
                        outcome.result,
                        outcome.exception,
                        outcome.seconds,
                        outcome.content,
                    ),
                )
        return outcome

    def _append(self, message: Dict[str, Any]) -> None:
        self._conversation.append(message)
        if "message" in self._events:
            self.emit("message", MessageEvent(message))


_R = TypeVar("_R", bound=_Runner)


class ToolRunner(_Runner):
    """Runs a conversation with tools until the model answers without calling one.

    Register handlers like on a stream (``@runner.on("content.delta")``,
    ``"tool_call.done"``...), plus ``tool.result`` (:class:`ToolResultEvent`),
    ``message`` (:class:`MessageEvent`) and ``round`` (:class:`RoundEvent`).
    :meth:`until_done` runs every round and returns the last completion;
    :attr:`messages` is the whole conversation. Nothing is sent before
    :meth:`until_done`.

    A tool's failure never stops the run: the model receives a message naming
    the tool and the problem, so it can correct itself. A handler that raises,
    a stream error, or reaching ``max_rounds``
    (:class:`MaxRoundsExceededError`) ends the run with that error.
    ``parallel_tool_calls=False`` is sent as given and runs tools one at a time.
    """

    def __init__(
        self,
        completions: Completions,
        *,
        model: str,
        messages: Iterable[Union[Mapping[str, Any], APIObject]],
        tools: Sequence[Union[Tool[Any, Any], Callable[..., Any]]],
        max_rounds: int = 10,
        max_workers: Optional[int] = None,
        **params: Any,
    ) -> None:
        super().__init__(
            model=model,
            tools=tools,
            max_rounds=max_rounds,
            max_workers=max_workers,
            params=params,
            hooks=completions._client._transport.hooks,
        )
        if params.get("n") not in (None, 1):
            raise OpenAIError("run_tools continues one conversation; n must be 1")
        self._completions = completions
        self._conversation = [to_json(m, f"messages[{i}]") for i, m in enumerate(messages)]

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """The whole conversation: the messages given, then each round's assistant and tool messages."""
        return self._conversation

    @property
    def completions(self) -> List[ChatCompletion]:
        """Each round's completion, in order."""
        return self._results

    def until_done(self) -> ChatCompletion:
        """Run every round and return the last completion (the one without tool calls).

        Raises :class:`MaxRoundsExceededError` when the model still calls tools
        after ``max_rounds`` rounds, and any error of a stream or a handler.
        Calling it again returns the same completion, or raises the same error.
        """
        result: ChatCompletion = self._run_rounds()
        return result

    def _unit(self) -> str:
        return "messages"

    def _open_round(self, number: int) -> BaseStream[Any]:
        extra: Dict[str, Any] = {"tools": self._definitions} if self._definitions else {}
        return self._completions.stream(model=self._model, messages=self.messages, **extra, **self._params)

    def _final_calls(self, result: Any, number: int) -> List[_Sent]:
        calls = []
        for call in _assistant_message(result, number).get("tool_calls") or []:
            name, text = _name_and_text(call)
            kind = "custom" if call.get("type") == "custom" else "function"
            calls.append(_Sent(call["id"], name, text, kind))
        return calls

    def _record_answer(self, result: Any, number: int) -> None:
        self._append(_assistant_message(result, number))

    def _result_entry(self, sent: _Sent, content: str) -> Dict[str, Any]:
        return {"role": "tool", "tool_call_id": sent.call_id, "content": content}


class ResponseToolRunner(_Runner):
    """Runs a Responses API conversation with tools until the model answers without calling one.

    The same events, rules and guarantees as :class:`ToolRunner` (a tool runs
    only with the arguments the model finished sending, checked against the
    final response). Each round streams a response with the conversation so
    far as ``input``; when it ends, the response's output items (reasoning,
    messages, ``function_call`` items, as received: a reasoning item keeps its
    ``encrypted_content`` when ``include=["reasoning.encrypted_content"]``
    asked for it) and one ``function_call_output`` item per call, in call
    order, are appended to :attr:`input`; ``message`` events carry each item.
    The conversation is sent whole every round, so it works with servers that
    store nothing (``store=False``, llama.cpp); with ``conversation=...`` the
    server keeps it, and each round sends only the items added since the last.
    A custom tool call gets a ``custom_tool_call_output`` saying it cannot run
    here.
    """

    _event_types: ClassVar[FrozenSet[str]] = frozenset(RESPONSE_EVENT_TYPES) | frozenset(RUNNER_EVENT_TYPES)
    _event_aliases: ClassVar[Mapping[str, str]] = RESPONSE_EVENT_ALIASES

    def __init__(
        self,
        responses: Responses,
        *,
        model: str,
        input: Any,
        tools: Sequence[Union[Tool[Any, Any], Callable[..., Any]]],
        max_rounds: int = 10,
        max_workers: Optional[int] = None,
        **params: Any,
    ) -> None:
        super().__init__(
            model=model,
            tools=tools,
            max_rounds=max_rounds,
            max_workers=max_workers,
            params=params,
            hooks=responses._client._transport.hooks,
        )
        self._responses = responses
        if isinstance(input, str):
            items: List[Any] = [{"role": "user", "content": input}]
        elif isinstance(input, Mapping) or not isinstance(input, Iterable):
            raise TypeError(
                "input must be a string or a list of input items (messages, function_call_output...), not "
                f"{type(input).__name__}"
            )
        else:
            items = list(input)
        self._conversation = [to_json(item, f"input[{i}]") for i, item in enumerate(items)]
        self._sent = 0  # with a server-side conversation: how many items the server has already

    @property
    def input(self) -> List[Dict[str, Any]]:
        """The whole conversation: the input given, then each round's output and tool output items."""
        return self._conversation

    @property
    def responses(self) -> List[Response]:
        """Each round's response, in order."""
        return self._results

    def until_done(self) -> Response:
        """Run every round and return the last response (the one without tool calls).

        Raises :class:`MaxRoundsExceededError` when the model still calls tools
        after ``max_rounds`` rounds (``error.messages`` holds the input items),
        and any error of a stream or a handler. Calling it again returns the
        same response, or raises the same error.
        """
        result: Response = self._run_rounds()
        return result

    def _unit(self) -> str:
        return "input"

    def _open_round(self, number: int) -> BaseStream[Any]:
        params = dict(self._params)
        if self._definitions:
            params["tools"] = [*(params.get("tools") or ()), *self._definitions]
        items = self._conversation
        if params.get("conversation") is not None:
            items = items[self._sent :]  # the server holds the rest
            self._sent = len(self._conversation)
        return self._responses.stream(model=self._model, input=items, **params)

    def _final_calls(self, result: Any, number: int) -> List[_Sent]:
        calls: List[_Sent] = []
        for item in result.to_dict().get("output") or []:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in ("function_call", "custom_tool_call"):
                continue
            text = item.get("arguments" if kind == "function_call" else "input") or ""
            call_id = item.get("call_id") or _call_id(number, len(calls))
            call_type = "function" if kind == "function_call" else "custom"
            calls.append(_Sent(call_id, item.get("name"), text, call_type))
        return calls

    def _record_answer(self, result: Any, number: int) -> None:
        count = 0
        for item in result.to_dict().get("output") or []:
            if isinstance(item, dict) and item.get("type") in ("function_call", "custom_tool_call"):
                item.pop("parsed_arguments", None)  # this SDK's decoding, not part of the item
                if not item.get("call_id"):
                    item["call_id"] = _call_id(number, count)  # as its output item will name it
                count += 1
            self._append(item)
        if self._params.get("conversation") is not None:
            self._sent = len(self._conversation)  # the server added the round's output itself

    def _result_entry(self, sent: _Sent, content: str) -> Dict[str, Any]:
        kind = "custom_tool_call_output" if sent.kind == "custom" else "function_call_output"
        return {"type": kind, "call_id": sent.call_id, "output": content}


def _is_object(arguments: str) -> bool:
    """Whether tool-call arguments are a complete JSON object."""
    if not arguments.rstrip().endswith("}"):
        return False
    try:
        return isinstance(json.loads(arguments), dict)
    except ValueError:
        return False


def _check_executed(started: List[_Call], calls: List[_Sent], completion: Any) -> None:
    """Raise unless every call that ran had exactly the name and arguments of the final answer."""
    for call in started:
        sent = calls[call.index] if call.index < len(calls) else None
        final = (sent.name, sent.text) if sent is not None else (None, "")
        if sent is None or final != (call.name, call.arguments):
            what = "is missing from" if sent is None else f"has name {final[0]!r}, arguments {final[1]!r} in"
            raise ToolCallMismatchError(
                f"tool call {call.index} ({call.name!r}, id {call.call_id}) ran with arguments "
                f"{call.arguments!r}, but it {what} the final answer; the stream "
                "contradicted itself, so no result was sent back: check the server, and whether "
                "the tool's effect must be undone",
                completion=completion,
                index=call.index,
                name=call.name,
                executed_arguments=call.arguments,
                final_arguments=None if sent is None else final[1],
            )


def _name_and_text(call: Mapping[str, Any]) -> tuple[Optional[str], str]:
    """A tool call's name and text: a function's arguments, or a custom (freeform) call's input."""
    custom = call.get("custom")
    if call.get("type") == "custom" and isinstance(custom, dict):
        return custom.get("name"), custom.get("input") or ""
    function = call.get("function") or {}
    return function.get("name"), function.get("arguments") or ""


def _reported_twice(event: ToolCallDoneEvent, first: str, completion: Any) -> ToolCallMismatchError:
    return ToolCallMismatchError(
        f"tool call {event.index} ({event.name!r}, id {event.call_id}) was reported complete twice, "
        f"with arguments {first!r} and then {event.arguments!r}; the stream contradicted itself, "
        "so no result was sent back",
        completion=completion,
        index=event.index,
        name=event.name,
        executed_arguments=first,
        final_arguments=event.arguments,
    )


def _call_id(number: int, index: int) -> str:
    """An id for a call the provider sent without one, the same in the assistant and tool messages."""
    return f"call_{number}_{index}"


def _assistant_message(completion: ChatCompletion, number: int) -> Dict[str, Any]:
    """Choice 0's message as received (tool calls, reasoning, unknown fields), minus our parsed fields."""
    if not completion.choices:
        return {"role": "assistant", "content": None}
    message = sendable(completion.choices[0].message)
    message["role"] = message.get("role") or "assistant"
    for position, call in enumerate(message.get("tool_calls") or []):
        if not call.get("id"):
            call["id"] = _call_id(number, position)
    return message


def _refuse_custom(tools: Mapping[str, Tool[Any, Any]], name: Optional[str]) -> _Outcome:
    """A custom (freeform) tool call: run_tools runs function tools only, so the model is told."""
    unknown = UnknownToolError(
        f"{name!r} was called as a custom tool (freeform input), and this runner only runs function "
        f"tools; the available tools are: {', '.join(tools) or 'none'}",
        name=name,
    )
    return _Outcome(None, unknown, 0.0, f"Error: {unknown}.")


def _execute(
    tools: Mapping[str, Tool[Any, Any]], name: Optional[str], arguments: str, call_id: str
) -> _Outcome:
    """Run one call on a worker thread; every failure becomes the text the model sees."""
    start = time.perf_counter()
    found = tools.get(name or "")
    if found is None:
        unknown = UnknownToolError(
            f"there is no tool named {name!r}; the available tools are: {', '.join(tools) or 'none'}",
            name=name,
        )
        return _Outcome(None, unknown, time.perf_counter() - start, f"Error: {unknown}.")
    try:
        kwargs = found.parse_arguments(arguments, call_id=call_id)
    except ToolArgumentsError as exc:
        content = f"Error: {exc}. Call the tool again with arguments that match its parameters."
        return _Outcome(None, exc, time.perf_counter() - start, content)
    try:
        result = found.function(**kwargs)
    except Exception as exc:
        content = f"Error: tool {name!r} raised {type(exc).__name__}: {exc}"
        return _Outcome(None, exc, time.perf_counter() - start, content)
    seconds = time.perf_counter() - start
    try:
        return _Outcome(result, None, seconds, result_text(result))
    except (TypeError, ValueError) as exc:
        content = f"Error: tool {name!r} returned a value that cannot be sent as JSON ({exc})"
        return _Outcome(result, exc, seconds, content)
