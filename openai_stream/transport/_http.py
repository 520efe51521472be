"""HTTP: one ``requests`` session per client, retries before the body starts, timeouts.

Everything that touches the network lives here; the accumulator never sees a
socket, and the stream only sees bytes and typed errors.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import http.client
import json
import logging
import math
import os
import random
import socket
import ssl
import threading
import time
import unicodedata
import urllib.request
import weakref
from typing import Any, Callable, Dict, Iterator, List, Mapping, MutableMapping, Optional, Set, Tuple, Union
from urllib.parse import quote, unquote_plus, urlsplit

import requests
import urllib3.exceptions
from typing_extensions import Protocol

from .._version import __version__
from ..errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    EventTooLargeError,
    InvalidStreamDataError,
    OpenAIError,
    StreamInterruptedError,
    error_for_status,
)
from ..hooks import Hooks, RequestInfo, ResponseInfo, RetryInfo
from ._cancel import MAX_LINE, Attempt, StreamAdapter, attempting, check_cancelled
from ._cancel import sleep as _cancellable_sleep
from ._fork import generation as fork_generation
from ._trace import Trace, current_trace

__all__ = [
    "Timeout",
    "Transport",
    "DEFAULT_TIMEOUT",
    "TimeoutTypes",
    "check_max_event_bytes",
    "endpoint_url",
    "read_json",
    "with_query",
]

log = logging.getLogger("openai_stream")

MAX_RETRY_AFTER = 60.0
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
READ_SIZE = 65536
MAX_ERROR_BODY = 1024 * 1024
REDACTED = "<redacted API key>"
# Headers whose whole value the hooks' copy of a request's headers redacts (others: the key anywhere).
_CREDENTIAL_NAMES = frozenset(["authorization", "proxy-authorization", "api-key", "x-api-key"])
# The only headers a redirect to another host keeps: the ones this client sets on every request
# (and the framing ones requests manages). Everything the caller set may be a credential.
_KEPT_ACROSS_HOSTS = frozenset(
    [
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "content-type",
        "transfer-encoding",
        "user-agent",
    ]
)
# Failures to build the request: retrying cannot help.
_REQUEST_BUILD_ERRORS = (
    requests.exceptions.InvalidJSONError,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)
_sleep = _cancellable_sleep  # module-level so tests can record waits; a stream's close() cuts it short


class Timeout:
    """How long to wait: ``connect`` for a connection, ``read`` for the answer and then the next bytes.

    ``read`` bounds the wait for the response headers as a whole, then the
    longest silence allowed between two reads of the body; it is not a limit
    on the whole stream. ``Timeout(10)`` sets both. ``None`` or
    ``float("inf")`` means no limit; zero, negative and NaN values are refused
    with :class:`ValueError`.
    """

    __slots__ = ("connect", "read")

    def __init__(
        self,
        timeout: Optional[float] = None,
        *,
        connect: Optional[float] = None,
        read: Optional[float] = None,
    ) -> None:
        self.connect = _seconds(connect if connect is not None else timeout, "the connect timeout")
        self.read = _seconds(read if read is not None else timeout, "the read timeout")

    def as_requests(self) -> Tuple[Optional[float], Optional[float]]:
        """The ``(connect, read)`` pair ``requests`` takes."""
        return (self.connect, self.read)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timeout):
            return NotImplemented
        return (self.connect, self.read) == (other.connect, other.read)

    def __repr__(self) -> str:
        return f"Timeout(connect={self.connect}, read={self.read})"


class IdleTimeout(Timeout):
    """A stream's :class:`Timeout` whose ``read`` is its ``idle_timeout`` (no longer than the read timeout).

    The same limits; the type only tells an error message which setting
    fired, so it names ``idle_timeout=`` rather than ``timeout=``.
    ``timeout_read`` is the read part of ``timeout=`` it stands in for: when
    the two are equal, the message names both (raising one alone changes
    nothing).
    """

    __slots__ = ("timeout_read",)

    def __init__(
        self, *, connect: Optional[float], read: Optional[float], timeout_read: Optional[float]
    ) -> None:
        super().__init__(connect=connect, read=read)
        self.timeout_read = timeout_read


def _seconds(value: Any, what: str) -> Optional[float]:
    """``value`` as seconds: None (and infinity) for no limit; anything not above 0 is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(value).__name__}")
    seconds = float(value)
    if not seconds > 0:  # also NaN
        raise ValueError(
            f"{what} must be a number of seconds above 0, or None / float('inf') for no limit; got {value!r}"
        )
    return None if seconds == math.inf else value


TimeoutTypes = Union[float, int, Timeout, None]
DEFAULT_TIMEOUT = Timeout(connect=5.0, read=600.0)


def as_timeout(value: TimeoutTypes) -> Timeout:
    """A :class:`Timeout` from a number, a ``Timeout`` or ``None`` (no limit).

    Raises :class:`ValueError` for zero, negative or NaN seconds.
    """
    if isinstance(value, Timeout):
        return value
    return Timeout(value)


