"""OpenTelemetry for openai_stream: spans and metrics in the GenAI semantic conventions.

``pip install 'openai-stream-events[otel]'``, then::

    from openai_stream import otel
    otel.instrument(client)          # the global tracer and meter providers, or pass your own

Built on the client hooks (:mod:`openai_stream.hooks`), so it sees every
stream, runner and ``create()`` of the client and of the clients made from
it by ``with_options`` (they share the hooks):

- one span per call, kind CLIENT, named ``{gen_ai.operation.name}
  {gen_ai.request.model}`` (``chat gpt-4o``), from the moment the stream
  starts to its end, retries included. It carries the request's model and
  sampling parameters, ``gen_ai.provider.name`` (from the base URL:
  ``openai``, ``azure.ai.openai``... else the host), ``server.address`` and
  ``server.port``, then the response's id, model and finish reasons, the
  token usage and ``gen_ai.response.time_to_first_chunk``;
- each retry as a span event ``openai_stream.retry`` (attempt, delay, the
  status or error type that caused it);
- the span ends exactly once whatever ends the stream. A stream that
  finished leaves the status unset; one that failed sets ERROR with
  ``error.type`` (the exception's class name); one that was closed
  (``close()`` from any thread, ``client.close()``, a stream dropped
  half-read, Ctrl-C) sets ERROR with ``error.type`` ``APIUserAbortError``
  (or ``KeyboardInterrupt``), so an answer cut short never looks complete;
- a tool runner is an INTERNAL ``invoke_agent run_tools`` span whose children
  are its rounds' chat spans and one INTERNAL ``execute_tool {name}`` span
  per tool call (``gen_ai.tool.name``, ``gen_ai.tool.call.id``);
- metrics: ``gen_ai.client.operation.duration`` (s),
  ``gen_ai.client.token.usage`` (by ``gen_ai.token.type``: ``input``,
  ``output``; a runner's rounds each count once) and
  ``gen_ai.client.operation.time_to_first_chunk`` (s, streams only), with the
  bucket boundaries the conventions advise.

Message content (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.system_instructions``, tool arguments and results) is recorded only
with ``capture_content=True`` or the environment variable
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``. The API key is
never recorded: attributes come from the request body, the base URL's host
and the answer, and error messages are redacted before they get here.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from ._version import __distribution__, __version__
from .hooks import (
    CreateEndInfo,
    CreateStartInfo,
    Hooks,
    RetryInfo,
    RunnerEndInfo,
    RunnerStartInfo,
    StreamEndInfo,
    StreamStartInfo,
    ToolEndInfo,
    ToolStartInfo,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .client import Client

__all__ = ["Instrumentation", "instrument", "provider_name", "CAPTURE_CONTENT_ENV"]

log = logging.getLogger("openai_stream")

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_KEY = "openai_stream.otel"  # where a call's span lives in its hook_state
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
_MAX_DESCRIPTION = 500

# Known API hosts, and the gen_ai.provider.name the conventions give them.
_PROVIDERS: Tuple[Tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    (".inference.ai.azure.com", "azure.ai.inference"),
    ("models.github.ai", "azure.ai.inference"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.anthropic.com", "anthropic"),
    ("api.cohere.ai", "cohere"),
    ("api.cohere.com", "cohere"),
    (".amazonaws.com", "aws.bedrock"),
    (".ml.cloud.ibm.com", "ibm.watsonx.ai"),
)

# One instrumentation per hook registry (a client and the clients made from it by with_options).
_instrumented: weakref.WeakKeyDictionary[Hooks, Instrumentation] = weakref.WeakKeyDictionary()
_instrumented_lock = threading.Lock()


def instrument(
    client: Client,
    tracer_provider: Optional[TracerProvider] = None,
    meter_provider: Optional[MeterProvider] = None,
    capture_content: bool = False,
) -> Instrumentation:
    """Trace and measure every call ``client`` makes; returns the :class:`Instrumentation`.

    ``tracer_provider`` and ``meter_provider`` default to OpenTelemetry's
    global ones. ``capture_content`` records messages and tool arguments and
    results; so does ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
    Instrumenting a client twice (or a client made from it by
    ``with_options``, which shares its hooks) returns the first
    instrumentation and logs a warning. ``uninstrument()`` on the result
    removes it.
    """
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        raise ImportError(
            f"openai_stream.otel needs OpenTelemetry: pip install '{__distribution__}[otel]' "
            "(opentelemetry-api, and opentelemetry-sdk to export anything)"
        ) from None
    capture = capture_content or os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"
    hooks = client.hooks
    with _instrumented_lock:
        existing = _instrumented.get(hooks)
        if existing is not None:
            log.warning("openai_stream.otel: this client is already instrumented; keeping the first")
            return existing
        tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("openai_stream", __version__)
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("openai_stream", __version__)
        instrumentation = Instrumentation(client, tracer, meter, capture)
        _instrumented[hooks] = instrumentation
    return instrumentation


class _Call:
    """A call's span and the attributes its metrics are recorded with (kept in its hook_state)."""

    __slots__ = ("attributes", "span")

    def __init__(self, span: Span, attributes: Dict[str, Any]) -> None:
        self.span = span
        self.attributes = attributes


