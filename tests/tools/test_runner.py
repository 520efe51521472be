"""The tool runner, over scripted multi-round conversations on a loopback ReplayServer."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
from conftest import EXAMPLES, SSE_FIXTURES
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import openai_stream
from openai_stream import (
    MaxRoundsExceededError,
    MessageEvent,
    RoundEvent,
    ToolArgumentsError,
    ToolResultEvent,
    UnknownToolError,
    tool,
)
from openai_stream.testing import ReplayServer, ScriptedResponse

FIXTURES = SSE_FIXTURES
WAIT = 10.0  # bound for every wait on an event that must happen

Call = Tuple[Optional[str], str, str]  # (id, name, arguments)


def _chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> Dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def tool_chunks(calls: Sequence[Call], *, pieces: int = 3) -> List[Dict[str, Any]]:
    """Chunks of an assistant turn calling ``calls``, each call's arguments split in ``pieces``."""
    chunks = [_chunk({"role": "assistant", "content": None})]
    for index, (call_id, name, arguments) in enumerate(calls):
        head: Dict[str, Any] = {
            "index": index,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        if call_id is not None:
            head["id"] = call_id
        chunks.append(_chunk({"tool_calls": [head]}))
        size = max(1, -(-len(arguments) // pieces))
        for start in range(0, len(arguments), size):
            part = arguments[start : start + size]
            chunks.append(_chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
    chunks.append(_chunk({}, "tool_calls"))
    return chunks


def tool_round(calls: Sequence[Call]) -> ScriptedResponse:
    return ScriptedResponse.from_chunks(tool_chunks(calls))


def text_round(text: str) -> ScriptedResponse:
    return ScriptedResponse.from_chunks(
        [
            _chunk({"role": "assistant", "content": text[:3]}),
            _chunk({"content": text[3:]}),
            _chunk({}, "stop"),
        ]
    )


@dataclasses.dataclass
class GatedResponse(ScriptedResponse):
    """Holds the body back before piece ``gate_at`` until ``gate`` is set (bounded), recording the outcome."""

    gate: threading.Event = dataclasses.field(default_factory=threading.Event)
    gate_at: int = 0
    opened: Optional[bool] = None

    def pieces(self) -> Iterator[bytes]:  # type: ignore[override]
        for i, piece in enumerate(super().pieces()):
            if i == self.gate_at:
                self.opened = self.gate.wait(WAIT)
            yield piece


@tool
def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"sunny in {city}"


@tool
def get_time(city: str) -> Dict[str, Any]:
    """The local time in a city."""
    return {"city": city, "time": "12:00"}


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer(repeat_last=False) as replay:
        yield replay


@pytest.fixture
def client(server: ReplayServer) -> Iterator[openai_stream.Client]:
    with openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=WAIT) as c:
        yield c


USER = [{"role": "user", "content": "Weather and time in Paris?"}]


def sent_messages(server: ReplayServer, request: int) -> List[Dict[str, Any]]:
    messages: List[Dict[str, Any]] = server.requests[request].json["messages"]
    return messages


def test_two_rounds_send_results_back_in_call_order(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    server.add(
        tool_round(
            [("call_a", "get_weather", '{"city": "Paris"}'), ("call_b", "get_time", '{"city": "Paris"}')]
        )
    )
    server.add(text_round("Sunny, and it is noon."))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather, get_time])
    seen: List[str] = []
    results: List[ToolResultEvent] = []
    rounds: List[RoundEvent] = []
    appended: List[Dict[str, Any]] = []
    runner.on("content.delta", lambda e: seen.append(e.delta))
    runner.on("tool.result", results.append)
    runner.on("round", rounds.append)
    runner.on("message", lambda e: appended.append(e.message))

    completion = runner.until_done()

    assert completion.choices[0].message.content == "Sunny, and it is noon."
    assert "".join(seen) == "Sunny, and it is noon."
    assert [(r.index, r.call_id, r.name) for r in results] == [
        (0, "call_a", "get_weather"),
        (1, "call_b", "get_time"),
    ]
    assert results[0].result == "sunny in Paris" and results[0].exception is None
    assert results[1].result == {"city": "Paris", "time": "12:00"}
    assert all(r.seconds >= 0 for r in results)
    assert [(r.number, r.completion.choices[0].finish_reason) for r in rounds] == [
        (1, "tool_calls"),
        (2, "stop"),
    ]
    assert runner.completions[-1] is completion

    assert len(server.requests) == 2
    first = server.requests[0].json
    assert first["tools"] == [get_weather.definition, get_time.definition]
    assert first["stream"] is True and first["messages"] == USER
    second = sent_messages(server, 1)
    assert second[0] == USER[0]
    assistant = second[1]
    assert assistant["role"] == "assistant"
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_a", "call_b"]
    assert assistant["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert second[2:] == [
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny in Paris"},
        {"role": "tool", "tool_call_id": "call_b", "content": json.dumps({"city": "Paris", "time": "12:00"})},
    ]
    assert runner.messages[:4] == second
    assert runner.messages[4]["content"] == "Sunny, and it is noon."
    assert appended == runner.messages[1:]
    assert runner.until_done() is completion  # finished: same completion again, nothing sent
    assert len(server.requests) == 2


def test_tool_starts_while_later_calls_still_stream(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    """Tool 0 runs, and tool 1 runs alongside it, while call 1 has not finished streaming."""
    tool0_started = threading.Event()
    tool1_started = threading.Event()
    call1_done = threading.Event()
    observed: Dict[str, bool] = {}

    @tool
    def first(x: int) -> int:
        tool0_started.set()
        observed["call1_done_when_tool0_started"] = call1_done.is_set()
        observed["saw_tool1_running"] = tool1_started.wait(WAIT)
        return x

    @tool
    def second(x: int) -> int:
        tool1_started.set()
        return x * 2

    chunks = tool_chunks([("c0", "first", '{"x": 1}'), ("c1", "second", '{"x": 2}')])
    # Piece of call 1's announcement (which completes call 0), then the gate before its arguments.
    announce = next(
        i
        for i, c in enumerate(chunks)
        if c["choices"][0]["delta"].get("tool_calls", [{}])[0].get("id") == "c1"
    )
    gated = GatedResponse(
        events=ScriptedResponse.from_chunks(chunks).events, gate=tool0_started, gate_at=announce + 1
    )
    server.add(gated)
    server.add(text_round("done"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[first, second])

    @runner.on("tool_call.done")
    def mark(event: Any) -> None:
        if event.index == 1:
            call1_done.set()

    runner.until_done()

    assert gated.opened is True, "tool 0 did not start before the rest of call 1 was sent"
    assert observed == {"call1_done_when_tool0_started": False, "saw_tool1_running": True}
    assert [m["content"] for m in sent_messages(server, 1)[2:]] == ["1", "4"]


def test_results_keep_call_order_when_later_tool_finishes_first(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    slow_may_finish = threading.Event()
    finished: List[str] = []

    @tool
    def slow() -> str:
        slow_may_finish.wait(WAIT)
        finished.append("slow")
        return "slow result"

    @tool
    def fast() -> str:
        finished.append("fast")
        slow_may_finish.set()
        return "fast result"

    server.add(tool_round([("c0", "slow", "{}"), ("c1", "fast", "{}")]))
    server.add(text_round("ok"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[slow, fast])
    order: List[str] = []
    runner.on("tool.result", lambda e: order.append(e.name))
    runner.until_done()
    assert finished == ["fast", "slow"]
    assert order == ["slow", "fast"]
    assert [(m["tool_call_id"], m["content"]) for m in sent_messages(server, 1)[2:]] == [
        ("c0", "slow result"),
        ("c1", "fast result"),
    ]


def test_parallel_tool_calls_false_runs_tools_one_at_a_time(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    other_started = threading.Event()
    lock = threading.Lock()
    state = {"active": 0, "max_active": 0}
    saw_other: List[bool] = []
    threads: List[str] = []

    def enter() -> None:
        with lock:
            state["active"] += 1
            state["max_active"] = max(state["max_active"], state["active"])
            threads.append(threading.current_thread().name)

    def leave() -> None:
        with lock:
            state["active"] -= 1

    @tool
    def one() -> str:
        enter()
        # In parallel mode tool "two" would start meanwhile; serially it cannot.
        saw_other.append(other_started.wait(0.3))
        leave()
        return "1"

    @tool
    def two() -> str:
        enter()
        other_started.set()
        leave()
        return "2"

    server.add(tool_round([("c0", "one", "{}"), ("c1", "two", "{}")]))
    server.add(text_round("ok"))
    runner = client.chat.completions.run_tools(
        model="m", messages=USER, tools=[one, two], parallel_tool_calls=False
    )
    runner.until_done()
    assert server.requests[0].json["parallel_tool_calls"] is False
    assert saw_other == [False]
    assert state["max_active"] == 1
    assert len(set(threads)) == 1
    assert [m["content"] for m in sent_messages(server, 1)[2:]] == ["1", "2"]


def test_parallel_tools_do_overlap_by_default(server: ReplayServer, client: openai_stream.Client) -> None:
    """The counterpart of the serial test: the same tools see each other running."""
    started = {"a": threading.Event(), "b": threading.Event()}
    saw: Dict[str, bool] = {}

    @tool
    def a() -> str:
        started["a"].set()
        saw["a"] = started["b"].wait(WAIT)
        return "a"

    @tool
    def b() -> str:
        started["b"].set()
        saw["b"] = started["a"].wait(WAIT)
        return "b"

    server.add(tool_round([("c0", "a", "{}"), ("c1", "b", "{}")]))
    server.add(text_round("ok"))
    client.chat.completions.run_tools(model="m", messages=USER, tools=[a, b]).until_done()
    assert saw == {"a": True, "b": True}


def test_tool_that_raises_becomes_a_message_for_the_model(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    @tool
    def explode(city: str) -> str:
        raise ValueError(f"no weather station in {city}")

    server.add(tool_round([("c0", "explode", '{"city": "Atlantis"}')]))
    server.add(text_round("Sorry."))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[explode])
    results: List[ToolResultEvent] = []
    runner.on("tool.result", results.append)
    assert runner.until_done().choices[0].message.content == "Sorry."
    [result] = results
    assert isinstance(result.exception, ValueError)
    assert str(result.exception) == "no weather station in Atlantis"
    assert result.result is None
    content = sent_messages(server, 1)[2]["content"]
    assert content == result.content
    assert "explode" in content and "ValueError" in content and "no weather station in Atlantis" in content


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"city": "Par', "not valid JSON"),
        ('{"city": 7}', "city: expected a string, got 7"),
        ('{"town": "Paris"}', "unexpected 'town'"),
        ("[1, 2]", "expected an object"),
    ],
)
def test_bad_arguments_become_a_message_for_the_model(
    server: ReplayServer, client: openai_stream.Client, arguments: str, expected: str
) -> None:
    calls: List[str] = []

    @tool
    def lookup(city: str) -> str:
        calls.append(city)
        return city

    server.add(tool_round([("c0", "lookup", arguments)]))
    server.add(text_round("retrying"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[lookup])
    results: List[ToolResultEvent] = []
    runner.on("tool.result", results.append)
    runner.until_done()
    assert calls == []
    [result] = results
    assert isinstance(result.exception, ToolArgumentsError)
    assert result.exception.name == "lookup" and result.exception.arguments == arguments
    assert result.arguments == arguments
    content = sent_messages(server, 1)[2]["content"]
    assert "lookup" in content and expected in content


def test_unknown_tool_becomes_a_message_for_the_model(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    server.add(
        tool_round([("c0", "get_wether", '{"city": "Paris"}'), ("c1", "get_weather", '{"city": "Oslo"}')])
    )
    server.add(text_round("ok"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather, get_time])
    results: List[ToolResultEvent] = []
    runner.on("tool.result", results.append)
    runner.until_done()
    assert isinstance(results[0].exception, UnknownToolError)
    assert results[0].exception.name == "get_wether"
    assert results[1].result == "sunny in Oslo"
    tool_messages = sent_messages(server, 1)[2:]
    assert "get_wether" in tool_messages[0]["content"]
    assert "get_weather, get_time" in tool_messages[0]["content"]
    assert tool_messages[1]["content"] == "sunny in Oslo"


def test_max_rounds_raises_with_the_conversation(server: ReplayServer, client: openai_stream.Client) -> None:
    for n in range(3):
        server.add(tool_round([(f"c{n}", "get_weather", '{"city": "Paris"}')]))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather], max_rounds=2)
    errors: List[Any] = []
    runner.on("error", errors.append)
    with pytest.raises(MaxRoundsExceededError) as info:
        runner.until_done()
    error = info.value
    assert isinstance(error, openai_stream.OpenAIError)
    assert "max_rounds=2" in str(error)
    assert len(server.requests) == 2
    assert [m["role"] for m in error.messages] == ["user", "assistant", "tool", "assistant", "tool"]
    assert error.messages == runner.messages
    assert error.messages[-1] == {"role": "tool", "tool_call_id": "c1", "content": "sunny in Paris"}
    assert error.completion is runner.completions[-1]
    assert [e.error for e in errors] == [error]
    with pytest.raises(MaxRoundsExceededError):
        runner.until_done()  # the same error again, nothing sent
    assert len(server.requests) == 2


def test_deepseek_reasoning_goes_back_with_the_tool_turn(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    """A recorded DeepSeek reasoner tool turn: reasoning_content must be sent back with it."""

    @tool
    def weather(location: str) -> str:
        return f"18C in {location}"

    server.add(ScriptedResponse.sse_file(FIXTURES / "deepseek-reasoning-tool-call.sse"))
    server.add(text_round("It is 18C."))
    runner = client.chat.completions.run_tools(model="deepseek-reasoner", messages=USER, tools=[weather])
    reasoning: List[str] = []
    runner.on("reasoning.done", lambda e: reasoning.append(e.reasoning))
    runner.until_done()

    [assistant, tool_message] = sent_messages(server, 1)[1:]
    assert reasoning and assistant["reasoning_content"] == reasoning[0]
    assert assistant["reasoning_content"].startswith("The user is")
    [call] = assistant["tool_calls"]
    assert call["id"] == "call_00_ioIn7yN9p1ZOMNpDLwd4MgAF"
    location = json.loads(call["function"]["arguments"])["location"]
    assert tool_message == {
        "role": "tool",
        "tool_call_id": "call_00_ioIn7yN9p1ZOMNpDLwd4MgAF",
        "content": f"18C in {location}",
    }


def test_unknown_fields_and_missing_ids_round_trip(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    """Thought signatures and other provider fields go back as received; calls without ids get one."""
    chunks = tool_chunks([(None, "get_weather", '{"city": "Rome"}')])
    signature = {"google": {"thought_signature": "c2lnbmF0dXJl"}}
    chunks[1]["choices"][0]["delta"]["tool_calls"][0]["extra_content"] = signature
    chunks[-1]["choices"][0]["delta"]["provider_field"] = {"kept": True}
    server.add(ScriptedResponse.from_chunks(chunks))
    server.add(text_round("ok"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather])
    results: List[ToolResultEvent] = []
    runner.on("tool.result", results.append)
    runner.until_done()
    assistant, tool_message = sent_messages(server, 1)[1:]
    assert assistant["provider_field"] == {"kept": True}
    [call] = assistant["tool_calls"]
    assert call["extra_content"] == signature
    assert call["id"] == tool_message["tool_call_id"] == results[0].call_id
    assert call["id"]


def test_handler_error_ends_the_run(server: ReplayServer, client: openai_stream.Client) -> None:
    server.add(tool_round([("c0", "get_weather", '{"city": "Paris"}')]))
    server.add(text_round("never sent"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather])
    boom = RuntimeError("handler failed")
    errors: List[Any] = []

    @runner.on("tool.result")
    def fail(event: ToolResultEvent) -> None:
        raise boom

    runner.on("error", errors.append)
    with pytest.raises(RuntimeError) as info:
        runner.until_done()
    assert info.value is boom
    assert [e.error for e in errors] == [boom]
    assert len(server.requests) == 1


def test_stream_error_propagates(server: ReplayServer, client: openai_stream.Client) -> None:
    server.add(
        ScriptedResponse.json({"error": {"message": "bad key", "type": "invalid_api_key"}}, status=401)
    )
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather])
    with pytest.raises(openai_stream.AuthenticationError):
        runner.until_done()


def test_a_round_without_tool_calls_ends_at_once(server: ReplayServer, client: openai_stream.Client) -> None:
    server.add(text_round("Hello there"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather])
    kinds: List[str] = []
    for kind in (
        "response",
        "chunk",
        "content.delta",
        "content.done",
        "done",
        "completion",
        "round",
        "message",
    ):
        runner.on(kind, lambda e, kind=kind: kinds.append(kind))
    assert runner.until_done().choices[0].message.content == "Hello there"
    assert kinds[0] == "response" and kinds[-2:] == ["message", "round"]
    assert {"chunk", "content.delta", "content.done", "done", "completion"} <= set(kinds)
    assert len(runner.messages) == 2


def test_results_that_are_not_strings_go_as_json(server: ReplayServer, client: openai_stream.Client) -> None:
    @dataclasses.dataclass
    class Reading:
        celsius: float
        station: str

    @tool
    def reading() -> Reading:
        return Reading(18.5, "LFPG")

    @tool
    def nothing() -> None:
        return None

    @tool
    def unsendable() -> object:
        return object()

    server.add(tool_round([("c0", "reading", "{}"), ("c1", "nothing", ""), ("c2", "unsendable", "{}")]))
    server.add(text_round("ok"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[reading, nothing, unsendable])
    results: List[ToolResultEvent] = []
    runner.on("tool.result", results.append)
    runner.until_done()
    contents = [m["content"] for m in sent_messages(server, 1)[2:]]
    assert json.loads(contents[0]) == {"celsius": 18.5, "station": "LFPG"}
    assert contents[1] == "null"
    assert "unsendable" in contents[2] and "JSON" in contents[2]
    assert isinstance(results[0].result, Reading)
    assert isinstance(results[2].exception, TypeError)


def test_plain_functions_are_accepted_and_names_must_be_unique(client: openai_stream.Client) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[add])
    assert list(runner.tools) == ["add"]
    with pytest.raises(openai_stream.ToolDefinitionError, match="two tools are named 'add'"):
        client.chat.completions.run_tools(model="m", messages=USER, tools=[add, tool(add)])
    with pytest.raises(openai_stream.OpenAIError, match="n must be 1"):
        client.chat.completions.run_tools(model="m", messages=USER, tools=[add], n=2)
    with pytest.raises(ValueError):
        client.chat.completions.run_tools(model="m", messages=USER, tools=[add], max_rounds=0)


def test_message_events_carry_each_appended_message(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    server.add(tool_round([("c0", "get_weather", '{"city": "Paris"}')]))
    server.add(text_round("fine"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather])
    events: List[MessageEvent] = []
    runner.on("message", events.append)
    runner.until_done()
    assert [e.message["role"] for e in events] == ["assistant", "tool", "assistant"]
    assert all(e.type == "message" for e in events)


def test_tools_example_runs_both_tools_and_answers(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    path = EXAMPLES / "tools.py"
    spec = importlib.util.spec_from_file_location("example_tools", path)
    assert spec is not None and spec.loader is not None
    example: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with ReplayServer(example.scripted_conversation(), repeat_last=False) as replay:
        conversation = example.main(replay.base_url)
        assert replay.requests[1].json["messages"] == conversation[:-1]
    assert [m["role"] for m in conversation] == ["user", "assistant", "tool", "tool", "assistant"]
    assert json.loads(conversation[2]["content"]) == {
        "city": "Edinburgh",
        "temperature": 13.5,
        "unit": "celsius",
    }
    assert conversation[3]["content"] == "13:00 in Edinburgh"
    assert "13:00" in conversation[-1]["content"]
    assert "It is 13.5" in capsys.readouterr().out


def test_close_from_a_handler_stops_the_run(server: ReplayServer, client: openai_stream.Client) -> None:
    server.add(tool_round([("c0", "get_weather", '{"city": "Paris"}')]))
    server.add(text_round("never sent"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather])
    runner.on("tool_call.done", lambda e: runner.close())
    with pytest.raises(openai_stream.APIUserAbortError):
        runner.until_done()
    assert len(server.requests) == 1
    assert runner.messages == USER


# --------------------------------------------------------------------------- issue 10: arguments sent late
def _transfer_recorder() -> Tuple[Any, List[Dict[str, Any]]]:
    ran: List[Dict[str, Any]] = []
    lock = threading.Lock()

    @tool
    def transfer(amount: int = 0) -> str:
        """Move money."""
        with lock:
            ran.append({"amount": amount})
        return f"moved {amount}"

    return transfer, ran


def test_arguments_sent_after_the_next_call_started_are_the_ones_the_tool_gets(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    """Issue 10: call 0 (transfer, arguments ""), then call 1, then call 0's {"amount": 500}."""
    transfer, ran = _transfer_recorder()
    server.add(
        ScriptedResponse.from_chunks(
            [
                _chunk({"role": "assistant", "content": None}),
                _chunk({"tool_calls": [_head(0, "t0", "transfer", "")]}),
                _chunk({"tool_calls": [_head(1, "t1", "get_weather", '{"city": "Paris"}')]}),
                _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"amount": 500}'}}]}),
                _chunk({}, "tool_calls"),
            ]
        )
    )
    server.add(text_round("Done."))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[transfer, get_weather])
    results: List[ToolResultEvent] = []
    runner.on("tool.result", results.append)
    runner.until_done()
    assert ran == [{"amount": 500}]  # never transfer(amount=0)
    assistant = sent_messages(server, 1)[1]
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]] == [
        '{"amount": 500}',
        '{"city": "Paris"}',
    ]
    assert [(r.index, r.arguments) for r in results] == [(0, '{"amount": 500}'), (1, '{"city": "Paris"}')]
    assert [m["content"] for m in sent_messages(server, 1)[2:]] == ["moved 500", "sunny in Paris"]


def test_a_fragment_for_a_call_already_done_fails_the_round_and_nothing_is_sent(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    transfer, ran = _transfer_recorder()
    server.add(
        ScriptedResponse.from_chunks(
            [
                _chunk({"tool_calls": [_head(0, "t0", "transfer", '{"amount": 5}')]}),
                _chunk({"tool_calls": [_head(1, "t1", "get_weather", "")]}),
                _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "00}"}}]}),
                _chunk({}, "tool_calls"),
            ]
        )
    )
    server.add(text_round("never asked for"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[transfer, get_weather])
    with pytest.raises(openai_stream.InvalidStreamDataError) as info:
        runner.until_done()
    assert "tool call 0" in str(info.value) and "'transfer'" in str(info.value)
    completion: Any = info.value.completion
    assert [c.function.arguments for c in completion.choices[0].message.tool_calls] == ['{"amount": 5}', ""]
    # transfer ran with the whole object the model had sent when call 1 started, and only with it.
    assert ran in ([], [{"amount": 5}])
    assert len(server.requests) == 1  # nothing was sent back
    assert runner.messages == USER


def _head(index: int, call_id: str, name: str, arguments: str) -> Dict[str, Any]:
    function = {"name": name, "arguments": arguments}
    return {"index": index, "id": call_id, "type": "function", "function": function}


@dataclasses.dataclass
class _ShortGate(GatedResponse):
    """A gate that gives up quickly: used where the gate must stay shut."""

    def pieces(self) -> Iterator[bytes]:  # type: ignore[override]
        for i, piece in enumerate(ScriptedResponse.pieces(self)):
            if i == self.gate_at:
                self.opened = self.gate.wait(0.5)
            yield piece


def test_call_with_empty_arguments_waits_for_the_end_of_its_choice(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    """A call done with "" when the next call starts does not run until the choice finished."""
    transfer, ran = _transfer_recorder()
    started = threading.Event()

    @tool
    def ping() -> str:
        """Ping."""
        started.set()
        return "pong"

    chunks = [
        _chunk({"role": "assistant", "content": None}),
        _chunk({"tool_calls": [_head(0, "t0", "ping", "")]}),
        _chunk({"tool_calls": [_head(1, "t1", "transfer", '{"amount": 5}')]}),
        _chunk({}, "tool_calls"),
    ]
    # The finishing chunk waits (briefly, bounded) for ping to start: it must not.
    gated = _ShortGate(events=ScriptedResponse.from_chunks(chunks).events, gate=started, gate_at=3)
    server.add(gated)
    server.add(text_round("ok"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[ping, transfer])
    runner.until_done()
    assert gated.opened is False, "ping started before its choice finished"
    assert ran == [{"amount": 5}]
    assert [m["content"] for m in sent_messages(server, 1)[2:]] == ["pong", "moved 5"]


def _late_fragment_round() -> ScriptedResponse:
    return ScriptedResponse.from_chunks(
        [
            _chunk({"tool_calls": [_head(0, "t0", "transfer", '{"amount": 5}')]}),
            _chunk({"tool_calls": [_head(1, "t1", "get_weather", '{"city": "Paris"}')]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "00}"}}]}),
            _chunk({}, "tool_calls"),
        ]
    )


