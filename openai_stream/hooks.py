"""Client hooks: see every request, retry, stream, runner and tool call a client makes.

Register a hook on the client as you register a handler on a stream::

    @client.on("stream.end")
    def log_it(info):
        print(info.outcome, info.metrics.time_to_first_token)

Each hook receives one frozen payload (below) and runs on the thread that
does the work it reports: the thread running the request for ``request``,
``response`` and ``retry``; the thread consuming the stream for
``stream.start``/``stream.end``; the tool's worker thread for
``tool.start``/``tool.end``. One exception: a stream dropped half-read
(garbage collected before its end) reports ``stream.end`` from a short-lived
thread of its own, so that a hook never runs inside the garbage collector,
where it could deadlock on a lock its own thread holds.

A hook that raises is logged under the ``openai_stream`` logger and
ignored: observability never takes the application down. ``KeyboardInterrupt``
and ``SystemExit`` raised by a hook still propagate.

With no hook registered, the client checks one attribute per request and per
stream and builds no payload; nothing at all is done per chunk.

The events:

``request`` (:class:`RequestInfo`)
    before each attempt is sent: method, URL, headers (credentials
    redacted), body, attempt number (from 1).
``response`` (:class:`ResponseInfo`)
    when an attempt's response headers arrive (any status): status, headers,
    request id, seconds from sending the attempt to its headers.
``retry`` (:class:`RetryInfo`)
    when a failed attempt is about to be sent again: the attempt that
    failed, the error or status that caused it, the delay chosen.
``stream.start`` / ``stream.end`` (:class:`StreamStartInfo`, :class:`StreamEndInfo`)
    when a stream starts running, and once when it ends, whatever ends it
    (its end, an error, ``close()`` from any thread, Ctrl-C, a dropped stream).
``create.start`` / ``create.end`` (:class:`CreateStartInfo`, :class:`CreateEndInfo`)
    around each non-streamed ``create()`` call.
``runner.start`` / ``runner.end`` (:class:`RunnerStartInfo`, :class:`RunnerEndInfo`)
    around a tool runner's ``until_done()`` (each round is a stream of its own,
    whose ``stream.start`` names the runner as its ``parent``).
``tool.start`` / ``tool.end`` (:class:`ToolStartInfo`, :class:`ToolEndInfo`)
    around each tool call a runner executes, on the tool's worker thread.

Every ``*.end`` payload carries ``outcome`` (``done``, ``failed`` or
``closed``) and ``error`` (the exception, or ``None``). Streams, runners and
create calls carry ``metrics`` (:class:`~openai_stream.StreamMetrics`).

Per-call state: hooks that need to keep something between a start and its
end (a span, a timer) keep it in the ``hook_state`` dict of the stream,
runner or create call (``info.stream.hook_state``...; a tool call's payloads
share one ``hook_state`` dict), which lives exactly as long as the call, so
nothing leaks when a stream is dropped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, TypeVar, overload

__all__ = [
    "HOOK_NAMES",
    "Hooks",
    "RequestInfo",
    "ResponseInfo",
    "RetryInfo",
    "StreamStartInfo",
    "StreamEndInfo",
    "CreateStartInfo",
    "CreateEndInfo",
    "RunnerStartInfo",
    "RunnerEndInfo",
    "ToolStartInfo",
    "ToolEndInfo",
]

log = logging.getLogger("openai_stream")

HOOK_NAMES = (
    "request",
    "response",
    "retry",
    "stream.start",
    "stream.end",
    "create.start",
    "create.end",
    "runner.start",
    "runner.end",
    "tool.start",
    "tool.end",
)
"""Every hook a client calls."""

F = TypeVar("F", bound=Callable[..., Any])


class Hooks:
    """The hook registry of a client (and of every client made from it by ``with_options``).

    Safe to use from any thread. ``_lock`` guards registration; the
    registered hooks are published as one immutable dict (``_handlers``),
    replaced whole under the lock and read without it, as a stream's
    handlers are. ``active`` is true while any hook is registered: the
    transport and the engine test it before building a payload.
    """

    __slots__ = ("__weakref__", "_handlers", "_lock", "active")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: Dict[str, Tuple[Callable[[Any], Any], ...]] = {}
        self.active = False

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}: {len(found)}" for name, found in self._handlers.items())
        return f"<openai_stream.Hooks {counts or 'none'}>"

    @overload
    def on(self, name: str) -> Callable[[F], F]: ...

    @overload
    def on(self, name: str, hook: F) -> F: ...

    def on(self, name: str, hook: Optional[F] = None) -> Any:
        """Register ``hook`` for ``name``; without ``hook``, a decorator that registers the function.

        Raises ValueError for a name the client never calls (see :data:`HOOK_NAMES`).
        A hook registered twice is called twice.
        """
        check_hook_name(name)
        if hook is None:

            def register(function: F) -> F:
                self._add(name, function)
                return function

            return register
        self._add(name, hook)
        return hook

    def _add(self, name: str, hook: Callable[[Any], Any]) -> None:
        if not callable(hook):
            raise TypeError(f"a hook is a callable taking one argument, got {type(hook).__name__}")
        with self._lock:
            handlers = dict(self._handlers)
            handlers[name] = (*handlers.get(name, ()), hook)
            self._handlers = handlers
            self.active = True

    def remove(self, name: str, hook: Callable[[Any], Any]) -> None:
        """Unregister one registration of ``hook`` for ``name`` (ValueError when there is none)."""
        check_hook_name(name)
        with self._lock:
            found = list(self._handlers.get(name, ()))
            if hook not in found:
                raise ValueError(f"{hook!r} is not registered for {name!r}")
            found.remove(hook)
            handlers = dict(self._handlers)
            if found:
                handlers[name] = tuple(found)
            else:
                del handlers[name]
            self._handlers = handlers
            self.active = bool(handlers)

    def listeners(self, name: str) -> Tuple[Callable[[Any], Any], ...]:
        """The hooks registered for ``name``, in registration order."""
        check_hook_name(name)
        return self._handlers.get(name, ())

    def wants(self, name: str) -> bool:
        """Whether any hook is registered for ``name`` (to skip building a payload nobody reads)."""
        return name in self._handlers

    def emit(self, name: str, info: Any) -> None:
        """Call every hook of ``name`` with ``info``; a hook that raises is logged, never propagated."""
        for hook in self._handlers.get(name, ()):
            try:
                hook(info)
            except Exception:
                log.exception(
                    "openai_stream: a %r hook (%s) raised; the request goes on without it",
                    name,
                    getattr(hook, "__qualname__", type(hook).__name__),
                )


def check_hook_name(name: object) -> None:
    """Raise ValueError unless ``name`` is a hook the client calls."""
    if name in HOOK_NAMES:
        return
    if not isinstance(name, str):
        raise TypeError(f"a hook name is a string, got {type(name).__name__}")
    import difflib

    close = difflib.get_close_matches(name, HOOK_NAMES, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(
        f"a client has no hook {name!r}, so it would never be called; {hint}"
        f"its hooks: {', '.join(HOOK_NAMES)} (stream events such as 'content.delta' are "
        "registered on the stream: stream.on(...))"
    )


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class RequestInfo:
    """An attempt is about to be sent (``request`` hook)."""

    method: str
    url: str
    headers: Mapping[str, str]
    """The request headers, with the API key and every credential header redacted."""
    body: Any = field(repr=False)
    """The JSON body (the messages included): read it, do not change it."""
    attempt: int
    """1 for the first attempt, 2 for the first retry..."""
    stream: bool
    """Whether the request asks for a streamed answer."""
    call: Any = field(repr=False)
    """The stream or create call the request belongs to (``None`` for a raw transport request)."""


@dataclass(frozen=True)
class ResponseInfo:
    """An attempt's response headers arrived (``response`` hook), whatever the status."""

    status_code: int
    headers: Mapping[str, str]
    request_id: Optional[str]
    seconds: float
    """Seconds from sending this attempt to its response headers."""
    attempt: int
    url: str
    call: Any = field(repr=False)