def check_max_event_bytes(value: int) -> int:
    """``value`` if it is a whole number of bytes above 0; raises :class:`ValueError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"max_event_bytes must be a whole number of bytes above 0, got {value!r}")
    return value


class Transport:
    """Sends requests with retries and maps failures onto typed errors.

    Retries happen only before a response body starts: on connection errors,
    connect timeouts and the statuses 408, 409, 429 and 5xx, unless the server's
    ``x-should-retry`` header says otherwise.

    ``auth``, when given, returns the credential headers of a request and is
    called for every attempt (a token provider refreshes there); without it
    the API key goes in ``Authorization: Bearer``. ``default_query`` is added
    to every URL. After :meth:`share_pool`, it sends through another
    transport's connection pool (``client.with_options``).
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: Optional[str],
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        default_headers: Optional[Mapping[str, str]] = None,
        max_connections: int = 64,
        default_query: Optional[Mapping[str, Any]] = None,
        auth: Optional[Callable[[], Mapping[str, str]]] = None,
        verify: Union[bool, str, None] = None,
    ) -> None:
        check_base_url(base_url)
        self.base_url = base_url.rstrip("/")
        self._host = host_of(self.base_url)
        if api_key is not None:
            check_header_value(api_key, "the API key")
        self._api_key = api_key
        self._auth = auth
        # The last credentials auth() returned, redacted like the key; replaced whole under
        # _secrets_lock, read without it.
        self._auth_secrets: Tuple[str, ...] = ()
        self._secrets_lock = threading.Lock()
        self.timeout = as_timeout(timeout)
        self.max_retries = max_retries
        self.default_headers = dict(default_headers or {})
        for name, value in self.default_headers.items():
            check_header(name, value, "default_headers")
        self.default_query = dict(default_query or {})
        with_query("", self.default_query)  # a value a URL cannot carry is refused here, not per request
        if isinstance(verify, str) and not os.path.exists(verify):
            raise OpenAIError(
                "verify names no file or directory; give the path of a PEM file (or directory) of "
                "trusted CA certificates, True for the default ones, or False to skip verification"
            )
        self._verify = verify
        self._max_connections = max_connections
        # The streams running through this transport, so close() can stop them; _live_lock
        # guards _live, _shared and closed. Weakly: a stream dropped half-read must stay collectable,
        # so that its end (connection released, stream.end hooks) comes when it is collected.
        self._live: weakref.WeakSet[Closeable] = weakref.WeakSet()
        self._live_lock = threading.Lock()
        self.closed = False
        # The client's hooks (openai_stream.hooks); share_pool() shares them too (with_options).
        self.hooks = Hooks()
        # The transports sending through this one's pool, weakly: a client made by with_options()
        # for one call must not live as long as this one.
        self._shared: weakref.WeakSet[Transport] = weakref.WeakSet()
        self._pool_owner: Optional[Transport] = None
        # Hosts (as host_of() names them) seen closing a connection right after a streamed body:
        # their streamed connections are not pooled. Only added to and tested, each a single set
        # operation, which is atomic on its own also without the GIL.
        self._closes_after_stream: Set[str] = set()
        self.session: requests.Session = _Session()
        self._mount()

    def _mount(self) -> None:
        """Give the session new connection pools (at start, and in a forked child)."""
        self._fork_generation = fork_generation()
        # pool_block=False: a thread beyond max_connections opens an extra connection instead of
        # waiting; close() on a stream can reach the connections of this adapter (see _cancel).
        adapter = StreamAdapter(pool_connections=4, pool_maxsize=self._max_connections, pool_block=False)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _check_fork(self) -> None:
        """In a forked child, drop what came from the parent: pooled connections, running streams.

        The pooled sockets are shared with the parent: they are dropped, not closed (closing
        takes locks that another parent thread may have held at the fork; the parent keeps
        its sockets either way). The streams the parent was running cannot go on here, and
        the locks guarding them may be held for ever. Two threads doing this at once only
        mount one more set of new pools; a transport sharing another's pool mounts new pools
        on the shared session, which serves both.
        """
        if self._fork_generation != fork_generation():
            self._live = weakref.WeakSet()
            self._live_lock = threading.Lock()
            self._secrets_lock = threading.Lock()
            self._mount()

    def share_pool(self, owner: Transport) -> None:
        """Send through ``owner``'s session and connection pool from now on (``client.with_options``).

        Closing this transport then stops its own streams and leaves the pool
        open; closing ``owner`` closes the pool and this transport too.
        """
        own = self.session
        with owner._live_lock:
            if owner.closed:
                raise _closed_error()
            owner._shared.add(self)
        self.session = owner.session
        self._closes_after_stream = owner._closes_after_stream  # a property of the pool's hosts
        self.hooks = owner.hooks  # the hooks see every client made with with_options()
        self._pool_owner = owner
        own.close()  # never used

    def track(self, stream: Closeable) -> None:
        """Note a stream that starts; raises :class:`OpenAIError` once the client is closed."""
        self._check_fork()
        with self._live_lock:
            if self.closed:
                raise _closed_error()
            self._live.add(stream)

    def untrack(self, stream: Closeable) -> None:
        """Forget a stream that ended. Never waits for the lock.

        A stream dropped half-read ends when the garbage collector finalizes it,
        which may happen on a thread that holds ``_live_lock`` (inside
        :meth:`track` or :meth:`close`): waiting there would deadlock. An entry
        left behind is harmless: closing an ended stream does nothing, and the
        set holds streams weakly.
        """
        if self._live_lock.acquire(blocking=False):
            try:
                self._live.discard(stream)
            finally:
                self._live_lock.release()

    def headers(
        self, stream: bool, extra: Optional[Mapping[str, Optional[str]]], *, body: bool = True
    ) -> Dict[str, str]:
        """The headers of one request: defaults, auth, then the caller's extras."""
        headers = {
            "Accept": "text/event-stream" if stream else "application/json",
            "User-Agent": f"openai_stream/{__version__}",
        }
        if body:
            headers["Content-Type"] = "application/json"
        if self._auth is not None:
            credentials = dict(self._auth())
            self._remember(credentials.values())
            for header, credential in credentials.items():
                check_header(header, credential, "the credentials")
            headers.update(credentials)
        elif self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(self.default_headers)
        if extra:
            for name, value in extra.items():
                if value is None:  # None leaves a header out (Authorization for a keyless proxy...)
                    for present in [h for h in headers if h.lower() == name.lower()]:
                        del headers[present]
                else:
                    headers[name] = value
        return headers

    def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        stream: bool,
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, Optional[str]]] = None,
        extra_query: Optional[Mapping[str, Any]] = None,
        replayable: bool = True,
        trace: Optional[Trace] = None,
    ) -> requests.Response:
        """POST ``body`` as JSON: :meth:`request` with the method ``POST``."""
        return self.request(
            "POST",
            path,
            body,
            stream=stream,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            replayable=replayable,
            trace=trace,
        )

    def get(
        self,
        path: str,
        *,
        stream: bool,
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, Optional[str]]] = None,
        extra_query: Optional[Mapping[str, Any]] = None,
    ) -> requests.Response:
        """GET ``path`` (a request without a body, always safe to send again): see :meth:`request`."""
        return self.request(
            "GET",
            path,
            None,
            stream=stream,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Optional[Mapping[str, Any]],
        *,
        stream: bool,
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, Optional[str]]] = None,
        extra_query: Optional[Mapping[str, Any]] = None,
        replayable: bool = True,
        trace: Optional[Trace] = None,
    ) -> requests.Response:
        """Send ``method`` with ``body`` as JSON (no body when it is None); return a 2xx response or raise.

        Every request goes through here, with the same retries, cancellation,
        credential handling and redaction, whatever its method.

        ``timeout`` and ``max_retries`` override the client's for this request
        (``None`` keeps the client's; ``Timeout(None)`` waits without limit).
        ``extra_headers`` go over the client's headers (``None`` leaves one
        out); ``extra_query`` over its ``default_query``.
        ``replayable=False`` says the request must not be sent twice once it
        was written whole (a Responses request with ``store`` or
        ``background``): a connection failure after that is raised, not
        retried, since the server may have started on it.

        A request that fails on a pooled connection before any byte of the
        answer came (the server had closed the idle connection) is sent again
        at once on a new connection, without backoff and without counting
        against ``max_retries``, at most once per request.

        ``trace`` (a stream's or create call's metrics recorder; else the one
        bound to this thread by ``traced()``) counts the attempts and retries
        and notes when the answering headers arrived; its ``call`` is named in
        the ``request``, ``response`` and ``retry`` hooks, which are called on
        this thread.
        """
        if self.closed:
            raise _closed_error()
        self._check_fork()
        # An absolute URL is a path a client routed outside base_url (Azure's non-deployment paths).
        url = path if path.startswith(("http://", "https://")) else endpoint_url(self.base_url, path)
        url = with_query(url, self.default_query, extra_query)
        retries = self.max_retries if max_retries is None else max_retries
        timeouts = as_timeout(timeout) if timeout is not None else self.timeout
        limits = timeouts.as_requests()
        if extra_headers:
            for name, value in extra_headers.items():
                if value is not None:  # None leaves a header out
                    check_header(name, value, "extra_headers")
        headers = self.headers(stream, extra_headers, body=body is not None)
        options: Dict[str, Any] = {} if self._verify is None else {"verify": self._verify}
        # session.post for a POST: what callers that wrap requests (and tests) hook into.
        session = self.session
        send = session.post if method == "POST" else functools.partial(session.request, method)
        attempt = 0
        number = 0  # attempts sent, a resend on a stale connection included (hooks count from 1)
        resent = fresh = False
        hooks = self.hooks
        if trace is None:
            trace = current_trace()
        while True:
            number += 1
            if trace is not None:
                trace.attempts += 1
            if hooks.active:
                self._hook_request(method, url, headers, body, number, stream, trace)
            sent = time.perf_counter()
            with attempting(fresh) as record:
                try:
                    response = send(url, json=body, headers=headers, stream=True, timeout=limits, **options)
                except requests.exceptions.InvalidHeader:
                    # requests quotes the offending value, which may be the API key: never repeat it.
                    raise OpenAIError(
                        "the request could not be sent: a header value has leading or trailing "
                        "whitespace or a line break; check the API key and any extra headers"
                    ) from None
                except requests.TooManyRedirects:
                    raise APIConnectionError(
                        f"{self._host} redirected the request more than {self.session.max_redirects} "
                        "times (a redirect loop); check base_url and the server's or proxy's redirects"
                    ) from None
                except _REQUEST_BUILD_ERRORS as exc:
                    raise OpenAIError(
                        f"the request could not be sent ({self.redact(str(exc))}); "
                        "check the parameters, headers and base_url"
                    ) from None
                except requests.RequestException as exc:
                    if not resent and _stale(record, replayable):
                        check_cancelled()
                        resent = fresh = True
                        if record.after_stream:
                            self._closes_after_stream.add(self._host)
                        log.debug(
                            "%s closed a pooled connection before answering (%s); sending again at once "
                            "on a new connection",
                            self._host,
                            _root_cause(record.error or exc),
                        )
                        if trace is not None or hooks.active:
                            stale = self._connection_error(exc, record, timeouts)
                            self._note_retry(trace, url, number, stale, None, 0.0, counted=False)
                        continue
                    error = self._connection_error(exc, record, timeouts)
                    if attempt >= retries or not _retryable(record, replayable) or _untrusted(exc):
                        raise error from exc
                    fresh = True  # a connection that just failed says nothing good about its pool-mates
                    wait = backoff(attempt)
                    log.info("%s; retrying in %.2fs (%d left)", error.message, wait, retries - attempt)
                    if trace is not None or hooks.active:
                        self._note_retry(trace, url, number, error, None, wait)
                else:
                    if trace is not None:
                        trace.headers_arrived()
                    if hooks.active:
                        self._hook_response(response, url, time.perf_counter() - sent, number, trace)
                    conn = record.conn
                    if conn is not None and self._host in self._closes_after_stream:
                        conn.keep_after_stream = False  # type: ignore[attr-defined]
                    request_id = response.headers.get("x-request-id")
                    log.debug(
                        "%s %s -> %s (request id %s)",
                        method,
                        self._path_of(url),
                        response.status_code,
                        request_id,
                    )
                    if response.status_code < 400:
                        return response
                    if attempt >= retries or not should_retry(response):
                        raise self._status_error(response, request_id)
                    wait = retry_wait(response.headers, attempt)
                    log.info(
                        "HTTP %s (request id %s); retrying in %.2fs (%d left)",
                        response.status_code,
                        request_id,
                        wait,
                        retries - attempt,
                    )
                    response.close()
                    if trace is not None or hooks.active:
                        self._note_retry(trace, url, number, None, response.status_code, wait)
            _sleep(wait)
            attempt += 1

    # ------------------------------------------------------------------ hooks (openai_stream.hooks)

    def _hook_request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        number: int,
        stream: bool,
        trace: Optional[Trace],
    ) -> None:
        hooks = self.hooks
        if hooks.wants("request"):
            call = trace.call if trace is not None else None
            shown = self.redacted_headers(headers)
            hooks.emit("request", RequestInfo(method, self.redact(url), shown, body, number, stream, call))

    def _hook_response(
        self, response: requests.Response, url: str, seconds: float, number: int, trace: Optional[Trace]
    ) -> None:
        hooks = self.hooks
        if hooks.wants("response"):
            call = trace.call if trace is not None else None
            headers = response.headers
            status, request_id = response.status_code, headers.get("x-request-id")
            info = ResponseInfo(status, headers, request_id, seconds, number, self.redact(url), call)
            hooks.emit("response", info)

    def _note_retry(
        self,
        trace: Optional[Trace],
        url: str,
        number: int,
        error: Optional[APIError],
        status: Optional[int],
        delay: float,
        counted: bool = True,
    ) -> None:
        """Count a retry on ``trace`` and call the ``retry`` hooks (``counted``: not a stale resend)."""
        if trace is not None:
            trace.retries += 1
        hooks = self.hooks
        if hooks.wants("retry"):
            if error is not None:
                self.redact_error(error)
                cause = f"{type(error).__name__}: {error.message}"
            else:
                cause = f"HTTP {status}"
            call = trace.call if trace is not None else None
            info = RetryInfo(number, error, status, delay, cause, counted, self.redact(url), call)
            hooks.emit("retry", info)

    def redacted_headers(self, headers: Mapping[str, str]) -> Dict[str, str]:
        """``headers`` with every credential header's value and the API key anywhere else redacted."""
        out = {}
        for name, value in headers.items():
            if name.lower() in _CREDENTIAL_NAMES:
                out[name] = REDACTED
            else:
                out[name] = self.redact(value) if isinstance(value, str) else value
        return out

    def _path_of(self, url: str) -> str:
        """``url`` without its query (which may hold a key) and userinfo, for log records."""
        parts = urlsplit(url)
        return f"{parts.scheme}://{self._host}{parts.path}"

    def _connection_error(
        self, exc: requests.RequestException, record: Attempt, timeouts: Timeout
    ) -> APIConnectionError:
        """The typed error for a request that got no answer: what failed, and what to check.

        ``timeouts`` are the request's: a read timeout names the setting its
        limit came from (``idle_timeout=`` for a stream whose idle limit is the
        shorter, else the read part of ``timeout=``).
        """
        host = self._host
        cause = record.error
        if isinstance(exc, requests.exceptions.SSLError):
            return APIConnectionError(
                f"the TLS connection to {host} failed ({self.redact(_root_cause(exc))}); if the server "
                "uses a certificate from a private or self-signed CA, trust that CA with "
                "Client(verify='/path/to/ca-bundle.pem') or the REQUESTS_CA_BUNDLE environment variable"
            )
        if isinstance(exc, requests.exceptions.ProxyError):
            return APIConnectionError(
                f"could not reach {host} through the proxy ({self.redact(_root_cause(exc))}); check "
                "HTTPS_PROXY / HTTP_PROXY (and NO_PROXY for hosts that must not use it)"
            )
        if isinstance(exc, requests.exceptions.ConnectTimeout) or (
            isinstance(exc, requests.Timeout) and record.stage == "connect"
        ):
            return APITimeoutError(
                f"timed out connecting to {host}; check base_url, the network and any proxy, or raise "
                "Timeout(connect=...)"
            )
        if isinstance(exc, requests.Timeout):
            return APITimeoutError(f"{host} took the request but {_headers_late(timeouts)}")
        if _caused_by(exc, socket.gaierror) or _caused_by(exc, urllib3.exceptions.NameResolutionError):
            return APIConnectionError(
                f"could not resolve the host name of {host} ({self.redact(_root_cause(exc))}); "
                "check base_url and the network"
            )
        if _caused_by(exc, ConnectionRefusedError):
            return APIConnectionError(
                f"{host} refused the connection (nothing is listening there); check base_url, that the "
                "server is running, and any proxy"
            )
        if record.stage == "connect" or _caused_by(exc, urllib3.exceptions.NewConnectionError):
            return APIConnectionError(
                f"could not connect to {host} ({self.redact(_root_cause(cause or exc))}); check base_url, "
                "the network and any proxy"
            )
        failure = cause if cause is not None else exc
        if _caused_by(failure, http.client.RemoteDisconnected):
            what = f"{host} closed the connection before answering"
        elif _caused_by(failure, BrokenPipeError) or (
            record.stage == "send" and _caused_by(failure, ConnectionError)
        ):
            what = f"{host} closed the connection while the request was being sent"
        elif _caused_by(failure, ConnectionResetError):
            what = f"the connection to {host} was reset before the server answered"
        else:
            what = f"the request to {host} failed"
        return APIConnectionError(
            f"{what} ({self.redact(_root_cause(failure))}); the server or a proxy in between dropped "
            "the request; retry it"
        )

    def _remember(self, credentials: Any) -> None:
        """Keep the last few credential header values that ``auth`` gave, to redact them too."""
        values = tuple(v for v in credentials if isinstance(v, str) and v not in self._auth_secrets)
        if values:
            with self._secrets_lock:
                self._auth_secrets = (*values, *self._auth_secrets)[:8]

    def _secrets(self) -> Tuple[str, ...]:
        """The API key and the credentials ``auth`` gave (a Bearer header redacts its token too)."""
        found: List[str] = [self._api_key] if self._api_key else []
        for value in self._auth_secrets:
            found.append(value)
            if value.startswith("Bearer "):
                found.append(value[len("Bearer ") :])
        return tuple(found)

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced, for servers and libraries that echo it."""
        for key in self._secrets():
            for variant in {key, key.strip()}:
                if len(variant) >= 4:
                    text = text.replace(variant, REDACTED)
        return text

    def redact_error(self, error: BaseException) -> None:
        """Take the API key out of ``error`` in place: its args, message, fields, body and causes.

        For errors built from what a server sent (an error payload inside the
        stream, a quoted bad line or page), which may echo the key.
        """
        if not self._secrets():
            return
        for seen in _chain(error):
            seen.args = tuple(self.redact(a) if isinstance(a, str) else a for a in seen.args)
            if isinstance(seen, APIError):
                seen.message = self.redact(seen.message)
                seen.body = self._redact_value(seen.body)
                seen.payload = self._redact_value(seen.payload)
                seen.code = self._redact_value(seen.code)
                seen.type = self._redact_value(seen.type)
                seen.param = self._redact_value(seen.param)
            self._redact_headers(getattr(seen, "headers", None))

    def _redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            return self.redact(repr(value))
        cleaned = self.redact(text)
        if cleaned == text:
            return value
        try:
            return json.loads(cleaned)
        except (ValueError, RecursionError):
            return cleaned

    def _status_error(self, response: requests.Response, request_id: Optional[str]) -> APIError:
        try:
            raw = response.raw.read(MAX_ERROR_BODY, decode_content=True) or b""
        except Exception:  # the error status matters more than a broken error body
            raw = b""
        finally:
            response.close()
        text = raw.decode("utf-8", "replace")
        body: Any
        try:
            # Decoded first, then redacted: JSON escapes (\/, \u0073k-...) would hide an echoed key.
            body = self._redact_value(json.loads(text))
        except (ValueError, RecursionError):
            body = self.redact(text)
        self._redact_headers(response.headers)  # also what error.response.headers shows
        self._redact_headers(getattr(response.raw, "headers", None))
        return error_for_status(
            response.status_code, body, headers=response.headers, request_id=request_id, response=response
        )

    def _redact_headers(self, headers: Any) -> None:
        """Take the credentials out of the header values that echo them, in place."""
        if not isinstance(headers, MutableMapping) or not self._secrets():
            return
        for name, value in list(headers.items()):
            if isinstance(value, str):
                cleaned = self.redact(value)
                if cleaned != value:
                    headers[name] = cleaned

    def close(self) -> None:
        """Stop every stream still running through this transport, then close every pooled connection.

        Later requests raise :class:`OpenAIError`. A transport that shares
        another's pool stops its own streams and leaves the pool open; the
        pool's owner closes the pool and every transport sharing it.
        """
        with self._live_lock:
            self.closed = True
            live = list(self._live)
            shared = list(self._shared)
        for stream in live:
            stream.close()
        for other in shared:
            other.close()
        if self._pool_owner is None:
            self.session.close()


def with_query(url: str, *queries: Optional[Mapping[str, Any]]) -> str:
    """``url`` with the parameters of ``queries`` added, in order.

    A parameter replaces every earlier one of the same name (the URL's own
    included); ``None`` removes it; a list or tuple repeats it. Values are
    strings or numbers (``True``/``False`` are sent as ``true``/``false``).
    The URL's own parameters keep their original encoding.
    """
    updates: List[Tuple[str, Any]] = []
    for query in queries:
        if query:
            updates.extend(query.items())
    if not updates:
        return url
    base, _, fragment = url.partition("#")
    head, _, own = base.partition("?")
    replaced = {name for name, _ in updates}
    pieces = [p for p in own.split("&") if p and unquote_plus(p.partition("=")[0]) not in replaced]
    added: Dict[str, List[str]] = {}
    for name, value in updates:
        if not isinstance(name, str):
            raise TypeError(f"a query parameter name must be a string, not {type(name).__name__}")
        if value is None:
            added.pop(name, None)
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        added[name] = [_query_value(name, v) for v in values]
    for name, values in added.items():
        pieces.extend(f"{quote(name, safe='')}={quote(v, safe='')}" for v in values)
    url = f"{head}?{'&'.join(pieces)}" if pieces else head
    return f"{url}#{fragment}" if fragment else url


def _query_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise TypeError(
        f"the query parameter {name!r} is a {type(value).__name__}; give a string or a number "
        "(a list repeats the parameter)"
    )


class Closeable(Protocol):
    """Anything :meth:`Transport.close` can stop (a running stream)."""

    def close(self) -> None: ...


def _closed_error() -> OpenAIError:
    return OpenAIError(
        "this client was closed (client.close() or the end of its with block); create a new "
        "Client for further requests"
    )


class _HeadersOnly(requests.auth.AuthBase):
    """Auth that leaves a request as it is: the client's credentials are already in its headers."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class _Session(requests.Session):
    """A session whose redirects to another host carry none of the caller's headers.

    ``requests`` drops only ``Authorization`` when a redirect leaves the host;
    a key in ``default_headers`` (``api-key``, ``Ocp-Apim-Subscription-Key``,
    ``X-Goog-Api-Key``...) or ``extra_headers`` would follow it there. Here
    every header but the few this client sets itself for any request is
    dropped. A ``Location`` that is not a URL is a typed error.

    What ``requests`` gathers from the environment for each request (proxies,
    ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``) is remembered for the last URL and
    settings, and gathered again whenever ``os.environ`` differs from the copy
    taken then: the same answer as ``requests`` gives, without reading every
    variable twice per request (see :meth:`merge_environment_settings`).
    """

    def __init__(self) -> None:
        super().__init__()
        # requests reads ~/.netrc (or $NETRC) for any request with no auth of its own and on every
        # redirect, and an entry for the API host would replace the key with Basic auth; this
        # client's credentials are its headers alone (httpx, under openai-python, reads no netrc).
        self.auth = _HeadersOnly()
        # (inputs, copy of the environment, settings): replaced whole, never changed in place, so a
        # thread reads one consistent triple without a lock.
        self._environment_memo: Optional[Tuple[Tuple[Any, ...], Dict[Any, Any], Dict[str, Any]]] = None

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        """``requests``' settings for a request to ``url``, from the environment when it has not changed.

        Remembered only where ``requests`` reads proxies from environment
        variables alone (not from macOS's or Windows' system settings), and
        for requests without proxies of their own (``Session.request`` passes
        ``{}``; ``None`` means something else to ``requests``). The memo holds a copy of
        ``os.environ``'s contents: any change there (a proxy set or removed,
        a CA bundle named) gathers the settings again, and settings gathered
        while it changed are not remembered.
        """
        environ = getattr(os.environ, "_data", None)
        if proxies != {} or not (self.trust_env and _PROXIES_FROM_ENVIRONMENT and type(environ) is dict):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        inputs = (url, stream, verify, cert, self.proxies, self.stream, self.verify, self.cert)
        memo = self._environment_memo
        if memo is None or memo[0] != inputs or memo[1] != environ:
            # Both copied before requests reads them, and remembered only if os.environ still holds
            # the copy when requests is done: requests' own set_environ puts no_proxy there for one
            # lookup whenever a request anywhere in the process passes proxies with "no_proxy", and
            # what was read during such a moment is this request's answer alone (as with requests);
            # filed under the environment from before, it would outlive the moment. (A change undone
            # within one gathering cannot be told from none; requests' own answer has the same race.)
            kept = (url, stream, verify, cert, dict(self.proxies), self.stream, self.verify, self.cert)
            seen = dict(environ)
            settings: Any = super().merge_environment_settings(url, {}, stream, verify, cert)
            if environ != seen:
                return settings
            memo = self._environment_memo = (kept, seen, {**settings, "proxies": dict(settings["proxies"])})
        return {**memo[2], "proxies": dict(memo[2]["proxies"])}  # a copy the caller may change

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        previous = response.request.url if response.request is not None else None
        strip = self.should_strip_auth(previous or "", prepared_request.url or "")  # type: ignore[no-untyped-call]
        if previous is not None and strip:
            for name in list(prepared_request.headers):
                if name.lower() not in _KEPT_ACROSS_HOSTS:
                    del prepared_request.headers[name]
        # Not requests' own rebuild_auth: all it adds to the above is credentials from ~/.netrc.

    def get_redirect_target(self, resp: requests.Response) -> Optional[str]:
        location: Optional[str] = super().get_redirect_target(resp)
        if location is None:
            return None
        try:
            urlsplit(location).port  # noqa: B018 - raises ValueError for a malformed host or port
        except ValueError:
            host = host_of(resp.url or "")
            resp.close()
            raise APIConnectionError(
                f"{host} answered HTTP {resp.status_code} with a redirect whose Location is not a valid "
                "URL; check base_url, or the server or proxy that sends it"
            ) from None
        return location


