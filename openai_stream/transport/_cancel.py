"""Socket-level control of one streamed request, for :class:`~openai_stream.ChatCompletionStream`.

A blocking socket read cannot be interrupted from another thread by closing the
response: the socket itself has to be shut down. Two helpers do that:

- :class:`CancelScope` reaches the connection of a request that is still being
  sent or waiting for its response headers. The stream binds a scope to its
  thread around the request; the connections made by :class:`StreamAdapter`
  report to the bound scope, so ``cancel()`` on any thread can shut their
  socket down, and a scope cancelled earlier stops the next attempt before it
  is sent. :func:`sleep` lets a cancel cut a retry backoff short.
- :class:`BodyControl` owns a streaming response once its headers arrived:
  ``abort()`` unblocks a reader stuck in a read, ``set_timeout()`` bounds the
  next read, and ``finish()`` hands the connection back to the pool only when
  the body was read to its end (a stream stopped early discards it).

Hand-overs to the pool happen only in ``finish()``, under the same lock as
``abort()``, so a late ``close()`` can never shut down a connection that
another request has taken from the pool.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Any, Optional, Tuple

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..errors import APIUserAbortError
from ._deadline import arm, disarm

__all__ = [
    "MAX_LINE",
    "Attempt",
    "BodyControl",
    "CancelScope",
    "StreamAdapter",
    "attempting",
    "bound",
    "check_cancelled",
    "sleep",
]

_local = threading.local()


def _aborted() -> APIUserAbortError:
    return APIUserAbortError("the stream was closed before its response arrived; nothing was received")


class CancelScope:
    """Cancellation of one request before its response headers arrive, from any thread."""

    __slots__ = ("_conn", "_event", "_lock", "cancelled")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._conn: Optional[HTTPConnection] = None
        self.cancelled = False

    def cancel(self) -> None:
        """Stop the request: refuse new attempts, end backoff waits, shut the socket in use down."""
        with self._lock:
            self.cancelled = True
            self._event.set()
            conn, self._conn = self._conn, None
            if conn is not None:
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    _shutdown(sock, socket.SHUT_RDWR)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as the scope is cancelled."""
        return self._event.wait(seconds)

    def attach(self, conn: HTTPConnection) -> None:
        """``conn`` now carries this scope's request (raises if the scope was cancelled)."""
        with self._lock:
            if self.cancelled:
                raise _aborted()
            self._conn = conn

    def check(self) -> None:
        """Raise if cancelled (a connect that finished after the cancel)."""
        with self._lock:
            if self.cancelled:
                raise _aborted()

    def detach(self, conn: HTTPConnection) -> None:
        """The response headers arrived (or the attempt failed): ``conn`` is no longer ours to shut."""
        with self._lock:
            if self._conn is conn:
                self._conn = None


class bound:
    """``with bound(scope):`` makes ``scope`` the current thread's scope for the requests made inside."""

    def __init__(self, scope: CancelScope) -> None:
        self._scope = scope
        self._previous: Optional[CancelScope] = None

    def __enter__(self) -> CancelScope:
        self._previous = getattr(_local, "scope", None)
        _local.scope = self._scope
        return self._scope

    def __exit__(self, *exc_info: object) -> None:
        _local.scope = self._previous


def _current() -> Optional[CancelScope]:
    return getattr(_local, "scope", None)


def sleep(seconds: float) -> None:
    """``time.sleep`` that a cancel of the current thread's scope cuts short with APIUserAbortError."""
    scope = _current()
    if scope is None:
        time.sleep(seconds)
    elif scope.wait(seconds):
        raise _aborted()


