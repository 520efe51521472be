"""``client.responses.run_tools``: the tool runner over the Responses API (issue 12 §6), on loopback.

The rounds are OpenAI-shaped streams: the fixtures of tests/fixtures/responses
and streams written here from the documented event shapes. What is checked is
what the runner sends back (the next request's ``input``: the round's output
items as received, reasoning with its ``encrypted_content``, one
``function_call_output`` per call in call order), its events, and the chat
runner's guarantee: a tool runs only with arguments the model finished
sending, as the final response has them.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
from conftest import RESPONSES_FIXTURES

import openai_stream
from openai_stream import MaxRoundsExceededError, ToolCallMismatchError, tool
from openai_stream.testing import ReplayServer, ScriptedResponse, split_sse_events

FIXTURES = RESPONSES_FIXTURES
WAIT = 10.0


def fixture_round(name: str) -> ScriptedResponse:
    return ScriptedResponse(events=split_sse_events((FIXTURES / f"{name}.sse").read_bytes()))


def output_of(name: str) -> List[Dict[str, Any]]:
    """The final output items of a fixture, as its response.completed sends them."""
    body = (FIXTURES / f"{name}.sse").read_bytes()
    for line in body.split(b"\n"):
        if line.startswith(b"data: ") and b'"response.completed"' in line:
            output: List[Dict[str, Any]] = json.loads(line[len(b"data: ") :])["response"]["output"]
            return output
    raise AssertionError(name)


def sse(payload: Dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


Call = Tuple[str, str, str]  # (call_id, name, arguments)


def calls_round(
    calls: Sequence[Call],
    *,
    reasoning: Optional[Dict[str, Any]] = None,
    final_arguments: Optional[Sequence[str]] = None,
    response_id: str = "resp_t",
) -> ScriptedResponse:
    """A streamed response calling ``calls`` (each arguments in two deltas), optionally after a
    reasoning item; ``final_arguments`` puts other arguments in response.completed's output."""
    events: List[Dict[str, Any]] = []
    base = {"id": response_id, "object": "response", "model": "m", "output": []}
    events.append({"type": "response.created", "response": {**base, "status": "in_progress"}})
    output: List[Dict[str, Any]] = []
    if reasoning is not None:
        events.append(
            {"type": "response.output_item.added", "output_index": 0, "item": {**reasoning, "summary": []}}
        )
        events.append({"type": "response.output_item.done", "output_index": 0, "item": reasoning})
        output.append(reasoning)
    for call_id, name, arguments in calls:
        position = len(output)
        item = {"id": f"fc_{call_id}", "type": "function_call", "call_id": call_id, "name": name}
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": position,
                "item": {**item, "arguments": "", "status": "in_progress"},
            }
        )
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": position,
                    "delta": piece,
                }
            )
        events.append(
            {
                "type": "response.function_call_arguments.done",
                "item_id": item["id"],
                "output_index": position,
                "arguments": arguments,
            }
        )
        done = {**item, "arguments": arguments, "status": "completed"}
        events.append({"type": "response.output_item.done", "output_index": position, "item": done})
        output.append(done)
    if final_arguments is not None:
        calls_out = [i for i in output if i["type"] == "function_call"]
        for item, arguments in zip(calls_out, final_arguments):
            item["arguments"] = arguments
    events.append(
        {"type": "response.completed", "response": {**base, "status": "completed", "output": output}}
    )
    for number, payload in enumerate(events):
        payload["sequence_number"] = number
    return ScriptedResponse(events=[sse(e) for e in events])


def client_for(server: ReplayServer) -> openai_stream.Client:
    return openai_stream.Client(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=WAIT)


@tool
def get_weather(location: str) -> str:
    """The current weather.

    Args:
        location: City and country.
    """
    return f"sunny in {location}"


# --------------------------------------------------------------------------- the conversation
def test_a_function_call_runs_and_its_output_goes_back_with_the_round_output() -> None:
    with (
        ReplayServer([fixture_round("openai-function-call"), fixture_round("openai-text")]) as server,
        client_for(server) as client,
    ):
        runner = client.responses.run_tools(model="gpt-4.1", input="Weather in Paris?", tools=[get_weather])
        results: List[Any] = []
        messages: List[Any] = []
        rounds: List[Any] = []
        deltas: List[str] = []
        runner.on("tool.result", results.append)
        runner.on("message", messages.append)
        runner.on("round", rounds.append)
        runner.on("content.delta", lambda event: deltas.append(event.delta))
        final = runner.until_done()
    first, second = (r.json for r in server.requests)
    definition = {"type": "function", **get_weather.definition["function"]}
    assert first["tools"] == [definition] == second["tools"]
    assert first["input"] == [{"role": "user", "content": "Weather in Paris?"}]
    (call,) = output_of("openai-function-call")
    sent_back = {
        "type": "function_call_output",
        "call_id": call["call_id"],
        "output": "sunny in Paris, France",
    }
    assert second["input"] == [first["input"][0], call, sent_back]
    final_items = output_of("openai-text")
    assert runner.input == second["input"] + final_items  # the last answer joins the conversation too
    assert [(r.name, r.arguments, r.result, r.call_id) for r in results] == [
        ("get_weather", '{"location":"Paris, France"}', "sunny in Paris, France", call["call_id"])
    ]
    assert [m.message for m in messages] == [call, sent_back, *final_items]
    assert [r.number for r in rounds] == [1, 2] and rounds[1].response is final
    assert isinstance(final, openai_stream.Response) and final.output_text == "".join(deltas)
    assert len(runner.responses) == 2 and runner.responses[1] is final