def check_base_url(base_url: str) -> None:
    """Refuse a base URL with a user name or password in it, without repeating them.

    ``requests`` would turn them into ``Authorization: Basic``, silently
    replacing the Bearer key, and the URL is quoted in messages and logs.
    """
    parts = urlsplit(base_url)
    if "@" in parts.netloc:
        raise OpenAIError(
            f"base_url must not contain a user name or password (...@{host_of(base_url)}); pass the "
            "API key as api_key=..., and any other credential as default_headers={...}"
        )


def endpoint_url(base_url: str, path: str) -> str:
    """The URL of ``path`` under ``base_url``; a query in ``base_url`` stays the query.

    ``https://host/openai?api-version=1`` and ``chat/completions`` give
    ``https://host/openai/chat/completions?api-version=1``.
    """
    head, mark, query = base_url.partition("?")
    head = head.partition("#")[0].rstrip("/")
    query = query.partition("#")[0]
    return f"{head}/{path.lstrip('/')}{mark if query else ''}{query}"


def check_header(name: Any, value: Any, where: str) -> None:
    """Refuse a header that cannot be sent, naming it but never quoting its value (it may be a key)."""
    if not isinstance(name, str) or not name or not name.isascii() or any(c in name for c in ": \t\r\n"):
        raise OpenAIError(f"{where} has a header name that cannot be sent in HTTP: {_quote(str(name), 40)}")
    check_header_value(value, f"the {name} header")