class Attempt:
    """What one attempt at a request did on the wire, recorded by the connections of :class:`StreamAdapter`.

    The transport binds one to its thread around each ``session.post`` (see
    :func:`attempting`) and reads it when the attempt fails: whether the
    connection came from the pool, whether the request was written whole, and
    where it failed. ``fresh`` asks for a new connection instead of a pooled one.
    """

    __slots__ = ("after_stream", "conn", "error", "fresh", "reused", "sent", "stage")

    def __init__(self, fresh: bool) -> None:
        self.fresh = fresh
        self.conn: Optional[HTTPConnection] = None
        self.reused = False  # the connection had carried an earlier request
        self.after_stream = False  # ... and that request's answer was a stream read to its end
        self.sent = False  # the request was written whole
        self.stage = ""  # where the first failure came: "connect", "send" or "wait" (for the answer)
        self.error: Optional[BaseException] = None

    def failed(self, stage: str, exc: BaseException) -> None:
        """Record the first failure (urllib3 swallows a failed send and then waits for an answer)."""
        if self.error is None:
            self.stage = stage
            self.error = exc


class attempting:
    """``with attempting(fresh) as attempt:`` records the connection work of the requests made inside."""

    __slots__ = ("_attempt",)

    def __init__(self, fresh: bool) -> None:
        self._attempt = Attempt(fresh)

    def __enter__(self) -> Attempt:
        _local.attempt = self._attempt
        return self._attempt

    def __exit__(self, *exc_info: object) -> None:
        _local.attempt = None


def _attempt() -> Optional[Attempt]:
    return getattr(_local, "attempt", None)


def check_cancelled() -> None:
    """Raise APIUserAbortError if the current thread's scope was cancelled."""
    scope = _current()
    if scope is not None:
        scope.check()


def _headers_timeout(seconds: Any) -> socket.timeout:
    # socket.timeout: urllib3 reports it as a read timeout, like a single read that timed out.
    return socket.timeout(f"the response headers did not all arrive within the read limit ({seconds:g} s)")


# More interim (1xx) answers than this before the final one: the server is not speaking HTTP.
_MAX_INTERIM_ANSWERS = 100


class _Response(http.client.HTTPResponse):
    """``http.client``'s response, skipping interim answers (102 Processing, 103 Early Hints).

    ``http.client`` skips only ``100 Continue``, so a ``103 Early Hints``
    would be taken for the answer, with an empty body. ``101`` is a protocol
    switch, a final answer here.

    It reads the socket through a 64 KiB buffer rather than ``http.client``'s
    8 KiB: ``read1`` on an empty buffer reads just the rest of the current
    HTTP chunk from the socket, so every refill of the buffer costs a second,
    small system call; a larger buffer makes refills rare (a long stream of
    small chunks made two system calls per 8 KiB, as many as 30 chunks).
    """

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        small = self.fp  # nothing read from it yet: begin() reads the head
        self.fp = sock.makefile("rb", _READ_BUFFER)
        small.close()  # the socket stays open: each file holds its own reference to it

    def _read_status(self) -> Tuple[str, int, str]:
        for _ in range(_MAX_INTERIM_ANSWERS):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not (100 <= status < 200) or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers; the final one follows
        raise http.client.HTTPException(f"more than {_MAX_INTERIM_ANSWERS} interim (1xx) answers in a row")

    def _read_and_discard_trailer(self) -> None:
        # http.client discards trailer lines for as long as they come: no data reaches the idle
        # deadline meanwhile, so a server could hold a finished body open forever. Bounded here
        # as http.client bounds a head (lines of 64 KiB, 100 fields); EOF ends the trailer too.
        fp: Any = self.fp
        for _ in range(_MAX_TRAILER_FIELDS + 1):
            line = fp.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                raise http.client.LineTooLong("trailer line")
            if line in (b"\r\n", b"\n", b""):
                return
        raise http.client.HTTPException(f"over {_MAX_TRAILER_FIELDS} trailer fields after the last chunk")


_READ_BUFFER = 65536

# http.client's limits for one header line and for the fields of a head: here for a trailer, and
# MAX_LINE in _http.py for a chunk-size line.
MAX_LINE = 65536
_MAX_TRAILER_FIELDS = 100


