"""ResponseAccumulator rule by rule: payloads written here, expectations derived by hand.

The recorded and documented transcripts are covered by test_responses_conformance.py;
these tests take each rule where the fixtures are silent (gaps, repeats, missing
indexes, snapshots that disagree with the deltas, malformed input) and check it alone.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from typing import Any, Dict, List, Optional

import pytest
from conftest import EXPECTED_RESPONSES, PACKAGE, RESPONSES_FIXTURES, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openai_stream import SSEDecoder
from openai_stream.engine._events import (
    ContentDeltaEvent,
    ContentDoneEvent,
    DoneEvent,
    ErrorEvent,
    StructuredContentDoneEvent,
    ToolCallDeltaEvent,
    ToolCallDoneEvent,
)
from openai_stream.errors import (
    APIError,
    BadRequestError,
    InternalServerError,
    InvalidStreamDataError,
    RateLimitError,
    StructuredOutputError,
    ToolArgumentsError,
)
from openai_stream.responses._accumulator import ResponseAccumulator
from openai_stream.responses._events import (
    CustomToolCallDeltaEvent,
    CustomToolCallDoneEvent,
    ResponseCompletionEvent,
    ResponseDeltaEvent,
    ResponseLifecycleEvent,
    ResponseOutputItemEvent,
    ResponseReasoningDeltaEvent,
    ResponseReasoningDoneEvent,
    ResponseStreamEvent,
    ResponseUsageEvent,
)

FIXTURES = RESPONSES_FIXTURES
EXPECTED = EXPECTED_RESPONSES


# --------------------------------------------------------------------------- builders
def created(rid: str = "resp_1", **fields: Any) -> Dict[str, Any]:
    return {
        "type": "response.created",
        "response": {"id": rid, "object": "response", "status": "in_progress", **fields},
    }


def completed(output: Optional[List[Any]] = None, rid: str = "resp_1", **fields: Any) -> Dict[str, Any]:
    response: Dict[str, Any] = {"id": rid, "object": "response", "status": "completed", **fields}
    if output is not None:
        response["output"] = output
    return {"type": "response.completed", "response": response}


def message_added(item_id: str, **extra: Any) -> Dict[str, Any]:
    item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    return {"type": "response.output_item.added", "item": item, **extra}


def part_added(item_id: str, **extra: Any) -> Dict[str, Any]:
    return {
        "type": "response.content_part.added",
        "item_id": item_id,
        "part": {"type": "output_text", "text": ""},
        **extra,
    }


def text_delta(item_id: Optional[str], delta: str, **extra: Any) -> Dict[str, Any]:
    payload: Dict[str, Any] = {"type": "response.output_text.delta", "delta": delta, **extra}
    if item_id is not None:
        payload["item_id"] = item_id
    return payload


def call_added(item_id: str, name: str, call_id: str, kind: str = "function_call") -> Dict[str, Any]:
    key = "input" if kind == "custom_tool_call" else "arguments"
    item = {"id": item_id, "type": kind, "call_id": call_id, "name": name, key: ""}
    return {"type": "response.output_item.added", "item": item}


def feed_all(acc: ResponseAccumulator, payloads: List[Dict[str, Any]]) -> List[Any]:
    events: List[Any] = []
    for payload in payloads:
        events.extend(acc.feed(payload))
    return events


def high(events: List[Any]) -> List[Any]:
    return [e for e in events if not isinstance(e, ResponseStreamEvent)]


def texts(response: Any) -> List[str]:
    return [part["text"] for item in response.to_dict()["output"] for part in item.get("content", [])]


# --------------------------------------------------------------------------- keys and order
def test_items_are_keyed_by_item_id_when_no_index_is_sent() -> None:
    """llama.cpp's shape: no indexes; two items interleave, each delta names its item."""
    acc = ResponseAccumulator()
    feed_all(
        acc,
        [
            created(),
            message_added("msg_a"),
            part_added("msg_a"),
            message_added("msg_b"),
            part_added("msg_b"),
            text_delta("msg_b", "B1"),
            text_delta("msg_a", "A1"),
            text_delta("msg_b", "B2"),
            text_delta("msg_a", "A2"),
        ],
    )
    response = acc.response()
    assert [item.id for item in response.output] == ["msg_a", "msg_b"]  # arrival order
    assert texts(response) == ["A1A2", "B1B2"]
    assert response.output_text == "A1A2B1B2"
    assert response.status == "in_progress"


