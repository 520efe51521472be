"""``client.responses``: stream() and create() over real loopback servers.

The fixtures of tests/fixtures/responses go through the whole client (HTTP,
body reader, accumulator, engine) and must agree with tests/expected_responses
(made by an independent oracle), chunked and close-delimited, by handlers and
by iteration. The rest checks what a responses stream shares with chat
streams (lifecycle, close from another thread, idle timeout, retries before
the first byte, typed errors) and what is its own (requests, event names,
``create()``, structured output, tools in the flat shape).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import (
    EXPECTED_RESPONSES,
    RESPONSES_FIXTURES,
    RESPONSES_HIGH_LEVEL,
    RESPONSES_NAMES,
    expected_response,
)
from fault_server import FaultServer, chunk, close, head, script, sse, stall

import openai_stream
from openai_stream import ResponseStream
from openai_stream.engine._events import (
    ContentDoneEvent,
    DoneEvent,
    ToolCallDoneEvent,
)
from openai_stream.responses._events import (
    RESPONSE_EVENT_TYPES,
    ResponseCompletionEvent,
    ResponseReasoningDoneEvent,
    ResponseStreamEvent,
    ResponseUsageEvent,
)
from openai_stream.testing import ReplayServer, ScriptedResponse, split_sse_events

FIXTURES = RESPONSES_FIXTURES
EXPECTED = EXPECTED_RESPONSES
NAMES = RESPONSES_NAMES
HIGH_LEVEL = RESPONSES_HIGH_LEVEL
expected_for = expected_response


def scripted(name: str, *, chunked: bool = True, delay: float = 0.0) -> ScriptedResponse:
    return ScriptedResponse(
        events=split_sse_events((FIXTURES / f"{name}.sse").read_bytes()), chunked=chunked, delay=delay
    )


def client_for(server: Any, **options: Any) -> openai_stream.Client:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 10)
    return openai_stream.Client(base_url=server.base_url, api_key="sk-test", **options)


def label(event: Any) -> Optional[str]:
    """The expectation files' name for a done-like event (see tests/expected_responses/README.md)."""
    if isinstance(event, ContentDoneEvent):
        return "content.done output_text"
    if event.type == "refusal.done":
        return "refusal.done refusal"
    if isinstance(event, ResponseReasoningDoneEvent):
        return "reasoning.done " + ("summary_text" if event.kind == "reasoning_summary_text" else event.kind)
    if isinstance(event, ToolCallDoneEvent):
        return f"tool_call.done #{event.index}"
    if isinstance(event, DoneEvent):
        return f"done {event.finish_reason}"
    if isinstance(event, (ResponseUsageEvent, ResponseCompletionEvent)):
        return event.type
    return None


def check_outcome(name: str, result: Any, error: Optional[BaseException]) -> None:
    expected = expected_for(name)
    outcome = expected["outcome"]
    if outcome["kind"] == "ok":
        assert error is None, error
        assert result.to_dict() == expected["response"]
        assert result.output_text == expected["output_text"]
        if expected["text_param"] is not None:
            assert result.parsed == expected["response"]["parsed"]
        return
    assert error is not None and type(error).__name__ == outcome["class"], error
    if outcome["kind"] == "error":
        assert getattr(error, "code", None) == outcome["code"]
    assert error.completion.to_dict() == expected["response"]  # type: ignore[attr-defined]


def check_events(name: str, events: List[Any], *, listened: bool = True) -> None:
    expected = expected_for(name)["events"]
    counts: Dict[str, int] = {}
    for event in events:
        if event.type in HIGH_LEVEL:
            counts[event.type] = counts.get(event.type, 0) + 1
    wanted = dict(expected["counts"])
    if listened and expected_for(name)["outcome"]["kind"] == "interrupted":
        wanted["error"] = 1  # the engine tells error listeners of the cut too; the accumulator never sees it
    assert dict(sorted(counts.items())) == dict(sorted(wanted.items()))
    labels = [label(e) for e in events if label(e) is not None]
    assert labels == [entry.rsplit(" @", 1)[0] for entry in expected["done_sequence"]]


def stream_fixture(name: str, client: openai_stream.Client) -> ResponseStream:
    text = expected_for(name)["text_param"]
    params: Dict[str, Any] = {"text": text} if text is not None else {}
    return client.responses.stream(model="m", input="hi", **params)


