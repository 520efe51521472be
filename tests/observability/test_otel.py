"""OpenTelemetry instrumentation: spans and metrics in the GenAI semantic conventions.

The OpenTelemetry SDK's in-memory span exporter and metric reader collect
what ``openai_stream.otel`` records over loopback replay servers (and the
local llama.cpp model when installed). Attribute names are checked against
the published names the ``opentelemetry-semantic-conventions`` package
carries; expected values come from the scripted answers.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
from conftest import LOCAL_MISSING, RESPONSES_FIXTURES

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed: pip install -e '.[otel]'")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import (
    error_attributes,
    http_attributes,
    server_attributes,
)
from opentelemetry.trace import SpanKind, StatusCode

import openai_stream
from openai_stream import otel
from openai_stream.testing import (
    ReplayServer,
    ScriptedResponse,
    demo_transcript,
    split_sse_events,
)
from openai_stream.transport import _http as transport

KEY = "sk-test-otel-SECRET-0123456789"
USER = [{"role": "user", "content": "hi"}]
SYSTEM = [{"role": "system", "content": "Be brief."}, *USER]


def _published(*modules: Any) -> Set[str]:
    return {
        value
        for module in modules
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and "." in value
    }


PUBLISHED = _published(GA, error_attributes, http_attributes, server_attributes)


class Tracker(SpanProcessor):
    """Every span started and every end, to find spans ended twice or never."""

    def __init__(self) -> None:
        self.started: List[int] = []
        self.ended: List[int] = []
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        with self._lock:
            self.started.append(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            assert span.context is not None
            self.ended.append(span.context.span_id)


class Telemetry:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracker = Tracker()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(self.tracker)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def instrument(self, client: openai_stream.Client, **kwargs: Any) -> otel.Instrumentation:
        return otel.instrument(
            client, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs
        )

    def spans(self) -> List[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> Dict[str, Any]:
        data = self.reader.get_metrics_data()
        found: Dict[str, Any] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found

    def check_every_span_ended_once(self) -> None:
        assert sorted(self.tracker.started) == sorted(self.tracker.ended)
        assert len(set(self.tracker.ended)) == len(self.tracker.ended)


@pytest.fixture
def telemetry(caplog: pytest.LogCaptureFixture) -> Iterator[Telemetry]:
    found = Telemetry()
    with caplog.at_level(logging.WARNING):
        yield found
    found.check_every_span_ended_once()
    twice = [r for r in caplog.records if "ended span" in r.getMessage()]  # the SDK's warning on a second end
    assert not twice
    found.tracer_provider.shutdown()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    recorded: List[float] = []
    monkeypatch.setattr(transport, "_sleep", recorded.append)
    return recorded


@pytest.fixture(autouse=True)
def no_capture_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(otel.CAPTURE_CONTENT_ENV, raising=False)


def transcript_facts(data: bytes) -> Dict[str, Any]:
    """The id, model, finish reasons and usage of an SSE transcript, read without openai_stream."""
    facts: Dict[str, Any] = {"reasons": {}}
    for piece in split_sse_events(data):
        for line in piece.splitlines():
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            chunk = json.loads(line[5:])
            facts.setdefault("id", chunk.get("id"))
            facts.setdefault("model", chunk.get("model"))
            if chunk.get("usage"):
                facts["usage"] = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if choice.get("finish_reason"):
                    facts["reasons"][choice["index"]] = choice["finish_reason"]
    return facts


def demo_server() -> Tuple[ReplayServer, bytes]:
    data = demo_transcript("llamacpp-content-usage")
    return ReplayServer([ScriptedResponse(events=split_sse_events(data))]), data


def answer(text: str = "ok", **extra: Any) -> ScriptedResponse:
    return ScriptedResponse.from_chunks(
        [
            {
                "id": "chatcmpl-x",
                "model": "m-1",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}],
                **extra,
            }
        ]
    )


# --------------------------------------------------------------------------- a stream


def test_a_stream_is_one_client_span_with_the_conventions_attributes(telemetry: Telemetry) -> None:
    server, data = demo_server()
    facts = transcript_facts(data)
    with server, openai_stream.Client(api_key=KEY, base_url=server.base_url) as client:
        port = server.port
        telemetry.instrument(client)
        client.chat.completions.stream(
            model="gpt-test",
            messages=USER,
            temperature=0.2,
            max_tokens=50,
            seed=7,
            top_p=0.9,
            stop=["\n\n"],
            stream_options={"include_usage": True},
        ).until_done()
    (span,) = telemetry.spans()
    assert span.name == "chat gpt-test" and span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    expected = {
        GA.GEN_AI_OPERATION_NAME: "chat",
        GA.GEN_AI_PROVIDER_NAME: "127.0.0.1",
        GA.GEN_AI_REQUEST_MODEL: "gpt-test",
        GA.GEN_AI_REQUEST_STREAM: True,
        GA.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        GA.GEN_AI_REQUEST_TOP_P: 0.9,
        GA.GEN_AI_REQUEST_MAX_TOKENS: 50,
        GA.GEN_AI_REQUEST_SEED: 7,
        GA.GEN_AI_REQUEST_STOP_SEQUENCES: ("\n\n",),
        GA.GEN_AI_RESPONSE_ID: facts["id"],
        GA.GEN_AI_RESPONSE_MODEL: facts["model"],
        GA.GEN_AI_RESPONSE_FINISH_REASONS: tuple(facts["reasons"][i] for i in sorted(facts["reasons"])),
        GA.GEN_AI_USAGE_INPUT_TOKENS: facts["usage"]["prompt_tokens"],
        GA.GEN_AI_USAGE_OUTPUT_TOKENS: facts["usage"]["completion_tokens"],
        server_attributes.SERVER_ADDRESS: "127.0.0.1",
        server_attributes.SERVER_PORT: port,
    }
    for name, value in expected.items():
        assert attributes.get(name) == value, name
    assert isinstance(attributes[GA.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
    assert error_attributes.ERROR_TYPE not in attributes
    assert GA.GEN_AI_INPUT_MESSAGES not in attributes and GA.GEN_AI_OUTPUT_MESSAGES not in attributes
    for name in attributes:
        assert name in PUBLISHED or name.startswith("openai_stream."), name


def test_the_metrics_follow_the_conventions(telemetry: Telemetry) -> None:
    server, data = demo_server()
    usage = transcript_facts(data)["usage"]
    with server, openai_stream.Client(api_key=KEY, base_url=server.base_url) as client:
        port = server.port
        telemetry.instrument(client)
        client.chat.completions.stream(model="gpt-test", messages=USER).until_done()
    metrics = telemetry.metrics()
    duration = metrics[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION]
    tokens = metrics[gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE]
    first = metrics[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK]
    assert (duration.unit, tokens.unit, first.unit) == ("s", "{token}", "s")
    (point,) = duration.data.data_points
    assert point.count == 1
    assert dict(point.attributes) == {
        GA.GEN_AI_OPERATION_NAME: "chat",
        GA.GEN_AI_PROVIDER_NAME: "127.0.0.1",
        GA.GEN_AI_REQUEST_MODEL: "gpt-test",
        GA.GEN_AI_RESPONSE_MODEL: transcript_facts(data)["model"],
        server_attributes.SERVER_ADDRESS: "127.0.0.1",
        server_attributes.SERVER_PORT: port,
    }
    by_type = {p.attributes[GA.GEN_AI_TOKEN_TYPE]: p for p in tokens.data.data_points}
    assert set(by_type) == {"input", "output"}
    assert (
        by_type["input"].sum == usage["prompt_tokens"] and by_type["output"].sum == usage["completion_tokens"]
    )
    assert first.data.data_points[0].count == 1
    assert list(point.explicit_bounds)[:3] == [0.01, 0.02, 0.04]


def test_retries_are_span_events(telemetry: Telemetry, waits: List[float]) -> None:
    limited = ScriptedResponse.json({"error": {"message": "slow"}}, status=429, headers={"Retry-After": "0"})
    with ReplayServer([limited, answer()]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url, max_retries=1
    ) as client:
        telemetry.instrument(client)
        client.chat.completions.stream(model="m", messages=USER).until_done()
    (span,) = telemetry.spans()
    (event,) = span.events
    assert event.name == "openai_stream.retry"
    assert dict(event.attributes or {}) == {
        "openai_stream.retry.attempt": 1,
        "openai_stream.retry.delay": 0.0,
        "openai_stream.retry.counted": True,
        http_attributes.HTTP_RESPONSE_STATUS_CODE: 429,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_a_failed_call_has_error_status_and_type(telemetry: Telemetry) -> None:
    failing = ScriptedResponse.json({"error": {"message": "broken", "type": "server_error"}}, status=500)
    with ReplayServer([failing]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url, max_retries=0
    ) as client:
        telemetry.instrument(client)
        with pytest.raises(openai_stream.InternalServerError):
            client.chat.completions.stream(model="m", messages=USER).until_done()
    (span,) = telemetry.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[error_attributes.ERROR_TYPE] == "InternalServerError"
    (point,) = telemetry.metrics()[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION].data.data_points
    assert point.attributes[error_attributes.ERROR_TYPE] == "InternalServerError"


# --------------------------------------------------------------------------- the done-when test


def slow(pieces: int = 300, delay: float = 0.02) -> ScriptedResponse:
    chunks = [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
        for i in range(pieces)
    ]
    return ScriptedResponse.from_chunks(chunks, delay=delay)


def test_every_span_ends_once_with_the_right_status_whatever_ends_the_stream(telemetry: Telemetry) -> None:
    """Closed early from another thread, dropped half-read, dropped unread, Ctrl-C, done: no span leaks."""
    ended = threading.Semaphore(0)
    with ReplayServer([slow()]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        telemetry.instrument(client)
        client.on("stream.end", lambda info: ended.release())

        # 1. closed from another thread while a background thread reads it
        closed = client.chat.completions.stream(model="closed", messages=USER)
        started = threading.Event()
        closed.on("content.delta", lambda event: started.set())
        closed.start()
        assert started.wait(10)
        threading.Thread(target=closed.close).start()
        with pytest.raises(openai_stream.APIUserAbortError):
            closed.until_done(timeout=10)
        assert ended.acquire(timeout=10)

        # 2. dropped half-read: garbage collected, never consumed to the end
        dropped = client.chat.completions.stream(model="dropped", messages=USER)
        events = iter(dropped)
        next(events), next(events), next(events)
        unread = client.chat.completions.stream(model="unread", messages=USER)  # never consumed: never sent
        del dropped, events, unread
        gc.collect()
        assert ended.acquire(timeout=10)

        # 3. interrupted: Ctrl-C inside a handler
        interrupted = client.chat.completions.stream(model="interrupted", messages=USER)

        def ctrl_c(event: Any) -> None:
            raise KeyboardInterrupt

        interrupted.on("content.delta", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            interrupted.until_done()
        assert ended.acquire(timeout=10)

        # 4. done
        server.add(answer())
        server.add(answer())
        client.chat.completions.stream(model="done", messages=USER).until_done()
        assert ended.acquire(timeout=10)

    spans = {span.name: span for span in telemetry.spans()}
    assert sorted(spans) == ["chat closed", "chat done", "chat dropped", "chat interrupted"]
    assert len(telemetry.spans()) == 4
    for name, error_type in (
        ("chat closed", "APIUserAbortError"),
        ("chat dropped", "APIUserAbortError"),
        ("chat interrupted", "KeyboardInterrupt"),
    ):
        assert spans[name].status.status_code is StatusCode.ERROR, name
        assert (spans[name].attributes or {})[error_attributes.ERROR_TYPE] == error_type
    assert spans["chat done"].status.status_code is StatusCode.UNSET
    telemetry.check_every_span_ended_once()
    durations = telemetry.metrics()[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION].data.data_points
    assert sum(p.count for p in durations) == 4


def test_client_close_ends_the_spans_of_its_streams(telemetry: Telemetry) -> None:
    with ReplayServer([slow()]) as server:
        client = openai_stream.Client(api_key=KEY, base_url=server.base_url)
        telemetry.instrument(client)
        streams = [client.chat.completions.stream(model=f"m{i}", messages=USER) for i in range(3)]
        going = threading.Semaphore(0)
        for stream in streams:
            stream.once("content.delta", lambda event: going.release())
            stream.start()
        for _ in streams:
            assert going.acquire(timeout=10)
        client.close()
        for stream in streams:
            assert stream._finished.wait(10)
    spans = telemetry.spans()
    assert len(spans) == 3
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)


# --------------------------------------------------------------------------- content and secrets


def test_content_is_recorded_only_when_asked(telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    with ReplayServer([answer("hello there")]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        telemetry.instrument(client, capture_content=True)
        client.chat.completions.stream(model="m", messages=SYSTEM).until_done()
    (span,) = telemetry.spans()
    attributes = span.attributes or {}
    assert json.loads(str(attributes[GA.GEN_AI_SYSTEM_INSTRUCTIONS])) == [
        {"type": "text", "content": "Be brief."}
    ]
    assert json.loads(str(attributes[GA.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]
    assert json.loads(str(attributes[GA.GEN_AI_OUTPUT_MESSAGES])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hello there"}], "finish_reason": "stop"}
    ]


def test_the_environment_variable_turns_content_on(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(otel.CAPTURE_CONTENT_ENV, "True")
    with ReplayServer([answer()]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        instrumentation = telemetry.instrument(client)
        assert instrumentation.capture_content
        client.chat.completions.stream(model="m", messages=USER).until_done()
    assert GA.GEN_AI_INPUT_MESSAGES in (telemetry.spans()[0].attributes or {})


def test_the_key_is_never_recorded(telemetry: Telemetry, waits: List[float]) -> None:
    echoed = ScriptedResponse.json(
        {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}},
        status=401,
    )
    limited = ScriptedResponse.json({"error": {"message": f"key {KEY} is rate limited"}}, status=429)
    with ReplayServer([echoed, limited, answer(f"your key is {KEY[:6]}")]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url, max_retries=1
    ) as client:
        telemetry.instrument(client, capture_content=True)
        with pytest.raises(openai_stream.AuthenticationError):
            client.chat.completions.stream(model="m", messages=USER).until_done()
        client.chat.completions.stream(model="m", messages=USER).until_done()
    recorded = "".join(span.to_json() for span in telemetry.spans())
    recorded += str(telemetry.reader.get_metrics_data())
    assert KEY not in recorded and KEY[6:] not in recorded
    assert "Incorrect API key provided" in recorded  # the error is there, redacted


# --------------------------------------------------------------------------- runner, create, lifecycle


def test_a_runner_span_holds_its_rounds_and_tool_calls(telemetry: Telemetry) -> None:
    call = {
        "index": 0,
        "id": "call_7",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
    }
    first = ScriptedResponse.from_chunks(
        [
            {
                "id": "r1",
                "model": "m",
                "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}],
            },
        ]
    )

    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    with ReplayServer([first, answer("5")]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        telemetry.instrument(client, capture_content=True)
        client.chat.completions.run_tools(model="m", messages=USER, tools=[add]).until_done()
    spans = telemetry.spans()
    (runner,) = [s for s in spans if s.name == "invoke_agent run_tools"]
    chats = [s for s in spans if s.name == "chat m"]
    (tool,) = [s for s in spans if s.name == "execute_tool add"]
    assert len(spans) == 4 and len(chats) == 2
    assert runner.kind is SpanKind.INTERNAL and tool.kind is SpanKind.INTERNAL
    assert runner.context is not None
    for child in (*chats, tool):
        assert child.parent is not None and child.parent.span_id == runner.context.span_id
    attributes = tool.attributes or {}
    assert attributes[GA.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert attributes[GA.GEN_AI_TOOL_NAME] == "add" and attributes[GA.GEN_AI_TOOL_CALL_ID] == "call_7"
    assert attributes[GA.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"a": 2, "b": 3}'
    assert attributes[GA.GEN_AI_TOOL_CALL_RESULT] == "5"
    assert (runner.attributes or {})[GA.GEN_AI_OPERATION_NAME] == "invoke_agent"
    for span in spans:
        for name in span.attributes or {}:
            assert name in PUBLISHED or name.startswith("openai_stream."), name
    tokens = telemetry.metrics().get(gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE)
    assert tokens is None  # the scripted rounds sent no usage: nothing counted, nothing counted twice


def test_create_is_a_span_that_does_not_stream(telemetry: Telemetry) -> None:
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "model": "m-2",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5},
    }
    with ReplayServer([ScriptedResponse.json(body)]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        telemetry.instrument(client)
        client.chat.completions.create(model="m", messages=USER)
    (span,) = telemetry.spans()
    attributes = span.attributes or {}
    assert span.name == "chat m" and attributes[GA.GEN_AI_REQUEST_STREAM] is False
    assert (
        attributes[GA.GEN_AI_RESPONSE_ID] == "chatcmpl-9" and attributes[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == 1
    )
    assert GA.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in attributes
    assert gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK not in telemetry.metrics()


def test_instrumenting_twice_keeps_one_and_uninstrument_stops(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    with ReplayServer([answer()]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        first = telemetry.instrument(client)
        assert telemetry.instrument(client) is first
        assert "already instrumented" in caplog.text
        client.chat.completions.stream(model="m", messages=USER).until_done()
        first.uninstrument()
        assert not client.hooks.active
        client.chat.completions.stream(model="m", messages=USER).until_done()
        assert telemetry.instrument(client) is not first
    assert len(telemetry.spans()) == 1


def test_provider_names_come_from_the_base_url() -> None:
    known = {value.value for value in GA.GenAiProviderNameValues}
    cases = {
        "https://api.openai.com/v1": "openai",
        "https://my-res.openai.azure.com/openai/deployments/x": "azure.ai.openai",
        "https://api.groq.com/openai/v1": "groq",
        "https://api.deepseek.com": "deepseek",
        "https://generativelanguage.googleapis.com/v1beta/openai/": "gcp.gemini",
        "https://api.mistral.ai/v1": "mistral_ai",
    }
    for url, name in cases.items():
        assert otel.provider_name(url) == name and name in known
    assert otel.provider_name("http://localhost:8080/v1") == "localhost"
    assert otel.provider_name("https://user:pass@proxy.example:8443/v1") == "proxy.example"


# --------------------------------------------------------------------------- the local model

@pytest.mark.skipif(LOCAL_MISSING is not None, reason=f"local model unavailable: {LOCAL_MISSING}")
def test_against_the_local_llamacpp_model(telemetry: Telemetry) -> None:
    from openai_stream import local

    with local.server() as base_url, openai_stream.Client(base_url=base_url, api_key="unused") as client:
        telemetry.instrument(client, capture_content=True)
        stream = client.chat.completions.stream(
            model=local.MODEL_NAME,
            messages=[{"role": "user", "content": "Name three colors."}],
            max_tokens=24,
            temperature=0,
            stream_options={"include_usage": True},
        )
        completion = stream.until_done()
    (span,) = telemetry.spans()
    attributes = span.attributes or {}
    assert attributes[GA.GEN_AI_PROVIDER_NAME] == "127.0.0.1"
    assert attributes[GA.GEN_AI_RESPONSE_MODEL] == completion.model
    assert attributes[GA.GEN_AI_RESPONSE_FINISH_REASONS] == (completion.choices[0].finish_reason,)
    assert completion.usage is not None
    assert attributes[GA.GEN_AI_USAGE_INPUT_TOKENS] == completion.usage.prompt_tokens > 0
    assert attributes[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == completion.usage.completion_tokens > 0
    output = json.loads(str(attributes[GA.GEN_AI_OUTPUT_MESSAGES]))
    assert output[0]["parts"][0]["content"] == completion.choices[0].message.content
    assert stream.metrics.tokens_source == "usage"
    assert stream.metrics.content_deltas >= 1
    first = telemetry.metrics()[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK]
    assert first.data.data_points[0].count == 1


# --------------------------------------------------------------------------- the Responses API

RESPONSES = RESPONSES_FIXTURES


def completed_response(name: str) -> Dict[str, Any]:
    """The response of a fixture's response.completed event, read without openai_stream."""
    for piece in split_sse_events((RESPONSES / name).read_bytes()):
        for line in piece.splitlines():
            if line.startswith(b"data:"):
                event = json.loads(line[5:])
                if event.get("type") == "response.completed":
                    found: Dict[str, Any] = event["response"]
                    return found
    raise AssertionError(f"{name} has no response.completed")