def test_output_index_names_the_item_when_item_id_is_missing() -> None:
    acc = ResponseAccumulator()
    feed_all(
        acc,
        [
            message_added("msg_a", output_index=0),
            message_added("msg_b", output_index=1),
            text_delta(None, "second", output_index=1, content_index=0),
            text_delta(None, "first", output_index=0, content_index=0),
        ],
    )
    assert texts(acc.response()) == ["first", "second"]


def test_without_any_key_a_delta_goes_to_the_newest_item_of_its_kind() -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [message_added("msg_a"), call_added("fc_1", "f", "call_1"), text_delta(None, "hi")])
    assert acc.response().to_dict()["output"][0]["content"][0]["text"] == "hi"


def test_without_content_index_new_text_after_a_finished_part_starts_a_new_part() -> None:
    acc = ResponseAccumulator()
    events = feed_all(
        acc,
        [
            message_added("m"),
            part_added("m"),
            text_delta("m", "one"),
            {"type": "response.output_text.done", "item_id": "m", "text": "one"},
            part_added("m"),
            text_delta("m", "two"),
            {"type": "response.output_text.done", "item_id": "m", "text": "two"},
        ],
    )
    assert texts(acc.response()) == ["one", "two"]
    assert [e.content for e in events if isinstance(e, ContentDoneEvent)] == ["one", "two"]


def test_text_after_a_part_was_finished_goes_to_a_new_part_not_the_finished_one() -> None:
    """Without indexes or a new content_part.added, a finished part's text stays what its done said."""
    acc = ResponseAccumulator()
    events = feed_all(
        acc,
        [
            message_added("m"),
            text_delta("m", "one"),
            {"type": "response.output_text.done", "item_id": "m", "text": "one"},
            text_delta("m", "two"),
        ],
    )
    events += acc.end()
    assert texts(acc.response()) == ["one", "two"]
    assert [e.content for e in events if isinstance(e, ContentDoneEvent)] == ["one", "two"]


def test_an_item_named_before_it_is_announced_is_created_and_then_filled_in() -> None:
    acc = ResponseAccumulator()
    events = feed_all(acc, [text_delta("m", "early"), message_added("m"), text_delta("m", " late")])
    item = acc.response().to_dict()["output"][0]
    assert item["role"] == "assistant" and item["content"][0]["text"] == "early late"
    assert [e.delta for e in events if isinstance(e, ContentDeltaEvent)] == ["early", " late"]


def test_an_item_announced_twice_keeps_the_first_announcement() -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [message_added("m"), text_delta("m", "x"), message_added("m")])
    assert texts(acc.response()) == ["x"] and len(acc.response().output) == 1


# --------------------------------------------------------------------------- sequence numbers
def numbered(payloads: List[Dict[str, Any]], numbers: List[int]) -> List[Dict[str, Any]]:
    return [dict(p, sequence_number=n) for p, n in zip(payloads, numbers)]


def test_a_sequence_gap_is_counted_and_the_event_still_applied() -> None:
    acc = ResponseAccumulator()
    payloads = numbered(
        [created(), message_added("m"), text_delta("m", "a"), text_delta("m", "c")], [0, 1, 2, 5]
    )
    feed_all(acc, payloads)
    assert (acc.sequence_gaps, acc.missed_events, acc.repeated_events) == (1, 2, 0)
    assert acc.sequence_number == 5
    assert texts(acc.response()) == ["ac"]


def test_a_repeated_sequence_number_is_counted_and_not_applied_twice() -> None:
    acc = ResponseAccumulator()
    base = [created(), message_added("m"), text_delta("m", "a"), text_delta("m", "b")]
    payloads = numbered(base, [0, 1, 2, 3]) + numbered([text_delta("m", "b"), text_delta("m", "a")], [3, 2])
    events = feed_all(acc, payloads)
    assert acc.repeated_events == 2 and acc.sequence_gaps == 0
    assert texts(acc.response()) == ["ab"]
    assert len([e for e in events if isinstance(e, ContentDeltaEvent)]) == 2
    assert acc.chunk_count == 6


def test_no_sequence_numbers_means_nothing_is_checked() -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [text_delta("m", "a"), text_delta("m", "a")])
    assert acc.sequence_number is None and acc.repeated_events == 0
    assert texts(acc.response()) == ["aa"]