class _Tracked:
    """Mixin: a connection that reports to the current thread's :class:`CancelScope` and :class:`Attempt`.

    ``_os_uses`` counts the requests written on the current socket (0 after each
    connect), which tells a pooled connection from a new one. ``after_stream``
    says the last answer on it was a stream read to its end (set by
    :class:`BodyControl`), and ``keep_after_stream`` False keeps such a
    connection out of the pool (the transport sets it for servers known to
    close right after a streamed body).
    """

    _os_uses = 0
    after_stream = False
    keep_after_stream = True
    response_class: Any = _Response

    def connect(self) -> None:
        scope = _current()
        attempt = _attempt()
        if attempt is not None:
            attempt.conn = self  # type: ignore[assignment]
        if scope is not None:
            scope.attach(self)  # type: ignore[arg-type]
        try:
            super().connect()  # type: ignore[misc]
        except BaseException as exc:
            if attempt is not None:
                attempt.failed("connect", exc)
            raise
        self._os_uses = 0
        self.after_stream = False
        if scope is not None:
            scope.check()

    def request(self, *args: Any, **kwargs: Any) -> None:
        scope = _current()
        attempt = _attempt()
        reused = self._os_uses > 0 and getattr(self, "sock", None) is not None
        if attempt is not None:
            attempt.conn = self  # type: ignore[assignment]
            attempt.reused = reused
            attempt.after_stream = reused and self.after_stream
        self.after_stream = False
        if scope is not None:
            scope.attach(self)  # type: ignore[arg-type]
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        except BaseException as exc:
            if attempt is not None:
                attempt.failed("send", exc)
            raise
        self._os_uses += 1
        if attempt is not None:
            attempt.sent = True

    def getresponse(self) -> Any:
        # The read timeout bounds the whole wait for the headers, not only each read of it.
        timeout = getattr(self, "timeout", None)
        sock = getattr(self, "sock", None)
        deadline = arm(timeout, sock) if isinstance(timeout, (int, float)) and sock is not None else None
        try:
            response = super().getresponse()  # type: ignore[misc]
        except BaseException as exc:
            attempt = _attempt()
            if deadline is not None and disarm(deadline) and not isinstance(exc, socket.timeout):
                error = _headers_timeout(timeout)
                if attempt is not None:
                    attempt.failed("wait", error)
                raise error from exc
            if attempt is not None:
                attempt.failed("wait", exc)
            raise
        finally:
            scope = _current()
            if scope is not None:
                scope.detach(self)  # type: ignore[arg-type]
        if deadline is not None and disarm(deadline):  # the headers came just as the socket was shut
            response.close()
            raise _headers_timeout(timeout)
        return response


class _TrackedHTTPConnection(_Tracked, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, HTTPSConnection):
    pass


def _checkout(conn: Any) -> Any:
    """A connection taken from the pool, closed first when the current attempt wants a new one.

    Closed here, before urllib3 sets the connection up (TLS, a proxy tunnel),
    it connects again exactly as a new one would.
    """
    attempt = _attempt()
    if attempt is not None and attempt.fresh and getattr(conn, "sock", None) is not None:
        conn.close()
    return conn


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        return _checkout(super()._get_conn(timeout))


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        return _checkout(super()._get_conn(timeout))


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class StreamAdapter(HTTPAdapter):
    """A requests adapter whose connections a :class:`CancelScope` can reach (HTTP, HTTPS, HTTP proxies)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme.get("http") is HTTPConnectionPool:  # not SOCKS
            manager.pool_classes_by_scheme = _POOLS
        return manager

    def close(self) -> None:
        """Close every idle pooled connection now; ones in use close when their stream ends.

        urllib3 2's ``PoolManager.clear()`` only forgets its pools, so their
        sockets would stay open for as long as anything (a finished stream's
        response, say) still refers to a pool.
        """
        for manager in [self.poolmanager, *self.proxy_manager.values()]:
            pools = manager.pools
            for key in pools.keys():  # noqa: SIM118 - keys() copies under the container's lock
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
        super().close()


def _shutdown(sock: Any, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:  # not connected any more, or already closed
        pass


def _says_close(response: requests.Response) -> bool:
    """Whether the response's ``Connection`` header asks to close the connection after it."""
    value = response.headers.get("connection")
    return value is not None and "close" in value.lower()


