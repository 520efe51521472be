"""A sans-I/O decoder for server-sent events (the WHATWG ``text/event-stream`` format).

Bytes go in as they arrive, in pieces of any size; whole events come out.
Line ends may be LF, CRLF or CR, also split across pieces; a leading BOM is
dropped; comments and ``id:``/``retry:``-only frames yield nothing. Each event
is bounded by ``max_event_bytes`` so a stream without line ends cannot grow
memory without limit.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional

from ..errors import APIError, EventTooLargeError, InvalidStreamDataError

__all__ = ["ServerSentEvent", "SSEDecoder", "DEFAULT_MAX_EVENT_BYTES"]

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


class ServerSentEvent(NamedTuple):
    """One dispatched event: its type (``message`` unless named), data, last id and retry."""

    event: str
    data: str
    id: Optional[str] = None
    retry: Optional[int] = None


class SSEDecoder:
    """Decodes a byte stream into :class:`ServerSentEvent` objects.

    :meth:`feed` takes the next bytes and returns the events they complete.
    :meth:`end` is called once at the end of the body and returns the event
    whose lines all arrived but whose closing blank line did not (the caller
    decides whether such a trailing event is whole).

    A bad line (too large, not UTF-8) raises. When the same read completed
    good events before it, :meth:`feed` returns those first and keeps the
    error for :meth:`raise_pending` (or the next call), so nothing received is
    lost and the error still comes before any later event.
    """

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if isinstance(max_event_bytes, bool) or not isinstance(max_event_bytes, int) or max_event_bytes <= 0:
            raise ValueError(f"max_event_bytes must be a whole number above 0, got {max_event_bytes!r}")
        self.max_event_bytes = max_event_bytes
        self.last_event_id: Optional[str] = None
        self.retry: Optional[int] = None
        self.comments = 0
        self._pending: List[bytes] = []
        self._pending_size = 0
        self._skip_lf = False
        self._first_line = True
        self._data: List[bytes] = []
        self._event_type = ""
        self._event_size = 0
        self._error: Optional[APIError] = None
        # True when nothing of an event is held back from earlier reads: a read that is exactly one
        # whole data event may then skip the general path (here and in the body reader).
        self.at_boundary = False

    def raise_pending(self) -> None:
        """Raise the error kept back by the last :meth:`feed`, if any."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def feed(self, data: bytes) -> List[ServerSentEvent]:
        """Take the next bytes of the body; return the events they complete."""
        # The common read: one whole "data: ..." event, LF line ends, nothing held back.
        if (
            self.at_boundary
            and data[-2:] == b"\n\n"
            and data[:6] == b"data: "
            and data.find(b"\n", 6) == len(data) - 2
            and data.find(b"\r") < 0
            and len(data) <= self.max_event_bytes
        ):
            try:
                text = data[6:-2].decode("utf-8")
                return [ServerSentEvent("message", text, self.last_event_id, self.retry)]
            except UnicodeDecodeError:
                pass  # the general path below reports it
        self.at_boundary = False  # until this read is through: a read that raises leaves state behind
        events = self._feed(data)
        self.at_boundary = not (
            self._pending or self._skip_lf or self._data or self._event_type or self._error
        ) and not self._first_line
        return events

    def _feed(self, data: bytes) -> List[ServerSentEvent]:
        self.raise_pending()
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if b"\n" not in data and b"\r" not in data:
            if data:
                self._pending.append(data)
                self._pending_size += len(data)
                self._check_size(self._event_size + self._pending_size)
            return []
        if self._pending:
            self._pending.append(data)
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
        if b"\r" in data:
            if data[-1:] == b"\r":
                self._skip_lf = True
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        rest = lines.pop()
        if rest:
            self._pending.append(rest)
            self._pending_size = len(rest)
        events: List[ServerSentEvent] = []
        try:
            for line in lines:
                self._line(line, events)
            if rest:
                self._check_size(self._event_size + self._pending_size)
        except (EventTooLargeError, InvalidStreamDataError) as exc:
            if not events:
                raise
            self._error = exc  # the rest of this read is dropped: the stream is broken here
            self._reset()
        return events

    def end(self) -> Optional[ServerSentEvent]:
        """The end of the body: the event left without its closing blank line, if any."""
        self.at_boundary = False
        self.raise_pending()
        if self._pending:
            line = _mark_cut_character(b"".join(self._pending))
            self._pending.clear()
            self._pending_size = 0
            events: List[ServerSentEvent] = []
            self._line(line, events)
            if events:
                return events[0]
        if not self._data:
            return None
        events = []
        self._line(b"", events)
        return events[0] if events else None

    def _line(self, line: bytes, events: List[ServerSentEvent]) -> None:
        if self._first_line:
            self._first_line = False
            if line.startswith(_BOM):
                line = line[3:]
        if line.startswith(b"data: "):
            self._data.append(line[6:])
            self._add_size(len(line))
        elif not line:
            if self._data:
                events.append(self._dispatch())
            self._event_type = ""
            self._event_size = 0
        elif line[0] == 58:  # b":" starts a comment
            self.comments += 1
        else:
            field, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                self._data.append(value)
                self._add_size(len(line))
            elif field == b"event":
                self._event_type = _decode(value, "event")
            elif field == b"id" and b"\0" not in value:
                self.last_event_id = _decode(value, "id")
            elif field == b"retry" and value.isdigit():
                self.retry = int(value)

    def _dispatch(self) -> ServerSentEvent:
        raw = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        return ServerSentEvent(
            self._event_type or "message", _decode(raw, "data"), self.last_event_id, self.retry
        )

    def _add_size(self, size: int) -> None:
        self._event_size += size + 1
        if self._event_size > self.max_event_bytes:
            self._check_size(self._event_size)

    def _check_size(self, size: int) -> None:
        if size > self.max_event_bytes:
            self._reset()
            raise EventTooLargeError(
                f"one server-sent event exceeded {self.max_event_bytes} bytes; "
                "raise max_event_bytes if the server really sends events this large"
            )

    def _reset(self) -> None:
        self._pending.clear()
        self._pending_size = 0
        self._data = []
        self._event_size = 0


def _mark_cut_character(line: bytes) -> bytes:
    """A line the body ended in: a character cut short becomes U+FFFD, so the line reads as
    unfinished rather than as invalid UTF-8."""
    start = len(line) - 1
    while start >= 0 and len(line) - start < 4 and 0x80 <= line[start] < 0xC0:
        start -= 1
    if start < 0 or line[start] < 0xC0:
        return line
    needed = 2 if line[start] < 0xE0 else 3 if line[start] < 0xF0 else 4
    if len(line) - start >= needed:
        return line
    return line[:start] + "\ufffd".encode()


def _decode(raw: bytes, field: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = raw[:120]
        raise InvalidStreamDataError(
            f"the {field} field of a server-sent event is not valid UTF-8 "
            f"({exc.reason} at byte {exc.start}): {prefix!r}",
            body=raw[:1024],
        ) from None
