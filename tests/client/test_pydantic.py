"""Pydantic models as structured output, tool parameters and function tools (the ``[pydantic]`` extra).

Oracles: openai-python's own ``to_strict_json_schema``, ``type_to_response_format_param``
and ``pydantic_function_tool`` for what is sent (the issue asks for schemas built
the way openai-python builds them), and pydantic itself (``model_validate_json``)
for what comes back. The local llama.cpp model, whose ``response_format`` schema is
grammar-constrained, answers with real JSON for a model with nested models, an
enum, optionals, a list and a union.
"""

from __future__ import annotations

import enum
import json
import pickle
import subprocess
import sys
import textwrap
from typing import Any, Dict, Iterator, List, Literal, Optional, Union

import pytest
from conftest import ROOT

pytest.importorskip("pydantic")
from pydantic import BaseModel, Field, ValidationError

import openai_stream
from openai_stream import local
from openai_stream._pydantic import strict_json_schema, text_format
from openai_stream.engine import _events as engine_events
from openai_stream.engine import _parsing as engine_parsing
from openai_stream.testing import ReplayServer, ScriptedResponse

USER = [{"role": "user", "content": "Describe Ann."}]


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    """A postal address."""

    street: str
    city: Optional[str] = None


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Person(BaseModel):
    """Someone to describe."""

    name: str
    age: int = 30
    color: Color
    addresses: List[Address]
    home: Optional[Address] = Field(default=None, description="Where they live now")
    pet: Union[Cat, Dog]


class Node(BaseModel):
    value: int
    children: List[Node] = []


class Tagged(BaseModel):
    pet: Union[Cat, Dog] = Field(discriminator="kind")
    favorite: Color = Field(description="The favourite colour")


class Weather(BaseModel):
    """Ask for the weather in a city."""

    city: str
    unit: Literal["c", "f"]


ANN = {
    "name": "Ann", "age": 31, "color": "green",
    "addresses": [{"street": "1 Main St", "city": None}], "home": None, "pet": {"kind": "dog", "good": True},
}


def chunks_of(content: str, pieces: int = 4, **choice: Any) -> List[Dict[str, Any]]:
    size = max(1, len(content) // pieces)
    parts = [content[i : i + size] for i in range(0, len(content), size)]
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]}
        for part in parts
    ]
    chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", **choice}]})
    return chunks


@pytest.fixture()
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as running:
        yield running


def client_for(server: ReplayServer) -> openai_stream.Client:
    return openai_stream.Client(api_key="k", base_url=server.base_url, max_retries=0)


# --------------------------------------------------------------------------- what is sent
@pytest.mark.parametrize("model", [Person, Address, Node, Tagged, Weather])
def test_the_strict_schema_is_openai_pythons(model: type[BaseModel]) -> None:
    openai_pydantic = pytest.importorskip("openai.lib._pydantic")
    assert strict_json_schema(model) == openai_pydantic.to_strict_json_schema(model)


def test_response_format_model_sends_what_openai_python_sends(server: ReplayServer) -> None:
    parsing = pytest.importorskip("openai.lib._parsing._completions")
    server.add(ScriptedResponse.from_chunks(chunks_of(json.dumps(ANN))))
    client_for(server).chat.completions.stream(model="m", messages=USER, response_format=Person).until_done()
    assert server.requests[0].json["response_format"] == parsing.type_to_response_format_param(Person)
    assert text_format(Person) == {
        "type": "json_schema", "name": "Person", "schema": strict_json_schema(Person), "strict": True,
    }


def test_pydantic_function_tool_is_openai_pythons() -> None:
    theirs = pytest.importorskip("openai").pydantic_function_tool(Weather)
    ours = openai_stream.pydantic_function_tool(Weather)
    assert json.loads(json.dumps(ours)) == json.loads(json.dumps(theirs))
    named = openai_stream.pydantic_function_tool(Weather, name="weather", description="Weather.")
    assert named["function"]["name"] == "weather" and named["function"]["description"] == "Weather."


