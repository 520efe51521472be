"""Fault injection on raw loopback sockets: what each broken server yields.

Every fault ends in a typed openai_stream error with a message saying what
happened; errors raised after the response started carry the partial
completion as ``error.completion``.
"""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

import pytest
from fault_server import FaultServer, chunk, close, head, raw, refuse_port, reset, script, sse, stall

import openai_stream


def delta(content: str, finish: str | None = None, index: int = 0) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": index, "delta": {"content": content}}
    if finish is not None:
        choice["finish_reason"] = finish
    return {"id": "chatcmpl-1", "model": "m", "choices": [choice]}


HELLO = sse(delta("Hel")) + sse(delta("lo"))
FINISH = sse(delta("", "stop"))
DONE = b"data: [DONE]\n\n"



def run(server: FaultServer, **kwargs: Any) -> openai_stream.ChatCompletion:
    client_kwargs = {k: kwargs.pop(k) for k in ("timeout", "max_retries", "max_event_bytes") if k in kwargs}
    client_kwargs.setdefault("timeout", 10)
    client_kwargs.setdefault("max_retries", 0)
    client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, **client_kwargs)
    try:
        return client.chat.completions.stream(model="m", messages=[], **kwargs).until_done()
    finally:
        client.close()


def partial_content(error: openai_stream.APIError) -> str | None:
    assert error.completion is not None, "the partial completion must be attached"
    choices = error.completion.choices
    return choices[0].message.content if choices else None


# --- the body breaks ----------------------------------------------------------------------------


def test_reset_mid_body_between_chunks() -> None:
    with (
        FaultServer(script(head(), chunk(HELLO), reset())) as server,
        pytest.raises(openai_stream.StreamInterruptedError) as info,
    ):
        run(server)
    assert "connection was reset" in info.value.message
    assert partial_content(info.value) == "Hello"


def test_reset_mid_body_inside_a_chunk() -> None:
    torn = sse(delta("!"))[:10]
    with (
        FaultServer(script(head(), chunk(HELLO), raw(b"%x\r\n%s" % (100, torn)), reset())) as server,
        pytest.raises(openai_stream.StreamInterruptedError) as info,
    ):
        run(server)
    assert partial_content(info.value) == "Hello"


def test_clean_close_inside_a_chunk() -> None:
    torn = sse(delta("!"))[:10]
    with (
        FaultServer(script(head(), chunk(HELLO), raw(b"%x\r\n%s" % (100, torn)), close())) as server,
        pytest.raises(openai_stream.StreamInterruptedError) as info,
    ):
        run(server)
    assert "closed the connection in the middle of the body" in info.value.message
    assert partial_content(info.value) == "Hello"


def test_clean_close_between_chunks_without_the_final_chunk() -> None:
    with (
        FaultServer(script(head(), chunk(HELLO), close())) as server,
        pytest.raises(openai_stream.StreamInterruptedError) as info,
    ):
        run(server)
    assert partial_content(info.value) == "Hello"


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_body_ends_cleanly_without_done_or_finish(chunked: bool) -> None:
    body = chunk(HELLO) if chunked else raw(HELLO)
    ending = chunk(b"") if chunked else close()
    with (
        FaultServer(script(head(chunked=chunked), body, ending)) as server,
        pytest.raises(openai_stream.StreamInterruptedError) as info,
    ):
        run(server)
    assert "no [DONE] and no finish_reason" in info.value.message
    assert partial_content(info.value) == "Hello"


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_body_ends_after_every_choice_finished_without_done(chunked: bool) -> None:
    body = chunk(HELLO + FINISH) if chunked else raw(HELLO + FINISH)
    ending = chunk(b"") if chunked else close()
    with FaultServer(script(head(chunked=chunked), body, ending)) as server:
        completion = run(server)
    assert completion.choices[0].message.content == "Hello"
    assert completion.choices[0].finish_reason == "stop"


def test_done_without_finish_reason_is_complete() -> None:
    with FaultServer(script(head(), chunk(HELLO + DONE), chunk(b""))) as server:
        completion = run(server)
    assert completion.choices[0].finish_reason is None


def test_done_releases_the_connection_without_reading_further() -> None:
    with FaultServer(script(head(), chunk(HELLO + DONE), stall(30))) as server:
        started = time.monotonic()
        completion = run(server)
    assert time.monotonic() - started < 10  # did not wait for the server's stall
    assert completion.choices[0].message.content == "Hello"


