"""The dispatcher: handlers, iteration, and what a raising handler does to a stream."""

from __future__ import annotations

from typing import Any, List

import pytest
from conftest import SSE_FIXTURES

import openai_stream
from openai_stream import EVENT_TYPES
from openai_stream.testing import ReplayServer, ScriptedResponse

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