# --------------------------------------------------------------------------- every fixture, end to end
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
@pytest.mark.parametrize("name", NAMES)
def test_fixture_through_the_client_with_handlers(name: str, chunked: bool) -> None:
    with ReplayServer([scripted(name, chunked=chunked)]) as server, client_for(server) as client:
        stream = stream_fixture(name, client)
        events: List[Any] = []
        server_events: List[Dict[str, Any]] = []
        for kind in HIGH_LEVEL:
            stream.on(kind, events.append)
        payload_types = {
            json.loads(line[len(b"data: ") :]).get("type")
            for line in (FIXTURES / f"{name}.sse").read_bytes().split(b"\n")
            if line.startswith(b"data: ")
        }
        for kind in sorted(payload_types - {"error"}):
            # Every server event of the fixture can be listened to under its own name.
            stream.on(kind, lambda event: server_events.append(event.to_dict()))
        result, error = None, None
        try:
            result = stream.until_done()
        except openai_stream.OpenAIError as exc:
            error = exc
    check_outcome(name, result, error)
    check_events(name, events)
    sent = [p for p in _payloads(name) if p.get("type") != "error"]
    assert server_events == sent[: len(server_events)]
    if error is None:
        assert len(server_events) == len(sent)


def _payloads(name: str) -> List[Dict[str, Any]]:
    body = (FIXTURES / f"{name}.sse").read_bytes()
    return [json.loads(line[len(b"data: ") :]) for line in body.split(b"\n") if line.startswith(b"data: ")]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_through_the_client_by_iteration(name: str) -> None:
    with ReplayServer([scripted(name)]) as server, client_for(server) as client:
        stream = stream_fixture(name, client)
        events: List[Any] = []
        error = None
        try:
            with stream:
                for event in stream:
                    events.append(event)
        except openai_stream.OpenAIError as exc:
            error = exc
        result = stream.until_done() if error is None else None
    assert events[0].type == "response"
    check_outcome(name, result, error)
    high = [e for e in events if e.type in HIGH_LEVEL]
    if error is not None and expected_for(name)["outcome"]["kind"] == "error":
        high.append(openai_stream.ErrorEvent(error))  # iteration raises it; handlers see it as an event
    check_events(name, high, listened=False)
    assert [e.to_dict() for e in events if isinstance(e, ResponseStreamEvent)] == [
        p for p in _payloads(name) if p.get("type") != "error"
    ][: len([e for e in events if isinstance(e, ResponseStreamEvent)])]


# --------------------------------------------------------------------------- the request
def test_stream_posts_to_responses_with_stream_true_and_the_parameters() -> None:
    with ReplayServer([scripted("openai-text")]) as server, client_for(server) as client:
        stream = client.responses.stream(
            model="gpt-4.1",
            input=[{"role": "user", "content": "hi"}],
            instructions="Be brief.",
            max_output_tokens=20,
            extra_body={"top_k": 3},
            extra_headers={"X-Trace": "1"},
        )
        response = stream.until_done()
    (request,) = server.requests
    assert request.method == "POST" and request.path == "/v1/responses"
    assert request.json == {
        "model": "gpt-4.1",
        "input": [{"role": "user", "content": "hi"}],
        "instructions": "Be brief.",
        "max_output_tokens": 20,
        "stream": True,
        "top_k": 3,
    }
    assert request.headers["accept"] == "text/event-stream" and request.headers["x-trace"] == "1"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert isinstance(response, openai_stream.Response) and response.status == "completed"


def test_unknown_parameters_are_refused_before_anything_is_sent() -> None:
    with ReplayServer([scripted("openai-text")]) as server, client_for(server) as client:
        with pytest.raises(TypeError, match="max_output_tokens"):
            client.responses.stream(model="m", input="hi", max_output_token=5)
        with pytest.raises(TypeError, match="max_output_tokens"):
            client.responses.create(model="m", input="hi", max_output_token=5)
        with pytest.raises(TypeError, match="messages"):
            client.responses.stream(model="m", messages=[])  # chat's parameter
    assert server.requests == []