@pytest.mark.parametrize(
    "tail",
    [sse(delta("!", "stop")).rstrip(b"\n"), sse(delta("!", "stop"))[:-1], DONE.rstrip(b"\n")],
    ids=["json-no-newline", "json-one-newline", "done-no-newline"],
)
def test_whole_last_line_without_blank_line_is_taken(tail: bytes) -> None:
    with FaultServer(script(head(), chunk(HELLO + tail), chunk(b""))) as server:
        completion = run(server)
    expected = "Hello!" if b"stop" in tail else "Hello"
    assert completion.choices[0].message.content == expected


def test_half_line_at_eof_is_an_interruption() -> None:
    half = sse(delta("!", "stop"))[:25]
    with (
        FaultServer(script(head(), chunk(HELLO + half), chunk(b""))) as server,
        pytest.raises(openai_stream.StreamInterruptedError) as info,
    ):
        run(server)
    assert "middle of an event" in info.value.message
    assert partial_content(info.value) == "Hello"


def test_body_cut_inside_a_character_is_an_interruption() -> None:
    line = b"data: " + json.dumps(delta("日本", "stop"), ensure_ascii=False).encode() + b"\n\n"
    cut = line[: line.index("本".encode()) + 1]
    with (
        FaultServer(script(head(), chunk(HELLO + cut), chunk(b""))) as server,
        pytest.raises(openai_stream.StreamInterruptedError) as info,
    ):
        run(server)
    assert partial_content(info.value) == "Hello"


def test_stall_past_the_read_timeout() -> None:
    with FaultServer(script(head(), chunk(HELLO), stall(30))) as server:
        started = time.monotonic()
        with pytest.raises(openai_stream.APITimeoutError) as info:
            run(server, timeout=openai_stream.Timeout(connect=5, read=0.5))
    assert time.monotonic() - started < 5.5  # the timeout plus a margin, far below the stall
    assert "read timeout" in info.value.message
    assert partial_content(info.value) == "Hello"


def test_keepalive_comments_reset_the_read_timeout() -> None:
    pings = [stall(0.3), chunk(b": ping\n\n")] * 4
    with FaultServer(script(head(), chunk(HELLO), *pings, chunk(FINISH + DONE), chunk(b""))) as server:
        completion = run(server, timeout=openai_stream.Timeout(connect=5, read=1.0))
    assert completion.choices[0].message.content == "Hello"


# --- the data is bad ---------------------------------------------------------------------------


def test_malformed_json_quotes_a_bounded_prefix() -> None:
    bad = b"data: {not json " + b"x" * 100_000 + b"\n\n"
    with (
        FaultServer(script(head(), chunk(HELLO + bad), chunk(b""))) as server,
        pytest.raises(openai_stream.InvalidStreamDataError) as info,
    ):
        run(server)
    message = info.value.message
    assert "not valid JSON" in message and "{not json" in message
    assert len(message) < 500
    assert partial_content(info.value) == "Hello"


@pytest.mark.parametrize("value", [b"42", b"[1, 2]", b'"text"', b"null", b"true", b"NaN"])
def test_json_that_is_not_an_object(value: bytes) -> None:
    with (
        FaultServer(script(head(), chunk(HELLO + b"data: " + value + b"\n\n"), chunk(b""))) as server,
        pytest.raises(openai_stream.InvalidStreamDataError) as info,
    ):
        run(server)
    assert "JSON object" in info.value.message
    assert partial_content(info.value) == "Hello"


def test_deeply_nested_json_is_a_typed_error() -> None:
    deep = b"data: " + b"[" * 100_000 + b"\n\n"
    with (
        FaultServer(script(head(), chunk(HELLO + deep), chunk(b""))) as server,
        pytest.raises(openai_stream.InvalidStreamDataError) as info,
    ):
        run(server)
    assert partial_content(info.value) == "Hello"


def test_invalid_utf8() -> None:
    bad = b'data: {"choices": [{"index": 0, "delta": {"content": "\xff\xfe"}}]}\n\n'
    with (
        FaultServer(script(head(), chunk(HELLO + bad), chunk(b""))) as server,
        pytest.raises(openai_stream.InvalidStreamDataError) as info,
    ):
        run(server)
    assert "not valid UTF-8" in info.value.message and len(info.value.message) < 500
    assert partial_content(info.value) == "Hello"


