"""The stream engine: one request's lifecycle, its events handed to handlers and to iteration.

:class:`BaseStream` is the engine every API's stream class is built on (chat
completions, responses). It is parameterised by an accumulator, the sans-I/O
half that turns payloads into events (:class:`Accumulator`), and it owns
everything around it: sending the request through the transport, reading
the body with :class:`~openai_stream.transport._body.BodyReader`, the
listener registry, dispatching events to handlers, iteration,
``until_done()``, ``start()`` on a thread of its own, ``close()`` from any
thread, and the errors that end a stream.

Data flows one way: transport (bytes) -> body reader (payloads) ->
accumulator (events) -> this engine (handlers, iteration).

Locks, and what each guards:

- ``_state_lock``: who consumes the stream (``_iterator``, ``_thread``,
  ``_owner``, ``_loop_thread``), ``_closed``, and ``_parent``, which is
  written under it only while ``_iterator`` is None (before the loop
  starts) and read without it afterwards;
- ``_acc_lock``: the accumulator; held around every ``feed``, ``end`` and
  ``snapshot()``, so another thread may read the result so far mid-stream;
- pyee's ``_lock``: the listener dicts (``_events``) and ``_handlers``, the
  snapshot of them the loop reads. ``_handlers`` is never changed in place,
  only replaced whole under the lock, so the loop reads it without locking;
- ``_end_lock``: ``_ended`` and ``_final_metrics``: the end of the stream is
  reported (``stream.end`` hooks, final metrics) exactly once, by whichever
  of the loop, ``close()`` on a paused stream or the garbage collector gets
  there first.

The metrics recorder (``_recorder``) is written by the thread running the
loop (and the transport on that thread) and read by any (see
:mod:`._metrics`).

The outcome (``_result``/``_error``) is written once by the loop before it
sets ``_finished``; other threads read it after waiting on that event.
"""

from __future__ import annotations

import collections
import difflib
import threading
from collections import OrderedDict
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Collection,
    Dict,
    FrozenSet,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
)

from pyee import EventEmitter
from typing_extensions import Protocol

from ..errors import (
    APIError,
    APIStatusError,
    APITimeoutError,
    APIUserAbortError,
    InvalidStreamDataError,
    OpenAIError,
    StreamInterruptedError,
)
from ..hooks import Hooks, StreamEndInfo, StreamStartInfo
from ..transport import _fork
from ..transport._body import BodyReader
from ..transport._cancel import BodyControl, CancelScope, bound
from ..transport._http import IdleTimeout, Timeout, TimeoutTypes, Transport, as_timeout, iter_body
from ..transport._sse import DEFAULT_MAX_EVENT_BYTES
from ..transport._trace import traced
from . import _metrics
from ._events import ErrorEvent, Event, ResponseEvent
from ._metrics import Recorder, Recording, StreamMetrics

if TYPE_CHECKING:
    import requests

__all__ = ["Accumulator", "BaseStream", "check_event_name", "check_idle_timeout"]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# After close(), until_done() waits this long for the loop to wind down before it
# reports the abort anyway (a TCP connect in progress cannot be interrupted).
_CLOSE_GRACE = 0.5
# After [DONE], how long to wait for the end of a chunked body so that the
# connection can go back to the pool (servers send it right after [DONE]).
_END_GRACE = 0.05


class Accumulator(Protocol[R_co]):
    """What the engine needs of an API's sans-I/O accumulator."""

    def feed(self, payload: Dict[str, Any], raw_events: bool = True) -> List[Event]:
        """The events of one payload (raises ``InvalidStreamDataError`` with ``events`` so far).

        With ``raw_events`` false the events that only repeat the payload as it came (chat's
        ``chunk`` event) may be left out: nobody listens to them and nobody iterates.
        """

    def end(self) -> List[Event]:
        """The events that close the stream; the last one carries the result."""

    def snapshot(self) -> R_co:
        """The result assembled so far."""

    def error_from_payload(self, payload: Mapping[str, Any]) -> OpenAIError:
        """The typed error for an error payload, with the result so far attached."""

    @property
    def finished(self) -> bool:
        """Whether the payloads so far make a complete answer (a body may end without ``[DONE]``)."""