@pytest.mark.parametrize("done_again", [False, True], ids=["appended-silently", "done-twice"])
def test_results_are_not_sent_when_a_call_that_ran_differs_from_the_final_message(
    server: ReplayServer, client: openai_stream.Client, monkeypatch: pytest.MonkeyPatch, done_again: bool
) -> None:
    """The runner's own checks, against an accumulator with the old defect (a late fragment let in)."""
    from openai_stream.chat._accumulator import ChatCompletionAccumulator

    original = ChatCompletionAccumulator._feed_tool_call

    def lenient(self: Any, state: Any, fragment: Any, events: Any) -> None:
        done = [c for c in state.calls if c.done]
        for reopened in done:
            reopened.done = False
        original(self, state, fragment, events)
        if not done_again:  # appended without a second tool_call.done
            for reopened in done:
                reopened.done = True

    monkeypatch.setattr(ChatCompletionAccumulator, "_feed_tool_call", lenient)
    transfer, ran = _transfer_recorder()
    server.add(_late_fragment_round())
    server.add(text_round("never asked for"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[transfer, get_weather])
    with pytest.raises(openai_stream.ToolCallMismatchError) as info:
        runner.until_done()
    error = info.value
    assert isinstance(error, openai_stream.InvalidStreamDataError)
    assert (error.index, error.name) == (0, "transfer")
    assert (error.executed_arguments, error.final_arguments) == ('{"amount": 5}', '{"amount": 5}00}')
    completion: Any = error.completion
    assert completion.choices[0].message.tool_calls[0].function.arguments == '{"amount": 5}00}'
    assert ran in ([], [{"amount": 5}])  # started when call 1 began; it may have been cancelled
    assert len(server.requests) == 1
    assert runner.messages == USER


# --------------------------------------------------------------------------- property: what ran was sent
@st.composite
def tool_call_streams(draw: st.DrawFn) -> Tuple[List[List[Dict[str, Any]]], List[str], bool]:
    """Chunks of tool-call fragments: split, interleaved, repeated; each call's name stays put.

    Returns the chunks' tool_calls lists, each call's full argument text as the generator
    sent it (repeats included), and whether a fragment came for a call already complete
    (the protocol violation), computed here without openai_stream.
    """
    count = draw(st.integers(1, 3))
    per_call: List[List[Dict[str, Any]]] = []
    for index in range(count):
        shape = draw(st.integers(0, 5))
        if shape == 0:
            text = ""
        elif shape == 1:
            text = draw(st.sampled_from(["{", '{"amount": ', "not json", "[1]", "{}"]))
        else:
            text = json.dumps({"amount": draw(st.integers(-5, 10**6))})
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=3)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)]) if text[a:b]]
        by_id = draw(st.booleans())  # address continuations by id only, without index
        fragments = [
            {"index": index, "id": f"call_{index}", "type": "function",
             "function": {"name": "transfer", "arguments": ""}}
        ]
        for piece in pieces:
            fragment: Dict[str, Any] = {"function": {"arguments": piece}}
            fragment.update({"id": f"call_{index}"} if by_id else {"index": index})
            fragments.append(fragment)
            if draw(st.integers(0, 9)) == 0:  # sent twice
                fragments.append(json.loads(json.dumps(fragment)))
        per_call.append(fragments)
    # Interleave: at each step take the next fragment of some call; call k's head never before call k-1's.
    order: List[Tuple[int, Dict[str, Any]]] = []
    cursors = [0] * count
    if draw(st.booleans()):  # one call after the other, as most servers send them
        order = [(k, fragment) for k in range(count) for fragment in per_call[k]]
        cursors = [len(fragments) for fragments in per_call]
    while any(cursors[k] < len(per_call[k]) for k in range(count)):
        ready = [
            k for k in range(count)
            if cursors[k] < len(per_call[k]) and (cursors[k] > 0 or k == 0 or cursors[k - 1] > 0)
        ]
        k = draw(st.sampled_from(ready))
        order.append((k, per_call[k][cursors[k]]))
        cursors[k] += 1
    if count > 1 and draw(st.booleans()):  # one more fragment for an earlier call, after the last head
        k = draw(st.integers(0, count - 2))
        extra = {"index": k, "function": {"arguments": draw(st.sampled_from([" ", "}", '0}', '"x"}']))}}
        last_head = max(i for i, (j, f) in enumerate(order) if "id" in f and "type" in f)
        order.insert(draw(st.integers(last_head + 1, len(order))), (k, extra))
    # The protocol as issue 10 states it: when a call starts, each earlier call whose text so
    # far is a whole JSON object is complete; a fragment for a complete call is a violation.
    texts = [""] * count
    closed = [False] * count
    announced = 0
    violation = False
    for k, fragment in order:
        if k >= announced:
            for earlier in range(announced):
                closed[earlier] = closed[earlier] or _whole_object(texts[earlier])
            announced = k + 1
        elif closed[k]:
            violation = True
        texts[k] += fragment["function"]["arguments"]
    chunks: List[List[Dict[str, Any]]] = []
    position = 0
    while position < len(order):
        size = draw(st.integers(1, 3))
        chunks.append([fragment for _, fragment in order[position : position + size]])
        position += size
    sent = ["".join(f["function"]["arguments"] for j, f in order if j == k) for k in range(count)]
    return chunks, sent, violation


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tool_call_streams())
def test_every_tool_runs_with_the_final_arguments_or_the_stream_fails(
    case: Tuple[List[List[Dict[str, Any]]], List[str], bool],
) -> None:
    chunk_calls, sent, violation = case
    event(f"violation={violation}")
    transfer, ran = _transfer_recorder()
    results: List[ToolResultEvent] = []
    with ReplayServer(repeat_last=False) as replay:
        replay.add(
            ScriptedResponse.from_chunks(
                [_chunk({"role": "assistant"})]
                + [_chunk({"tool_calls": calls}) for calls in chunk_calls]
                + [_chunk({}, "tool_calls")]
            )
        )
        replay.add(text_round("done"))
        with openai_stream.Client(
            api_key="sk-test", base_url=replay.base_url, max_retries=0, timeout=WAIT
        ) as c:
            runner = c.chat.completions.run_tools(model="m", messages=USER, tools=[transfer])
            runner.on("tool.result", results.append)
            error: Optional[BaseException] = None
            try:
                runner.until_done()
            except openai_stream.OpenAIError as exc:
                error = exc
        requests = len(replay.requests)
    executed = {r.index: r.arguments for r in results if r.exception is None}
    if violation:
        assert isinstance(error, openai_stream.InvalidStreamDataError), error
        assert error.completion is not None
        assert requests == 1 and runner.messages == USER
        # Whatever ran had started before the choice ended: with a whole JSON object that is
        # what the model had sent of that call so far, never with "" or a guess.
        allowed = [_object_prefixes(text) for text in sent]
        for kwargs in ran:
            assert any(kwargs in prefixes for prefixes in allowed), (kwargs, sent)
    else:
        assert error is None, error
        assert requests == 2
        final = runner.completions[0].choices[0].message.tool_calls or []
        assert [c.function.arguments for c in final] == sent
        assert len(results) == len(sent)
        for index, arguments in executed.items():
            assert arguments == sent[index]
        expected_runs = []
        for text in sent:
            try:
                value = json.loads(text) if text.strip() else {}
            except ValueError:
                continue
            amount = value.get("amount", 0) if isinstance(value, dict) else None
            if isinstance(value, dict) and set(value) <= {"amount"} and type(amount) is int:
                expected_runs.append({"amount": amount})
        assert sorted(ran, key=json.dumps) == sorted(expected_runs, key=json.dumps)


