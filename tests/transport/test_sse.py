"""The SSE decoder against the WHATWG event-stream parsing rules, and why it is ours.

The ``*_sseclient_*`` tests document the gaps of sseclient-py (a test-only
dependency) that made us write a decoder: each shows sseclient-py getting a
body wrong that :class:`~openai_stream.sse.SSEDecoder` gets right.
"""

from __future__ import annotations

import json
import threading
import tracemalloc
from collections.abc import Iterable
from typing import Any

import pytest
import requests
from fault_server import FaultServer, chunk, close, dripping, head, script
from sseclient import SSEClient

import openai_stream
from openai_stream.transport._sse import DEFAULT_MAX_EVENT_BYTES, ServerSentEvent, SSEDecoder


def decode(pieces: Iterable[bytes], *, with_end: bool = True, **kwargs: Any) -> list[ServerSentEvent]:
    """Feed ``pieces`` one read at a time; the trailing event from end() is included."""
    decoder = SSEDecoder(**kwargs)
    events: list[ServerSentEvent] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    if with_end:
        last = decoder.end()
        if last is not None:
            events.append(last)
    return events


def datas(pieces: Iterable[bytes], **kwargs: Any) -> list[str]:
    return [event.data for event in decode(pieces, **kwargs)]


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


def sseclient_datas(pieces: Iterable[bytes]) -> list[str]:
    return [event.data for event in SSEClient(iter(list(pieces))).events()]


# --- fields, comments and frames ----------------------------------------------------------


def test_simple_events_and_defaults() -> None:
    events = decode([b"data: a\n\ndata: b\n\n"])
    assert events == [ServerSentEvent("message", "a"), ServerSentEvent("message", "b")]


def test_comment_lines_yield_nothing_and_are_counted() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": keep-alive\n\n:\n\n: OPENROUTER PROCESSING\n\ndata: x\n\n") == [
        ServerSentEvent("message", "x")
    ]
    assert decoder.comments == 3


def test_id_only_frame_dispatches_nothing_but_sets_last_event_id() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 41\n\n") == []
    assert decoder.last_event_id == "41"
    assert decoder.feed(b"data: x\n\n") == [ServerSentEvent("message", "x", "41")]


def test_id_with_nul_is_ignored() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\n\nid: a\x00b\n\n")
    assert decoder.last_event_id == "1"


def test_retry_only_frame_sets_retry_and_ignores_non_digits() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 3000\n\nretry: 12s\n\nretry: -1\n\n") == []
    assert decoder.retry == 3000
    assert decoder.feed(b"data: x\n\n")[0].retry == 3000


def test_event_only_frame_dispatches_nothing_and_resets_the_type() -> None:
    assert decode([b"event: ping\n\ndata: x\n\n"]) == [ServerSentEvent("message", "x")]


def test_named_event() -> None:
    assert decode([b"event: error\ndata: {}\n\n"]) == [ServerSentEvent("error", "{}")]


def test_empty_data_line_is_an_event_with_empty_data() -> None:
    # Per the spec, "data:" makes the data buffer "\n", so an event with "" is dispatched;
    # the stream ignores such events (see test_stream_ignores_empty_data_events).
    assert datas([b"data:\n\n"]) == [""]
    assert datas([b"data\n\n"]) == [""]


def test_data_without_space_and_only_one_space_is_removed() -> None:
    assert datas([b"data:x\n\ndata:  two spaces\n\n"]) == ["x", " two spaces"]


def test_multi_line_data_is_joined_with_lf() -> None:
    assert datas([b"data: a\ndata:\ndata: b\n\n"]) == ["a\n\nb"]


def test_unknown_fields_and_colonless_lines_are_ignored() -> None:
    assert datas([b"foo: bar\nbaz\ndata: x\n\n"]) == ["x"]


def test_field_names_are_case_sensitive() -> None:
    assert datas([b"Data: x\n\ndata: y\n\n"]) == ["y"]


def test_value_may_contain_colons() -> None:
    assert datas([b'data: {"a": "b:c"}\n\n']) == ['{"a": "b:c"}']


def test_blank_lines_between_events_are_harmless() -> None:
    assert datas([b"\n\n\ndata: a\n\n\n\n\ndata: b\n\n"]) == ["a", "b"]


