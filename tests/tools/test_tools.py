"""The @tool decorator, and parsed JSON on events: parsed_arguments, partial_arguments, parsed."""

from __future__ import annotations

import inspect
import json
import threading
from typing import Any, Dict, List, Literal

import pytest
from conftest import SSE_FIXTURES

import openai_stream
from openai_stream import (
    ChatCompletionAccumulator,
    ContentDoneEvent,
    StructuredContentDoneEvent,
    StructuredOutputError,
    Tool,
    ToolArgumentsError,
    ToolCallDeltaEvent,
    ToolCallDoneEvent,
    ToolDefinitionError,
    tool,
)
from openai_stream.engine._events import TextBuffer
from openai_stream.engine._parsing import parse_partial
from openai_stream.testing import ReplayServer, ScriptedResponse, split_sse_events

FIXTURES = SSE_FIXTURES


@tool
def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """The current weather in a city.

    Args:
        city: The city, e.g. "Paris".
        unit: Celsius or Fahrenheit.
    """
    return f"{city}: 20{unit}"


def test_decorator_keeps_the_function_usable() -> None:
    assert isinstance(get_weather, Tool)
    assert get_weather("Oslo", unit="f") == "Oslo: 20f"
    assert get_weather.__name__ == "get_weather"
    assert get_weather.__doc__ is not None and get_weather.__doc__.startswith("The current weather")
    assert list(inspect.signature(get_weather).parameters) == ["city", "unit"]
    assert repr(get_weather) == "<Tool get_weather>"


def test_definition() -> None:
    assert get_weather.definition == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"description": 'The city, e.g. "Paris".', "type": "string"},
                    "unit": {
                        "description": "Celsius or Fahrenheit.",
                        "type": "string",
                        "enum": ["c", "f"],
                        "default": "c",
                    },
                },
                "required": ["city"],
            },
        },
    }
    definition = get_weather.to_dict()
    definition["function"]["parameters"]["required"].append("changed")
    assert get_weather.parameters["required"] == ["city"]  # a copy each time


def test_decorator_forms() -> None:
    def add(a: int, b: int = 1) -> int:
        return a + b

    with_args = tool(name="sum", description="Adds.", strict=True)(add)
    called = tool(add, name="plus")
    assert with_args.name == "sum" and with_args.strict and with_args.description == "Adds."
    assert with_args.definition["function"]["strict"] is True
    assert called.name == "plus" and not called.strict
    assert with_args(2, 3) == 5 and called.invoke('{"a": 2}') == 3
    renamed = tool(called, name="again", strict=True)
    assert renamed.function is add and renamed.name == "again" and renamed.strict


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dotted.name"])
def test_bad_names_are_rejected(name: str) -> None:
    def f() -> None: ...

    with pytest.raises(ToolDefinitionError, match="not allowed"):
        tool(f, name=name)


def test_lambdas_need_a_name_and_non_callables_are_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="'<lambda>' is not allowed"):
        tool(lambda: None)
    assert tool(lambda: None, name="noop").name == "noop"
    with pytest.raises(ToolDefinitionError, match="must be a function"):
        tool(42)  # type: ignore[call-overload]


def test_methods_and_callable_objects() -> None:
    class Counter:
        def __init__(self) -> None:
            self.total = 0

        def add(self, amount: int) -> int:
            """Add to the total."""
            self.total += amount
            return self.total

        def __call__(self, times: int) -> str:
            return "x" * times

    counter = Counter()
    method = tool(counter.add)
    assert list(method.parameters["properties"]) == ["amount"]
    assert method.invoke('{"amount": 5}') == 5 and counter.total == 5
    callable_tool = tool(counter, name="repeat")
    assert callable_tool.invoke('{"times": 3}') == "xxx"


def test_parse_arguments_errors_name_the_tool() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        get_weather.parse_arguments('{"city": ', call_id="call_9")
    error = info.value
    assert isinstance(error, openai_stream.OpenAIError) and isinstance(error, ValueError)
    assert error.name == "get_weather" and error.call_id == "call_9" and error.arguments == '{"city": '
    assert "'get_weather'" in str(error) and "not valid JSON" in str(error)
    with pytest.raises(ToolArgumentsError, match="'get_weather' do not match its parameters: city: missing"):
        get_weather.parse_arguments("{}")
    with pytest.raises(ToolArgumentsError, match="unit: expected one of"):
        get_weather.invoke({"city": "Oslo", "unit": "k"})


# -- parsed_arguments on tool_call.done --------------------------------------------------------


