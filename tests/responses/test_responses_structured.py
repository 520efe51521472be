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
