"""The merging rules of ChatCompletionAccumulator (issue 2, "Accumulation"), one small stream each."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pytest

import openai_stream
from openai_stream import ChatCompletionAccumulator
from openai_stream.engine._events import TextBuffer
from openai_stream.errors import APIError, InvalidStreamDataError


# --------------------------------------------------------------------------- helpers
def choice(index: int = 0, finish: Optional[str] = None, **delta: Any) -> Dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish}


def chunk(*choices: Dict[str, Any], **top: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    data.update(top)
    data.setdefault("choices", list(choices))
    return data


def call(
    index: Optional[int] = None,
    id: Optional[str] = None,
    name: Optional[str] = None,
    arguments: Optional[str] = None,
    **extra: Any,
) -> Dict[str, Any]:
    fragment: Dict[str, Any] = dict(extra)
    if index is not None:
        fragment["index"] = index
    if id is not None:
        fragment["id"] = id
    function: Dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    fragment["function"] = function
    return fragment


def feed(acc: ChatCompletionAccumulator, data: Any) -> List[Any]:
    """acc.feed(data), typed loosely so tests can read any event's fields."""
    return list(acc.feed(data))


def end(acc: ChatCompletionAccumulator) -> List[Any]:
    return list(acc.end())


def feed_all(acc: ChatCompletionAccumulator, chunks: Iterable[Dict[str, Any]]) -> List[Any]:
    events: List[Any] = []
    for c in chunks:
        produced = feed(acc, c)
        assert produced[0].type == "chunk" and produced[0].chunk is c
        events.extend(produced)
    return events


def run(chunks: Iterable[Dict[str, Any]]) -> Tuple[List[Any], Dict[str, Any]]:
    acc = ChatCompletionAccumulator()
    events = feed_all(acc, chunks)
    events.extend(end(acc))
    assert events[-1].type == "completion"
    return events, events[-1].completion.to_dict()


def kinds(events: Iterable[Any], skip: Iterable[str] = ("chunk",)) -> List[str]:
    return [e.type for e in events if e.type not in skip]


def calls_of(completion: Dict[str, Any], choice_index: int = 0) -> List[Tuple[Any, ...]]:
    message = completion["choices"][choice_index]["message"]
    return [
        (c["id"], c["type"], c["function"]["name"], c["function"]["arguments"])
        for c in message.get("tool_calls") or []
    ]


def call_position(event: Any) -> Tuple[Any, Optional[int]]:
    """(type, call index) of a tool-call event; (type, None) for any other."""
    return (event.type, event.index if event.type.startswith("tool_call") else None)


# --------------------------------------------------------------------------- choices
def test_choices_may_first_appear_in_any_order() -> None:
    events, completion = run(
        [
            chunk(choice(2, content="c")),
            chunk(choice(0, content="a")),
            chunk(choice(1, content="b"), choice(2, finish="stop")),
            chunk(choice(0, finish="length")),
        ]
    )
    assert [c["index"] for c in completion["choices"]] == [0, 1, 2]
    assert [c["message"]["content"] for c in completion["choices"]] == ["a", "b", "c"]
    assert [c["finish_reason"] for c in completion["choices"]] == ["length", None, "stop"]
    deltas = [(e.choice_index, e.delta) for e in events if e.type == "content.delta"]
    assert deltas == [(2, "c"), (0, "a"), (1, "b")]
    dones = [(e.choice_index, e.finish_reason) for e in events if e.type == "done"]
    assert dones == [(2, "stop"), (0, "length"), (1, None)]  # choice 1 finished by end()


def test_repeated_finish_reason_finishes_once() -> None:
    events, completion = run(
        [
            chunk(choice(content="x")),
            chunk(choice(finish="stop")),
            chunk(choice(finish="stop", content="")),
        ]
    )
    assert kinds(events) == ["content.delta", "content.done", "done", "completion"]
    assert completion["choices"][0]["finish_reason"] == "stop"


# --------------------------------------------------------------------------- tool calls
def test_tool_call_id_type_name_take_first_non_empty_and_are_never_concatenated() -> None:
    # DeepSeek, Qwen and OpenRouter repeat the id (and sometimes type and name) in every chunk.
    fragments = [
        call(0, id="call_1", name="weather", arguments="", type="function"),
        call(0, id="call_1", name="weather", arguments='{"city"', type="function"),
        call(0, id="", arguments=': "Paris"}', type="function"),
        call(0, id="call_1", arguments="", type="function"),
        call(0, id="call_1", name="renamed", arguments="", type="other"),
    ]
    events, completion = run(
        [chunk(choice(tool_calls=[f])) for f in fragments] + [chunk(choice(finish="tool_calls"))]
    )
    assert calls_of(completion) == [("call_1", "function", "weather", '{"city": "Paris"}')]
    deltas = [e for e in events if e.type == "tool_call.delta"]
    assert [e.arguments_delta for e in deltas] == ["", '{"city"', ': "Paris"}']
    assert {(e.index, e.call_id, e.name) for e in deltas} == {(0, "call_1", "weather")}


def test_ollama_parallel_calls_all_at_index_0_with_distinct_ids_and_names() -> None:
    events, completion = run(
        [
            chunk(choice(tool_calls=[call(0, id="a", name="get_time", arguments='{"tz": "UTC"}')])),
            chunk(choice(tool_calls=[call(0, id="b", name="get_weather", arguments='{"city": "Oslo"}')])),
            chunk(choice(finish="tool_calls")),
        ]
    )
    assert calls_of(completion) == [
        ("a", "function", "get_time", '{"tz": "UTC"}'),
        ("b", "function", "get_weather", '{"city": "Oslo"}'),
    ]
    assert [(e.type, e.index) for e in events if e.type.startswith("tool_call")] == [
        ("tool_call.delta", 0),
        ("tool_call.done", 0),
        ("tool_call.delta", 1),
        ("tool_call.done", 1),
    ]