def test_parsed_arguments_is_computed_once() -> None:
    event = ToolCallDoneEvent(0, 0, "call_1", "get_weather", '{"city": "Paris", "n": [1, 2]}')
    first = event.parsed_arguments
    assert first == {"city": "Paris", "n": [1, 2]}
    assert event.parsed_arguments is first
    assert ToolCallDoneEvent(0, 0, "c", "now", "").parsed_arguments == {}
    with pytest.raises(AttributeError, match="immutable"):
        event.extra = 1
    assert event == ToolCallDoneEvent(0, 0, "call_1", "get_weather", '{"city": "Paris", "n": [1, 2]}')
    assert event != (0, 0, "call_1", "get_weather", '{"city": "Paris", "n": [1, 2]}')  # not a tuple


def test_parsed_arguments_error_names_the_tool_and_is_raised_each_time() -> None:
    event = ToolCallDoneEvent(0, 1, "call_7", "lookup", '{"q": "abc')
    for _ in range(2):
        with pytest.raises(ToolArgumentsError) as info:
            _ = event.parsed_arguments
        assert info.value.name == "lookup" and info.value.call_id == "call_7"
        assert "'lookup'" in str(info.value)


def test_parsed_arguments_concurrent_first_access() -> None:
    event = ToolCallDoneEvent(0, 0, "c", "t", json.dumps({"k": list(range(1000))}))
    seen: List[Any] = []
    threads = [threading.Thread(target=lambda: seen.append(event.parsed_arguments)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(seen) == 8 and all(value == {"k": list(range(1000))} for value in seen)


# -- partial_arguments on tool_call.delta ------------------------------------------------------


def _tool_events(name: str) -> List[Any]:
    acc = ChatCompletionAccumulator()
    events: List[Any] = []
    with open(FIXTURES / name, "rb") as fh:
        for piece in split_sse_events(fh.read()):
            data = piece.decode().strip()
            if data.startswith("data: ") and data != "data: [DONE]":
                events.extend(acc.feed(json.loads(data[6:])))
    events.extend(acc.end())
    return events


def _is_prefix_of(partial: Any, final: Any) -> bool:
    """Every complete value in ``partial`` agrees with ``final``; a string may be cut short."""
    if isinstance(final, dict):
        keys = list(partial) if isinstance(partial, dict) else None
        return keys == list(final)[: len(keys or [])] and all(
            _is_prefix_of(partial[k], final[k]) for k in keys or []
        )
    if isinstance(final, list):
        return isinstance(partial, list) and all(_is_prefix_of(p, f) for p, f in zip(partial, final))
    if isinstance(final, str):
        return isinstance(partial, str) and final.startswith(partial)
    if isinstance(final, (int, float)) and not isinstance(final, bool):
        return isinstance(partial, (int, float))  # a number may still be growing
    return bool(partial == final)


@pytest.mark.parametrize(
    "fixture",
    [
        "documented-parallel-tool-calls.sse",
        "openai-parallel-tool-calls.sse",
        "deepseek-reasoning-tool-call.sse",
        "mistral-incremental-tool-call.sse",
    ],
)
def test_partial_arguments_on_recorded_streams(fixture: str) -> None:
    events = _tool_events(fixture)
    finals = {e.index: json.loads(e.arguments) for e in events if isinstance(e, ToolCallDoneEvent)}
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert deltas and finals
    for event in deltas:
        partial = event.partial_arguments
        if partial is not None:
            assert _is_prefix_of(partial, finals[event.index]), (event.arguments_snapshot, partial)
    last = {e.index: e for e in deltas}
    assert {i: e.partial_arguments for i, e in last.items()} == finals


def test_partial_arguments_at_every_cut() -> None:
    final = {
        "query": 'line "one"\n\u00e9t\u00e9 \U0001f600',
        "n": -12.5e3,
        "ok": True,
        "none": None,
        "xs": [1, [2]],
    }
    text = json.dumps(final)
    buf = TextBuffer()
    for i, ch in enumerate(text):
        event = ToolCallDeltaEvent(0, 0, "c", "t", ch, buf, buf.append(ch))
        partial = event.partial_arguments
        assert partial is None or _is_prefix_of(partial, final), text[: i + 1]
        if isinstance(partial, dict) and isinstance(partial.get("query"), str):
            partial["query"].encode("utf-8")  # never half a surrogate pair
    assert parse_partial(text) == final


def test_partial_arguments_edge_cases() -> None:
    assert parse_partial("") is None
    assert parse_partial("{") == {}
    assert parse_partial('{"city": "Par') == {"city": "Par"}
    assert parse_partial('{"a": 1, "b": tr') == {"a": 1}
    assert parse_partial("not json") is None


# -- structured output: content.done.parsed and message.parsed ---------------------------------

SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    },
}


