"""Watching streams in production: client hooks, stream metrics and OpenTelemetry, printed to the console.

Needs the otel extra (``pip install 'openai-stream-events[otel]'``); no
collector: spans and metrics go to OpenTelemetry's console exporters.

Runs against a real OpenAI-compatible server when OPENAI_API_KEY is set
(OPENAI_BASE_URL and OPENAI_MODEL pick the server and model); otherwise it
replays a stream recorded from the local llama.cpp model from a loopback
demo server, and says so.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, List

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import openai_stream
from openai_stream import otel
from openai_stream.hooks import RetryInfo, StreamEndInfo
from openai_stream.testing import demo_server

log = logging.getLogger("my_app")


def main(base_url: str | None = None) -> List[openai_stream.StreamMetrics]:
    # OpenTelemetry: spans to stdout as each ends, metrics to stdout when the provider shuts down.
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
    exporter = ConsoleMetricExporter(out=sys.stdout)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    meter_provider = MeterProvider(metric_readers=[reader])

    client = openai_stream.Client(base_url=base_url)
    otel.instrument(client, tracer_provider=tracer_provider, meter_provider=meter_provider)

    # Plain hooks, for your own logs: one line per stream, and every retry.
    ended: List[openai_stream.StreamMetrics] = []

    @client.on("stream.end")
    def log_stream(info: StreamEndInfo) -> None:
        ended.append(info.metrics)
        print(f"[stream {info.outcome}] {info.metrics.summary()}")

    @client.on("retry")
    def log_retry(info: RetryInfo) -> None:
        log.warning("attempt %d failed (%s); retrying in %.2f s", info.attempt, info.cause, info.delay)

    stream = client.chat.completions.stream(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        messages=[{"role": "user", "content": "Why is the sky blue? One sentence."}],
        stream_options={"include_usage": True},
    )

    @stream.on("content.delta")
    def show(event: Any) -> None:
        if event.delta.endswith("."):
            # Metrics are readable at any time, from any thread: here, mid-stream.
            print(f"\n  (so far: {stream.metrics.content_deltas} deltas, {stream.metrics.bytes} bytes)")

    completion = stream.until_done()
    print(completion.choices[0].message.content)
    client.close()
    meter_provider.shutdown()  # exports the metrics: duration, tokens, time to first chunk
    tracer_provider.shutdown()
    return ended


if __name__ == "__main__":
    if os.environ.get("OPENAI_API_KEY"):
        main()
    else:
        with demo_server("llamacpp-content-usage.sse", delay=0.01) as server:
            print(f"(no OPENAI_API_KEY: replaying a recorded stream from {server.base_url})")
            main(server.base_url)
