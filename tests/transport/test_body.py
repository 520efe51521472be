"""The body reader on byte sequences alone: no pyee, no threads, no client, no socket.

Every branch of :class:`openai_stream.transport._body.BodyReader`: SSE framing,
``[DONE]`` (padded too), error frames, the trailing event, a whole JSON
answer, a relabelled or foreign content type, the end of a body that is or is
not complete, and the idle deadline with its shortened and restored reads.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Iterator, List, Optional, Union

import pytest

from openai_stream import (
    APIError,
    APITimeoutError,
    EventTooLargeError,
    InvalidStreamDataError,
    RateLimitError,
    StreamInterruptedError,
)
from openai_stream.errors import error_from_payload
from openai_stream.transport._body import BodyReader

Chunk = Union[bytes, BaseException, float]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def script(items: Iterable[Chunk], clock: Optional[Clock] = None) -> Iterator[bytes]:
    """Bytes as a body would give them; a float advances the clock; an exception is raised there."""
    for item in items:
        if isinstance(item, float):
            assert clock is not None
            clock.now += item
        elif isinstance(item, BaseException):
            raise item
        else:
            yield item


def reader(
    chunks: Iterable[Chunk],
    *,
    content_type: str = "text/event-stream",
    finished: bool = True,
    clock: Optional[Clock] = None,
    timeouts: Optional[List[Optional[float]]] = None,
    **kwargs: Any,
) -> BodyReader:
    return BodyReader(
        script(chunks, clock),
        content_type=content_type,
        error_for=lambda payload: error_from_payload(payload),
        finished=lambda: finished,
        clock=clock or Clock(),
        set_read_timeout=timeouts.append if timeouts is not None else None,
        **kwargs,
    )


def data(payload: Dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


A, B = {"n": 1}, {"n": 2}


# --------------------------------------------------------------------------- framing and [DONE]


def test_payloads_in_order_and_done_stops_reading() -> None:
    body = reader([data(A) + data(B), b"data: [DONE]\n\n", b"data: {never read}\n\n"])
    assert list(body) == [A, B]
    assert body.done and body.payloads == 2


@pytest.mark.parametrize("line", [b"data:  [DONE]\n\n", b"data: [DONE] \n\n", b"data: \t[DONE]\r\n\r\n"])
def test_done_padded_with_whitespace_ends_the_stream(line: bytes) -> None:
    body = reader([data(A), line], finished=False)
    assert list(body) == [A]
    assert body.done


def test_an_empty_data_field_carries_nothing() -> None:
    assert list(reader([b"data:\n\n", data(A), b"data: \n\n"])) == [A]


def test_a_data_line_that_is_not_json_is_invalid_data() -> None:
    with pytest.raises(InvalidStreamDataError, match="not valid JSON"):
        list(reader([data(A), b"data: {oops\n\n"]))


# --------------------------------------------------------------------------- error frames


def test_an_error_frame_raises_the_error_its_payload_maps_to() -> None:
    error = {"error": {"code": "rate_limit_exceeded", "message": "slow"}}
    frame = b"event: error\ndata: " + json.dumps(error).encode()
    with pytest.raises(RateLimitError, match="slow"):
        list(reader([data(A), frame + b"\n\n"]))


@pytest.mark.parametrize("text", [b"[DONE]", b"  [DONE] ", b"upstream failed", b""])
def test_an_error_frame_without_json_is_an_error_not_the_end(text: bytes) -> None:
    with pytest.raises(APIError, match="error event"):
        list(reader([data(A), b"event: error\ndata: " + text + b"\n\n"], finished=True))


def test_a_trailing_error_frame_without_its_blank_line_raises() -> None:
    frame = b"event: error\ndata: " + json.dumps({"error": {"message": "late"}}).encode()
    with pytest.raises(APIError, match="late"):
        list(reader([data(A), frame]))


def test_a_trailing_error_frame_with_done_raises() -> None:
    with pytest.raises(APIError, match="error event"):
        list(reader([data(A), b"event: error\ndata: [DONE]"]))


# --------------------------------------------------------------------------- the end of the body


def test_a_trailing_whole_event_without_its_blank_line_is_taken() -> None:
    body = reader([data(A), b"data: " + json.dumps(B).encode()])
    assert list(body) == [A, B]
    assert not body.done


def test_a_trailing_done_without_its_blank_line_ends_the_stream() -> None:
    body = reader([data(A), b"data: [DONE]"], finished=False)
    assert list(body) == [A] and body.done


def test_a_trailing_half_line_is_an_interruption() -> None:
    with pytest.raises(StreamInterruptedError, match="middle of an event"):
        list(reader([data(A), b'data: {"n": ']))


def test_the_end_without_done_is_complete_only_when_the_answer_says_so() -> None:
    assert list(reader([data(A)], finished=True)) == [A]
    with pytest.raises(StreamInterruptedError, match="no \\[DONE\\] and no finish_reason"):
        list(reader([data(A)], finished=False))
    with pytest.raises(StreamInterruptedError, match=r"no response\.completed"):
        list(reader([data(A)], finished=False, unfinished="no response.completed"))


def test_received_counts_the_body_bytes() -> None:
    chunks = [data(A), b": ping\n\n", data(B)]
    body = reader(chunks)
    list(body)
    assert body.received == sum(len(c) for c in chunks)


# --------------------------------------------------------------------------- content types


def test_a_whole_json_answer_is_one_payload() -> None:
    answer = {"id": "x", "choices": []}
    raw = json.dumps(answer).encode()
    body = reader([raw[:5], raw[5:]], content_type="application/json")
    assert list(body) == [answer]


def test_a_whole_json_error_answer_raises_its_error() -> None:
    answer = json.dumps({"error": {"code": 429, "message": "later"}}).encode()
    with pytest.raises(RateLimitError):
        list(reader([answer], content_type="application/json; charset=utf-8"))


def test_a_whole_json_answer_is_bounded_and_must_be_json() -> None:
    with pytest.raises(EventTooLargeError):
        list(reader([b"[" + b"1," * 100, b"1]"], content_type="application/json", max_event_bytes=64))
    with pytest.raises(InvalidStreamDataError, match="not valid JSON"):
        list(reader([b"<html>"], content_type="application/json"))


def test_a_relabelled_event_stream_is_decoded_all_the_same() -> None:
    assert list(reader([data(A)], content_type="text/plain")) == [A]


def test_a_page_that_holds_no_event_is_not_a_stream() -> None:
    with pytest.raises(InvalidStreamDataError, match="not an event stream") as info:
        list(reader([b"<html><title>Log in to the Wi-Fi</title></html>"], content_type="text/html"))
    assert "Log in to the Wi-Fi" in info.value.message


def test_a_missing_content_type_is_taken_as_sse_and_never_refused() -> None:
    with pytest.raises(StreamInterruptedError):
        list(reader([b"<html>"], content_type="", finished=False))


# --------------------------------------------------------------------------- the idle deadline


def test_comments_alone_trip_the_idle_deadline_once_it_passed() -> None:
    clock = Clock()
    body = reader([b": ping\n\n", 0.4, b": ping\n\n", 0.7, b": ping\n\n"], clock=clock, idle_timeout=1.0)
    with pytest.raises(APITimeoutError, match="idle_timeout"):
        list(body)


def test_the_next_read_is_shortened_to_the_deadline_and_restored_when_data_flows() -> None:
    clock = Clock()
    timeouts: List[Optional[float]] = []
    chunks: List[Chunk] = [b": ping\n\n", 0.25, b": ping\n\n", data(A), data(B)]
    body = reader(chunks, clock=clock, idle_timeout=1.0, read_timeout=30.0, timeouts=timeouts)
    assert list(body) == [A, B]
    # after each comment the next read may wait only for what is left of the second; after data: 30 s again
    assert timeouts == [1.0, 0.75, 30.0]


def test_a_read_that_times_out_while_shortened_is_the_idle_timeout() -> None:
    clock = Clock()
    timeouts: List[Optional[float]] = []
    chunks: List[Chunk] = [data(A), b": ping\n\n", APITimeoutError("read timed out")]
    with pytest.raises(APITimeoutError, match="idle_timeout"):
        list(reader(chunks, clock=clock, idle_timeout=2.0, read_timeout=30.0, timeouts=timeouts))
    assert timeouts == [2.0]


def test_a_read_timeout_that_is_not_the_idle_deadline_stays_a_read_timeout() -> None:
    timeout = APITimeoutError("the server sent nothing for longer than the read timeout")
    chunks: List[Chunk] = [data(A), timeout]
    with pytest.raises(APITimeoutError, match="read timeout") as info:
        list(reader(chunks, idle_timeout=60.0, read_timeout=5.0))
    assert "idle_timeout" not in info.value.message


def test_without_an_idle_timeout_the_socket_timeout_is_never_touched() -> None:
    timeouts: List[Optional[float]] = []
    assert list(reader([b": ping\n\n", data(A)], timeouts=timeouts)) == [A]
    assert timeouts == []


# --------------------------------------------------------------------------- named events (the Responses API)
NAMED = [
    b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta": "hi"}\n\n',
    b'event: caf\xc3\xa9\ndata: {"n": 3}\n\n',  # a name that is not plain ASCII: the general path
    b"event: response.done\ndata: [1, 2]\n\n",
    b'event: \ndata: {"n": 4}\n\n',  # an empty name is "message"
]


@pytest.mark.parametrize("read", NAMED)
def test_a_named_event_in_one_read_gives_what_it_gives_byte_by_byte(read: bytes) -> None:
    warm = data(A)  # after a whole event the next read may take a shortcut
    whole = list(reader([warm, read, read]))
    bytewise = list(reader([bytes([b]) for b in warm + read + read]))
    assert whole == bytewise and len(whole) == 3


def test_a_named_error_event_in_one_read_is_still_an_error_frame() -> None:
    frame = b'event: error\ndata: {"error": {"message": "busy", "code": "rate_limit_exceeded"}}\n\n'
    got: List[Any] = []
    with pytest.raises(RateLimitError):
        for payload in reader([data(A), frame, data(B)]):
            got.append(payload)
    assert got == [A]