# --------------------------------------------------------------------------- the final word
def test_the_completed_snapshot_is_the_final_word_on_the_output() -> None:
    final_item = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
    }
    acc = ResponseAccumulator()
    events = feed_all(
        acc, [created(), message_added("m"), part_added("m"), text_delta("m", "Hel"), completed([final_item])]
    )
    assert acc.response().output_text == "Hello!"  # not the "Hel" the deltas built
    assert [e.content for e in events if isinstance(e, ContentDoneEvent)] == ["Hello!"]
    assert acc.response().to_dict()["output"] == [final_item]


def test_a_snapshot_without_output_is_filled_from_what_the_events_built() -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [created(), message_added("m"), part_added("m"), text_delta("m", "built"), completed([])])
    data = acc.response().to_dict()
    assert data["status"] == "completed"
    assert data["output"][0]["content"] == [
        {"type": "output_text", "text": "built", "annotations": [], "logprobs": []}
    ]


def test_items_the_snapshot_does_not_list_are_kept_after_it() -> None:
    listed = {"id": "m2", "type": "message", "role": "assistant", "status": "completed", "content": []}
    acc = ResponseAccumulator()
    feed_all(acc, [message_added("m1"), text_delta("m1", "kept"), message_added("m2"), completed([listed])])
    assert [i["id"] for i in acc.response().to_dict()["output"]] == ["m2", "m1"]
    assert acc.response().output_text == "kept"


def test_fields_beside_the_response_on_the_terminal_event_are_kept() -> None:
    acc = ResponseAccumulator()
    payload = completed([], usage={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3})
    payload["timings"] = {"predicted_n": 2}
    events = feed_all(acc, [created(), payload])
    assert acc.response().timings.predicted_n == 2
    (usage,) = [e.usage for e in events if isinstance(e, ResponseUsageEvent)]
    assert usage.to_dict() == {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1, 2, 3)  # chat names too
    assert acc.response().to_dict()["usage"]["output_tokens"] == 2


def test_an_item_done_event_is_the_final_word_on_its_item() -> None:
    done = {
        "type": "response.output_item.done",
        "item": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "fixed", "annotations": [], "logprobs": []}],
        },
    }
    acc = ResponseAccumulator()
    feed_all(acc, [message_added("m"), part_added("m"), text_delta("m", "fix"), done])
    assert acc.response().to_dict()["output"] == [done["item"]]


def test_text_that_arrives_only_whole_still_gives_one_delta_and_its_done() -> None:
    """A server that skips the deltas (or a stream of only created + completed) reaches chat handlers."""
    item = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "whole", "annotations": [], "logprobs": []}],
    }
    call = {
        "id": "fc",
        "type": "function_call",
        "call_id": "call_1",
        "name": "f",
        "arguments": '{"a":1}',
        "status": "completed",
    }
    acc = ResponseAccumulator()
    events = high(feed_all(acc, [created(), completed([item, call])]) + acc.end())
    assert [type(e).__name__ for e in events] == [
        "ContentDeltaEvent",
        "ContentDoneEvent",
        "ToolCallDeltaEvent",
        "ToolCallDeltaEvent",
        "ToolCallDoneEvent",
        "DoneEvent",
        "ResponseCompletionEvent",
    ]
    assert events[0].delta == "whole" and events[1].content == "whole"
    assert (events[2].arguments_delta, events[3].arguments_delta) == ("", '{"a":1}')
    assert events[4].parsed_arguments == {"a": 1}
    assert events[5].finish_reason == "tool_calls"