def test_lm_studio_new_id_with_empty_name_continues_the_call() -> None:
    events, completion = run(
        [
            chunk(choice(tool_calls=[call(0, id="id-1", name="search", arguments="")])),
            chunk(choice(tool_calls=[call(0, id="id-2", name="", arguments='{"q":')])),
            chunk(choice(tool_calls=[call(0, id="id-3", name="", arguments=' "x"}')])),
            chunk(choice(finish="tool_calls")),
        ]
    )
    assert calls_of(completion) == [("id-1", "function", "search", '{"q": "x"}')]
    assert sum(e.type == "tool_call.done" for e in events) == 1


def test_same_index_same_id_with_name_again_is_the_same_call() -> None:
    _, completion = run(
        [
            chunk(choice(tool_calls=[call(0, id="x", name="f", arguments="{")])),
            chunk(choice(tool_calls=[call(0, id="x", name="f", arguments="}")])),
        ]
    )
    assert calls_of(completion) == [("x", "function", "f", "{}")]


def test_fragments_without_index_are_matched_by_id() -> None:
    # Gemini and Mistral omit index; fragments belong to the call with their id.
    _, completion = run(
        [
            chunk(choice(tool_calls=[call(id="g1", name="a", arguments='{"x"')])),
            chunk(
                choice(tool_calls=[call(id="g1", arguments=": 1}"), call(id="g2", name="b", arguments="{")])
            ),
            chunk(choice(tool_calls=[call(id="g2", arguments="}")])),
            chunk(choice(finish="tool_calls")),
        ]
    )
    assert calls_of(completion) == [("g1", "function", "a", '{"x": 1}'), ("g2", "function", "b", "{}")]


def test_fragment_without_index_and_id_continues_the_last_call() -> None:
    _, completion = run(
        [
            chunk(choice(tool_calls=[call(id="m1", name="a", arguments="{")])),
            chunk(choice(tool_calls=[call(arguments='"k": 2')])),
            chunk(choice(tool_calls=[call(arguments="}")])),
        ]
    )
    assert calls_of(completion) == [("m1", "function", "a", '{"k": 2}')]


def test_fragment_without_index_and_id_and_no_call_yet_starts_one() -> None:
    events, completion = run(
        [chunk(choice(tool_calls=[call(name="solo", arguments="{}")], finish="tool_calls"))]
    )
    assert calls_of(completion) == [(None, "function", "solo", "{}")]
    assert kinds(events) == ["tool_call.delta", "tool_call.done", "done", "completion"]


def test_first_index_1_becomes_position_0() -> None:
    # Anthropic's compat API numbers the first call 1 (after a text block).
    events, completion = run(
        [
            chunk(choice(content="Reading it.")),
            chunk(choice(tool_calls=[call(1, id="toolu", name="read", arguments="")])),
            chunk(choice(tool_calls=[call(1, arguments='{"p": 1}')])),
            chunk(choice(finish="tool_calls")),
        ]
    )
    assert calls_of(completion) == [("toolu", "function", "read", '{"p": 1}')]
    assert {e.index for e in events if e.type.startswith("tool_call")} == {0}


def test_calls_are_listed_in_order_of_appearance_not_by_index() -> None:
    _, completion = run(
        [
            chunk(choice(tool_calls=[call(5, id="late", name="b", arguments="{}")])),
            chunk(choice(tool_calls=[call(2, id="early", name="a", arguments="{}")])),
        ]
    )
    assert [c[0] for c in calls_of(completion)] == ["late", "early"]


def test_whole_call_in_the_finishing_chunk_still_gets_tool_call_done() -> None:
    acc = ChatCompletionAccumulator()
    feed_all(acc, [chunk(choice(role="assistant", content=""))])
    last = feed(
        acc,
        chunk(choice(tool_calls=[call(id="w", name="weather", arguments='{"c": 1}')], finish="tool_calls")),
    )
    assert kinds(last) == ["tool_call.delta", "tool_call.done", "done"]
    done = last[2]
    assert (done.index, done.call_id, done.name, done.arguments) == (0, "w", "weather", '{"c": 1}')


def test_tool_call_done_comes_when_the_next_call_starts() -> None:
    acc = ChatCompletionAccumulator()
    first = feed_all(
        acc,
        [
            chunk(choice(tool_calls=[call(0, id="a", name="f", arguments="")])),
            chunk(choice(tool_calls=[call(0, arguments='{"x": 1}')])),
        ],
    )
    assert "tool_call.done" not in kinds(first)
    second = feed(acc, chunk(choice(tool_calls=[call(1, id="b", name="g", arguments="")])))
    assert [call_position(e) for e in second[1:]] == [
        ("tool_call.done", 0),
        ("tool_call.delta", 1),
    ]
    assert second[1].arguments == '{"x": 1}'
    rest = feed(acc, chunk(choice(tool_calls=[call(1, arguments="{}")], finish="tool_calls")))
    assert [call_position(e) for e in rest[1:]] == [
        ("tool_call.delta", 1),
        ("tool_call.done", 1),
        ("done", None),
    ]


def test_tool_calls_of_different_choices_do_not_close_each_other() -> None:
    events, completion = run(
        [
            chunk(choice(0, tool_calls=[call(0, id="a0", name="f", arguments="{")])),
            chunk(choice(1, tool_calls=[call(0, id="b0", name="f", arguments="{")])),
            chunk(choice(0, tool_calls=[call(0, arguments="}")])),
            chunk(choice(1, tool_calls=[call(0, arguments="}")])),
            chunk(choice(0, finish="tool_calls"), choice(1, finish="tool_calls")),
        ]
    )
    assert calls_of(completion, 0) == [("a0", "function", "f", "{}")]
    assert calls_of(completion, 1) == [("b0", "function", "f", "{}")]
    done = [(e.choice_index, e.call_id) for e in events if e.type == "tool_call.done"]
    assert done == [(0, "a0"), (1, "b0")]


def test_empty_argument_fragment_after_the_first_gives_no_event() -> None:
    events, _ = run(
        [
            chunk(choice(tool_calls=[call(0, id="a", name="f", arguments="")])),
            chunk(choice(tool_calls=[call(0, arguments="")])),
            chunk(choice(tool_calls=[call(0, arguments="{}")])),
        ]
    )
    assert [e.arguments_delta for e in events if e.type == "tool_call.delta"] == ["", "{}"]


