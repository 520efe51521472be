"""Tests of the loopback servers: openai_stream.testing.ReplayServer and tests/fault_server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from conftest import SSE_FIXTURES
from fault_server import (
    FaultServer,
    chunk,
    close,
    dripping,
    head,
    raw,
    refuse_port,
    reset,
    script,
    stall,
)
from hypothesis import given
from hypothesis import strategies as st

from openai_stream.testing import (
    RecordedRequest,
    ReplayServer,
    ScriptedResponse,
    split_sse_events,
)

SSE_FILES = sorted(SSE_FIXTURES.glob("*.sse"))
EVENTS = [b'data: {"a": 1}\n\n', b'data: {"b": 2}\n\n', b"data: [DONE]\n\n"]
TIMEOUT = (2.0, 5.0)


def post(url: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", TIMEOUT)
    return requests.post(url + "/chat/completions", **kwargs)


def raw_exchange(port: int, request: bytes) -> tuple[bytes, bytes]:
    """Send ``request`` on a fresh socket, read until EOF, return (head, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while True:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    return head_bytes, body


def recv_until(sock: socket.socket, received: bytes, marker: bytes) -> bytes:
    """Receive until ``marker`` is in ``received``; fail on EOF (socket timeout bounds it)."""
    while marker not in received:
        part = sock.recv(65536)
        assert part, f"connection closed before {marker!r}"
        received += part
    return received


def decode_chunks(body: bytes) -> list[bytes]:
    """Chunk payloads of a complete chunked body, checking the framing."""
    chunks: list[bytes] = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert body == b"\r\n"
            return chunks
        chunks.append(body[:size])
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


POST_CLOSE = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
)


# --- ScriptedResponse and SSE splitting -------------------------------------


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_sse_file_pieces_join_to_file_bytes(path: Path) -> None:
    data = path.read_bytes()
    pieces = ScriptedResponse.sse_file(path).pieces()
    assert b"".join(pieces) == data
    assert all(pieces)
    for piece in pieces[:-1]:
        assert piece.endswith(b"\n\n")
        assert piece.count(b"\n\n") == 1


def test_sse_fixture_files_exist() -> None:
    assert len(SSE_FILES) >= 4


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"data: a\r\n\r\ndata: b\r\n\r\n", [b"data: a\r\n\r\n", b"data: b\r\n\r\n"]),
        (b"data: a\r\rdata: b\r\r", [b"data: a\r\r", b"data: b\r\r"]),
        (b"data: a\n\n\n\ndata: b", [b"data: a\n\n\n\n", b"data: b"]),
        (b"\n\n: c\ndata: a\n\n", [b"\n\n: c\ndata: a\n\n"]),
        (b"data: a\r\n\ndata: b\n", [b"data: a\r\n\n", b"data: b\n"]),
        (b"", []),
    ],
)
def test_split_sse_events_line_endings(data: bytes, expected: list[bytes]) -> None:
    assert split_sse_events(data) == expected


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"data: x", b":", b"y"])).map(b"".join))
def test_split_sse_events_keeps_bytes(data: bytes) -> None:
    assert b"".join(split_sse_events(data)) == data


def test_from_chunks_and_json() -> None:
    resp = ScriptedResponse.from_chunks([{"a": 1}, {"b": [2]}])
    assert [json.loads(p[6:]) for p in resp.pieces()[:-1]] == [{"a": 1}, {"b": [2]}]
    assert resp.pieces()[-1] == b"data: [DONE]\n\n"
    assert ScriptedResponse.from_chunks([{}], done=False).pieces() == [b"data: {}\n\n"]
    err = ScriptedResponse.json({"error": {"message": "no"}}, status=429, headers={"Retry-After": "1"})
    assert (err.status, err.headers, err.content_type()) == (
        429,
        {"Retry-After": "1"},
        "application/json",
    )
    with pytest.raises(ValueError):
        ScriptedResponse(events=[b"x"], body=b"y")


# --- ReplayServer ------------------------------------------------------------


def test_health_and_base_url() -> None:
    with ReplayServer() as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        resp = requests.get(f"http://127.0.0.1:{server.port}/", timeout=TIMEOUT)
        assert (resp.status_code, resp.text) == (200, "ok")
        assert server.requests == []


def test_chunked_delivery_one_chunk_per_event() -> None:
    with ReplayServer([ScriptedResponse(events=EVENTS)]) as server:
        head_bytes, body = raw_exchange(server.port, POST_CLOSE)
        assert head_bytes.startswith(b"HTTP/1.1 200")
        assert b"Transfer-Encoding: chunked" in head_bytes
        assert b"Content-Type: text/event-stream" in head_bytes
        assert decode_chunks(body) == EVENTS

        resp = post(server.base_url, json={}, stream=True)
        assert list(resp.raw.read_chunked()) == EVENTS


