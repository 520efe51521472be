"""``client.chat.completions``: :meth:`Completions.create` and :meth:`Completions.stream`."""

from __future__ import annotations

import sys
from collections import abc
from typing import TYPE_CHECKING, Any, Dict, Iterable, Mapping, Optional, Sequence, Union

from .._params import CHAT_COMPLETIONS_PARAMS, REQUEST_OPTIONS, check_params, request_body
from .._pydantic import ModelParser, chat_response_format, is_model_class, model_tool_parsers
from .._version import __distribution__
from ..engine._arguments import fill_parsed_arguments, strict_tool_names
from ..engine._call import CreateCall
from ..engine._parsing import wants_json
from ..errors import (
    InvalidStreamDataError,
    OpenAIError,
    StructuredOutputError,
    error_from_payload,
    is_error_payload,
)
from ..transport._http import TimeoutTypes, read_json
from ._accumulator import set_parsed
from ._completion import APIObject, ChatCompletion
from ._stream import ChatCompletionStream

if TYPE_CHECKING:
    from ..client import Client
    from ..tools._runner import ToolRunner

__all__ = ["Chat", "Completions", "MessageParam"]

MessageParam = Union[Mapping[str, Any], APIObject]
"""A message: a dict as the API documents it, or a message this SDK returned (sent as its JSON)."""

_CREATE_KNOWN = CHAT_COMPLETIONS_PARAMS | REQUEST_OPTIONS
_STREAM_KNOWN = _CREATE_KNOWN | {"max_event_bytes", "idle_timeout"}
_RUNNER_KNOWN = _STREAM_KNOWN | {"max_rounds", "max_workers"}