# --------------------------------------------------------------------------- late tool-call fragments
def _late(chunks: List[Dict[str, Any]], late: Dict[str, Any]) -> Tuple[List[Any], InvalidStreamDataError]:
    acc = ChatCompletionAccumulator()
    events = feed_all(acc, chunks)
    with pytest.raises(InvalidStreamDataError) as info:
        acc.feed(late)
    return events, info.value


def test_a_call_with_empty_arguments_stays_open_when_the_next_call_starts() -> None:
    # Issue 10's reproduction: call 0 announced with "", call 1 starts, then call 0's arguments.
    # Call 0 was not complete, so it is not reported done before its arguments came.
    events, completion = run(
        [
            chunk(choice(role="assistant", tool_calls=[call(0, id="t0", name="transfer", arguments="")])),
            chunk(choice(tool_calls=[call(1, id="t1", name="audit", arguments="{}")])),
            chunk(choice(tool_calls=[call(0, arguments='{"amount": 500}')])),
            chunk(choice(finish="tool_calls")),
        ]
    )
    assert calls_of(completion) == [
        ("t0", "function", "transfer", '{"amount": 500}'),
        ("t1", "function", "audit", "{}"),
    ]
    assert [call_position(e) for e in events if e.type.startswith("tool_call")] == [
        ("tool_call.delta", 0),
        ("tool_call.delta", 1),
        ("tool_call.delta", 0),
        ("tool_call.done", 0),
        ("tool_call.done", 1),
    ]
    done = [e for e in events if e.type == "tool_call.done"]
    assert [e.arguments for e in done] == ['{"amount": 500}', "{}"]


def test_gemini_announces_parallel_calls_together_and_fills_them_afterwards() -> None:
    events, completion = run(
        [
            chunk(
                choice(
                    tool_calls=[
                        call(0, id="call-paris", name="get_weather", arguments=""),
                        call(1, id="call-london", name="get_weather", arguments=""),
                    ]
                )
            ),
            chunk(choice(tool_calls=[call(0, arguments='{"location":"Paris"}')])),
            chunk(choice(tool_calls=[call(1, arguments='{"location":"London"}')])),
            chunk(choice(finish="tool_calls")),
        ]
    )
    assert [c[3] for c in calls_of(completion)] == ['{"location":"Paris"}', '{"location":"London"}']
    assert [e.arguments for e in events if e.type == "tool_call.done"] == [
        '{"location":"Paris"}',
        '{"location":"London"}',
    ]


def test_a_new_call_closes_every_earlier_call_whose_arguments_are_a_whole_object() -> None:
    acc = ChatCompletionAccumulator()
    feed_all(
        acc,
        [
            chunk(choice(tool_calls=[call(0, id="a", name="f", arguments='{"x": 1}')])),
            chunk(choice(tool_calls=[call(1, id="b", name="g", arguments='{"y": ')])),
            chunk(choice(tool_calls=[call(2, id="c", name="h", arguments="[1]")])),
        ],
    )
    fourth = feed(acc, chunk(choice(tool_calls=[call(1, arguments="2}")])))
    assert [call_position(e) for e in fourth[1:]] == [("tool_call.delta", 1)]
    fifth = feed(acc, chunk(choice(tool_calls=[call(3, id="d", name="k", arguments="")])))
    # b is a whole object now; c's "[1]" is JSON but not an object, so it waits for the end.
    assert [call_position(e) for e in fifth[1:]] == [("tool_call.done", 1), ("tool_call.delta", 3)]
    assert [call_position(e) for e in end(acc) if e.type.startswith("tool_call")] == [
        ("tool_call.done", 2),
        ("tool_call.done", 3),
    ]


def test_fragment_for_a_call_done_when_the_next_started_fails_the_stream() -> None:
    late = chunk(choice(tool_calls=[call(0, arguments="00}")]))
    events, error = _late(
        [
            chunk(choice(role="assistant", tool_calls=[call(0, id="t0", name="transfer", arguments="")])),
            chunk(choice(tool_calls=[call(0, arguments='{"amount": 5}')])),
            chunk(choice(tool_calls=[call(1, id="t1", name="audit", arguments="{}")])),
        ],
        late,
    )
    assert [call_position(e) for e in events if e.type != "chunk"] == [
        ("tool_call.delta", 0),
        ("tool_call.delta", 0),
        ("tool_call.done", 0),
        ("tool_call.delta", 1),
    ]
    assert "tool call 0" in str(error) and "'transfer'" in str(error) and "retry" in str(error)
    assert error.body is late
    assert [e.type for e in error.events] == ["chunk"]  # no tool_call.delta after tool_call.done
    completion: Any = error.completion
    # Nothing of the late fragment was appended.
    assert calls_of(completion.to_dict()) == [
        ("t0", "function", "transfer", '{"amount": 5}'),
        ("t1", "function", "audit", "{}"),
    ]


def test_fragment_for_a_done_call_addressed_by_id_fails_the_stream() -> None:
    _, error = _late(
        [
            chunk(choice(tool_calls=[call(id="g1", name="a", arguments='{"x": 1}')])),
            chunk(choice(tool_calls=[call(id="g2", name="b", arguments="{}")])),
        ],
        chunk(choice(tool_calls=[call(id="g1", arguments=" ")])),
    )
    assert "'g1'" in str(error)


def test_fragment_whose_id_names_an_earlier_done_call_fails_even_at_a_reused_index() -> None:
    # Ollama puts every call at index 0; the id still says which call a fragment is for.
    _, error = _late(
        [
            chunk(choice(tool_calls=[call(0, id="a", name="get_time", arguments='{"tz": "UTC"}')])),
            chunk(choice(tool_calls=[call(0, id="b", name="get_weather", arguments="{}")])),
        ],
        chunk(choice(tool_calls=[call(0, id="a", arguments=" ")])),
    )
    completion: Any = error.completion
    assert [c.function.arguments for c in completion.choices[0].message.tool_calls] == [
        '{"tz": "UTC"}',
        "{}",
    ]


