"""The dispatcher: a pyee EventEmitter that runs the request and emits every event.

Data flows one way: the transport gives bytes, :class:`~openai_stream.sse.SSEDecoder`
gives events, :class:`~openai_stream.accumulator.ChatCompletionAccumulator`
gives typed events, and :class:`ChatCompletionStream` hands each one to the
registered handlers and to whoever iterates it.
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Any, Dict, Iterator, Mapping, Optional

import requests
from pyee import EventEmitter

from .accumulator import ChatCompletionAccumulator
from .completion import ChatCompletion
from .errors import (
    APIError,
    APIStatusError,
    APIUserAbortError,
    InvalidStreamDataError,
    OpenAIError,
    StreamInterruptedError,
)
from .events import ErrorEvent, Event, ResponseEvent
from .sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder
from .transport import TimeoutTypes, Transport, iter_body

__all__ = ["ChatCompletionStream"]

_DONE = "[DONE]"


class ChatCompletionStream(EventEmitter):
    """One streamed chat completion. Nothing is sent until it is consumed.

    Register handlers with ``@stream.on("content.delta")`` and call
    :meth:`until_done`, or iterate it (``for event in stream``); handlers fire
    either way, in the order the events arrive. Use it as a context manager to
    be sure the HTTP response is closed.

    A handler that raises ends the stream: the response is closed, ``error``
    listeners are told, and the exception propagates from :meth:`until_done`
    (or the iteration). Errors are raised, never only emitted.
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
    ) -> None:
        super().__init__()
        self._transport = transport
        self._body = body
        self._timeout = timeout
        self._max_retries = max_retries
        self._extra_headers = extra_headers
        self._max_event_bytes = max_event_bytes
        self._accumulator = ChatCompletionAccumulator()
        self._response: Optional[requests.Response] = None
        self._iterator: Optional[Iterator[Event]] = None
        self._completion: Optional[ChatCompletion] = None
        self._error: Optional[BaseException] = None
        self._closed = False
        self._state_lock = threading.Lock()
        self.request_id: Optional[str] = None

    def __repr__(self) -> str:
        model = self._body.get("model")
        return f"<ChatCompletionStream model={model!r} state={self.state}>"

    @property
    def state(self) -> str:
        """``new``, ``running``, ``done``, ``failed`` or ``closed``."""
        if self._completion is not None:
            return "done"
        if self._error is not None:
            return "failed"
        if self._closed:
            return "closed"
        return "running" if self._iterator is not None else "new"

    @property
    def current_completion(self) -> ChatCompletion:
        """The completion assembled from everything received so far."""
        if self._completion is not None:
            return self._completion
        return self._accumulator.completion()

    @property
    def response(self) -> Optional[requests.Response]:
        """The HTTP response, once its headers arrived."""
        return self._response

    def __iter__(self) -> Iterator[Event]:
        with self._state_lock:
            if self._iterator is not None:
                raise OpenAIError(
                    "this stream is already being consumed; a stream can be iterated once "
                    "(use stream.current_completion or until_done() for the result)"
                )
            self._iterator = self._run()
        return self._iterator

    def until_done(self) -> ChatCompletion:
        """Send the request if needed, run the stream to its end and return the completion.

        Raises the stream's error if it failed; on a finished stream it returns
        the same completion again.
        """
        if self._completion is not None:
            return self._completion
        if self._error is not None:
            raise self._error
        iterator = self._iterator if self._iterator is not None else iter(self)
        collections.deque(iterator, maxlen=0)
        if self._completion is None:
            if self._error is not None:
                raise self._error
            raise self._abort_error()
        return self._completion

    def close(self) -> None:
        """Stop the stream and release its connection. Safe to call at any time, from any thread."""
        self._closed = True
        response = self._response
        if response is not None:
            _shutdown(response)

    def __enter__(self) -> ChatCompletionStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        iterator = self._iterator
        if iterator is not None and hasattr(iterator, "close"):
            try:
                iterator.close()
            except ValueError:  # still running on another thread; close() above stops it
                pass

    def _run(self) -> Iterator[Event]:
        accumulator = self._accumulator
        listeners = self._events  # read without the lock: membership tests are atomic
        emit = self.emit
        try:
            if self._closed:
                raise self._abort_error()
            response = self._transport.post(
                "chat/completions",
                self._body,
                stream=True,
                timeout=self._timeout,
                max_retries=self._max_retries,
                extra_headers=self._extra_headers,
            )
            self._response = response
            self.request_id = response.headers.get("x-request-id")
            if self._closed:
                raise self._abort_error()
            event: Event = ResponseEvent(response.status_code, response.headers, self.request_id)
            if "response" in listeners:
                emit("response", event)
            yield event
            for chunk in self._chunks(response):
                for event in accumulator.feed(chunk):
                    kind = event.type
                    if kind == "error":
                        raise event.error  # type: ignore[union-attr]
                    if kind in listeners:
                        emit(kind, event)
                    yield event
            for event in accumulator.end():
                if event.type == "completion":
                    self._completion = event.completion  # type: ignore[union-attr]
                if event.type in listeners:
                    emit(event.type, event)
                yield event
        except GeneratorExit:
            self._closed = True
            raise
        except BaseException as exc:
            self._completion = None
            self._fail(exc)
            raise
        finally:
            if self._response is not None:
                self._response.close()

    def _chunks(self, response: requests.Response) -> Iterator[Dict[str, Any]]:
        """The decoded chunks of the body; raises when the stream breaks or reports an error."""
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            yield from self._json_body(response)
            return
        decoder = SSEDecoder(self._max_event_bytes)
        feed = decoder.feed
        loads = json.loads
        done = False
        for data in iter_body(response):
            for sse in feed(data):
                text = sse.data
                if text == _DONE:
                    done = True
                    break
                try:
                    chunk = loads(text)
                except ValueError:
                    raise _bad_json(text) from None
                if sse.event == "error":
                    raise self._accumulator.error_from_payload(_error_payload(chunk))
                yield chunk
            if done:
                return
        if self._closed:
            raise self._abort_error()
        trailing = decoder.end()
        if trailing is not None:
            if trailing.data == _DONE:
                return
            try:
                chunk = loads(trailing.data)
            except ValueError:
                raise StreamInterruptedError(
                    "the body ended in the middle of an event "
                    f"({len(trailing.data)} characters of an unfinished line); retry the request"
                ) from None
            if trailing.event == "error":
                raise self._accumulator.error_from_payload(_error_payload(chunk))
            yield chunk
        if not self._accumulator.all_choices_finished:
            raise StreamInterruptedError(
                "the body ended before the stream was complete (no [DONE] and no finish_reason); "
                "the completion so far is attached as error.completion; retry the request"
            )

    def _json_body(self, response: requests.Response) -> Iterator[Dict[str, Any]]:
        """A server that answered the stream request with one whole JSON completion."""
        raw = b"".join(iter_body(response))
        try:
            payload = json.loads(raw)
        except ValueError:
            raise _bad_json(raw.decode("utf-8", "replace")) from None
        if isinstance(payload, dict) and ("error" in payload or payload.get("object") == "error"):
            raise self._accumulator.error_from_payload(_error_payload(payload))
        yield payload

    def _abort_error(self) -> APIUserAbortError:
        return APIUserAbortError(
            "the stream was closed before it finished; the completion so far is attached",
            completion=self._accumulator.completion(),
        )

    def _fail(self, exc: BaseException) -> None:
        if self._closed and not isinstance(exc, APIUserAbortError) and isinstance(exc, OpenAIError):
            exc = self._abort_error()
        if isinstance(exc, APIError):
            if exc.completion is None:
                exc.completion = self._accumulator.completion()
            if isinstance(exc, APIStatusError) and exc.request_id is None:
                exc.request_id = self.request_id
        self._error = exc
        if self._response is not None:
            self._response.close()
        if isinstance(exc, Exception) and "error" in self._events:
            self.emit("error", ErrorEvent(exc))


def _error_payload(chunk: Any) -> Dict[str, Any]:
    if isinstance(chunk, dict):
        return chunk
    return {"error": {"message": str(chunk)}}


def _bad_json(text: str) -> InvalidStreamDataError:
    prefix = text[:200] + ("..." if len(text) > 200 else "")
    return InvalidStreamDataError(
        f"a data line of the stream is not valid JSON: {prefix!r}; "
        "the server or a proxy sent something that is not a Chat Completions stream",
        body=text[:4096],
    )


def _shutdown(response: requests.Response) -> None:
    """Unblock a reader stuck in a socket read on another thread, then close."""
    raw: Any = response.raw
    try:
        raw.shutdown()
    except Exception:  # urllib3 < 2.3 has no shutdown(); already released; already closed
        pass
    try:
        response.close()
    except Exception:
        pass

