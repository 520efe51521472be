"""Client hooks: every request, response, retry, stream, create call, runner and tool call.

Over loopback servers (the replay server, and the raw-socket fault server).

Expected payloads come from what the scripted servers send (statuses, request
counts, transcript chunks counted by an independent parser below), never from
the hooks' own output.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from fault_server import FaultServer, chunk, head, reset, script

import openai_stream
from openai_stream import hooks as hooks_module
from openai_stream.engine import _stream as engine_stream
from openai_stream.testing import ReplayServer, ScriptedResponse, demo_transcript, split_sse_events
from openai_stream.transport import _http as transport

KEY = "sk-test-hooks-0123456789abcdef"
USER = [{"role": "user", "content": "hi"}]


def transcript_counts(data: bytes) -> Tuple[int, int]:
    """(payloads, non-empty content fragments) of an SSE transcript, parsed without openai_stream."""
    payloads = contents = 0
    for block in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            text = line[5:].strip()
            if text == b"[DONE]":
                continue
            payloads += 1
            for choice in json.loads(text).get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if isinstance(content, str) and content:
                    contents += 1
    return payloads, contents


class Recorder:
    """Every hook call, in order, with the thread it ran on."""

    def __init__(self, client: openai_stream.Client) -> None:
        self.calls: List[Tuple[str, Any, threading.Thread]] = []
        self._lock = threading.Lock()
        for name in openai_stream.HOOK_NAMES:
            client.on(name, self._record(name))

    def _record(self, name: str) -> Any:
        def hook(info: Any) -> None:
            with self._lock:
                self.calls.append((name, info, threading.current_thread()))

        return hook

    def names(self) -> List[str]:
        return [name for name, _, _ in self.calls]

    def infos(self, name: str) -> List[Any]:
        return [info for seen, info, _ in self.calls if seen == name]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    recorded: List[float] = []
    monkeypatch.setattr(transport, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def demo() -> Iterator[Tuple[ReplayServer, bytes]]:
    data = demo_transcript("llamacpp-content-usage")
    with ReplayServer([ScriptedResponse(events=split_sse_events(data), chunked=False)]) as server:
        yield server, data


def test_a_stream_reports_start_request_response_end_in_order(demo: Tuple[ReplayServer, bytes]) -> None:
    server, data = demo
    payloads, contents = transcript_counts(data)
    with openai_stream.Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
        seen = Recorder(client)
        stream = client.chat.completions.stream(model="m", messages=USER, temperature=0.5)
        completion = stream.until_done()

    assert seen.names() == ["stream.start", "request", "response", "stream.end"]
    start, request, response, end = (info for _, info, _ in seen.calls)
    assert start.stream is stream and start.parent is None
    assert start.body["model"] == "m" and start.body["temperature"] == 0.5
    assert request.method == "POST" and request.url == server.base_url + "/chat/completions"
    assert request.attempt == 1 and request.stream is True and request.call is stream
    assert request.headers["Authorization"] == transport.REDACTED
    assert request.body["messages"] == USER
    assert response.status_code == 200 and response.attempt == 1 and response.seconds >= 0
    assert response.call is stream
    assert end.stream is stream and end.outcome == "done" and end.error is None
    assert end.result is completion
    assert end.metrics is stream.metrics and end.metrics.finished
    assert (end.metrics.chunks, end.metrics.content_deltas) == (payloads, contents)
    assert end.metrics.bytes == len(data)  # close-delimited: the body is the transcript, byte for byte
    for _, info, _ in seen.calls:
        assert KEY not in repr(info) and KEY not in repr(getattr(info, "headers", ""))


def test_hooks_run_on_the_thread_that_runs_the_request(demo: Tuple[ReplayServer, bytes]) -> None:
    server, _ = demo
    with openai_stream.Client(api_key=KEY, base_url=server.base_url) as client:
        seen = Recorder(client)
        stream = client.chat.completions.stream(model="m", messages=USER).start()
        stream.until_done(timeout=30)
        background = stream._thread
        here = client.chat.completions.stream(model="m", messages=USER)
        here.until_done()
    threads = [thread for _, _, thread in seen.calls]
    assert threads[:4] == [background] * 4
    assert threads[4:] == [threading.current_thread()] * 4
    assert background is not threading.current_thread()


def test_retries_are_reported_with_their_cause_and_delay(waits: List[float]) -> None:
    limited = ScriptedResponse.json(
        {"error": {"message": "slow down", "type": "rate_limit"}}, status=429, headers={"Retry-After": "0.25"}
    )
    broken = ScriptedResponse.json({"error": {"message": "oops", "type": "server_error"}}, status=503)
    good = ScriptedResponse.from_chunks(
        [
            {
                "id": "c",
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}],
            }
        ]
    )
    with ReplayServer([limited, broken, good]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url, max_retries=2
    ) as client:
        seen = Recorder(client)
        stream = client.chat.completions.stream(model="m", messages=USER)
        stream.until_done()
        assert len(server.requests) == 3

    assert seen.names() == [
        "stream.start",
        "request",
        "response",
        "retry",
        "request",
        "response",
        "retry",
        "request",
        "response",
        "stream.end",
    ]
    assert [r.attempt for r in seen.infos("request")] == [1, 2, 3]
    assert [r.status_code for r in seen.infos("response")] == [429, 503, 200]
    first, second = seen.infos("retry")
    assert (first.attempt, first.status_code, first.error, first.counted) == (1, 429, None, True)
    assert first.delay == 0.25 and first.cause == "HTTP 429"  # the server's Retry-After
    assert (second.attempt, second.status_code) == (2, 503)
    assert 0 < second.delay <= transport.INITIAL_BACKOFF * 2  # backoff: no Retry-After
    assert waits == [first.delay, second.delay]
    metrics = stream.metrics
    assert (metrics.attempts, metrics.retries) == (3, 2)


def test_a_connection_failure_is_a_retry_with_its_typed_error(waits: List[float]) -> None:
    body = b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"ok"},'
    body += b'"finish_reason":"stop"}]}'
    body += b"\n\n"
    handlers = [reset(), script(head(), chunk(body), chunk(b"data: [DONE]\n\n"))]
    with FaultServer(handlers) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url, max_retries=1
    ) as client:
        seen = Recorder(client)
        client.chat.completions.stream(model="m", messages=USER).until_done()
    (retry,) = seen.infos("retry")
    assert retry.attempt == 1 and retry.status_code is None and retry.counted
    assert isinstance(retry.error, openai_stream.APIConnectionError)
    assert retry.cause.startswith("APIConnectionError: ")
    assert [r.attempt for r in seen.infos("request")] == [1, 2]
    assert seen.infos("stream.end")[0].metrics.retries == 1


def test_a_hook_that_raises_is_logged_and_the_request_goes_on(
    demo: Tuple[ReplayServer, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = demo
    called: List[str] = []

    def broken(info: Any) -> None:
        called.append(type(info).__name__)
        raise RuntimeError("observability bug")

    with openai_stream.Client(api_key=KEY, base_url=server.base_url) as client:
        for name in openai_stream.HOOK_NAMES:
            client.on(name, broken)
        with caplog.at_level(logging.ERROR, logger="openai_stream"):
            completion = client.chat.completions.stream(model="m", messages=USER).until_done()
    assert completion.choices[0].finish_reason == "stop"
    assert called == ["StreamStartInfo", "RequestInfo", "ResponseInfo", "StreamEndInfo"]
    failures = [r for r in caplog.records if r.name == "openai_stream" and "hook" in r.getMessage()]
    assert len(failures) == 4
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failures)


def test_without_hooks_no_payload_is_built(
    demo: Tuple[ReplayServer, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a hook payload was built with no hook registered")

    for name in ("RequestInfo", "ResponseInfo", "RetryInfo"):
        monkeypatch.setattr(transport, name, refuse)
    for name in ("StreamStartInfo", "StreamEndInfo"):
        monkeypatch.setattr(engine_stream, name, refuse)
    server, _ = demo
    with openai_stream.Client(api_key=KEY, base_url=server.base_url) as client:
        assert not client.hooks.active
        client.chat.completions.stream(model="m", messages=USER).until_done()


def test_create_reports_its_start_and_end_with_metrics() -> None:
    answer = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "model": "m-2024",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    with ReplayServer([ScriptedResponse.json(answer)]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        seen = Recorder(client)
        completion = client.chat.completions.create(model="m", messages=USER)
    assert seen.names() == ["create.start", "request", "response", "create.end"]
    start, request, _, end = (info for _, info, _ in seen.calls)
    assert request.stream is False and request.call is start.call is end.call
    assert end.outcome == "done" and end.result is completion
    metrics = end.metrics
    assert metrics.finished and metrics.chunks == 0 and metrics.time_to_headers is not None
    assert (metrics.input_tokens, metrics.output_tokens, metrics.finish_reasons) == (3, 2, ("stop",))
    assert start.call.metrics is metrics


def test_a_failed_create_reports_failed_with_the_error() -> None:
    error = ScriptedResponse.json({"error": {"message": "bad", "type": "invalid_request_error"}}, status=400)
    with ReplayServer([error]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        seen = Recorder(client)
        with pytest.raises(openai_stream.BadRequestError) as raised:
            client.chat.completions.create(model="m", messages=USER)
    (end,) = seen.infos("create.end")
    assert end.outcome == "failed" and end.error is raised.value and end.result is None


def test_runner_rounds_and_tools_are_reported(demo: Tuple[ReplayServer, bytes]) -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
    }
    first = ScriptedResponse.from_chunks(
        [
            {
                "id": "r1",
                "model": "m",
                "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}],
            },
            {"id": "r1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        ]
    )
    second = ScriptedResponse.from_chunks(
        [
            {
                "id": "r2",
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": "3"}, "finish_reason": "stop"}],
            },
        ]
    )

    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    with ReplayServer([first, second]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        seen = Recorder(client)
        runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[add])
        runner.until_done()

    names = seen.names()
    assert names[0] == "runner.start" and names[-1] == "runner.end"
    assert names.count("stream.start") == names.count("stream.end") == 2
    assert names.count("tool.start") == names.count("tool.end") == 1
    assert names.index("tool.end") < len(names) - 1
    for start in seen.infos("stream.start"):
        assert start.parent is runner
    (tool_start,) = seen.infos("tool.start")
    (tool_end,) = seen.infos("tool.end")
    assert (tool_start.name, tool_start.call_id, tool_start.arguments) == (
        "add",
        "call_1",
        '{"a": 1, "b": 2}',
    )
    assert tool_end.outcome == "done" and tool_end.result == 3 and tool_end.content == "3"
    assert tool_end.hook_state is tool_start.hook_state
    tool_threads = {thread for name, _, thread in seen.calls if name.startswith("tool.")}
    assert len(tool_threads) == 1 and next(iter(tool_threads)).name.startswith("openai_stream-tool")
    (end,) = seen.infos("runner.end")
    assert end.outcome == "done" and end.runner is runner
    assert end.metrics.rounds == 2 and end.metrics is runner.metrics
    assert end.metrics.chunks == sum(e.metrics.chunks for e in seen.infos("stream.end")) == 3


def test_a_tool_that_raises_ends_failed() -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "boom", "arguments": "{}"}}
    first = ScriptedResponse.from_chunks(
        [
            {
                "id": "r1",
                "model": "m",
                "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}],
            },
        ]
    )
    second = ScriptedResponse.from_chunks(
        [
            {
                "id": "r2",
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": "sorry"}, "finish_reason": "stop"}],
            },
        ]
    )

    def boom() -> None:
        """Fail."""
        raise ValueError("no")

    with ReplayServer([first, second]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        seen = Recorder(client)
        client.chat.completions.run_tools(model="m", messages=USER, tools=[boom]).until_done()
    (end,) = seen.infos("tool.end")
    assert end.outcome == "failed" and isinstance(end.error, ValueError)


def test_an_unknown_hook_name_is_refused_with_a_suggestion() -> None:
    client = openai_stream.Client(api_key=KEY, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match=r"did you mean 'stream\.end'"):
        client.on("stream.ended", print)
    with pytest.raises(ValueError, match="registered on the stream"):
        client.on("content.delta", print)
    with pytest.raises(TypeError):
        client.on("request", "not callable")  # type: ignore[call-overload]


def test_hooks_can_be_removed_and_registered_as_decorators() -> None:
    client = openai_stream.Client(api_key=KEY, base_url="http://127.0.0.1:9/v1")

    def on_retry(info: Any) -> None:
        pass

    assert client.on("retry")(on_retry) is on_retry  # the decorator form returns the function

    assert client.hooks.listeners("retry") == (on_retry,) and client.hooks.active
    client.hooks.remove("retry", on_retry)
    assert client.hooks.listeners("retry") == () and not client.hooks.active
    with pytest.raises(ValueError):
        client.hooks.remove("retry", on_retry)


# --------------------------------------------------------------------------- ends, exactly once


def slow_server(pieces: int = 200, delay: float = 0.05) -> ReplayServer:
    chunks = [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
        for i in range(pieces)
    ]
    return ReplayServer([ScriptedResponse.from_chunks(chunks, delay=delay)])


def ends(seen: Recorder) -> List[Any]:
    return seen.infos("stream.end")


def test_close_from_another_thread_ends_the_stream_once_as_closed() -> None:
    with slow_server() as server, openai_stream.Client(api_key=KEY, base_url=server.base_url) as client:
        seen = Recorder(client)
        stream = client.chat.completions.stream(model="m", messages=USER)
        got_some = threading.Event()
        stream.on("content.delta", lambda event: got_some.set())
        stream.start()
        assert got_some.wait(10)
        threading.Thread(target=stream.close).start()
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done(timeout=10)
        stream._finished.wait(10)
    (end,) = ends(seen)
    assert end.outcome == "closed" and isinstance(end.error, openai_stream.APIUserAbortError)
    assert 1 <= end.metrics.content_deltas < 200 and end.metrics.finished


def test_close_of_a_paused_iteration_ends_it_once_then_the_iterator_adds_nothing() -> None:
    with slow_server(delay=0.0) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        seen = Recorder(client)
        stream = client.chat.completions.stream(model="m", messages=USER)
        events = iter(stream)
        next(events), next(events)  # response, then the first chunk: the loop is paused
        closer = threading.Thread(target=stream.close)
        closer.start()
        closer.join(10)
        assert len(ends(seen)) == 1 and ends(seen)[0].outcome == "closed"
        assert ends(seen)[0].stream is stream
        with pytest.raises(openai_stream.APIUserAbortError):
            next(events)
    assert len(ends(seen)) == 1


def test_a_dropped_stream_ends_once_when_collected_off_the_collector_thread() -> None:
    starts: List[str] = []
    found: List[Tuple[Any, threading.Thread]] = []
    ended = threading.Event()

    def on_end(info: Any) -> None:
        found.append((info, threading.current_thread()))
        ended.set()

    with slow_server(delay=0.0) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        client.on("stream.start", lambda info: starts.append(type(info.stream).__name__))  # keeps no stream
        client.on("stream.end", on_end)
        stream = client.chat.completions.stream(model="m", messages=USER)
        events = iter(stream)
        next(events), next(events), next(events)
        never = client.chat.completions.stream(model="m", messages=USER)  # never consumed: never sent
        del stream, events, never
        gc.collect()
        assert ended.wait(10)
        assert len(server.requests) == 1
    ((end, thread),) = found
    assert starts == ["ChatCompletionStream"]
    assert end.outcome == "closed" and isinstance(end.error, openai_stream.APIUserAbortError)
    assert (end.metrics.chunks, end.metrics.content_deltas) == (
        1,
        1,
    ) and end.metrics.finished  # 3 events: response, chunk, delta
    assert thread.name == "openai_stream hooks" and thread is not threading.current_thread()


def test_ctrl_c_in_a_handler_ends_the_stream_once_as_closed() -> None:
    with slow_server(delay=0.0) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url
    ) as client:
        seen = Recorder(client)
        stream = client.chat.completions.stream(model="m", messages=USER)

        def interrupt(event: Any) -> None:
            raise KeyboardInterrupt

        stream.on("content.delta", interrupt)
        with pytest.raises(KeyboardInterrupt):
            stream.until_done()
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done()
    (end,) = ends(seen)
    assert end.outcome == "closed" and isinstance(end.error, KeyboardInterrupt)


def test_a_failed_stream_ends_once_as_failed_with_its_error() -> None:
    error = ScriptedResponse.json({"error": {"message": "no", "type": "server_error"}}, status=500)
    with ReplayServer([error]) as server, openai_stream.Client(
        api_key=KEY, base_url=server.base_url, max_retries=0
    ) as client:
        seen = Recorder(client)
        with pytest.raises(openai_stream.InternalServerError) as raised:
            client.chat.completions.stream(model="m", messages=USER).until_done()
    (end,) = ends(seen)
    assert end.outcome == "failed" and end.error is raised.value
    assert end.metrics.attempts == 1 and end.metrics.chunks == 0


def test_client_close_ends_running_streams_as_closed() -> None:
    with slow_server() as server:
        client = openai_stream.Client(api_key=KEY, base_url=server.base_url)
        seen = Recorder(client)
        stream = client.chat.completions.stream(model="m", messages=USER)
        got_some = threading.Event()
        stream.on("content.delta", lambda event: got_some.set())
        stream.start()
        assert got_some.wait(10)
        client.close()
        stream._finished.wait(10)
    (end,) = ends(seen)
    assert end.outcome == "closed"


def test_hook_names_are_documented() -> None:
    for name in openai_stream.HOOK_NAMES:
        assert f"``{name}``" in (hooks_module.__doc__ or "")


def test_payloads_are_frozen() -> None:
    info = hooks_module.RetryInfo(1, None, 429, 0.5, "HTTP 429", True, "http://x/v1", None)
    with pytest.raises(AttributeError):
        info.delay = 0  # type: ignore[misc]
    assert "call" not in repr(info)


def test_clients_made_with_with_options_share_the_hooks(demo: Tuple[ReplayServer, bytes]) -> None:
    """with_options() shares the registry (not a copy): hooks added later on either client see both."""
    server, _ = demo
    with openai_stream.Client(api_key=KEY, base_url=server.base_url) as client:
        derived = client.with_options(timeout=30, max_retries=0)
        assert derived.hooks is client.hooks
        seen: List[Any] = []
        derived.on("stream.end", lambda info: seen.append(info.stream))  # added on the derived one
        first = client.chat.completions.stream(model="m", messages=USER)
        first.until_done()
        second = derived.chat.completions.stream(model="m", messages=USER)
        second.until_done()
        assert client.with_options(max_retries=1).hooks is client.hooks
    assert seen == [first, second]


def test_a_composer_set_as_a_streams_parent_is_named_in_its_hooks(demo: Tuple[ReplayServer, bytes]) -> None:
    server, _ = demo

    class Composer:
        hook_state: Dict[str, Any] = {}

    composer, other = Composer(), Composer()
    with openai_stream.Client(api_key=KEY, base_url=server.base_url, max_retries=0) as client:
        seen = Recorder(client)
        stream = client.chat.completions.stream(model="m", messages=USER)
        assert stream.parent is None
        stream.parent = composer
        stream.parent = composer  # the same again changes nothing
        with pytest.raises(openai_stream.OpenAIError, match="already runs as a step"):
            stream.parent = other
        refused: List[BaseException] = []

        @stream.on("content.delta")
        def too_late(event: Any) -> None:
            if not refused:
                try:
                    stream.parent = None
                except openai_stream.OpenAIError as exc:
                    refused.append(exc)

        stream.until_done()
    assert stream.parent is composer
    (start,) = seen.infos("stream.start")
    (end,) = seen.infos("stream.end")
    assert start.parent is composer and end.parent is composer
    assert len(refused) == 1 and "before it starts" in str(refused[0])