def test_close_delimited_delivery() -> None:
    with ReplayServer([ScriptedResponse(events=EVENTS, chunked=False)]) as server:
        head_bytes, body = raw_exchange(server.port, POST_CLOSE)
        assert b"Content-Length" not in head_bytes
        assert b"Transfer-Encoding" not in head_bytes
        assert body == b"".join(EVENTS)
        assert post(server.base_url, json={}).content == b"".join(EVENTS)


def test_events_arrive_before_later_delays() -> None:
    resp_script = ScriptedResponse(events=EVENTS, delay=0.05)
    with ReplayServer([resp_script]) as server:
        resp = post(server.base_url, json={}, stream=True)
        assert list(resp.raw.read_chunked()) == EVENTS


def test_status_headers_and_json_body() -> None:
    scripted = ScriptedResponse.json(
        {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "2"}
    )
    with ReplayServer([scripted]) as server:
        resp = post(server.base_url, json={})
        assert resp.status_code == 429
        assert resp.headers["retry-after"] == "2"
        assert resp.headers["content-type"] == "application/json"
        assert resp.json() == {"error": {"message": "slow down"}}


def test_content_type_override_is_case_insensitive() -> None:
    with ReplayServer([ScriptedResponse(body=b"hi", headers={"content-type": "text/plain"})]) as server:
        head_bytes, _ = raw_exchange(server.port, POST_CLOSE)
    assert head_bytes.lower().count(b"content-type") == 1
    assert b"content-type: text/plain" in head_bytes


def test_records_requests() -> None:
    with ReplayServer([ScriptedResponse(events=EVENTS)]) as server:
        post(
            server.base_url,
            json={"model": "m", "stream": True},
            headers={"Authorization": "Bearer sk-test"},
        )
        requests.post(server.base_url + "/other?x=1", data=b"not json", timeout=TIMEOUT)
    first, second = server.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.headers["Authorization"] == "Bearer sk-test"
    assert "CONTENT-TYPE" in first.headers
    assert first.json == {"model": "m", "stream": True}
    assert json.loads(first.body) == first.json
    assert (second.path, second.body, second.json) == (
        "/v1/other?x=1",
        b"not json",
        None,
    )


def test_chunked_request_body_is_read() -> None:
    with ReplayServer([ScriptedResponse(events=EVENTS)]) as server:
        resp = post(server.base_url, data=iter([b'{"a":', b" 1}"]))
        assert resp.status_code == 200
    assert server.requests[0].json == {"a": 1}


def test_queue_order_then_repeat_last() -> None:
    first = ScriptedResponse(body=b"one")
    with ReplayServer([first]) as server:
        server.add(ScriptedResponse(body=b"two", status=201))
        got = [(r.status_code, r.content) for r in (post(server.base_url) for _ in range(4))]
    assert got == [(200, b"one"), (201, b"two"), (201, b"two"), (201, b"two")]
    assert len(server.requests) == 4


def test_exhausted_queue_answers_500() -> None:
    with ReplayServer([ScriptedResponse(body=b"one")], repeat_last=False) as server:
        assert post(server.base_url).content == b"one"
        resp = post(server.base_url)
        assert resp.status_code == 500
        assert "no scripted response" in resp.json()["error"]["message"]


def test_empty_queue_answers_500_even_with_repeat_last() -> None:
    with ReplayServer() as server:
        assert post(server.base_url).status_code == 500


def test_keep_alive_reuses_connection() -> None:
    with (
        ReplayServer([ScriptedResponse(events=EVENTS)]) as server,
        requests.Session() as session,
    ):
        for _ in range(3):
            assert session.post(server.base_url + "/chat/completions", timeout=TIMEOUT).content == b"".join(
                EVENTS
            )
    assert len(server.requests) == 3


def test_sse_file_served_byte_exact() -> None:
    path = next(p for p in SSE_FILES if p.name == "llamacpp-content-usage.sse")
    for chunked in (True, False):
        with ReplayServer([ScriptedResponse.sse_file(path, chunked=chunked)]) as server:
            assert post(server.base_url, json={}).content == path.read_bytes()


def test_close_is_bounded_while_response_delayed() -> None:
    server = ReplayServer([ScriptedResponse(events=EVENTS, delay=30)]).start()
    outcome: list[Any] = []

    def client() -> None:
        try:
            outcome.append(post(server.base_url, json={}, timeout=(2, 10)).content)
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.requests, "request never arrived"
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert outcome and outcome[0] != b"".join(EVENTS)


def test_close_is_idempotent_and_port_released() -> None:
    server = ReplayServer().start()
    port = server.port
    server.close()
    server.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=TIMEOUT)


def test_replay_server_fixture(replay_server: ReplayServer) -> None:
    replay_server.add(ScriptedResponse.from_chunks([{"x": 1}]))
    assert post(replay_server.base_url, json={}).content.startswith(b'data: {"x": 1}\n\n')


# --- FaultServer -------------------------------------------------------------


