"""A deadline on the whole wait for response headers, kept by one watchdog thread per process.

A socket read timeout bounds each read, so a server that dribbles its headers
one byte at a time, each within the timeout, could hold a request forever. A
connection arms a deadline before it waits for the response and disarms it
when the headers are in; if the deadline passes first, the watchdog shuts the
socket down, which ends the blocked read at once, and the waiting side reports
a read timeout.

The request path takes no lock shared between requests: many threads making
requests at once would queue on it (measured: 16 threads streaming short
answers spent a fifth more CPU per stream on one such lock). Arming puts the
deadline on a queue the watchdog drains; disarming takes the deadline's own
lock. The watchdog checks its deadlines every :data:`TICK` seconds while any is
armed (so a deadline is kept to within a tick) and sleeps on the queue when
none is. Expiry and disarming take the same per-deadline lock, so a deadline
that was disarmed can never shut a socket down afterwards (the connection may
be back in the pool by then).
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from typing import Any, List, Optional

__all__ = ["THREAD_NAME", "TICK", "Deadline", "arm", "disarm"]

THREAD_NAME = "openai_stream watchdog"
TICK = 0.05
"""How often the watchdog looks at its deadlines while any is armed (seconds)."""


class Deadline:
    """One armed deadline: ``expired`` turns True when the watchdog shut its socket down.

    ``_lock`` guards ``sock`` (None once disarmed or expired) and ``expired``.
    """

    __slots__ = ("_lock", "expired", "sock", "when")

    def __init__(self, when: float, sock: Any) -> None:
        self.when = when
        self.sock: Any = sock
        self.expired = False
        self._lock = threading.Lock()

    def disarm(self) -> bool:
        """Cancel it (again is harmless); True if it had already expired."""
        with self._lock:
            self.sock = None
            return self.expired

    def expire_if_due(self, now: float) -> bool:
        """Shut the socket down if the deadline passed and it is still armed; True when done with it."""
        if self.sock is None:
            return True
        if self.when > now:
            return False
        with self._lock:
            sock = self.sock
            if sock is None:
                return True
            self.sock = None
            self.expired = True
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # closed meanwhile
            pass
        return True


class _Watchdog:
    """The thread that enforces armed deadlines.

    ``_incoming`` is a thread-safe queue (new deadlines); ``_armed`` is the
    watchdog thread's own list, touched by no other thread; ``_start_lock``
    guards ``_thread``, taken only to start the thread the first time.
    """

    def __init__(self) -> None:
        self._incoming: queue.SimpleQueue[Deadline] = queue.SimpleQueue()
        self._armed: List[Deadline] = []
        self._start_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def arm(self, seconds: float, sock: Any) -> Deadline:
        deadline = Deadline(time.monotonic() + seconds, sock)
        self._incoming.put(deadline)
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                    self._thread.start()
        return deadline

    def _run(self) -> None:
        incoming, armed = self._incoming, self._armed
        while True:
            if not armed:
                armed.append(incoming.get())  # nothing to watch: sleep until a deadline comes
            else:
                time.sleep(TICK)
            while True:
                try:
                    armed.append(incoming.get_nowait())
                except queue.Empty:
                    break
            now = time.monotonic()
            armed[:] = [deadline for deadline in armed if not deadline.expire_if_due(now)]


_watchdog = _Watchdog()


def arm(seconds: float, sock: Any) -> Deadline:
    """Shut ``sock`` down ``seconds`` from now (within :data:`TICK`) unless :func:`disarm` comes first."""
    return _watchdog.arm(seconds, sock)


def disarm(deadline: Deadline) -> bool:
    """Cancel ``deadline`` (again is harmless); True if it had already expired."""
    return deadline.disarm()


def _forked() -> None:
    global _watchdog
    _watchdog = _Watchdog()  # the parent's thread did not come along, and its locks may be held


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