# --------------------------------------------------------------------------- what comes back
def test_parsed_is_a_model_instance_on_content_done_and_the_message(server: ReplayServer) -> None:
    content = json.dumps(ANN)
    server.add(ScriptedResponse.from_chunks(chunks_of(content)))
    stream = client_for(server).chat.completions.stream(model="m", messages=USER, response_format=Person)
    seen: List[Any] = []
    stream.on("content.done", lambda event: seen.append(event.parsed))
    completion = stream.until_done()
    expected = Person.model_validate_json(content)
    assert seen == [expected] and isinstance(seen[0], Person) and seen[0].color is Color.GREEN
    message = completion.choices[0].message
    assert isinstance(message.parsed, Person) and message.parsed == expected
    assert isinstance(message.parsed.pet, Dog)
    assert completion.to_dict()["choices"][0]["message"]["parsed"] == expected.model_dump(mode="json")
    assert json.loads(completion.model_dump_json())["choices"][0]["message"]["parsed"]["name"] == "Ann"


def test_a_mismatch_raises_structured_output_error_with_pydantics_errors(server: ReplayServer) -> None:
    content = json.dumps({**ANN, "color": "blue", "age": "old"})
    server.add(ScriptedResponse.from_chunks(chunks_of(content)))
    stream = client_for(server).chat.completions.stream(model="m", messages=USER, response_format=Person)
    kinds: List[str] = []
    stream.on("content.done", lambda event: kinds.append(event.type))
    stream.on("done", lambda event: kinds.append(event.type))
    stream.on("completion", lambda event: kinds.append(event.type))
    with pytest.raises(openai_stream.StructuredOutputError) as info:
        stream.until_done()
    with pytest.raises(ValidationError) as oracle:
        Person.model_validate_json(content)
    error = info.value
    assert error.errors == oracle.value.errors(include_url=False)
    assert {tuple(e["loc"]) for e in error.errors or []} == {("age",), ("color",)}
    assert error.content == content and "Person" in str(error) and "age" in str(error)
    assert error.completion is not None and error.completion.choices[0].message.content == content
    assert error.completion.choices[0].message.parsed is None
    assert kinds == ["content.done", "done"]  # handlers saw the choice end; no completion event
    with pytest.raises(openai_stream.StructuredOutputError):
        stream.until_done()


def test_reading_parsed_of_a_mismatch_raises(server: ReplayServer) -> None:
    server.add(ScriptedResponse.from_chunks(chunks_of('{"name": "Ann"')))  # cut off
    stream = client_for(server).chat.completions.stream(model="m", messages=USER, response_format=Address)
    with pytest.raises(openai_stream.StructuredOutputError):
        for event in stream:
            if isinstance(event, openai_stream.ContentDoneEvent):
                event.parsed  # noqa: B018


def test_an_answer_without_content_is_an_error_not_a_silent_none(server: ReplayServer) -> None:
    empty = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
              "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "length"}]}]
    server.add(ScriptedResponse.from_chunks(empty))
    stream = client_for(server).chat.completions.stream(model="m", messages=USER, response_format=Person)
    with pytest.raises(openai_stream.StructuredOutputError, match=r"no content.*'length'") as info:
        stream.until_done()
    assert info.value.completion.choices[0].finish_reason == "length"


def test_a_refusal_has_no_parsed_and_no_error(server: ReplayServer) -> None:
    refusal = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"refusal": "I can't."}, "finish_reason": "stop"}]}]
    server.add(ScriptedResponse.from_chunks(refusal))
    completion = client_for(server).chat.completions.stream(
        model="m", messages=USER, response_format=Person
    ).until_done()
    message = completion.choices[0].message
    assert message.parsed is None and message.refusal == "I can't."


