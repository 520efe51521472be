"""Events are frozen, slotted objects (issue 10, section 4): never equal across types, never tuples."""

from __future__ import annotations

import copy
import pickle
from typing import Any, List

import pytest

import openai_stream
from openai_stream.engine._events import TextBuffer

EVENT_CLASSES: List[Any] = [
    openai_stream.ResponseEvent,
    openai_stream.ChunkEvent,
    openai_stream.ContentDeltaEvent,
    openai_stream.ContentDoneEvent,
    openai_stream.StructuredContentDoneEvent,
    openai_stream.RefusalDeltaEvent,
    openai_stream.RefusalDoneEvent,
    openai_stream.ReasoningDeltaEvent,
    openai_stream.ReasoningDoneEvent,
    openai_stream.ToolCallDeltaEvent,
    openai_stream.ToolCallDoneEvent,
    openai_stream.UsageEvent,
    openai_stream.DoneEvent,
    openai_stream.CompletionEvent,
    openai_stream.ErrorEvent,
]


def samples() -> List[Any]:
    buffer = TextBuffer()
    end = buffer.append("x")
    usage = openai_stream.Usage({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})
    return [
        openai_stream.ResponseEvent(200, {"x-request-id": "r"}, "r"),
        openai_stream.ChunkEvent({"id": "c"}),
        openai_stream.ContentDeltaEvent(0, "x", buffer, end),
        openai_stream.ContentDoneEvent(0, "x"),
        openai_stream.StructuredContentDoneEvent(0, "{}"),
        openai_stream.RefusalDeltaEvent(0, "x", buffer, end),
        openai_stream.RefusalDoneEvent(0, "x"),
        openai_stream.ReasoningDeltaEvent(0, "x", buffer, end),
        openai_stream.ReasoningDoneEvent(0, "x"),
        openai_stream.ToolCallDeltaEvent(0, 0, "c", "f", "x", buffer, end),
        openai_stream.ToolCallDoneEvent(0, 0, "c", "f", "{}"),
        openai_stream.UsageEvent(usage),
        openai_stream.DoneEvent(0, "stop"),
        openai_stream.CompletionEvent(openai_stream.ChatCompletion({"id": "c"})),
        openai_stream.ErrorEvent(openai_stream.APIError("boom")),
    ]


def test_every_event_class_is_exported_and_sampled() -> None:
    assert [type(e) for e in samples()] == EVENT_CLASSES
    assert {cls.type for cls in EVENT_CLASSES} == set(openai_stream.EVENT_TYPES)
    for cls in EVENT_CLASSES:
        assert getattr(openai_stream, cls.__name__) is cls


def test_events_of_different_types_with_the_same_values_are_not_equal() -> None:
    assert openai_stream.ContentDoneEvent(0, "x") != openai_stream.RefusalDoneEvent(0, "x")
    assert openai_stream.ContentDoneEvent(0, "x") != openai_stream.ReasoningDoneEvent(0, "x")
    assert openai_stream.ContentDoneEvent(0, "x") == openai_stream.ContentDoneEvent(0, "x")
    assert hash(openai_stream.ContentDoneEvent(0, "x")) != hash(openai_stream.RefusalDoneEvent(0, "x"))
    assert len({openai_stream.ContentDoneEvent(0, "x"), openai_stream.RefusalDoneEvent(0, "x")}) == 2
    assert openai_stream.DoneEvent(0, "stop") != (0, "stop")


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_events_never_unpack_as_tuples_and_are_immutable(event: Any) -> None:
    assert not isinstance(event, tuple)
    with pytest.raises(TypeError):
        iter(event)
    with pytest.raises(AttributeError, match="immutable"):
        event.type = "other"
    with pytest.raises(AttributeError):
        event.anything = 1
    assert not hasattr(event, "__dict__")  # slotted


@pytest.mark.parametrize("event", samples(), ids=lambda e: type(e).__name__)
def test_events_pickle_copy_and_show_their_fields(event: Any) -> None:
    for clone in (pickle.loads(pickle.dumps(event)), copy.copy(event), copy.deepcopy(event)):
        assert type(clone) is type(event)
        assert clone.to_dict().keys() == event.to_dict().keys()
    assert repr(event).startswith(type(event).__name__ + "(")
    assert list(event.to_dict()) == list(event._fields)


def test_delta_events_keep_their_snapshot_and_compare_by_place_in_the_text() -> None:
    buffer = TextBuffer()
    first = openai_stream.ContentDeltaEvent(0, "a", buffer, buffer.append("a"))
    second = openai_stream.ContentDeltaEvent(0, "b", buffer, buffer.append("b"))
    assert (first.snapshot, second.snapshot) == ("a", "ab")
    assert first != second and first == openai_stream.ContentDeltaEvent(0, "a", buffer, 1)
    assert pickle.loads(pickle.dumps(second)).snapshot == "ab"


def test_lazy_parsed_values_are_computed_once_on_frozen_events() -> None:
    done = openai_stream.StructuredContentDoneEvent(0, '{"a": [1]}')
    assert done.parsed is done.parsed == {"a": [1]}
    call = openai_stream.ToolCallDoneEvent(0, 0, "c", "f", '{"x": 1}')
    assert call.parsed_arguments is call.parsed_arguments == {"x": 1}


def test_a_text_buffer_settles_on_an_equal_whole_text_only() -> None:
    buffer = TextBuffer()
    pieces = [f"w{i} " for i in range(TextBuffer.BLOCK * 2 + 7)]  # two merged blocks and some parts
    for piece in pieces:
        buffer.append(piece)
    whole = "".join(pieces)
    assert not buffer.settle(whole[:-1] + "x") and not buffer.settle(whole + "x")
    assert buffer._state[0] != (whole,)  # unchanged by a text that differs
    assert buffer.settle(whole) and buffer._state == ((whole,), [])
    assert buffer.text() == whole and buffer.text(5) == whole[:5] and buffer.length == len(whole)
    buffer.append("more")
    assert buffer.text() == whole + "more"
