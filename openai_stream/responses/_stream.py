"""A streamed response: the stream engine driving a :class:`ResponseAccumulator`, and resuming it.

The engine gives it everything a chat stream has (handlers, iteration,
``until_done()``, ``start()``, ``close()`` from any thread, idle timeout,
retries before the first byte, the error hierarchy). What is its own:

- the request: ``POST /responses``, sent as not replayable when ``store`` or
  ``background`` is set (a request the server may have started on is not
  sent again after a connection failure), or ``GET /responses/{id}?stream=true
  &starting_after=N`` to pick up a stream already running on the server;
- resuming: with ``resume=True``, a body that breaks (or falls silent past the
  idle timeout) before the response finished is picked up with that GET,
  starting after the last ``sequence_number`` received, at most
  ``max_retries`` times. The accumulator drops any event whose number it has
  seen, so no handler sees an event twice.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, FrozenSet, Mapping, Optional

from ..chat._stream import OPENAI_PYTHON_EVENTS
from ..engine._arguments import strict_tool_names
from ..engine._stream import BaseStream
from ..errors import NotFoundError
from ..transport._http import Timeout, TimeoutTypes, Transport
from ..transport._sse import DEFAULT_MAX_EVENT_BYTES
from ._accumulator import ResponseAccumulator
from ._events import RESPONSE_EVENT_TYPES, SERVER_EVENT_TYPES
from ._response import Response

if TYPE_CHECKING:
    import requests

__all__ = ["ResponseStream", "RESPONSE_EVENT_ALIASES"]

log = logging.getLogger("openai_stream")

RESPONSE_EVENT_ALIASES: Mapping[str, str] = {
    **OPENAI_PYTHON_EVENTS,
    "chunk": (
        "a responses stream has no chunks: each server event is an event of its own "
        "('response.output_text.delta', ...), or iterate the stream for every one."
    ),
    "response.output_text.annotation_added": "the server's name is 'response.output_text.annotation.added'.",
}
"""Names of chat-only events, or other libraries' names, and what to use on a responses stream."""


