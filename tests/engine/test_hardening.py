"""Hostile-server findings on the stream engine (issue 10, section 7), through the real client.

Each case failed on the code before its fix: an ``event: error`` frame whose
data is ``[DONE]`` passed as success; ``[DONE]`` padded with whitespace failed
a finished stream; an ``error`` listener that raises made two ``until_done()``
calls raise two different errors; a completion nested ~600 deep could not be
copied; ``close()`` during a read that timed out was reported as a timeout.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any, Dict, List

import pytest
import requests
from conftest import delta

import openai_stream
from openai_stream.testing import ReplayServer, ScriptedResponse
from openai_stream.transport._http import Transport


def data(payload: Dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def client_for(server: Any, **kwargs: Any) -> openai_stream.Client:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 20)
    return openai_stream.Client(api_key="sk-test", base_url=server.base_url, **kwargs)


def stream_of(client: openai_stream.Client) -> openai_stream.ChatCompletionStream:
    return client.chat.completions.stream(model="m", messages=[])


def test_an_error_event_whose_data_is_done_is_an_error() -> None:
    events = [data(delta("Hi", "stop")), b"event: error\ndata: [DONE]\n\n"]
    with ReplayServer([ScriptedResponse(events=events)]) as server, client_for(server) as client:  # noqa: SIM117
        with pytest.raises(openai_stream.APIError, match="error event") as info:
            stream_of(client).until_done()
    assert info.value.completion.choices[0].message.content == "Hi"


@pytest.mark.parametrize("done", [b"data:  [DONE]\n\n", b"data: [DONE] \n\n", b"data: [DONE]\t\n\n"])
def test_done_padded_with_whitespace_ends_a_finished_stream(done: bytes) -> None:
    events = [data(delta("Hi")), data(delta("", "stop")), done]
    with ReplayServer([ScriptedResponse(events=events)]) as server, client_for(server) as client:
        assert stream_of(client).until_done().choices[0].message.content == "Hi"


def test_done_padded_with_whitespace_ends_an_unfinished_stream_too() -> None:
    events = [data(delta("Hi")), b"data:  [DONE] \n\n"]
    with ReplayServer([ScriptedResponse(events=events)]) as server, client_for(server) as client:
        completion = stream_of(client).until_done()
    assert completion.choices[0].finish_reason is None


def test_an_error_listener_that_raises_gives_the_same_outcome_every_time() -> None:
    events = [data(delta("Hi")), b"data: {bad json\n\n"]
    with ReplayServer([ScriptedResponse(events=events)]) as server, client_for(server) as client:
        stream = stream_of(client)

        @stream.on("error")
        def broken_listener(event: Any) -> None:
            raise RuntimeError("the listener broke")

        raised: List[BaseException] = []
        for _ in range(3):
            with pytest.raises(BaseException) as info:
                stream.until_done()
            raised.append(info.value)
    assert raised[0] is raised[1] is raised[2]
    assert isinstance(raised[0], RuntimeError)
    assert isinstance(raised[0].__cause__, openai_stream.InvalidStreamDataError)  # chained to the stream's


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": [value]}
    return value


def test_a_deeply_nested_field_is_kept_and_copied() -> None:
    first = delta("Hi")
    first["choices"][0]["delta"]["provider_extra"] = nested(450)  # 900 levels of JSON nesting
    events = [data(first), data(delta("", "stop")), b"data: [DONE]\n\n"]
    with ReplayServer([ScriptedResponse(events=events)]) as server, client_for(server) as client:
        completion = stream_of(client).until_done()
    copied = completion.to_dict()["choices"][0]["message"]["provider_extra"]
    depth = 0
    while isinstance(copied, dict):
        copied = copied["k"][0]
        depth += 1
    assert (depth, copied) == (450, "leaf")


class TimingOutRaw:
    """A urllib3 response stand-in: one delta, then a read that times out once close() shut it down."""

    def __init__(self) -> None:
        self.pieces = [data(delta("Hi"))]
        self.shut = threading.Event()
        self.decode_content = False

    def read1(self, size: int = -1) -> bytes:
        if self.pieces:
            return self.pieces.pop(0)
        assert self.shut.wait(10)
        raise socket.timeout("timed out")  # the read timed out just as close() came

    def shutdown(self) -> None:
        self.shut.set()


class OneResponseTransport(Transport):
    def __init__(self, response: Any) -> None:
        super().__init__(base_url="http://fake.invalid/v1", api_key="sk-test")
        self.response = response

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.response


def test_close_during_a_read_that_timed_out_is_the_abort() -> None:
    response = requests.Response()
    response.status_code = 200
    response.headers["content-type"] = "text/event-stream"
    response.raw = TimingOutRaw()
    stream = openai_stream.ChatCompletionStream(OneResponseTransport(response), {"model": "m"})
    got_delta = threading.Event()
    stream.on("content.delta", lambda event: got_delta.set())
    stream.start()
    assert got_delta.wait(5)
    stream.close()
    with pytest.raises(openai_stream.APIUserAbortError) as info:
        stream.until_done(timeout=5)
    assert info.value.completion.choices[0].message.content == "Hi"
    assert stream.state == "closed"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_stream_running_in_the_parent_fails_clearly_in_a_forked_child() -> None:
    chunks = [data(delta(f"{i} ")) for i in range(200)] + [data(delta("", "stop")), b"data: [DONE]\n\n"]
    with ReplayServer([ScriptedResponse(events=chunks, delay=0.01)]) as server, client_for(server) as client:
        stream = stream_of(client)
        first = threading.Event()
        stream.on("content.delta", lambda event: first.set())
        stream.start()
        assert first.wait(10)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its copy of the stream has no thread; waiting must not hang
            outcome = "returned"
            try:
                stream.until_done(timeout=5)
            except openai_stream.OpenAIError as exc:
                outcome = "forked" if "os.fork()" in str(exc) else f"other: {exc}"
            except BaseException as exc:
                outcome = f"other: {type(exc).__name__}"
            os.write(write, outcome.encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            got = pipe.read().decode()
        os.waitpid(pid, 0)
        assert got == "forked"
        completion = stream.until_done(timeout=20)  # the parent's stream is untouched
    assert (completion.choices[0].message.content or "").count(" ") == 200


# --------------------------------------------------------------------------- review findings


def test_a_chunk_with_an_unhashable_choice_index_is_invalid_data_not_a_type_error() -> None:
    bad = delta("b")
    bad["choices"][0]["index"] = [0]
    events = [data(delta("a")), data(bad), data(delta("", "stop")), b"data: [DONE]\n\n"]
    with ReplayServer([ScriptedResponse(events=events)]) as server, client_for(server) as client:  # noqa: SIM117
        with pytest.raises(openai_stream.InvalidStreamDataError):
            stream_of(client).until_done()


def test_until_done_with_a_timeout_from_the_iterating_thread_never_starts_a_second_consumer() -> None:
    events = [data(delta(f"{i} ")) for i in range(5)] + [data(delta("", "stop")), b"data: [DONE]\n\n"]
    with ReplayServer([ScriptedResponse(events=events)]) as server, client_for(server) as client:
        stream = stream_of(client)
        seen = []
        for event in stream:
            if event.type == "content.delta":
                seen.append(event.delta)  # type: ignore[attr-defined]
                if len(seen) == 1:
                    with pytest.raises(openai_stream.OpenAIError, match="second consumer"):
                        stream.until_done(timeout=0.01)
        assert seen == [f"{i} " for i in range(5)]  # the loop went on undisturbed
        assert stream.until_done().choices[0].message.content == "0 1 2 3 4 "


def test_leaving_a_with_block_right_after_the_completion_event_leaves_the_stream_done() -> None:
    events = [data(delta("Hi")), data(delta("", "stop")), b"data: [DONE]\n\n"]
    with ReplayServer([ScriptedResponse(events=events)]) as server, client_for(server) as client:
        with stream_of(client) as stream:
            for event in stream:
                if event.type == "completion":
                    break
        assert stream.state == "done"
        assert stream.until_done().choices[0].message.content == "Hi"


def test_a_dropped_stream_collected_while_the_live_lock_is_held_does_not_deadlock() -> None:
    import gc

    events = [data(delta(f"{i} ")) for i in range(50)] + [data(delta("", "stop")), b"data: [DONE]\n\n"]
    with ReplayServer([ScriptedResponse(events=events, delay=0.01)]) as server, client_for(server) as client:
        stream = stream_of(client)
        iterator = iter(stream)
        next(iterator)
        next(iterator)  # half read, paused
        del stream, iterator
        done = threading.Event()

        def collect_under_the_lock() -> None:
            with client._transport._live_lock:
                gc.collect()  # finalizes the dropped stream's generator on this very thread
            done.set()

        worker = threading.Thread(target=collect_under_the_lock, daemon=True)
        worker.start()
        assert done.wait(10), "finalizing a dropped stream deadlocked on the transport's lock"


def test_the_repr_of_a_client_never_shows_a_query_that_may_carry_a_key() -> None:
    client = openai_stream.Client(api_key=None, base_url="http://127.0.0.1:9/v1?key=sk-secret-in-query")
    assert "sk-secret-in-query" not in repr(client)
    assert "127.0.0.1:9/v1" in repr(client)