# --------------------------------------------------------------------------- terminal outcomes
def test_incomplete_completes_with_status_and_details_and_finish_reason_length() -> None:
    acc = ResponseAccumulator()
    incomplete = {
        "type": "response.incomplete",
        "response": {
            "id": "resp_1",
            "object": "response",
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [],
        },
    }
    events = feed_all(acc, [created(), message_added("m"), text_delta("m", "cut"), incomplete])
    assert acc.is_complete
    assert not any(isinstance(e, ErrorEvent) for e in events)
    assert [e.finish_reason for e in events if isinstance(e, DoneEvent)] == ["length"]
    response = acc.end()[-1].completion
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "cut"


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ({"code": "server_error", "message": "boom"}, InternalServerError),
        ({"code": "rate_limit_exceeded", "message": "slow"}, RateLimitError),
        ({"code": "invalid_prompt", "message": "no"}, BadRequestError),
        ({"code": "something_new", "message": "?"}, APIError),
    ],
)
def test_failed_maps_its_error_code_and_carries_the_partial_response(error: Dict[str, Any], cls: Any) -> None:
    acc = ResponseAccumulator()
    failed = {
        "type": "response.failed",
        "response": {"id": "resp_1", "object": "response", "status": "failed", "error": error, "output": []},
    }
    events = feed_all(acc, [created(), message_added("m"), text_delta("m", "partial"), failed])
    assert isinstance(events[-2], ResponseLifecycleEvent) and events[-2].type == "response.failed"
    exc: Any = events[-1].error
    assert type(exc) is cls and exc.code == error["code"]
    assert error["message"] in str(exc)
    assert exc.completion.status == "failed" and exc.completion.output_text == "partial"
    assert not acc.is_complete
    assert not any(isinstance(e, (DoneEvent, ContentDoneEvent)) for e in events)


def test_failed_without_an_error_object_is_still_an_api_error() -> None:
    acc = ResponseAccumulator()
    events = feed_all(acc, [{"type": "response.failed", "response": {"id": "r", "status": "failed"}}])
    exc: Any = events[-1].error
    assert exc.completion.status == "failed"
    assert type(exc) is APIError and "without an error object" in str(exc)


@pytest.mark.parametrize(
    ("payload", "cls"),
    [
        (
            {"type": "error", "code": "rate_limit_exceeded", "message": "slow down", "param": None},
            RateLimitError,
        ),
        (
            {"type": "error", "error": {"type": "invalid_request_error", "code": "x", "message": "bad"}},
            BadRequestError,
        ),
        ({"type": "error", "code": 503, "message": "overloaded"}, InternalServerError),
        ({"error": {"code": 429, "message": "no type at all"}}, RateLimitError),
    ],
)
def test_the_error_event_is_one_typed_error_event(payload: Dict[str, Any], cls: type) -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [created(), text_delta("m", "so far")])
    events = acc.feed(payload)
    assert len(events) == 1 and isinstance(events[0], ErrorEvent)  # not also a raw "error" event
    assert type(events[0].error) is cls
    error: Any = events[0].error
    assert error.completion.output_text == "so far"


def test_a_terminal_event_sent_twice_emits_its_events_once() -> None:
    acc = ResponseAccumulator()
    events = feed_all(acc, [created(), text_delta("m", "a"), completed([]), completed([])])
    assert [type(e).__name__ for e in high(events)] == ["ContentDeltaEvent", "ContentDoneEvent", "DoneEvent"]
    assert [type(e).__name__ for e in acc.end()] == ["ResponseCompletionEvent"]


def test_end_without_a_terminal_event_closes_parts_then_done_then_completion() -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [message_added("m"), text_delta("m", "a")])
    assert not acc.is_complete
    closing = acc.end()
    assert [type(e).__name__ for e in closing] == ["ContentDoneEvent", "DoneEvent", "ResponseCompletionEvent"]
    assert closing[1].finish_reason is None
    assert acc.end() == []


# --------------------------------------------------------------------------- bad input
def test_a_chat_chunk_is_refused_with_a_hint() -> None:
    acc = ResponseAccumulator()
    with pytest.raises(InvalidStreamDataError, match=r"chat\.completions\.stream"):
        acc.feed({"id": "x", "object": "chat.completion.chunk", "choices": []})


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    acc = ResponseAccumulator()
    with pytest.raises(InvalidStreamDataError, match="JSON object"):
        acc.feed([1, 2])  # type: ignore[arg-type]


def test_a_malformed_event_raises_with_its_own_event_and_the_response_so_far() -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [message_added("m"), text_delta("m", "good")])
    with pytest.raises(InvalidStreamDataError) as info:
        acc.feed({"type": "response.output_text.delta", "item_id": "m", "delta": 7})
    error: Any = info.value
    assert "could not understand" in str(error) and "delta" in str(error)
    assert [e.type for e in error.events] == ["response.output_text.delta"]
    assert error.completion.output_text == "good"
    with pytest.raises(InvalidStreamDataError):
        acc.feed({"type": "response.output_item.added", "item": "nope"})
    with pytest.raises(InvalidStreamDataError):
        acc.feed({"type": "response.created", "response": None})