# --- line terminators -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"data: a\n\ndata: b\n\n",
        b"data: a\r\n\r\ndata: b\r\n\r\n",
        b"data: a\r\rdata: b\r\r",
        b"data: a\r\n\ndata: b\r\r\n",
        b"data: a\n\r\ndata: b\r\n\n",
        b"data: a\r\n\rdata: b\n\r",
    ],
    ids=["lf", "crlf", "cr", "mixed1", "mixed2", "mixed3"],
)
def test_every_line_terminator_and_mixtures(body: bytes) -> None:
    assert datas([body]) == ["a", "b"]
    assert datas(bytewise(body)) == ["a", "b"]


def test_crlf_split_across_reads_is_one_line_end() -> None:
    # Were "\r" and "\n" two line ends, the blank line would end the event after "a".
    assert datas([b"data: a\r", b"\ndata: b\r\n\r\n"]) == ["a\nb"]


def test_crlf_split_with_an_empty_read_between() -> None:
    assert datas([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]) == ["a\nb"]


def test_cr_at_end_of_read_followed_by_data_is_a_line_end() -> None:
    assert datas([b"data: a\r", b"data: b\r\r"]) == ["a\nb"]


# --- UTF-8 and BOM ----------------------------------------------------------------------------


def test_utf8_characters_split_across_reads() -> None:
    text = "héllo ☃ 𝄞 日本"
    body = f"data: {text}\n\n".encode()
    assert datas(bytewise(body)) == [text]


def test_leading_bom_is_dropped() -> None:
    assert datas([b"\xef\xbb\xbfdata: a\n\n"]) == ["a"]


def test_leading_bom_split_across_reads() -> None:
    assert datas([b"\xef", b"\xbb", b"\xbfdata: a\n\n"]) == ["a"]
    assert datas([b"\xef\xbb", b"\xbfda", b"ta: a\n\n"]) == ["a"]


def test_only_the_first_bom_is_dropped() -> None:
    # A second BOM is part of the field name, so the line is an unknown field.
    assert datas([b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n"]) == ["b"]
    assert datas([b"data: a\n\n\xef\xbb\xbfdata: b\n\n"]) == ["a"]


def test_invalid_utf8_in_data_raises_with_a_bounded_prefix() -> None:
    decoder = SSEDecoder()
    with pytest.raises(openai_stream.InvalidStreamDataError) as info:
        decoder.feed(b"data: \xff\xfe" + b"x" * 10_000 + b"\n\n")
    assert "not valid UTF-8" in info.value.message
    assert len(info.value.message) < 400


def test_events_before_a_bad_line_in_the_same_read_come_first() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: \xff\n\ndata: c\n\n") == [ServerSentEvent("message", "a")]
    with pytest.raises(openai_stream.InvalidStreamDataError):
        decoder.raise_pending()
    decoder.raise_pending()  # raised once


@pytest.mark.parametrize("call", ["feed", "end"])
def test_a_kept_back_error_is_raised_by_the_next_call(call: str) -> None:
    decoder = SSEDecoder(max_event_bytes=100)
    assert len(decoder.feed(b"data: a\n\ndata: " + b"x" * 200 + b"\n\n")) == 1
    with pytest.raises(openai_stream.EventTooLargeError):
        decoder.feed(b"data: b\n\n") if call == "feed" else decoder.end()


# --- end of body ------------------------------------------------------------------------------


def test_end_returns_the_event_without_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}\n') == []
    assert decoder.end() == ServerSentEvent("message", '{"a": 1}')


def test_end_returns_an_unterminated_last_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]") == []
    assert decoder.end() == ServerSentEvent("message", "[DONE]")


def test_end_returns_a_half_line_for_the_caller_to_judge() -> None:
    decoder = SSEDecoder()
    decoder.feed(b'data: {"a": 1}\n\ndata: {"b"')
    last = decoder.end()
    assert last is not None and last.data == '{"b"'


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_end_inside_a_character_reads_as_an_unfinished_line(cut: int) -> None:
    decoder = SSEDecoder()
    decoder.feed(b'data: {"a": "' + "𝄞".encode()[:cut])
    last = decoder.end()
    assert last is not None and last.data == '{"a": "\ufffd'