def test_with_several_choices_the_failing_one_is_named(server: ReplayServer) -> None:
    good, bad = json.dumps({"street": "x"}), json.dumps({"city": 3})
    chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [
        {"index": 0, "delta": {"content": good}, "finish_reason": "stop"},
        {"index": 1, "delta": {"content": bad}, "finish_reason": "stop"}]}]
    server.add(ScriptedResponse.from_chunks(chunks))
    with pytest.raises(openai_stream.StructuredOutputError, match=r"^choice 1: ") as info:
        client_for(server).chat.completions.stream(
            model="m", messages=USER, response_format=Address, n=2
        ).until_done()
    assert info.value.completion.choices[0].message.parsed == Address(street="x")


def test_create_parses_too(server: ReplayServer) -> None:
    def answer(content: str) -> ScriptedResponse:
        return ScriptedResponse.json({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                                      "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": content}}]})

    server.add(answer(json.dumps(ANN)))
    server.add(answer('{"name": 5}'))
    client = client_for(server)
    completion = client.chat.completions.create(model="m", messages=USER, response_format=Person)
    assert completion.choices[0].message.parsed == Person.model_validate(ANN)
    with pytest.raises(openai_stream.StructuredOutputError) as info:
        client.chat.completions.create(model="m", messages=USER, response_format=Person)
    assert info.value.completion.choices[0].message.content == '{"name": 5}'
    assert server.requests[0].json["response_format"]["json_schema"]["strict"] is True


def test_partial_parsed_on_content_delta_is_computed_only_when_read(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pieces = ['{"name": "Al', 'ice", "age": 3', '1, "tags": ["x", "y', '"], "ok": tr', "ue}"]
    chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    server.add(ScriptedResponse.from_chunks(chunks))
    server.add(ScriptedResponse.from_chunks(chunks))
    client = client_for(server)
    seen: List[Any] = []
    stream = client.chat.completions.stream(model="m", messages=USER)
    stream.on("content.delta", lambda event: seen.append(event.partial_parsed))
    stream.until_done()
    # Hand-derived from jiter's partial mode: complete values, a string cut off kept as far as it goes,
    # the digits of a number so far, a keyword (tr...) left out.
    assert seen == [
        {"name": "Al"},
        {"name": "Alice", "age": 3},
        {"name": "Alice", "age": 31, "tags": ["x", "y"]},
        {"name": "Alice", "age": 31, "tags": ["x", "y"]},
        {"name": "Alice", "age": 31, "tags": ["x", "y"], "ok": True},
    ]
    calls: List[str] = []
    real = engine_parsing.parse_partial

    def counting(text: str) -> Any:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(engine_events, "parse_partial", counting)
    other = client.chat.completions.stream(model="m", messages=USER)
    other.on("content.delta", lambda event: event.delta)
    other.until_done()
    assert calls == []


# --------------------------------------------------------------------------- tools
def test_pydantic_function_tool_arguments_parse_into_the_model(server: ReplayServer) -> None:
    calls = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [
        {"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "Weather", "arguments": '{"city": "Paris", "unit": "c"}'}},
            {"index": 1, "id": "call_2", "type": "function",
             "function": {"name": "Weather", "arguments": '{"city": "Oslo", "unit": "kelvin"}'}}]},
         "finish_reason": "tool_calls"}]}]
    server.add(ScriptedResponse.from_chunks(calls))
    server.add(ScriptedResponse.from_chunks(calls))
    client = client_for(server)
    done: List[Any] = []
    stream = client.chat.completions.stream(
        model="m", messages=USER, tools=[openai_stream.pydantic_function_tool(Weather)]
    )
    stream.on("tool_call.done", done.append)
    stream.until_done()
    assert done[0].parsed_arguments == Weather(city="Paris", unit="c")
    with pytest.raises(openai_stream.ToolArgumentsError, match="unit") as info:
        done[1].parsed_arguments  # noqa: B018
    assert info.value.call_id == "call_2"
    assert server.requests[0].json["tools"][0]["function"]["parameters"] == strict_json_schema(Weather)
    # openai-python's own pydantic_function_tool is understood the same way.
    openai = pytest.importorskip("openai")
    done.clear()
    theirs = client.chat.completions.stream(
        model="m", messages=USER, tools=[openai.pydantic_function_tool(Weather)]
    )
    theirs.on("tool_call.done", done.append)
    theirs.until_done()
    assert done[0].parsed_arguments == Weather(city="Paris", unit="c")