def test_tools_go_in_the_flat_responses_shape() -> None:
    @openai_stream.tool
    def get_weather(city: str) -> str:
        """The weather.

        Args:
            city: The city.
        """
        return "sunny"

    chat_shaped = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    hosted = {"type": "web_search"}
    with ReplayServer([scripted("openai-text")]) as server, client_for(server) as client:
        client.responses.stream(model="m", input="hi", tools=[get_weather, chat_shaped, hosted]).until_done()
    tools = server.requests[0].json["tools"]
    function = get_weather.definition["function"]
    assert tools[0] == {"type": "function", **function} and "function" not in tools[0]
    assert tools[0]["name"] == "get_weather" and tools[0]["parameters"]["required"] == ["city"]
    assert tools[1] == {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    assert tools[2] == hosted


def test_on_accepts_every_event_openai_python_documents_and_refuses_typos() -> None:
    types_module = pytest.importorskip("openai.types.responses")
    import typing

    documented: set[str] = set()
    for member in typing.get_args(typing.get_args(types_module.ResponseStreamEvent)[0]):
        literal = member.model_fields["type"].annotation
        documented.update(typing.get_args(literal))
    assert len(documented) > 50
    stream = openai_stream.Client(base_url="http://127.0.0.1:9/v1", api_key="k").responses.stream(
        model="m", input="x"
    )
    for name in sorted(documented):
        stream.on(name, lambda event: None)  # none is refused
    assert documented <= set(RESPONSE_EVENT_TYPES)
    for name in RESPONSE_EVENT_TYPES:
        stream.on(name, lambda event: None)
    with pytest.raises(ValueError, match=r"response\.output_text\.delta"):
        stream.on("response.output_text.delt", lambda event: None)
    with pytest.raises(ValueError, match="no chunks"):
        stream.on("chunk", lambda event: None)
    with pytest.raises(ValueError, match=r"tool_call\.delta"):
        stream.on("tool_calls.function.arguments.delta", lambda event: None)


def test_the_same_handler_works_on_a_chat_and_a_responses_stream() -> None:
    chat_body = [
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
    ]
    with (
        ReplayServer([ScriptedResponse.from_chunks(chat_body), scripted("openai-text")]) as server,
        client_for(server) as client,
    ):
        seen: List[Tuple[str, str]] = []

        def show(event: Any) -> None:
            seen.append((event.delta, event.snapshot))

        chat = client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}])
        chat.on("content.delta", show)
        chat.until_done()
        chat_seen, seen[:] = list(seen), []
        responses = client.responses.stream(model="m", input="hi")
        responses.on("content.delta", show)
        response = responses.until_done()
    assert chat_seen == [("Hel", "Hel"), ("lo", "Hello")]
    assert "".join(d for d, _ in seen) == response.output_text == seen[-1][1]


# --------------------------------------------------------------------------- lifecycle
def test_close_from_another_thread_stops_a_running_stream_with_the_partial_response() -> None:
    with ReplayServer([scripted("openai-text", delay=0.2)]) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="hi")
        first_delta = threading.Event()
        stream.on("content.delta", lambda event: first_delta.set())
        stream.start()
        assert first_delta.wait(10)
        threading.Thread(target=stream.close).start()
        with pytest.raises(openai_stream.APIUserAbortError) as caught:
            stream.until_done(timeout=10)
    partial = caught.value.completion
    assert isinstance(partial, openai_stream.Response)
    assert partial.status == "in_progress" and partial.output_text
    assert stream.state == "closed"


def test_with_block_closes_the_stream_and_its_connection() -> None:
    with ReplayServer([scripted("openai-text", delay=0.2)]) as server, client_for(server) as client:
        with client.responses.stream(model="m", input="hi") as stream:
            for event in stream:
                if event.type == "content.delta":
                    break
        with pytest.raises(openai_stream.APIUserAbortError):
            stream.until_done()


def test_idle_timeout_ends_a_silent_stream_with_the_partial_response() -> None:
    created = {"type": "response.created", "sequence_number": 0,
               "response": {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}}
    delta = {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1",
             "output_index": 0, "content_index": 0, "delta": "Hi"}
    handler = script(head(), chunk(sse(created)), chunk(sse(delta)), stall(5))
    with FaultServer(handler) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="hi", idle_timeout=0.3)
        with pytest.raises(openai_stream.APITimeoutError) as caught:
            stream.until_done()
    assert caught.value.completion.output_text == "Hi"
    assert caught.value.completion.id == "resp_1"


def test_a_failing_status_is_retried_before_the_first_byte(waits: List[float]) -> None:
    error = ScriptedResponse.json({"error": {"message": "busy", "type": "server_error"}}, status=503)
    with ReplayServer([error, scripted("openai-text")]) as server, client_for(server, max_retries=2) as c:
        response = c.responses.stream(model="m", input="hi").until_done()
    assert len(server.requests) == 2 and len(waits) == 1
    assert response.output_text == expected_for("openai-text")["output_text"]


def test_an_error_status_raises_the_typed_error() -> None:
    error = ScriptedResponse.json(
        {"error": {"message": "no such model", "type": "invalid_request_error", "code": "model_not_found"}},
        status=404,
    )
    with (
        ReplayServer([error]) as server,
        client_for(server) as client,
        pytest.raises(openai_stream.NotFoundError) as caught,
    ):
        client.responses.stream(model="m", input="hi").until_done()
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    "params, retried",
    [({}, True), ({"store": True}, False), ({"background": True}, False), ({"store": False}, True)],
)
def test_a_request_the_server_may_have_started_on_is_not_sent_twice(
    params: Dict[str, Any], retried: bool, waits: List[float]
) -> None:
    # The server reads the whole request, then drops the connection without answering.
    handlers = [close(), script(head(), chunk((FIXTURES / "openai-text.sse").read_bytes()), chunk(b""))]
    with FaultServer(handlers) as server, client_for(server, max_retries=1) as client:
        stream = client.responses.stream(model="m", input="hi", **params)
        if retried:
            assert stream.until_done().status == "completed"
        else:
            with pytest.raises(openai_stream.APIConnectionError):
                stream.until_done()
    assert server.connections == (2 if retried else 1)