def test_a_second_response_in_the_body_is_refused_naming_n() -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [created("resp_a"), text_delta("m", "first")])
    with pytest.raises(InvalidStreamDataError, match="`n`") as info:
        acc.feed(created("resp_b"))
    partial: Any = info.value.completion
    assert partial.id == "resp_a" and partial.output_text == "first"


def test_unknown_events_come_out_as_generic_server_events() -> None:
    acc = ResponseAccumulator()
    events = acc.feed({"type": "response.future_thing.happened", "item_id": "x", "detail": {"a": 1}})
    assert len(events) == 1 and type(events[0]) is ResponseStreamEvent
    assert events[0].detail.a == 1 and events[0].sequence_number is None
    with pytest.raises(AttributeError):
        _ = events[0].nothing_like_this
    assert acc.response().output == []


# --------------------------------------------------------------------------- typed server events
def test_server_events_are_typed_and_missing_documented_fields_read_none() -> None:
    acc = ResponseAccumulator()
    events = feed_all(acc, [created(), message_added("m"), text_delta("m", "hi")])
    lifecycle, added, delta = events[0], events[1], events[2]
    assert isinstance(lifecycle, ResponseLifecycleEvent) and lifecycle.response.id == "resp_1"
    assert isinstance(added, ResponseOutputItemEvent) and added.item.role == "assistant"
    assert isinstance(delta, ResponseDeltaEvent) and delta.type == "response.output_text.delta"
    assert (delta.delta, delta.item_id, delta.output_index, delta.content_index) == ("hi", "m", None, None)
    assert delta.to_dict() == text_delta("m", "hi")


# --------------------------------------------------------------------------- tool calls
def test_tool_calls_are_numbered_among_tool_calls_and_parse_their_arguments() -> None:
    acc = ResponseAccumulator()
    events = feed_all(
        acc,
        [
            message_added("m"),
            text_delta("m", "calling"),
            call_added("fc_1", "get_weather", "call_1"),
            {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": '{"city": "Pa'},
            {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": 'ris"}'},
            {
                "type": "response.function_call_arguments.done",
                "item_id": "fc_1",
                "arguments": '{"city": "Paris"}',
            },
            call_added("fc_2", "get_time", "call_2"),
            {"type": "response.function_call_arguments.done", "item_id": "fc_2", "arguments": "{oops"},
        ],
    )
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert [(e.index, e.call_id, e.name, e.arguments_delta) for e in deltas] == [
        (0, "call_1", "get_weather", ""),
        (0, "call_1", "get_weather", '{"city": "Pa'),
        (0, "call_1", "get_weather", 'ris"}'),
        (1, "call_2", "get_time", ""),
        (1, "call_2", "get_time", "{oops"),
    ]
    assert deltas[1].partial_arguments == {"city": "Pa"} and deltas[0].choice_index == 0
    done = [e for e in events if isinstance(e, ToolCallDoneEvent)]
    assert [(e.index, e.arguments) for e in done] == [(0, '{"city": "Paris"}'), (1, "{oops")]
    assert done[0].parsed_arguments == {"city": "Paris"}
    with pytest.raises(ToolArgumentsError, match="get_time"):
        _ = done[1].parsed_arguments
    calls = [i for i in acc.response().to_dict()["output"] if i["type"] == "function_call"]
    assert [c["arguments"] for c in calls] == ['{"city": "Paris"}', "{oops"]


def test_a_custom_tool_call_keeps_its_input_as_text() -> None:
    acc = ResponseAccumulator()
    events = feed_all(
        acc,
        [
            call_added("ctc", "code_exec", "call_9", kind="custom_tool_call"),
            {"type": "response.custom_tool_call_input.delta", "item_id": "ctc", "delta": "print("},
            {"type": "response.custom_tool_call_input.delta", "item_id": "ctc", "delta": "1)"},
            {"type": "response.custom_tool_call_input.done", "item_id": "ctc", "input": "print(1)"},
        ],
    )
    deltas = [e for e in events if isinstance(e, CustomToolCallDeltaEvent)]
    assert deltas[1].partial_arguments == "print(" and deltas[2].partial_arguments == "print(1)"
    (done,) = [e for e in events if isinstance(e, CustomToolCallDoneEvent)]
    assert done.type == "tool_call.done" and done.parsed_arguments == "print(1)" == done.arguments
    assert acc.response().to_dict()["output"][0]["input"] == "print(1)"


# --------------------------------------------------------------------------- reasoning, annotations, tools
def test_reasoning_events_say_which_reasoning_they_carry() -> None:
    acc = ResponseAccumulator()
    events = high(
        feed_all(
            acc,
            [
                {
                    "type": "response.output_item.added",
                    "item": {"id": "rs", "type": "reasoning", "summary": []},
                },
                {
                    "type": "response.reasoning_summary_part.added",
                    "item_id": "rs",
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""},
                },
                {
                    "type": "response.reasoning_summary_text.delta",
                    "item_id": "rs",
                    "summary_index": 0,
                    "delta": "S",
                },
                {"type": "response.reasoning_text.delta", "item_id": "rs", "delta": "R"},
            ],
        )
        + acc.end()
    )
    kinds = [(type(e).__name__, getattr(e, "kind", None)) for e in events]
    assert kinds[:2] == [
        ("ResponseReasoningDeltaEvent", "reasoning_summary_text"),
        ("ResponseReasoningDeltaEvent", "reasoning_text"),
    ]
    dones = [e for e in events if isinstance(e, ResponseReasoningDoneEvent)]
    assert [(e.kind, e.reasoning) for e in dones] == [
        ("reasoning_summary_text", "S"),
        ("reasoning_text", "R"),
    ]
    item = acc.response().to_dict()["output"][0]
    assert item["summary"] == [{"type": "summary_text", "text": "S"}]
    assert item["content"] == [{"type": "reasoning_text", "text": "R"}]
    assert isinstance(events[0], ResponseReasoningDeltaEvent) and events[0].snapshot == "S"


