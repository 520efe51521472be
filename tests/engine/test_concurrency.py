"""Concurrent callers of one stream, on real loopback servers (issue 10, section 2).

A second thread waiting while another iterates, a handler that waits for its
own stream, listeners changed from another thread with Python-level hashing,
Ctrl-C while waiting, and ``client.close()`` stopping the streams it runs.
Every wait is bounded, so a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import pytest
from conftest import delta

import openai_stream
from openai_stream.testing import ReplayServer, ScriptedResponse


def paced(count: int, delay: float) -> ScriptedResponse:
    """``count`` deltas "0".."count-1" (as text), one every ``delay`` seconds, then stop."""
    chunks = [delta(f"{i} ") for i in range(count)] + [delta("", "stop")]
    return ScriptedResponse.from_chunks(chunks, delay=delay)


def make_client(server: ReplayServer, **kwargs: Any) -> openai_stream.Client:
    kwargs.setdefault("timeout", 20)
    kwargs.setdefault("max_retries", 0)
    return openai_stream.Client(api_key="sk-test", base_url=server.base_url, **kwargs)


def stream_of(client: openai_stream.Client) -> openai_stream.ChatCompletionStream:
    return client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}])


def in_thread(target: Callable[[], Any], limit: float = 20.0) -> Dict[str, Any]:
    """Run ``target`` on a daemon thread; its result or exception, or 'hung' after ``limit`` s."""
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as exc:  # reported to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        outcome["hung"] = True
    return outcome


# --------------------------------------------------------------------------- a second consumer


def test_until_done_from_a_second_thread_waits_for_the_iterating_thread() -> None:
    with ReplayServer([paced(20, 0.01)]) as server, make_client(server) as client:
        stream = stream_of(client)
        first = threading.Event()
        resume = threading.Event()
        seen: List[str] = []

        def iterate() -> Any:
            for event in stream:
                if isinstance(event, openai_stream.ContentDeltaEvent):
                    seen.append(event.delta)
                    if not first.is_set():
                        first.set()
                        resume.wait(10)  # paused between two events while the other thread asks
            return stream.current_completion

        iterating = threading.Thread(target=lambda: outcome.update(in_thread(iterate, 30)), daemon=True)
        outcome: Dict[str, Any] = {}
        iterating.start()
        assert first.wait(10)
        threading.Timer(0.3, resume.set).start()  # the iterating thread resumes while the other waits
        waiter = in_thread(lambda: stream.until_done(timeout=15), 20)
        iterating.join(30)
        assert "error" not in outcome, outcome.get("error")
        assert "error" not in waiter, waiter.get("error")
        completion = waiter["result"]
        assert seen == [f"{i} " for i in range(20)]  # the iterating thread saw every event itself
        assert completion is stream.until_done()
        assert completion.choices[0].message.content == "".join(seen)


def test_until_done_without_timeout_from_a_second_thread_never_drains_the_iterator() -> None:
    with ReplayServer([paced(10, 0.01)]) as server, make_client(server) as client:
        stream = stream_of(client)
        iterator = iter(stream)
        first = next(iterator)  # the response event; the iterator is paused, owned by this thread
        assert first.type == "response"
        waiter_started = threading.Event()
        result: Dict[str, Any] = {}

        def wait() -> None:
            waiter_started.set()
            result.update(in_thread(stream.until_done, 20))

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        assert waiter_started.wait(5)
        time.sleep(0.2)  # the waiter is waiting; had it drained the stream, the events below would be gone
        rest = list(iterator)
        thread.join(20)
        assert [e.type for e in rest].count("content.delta") == 10
        assert rest[-1].type == "completion"
        assert isinstance(rest[-1], openai_stream.CompletionEvent)
        assert result.get("result") is rest[-1].completion


def test_until_done_from_inside_a_handler_raises_at_once_pulled() -> None:
    with ReplayServer([paced(3, 0.0)]) as server, make_client(server) as client:
        stream = stream_of(client)
        raised: List[BaseException] = []

        @stream.on("content.delta")
        def wait_for_myself(event: Any) -> None:
            try:
                stream.until_done()
            except openai_stream.OpenAIError as exc:
                raised.append(exc)

        outcome = in_thread(stream.until_done, 10)
        assert "hung" not in outcome, "until_done() inside a handler waited for itself"
        assert len(raised) == 3 and "inside a handler" in str(raised[0])
        assert outcome["result"].choices[0].message.content == "0 1 2 "


def test_until_done_from_inside_a_handler_raises_at_once_started() -> None:
    with ReplayServer([paced(3, 0.0)]) as server, make_client(server) as client:
        stream = stream_of(client)
        raised: List[BaseException] = []

        @stream.on("content.delta")
        def wait_for_myself(event: Any) -> None:
            try:
                stream.until_done()
            except openai_stream.OpenAIError as exc:
                raised.append(exc)

        stream.start()
        completion = stream.until_done(timeout=10)
        assert len(raised) == 3 and "inside a handler" in str(raised[0])
        assert completion.choices[0].message.content == "0 1 2 "


def test_iterating_from_inside_a_handler_raises() -> None:
    with ReplayServer([paced(1, 0.0)]) as server, make_client(server) as client:
        stream = stream_of(client)
        raised: List[Optional[BaseException]] = []
        stream.on("content.delta", lambda event: raised.append(_catch(lambda: iter(stream))))
        stream.until_done()
        assert isinstance(raised[0], openai_stream.OpenAIError)


def _catch(action: Callable[[], Any]) -> Optional[BaseException]:
    try:
        action()
    except BaseException as exc:
        return exc
    return None


# --------------------------------------------------------------------------- listeners


class SlowHash:
    """A handler whose hashing runs Python code, so adding it can be interrupted half-way."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        time.sleep(0)  # give the other thread the interpreter in the middle of a dict insert
        return hash(("slow", self.n))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SlowHash) and other.n == self.n

    def __call__(self, event: Any) -> None:
        pass