# --------------------------------------------------------------------------- errors inside the stream
def test_incomplete_completes_with_its_status_and_details() -> None:
    with ReplayServer([scripted("openai-incomplete")]) as server, client_for(server) as client:
        done: List[Any] = []
        stream = client.responses.stream(model="m", input="hi")
        stream.on("done", done.append)
        response = stream.until_done()
    assert response.status == "incomplete"
    assert response.to_dict()["incomplete_details"]["reason"] == "max_output_tokens"
    assert [e.finish_reason for e in done] == ["length"]


def test_error_listeners_see_a_failed_response_once_and_it_is_raised() -> None:
    with ReplayServer([scripted("openai-failed")]) as server, client_for(server) as client:
        errors: List[Any] = []
        stream = client.responses.stream(model="m", input="hi")
        stream.on("error", errors.append)
        with pytest.raises(openai_stream.InternalServerError) as caught:
            stream.until_done()
    assert [e.error for e in errors] == [caught.value]
    assert caught.value.completion.status == "failed"
    with pytest.raises(openai_stream.InternalServerError):
        stream.until_done()  # the same outcome again


# --------------------------------------------------------------------------- create()
def test_create_returns_the_whole_response() -> None:
    body = json.loads((FIXTURES / "llamacpp-text.nonstream.json").read_text(encoding="utf-8"))
    with ReplayServer([ScriptedResponse.json(body)]) as server, client_for(server) as client:
        response = client.responses.create(model="m", input="Say hello in five words.", temperature=0)
    (request,) = server.requests
    assert request.path == "/v1/responses"
    assert request.json == {"model": "m", "input": "Say hello in five words.", "temperature": 0}
    assert request.headers["accept"] == "application/json"
    assert response.to_dict() == body
    texts = [p["text"] for i in body["output"] if i["type"] == "message" for p in i["content"]]
    assert response.output_text == "".join(texts) and response.output_text


def test_create_refuses_stream_true() -> None:
    client = openai_stream.Client(base_url="http://127.0.0.1:9/v1", api_key="k")
    with pytest.raises(openai_stream.OpenAIError, match=r"responses\.stream"):
        client.responses.create(model="m", input="x", stream=True)


def test_create_raises_the_typed_error_of_a_failed_response() -> None:
    body = {
        "id": "resp_9",
        "object": "response",
        "status": "failed",
        "error": {"code": "rate_limit_exceeded", "message": "slow down"},
        "output": [],
    }
    with (
        ReplayServer([ScriptedResponse.json(body)]) as server,
        client_for(server) as client,
        pytest.raises(openai_stream.RateLimitError) as caught,
    ):
        client.responses.create(model="m", input="x")
    assert caught.value.completion.id == "resp_9" and caught.value.code == "rate_limit_exceeded"


def test_create_with_a_json_schema_text_format_gives_parsed() -> None:
    schema_format = {"type": "json_schema", "name": "person", "schema": {"type": "object"}}
    body = {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "output": [
            {"type": "message", "id": "m", "role": "assistant",
             "content": [{"type": "output_text", "text": '{"name": "Bob", "age": 3}', "annotations": []}]}
        ],
    }
    with ReplayServer([ScriptedResponse.json(body)]) as server, client_for(server) as client:
        response = client.responses.create(model="m", input="x", text={"format": schema_format})
        plain = client.responses.create(model="m", input="x")
    assert response.parsed == {"name": "Bob", "age": 3}
    assert plain.parsed is None and "parsed" not in plain.to_dict()


def test_a_custom_tool_call_says_so_in_call_type_and_input() -> None:
    with ReplayServer([scripted("openai-custom-tool-call")]) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="run it")
        deltas: List[Any] = []
        done: List[Any] = []
        stream.on("tool_call.delta", deltas.append)
        stream.on("tool_call.done", done.append)
        response = stream.until_done()
    (item,) = [i for i in response.to_dict()["output"] if i["type"] == "custom_tool_call"]
    assert [e.call_type for e in done] == ["custom"] and done[0].input == item["input"]
    assert {e.call_type for e in deltas} == {"custom"}