@dataclass(frozen=True)
class RetryInfo:
    """A failed attempt is about to be sent again (``retry`` hook).

    ``error`` is the typed error of a connection failure (``None`` for an
    error status); ``status_code`` the status that is retried (``None`` for
    a connection failure). ``delay`` is the wait chosen before the next
    attempt: the server's ``Retry-After`` when it gave one (up to 60 s), else
    exponential backoff; 0 for a request sent again at once on a new
    connection after a pooled one turned out closed (``counted`` is then
    False: such a resend does not count against ``max_retries``).
    """

    attempt: int
    """The attempt that failed (from 1); the next one is ``attempt + 1``."""
    error: Optional[BaseException]
    status_code: Optional[int]
    delay: float
    cause: str
    """What failed, in words (``HTTP 429``, ``connection refused``...)."""
    counted: bool
    url: str
    call: Any = field(repr=False)


@dataclass(frozen=True)
class StreamStartInfo:
    """A stream starts running (``stream.start`` hook), before its request is sent."""

    stream: Any
    body: Any = field(repr=False)
    """The request body as it is sent (model, messages, parameters)."""
    parent: Any = None
    """The stream's ``parent``: the tool runner whose round it is (or what set itself), else ``None``."""


@dataclass(frozen=True)
class StreamEndInfo:
    """A stream ended (``stream.end`` hook), exactly once, whatever ended it.

    ``outcome`` is ``done`` (the result is complete), ``failed`` (``error``
    says why) or ``closed`` (``close()``, ``client.close()``, Ctrl-C, or the
    stream was dropped before its end; ``error`` is the
    :class:`~openai_stream.APIUserAbortError` the stream raises, or the
    ``KeyboardInterrupt``). ``result`` is the completion (partial unless done).
    """

    stream: Any
    metrics: Any
    outcome: str
    error: Optional[BaseException]
    result: Any = field(repr=False)
    parent: Any = None
    """As on ``stream.start``."""