def _whole_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _object_prefixes(text: str) -> List[Dict[str, Any]]:
    """The tool's keyword arguments for every prefix of ``text`` that is a whole JSON object."""
    found = []
    for end in range(1, len(text) + 1):
        try:
            value = json.loads(text[:end])
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append({"amount": value.get("amount", 0)})
    return found


def test_a_custom_tool_call_is_answered_like_an_unknown_tool(
    server: ReplayServer, client: openai_stream.Client
) -> None:
    """A freeform call (type "custom") cannot run here: the model is told, as for an unknown tool."""
    head = {"index": 0, "id": "call_c", "type": "custom", "custom": {"name": "code_exec", "input": ""}}
    server.add(
        ScriptedResponse.from_chunks(
            [
                _chunk({"role": "assistant", "tool_calls": [head]}),
                _chunk({"tool_calls": [{"index": 0, "custom": {"input": "print(1)"}}]}),
                _chunk({"tool_calls": [_head(1, "call_w", "get_weather", '{"city": "Oslo"}')]}),
                _chunk({}, "tool_calls"),
            ]
        )
    )
    server.add(text_round("ok"))
    runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[get_weather])
    results: List[ToolResultEvent] = []
    runner.on("tool.result", results.append)
    runner.until_done()
    assistant, custom_result, weather_result = sent_messages(server, 1)[1:]
    assert assistant["tool_calls"][0] == {
        "id": "call_c",
        "type": "custom",
        "custom": {"name": "code_exec", "input": "print(1)"},
    }
    assert custom_result["tool_call_id"] == "call_c"
    assert custom_result["content"].startswith("Error: ") and "'code_exec'" in custom_result["content"]
    assert "custom tool" in custom_result["content"] and "get_weather" in custom_result["content"]
    assert weather_result == {"role": "tool", "tool_call_id": "call_w", "content": "sunny in Oslo"}
    assert isinstance(results[0].exception, UnknownToolError) and results[0].name == "code_exec"
    assert results[0].arguments == "print(1)"
