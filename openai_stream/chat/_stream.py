"""The dispatcher: a pyee EventEmitter that runs the request and emits every event.

Data flows one way: the transport gives bytes, :class:`~openai_stream.SSEDecoder`
gives events, :class:`~openai_stream.ChatCompletionAccumulator`
gives typed events, and :class:`ChatCompletionStream` hands each one to the
registered handlers and to whoever iterates it.

Threads: a stream runs its loop in the thread that consumes it, or on its own
daemon thread after :meth:`ChatCompletionStream.start`. :meth:`~ChatCompletionStream.close`
works from any thread, listeners may be added and removed from any thread while
it runs, and ``idle_timeout`` bounds the silence between data events.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional

import requests
from pyee import EventEmitter

from ..engine._events import ErrorEvent, Event, ResponseEvent
from ..errors import (
    APIError,
    APIStatusError,
    APITimeoutError,
    APIUserAbortError,
    InvalidStreamDataError,
    OpenAIError,
    StreamInterruptedError,
    is_error_payload,
)
from ..transport._cancel import BodyControl, CancelScope, bound
from ..transport._http import Timeout, TimeoutTypes, Transport, _quote, as_timeout, iter_body, read_json
from ..transport._sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder
from ._accumulator import ChatCompletionAccumulator
from ._completion import ChatCompletion

__all__ = ["ChatCompletionStream"]

_DONE = "[DONE]"
# After close(), until_done() waits this long for the loop to wind down before it
# reports the abort anyway (a TCP connect in progress cannot be interrupted).
_CLOSE_GRACE = 0.5
# After [DONE], how long to wait for the end of a chunked body so that the
# connection can go back to the pool (servers send it right after [DONE]).
_END_GRACE = 0.05
# How much of a body that is not an event stream an error quotes (and keeps as its body).
_HEAD_BYTES = 4096


class ChatCompletionStream(EventEmitter):
    """One streamed chat completion. Nothing is sent until it is consumed.

    Register handlers with ``@stream.on("content.delta")`` and call
    :meth:`until_done`, or iterate it (``for event in stream``); handlers fire
    either way, in the order the events arrive. :meth:`start` runs the stream on
    a background thread instead. Use it as a context manager to be sure the
    HTTP response is closed.

    A handler that raises ends the stream: the response is closed, ``error``
    listeners are told, and the exception propagates from :meth:`until_done`
    (or the iteration). Errors are raised, never only emitted.

    Thread safety: :meth:`close`, :meth:`until_done`, ``on``/``once``/
    ``remove_listener`` and :attr:`current_completion` may be called from any
    thread while the stream runs. A listener present for the whole stream sees
    every event exactly once; one removed while an event is being dispatched may
    still receive that event.
    """

    def __init__(
        self,
        transport: Transport,
        body: Dict[str, Any],
        *,
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        idle_timeout: Optional[float] = None,
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
        self._max_event_bytes = max_event_bytes
        self._idle_timeout = idle_timeout
        self._accumulator = ChatCompletionAccumulator(response_format=body.get("response_format"))
        self._response: Optional[requests.Response] = None
        self._control: Optional[BodyControl] = None
        self._scope = CancelScope()
        self._iterator: Optional[Iterator[Event]] = None
        self._thread: Optional[threading.Thread] = None
        self._completion: Optional[ChatCompletion] = None
        self._error: Optional[BaseException] = None
        self._closed = False
        self._state_lock = threading.Lock()
        self._finished = threading.Event()  # the loop ended, whichever way
        self._wake = threading.Event()  # the loop ended, or close() was called
        self.request_id: Optional[str] = None

    def __repr__(self) -> str:
        model = self._body.get("model")
        return f"<ChatCompletionStream model={model!r} state={self.state}>"

    @property
    def state(self) -> str:
        """``new``, ``running``, ``done``, ``failed`` or ``closed``."""
        if self._completion is not None:
            return "done"
        if self._closed:
            return "closed"
        if self._error is not None:
            return "failed"
        return "running" if self._iterator is not None else "new"

    @property
    def current_completion(self) -> ChatCompletion:
        """The completion assembled from everything received so far (any thread may ask)."""
        if self._completion is not None:
            return self._completion
        return self._snapshot()

    @property
    def response(self) -> Optional[requests.Response]:
        """The HTTP response, once its headers arrived."""
        return self._response

    def remove_all_listeners(self, event: Optional[str] = None) -> None:
        """Remove every listener of ``event``, or of all events when ``event`` is None."""
        # pyee replaces its listener dict here; the running loop holds on to it, so clear it in place.
        with self._lock:
            if event is None:
                self._events.clear()
            else:
                self._events.pop(event, None)

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
                    "(use stream.current_completion or until_done() for the result)"
                )
            self._iterator = self._run()
        return self._iterator

    def start(self) -> ChatCompletionStream:
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
            self._iterator = self._run()
            thread = self._spawn(self._iterator)
        thread.start()
        return self

    def until_done(self, timeout: Optional[float] = None) -> ChatCompletion:
        """Wait for the end of the stream and return the completion, or raise its error.

        A stream that was not started runs in the calling thread (as it always
        did) when ``timeout`` is None; with a ``timeout`` it is started in the
        background first. When ``timeout`` seconds pass before the end, the
        builtin :class:`TimeoutError` is raised and the stream goes on: call
        ``until_done()`` again, or :meth:`close`. A stream closed by
        :meth:`close` raises :class:`APIUserAbortError` carrying the partial
        completion. A finished stream returns (or raises) the same result again.
        """
        if self._completion is not None:
            return self._completion
        if self._error is not None:
            raise self._error
        with self._state_lock:
            iterator = self._iterator
            if iterator is None:
                iterator = self._iterator = self._run()
            idle_here = self._thread is None and not getattr(iterator, "gi_running", False)
            if idle_here and timeout is not None:
                thread = self._spawn(iterator)  # a paused pull-iteration continues in the background
                thread.start()
                idle_here = False
        if idle_here:
            collections.deque(iterator, maxlen=0)
            return self._result()
        if not self._wake.wait(timeout):
            raise TimeoutError(
                f"the stream did not finish within {timeout:g} s; it goes on in the background "
                "(call until_done() again to keep waiting, or close() to stop it)"
            )
        self._finished.wait(_CLOSE_GRACE)  # woken by close(): let the loop wind down
        return self._result()

    def close(self) -> None:
        """Stop the stream and release its connection. Safe at any time, from any thread, repeatedly.

        A read blocked on a silent server is unblocked at once; a request still
        being sent or waiting for its response headers is cut off; a retry
        backoff ends. :meth:`until_done` then raises :class:`APIUserAbortError`
        with the partial completion, and so does the next step of an
        iteration. Closing a stream that already ended changes nothing.
        """
        with self._state_lock:
            if self._closed or self._finished.is_set():
                return
            self._closed = True
            iterator, thread = self._iterator, self._thread
        self._scope.cancel()
        control = self._control
        if control is not None:
            control.abort()
            if thread is None and not getattr(iterator, "gi_running", True):
                control.finish(reuse=False)  # paused between two events: nobody else touches it now
        self._wake.set()

    def __enter__(self) -> ChatCompletionStream:
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

    def _spawn(self, iterator: Iterator[Event]) -> threading.Thread:
        thread = threading.Thread(
            target=_drain,
            args=(iterator,),
            name=f"openai_stream {self._body.get('model')!s:.40}",
            daemon=True,
        )
        self._thread = thread
        return thread

    def _result(self) -> ChatCompletion:
        if self._completion is not None:
            return self._completion
        if self._error is not None:
            raise self._error
        raise self._abort_error()

    def _request_timeout(self) -> Timeout:
        """The request's timeouts, with the socket read timeout no longer than ``idle_timeout``."""
        limits = as_timeout(self._timeout) if self._timeout is not None else self._transport.timeout
        idle = self._idle_timeout
        if idle is not None and (limits.read is None or idle < limits.read):
            return Timeout(connect=limits.connect, read=idle)
        return limits

    def _run(self) -> Iterator[Event]:
        listeners = self._events  # read without the lock: lookups are atomic
        try:
            if self._closed:
                raise self._abort_error()
            limits = self._request_timeout()
            with bound(self._scope):
                response = self._transport.post(
                    "chat/completions",
                    self._body,
                    stream=True,
                    timeout=limits,
                    max_retries=self._max_retries,
                    extra_headers=self._extra_headers,
                )
            self._response = response
            control = self._control = BodyControl(response, limits.read)
            self.request_id = response.headers.get("x-request-id")
            if self._closed:
                raise self._abort_error()
            first: Event = ResponseEvent(response.status_code, response.headers, self.request_id)
            for events in self._event_lists(first, response, control):
                for event in events:
                    if self._closed:
                        raise self._abort_error()
                    kind = event.type
                    if kind == "error":
                        raise event.error  # type: ignore[union-attr]
                    if kind == "completion":
                        self._completion = event.completion  # type: ignore[union-attr]
                    handlers = listeners.get(kind)
                    if handlers:
                        # pyee's emit() without its lock and per-call allocations: copying the
                        # handlers is one C call under the GIL, so it is still a consistent snapshot.
                        for handler in list(handlers.values()):
                            handler(event)
                    yield event
        except GeneratorExit:
            self._closed = True
            raise
        except BaseException as exc:
            self._completion = None
            error = self._fail(exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            self._release(reuse=self._completion is not None and not self._closed)
            self._finished.set()
            self._wake.set()

    def _event_lists(
        self, first: Event, response: requests.Response, control: BodyControl
    ) -> Iterator[List[Event]]:
        """``first``, then the events of each chunk, then those that end the stream."""
        yield [first]
        feed = self._accumulator.feed
        for chunk in self._chunks(response, control):
            try:
                yield feed(chunk)
            except InvalidStreamDataError as exc:
                # The events this chunk produced before it failed: handlers see all the
                # completion holds, then the error.
                yield [*exc.events, ErrorEvent(exc)]
        yield self._accumulator.end()

    def _chunks(self, response: requests.Response, control: BodyControl) -> Iterator[Dict[str, Any]]:
        """The decoded chunks of the body; raises when the stream breaks, reports an error or idles."""
        content_type = response.headers.get("content-type") or ""
        media = content_type.partition(";")[0].strip().lower()
        if media == "application/json":
            yield from self._json_body(response)
            return
        body = iter_body(response)
        head: Optional[bytearray] = None
        if media and media != "text/event-stream":
            # Proxies relabel event streams (text/plain, even text/html), so another type is not
            # refused up front: its body is decoded as SSE all the same, and only when no data
            # line came at all is it reported as not a stream (a captive portal, a wrong
            # base_url), quoting its start. A missing type is taken as SSE and never refused.
            head = bytearray()
            body = _keep_head(body, head)
        decoder = SSEDecoder(self._max_event_bytes)
        feed = decoder.feed
        loads = _loads
        done = False
        idle = self._idle_timeout
        read_limit = control.read_timeout
        deadline = time.monotonic() + idle if idle is not None else 0.0
        fresh = shortened = False
        try:
            for data in body:
                if self._closed:
                    raise self._abort_error()
                for sse in feed(data):
                    text = sse.data
                    if text == _DONE:
                        done = True
                        break
                    try:
                        chunk = loads(text)
                    except (ValueError, RecursionError):
                        if not text.strip():  # an empty data: field carries nothing (SSE spec)
                            continue
                        raise _bad_json(text) from None
                    if sse.event == "error":
                        raise self._accumulator.error_from_payload(_error_payload(chunk))
                    fresh = True
                    yield chunk
                if done:
                    control.read_end(_END_GRACE)
                    return
                decoder.raise_pending()  # a bad line that followed good events in the same read
                if idle is not None:
                    # Keep-alive comments do not count: only data events move the deadline.
                    now = time.monotonic()
                    if fresh:
                        fresh = False
                        deadline = now + idle
                        if shortened:
                            shortened = False
                            control.set_timeout(read_limit)
                    elif now >= deadline:
                        raise self._idle_error()
                    elif read_limit is None or deadline - now < read_limit:
                        shortened = True
                        control.set_timeout(deadline - now)
        except APITimeoutError:
            if self._closed:
                raise self._abort_error() from None
            if idle is not None and (shortened or read_limit == idle):
                raise self._idle_error() from None
            raise
        if self._closed:
            raise self._abort_error()
        trailing = decoder.end()
        if trailing is not None and trailing.data.strip():
            if trailing.data == _DONE:
                return
            try:
                chunk = loads(trailing.data)
            except (ValueError, RecursionError):
                raise StreamInterruptedError(
                    "the body ended in the middle of an event "
                    f"({len(trailing.data)} characters of an unfinished line); retry the request"
                ) from None
            if trailing.event == "error":
                raise self._accumulator.error_from_payload(_error_payload(chunk))
            yield chunk
        if head is not None and not self._accumulator.chunk_count:
            raise _not_a_stream(content_type, bytes(head))
        if not self._accumulator.all_choices_finished:
            raise StreamInterruptedError(
                "the body ended before the stream was complete (no [DONE] and no finish_reason); "
                "the completion so far is attached as error.completion; retry the request"
            )

    def _json_body(self, response: requests.Response) -> Iterator[Dict[str, Any]]:
        """A server that answered the stream request with one whole JSON completion."""
        payload = read_json(response, self._max_event_bytes)
        if is_error_payload(payload):
            raise self._accumulator.error_from_payload(payload)
        yield payload

    def _snapshot(self) -> ChatCompletion:
        # Another thread may be feeding the accumulator; a dict growing under the copy makes it retry.
        for _ in range(10):
            try:
                return self._accumulator.completion()
            except RuntimeError:
                continue
        return self._accumulator.completion()

    def _abort_error(self) -> APIUserAbortError:
        return APIUserAbortError(
            "the stream was closed before it finished; the completion so far is attached as error.completion",
            completion=self._snapshot(),
        )

    def _idle_error(self) -> APITimeoutError:
        return APITimeoutError(
            f"no data arrived for {self._idle_timeout:g} s (idle_timeout; keep-alive comments do not "
            "count); the completion so far is attached as error.completion; retry the request, or "
            "raise idle_timeout if the model pauses longer"
        )

    def _release(self, reuse: bool) -> None:
        """Close the response; with ``reuse``, a body read to its end returns its connection to the pool."""
        if self._control is not None:
            self._control.finish(reuse=reuse)
        elif self._response is not None:
            self._response.close()

    def _fail(self, exc: BaseException) -> BaseException:
        """Record the error that ends the stream (after close(): the abort) and tell listeners."""
        if self._closed and not isinstance(exc, APIUserAbortError) and isinstance(exc, OpenAIError):
            exc = self._abort_error()
        if isinstance(exc, OpenAIError):
            # Error payloads and quoted lines come from the server, which may echo the key.
            self._transport.redact_error(exc)
        if isinstance(exc, APIError):
            if exc.completion is None:
                exc.completion = self._snapshot()
            if isinstance(exc, APIStatusError) and exc.request_id is None:
                exc.request_id = self.request_id
        self._error = exc
        self._release(reuse=False)
        if isinstance(exc, Exception) and "error" in self._events:
            self.emit("error", ErrorEvent(exc))
        return exc


def check_idle_timeout(seconds: Optional[float]) -> None:
    """Raise ValueError unless ``seconds`` is None (no limit) or above 0."""
    if seconds is not None and not seconds > 0:
        raise ValueError("idle_timeout must be a number of seconds above 0 (or None for no limit)")


def _drain(iterator: Iterator[Event]) -> None:
    """The body of a :meth:`ChatCompletionStream.start` thread."""
    try:
        collections.deque(iterator, maxlen=0)
    except BaseException:  # recorded on the stream; until_done() raises it
        pass


_raw_decode = json.JSONDecoder().raw_decode


def _loads(text: str) -> Any:
    """``json.loads`` for a data line, without its two whitespace regex passes in the usual case."""
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)  # leading whitespace, or the error json.loads itself reports
    if end != len(text):
        return json.loads(text)
    return value


