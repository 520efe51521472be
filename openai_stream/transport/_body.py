"""Reading a streamed body: bytes in, the JSON payloads of its events out.

:class:`BodyReader` decides everything about a body that is not about the
API's payloads: what the Content-Type says (an event stream, one whole JSON
answer, or something relabelled by a proxy), SSE framing, ``[DONE]``, error
frames (``event: error``), the idle deadline between data events, the
trailing event of a body that ends without its blank line, "not an event
stream" and "interrupted". The stream engine gives it the body's bytes and
consumes what it yields.

Sans-I/O in spirit: it reads from any iterable of bytes and imports no
``requests``, ``threading``, ``socket`` or ``pyee``, so every branch is tested
on byte sequences alone. The socket is reached only through the optional
``set_read_timeout`` callback, which the idle deadline uses to bound the next
read.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

import jiter

from ..errors import (
    APITimeoutError,
    EventTooLargeError,
    InvalidStreamDataError,
    StreamInterruptedError,
    is_error_payload,
)
from ._sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder

__all__ = ["BodyReader", "loads"]

DONE = "[DONE]"
# How much of a body that is not an event stream an error quotes (and keeps as its body).
HEAD_BYTES = 4096

_raw_decode = json.JSONDecoder().raw_decode


def loads(text: str) -> Any:
    """``json.loads`` for a data line, without its two whitespace regex passes in the usual case."""
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)  # leading whitespace, or the error json.loads itself reports
    if end != len(text):
        return json.loads(text)
    return value


class BodyReader:
    """Decodes one response body into the JSON payloads of its events.

    ``chunks`` yields the body's bytes as they arrive; its read timeouts must
    surface as :class:`~openai_stream.APITimeoutError`. ``content_type`` is
    the response's header. ``error_for`` builds the typed error for an error
    payload (``event: error`` frames, or a whole JSON answer that is one);
    ``finished`` says, when the body ends without ``[DONE]``, whether the
    payloads so far make a complete answer (else the stream was interrupted).

    ``idle_timeout`` is the longest silence allowed between two data events
    (comments do not count). Between reads the reader bounds the next socket
    read to what is left of it through ``set_read_timeout``, and restores
    ``read_timeout`` once data flows again; ``clock`` is for tests.

    :attr:`done` tells whether ``[DONE]`` ended the body, :attr:`payloads`
    how many payloads were yielded and :attr:`received` how many body bytes
    were read.
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        content_type: str,
        error_for: Callable[[Dict[str, Any]], BaseException],
        finished: Callable[[], bool],
        protocol: str = "a Chat Completions stream",
        unfinished: str = "no [DONE] and no finish_reason",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        idle_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        set_read_timeout: Optional[Callable[[Optional[float]], None]] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chunks = chunks
        self._content_type = content_type
        self._error_for = error_for
        self._finished = finished
        self._protocol = protocol
        self._unfinished = unfinished
        self._max_event_bytes = max_event_bytes
        self._idle = idle_timeout
        self._read_timeout = read_timeout
        self._set_read_timeout = set_read_timeout
        self._clock = clock
        self.done = False
        self.payloads = 0
        self.received = 0

    def __iter__(self) -> Iterator[Any]:
        content_type = self._content_type
        media = content_type.partition(";")[0].strip().lower()
        if media == "application/json":
            return self._whole_json()
        head: Optional[bytearray] = None
        chunks: Iterable[bytes] = self._chunks
        if media and media != "text/event-stream":
            # Proxies relabel event streams (text/plain, even text/html), so another type is not
            # refused up front: its body is decoded as SSE all the same, and only when no data
            # line came at all is it reported as not a stream (a captive portal, a wrong
            # base_url), quoting its start. A missing type is taken as SSE and never refused.
            head = bytearray()
            chunks = _keep_head(chunks, head)
        return self._events(chunks, head)

    def _events(self, chunks: Iterable[bytes], head: Optional[bytearray]) -> Iterator[Any]:
        decoder = SSEDecoder(self._max_event_bytes)
        feed = decoder.feed
        from_json = jiter.from_json
        limit = self._max_event_bytes
        idle = self._idle
        read_limit = self._read_timeout
        clock = self._clock
        deadline = clock() + idle if idle is not None else 0.0
        fresh = shortened = False
        try:
            for data in chunks:
                self.received += len(data)
                # The common read: exactly one whole data event, nothing held back, parsed
                # straight from its bytes by jiter. What jiter refuses ([DONE], a lone surrogate
                # escape, bad UTF-8, not JSON) takes the general path, which decides as before.
                # The Responses API names each event ("event: NAME" first): the same, unless the
                # name is "error" (an error frame) or not plain ASCII (the general path checks it).
                # No line end but the final blank line after the prefix: memchr-based finds and
                # an index (``count`` scans slower, ``endswith`` parses its arguments, and
                # ``b"\r" in data`` raises and clears a TypeError inside CPython before it searches).
                start = 6 if data.startswith(b"data: ") else _named_data_start(data)
                if (
                    start
                    and data.find(b"\n", start) == len(data) - 2
                    and data[-1] == 10  # LF: with the find, the data ends with its blank line
                    and decoder.at_boundary
                    and data.find(b"\r") < 0
                    and len(data) <= limit
                ):
                    try:
                        payload = from_json(data[start:-2])
                    except ValueError:
                        pass
                    else:
                        self.payloads += 1
                        yield payload
                        if idle is not None:
                            deadline = clock() + idle
                            if shortened:
                                shortened = False
                                self._bound_read(read_limit)
                        continue
                for sse in feed(data):
                    text = sse.data
                    try:
                        if text == DONE:
                            raise ValueError
                        payload = loads(text)
                    except (ValueError, RecursionError):
                        if sse.event == "error":
                            raise self._error_frame(text) from None
                        stripped = text.strip()
                        if stripped == DONE:
                            self.done = True
                            return
                        if not stripped:  # an empty data: field carries nothing (SSE spec)
                            continue
                        raise self._bad_json(text) from None
                    if sse.event == "error":
                        raise self._error_for(_error_payload(payload))
                    fresh = True
                    self.payloads += 1
                    yield payload
                decoder.raise_pending()  # a bad line that followed good events in the same read
                if idle is not None:
                    # Keep-alive comments do not count: only data events move the deadline.
                    now = clock()
                    if fresh:
                        fresh = False
                        deadline = now + idle
                        if shortened:
                            shortened = False
                            self._bound_read(read_limit)
                    elif now >= deadline:
                        raise self._idle_error()
                    elif read_limit is None or deadline - now < read_limit:
                        shortened = True
                        self._bound_read(deadline - now)
        except APITimeoutError:
            if idle is not None and (shortened or read_limit == idle):
                raise self._idle_error() from None
            raise
        trailing = decoder.end()
        text = trailing.data if trailing is not None else ""
        stripped = text.strip()
        if stripped == DONE and trailing is not None and trailing.event != "error":
            self.done = True
            return
        if stripped and trailing is not None:
            try:
                payload = loads(text)
            except (ValueError, RecursionError):
                if trailing.event == "error":
                    raise self._error_frame(text) from None
                raise StreamInterruptedError(
                    "the body ended in the middle of an event "
                    f"({len(text)} characters of an unfinished line); retry the request"
                ) from None
            if trailing.event == "error":
                raise self._error_for(_error_payload(payload))
            self.payloads += 1
            yield payload
        if head is not None and not self.payloads:
            raise _not_a_stream(self._content_type, bytes(head))
        if not self._finished():
            raise StreamInterruptedError(
                f"the body ended before the stream was complete ({self._unfinished}); "
                "the answer so far is attached as error.completion; retry the request"
            )

    def _bound_read(self, seconds: Optional[float]) -> None:
        if self._set_read_timeout is not None:
            self._set_read_timeout(seconds)

    def _whole_json(self) -> Iterator[Any]:
        """A server that answered the stream request with one whole JSON body."""
        pieces = []
        size = 0
        limit = self._max_event_bytes
        for data in self._chunks:
            size += len(data)
            self.received = size
            if size > limit:
                raise EventTooLargeError(
                    f"the server's answer exceeded {limit} bytes (max_event_bytes); raise "
                    "max_event_bytes if it really sends answers this large"
                )
            pieces.append(data)
        raw = b"".join(pieces)
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):
            text = raw.decode("utf-8", "replace")
            raise InvalidStreamDataError(
                f"the server's answer (application/json) is not valid JSON: {_quote(text)}; "
                "check base_url and any proxy in between",
                body=text[:HEAD_BYTES],
            ) from None
        if is_error_payload(payload):
            raise self._error_for(payload)
        self.payloads += 1
        yield payload

    def _error_frame(self, text: str) -> BaseException:
        """An ``event: error`` frame whose data is not JSON (``[DONE]``, plain text, nothing)."""
        message = text.strip() or "no details"
        return self._error_for({"error": {"message": f"an error event with no JSON payload: {message}"}})

    def _bad_json(self, text: str) -> InvalidStreamDataError:
        prefix = text[:200] + ("..." if len(text) > 200 else "")
        return InvalidStreamDataError(
            f"a data line of the stream is not valid JSON: {prefix!r}; "
            f"the server or a proxy sent something that is not {self._protocol}",
            body=text[:HEAD_BYTES],
        )

    def _idle_error(self) -> APITimeoutError:
        return APITimeoutError(
            f"no data arrived for {self._idle:g} s (idle_timeout; keep-alive comments do not "
            "count); the answer so far is attached as error.completion; retry the request, or "
            "raise idle_timeout if the model pauses longer"
        )


def _named_data_start(data: bytes) -> int:
    """Where the data of ``event: NAME\ndata: ...`` starts, for a plain name other than ``error``; else 0."""
    if not data.startswith(b"event: "):
        return 0
    end = data.find(b"\n")
    name = data[7:end]
    if not name or name == b"error" or not name.isascii() or data[end + 1 : end + 7] != b"data: ":
        return 0
    return end + 7


def _error_payload(payload: Any) -> Dict[str, Any]:
    if isinstance(payload, dict):
        return payload
    return {"error": {"message": str(payload)}}


def _keep_head(chunks: Iterable[bytes], head: bytearray) -> Iterator[bytes]:
    """``chunks`` unchanged, copying the first bytes into ``head`` for an error message."""
    for data in chunks:
        if len(head) < HEAD_BYTES:
            head += data[: HEAD_BYTES - len(head)]
        yield data


def _quote(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


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