def _content_chunks(*pieces: str, finish: str = "stop") -> List[Dict[str, Any]]:
    chunks = [
        {"id": "x", "model": "m", "created": 1, "choices": [{"index": 0, "delta": {"content": p}}]}
        for p in pieces
    ]
    chunks.append({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return chunks


def _run(acc: ChatCompletionAccumulator, chunks: List[Dict[str, Any]]) -> List[Any]:
    events: List[Any] = []
    for chunk in chunks:
        events.extend(acc.feed(chunk))
    return events + acc.end()


@pytest.mark.parametrize("response_format", [SCHEMA_FORMAT, {"type": "json_object"}])
def test_structured_content_is_parsed(response_format: Dict[str, Any]) -> None:
    events = _run(
        ChatCompletionAccumulator(response_format=response_format), _content_chunks('{"name": ', '"Paris"}')
    )
    [done] = [e for e in events if e.type == "content.done"]
    assert isinstance(done, StructuredContentDoneEvent) and isinstance(done, ContentDoneEvent)
    assert done.parsed == {"name": "Paris"} and done.parsed is done.parsed
    completion = events[-1].completion
    assert completion.choices[0].message.parsed == {"name": "Paris"}
    assert completion.to_dict()["choices"][0]["message"]["parsed"] == {"name": "Paris"}


def test_plain_content_has_no_parsed() -> None:
    events = _run(ChatCompletionAccumulator(), _content_chunks('{"name": "Paris"}'))
    [done] = [e for e in events if e.type == "content.done"]
    assert type(done) is ContentDoneEvent and done.parsed is None
    assert "parsed" not in events[-1].completion.to_dict()["choices"][0]["message"]
    events = _run(ChatCompletionAccumulator(response_format={"type": "text"}), _content_chunks("hi"))
    assert [type(e) for e in events if e.type == "content.done"] == [ContentDoneEvent]


def test_cut_off_structured_content() -> None:
    events = _run(
        ChatCompletionAccumulator(response_format=SCHEMA_FORMAT),
        _content_chunks('{"name": "Par', finish="length"),
    )
    [done] = [e for e in events if e.type == "content.done"]
    with pytest.raises(StructuredOutputError, match="not valid JSON") as info:
        _ = done.parsed
    assert info.value.content == '{"name": "Par'
    assert "max_tokens" in str(info.value)
    assert events[-1].completion.choices[0].message.parsed is None


def test_structured_output_over_http() -> None:
    chunks = _content_chunks('{"na', 'me": "Lyon"}')
    with ReplayServer([ScriptedResponse.from_chunks(chunks)]) as server:
        with openai_stream.Client(
            api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=10
        ) as client:
            stream = client.chat.completions.stream(
                model="m", messages=[{"role": "user", "content": "a city"}], response_format=SCHEMA_FORMAT
            )
            parsed: List[Any] = []
            stream.on("content.done", lambda e: parsed.append(e.parsed))
            completion = stream.until_done()
        assert server.requests[0].json["response_format"] == SCHEMA_FORMAT
    assert parsed == [{"name": "Lyon"}]
    assert completion.choices[0].message.parsed == {"name": "Lyon"}


def _whole_answer(content: str, finish: str = "stop", refusal: Any = None) -> Dict[str, Any]:
    """A non-streamed answer, shaped like the API's documented chat.completion object."""
    message: Dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
    }


@pytest.mark.parametrize(
    ("answer", "want"),
    [
        (_whole_answer('{"name": "Lyon"}'), {"name": "Lyon"}),
        (_whole_answer('{"name": "Ly', finish="length"), None),  # cut off: None, as in the stream
        (_whole_answer(None, refusal="I can't help with that."), None),  # type: ignore[arg-type]
        (_whole_answer('{"name": "Lyon"}', refusal="No."), None),
    ],
    ids=["whole", "cut-off", "refusal", "refusal-with-content"],
)
def test_create_fills_parsed_for_a_json_response_format_like_the_stream(
    answer: Dict[str, Any], want: Any
) -> None:
    with ReplayServer([ScriptedResponse.json(answer)] * 2) as server, openai_stream.Client(
        api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=10
    ) as client:
        completion = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "a city"}], response_format=SCHEMA_FORMAT
        )
        plain = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    message = completion.choices[0].message
    assert message.parsed == want
    assert completion.to_dict()["choices"][0]["message"]["parsed"] == want
    assert "parsed" not in plain.to_dict()["choices"][0]["message"]  # no response_format: untouched
