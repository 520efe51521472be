"""``client.responses``: :meth:`Responses.create`, :meth:`Responses.stream`, :meth:`Responses.run_tools`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .._params import REQUEST_OPTIONS, RESPONSES_PARAMS, check_params, request_body
from .._pydantic import ModelParser, is_model_class, model_tool_parsers
from .._pydantic import text_format as model_text_format
from .._version import __distribution__
from ..engine._arguments import fill_parsed_arguments, strict_tool_names
from ..engine._call import CreateCall
from ..engine._parsing import parsed_or_none, wants_json
from ..errors import (
    APIError,
    InvalidStreamDataError,
    OpenAIError,
    StructuredOutputError,
    error_from_payload,
    is_error_payload,
)
from ..tools._tool import Tool
from ..transport._http import TimeoutTypes, read_json
from ..transport._trace import traced
from ._response import Response, output_text
from ._stream import ResponseStream

if TYPE_CHECKING:
    from ..client import Client
    from ..tools._runner import ResponseToolRunner

__all__ = ["Responses", "responses_tools"]

_CREATE_KNOWN = RESPONSES_PARAMS | REQUEST_OPTIONS
_STREAM_KNOWN = _CREATE_KNOWN | {"max_event_bytes", "idle_timeout"}
_RUNNER_KNOWN = _STREAM_KNOWN | {"max_rounds", "max_workers"}
# Statuses of a response that holds its answer (a background one may still be queued).
_ANSWERED = (None, "completed", "incomplete")


class Responses:
    """``client.responses``: :meth:`create` for a whole response, :meth:`stream` for events,
    :meth:`run_tools` for a conversation that runs tools."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        model: Optional[str] = None,
        input: Any = None,
        text_format: Optional[type] = None,
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, Optional[str]]] = None,
        extra_query: Optional[Mapping[str, Any]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        **params: Any,
    ) -> Response:
        """Request a response without streaming and return it whole.

        The keywords are the parameters of the Responses API (``instructions``,
        ``tools``, ``text``, ``reasoning``, ``store``...); any other raises
        :class:`TypeError` before anything is sent (a provider's own
        parameters go in ``extra_body``). ``text_format`` (a pydantic model)
        sends its strict schema as ``text.format`` and gives the instance as
        ``parsed``; with a ``json_schema``/``json_object`` ``text.format``,
        ``parsed`` is the output text decoded as JSON (``None`` when it is not).

        A response whose ``status`` is ``failed`` raises its typed error (the
        same mapping as an error event in a stream), with the response as
        ``error.completion``; ``incomplete`` is returned, as a stream
        completes with it. With ``store`` or ``background`` set, a request that
        was written whole is not sent again after a connection failure.
        """
        check_params(params, _CREATE_KNOWN, method="responses.create")
        if params.get("stream"):
            raise OpenAIError(
                "create() returns a whole response; use client.responses.stream(...) for a streamed one"
            )
        parse = _model_format(text_format, params)
        body = request_body(_fields(model, input, params), extra_body)
        client = self._client
        transport = client._transport
        with CreateCall(transport.hooks, body) as call, traced(call.recorder):
            response = transport.post(
                client._route("responses", body),
                body,
                stream=False,
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
                replayable=not (body.get("store") or body.get("background")),
            )
            request_id = response.headers.get("x-request-id")
            try:
                data = read_json(response, client.max_event_bytes)
                if not isinstance(data, dict):
                    raise InvalidStreamDataError(
                        f"the server's answer is not a JSON object but {type(data).__name__}; check base_url",
                        body=data,
                    )
                if is_error_payload(data) and data.get("object") != "response":
                    raise error_from_payload(
                        data, request_id=request_id, where=f"in its HTTP {response.status_code} answer"
                    )
                if data.get("status") == "failed":
                    raise _failure(data, request_id)
            except OpenAIError as exc:
                transport.redact_error(exc)  # the quoted answer may echo the key
                raise
            finally:
                response.close()
            _set_whole_parsed(data, parse, wants_json(_format_of(body.get("text"))))
            strict = strict_tool_names(body.get("tools"))
            model_parsers = model_tool_parsers(params.get("tools")) if "pydantic" in sys.modules else None
            if strict or model_parsers:  # as a stream's function_call items have it
                fill_parsed_arguments(data.get("output"), model_parsers, strict)
            completion = call.result = Response(data)
        return completion

    def stream(
        self,
        *,
        model: Optional[str] = None,
        input: Any = None,
        response_id: Optional[str] = None,
        starting_after: Optional[int] = None,
        resume: bool = False,
        text_format: Optional[type] = None,
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, Optional[str]]] = None,
        extra_query: Optional[Mapping[str, Any]] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
        max_event_bytes: Optional[int] = None,
        idle_timeout: Optional[float] = None,
        **params: Any,
    ) -> ResponseStream:
        """Prepare a streamed response. Nothing is sent until the stream is consumed.

        The keywords are the parameters of the Responses API; any other raises
        :class:`TypeError` at once, and so does a value that cannot be sent as
        JSON. ``@openai_stream.tool`` functions and ``pydantic_function_tool()``
        definitions in ``tools`` are sent in the Responses API's flat shape
        (``{"type": "function", "name": ...}``), as is any chat-shaped
        ``{"type": "function", "function": {...}}``. ``text_format`` (a pydantic
        model) gives the instance on ``content.done`` and the response.

        ``response_id`` (with ``starting_after``, a ``sequence_number``) streams
        a response already running on the server instead
        (``GET /responses/{id}?stream=true&starting_after=N``; a background
        response): no other request parameter is sent then. ``resume=True``
        (with ``background=True``) picks a broken stream up that way
        automatically, from the last event received, at most ``max_retries``
        times, and no handler sees an event twice.

        ``extra_headers``, ``extra_query``, ``timeout``, ``max_retries``,
        ``idle_timeout`` and ``max_event_bytes`` work as on chat streams.
        """
        check_params(params, _STREAM_KNOWN, method="responses.stream")
        client = self._client
        parse = _model_format(text_format, params)
        tool_parsers = model_tool_parsers(params.get("tools")) if "pydantic" in sys.modules else None
        text = params.get("text")
        if response_id is not None:
            # Only `text` (and text_format) may come along: they say how to read the output.
            given = [name for name, value in (("model", model), ("input", input)) if value is not None]
            given += [name for name in params if name != "text"] + (["extra_body"] if extra_body else [])
            if given:
                raise TypeError(
                    "responses.stream(response_id=...) streams a response that exists already, so it "
                    f"sends no request body: leave out {', '.join(repr(n) for n in given)}"
                )
            if not isinstance(response_id, str) or not response_id or "/" in response_id:
                raise ValueError(f"response_id must be a response's id (resp_...), got {response_id!r:.80}")
            if resume:
                raise TypeError("resume=True applies to a new response; a response_id stream is the resume")
            if starting_after is not None and (type(starting_after) is not int or starting_after < 0):
                raise TypeError(f"starting_after must be a sequence_number (int), not {starting_after!r:.40}")
            body: Dict[str, Any] = {}
        else:
            if starting_after is not None:
                raise TypeError("starting_after= goes with response_id=: where a resumed stream starts")
            body = request_body({**_fields(model, input, params), "stream": True}, extra_body)
            text = body.get("text")
            if resume and not body.get("background"):
                raise TypeError(
                    "resume=True needs background=True: only a background response can be streamed again "
                    "from where it broke (GET /responses/{id}?stream=true)"
                )
        limits = client._stream_limits(max_event_bytes, idle_timeout)
        return ResponseStream(
            client._transport,
            body,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            max_event_bytes=limits[0],
            idle_timeout=limits[1],
            extra_query=extra_query,
            path=client._route("responses", body),
            parse=parse,
            tool_parsers=tool_parsers,
            response_id=response_id,
            starting_after=starting_after,
            resume=resume,
            text=text if isinstance(text, Mapping) else None,
        )

    def run_tools(
        self,
        *,
        model: str,
        input: Any,
        tools: Sequence[Any],
        max_rounds: int = 10,
        **params: Any,
    ) -> ResponseToolRunner:
        """Prepare a conversation that runs ``tools`` (``@openai_stream.tool`` functions) until done.

        Returns a :class:`~openai_stream.ResponseToolRunner`; nothing is sent
        before its ``until_done()``. Each round streams a response; each
        function call runs as soon as its arguments are complete, and its
        result goes back as a ``function_call_output`` item with the round's
        output items (reasoning included, with ``encrypted_content`` when
        ``include=["reasoning.encrypted_content"]`` asked for it). Other
        keywords go to each round's :meth:`stream` call, except
        ``max_workers``, the size of the tool thread pool.
        """
        from ..tools._runner import ResponseToolRunner

        check_params(params, _RUNNER_KNOWN, method="responses.run_tools")
        return ResponseToolRunner(
            self, model=model, input=input, tools=tools, max_rounds=max_rounds, **params
        )


