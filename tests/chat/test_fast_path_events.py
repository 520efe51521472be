"""The events of the accumulator's fast path (one more fragment of content or arguments) are the classes' own.

The fast path builds its events without calling the classes (``object.__new__``
plus the values ``__init__`` sets). The expected events here are built by the
classes' constructors from values derived by hand from the chunks. Chunks
with fields of their own (OpenAI's ``service_tier`` and ``obfuscation``, Azure's
``content_filter_results`` on a choice)
take the fast path too, and keep those fields as the general path does.
"""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from openai_stream import ChatCompletionAccumulator
from openai_stream.engine._events import ChunkEvent, ContentDeltaEvent, ToolCallDeltaEvent


def chunk(delta: Dict[str, Any]) -> Dict[str, Any]:
    choices = [{"index": 0, "delta": delta}]
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": choices}


def test_content_fragments() -> None:
    accumulator = ChatCompletionAccumulator()
    accumulator.feed(chunk({"role": "assistant", "content": "Hel"}))
    second = chunk({"content": "lo"})
    events: List[Any] = accumulator.feed(second)
    assert [type(e) for e in events] == [ChunkEvent, ContentDeltaEvent]
    raw, delta = events
    assert raw == ChunkEvent(second) and raw.chunk is second
    buffer = delta._values[2]
    assert delta == ContentDeltaEvent(0, "lo", buffer, 5)
    assert delta._values == ContentDeltaEvent(0, "lo", buffer, 5)._values
    assert (delta.choice_index, delta.delta, delta.snapshot) == (0, "lo", "Hello")
    assert delta.to_dict() == {"choice_index": 0, "delta": "lo"}
    assert repr(delta) == "ContentDeltaEvent(choice_index=0, delta='lo')"
    third = accumulator.feed(chunk({"content": "!"}), raw_events=False)
    assert third == [ContentDeltaEvent(0, "!", buffer, 6)]


def test_tool_argument_fragments() -> None:
    accumulator = ChatCompletionAccumulator()
    accumulator.feed(chunk({"role": "assistant", "content": None}))
    announce = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    accumulator.feed(chunk({"tool_calls": [announce]}))
    accumulator.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}))
    fragment = {"index": 0, "function": {"arguments": "1}"}}
    events: List[Any] = accumulator.feed(chunk({"tool_calls": [fragment]}))
    assert [type(e) for e in events] == [ChunkEvent, ToolCallDeltaEvent]
    delta = events[1]
    buffer = delta._values[5]
    expected = ToolCallDeltaEvent(0, 0, "call_1", "f", "1}", buffer, 8, "function")
    assert delta == expected and delta._values == expected._values
    shown = (delta.arguments_delta, delta.arguments_snapshot, delta.call_type)
    assert shown == ("1}", '{"a": 1}', "function")


def openai_chunk(delta: Dict[str, Any], **fields: Any) -> Dict[str, Any]:
    """A chunk as OpenAI sends it: service_tier and obfuscation beside the usual fields."""
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    chunk = {
        "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "service_tier": "default",
        "system_fingerprint": "fp", "usage": None, "choices": [choice], "obfuscation": "pad",
    }
    chunk.update(fields)
    return chunk


@pytest.fixture
def general(monkeypatch: pytest.MonkeyPatch) -> List[Dict[str, Any]]:
    """The chunks that went the accumulator's general way (its ``_feed``), in order."""
    taken: List[Dict[str, Any]] = []
    real_feed = ChatCompletionAccumulator._feed

    def counted(self: Any, chunk: Dict[str, Any], events: List[Any]) -> None:
        taken.append(chunk)
        real_feed(self, chunk, events)

    monkeypatch.setattr(ChatCompletionAccumulator, "_feed", counted)
    return taken


def test_chunks_with_fields_of_their_own_take_the_fast_path_and_keep_those_fields(
    general: List[Dict[str, Any]],
) -> None:
    accumulator = ChatCompletionAccumulator()
    accumulator.feed(openai_chunk({"role": "assistant", "content": ""}))
    events = accumulator.feed(openai_chunk({"content": "Hi"}, service_tier="flex"))
    assert [e.type for e in events] == ["chunk", "content.delta"]
    assert len(general) == 1  # only the first chunk went the general way
    # Groq's usage under x_groq is the general path's to read.
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    groq = openai_chunk({"content": "!"}, service_tier="flex", x_groq={"usage": usage})
    with_usage = accumulator.feed(groq)
    assert [e.type for e in with_usage] == ["chunk", "content.delta", "usage"]
    completion = accumulator.completion().to_dict()
    assert completion["service_tier"] == "flex" and "obfuscation" not in completion
    assert completion["choices"][0]["message"]["content"] == "Hi!"
    assert completion["usage"] == usage


def test_choices_with_fields_of_their_own_take_the_fast_path_and_keep_those_fields(
    general: List[Dict[str, Any]],
) -> None:

    def azure_chunk(delta: Dict[str, Any], filters: Any) -> Dict[str, Any]:
        chunk = openai_chunk(delta)
        chunk["choices"][0]["content_filter_results"] = filters  # as Azure OpenAI sends them
        return chunk

    safe = {"hate": {"filtered": False, "severity": "safe"}}
    accumulator = ChatCompletionAccumulator()
    accumulator.feed(azure_chunk({"role": "assistant", "content": ""}, {}))
    events = accumulator.feed(azure_chunk({"content": "Hi"}, safe))
    accumulator.feed(azure_chunk({"content": "!"}, None))  # None keeps the value before, as ever
    assert [e.type for e in events] == ["chunk", "content.delta"]
    assert len(general) == 1
    choice = accumulator.completion().to_dict()["choices"][0]
    assert choice["content_filter_results"] == safe
    assert choice["message"]["content"] == "Hi!"
