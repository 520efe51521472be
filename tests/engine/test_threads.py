"""Streams and threads on real loopback servers: listeners changed from other threads,
one client shared by many threads, and nothing left behind (threads, sockets).

Sockets are counted from /proc/self/fd and /proc/net/tcp (Linux), threads with
threading.active_count(); every wait is bounded.
"""

from __future__ import annotations

import os
import threading
import time
from functools import partial
from typing import Any, Callable

import pytest
from conftest import EXAMPLES, SSE_FIXTURES, delta
from fault_server import FaultServer, chunk, head, sse

import openai_stream
from openai_stream.testing import ReplayServer, ScriptedResponse, demo_server
from openai_stream.transport._deadline import THREAD_NAME as WATCHDOG

FIXTURES = SSE_FIXTURES
LINUX_PROC = os.path.isdir("/proc/self/fd") and os.path.exists("/proc/net/tcp")


def long_stream(deltas: int, *, choices: int = 1, delay: float = 0.0) -> ScriptedResponse:
    chunks = [delta("x", index=i % choices) for i in range(deltas)]
    chunks += [delta("", "stop", index=i) for i in range(choices)]
    return ScriptedResponse.from_chunks(chunks, delay=delay)


def make_client(base_url: str, **kwargs: Any) -> openai_stream.Client:
    kwargs.setdefault("timeout", 20)
    kwargs.setdefault("max_retries", 0)
    return openai_stream.Client(api_key="sk-test", base_url=base_url, **kwargs)