def test_bad_line_after_good_events_in_one_read_fails_at_once() -> None:
    bad = b"data: \xff\n\n"
    handler = script(head(), chunk(HELLO + bad), stall(30))
    with FaultServer(handler) as server, pytest.raises(openai_stream.InvalidStreamDataError) as info:
        run(server, timeout=openai_stream.Timeout(connect=5, read=20))
    assert partial_content(info.value) == "Hello"  # and not a read timeout 20 s later


def test_chunk_with_wrong_types_is_a_typed_error() -> None:
    bad = sse({"choices": [{"index": 0, "delta": {"content": 5}}]})
    with (
        FaultServer(script(head(), chunk(HELLO + bad), chunk(b""))) as server,
        pytest.raises(openai_stream.InvalidStreamDataError) as info,
    ):
        run(server)
    assert partial_content(info.value) == "Hello"


def test_sse_noise_is_ignored() -> None:
    noise = b": OPENROUTER PROCESSING\n\nevent: ping\n\nid: 7\n\nretry: 100\n\ndata:\n\ndata: \n\n"
    body = b"\xef\xbb\xbf" + noise + HELLO.replace(b"\n", b"\r\n") + FINISH.replace(b"\n", b"\r") + DONE
    with FaultServer(script(head(), chunk(body), chunk(b""))) as server:
        completion = run(server)
    assert completion.choices[0].message.content == "Hello"


def test_event_over_the_limit_on_a_real_socket() -> None:
    giant = b"data: " + b"x" * (20 * 1024 * 1024)  # no newline: a server gone wrong
    pieces = [chunk(giant[i : i + 65536]) for i in range(0, len(giant), 65536)]
    with (
        FaultServer(script(head(), chunk(HELLO), *pieces, chunk(b""))) as server,
        pytest.raises(openai_stream.EventTooLargeError) as info,
    ):
        run(server, max_event_bytes=1024 * 1024)
    assert "max_event_bytes" in info.value.message
    assert partial_content(info.value) == "Hello"


def test_one_mib_event_passes_at_the_default_limit() -> None:
    big = "y" * (1024 * 1024)
    with FaultServer(script(head(), chunk(sse(delta(big, "stop")) + DONE), chunk(b""))) as server:
        completion = run(server)
    assert completion.choices[0].message.content == big


@pytest.mark.parametrize(
    "payload",
    [
        b'data: {"error": {"message": "overloaded", "type": "overloaded_error"}}\n\n',
        b'event: error\ndata: {"message": "overloaded", "type": "overloaded_error"}\n\n',
        b'data: {"object": "error", "message": "overloaded", "type": "overloaded_error", "code": 503}\n\n',
    ],
    ids=["error-field", "error-event", "vllm-object-error"],
)
def test_error_inside_the_stream(payload: bytes) -> None:
    with (
        FaultServer(script(head(), chunk(HELLO + payload), chunk(b""))) as server,
        pytest.raises(openai_stream.InternalServerError) as info,
    ):
        run(server)
    assert "overloaded" in info.value.message
    assert partial_content(info.value) == "Hello"


def test_stream_request_answered_with_a_json_completion() -> None:
    completion_body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "whole",
                    "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    body = json.dumps(completion_body).encode()
    handler = script(head(headers={"Content-Type": "application/json"}, chunked=False), raw(body), close())
    with FaultServer(handler) as server:
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
        stream = client.chat.completions.stream(model="m", messages=[])
        types = [event.type for event in stream]
    assert "content.delta" in types and "tool_call.done" in types and types[-1] == "completion"
    completion = stream.current_completion
    assert completion.choices[0].message.content == "whole"
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "f"
    assert completion.usage is not None and completion.usage.total_tokens == 3


def test_gzip_encoded_stream_is_decoded_as_it_arrives() -> None:
    packer = zlib.compressobj(wbits=31)
    first = packer.compress(HELLO) + packer.flush(zlib.Z_SYNC_FLUSH)
    rest = packer.compress(FINISH + DONE) + packer.flush()
    handler = script(head(headers={"Content-Encoding": "gzip"}), chunk(first), chunk(rest), chunk(b""))
    with FaultServer(handler) as server:
        completion = run(server)
    assert completion.choices[0].message.content == "Hello"


