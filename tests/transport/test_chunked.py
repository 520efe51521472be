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
import threading
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
    if not body.startswith(b"zz"):  # a bad size line is named (see below), not an IncompleteRead
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


# --- hostile framing: what http.client lets through, and the house rule does not ---------------


def test_two_stray_bytes_in_place_of_the_crlf_after_a_chunk_are_a_broken_body() -> None:
    # RFC 9112 7.1: chunk = chunk-size [ext] CRLF chunk-data CRLF. http.client (and urllib3) toss
    # whatever two bytes follow the data unread, so "XX" here would vanish and the body pass whole.
    body = b"%x\r\n%sXX" % (len(EVENT), EVENT) + b"%x\r\n%s\r\n0\r\n\r\n" % (len(EVENT), EVENT)
    with FaultServer(script(raw(HEAD + body), close())) as server:
        data, _, error = through_iter_body(server)
    assert data == EVENT  # what arrived before the break is handed over
    assert isinstance(error, openai_stream.StreamInterruptedError)
    assert "b'XX'" in error.message and "closed the connection" not in error.message


@pytest.mark.parametrize("line", [b"zz", b"-5", b"5\x00", b""], ids=["letters", "negative", "nul", "empty"])
def test_a_size_line_that_is_no_number_is_named_in_the_error(line: bytes) -> None:
    # The server sent a bad line; it did not close the connection (http.client says IncompleteRead).
    body = b"%x\r\n%s\r\n%s\r\nhello\r\n0\r\n\r\n" % (len(EVENT), EVENT, line)
    with FaultServer(script(raw(HEAD + body), stall(5))) as server:
        data, _, error = through_iter_body(server)
    assert data == EVENT
    assert isinstance(error, openai_stream.StreamInterruptedError)
    assert "chunk size" in error.message and repr(line + b"\r\n") in error.message
    assert "closed the connection" not in error.message


@pytest.mark.parametrize("value", ["gzip, chunked", "identity, chunked", "chunked, chunked", "chunked "])
def test_a_transfer_coding_other_than_chunked_is_refused(value: str) -> None:
    # http.client takes only "chunked" exactly; anything else it reads close-delimited, framing and
    # all, and no library decodes a gzip transfer coding: the body would be garbage or pass with
    # the framing lines taken for SSE noise.
    head = HEAD.replace(b"Transfer-Encoding: chunked", b"Transfer-Encoding: " + value.encode())
    answer = head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(EVENT), EVENT)
    with FaultServer(script(raw(answer), close())) as server:
        client = openai_stream.Client(api_key="k", base_url=server.base_url, max_retries=0, timeout=5)
        with pytest.raises(openai_stream.InvalidStreamDataError) as info:
            client.chat.completions.stream(model="m", messages=[]).until_done()
        client.close()
    assert "Transfer-Encoding" in info.value.message and repr(value) in info.value.message


@pytest.mark.parametrize("value", ["identity", "Identity "])
def test_transfer_encoding_identity_is_a_plain_body(value: str) -> None:
    # RFC 2616's "identity" (no transfer coding, dropped by RFC 7230 but still sent by old servers)
    # frames nothing: http.client reads such a body to the close, as it should.
    head = HEAD.replace(b"Transfer-Encoding: chunked", b"Transfer-Encoding: " + value.encode())
    answer = head + EVENT + b"data: [DONE]\n\n"
    with FaultServer(script(raw(answer), close())) as server:
        client = openai_stream.Client(api_key="k", base_url=server.base_url, max_retries=0, timeout=5)
        completion = client.chat.completions.stream(model="m", messages=[]).until_done()
        client.close()
    assert completion.choices[0].message.content == "hi"


def test_a_trailer_that_never_ends_is_a_broken_body() -> None:
    # http.client discards trailer lines for as long as they come, with no data for the idle
    # deadline to see: a server could hold the stream open forever. At most as many trailer
    # fields as http.client accepts header fields (100) are read.
    fields = b"".join(b"X-Trailer-%d: 1\r\n" % n for n in range(5000))  # 5000 stands for endless
    answer = HEAD + b"%x\r\n%s\r\n0\r\n" % (len(EVENT), EVENT) + fields + b"\r\n"
    with FaultServer(script(raw(answer), close())) as server:
        data, _, error = through_iter_body(server)
    assert data == EVENT
    assert isinstance(error, openai_stream.StreamInterruptedError)
    assert "trailer" in error.message


def test_a_long_body_of_small_chunks_takes_few_socket_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    # read1 on an empty buffer reads just the rest of the current chunk from the socket, so each
    # refill of the buffer costs a second, small read: the response reads through 64 KiB, not 8.
    chunks = 1500
    body = b"%x\r\n%s\r\n" % (len(EVENT), EVENT) * chunks + b"0\r\n\r\n"  # about 96 KiB
    written = threading.Event()

    def mark_written(conn: Any, request: bytes) -> None:
        written.set()

    with FaultServer(script(raw(HEAD + body), mark_written, close())) as server:
        response = post(server)
        # Once sendall returned, the whole body is in this socket's receive buffer (loopback).
        assert written.wait(10)
        reads: List[int] = []
        real = socket.SocketIO.readinto

        def counted(self: Any, buffer: Any) -> Any:
            reads.append(len(buffer))
            return real(self, buffer)

        monkeypatch.setattr(socket.SocketIO, "readinto", counted)
        data = b"".join(_http.iter_body(response))
        response.close()
    assert data == EVENT * chunks
    assert len(reads) <= 4, reads  # through 8 KiB: a dozen