def _error_payload(chunk: Any) -> Dict[str, Any]:
    if isinstance(chunk, dict):
        return chunk
    return {"error": {"message": str(chunk)}}


def _keep_head(body: Iterator[bytes], head: bytearray) -> Iterator[bytes]:
    """``body`` unchanged, copying its first bytes into ``head`` for an error message."""
    for data in body:
        if len(head) < _HEAD_BYTES:
            head += data[: _HEAD_BYTES - len(head)]
        yield data


def _not_a_stream(content_type: str, head: bytes) -> InvalidStreamDataError:
    text = head.decode("utf-8", "replace")
    shown = " ".join(text.split())
    start = f"starts {_quote(shown)}" if shown else "is empty"
    return InvalidStreamDataError(
        f"the server answered with Content-Type {content_type!r}, not an event stream, and its "
        f"body holds no stream events (it {start}); check base_url (it should point at the API, "
        "e.g. https://api.openai.com/v1) and any proxy or captive portal in between",
        body=text,
    )


def _bad_json(text: str) -> InvalidStreamDataError:
    prefix = text[:200] + ("..." if len(text) > 200 else "")
    return InvalidStreamDataError(
        f"a data line of the stream is not valid JSON: {prefix!r}; "
        "the server or a proxy sent something that is not a Chat Completions stream",
        body=text[:4096],
    )
