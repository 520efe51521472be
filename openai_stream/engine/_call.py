"""A non-streamed call (``create()``) as the hooks and metrics see it.

:class:`CreateCall` is to ``create()`` what a stream is to ``stream()``: the
object the ``request``/``response``/``retry`` hooks name as their ``call``,
with its own :attr:`~CreateCall.metrics` and ``hook_state``, reported by the
``create.start`` and ``create.end`` hooks. Use it as a context manager
around the call: the end is reported once, whatever ends it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Type

from ..errors import APIUserAbortError
from ..hooks import CreateEndInfo, CreateStartInfo, Hooks
from ._metrics import Recorder, StreamMetrics, now
from ._stream import finish_reasons

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["CreateCall"]


class CreateCall:
    """One non-streamed request and its answer, observed by the client's hooks.

    ``body`` is the request body; ``result`` the answer once it arrived.
    ``operation_name`` is the GenAI operation (``chat``). Safe to read from
    any thread; ``_lock`` guards ``_ended`` and ``_final``.
    """

    operation_name = "chat"

    def __init__(self, hooks: Hooks, body: Dict[str, Any], *, operation_name: str = "chat") -> None:
        self.body = body
        self.operation_name = operation_name
        self.result: Any = None
        self.hook_state: Dict[str, Any] = {}
        """Per-call state for client hooks (an OpenTelemetry span...)."""
        self._hooks = hooks
        self.recorder = Recorder()
        self.recorder.call = self
        self._lock = threading.Lock()
        self._ended = False
        self._final: Optional[StreamMetrics] = None

    def __repr__(self) -> str:
        return f"<CreateCall model={self.body.get('model')!r}>"

    @property
    def metrics(self) -> StreamMetrics:
        """Time to headers, total seconds, usage, finish reasons, attempts and retries (no chunks)."""
        final = self._final
        return final if final is not None else self._measure(finished=False)

    def _measure(self, *, finished: bool) -> StreamMetrics:
        result = self.result
        return self.recorder.snapshot(
            chunks=0,
            received=0,
            usage=getattr(result, "usage", None) if result is not None else None,
            finish_reasons=finish_reasons(result),
            finished=finished,
        )

    def __enter__(self) -> CreateCall:
        self.recorder.start()
        hooks = self._hooks
        if hooks.active and hooks.wants("create.start"):
            hooks.emit("create.start", CreateStartInfo(self, self.body))
        return self

    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        error: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self.recorder.ended_at = now()
            metrics = self._final = self._measure(finished=True)
        hooks = self._hooks
        if hooks.active and hooks.wants("create.end"):
            outcome, error = _outcome(self.result, error)
            hooks.emit("create.end", CreateEndInfo(self, metrics, outcome, error, self.result))


def _outcome(result: Any, error: Optional[BaseException]) -> Tuple[str, Optional[BaseException]]:
    if error is None:
        return ("done", None) if result is not None else ("failed", None)
    if isinstance(error, (APIUserAbortError, KeyboardInterrupt, SystemExit)):
        return "closed", error
    return "failed", error
