"""Pooled connections: a request that meets a connection the server already closed is sent again.

Servers and proxies close idle keep-alive connections whenever they like (the
local llama.cpp server closes each one right after a streamed body). A request
written on such a connection fails before any byte of the answer; it is sent
again at once on a new connection, once, without backoff and without counting
against ``max_retries``. Everything runs against raw loopback sockets
(``fault_server``); waits are recorded, never slept.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import time
from typing import Any

import pytest
from fault_server import FaultServer, close, head, raw, read_request, script

import openai_stream
from openai_stream.transport import _http as transport
from openai_stream.transport._cancel import Attempt

CHUNK = {"id": "c1", "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
SSE_OK = b"data: " + json.dumps(CHUNK).encode() + b"\n\ndata: [DONE]\n\n"
COMPLETION = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    }
).encode()
KEEP_ALIVE = {"Connection": "keep-alive", "Keep-Alive": "timeout=5, max=100"}
RESENT = "sending again at once on a new connection"



@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="openai_stream")
    return caplog


def resends(caplog: pytest.LogCaptureFixture) -> int:
    return sum(RESENT in r.getMessage() for r in caplog.records if r.name == "openai_stream")


def answer(request: bytes) -> bytes:
    """A whole keep-alive answer: an SSE stream (chunked) or a JSON completion (Content-Length)."""
    body = json.loads(request.partition(b"\r\n\r\n")[2] or b"{}")
    if body.get("stream"):
        fields = {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked", **KEEP_ALIVE}
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SSE_OK), SSE_OK)
    else:
        fields = {"Content-Type": "application/json", "Content-Length": str(len(COMPLETION)), **KEEP_ALIVE}
        payload = COMPLETION
    head_text = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return head_text.encode("latin-1") + payload


def closes_soon_after_answering(seed: int) -> Any:
    """Advertise keep-alive, answer, then close the connection 0-10 ms later without reading more.

    A request the client wrote in the meantime is never answered: the close
    with unread bytes resets the connection, or the client sees it closed.
    """
    rng = random.Random(seed)

    def run(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer(request))
        time.sleep(rng.uniform(0.0, 0.010))

    return run


def client_for(server: FaultServer, **kwargs: Any) -> openai_stream.Client:
    kwargs.setdefault("timeout", 10)
    return openai_stream.Client(api_key="sk-test", base_url=server.base_url, **kwargs)


def stream_once(client: openai_stream.Client, **kwargs: Any) -> openai_stream.ChatCompletion:
    return client.chat.completions.stream(model="m", messages=[], **kwargs).until_done()


def test_200_streams_against_a_server_that_closes_after_each_answer(
    waits: list[float], debug_log: pytest.LogCaptureFixture
) -> None:
    with (
        FaultServer(closes_soon_after_answering(seed=15)) as server,
        client_for(server, max_retries=0) as client,
    ):
        for _ in range(200):
            assert stream_once(client).choices[0].message.content == "ok"
    assert waits == []  # no backoff, and nothing counted against max_retries=0
    # The server answers one request per connection: every answer needed its own connection.
    assert server.connections == 200 and len(server.requests) == 200
    # The first stale connection after a stream teaches the client that this server closes after
    # streamed bodies; from then on such connections are not pooled, so at most one resend.
    assert resends(debug_log) <= 1


def test_200_mixed_requests_against_a_server_that_closes_after_each_answer(
    waits: list[float], debug_log: pytest.LogCaptureFixture
) -> None:
    with (
        FaultServer(closes_soon_after_answering(seed=10)) as server,
        client_for(server, max_retries=0) as client,
    ):
        for i in range(100):
            assert stream_once(client).choices[0].message.content == "ok", i
            answer_ = client.chat.completions.create(model="m", messages=[])
            assert answer_.choices[0].message.content == "ok", i
    assert waits == []
    assert server.connections == 200 and len(server.requests) == 200
    assert resends(debug_log) <= 101  # at most once per create() answer (pooled by urllib3), plus one


def test_a_pooled_connection_closed_before_answering_is_resent_once_on_a_new_connection(
    waits: list[float], debug_log: pytest.LogCaptureFixture
) -> None:
    def answer_then_drop_the_next(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer(request))
        if read_request(conn):  # the second request comes on the pooled connection: no answer
            conn.shutdown(socket.SHUT_WR)

    with FaultServer(
        [answer_then_drop_the_next, lambda conn, request: conn.sendall(answer(request))]
    ) as server:
        client = client_for(server, max_retries=0)
        stream_once(client)
        assert stream_once(client).choices[0].message.content == "ok"
        client.close()
    assert server.connections == 2 and waits == []
    assert resends(debug_log) == 1


def test_the_resend_happens_at_most_once(waits: list[float], debug_log: pytest.LogCaptureFixture) -> None:
    def answer_then_drop_the_next(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer(request))
        if read_request(conn):
            conn.shutdown(socket.SHUT_WR)

    drop = script(close())
    ok = lambda conn, request: conn.sendall(answer(request))  # noqa: E731
    # create() answers (Content-Length) fill the pool: a stream's would teach the client that
    # this server closes after streams, and it would stop pooling them.
    with FaultServer([answer_then_drop_the_next, drop, answer_then_drop_the_next, drop, ok]) as server:
        client = client_for(server, max_retries=0)
        client.chat.completions.create(model="m", messages=[])
        with pytest.raises(openai_stream.APIConnectionError) as info:
            stream_once(client)  # the pooled connection fails, then the new one: no third try
        assert server.connections == 2 and waits == [] and resends(debug_log) == 1
        assert "closed the connection before answering" in str(info.value)
        assert "base_url" not in str(info.value)
        # With a retry allowed, the fresh connection's failure goes through the normal rules.
        client.chat.completions.create(model="m", messages=[])  # connection 3
        stream_once(client, max_retries=1)  # pooled 3 fails, resent on 4 (fails), backoff, 5 answers
        client.close()
    assert server.connections == 5 and len(waits) == 1 and resends(debug_log) == 2


def test_a_fresh_connection_closed_before_answering_fails_typed_without_a_resend(
    waits: list[float], debug_log: pytest.LogCaptureFixture
) -> None:
    with FaultServer(script(close())) as server:
        client = client_for(server, max_retries=0)
        with pytest.raises(openai_stream.APIConnectionError) as info:
            stream_once(client)
        with pytest.raises(openai_stream.APIConnectionError):
            client.chat.completions.create(model="m", messages=[])
    assert type(info.value) is openai_stream.APIConnectionError
    message = str(info.value)
    assert "closed the connection before answering" in message
    assert f"127.0.0.1:{server.port}" in message and "base_url" not in message
    assert server.connections == 2 and waits == [] and resends(debug_log) == 0


def test_a_fresh_connection_reset_before_answering_is_retried_by_the_normal_rules(waits: list[float]) -> None:
    def reset_it(conn: socket.socket, request: bytes) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    ok = lambda conn, request: conn.sendall(answer(request))  # noqa: E731
    with FaultServer([reset_it, ok]) as server:
        assert stream_once(client_for(server, max_retries=1)).choices[0].message.content == "ok"
    assert server.connections == 2 and len(waits) == 1


def test_refused_connections_suggest_checking_base_url(waits: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = openai_stream.Client(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(openai_stream.APIConnectionError) as info:
        stream_once(client)
    assert "refused the connection" in str(info.value) and "base_url" in str(info.value)


def test_connection_close_keeps_a_connection_out_of_the_pool() -> None:
    # Regression guard: http.client already drops a connection whose answer says "close".
    def answer_close_then_wait(conn: socket.socket, request: bytes) -> None:
        data = answer(request).replace(b"Connection: keep-alive", b"Connection: close")
        conn.sendall(data)
        read_request(conn)  # a client that reused the connection would be stuck here

    with FaultServer(answer_close_then_wait, timeout=2) as server:
        client = client_for(server, max_retries=0)
        for _ in range(3):
            stream_once(client)
        client.close()
    assert server.connections == 3


def test_a_server_known_to_close_after_a_stream_gets_new_connections_without_resends(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    # The server closes each connection 50 ms after a streamed answer: the first reuse fails
    # and is resent; from then on streamed connections are closed by the client instead.
    def answer_then_close_later(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer(request))
        time.sleep(0.05)

    with FaultServer(answer_then_close_later) as server:
        client = client_for(server, max_retries=0)
        stream_once(client)
        stream_once(client)  # reuses connection 1 before its close lands... or after (then fresh)
        for _ in range(5):
            stream_once(client)
        client.close()
    assert resends(debug_log) <= 1
    assert server.connections == 7


# --- the decision itself ----------------------------------------------------------------------


def record(*, reused: bool, stage: str, error: BaseException, sent: bool) -> Attempt:
    attempt = Attempt(fresh=False)
    attempt.reused = reused
    attempt.sent = sent
    attempt.failed(stage, error)
    return attempt


@pytest.mark.parametrize(
    ("reused", "stage", "error", "sent", "replayable", "expected"),
    [
        (True, "wait", ConnectionResetError(), True, True, True),
        (True, "send", BrokenPipeError(), False, True, True),
        (False, "wait", ConnectionResetError(), True, True, False),  # a fresh connection: normal rules
        (True, "connect", ConnectionRefusedError(), False, True, False),
        (True, "wait", TimeoutError(), True, True, False),  # a silent server is not a closed connection
        # Not safe to send twice once written whole (Responses with store/background)...
        (True, "wait", ConnectionResetError(), True, False, False),
        # ... but a request whose sending failed never reached the server whole.
        (True, "send", BrokenPipeError(), False, False, True),
    ],
)
def test_which_failures_are_resent_at_once(
    reused: bool, stage: str, error: BaseException, sent: bool, replayable: bool, expected: bool
) -> None:
    attempt = record(reused=reused, stage=stage, error=error, sent=sent)
    assert transport._stale(attempt, replayable) is expected


def test_a_request_that_is_not_replayable_is_not_resent_after_it_was_written(
    waits: list[float], debug_log: pytest.LogCaptureFixture
) -> None:
    def answer_then_drop_the_next(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer(request))
        if read_request(conn):
            conn.shutdown(socket.SHUT_WR)

    with FaultServer([answer_then_drop_the_next, raw(b"")]) as server:
        client = client_for(server, max_retries=3)
        stream_once(client)
        with pytest.raises(openai_stream.APIConnectionError):
            client._transport.post("chat/completions", {"stream": True}, stream=True, replayable=False)
        client.close()
    assert server.connections == 1 and waits == [] and resends(debug_log) == 0


def test_a_pooled_connection_that_sent_part_of_a_status_line_is_not_resent(waits: list[float]) -> None:
    # A server that sends part of a status line and closes: bytes of the answer arrived, so the
    # request is not resent for free (it fails typed, through the normal rules).
    def answer_then_half(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer(request))
        if read_request(conn):
            conn.sendall(b"HTTP/1.1 2")
            conn.shutdown(socket.SHUT_WR)

    with FaultServer([answer_then_half, head()]) as server:
        client = client_for(server, max_retries=0)
        stream_once(client)
        with pytest.raises(openai_stream.APIConnectionError):
            stream_once(client)
        client.close()
    assert server.connections == 1 and waits == []