def _fields(model: Optional[str], input: Any, params: Dict[str, Any]) -> Dict[str, Any]:
    """The request's fields: ``model`` and ``input`` when given, then the parameters (tools flattened)."""
    fields: Dict[str, Any] = {}
    if model is not None:
        fields["model"] = model
    if input is not None:
        fields["input"] = _listed(input)
    fields.update(params)
    if "tools" in fields:
        fields["tools"] = responses_tools(fields["tools"])
    return fields


def responses_tools(tools: Any) -> Any:
    """``tools`` in the Responses API's shape: function tools flat (``{"type": "function", "name": ...}``).

    A :class:`~openai_stream.Tool`, and a chat-shaped ``{"type": "function",
    "function": {...}}`` (``pydantic_function_tool()`` makes those), become
    the flat form; anything else (hosted tools, flat definitions) is kept.
    """
    if not isinstance(tools, (list, tuple)):
        return tools  # refused by request_body, or by the server, as given
    flat: List[Any] = []
    for entry in tools:
        if isinstance(entry, Tool):
            entry = entry.definition
        if (
            isinstance(entry, Mapping)
            and entry.get("type") == "function"
            and isinstance(entry.get("function"), Mapping)
            and "name" not in entry
        ):
            function = dict(entry["function"])
            entry = {"type": "function", **function}
        flat.append(entry)
    return flat


