"""The chunked body read by ``iter_body`` in one loop, checked against ``http.client``'s own ``read1``.

``iter_body`` reads a chunked body itself (http.client's ``read1`` takes four
nested calls per chunk). The oracle is ``http.client.HTTPResponse.read1``
looped on the same bytes from the same loopback server: the same body, the
same end state of the response (``chunk_left``, the file closed once the
last chunk and its trailer are read), and an error where it raises one.
"""

from __future__ import annotations

import http.client
import socket
from typing import Any, List, Tuple

import pytest
from fault_server import FaultServer, close, raw, read_request, script, stall

import openai_stream
from openai_stream.transport import _cancel, _http

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: close\r\n\r\n"
)
EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
BIG = b"data: " + b"x" * 20000 + b"\n\n"  # longer than http.client's 8 KiB read buffer


def post(server: FaultServer) -> Any:
    transport = _http.Transport(base_url=server.base_url, api_key="k", max_retries=0, timeout=5)
    return transport.post("chat/completions", {"model": "m"}, stream=True)


def through_iter_body(server: FaultServer) -> Tuple[bytes, Any, BaseException | None]:
    response = post(server)
    pieces: List[bytes] = []
    error: BaseException | None = None
    try:
        for data in _http.iter_body(response):
            pieces.append(data)
    except Exception as exc:
        error = exc
    source = response.raw._fp
    state = (source.chunk_left, source.fp is None)
    response.close()
    return b"".join(pieces), state, error


def through_http_client(server: FaultServer) -> Tuple[bytes, Any, BaseException | None]:
    response = post(server)
    source = response.raw._fp
    assert isinstance(source, http.client.HTTPResponse) and source.chunked
    pieces: List[bytes] = []
    error: BaseException | None = None
    try:
        while True:
            data = source.read1(_http.READ_SIZE)
            if not data:
                break
            pieces.append(data)
    except Exception as exc:
        error = exc
    state = (source.chunk_left, source.fp is None)
    response.close()
    return b"".join(pieces), state, error


@pytest.mark.parametrize(
    "body",
    [
        b"%x\r\n%s\r\n" % (len(EVENT), EVENT) * 3 + b"0\r\n\r\n",
        # upper-case hex, a chunk extension, a trailer field after the last chunk
        b"%X;name=value\r\n%s\r\n" % (len(BIG), BIG) + b"0;last\r\nX-Trailer: 1\r\n\r\n",
        # several chunks of one event, and an empty body part
        b"5\r\ndata:\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(EVENT) - 5, EVENT[5:]),
    ],
    ids=["three-events", "extension-trailer-big", "event-over-two-chunks"],
)
def test_whole_bodies_read_as_http_client_reads_them(body: bytes) -> None:
    with FaultServer(script(raw(HEAD + body), close())) as server:
        ours = through_iter_body(server)
        theirs = through_http_client(server)
    assert theirs[2] is None
    assert ours == theirs
    assert ours[1] == (None, True)  # read to its end: the file closed, as http.client leaves it


def test_a_chunk_that_arrives_in_pieces_is_yielded_as_it_arrives() -> None:
    # The first half of a chunk is handed over before the second half exists (read1 semantics).
    first, second = EVENT[:20], EVENT[20:]
    answer = script(raw(HEAD + b"%x\r\n%s" % (len(EVENT), first)), stall(0.3), raw(second + b"\r\n0\r\n\r\n"))
    with FaultServer(script(answer, close())) as server:
        response = post(server)
        body = _http.iter_body(response)
        assert next(body) == first
        assert response.raw._fp.chunk_left == len(second)
        assert b"".join(body) == second
        response.close()


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\n",  # not a number
        b"%x\r\n%s" % (len(EVENT), EVENT),  # cut before the CRLF after the data
        b"%x\r\n%s" % (len(EVENT), EVENT[:10]),  # cut inside the data
        b"1" * 70000 + b"\r\n",  # a size line longer than http.client accepts
    ],
    ids=["bad-size", "no-crlf", "cut-data", "long-size-line"],
)
def test_broken_bodies_are_interruptions_where_http_client_raises(body: bytes) -> None:
    with FaultServer(script(raw(HEAD + b"%x\r\n%s\r\n" % (len(EVENT), EVENT) + body), close())) as server:
        ours = through_iter_body(server)
        theirs = through_http_client(server)
    assert isinstance(theirs[2], http.client.HTTPException)
    assert isinstance(ours[2], openai_stream.StreamInterruptedError)
    assert isinstance(ours[2].__cause__, type(theirs[2]))
    assert ours[:2] == theirs[:2]  # what was received, and where the response stands
    assert ours[0].startswith(EVENT)


def test_a_negative_chunk_size_is_an_interruption() -> None:
    # http.client would take it as a size and read on out of step; here it is a broken body.
    with FaultServer(script(raw(HEAD + b"-5\r\nhello\r\n0\r\n\r\n"), close())) as server:
        data, _, error = through_iter_body(server)
    assert data == b""
    assert isinstance(error, openai_stream.StreamInterruptedError)


def test_a_body_with_a_trailer_leaves_the_connection_reusable() -> None:
    keep = HEAD.replace(b"Connection: close", b"Connection: keep-alive")
    answer = keep + b"%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(EVENT), EVENT)

    def serve_twice(conn: socket.socket, request: bytes) -> None:
        conn.sendall(answer)
        if read_request(conn):
            conn.sendall(answer)

    with FaultServer(serve_twice) as server:
        transport = _http.Transport(base_url=server.base_url, api_key="k", max_retries=0, timeout=5)
        for _ in range(2):
            response = transport.post("chat/completions", {"model": "m"}, stream=True)
            control = _cancel.BodyControl(response, 5.0)
            assert b"".join(_http.iter_body(response)) == EVENT
            assert response.raw.isclosed()  # trailer read: the body is read to its end
            assert control.finish(reuse=True) is True
        transport.close()
    assert server.connections == 1
