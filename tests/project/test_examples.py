"""Every example runs standalone (replaying a recorded stream) and does what it says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from conftest import EXAMPLES

SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_every_example_is_listed() -> None:
    assert {"quickstart.py", "tool_calls.py", "iteration.py"} <= set(SCRIPTS)


# Examples that need an optional extra, and the module that tells it is installed.
NEEDS = {"observability.py": "opentelemetry.sdk"}


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_standalone(script: str) -> None:
    needed = NEEDS.get(script)
    if needed is not None and not _installed(needed):
        pytest.skip(f"{script} needs {needed}: pip install -e '.[otel]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def _load(name: str) -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_prints_the_streamed_text(capsys: pytest.CaptureFixture[str]) -> None:
    from openai_stream.testing import demo_server

    with demo_server("llamacpp-content-usage.sse") as server:
        completion = _load("quickstart").main(server.base_url)  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    text = completion.choices[0].message.content
    assert text and text in out
    assert completion.usage.total_tokens > 0
    assert f"[{completion.usage.total_tokens} tokens]" in out


def test_tool_calls_example_sees_both_calls_in_order() -> None:
    from openai_stream.testing import demo_server

    with demo_server("documented-parallel-tool-calls.sse") as server:
        calls = _load("tool_calls").main(server.base_url)  # type: ignore[attr-defined]
    assert [name for name, _ in calls] == ["GetWeatherArgs", "get_stock_price"]
    assert calls[0][1] == {"city": "Edinburgh", "country": "GB", "units": "c"}


def test_iteration_example_sees_both_choices() -> None:
    from openai_stream.testing import demo_server

    with demo_server("llamacpp-n2-interleaved-usage-per-choice.sse") as server:
        seen = _load("iteration").main(server.base_url)  # type: ignore[attr-defined]
    assert seen["content.done"] == 2
    assert seen["done"] == 2
    assert seen["completion"] == 1


def test_observability_example_prints_spans_metrics_and_hook_lines(capsys: Any) -> None:
    if not _installed("opentelemetry.sdk"):
        pytest.skip("needs the otel extra: pip install -e '.[otel]'")
    import json

    from openai_stream.testing import demo_server, demo_transcript, split_sse_events

    payloads = sum(
        1
        for piece in split_sse_events(demo_transcript("llamacpp-content-usage"))
        if piece.startswith(b"data:") and not piece.startswith(b"data: [DONE]")
    )
    with demo_server("llamacpp-content-usage.sse") as server:
        ended = _load("observability").main(server.base_url)  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    (metrics,) = ended
    assert metrics.finished and metrics.chunks == payloads
    assert f"[stream done] {metrics.summary()}" in out
    assert '"name": "chat ' in out and '"gen_ai.usage.output_tokens"' in out  # the span, as JSON
    assert '"gen_ai.client.operation.duration"' in out and '"gen_ai.client.token.usage"' in out
    assert json.loads(out[out.index('{\n    "resource_metrics"'):])["resource_metrics"]


def test_threaded_app_stops_every_worker_on_ctrl_c() -> None:
    """The worker-pool pattern of the README: Ctrl-C closes the client, which stops every stream."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["DEMO_DELAY"] = "1.0"  # about a minute per prompt if nothing stopped it
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "threaded_app.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=EXAMPLES.parent,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the replay banner: the server is up, the workers are starting
        assert "no OPENAI_API_KEY" in first
        import time

        time.sleep(1.5)  # the workers are inside their streams
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)  # bounded: before the fix the pool ran on for a minute
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "interrupted: every stream was closed" in out
    assert "KeyboardInterrupt" in err  # re-raised after the streams were closed


def test_responses_example_streams_the_recorded_text(capsys: pytest.CaptureFixture[str]) -> None:
    from openai_stream.testing import demo_server

    example: Any = _load("responses_api")
    with demo_server("llamacpp-responses-text") as server:
        response = example.main(server.base_url)
    out = capsys.readouterr().out
    assert response.output_text
    assert out.startswith(response.output_text + "\n[response.completed: status completed]")
    assert f"{response.usage.output_tokens} output tokens" in out