def check_header_value(value: Any, what: str) -> None:
    """Refuse a header value with a line break or a character HTTP headers cannot carry (not Latin-1)."""
    if isinstance(value, bytes):
        return
    if not isinstance(value, str):
        raise OpenAIError(f"{what} must be a string, not {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise OpenAIError(f"{what} contains a line break; check it for a stray newline")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        position = exc.start
    else:
        return
    # Raised outside the except block: the UnicodeEncodeError holds the whole value (a key).
    char = value[position]
    name = unicodedata.name(char, "unnamed character")
    raise OpenAIError(
        f"{what} contains U+{ord(char):04X} ({name}) at position {position + 1}, a character HTTP "
        "headers cannot carry; it often comes with copy and paste: type the value again"
    )


def host_of(url: str) -> str:
    """The ``host[:port]`` of ``url`` for messages and logs: never its user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host


def body_reader(response: requests.Response) -> Callable[[int], bytes]:
    """The ``read1`` that :func:`iter_body` uses: ``http.client``'s when it is safe, else urllib3's.

    ``http.client``'s (the fast path) for a body without Content-Encoding or
    Content-Length; urllib3's, which decodes and checks the length, otherwise.
    ``tests/transport/test_canaries.py`` checks that the fast path is taken with the
    installed urllib3, whose private ``_fp`` it relies on.
    """
    raw: Any = response.raw
    fp = getattr(raw, "_fp", None)
    framing = response.headers.get("transfer-encoding")
    if (
        framing is not None
        and isinstance(fp, http.client.HTTPResponse)
        and not fp.chunked
        and framing.strip().lower() != "identity"
    ):
        # http.client (under urllib3 alike) dechunks only "chunked" exactly, and reads any other
        # Transfer-Encoding as raw bytes to the close, framing and all; no transfer coding (gzip) is
        # decoded by either library. RFC 2616's "identity" (no coding at all) is read right that way.
        raise InvalidStreamDataError(
            f"the server sent its answer with Transfer-Encoding {framing!r}, which cannot be read here "
            "(only 'chunked' alone is; a transfer coding such as gzip is not decoded); ask the server "
            "or the proxy in between for Transfer-Encoding: chunked, with Content-Encoding for compression"
        )
    header = response.headers.get("content-encoding")
    codings = content_codings(header)
    if codings:
        decodable = getattr(raw, "CONTENT_DECODERS", ())
        missing = [coding for coding in codings if coding not in decodable]
        if missing:
            hint = " (pip install brotli)" if missing == ["br"] else ""
            raise InvalidStreamDataError(
                f"the server compressed its answer with Content-Encoding {header!r}, and "
                f"{', '.join(repr(m) for m in missing)} cannot be decoded here{hint}; install a decoder "
                "for it, or ask the server or the proxy in between for an uncompressed answer"
            )
        # urllib3 reads the header as it stands: "gzip " would go undecoded and "identity, gzip"
        # would run a deflate decoder for "identity". Give it the codings alone.
        raw.headers["content-encoding"] = ", ".join(codings)
    elif isinstance(fp, http.client.HTTPResponse) and getattr(fp, "length", None) is None:
        return fp.read1
    raw.decode_content = True
    return raw.read1  # type: ignore[no-any-return]


def _headers_late(timeouts: Timeout) -> str:
    """A read timeout before the response headers: which limit fired, and which setting raises it."""
    seconds = "" if timeouts.read is None else f" within {timeouts.read:g} s"
    if isinstance(timeouts, IdleTimeout) and timeouts.timeout_read == timeouts.read:
        return (
            f"its response headers did not all arrive{seconds}, both the stream's idle_timeout= and the "
            "read part of timeout= (equal here, and each bounds the wait for the headers); raise both "
            "if the model is slow to start answering"
        )
    if isinstance(timeouts, IdleTimeout):
        return (
            f"its response headers did not all arrive{seconds}, the stream's idle_timeout (which also "
            "bounds the wait for the headers when it is shorter than the read timeout); raise "
            "idle_timeout= (None for no limit) if the model is slow to start answering"
        )
    return (
        f"its response headers did not all arrive{seconds}, the read part of timeout= (which bounds "
        "the whole wait for the headers); raise it, timeout=Timeout(connect=..., read=...) or a larger "
        "timeout=, if the model is slow to start answering"
    )


def content_codings(header: Optional[str]) -> List[str]:
    """The content codings a ``Content-Encoding`` header names, lowercased, without ``identity``."""
    if not header:
        return []
    codings = (coding.strip().lower() for coding in header.split(","))
    return [coding for coding in codings if coding and coding != "identity"]


def iter_body(response: requests.Response) -> Iterator[bytes]:
    """The body's bytes as soon as each piece arrives, with failures mapped to typed errors.

    ``read1`` returns whatever the socket has (at most one HTTP chunk), so an
    event reaches the decoder without waiting for a read buffer to fill, on
    chunked and close-delimited bodies alike. A body without Content-Encoding
    is read from the ``http.client`` response under urllib3: the same bytes,
    at a third of the cost per read of urllib3's own ``read1`` (decoder checks,
    an error-catching context manager and a buffer queue on every call). A
    chunked one is read here the way ``http.client``'s ``read1`` reads it (see
    below), in one loop rather than four nested calls per chunk. A body with a
    Content-Length goes through urllib3, which reports one cut short and
    closes one read to its end (so its connection can be reused).
    """
    read = body_reader(response)
    source = getattr(read, "__self__", None)
    try:
        if isinstance(source, http.client.HTTPResponse) and source.chunked and source.fp is not None:
            # http.client's read1 on a chunked body, step for step, on the same buffered file: at
            # most one HTTP chunk per read, at most what is buffered once anything is; the CRLF
            # after each chunk and the size line before the next read in full. source.chunk_left is
            # kept as http.client keeps it (read_end and urllib3 read it); the last chunk ends the
            # body as http.client ends it (trailer read, file closed: the connection counts as read
            # to its end). A size line that is no hexadecimal number (a negative one included)
            # closes the connection as http.client does; it and two bytes other than CRLF after a
            # chunk's data (which http.client drops unseen) are a StreamInterruptedError naming them.
            buffered = source.fp
            readline, read_all, read1 = buffered.readline, buffered.read, buffered.read1
            left = source.chunk_left
            while True:
                if not left:
                    if left is not None:  # the CRLF that closes the chunk read before
                        end = read_all(2)
                        if end != b"\r\n":  # http.client tosses any two bytes here unseen
                            if len(end) < 2:
                                raise http.client.IncompleteRead(end, 2 - len(end))
                            raise _broken_framing(f"{end!r} where the CRLF after a chunk's data belongs")
                    line = readline(MAX_LINE + 1)
                    if len(line) > MAX_LINE:
                        raise http.client.LineTooLong("chunk size")
                    try:
                        left = int(line, 16)  # int() takes the line's CRLF for whitespace
                    except ValueError:  # a chunk extension (ignored), or no number at all
                        left = _chunk_size(line)
                    if left < 0:
                        source._close_conn()  # type: ignore[attr-defined]
                        if not line:  # the connection closed where the next size line belongs
                            raise http.client.IncompleteRead(b"")
                        raise _broken_framing(f"the chunk size line {line[:64]!r} is no hexadecimal number")
                    if not left:  # the last chunk
                        source._read_and_discard_trailer()  # type: ignore[attr-defined]
                        source._close_conn()  # type: ignore[attr-defined]
                        source.chunk_left = None
                        return
                    source.chunk_left = left
                data = read1(left if left < READ_SIZE else READ_SIZE)
                if not data:
                    raise http.client.IncompleteRead(b"")
                left -= len(data)
                source.chunk_left = left
                yield data
        while True:
            data = read(READ_SIZE)
            if not data:
                return
            yield data
    except (urllib3.exceptions.ReadTimeoutError, requests.Timeout, socket.timeout) as exc:
        raise APITimeoutError(
            "the server sent nothing for longer than the read timeout; "
            "raise Timeout(read=...) if the model is slow to answer"
        ) from exc
    except (
        urllib3.exceptions.HTTPError,
        requests.RequestException,
        http.client.HTTPException,
        OSError,
        ValueError,
        # http.client sets its file to None when the response is closed: a close() from another
        # thread racing this read surfaces as an AttributeError of the read itself.
        AttributeError,
    ) as exc:
        raise StreamInterruptedError(
            f"the connection broke while the stream was being read ({_body_failure(exc)}); retry the request"
        ) from exc


# Whether requests reads proxies from environment variables alone (Linux and other POSIX systems;
# macOS and Windows also consult system settings, which _Session does not remember).
_PROXIES_FROM_ENVIRONMENT = (
    urllib.request.getproxies is urllib.request.getproxies_environment
    and urllib.request.proxy_bypass is getattr(urllib.request, "proxy_bypass_environment", None)
)


def _chunk_size(line: bytes) -> int:
    """The size on a chunk-size line with an extension (``1a;name=value``), or -1 when there is none."""
    try:
        return int(line.partition(b";")[0], 16)
    except ValueError:
        return -1


def _broken_framing(what: str) -> StreamInterruptedError:
    return StreamInterruptedError(
        f"the server broke the chunked framing of the body ({what}); retry the request"
    )


def read_bounded(response: requests.Response, max_bytes: int) -> bytes:
    """The whole body, or :class:`EventTooLargeError` as soon as it passes ``max_bytes``."""
    pieces = []
    size = 0
    for data in iter_body(response):
        size += len(data)
        if size > max_bytes:
            raise EventTooLargeError(
                f"the server's answer exceeded {max_bytes} bytes (max_event_bytes); raise "
                "Client(max_event_bytes=...) if it really sends answers this large"
            )
        pieces.append(data)
    return b"".join(pieces)


def read_json(response: requests.Response, max_bytes: int) -> Any:
    """The body decoded as one JSON value, read up to ``max_bytes``.

    Raises :class:`EventTooLargeError` for a longer body and
    :class:`InvalidStreamDataError` for one that is not JSON (or nests too deep).
    """
    raw = read_bounded(response, max_bytes)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        text = raw.decode("utf-8", "replace")
        content_type = response.headers.get("content-type") or "no Content-Type"
        raise InvalidStreamDataError(
            f"the server's answer ({content_type}) is not valid JSON: {_quote(text)}; "
            "check base_url and any proxy in between",
            body=text[:4096],
        ) from None


def _quote(text: str, limit: int = 200) -> str:
    """A bounded, printable start of ``text`` for an error message."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def should_retry(response: requests.Response) -> bool:
    """Whether an error status is worth another try (``x-should-retry`` wins)."""
    verdict = response.headers.get("x-should-retry")
    if verdict == "true":
        return True
    if verdict == "false":
        return False
    status = response.status_code
    return status in (408, 409, 429) or status >= 500