def test_fault_chunked_and_request_parsing() -> None:
    handler = script(head(headers={"X-Test": "1"}), chunk(EVENTS[0]), chunk(EVENTS[1]), chunk(b""))
    with FaultServer(handler) as server:
        resp = post(server.base_url, json={"big": "x" * 100_000}, stream=True)
        assert resp.headers["x-test"] == "1"
        assert list(resp.raw.read_chunked()) == EVENTS[:2]
    assert server.connections == 1
    assert server.requests[0].endswith(b'x"}')
    assert json.loads(server.requests[0].partition(b"\r\n\r\n")[2]) == {"big": "x" * 100_000}
    assert server.errors == []


def test_fault_head_status_and_reason() -> None:
    handler = script(head(429, {"Retry-After": "0"}, chunked=False), raw(b'{"error": {}}'), close())
    with FaultServer([handler, script(head(599), chunk(b""))]) as server:
        resp = post(server.base_url, json={})
        assert (resp.status_code, resp.reason, resp.headers["retry-after"]) == (429, "Too Many Requests", "0")
        assert resp.json() == {"error": {}}
        assert post(server.base_url, json={}).reason == "Unknown"


def test_fault_close_delimited() -> None:
    handler = script(head(chunked=False), raw(b"".join(EVENTS)), close())
    with FaultServer(handler) as server:
        head_bytes, body = raw_exchange(server.port, POST_CLOSE)
    assert b"Transfer-Encoding" not in head_bytes
    assert b"Content-Length" not in head_bytes
    assert body == b"".join(EVENTS)


def test_fault_reset_before_response() -> None:
    with FaultServer(reset()) as server:
        with pytest.raises(requests.ConnectionError):
            post(server.base_url, json={})
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(POST_CLOSE)
            with pytest.raises(ConnectionResetError):
                while sock.recv(65536):
                    pass
    assert server.connections == 2


def test_fault_reset_mid_stream() -> None:
    with FaultServer(script(head(), chunk(EVENTS[0]), reset())) as server:
        resp = post(server.base_url, json={}, stream=True)
        chunks = resp.iter_content(chunk_size=None)
        with pytest.raises(requests.RequestException):
            assert next(chunks) == EVENTS[0]
            next(chunks)


def test_fault_stall_triggers_read_timeout_and_close_is_bounded() -> None:
    with FaultServer(stall(30)) as server:
        with pytest.raises(requests.ReadTimeout):
            post(server.base_url, json={}, timeout=(2, 0.3))
        started = time.monotonic()
    assert time.monotonic() - started < 3


def test_fault_stall_mid_stream_read_timeout() -> None:
    with FaultServer(script(head(), chunk(EVENTS[0]), stall(30))) as server:
        resp = post(server.base_url, json={}, stream=True, timeout=(2, 0.3))
        chunks = resp.raw.read_chunked()
        assert next(chunks) == EVENTS[0]
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            next(chunks)


def test_refused_port() -> None:
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{refuse_port()}/v1/chat/completions", timeout=TIMEOUT)


def test_per_connection_scripts() -> None:
    ok = script(head(), chunk(EVENTS[0]), chunk(b""))
    with FaultServer([reset(), ok]) as server:
        with pytest.raises(requests.ConnectionError):
            post(server.base_url, json={})
        for _ in range(2):
            assert post(server.base_url, json={}).content == EVENTS[0]
    assert server.connections == 3


def test_dripping_holds_next_piece_until_released() -> None:
    hold = threading.Event()
    with FaultServer(script(head(), dripping(EVENTS, hold=hold), chunk(b""))) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            sock.sendall(POST_CLOSE)
            received = b""
            for event in EVENTS:
                received = recv_until(sock, received, b"%x\r\n%s\r\n" % (len(event), event))
                if event is not EVENTS[-1]:  # nothing more arrives until the hold is released
                    sock.settimeout(0.2)
                    with pytest.raises(socket.timeout):
                        sock.recv(65536)
                    sock.settimeout(5)
                hold.set()
            recv_until(sock, received, b"\r\n0\r\n\r\n")
        finally:
            sock.close()
    assert server.errors == []


def test_dripping_hold_timeout_drops_connection() -> None:
    handler = script(head(), dripping(EVENTS, hold=threading.Event(), hold_timeout=0.2), chunk(b""))
    with FaultServer(handler) as server:
        resp = post(server.base_url, json={}, stream=True)
        with pytest.raises(requests.RequestException):
            list(resp.iter_content(chunk_size=None))
    assert len(server.errors) == 1 and isinstance(server.errors[0], TimeoutError)


def test_dripping_close_delimited_with_delay() -> None:
    handler = script(head(chunked=False), dripping(EVENTS, delay=0.02, chunked=False), close())
    with FaultServer(handler) as server:
        assert post(server.base_url, json={}).content == b"".join(EVENTS)


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    with FaultServer(stall(30)) as server:
        yield server


def test_fault_close_bounded_with_open_client(fault_server: FaultServer) -> None:
    sock = socket.create_connection(("127.0.0.1", fault_server.port), timeout=5)
    try:
        sock.sendall(POST_CLOSE)
        deadline = time.monotonic() + 5
        while not fault_server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        fault_server.close()
        assert time.monotonic() - started < 3
        assert sock.recv(65536) == b""
    finally:
        sock.close()
