"""The ``openai-stream`` command line, run in-process against loopback ReplayServers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from conftest import EXPECTED_RESPONSES, RESPONSES_FIXTURES, ROOT, SSE_FIXTURES
from fault_server import FaultServer, head, reset, script
from fault_server import chunk as http_chunk

import openai_stream
from openai_stream import ErrorEvent, cli
from openai_stream.testing import ReplayServer, ScriptedResponse, demo_transcripts, split_sse_events

FIXTURES = SSE_FIXTURES
KEY = "sk-test-cli-0123456789secret"


def final_completion(path: Path) -> Dict[str, Any]:
    """The completion a fixture accumulates to, computed without the CLI."""
    decoder = openai_stream.SSEDecoder()
    acc = openai_stream.ChatCompletionAccumulator()
    for sse in decoder.feed(path.read_bytes()):
        if sse.data == "[DONE]":
            break
        acc.feed(json.loads(sse.data))
    return acc.completion().to_dict()


def chunk(delta: Dict[str, Any], finish: Any = None, index: int = 0) -> Dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


SCRIPT = [
    chunk({"role": "assistant", "reasoning_content": "think "}),
    chunk({"reasoning_content": "hard"}),
    chunk({"content": "Hello"}),
    chunk({"content": " world"}),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "lookup", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": 1}'}}]}),
    chunk({}, finish="tool_calls"),
    {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7,
                                                  "total_tokens": 12}},
]


@pytest.fixture()
def scripted() -> Any:
    with ReplayServer([ScriptedResponse.from_chunks(SCRIPT)]) as server:
        yield server


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


def run(argv: List[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- chat
def test_chat_streams_text_reasoning_tool_calls_and_summary(scripted: ReplayServer, capsys: Any) -> None:
    code, out, err = run(["chat", "--base-url", scripted.base_url, "--api-key", KEY, "Hi"], capsys)
    assert code == 0, err
    assert out.splitlines() == [
        "[reasoning] think hard",
        "Hello world",
        '[tool call 0] lookup({"q": 1})',
    ]
    assert "[finish] tool_calls" in err
    assert "[usage] 5 prompt + 7 completion = 12 tokens" in err
    assert "[time] first token" in err
    assert KEY not in out + err


def test_chat_sends_the_request_the_options_describe(scripted: ReplayServer, capsys: Any) -> None:
    argv = ["chat", "--base-url", scripted.base_url, "--api-key", KEY, "--model", "my-model",
            "--system", "Be brief.", "--max-tokens", "9", "--temperature", "0", "--seed", "3", "-n", "1",
            "Hi there"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    (request,) = scripted.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "model": "my-model",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
        "max_tokens": 9,
        "temperature": 0.0,
        "seed": 3,
        "n": 1,
        "stream_options": {"include_usage": True},
        "stream": True,
    }


def test_chat_reads_key_from_env_and_prompt_from_stdin(
    scripted: ReplayServer, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin"))
    code, _, err = run(["chat", "--base-url", scripted.base_url, "--no-usage", "-"], capsys)
    assert code == 0, err
    (request,) = scripted.requests
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.json["messages"] == [{"role": "user", "content": "from stdin"}]
    assert "stream_options" not in request.json


def test_chat_json_prints_every_event_as_a_json_line(scripted: ReplayServer, capsys: Any) -> None:
    code, out, err = run(["chat", "--json", "--base-url", scripted.base_url, "--api-key", KEY, "Hi"], capsys)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "response" and types[-1] == "completion"
    assert types.count("chunk") == len(SCRIPT)
    wanted = {"reasoning.delta", "content.delta", "tool_call.delta", "tool_call.done", "usage", "done"}
    assert wanted <= set(types)
    deltas = "".join(e["delta"] for e in events if e["type"] == "content.delta")
    completion = events[-1]["completion"]
    assert deltas == completion["choices"][0]["message"]["content"] == "Hello world"
    assert completion["usage"]["total_tokens"] == 12
    assert all("snapshot" not in e for e in events)
    assert KEY not in out


def test_chat_json_carries_the_streams_metrics_on_its_last_line(scripted: ReplayServer, capsys: Any) -> None:
    code, out, err = run(["chat", "--json", "--base-url", scripted.base_url, "--api-key", KEY, "Hi"], capsys)
    assert code == 0, err
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "completion"
    metrics = last["metrics"]
    # From SCRIPT: 8 payloads; "Hello", " world" are content; two reasoning and two argument pieces.
    assert (metrics["chunks"], metrics["content_deltas"], metrics["output_deltas"]) == (len(SCRIPT), 2, 6)
    assert metrics["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert metrics["finish_reasons"] == ["tool_calls"] and metrics["finished"] is True
    assert metrics["tokens_source"] == "usage" and metrics["attempts"] == 1
    assert metrics["time_to_first_token"] is not None and metrics["time_to_first_delta"] is not None


def test_chat_summary_line_comes_from_the_metrics(
    scripted: ReplayServer, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    summaries: List[str] = []
    real = openai_stream.StreamMetrics.summary

    def spy(self: openai_stream.StreamMetrics) -> str:
        summaries.append(real(self))
        return summaries[-1]

    monkeypatch.setattr(openai_stream.StreamMetrics, "summary", spy)
    code, _, err = run(["chat", "--base-url", scripted.base_url, "--api-key", KEY, "Hi"], capsys)
    assert code == 0, err
    (summary,) = summaries
    assert f"[time] {summary}\n" in err
    assert "tokens/s after the first" in summary  # 7 completion tokens in the usage


def test_an_error_line_carries_the_metrics_too(capsys: Any) -> None:
    code, out, _ = run(["replay", "--json", str(FIXTURES / "groq-error-event-tool-use-failed.sse")], capsys)
    assert code == 1
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "error" and last["metrics"]["finished"] is True


def test_event_to_dict_is_json_ready_for_every_event_of_every_fixture() -> None:
    seen = set()
    for path in sorted(FIXTURES.glob("*.sse")):
        decoder = openai_stream.SSEDecoder()
        acc = openai_stream.ChatCompletionAccumulator()
        for sse in decoder.feed(path.read_bytes()):
            if sse.data == "[DONE]":
                break
            try:
                events = acc.feed(json.loads(sse.data))
            except openai_stream.OpenAIError as exc:
                events = [ErrorEvent(exc)]
            for event in events:
                data = cli.event_to_dict(event)
                assert data["type"] == event.type
                json.dumps(data)
                seen.add(event.type)
        for event in acc.end():
            json.dumps(cli.event_to_dict(event))
            seen.add(event.type)
    assert {"content.delta", "reasoning.delta", "refusal.delta", "tool_call.delta", "tool_call.done",
            "usage", "done", "completion"} <= seen


def test_renderer_dims_reasoning_and_flushes_every_delta() -> None:
    class Out(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    out = Out()
    renderer = cli.Renderer(out, color=True)
    acc = openai_stream.ChatCompletionAccumulator()
    for c in SCRIPT[:3]:
        for event in acc.feed(c):
            renderer.handle(event)
    assert out.flushes >= 3
    renderer.finish()
    assert out.getvalue().startswith("\x1b[2m[reasoning] \x1b[0m\x1b[2mthink \x1b[0m")
    assert out.getvalue().endswith("Hello\n")


def test_several_choices_are_shown_one_after_another(capsys: Any) -> None:
    code, out, err = run(["replay", str(FIXTURES / "openai-n3-choices.sse")], capsys)
    assert code == 0, err
    completion = final_completion(FIXTURES / "openai-n3-choices.sse")
    texts = [c["message"]["content"] for c in completion["choices"]]
    # The transcript is read ahead: every choice is labelled, choice 0 included, in order.
    assert out.splitlines() == ["[choice 0]", texts[0], "[choice 1]", texts[1], "[choice 2]", texts[2]]


def test_two_interleaved_choices_are_labelled_as_they_start(capsys: Any) -> None:
    path = FIXTURES / "llamacpp-n2-interleaved-usage-per-choice.sse"  # choice 1 arrives first
    code, out, err = run(["replay", str(path)], capsys)
    assert code == 0, err
    texts = [c["message"]["content"] for c in final_completion(path)["choices"]]
    assert all(text in out for text in texts) and "[choice 1]" in out


def test_a_choice_that_arrives_first_is_labelled(capsys: Any) -> None:
    script = [chunk({"content": "one"}, index=1), chunk({"content": "zero"}, index=0),
              chunk({}, "stop", index=1), chunk({}, "stop", index=0)]
    with ReplayServer([ScriptedResponse.from_chunks(script)]) as server:
        code, out, err = run(["chat", "--base-url", server.base_url, "Hi"], capsys)
    assert code == 0, err
    assert out.splitlines() == ["[choice 1]", "one", "[choice 0]", "zero"]
    assert "[finish] stop, stop" in err


# --------------------------------------------------------------------------- replay, demo, record
@pytest.mark.parametrize(
    "name",
    ["llamacpp-content-usage", "documented-reasoning-content", "openai-content-usage", "mistral-content"],
)
def test_replay_plays_a_transcript_through_the_client(name: str, capsys: Any) -> None:
    path = FIXTURES / f"{name}.sse"
    code, out, err = run(["replay", str(path)], capsys)
    assert code == 0, err
    assert "REPLAY" in err and "not a live model" in err
    content = final_completion(path)["choices"][0]["message"]["content"]
    if content:
        assert content in out


def test_replay_json_matches_the_accumulator(capsys: Any) -> None:
    path = FIXTURES / "documented-parallel-tool-calls.sse"
    code, out, _ = run(["replay", "--json", str(path)], capsys)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["completion"] == final_completion(path)
    done = [(e["index"], e["name"]) for e in events if e["type"] == "tool_call.done"]
    assert done == [(0, "GetWeatherArgs"), (1, "get_stock_price")]


def test_replay_of_an_error_stream_exits_1_without_traceback(capsys: Any) -> None:
    code, out, err = run(["replay", "--json", str(FIXTURES / "groq-error-event-tool-use-failed.sse")], capsys)
    assert code == 1
    assert "error: BadRequestError:" in err
    assert "Traceback" not in err
    assert json.loads(out.splitlines()[-1])["error"]["class"] == "BadRequestError"


def test_replay_of_a_missing_file_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    code, _, err = run(["replay", str(tmp_path / "nope.sse")], capsys)
    assert code == 2
    assert "cannot read" in err


def test_demo_replays_the_packaged_transcript(capsys: Any) -> None:
    code, out, err = run(["demo", "--delay", "0"], capsys)
    assert code == 0, err
    assert "REPLAY" in err and "packaged transcript" in err
    content = final_completion(FIXTURES / f"{cli.DEMO_TRANSCRIPT}.sse")["choices"][0]["message"]["content"]
    assert out == content + "\n"
    assert "[usage]" in err


def test_every_packaged_transcript_replays_cleanly(capsys: Any) -> None:
    names = demo_transcripts()
    assert cli.DEMO_TRANSCRIPT in names and len(names) >= 2
    for name in names:
        code, out, err = run(["demo", name, "--delay", "0", "--json"], capsys)
        assert code == 0, err
        assert json.loads(out.splitlines()[-1])["type"] == "completion"


def test_demo_unknown_name_is_a_usage_error(capsys: Any) -> None:
    code, _, err = run(["demo", "no-such-transcript"], capsys)
    assert code == 2
    assert cli.DEMO_TRANSCRIPT in err


@pytest.mark.parametrize("chunked", [True, False])
def test_record_writes_the_exact_bytes(chunked: bool, tmp_path: Path, capsys: Any) -> None:
    raw = (FIXTURES / "azure-async-filter-offsets.sse").read_bytes()  # no trailing newline, odd chunks
    target = tmp_path / "out.sse"
    script = ScriptedResponse(events=split_sse_events(raw), chunked=chunked)
    with ReplayServer([script]) as server:
        code, out, err = run(["record", str(target), "--base-url", server.base_url, "--api-key", KEY,
                              "--temperature", "0", "Hello"], capsys)
        (request,) = server.requests
    assert code == 0, err
    assert target.read_bytes() == raw
    assert out == ""
    assert "saved" in err and "finish stop" in err
    assert request.json["stream"] is True and request.json["temperature"] == 0.0
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_recorded_transcript_replays(tmp_path: Path, capsys: Any) -> None:
    source = FIXTURES / "llamacpp-content-usage.sse"
    target = tmp_path / "rec.sse"
    with ReplayServer([ScriptedResponse(events=split_sse_events(source.read_bytes()))]) as server:
        argv = ["record", str(target), "--base-url", server.base_url, "--api-key", KEY, "Hi"]
        assert run(argv, capsys)[0] == 0
    code, out, _ = run(["replay", str(target)], capsys)
    assert code == 0
    assert out == final_completion(source)["choices"][0]["message"]["content"] + "\n"


# --------------------------------------------------------------------------- exit codes
def test_http_error_exits_1_with_the_message_and_no_key(capsys: Any) -> None:
    error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                       "code": "invalid_api_key"}}
    with ReplayServer([ScriptedResponse.json(error, status=401)]) as server:
        code, out, err = run(["chat", "--base-url", server.base_url, "--api-key", KEY, "Hi"], capsys)
    assert code == 1
    assert err.startswith("error: AuthenticationError:")
    assert "Incorrect API key provided" in err
    assert "Traceback" not in err and KEY not in err + out


def test_record_keeps_the_bytes_of_a_broken_stream(tmp_path: Path, capsys: Any) -> None:
    piece = b'data: {"choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'
    target = tmp_path / "broken.sse"
    with FaultServer(script(head(), http_chunk(piece), reset())) as server:
        code, _, err = run(["record", str(target), "--base-url", server.base_url, "--max-retries", "0", "Hi"],
                           capsys)
    assert code == 1
    assert target.read_bytes() == piece
    assert f"{len(piece)} bytes received are saved" in err
    assert "StreamInterruptedError" in err


def test_record_to_an_unwritable_path_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    with ReplayServer([ScriptedResponse.sse_file(FIXTURES / "llamacpp-content-usage.sse")]) as server:
        code, _, err = run(["record", str(tmp_path / "no" / "dir.sse"), "--base-url", server.base_url, "Hi"],
                           capsys)
    assert code == 2
    assert "cannot write" in err


def test_record_http_error_exits_1(tmp_path: Path, capsys: Any) -> None:
    with ReplayServer([ScriptedResponse.json({"error": {"message": "nope"}}, status=400)]) as server:
        code, _, err = run(["record", str(tmp_path / "x.sse"), "--base-url", server.base_url, "Hi"], capsys)
    assert code == 1
    assert "BadRequestError" in err


def test_connection_refused_exits_1(capsys: Any) -> None:
    with ReplayServer() as server:
        url = server.base_url
    code, _, err = run(["chat", "--base-url", url, "--max-retries", "0", "Hi"], capsys)
    assert code == 1
    assert err.startswith("error: APIConnectionError:")


def test_broken_stream_exits_1(capsys: Any) -> None:
    cut = ScriptedResponse(events=[b'data: {"choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'])
    with ReplayServer([cut]) as server:
        code, out, err = run(["chat", "--base-url", server.base_url, "Hi"], capsys)
    assert code == 1
    assert out == "par\n"
    assert "StreamInterruptedError" in err


@pytest.mark.parametrize(
    "argv",
    [[], ["nope"], ["chat"], ["chat", "--temperature", "hot", "x"], ["replay"], ["record", "only-file"]],
)
def test_usage_errors_exit_2(argv: List[str], capsys: Any) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "usage:" in err


def test_no_key_for_the_openai_api_is_a_usage_error(capsys: Any) -> None:
    code, _, err = run(["chat", "Hi"], capsys)
    assert code == 2
    assert "OPENAI_API_KEY" in err and "--local" in err and "demo" in err


def test_local_with_base_url_is_a_usage_error(capsys: Any) -> None:
    code, _, err = run(["chat", "--local", "--base-url", "http://127.0.0.1:1/v1", "Hi"], capsys)
    assert code == 2
    assert "--local and --base-url" in err


def test_help_and_version_exit_0(capsys: Any) -> None:
    assert run(["--help"], capsys)[0] == 0
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and openai_stream.__version__ in out


def test_python_dash_m_runs_the_demo() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    env.pop("OPENAI_API_KEY", None)
    result = subprocess.run(  # the default pacing, as a newcomer runs it
        [sys.executable, "-m", "openai_stream", "demo"],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "REPLAY" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip()
    bad = subprocess.run(
        [sys.executable, "-m", "openai_stream", "chat"],
        cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2


# --------------------------------------------------------------------------- issue 13 §10
INTERLEAVED = [chunk({"content": "one"}, index=1), chunk({"content": "zero"}, index=0),
               chunk({"content": "two"}, index=2), chunk({}, "stop", index=1),
               chunk({}, "stop", index=0), chunk({}, "stop", index=2)]


@pytest.mark.parametrize("flag", ["--n", "-n"])
def test_n_labels_every_choice_in_order(flag: str, capsys: Any) -> None:
    with ReplayServer([ScriptedResponse.from_chunks(INTERLEAVED)]) as server:
        code, out, err = run(["chat", "--base-url", server.base_url, flag, "3", "Hi"], capsys)
        (request,) = server.requests
    assert code == 0, err
    assert request.json["n"] == 3 and request.json["messages"][-1]["content"] == "Hi"
    assert out.splitlines() == ["[choice 0]", "zero", "[choice 1]", "one", "[choice 2]", "two"]


def test_replay_labels_interleaved_choices_in_order(capsys: Any) -> None:
    path = FIXTURES / "llamacpp-n2-interleaved-usage-per-choice.sse"
    code, out, err = run(["replay", str(path)], capsys)
    assert code == 0, err
    texts = [c["message"]["content"] for c in final_completion(path)["choices"]]
    assert out.splitlines() == ["[choice 0]", texts[0], "[choice 1]", texts[1]]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": []}\n', "a JSON document"),
        (b"Just some notes\nabout a bug\n", "not an event stream"),
        (b"", "is empty"),
    ],
)
def test_replay_of_a_file_that_is_not_an_event_stream_says_so(
    content: bytes, says: str, tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "answer.json"
    path.write_bytes(content)
    code, out, err = run(["replay", str(path)], capsys)
    assert code == 2 and out == ""
    assert says in err and "retry" not in err and "Traceback" not in err


def test_record_refuses_to_overwrite_without_force(tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "kept.sse"
    target.write_bytes(b"precious")
    source = (FIXTURES / "openai-content-usage.sse").read_bytes()
    with ReplayServer([ScriptedResponse(events=split_sse_events(source))]) as server:
        argv = ["record", str(target), "--base-url", server.base_url, "--api-key", KEY, "Hi"]
        code, _, err = run(argv, capsys)
        assert code == 2 and "--force" in err
        assert target.read_bytes() == b"precious" and server.requests == []
        code, _, err = run([*argv, "--force"], capsys)
        assert code == 0, err
    assert target.read_bytes() == source


@pytest.mark.parametrize("argv", [["out.txt", "Hi"], ["Hello there", "out.sse"]])
def test_record_refuses_a_file_that_does_not_end_in_sse(
    argv: List[str], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with ReplayServer([ScriptedResponse.from_chunks(SCRIPT)]) as server:
        code, _, err = run(["record", *argv, "--base-url", server.base_url, "--api-key", KEY], capsys)
        assert server.requests == []
    assert code == 2 and ".sse" in err and "FILE comes before the PROMPT" in err
    assert not Path("out.sse").exists() and not Path("out.txt").exists()


def test_demo_help_lists_the_transcripts(capsys: Any) -> None:
    code, out, _ = run(["demo", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    for name in demo_transcripts():
        assert name in flat


def test_chat_help_gives_the_local_default_model(capsys: Any) -> None:
    code, out, _ = run(["chat", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert f"with --local, {openai_stream.local.MODEL_NAME}" in flat
    assert "gpt-4o-mini" in flat and "--n N" in flat


# --------------------------------------------------------------------------- the Responses API (issue 12 §9)
RESPONSES = RESPONSES_FIXTURES
RESPONSES_EXPECTED = EXPECTED_RESPONSES


def expected_response(name: str) -> Dict[str, Any]:
    """The response the independent oracle derived for a responses fixture."""
    data: Dict[str, Any] = json.loads((RESPONSES_EXPECTED / f"{name}.json").read_text(encoding="utf-8"))
    return data


def responses_server(name: str) -> ReplayServer:
    return ReplayServer([ScriptedResponse(events=split_sse_events((RESPONSES / f"{name}.sse").read_bytes()))])


def test_chat_api_responses_streams_a_response_and_its_summary(capsys: Any) -> None:
    with responses_server("openai-reasoning-summary") as server:
        argv = ["chat", "--api", "responses", "--base-url", server.base_url, "--api-key", KEY,
                "--model", "o4", "--system", "Be brief.", "--max-tokens", "50", "--temperature", "0.5",
                "--seed", "3", "Hi"]
        code, out, err = run(argv, capsys)
        (request,) = server.requests
    assert code == 0, err
    assert request.path == "/v1/responses"
    assert request.json == {
        "model": "o4", "input": "Hi", "instructions": "Be brief.", "max_output_tokens": 50,
        "temperature": 0.5, "seed": 3, "stream": True,
    }
    expected = expected_response("openai-reasoning-summary")
    assert expected["output_text"] and expected["output_text"] in out
    assert "[reasoning]" in out
    usage = expected["response"]["usage"]
    assert "[status] completed" in err
    assert f"[usage] {usage['input_tokens']} input + {usage['output_tokens']} output" in err
    assert KEY not in out + err


def test_chat_api_responses_refuses_n(capsys: Any) -> None:
    code, _, err = run(["chat", "--api", "responses", "--base-url", "http://127.0.0.1:9/v1", "-n", "2", "Hi"],
                       capsys)
    assert code == 2 and "no n" in err


@pytest.mark.parametrize("name", sorted(p.stem for p in RESPONSES.glob("*.sse")))
def test_replay_recognises_a_responses_transcript_by_its_events(name: str, capsys: Any) -> None:
    code, out, err = run(["replay", "--json", str(RESPONSES / f"{name}.sse")], capsys)
    expected = expected_response(name)
    assert "Responses API" in err
    events = [json.loads(line) for line in out.splitlines()]
    if expected["outcome"]["kind"] == "ok":
        assert code == 0, err
        want = dict(expected["response"])
        want.pop("parsed", None)  # the request's text.format is not in a transcript: nothing asks to parse
        metrics = events[-1].pop("metrics")  # the stream's metrics ride on the last line
        assert events[-1] == {"type": "completion", "completion": want}
        sent = split_sse_events((RESPONSES / f"{name}.sse").read_bytes())
        assert metrics["finished"] and metrics["chunks"] == len(sent)
    else:
        assert code == 1 and expected["outcome"]["class"] in err
        assert events[-1]["error"]["class"] == expected["outcome"]["class"]


def test_replay_shows_a_responses_transcript_as_text(capsys: Any) -> None:
    code, out, err = run(["replay", str(RESPONSES / "llamacpp-text.sse")], capsys)
    assert code == 0, err
    assert out == expected_response("llamacpp-text")["output_text"] + "\n"
    assert "[status] completed" in err and "[usage]" in err


def test_record_api_responses_saves_the_bytes_and_says_what_they_are(tmp_path: Path, capsys: Any) -> None:
    raw = (RESPONSES / "openai-function-call.sse").read_bytes()
    target = tmp_path / "resp.sse"
    with ReplayServer([ScriptedResponse(events=split_sse_events(raw))]) as server:
        argv = ["record", str(target), "--api", "responses", "--base-url", server.base_url, "--api-key", KEY,
                "Weather?"]
        code, _, err = run(argv, capsys)
        (request,) = server.requests
    assert code == 0, err
    assert target.read_bytes() == raw
    assert request.path == "/v1/responses" and request.json["input"] == "Weather?"
    assert "Responses API stream, status completed" in err
    code, out, err = run(["replay", "--json", str(target)], capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["completion"] == expected_response(
        "openai-function-call"
    )["response"]