def test_a_responses_stream_is_a_chat_span_too(telemetry: Telemetry) -> None:
    final = completed_response("openai-text.sse")
    replay = ReplayServer([ScriptedResponse.sse_file(RESPONSES / "openai-text.sse")])
    with replay as server, openai_stream.Client(api_key=KEY, base_url=server.base_url) as client:
        telemetry.instrument(client, capture_content=True)
        stream = client.responses.stream(model="gpt-4.1", input="Tell me a joke", max_output_tokens=64)
        stream.until_done()
    (span,) = telemetry.spans()
    attributes = span.attributes or {}
    assert span.name == "chat gpt-4.1" and span.kind is SpanKind.CLIENT
    assert attributes[GA.GEN_AI_RESPONSE_ID] == final["id"]
    assert attributes[GA.GEN_AI_RESPONSE_MODEL] == final["model"]
    assert attributes[GA.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)  # status completed
    assert attributes[GA.GEN_AI_USAGE_INPUT_TOKENS] == final["usage"]["input_tokens"]
    assert attributes[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == final["usage"]["output_tokens"]
    assert attributes[GA.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert json.loads(str(attributes[GA.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "user", "parts": [{"type": "text", "content": "Tell me a joke"}]}
    ]
    text = final["output"][0]["content"][0]["text"]
    output = json.loads(str(attributes[GA.GEN_AI_OUTPUT_MESSAGES]))
    assert output[0]["parts"] == [{"type": "text", "content": text}]


def test_a_responses_create_is_a_span(telemetry: Telemetry) -> None:
    final = completed_response("openai-text.sse")
    with ReplayServer([ScriptedResponse.json(final)]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        telemetry.instrument(client)
        client.responses.create(model="gpt-4.1", input="Tell me a joke")
    (span,) = telemetry.spans()
    attributes = span.attributes or {}
    assert attributes[GA.GEN_AI_REQUEST_STREAM] is False and attributes[GA.GEN_AI_RESPONSE_ID] == final["id"]
    assert attributes[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == final["usage"]["output_tokens"]