def test_reasoning_items_are_carried_with_their_encrypted_content() -> None:
    reasoning = {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Need the weather."}],
        "encrypted_content": "gAAAAB-opaque",
    }
    rounds = [
        calls_round([("call_a", "get_weather", '{"location": "Oslo"}')], reasoning=reasoning),
        fixture_round("openai-text"),
    ]
    with ReplayServer(rounds) as server, client_for(server) as client:
        client.responses.run_tools(
            model="o4-mini",
            input=[{"role": "user", "content": "Oslo?"}],
            tools=[get_weather],
            include=["reasoning.encrypted_content"],
            store=False,
        ).until_done()
    second = server.requests[1].json
    assert second["include"] == ["reasoning.encrypted_content"] and second["store"] is False
    kinds = [item.get("type", "message") for item in second["input"]]
    assert kinds == ["message", "reasoning", "function_call", "function_call_output"]
    assert second["input"][1] == reasoning


def test_parallel_calls_are_answered_in_call_order() -> None:
    calls = [("c1", "get_weather", '{"location": "A"}'), ("c2", "get_weather", '{"location": "B"}')]
    with (
        ReplayServer([calls_round(calls), fixture_round("openai-text")]) as server,
        client_for(server) as client,
    ):
        client.responses.run_tools(model="m", input="two", tools=[get_weather]).until_done()
    outputs = [i for i in server.requests[1].json["input"] if i.get("type") == "function_call_output"]
    assert [(o["call_id"], o["output"]) for o in outputs] == [("c1", "sunny in A"), ("c2", "sunny in B")]


def test_a_tool_that_raises_tells_the_model_and_the_run_goes_on() -> None:
    @tool
    def broken(location: str) -> str:
        """Fails."""
        raise RuntimeError("sensor offline")

    rounds = [calls_round([("c1", "broken", '{"location": "A"}')]), fixture_round("openai-text")]
    with ReplayServer(rounds) as server, client_for(server) as client:
        client.responses.run_tools(model="m", input="x", tools=[broken]).until_done()
    (output,) = [i for i in server.requests[1].json["input"] if i.get("type") == "function_call_output"]
    assert "RuntimeError" in output["output"] and "sensor offline" in output["output"]


def test_a_custom_tool_call_is_answered_that_it_cannot_run_here() -> None:
    with (
        ReplayServer([fixture_round("openai-custom-tool-call"), fixture_round("openai-text")]) as server,
        client_for(server) as client,
    ):
        client.responses.run_tools(model="m", input="x", tools=[get_weather]).until_done()
    (call,) = [i for i in output_of("openai-custom-tool-call") if i["type"] == "custom_tool_call"]
    (answer,) = [i for i in server.requests[1].json["input"] if i.get("type") == "custom_tool_call_output"]
    assert answer["call_id"] == call["call_id"] and "custom tool" in answer["output"]


def test_max_rounds_ends_a_run_that_keeps_calling_tools() -> None:
    looping = calls_round([("c1", "get_weather", '{"location": "A"}')])
    with ReplayServer([looping], repeat_last=True) as server, client_for(server) as client:
        runner = client.responses.run_tools(model="m", input="x", tools=[get_weather], max_rounds=3)
        with pytest.raises(MaxRoundsExceededError) as caught:
            runner.until_done()
    assert len(server.requests) == 3
    assert caught.value.messages == runner.input and len(runner.responses) == 3


def test_a_call_whose_final_arguments_differ_from_what_ran_sends_nothing_back() -> None:
    ran: List[str] = []

    @tool
    def record(location: str) -> str:
        """Records."""
        ran.append(location)
        return "ok"

    contradicting = calls_round(
        [("c1", "record", '{"location": "A"}')], final_arguments=['{"location": "B"}']
    )
    with ReplayServer([contradicting, fixture_round("openai-text")]) as server, client_for(server) as client:
        runner = client.responses.run_tools(model="m", input="x", tools=[record])
        with pytest.raises(ToolCallMismatchError) as caught:
            runner.until_done()
    assert ran == ["A"]  # it ran with the arguments the model finished sending...
    assert caught.value.executed_arguments == '{"location": "A"}'
    assert caught.value.final_arguments == '{"location": "B"}'
    assert len(server.requests) == 1  # ...and nothing was sent back


def test_a_tool_starts_before_the_response_ends_only_once_its_arguments_are_done() -> None:
    started = threading.Event()
    release = threading.Event()

    @tool
    def slow(location: str) -> str:
        """Waits."""
        started.set()
        release.wait(WAIT)
        return "done"

    calls = [("c1", "slow", '{"location": "A"}'), ("c2", "get_weather", '{"location": "B"}')]
    seen_while_running: List[str] = []
    with (
        ReplayServer([calls_round(calls), fixture_round("openai-text")]) as server,
        client_for(server) as client,
    ):
        runner = client.responses.run_tools(model="m", input="x", tools=[slow, get_weather])

        @runner.on("tool_call.delta")
        def watch(event: Any) -> None:
            if event.index == 1 and started.is_set():
                seen_while_running.append(event.arguments_delta)
                release.set()

        runner.until_done()
    # The first call was running while the second one's arguments still streamed.
    assert seen_while_running


def test_runner_event_names_are_checked_against_the_responses_events() -> None:
    client = openai_stream.Client(base_url="http://127.0.0.1:9/v1", api_key="k")
    runner = client.responses.run_tools(model="m", input="x", tools=[get_weather])
    for name in ("response.output_text.delta", "content.delta", "tool.result", "message", "round"):
        runner.on(name, lambda event: None)
    with pytest.raises(ValueError, match="no chunks"):
        runner.on("chunk", lambda event: None)
    with pytest.raises(TypeError, match="max_rounds"):
        client.responses.run_tools(model="m", input="x", tools=[get_weather], max_round=2)