def _socket_of(raw: Any) -> Any:
    """The socket under a urllib3 response (the connection's, or the file's for close-delimited bodies)."""
    conn = getattr(raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is not None:
        return sock
    fp = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
    return getattr(fp, "_sock", None)


class BodyControl:
    """One streaming response: unblock its reader from any thread, bound its reads, reuse its connection."""

    __slots__ = ("_finished", "_lock", "_pool", "_response", "_sock", "read_timeout")

    def __init__(self, response: requests.Response, read_timeout: Optional[float]) -> None:
        raw = response.raw
        self._response = response
        self._lock = threading.Lock()
        self._finished = False
        self.read_timeout = read_timeout
        self._sock = _socket_of(raw)
        self._pool = getattr(raw, "_pool", None)
        if self._pool is not None:
            raw._pool = None  # urllib3 must not hand the connection back before finish() says so

    def abort(self) -> None:
        """Unblock a read in progress on another thread (the reader sees an error or the end)."""
        with self._lock:
            if self._finished:
                return
            raw = self._response.raw
            if getattr(raw, "connection", ...) is None:
                # Handed back to the pool (never while _pool is held back): another request may
                # own it now. urllib3 < 2.5 would shut it down all the same (urllib3 #3581).
                return
            try:
                raw.shutdown()
            except (ValueError, RuntimeError):  # closed already, or (urllib3 >= 2.5) released
                pass

    def set_timeout(self, seconds: Optional[float]) -> None:
        """Bound the next socket reads to ``seconds`` (None: no limit)."""
        sock = self._sock
        # Only a change costs a system call (which also lets other threads take the GIL): the
        # restore after read_end() leaves finish() nothing to do.
        if sock is not None and sock.gettimeout() != seconds:
            try:
                sock.settimeout(seconds)
            except OSError:  # closed meanwhile
                pass

    def read_end(self, grace: float) -> None:
        """After ``[DONE]``: read the chunked body's terminator if it arrives within ``grace`` seconds.

        Only a body read to its end lets :meth:`finish` reuse the connection;
        a server that keeps the body open past ``[DONE]`` costs ``grace`` once.
        """
        raw: Any = self._response.raw
        fp = getattr(raw, "_fp", None)
        if self._sock is None or not getattr(fp, "chunked", False) or getattr(fp, "chunk_left", None) != 0:
            return
        self.set_timeout(grace)
        try:
            raw.read1(64)
        except Exception:  # not there in time, or broken: urllib3 closed the connection
            return
        finally:
            self.set_timeout(self.read_timeout)

    def finish(self, reuse: bool) -> bool:
        """Close the response; with ``reuse``, hand a fully read connection back to the pool first.

        Returns True when the connection went back to the pool for the next request.
        """
        response = self._response
        raw: Any = response.raw
        reused = False
        with self._lock:
            if self._finished:
                return False
            self._finished = True
            if self._pool is not None:
                raw._pool = self._pool
                conn = raw.connection
                if (
                    reuse
                    and raw.isclosed()
                    and getattr(conn, "sock", None) is not None
                    and getattr(conn, "keep_after_stream", True)
                    and not _says_close(response)
                ):
                    self.set_timeout(self.read_timeout)
                    conn.after_stream = True
                    raw.release_conn()
                    reused = True
        try:
            response.close()  # closes a connection not handed back, and returns its pool slot
        except Exception:  # closing must not hide the outcome of the stream
            pass
        return reused
