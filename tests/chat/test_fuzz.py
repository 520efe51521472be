"""Property tests with hypothesis.

- SSE: random valid bodies, cut at random read boundaries (also inside CRLF
  pairs and UTF-8 characters), decode to the same events as in one piece and
  as an independent line-by-line reading of the spec.
- Chunks: random sequences of plausible and implausible chunks, fed to the
  accumulator and through the whole stream (decoder, stream, accumulator) with
  a socket-free fake response, never raise anything but openai_stream errors,
  and the concatenated deltas always equal the final content, refusal,
  reasoning and tool arguments.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

import openai_stream
from openai_stream import ChatCompletionAccumulator, ChatCompletionStream, ErrorEvent, OpenAIError, SSEDecoder
from openai_stream.transport._http import Transport
from openai_stream.transport._sse import ServerSentEvent

FUZZ = settings(
    max_examples=1200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- SSE bodies -------------------------------------------------------------------------------

TERMINATORS = st.sampled_from(["\n", "\r\n", "\r"])
VALUE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
FIELD_LINE = st.one_of(
    VALUE.map(lambda v: "data: " + v),
    VALUE.map(lambda v: "data:" + v),
    st.just("data"),
    st.just("data:"),
    VALUE.map(lambda v: ":" + v),  # comment
    VALUE.map(lambda v: "event: " + v),
    VALUE.map(lambda v: "id: " + v),
    st.just("id: a\x00b"),
    st.integers(0, 10**6).map(lambda n: f"retry: {n}"),
    VALUE.map(lambda v: "retry: " + v),
    VALUE.map(lambda v: "x-unknown: " + v),
    VALUE.map(lambda v: "Data: " + v),
)
EVENT = st.lists(st.tuples(FIELD_LINE, TERMINATORS), min_size=1, max_size=5)


@st.composite
def sse_bodies(draw: st.DrawFn) -> bytes:
    text = "\ufeff" if draw(st.booleans()) else ""
    for lines in draw(st.lists(EVENT, max_size=6)):
        text += "".join(line + end for line, end in lines) + draw(TERMINATORS)
    if draw(st.booleans()):  # a last event without its blank line, maybe without its line end
        line, end = draw(st.tuples(FIELD_LINE, st.sampled_from(["", "\n", "\r\n", "\r"])))
        text += line + end
    return text.encode()


@st.composite
def cuts(draw: st.DrawFn, body: bytes) -> list[bytes]:
    """``body`` in pieces: random boundaries, plus (sometimes) one inside every CRLF and character."""
    points = set(draw(st.lists(st.integers(0, len(body)), max_size=12)))
    if draw(st.booleans()):
        points.update(m.start() + 1 for m in re.finditer(b"\r\n", body))
    if draw(st.booleans()):
        points.update(i for i, b in enumerate(body) if 0x80 <= b < 0xC0)  # continuation bytes
    edges = [0, *sorted(p for p in points if 0 < p < len(body)), len(body)]
    return [body[a:b] for a, b in zip(edges, edges[1:])]


def decode_all(pieces: list[bytes]) -> tuple[list[ServerSentEvent], Optional[ServerSentEvent]]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    return events, decoder.end()


def reference(body: bytes) -> list[ServerSentEvent]:
    """The complete events of ``body``, read line by line as the WHATWG spec words it."""
    text = body.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split("\r\n|\r|\n", text)[:-1]  # the last piece has no line end yet
    events: list[ServerSentEvent] = []
    data, kind, last_id, retry = "", "", None, None
    for line in lines:
        if line == "":
            if data:
                events.append(ServerSentEvent(kind or "message", data[:-1], last_id, retry))
            data, kind = "", ""
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data += value + "\n"
        elif field == "event":
            kind = value
        elif field == "id" and "\x00" not in value:
            last_id = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


@FUZZ
@given(st.data())
def test_sse_decoding_does_not_depend_on_read_boundaries(data: st.DataObject) -> None:
    body = data.draw(sse_bodies())
    pieces = data.draw(cuts(body))
    assert b"".join(pieces) == body
    whole = decode_all([body])
    assert decode_all(pieces) == whole
    assert decode_all([body[i : i + 1] for i in range(len(body))]) == whole
    assert whole[0] == reference(body)


# --- chunks ------------------------------------------------------------------------------------

TEXT = st.text(max_size=5)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(), TEXT)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=4,
)


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


FUNCTION = optional(
    name=st.sampled_from(["f", "g", "", None]),
    arguments=st.one_of(TEXT, st.sampled_from(['{"a": ', "1}", "", None]), st.dictionaries(TEXT, JSON_LEAF)),
)
FRAGMENT = optional(
    index=st.one_of(st.integers(0, 3), st.none()),
    id=st.sampled_from(["call_a", "call_b", "call_c", "", None]),
    type=st.just("function"),
    function=FUNCTION,
)
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries(
        {
            "type": st.just("thinking"),
            "thinking": TEXT | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT})),
        }
    ),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": JSON}),
    TEXT,
)
DELTA = optional(
    role=st.just("assistant"),
    content=st.one_of(st.none(), TEXT, st.lists(PART, max_size=3)),
    refusal=st.one_of(st.none(), TEXT),
    reasoning_content=st.one_of(st.none(), TEXT),
    reasoning=st.one_of(st.none(), TEXT),
    tool_calls=st.lists(FRAGMENT, max_size=2),
    annotations=st.lists(JSON, max_size=2),
    provider_field=JSON,
)
CHOICE = optional(
    index=st.integers(0, 2),
    delta=st.one_of(st.none(), DELTA),
    finish_reason=st.sampled_from([None, "stop", "length", "tool_calls"]),
    logprobs=st.one_of(st.none(), st.fixed_dictionaries({"content": st.lists(JSON, max_size=2)})),
    citations=JSON,
)
PLAUSIBLE = optional(
    id=st.sampled_from(["chatcmpl-1", "", None]),
    model=st.sampled_from(["m", None]),
    created=st.integers(0, 2),
    choices=st.lists(CHOICE, max_size=2),
    usage=st.one_of(st.none(), st.fixed_dictionaries({"total_tokens": st.integers(0, 9)})),
    x_provider=JSON,
)
ERROR_CHUNK = st.fixed_dictionaries(
    {"error": optional(message=TEXT, code=st.one_of(st.integers(100, 600), TEXT), type=TEXT)}
)
IMPLAUSIBLE = st.one_of(
    JSON,
    st.fixed_dictionaries({"choices": JSON}),
    st.fixed_dictionaries({"choices": st.lists(JSON, max_size=2)}),
    st.fixed_dictionaries(
        {"choices": st.lists(st.fixed_dictionaries({"index": JSON, "delta": JSON}), max_size=2)}
    ),
    st.fixed_dictionaries(
        {
            "choices": st.lists(
                st.fixed_dictionaries(
                    {
                        "delta": st.dictionaries(
                            st.sampled_from(["content", "refusal", "reasoning", "tool_calls", "role"]), JSON
                        )
                    }
                ),
                max_size=2,
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "choices": st.just([{"index": 0}]).flatmap(
                lambda _: st.lists(
                    st.fixed_dictionaries(
                        {
                            "delta": st.fixed_dictionaries(
                                {
                                    "tool_calls": st.lists(
                                        st.dictionaries(st.sampled_from(["index", "id", "function"]), JSON),
                                        max_size=2,
                                    )
                                }
                            )
                        }
                    ),
                    max_size=1,
                )
            )
        }
    ),
    st.fixed_dictionaries({"usage": JSON, "choices": st.just([])}),
    ERROR_CHUNK,
)
# Half the sequences are plausible throughout; the others get an implausible chunk now and then.
CHUNK = st.one_of(PLAUSIBLE, PLAUSIBLE, PLAUSIBLE, PLAUSIBLE, PLAUSIBLE, IMPLAUSIBLE)
CHUNKS = st.lists(PLAUSIBLE, max_size=8) | st.lists(CHUNK, max_size=8)


def check_invariants(events: list[Any], completion: Any) -> None:
    """Deltas concatenate to the final texts; snapshots and done events agree with them."""
    texts: dict[tuple[str, int], str] = defaultdict(str)
    args: dict[tuple[int, int], str] = defaultdict(str)
    for event in events:
        kind = event.type
        if kind in ("content.delta", "refusal.delta", "reasoning.delta"):
            key = (kind.split(".")[0], event.choice_index)
            assert event.delta
            texts[key] += event.delta
            assert event.snapshot == texts[key]
        elif kind == "tool_call.delta":
            key2 = (event.choice_index, event.index)
            args[key2] += event.arguments_delta
            assert event.arguments_snapshot == args[key2]
        elif kind == "tool_call.done":
            assert event.arguments == args[(event.choice_index, event.index)]
        elif kind == "content.done":
            assert event.content == texts[("content", event.choice_index)]
        elif kind == "refusal.done":
            assert event.refusal == texts[("refusal", event.choice_index)]
        elif kind == "reasoning.done":
            assert event.reasoning == texts[("reasoning", event.choice_index)]
    final = completion.to_dict()
    seen_choices = {c["index"] for c in final["choices"]}
    assert {i for _, i in texts} <= seen_choices
    for choice in final["choices"]:
        index, message = choice["index"], choice["message"]
        reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
        finals = {
            "content": message.get("content") or "",
            "refusal": message.get("refusal") or "",
            "reasoning": reasoning,
        }
        # Complete or not: a chunk that fails half-way hands over the events it produced first.
        for kind, value in finals.items():
            assert value == texts[(kind, index)], (kind, index)
        for position, call in enumerate(message.get("tool_calls") or []):
            assert call["function"]["arguments"] == args[(index, position)]
    json.dumps(final)  # JSON-ready


@FUZZ
@given(CHUNKS)
def test_accumulator_never_raises_foreign_errors_and_deltas_add_up(chunks: list[Any]) -> None:
    accumulator = ChatCompletionAccumulator()
    events: list[Any] = []
    try:
        for chunk in chunks:
            produced = accumulator.feed(chunk)
            events.extend(produced)
            for event in produced:
                if isinstance(event, ErrorEvent):
                    raise event.error
        events.extend(accumulator.end())
    except OpenAIError as error:
        assert isinstance(error, openai_stream.APIError)
        assert error.completion is not None
        events.extend(getattr(error, "events", ()))
        check_invariants(events, error.completion)
        return
    assert events[-1].type == "completion"
    check_invariants(events, events[-1].completion)


# --- the whole pipeline without sockets --------------------------------------------------------


class FakeRaw:
    """Stands in for urllib3's response: read1 hands out the prepared pieces."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces: Iterator[bytes] = iter(pieces)
        self.decode_content = False

    def read1(self, size: int = -1) -> bytes:
        return next(self._pieces, b"")


