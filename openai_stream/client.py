"""The client: configuration, and the ``client.chat.completions`` resource."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Iterable, Mapping, Optional, Sequence

from .completion import ChatCompletion
from .errors import (
    APIConnectionError,
    InvalidStreamDataError,
    OpenAIError,
    error_from_payload,
    is_error_payload,
)
from .sse import DEFAULT_MAX_EVENT_BYTES
from .stream import ChatCompletionStream, check_idle_timeout
from .transport import DEFAULT_TIMEOUT, TimeoutTypes, Transport, as_timeout, read_json

if TYPE_CHECKING:
    from .runner import ToolRunner

__all__ = ["Client", "Chat", "Completions"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class Completions:
    """``client.chat.completions``: :meth:`create` for a whole answer, :meth:`stream` for events."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        **params: Any,
    ) -> ChatCompletion:
        """Request a completion without streaming and return it whole.

        Every keyword other than the ones named here is sent in the request body
        unchanged. An error payload in a 200 answer raises its typed error, as an
        error status does. For a streamed answer use :meth:`stream`.
        """
        if params.get("stream"):
            raise OpenAIError(
                "create() returns a whole completion; use client.chat.completions.stream(...) "
                "for a streamed one"
            )
        body: Dict[str, Any] = {"model": model, "messages": list(messages), **params}
        transport = self._client._transport
        response = transport.post(
            "chat/completions",
            body,
            stream=False,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )
        try:
            data = read_json(response, self._client.max_event_bytes)
            if not isinstance(data, dict):
                raise InvalidStreamDataError(
                    f"the server's answer is not a JSON object but {type(data).__name__}; check base_url",
                    body=data,
                )
            if is_error_payload(data):
                raise error_from_payload(
                    data,
                    request_id=response.headers.get("x-request-id"),
                    where=f"in its HTTP {response.status_code} answer",
                )
        except OpenAIError as exc:
            transport.redact_error(exc)  # the quoted answer may echo the key
            raise
        finally:
            response.close()
        return ChatCompletion(data)

    def stream(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
        max_event_bytes: Optional[int] = None,
        idle_timeout: Optional[float] = None,
        **params: Any,
    ) -> ChatCompletionStream:
        """Prepare a streamed completion. Nothing is sent until the stream is consumed.

        Every keyword other than the ones named here is sent in the request body
        unchanged (``tools``, ``n``, ``stream_options``, provider extras...).
        ``timeout``, ``max_retries`` and ``idle_timeout`` override the client's
        for this request (``idle_timeout=float("inf")`` lifts the client's limit).
        """
        body: Dict[str, Any] = {"model": model, "messages": list(messages), **params}
        body["stream"] = True
        client = self._client
        return ChatCompletionStream(
            client._transport,
            body,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            max_event_bytes=max_event_bytes or client.max_event_bytes,
            idle_timeout=idle_timeout if idle_timeout is not None else client.idle_timeout,
        )

    def run_tools(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        tools: Sequence[Any],
        max_rounds: int = 10,
        **params: Any,
    ) -> ToolRunner:
        """Prepare a conversation that runs ``tools`` (``@openai_stream.tool`` functions) until done.

        Returns a :class:`~openai_stream.runner.ToolRunner`; nothing is sent
        before its ``until_done()``. Other keywords go to each round's
        :meth:`stream` call (request parameters, ``timeout``...), except
        ``max_workers``, the size of the tool thread pool.
        """
        from .runner import ToolRunner

        return ToolRunner(self, model=model, messages=messages, tools=tools, max_rounds=max_rounds, **params)


class Chat:
    """``client.chat``: holds :class:`Completions`."""

    def __init__(self, client: Client) -> None:
        self.completions = Completions(client)


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
        """Release every pooled connection.

        Streams still running are not stopped; each closes its own connection
        when it ends (close them first to stop them).
        """
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