class Instrumentation:
    """The hooks :func:`instrument` registered on a client; :meth:`uninstrument` removes them."""

    def __init__(self, client: Client, tracer: Any, meter: Any, capture_content: bool) -> None:
        self._hooks = client.hooks
        self._tracer = tracer
        self.capture_content = capture_content
        parts = urlsplit(client.base_url)
        self._provider = provider_name(client.base_url)
        self._server: Dict[str, Any] = {}
        if parts.hostname:
            self._server["server.address"] = parts.hostname
            self._server["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
        self._duration: Histogram = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self._tokens: Histogram = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(_TOKEN_BUCKETS),
        )
        self._first_chunk: Histogram = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from issuing the request to receiving the first chunk of the response stream.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self._registered: List[Tuple[str, Callable[[Any], None]]] = [
            ("stream.start", self._stream_start),
            ("stream.end", self._stream_end),
            ("create.start", self._create_start),
            ("create.end", self._create_end),
            ("runner.start", self._runner_start),
            ("runner.end", self._runner_end),
            ("tool.start", self._tool_start),
            ("tool.end", self._tool_end),
            ("retry", self._retry),
        ]
        for name, hook in self._registered:
            self._hooks.on(name, hook)

    def uninstrument(self) -> None:
        """Remove the hooks: calls that start later are not traced (running ones still end their spans)."""
        with _instrumented_lock:
            if _instrumented.get(self._hooks) is self:
                del _instrumented[self._hooks]
            for name, hook in self._registered:
                try:
                    self._hooks.remove(name, hook)
                except ValueError:
                    pass
            self._registered = []

    # ------------------------------------------------------------------ spans

    def _start(
        self, state: Dict[str, Any], operation: str, body: Mapping[str, Any], streamed: bool, parent: Any
    ) -> None:
        from opentelemetry.trace import SpanKind, set_span_in_context

        attributes = self._common(operation, body.get("model"))
        request = request_attributes(body)
        request["gen_ai.request.stream"] = streamed
        parent_call = getattr(parent, "hook_state", {}).get(_KEY) if parent is not None else None
        context = set_span_in_context(parent_call.span) if parent_call is not None else None
        span = self._tracer.start_span(
            _span_name(operation, body.get("model")),
            kind=SpanKind.CLIENT,
            attributes={**attributes, **request},
            context=context,
        )
        if self.capture_content and span.is_recording():
            system, messages = input_messages(body.get("messages") or body.get("input"))
            if system:
                span.set_attribute("gen_ai.system_instructions", _json(system))
            if messages:
                span.set_attribute("gen_ai.input.messages", _json(messages))
        state[_KEY] = _Call(span, attributes)

    def _end(
        self,
        state: Dict[str, Any],
        outcome: str,
        error: Optional[BaseException],
        result: Any,
        metrics: Any,
        streamed: bool,
        usage_metrics: bool = True,
    ) -> None:
        call = state.pop(_KEY, None)
        if not isinstance(call, _Call):
            return  # started before instrument(), or already ended
        span = call.span
        attributes = dict(call.attributes)
        response = response_attributes(result, metrics)
        if response.get("gen_ai.response.model"):
            attributes["gen_ai.response.model"] = response["gen_ai.response.model"]
        try:
            if span.is_recording():
                span.set_attributes(response)
                if streamed and metrics.time_to_first_chunk is not None:
                    span.set_attribute("gen_ai.response.time_to_first_chunk", metrics.time_to_first_chunk)
                if self.capture_content and result is not None:
                    output = output_messages(result)
                    if output:
                        span.set_attribute("gen_ai.output.messages", _json(output))
            if outcome != "done":
                attributes["error.type"] = _error_type(error)
                _fail(span, error, attributes["error.type"])
        finally:
            span.end()
        self._duration.record(metrics.total_seconds, attributes)
        if usage_metrics:
            if metrics.input_tokens is not None:
                self._tokens.record(metrics.input_tokens, {**attributes, "gen_ai.token.type": "input"})
            if metrics.output_tokens is not None:
                self._tokens.record(metrics.output_tokens, {**attributes, "gen_ai.token.type": "output"})
            if streamed and metrics.time_to_first_chunk is not None:
                self._first_chunk.record(metrics.time_to_first_chunk, attributes)

    def _common(self, operation: str, model: Any) -> Dict[str, Any]:
        attributes: Dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": self._provider,
        }
        if isinstance(model, str) and model:
            attributes["gen_ai.request.model"] = model
        attributes.update(self._server)
        return attributes

    # ------------------------------------------------------------------ hooks

    def _stream_start(self, info: StreamStartInfo) -> None:
        stream = info.stream
        operation = getattr(stream, "operation_name", "chat")
        self._start(stream.hook_state, operation, info.body, True, info.parent)

    def _stream_end(self, info: StreamEndInfo) -> None:
        self._end(info.stream.hook_state, info.outcome, info.error, info.result, info.metrics, True)

    def _create_start(self, info: CreateStartInfo) -> None:
        self._start(info.call.hook_state, info.call.operation_name, info.body, False, None)

    def _create_end(self, info: CreateEndInfo) -> None:
        self._end(info.call.hook_state, info.outcome, info.error, info.result, info.metrics, False)

    def _runner_start(self, info: RunnerStartInfo) -> None:
        from opentelemetry.trace import SpanKind

        attributes = self._common("invoke_agent", info.model)
        attributes["gen_ai.agent.name"] = "run_tools"
        request = request_attributes(info.body)
        span = self._tracer.start_span(
            "invoke_agent run_tools", kind=SpanKind.INTERNAL, attributes={**attributes, **request}
        )
        if self.capture_content and span.is_recording():
            definitions = info.body.get("tools")
            if definitions:
                span.set_attribute("gen_ai.tool.definitions", _json(definitions))
        info.runner.hook_state[_KEY] = _Call(span, attributes)

    def _runner_end(self, info: RunnerEndInfo) -> None:
        # Its rounds' spans already counted their tokens: the runner records its duration only.
        self._end(info.runner.hook_state, info.outcome, info.error, info.result, info.metrics, False, False)

    def _tool_start(self, info: ToolStartInfo) -> None:
        from opentelemetry.trace import SpanKind, set_span_in_context

        parent = info.runner.hook_state.get(_KEY)
        attributes: Dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.call.id": info.call_id,
            "gen_ai.tool.type": "function",
        }
        if info.name:
            attributes["gen_ai.tool.name"] = info.name
        span = self._tracer.start_span(
            f"execute_tool {info.name or 'unknown'}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            context=set_span_in_context(parent.span) if isinstance(parent, _Call) else None,
        )
        if self.capture_content and span.is_recording():
            span.set_attribute("gen_ai.tool.call.arguments", info.arguments)
        info.hook_state[_KEY] = span

    def _tool_end(self, info: ToolEndInfo) -> None:
        span = info.hook_state.pop(_KEY, None)
        if span is None:
            return
        try:
            if self.capture_content and span.is_recording():
                span.set_attribute("gen_ai.tool.call.result", info.content)
            if info.outcome != "done":
                error_type = _error_type(info.error)
                span.set_attribute("error.type", error_type)
                _fail(span, info.error, error_type)
        finally:
            span.end()

    def _retry(self, info: RetryInfo) -> None:
        call = getattr(info.call, "hook_state", {}).get(_KEY) if info.call is not None else None
        if not isinstance(call, _Call):
            return
        attributes: Dict[str, Any] = {
            "openai_stream.retry.attempt": info.attempt,
            "openai_stream.retry.delay": info.delay,
            "openai_stream.retry.counted": info.counted,
        }
        if info.status_code is not None:
            attributes["http.response.status_code"] = info.status_code
        if info.error is not None:
            attributes["error.type"] = type(info.error).__name__
        call.span.add_event("openai_stream.retry", attributes)