def test_run_tools_refuses_a_tool_description_with_the_way_to_run_one() -> None:
    client = openai_stream.Client(api_key="k", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(openai_stream.ToolDefinitionError, match="@tool function"):
        client.chat.completions.run_tools(
            model="m", messages=USER, tools=[openai_stream.pydantic_function_tool(Weather)]
        )


class Order(BaseModel):
    item: str
    quantity: int = Field(gt=0)
    ship_to: Address


@openai_stream.tool(strict=True)
def place_order(order: Order, note: Optional[str] = None) -> str:
    """Place an order.

    Args:
        order: What to order and where to send it.
    """
    return f"{order.quantity} x {order.item} to {order.ship_to.street}"


def _call(arguments: Dict[str, Any], call_id: str) -> Dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [
        {"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": call_id, "type": "function",
             "function": {"name": "place_order", "arguments": json.dumps(arguments)}}]},
         "finish_reason": "tool_calls"}]}


def test_a_tool_with_a_model_parameter_gets_an_instance_and_mismatches_go_back_to_the_model(
    server: ReplayServer,
) -> None:
    schema = place_order.definition["function"]["parameters"]
    order_schema = strict_json_schema(Order)
    defs = order_schema.pop("$defs")
    described = {**order_schema, "description": "What to order and where to send it."}
    assert schema["properties"]["order"] == described
    assert schema["$defs"] == defs and schema["additionalProperties"] is False
    assert schema["required"] == ["order", "note"]
    bad = {"order": {"item": "tea", "quantity": 0, "ship_to": {"city": None}}, "note": None}
    good = {"order": {"item": "tea", "quantity": 2, "ship_to": {"street": "1 Main St", "city": None}},
            "note": None}
    server.add(ScriptedResponse.from_chunks([_call(bad, "call_1")]))
    server.add(ScriptedResponse.from_chunks([_call(good, "call_2")]))
    server.add(ScriptedResponse.from_chunks(chunks_of("Ordered.")))
    runner = client_for(server).chat.completions.run_tools(model="m", messages=USER, tools=[place_order])
    results: List[Any] = []
    runner.on("tool.result", results.append)
    runner.until_done()
    assert isinstance(results[0].exception, openai_stream.ToolArgumentsError)
    first = runner.messages[2]
    assert first["role"] == "tool" and first["tool_call_id"] == "call_1"
    assert "order.quantity: Input should be greater than 0" in first["content"]
    assert "order.ship_to.street: Field required" in first["content"]
    assert results[1].exception is None and results[1].result == "2 x tea to 1 Main St"
    assert runner.messages[4] == {"role": "tool", "tool_call_id": "call_2", "content": "2 x tea to 1 Main St"}
    assert server.requests[0].json["tools"] == [place_order.definition]


def test_a_non_strict_tool_takes_pydantics_own_schema() -> None:
    @openai_stream.tool
    def ship(address: Address) -> str:
        """Ship."""
        return address.street

    schema = ship.definition["function"]["parameters"]
    assert schema["properties"]["address"] == Address.model_json_schema()
    assert ship.invoke({"address": {"street": "x"}}) == "x"


# --------------------------------------------------------------------------- versions, pickling
def test_pydantic_1_is_refused_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, server: ReplayServer
) -> None:
    import pydantic

    monkeypatch.setattr(pydantic, "VERSION", "1.10.13")
    refused = r"pydantic 1\.10\.13 is installed.*pydantic 2"
    with pytest.raises(openai_stream.OpenAIError, match=refused) as info:
        client_for(server).chat.completions.stream(model="m", messages=USER, response_format=Person)
    assert "pip install 'openai-stream-events[pydantic]'" in str(info.value)
    with pytest.raises(openai_stream.ToolDefinitionError, match="pydantic 2"):
        openai_stream.tool(place_order.function)


