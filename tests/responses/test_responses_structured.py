"""Structured output on the Responses API (issue 12 §7): ``text.format`` and pydantic models.

``text={"format": {"type": "json_schema", ...}}`` gives ``parsed`` (the JSON) on
``content.done`` and the response, as ``response_format`` does for chat;
``text_format=Model`` sends the model's strict schema and gives instances.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
from conftest import RESPONSES_FIXTURES

pytest.importorskip("pydantic")
from pydantic import BaseModel

import openai_stream
from openai_stream.engine._events import ParsedContentDoneEvent
from openai_stream.testing import ReplayServer, ScriptedResponse, split_sse_events

FIXTURES = RESPONSES_FIXTURES


class Person(BaseModel):
    name: str
    age: int


class Weather(BaseModel):
    location: str


def scripted(name: str) -> ScriptedResponse:
    return ScriptedResponse(events=split_sse_events((FIXTURES / f"{name}.sse").read_bytes()))


def client_for(server: Any) -> openai_stream.Client:
    return openai_stream.Client(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)


def test_text_format_model_gives_instances_on_content_done_and_the_response() -> None:
    with ReplayServer([scripted("openai-structured-output")]) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="who?", text_format=Person)
        done: List[Any] = []
        stream.on("content.done", done.append)
        response = stream.until_done()
    fmt = server.requests[0].json["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["name"] == "Person" and fmt["strict"] is True
    assert fmt["schema"]["required"] == ["name", "age"] and fmt["schema"]["additionalProperties"] is False
    (event,) = done
    assert isinstance(event, ParsedContentDoneEvent)
    assert event.parsed == Person(name="Bob", age=3) == response.parsed


def test_text_format_model_that_does_not_fit_raises_with_the_response() -> None:
    with ReplayServer([scripted("openai-structured-output")]) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="who?", text_format=Weather)
        with pytest.raises(openai_stream.StructuredOutputError) as caught:
            stream.until_done()
    assert caught.value.errors and caught.value.errors[0]["loc"] == ("location",)
    assert json.loads(caught.value.completion.output_text) == {"name": "Bob", "age": 3}
    assert caught.value.completion.parsed is None


def test_text_format_on_create_and_refusals() -> None:

    def answer(part: Dict[str, Any]) -> ScriptedResponse:
        return ScriptedResponse.json(
            {"id": "r", "object": "response", "status": "completed",
             "output": [{"type": "message", "id": "m", "role": "assistant", "content": [part]}]}
        )

    text = {"type": "output_text", "text": '{"name": "Ann", "age": 40}', "annotations": []}
    refusal = {"type": "refusal", "refusal": "I can't."}
    with ReplayServer([answer(text), answer(refusal)]) as server, client_for(server) as client:
        parsed = client.responses.create(model="m", input="x", text_format=Person).parsed
        assert parsed == Person(name="Ann", age=40)
        assert client.responses.create(model="m", input="x", text_format=Person).parsed is None
    assert server.requests[0].json["text"]["format"]["name"] == "Person"
    with pytest.raises(TypeError, match="pydantic model"):
        client.responses.stream(model="m", input="x", text_format=dict)


def test_a_pydantic_function_tool_gives_model_instances_as_parsed_arguments() -> None:
    tool = openai_stream.pydantic_function_tool(Weather, name="get_weather")
    with ReplayServer([scripted("openai-function-call")]) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="weather?", tools=[tool])
        done: List[Any] = []
        stream.on("tool_call.done", done.append)
        stream.until_done()
    assert server.requests[0].json["tools"][0]["name"] == "get_weather"
    assert done[0].parsed_arguments == Weather(location="Paris, France")


# --------------------------------------------------------------------------- parsed_arguments
# As openai-python's ParsedResponseFunctionToolCall: the model instance for pydantic_function_tool(Model),
# the decoded JSON for a plain tool declared strict, None for any other tool.
PARALLEL = "openai-parallel-function-calls"  # two get_weather calls: Paris and Bogotá
CITIES = ["Paris", "Bogotá"]
PLAIN_TOOL = {"type": "function", "name": "get_weather",
              "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                             "required": ["location"], "additionalProperties": False}}


def whole_response(name: str) -> Dict[str, Any]:
    """The fixture's response.completed snapshot: the non-streamed answer's shape."""
    for event in split_sse_events((FIXTURES / f"{name}.sse").read_bytes()):
        for line in event.decode().splitlines():
            if line.startswith("data: ") and '"response.completed"' in line:
                snapshot: Dict[str, Any] = json.loads(line[len("data: "):])["response"]
                return snapshot
    raise AssertionError("no response.completed")


def calls_of(response: Any) -> List[Any]:
    return [item for item in response.output if item.type == "function_call"]


def test_function_call_items_carry_the_model_instances_of_the_done_events() -> None:
    tool = openai_stream.pydantic_function_tool(Weather, name="get_weather")
    answers = [scripted(PARALLEL), ScriptedResponse.json(whole_response(PARALLEL))]
    with ReplayServer(answers) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="weather?", tools=[tool])
        done: List[Any] = []
        stream.on("tool_call.done", done.append)
        response = stream.until_done()
        created = client.responses.create(model="m", input="weather?", tools=[tool])
    items = calls_of(response)
    assert [item.parsed_arguments for item in items] == [Weather(location=city) for city in CITIES]
    assert all(item.parsed_arguments is event.parsed_arguments for item, event in zip(items, done))
    assert [item.parsed_arguments for item in calls_of(created)] == [Weather(location=c) for c in CITIES]
    assert isinstance(calls_of(created)[0].parsed_arguments, Weather)
    dumped = [item for item in response.to_dict()["output"] if item["type"] == "function_call"]
    assert [item["parsed_arguments"] for item in dumped] == [{"location": city} for city in CITIES]
    assert response.to_dict()["output"] == created.to_dict()["output"]


@pytest.mark.parametrize("strict, expected", [(True, [{"location": c} for c in CITIES]), (False, [None] * 2)])
def test_a_plain_tool_gives_its_json_when_strict_and_none_otherwise(strict: bool, expected: Any) -> None:
    tool = {**PLAIN_TOOL, "strict": True} if strict else PLAIN_TOOL
    answers = [scripted(PARALLEL), ScriptedResponse.json(whole_response(PARALLEL))]
    with ReplayServer(answers) as server, client_for(server) as client:
        response = client.responses.stream(model="m", input="weather?", tools=[tool]).until_done()
        created = client.responses.create(model="m", input="weather?", tools=[tool])
    assert [item.parsed_arguments for item in calls_of(response)] == expected
    assert [item.parsed_arguments for item in calls_of(created)] == expected


def test_parsed_arguments_equal_openai_pythons_responses_parse() -> None:
    openai = pytest.importorskip("openai")
    theirs_tool = openai.pydantic_function_tool(Weather, name="get_weather")
    answers = [ScriptedResponse.json(whole_response(PARALLEL)) for _ in range(2)]
    with ReplayServer([*answers, scripted(PARALLEL)]) as server:
        theirs = openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=0).responses.parse(
            model="m", input="weather?", tools=[theirs_tool]
        )
        expected = [item.parsed_arguments for item in theirs.output if item.type == "function_call"]
        assert expected == [Weather(location=city) for city in CITIES]
        with client_for(server) as client:
            created = client.responses.create(model="m", input="weather?", tools=[theirs_tool])
            streamed = client.responses.stream(model="m", input="weather?", tools=[theirs_tool]).until_done()
    for response in (created, streamed):
        assert [item.parsed_arguments for item in calls_of(response)] == expected


def test_function_call_items_go_back_without_parsed_arguments() -> None:
    tool = {**PLAIN_TOOL, "strict": True}
    with ReplayServer([scripted(PARALLEL), scripted("openai-text")]) as server, client_for(server) as client:
        response = client.responses.stream(model="m", input="weather?", tools=[tool]).until_done()
        assert calls_of(response)[0].parsed_arguments == {"location": "Paris"}
        client.responses.stream(model="m", input=[*response.output], tools=[tool]).until_done()
    sent = [item for item in server.requests[1].json["input"] if item["type"] == "function_call"]
    assert sent == [item for item in whole_response(PARALLEL)["output"] if item["type"] == "function_call"]


@openai_stream.tool(strict=True)
def get_weather(location: str) -> str:
    """Get the current weather in a city."""
    return f"sunny in {location}"


def test_the_tool_runner_sends_function_call_items_back_without_parsed_arguments() -> None:
    with ReplayServer([scripted(PARALLEL), scripted("openai-text")]) as server, client_for(server) as client:
        client.responses.run_tools(model="m", input="weather?", tools=[get_weather]).until_done()
    assert server.requests[0].json["tools"][0]["strict"] is True  # so its calls get parsed_arguments
    sent = [item for item in server.requests[1].json["input"] if item.get("type") == "function_call"]
    assert sent == [item for item in whole_response(PARALLEL)["output"] if item["type"] == "function_call"]