def test_listeners_added_and_removed_from_another_thread_never_break_dispatch() -> None:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(3):
            with ReplayServer([paced(3000, 0.0)]) as server, make_client(server) as client:
                stream = stream_of(client)
                for n in range(8):
                    stream.on("content.delta", SlowHash(n))
                stop = threading.Event()

                def churn(stream: openai_stream.ChatCompletionStream, stop: threading.Event) -> None:
                    n = 100
                    while not stop.is_set():
                        handler = SlowHash(n)
                        stream.on("content.delta", handler)
                        stream.remove_listener("content.delta", handler)
                        n += 1

                thread = threading.Thread(target=churn, args=(stream, stop), daemon=True)
                thread.start()
                try:
                    completion = stream.until_done()
                finally:
                    stop.set()
                    thread.join(10)
                assert (completion.choices[0].message.content or "").count(" ") == 3000
    finally:
        sys.setswitchinterval(old)


def test_the_listener_snapshot_is_replaced_whole_and_listeners_reads_under_the_lock() -> None:
    with ReplayServer([paced(1, 0.0)]) as server, make_client(server) as client:
        stream = stream_of(client)
        before = stream._handlers

        def handler(event: Any) -> None:
            pass

        stream.on("done", handler)
        assert stream._handlers is not before and before == {}
        assert stream._handlers["done"] == (handler,) and stream.listeners("done") == [handler]
        stream.remove_all_listeners()
        assert stream._handlers == {} and stream.listeners("done") == []


# --------------------------------------------------------------------------- Ctrl-C


def _interrupt_main_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()
    return timer


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_ctrl_c_while_waiting_in_until_done_with_a_timeout_closes_the_stream() -> None:
    with ReplayServer([paced(200, 0.01)]) as server, make_client(server) as client:
        stream = stream_of(client)
        count = [0]
        stream.on("content.delta", lambda event: count.__setitem__(0, count[0] + 1))
        _interrupt_main_after(0.3)
        with pytest.raises(KeyboardInterrupt):
            stream.until_done(timeout=15)
        at_interrupt = count[0]
        time.sleep(0.3)
        assert count[0] - at_interrupt <= 1  # at most the event being dispatched when Ctrl-C came
        assert stream.state == "closed"
        with pytest.raises(openai_stream.APIUserAbortError) as info:
            stream.until_done(timeout=5)
        assert info.value.completion is not None
        assert info.value.completion.choices[0].message.content.count(" ") == count[0]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_ctrl_c_while_the_stream_runs_in_the_calling_thread_leaves_it_closed() -> None:
    with ReplayServer([paced(200, 0.01)]) as server, make_client(server) as client:
        stream = stream_of(client)
        count = [0]
        stream.on("content.delta", lambda event: count.__setitem__(0, count[0] + 1))
        _interrupt_main_after(0.3)
        with pytest.raises(KeyboardInterrupt):
            stream.until_done()
        assert stream.state == "closed"
        for _ in range(2):  # every later call: the abort, with what arrived, never the interrupt again
            with pytest.raises(openai_stream.APIUserAbortError) as info:
                stream.until_done()
            assert info.value.completion.choices[0].message.content.count(" ") == count[0]


# --------------------------------------------------------------------------- client.close()


def test_client_close_aborts_its_live_streams_and_refuses_later_requests() -> None:
    with ReplayServer([paced(300, 0.01), paced(300, 0.01)]) as server:
        client = make_client(server)
        streams = [stream_of(client), stream_of(client)]
        counts = [0, 0]
        started = threading.Barrier(3, timeout=10)
        for i, stream in enumerate(streams):

            def count(event: Any, i: int = i) -> None:
                if counts[i] == 0:
                    started.wait()
                counts[i] += 1

            stream.on("content.delta", count)
            stream.start()
        started.wait()
        client.close()
        at_close = list(counts)
        for stream in streams:
            with pytest.raises(openai_stream.APIUserAbortError) as info:
                stream.until_done(timeout=5)
            assert info.value.completion is not None
        time.sleep(0.2)
        assert all(c - a <= 1 for c, a in zip(counts, at_close))
        with pytest.raises(openai_stream.OpenAIError, match="closed"):
            stream_of(client).until_done(timeout=5)
        with pytest.raises(openai_stream.OpenAIError, match="closed"):
            client.chat.completions.create(model="m", messages=[])
