"""Canaries: the private parts of urllib3 and http.client that the transport relies on still behave.

The fast read path, the pool guard, the socket lookup behind ``idle_timeout``
and the fresh-connection checkout reach into urllib3's private attributes
(``raw._fp``, ``raw._pool``, ``_fp.fp.raw._sock``, ``HTTPConnectionPool._get_conn``).
A rename in a new urllib3 would turn them off silently; these tests fail
loudly instead, on the installed versions (CI runs them at the newest and the
lowest declared versions).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Any

import requests
import urllib3
from fault_server import FaultServer, chunk, close, head, raw, read_request, script

import openai_stream
from openai_stream.transport import _cancel, _http

CHUNK = {"id": "c1", "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
SSE_OK = b"data: " + json.dumps(CHUNK).encode() + b"\n\ndata: [DONE]\n\n"


def post(server: FaultServer, transport: _http.Transport | None = None) -> requests.Response:
    transport = transport or _http.Transport(base_url=server.base_url, api_key="k", max_retries=0)
    return transport.post("chat/completions", {"model": "m"}, stream=True)


def sized_answer(body: bytes, *, keep_alive: bool) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {connection}\r\n\r\n"
    ).encode() + body


def test_the_fast_read_path_is_http_client_read1_for_chunked_and_close_delimited_bodies() -> None:
    for chunked in (True, False):
        body = [chunk(SSE_OK), chunk(b"")] if chunked else [raw(SSE_OK)]
        with FaultServer(script(head(chunked=chunked), *body, close())) as server:
            response = post(server)
            read = _http.body_reader(response)
            assert isinstance(getattr(read, "__self__", None), http.client.HTTPResponse), chunked
            assert b"".join(_http.iter_body(response)) == SSE_OK
            response.close()


def test_bodies_that_need_urllib3_take_its_read1() -> None:
    with FaultServer(raw(sized_answer(SSE_OK, keep_alive=False))) as server:
        response = post(server)
        read = _http.body_reader(response)
        assert getattr(read, "__self__", None) is response.raw  # Content-Length: urllib3 checks it
        response.close()


def test_the_socket_behind_idle_timeout_is_found_for_chunked_and_close_delimited_bodies() -> None:
    for chunked in (True, False):
        answer = script(head(chunked=chunked), chunk(SSE_OK) if chunked else raw(SSE_OK), close())
        with FaultServer(answer) as server:
            response = post(server)
            sock = _cancel._socket_of(response.raw)
            assert isinstance(sock, socket.socket), chunked
            control = _cancel.BodyControl(response, 5.0)
            control.set_timeout(1.25)
            assert sock.gettimeout() == 1.25
            control.finish(reuse=False)


def test_the_pool_guard_keeps_a_read_connection_until_finish_hands_it_back() -> None:
    answer = sized_answer(SSE_OK, keep_alive=True)

    def serve_twice(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer)
        if read_request(conn):
            conn.sendall(answer)

    with FaultServer(serve_twice) as server:
        transport = _http.Transport(base_url=server.base_url, api_key="k", max_retries=0)
        response = post(server, transport)
        raw_response: Any = response.raw
        pool = raw_response._pool
        assert isinstance(pool, urllib3.HTTPConnectionPool) and pool.pool is not None
        idle = pool.pool.qsize()
        control = _cancel.BodyControl(response, 5.0)
        assert raw_response._pool is None  # urllib3 cannot release the connection on its own now
        assert b"".join(_http.iter_body(response)) == SSE_OK  # read to its end through urllib3
        conn = raw_response.connection
        assert conn is not None and pool.pool.qsize() == idle and conn not in pool.pool.queue
        assert control.finish(reuse=True) is True
        assert conn in pool.pool.queue
        control.abort()  # after finish: must not touch the connection now in the pool
        second = post(server, transport)
        assert b"".join(_http.iter_body(second)) == SSE_OK
        second.close()
        transport.close()
    assert server.connections == 1


def test_a_late_abort_never_shuts_a_connection_that_went_back_to_the_pool() -> None:
    # Simulates urllib3 handing the connection back behind the guard's back (as a rename of
    # raw._pool would): the abort that follows must not shut the socket another request now uses.
    answer = sized_answer(SSE_OK, keep_alive=True)
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    aborted = threading.Event()

    def serve_twice(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer)
        if read_request(conn):
            conn.sendall(head_bytes + b"\r\n\r\n")
            aborted.wait(5)  # the second body is sent only after the late abort, and a moment
            time.sleep(0.1)  # later: a reader whose socket was shut down sees an end before it
            conn.sendall(body)

    with FaultServer(serve_twice) as server:
        transport = _http.Transport(base_url=server.base_url, api_key="k", max_retries=0)
        first = post(server, transport)
        control = _cancel.BodyControl(first, 5.0)
        assert b"".join(_http.iter_body(first)) == SSE_OK
        raw_first: Any = first.raw
        raw_first._pool = control._pool
        raw_first.release_conn()  # the connection is in the pool again
        second = post(server, transport)  # ... and carries the next request
        control.abort()  # urllib3 refuses (released); nothing else may be shut instead
        aborted.set()
        assert b"".join(_http.iter_body(second)) == SSE_OK
        second.close()
        transport.close()
    assert server.connections == 1


def test_a_fresh_attempt_closes_the_pooled_connection_it_is_handed() -> None:
    answer = sized_answer(SSE_OK, keep_alive=True)

    def serve_all(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer)
        while read_request(conn):
            conn.sendall(answer)

    with FaultServer(serve_all) as server:
        client = openai_stream.Client(api_key="k", base_url=server.base_url, max_retries=0)
        session = client._transport.session
        url = server.base_url + "/chat/completions"
        session.post(url, json={}).close()
        session.post(url, json={}).close()
        assert server.connections == 1  # pooled
        with _cancel.attempting(fresh=True) as attempt:
            session.post(url, json={}).close()
        assert server.connections == 2 and attempt.conn is not None and not attempt.reused
        with _cancel.attempting(fresh=False) as attempt:
            session.post(url, json={}).close()
        assert server.connections == 2 and attempt.reused
        client.close()


def test_urllib3_response_shutdown_exists_and_refuses_after_release() -> None:
    # BodyControl.abort relies on HTTPResponse.shutdown (urllib3 >= 2.3).
    assert callable(getattr(urllib3.HTTPResponse, "shutdown", None))
