"""The client: configuration, and the ``client.chat.completions`` resource."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, Mapping, Optional

from .completion import ChatCompletion
from .errors import APIConnectionError, InvalidStreamDataError, OpenAIError
from .sse import DEFAULT_MAX_EVENT_BYTES
from .stream import ChatCompletionStream
from .transport import DEFAULT_TIMEOUT, TimeoutTypes, Transport, as_timeout, iter_body

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
        unchanged. For a streamed answer use :meth:`stream`.
        """
        if params.get("stream"):
            raise OpenAIError(
                "create() returns a whole completion; use client.chat.completions.stream(...) "
                "for a streamed one"
            )
        body: Dict[str, Any] = {"model": model, "messages": list(messages), **params}
        response = self._client._transport.post(
            "chat/completions",
            body,
            stream=False,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )
        try:
            raw = b"".join(iter_body(response))
        finally:
            response.close()
        try:
            data = json.loads(raw)
        except ValueError:
            raise InvalidStreamDataError(
                f"the server's answer is not JSON: {raw[:200]!r}; check base_url",
                body=raw[:4096],
            ) from None
        if not isinstance(data, dict):
            raise InvalidStreamDataError(
                f"the server's answer is not a JSON object: {raw[:200]!r}", body=data
            )
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
        **params: Any,
    ) -> ChatCompletionStream:
        """Prepare a streamed completion. Nothing is sent until the stream is consumed.

        Every keyword other than the ones named here is sent in the request body
        unchanged (``tools``, ``n``, ``stream_options``, provider extras...).
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
        )


class Chat:
    """``client.chat``: holds :class:`Completions`."""

    def __init__(self, client: Client) -> None:
        self.completions = Completions(client)


class Client:
    """A client for one OpenAI-compatible server.

    ``api_key`` falls back to ``OPENAI_API_KEY`` and may stay unset for local
    servers; ``base_url`` falls back to ``OPENAI_BASE_URL``, then the OpenAI API.
    ``timeout`` is seconds or :class:`~openai_stream.Timeout`; ``max_retries``
    is how often a request is retried before its body starts. The client keeps
    one pooled HTTP session; close it with :meth:`close` or a ``with`` block.
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
        self.base_url = base_url.rstrip("/")
        self.timeout = as_timeout(timeout)
        self.max_retries = max_retries
        self.max_event_bytes = max_event_bytes
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
        """Release every pooled connection. Streams still running are not stopped."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