def test_a_pydantic_v1_model_is_refused(server: ReplayServer) -> None:
    import pydantic.v1

    class Old(pydantic.v1.BaseModel):
        name: str

    with pytest.raises(TypeError, match=r"pydantic\.v1 model"):
        client_for(server).chat.completions.stream(model="m", messages=USER, response_format=Old)


def test_a_class_that_is_not_a_model_is_refused(server: ReplayServer) -> None:
    with pytest.raises(TypeError, match="give a dict"):
        client_for(server).chat.completions.stream(model="m", messages=USER, response_format=dict)


def test_parsed_events_pickle(server: ReplayServer) -> None:
    server.add(ScriptedResponse.from_chunks(chunks_of(json.dumps(ANN))))
    stream = client_for(server).chat.completions.stream(model="m", messages=USER, response_format=Person)
    done = next(e for e in stream if isinstance(e, openai_stream.ParsedContentDoneEvent))
    copy = pickle.loads(pickle.dumps(done))
    assert copy == done and copy.parsed == done.parsed


def test_the_core_works_without_pydantic() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pydantic"] = None  # `import pydantic` fails, as when it is not installed
        import openai_stream
        from openai_stream.testing import ReplayServer, ScriptedResponse
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": '{"a": 1}'}, "finish_reason": "stop"}]}
        with ReplayServer([ScriptedResponse.from_chunks([chunk])]) as server:
            client = openai_stream.Client(api_key="k", base_url=server.base_url)
            done = client.chat.completions.stream(
                model="m", messages=[{"role": "user", "content": "x"}],
                response_format={"type": "json_object"}).until_done()
            assert done.choices[0].message.parsed == {"a": 1}
            try:
                client.chat.completions.stream(model="m", messages=[], response_format=dict)
            except TypeError as exc:
                print("refused:", exc)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=str(ROOT), capture_output=True, text=True,
                            timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "openai-stream-events[pydantic]" in result.stdout and result.stdout.endswith("ok\n")


# --------------------------------------------------------------------------- the local model
def _local_missing() -> Optional[str]:
    try:
        local.check()
    except local.LocalServerError as exc:
        return str(exc)
    return None


MISSING = _local_missing()


class Profile(BaseModel):
    """Short fields and a bounded list keep the grammar-constrained answer within max_tokens."""

    name: str = Field(max_length=30)
    age: int
    favorite: Color
    addresses: List[Address] = Field(max_length=2)
    pet: Union[Cat, Dog]
    nickname: Optional[str] = Field(default=None, max_length=20)


@pytest.fixture(scope="module")
def llama() -> Iterator[openai_stream.Client]:
    if MISSING is not None:
        pytest.skip(f"local model unavailable: {MISSING}")
    with local.LocalServer(n_ctx=4096, n_parallel=2, startup_timeout=120) as running:
        timeout = openai_stream.Timeout(connect=5.0, read=120.0)
        with openai_stream.Client(base_url=running.base_url, api_key="unused", timeout=timeout) as client:
            yield client


def test_the_local_model_answers_a_model_with_schema_valid_json(llama: openai_stream.Client) -> None:
    stream = llama.chat.completions.stream(
        model=local.MODEL_NAME,
        messages=[{"role": "user", "content": "Describe a person named Ann who has a dog."}],
        response_format=Profile, temperature=0, seed=1, max_tokens=400,
    )
    deltas: List[Any] = []
    stream.on("content.delta", lambda event: deltas.append(event.partial_parsed))
    completion = stream.until_done()
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, Profile)
    assert choice.message.parsed == Profile.model_validate_json(choice.message.content or "")
    assert isinstance(deltas[-1], dict) and deltas[-1] == json.loads(choice.message.content or "")