class Completions:
    """``client.chat.completions``: :meth:`create` for a whole answer, :meth:`stream` for events."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        model: str,
        messages: Iterable[MessageParam],
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, Optional[str]]] = None,
        extra_query: Optional[Mapping[str, Any]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> ChatCompletion:
        """Request a completion without streaming and return it whole.

        The keywords are the parameters of the Chat Completions API; any other
        raises :class:`TypeError` before anything is sent (a provider's own
        parameters go in ``extra_body``, merged into the body over the named
        ones). ``extra_headers`` and ``extra_query`` go over the client's
        headers and query for this request; ``timeout`` and ``max_retries``
        override the client's. An error payload in a 200 answer raises its
        typed error, as an error status does. For a streamed answer use
        :meth:`stream`.
        """
        check_params(params, _CREATE_KNOWN, method="chat.completions.create")
        if params.get("stream"):
            raise OpenAIError(
                "create() returns a whole completion; use client.chat.completions.stream(...) "
                "for a streamed one"
            )
        parse = _model_format(params)
        body = request_body({"model": model, "messages": _listed(messages), **params}, extra_body)
        client = self._client
        transport = client._transport
        with CreateCall(transport.hooks, body) as call:
            response = transport.post(
                client._route("chat/completions", body),
                body,
                stream=False,
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
                trace=call.recorder,
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
            strict = strict_tool_names(body.get("tools"))
            model_parsers = model_tool_parsers(params.get("tools")) if "pydantic" in sys.modules else None
            if strict or model_parsers:
                # As the stream's message has them: openai-python's ParsedFunctionToolCall.
                for choice in data.get("choices") or ():
                    message = choice.get("message") if isinstance(choice, dict) else None
                    if isinstance(message, dict):
                        fill_parsed_arguments(message.get("tool_calls"), model_parsers, strict)
            if parse is not None:
                _validate_choices(data, parse)
            elif wants_json(params.get("response_format")):
                # As the stream does: parsed is the content decoded as JSON, None when the content is
                # not valid JSON (cut off by max_tokens) or the model refused.
                for choice in data.get("choices") or ():
                    message = choice.get("message") if isinstance(choice, dict) else None
                    if isinstance(message, dict):
                        set_parsed(message)
            completion = call.result = ChatCompletion(data)
        return completion

    def stream(
        self,
        *,
        model: str,
        messages: Iterable[MessageParam],
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, Optional[str]]] = None,
        extra_query: Optional[Mapping[str, Any]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        max_event_bytes: Optional[int] = None,
        idle_timeout: Optional[float] = None,
        **params: Any,
    ) -> ChatCompletionStream:
        """Prepare a streamed completion. Nothing is sent until the stream is consumed.

        The keywords are the parameters of the Chat Completions API (``tools``,
        ``n``, ``stream_options``...); any other raises :class:`TypeError` at
        once, and so does a value that cannot be sent as JSON (naming where it
        is). A provider's own parameters go in ``extra_body``, merged into the
        body over the named ones. ``extra_headers`` and ``extra_query`` go over
        the client's for this request; ``timeout``, ``max_retries`` and
        ``idle_timeout`` override the client's (``idle_timeout=float("inf")``
        lifts the client's limit).
        """
        check_params(params, _STREAM_KNOWN, method="chat.completions.stream")
        parse = _model_format(params)
        tool_parsers = model_tool_parsers(params.get("tools")) if "pydantic" in sys.modules else None
        body = request_body(
            {"model": model, "messages": _listed(messages), **params, "stream": True}, extra_body
        )
        client = self._client
        limits = client._stream_limits(max_event_bytes, idle_timeout)
        return ChatCompletionStream(
            client._transport,
            body,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            max_event_bytes=limits[0],
            idle_timeout=limits[1],
            extra_query=extra_query,
            path=client._route("chat/completions", body),
            parse=parse,
            tool_parsers=tool_parsers,
        )

    def run_tools(
        self,
        *,
        model: str,
        messages: Iterable[MessageParam],
        tools: Sequence[Any],
        max_rounds: int = 10,
        **params: Any,
    ) -> ToolRunner:
        """Prepare a conversation that runs ``tools`` (``@openai_stream.tool`` functions) until done.

        Returns a :class:`~openai_stream.ToolRunner`; nothing is sent
        before its ``until_done()``. Other keywords go to each round's
        :meth:`stream` call (request parameters, ``extra_body``,
        ``timeout``...), except ``max_workers``, the size of the tool thread
        pool. An unknown keyword raises :class:`TypeError` here.
        """
        from ..tools._runner import ToolRunner

        check_params(params, _RUNNER_KNOWN, method="chat.completions.run_tools")
        return ToolRunner(self, model=model, messages=messages, tools=tools, max_rounds=max_rounds, **params)


class Chat:
    """``client.chat``: holds :class:`Completions`."""

    def __init__(self, client: Client) -> None:
        self.completions = Completions(client)


def _model_format(params: Dict[str, Any]) -> Optional[ModelParser]:
    """A pydantic model as ``response_format``: put its strict schema in ``params``, return its parser."""
    response_format = params.get("response_format")
    if not isinstance(response_format, type):
        return None
    if not is_model_class(response_format):
        raise TypeError(
            f"response_format is the class {response_format.__qualname__}; give a dict "
            "({'type': 'json_schema', ...}) or a pydantic model class "
            f"(pip install '{__distribution__}[pydantic]')"
        )
    params["response_format"] = chat_response_format(response_format)
    return ModelParser(response_format)


def _validate_choices(data: Dict[str, Any], parse: ModelParser) -> None:
    """A whole answer's messages get ``parsed`` instances; a content that does not fit raises."""
    failure: Optional[StructuredOutputError] = None
    for choice in data.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        message["parsed"] = None
        content = message.get("content")
        if message.get("refusal") or message.get("tool_calls"):
            continue  # a refusal replaces the answer, tool calls come instead of one: nothing to validate
        if not isinstance(content, str):
            failure = failure or StructuredOutputError(
                "the answer has no content to parse into the response_format model (finish_reason "
                f"{choice.get('finish_reason')!r}); with 'length', raise max_tokens",
                content="",
            )
            continue
        try:
            message["parsed"] = parse(content)
        except StructuredOutputError as exc:
            failure = failure or exc
    if failure is not None:
        failure.completion = ChatCompletion(data)
        raise failure


def _listed(messages: Iterable[Any]) -> Any:
    """The messages as a list (a generator is read once, here); a dict or string is left to be refused."""
    if isinstance(messages, (abc.Mapping, str, bytes)) or not isinstance(messages, abc.Iterable):
        return messages
    return list(messages)
