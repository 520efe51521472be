"""Resuming a Responses API stream (issue 12 §5) against loopback servers that cut it mid-way.

``client.responses.stream(response_id=..., starting_after=N)`` streams a
response already running (``GET /responses/{id}?stream=true&starting_after=N``);
``resume=True`` does that by itself when the body breaks, at most
``max_retries`` times, and no handler sees an event twice even when the server
sends again events the client already had. The expected text and response are
the independent oracle's (tests/expected_responses/openai-text.json).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import EXPECTED_RESPONSES, RESPONSES_FIXTURES
from fault_server import FaultServer, Handler, chunk, head, raw, reset, script, stall

import openai_stream
from openai_stream.testing import ReplayServer, ScriptedResponse, split_sse_events

FIXTURES = RESPONSES_FIXTURES
EXPECTED = json.loads((EXPECTED_RESPONSES / "openai-text.json").read_text(encoding="utf-8"))
EVENTS = split_sse_events((FIXTURES / "openai-text.sse").read_bytes())
RESPONSE_ID = EXPECTED["response"]["id"]
DELTAS = EXPECTED["events"]["counts"]["content.delta"]


def sequence_of(event: bytes) -> int:
    data = next(line for line in event.split(b"\n") if line.startswith(b"data: "))
    number: int = json.loads(data[len(b"data: ") :])["sequence_number"]
    return number


assert [sequence_of(e) for e in EVENTS] == list(range(len(EVENTS)))  # event i has sequence_number i


def body(first: int, last: int) -> bytes:
    """The events with sequence numbers first..last, as one piece."""
    return b"".join(EVENTS[first : last + 1])


def cut_after(last: int) -> Handler:
    """A streamed answer that sends events 0..last, then resets the connection."""
    return script(head(), chunk(body(0, last)), reset())


def serve_from(first: int) -> Handler:
    """A streamed answer with the events from sequence number ``first`` to the end."""
    return script(head(), chunk(body(first, len(EVENTS) - 1)), chunk(b""))


def request_line(raw: bytes) -> Tuple[str, str, Dict[str, List[str]], bytes]:
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    method, target, _ = head_bytes.split(b"\r\n")[0].decode().split(" ")
    parts = urlsplit(target)
    return method, parts.path, parse_qs(parts.query), payload


def client_for(server: Any, **options: Any) -> openai_stream.Client:
    options.setdefault("timeout", 10)
    return openai_stream.Client(base_url=server.base_url, api_key="sk-test", **options)


class Seen:
    """Everything handlers were given."""

    def __init__(self, stream: openai_stream.ResponseStream) -> None:
        self.deltas: List[str] = []
        self.sequence: List[int] = []
        self.http: List[Any] = []
        stream.on("content.delta", lambda event: self.deltas.append(event.delta))
        stream.on("response", self.http.append)
        for name in ("response.output_text.delta", "response.output_item.added", "response.completed"):
            stream.on(name, lambda event: self.sequence.append(event.sequence_number))


# --------------------------------------------------------------------------- resume=True
@pytest.mark.parametrize("overlap", [0, 3], ids=["exact", "server-repeats-events"])
def test_a_cut_stream_resumes_after_the_last_event_without_repeating_any(overlap: int) -> None:
    cut = 8  # events 0..8 arrive, then a reset
    with FaultServer([cut_after(cut), serve_from(cut + 1 - overlap)]) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="hi", background=True, resume=True)
        seen = Seen(stream)
        response = stream.until_done()
    assert server.connections == 2 and stream.resumes == 1
    method, path, query, payload = request_line(server.requests[1])
    assert (method, path, payload) == ("GET", f"/v1/responses/{RESPONSE_ID}", b"")
    assert query == {"stream": ["true"], "starting_after": [str(cut)]}
    assert request_line(server.requests[0])[0] == "POST"
    assert response.to_dict() == EXPECTED["response"]
    assert "".join(seen.deltas) == EXPECTED["output_text"] and len(seen.deltas) == DELTAS
    assert seen.sequence == sorted(set(seen.sequence))  # none twice, in order
    assert len(seen.http) == 1  # one "response" event: the stream's, not one per connection


def test_without_resume_a_cut_stream_raises_with_the_partial_response() -> None:
    with FaultServer([cut_after(8), serve_from(9)]) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="hi", background=True)
        with pytest.raises(openai_stream.StreamInterruptedError) as caught:
            stream.until_done()
    assert server.connections == 1
    assert caught.value.completion.id == RESPONSE_ID
    assert EXPECTED["output_text"].startswith(caught.value.completion.output_text)
    assert stream.response_id == RESPONSE_ID and stream.sequence_number == 8


@pytest.mark.parametrize("max_retries, succeeds", [(1, False), (2, True)])
def test_resumes_at_most_max_retries_times(max_retries: int, succeeds: bool) -> None:
    # The first two connections break; the third would finish the stream.
    handlers = [cut_after(6), script(head(), chunk(body(7, 9)), reset()), serve_from(10)]
    with FaultServer(handlers) as server, client_for(server, max_retries=max_retries) as client:
        stream = client.responses.stream(model="m", input="hi", background=True, resume=True)
        seen = Seen(stream)
        if succeeds:
            assert stream.until_done().to_dict() == EXPECTED["response"]
        else:
            with pytest.raises(openai_stream.StreamInterruptedError) as caught:
                stream.until_done()
            assert caught.value.completion.id == RESPONSE_ID
    assert server.connections == max_retries + 1
    queries = [request_line(raw)[2].get("starting_after") for raw in server.requests[1:]]
    assert queries == [["6"], ["9"]][:max_retries]
    assert seen.sequence == sorted(set(seen.sequence))


def test_a_stream_that_falls_silent_resumes_too() -> None:
    handlers = [script(head(), chunk(body(0, 5)), stall(5)), serve_from(6)]
    with FaultServer(handlers) as server, client_for(server) as client:
        stream = client.responses.stream(
            model="m", input="hi", background=True, resume=True, idle_timeout=0.3
        )
        seen = Seen(stream)
        response = stream.until_done()
    assert response.output_text == EXPECTED["output_text"] == "".join(seen.deltas)
    assert server.connections == 2


def test_a_body_that_ends_early_over_a_clean_close_resumes_through_the_replay_server() -> None:
    first = ScriptedResponse(events=EVENTS[:7], chunked=False)  # close-delimited, ends after event 6
    rest = ScriptedResponse(events=EVENTS[7:])
    with ReplayServer([first, rest]) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="hi", background=True, resume=True)
        seen = Seen(stream)
        response = stream.until_done()
    assert [r.method for r in server.requests] == ["POST", "GET"]
    assert server.requests[0].json["background"] is True
    assert server.requests[1].path == f"/v1/responses/{RESPONSE_ID}?stream=true&starting_after=6"
    assert response.to_dict() == EXPECTED["response"] and "".join(seen.deltas) == EXPECTED["output_text"]


def test_without_sequence_numbers_there_is_nothing_to_resume_from() -> None:
    # llama.cpp's stream: no sequence_number, so events could not be matched; the cut is raised.
    llama = split_sse_events((FIXTURES / "llamacpp-text.sse").read_bytes())
    handlers = [script(head(), chunk(b"".join(llama[:6])), reset()), script(head(), chunk(b""))]
    with FaultServer(handlers) as server, client_for(server) as client:
        stream = client.responses.stream(model="m", input="hi", background=True, resume=True)
        with pytest.raises(openai_stream.StreamInterruptedError):
            stream.until_done()
    assert server.connections == 1


def test_a_failing_resume_request_ends_the_stream_with_its_error() -> None:
    gone = script(
        head(404, {"Content-Type": "application/json"}, chunked=False),
        raw(b'{"error": {"message": "no such response", "code": "not_found"}}'),
    )
    with FaultServer([cut_after(8), gone]) as server, client_for(server, max_retries=1) as client:
        stream = client.responses.stream(model="m", input="hi", background=True, resume=True)
        with pytest.raises(openai_stream.NotFoundError) as caught:
            stream.until_done()
    assert isinstance(caught.value.__cause__, openai_stream.StreamInterruptedError)
    assert caught.value.completion.id == RESPONSE_ID  # what arrived before the cut


# --------------------------------------------------------------------------- response_id=
def test_stream_by_response_id_gets_the_rest_of_a_running_response() -> None:
    with FaultServer(serve_from(9)) as server, client_for(server) as client:
        stream = client.responses.stream(response_id=RESPONSE_ID, starting_after=8)
        seen = Seen(stream)
        response = stream.until_done()
    method, path, query, payload = request_line(server.requests[0])
    assert (method, path, payload) == ("GET", f"/v1/responses/{RESPONSE_ID}", b"")
    assert query == {"stream": ["true"], "starting_after": ["8"]}
    head_text = server.requests[0].split(b"\r\n\r\n")[0].lower()
    assert b"accept: text/event-stream" in head_text and b"content-type" not in head_text
    assert response.to_dict() == EXPECTED["response"]  # response.completed's snapshot is the final word
    assert EXPECTED["output_text"].endswith("".join(seen.deltas)) and seen.deltas
    assert min(seen.sequence) >= 9


def test_stream_by_response_id_skips_events_up_to_starting_after_even_if_sent() -> None:
    with FaultServer(serve_from(0)) as server, client_for(server) as client:  # a server that ignores it
        stream = client.responses.stream(response_id=RESPONSE_ID, starting_after=8)
        seen = Seen(stream)
        stream.until_done()
    assert min(seen.sequence) >= 9


def test_the_arguments_of_a_resume_are_checked() -> None:
    client = openai_stream.Client(base_url="http://127.0.0.1:9/v1", api_key="k")
    with pytest.raises(TypeError, match="background=True"):
        client.responses.stream(model="m", input="x", resume=True)
    with pytest.raises(TypeError, match="'model', 'input'"):
        client.responses.stream(response_id="resp_1", model="m", input="x")
    with pytest.raises(TypeError, match="response_id"):
        client.responses.stream(model="m", input="x", starting_after=3)
    with pytest.raises(ValueError, match="response_id"):
        client.responses.stream(response_id="a/b")
    with pytest.raises(TypeError, match="sequence_number"):
        client.responses.stream(response_id="resp_1", starting_after="3")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- a response not there
# OpenAI's answer to GET /responses/{id} for an id it does not hold: 404 with an invalid_request_error.
MISSING = {
    "error": {
        "message": f"Response with id '{RESPONSE_ID}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}


def assert_says_the_response_is_gone(error: openai_stream.NotFoundError) -> None:
    text = str(error)
    assert error.status_code == 404 and RESPONSE_ID in text and "not found" in text
    assert "background=True" in text and "store" in text and "expired" in text and "project" in text
    assert "check the model name" not in text  # the generic 404 hint names the wrong cause here
    assert error.body == MISSING["error"]
    assert error.request_id == "req_gone" and "req_gone" in text


def test_a_resume_of_a_response_the_server_does_not_have_says_so_with_the_partial_response() -> None:
    first = ScriptedResponse(events=EVENTS[:7], chunked=False)  # ends after event 6, then the GET
    gone = ScriptedResponse(status=404, body=MISSING, headers={"x-request-id": "req_gone"})
    with ReplayServer([first, gone]) as server, client_for(server, max_retries=1) as client:
        stream = client.responses.stream(model="m", input="hi", background=True, resume=True)
        with pytest.raises(openai_stream.NotFoundError) as caught:
            stream.until_done()
    assert [r.method for r in server.requests] == ["POST", "GET"]
    assert_says_the_response_is_gone(caught.value)
    assert "error.completion" in str(caught.value)
    partial = caught.value.completion
    assert partial.id == RESPONSE_ID and partial.output_text
    assert EXPECTED["output_text"].startswith(partial.output_text)
    assert isinstance(caught.value.__cause__, openai_stream.StreamInterruptedError)


def test_streaming_a_response_id_the_server_does_not_have_says_so() -> None:
    gone = ScriptedResponse(status=404, body=MISSING, headers={"x-request-id": "req_gone"})
    with ReplayServer([gone]) as server, client_for(server) as client:
        stream = client.responses.stream(response_id=RESPONSE_ID, starting_after=8)
        with pytest.raises(openai_stream.NotFoundError) as caught:
            stream.until_done()
    assert server.requests[0].path == f"/v1/responses/{RESPONSE_ID}?stream=true&starting_after=8"
    assert_says_the_response_is_gone(caught.value)
    assert caught.value.completion is None  # nothing of the response arrived