def test_annotations_and_logprobs_accumulate_on_their_part() -> None:
    citation = {
        "type": "url_citation",
        "url": "https://example.com",
        "start_index": 0,
        "end_index": 2,
        "title": "t",
    }
    acc = ResponseAccumulator()
    feed_all(
        acc,
        [
            message_added("m"),
            part_added("m"),
            text_delta("m", "Hi", logprobs=[{"token": "Hi", "logprob": -0.1}]),
            {
                "type": "response.output_text.annotation.added",
                "item_id": "m",
                "annotation_index": 0,
                "annotation": citation,
            },
            text_delta("m", "!", logprobs=[{"token": "!", "logprob": -0.2}]),
        ],
    )
    part = acc.response().to_dict()["output"][0]["content"][0]
    assert part["annotations"] == [citation]
    assert [lp["token"] for lp in part["logprobs"]] == ["Hi", "!"]


def test_a_hosted_tool_call_follows_its_progress_events() -> None:
    acc = ResponseAccumulator()
    feed_all(
        acc,
        [
            {
                "type": "response.output_item.added",
                "item": {"id": "ws", "type": "web_search_call", "status": "in_progress"},
            },
            {"type": "response.web_search_call.searching", "item_id": "ws"},
        ],
    )
    assert acc.response().output[0].status == "searching"
    assert not [
        e for e in acc.end() if isinstance(e, (ToolCallDeltaEvent, ToolCallDoneEvent))
    ]  # not a tool to run


# --------------------------------------------------------------------------- structured output
SCHEMA_TEXT = {"format": {"type": "json_schema", "name": "p", "schema": {"type": "object"}}}


def test_structured_output_gives_parsed_on_content_done_and_the_response() -> None:
    acc = ResponseAccumulator(text=SCHEMA_TEXT)
    events = feed_all(acc, [message_added("m"), text_delta("m", '{"a": '), text_delta("m", "1}")]) + acc.end()
    (done,) = [e for e in events if isinstance(e, ContentDoneEvent)]
    assert isinstance(done, StructuredContentDoneEvent) and done.parsed == {"a": 1}
    response = events[-1].completion
    assert response.parsed == {"a": 1} and response.to_dict()["parsed"] == {"a": 1}


def test_structured_output_that_is_not_json() -> None:
    acc = ResponseAccumulator(text={"format": {"type": "json_object"}})
    events = feed_all(acc, [message_added("m"), text_delta("m", "not json")]) + acc.end()
    (done,) = [e for e in events if isinstance(e, ContentDoneEvent)]
    with pytest.raises(StructuredOutputError):
        _ = done.parsed
    assert events[-1].completion.parsed is None


