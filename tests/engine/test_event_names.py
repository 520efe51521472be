"""Event names are checked: a handler for a name the object never emits is refused when it is added.

The names a chat stream really emits are collected by feeding every recorded
fixture through the accumulator (plus ``response`` and ``error``, which the
engine emits), not read from the declaration under test.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterator, Set

import pytest
from conftest import SSE_FIXTURES

import openai_stream
from openai_stream import EVENT_TYPES, RUNNER_EVENT_TYPES, ChatCompletionAccumulator, SSEDecoder
from openai_stream.engine._stream import BaseStream

FIXTURES = SSE_FIXTURES
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture()
def client() -> Iterator[openai_stream.Client]:
    # Port 9 (discard) on loopback: nothing is ever sent by these tests.
    with openai_stream.Client(api_key="unused", base_url="http://127.0.0.1:9/v1", max_retries=0) as c:
        yield c


def emitted_by_fixtures() -> Set[str]:
    seen: Set[str] = set()
    for path in sorted(FIXTURES.glob("*.sse")):
        decoder = SSEDecoder()
        accumulator = ChatCompletionAccumulator()
        events = list(decoder.feed(path.read_bytes()))
        last = decoder.end()
        if last is not None:
            events.append(last)
        try:
            for sse in events:
                if sse.data == "[DONE]":
                    break
                if sse.data:
                    seen.update(event.type for event in accumulator.feed(json.loads(sse.data)))
            seen.update(event.type for event in accumulator.end())
        except (ValueError, openai_stream.OpenAIError):
            pass
    return seen


def test_every_name_a_chat_stream_emits_is_accepted(client: openai_stream.Client) -> None:
    emitted = emitted_by_fixtures() | {"response", "error"}
    assert {"content.delta", "tool_call.done", "reasoning.delta", "usage", "completion"} <= emitted
    stream = client.chat.completions.stream(model="m", messages=USER)
    for name in sorted(emitted | {"new_listener"}):
        stream.on(name, print)
        stream.once(name, print)
        stream.add_listener(name, print)
        assert stream.listeners(name)[0] is print
    assert set(EVENT_TYPES) >= emitted


@pytest.mark.parametrize(
    ("wrong", "suggested"),
    [
        ("content_delta", "'content.delta'"),
        ("tool_calls.done", "'tool_call.done'"),
        ("contentdone", "'content.done'"),
        ("tool_calls.function.arguments.done", "'tool_call.done'"),
        ("tool_calls.function.arguments.delta", "'tool_call.delta'"),
        ("logprobs.content.delta", "'chunk' handler"),
    ],
)
def test_a_misspelled_or_foreign_name_is_refused_with_the_closest(
    client: openai_stream.Client, wrong: str, suggested: str
) -> None:
    stream = client.chat.completions.stream(model="m", messages=USER)
    attempts: list[Callable[[], Any]] = [
        lambda: stream.on(wrong, print),
        lambda: stream.on(wrong)(print),  # the decorator form
        lambda: stream.once(wrong, print),
        lambda: stream.once(wrong)(print),
        lambda: stream.add_listener(wrong, print),
        lambda: stream.listeners(wrong),
    ]
    for attempt in attempts:
        with pytest.raises(ValueError) as info:
            attempt()
        message = str(info.value)
        assert repr(wrong) in message and suggested in message, message
        assert "ChatCompletionStream" in message
    assert stream.event_names() == set()
    assert stream.state == "new"


def test_a_name_with_nothing_close_lists_the_events(client: openai_stream.Client) -> None:
    stream = client.chat.completions.stream(model="m", messages=USER)
    with pytest.raises(ValueError, match="no event has a similar name") as info:
        stream.on("xyzzy", print)
    assert "content.delta" in str(info.value) and "new_listener" in str(info.value)


def test_the_runner_accepts_stream_and_runner_events_and_refuses_others(client: openai_stream.Client) -> None:
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[])
    for name in [*EVENT_TYPES, *RUNNER_EVENT_TYPES, "error", "new_listener"]:
        runner.on(name, print)
        assert runner.listeners(name) == [print]
    wrongs = (("tool_result", "'tool.result'"), ("rounds", "'round'"), ("messages", "'message'"))
    for wrong, suggested in wrongs:
        with pytest.raises(ValueError, match=re.escape(suggested)):
            runner.on(wrong)(print)
        with pytest.raises(ValueError, match=re.escape(suggested)):
            runner.once(wrong, print)
        with pytest.raises(ValueError, match=re.escape(suggested)):
            runner.listeners(wrong)
    with pytest.raises(ValueError, match=re.escape("'tool_call.done'")):
        runner.on("tool_calls.function.arguments.done", print)


def test_every_stream_class_declares_its_events() -> None:
    def subclasses(cls: type) -> Iterator[type]:
        sub: type
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    found = list(subclasses(BaseStream))
    assert found
    for cls in found:
        assert cls._event_types, f"{cls.__name__} does not declare _event_types"  # type: ignore[attr-defined]