@pytest.mark.parametrize(
    "late",
    [call(0, arguments="}"), call(arguments="}"), call(1, id="new", name="g", arguments="{}")],
    ids=["same-index", "no-index-no-id", "new-call"],
)
def test_tool_call_fragment_after_the_choice_finished_fails_the_stream(late: Dict[str, Any]) -> None:
    events, error = _late(
        [chunk(choice(tool_calls=[call(0, id="a", name="f", arguments="{")], finish="tool_calls"))],
        chunk(choice(tool_calls=[late])),
    )
    assert kinds(events)[-1] == "done"
    assert [e.type for e in error.events] == ["chunk"]
    completion: Any = error.completion
    assert [c.function.arguments for c in completion.choices[0].message.tool_calls] == ["{"]


def test_the_late_fragment_fails_after_the_events_its_chunk_produced_before_it() -> None:
    _, error = _late(
        [
            chunk(choice(tool_calls=[call(0, id="a", name="f", arguments="{}")])),
            chunk(choice(tool_calls=[call(1, id="b", name="g", arguments="")])),
        ],
        chunk(choice(content="x", tool_calls=[call(1, arguments="{}"), call(0, arguments="{}")])),
    )
    assert [call_position(e) for e in error.events] == [
        ("chunk", None),
        ("content.delta", None),
        ("tool_call.delta", 1),
    ]


# --------------------------------------------------------------------------- usage and identity
def test_usage_keeps_the_last_non_null_value() -> None:
    first = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    last = {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}
    events, completion = run(
        [
            chunk(choice(content="a"), usage=first),
            chunk(choice(content="b"), usage=None),
            chunk(usage=last, choices=[]),
            chunk(choice(finish="stop"), usage=None),
        ]
    )
    assert completion["usage"] == last
    assert [e.usage.to_dict() for e in events if e.type == "usage"] == [first, last]
    assert all(isinstance(e.usage, openai_stream.Usage) for e in events if e.type == "usage")
    assert [e.usage for e in events if e.type == "usage"][-1] == events[-1].completion.usage


def test_identity_takes_the_first_non_empty_value() -> None:
    # Azure's first chunk is empty apart from prompt_filter_results.
    _, completion = run(
        [
            {
                "id": "",
                "model": "",
                "created": 0,
                "object": "",
                "choices": [],
                "prompt_filter_results": [{"i": 0}],
            },
            chunk(choice(content="x"), id="chatcmpl-1", model="gpt", created=10, system_fingerprint=None),
            chunk(choice(content="y"), id="other", model="other", created=20, system_fingerprint="fp_1"),
            chunk(choice(finish="stop"), id="", model="", created=0, system_fingerprint="fp_2"),
        ]
    )
    assert (completion["id"], completion["model"], completion["created"]) == ("chatcmpl-1", "gpt", 10)
    assert completion["system_fingerprint"] == "fp_1"
    assert completion["object"] == "chat.completion"
    assert completion["prompt_filter_results"] == [{"i": 0}]


# --------------------------------------------------------------------------- odd chunks and extras
def test_chunks_without_delta_and_empty_choices_never_crash() -> None:
    acc = ChatCompletionAccumulator()
    azure_filter = chunk(
        {"index": 0, "finish_reason": None, "content_filter_results": {"hate": {"filtered": False}}}
    )
    for c in (chunk(choices=[]), azure_filter, chunk(choice(0)), {"choices": None}, {}):
        assert kinds(feed(acc, c)) == []
    completion = acc.completion().to_dict()
    assert completion["choices"][0]["content_filter_results"] == {"hate": {"filtered": False}}
    assert completion["choices"][0]["message"]["content"] is None


def test_unknown_fields_are_kept_and_the_last_non_null_value_wins() -> None:
    citations = ["https://a", "https://b"]
    _, completion = run(
        [
            chunk(
                {
                    "index": 0,
                    "delta": {"content": "x", "executed_tools": [{"i": 0}], "thought": "sig-1"},
                    "native_finish_reason": None,
                },
                provider="P1",
                citations=citations[:1],
            ),
            chunk(
                {
                    "index": 0,
                    "delta": {"executed_tools": [{"i": 0, "out": "ok"}], "thought": None},
                    "native_finish_reason": "end_turn",
                    "finish_reason": "stop",
                },
                provider=None,
                citations=citations,
            ),
            chunk(choices=[], provider="P2"),
        ]
    )
    assert completion["provider"] == "P2"
    assert completion["citations"] == citations
    message = completion["choices"][0]["message"]
    assert message["executed_tools"] == [{"i": 0, "out": "ok"}]
    assert message["thought"] == "sig-1"
    assert completion["choices"][0]["native_finish_reason"] == "end_turn"
    obj = openai_stream.ChatCompletion(completion)
    assert obj.citations == citations and obj.choices[0].message.thought == "sig-1"


def test_unknown_fields_on_tool_calls_are_kept() -> None:
    # Gemini puts thought signatures on the call (extra_content).
    sig = {"google": {"thought_signature": "abc"}}
    _, completion = run(
        [chunk(choice(tool_calls=[call(0, id="t", name="f", arguments="{}", extra_content=sig)]))]
    )
    assert completion["choices"][0]["message"]["tool_calls"][0]["extra_content"] == sig


def test_annotations_are_appended() -> None:
    a1 = {"type": "url_citation", "url_citation": {"url": "https://one"}}
    a2 = {"type": "url_citation", "url_citation": {"url": "https://two"}}
    _, completion = run(
        [
            chunk(choice(content="", annotations=[a1])),
            chunk(choice(content="text", annotations=[a2])),
            chunk(choice(finish="stop", annotations=[])),
        ]
    )
    assert completion["choices"][0]["message"]["annotations"] == [a1, a2]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_is_kept_under_the_field_the_provider_used(field: str) -> None:
    other = "reasoning" if field == "reasoning_content" else "reasoning_content"
    first: Dict[str, Any] = {"role": "assistant", field: "", "content": None}
    second: Dict[str, Any] = {field: "think "}
    third: Dict[str, Any] = {field: "hard", other: None}
    events, completion = run(
        [
            chunk(choice(**first)),
            chunk(choice(**second)),
            chunk(choice(**third)),
            chunk(choice(content="answer", finish="stop")),
        ]
    )
    message = completion["choices"][0]["message"]
    assert message[field] == "think hard"
    assert other not in message
    assert message["content"] == "answer"
    assert kinds(events) == [
        "reasoning.delta",
        "reasoning.delta",
        "content.delta",
        "reasoning.done",
        "content.done",
        "done",
        "completion",
    ]
    assert [e.snapshot for e in events if e.type == "reasoning.delta"] == ["think ", "think hard"]