# --------------------------------------------------------------------------- attributes


def provider_name(base_url: str) -> str:
    """``gen_ai.provider.name`` for a base URL: the conventions' name for a known API host, else the host."""
    host = (urlsplit(base_url).hostname or "").lower()
    for suffix, name in _PROVIDERS:
        if host == suffix.lstrip(".") or (suffix.startswith(".") and host.endswith(suffix)):
            return name
    return host or "unknown"


def _span_name(operation: str, model: Any) -> str:
    return f"{operation} {model}" if isinstance(model, str) and model else operation


def request_attributes(body: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``gen_ai.request.*`` attributes of a request body: the model's sampling parameters as sent."""
    out: Dict[str, Any] = {}
    for key, name in (
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("top_k", "gen_ai.request.top_k"),
        ("frequency_penalty", "gen_ai.request.frequency_penalty"),
        ("presence_penalty", "gen_ai.request.presence_penalty"),
    ):
        value = body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out["gen_ai.request.max_tokens"] = value
            break
    seed = body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        out["gen_ai.request.seed"] = seed
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        out["gen_ai.request.choice.count"] = n
    stop = body.get("stop")
    if isinstance(stop, str):
        out["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        out["gen_ai.request.stop_sequences"] = list(stop)
    output_type = _output_type(body)
    if output_type is not None:
        out["gen_ai.output.type"] = output_type
    tier = body.get("service_tier")
    if isinstance(tier, str):
        out["gen_ai.openai.request.service_tier"] = tier
    return out


def _output_type(body: Mapping[str, Any]) -> Optional[str]:
    fmt = body.get("response_format")
    if fmt is None:
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_object", "json_schema"):
        return "json"
    if kind == "text":
        return "text"
    return None


def response_attributes(result: Any, metrics: Any) -> Dict[str, Any]:
    """``gen_ai.response.*`` and ``gen_ai.usage.*`` from a completion (or response) and its metrics."""
    out: Dict[str, Any] = {}
    if result is not None:
        identifier = getattr(result, "id", None)
        if isinstance(identifier, str) and identifier:
            out["gen_ai.response.id"] = identifier
        model = getattr(result, "model", None)
        if isinstance(model, str) and model:
            out["gen_ai.response.model"] = model
        fingerprint = getattr(result, "system_fingerprint", None)
        if isinstance(fingerprint, str):
            out["gen_ai.openai.response.system_fingerprint"] = fingerprint
        tier = getattr(result, "service_tier", None)
        if isinstance(tier, str):
            out["gen_ai.openai.response.service_tier"] = tier
    reasons = [r for r in metrics.finish_reasons if isinstance(r, str)]
    if reasons:
        out["gen_ai.response.finish_reasons"] = reasons
    if metrics.input_tokens is not None:
        out["gen_ai.usage.input_tokens"] = metrics.input_tokens
    if metrics.output_tokens is not None:
        out["gen_ai.usage.output_tokens"] = metrics.output_tokens
    return out


def input_messages(messages: Any) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The system instructions and the other messages, as the conventions' ``parts`` JSON shape."""
    system: List[Dict[str, Any]] = []
    out: List[Dict[str, Any]] = []
    if isinstance(messages, str):
        return system, [{"role": "user", "parts": [{"type": "text", "content": messages}]}]
    for message in messages or ():
        if not isinstance(message, Mapping):
            continue
        role = message.get("role") or "user"
        parts = _parts(message.get("content"))
        if role in ("system", "developer"):
            system.extend(parts)
            continue
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping):
                function = call.get("function") or {}
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": function.get("arguments"),
                    }
                )
        if role == "tool":
            response = "".join(p.get("content", "") for p in parts if p.get("type") == "text")
            parts = [{"type": "tool_call_response", "id": message.get("tool_call_id"), "response": response}]
        out.append({"role": role, "parts": parts})
    return system, out


