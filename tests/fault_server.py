"""Raw-socket HTTP server for fault injection (resets, stalls, torn chunks), plain or over TLS.

An HTTP library would hide these faults, so each accepted connection gets its
request read (head plus Content-Length body) and is then handed to a script::

    with FaultServer(script(head(), chunk(b"data: {}\\n\\n"), reset())) as server:
        ...  # server.base_url

A script is any ``handler(conn, request)``; the factories below build them and
``script(...)`` runs several in order. Give a list of handlers to use one per
connection (the last one repeats), e.g. to fail the first attempt only.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

Handler = Callable[[socket.socket, bytes], None]

_context = threading.local()  # .abort: the Event of the FaultServer running this thread


class Aborted(Exception):
    """Raised inside a handler when its server is closing."""


def _wait(seconds: float) -> None:
    abort: threading.Event | None = getattr(_context, "abort", None)
    if abort is None:
        time.sleep(seconds)
    elif abort.wait(seconds):
        raise Aborted


def script(*steps: Handler) -> Handler:
    """Run ``steps`` one after another on the same connection."""

    def run(conn: socket.socket, request: bytes) -> None:
        for step in steps:
            step(conn, request)

    return run


def head(
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = True,
    reason: str | None = None,
) -> Handler:
    """Write a response head: chunked, or close-delimited (no length) when not ``chunked``.

    ``Connection: close`` is added unless given, so each attempt is a new connection.
    """
    fields = {
        "Content-Type": "text/event-stream",
        "Connection": "close",
        **(headers or {}),
    }
    if chunked:
        fields["Transfer-Encoding"] = "chunked"
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in fields.items()]
    return raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def sse(obj: Any) -> bytes:
    """``obj`` as one SSE ``data:`` event, JSON-encoded (write it with ``chunk`` or ``raw``)."""
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def raw(data: bytes) -> Handler:
    """Write ``data`` as is."""
    return lambda conn, request: conn.sendall(data)


def chunk(data: bytes) -> Handler:
    """Write one HTTP chunk; ``chunk(b"")`` writes the terminating zero chunk."""
    return raw(b"%x\r\n%s\r\n" % (len(data), data))


def stall(seconds: float) -> Handler:
    """Do nothing for ``seconds`` (cut short when the server closes)."""
    return lambda conn, request: _wait(seconds)


def reset() -> Handler:
    """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""

    def run(conn: socket.socket, request: bytes) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    return run


def close() -> Handler:
    """Close the connection cleanly (FIN)."""

    def run(conn: socket.socket, request: bytes) -> None:
        try:
            conn.shutdown(socket.SHUT_WR)
        finally:
            conn.close()

    return run


def dripping(
    pieces: Sequence[bytes],
    *,
    delay: float = 0.0,
    hold: threading.Event | None = None,
    hold_timeout: float = 10.0,
    chunked: bool = True,
) -> Handler:
    """Write ``pieces`` one at a time (one chunk each when ``chunked``), ``delay`` apart.

    With ``hold``, every piece after the first waits until the client sets the
    event (it is cleared before the piece is sent): the client proves it handled
    the previous piece before the next byte exists. A hold not released within
    ``hold_timeout`` raises TimeoutError, which drops the connection.
    """

    def run(conn: socket.socket, request: bytes) -> None:
        for i, piece in enumerate(pieces):
            if i and hold is not None:
                deadline = time.monotonic() + hold_timeout
                while not hold.wait(0.05):
                    _wait(0)
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"hold not released before piece {i}")
                hold.clear()
            if delay:
                _wait(delay)
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)

    return run


def refuse_port() -> int:
    """A loopback port with nothing listening (connecting is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_request(conn: socket.socket, limit: int = 1 << 20) -> bytes:
    """Read one request head and its Content-Length body (b"" if the peer left)."""
    data = b""
    while b"\r\n\r\n" not in data:
        part = conn.recv(65536)
        if not part or len(data) > limit:
            return data
        data += part
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head_bytes.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        part = conn.recv(65536)
        if not part:
            break
        body += part
    return head_bytes + b"\r\n\r\n" + body


class FaultServer:
    """Loopback server running ``script`` on each accepted connection's own thread."""

    def __init__(
        self,
        script: Handler | Sequence[Handler],
        *,
        timeout: float = 10.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._scripts: list[Handler] = [script] if callable(script) else list(script)
        self._tls = tls
        if not self._scripts:
            raise ValueError("need at least one handler")
        self.timeout = timeout
        self.connections = 0
        self.requests: list[bytes] = []
        self.errors: list[BaseException] = []
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/v1"
        self._acceptor = threading.Thread(target=self._accept_loop, name="FaultServer", daemon=True)

    def start(self) -> Self:
        """Start listening and accepting."""
        self._sock.listen(128)
        self._sock.settimeout(0.05)
        self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop accepting, interrupt handlers and drop connections (bounded, ~2 s)."""
        self._abort.set()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 2
        for thread in [self._acceptor, *threads]:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._abort.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:  # listener closed
                return
            with self._lock:
                handler = self._scripts[min(self.connections, len(self._scripts) - 1)]
                self.connections += 1
                thread = threading.Thread(target=self._serve, args=(conn, handler), daemon=True)
                self._conns.append(conn)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, handler: Handler) -> None:
        _context.abort = self._abort
        try:
            conn.settimeout(self.timeout)
            if self._tls is not None:
                plain = conn
                conn = self._tls.wrap_socket(conn, server_side=True)  # handshake: a failure is recorded
                with self._lock:
                    self._conns[self._conns.index(plain)] = conn
            request = read_request(conn)
            with self._lock:
                self.requests.append(request)
            handler(conn, request)
        except Aborted:
            pass
        except Exception as exc:  # any failure is recorded for tests to assert on
            with self._lock:
                self.errors.append(exc)
        finally:
            conn.close()
