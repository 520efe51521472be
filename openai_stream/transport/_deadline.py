"""A deadline on the whole wait for response headers, kept by one watchdog thread per process.

A socket read timeout bounds each read, so a server that dribbles its headers
one byte at a time, each within the timeout, could hold a request forever. A
connection arms a deadline before it waits for the response and disarms it
when the headers are in; if the deadline passes first, the watchdog shuts the
socket down, which ends the blocked read at once, and the waiting side reports
a read timeout.

Arming and disarming are a heap push and a flag under one lock, per request,
never per chunk. Expiry and disarming happen under the same lock, so a
deadline that was disarmed can never shut a socket down afterwards (the
connection may be back in the pool by then).
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any, List, Optional, Tuple

__all__ = ["THREAD_NAME", "Deadline", "arm", "disarm"]

THREAD_NAME = "openai_stream watchdog"
# The watchdog thread ends after this long with nothing armed (a new deadline starts it again):
# a client that makes requests more often keeps one thread, an idle process keeps none.
_IDLE_EXIT = 1.0


class Deadline:
    """One armed deadline: ``expired`` turns True when the watchdog shut its socket down."""

    __slots__ = ("expired", "sock", "when")

    def __init__(self, when: float, sock: Any) -> None:
        self.when = when
        self.sock: Any = sock  # None once disarmed or expired
        self.expired = False


class _Watchdog:
    """The heap of armed deadlines and the thread that enforces them.

    ``_lock`` guards ``_heap``, ``_armed``, ``_thread`` and every armed
    ``Deadline``'s ``sock`` and ``expired``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: List[Tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._armed = 0
        self._thread: Optional[threading.Thread] = None

    def arm(self, seconds: float, sock: Any) -> Deadline:
        deadline = Deadline(time.monotonic() + seconds, sock)
        with self._lock:
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (deadline.when, next(self._order), deadline))
            self._armed += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()
            elif earliest is None or deadline.when < earliest:
                self._wake.notify()
        return deadline

    def disarm(self, deadline: Deadline) -> bool:
        with self._lock:
            if deadline.sock is not None:
                deadline.sock = None
                self._armed -= 1
                heap = self._heap
                if len(heap) > 64 and self._armed * 2 < len(heap):  # mostly disarmed: drop them
                    self._heap = [entry for entry in heap if entry[2].sock is not None]
                    heapq.heapify(self._heap)
            return deadline.expired

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                heap = self._heap
                while heap and (heap[0][2].sock is None or heap[0][0] <= now):
                    _, _, deadline = heapq.heappop(heap)
                    sock = deadline.sock
                    if sock is not None:
                        deadline.sock = None
                        deadline.expired = True
                        self._armed -= 1
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:  # closed meanwhile
                            pass
                if heap:
                    self._wake.wait(heap[0][0] - now)
                elif not self._wake.wait(_IDLE_EXIT) and not self._heap:
                    self._thread = None
                    return


_watchdog = _Watchdog()


def arm(seconds: float, sock: Any) -> Deadline:
    """Shut ``sock`` down ``seconds`` from now unless :func:`disarm` comes first."""
    return _watchdog.arm(seconds, sock)


def disarm(deadline: Deadline) -> bool:
    """Cancel ``deadline`` (again is harmless); True if it had already expired."""
    return _watchdog.disarm(deadline)


def _forked() -> None:
    global _watchdog
    _watchdog = _Watchdog()  # the parent's thread did not come along, and its lock may be held


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
