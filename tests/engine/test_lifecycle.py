"""Stream lifecycle on real loopback servers: start(), until_done(timeout), close() from any thread,
idle_timeout, and what happens to the connection afterwards.

Servers stall, drip and hang; every wait is bounded, and the only timing checks
are generous "stopped within a few seconds" bounds.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from conftest import delta
from fault_server import FaultServer, chunk, head, raw, script, sse, stall

import openai_stream
from openai_stream.testing import ReplayServer, ScriptedResponse

STOPPED_WITHIN = 3.0  # the promise is 1 s; leave room for slow CI machines


FIRST = sse(delta("Hel"))
REST = [sse(delta("lo")), sse(delta("", "stop")), b"data: [DONE]\n\n"]


def gate(event: threading.Event, limit: float = 20.0) -> Callable[[socket.socket, bytes], None]:
    """A server step that waits until the test opens the gate (bounded)."""

    def wait(conn: socket.socket, request: bytes) -> None:
        event.wait(limit)

    return wait


def make_client(base_url: str, **kwargs: Any) -> openai_stream.Client:
    kwargs.setdefault("timeout", 10)
    kwargs.setdefault("max_retries", 0)
    return openai_stream.Client(api_key="sk-test", base_url=base_url, **kwargs)


@pytest.fixture
def held() -> Iterator[tuple[FaultServer, threading.Event]]:
    """A chunked server that sends one delta, then holds the rest until the gate opens."""
    opened = threading.Event()
    steps = [head(), chunk(FIRST), gate(opened)] + [chunk(p) for p in REST] + [chunk(b"")]
    with FaultServer(script(*steps)) as server:
        yield server, opened
        opened.set()


def first_delta(stream: openai_stream.ChatCompletionStream) -> threading.Event:
    seen = threading.Event()
    stream.on("content.delta", lambda event: seen.set())
    return seen


def close_when(seen: threading.Event, stream: openai_stream.ChatCompletionStream) -> None:
    if seen.wait(5):
        stream.close()


def stopped(thread: threading.Thread | None) -> bool:
    assert thread is not None
    thread.join(STOPPED_WITHIN)
    return not thread.is_alive()


# start() and until_done(timeout)


def test_start_returns_at_once_and_until_done_returns_the_completion(held: Any) -> None:
    server, opened = held
    client = make_client(server.base_url)
    stream = client.chat.completions.stream(model="m", messages=[])
    seen = first_delta(stream)
    threads: list[threading.Thread] = []
    stream.on("content.delta", lambda event: threads.append(threading.current_thread()))
    assert stream.start() is stream
    assert seen.wait(5), "the background thread streams without anyone waiting"
    assert stream.state == "running"  # the server still holds the rest
    opened.set()
    completion = stream.until_done(timeout=5)
    assert completion.choices[0].message.content == "Hello"
    assert all(t is not threading.main_thread() and t.daemon for t in threads)
    assert stopped(stream._thread)
    assert stream.until_done() is completion  # again: the same result
    client.close()


def test_until_done_timeout_raises_builtin_timeout_error_and_the_stream_goes_on(held: Any) -> None:
    server, opened = held
    client = make_client(server.base_url)
    stream = client.chat.completions.stream(model="m", messages=[]).start()
    with pytest.raises(TimeoutError) as info:
        stream.until_done(timeout=0.3)
    assert type(info.value) is TimeoutError
    assert "goes on" in str(info.value)
    assert stream.state == "running"
    opened.set()
    assert stream.until_done(timeout=5).choices[0].message.content == "Hello"
    client.close()


def test_until_done_with_a_timeout_starts_an_unstarted_stream(held: Any) -> None:
    server, opened = held
    client = make_client(server.base_url)
    stream = client.chat.completions.stream(model="m", messages=[])
    seen = first_delta(stream)
    with pytest.raises(TimeoutError):
        stream.until_done(timeout=0.3)
    assert seen.is_set() and stream._thread is not None
    opened.set()
    assert stream.until_done(timeout=5).choices[0].message.content == "Hello"
    client.close()


def test_until_done_without_start_runs_in_the_calling_thread() -> None:
    with ReplayServer([ScriptedResponse(events=[FIRST, *REST])]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[])
        threads: list[threading.Thread] = []
        stream.on("content.delta", lambda event: threads.append(threading.current_thread()))
        assert stream.until_done().choices[0].message.content == "Hello"
        assert threads and all(t is threading.current_thread() for t in threads)
        assert stream._thread is None
        client.close()


def test_iteration_after_start_raises_and_start_after_iteration_raises(held: Any) -> None:
    server, opened = held
    client = make_client(server.base_url)
    started = client.chat.completions.stream(model="m", messages=[]).start()
    assert started.start() is started  # a second start() changes nothing
    with pytest.raises(openai_stream.OpenAIError, match="background thread since start"):
        iter(started)
    opened.set()
    started.until_done(timeout=5)
    iterated = client.chat.completions.stream(model="m", messages=[])
    events = iter(iterated)
    with pytest.raises(openai_stream.OpenAIError, match="call start\\(\\) before"):
        iterated.start()
    assert [e.type for e in events][-1] == "completion"
    client.close()


def test_a_background_stream_error_is_raised_by_until_done_and_told_to_listeners() -> None:
    error = {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}
    events = [FIRST, b"event: error\ndata: " + json.dumps(error).encode() + b"\n\n"]
    with ReplayServer([ScriptedResponse(events=events)]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[])
        told: list[BaseException] = []
        stream.on("error", lambda event: told.append(event.error))
        stream.start()
        with pytest.raises(openai_stream.RateLimitError) as info:
            stream.until_done(timeout=5)
        assert told == [info.value]
        assert info.value.completion is not None
        assert info.value.completion.choices[0].message.content == "Hel"
        assert stream.state == "failed"
        with pytest.raises(openai_stream.RateLimitError):
            stream.until_done()
        client.close()


def test_a_handler_error_on_the_background_thread_reaches_until_done() -> None:
    with ReplayServer([ScriptedResponse(events=[FIRST, *REST])]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[])

        @stream.on("content.delta")
        def boom(event: Any) -> None:
            raise KeyError("handler bug")

        stream.start()
        with pytest.raises(KeyError, match="handler bug"):
            stream.until_done(timeout=5)
        client.close()


# close() from any thread


def hanging_server(chunked: bool) -> FaultServer:
    """Sends one delta, then says nothing (the socket stays open) for 30 s."""
    if chunked:
        return FaultServer(script(head(), chunk(FIRST), stall(30)))
    return FaultServer(script(head(chunked=False), raw(FIRST), stall(30)))


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_close_from_another_thread_stops_a_stream_blocked_on_a_silent_server(chunked: bool) -> None:
    with hanging_server(chunked) as server:
        client = make_client(server.base_url, timeout=30)
        stream = client.chat.completions.stream(model="m", messages=[])
        seen = first_delta(stream)
        errors: list[BaseException] = []
        stream.on("error", lambda event: errors.append(event.error))
        stream.start()
        assert seen.wait(5)
        began = time.monotonic()
        closer = threading.Thread(target=stream.close)
        closer.start()
        with pytest.raises(openai_stream.APIUserAbortError) as info:
            stream.until_done(timeout=10)
        assert time.monotonic() - began < STOPPED_WITHIN
        assert stopped(stream._thread), "the loop thread ends, it is not left blocked in a read"
        closer.join(STOPPED_WITHIN)
        assert isinstance(info.value, openai_stream.APIError)
        assert info.value.completion is not None
        assert info.value.completion.choices[0].message.content == "Hel"
        assert stream.state == "closed"
        assert stream.response is not None and stream.response.raw.closed
        assert len(errors) <= 1 and all(isinstance(e, openai_stream.APIUserAbortError) for e in errors)
        client.close()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_close_unblocks_until_done_running_in_the_calling_thread(chunked: bool) -> None:
    with hanging_server(chunked) as server:
        client = make_client(server.base_url, timeout=30)
        stream = client.chat.completions.stream(model="m", messages=[])
        seen = first_delta(stream)
        closer = threading.Thread(target=close_when, args=(seen, stream))
        closer.start()
        began = time.monotonic()
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done()
        assert time.monotonic() - began < STOPPED_WITHIN + 5
        closer.join(STOPPED_WITHIN)
        client.close()


def test_close_from_another_thread_ends_an_iteration_with_user_abort() -> None:
    with hanging_server(True) as server:
        client = make_client(server.base_url, timeout=30)
        stream = client.chat.completions.stream(model="m", messages=[])
        seen = first_delta(stream)
        closer = threading.Thread(target=close_when, args=(seen, stream))
        closer.start()
        kinds: list[str] = []
        with pytest.raises(openai_stream.APIUserAbortError):
            for event in stream:
                kinds.append(event.type)
        assert "content.delta" in kinds
        closer.join(STOPPED_WITHIN)
        client.close()


def test_close_inside_a_handler_stops_dispatch_at_once() -> None:
    events = [FIRST, sse(delta("lo")), sse(delta("!")), sse(delta("", "stop")), b"data: [DONE]\n\n"]
    with ReplayServer([ScriptedResponse(events=events)]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[])
        after: list[str] = []

        @stream.on("content.delta")
        def stop(event: Any) -> None:
            after.append(event.delta)
            stream.close()

        stream.on("chunk", lambda event: after.append("chunk"))
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done()
        assert after == ["chunk", "Hel"], "no event is dispatched after close()"
        client.close()


def test_close_between_pulled_events_releases_the_response_and_the_next_step_raises() -> None:
    with hanging_server(True) as server:
        client = make_client(server.base_url, timeout=30)
        stream = client.chat.completions.stream(model="m", messages=[])
        events = iter(stream)
        while next(events).type != "content.delta":
            pass
        stream.close()
        assert stream.response is not None and stream.response.raw.closed
        with pytest.raises(openai_stream.APIUserAbortError):
            next(events)
        client.close()


def test_close_before_the_request_is_sent_sends_nothing() -> None:
    with ReplayServer([ScriptedResponse(events=[FIRST, *REST])]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[])
        stream.close()
        stream.close()
        with pytest.raises(openai_stream.APIUserAbortError) as info:
            stream.until_done()
        assert info.value.completion is not None and info.value.completion.choices == []
        started = client.chat.completions.stream(model="m", messages=[])
        started.close()
        started.start()
        with pytest.raises(openai_stream.APIUserAbortError):
            started.until_done(timeout=5)
        assert server.requests == []
        client.close()


def test_close_while_waiting_for_the_response_headers() -> None:
    with FaultServer(stall(30)) as server:
        client = make_client(server.base_url, timeout=30, max_retries=2)
        stream = client.chat.completions.stream(model="m", messages=[]).start()
        deadline = time.monotonic() + 5
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.requests, "the request reached the server"
        began = time.monotonic()
        stream.close()
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done(timeout=10)
        assert time.monotonic() - began < STOPPED_WITHIN
        assert stopped(stream._thread)
        assert server.connections == 1, "a closed stream is not retried"
        client.close()


def test_close_during_a_retry_backoff() -> None:
    busy = ScriptedResponse.json(
        {"error": {"message": "busy", "type": "server_error"}}, status=503, headers={"retry-after": "30"}
    )
    with ReplayServer([busy]) as server:
        client = make_client(server.base_url, max_retries=2)
        stream = client.chat.completions.stream(model="m", messages=[]).start()
        deadline = time.monotonic() + 5
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # now in the 30 s wait the server asked for
        began = time.monotonic()
        stream.close()
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done(timeout=10)
        assert time.monotonic() - began < STOPPED_WITHIN
        assert stopped(stream._thread)
        assert len(server.requests) == 1
        client.close()


def test_close_while_connecting_returns_promptly_and_the_thread_ends_by_the_connect_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)  # the accept queue is now full
    try:
        client = make_client(f"http://127.0.0.1:{port}/v1", timeout=openai_stream.Timeout(connect=2, read=30))
        stream = client.chat.completions.stream(model="m", messages=[]).start()
        time.sleep(0.2)  # the connect is now pending: nobody accepts it
        began = time.monotonic()
        stream.close()
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done(timeout=10)
        assert time.monotonic() - began < STOPPED_WITHIN
        thread = stream._thread
        assert thread is not None
        thread.join(10)
        assert not thread.is_alive(), "the thread ends once the connect gives up"
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done()
        client.close()
    finally:
        filler.close()
        listener.close()


def test_closing_twice_before_start_and_after_the_end_is_harmless() -> None:
    with ReplayServer([ScriptedResponse(events=[FIRST, *REST])]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[])
        completion = stream.until_done()
        stream.close()
        stream.close()
        assert stream.until_done() is completion
        assert stream.state == "done"
        background = client.chat.completions.stream(model="m", messages=[]).start()
        assert background.until_done(timeout=5).choices[0].message.content == "Hello"
        background.close()
        assert background.state == "done"
        client.close()


def test_with_block_closes_a_started_stream_and_its_thread() -> None:
    with hanging_server(True) as server:
        client = make_client(server.base_url, timeout=30)
        with client.chat.completions.stream(model="m", messages=[]) as stream:
            seen = first_delta(stream)
            stream.start()
            assert seen.wait(5)
        assert stopped(stream._thread)
        assert stream.state == "closed"
        client.close()


# idle_timeout


def test_keepalive_comments_do_not_reset_the_idle_timeout() -> None:
    pings = [b": ping\n\n"] * 200  # 200 x 0.05 s = 10 s of keep-alives and no data
    response = ScriptedResponse(events=[FIRST, *pings, *REST], delay=0.05)
    with ReplayServer([response]) as server:
        client = make_client(server.base_url, idle_timeout=0.6)
        stream = client.chat.completions.stream(model="m", messages=[])
        began = time.monotonic()
        with pytest.raises(openai_stream.APITimeoutError) as info:
            stream.until_done()
        assert time.monotonic() - began < 0.6 + STOPPED_WITHIN
        assert "idle_timeout" in str(info.value)
        assert info.value.completion is not None
        assert info.value.completion.choices[0].message.content == "Hel"
        client.close()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_a_silent_server_trips_the_idle_timeout(chunked: bool) -> None:
    with hanging_server(chunked) as server:
        client = make_client(server.base_url, timeout=30)
        stream = client.chat.completions.stream(model="m", messages=[], idle_timeout=0.5)
        began = time.monotonic()
        with pytest.raises(openai_stream.APITimeoutError, match="idle_timeout") as info:
            stream.until_done()
        assert time.monotonic() - began < 0.5 + STOPPED_WITHIN
        assert info.value.completion is not None
        assert info.value.completion.choices[0].message.content == "Hel"
        client.close()


def test_idle_timeout_bounds_the_wait_for_the_response_headers() -> None:
    with FaultServer(stall(30)) as server:
        client = make_client(server.base_url, timeout=30, idle_timeout=0.5)
        began = time.monotonic()
        with pytest.raises(openai_stream.APITimeoutError):
            client.chat.completions.stream(model="m", messages=[]).until_done()
        assert time.monotonic() - began < 0.5 + STOPPED_WITHIN
        client.close()


def test_a_steady_stream_longer_than_the_idle_timeout_completes() -> None:
    words = [sse(delta(w)) for w in ("a", "slow", "but", "steady", "stream", "of", "words")]
    response = ScriptedResponse(events=[*words, sse(delta("", "stop")), b"data: [DONE]\n\n"], delay=0.1)
    with ReplayServer([response]) as server:
        client = make_client(server.base_url, idle_timeout=0.5)  # whole stream: ~0.9 s
        completion = client.chat.completions.stream(model="m", messages=[]).until_done()
        assert completion.choices[0].message.content == "aslowbutsteadystreamofwords"
        client.close()


def test_per_request_idle_timeout_overrides_the_clients() -> None:
    response = ScriptedResponse(events=[FIRST, *REST], delay=0.4)
    with ReplayServer([response]) as server:
        client = make_client(server.base_url, idle_timeout=0.1)
        with pytest.raises(openai_stream.APITimeoutError):
            client.chat.completions.stream(model="m", messages=[]).until_done()
        lifted = client.chat.completions.stream(model="m", messages=[], idle_timeout=float("inf"))
        assert lifted.until_done().choices[0].message.content == "Hello"
        client.close()


def test_idle_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        openai_stream.Client(base_url="http://127.0.0.1:9/v1", idle_timeout=0)
    client = openai_stream.Client(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="idle_timeout"):
        client.chat.completions.stream(model="m", messages=[], idle_timeout=-1)
    with pytest.raises(ValueError, match="max_connections"):
        openai_stream.Client(base_url="http://127.0.0.1:9/v1", max_connections=0)
    client.close()


# the connection after the stream


class Connects:
    """Counts the TCP connections the client opens (what the server would count as accepted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import urllib3.util.connection

        self.count = 0
        self._lock = threading.Lock()
        original = urllib3.util.connection.create_connection

        def counting(*args: Any, **kwargs: Any) -> socket.socket:
            with self._lock:
                self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> Connects:
    return Connects(monkeypatch)


def test_a_stream_read_to_its_end_reuses_its_connection_and_one_closed_early_discards_it(
    connects: Connects,
) -> None:
    slow = ScriptedResponse(events=[FIRST, *REST], delay=0.2)
    fast = ScriptedResponse(events=[FIRST, *REST])
    with ReplayServer([fast, fast, fast, slow, fast]) as server:
        client = make_client(server.base_url)
        for _ in range(3):
            assert client.chat.completions.stream(model="m", messages=[]).until_done()
        assert connects.count == 1, "finished streams share one connection"
        stream = client.chat.completions.stream(model="m", messages=[])
        seen = first_delta(stream)
        stream.start()
        assert seen.wait(5)
        stream.close()
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done(timeout=5)
        assert client.chat.completions.stream(model="m", messages=[]).until_done()
        assert connects.count == 2, "the closed stream's connection was dropped"
        client.close()


def test_a_failed_stream_does_not_return_its_connection_to_the_pool(connects: Connects) -> None:
    bad = ScriptedResponse(events=[FIRST, b"data: {not json\n\n"])
    good = ScriptedResponse(events=[FIRST, *REST])
    with ReplayServer([bad, good]) as server:
        client = make_client(server.base_url)
        with pytest.raises(openai_stream.InvalidStreamDataError):
            client.chat.completions.stream(model="m", messages=[]).until_done()
        assert client.chat.completions.stream(model="m", messages=[]).until_done()
        assert connects.count == 2
        client.close()
