"""What the transport records about a call's requests, for the metrics and the hooks.

A stream or ``create()`` call has a recorder (:class:`Trace`, implemented by
the engine's metrics recorder). The transport counts attempts and retries on
it and notes when response headers arrive, and names its ``call`` in the
``request``, ``response`` and ``retry`` hooks. A caller passes it to
:meth:`~openai_stream.transport._http.Transport.request` as ``trace=``, or
binds it to its thread with ``with traced(recorder):`` around code that
sends requests without knowing about it (an API's own ``_send`` or resume).
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from typing_extensions import Protocol

__all__ = ["Trace", "current_trace", "traced"]

_local = threading.local()


class Trace(Protocol):
    """A call's request record: attempts, retries, and when the answering headers came."""

    call: Any
    attempts: int
    retries: int

    def headers_arrived(self) -> None:
        """An attempt's response headers arrived (the last call before the answer is the answer's)."""


class traced:
    """``with traced(trace):`` makes ``trace`` the current thread's for the requests sent inside."""

    def __init__(self, trace: Trace) -> None:
        self._trace = trace
        self._previous: Optional[Trace] = None

    def __enter__(self) -> Trace:
        self._previous = getattr(_local, "trace", None)
        _local.trace = self._trace
        return self._trace

    def __exit__(self, *exc_info: object) -> None:
        _local.trace = self._previous


def current_trace() -> Optional[Trace]:
    """The trace bound to this thread by :class:`traced`, if any."""
    return getattr(_local, "trace", None)