def test_plain_text_requests_have_no_parsed() -> None:
    acc = ResponseAccumulator(text={"format": {"type": "text"}})
    events = feed_all(acc, [message_added("m"), text_delta("m", '{"a": 1}')]) + acc.end()
    (done,) = [e for e in events if isinstance(e, ContentDoneEvent)]
    assert type(done) is ContentDoneEvent and done.parsed is None
    assert "parsed" not in events[-1].completion.to_dict() and events[-1].completion.parsed is None


# --------------------------------------------------------------------------- chat handlers, unchanged
def chat_style_handler(log: List[str]) -> Any:
    """A handler as written for chat streams: it reads only the chat events' fields."""

    def handle(event: Any) -> None:
        if event.type == "content.delta":
            log.append(f"{event.choice_index}:{event.delta}|{event.snapshot}")
        elif event.type == "content.done":
            log.append(f"done:{event.content}")
        elif event.type == "tool_call.done":
            log.append(f"call {event.index} {event.name} {event.parsed_arguments}")
        elif event.type == "done":
            log.append(f"finish:{event.finish_reason}")
        elif event.type == "completion":
            log.append(f"completion:{type(event.completion).__name__}")

    return handle


def test_a_chat_handler_runs_unchanged_on_a_responses_stream() -> None:
    log: List[str] = []
    handle = chat_style_handler(log)
    acc = ResponseAccumulator()
    payloads = [
        json.loads(line[6:])
        for line in (FIXTURES / "openai-function-call.sse").read_text().splitlines()
        if line.startswith("data: ")
    ]
    for event in feed_all(acc, payloads) + acc.end():
        handle(event)
    assert log == [
        "call 0 get_weather {'location': 'Paris, France'}",
        "finish:tool_calls",
        "completion:Response",
    ]
    log.clear()
    acc = ResponseAccumulator()
    for event in feed_all(acc, [message_added("m"), text_delta("m", "Hi"), text_delta("m", "!")]) + acc.end():
        handle(event)
    assert log == ["0:Hi|Hi", "0:!|Hi!", "done:Hi!", "finish:None", "completion:Response"]