class FakeResponse:
    status_code = 200

    def __init__(self, pieces: list[bytes], content_type: str) -> None:
        self.raw = FakeRaw(pieces)
        self.headers = CaseInsensitiveDict({"content-type": content_type, "x-request-id": "req_fuzz"})
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeTransport(Transport):
    """The real transport's configuration, with ``post`` answering the prepared response."""

    def __init__(self, response: FakeResponse) -> None:
        super().__init__(base_url="http://fuzz.invalid/v1", api_key="sk-fuzz")
        self.response = response

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.response


def encode(chunk: Any, end: str) -> bytes:
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + (end * 2).encode()


LINE_NOISE = st.sampled_from(
    [b": keep-alive\n\n", b"event: ping\n\n", b"id: 4\n\n", b"data:\n\n", b"retry: 10\n\n"]
)
BAD_LINES = st.sampled_from(
    [b"data: {oops\n\n", b"data: \xff\xfe\n\n", b"data: [1]\n\n", b"data: " + b"[" * 3000 + b"\n\n"]
)


@st.composite
def stream_bodies(draw: st.DrawFn) -> bytes:
    body = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    for chunk in draw(CHUNKS):
        if draw(st.integers(0, 5)) == 0:
            body += draw(LINE_NOISE)
        body += encode(chunk, draw(TERMINATORS))
    if draw(st.integers(0, 7)) == 0:
        body += draw(BAD_LINES)
    ending = draw(st.sampled_from(["done", "done-no-blank", "none", "cut"]))
    if ending == "done":
        body += b"data: [DONE]\n\n"
    elif ending == "done-no-blank":
        body += b"data: [DONE]"
    elif ending == "cut" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    return body


