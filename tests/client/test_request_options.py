"""Request options as openai-python has them, checked parameters, and the SDK's own objects sent back.

Every request goes to a loopback ReplayServer, which records the exact method,
path, query, headers and body; the expectations are written from the
documented behaviour of openai-python's options, not read from our code.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any, Dict, Iterator, List
from urllib.parse import parse_qsl, urlsplit

import pytest

import openai_stream
from openai_stream._params import CHAT_COMPLETIONS_PARAMS, RESPONSES_PARAMS
from openai_stream.testing import RecordedRequest, ReplayServer, ScriptedResponse

USER = [{"role": "user", "content": "hi"}]
CHUNKS = [
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}]},
    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]
TOOL_CALL_COMPLETION: Dict[str, Any] = {
    "id": "c2", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
        "role": "assistant", "content": None, "refusal": None, "annotations": [],
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
    }}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}


@pytest.fixture()
def server() -> Iterator[ReplayServer]:
    with ReplayServer([ScriptedResponse.from_chunks(CHUNKS)]) as running:
        yield running


def query_of(request: RecordedRequest) -> List[tuple[str, str]]:
    return parse_qsl(urlsplit(request.path).query, keep_blank_values=True)


def path_of(request: RecordedRequest) -> str:
    return urlsplit(request.path).path


# --------------------------------------------------------------------------- 1. request options
def test_extra_headers_query_and_body_on_stream(server: ReplayServer) -> None:
    client = openai_stream.Client(api_key="sk-test", base_url=server.base_url)
    client.chat.completions.stream(
        model="m",
        messages=USER,
        temperature=0.1,
        extra_headers={"X-Trace": "t1"},
        extra_query={"tenant": "a b", "debug": True, "n": 2},
        extra_body={"top_k": 5, "temperature": 0.9, "provider": {"order": ["x"]}},
    ).until_done()
    (request,) = server.requests
    assert request.method == "POST" and path_of(request) == "/v1/chat/completions"
    assert query_of(request) == [("tenant", "a b"), ("debug", "true"), ("n", "2")]
    assert request.headers["X-Trace"] == "t1"
    assert request.headers["Authorization"] == "Bearer sk-test"
    # extra_body is merged into the body and wins over the named parameter.
    assert request.json == {
        "model": "m", "messages": USER, "temperature": 0.9, "stream": True,
        "top_k": 5, "provider": {"order": ["x"]},
    }
    assert "extra_body" not in request.json and "extra_query" not in request.json


def test_extra_options_on_create(server: ReplayServer) -> None:
    server.add(ScriptedResponse.json(TOOL_CALL_COMPLETION))
    server.requests.clear()
    client = openai_stream.Client(api_key="sk-test", base_url=server.base_url)
    server._queue.pop(0)  # the streamed answer is not wanted here
    client.chat.completions.create(
        model="m", messages=USER, max_tokens=5,
        extra_headers={"X-A": "1"}, extra_query={"q": "v"}, extra_body={"min_p": 0.1, "max_tokens": 9},
    )
    (request,) = server.requests
    assert query_of(request) == [("q", "v")] and request.headers["X-A"] == "1"
    assert request.json == {"model": "m", "messages": USER, "max_tokens": 9, "min_p": 0.1}


def test_run_tools_passes_the_options_to_every_round() -> None:
    @openai_stream.tool
    def get_weather(city: str) -> str:
        """The weather."""
        return f"sunny in {city}"

    with ReplayServer([
        ScriptedResponse(body=_as_sse(TOOL_CALL_COMPLETION)),
        ScriptedResponse.from_chunks(CHUNKS),
    ]) as server:
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url)
        client.chat.completions.run_tools(
            model="m", messages=USER, tools=[get_weather],
            extra_headers={"X-Run": "r"}, extra_query={"q": "1"}, extra_body={"top_k": 3},
        ).until_done()
        assert len(server.requests) == 2
        for request in server.requests:
            assert request.headers["X-Run"] == "r" and query_of(request) == [("q", "1")]
            assert request.json["top_k"] == 3
            assert request.json["tools"][0]["function"]["name"] == "get_weather"


def _as_sse(completion: Dict[str, Any]) -> bytes:
    """A whole completion as one streamed chunk, then [DONE]."""
    choice = completion["choices"][0]
    chunk = {**completion, "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": choice["message"], "finish_reason": choice["finish_reason"]}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"


def test_default_headers_and_query_and_their_overrides(server: ReplayServer) -> None:
    client = openai_stream.Client(
        api_key="sk-test", base_url=server.base_url,
        default_headers={"X-Team": "a", "X-Gone": "g"}, default_query={"api-version": "1", "keep": "k"},
    )
    client.chat.completions.stream(
        model="m", messages=USER,
        extra_headers={"X-Team": "b", "X-Gone": None, "Authorization": None},
        extra_query={"api-version": "2", "keep": None, "new": "n"},
    ).until_done()
    (request,) = server.requests
    assert query_of(request) == [("api-version", "2"), ("new", "n")]
    assert request.headers["X-Team"] == "b"
    assert "X-Gone" not in request.headers and "Authorization" not in request.headers


def test_a_query_value_that_is_not_a_string_or_number_is_refused_at_once(server: ReplayServer) -> None:
    with pytest.raises(TypeError, match="'bad'"):
        openai_stream.Client(api_key="k", base_url=server.base_url, default_query={"bad": {"a": 1}})


def test_per_request_max_retries_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: List[float] = []
    monkeypatch.setattr("openai_stream.transport._http._sleep", waits.append)
    error = {"error": {"message": "busy", "type": "server_error"}}
    with ReplayServer([ScriptedResponse.json(error, status=503)]) as server:
        client = openai_stream.Client(api_key="k", base_url=server.base_url, max_retries=3)
        with pytest.raises(openai_stream.InternalServerError):
            client.chat.completions.create(model="m", messages=USER, max_retries=0)
        assert len(server.requests) == 1
        with pytest.raises(openai_stream.InternalServerError):
            client.chat.completions.stream(model="m", messages=USER, max_retries=1).until_done()
        assert len(server.requests) == 3
    stalled = ScriptedResponse(events=[b"data: {}\n\n"], delay=5.0)
    with ReplayServer([stalled]) as server:
        client = openai_stream.Client(api_key="k", base_url=server.base_url, timeout=60, max_retries=0)
        with pytest.raises(openai_stream.APITimeoutError):
            client.chat.completions.stream(model="m", messages=USER, timeout=0.2).until_done()


def test_organization_and_project_headers_from_arguments_and_environment(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    openai_stream.Client(api_key="k", base_url=server.base_url).chat.completions.stream(
        model="m", messages=USER
    ).until_done()
    client = openai_stream.Client(api_key="k", base_url=server.base_url, organization="org-1", project="p-1")
    client.chat.completions.stream(model="m", messages=USER).until_done()
    first, second = server.requests
    assert (first.headers["OpenAI-Organization"], first.headers["OpenAI-Project"]) == ("org-env", "proj-env")
    assert (second.headers["OpenAI-Organization"], second.headers["OpenAI-Project"]) == ("org-1", "p-1")
    monkeypatch.delenv("OPENAI_ORG_ID")
    monkeypatch.delenv("OPENAI_PROJECT_ID")
    openai_stream.Client(api_key="k", base_url=server.base_url).chat.completions.stream(
        model="m", messages=USER
    ).until_done()
    assert "OpenAI-Organization" not in server.requests[2].headers
    assert "OpenAI-Project" not in server.requests[2].headers


def test_with_options_shares_the_connection_pool() -> None:
    # Streams read to their end give their connection back to the pool.
    with ReplayServer([ScriptedResponse.from_chunks(CHUNKS)]) as server:
        client = openai_stream.Client(
            api_key="k", base_url=server.base_url, default_headers={"X-A": "1"}, default_query={"v": "1"}
        )
        fast = client.with_options(timeout=7, max_retries=0, default_headers={"X-B": "2"},
                                   default_query={"w": "2"})
        bare = client.with_options(set_default_headers={"X-C": "3"}, set_default_query={})
        for each in (client, fast, bare, client, fast):
            each.chat.completions.stream(model="m", messages=USER).until_done()
        assert server.connections == 1  # one keep-alive connection served all five
        assert fast.timeout == openai_stream.Timeout(7) and fast.max_retries == 0
        assert client.max_retries == 2 and client.timeout != fast.timeout
        headers = [dict(r.headers) for r in server.requests]
        assert headers[1]["X-A"] == "1" and headers[1]["X-B"] == "2"
        assert "X-A" not in headers[2] and headers[2]["X-C"] == "3"
        assert [query_of(r) for r in server.requests[:3]] == [[("v", "1")], [("v", "1"), ("w", "2")], []]
        # Closing the derived client leaves the pool to its owner...
        fast.close()
        client.chat.completions.stream(model="m", messages=USER).until_done()
        assert server.connections == 1
        with pytest.raises(openai_stream.OpenAIError, match="closed"):
            fast.chat.completions.stream(model="m", messages=USER).until_done()
        # ...and closing the owner closes every client sharing it.
        client.close()
        with pytest.raises(openai_stream.OpenAIError, match="closed"):
            bare.chat.completions.stream(model="m", messages=USER).until_done()
        other = openai_stream.Client(api_key="k", base_url=server.base_url)
        other.chat.completions.stream(model="m", messages=USER).until_done()
        assert server.connections == 2  # a client of its own opens its own connection


def test_with_options_refuses_what_it_cannot_change() -> None:
    client = openai_stream.Client(api_key="k", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(TypeError, match="max_connections"):
        client.with_options(max_connections=3)
    with pytest.raises(TypeError, match="'timeuot'"):
        client.with_options(timeuot=3)
    with pytest.raises(ValueError, match="not both"):
        client.with_options(default_headers={"a": "b"}, set_default_headers={})


# --------------------------------------------------------------------------- 2. known parameters
@pytest.mark.parametrize(
    ("method", "wrong", "closest"),
    [
        ("stream", "max_token", "max_tokens"),
        ("create", "temprature", "temperature"),
        ("run_tools", "tool_choise", "tool_choice"),
        ("stream", "extra_headers_", "extra_headers"),
    ],
)
def test_an_unknown_keyword_is_refused_before_anything_is_sent(
    server: ReplayServer, method: str, wrong: str, closest: str
) -> None:
    client = openai_stream.Client(api_key="k", base_url=server.base_url)
    call = getattr(client.chat.completions, method)
    extra: Dict[str, Any] = {"tools": []} if method == "run_tools" else {}
    with pytest.raises(TypeError) as info:
        call(model="m", messages=USER, **extra, **{wrong: 5})
    message = str(info.value)
    assert f"chat.completions.{method}()" in message and repr(wrong) in message
    assert f"did you mean {closest!r}" in message and "extra_body" in message
    assert server.requests == []


def test_a_provider_parameter_is_refused_with_the_way_to_send_it(server: ReplayServer) -> None:
    client = openai_stream.Client(api_key="k", base_url=server.base_url)
    with pytest.raises(TypeError, match=r"extra_body=\{'repeat_penalty': \.\.\.\}"):
        client.chat.completions.stream(model="m", messages=USER, repeat_penalty=1.1)
    client.chat.completions.stream(model="m", messages=USER, extra_body={"repeat_penalty": 1.1}).until_done()
    assert server.requests[0].json["repeat_penalty"] == 1.1


def test_the_tables_are_the_api_reference_parameters() -> None:
    """The oracle: openai-python's request TypedDicts, generated from the API reference."""
    chat_types = pytest.importorskip("openai.types.chat.completion_create_params")
    responses_types = pytest.importorskip("openai.types.responses.response_create_params")
    chat = set(chat_types.CompletionCreateParamsBase.__annotations__)
    responses = set(responses_types.ResponseCreateParamsBase.__annotations__)
    assert chat | {"stream"} == set(CHAT_COMPLETIONS_PARAMS)
    assert responses | {"stream"} == set(RESPONSES_PARAMS)


