"""A loopback HTTP forward proxy for the proxy-path tests: absolute-form requests and CONNECT tunnels.

Each client connection carries one request (or one tunnel): the proxy connects
to the target, which must be on 127.0.0.1, and relays bytes both ways as they
come, so a stream passes event by event. It records what it saw::

    with ForwardProxy() as proxy:
        os.environ["HTTP_PROXY"] = proxy.url
        ...  # proxy.request_lines, proxy.connections, proxy.client_closed
"""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from typing_extensions import Self


class ForwardProxy:
    """Relays absolute-form requests (``POST http://host/...``) and ``CONNECT`` tunnels to loopback."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.connections = 0
        self.request_lines: list[str] = []
        self.errors: list[BaseException] = []
        # Set when a client closed its side of a relayed connection (a stream closed early).
        self.client_closed = threading.Event()
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="ForwardProxy", daemon=True)

    def start(self) -> Self:
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop accepting and end every relay (bounded, ~2 s)."""
        self._abort.set()
        deadline = time.monotonic() + 2
        with self._lock:
            threads = list(self._threads)
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
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self.connections += 1
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(self.timeout)
            data = b""
            while b"\r\n\r\n" not in data:
                part = client.recv(65536)
                if not part:
                    return
                data += part
            head, _, rest = data.partition(b"\r\n\r\n")
            request_line, *fields = head.decode("latin-1").split("\r\n")
            with self._lock:
                self.request_lines.append(request_line)
            method, target, version = request_line.split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = self._connect(host, int(port))
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                forward = rest
            else:
                url = urlsplit(target)
                upstream = self._connect(url.hostname or "", url.port or 80)
                path = url.path + (f"?{url.query}" if url.query else "")
                kept = [f for f in fields if not f.lower().startswith(("proxy-", "connection:"))]
                lines = [f"{method} {path} {version}", *kept, "Connection: close"]
                forward = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + rest
            if forward:
                upstream.sendall(forward)
            self._relay(client, upstream)
        except Exception as exc:  # recorded for the tests to assert on
            with self._lock:
                self.errors.append(exc)
        finally:
            client.close()
            if upstream is not None:
                upstream.close()

    def _connect(self, host: str, port: int) -> socket.socket:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError(f"this test proxy only reaches loopback targets, not {host!r}")
        return socket.create_connection(("127.0.0.1", port), timeout=self.timeout)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        open_ends = {client, upstream}
        while open_ends and not self._abort.is_set():
            readable, _, _ = select.select(list(open_ends), [], [], 0.05)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    peers[sock].sendall(data)
                    continue
                open_ends.discard(sock)
                if sock is client:
                    self.client_closed.set()
                    return  # the client left: drop the upstream connection too
                try:
                    client.shutdown(socket.SHUT_WR)  # the target finished: pass its end on
                except OSError:
                    pass
                return
