"""The client: configuration, the connection pool, and the API resources (``client.chat``)."""

from __future__ import annotations

import os
from typing import Mapping, Optional

from .chat._resource import Chat
from .engine._stream import check_idle_timeout
from .errors import APIConnectionError
from .transport._http import DEFAULT_TIMEOUT, TimeoutTypes, Transport, as_timeout
from .transport._sse import DEFAULT_MAX_EVENT_BYTES

__all__ = ["Client"]

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
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        default_headers: Optional[Mapping[str, str]] = None,
        *,
        max_connections: int = 64,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        idle_timeout: Optional[float] = None,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get("OPENAI_API_KEY") or None
        if base_url is None:
            base_url = os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        if not base_url.startswith(("http://", "https://")):
            raise APIConnectionError(
                f"base_url must start with http:// or https://, got {base_url!r}"
            )
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if max_connections < 1:
            raise ValueError("max_connections must be 1 or more")
        check_idle_timeout(idle_timeout)
        self.base_url = base_url.rstrip("/")
        self.timeout = as_timeout(timeout)
        self.max_retries = max_retries
        self.max_event_bytes = max_event_bytes
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._transport = Transport(
            base_url=self.base_url,
            api_key=api_key,
            timeout=self.timeout,
            max_retries=max_retries,
            default_headers=default_headers,
            max_connections=max_connections,
        )
        self.chat = Chat(self)

    def __repr__(self) -> str:
        return f"<openai_stream.Client base_url={self.base_url!r}>"

    def close(self) -> None:
        """Stop every stream still running on this client and release every pooled connection.

        Each running stream ends as if its own ``close()`` had been called: its
        ``until_done()`` raises :class:`~openai_stream.APIUserAbortError` with the
        partial completion. Requests made on a closed client raise
        :class:`~openai_stream.OpenAIError`.
        """
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