def _listed(value: Any) -> Any:
    """``input`` as given: a string, or a list (a tuple or generator is read once, here)."""
    if isinstance(value, (str, bytes, Mapping)):
        return value
    if isinstance(value, (list, tuple)) or hasattr(value, "__iter__"):
        return list(value)
    return value


def _model_format(text_format: Optional[type], params: Dict[str, Any]) -> Optional[ModelParser]:
    """A pydantic model as ``text_format``: its strict schema in ``params["text"]``; return its parser."""
    if text_format is None:
        return None
    if not is_model_class(text_format):
        raise TypeError(
            f"text_format takes a pydantic model class, not {text_format!r:.80}; for a schema as a dict use "
            "text={'format': {'type': 'json_schema', ...}} "
            f"(models need pip install '{__distribution__}[pydantic]')"
        )
    text = params.get("text")
    if text is not None and not isinstance(text, Mapping):
        raise TypeError(f"text must be a dict, not {type(text).__name__}")
    if isinstance(text, Mapping) and "format" in text:
        raise TypeError("give text_format=Model or text={'format': ...}, not both")
    params["text"] = {**(text or {}), "format": model_text_format(text_format)}
    return ModelParser(text_format)


def _format_of(text: Any) -> Optional[Mapping[str, Any]]:
    fmt = text.get("format") if isinstance(text, Mapping) else None
    return fmt if isinstance(fmt, Mapping) else None


def _failure(data: Dict[str, Any], request_id: Optional[str]) -> OpenAIError:
    """The typed error of a response whose status is ``failed``."""
    error = data.get("error")
    if isinstance(error, Mapping):
        failure = error_from_payload(
            {"error": error},
            request_id=request_id,
            completion=Response(data),
            where="and failed the response",
        )
        return failure
    return APIError(
        "the server answered with a failed response and no error object; see error.completion",
        body=data,
        completion=Response(data),
    )


def _set_whole_parsed(data: Dict[str, Any], parse: Optional[ModelParser], structured: bool) -> None:
    """A whole response's ``parsed``: the instance (``text_format``) or the JSON, as a stream gives it."""
    if parse is None and not structured:
        return
    data["parsed"] = None
    if data.get("status") not in _ANSWERED:
        return  # a background response still queued or running: nothing to parse yet
    output = data.get("output")
    refused, called = _refused_or_called(output)
    if refused or called:
        return
    text = output_text(output)
    if parse is None:
        data["parsed"] = parsed_or_none(text)
        return
    if not text:
        raise StructuredOutputError(
            f"the response has no output text to parse into the text_format model (status "
            f"{data.get('status')!r}); an answer cut by max_output_tokens gives this: raise it",
            content="",
            completion=Response(data),
        )
    try:
        data["parsed"] = parse(text)
    except StructuredOutputError as exc:
        exc.completion = Response(data)
        raise


def _refused_or_called(output: Any) -> Tuple[bool, bool]:
    refused = called = False
    for item in output or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") in ("function_call", "custom_tool_call"):
            called = True
        elif item.get("type") == "message":
            refused = refused or any(
                isinstance(part, dict) and part.get("type") == "refusal" for part in item.get("content") or ()
            )
    return refused, called