@settings(FUZZ, max_examples=800)
@given(st.data())
def test_stream_pipeline_never_raises_foreign_errors(data: st.DataObject) -> None:
    body = data.draw(stream_bodies())
    response = FakeResponse(data.draw(cuts(body)), "text/event-stream")
    stream = ChatCompletionStream(FakeTransport(response), {"model": "m"}, max_event_bytes=64 * 1024)
    errors: list[Any] = []
    stream.on("error", errors.append)
    events: list[Any] = []
    try:
        for event in stream:
            events.append(event)
    except OpenAIError as error:
        assert isinstance(error, openai_stream.APIError)
        assert (error.completion is None) == (not body)  # attached once any body byte arrived
        assert [e.error for e in errors] == [error]
        assert stream.state == "failed"
        if body:
            check_invariants(events, error.completion)
    else:
        assert events[-1].type == "completion" and stream.state == "done"
        check_invariants(events, events[-1].completion)
    assert response.closed


@settings(FUZZ, max_examples=500)
@given(st.lists(PLAUSIBLE, max_size=8), TERMINATORS, st.data())
def test_a_cut_body_is_complete_or_interrupted(chunks: list[Any], end: str, data: st.DataObject) -> None:
    body = b"".join(encode(chunk, end) for chunk in chunks) + b"data: [DONE]" + (end * 2).encode()
    body = body[: data.draw(st.integers(0, len(body)))]
    response = FakeResponse(data.draw(cuts(body)), "text/event-stream")
    stream = ChatCompletionStream(FakeTransport(response), {"model": "m"})
    events: list[Any] = []
    try:
        for event in stream:
            events.append(event)
    except openai_stream.StreamInterruptedError as error:
        assert (error.completion is None) == (not body)  # attached once any body byte arrived
        if body:
            check_invariants(events, error.completion)
    except openai_stream.InvalidStreamDataError:
        # Only when the chunks themselves break the protocol (a tool call after its choice
        # finished), never because of where the body was cut: the whole sequence fails too.
        with pytest.raises(openai_stream.InvalidStreamDataError):
            accumulator = ChatCompletionAccumulator()
            for chunk in chunks:
                accumulator.feed(chunk)
    else:
        check_invariants(events, events[-1].completion)
