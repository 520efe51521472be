"""A fast loopback SSE server on raw sockets, so the server never limits the clients.

Each scenario's whole HTTP response (headers and a chunked body with one SSE
event per HTTP chunk) is built once; answering a request is one ``sendall`` of
those bytes. The request's ``model`` picks the scenario. A model named
``latency:COUNT:INTERVAL_MS`` is answered live instead: one content event every
interval, whose content is the ``time.perf_counter()`` at which it was written.
A model named ``closing:NAME`` gets scenario NAME's response with a
``Keep-Alive`` header, and then the connection is closed a moment later
without reading anything more, as the local llama.cpp server does after each
streamed body: a request written on it in the meantime is never answered.

The server runs on a thread (:class:`SSEServer`) or in its own process
(``python -m benchmarks.server``, see :class:`ServerProcess`), so that serving
throughput scenarios does not compete with the measured client for the GIL.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from .scenarios import Scenario, build_chunks, chunked_body, encode_events

__all__ = [
    "SSEServer",
    "ServerProcess",
    "response_bytes",
    "CLOSE_AFTER_S",
    "CLOSING_PREFIX",
    "LATENCY_PREFIX",
]

LATENCY_PREFIX = "latency:"
CLOSING_PREFIX = "closing:"
# How long a closing: answer's connection stays open after the answer: a few ms, the window in
# which a client that pooled the connection writes its next request on it.
CLOSE_AFTER_S = 0.003
_KEEP_ALIVE = b"\r\nKeep-Alive: timeout=5, max=100\r\n"
_HEADERS = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\n"
    b"x-request-id: req_bench\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 58\r\n\r\n"
    b'{"error": {"message": "no such scenario", "type": "bench"}}'
)
_IO_TIMEOUT = 30.0


def response_bytes(scenario: Scenario) -> bytes:
    """The complete HTTP response the server sends for ``scenario``."""
    return _HEADERS + chunked_body(encode_events(build_chunks(scenario)))


class SSEServer:
    """Serves pre-built responses on 127.0.0.1 from daemon threads (one per connection)."""

    def __init__(self, scenarios: Sequence[Scenario] = ()) -> None:
        self.responses: Dict[str, bytes] = {s.name: response_bytes(s) for s in scenarios}
        self._sock: Optional[socket.socket] = None
        self._conns: List[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._sock is None:
            raise RuntimeError("server not started")
        return int(self._sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL of this server."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> SSEServer:
        """Bind a free port and accept connections on a daemon thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        threading.Thread(target=self._accept, name="bench-accept", daemon=True).start()
        return self

    def close(self) -> None:
        """Stop accepting and drop every connection."""
        self._stopping.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> SSEServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(_IO_TIMEOUT)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), name="bench-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while not self._stopping.is_set():
                request, buf = _read_request(conn, buf)
                if request is None:
                    return
                model = _model_of(request)
                if model.startswith(LATENCY_PREFIX):
                    self._serve_latency(conn, model)
                elif model.startswith(CLOSING_PREFIX):
                    answer = self.responses.get(model[len(CLOSING_PREFIX) :], _NOT_FOUND)
                    conn.sendall(answer.replace(b"\r\n", _KEEP_ALIVE, 1))
                    self._stopping.wait(CLOSE_AFTER_S)
                    return
                else:
                    conn.sendall(self.responses.get(model, _NOT_FOUND))
        except OSError:
            pass
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()

    def _serve_latency(self, conn: socket.socket, model: str) -> None:
        _, count, interval_ms = model.split(":")
        interval = float(interval_ms) / 1000.0
        conn.sendall(_HEADERS + _chunk_of({"role": "assistant", "content": ""}))
        next_at = time.perf_counter() + interval
        for _ in range(int(count)):
            delay = next_at - time.perf_counter()
            if delay > 0 and self._stopping.wait(delay):
                return
            next_at += interval
            sent = time.perf_counter()
            conn.sendall(_chunk_of({"content": repr(sent) + " "}))
        conn.sendall(_chunk_of({}, "stop") + b"10\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")


def _chunk_of(delta: Dict[str, object], finish_reason: Optional[str] = None) -> bytes:
    chunk = {
        "id": "chatcmpl-latency",
        "object": "chat.completion.chunk",
        "created": 1727346168,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    event = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


def _read_request(conn: socket.socket, buf: bytes) -> Tuple[Optional[bytes], bytes]:
    """One request's body (``None`` when the peer closed) and the bytes after it."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None, b""
        rest += data
    return rest[:length], rest[length:]


def _model_of(body: bytes) -> str:
    try:
        model = json.loads(body).get("model")
    except (ValueError, AttributeError):
        return ""
    return model if isinstance(model, str) else ""


class ServerProcess:
    """An :class:`SSEServer` in a child process; it exits when this object closes it."""

    def __init__(self, scenarios: Sequence[Scenario]) -> None:
        self._specs = [s.spec() for s in scenarios]
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL of the child's server."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ServerProcess:
        """Start the child and wait (bounded) for it to report its port."""
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server", json.dumps(self._specs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=root,
        )
        assert self._proc.stdout is not None
        ready = threading.Event()
        line: List[bytes] = []

        def read_port() -> None:
            assert self._proc is not None and self._proc.stdout is not None
            line.append(self._proc.stdout.readline())
            ready.set()

        threading.Thread(target=read_port, daemon=True).start()
        if not ready.wait(120) or not line or not line[0].strip().isdigit():
            self.close()
            raise RuntimeError("the benchmark server process did not start")
        self.port = int(line[0])
        return self

    def close(self) -> None:
        """Tell the child to exit and wait for it (bounded), killing it if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Child process entry: serve the scenarios in argv[0] (JSON), print the port, exit when stdin closes."""
    args = list(sys.argv[1:] if argv is None else argv)
    scenarios = [Scenario.from_spec(spec) for spec in json.loads(args[0])] if args else []
    server = SSEServer(scenarios).start()
    sys.stdout.write(f"{server.port}\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.close()


if __name__ == "__main__":
    main()