# --------------------------------------------------------------------------- 4. our objects go back in
def test_a_returned_message_and_its_tool_calls_go_back_in(server: ReplayServer) -> None:
    server._queue.insert(0, ScriptedResponse.json(TOOL_CALL_COMPLETION))
    client = openai_stream.Client(api_key="k", base_url=server.base_url)
    completion = client.chat.completions.create(model="m", messages=USER)
    message = completion.choices[0].message
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    messages: List[Any] = [*USER, message,
                           {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
                           {"role": "assistant", "tool_calls": [call]}]
    client.chat.completions.stream(model="m", messages=messages).until_done()
    sent = server.requests[1].json["messages"]
    expected_message = TOOL_CALL_COMPLETION["choices"][0]["message"]
    assert sent[1] == expected_message
    assert sent[3]["tool_calls"] == expected_message["tool_calls"]


def test_a_streamed_message_goes_back_without_the_parsed_field(server: ReplayServer) -> None:
    server._queue.insert(0, ScriptedResponse.from_chunks([
        {"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "{\"a\": 1}"},
                      "finish_reason": "stop"}]},
    ]))
    client = openai_stream.Client(api_key="k", base_url=server.base_url)
    completion = client.chat.completions.stream(
        model="m", messages=USER, response_format={"type": "json_object"}
    ).until_done()
    assert completion.choices[0].message.parsed == {"a": 1}
    client.chat.completions.stream(model="m", messages=[*USER, completion.choices[0].message]).until_done()
    assert server.requests[1].json["messages"][1] == {"role": "assistant", "content": "{\"a\": 1}"}


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    ("messages", "extra", "path"),
    [
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
          {"role": "user", "content": object()}], {}, "messages[2].content"),
        ([{"role": "user", "content": [{"type": "text", "text": {"x"}}]}], {}, "messages[0].content[0].text"),
        (USER, {"metadata": {"where": Point(1)}}, "metadata.where"),
        (USER, {"extra_body": {"bias": float("nan")}}, "extra_body.bias"),
        (USER, {"logit_bias": {"50256": float("inf")}}, "logit_bias['50256']"),
        (USER, {"metadata": {(1, 2): "k"}}, "metadata"),
    ],
)
def test_a_value_json_cannot_carry_is_refused_when_stream_is_called(
    server: ReplayServer, messages: List[Any], extra: Dict[str, Any], path: str
) -> None:
    client = openai_stream.Client(api_key="k", base_url=server.base_url)
    with pytest.raises(TypeError) as info:
        client.chat.completions.stream(model="m", messages=messages, **extra)
    assert str(info.value).startswith(path + " "), str(info.value)
    assert server.requests == []