@pytest.mark.parametrize("max_tokens", [4, 30])
def test_the_local_model_cut_off_by_max_tokens_is_a_structured_output_error(
    llama: openai_stream.Client, max_tokens: int
) -> None:
    with pytest.raises(openai_stream.StructuredOutputError) as info:
        llama.chat.completions.stream(
            model=local.MODEL_NAME, messages=[{"role": "user", "content": "Describe Ann."}],
            response_format=Profile, temperature=0, max_tokens=max_tokens,
        ).until_done()
    choice = info.value.completion.choices[0]
    assert choice.finish_reason == "length" and choice.message.parsed is None
    if choice.message.content:  # cut inside the JSON: pydantic's error says so
        assert info.value.errors and info.value.errors[0]["type"] == "json_invalid"
    else:  # nothing but whitespace came yet: no content at all
        assert "no content" in str(info.value)


# --------------------------------------------------------------------------- parsed_arguments on the message
# Issue 13: the final message's function calls carry parsed_arguments as openai-python's
# ParsedFunctionToolCall does: the model instance for pydantic_function_tool(Model), the decoded JSON
# for a plain tool declared strict, None for any other tool (and, here, for arguments that do not fit).
LOOKUP = {"type": "function", "function": {
    "name": "lookup", "strict": True,
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"],
                   "additionalProperties": False}}}
NOTE = {"type": "function", "function": {
    "name": "note", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}}
CALLS = [
    ("call_w", "Weather", '{"city": "Paris", "unit": "c"}'),
    ("call_l", "lookup", '{"q": "tides"}'),
    ("call_n", "note", '{"text": "hi"}'),
    ("call_bad", "Weather", '{"city": "Oslo", "unit": "kelvin"}'),
]


def streamed_calls(calls: List[Any]) -> List[Dict[str, Any]]:
    """Each call announced with its id and name, then its arguments in two fragments."""
    def chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> Dict[str, Any]:
        return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": None})]
    for index, (call_id, name, arguments) in enumerate(calls):
        chunks.append(chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                             "function": {"name": name, "arguments": ""}}]}))
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    chunks.append(chunk({}, "tool_calls"))
    return chunks


def whole_answer(calls: List[Any]) -> Dict[str, Any]:
    """The same answer, non-streamed, as the API reference shows a chat.completion with tool calls."""
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        for call_id, name, arguments in calls]}
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}]}


def functions_of(completion: openai_stream.ChatCompletion) -> List[Any]:
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    return [call.function for call in calls]


