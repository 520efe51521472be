"""A streamed chat completion: the stream engine driving a :class:`ChatCompletionAccumulator`."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, FrozenSet, Mapping, Optional

from ..engine._arguments import strict_tool_names
from ..engine._events import EVENT_TYPES
from ..engine._stream import BaseStream
from ..transport._http import TimeoutTypes, Transport
from ..transport._sse import DEFAULT_MAX_EVENT_BYTES
from ._accumulator import ChatCompletionAccumulator
from ._completion import ChatCompletion

__all__ = ["ChatCompletionStream", "OPENAI_PYTHON_EVENTS"]

_LOGPROBS = (
    "there is no logprobs event here: read event.chunk['choices'][i]['logprobs'] in a 'chunk' handler, "
    "or choice.logprobs on the completion."
)
OPENAI_PYTHON_EVENTS: Mapping[str, str] = {
    "tool_calls.function.arguments.delta": "openai-python's name; here it is 'tool_call.delta'.",
    "tool_calls.function.arguments.done": "openai-python's name; here it is 'tool_call.done'.",
    "logprobs.content.delta": _LOGPROBS,
    "logprobs.content.done": _LOGPROBS,
    "logprobs.refusal.delta": _LOGPROBS,
    "logprobs.refusal.done": _LOGPROBS,
}
"""openai-python's chat stream event names that differ from ours, and what to use instead."""


class ChatCompletionStream(BaseStream[ChatCompletion]):
    """One streamed chat completion. Nothing is sent until it is consumed.

    Register handlers with ``@stream.on("content.delta")`` and call
    :meth:`until_done`, or iterate it (``for event in stream``); handlers fire
    either way, in the order the events arrive. :meth:`start` runs the stream on
    a background thread instead. Use it as a context manager to be sure the
    HTTP response is closed.

    A handler that raises ends the stream: the response is closed, ``error``
    listeners are told, and the exception propagates from :meth:`until_done`
    (or the iteration). Errors are raised, never only emitted.

    Thread safety: :meth:`close`, :meth:`until_done`, ``on``/``once``/
    ``remove_listener`` and :attr:`current_completion` may be called from any
    thread while the stream runs. A listener present for the whole stream sees
    every event exactly once; one removed while an event is being dispatched may
    still receive that event.
    """

    _path: ClassVar[str] = "chat/completions"
    _protocol: ClassVar[str] = "a Chat Completions stream"
    _result_name: ClassVar[str] = "completion"
    _unfinished: ClassVar[str] = "no [DONE] and no finish_reason"
    _event_types: ClassVar[FrozenSet[str]] = frozenset(EVENT_TYPES)
    _raw_event_types: ClassVar[FrozenSet[str]] = frozenset({"chunk"})
    _event_aliases: ClassVar[Mapping[str, str]] = OPENAI_PYTHON_EVENTS

    def __init__(
        self,
        transport: Transport,
        body: Dict[str, Any],
        *,
        timeout: TimeoutTypes = None,
        max_retries: Optional[int] = None,
        extra_headers: Optional[Mapping[str, Optional[str]]] = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        idle_timeout: Optional[float] = None,
        extra_query: Optional[Mapping[str, Any]] = None,
        path: Optional[str] = None,
        parse: Optional[Callable[[str], Any]] = None,
        tool_parsers: Optional[Mapping[str, Callable[..., Any]]] = None,
    ) -> None:
        super().__init__(
            transport,
            body,
            ChatCompletionAccumulator(
                response_format=body.get("response_format"),
                parse=parse,
                tool_parsers=tool_parsers,
                strict_tools=strict_tool_names(body.get("tools")),
            ),
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            max_event_bytes=max_event_bytes,
            idle_timeout=idle_timeout,
            extra_query=extra_query,
            path=path,
        )

    @property
    def current_completion(self) -> ChatCompletion:
        """The completion assembled from everything received so far (any thread may ask): :meth:`snapshot`."""
        return self.snapshot()

    # openai-python's names for the same things, so code written for its chat.completions.stream()
    # runs unchanged (see README, "Coming from openai-python").

    @property
    def current_completion_snapshot(self) -> ChatCompletion:
        """openai-python's name for :attr:`current_completion`."""
        return self.snapshot()

    def get_final_completion(self) -> ChatCompletion:
        """openai-python's name for :meth:`until_done`: consume the stream and return the completion."""
        return self.until_done()