def test_enums_tuples_and_the_sdks_tools_are_encoded(server: ReplayServer) -> None:
    @openai_stream.tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return key

    client = openai_stream.Client(api_key="k", base_url=server.base_url)
    client.chat.completions.stream(
        model="m", messages=(m for m in USER), tools=[lookup], stop=("a", "b"),
        metadata={"color": Color.RED, "n": 3},
    ).until_done()
    body = server.requests[0].json
    assert body["messages"] == USER and body["stop"] == ["a", "b"]
    assert body["tools"] == [lookup.definition] and body["metadata"] == {"color": "red", "n": 3}


def test_pydantic_models_in_messages_are_encoded(server: ReplayServer) -> None:
    pytest.importorskip("pydantic")
    from pydantic import BaseModel

    class Part(BaseModel):
        type: str
        text: str
        note: str = "unset fields are left out, as openai-python sends them"

    client = openai_stream.Client(api_key="k", base_url=server.base_url)
    client.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": [Part(type="text", text="hi")]}]
    ).until_done()
    sent = server.requests[0].json["messages"]
    assert sent == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_model_dump_and_model_dump_json() -> None:
    completion = openai_stream.ChatCompletion(TOOL_CALL_COMPLETION)
    assert completion.model_dump() == TOOL_CALL_COMPLETION == completion.to_dict()
    assert json.loads(completion.model_dump_json()) == TOOL_CALL_COMPLETION
    assert completion.model_dump_json() == json.dumps(TOOL_CALL_COMPLETION, separators=(",", ":"))
    assert completion.model_dump_json(indent=2) == json.dumps(TOOL_CALL_COMPLETION, indent=2)
    message = completion.choices[0].message
    calls = TOOL_CALL_COMPLETION["choices"][0]["message"]["tool_calls"]
    expected = {"role": "assistant", "annotations": [], "tool_calls": calls}
    assert message.model_dump(exclude_none=True) == expected
    assert message.tool_calls is not None and message.tool_calls[0].model_dump() == calls[0]


def test_run_tools_checks_and_encodes_the_conversation_when_called(server: ReplayServer) -> None:
    client = openai_stream.Client(api_key="k", base_url=server.base_url)
    with pytest.raises(TypeError, match=r"^messages\[1\]\.content "):
        client.chat.completions.run_tools(
            model="m", messages=[*USER, {"role": "user", "content": b"bytes"}], tools=[]
        )
    message = openai_stream.ChatCompletion(TOOL_CALL_COMPLETION).choices[0].message
    runner = client.chat.completions.run_tools(model="m", messages=[*USER, message], tools=[])
    assert runner.messages[1] == TOOL_CALL_COMPLETION["choices"][0]["message"]
    assert server.requests == []