def test_end_keeps_invalid_utf8_inside_the_line_an_error() -> None:
    decoder = SSEDecoder()
    decoder.feed(b'data: {"a": "\xff"}')
    with pytest.raises(openai_stream.InvalidStreamDataError):
        decoder.end()


def test_end_after_a_complete_body_returns_nothing() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n: trailing comment\n")
    assert decoder.end() is None


# --- size limit and memory --------------------------------------------------------------------


def test_one_mib_event_passes_at_the_default_limit() -> None:
    payload = "x" * (1024 * 1024)
    body = f"data: {payload}\n\n".encode()
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    assert datas(pieces) == [payload]


def test_event_over_the_limit_raises_for_one_long_line() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(openai_stream.EventTooLargeError) as info:
        decoder.feed(b"data: " + b"x" * 2000 + b"\n\n")
    assert "1000 bytes" in info.value.message and "max_event_bytes" in info.value.message


def test_event_over_the_limit_raises_for_many_data_lines() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(openai_stream.EventTooLargeError):
        for _ in range(100):
            decoder.feed(b"data: " + b"x" * 50 + b"\n")


def test_event_over_the_limit_raises_for_a_line_without_end() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(openai_stream.EventTooLargeError):
        for _ in range(100):
            decoder.feed(b"y" * 50)


def test_limit_is_per_event_not_per_stream() -> None:
    body = b"".join(b"data: " + b"x" * 500 + b"\n\n" for _ in range(100))
    assert len(datas([body], max_event_bytes=1000)) == 100


def test_200_mb_line_without_newline_stays_within_the_limit() -> None:
    size = 65536
    total = 200 * 1024 * 1024
    decoder = SSEDecoder()
    fed = 0
    first_error_at = None
    errors = 0
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        while fed < total:
            piece = b"z" * size  # a fresh buffer per read, as a socket gives
            fed += size
            try:
                decoder.feed(piece)
            except openai_stream.EventTooLargeError:
                errors += 1  # the stream stops at the first; the decoder stays bounded anyway
                if first_error_at is None:
                    first_error_at = fed
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first_error_at is not None and first_error_at <= DEFAULT_MAX_EVENT_BYTES + size
    assert errors == total // (DEFAULT_MAX_EVENT_BYTES + size)  # it recovers after each error
    assert peak - base <= DEFAULT_MAX_EVENT_BYTES + 4 * size


# --- sseclient-py's gaps (why openai_stream decodes server-sent events itself) ----------------


def test_sseclient_merges_events_on_mixed_terminators() -> None:
    body = b"data: a\n\r\ndata: b\n\n"
    assert sseclient_datas([body]) == ["a\nb"]
    assert datas([body]) == ["a", "b"]


def test_sseclient_loses_the_first_event_after_a_bom() -> None:
    body = b"\xef\xbb\xbfdata: a\n\ndata: b\n\n"
    assert sseclient_datas([body]) == ["b"]
    assert datas([body]) == ["a", "b"]


def test_sseclient_dispatches_an_incomplete_event_at_eof() -> None:
    body = b'data: {"a": 1}\n\ndata: {"b": tr'
    assert sseclient_datas([body]) == ['{"a": 1}', '{"b": tr']
    decoder = SSEDecoder()
    assert [e.data for e in decoder.feed(body)] == ['{"a": 1}']
    # Our decoder hands the rest to the caller, which raises for a half line
    # (test_reliability.test_half_line_at_eof_is_an_interruption).


def test_sseclient_has_no_size_limit() -> None:
    body = b"data: " + b"x" * (DEFAULT_MAX_EVENT_BYTES + 1) + b"\n\n"
    pieces = [body[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20)]
    assert [len(d) for d in sseclient_datas(pieces)] == [DEFAULT_MAX_EVENT_BYTES + 1]
    with pytest.raises(openai_stream.EventTooLargeError):
        decode(pieces)


# --- delivery timing on a real socket ---------------------------------------------------------

