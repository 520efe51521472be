"""The clients under test. Each turns one streamed response into the canonical final text.

Every client is written the way a user would write it, and does only what it
needs to produce the final text (the content of each choice and each tool
call's name and arguments). ``on_content``, when given, is called with each
content fragment at the moment the client's user code would see it; the
latency benchmark uses it. Clients keep one connection pool across runs, as a
long-lived application would.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Sequence, cast

import requests

from .scenarios import text_from_choices

__all__ = [
    "BenchClient",
    "FloorClient",
    "FreshConnectionFloorClient",
    "OursDefaultsClient",
    "SSEClientPyClient",
    "OpenAIStreamHelperClient",
    "OpenAICreateClient",
    "OursHandlersClient",
    "OursIterClient",
    "OursHooksClient",
    "OursObservedClient",
    "observed_clients",
    "OursToolDeltaClient",
    "OursPartialArgumentsClient",
    "accumulate_in_memory",
    "network_clients",
    "partial_clients",
    "request_body",
    "RESPONSES_PREFIX",
]

OnContent = Optional[Callable[[str], None]]
MESSAGES = [{"role": "user", "content": "benchmark"}]
RESPONSES_PREFIX = "responses-"
"""Scenarios whose name starts so are Responses API streams: clients request ``POST /responses``."""
INPUT = "benchmark"


def request_body(model: str) -> Dict[str, Any]:
    """The JSON body every client sends (the model names the scenario)."""
    return {
        "model": model,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


class _Collector:
    """The least work that yields the final text from chunk dicts."""

    __slots__ = ("calls", "texts")

    def __init__(self) -> None:
        self.texts: Dict[int, List[str]] = {}
        self.calls: Dict[int, Dict[int, List[Any]]] = {}

    def add(self, chunk: Dict[str, Any], on_content: OnContent) -> None:
        for choice in chunk["choices"]:
            delta = choice.get("delta") or {}
            index = choice["index"]
            content = delta.get("content")
            if content:
                self.texts.setdefault(index, []).append(content)
                if on_content is not None:
                    on_content(content)
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                slot = self.calls.setdefault(index, {}).get(call["index"])
                if slot is None:
                    slot = self.calls[index][call["index"]] = [function.get("name"), []]
                if function.get("arguments"):
                    slot[1].append(function["arguments"])

    def text(self) -> str:
        choices = {}
        for index in set(self.texts) | set(self.calls):
            calls = self.calls.get(index, {})
            choices[index] = (
                "".join(self.texts.get(index, ())),
                [(calls[k][0], "".join(calls[k][1])) for k in sorted(calls)],
            )
        return text_from_choices(choices)


def text_of_completion(completion: Any) -> str:
    """The canonical final text of a completion object (openai_stream's or openai's)."""
    choices = {}
    for choice in completion.choices:
        message = choice.message
        calls = [(c.function.name, c.function.arguments) for c in (message.tool_calls or ())]
        choices[choice.index] = (message.content or "", calls)
    return text_from_choices(choices)


class BenchClient:
    """One way of consuming a stream; subclasses set ``name`` and implement :meth:`run`."""

    name = ""
    label = ""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    responses = False
    """Whether :meth:`run` also streams Responses API scenarios (names starting ``responses-``)."""

    def run(self, model: str, on_content: OnContent = None) -> str:
        """Request scenario ``model``, consume the whole stream, return the final text."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class FloorClient(BenchClient):
    """The plainest loop: ``requests`` + ``iter_lines()`` + ``json.loads``."""

    name = "floor"
    label = "floor: requests iter_lines + json.loads"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.session = requests.Session()
        self.url = base_url + "/chat/completions"
        self.responses_url = base_url + "/responses"
        self.headers = {"Authorization": "Bearer bench", "Accept": "text/event-stream"}

    responses = True

    def run(self, model: str, on_content: OnContent = None) -> str:
        if model.startswith(RESPONSES_PREFIX):
            return self._run_responses(model, on_content)
        collector = _Collector()
        add = collector.add
        loads = json.loads
        with self.session.post(
            self.url, json=request_body(model), headers=self.headers, stream=True, timeout=30
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    data = line[6:]
                    if data == b"[DONE]":
                        break
                    add(loads(data), on_content)
        return collector.text()

    def _run_responses(self, model: str, on_content: OnContent) -> str:
        """The same loop on a Responses API stream: the output text deltas, joined."""
        texts: List[str] = []
        loads = json.loads
        body = {"model": model, "input": INPUT, "stream": True}
        with self.session.post(
            self.responses_url, json=body, headers=self.headers, stream=True, timeout=30
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    event = loads(line[6:])
                    if event["type"] == "response.output_text.delta":
                        texts.append(event["delta"])
                        if on_content is not None:
                            on_content(event["delta"])
        return "".join(texts)

    def close(self) -> None:
        self.session.close()


class FreshConnectionFloorClient(FloorClient):
    """The floor on a new connection for every request (``Connection: close``).

    Against a server that closes each connection after its answer, this is
    the least a correct client pays: one connect per stream, never a retry.
    """

    name = "floor.fresh"
    label = "floor on a new connection per request"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.headers = {**self.headers, "Connection": "close"}


class SSEClientPyClient(FloorClient):
    """``requests`` + sseclient-py + ``json.loads``, as sseclient-py's README shows it."""

    name = "sseclient"
    label = "requests + sseclient-py + json.loads"
    responses = False

    def __init__(self, base_url: str) -> None:
        import sseclient

        super().__init__(base_url)
        self.sseclient = sseclient

    def run(self, model: str, on_content: OnContent = None) -> str:
        collector = _Collector()
        add = collector.add
        loads = json.loads
        with self.session.post(
            self.url, json=request_body(model), headers=self.headers, stream=True, timeout=30
        ) as response:
            response.raise_for_status()
            events: Any = self.sseclient.SSEClient(cast(Any, response)).events()
            for event in events:
                if event.data == "[DONE]":
                    break
                add(loads(event.data), on_content)
        return collector.text()


class _OpenAIPackage(BenchClient):
    def __init__(self, base_url: str) -> None:
        import openai

        super().__init__(base_url)
        # Any: the benchmark passes scenario names as models, which openai's overloads reject.
        self.client: Any = openai.OpenAI(api_key="bench", base_url=base_url, max_retries=0, timeout=30)

    def close(self) -> None:
        self.client.close()


class OpenAIStreamHelperClient(_OpenAIPackage):
    """The ``openai`` package's ``chat.completions.stream()`` helper, iterating every event."""

    name = "openai.stream"
    label = "openai package: stream() events"
    responses = True

    def run(self, model: str, on_content: OnContent = None) -> str:
        if model.startswith(RESPONSES_PREFIX):
            with self.client.responses.stream(model=model, input=INPUT) as stream:
                for event in stream:
                    if on_content is not None and event.type == "response.output_text.delta":
                        on_content(event.delta)
                response = stream.get_final_response()
            return str(response.output_text)
        with self.client.chat.completions.stream(
            model=model, messages=MESSAGES, stream_options={"include_usage": True}
        ) as stream:
            for event in stream:
                if on_content is not None and event.type == "content.delta" and event.delta:
                    on_content(event.delta)
            completion = stream.get_final_completion()
        return text_of_completion(completion)


class OpenAICreateClient(_OpenAIPackage):
    """The ``openai`` package's ``create(stream=True)``, accumulating like the floor does."""

    name = "openai.create"
    label = "openai package: create(stream=True)"
    responses = True

    def run(self, model: str, on_content: OnContent = None) -> str:
        if model.startswith(RESPONSES_PREFIX):
            parts: List[str] = []
            with self.client.responses.create(model=model, input=INPUT, stream=True) as events:
                for event in events:
                    if event.type == "response.output_text.delta":
                        parts.append(event.delta)
                        if on_content is not None:
                            on_content(event.delta)
            return "".join(parts)
        texts: Dict[int, List[str]] = {}
        calls: Dict[int, Dict[int, List[Any]]] = {}
        response = self.client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        with response:
            for chunk in response:
                for choice in chunk.choices:
                    delta = choice.delta
                    content = delta.content
                    if content:
                        texts.setdefault(choice.index, []).append(content)
                        if on_content is not None:
                            on_content(content)
                    for call in delta.tool_calls or ():
                        slot = calls.setdefault(choice.index, {}).get(call.index)
                        function = call.function
                        if slot is None:
                            name = function.name if function is not None else None
                            slot = calls[choice.index][call.index] = [name, []]
                        if function is not None and function.arguments:
                            slot[1].append(function.arguments)
        choices = {}
        for index in set(texts) | set(calls):
            by_index = calls.get(index, {})
            choices[index] = (
                "".join(texts.get(index, ())),
                [(by_index[k][0], "".join(by_index[k][1])) for k in sorted(by_index)],
            )
        return text_from_choices(choices)


def _noop(event: Any) -> None:
    pass


class _Ours(BenchClient):
    def __init__(self, base_url: str) -> None:
        import openai_stream

        super().__init__(base_url)
        self.openai_stream = openai_stream
        self.client = openai_stream.Client(api_key="bench", base_url=base_url, max_retries=0, timeout=30)

    def close(self) -> None:
        self.client.close()


class OursHandlersClient(_Ours):
    """openai_stream with a no-op handler on every event type, driven by ``until_done()``."""

    name = "ours.handlers"
    label = "openai_stream: handlers on every event"
    responses = True

    def run(self, model: str, on_content: OnContent = None) -> str:
        if model.startswith(RESPONSES_PREFIX):
            # A no-op handler on every event a responses stream emits: the server's own and the
            # chat-compatible ones.
            responses = self.client.responses.stream(model=model, input=INPUT)
            for event_type in self.openai_stream.RESPONSE_EVENT_TYPES:
                if event_type == "content.delta" and on_content is not None:
                    responses.on(event_type, lambda event: on_content(event.delta))
                else:
                    responses.on(event_type, _noop)
            return str(responses.until_done().output_text)
        stream = self.client.chat.completions.stream(
            model=model, messages=MESSAGES, stream_options={"include_usage": True}
        )
        for event_type in self.openai_stream.EVENT_TYPES:
            if event_type == "content.delta" and on_content is not None:
                stream.on(event_type, lambda event: on_content(event.delta))
            else:
                stream.on(event_type, _noop)
        return text_of_completion(stream.until_done())


class OursDefaultsClient(OursHandlersClient):
    """:class:`OursHandlersClient` on a client with every setting at its default (``max_retries=2``...)."""

    name = "ours.defaults"
    label = "openai_stream: handlers on every event, default client settings"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.client.close()
        self.client = self.openai_stream.Client(api_key="bench", base_url=base_url)


class OursHooksClient(OursHandlersClient):
    """:class:`OursHandlersClient` with a no-op hook registered for every client hook as well."""

    name = "ours.hooks"
    label = "openai_stream: handlers on every event, every client hook"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        for hook in self.openai_stream.HOOK_NAMES:
            self.client.on(hook, _noop)


class OursObservedClient(OursHooksClient):
    """:class:`OursHooksClient` with OpenTelemetry instrumentation on (the SDK, in-memory export).

    Spans go through the SDK's ``SimpleSpanProcessor`` to its in-memory
    exporter (cleared every run) and metrics to an in-memory reader: the
    whole cost of recording, none of a network exporter's.
    """

    name = "ours.observed"
    label = "openai_stream: handlers, every hook, OpenTelemetry on"

    def __init__(self, base_url: str) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from openai_stream import otel

        super().__init__(base_url)
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        otel.instrument(self.client, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def run(self, model: str, on_content: OnContent = None) -> str:
        self.exporter.clear()
        text = super().run(model, on_content)
        if len(self.exporter.get_finished_spans()) != 1:
            raise AssertionError(f"{self.name}: expected one span per stream")
        return text

    def close(self) -> None:
        super().close()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class OursIterClient(_Ours):
    """openai_stream pulled with a ``for`` loop, no handlers registered."""

    name = "ours.iter"
    label = "openai_stream: for event in stream"
    responses = True

    def run(self, model: str, on_content: OnContent = None) -> str:
        if model.startswith(RESPONSES_PREFIX):
            with self.client.responses.stream(model=model, input=INPUT) as responses:
                for event in responses:
                    if on_content is not None and event.type == "content.delta":
                        on_content(event.delta)  # type: ignore[attr-defined]
                response = responses.current_response
            return str(response.output_text)
        with self.client.chat.completions.stream(
            model=model, messages=MESSAGES, stream_options={"include_usage": True}
        ) as stream:
            for event in stream:
                if on_content is not None and event.type == "content.delta":
                    on_content(event.delta)  # type: ignore[attr-defined]
            completion = stream.current_completion
        return text_of_completion(completion)


class OursToolDeltaClient(_Ours):
    """openai_stream with one handler, on ``tool_call.delta``, that does nothing."""

    name = "ours.tool_delta"
    label = "openai_stream: no-op tool_call.delta handler"

    def run(self, model: str, on_content: OnContent = None) -> str:
        stream = self.client.chat.completions.stream(
            model=model, messages=MESSAGES, stream_options={"include_usage": True}
        )
        stream.on("tool_call.delta", _noop)
        return text_of_completion(stream.until_done())


class OursPartialArgumentsClient(_Ours):
    """Like :class:`OursToolDeltaClient`, but the handler reads ``partial_arguments`` on every delta.

    It keeps each call's last partial parse and checks, after the stream, that
    it equals the parse of the call's final arguments (raising ``AssertionError``
    otherwise); :attr:`last_partials` holds them for the tests.
    """

    name = "ours.partial_args"
    label = "openai_stream: tool_call.delta handler reading partial_arguments"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.last_partials: Dict[Any, Any] = {}

    def run(self, model: str, on_content: OnContent = None) -> str:
        last: Dict[Any, Any] = {}
        stream = self.client.chat.completions.stream(
            model=model, messages=MESSAGES, stream_options={"include_usage": True}
        )

        def read(event: Any) -> None:
            last[event.choice_index, event.index] = event.partial_arguments

        stream.on("tool_call.delta", read)
        completion = stream.until_done()
        final: Dict[Any, Any] = {
            (choice.index, position): json.loads(call.function.arguments)
            for choice in completion.choices
            for position, call in enumerate(choice.message.tool_calls or ())
        }
        if last != final:
            key = next((k for k in sorted(set(last) | set(final)) if last.get(k) != final.get(k)), None)
            raise AssertionError(
                f"{self.name}: on {model}, the last partial_arguments of call {key} (choice, index) "
                f"differ from its final arguments: {str(last.get(key))[:80]!r} "
                f"vs {str(final.get(key))[:80]!r}"
            )
        self.last_partials = last
        return text_of_completion(completion)


def accumulate_in_memory(chunks: Sequence[Dict[str, Any]]) -> str:
    """openai_stream's accumulator fed pre-decoded chunk dicts: no I/O, no JSON, no emitter."""
    from openai_stream import ChatCompletionAccumulator, ResponseAccumulator

    if chunks and str(chunks[0].get("type", "")).startswith("response."):
        responses = ResponseAccumulator()
        for event in chunks:
            responses.feed(event)
        responses.end()
        return responses.response().output_text

    accumulator = ChatCompletionAccumulator()
    feed = accumulator.feed
    for chunk in chunks:
        feed(chunk)
    accumulator.end()
    return text_of_completion(accumulator.completion())


def network_clients() -> List[type]:
    """The client classes that talk to the server, the ``openai`` ones only when installed."""
    classes: List[type] = [FloorClient]
    try:
        import sseclient  # noqa: F401
    except ImportError:
        pass
    else:
        classes.append(SSEClientPyClient)
    try:
        import openai  # noqa: F401
    except ImportError:
        pass
    else:
        classes += [OpenAIStreamHelperClient, OpenAICreateClient]
    return [*classes, OursHandlersClient, OursIterClient]


def observed_clients() -> List[type]:
    """Handlers plus every hook, and plus OpenTelemetry (when the otel extra is installed)."""
    classes: List[type] = [OursHooksClient]
    try:
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        pass
    else:
        classes.append(OursObservedClient)
    return classes


def partial_clients() -> List[type]:
    """The pair that prices ``partial_arguments``: a no-op delta handler, then one that reads it."""
    return [OursToolDeltaClient, OursPartialArgumentsClient]