def retry_wait(headers: Mapping[str, str], attempt: int) -> float:
    """Seconds to wait before the next try: the server's say-so up to 60 s, else backoff."""
    wait = _server_wait(headers)
    if wait is not None and 0 <= wait <= MAX_RETRY_AFTER:
        return wait
    return backoff(attempt)


def _server_wait(headers: Mapping[str, str]) -> Optional[float]:
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp() - time.time()


def backoff(attempt: int) -> float:
    """Exponential backoff from 0.5 s doubling to 8 s, less up to 25% jitter."""
    base = min(INITIAL_BACKOFF * (2.0**attempt), MAX_BACKOFF)
    return base * (1.0 - 0.25 * random.random())


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then its cause, the cause's cause... (chains are short; the bound guards against a cycle)."""
    seen: Optional[BaseException] = exc
    for _ in range(20):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


# What a pooled connection that the server had already closed fails with, before any byte of
# the answer (http.client.RemoteDisconnected is a ConnectionResetError).
_STALE_ERRORS = (
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


def _stale(record: Attempt, replayable: bool) -> bool:
    """Whether an attempt failed on a pooled connection that the server had closed while it sat idle.

    Only a connection that carried an earlier request qualifies, and only when
    it broke while the request was sent or before any byte of the answer came.
    A request that is not ``replayable`` qualifies only if it was not written whole.
    """
    if not record.reused or record.stage not in ("send", "wait"):
        return False
    if not isinstance(record.error, _STALE_ERRORS):
        return False
    return replayable or not record.sent


def _retryable(record: Attempt, replayable: bool) -> bool:
    """Whether a failed attempt may be retried under ``max_retries``."""
    return replayable or not record.sent


def _untrusted(exc: BaseException) -> bool:
    """Whether the server's certificate failed verification (trying again cannot change that)."""
    return _caused_by(exc, ssl.SSLCertVerificationError)


def _caused_by(exc: BaseException, kind: Any) -> bool:
    """Whether ``exc`` or anything in its cause chain (or urllib3's ``reason``) is a ``kind``."""
    for seen in _chain(exc):
        if isinstance(seen, kind) or isinstance(getattr(seen, "reason", None), kind):
            return True
        args = getattr(seen, "args", ())
        if any(isinstance(arg, kind) for arg in args if isinstance(arg, BaseException)):
            return True
    return False


def _body_failure(exc: BaseException) -> str:
    for seen in _chain(exc):
        if isinstance(seen, ConnectionResetError):
            return "the connection was reset"
        if isinstance(seen, http.client.IncompleteRead):
            return "the server closed the connection in the middle of the body"
    return _root_cause(exc)


def _root_cause(exc: BaseException) -> str:
    *_, seen = _chain(exc)
    reason = getattr(seen, "reason", None)
    text = str(reason if reason is not None else seen) or type(seen).__name__
    return text if len(text) <= 200 else text[:200] + "..."