def test_content_as_typed_parts_feeds_content_and_reasoning() -> None:
    # Mistral Magistral sends content as a list of typed blocks.
    events, completion = run(
        [
            chunk(
                choice(content=[{"type": "thinking", "thinking": [{"type": "text", "text": "Let me see."}]}])
            ),
            chunk(choice(content=[{"type": "thinking", "thinking": [{"type": "text", "text": " 4."}]}])),
            chunk(choice(content=[{"type": "text", "text": "2 + 2 = 4"}])),
            chunk(choice(content="", finish="stop")),
        ]
    )
    message = completion["choices"][0]["message"]
    assert message["content"] == "2 + 2 = 4"
    assert message["reasoning_content"] == "Let me see. 4."
    assert kinds(events) == [
        "reasoning.delta",
        "reasoning.delta",
        "content.delta",
        "reasoning.done",
        "content.done",
        "done",
        "completion",
    ]


def test_logprobs_are_concatenated() -> None:
    def lp(token: str) -> Dict[str, Any]:
        return {"token": token, "logprob": -0.1, "bytes": list(token.encode()), "top_logprobs": []}

    _, completion = run(
        [
            chunk({"index": 0, "delta": {"content": ""}, "logprobs": {"content": [], "refusal": None}}),
            chunk(
                {
                    "index": 0,
                    "delta": {"content": "Foo"},
                    "logprobs": {"content": [lp("Foo")], "refusal": None},
                }
            ),
            chunk(
                {"index": 0, "delta": {"content": "!"}, "logprobs": {"content": [lp("!")], "refusal": None}}
            ),
            chunk({"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}),
        ]
    )
    logprobs = completion["choices"][0]["logprobs"]
    assert [t["token"] for t in logprobs["content"]] == ["Foo", "!"]
    assert logprobs["refusal"] is None


def test_refusal_deltas_and_done() -> None:
    events, completion = run(
        [
            chunk(choice(role="assistant", content=None, refusal="")),
            chunk(choice(refusal="I can't")),
            chunk(choice(refusal=" help.")),
            chunk(choice(finish="stop")),
        ]
    )
    assert completion["choices"][0]["message"]["refusal"] == "I can't help."
    assert completion["choices"][0]["message"]["content"] is None
    assert kinds(events) == ["refusal.delta", "refusal.delta", "refusal.done", "done", "completion"]


# --------------------------------------------------------------------------- end()
def test_end_gives_pending_done_events_with_finish_reason_none() -> None:
    acc = ChatCompletionAccumulator()
    feed_all(
        acc,
        [
            chunk(choice(0, reasoning_content="hm")),
            chunk(choice(0, content="partial")),
            chunk(choice(0, tool_calls=[call(0, id="a", name="f", arguments='{"x"')])),
            chunk(choice(1, content="other"), choice(1, finish="stop")),
        ],
    )
    tail = end(acc)
    assert [(e.type, getattr(e, "choice_index", None)) for e in tail] == [
        ("reasoning.done", 0),
        ("content.done", 0),
        ("tool_call.done", 0),
        ("done", 0),
        ("completion", None),
    ]
    assert tail[2].arguments == '{"x"'
    assert tail[3].finish_reason is None
    assert tail[-1].completion.choices[0].finish_reason is None
    assert end(acc) == []


def test_end_of_an_empty_stream_gives_only_the_completion() -> None:
    acc = ChatCompletionAccumulator()
    assert kinds(end(acc), skip=()) == ["completion"]


# --------------------------------------------------------------------------- laziness
def _count_joins(monkeypatch: pytest.MonkeyPatch) -> List[Optional[int]]:
    calls: List[Optional[int]] = []
    original = TextBuffer.text

    def counting(self: TextBuffer, n: Optional[int] = None) -> str:
        calls.append(n)
        return original(self, n)

    monkeypatch.setattr(TextBuffer, "text", counting)
    return calls


def test_snapshots_are_lazy_so_a_100000_delta_stream_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    joins = _count_joins(monkeypatch)
    completions = []
    original_completion = ChatCompletionAccumulator.completion

    def counting_completion(self: ChatCompletionAccumulator) -> Any:
        completions.append(1)
        return original_completion(self)

    monkeypatch.setattr(ChatCompletionAccumulator, "completion", counting_completion)
    acc = ChatCompletionAccumulator()
    n = 100_000
    last = None
    for i in range(n):
        events = feed(acc, chunk(choice(content=f"{i % 10}")))
        last = events[-1]
        events = feed(acc, chunk(choice(tool_calls=[call(0, id="t", name="f", arguments="x")])))
    assert joins == [] and completions == [], "feeding must not join text or build completions"
    assert last is not None and last.snapshot == "".join(f"{i % 10}" for i in range(n))
    assert len(joins) == 1
    tail = end(acc)
    assert tail[0].type == "content.done" and len(tail[0].content) == n
    assert tail[1].type == "tool_call.done" and len(tail[1].arguments) == n
    # end(): content.done (reuses the joined prefix), tool_call.done, and the completion's two texts.
    assert len(joins) <= 5


def test_early_snapshots_read_late_are_still_their_own_prefix() -> None:
    acc = ChatCompletionAccumulator()
    events = [
        e for c in ("a", "b", "c") for e in feed(acc, chunk(choice(content=c))) if e.type == "content.delta"
    ]
    assert [e.snapshot for e in reversed(events)] == ["abc", "ab", "a"]
    assert [e.snapshot for e in events] == ["a", "ab", "abc"]


# --------------------------------------------------------------------------- invalid data
BAD_CHUNKS = {
    "list": [1, 2],
    "string": "hello",
    "null": None,
    "number": 3,
}

BAD_SHAPES = {
    "choices-string": {"choices": "nope"},
    "choices-object": {"choices": {"index": 0}},
    "choices-empty-object": {"choices": {}},
    "choice-not-object": {"choices": ["x"]},
    "choice-index-string": {"choices": [{"index": "0", "delta": {"content": "x"}}]},
    "delta-string": {"choices": [{"index": 0, "delta": "text"}]},
    "content-number": {"choices": [{"index": 0, "delta": {"content": 5}}]},
    "content-object": {"choices": [{"index": 0, "delta": {"content": {"text": "x"}}}]},
    "content-empty-object": {"choices": [{"index": 0, "delta": {"content": {}}}]},
    "content-part-number": {"choices": [{"index": 0, "delta": {"content": [7]}}]},
    "refusal-number": {"choices": [{"index": 0, "delta": {"refusal": 1}}]},
    "reasoning-list": {"choices": [{"index": 0, "delta": {"reasoning_content": ["x"]}}]},
    "tool-calls-object": {"choices": [{"index": 0, "delta": {"tool_calls": {"id": "a"}}}]},
    "tool-call-string": {"choices": [{"index": 0, "delta": {"tool_calls": ["a"]}}]},
    "usage-list": {"choices": [], "usage": [1]},
    "logprobs-list": {"choices": [{"index": 0, "delta": {}, "logprobs": [1]}]},
}


def _fed_hello() -> ChatCompletionAccumulator:
    acc = ChatCompletionAccumulator()
    feed(acc, chunk(choice(content="hello")))
    return acc


@pytest.mark.parametrize("bad", list(BAD_CHUNKS.values()), ids=list(BAD_CHUNKS))
def test_chunk_that_is_not_an_object_raises_with_the_completion(bad: Any) -> None:
    acc = _fed_hello()
    with pytest.raises(InvalidStreamDataError) as info:
        feed(acc, bad)
    assert "JSON object" in str(info.value)
    assert info.value.completion is not None
    assert info.value.completion.choices[0].message.content == "hello"


@pytest.mark.parametrize("bad", list(BAD_SHAPES.values()), ids=list(BAD_SHAPES))
def test_fields_of_the_wrong_type_raise_with_the_completion(bad: Dict[str, Any]) -> None:
    acc = _fed_hello()
    with pytest.raises(InvalidStreamDataError) as info:
        feed(acc, bad)
    assert info.value.body is bad
    assert info.value.completion is not None
    assert info.value.completion.choices[0].message.content == "hello"


def test_unknown_fields_of_odd_types_never_crash() -> None:
    acc = ChatCompletionAccumulator()
    feed(acc, {"choices": [], "x_groq": "not an object", "extra": [1, {"a": None}]})
    feed(acc, chunk({"index": 0, "delta": {"annotations": "not a list"}, "weird": 1}))
    assert acc.completion().to_dict()["x_groq"] == "not an object"


# --------------------------------------------------------------------------- in-stream errors
ERRORS = [
    ("numeric-code-429", {"error": {"code": 429, "message": "slow down"}}, "RateLimitError", 429),
    ("numeric-code-string", {"error": {"code": "503", "message": "unavailable"}}, "InternalServerError", 503),
    ("numeric-code-400", {"error": {"code": 400, "message": "Token limit reached"}}, "BadRequestError", 400),
    ("status_code", {"error": {"code": "tool_use_failed", "status_code": 400}}, "BadRequestError", 400),
    ("status_code-404", {"error": {"message": "no model", "status_code": 404}}, "NotFoundError", 404),
    (
        "rate_limit_exceeded",
        {"error": {"code": "rate_limit_exceeded", "message": "x"}},
        "RateLimitError",
        None,
    ),
    ("insufficient_quota", {"error": {"code": "insufficient_quota", "message": "x"}}, "RateLimitError", None),
    ("type-requests", {"error": {"type": "requests", "message": "x"}}, "RateLimitError", None),
    ("type-tokens", {"error": {"type": "tokens", "message": "x"}}, "RateLimitError", None),
    ("invalid_api_key", {"error": {"code": "invalid_api_key", "message": "x"}}, "AuthenticationError", None),
    (
        "invalid_request_error",
        {"error": {"type": "invalid_request_error", "message": "x"}},
        "BadRequestError",
        None,
    ),
    ("server_error", {"error": {"type": "server_error", "message": "x"}}, "InternalServerError", None),
    (
        "overloaded_error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        "InternalServerError",
        None,
    ),
    (
        "vllm-object-error",
        {
            "object": "error",
            "message": "bad max_tokens",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        },
        "BadRequestError",
        400,
    ),
    (
        "vllm-object-error-500",
        {"object": "error", "message": "engine dead", "type": "InternalServerError", "code": 500},
        "InternalServerError",
        500,
    ),
]

PLAIN_ERRORS = {
    "message-only": {"error": {"message": "boom"}},
    "error-string": {"error": "something broke"},
    "unknown-code": {"error": {"code": "weird_thing", "type": "mystery", "message": "?"}},
    "numeric-out-of-range": {"error": {"code": 1234, "message": "?"}},
}


@pytest.mark.parametrize(("payload", "cls", "status"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_in_stream_error_payloads_are_typed(payload: Dict[str, Any], cls: str, status: Optional[int]) -> None:
    acc = _fed_hello()
    events = feed(acc, payload)
    assert events[0].type == "chunk" and events[-1].type == "error"
    error = events[-1].error
    assert type(error) is getattr(openai_stream, cls)
    assert error.status_code == status  # only a status the payload names; None for a code or type alone
    assert error.body == payload.get("error", payload)  # the inner error object, as openai-python has it
    assert error.payload == payload and error.response is None
    assert error.completion.choices[0].message.content == "hello"


@pytest.mark.parametrize("payload", list(PLAIN_ERRORS.values()), ids=list(PLAIN_ERRORS))
def test_unknown_error_payloads_are_plain_api_errors(payload: Dict[str, Any]) -> None:
    acc = _fed_hello()
    error: Any = feed(acc, payload)[-1].error
    assert type(error) is APIError
    completion: Any = error.completion
    assert completion.choices[0].message.content == "hello"


def test_error_chunk_is_accumulated_before_the_error() -> None:
    # OpenRouter sends the error on a chunk that also carries usage: nothing received is lost.
    usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    acc = _fed_hello()
    events = feed(acc, chunk(choice(content="!"), error={"code": 502, "message": "upstream"}, usage=usage))
    assert kinds(events) == ["content.delta", "usage", "error"]
    error: Any = events[-1].error
    assert type(error) is openai_stream.InternalServerError and error.status_code == 502
    completion: Any = error.completion
    assert completion.choices[0].message.content == "hello!"
    assert completion.usage.total_tokens == 6


def test_null_error_field_is_not_an_error() -> None:
    acc = ChatCompletionAccumulator()
    assert kinds(feed(acc, chunk(choice(content="x"), error=None))) == ["content.delta"]


# --------------------------------------------------------------------------- a chunk that fails half-way
HALF_WAY = {
    "content-then-bad-refusal": (choice(content="abc", refusal=5), ["content.delta"]),
    "two-choices-second-bad": (
        chunk(choice(0, content="abc"), choice(1, content=7)),
        ["content.delta"],
    ),
    "finish-then-bad-choice": (
        chunk(choice(0, "stop", content="abc"), {"index": "x"}),
        ["content.delta", "content.done", "done"],
    ),
    "tool-call-then-bad-fragment": (
        choice(tool_calls=[call(0, "t1", "f", "{}"), "not a fragment"]),
        ["tool_call.delta"],
    ),
}


@pytest.mark.parametrize("bad,derived", list(HALF_WAY.values()), ids=list(HALF_WAY))
def test_failing_chunk_attaches_the_events_it_already_produced(
    bad: Dict[str, Any], derived: List[str]
) -> None:
    acc = _fed_hello()
    bad = bad if "choices" in bad else chunk(bad)
    with pytest.raises(InvalidStreamDataError) as info:
        acc.feed(bad)
    events: Any = info.value.events
    assert [e.type for e in events] == ["chunk", *derived]
    assert events[0].chunk is bad
    completion: Any = info.value.completion
    told = "hello" + "".join(e.delta for e in events if e.type == "content.delta")
    assert completion.choices[0].message.content == told


def test_chunk_that_is_not_an_object_attaches_no_events() -> None:
    with pytest.raises(InvalidStreamDataError) as info:
        ChatCompletionAccumulator().feed([1])  # type: ignore[arg-type]
    assert info.value.events == ()


def test_text_buffer_holds_about_one_copy_of_many_tiny_fragments() -> None:
    import tracemalloc

    fragments = [chr(ord("a") + i % 26) for i in range(100_000)]  # one-character strings are cached
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        buf = TextBuffer()
        ends = [buf.append(f) for f in fragments[:10]]
        for f in fragments[10:]:
            buf.append(f)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 3 * len(fragments) + 64 * 1024, held  # a list of 100,000 fragments is 800 KB alone
    assert ends == list(range(1, 11))
    assert buf.text() == "".join(fragments)
    assert buf.text(5) == "abcde" and buf.text(10**9) == buf.text()


@pytest.fixture
def eager_thread_switches() -> Iterable[None]:
    """Switch threads every microsecond, so that races show up in a short test."""
    import sys

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_text_buffer_read_from_another_thread_while_fragments_arrive(eager_thread_switches: None) -> None:
    # stream.current_completion reads the buffers on any thread while the stream appends to them.
    import threading

    fragments = [chr(ord("a") + i % 26) for i in range(50_000)]
    expected = "".join(fragments)
    for _ in range(3):
        buf = TextBuffer()
        stop = threading.Event()
        wrong: List[int] = []

        def read(buf: TextBuffer, stop: threading.Event, wrong: List[int]) -> None:
            while not stop.is_set():
                text = buf.text()
                if not expected.startswith(text):
                    wrong.append(len(text))

        reader = threading.Thread(target=read, args=(buf, stop, wrong), daemon=True)
        reader.start()
        try:
            ends = [buf.append(f) for f in fragments]
        finally:
            stop.set()
            reader.join(10)
        assert not reader.is_alive()
        assert buf.text() == expected, "fragments were lost or doubled"
        assert not wrong, "a read saw text that was never sent"
        assert ends[-1] == len(expected) and buf.text(1234) == expected[:1234]


# ------------------------------------------------------------------------ nothing sent is lost (issue 10 §3)
def test_audio_data_and_transcript_fragments_are_joined_and_id_and_expiry_kept() -> None:
    # The shape of gpt-4o-audio-preview's stream (openai-node's audio test).
    _, completion = run(
        [
            chunk(choice(audio={"transcript": "hel"})),
            chunk(choice(role="assistant", content=None, audio={"id": "audio-1", "data": "abc"})),
            chunk(choice(audio={"transcript": "lo", "data": "def", "expires_at": None})),
            chunk(choice(audio={"expires_at": 1700000000})),
            chunk(choice(finish="stop")),
        ]
    )
    message = completion["choices"][0]["message"]
    assert message["audio"] == {
        "id": "audio-1",
        "data": "abcdef",
        "transcript": "hello",
        "expires_at": 1700000000,
    }
    assert message["content"] is None


def _custom_chunks() -> List[Dict[str, Any]]:
    # openai-node's custom-tool stream: a freeform call, then a function call.
    head = {"index": 0, "id": "call_custom", "type": "custom", "custom": {"name": "code_exec", "input": ""}}
    return [
        chunk(choice(role="assistant", tool_calls=[head])),
        chunk(choice(tool_calls=[{"index": 0, "custom": {"input": 'print("hel'}}])),
        chunk(choice(tool_calls=[{"index": 0, "custom": {"input": 'lo")\nreturn 42'}}])),
        chunk(choice(tool_calls=[call(1, id="call_fn", name="get_weather", arguments="", type="function")])),
        chunk(choice(tool_calls=[call(1, arguments='{"city":"SF"}')])),
        chunk(choice(finish="tool_calls")),
    ]


def test_custom_tool_calls_keep_name_and_joined_input_without_a_function_key() -> None:
    events, completion = run(_custom_chunks())
    custom_call, function_call = completion["choices"][0]["message"]["tool_calls"]
    assert custom_call == {
        "id": "call_custom",
        "type": "custom",
        "custom": {"name": "code_exec", "input": 'print("hello")\nreturn 42'},
    }
    assert function_call["function"] == {"name": "get_weather", "arguments": '{"city":"SF"}'}
    deltas = [e for e in events if e.type == "tool_call.delta"]
    assert [(e.index, e.call_type, e.name, e.arguments_delta) for e in deltas] == [
        (0, "custom", "code_exec", ""),
        (0, "custom", "code_exec", 'print("hel'),
        (0, "custom", "code_exec", 'lo")\nreturn 42'),
        (1, "function", "get_weather", ""),
        (1, "function", "get_weather", '{"city":"SF"}'),
    ]
    assert deltas[2].arguments_snapshot == 'print("hello")\nreturn 42'
    done = [e for e in events if e.type == "tool_call.done"]
    assert [(e.call_type, e.name, e.input) for e in done] == [
        ("custom", "code_exec", 'print("hello")\nreturn 42'),
        ("function", "get_weather", None),
    ]
    assert done[0].arguments == 'print("hello")\nreturn 42'
    with pytest.raises(openai_stream.ToolArgumentsError, match="custom tool call"):
        done[0].parsed_arguments  # noqa: B018
    assert done[1].parsed_arguments == {"city": "SF"}


def test_custom_call_announced_by_type_alone_is_still_custom() -> None:
    _, completion = run(
        [
            chunk(choice(tool_calls=[{"index": 0, "id": "c", "type": "custom", "custom": {"name": "sql"}}])),
            chunk(choice(tool_calls=[{"index": 0, "custom": {"input": "SELECT 1"}}], finish="tool_calls")),
        ]
    )
    [only] = completion["choices"][0]["message"]["tool_calls"]
    assert only == {"id": "c", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}


def test_thinking_blocks_are_appended_and_a_signature_signs_the_block_before_it() -> None:
    # LiteLLM's Claude passthrough (its chunk builder test), plus thinking text in two fragments.
    fragments: List[Dict[str, Any]] = [
        {"type": "thinking", "thinking": "Step 1 ", "signature": None},
        {"type": "thinking", "thinking": "analysis...", "signature": None},
        {"type": "thinking", "thinking": None, "signature": "sig_block1"},
        {"type": "redacted_thinking", "data": "EuoB...encrypted..."},
        {"type": "thinking", "thinking": "Step 2 analysis...", "signature": None},
        {"type": "thinking", "thinking": None, "signature": "sig_block2"},
    ]
    sent = [json.loads(json.dumps(f)) for f in fragments]
    _, completion = run([chunk(choice(thinking_blocks=[f])) for f in sent] + [chunk(choice(finish="stop"))])
    assert completion["choices"][0]["message"]["thinking_blocks"] == [
        {"type": "thinking", "thinking": "Step 1 analysis...", "signature": "sig_block1"},
        {"type": "redacted_thinking", "data": "EuoB...encrypted..."},
        {"type": "thinking", "thinking": "Step 2 analysis...", "signature": "sig_block2"},
    ]
    assert sent == fragments  # the chunks' own dicts were not changed by merging


def test_obfuscation_padding_stays_on_the_chunk_and_out_of_the_completion() -> None:
    first = chunk(choice(content="Hello"), obfuscation="Zx9")
    events, completion = run([first, chunk(choice(content=" world", finish="stop"), obfuscation="q")])
    assert "obfuscation" not in completion
    assert completion["choices"][0]["message"]["content"] == "Hello world"
    assert events[0].chunk["obfuscation"] == "Zx9"


def test_unknown_delta_strings_are_concatenated_and_other_values_keep_the_last() -> None:
    _, completion = run(
        [
            chunk(choice(thought="The ", channel="analysis", meta={"n": 1}, index=0)),
            chunk(choice(thought="plan.", channel="analysis", meta={"n": 2})),
            chunk(choice(thought=None, channel="final", meta=None, finish="stop")),
        ]
    )
    message = completion["choices"][0]["message"]
    assert message["thought"] == "The plan."
    assert message["channel"] == "final"  # a label repeated whole (Groq), not text
    assert message["meta"] == {"n": 2}


@pytest.mark.parametrize("response_format", [{"type": "json_object"}, {"type": "json_schema"}])
def test_a_refusal_leaves_parsed_none_on_content_done_and_on_the_message(
    response_format: Dict[str, Any],
) -> None:
    acc = ChatCompletionAccumulator(response_format=response_format)
    feed_all(acc, [chunk(choice(content='{"city":')), chunk(choice(content='"SF"}', refusal="No."))])
    events = feed(acc, chunk(choice(finish="stop")))
    [content_done] = [e for e in events if e.type == "content.done"]
    assert type(content_done) is openai_stream.ContentDoneEvent
    assert content_done.parsed is None
    message = acc.completion().choices[0].message
    assert message.refusal == "No." and message.parsed is None


def test_empty_content_is_kept_as_empty_not_absent() -> None:
    events, completion = run([chunk(choice(role="assistant", content="")), chunk(choice(finish="stop"))])
    assert completion["choices"][0]["message"]["content"] == ""
    assert [(e.type, getattr(e, "content", None)) for e in events if e.type == "content.done"] == [
        ("content.done", "")
    ]
    assert not [e for e in events if e.type == "content.delta"]


@pytest.mark.parametrize(
    "extra",
    [{"refusal": "No."}, {"tool_calls": [call(0, id="c", name="f", arguments="{}")]}],
    ids=["refusal", "tool-calls"],
)
def test_empty_content_beside_a_refusal_or_tool_calls_gives_no_content_done(extra: Dict[str, Any]) -> None:
    events, completion = run(
        [chunk(choice(role="assistant", content="", **extra)), chunk(choice(finish="stop"))]
    )
    assert completion["choices"][0]["message"]["content"] == ""
    assert "content.done" not in kinds(events)


@pytest.mark.parametrize("index", ["0", 0.5, True, [0]])
def test_a_tool_call_index_that_is_not_an_integer_fails_the_stream(index: Any) -> None:
    acc = ChatCompletionAccumulator()
    feed(acc, chunk(choice(tool_calls=[call(0, id="a", name="f", arguments="{")])))
    with pytest.raises(InvalidStreamDataError, match="not an integer"):
        acc.feed(chunk(choice(tool_calls=[{"index": index, "function": {"arguments": "}"}}])))
