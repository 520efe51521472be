"""The client: configuration, the connection pool, the API resources (``client.chat``, ``.responses``)."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, TypeVar, Union, overload

from .chat._resource import Chat
from .engine._stream import check_idle_timeout
from .errors import APIConnectionError
from .hooks import Hooks
from .responses._resource import Responses
from .transport._http import (
    DEFAULT_TIMEOUT,
    Timeout,
    TimeoutTypes,
    Transport,
    as_timeout,
    check_base_url,
    check_max_event_bytes,
)
from .transport._sse import DEFAULT_MAX_EVENT_BYTES

__all__ = ["Client"]

_F = TypeVar("_F", bound=Callable[..., Any])

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class Client:
    """A client for one OpenAI-compatible server.

    ``api_key`` falls back to ``OPENAI_API_KEY`` and may stay unset for local
    servers; ``base_url`` falls back to ``OPENAI_BASE_URL``, then the OpenAI API.
    ``timeout`` is seconds or :class:`~openai_stream.Timeout`; ``max_retries``
    is how often a request is retried before its body starts.

    ``idle_timeout`` is the longest silence allowed between two data events of
    a stream (and before the response headers); keep-alive comments do not
    reset it, so a proxy that pings forever cannot hang a caller. It raises
    :class:`~openai_stream.APITimeoutError` with the partial completion.

    The client keeps one pooled HTTP session, safe to share between threads:
    up to ``max_connections`` idle connections are kept for reuse; a thread
    beyond that opens its own connection rather than wait for one (urllib3
    then logs "Connection pool is full" as it drops the extra). Close the
    client with :meth:`close` or a ``with`` block to release every pooled
    connection.

    ``default_headers`` and ``default_query`` go with every request;
    ``organization`` and ``project`` (``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``)
    send the ``OpenAI-Organization`` and ``OpenAI-Project`` headers.
    :meth:`with_options` gives a client with other settings over the same
    connection pool.

    ``verify`` is how TLS certificates are checked: ``True`` (the default
    CAs, or the bundle named by ``REQUESTS_CA_BUNDLE``), the path of a PEM
    file or directory of CA certificates to trust (for a server with a private
    or self-signed CA; it wins over the environment), or ``False`` to skip the
    check. A user name or password in ``base_url`` is refused.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        default_headers: Optional[Mapping[str, str]] = None,
        *,
        organization: Optional[str] = None,
        project: Optional[str] = None,
        default_query: Optional[Mapping[str, Any]] = None,
        max_connections: int = 64,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        idle_timeout: Optional[float] = None,
        verify: Union[bool, str, None] = None,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get("OPENAI_API_KEY") or None
        if base_url is None:
            base_url = os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        check_base_url(base_url)  # before any message quotes it
        if organization is None:
            organization = os.environ.get("OPENAI_ORG_ID") or None
        if project is None:
            project = os.environ.get("OPENAI_PROJECT_ID") or None
        self._settings: Dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "default_headers": dict(default_headers or {}),
            "organization": organization,
            "project": project,
            "default_query": dict(default_query or {}),
            "max_connections": max_connections,
            "max_event_bytes": max_event_bytes,
            "idle_timeout": idle_timeout,
            "verify": verify,
        }
        """What this client was made with (the environment read), for :meth:`with_options`."""
        self.organization = organization
        self.project = project
        self._setup(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=account_headers(organization, project, default_headers),
            default_query=default_query,
            max_connections=max_connections,
            max_event_bytes=max_event_bytes,
            idle_timeout=idle_timeout,
            verify=verify,
        )

    def _setup(
        self,
        *,
        api_key: Optional[str],
        base_url: str,
        timeout: TimeoutTypes,
        max_retries: int,
        default_headers: Mapping[str, str],
        default_query: Optional[Mapping[str, Any]],
        max_connections: int,
        max_event_bytes: int,
        idle_timeout: Optional[float],
        auth: Optional[Callable[[], Mapping[str, str]]] = None,
        verify: Union[bool, str, None] = None,
    ) -> None:
        """Check the settings and make the transport and the resources."""
        check_base_url(base_url)  # before any message quotes it
        if not base_url.startswith(("http://", "https://")):
            raise APIConnectionError(
                f"base_url must start with http:// or https://, got {base_url!r}"
            )
        check_max_retries(max_retries)
        if max_connections < 1:
            raise ValueError("max_connections must be 1 or more")
        check_idle_timeout(idle_timeout)
        check_max_event_bytes(max_event_bytes)
        self._base_url = base_url.rstrip("/")
        self._max_event_bytes = max_event_bytes
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._transport = Transport(
            base_url=self._base_url,
            api_key=api_key,
            timeout=as_timeout(timeout),
            max_retries=max_retries,
            default_headers=default_headers,
            max_connections=max_connections,
            default_query=default_query,
            auth=auth,
            verify=verify,
        )
        self.chat = Chat(self)
        self.responses = Responses(self)

    def __repr__(self) -> str:
        return f"<openai_stream.{type(self).__name__} base_url={shown_url(self.base_url)!r}>"

    # Settings are properties over what the requests read, so an assignment after construction
    # takes effect on the next request, and is checked as the constructor checks it.

    @property
    def base_url(self) -> str:
        """The API's base URL (read-only: ``with_options(base_url=...)`` makes a client for another)."""
        return self._base_url

    @property
    def timeout(self) -> Timeout:
        """The connect and read timeouts of every request (seconds, a :class:`Timeout`, or None)."""
        return self._transport.timeout

    @timeout.setter
    def timeout(self, value: TimeoutTypes) -> None:
        self._transport.timeout = as_timeout(value)
        self._settings["timeout"] = value

    @property
    def max_retries(self) -> int:
        """How often a request is retried before its body starts."""
        return self._transport.max_retries

    @max_retries.setter
    def max_retries(self, value: int) -> None:
        check_max_retries(value)
        self._transport.max_retries = value
        self._settings["max_retries"] = value

    @property
    def idle_timeout(self) -> Optional[float]:
        """The longest silence allowed between two data events of a stream (None: no limit)."""
        return self._idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, value: Optional[float]) -> None:
        check_idle_timeout(value)
        self._idle_timeout = value
        self._settings["idle_timeout"] = value

    @property
    def max_event_bytes(self) -> int:
        """The largest server-sent event (or whole JSON answer) accepted, in bytes."""
        return self._max_event_bytes

    @max_event_bytes.setter
    def max_event_bytes(self, value: int) -> None:
        check_max_event_bytes(value)
        self._max_event_bytes = value
        self._settings["max_event_bytes"] = value

    def _stream_limits(
        self, max_event_bytes: Optional[int], idle_timeout: Optional[float]
    ) -> Tuple[int, Optional[float]]:
        """A stream's ``max_event_bytes`` and ``idle_timeout``: the request's (checked), else the client's."""
        return (
            self.max_event_bytes if max_event_bytes is None else check_max_event_bytes(max_event_bytes),
            self.idle_timeout if idle_timeout is None else idle_timeout,
        )

    @property
    def max_connections(self) -> int:
        """How many idle connections the pool keeps (read-only: the pool is made with the client)."""
        return self._max_connections

    def with_options(
        self: _C,
        *,
        default_headers: Optional[Mapping[str, str]] = None,
        set_default_headers: Optional[Mapping[str, str]] = None,
        default_query: Optional[Mapping[str, Any]] = None,
        set_default_query: Optional[Mapping[str, Any]] = None,
        **changes: Any,
    ) -> _C:
        """A client like this one with some settings changed, sending through the same connection pool.

        ``changes`` are any of the constructor's settings except
        ``max_connections`` (the pool is shared): ``api_key``, ``base_url``,
        ``timeout``, ``max_retries``, ``organization``, ``project``,
        ``max_event_bytes``, ``idle_timeout`` (and an ``AzureClient``'s own).
        ``default_headers`` and ``default_query`` are added to this client's;
        ``set_default_headers`` and ``set_default_query`` replace them.

        Closing the new client stops the streams it started and leaves the
        pool open; closing this client closes the pool and the new client.
        """
        settings = dict(self._settings)
        unknown = sorted(set(changes) - set(settings) - {"max_connections"})
        if unknown:
            raise TypeError(
                f"with_options() got an unexpected keyword argument {unknown[0]!r}; it takes: "
                f"{', '.join(sorted(set(settings) - {'max_connections'}))}, set_default_headers, "
                "set_default_query"
            )
        if "max_connections" in changes:
            raise TypeError("with_options() shares the connection pool, so max_connections cannot change")
        settings.update(changes)
        settings["default_headers"] = _merged(
            "headers", settings["default_headers"], default_headers, set_default_headers
        )
        settings["default_query"] = _merged(
            "query", settings["default_query"], default_query, set_default_query
        )
        copy = type(self)(**settings)
        copy._transport.share_pool(self._transport)
        return copy

    def _route(self, path: str, body: Mapping[str, Any]) -> str:
        """The path a request goes to, relative to ``base_url`` (a client may route by model: Azure)."""
        return path

    @property
    def hooks(self) -> Hooks:
        """This client's hook registry (see :mod:`openai_stream.hooks`)."""
        return self._transport.hooks

    @overload
    def on(self, name: str) -> Callable[[_F], _F]: ...

    @overload
    def on(self, name: str, hook: _F) -> _F: ...

    def on(self, name: str, hook: Optional[_F] = None) -> Any:
        """Register a hook for every request, retry, stream, runner or tool call made through this client.

        ``@client.on("stream.end")`` as a decorator, or ``client.on("retry", fn)``.
        ``name`` is one of :data:`openai_stream.hooks.HOOK_NAMES`. A hook runs
        on the thread doing the work it reports; one that raises is logged
        and ignored. Remove one with ``client.hooks.remove(name, fn)``.
        Clients made by ``with_options`` share this registry.
        """
        hooks = self._transport.hooks
        return hooks.on(name) if hook is None else hooks.on(name, hook)

    def close(self) -> None:
        """Stop every stream still running on this client and release every pooled connection.

        Each running stream ends as if its own ``close()`` had been called: its
        ``until_done()`` raises :class:`~openai_stream.APIUserAbortError` with the
        partial completion. Requests made on a closed client raise
        :class:`~openai_stream.OpenAIError`.
        """
        self._transport.close()

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_C = TypeVar("_C", bound=Client)


def account_headers(
    organization: Optional[str], project: Optional[str], default_headers: Optional[Mapping[str, str]]
) -> Dict[str, str]:
    """The ``OpenAI-Organization`` and ``OpenAI-Project`` headers, with ``default_headers`` over them."""
    headers: Dict[str, str] = {}
    if organization:
        headers["OpenAI-Organization"] = organization
    if project:
        headers["OpenAI-Project"] = project
    headers.update(default_headers or {})
    return headers


def shown_url(url: str) -> str:
    """``url`` for a repr or a message: its query left out, since a query may carry a key."""
    base, mark, _ = url.partition("?")
    return f"{base}?..." if mark else base


def check_max_retries(value: Any) -> None:
    """Raise ValueError unless ``value`` is a whole number, 0 or more."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"max_retries must be a whole number, 0 or more, not {value!r}")


def _merged(
    what: str,
    current: Mapping[str, Any],
    more: Optional[Mapping[str, Any]],
    replace: Optional[Mapping[str, Any]],
) -> Dict[str, Any]:
    if more is not None and replace is not None:
        raise ValueError(f"give default_{what} (added) or set_default_{what} (replacing), not both")
    if replace is not None:
        return dict(replace)
    return {**current, **(more or {})}