def wait_for(condition: Callable[[], bool], limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def sockets_to(port: int) -> int:
    """Open sockets of this process connected to ``port`` on loopback (the client ends)."""
    mine = socket_inodes()
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in mine:
                count += 1
    return count


def requested(server: ReplayServer, count: int) -> bool:
    return len(server.requests) >= count


def stream_threads() -> list[threading.Thread]:
    # The transport's process-wide watchdog (deadlines on response headers) is not a stream's.
    return [t for t in threading.enumerate() if t.name.startswith("openai_stream") and t.name != WATCHDOG]


# listeners from other threads


def test_listeners_added_and_removed_from_other_threads_while_a_long_stream_runs() -> None:
    deltas = 2000
    with ReplayServer([long_stream(deltas, delay=0.0003)]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[])
        snapshots: list[int] = []
        chunks = [0]
        stream.on("content.delta", lambda event: snapshots.append(len(event.snapshot)))
        stream.on("chunk", lambda event: chunks.__setitem__(0, chunks[0] + 1))
        stop = threading.Event()
        failures: list[BaseException] = []
        once_calls = [0]
        rounds = [0]

        def hammer(n: int) -> None:
            def on_delta(event: Any) -> None:
                pass

            def on_chunk(event: Any) -> None:
                pass

            def once_delta(event: Any) -> None:
                once_calls[0] += 1

            def on_usage(event: Any) -> None:
                pass

            try:
                while not stop.is_set():
                    stream.on("content.delta", on_delta)
                    stream.once("content.delta", once_delta)
                    stream.on("chunk", on_chunk)
                    stream.on("usage", on_usage)
                    stream.listeners("content.delta")
                    stream.remove_listener("content.delta", on_delta)
                    stream.remove_listener("chunk", on_chunk)
                    try:
                        stream.remove_listener("content.delta", once_delta)
                    except KeyError:  # it already fired and removed itself
                        pass
                    if n == 0:
                        stream.remove_all_listeners("usage")
                    rounds[0] += 1
                    time.sleep(0.0001)  # let the stream thread have the GIL too
            except BaseException as exc:
                failures.append(exc)

        hammers = [threading.Thread(target=hammer, args=(n,), daemon=True) for n in range(4)]
        for thread in hammers:
            thread.start()
        try:
            completion = stream.start().until_done(timeout=60)
        finally:
            stop.set()
            for thread in hammers:
                thread.join(5)
        assert not failures, failures
        assert not any(t.is_alive() for t in hammers)
        assert rounds[0] > 100, "the hammering overlapped the stream"
        assert snapshots == list(range(1, deltas + 1)), "every delta exactly once, in order"
        assert chunks[0] == deltas + 1
        assert completion.choices[0].message.content == "x" * deltas
        assert once_calls[0] <= rounds[0] + 4
        client.close()


def test_remove_all_listeners_mid_stream_keeps_the_running_loop_informed() -> None:
    with ReplayServer([long_stream(50)]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[])
        late: list[str] = []

        @stream.once("content.delta")
        def swap(event: Any) -> None:
            stream.remove_all_listeners()
            stream.on("content.delta", lambda event: late.append(event.delta))

        stream.until_done()
        assert late == ["x"] * 49, "a listener added after remove_all_listeners() gets the rest"
        client.close()


def test_current_completion_can_be_read_from_another_thread_while_streaming() -> None:
    with ReplayServer([long_stream(1500, choices=3, delay=0.0003)]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[]).start()
        reads = [0]
        failures: list[BaseException] = []
        while not stream._finished.is_set():
            try:
                current = stream.current_completion
                assert len(current.choices) <= 3
                reads[0] += 1
                time.sleep(0.001)
            except BaseException as exc:
                failures.append(exc)
                break
        completion = stream.until_done(timeout=30)
        assert not failures, failures
        assert reads[0] > 10
        assert [c.message.content for c in completion.choices] == ["x" * 500] * 3
        client.close()


# many streams through one client


def reference(server: ReplayServer) -> openai_stream.ChatCompletion:
    client = make_client(server.base_url)
    try:
        return client.chat.completions.stream(model="m", messages=[]).until_done()
    finally:
        client.close()


def stream_in_threads(
    client: openai_stream.Client, count: int, start: threading.Barrier | None = None
) -> list[Any]:
    results: list[Any] = [None] * count

    def work(i: int) -> None:
        try:
            if start is not None:
                start.wait(10)
            results[i] = client.chat.completions.stream(model="m", messages=[]).until_done()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    return results


@pytest.mark.skipif(not LINUX_PROC, reason="counts sockets through /proc")
def test_fifty_threads_share_one_client_and_reuse_its_connections() -> None:
    transcript = ScriptedResponse.sse_file(FIXTURES / "llamacpp-content-usage.sse")
    with ReplayServer([transcript]) as server:
        expected = reference(server).to_dict()
        client = make_client(server.base_url)
        for _ in range(2):
            results = stream_in_threads(client, 50, threading.Barrier(50))
            failures = [r for r in results if not isinstance(r, openai_stream.ChatCompletion)]
            assert not failures, failures[:3]
            assert all(r.to_dict() == expected for r in results)
            assert 1 <= sockets_to(server.port) <= 50, "finished streams leave their connection pooled"
        assert len(server.requests) == 101
        client.close()
        assert sockets_to(server.port) == 0, "client.close() releases every pooled connection"


@pytest.mark.parametrize("max_connections", [64, 8])
def test_threads_do_not_queue_for_a_connection(max_connections: int) -> None:
    """The server answers only once all 30 requests are open at the same time."""
    workers = 30
    everyone = threading.Barrier(workers)

    def together(conn: Any, request: bytes) -> None:
        everyone.wait(20)
        head()(conn, request)
        for piece in (sse(delta("ok")), sse(delta("", "stop")), b"data: [DONE]\n\n", b""):
            chunk(piece)(conn, request)

    with FaultServer(together) as server:
        client = make_client(server.base_url, max_connections=max_connections)
        results = stream_in_threads(client, workers)
        client.close()
    failures = [r for r in results if not isinstance(r, openai_stream.ChatCompletion)]
    assert not failures, failures[:3]
    assert server.connections == workers
    assert not server.errors, server.errors[:3]


@pytest.mark.skipif(not LINUX_PROC, reason="counts sockets through /proc")
def test_rounds_of_finished_failed_and_closed_streams_leave_nothing_behind() -> None:
    error_event = {"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}
    finished = long_stream(20)
    failed_mid_body = ScriptedResponse(events=[sse(delta("a")), sse(error_event)])
    failed_status = ScriptedResponse.json({"error": {"message": "nope", "type": "server_error"}}, status=500)
    slow = long_stream(100, delay=0.1)  # 10 s unless closed
    kinds = ["finished", "failed", "status", "closed"] * 3
    responses = {"finished": finished, "failed": failed_mid_body, "status": failed_status, "closed": slow}
    reusable = kinds.count("finished") + kinds.count("status")  # the bodies read to their end
    base_threads = threading.active_count()
    base_sockets = len(socket_inodes())
    with ReplayServer(repeat_last=False) as server:
        client = make_client(server.base_url)
        server_threads = threading.active_count() - base_threads
        for _ in range(5):
            streams = []
            for kind in kinds:  # one request at a time, so each gets the response queued for it
                server.add(responses[kind])
                stream = client.chat.completions.stream(model="m", messages=[])
                seen = threading.Event()
                stream.on("content.delta", lambda event, seen=seen: seen.set())
                sent = len(server.requests) + 1
                stream.start()
                assert wait_for(partial(requested, server, sent)), "request not sent"
                streams.append((kind, stream, seen))
            for kind, stream, seen in streams:
                if kind == "closed":
                    assert seen.wait(5)
                    stream.close()
            for kind, stream, _ in streams:
                if kind == "finished":
                    assert stream.until_done(timeout=10).choices[0].message.content == "x" * 20
                elif kind == "failed":
                    with pytest.raises(openai_stream.RateLimitError):
                        stream.until_done(timeout=10)
                elif kind == "status":
                    with pytest.raises(openai_stream.InternalServerError):
                        stream.until_done(timeout=10)
                else:
                    with pytest.raises(openai_stream.APIUserAbortError):
                        stream.until_done(timeout=10)
            assert wait_for(lambda: not stream_threads()), "every stream thread ended"
            assert sockets_to(server.port) <= reusable, "only connections read to their end are pooled"
            # All that is left: the pooled connections, each with a server thread and two socket ends.
            assert wait_for(
                lambda: threading.active_count() <= base_threads + server_threads + sockets_to(server.port)
            ), threading.enumerate()
            assert wait_for(lambda: len(socket_inodes()) <= base_sockets + 1 + 2 * sockets_to(server.port)), (
                len(socket_inodes()),
                sockets_to(server.port),
            )
        client.close()
        assert sockets_to(server.port) == 0, "client.close() released the pooled connections"
    assert wait_for(lambda: threading.active_count() <= base_threads), threading.enumerate()
    assert wait_for(lambda: len(socket_inodes()) <= base_sockets), (len(socket_inodes()), base_sockets)


@pytest.mark.skipif(not LINUX_PROC, reason="counts sockets through /proc")
def test_with_client_block_releases_every_pooled_connection() -> None:
    with ReplayServer([long_stream(5)]) as server:
        with make_client(server.base_url) as client:
            results = stream_in_threads(client, 10, threading.Barrier(10))
            assert all(isinstance(r, openai_stream.ChatCompletion) for r in results), results[:3]
            assert sockets_to(server.port) >= 1
        assert sockets_to(server.port) == 0


@pytest.mark.skipif(not LINUX_PROC, reason="counts sockets through /proc")
def test_client_close_stops_a_running_stream_and_releases_its_connection() -> None:
    with ReplayServer([long_stream(10, delay=0.05)]) as server:
        client = make_client(server.base_url)
        stream = client.chat.completions.stream(model="m", messages=[])
        seen = threading.Event()
        stream.on("content.delta", lambda event: seen.set())
        stream.start()
        assert seen.wait(5)
        client.close()
        with pytest.raises(openai_stream.APIUserAbortError) as info:
            stream.until_done(timeout=10)
        assert (info.value.completion.choices[0].message.content or "").startswith("x")
        assert wait_for(lambda: sockets_to(server.port) == 0), "the connection of a closed client stays open"


def test_threaded_app_example_cancels_one_stream_and_finishes_the_others() -> None:
    import importlib.util

    path = EXAMPLES / "threaded_app.py"
    spec = importlib.util.spec_from_file_location("example_threaded_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with demo_server("llamacpp-content-usage", delay=0.05) as server:
        outcomes = module.main(server.base_url)
    assert [o.split(":")[0].split(" ")[0] for o in outcomes] == ["done", "cancelled", "done", "done"]
    assert not stream_threads()