# --- HTTP errors --------------------------------------------------------------------------------


def answer(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Any:
    fields = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Connection": "close",
        "x-request-id": f"req_{status}",
        **(extra or {}),
    }
    text = f"HTTP/1.1 {status} Status\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return raw(text.encode() + body)


@pytest.mark.parametrize(
    ("status", "cls", "attempts"),
    [
        (400, openai_stream.BadRequestError, 1),
        (401, openai_stream.AuthenticationError, 1),
        (403, openai_stream.PermissionDeniedError, 1),
        (404, openai_stream.NotFoundError, 1),
        (409, openai_stream.ConflictError, 3),
        (422, openai_stream.UnprocessableEntityError, 1),
    ],
)
def test_http_errors_with_json_bodies(
    status: int, cls: type[openai_stream.APIStatusError], attempts: int, waits: list[float]
) -> None:
    body = json.dumps({"error": {"message": f"server says {status}", "type": "t", "param": "model"}})
    with FaultServer(answer(status, body.encode(), "application/json")) as server, pytest.raises(cls) as info:
        run(server, max_retries=2)
    error = info.value
    assert type(error) is cls
    assert error.status_code == status and error.request_id == f"req_{status}"
    assert f"server says {status}" in error.message and f"req_{status}" in error.message
    assert error.param == "model"
    assert server.connections == attempts and len(waits) == attempts - 1


def test_429_with_retry_after(waits: list[float]) -> None:
    body = b'{"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}'
    with (
        FaultServer(answer(429, body, "application/json", {"Retry-After": "7"})) as server,
        pytest.raises(openai_stream.RateLimitError) as info,
    ):
        run(server, max_retries=2)
    assert waits == [7.0, 7.0]
    assert info.value.status_code == 429 and info.value.code == "rate_limit_exceeded"
    assert info.value.headers.get("Retry-After") == "7"
    assert "Rate limit reached" in info.value.message


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_with_an_html_body(status: int, waits: list[float]) -> None:
    page = (
        f"<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} Bad Gateway"
        "</h1></center><hr><center>nginx/1.25</center></body></html>"
    ).encode()
    with (
        FaultServer(answer(status, page, "text/html")) as server,
        pytest.raises(openai_stream.InternalServerError) as info,
    ):
        run(server, max_retries=2)
    error = info.value
    assert error.status_code == status and error.request_id == f"req_{status}"
    assert f"{status} Bad Gateway" in error.message and "<" not in error.message
    assert server.connections == 3 and len(waits) == 2