def test_the_message_carries_parsed_arguments_as_openai_pythons_parsed_function_tool_call(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openai_stream._pydantic import ToolArgumentsParser

    validations: List[str] = []
    real = ToolArgumentsParser.__call__

    def counting(self: Any, arguments: str, **names: Any) -> Any:
        validations.append(arguments)
        return real(self, arguments, **names)

    monkeypatch.setattr(ToolArgumentsParser, "__call__", counting)
    tools = [openai_stream.pydantic_function_tool(Weather), LOOKUP, NOTE]
    server.add(ScriptedResponse.from_chunks(streamed_calls(CALLS)))
    server.add(ScriptedResponse.json(whole_answer(CALLS)))
    server.add(ScriptedResponse.from_chunks(chunks_of("ok")))
    client = client_for(server)
    stream = client.chat.completions.stream(model="m", messages=USER, tools=tools)
    done: List[Any] = []
    stream.on("tool_call.done", done.append)
    stream.on("tool_call.done", lambda event: event.call_id == "call_w" and event.parsed_arguments)
    completion = stream.until_done()
    functions = functions_of(completion)
    assert isinstance(functions[0].parsed_arguments, Weather)
    assert functions[0].parsed_arguments == Weather(city="Paris", unit="c")
    assert functions[0].parsed_arguments is done[0].parsed_arguments  # the event's, not a second parse
    assert functions[1].parsed_arguments == {"q": "tides"}  # strict plain tool: its JSON
    assert functions[2].parsed_arguments is None  # not strict: openai-python gives None
    assert functions[3].parsed_arguments is None  # does not fit Weather: the event raises it
    with pytest.raises(openai_stream.ToolArgumentsError, match="unit"):
        done[3].parsed_arguments  # noqa: B018
    stream.snapshot()
    completion.to_dict()
    assert validations.count(CALLS[0][2]) == 1  # validated once, however often the message is built

    whole = client.chat.completions.create(model="m", messages=USER, tools=tools)
    created = [function.parsed_arguments for function in functions_of(whole)]
    assert created == [Weather(city="Paris", unit="c"), {"q": "tides"}, None, None]
    assert isinstance(created[0], Weather)
    # to_dict keeps the streamed and the whole message alike; parsed_arguments is there as JSON, as parsed is.
    assert completion.to_dict()["choices"] == whole.to_dict()["choices"]
    sent = whole_answer(CALLS)["choices"][0]["message"]
    dumped = completion.to_dict()["choices"][0]["message"]["tool_calls"]
    assert [call["function"].get("parsed_arguments") for call in dumped] == [
        {"city": "Paris", "unit": "c"}, {"q": "tides"}, None, None,
    ]
    # Sent back, the message is what the server sent: no parsed_arguments.
    message = completion.choices[0].message
    client.chat.completions.stream(
        model="m", messages=[*USER, message, {"role": "tool", "tool_call_id": "call_w", "content": "sunny"}],
        tools=tools,
    ).until_done()
    assert server.requests[-1].json["messages"][1] == sent
    from openai_stream._params import to_json

    assert message.tool_calls is not None
    assert to_json(message.tool_calls[0], "call") == sent["tool_calls"][0]
    assert to_json(message.tool_calls[0].function, "function") == sent["tool_calls"][0]["function"]


def test_parsed_arguments_equal_openai_pythons_parse(server: ReplayServer) -> None:
    openai = pytest.importorskip("openai")
    calls = CALLS[:2]  # openai-python's parse() refuses tools that are not strict
    for _ in range(2):
        server.add(ScriptedResponse.json(whole_answer(calls)))
    server.add(ScriptedResponse.from_chunks(streamed_calls(calls)))
    theirs_client = openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=0)
    tools = [openai.pydantic_function_tool(Weather), LOOKUP]
    theirs = theirs_client.chat.completions.parse(model="m", messages=USER, tools=tools)
    expected = [call.function.parsed_arguments for call in theirs.choices[0].message.tool_calls or []]
    assert expected == [Weather(city="Paris", unit="c"), {"q": "tides"}]
    client = client_for(server)
    created = client.chat.completions.create(model="m", messages=USER, tools=tools)
    streamed = client.chat.completions.stream(model="m", messages=USER, tools=tools).until_done()
    for completion in (created, streamed):
        assert [function.parsed_arguments for function in functions_of(completion)] == expected


def test_without_tools_to_parse_by_the_message_has_no_parsed_arguments(server: ReplayServer) -> None:
    server.add(ScriptedResponse.from_chunks(streamed_calls(CALLS[2:3])))
    stream = client_for(server).chat.completions.stream(model="m", messages=USER, tools=[NOTE])
    completion = stream.until_done()
    assert functions_of(completion)[0].parsed_arguments is None
    (call,) = completion.to_dict()["choices"][0]["message"]["tool_calls"]
    assert "parsed_arguments" not in call["function"]


@openai_stream.tool(strict=True)
def lookup(q: str) -> str:
    """Look something up."""
    return f"found {q}"


def test_the_chat_tool_runner_sends_the_assistant_message_back_without_parsed_arguments(
    server: ReplayServer,
) -> None:
    calls = [CALLS[1]]  # lookup {"q": "tides"}
    server.add(ScriptedResponse.from_chunks(streamed_calls(calls)))
    server.add(ScriptedResponse.from_chunks(chunks_of("done")))
    client_for(server).chat.completions.run_tools(model="m", messages=USER, tools=[lookup]).until_done()
    assert server.requests[0].json["tools"][0]["function"]["strict"] is True
    assert server.requests[1].json["messages"][1] == whole_answer(calls)["choices"][0]["message"]
