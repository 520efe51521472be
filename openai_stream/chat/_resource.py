"""``client.chat.completions``: :meth:`Completions.create` and :meth:`Completions.stream`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, Mapping, Optional, Sequence

from ..engine._parsing import wants_json
from ..errors import InvalidStreamDataError, OpenAIError, error_from_payload, is_error_payload
from ..transport._http import TimeoutTypes, read_json
from ._accumulator import set_parsed
from ._completion import ChatCompletion
from ._stream import ChatCompletionStream

if TYPE_CHECKING:
    from ..client import Client
    from ..tools._runner import ToolRunner

__all__ = ["Chat", "Completions"]


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
        if wants_json(params.get("response_format")):
            # As the stream does: parsed is the content decoded as JSON, None when the content is
            # not valid JSON (cut off by max_tokens) or the model refused.
            for choice in data.get("choices") or ():
                message = choice.get("message") if isinstance(choice, dict) else None
                if isinstance(message, dict):
                    set_parsed(message)
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

        Returns a :class:`~openai_stream.ToolRunner`; nothing is sent
        before its ``until_done()``. Other keywords go to each round's
        :meth:`stream` call (request parameters, ``timeout``...), except
        ``max_workers``, the size of the tool thread pool.
        """
        from ..tools._runner import ToolRunner

        return ToolRunner(self, model=model, messages=messages, tools=tools, max_rounds=max_rounds, **params)


class Chat:
    """``client.chat``: holds :class:`Completions`."""

    def __init__(self, client: Client) -> None:
        self.completions = Completions(client)