CHUNKS = [
    {"id": "c", "choices": [{"index": 0, "delta": {"content": "one"}}]},
    {"id": "c", "choices": [{"index": 0, "delta": {"content": "two"}}]},
    {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]
PIECES = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in CHUNKS] + [b"data: [DONE]\n\n"]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_handler_sees_an_event_while_the_server_holds_the_next(chunked: bool) -> None:
    gate = threading.Event()
    ending = chunk(b"") if chunked else close()
    handler = script(head(chunked=chunked), dripping(PIECES, hold=gate, chunked=chunked), ending)
    seen: list[str] = []
    with FaultServer(handler) as server:
        client = openai_stream.Client(api_key="k", base_url=server.base_url, max_retries=0, timeout=10)
        stream = client.chat.completions.stream(model="m", messages=[])

        @stream.on("chunk")
        def release(event: Any) -> None:
            seen.append(event.chunk["choices"][0]["delta"].get("content", ""))
            gate.set()  # only now does the server write the next piece

        completion = stream.until_done()
        client.close()
    assert server.errors == []
    assert seen == ["one", "two", ""]
    assert completion.choices[0].message.content == "onetwo"


def test_buffered_reading_of_a_close_delimited_body_waits_for_the_buffer() -> None:
    """Feeding sseclient-py with iter_content(8192) does not deliver the first event until the
    server gives up waiting: the reason iter_body reads with raw.read1."""
    gate = threading.Event()
    handler = script(
        head(chunked=False), dripping(PIECES, hold=gate, chunked=False, hold_timeout=1.0), close()
    )
    with FaultServer(handler) as server:
        response = requests.post(server.base_url + "/chat/completions", json={}, stream=True, timeout=10)
        first = next(iter(SSEClient(response.iter_content(8192)).events()))
        gave_up = list(server.errors)
        gate.set()
        response.close()
    assert json.loads(first.data)["choices"][0]["delta"]["content"] == "one"
    assert len(gave_up) == 1 and isinstance(gave_up[0], TimeoutError)


# --------------------------------------------------------------------------- one-event reads
def _one_by_one(reads: list[bytes], **kwargs: Any) -> list[ServerSentEvent]:
    decoder = SSEDecoder(**kwargs)
    events: list[ServerSentEvent] = []
    for data in reads:
        events += decoder.feed(data)
    return events


@pytest.mark.parametrize(
    "reads",
    [
        [b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"],
        [b"\xef\xbb\xbfdata: 1\n\n", b"data: 2\n\n"],  # the first read is checked for a BOM
        [b"event: error\n", b"data: 1\n\n", b"data: 2\n\n"],  # a pending event type
        [b"data: 1\r", b"\n\r\n", b"data: 2\n\n"],  # a CR waiting for its LF
        [b"data: 1\n", b"data: 2\n\n", b"data: 3\n\n"],  # a multi-line event in progress
        [b"da", b"ta: 1\n\n", b"data: 2\n\n"],  # a line in progress
        [b"id: 7\n\n", b"data: 1\n\n", b"retry: 5\n\n", b"data: 2\n\n"],
        [b"data: 1\n\n", b"data: two\nlines\n\n", b"data: 3\n\n"],
    ],
)
def test_reads_of_one_whole_event_decode_as_the_body_in_one_piece(reads: list[bytes]) -> None:
    assert _one_by_one(reads) == decode([b"".join(reads)])


def test_a_one_event_read_with_bad_utf8_is_a_typed_error() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n\n") == [ServerSentEvent("message", "1")]
    with pytest.raises(openai_stream.InvalidStreamDataError):
        decoder.feed(b"data: \xff\n\n")


def test_a_one_event_read_over_the_limit_is_too_large() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    assert decoder.feed(b"data: 1\n\n") == [ServerSentEvent("message", "1")]
    with pytest.raises(openai_stream.EventTooLargeError):
        decoder.feed(b"data: " + b"x" * 100 + b"\n\n")


def test_after_a_failed_read_the_next_one_is_not_taken_as_a_fresh_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n\n") == [ServerSentEvent("message", "1")]
    with pytest.raises(openai_stream.InvalidStreamDataError):
        decoder.feed(b"event: \xff\ndata: half")
    # the general path sees the line left in progress and joins it with the next read
    assert decoder.feed(b"data: 2\n\n") == decode([b"data: half" + b"data: 2\n\n"])