def test_error_status_whose_body_stalls(waits: list[float]) -> None:
    head_only = raw(b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\nx-request-id: req_s\r\n\r\n{")
    with (
        FaultServer(script(head_only, stall(30))) as server,
        pytest.raises(openai_stream.InternalServerError) as info,
    ):
        run(server, timeout=openai_stream.Timeout(connect=5, read=0.5))
    assert info.value.status_code == 500 and info.value.request_id == "req_s"


# --- redirects and unreachable servers ------------------------------------------------------------


def _redirect(location: str, status: int = 307) -> Any:
    return raw(
        f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n".encode()
    )


OK = script(head(), chunk(HELLO + FINISH + DONE), chunk(b""))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_drops_credentials(status: int) -> None:
    with FaultServer(OK) as target:
        location = f"http://localhost:{target.port}/v1/chat/completions"
        with FaultServer(_redirect(location, status)) as origin:
            client = openai_stream.Client(
                api_key="sk-test-secret",
                base_url=origin.base_url,
                default_headers={"api-key": "sk-test-secret", "X-Api-Key": "sk-test-secret"},
                max_retries=0,
                timeout=10,
            )
            completion = client.chat.completions.stream(model="m", messages=[]).until_done()
    assert completion.choices[0].message.content == "Hello"
    assert b"sk-test-secret" in origin.requests[0]
    assert len(target.requests) == 1
    forwarded = target.requests[0].lower()
    assert b"authorization" not in forwarded
    assert b"api-key" not in forwarded
    assert b"sk-test-secret" not in forwarded


def test_redirect_on_the_same_host_keeps_authorization() -> None:
    with FaultServer([_redirect("/v2/chat/completions"), OK]) as server:
        run(server)
    assert b"Bearer sk-test" in server.requests[1]
    assert server.requests[1].startswith(b"POST /v2/chat/completions")


def test_connection_refused_after_retries(waits: list[float]) -> None:
    port = refuse_port()
    client = openai_stream.Client(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)
    with pytest.raises(openai_stream.APIConnectionError) as info:
        client.chat.completions.stream(model="m", messages=[]).until_done()
    assert type(info.value) is openai_stream.APIConnectionError
    assert f"127.0.0.1:{port}" in info.value.message and "refused" in info.value.message
    assert len(waits) == 2
    assert info.value.completion is None  # no body byte arrived


def test_unknown_host_after_retries(waits: list[float]) -> None:
    client = openai_stream.Client(api_key="k", base_url="http://api.openai-stream.invalid/v1", max_retries=1)
    with pytest.raises(openai_stream.APIConnectionError) as info:
        client.chat.completions.stream(model="m", messages=[]).until_done()
    assert "api.openai-stream.invalid" in info.value.message
    assert len(waits) == 1


def test_create_on_an_unreachable_server(waits: list[float]) -> None:
    client = openai_stream.Client(api_key="k", base_url=f"http://127.0.0.1:{refuse_port()}/v1", max_retries=1)
    with pytest.raises(openai_stream.APIConnectionError):
        client.chat.completions.create(model="m", messages=[])
    assert len(waits) == 1


# --- whole JSON answers: nesting and size ------------------------------------------------------


def json_answer(
    body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None
) -> Any:
    fields = {"Content-Type": content_type, **(headers or {})}
    return script(head(headers=fields, chunked=False), raw(body), close())


def test_create_with_deeply_nested_json_is_a_typed_error() -> None:
    with FaultServer(json_answer(b"[" * 100_000)) as server:
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=10)
        with pytest.raises(openai_stream.InvalidStreamDataError) as info:
            client.chat.completions.create(model="m", messages=[])
    assert "not valid JSON" in info.value.message and len(info.value.message) < 500


def test_stream_answered_with_deeply_nested_json_is_a_typed_error() -> None:
    with (
        FaultServer(json_answer(b"[" * 100_000)) as server,
        pytest.raises(openai_stream.InvalidStreamDataError),
    ):
        run(server)


# The server sends twice the limit, then holds the connection open: reading to the end would
# wait for the read timeout instead of stopping at the limit.
OVERSIZED = script(
    head(headers={"Content-Type": "application/json"}, chunked=False),
    raw(b'{"id": "' + b"x" * (128 * 1024)),
    stall(30),
)


def test_create_stops_reading_at_max_event_bytes() -> None:
    with FaultServer(OVERSIZED) as server:
        client = openai_stream.Client(
            api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=20, max_event_bytes=64 * 1024
        )
        with pytest.raises(openai_stream.EventTooLargeError) as info:
            client.chat.completions.create(model="m", messages=[])
    assert "max_event_bytes" in info.value.message and str(64 * 1024) in info.value.message


def test_stream_answered_with_json_stops_reading_at_max_event_bytes() -> None:
    with FaultServer(OVERSIZED) as server, pytest.raises(openai_stream.EventTooLargeError) as info:
        run(server, timeout=20, max_event_bytes=64 * 1024)
    assert "max_event_bytes" in info.value.message
    assert info.value.completion is not None


def test_create_within_max_event_bytes_passes() -> None:
    body = json.dumps({"id": "c", "choices": [{"index": 0, "message": {"content": "y" * 60_000}}]}).encode()
    with FaultServer(json_answer(body)) as server:
        client = openai_stream.Client(
            api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=10, max_event_bytes=64 * 1024
        )
        completion = client.chat.completions.create(model="m", messages=[])
    assert completion.choices[0].message.content == "y" * 60_000


@pytest.mark.parametrize(
    ("payload", "cls"),
    [
        ({"error": {"message": "overloaded for sk-test", "type": "overloaded_error"}},
         openai_stream.InternalServerError),
        ({"object": "error", "message": "overloaded for sk-test", "type": "BadRequestError", "code": 400},
         openai_stream.BadRequestError),
    ],
    ids=["error-field", "vllm-object-error"],
)
def test_create_answered_200_with_an_error_payload_raises_it(
    payload: dict[str, Any], cls: type[openai_stream.APIStatusError]
) -> None:
    handler = json_answer(json.dumps(payload).encode(), headers={"x-request-id": "req_200"})
    with FaultServer(handler) as server:
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=10)
        with pytest.raises(cls) as info:
            client.chat.completions.create(model="m", messages=[])
        client.close()
    message = info.value.message
    assert "reported an error in its HTTP 200 answer: overloaded" in message
    assert "inside the stream" not in message
    assert "sk-test" not in message and "sk-test" not in json.dumps(info.value.body)
    assert info.value.request_id == "req_200"