class ResponseStream(BaseStream[Response]):
    """One streamed response. Nothing is sent until it is consumed.

    Register handlers with ``@stream.on("content.delta")`` (the same
    high-level events as a chat stream) or under a server event's own name
    (``@stream.on("response.output_text.delta")``), and call
    :meth:`until_done`, or iterate it (``for event in stream``); handlers fire
    either way, in the order the events arrive. :meth:`start` runs it on a
    background thread instead. Use it as a context manager to be sure the HTTP
    response is closed.

    ``until_done()`` returns the :class:`~openai_stream.Response`. A
    ``response.failed`` or ``error`` event raises its typed error (the same
    status mapping as chat streams) with the response so far as
    ``error.completion``; a body cut before the response finished raises
    :class:`~openai_stream.StreamInterruptedError` with it, unless the stream
    was made with ``resume=True`` and could pick up where it broke.

    Handlers can be registered for every event this class documents
    (:data:`~openai_stream.RESPONSE_EVENT_TYPES`); a server event this SDK does
    not know yet is still emitted under its own name, and iteration yields
    it, but ``on()`` refuses names outside the list, so a misspelled name
    fails at once instead of never firing.

    Thread safety: as :class:`~openai_stream.ChatCompletionStream`.
    """

    _path: ClassVar[str] = "responses"
    _protocol: ClassVar[str] = "a Responses API stream"
    _result_name: ClassVar[str] = "response"
    _unfinished: ClassVar[str] = "no response.completed, response.incomplete or response.failed"
    _event_types: ClassVar[FrozenSet[str]] = frozenset(RESPONSE_EVENT_TYPES)
    _raw_event_types: ClassVar[FrozenSet[str]] = frozenset(SERVER_EVENT_TYPES) - {"error"}
    _event_aliases: ClassVar[Mapping[str, str]] = RESPONSE_EVENT_ALIASES
    _accumulator: ResponseAccumulator

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
        response_id: Optional[str] = None,
        starting_after: Optional[int] = None,
        resume: bool = False,
        text: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(
            transport,
            body,
            ResponseAccumulator(
                text=text if text is not None else body.get("text"),
                parse=parse,
                tool_parsers=tool_parsers,
                starting_after=starting_after,
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
        self._response_id = response_id  # set: the stream is a GET of a response already running
        self._starting_after = starting_after
        self._auto_resume = resume
        # A request the server may have acted on (stored, or started in the background) is not
        # sent again after it was written whole (issue 15).
        self._replayable = not (body.get("store") or body.get("background"))
        self.resumes = 0
        """How many times the stream picked up a broken body again (``resume=True``)."""

    def __repr__(self) -> str:
        if self._response_id is not None:
            return f"<{type(self).__name__} response_id={self._response_id!r} state={self.state}>"
        return super().__repr__()

    # ------------------------------------------------------------------ the snapshot

    @property
    def current_response(self) -> Response:
        """The response assembled from everything received so far (any thread may ask): :meth:`snapshot`."""
        return self.snapshot()

    current_completion = current_response
    """The chat streams' name for :attr:`current_response`, so shared code reads either."""

    @property
    def current_snapshot(self) -> Response:
        """openai-python's name for :attr:`current_response`."""
        return self.snapshot()

    def get_final_response(self) -> Response:
        """openai-python's name for :meth:`until_done`: consume the stream and return the response."""
        return self.until_done()

    @property
    def response_id(self) -> Optional[str]:
        """The response's id, once known: what ``client.responses.stream(response_id=...)`` takes."""
        with self._acc_lock:
            found = self._accumulator.response_id
        return found if found is not None else self._response_id

    @property
    def sequence_number(self) -> Optional[int]:
        """The last ``sequence_number`` received: what ``starting_after=`` takes to resume after it."""
        with self._acc_lock:
            return self._accumulator.sequence_number

    # ------------------------------------------------------------------ requests

    def _query(self, starting_after: Optional[int]) -> Dict[str, Any]:
        query: Dict[str, Any] = dict(self._extra_query or {})
        query["stream"] = "true"
        if starting_after is not None:
            query["starting_after"] = starting_after
        return query

    def _get(self, response_id: str, starting_after: Optional[int], limits: Timeout) -> requests.Response:
        try:
            return self._transport.get(
                f"{self._request_path.rstrip('/')}/{response_id}",
                stream=True,
                timeout=limits,
                max_retries=self._max_retries,
                extra_headers=self._extra_headers,
                extra_query=self._query(starting_after),
            )
        except NotFoundError as exc:
            # The generic 404 hint ("check the model name and base_url") is wrong here.
            raise _response_not_found(exc, response_id, resuming=self._response_id is None) from None

    def _send(self, limits: Timeout) -> requests.Response:
        if self._response_id is not None:
            return self._get(self._response_id, self._starting_after, limits)
        return self._transport.post(
            self._request_path,
            self._body,
            stream=True,
            timeout=limits,
            max_retries=self._max_retries,
            extra_headers=self._extra_headers,
            extra_query=self._extra_query,
            replayable=self._replayable,
        )

    def _resume(self, error: BaseException, attempt: int, limits: Timeout) -> Optional[requests.Response]:
        if not self._auto_resume:
            return None
        allowed = self._transport.max_retries if self._max_retries is None else self._max_retries
        if attempt > allowed:
            return None
        response_id = self.response_id
        after = self.sequence_number
        if response_id is None or after is None:
            # Without the id there is nothing to ask for; without sequence numbers the server's
            # events cannot be matched against the ones received, so none could be skipped.
            log.info("cannot resume the stream (%s): no response id or sequence_number came", error)
            return None
        log.info(
            "the stream of response %s broke after event %d (%s); resuming (%d of %d)",
            response_id,
            after,
            error,
            attempt,
            allowed,
        )
        response = self._get(response_id, after, limits)
        self.resumes = attempt
        return response


def _response_not_found(error: NotFoundError, response_id: str, *, resuming: bool) -> NotFoundError:
    """``error`` (a 404 to ``GET /responses/{id}?stream=true``) saying what it means there and what to do.

    The fields (status, headers, body, request id, the HTTP response) are
    kept; the engine attaches the response received so far as ``completion``.
    """
    detail = error.body.get("message") if isinstance(error.body, Mapping) else None
    what = "resume the broken stream" if resuming else "stream it"
    message = (
        f"HTTP 404: response {response_id!r} was not found, so openai_stream could not {what}"
        f"{f' (the server said: {detail})' if isinstance(detail, str) and detail else ''}. "
        "Only a response created with background=True and store not false can be streamed again, "
        "while the server keeps it: it may not have been stored, may have expired, or may belong "
        "to another project or API key. Send the request again as a new response"
        + ("; what arrived before the break is on error.completion." if resuming else ".")
    )
    if error.request_id:
        message += f" [request id {error.request_id}]"
    found = copy.copy(error)  # every field kept (OpenAIError.__copy__), the message replaced
    found.message = message
    found.args = (message,)
    return found
