"""The dispatcher: handlers, iteration, and what a raising handler does to a stream."""

from __future__ import annotations

import json
import threading
from typing import Any, List

import pytest
from conftest import SSE_FIXTURES

import openai_stream
from openai_stream import EVENT_TYPES
from openai_stream.testing import ReplayServer, ScriptedResponse, demo_transcript, split_sse_events

FIXTURES = SSE_FIXTURES


def transcript(name: str) -> ScriptedResponse:
    return ScriptedResponse.sse_file(FIXTURES / name)


def stream_of(server: ReplayServer) -> openai_stream.ChatCompletionStream:
    client = openai_stream.Client(base_url=server.base_url, api_key="sk-test", max_retries=0)
    return client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}])


def test_handlers_see_what_iteration_yields_in_the_same_order() -> None:
    with ReplayServer([transcript("documented-parallel-tool-calls.sse")]) as server:
        stream = stream_of(server)
        heard: List[Any] = []
        for name in EVENT_TYPES:
            stream.on(name, heard.append)
        pulled = list(stream)
    assert pulled == heard
    assert [e.type for e in pulled][:2] == ["response", "chunk"]
    assert pulled[-1].type == "completion"


def test_once_runs_a_single_time_and_until_done_is_repeatable() -> None:
    with ReplayServer([transcript("llamacpp-content-usage.sse")]) as server:
        stream = stream_of(server)
        first: List[str] = []
        stream.once("content.delta", lambda event: first.append(event.delta))
        completion = stream.until_done()
        assert stream.until_done() is completion
    content = completion.choices[0].message.content
    assert len(first) == 1 and content is not None and content.startswith(first[0])


def test_a_listener_removed_mid_stream_hears_no_more() -> None:
    with ReplayServer([transcript("llamacpp-content-usage.sse")]) as server:
        stream = stream_of(server)
        heard: List[str] = []

        def listener(event: Any) -> None:
            heard.append(event.delta)
            if len(heard) == 3:
                stream.remove_listener("content.delta", listener)

        stream.on("content.delta", listener)
        stream.until_done()
    assert len(heard) == 3


class HandlerBug(Exception):
    pass


@pytest.mark.parametrize("with_error_listener", [True, False])
def test_a_raising_handler_ends_the_stream_and_its_exception_comes_back(with_error_listener: bool) -> None:
    with ReplayServer([transcript("llamacpp-content-usage.sse")]) as server:
        stream = stream_of(server)
        bug = HandlerBug("handler bug")
        deltas: List[str] = []
        told: List[Any] = []

        @stream.on("content.delta")
        def boom(event: Any) -> None:
            deltas.append(event.delta)
            if len(deltas) == 2:
                raise bug

        if with_error_listener:
            stream.on("error", told.append)
        with pytest.raises(HandlerBug) as info:
            stream.until_done()
        assert info.value is bug
        assert len(deltas) == 2  # no event after the failing one reached a handler
        assert told == ([openai_stream.ErrorEvent(bug)] if with_error_listener else [])
        assert stream.state == "failed"
        response = stream.response
        assert response is not None and response.raw.closed
        with pytest.raises(HandlerBug):
            stream.until_done()  # the same error again, not a new request
    assert len(server.requests) == 1


def test_a_raising_handler_also_ends_iteration() -> None:
    with ReplayServer([transcript("llamacpp-content-usage.sse")]) as server:
        stream = stream_of(server)
        stream.on("usage", lambda event: (_ for _ in ()).throw(HandlerBug("usage handler")))
        seen: List[str] = []
        with pytest.raises(HandlerBug):
            for event in stream:
                seen.append(event.type)
    assert "usage" not in seen and "completion" not in seen
    assert "content.done" in seen


def test_iterating_twice_is_a_clear_error() -> None:
    with ReplayServer([transcript("llamacpp-content-usage.sse")]) as server:
        stream = stream_of(server)
        iterator = iter(stream)
        next(iterator)
        with pytest.raises(openai_stream.OpenAIError, match="once"):
            iter(stream)
        stream.close()


def test_leaving_the_with_block_early_closes_the_response() -> None:
    with ReplayServer([transcript("deepseek-finish-length.sse")]) as server:
        with stream_of(server) as stream:
            for event in stream:
                if event.type == "content.delta":
                    break
        response = stream.response
        assert response is not None and response.raw.closed
        assert stream.current_completion.choices[0].message.content


def content_chunks(pieces: List[str]) -> List[Any]:
    chunks: List[Any] = [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces
    ]
    chunks.append({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return chunks


def read_on_another_thread(read: Any) -> Any:
    seen: List[Any] = []
    reader = threading.Thread(target=lambda: seen.append(read()))
    reader.start()
    reader.join(10)
    (value,) = seen
    return value


def test_snapshot_is_the_completion_so_far_from_any_thread() -> None:
    pieces = ["Hel", "lo", ", ", "wor", "ld"]
    with ReplayServer([ScriptedResponse.from_chunks(content_chunks(pieces))]) as server:
        stream = stream_of(server)
        assert stream.snapshot().choices == []  # nothing arrived yet
        received: List[str] = []
        mid: List[Any] = []

        @stream.on("content.delta")
        def read_elsewhere(event: Any) -> None:
            received.append(event.delta)
            if len(received) == 3:
                mid.append(read_on_another_thread(stream.snapshot))

        completion = stream.until_done()
    (partial,) = mid
    assert partial.choices[0].message.content == "Hel" + "lo" + ", "
    assert partial.choices[0].finish_reason is None
    assert stream.snapshot() is completion and stream.current_completion is completion
    assert completion.choices[0].message.content == "Hello, world"


def test_a_responses_streams_snapshot_is_the_response_so_far() -> None:
    data = demo_transcript("llamacpp-responses-text")
    deltas = []  # parsed here without openai_stream: "event:" and "data:" lines of each block
    for block in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = block.split(b"\n")
        if b"event: response.output_text.delta" in lines:
            (payload,) = [line[5:] for line in lines if line.startswith(b"data:")]
            deltas.append(json.loads(payload)["delta"])
    assert len(deltas) > 3
    with ReplayServer([ScriptedResponse(events=split_sse_events(data), chunked=False)]) as server:
        client = openai_stream.Client(base_url=server.base_url, api_key="sk-test", max_retries=0)
        stream = client.responses.stream(model="m", input="hi")
        received: List[str] = []
        mid: List[Any] = []

        @stream.on("content.delta")
        def read_elsewhere(event: Any) -> None:
            received.append(event.delta)
            if len(received) == 3:
                mid.append(read_on_another_thread(stream.snapshot))

        response = stream.until_done()
    (partial,) = mid
    assert partial.output_text == "".join(deltas[:3])
    assert stream.snapshot() is response and stream.current_response is response
    assert response.output_text == "".join(deltas)