# --- a 200 answer that is not a stream at all ---------------------------------------------------

PORTAL = b"<!DOCTYPE html>\n<html><head><title>Sign in to the Wi-Fi</title></head>\n<body>" + b"z" * 5000


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_html_page_with_status_200_is_invalid_stream_data(chunked: bool) -> None:
    parts = [chunk(PORTAL), chunk(b"")] if chunked else [raw(PORTAL), close()]
    handler = script(head(headers={"Content-Type": "text/html; charset=utf-8"}, chunked=chunked), *parts)
    with FaultServer(handler) as server, pytest.raises(openai_stream.InvalidStreamDataError) as info:
        run(server)
    message = info.value.message
    assert "text/html" in message and "Sign in to the Wi-Fi" in message and "base_url" in message
    assert len(message) < 800  # a bounded quote, not the whole page
    assert isinstance(info.value.body, str) and len(info.value.body) <= 4096


def test_empty_body_of_an_unexpected_content_type_is_invalid_stream_data() -> None:
    handler = script(head(headers={"Content-Type": "application/octet-stream"}), chunk(b""))
    with FaultServer(handler) as server, pytest.raises(openai_stream.InvalidStreamDataError) as info:
        run(server)
    assert "application/octet-stream" in info.value.message


def _sse_head(content_type: str | None) -> Any:
    lines = ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    return raw(("\r\n".join(lines) + "\r\n\r\n").encode())


@pytest.mark.parametrize(
    "content_type",
    [None, "text/event-stream; charset=utf-8", "Text/Event-Stream", "text/plain", "text/html"],
    ids=["missing", "charset-param", "upper-case", "text-plain", "text-html"],
)
def test_sse_under_other_content_types_still_streams(content_type: str | None) -> None:
    # Some proxies relabel event streams; a body that parses as SSE with data lines is taken as one.
    with FaultServer(script(_sse_head(content_type), chunk(HELLO + FINISH + DONE), chunk(b""))) as server:
        completion = run(server)
    assert completion.choices[0].message.content == "Hello"


def test_html_page_without_content_type_is_still_an_interruption() -> None:
    with (
        FaultServer(script(_sse_head(None), chunk(PORTAL), chunk(b""))) as server,
        pytest.raises(openai_stream.StreamInterruptedError),
    ):
        run(server)


# --- a chunk that fails half-way ---------------------------------------------------------------


def test_events_of_a_chunk_that_fails_half_way_reach_handlers_first() -> None:
    bad = sse({"choices": [{"index": 0, "delta": {"content": "abc", "refusal": 5}}]})
    seen: list[str] = []
    with FaultServer(script(head(), chunk(HELLO + bad), chunk(b""))) as server:
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=10)
        stream = client.chat.completions.stream(model="m", messages=[])
        stream.on("content.delta", lambda event: seen.append(event.delta))
        with pytest.raises(openai_stream.InvalidStreamDataError) as info:
            stream.until_done()
    assert partial_content(info.value) == "Helloabc"
    assert "".join(seen) == "Helloabc"


def test_events_of_a_chunk_that_fails_half_way_are_yielded_by_iteration() -> None:
    bad = sse({"choices": [{"index": 0, "delta": {"content": "abc", "refusal": 5}}]})
    with FaultServer(script(head(), chunk(HELLO + bad), chunk(b""))) as server:
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0, timeout=10)
        events: list[Any] = []
        with pytest.raises(openai_stream.InvalidStreamDataError) as info:
            for event in client.chat.completions.stream(model="m", messages=[]):
                events.append(event)
    assert [e.type for e in events[-2:]] == ["chunk", "content.delta"]
    assert events[-1].snapshot == partial_content(info.value) == "Helloabc"