@dataclass(frozen=True)
class CreateStartInfo:
    """A non-streamed ``create()`` call starts (``create.start`` hook)."""

    call: Any
    body: Any = field(repr=False)


@dataclass(frozen=True)
class CreateEndInfo:
    """A non-streamed ``create()`` call ended (``create.end`` hook); ``result``: the completion when done."""

    call: Any
    metrics: Any
    outcome: str
    error: Optional[BaseException]
    result: Any = field(repr=False)


@dataclass(frozen=True)
class RunnerStartInfo:
    """A tool runner starts its first round (``runner.start`` hook)."""

    runner: Any
    model: str
    body: Any = field(repr=False)
    """The parameters sent with every round (without the messages, which grow each round)."""


@dataclass(frozen=True)
class RunnerEndInfo:
    """A tool runner ended (``runner.end`` hook), whatever ended it; ``result`` is the last completion."""

    runner: Any
    metrics: Any
    outcome: str
    error: Optional[BaseException]
    result: Any = field(repr=False)


@dataclass(frozen=True)
class ToolStartInfo:
    """A runner starts a tool call, on the tool's worker thread (``tool.start`` hook)."""

    runner: Any
    name: Optional[str]
    call_id: str
    arguments: str = field(repr=False)
    index: int
    hook_state: Dict[str, Any] = field(repr=False, compare=False)
    """A dict the same tool call's ``tool.end`` payload carries too (a hook's per-call state)."""


@dataclass(frozen=True)
class ToolEndInfo:
    """A tool call ended (``tool.end`` hook), on its worker thread.

    ``outcome`` is ``done``, or ``failed`` when the tool raised, its
    arguments did not fit or it does not exist (``error``); ``content`` is
    the text the model receives either way.
    """

    runner: Any
    name: Optional[str]
    call_id: str
    index: int
    outcome: str
    error: Optional[BaseException]
    result: Any = field(repr=False)
    content: str = field(repr=False)
    seconds: float
    hook_state: Dict[str, Any] = field(repr=False, compare=False)