# --------------------------------------------------------------------------- cost
def test_feeding_never_builds_the_response(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots are built only when read: a whole long stream is fed without one response() call."""
    calls: List[int] = []
    original = ResponseAccumulator.response

    def counting(self: ResponseAccumulator) -> Any:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(ResponseAccumulator, "response", counting)
    acc = ResponseAccumulator()
    feed_all(acc, [created(), message_added("m"), part_added("m")])
    for n in range(5000):
        acc.feed(text_delta("m", f"w{n} "))
    assert calls == []
    closing = acc.end()
    assert len(calls) == 1 and closing[-1].completion.output_text.startswith("w0 w1 ")


# --------------------------------------------------------------------------- sans-I/O
def test_the_responses_modules_import_no_transport_or_emitter() -> None:
    """Imported without openai_stream/__init__.py (stubbed), they pull in no requests, sockets or pyee."""
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('openai_stream'); pkg.__path__ = [{str(PACKAGE)!r}]\n"
        "sys.modules['openai_stream'] = pkg\n"
        "import openai_stream.responses._accumulator, openai_stream.responses._events\n"
        "bad = sorted(m for m in ('requests', 'urllib3', 'pyee', 'socket', 'ssl', 'http.client', 'selectors')"
        " if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


# --------------------------------------------------------------------------- hypothesis
OPENAI_SHAPED = sorted(p.stem for p in FIXTURES.glob("openai-*.sse"))
INDEX_FIELDS = ("output_index", "content_index", "summary_index", "annotation_index")


def fixture_payloads(name: str) -> List[Dict[str, Any]]:
    decoder = SSEDecoder()
    events = decoder.feed((FIXTURES / f"{name}.sse").read_bytes())
    return [json.loads(e.data) for e in events]


def summary(acc: ResponseAccumulator, payloads: List[Dict[str, Any]]) -> Any:
    """The high-level events (type and text) and the final response of a run that stops at an error."""
    out: List[Any] = []
    for payload in payloads:
        events = acc.feed(payload)
        out.extend(events)
        if any(isinstance(e, ErrorEvent) for e in events):
            break
    else:
        if acc.is_complete:
            out.extend(acc.end())
    described: List[Any] = []
    for event in high(out):
        if isinstance(event, ResponseCompletionEvent):
            described.append(("completion", None))
        elif isinstance(event, ErrorEvent):
            described.append(("error", type(event.error).__name__))
        else:
            values = event.to_dict().values()
            described.append((event.type, tuple(v for v in values if isinstance(v, (str, int)) or v is None)))
    return described, acc.response().to_dict()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(OPENAI_SHAPED), seed=st.integers(0, 2**32 - 1))
def test_dropping_index_fields_changes_nothing(name: str, seed: int) -> None:
    """Without indexes (as llama.cpp sends), items and parts are found by item_id and arrival."""
    rng = random.Random(seed)
    payloads = fixture_payloads(name)
    expected = summary(
        ResponseAccumulator(text=json.loads((EXPECTED / f"{name}.json").read_text())["text_param"]), payloads
    )
    stripped = []
    for payload in payloads:
        payload = dict(payload)
        for key in (*INDEX_FIELDS, "sequence_number"):
            if key in payload and rng.random() < 0.5:
                del payload[key]
        stripped.append(payload)
    text_param = json.loads((EXPECTED / f"{name}.json").read_text())["text_param"]
    assert summary(ResponseAccumulator(text=text_param), stripped) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(OPENAI_SHAPED), seed=st.integers(0, 2**32 - 1))
def test_repeated_events_change_nothing_but_the_count(name: str, seed: int) -> None:
    """Events sent again (as an overlapping resume would) are dropped by their sequence_number."""
    rng = random.Random(seed)
    payloads = fixture_payloads(name)
    text_param = json.loads((EXPECTED / f"{name}.json").read_text())["text_param"]
    expected = summary(ResponseAccumulator(text=text_param), payloads)
    noisy: List[Dict[str, Any]] = []
    repeats = 0
    for n, payload in enumerate(payloads):
        noisy.append(payload)
        if n and rng.random() < 0.3:
            noisy.append(payloads[rng.randrange(0, n + 1)])
            repeats += 1
    acc = ResponseAccumulator(text=text_param)
    assert summary(acc, noisy) == expected
    assert acc.repeated_events <= repeats  # fewer when the stream stopped at an error first


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(p.stem for p in FIXTURES.glob("*.sse"))), data=st.data())
def test_random_splits_of_the_body_give_the_same_response(name: str, data: Any) -> None:
    body = (FIXTURES / f"{name}.sse").read_bytes()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=30)))
    decoder = SSEDecoder()
    sse: List[Any] = []
    previous = 0
    for cut in [*cuts, len(body)]:
        sse.extend(decoder.feed(body[previous:cut]))
        previous = cut
    trailing = decoder.end()
    if trailing is not None:
        sse.append(trailing)
    text_param = json.loads((EXPECTED / f"{name}.json").read_text())["text_param"]
    acc = ResponseAccumulator(text=text_param)
    try:
        for event in sse:
            acc.feed(json.loads(event.data))
    except InvalidStreamDataError:
        assert name == "llamacpp-n2-two-responses"
    assert acc.response().to_dict() == json.loads((EXPECTED / f"{name}.json").read_text())["response"]


# --------------------------------------------------------------------------- review findings


@pytest.mark.parametrize("field", ["item_id", "output_index", "content_index"])
def test_a_text_delta_with_an_unhashable_key_is_invalid_data_not_a_type_error(field: str) -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [created(), message_added("msg_1"), part_added("msg_1"), text_delta("msg_1", "Hi")])
    bad = text_delta("msg_1", " there")
    bad[field] = ["x"]
    with pytest.raises(InvalidStreamDataError):
        acc.feed(bad)


def test_a_tool_fragment_after_its_done_event_fails_the_stream_as_in_chat() -> None:
    acc = ResponseAccumulator()
    feed_all(acc, [created(), call_added("fc_1", "transfer", "call_1")])
    args = {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": '{"amount": 5}'}
    done = {"type": "response.function_call_arguments.done", "item_id": "fc_1", "arguments": '{"amount": 5}'}
    feed_all(acc, [args, done])
    late = {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": "00}"}
    with pytest.raises(InvalidStreamDataError, match="after the call was done") as info:
        acc.feed(late)
    output = info.value.completion.to_dict()["output"]
    calls = [item for item in output if item.get("type") == "function_call"]
    assert calls[0]["arguments"] == '{"amount": 5}'  # never appended