def _parts(content: Any) -> List[Dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: List[Dict[str, Any]] = []
    for part in content or ():
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        text = part.get("text")
        if kind in ("text", "input_text", "output_text") and isinstance(text, str):
            parts.append({"type": "text", "content": text})
        elif isinstance(kind, str):
            parts.append({"type": kind})  # images, audio, files: their kind, never their data
    return parts


def output_messages(result: Any) -> List[Dict[str, Any]]:
    """A completion's choices as the conventions' output messages (role, parts, finish reason)."""
    out: List[Dict[str, Any]] = []
    for choice in getattr(result, "choices", None) or ():
        message = choice.message
        parts: List[Dict[str, Any]] = []
        if message.content:
            parts.append({"type": "text", "content": message.content})
        refusal = getattr(message, "refusal", None)
        if refusal:
            parts.append({"type": "refusal", "content": refusal})
        for call in message.tool_calls or ():
            function = getattr(call, "function", None)
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.id,
                    "name": getattr(function, "name", None),
                    "arguments": getattr(function, "arguments", None),
                }
            )
        out.append({"role": "assistant", "parts": parts, "finish_reason": choice.finish_reason or "error"})
    text = getattr(result, "output_text", None)
    if not out and isinstance(text, str) and text:
        parts = [{"type": "text", "content": text}]
        out.append({"role": "assistant", "parts": parts, "finish_reason": "stop"})
    return out


def _json(value: Sequence[Any]) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _error_type(error: Optional[BaseException]) -> str:
    return type(error).__name__ if error is not None else "_OTHER"


def _fail(span: Span, error: Optional[BaseException], error_type: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    description = f"{error_type}: {error}" if error is not None else error_type
    if len(description) > _MAX_DESCRIPTION:
        description = description[: _MAX_DESCRIPTION - 3] + "..."
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, description))