class BaseStream(EventEmitter, Generic[R]):
    """One streamed request. Nothing is sent until it is consumed.

    Register handlers with ``@stream.on("content.delta")`` and call
    :meth:`until_done`, or iterate it (``for event in stream``); handlers fire
    either way, in the order the events arrive. :meth:`start` runs the stream on
    a background thread instead. Use it as a context manager to be sure the
    HTTP response is closed.

    A handler that raises ends the stream: the response is closed, ``error``
    listeners are told, and the exception propagates from :meth:`until_done`
    (or the iteration). Errors are raised, never only emitted.

    Thread safety: :meth:`close`, :meth:`until_done`, ``on``/``once``/
    ``remove_listener``, :meth:`snapshot`, :attr:`metrics` and
    :attr:`recording` may be used from any thread while the stream runs. A
    listener present for the whole stream sees every event exactly once; one
    removed while an event is being dispatched may still receive that event.
    ``until_done()`` from a thread other than the one iterating waits for the
    end; from inside a handler of the same stream it raises at once (as
    ``Thread.join()`` refuses to join itself).

    For code that composes streams (a tool runner runs one per round):
    :meth:`snapshot` (the result so far), :attr:`recording` (the metrics
    with what adding several streams up takes) and :attr:`parent` (the
    composer, named in the stream's client hooks).
    """

    _path: ClassVar[str] = ""
    """The API path the request is POSTed to, relative to the base URL."""
    _protocol: ClassVar[str] = "an event stream"
    """What the body should be, for error messages."""
    _result_name: ClassVar[str] = "result"
    """What the result is called in messages (``completion``, ``response``)."""
    _raw_event_types: ClassVar[FrozenSet[str]] = frozenset()
    """The events that only repeat a payload as it came; made only for a listener or an iterator."""
    _unfinished: ClassVar[str] = "the stream did not say it finished"
    """Why a body that ended is not a complete answer, for the interrupted error's message."""
    _event_types: ClassVar[Optional[FrozenSet[str]]] = None
    """Every event name this stream emits: ``on``/``once``/``listeners`` refuse any other."""
    _event_aliases: ClassVar[Mapping[str, str]] = {}
    """Names other libraries use for these events, and what to use instead (for the refusal)."""
    operation_name: ClassVar[str] = "chat"
    """The GenAI operation this stream performs (OpenTelemetry's ``gen_ai.operation.name``)."""
    _content_kind: ClassVar[str] = "content.delta"
    """The event that carries answer text (counted in ``metrics.content_deltas``)."""
    _other_delta_kinds: ClassVar[FrozenSet[str]] = frozenset(
        {"reasoning.delta", "refusal.delta", "tool_call.delta"}
    )
    """Other events that carry generated output (counted in ``metrics.output_deltas``)."""

    def __init__(
        self,
        transport: Transport,
        body: Dict[str, Any],
        accumulator: Accumulator[R],
        *,
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, Optional[str]]] = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        idle_timeout: Optional[float] = None,
        extra_query: Optional[Mapping[str, Any]] = None,
        path: Optional[str] = None,
    ) -> None:
        super().__init__()
        check_idle_timeout(idle_timeout)
        if idle_timeout == float("inf"):
            idle_timeout = None
        self._transport = transport
        self._body = body
        self._timeout = timeout
        self._max_retries = max_retries
        self._extra_headers = extra_headers
        self._extra_query = extra_query
        self._request_path = self._path if path is None else path  # a client may route it (Azure)
        self._max_event_bytes = max_event_bytes
        self._idle_timeout = idle_timeout
        self._accumulator = accumulator
        self._acc_lock = threading.Lock()
        self._handlers: Dict[str, Tuple[Callable[..., Any], ...]] = {}
        self._want_raw = False  # a listener of a raw event exists (replaced with _handlers)
        self._response: Optional[requests.Response] = None
        self._control: Optional[BodyControl] = None
        self._reader: Optional[BodyReader] = None
        self._scope = CancelScope()
        self._state_lock = threading.Lock()
        self._iterator: Optional[Iterator[Event]] = None
        self._thread: Optional[threading.Thread] = None
        self._owner: Optional[threading.Thread] = None  # the thread pulling events, when not start()ed
        self._loop_thread: Optional[int] = None  # the thread the loop last ran on
        self._generation: Optional[int] = None  # the process (fork generation) the loop started in
        self._closed = False
        self._result: Optional[R] = None
        self._error: Optional[BaseException] = None
        self._finished = threading.Event()  # the loop ended, whichever way
        self._wake = threading.Event()  # the loop ended, or close() was called
        self.request_id: Optional[str] = None
        self._recorder = Recorder()
        self._recorder.call = self
        self._end_lock = threading.Lock()
        self._ended = False
        self._final_metrics: Optional[StreamMetrics] = None
        self._parent: Any = None  # see the parent property; set before the loop starts, then only read
        self._interrupt: Optional[BaseException] = None  # Ctrl-C or SystemExit that ended the loop
        self.hook_state: Dict[str, Any] = {}
        """Per-stream state for client hooks (an OpenTelemetry span...); lives as long as the stream."""

    def __repr__(self) -> str:
        model = self._body.get("model")
        return f"<{type(self).__name__} model={model!r} state={self.state}>"

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> str:
        """``new``, ``running``, ``done``, ``failed`` or ``closed``."""
        if self._result is not None:
            return "done"
        if self._closed:
            return "closed"
        if self._error is not None:
            return "failed"
        return "running" if self._iterator is not None else "new"

    @property
    def response(self) -> Optional[requests.Response]:
        """The HTTP response, once its headers arrived."""
        return self._response

    @property
    def parent(self) -> Any:
        """What runs this stream as one step of a larger call (a tool runner's round), else ``None``.

        The ``stream.start`` and ``stream.end`` client hooks name it as their
        ``parent`` (OpenTelemetry puts the stream's span under the parent's,
        found in its ``hook_state``). Code that composes streams sets it once,
        before the stream starts: setting it later, or to another parent,
        raises :class:`OpenAIError`.
        """
        return self._parent

    @parent.setter
    def parent(self, value: Any) -> None:
        with self._state_lock:
            if value is self._parent:
                return
            if self._iterator is not None:
                raise OpenAIError(
                    "a stream's parent is set before it starts (its stream.start hook named the one it had "
                    "then); set it right after opening the stream"
                )
            if self._parent is not None:
                raise OpenAIError(f"this stream already runs as a step of {self._parent!r}")
            self._parent = value

    def snapshot(self) -> R:
        """The result assembled from everything received so far (the final one once done); any thread.

        Before anything arrived it is an empty result. The API streams name it
        too: ``current_completion`` (chat), ``current_response`` (responses).
        """
        result = self._result
        if result is not None:
            return result
        with self._acc_lock:
            return self._accumulator.snapshot()

    # ------------------------------------------------------------------ listeners

    def _add_event_handler(self, event: str, k: Callable[..., Any], v: Callable[..., Any]) -> None:
        # on, once, add_listener and their decorator forms all arrive here.
        self._check_event_name(event)
        if "new_listener" in self._handlers:  # pyee's announcement, for whoever listens to it
            self.emit("new_listener", event, k)
        with self._lock:
            found = self._events.get(event)
            if found is None:
                found = self._events[event] = OrderedDict()
            found[k] = v
            self._publish_handlers(event)

    def _remove_listener(self, event: str, f: Callable[..., Any]) -> None:
        # pyee calls this with self._lock held.
        super()._remove_listener(event, f)
        self._publish_handlers(event)

    def remove_all_listeners(self, event: Optional[str] = None) -> None:
        """Remove every listener of ``event``, or of all events when ``event`` is None."""
        with self._lock:
            if event is None:
                self._events = {}
            else:
                self._events.pop(event, None)
            self._publish_handlers(event)

    def listeners(self, event: str) -> List[Callable[..., Any]]:
        """The listeners of ``event``, in the order they were added."""
        self._check_event_name(event)
        with self._lock:
            return list(self._events.get(event, {}).keys())

    def event_names(self) -> set[str]:
        """The events that have listeners."""
        with self._lock:
            return {name for name, handlers in self._events.items() if handlers}

    def _check_event_name(self, event: str) -> None:
        if self._event_types is not None:
            check_event_name(type(self).__name__, event, self._event_types, self._event_aliases)

    def _publish_handlers(self, event: Optional[str] = None) -> None:
        """Replace the loop's snapshot of the listeners of ``event`` (of all, if None).

        The caller holds ``self._lock``. The snapshot is a new dict each time,
        never one changed in place: the loop reads it without the lock.
        """
        if event is None:
            handlers = {name: tuple(found.values()) for name, found in self._events.items() if found}
        else:
            handlers = dict(self._handlers)
            found = self._events.get(event)
            if found:
                handlers[event] = tuple(found.values())
            else:
                handlers.pop(event, None)
        self._want_raw = not self._raw_event_types.isdisjoint(handlers)
        self._handlers = handlers

    # ------------------------------------------------------------------ consuming

    def __iter__(self) -> Iterator[Event]:
        with self._state_lock:
            if self._thread is not None:
                raise OpenAIError(
                    "this stream runs on a background thread since start(); use handlers "
                    "(stream.on(...)) and until_done(), or iterate a stream that was not started"
                )
            if self._iterator is not None:
                raise OpenAIError(
                    "this stream is already being consumed; a stream can be iterated once "
                    "(use until_done() or the snapshot for the result)"
                )
            self._iterator = self._run()
            self._owner = threading.current_thread()
        return self._iterator

    def start(self: _S) -> _S:
        """Run the stream on a background daemon thread and return at once.

        Handlers then run on that thread. Wait for the end with
        :meth:`until_done`; stop it with :meth:`close`. Iterating a started
        stream raises :class:`OpenAIError`. Calling ``start()`` again does
        nothing; starting a stream that is already being iterated raises.
        """
        with self._state_lock:
            if self._thread is not None:
                return self
            if self._iterator is not None:
                raise OpenAIError(
                    "this stream is already being consumed by iteration or until_done(); "
                    "call start() before consuming it"
                )
            self._iterator = self._run(yielding=False)
            thread = self._spawn(self._iterator)
        thread.start()
        return self

    def until_done(self, timeout: Optional[float] = None) -> R:
        """Wait for the end of the stream and return the result, or raise its error.

        A stream that nobody consumes yet runs in the calling thread when
        ``timeout`` is None; with a ``timeout`` it is started in the
        background first. A stream another thread iterates (or runs since
        :meth:`start`) is waited for, never consumed a second time. When
        ``timeout`` seconds pass before the end, the builtin
        :class:`TimeoutError` is raised and the stream goes on: call
        ``until_done()`` again, or :meth:`close`. Any other interruption of the
        wait (Ctrl-C) closes the stream. A stream closed by :meth:`close` raises
        :class:`APIUserAbortError` carrying the partial result. A finished
        stream returns (or raises) the same outcome again. Called from inside
        a handler of this same stream, it raises :class:`OpenAIError` at once.
        """
        if self._finished.is_set():
            return self._outcome()
        started_in = self._generation
        if started_in is not None and started_in != _fork.generation():
            raise _forked_error()
        here = threading.current_thread()
        spawned: Optional[threading.Thread] = None
        with self._state_lock:
            iterator = self._iterator
            running = iterator is not None and getattr(iterator, "gi_running", False)
            if running and self._loop_thread == here.ident:
                raise OpenAIError(
                    "until_done() was called from inside a handler of this same stream, which would "
                    "wait for itself forever; read the result in a 'completion' handler, or call "
                    "until_done() after the handler returns"
                )
            fresh = iterator is None
            if iterator is None:
                iterator = self._iterator = self._run(yielding=False)
                self._owner = here
            owner = self._owner
            pull_here = self._thread is None and not running and (
                owner is here or (owner is not None and not owner.is_alive())
            )
            if pull_here and timeout is not None:
                if owner is here and not fresh:
                    raise OpenAIError(
                        "this thread is iterating this stream, so until_done(timeout=...) would make a "
                        "second consumer of it; finish the iteration (or break out of it and call "
                        "until_done() without a timeout, which consumes the rest here)"
                    )
                # Nobody consumes it yet (or its iterating thread is gone): it runs in the background.
                spawned = self._spawn(iterator)
                pull_here = False
            elif pull_here:
                self._owner = here
        if spawned is not None:
            spawned.start()
        if pull_here:
            collections.deque(iterator, maxlen=0)
            return self._outcome()
        try:
            woke = self._wake.wait(timeout)
        except BaseException:
            self.close()  # Ctrl-C while waiting: nothing more arrives after it
            raise
        if not woke:
            raise TimeoutError(
                f"the stream did not finish within {timeout:g} s; it goes on in the background "
                "(call until_done() again to keep waiting, or close() to stop it)"
            )
        self._finished.wait(_CLOSE_GRACE)  # woken by close(): let the loop wind down
        return self._outcome()

    def close(self) -> None:
        """Stop the stream and release its connection. Safe at any time, from any thread, repeatedly.

        A read blocked on a silent server is unblocked at once; a request still
        being sent or waiting for its response headers is cut off; a retry
        backoff ends. :meth:`until_done` then raises :class:`APIUserAbortError`
        with the partial result, and so does the next step of an iteration.
        Closing a stream that already ended changes nothing.
        """
        with self._state_lock:
            if self._closed or self._finished.is_set() or self._result is not None:
                return  # ended already (the result is set at the completion event)
            self._closed = True
            iterator, thread = self._iterator, self._thread
        self._scope.cancel()
        control = self._control
        paused = iterator is not None and thread is None and not getattr(iterator, "gi_running", True)
        if control is not None:
            control.abort()
            if paused:
                control.finish(reuse=False)  # paused between two events: nobody else touches it now
        if paused:
            self._report_end()  # nobody may resume it; its end is now (the loop would report it once)
        self._wake.set()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_CLOSE_GRACE)
        iterator = self._iterator
        if iterator is not None and thread is None and hasattr(iterator, "close"):
            try:
                iterator.close()
            except ValueError:  # still running on another thread; close() above stops it
                pass

    # ------------------------------------------------------------------ the loop

    def _spawn(self, iterator: Iterator[Event]) -> threading.Thread:
        """A daemon thread that drains ``iterator`` (the caller holds ``_state_lock``)."""
        thread = threading.Thread(
            target=self._drain,
            args=(iterator,),
            name=f"openai_stream {self._body.get('model')!s:.40}",
            daemon=True,
        )
        self._thread = thread
        self._owner = None
        return thread

    def _drain(self, iterator: Iterator[Event]) -> None:
        """The body of a background thread: run the loop to its end."""
        self._loop_thread = threading.get_ident()  # the loop may have started on another thread
        try:
            collections.deque(iterator, maxlen=0)
        except BaseException:  # recorded on the stream; until_done() raises it
            pass

    def _outcome(self) -> R:
        result = self._result
        if result is not None:
            return result
        if self._error is not None:
            raise self._error
        raise self._abort_error()

    def _request_timeout(self) -> Timeout:
        """The request's timeouts, with the socket read timeout no longer than ``idle_timeout``."""
        limits = as_timeout(self._timeout) if self._timeout is not None else self._transport.timeout
        idle = self._idle_timeout
        if idle is not None and (limits.read is None or idle <= limits.read):
            # The type names the setting in errors.
            return IdleTimeout(connect=limits.connect, read=idle, timeout_read=limits.read)
        return limits

    def _run(self, yielding: bool = True) -> Iterator[Event]:
        """The loop: send, read, feed, dispatch. Yields each event after its handlers ran.

        A stream that nobody iterates (``until_done()``, ``start()``) runs it
        with ``yielding`` false: the same loop without a generator switch per
        event, and without the raw payload events nobody listens to.
        """
        self._loop_thread = threading.get_ident()
        self._generation = _fork.generation()
        accumulator = self._accumulator
        acc_lock = self._acc_lock
        tracked = False
        recorder = self._recorder
        recorder.start()
        hooks = self._transport.hooks
        if hooks.active:
            self._hook_start(hooks)
        # The metrics the loop keeps (see _metrics): one clock reading per payload, which the deltas
        # it carries share; the gap sample is offered only the gaps it drew (see Recorder.sample).
        clock = _metrics.clock_function()
        content_kind = self._content_kind
        other_kinds = self._other_delta_kinds
        rare_kinds = other_kinds | {"error"}  # one test for the events that are neither content nor these
        last = gap_max = 0.0
        gaps = 0
        next_sample = 1
        fill = _metrics.RESERVOIR_SIZE  # gaps before this one are all kept: appended here, no call
        keep = recorder.reservoir.append
        seen_content = seen_other = False
        try:
            if self._closed:
                raise self._abort_error()
            self._transport.track(self)
            tracked = True
            limits = self._request_timeout()
            with bound(self._scope), traced(recorder):
                response = self._send(limits)
            self._response = response
            control = self._control = BodyControl(response, limits.read)
            self.request_id = response.headers.get("x-request-id")
            if self._closed:
                raise self._abort_error()
            first = ResponseEvent(response.status_code, response.headers, self.request_id)
            handlers = self._handlers.get("response")
            if handlers:
                for handler in handlers:
                    handler(first)
            if yielding:
                yield first
            feed = accumulator.feed
            resumes = 0
            while True:  # one pass per HTTP response: the first, then any the stream resumes on
                reader = self._reader = BodyReader(
                    iter_body(response),
                    content_type=response.headers.get("content-type") or "",
                    error_for=self._error_for_payload,
                    finished=self._accumulator_finished,
                    protocol=self._protocol,
                    unfinished=self._unfinished,
                    max_event_bytes=self._max_event_bytes,
                    idle_timeout=self._idle_timeout,
                    read_timeout=control.read_timeout,
                    set_read_timeout=control.set_timeout,
                )
                reading = True  # False while an event is fed and handled: only the body's own
                try:  # failures may be resumed, never a handler's
                    for payload in reader:
                        reading = False
                        now = clock()
                        if last:
                            gap = now - last
                            if gap > gap_max:
                                gap_max = recorder.gap_max = gap
                            gaps += 1
                            if gaps >= next_sample:
                                if gaps < fill:
                                    keep(gap)
                                    next_sample = gaps + 1
                                else:
                                    next_sample = recorder.sample(gap, gaps)
                        else:
                            recorder.first_chunk_at = now
                        last = now
                        if self._closed:
                            raise self._abort_error()
                        try:
                            with acc_lock:
                                events = feed(payload, yielding or self._want_raw)
                        except InvalidStreamDataError as exc:
                            # The events this payload produced before it failed: handlers see all the
                            # result holds, then the error.
                            events = [*exc.events, ErrorEvent(exc)]
                        for event in events:
                            if self._closed:
                                raise self._abort_error()
                            kind = event.type
                            if kind == content_kind:
                                recorder.content_deltas += 1
                                if not seen_content:
                                    seen_content = True
                                    recorder.first_token_at = now
                            elif kind in rare_kinds:
                                if kind == "error":
                                    raise event.error  # type: ignore[attr-defined]
                                recorder.other_deltas += 1
                                if not seen_other:
                                    seen_other = True
                                    recorder.first_other_at = now
                            handlers = self._handlers.get(kind)
                            if handlers:
                                for handler in handlers:
                                    handler(event)
                            if yielding:
                                yield event
                                if self._generation != _fork.generation():
                                    raise _forked_error()  # resumed in a forked child
                        reading = True
                except (StreamInterruptedError, APITimeoutError) as exc:
                    if not reading or self._closed:
                        raise
                    resumes += 1
                    try:
                        with bound(self._scope), traced(recorder):
                            resumed = self._resume(exc, resumes, limits)
                    except OpenAIError as failure:  # the resume's own request failed: say what it resumed
                        raise failure from exc
                    if resumed is None:
                        raise
                    control.finish(reuse=False)
                    if self._closed:
                        resumed.close()
                        raise self._abort_error() from None
                    response = self._response = resumed
                    control = self._control = BodyControl(response, limits.read)
                    recorder.resumed(reader.payloads, reader.received)  # the next reader counts anew
                    continue
                break
            if reader.done:
                control.read_end(_END_GRACE)
            if self._closed:
                raise self._abort_error()
            with acc_lock:
                events = accumulator.end()
            for event in events:
                if self._closed:
                    raise self._abort_error()
                kind = event.type
                if kind == "error":
                    raise event.error  # type: ignore[attr-defined]
                if kind == "completion":
                    self._result = event.completion  # type: ignore[attr-defined]
                handlers = self._handlers.get(kind)
                if handlers:
                    for handler in handlers:
                        handler(event)
                if yielding:
                    yield event
        except GeneratorExit:
            # The iterator was closed or dropped. Past the completion event the stream is done
            # (a with block left right after it); before it, the stream was closed unfinished.
            if self._result is None:
                self._closed = True
            recorder.last_chunk_at = last or None
            # Closed while paused between two events: by __exit__ (after close() reported the end),
            # or by the garbage collector, which must not run hooks (see _report_end).
            self._report_end(deferred=True)
            raise
        except BaseException as exc:
            self._result = None
            recorder.last_chunk_at = last or None
            error = self._fail(exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            recorder.last_chunk_at = last or None
            self._release(reuse=self._result is not None and not self._closed)
            if tracked:
                self._transport.untrack(self)
            self._report_end()
            self._finished.set()
            self._wake.set()

    def _send(self, limits: Timeout) -> requests.Response:
        """Send the stream's request and return the response whose body is the stream."""
        return self._transport.post(
            self._request_path,
            self._body,
            stream=True,
            timeout=limits,
            max_retries=self._max_retries,
            extra_headers=self._extra_headers,
            extra_query=self._extra_query,
        )

    def _resume(self, error: BaseException, attempt: int, limits: Timeout) -> Optional[requests.Response]:
        """A response that continues a body cut by ``error`` (the ``attempt``-th time), or None.

        None (the default) lets ``error`` end the stream. An API whose server
        can send the rest of a stream (the Responses API) overrides it; what
        it raises ends the stream instead.
        """
        return None

    # ------------------------------------------------------------------ metrics and hooks

    @property
    def metrics(self) -> StreamMetrics:
        """What this stream measured so far (final once it ended): see :class:`~openai_stream.StreamMetrics`.

        Any thread may read it at any time; each read is a new snapshot.
        """
        final = self._final_metrics
        if final is not None:
            return final
        return self._measure(finished=False)

    @property
    def recording(self) -> Recording:
        """:attr:`metrics` with the clock readings and the gap sample behind them; any thread.

        For code that adds several streams' metrics up (a tool runner's
        rounds): see :class:`~openai_stream.Recording`.
        """
        return self._recorder.recording(self.metrics)

    def _measure(self, *, finished: bool) -> StreamMetrics:
        reader = self._reader
        result: Any = self._result
        if result is None and (reader is not None and reader.payloads):
            try:
                result = self.snapshot()
            except Exception:  # a snapshot of a broken stream must not break the metrics
                result = None
        recorder = self._recorder
        return recorder.snapshot(
            chunks=reader.payloads if reader is not None else 0,
            received=reader.received if reader is not None else 0,
            usage=getattr(result, "usage", None) if result is not None else None,
            finish_reasons=finish_reasons(result),
            finished=finished,
        )

    def _hook_start(self, hooks: Hooks) -> None:
        if hooks.wants("stream.start"):
            hooks.emit("stream.start", StreamStartInfo(self, self._body, self._parent))

    def _report_end(self, deferred: bool = False) -> None:
        """Freeze the metrics and call the ``stream.end`` hooks, once, whoever ends the stream.

        ``deferred``: the generator is being closed outside the loop (by the
        garbage collector, for a stream dropped half-read), so the hooks run on
        a short-lived thread of their own rather than inside the collector.
        """
        if self._recorder.started is None:
            return  # never ran: nothing was sent, nothing to report
        with self._end_lock:
            if self._ended:
                return
            self._ended = True
            self._recorder.ended_at = _metrics.now()
            metrics = self._final_metrics = self._measure(finished=True)
        hooks = self._transport.hooks
        if not (hooks.active and hooks.wants("stream.end")):
            return
        outcome, error = self._end_state()
        info = StreamEndInfo(self, metrics, outcome, error, self._result_or_snapshot(), self._parent)
        if deferred:
            emit_elsewhere(hooks, "stream.end", info)
        else:
            hooks.emit("stream.end", info)

    def _end_state(self) -> Tuple[str, Optional[BaseException]]:
        """``done``, ``failed`` or ``closed``, and the error that goes with it."""
        if self._result is not None:
            return "done", None
        error = self._interrupt or self._error
        if self._closed:
            if error is None or not isinstance(error, (APIUserAbortError, KeyboardInterrupt, SystemExit)):
                error = self._abort_error()
            return "closed", error
        return "failed", error

    def _result_or_snapshot(self) -> Any:
        if self._result is not None:
            return self._result
        try:
            return self.snapshot()
        except Exception:
            return None

    def _accumulator_finished(self) -> bool:
        with self._acc_lock:
            return self._accumulator.finished

    def _error_for_payload(self, payload: Dict[str, Any]) -> OpenAIError:
        with self._acc_lock:
            return self._accumulator.error_from_payload(payload)

    def _abort_error(self) -> APIUserAbortError:
        return APIUserAbortError(
            f"the stream was closed before it finished; the {self._result_name} so far is attached "
            "as error.completion",
            completion=self.snapshot(),
        )

    def _release(self, reuse: bool) -> None:
        """Close the response; with ``reuse``, a body read to its end returns its connection to the pool."""
        if self._control is not None:
            self._control.finish(reuse=reuse)
        elif self._response is not None:
            self._response.close()

    def _fail(self, exc: BaseException) -> BaseException:
        """Record the error that ends the stream, tell ``error`` listeners; return what to raise.

        After close() every error is the abort. An interruption that is not
        an ``Exception`` (Ctrl-C, SystemExit) is raised as it is, and leaves
        the stream closed: later calls raise :class:`APIUserAbortError`.
        """
        if not isinstance(exc, Exception):
            with self._state_lock:
                self._closed = True
            self._interrupt = exc
            self._error = self._abort_error()
            self._release(reuse=False)
            return exc
        if self._closed and isinstance(exc, OpenAIError) and not isinstance(exc, APIUserAbortError):
            exc = self._abort_error()
        if isinstance(exc, OpenAIError):
            # Error payloads and quoted lines come from the server, which may echo the key.
            self._transport.redact_error(exc)
        if isinstance(exc, APIError):
            if exc.completion is None and self._reader is not None and self._reader.received:
                exc.completion = self.snapshot()
            if isinstance(exc, APIStatusError) and exc.request_id is None:
                exc.request_id = self.request_id
        self._error = exc
        self._release(reuse=False)
        handlers = self._handlers.get("error")
        if handlers:
            event = ErrorEvent(exc)
            try:
                for handler in handlers:
                    handler(event)
            except Exception as listener_error:
                # The same outcome every time: the listener's error, chained to the stream's.
                listener_error.__cause__ = exc
                self._error = listener_error
                return listener_error
        return exc


_S = TypeVar("_S", bound=BaseStream[Any])


def finish_reasons(result: Any) -> Tuple[Optional[str], ...]:
    """One finish reason per choice of a chat completion; for a Responses result, its outcome.

    A response that completed counts as ``stop``; an incomplete one gives its
    ``incomplete_details.reason`` (``max_output_tokens``...), else its status.
    """
    if result is None:
        return ()
    choices = getattr(result, "choices", None)
    if choices is not None:
        return tuple(getattr(choice, "finish_reason", None) for choice in choices)
    status = getattr(result, "status", None)
    if status is None:
        return ()
    if status == "completed":
        return ("stop",)
    details = getattr(result, "incomplete_details", None)
    reason = getattr(details, "reason", None) if details is not None else None
    return (reason if isinstance(reason, str) else str(status),)


def emit_elsewhere(hooks: Hooks, name: str, info: Any) -> None:
    """Call the hooks of ``name`` on a short-lived daemon thread (inline at interpreter shutdown)."""
    try:
        thread = threading.Thread(target=hooks.emit, args=(name, info), name="openai_stream hooks")
        thread.daemon = True
        thread.start()
    except RuntimeError:  # no new threads at interpreter shutdown
        hooks.emit(name, info)


PYEE_EVENTS = frozenset({"error", "new_listener"})
"""Events pyee itself emits, accepted on every emitter."""


def check_event_name(
    owner: str, event: object, known: Collection[str], aliases: Mapping[str, str] = {}
) -> None:
    """Raise ValueError unless ``event`` is one of ``known`` (or pyee's ``error``/``new_listener``).

    The message suggests the closest known name (``difflib``), or what
    ``aliases`` says to use for a name another library gives the event.
    A handler registered for a misspelled name would never fire.
    """
    if event in known or event in PYEE_EVENTS:
        return
    if not isinstance(event, str):
        raise TypeError(f"an event name is a string, got {type(event).__name__}: {event!r:.80}")
    names = sorted(set(known) | PYEE_EVENTS)
    instead = aliases.get(event)
    if instead is None:
        close = difflib.get_close_matches(event, names, n=1, cutoff=0.6)
        instead = f"did you mean {close[0]!r}?" if close else "no event has a similar name."
    raise ValueError(
        f"{owner} has no event {event!r}, so a handler for it would never run; {instead} "
        f"Its events: {', '.join(names)}"
    )


def _forked_error() -> OpenAIError:
    return OpenAIError(
        "this stream was started in the parent process before os.fork(); it cannot go on in the "
        "forked child, whose copy of its connection belongs to the parent: start a new stream in "
        "the child"
    )


def check_idle_timeout(seconds: Optional[float]) -> None:
    """Raise ValueError unless ``seconds`` is None (no limit) or above 0."""
    if seconds is not None and not seconds > 0:
        raise ValueError("idle_timeout must be a number of seconds above 0 (or None for no limit)")


