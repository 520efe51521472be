"""Loopback HTTP server that replays scripted streams (chat completions, responses).

Use it to test code built on ``openai_stream`` without a network::

    from openai_stream.testing import ReplayServer, ScriptedResponse

    with ReplayServer([ScriptedResponse.from_chunks([{"choices": []}])]) as server:
        ...  # point the client at server.base_url

Under pytest, the ``replay_server`` fixture gives each test a started server
with an empty queue: installing the package registers it through a ``pytest11``
entry point (the top-level module ``_openai_stream_pytestplugin``), so no
``pytest_plugins`` line is needed. This module never imports pytest.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json as _json
import os
import re
import socket
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from ._headers import Headers

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "Headers",
    "RecordedRequest",
    "ReplayServer",
    "ScriptedResponse",
    "demo_server",
    "demo_transcript",
    "demo_transcripts",
    "split_sse_events",
]

_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_sse_events(data: bytes) -> list[bytes]:
    """Split an SSE transcript into events, each ending with its blank line.

    Bytes are kept exactly (``b"".join(result) == data``) whatever the line
    endings. Extra blank lines stay with the preceding event and trailing bytes
    without a closing blank line form the last piece.
    """
    pieces: list[bytes] = []
    current = b""
    has_content = False
    for match in _LINE.finditer(data):
        line = match.group()
        if line.rstrip(b"\r\n"):
            current += line
            has_content = True
        elif has_content:
            pieces.append(current + line)
            current, has_content = b"", False
        elif pieces:
            pieces[-1] += line
        else:
            current += line
    if current:
        pieces.append(current)
    return pieces


@dataclass
class ScriptedResponse:
    """One canned HTTP response.

    Give the body either as ``events`` (each written as its own piece, after
    ``delay`` seconds) or as ``body`` (bytes, or a dict/list sent as JSON).
    With ``chunked`` each piece is one HTTP/1.1 chunk; otherwise the body is
    close-delimited (no Content-Length, connection closed at the end).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None
    body: bytes | dict[str, Any] | list[Any] | None = None
    delay: float = 0.0
    chunked: bool = True

    def __post_init__(self) -> None:
        if self.events is not None and self.body is not None:
            raise ValueError("give either events or body, not both")

    @classmethod
    def sse_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> ScriptedResponse:
        """Replay a recorded ``.sse`` transcript, one SSE event per piece."""
        with open(path, "rb") as fh:
            return cls(events=split_sse_events(fh.read()), **kwargs)

    @classmethod
    def from_chunks(
        cls, chunks: Iterable[Mapping[str, Any]], done: bool = True, **kwargs: Any
    ) -> ScriptedResponse:
        """Stream each chunk as ``data: {json}``, then ``data: [DONE]`` if ``done``."""
        events = [b"data: " + _json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
        if done:
            events.append(b"data: [DONE]\n\n")
        return cls(events=events, **kwargs)

    @classmethod
    def json(
        cls,
        obj: dict[str, Any] | list[Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> ScriptedResponse:
        """Answer with a JSON document (for errors or non-streaming replies)."""
        return cls(status=status, headers=dict(headers or {}), body=obj)

    def pieces(self) -> list[bytes]:
        """The body as the list of pieces that will be written."""
        if self.events is not None:
            return list(self.events)
        if self.body is None:
            return []
        if isinstance(self.body, bytes):
            return [self.body]
        return [_json.dumps(self.body).encode()]

    def content_type(self) -> str:
        """Content-Type sent unless ``headers`` sets one."""
        return "application/json" if isinstance(self.body, (dict, list)) else "text/event-stream"


@dataclass
class RecordedRequest:
    """A request received by :class:`ReplayServer`."""

    method: str
    path: str
    headers: Headers
    body: bytes
    json: Any = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients may connect at once
    replay: ReplayServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response (a closed stream) is normal here.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, socket.timeout)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections give up eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.replay._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.replay._track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path in ("/", ""):  # the health check
            plain = {"Content-Type": "text/plain"}
            self._write(ScriptedResponse(status=200, body=b"ok", headers=plain, chunked=False))
            return
        # Any other GET (a resumed Responses stream: GET /v1/responses/{id}?stream=true) is answered
        # from the script and recorded, as a POST is.
        request = RecordedRequest(self.command, self.path, Headers(self.headers.items()), b"", None)
        self._write(self.server.replay._respond_to(request))

    def do_POST(self) -> None:
        body = self._read_body()
        try:
            parsed: Any = _json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = RecordedRequest(self.command, self.path, Headers(self.headers.items()), body, parsed)
        self._write(self.server.replay._respond_to(request))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # skip trailers
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _write(self, resp: ScriptedResponse) -> None:
        abort = self.server.replay._abort
        chunked = resp.chunked and self.request_version == "HTTP/1.1"
        try:
            self.send_response(resp.status)
            if not any(name.lower() == "content-type" for name in resp.headers):
                self.send_header("Content-Type", resp.content_type())
            for name, value in resp.headers.items():
                self.send_header(name, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            for piece in resp.pieces():
                if resp.delay > 0 and abort.wait(resp.delay):
                    self.close_connection = True
                    return
                if not chunked:
                    self.wfile.write(piece)
                elif piece:  # an empty chunk would end the body early
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True


class ReplayServer:
    """Threaded loopback server answering each request with the next scripted response.

    Every POST, and every GET of a path other than ``/``, is recorded in
    :attr:`requests` and answered from the queue. When the queue runs out it
    repeats the last response (``repeat_last``) or answers 500 with a JSON
    error. ``GET /`` answers ``ok`` for health checks.
    """

    def __init__(
        self,
        responses: Iterable[ScriptedResponse] | None = None,
        *,
        repeat_last: bool = True,
    ) -> None:
        self.repeat_last = repeat_last
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        """How many TCP connections it accepted (keep-alive reuse shows as fewer than requests)."""
        self._queue: list[ScriptedResponse] = list(responses or [])
        self._last: ScriptedResponse | None = None
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, ready for an OpenAI-style client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def add(self, response: ScriptedResponse) -> None:
        """Queue another response."""
        with self._lock:
            self._queue.append(response)

    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve on a daemon thread."""
        if self._server is None:
            self._abort.clear()
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.replay = self
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="ReplayServer",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, abort pending delays and drop open connections (bounded)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._abort.set()
        server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _respond_to(self, request: RecordedRequest) -> ScriptedResponse:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                self._last = self._queue.pop(0)
                return self._last
            if self.repeat_last and self._last is not None:
                return self._last
        error = {
            "message": "ReplayServer: no scripted response left",
            "type": "server_error",
        }
        return ScriptedResponse.json({"error": error}, status=500)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self.connections += 1
                self._conns.add(conn)
            else:
                self._conns.discard(conn)


def demo_transcripts() -> list[str]:
    """The names of the recorded transcripts packaged with openai_stream (``openai_stream/demo``)."""
    folder = importlib.resources.files("openai_stream") / "demo"
    return sorted(p.name[: -len(".sse")] for p in folder.iterdir() if p.name.endswith(".sse"))


def demo_transcript(name: str) -> bytes:
    """The bytes of a packaged transcript, by name with or without ``.sse``."""
    stem = name[: -len(".sse")] if name.endswith(".sse") else name
    if stem not in demo_transcripts():
        raise ValueError(
            f"no packaged transcript {name!r}; choose one of: {', '.join(demo_transcripts())}"
        )
    return (importlib.resources.files("openai_stream") / "demo" / f"{stem}.sse").read_bytes()


@contextlib.contextmanager
def demo_server(name: str = "llamacpp-content-usage", *, delay: float = 0.0) -> Iterator[ReplayServer]:
    """A started :class:`ReplayServer` that answers every request with a packaged transcript.

    Each SSE event of the recording is sent as its own HTTP chunk, ``delay``
    seconds apart, so handlers see the stream arrive as it did from the provider.
    """
    response = ScriptedResponse(events=split_sse_events(demo_transcript(name)), delay=delay)
    with ReplayServer([response]) as server:
        yield server

