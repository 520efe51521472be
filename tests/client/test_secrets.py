"""Secret hygiene: the API key never shows up in messages, reprs, tracebacks or log records.

Each scenario runs with every logger at DEBUG (urllib3's included) and then
scans everything a user could print or log. Logging goes through the
``openai_stream`` logger only; nothing is written to stdout or stderr.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from fault_server import FaultServer, chunk, head, raw, refuse_port, reset, script, sse, stall

import openai_stream

KEY = "sk-proj-SECRET-4f9a8b7c6d5e"


CHUNK = {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
OK = script(head(headers={"x-request-id": "req_ok"}), chunk(sse(CHUNK) + b"data: [DONE]\n\n"), chunk(b""))


def answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode()
    fields = {"Content-Type": "application/json", "Content-Length": str(len(data)), "Connection": "close"}
    fields.update(headers or {})
    text = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return raw(text.encode() + data)


ECHO_401 = answer(
    401,
    {
        "error": {
            "message": f"Incorrect API key provided: {KEY}. Find your key at ...",
            "code": "invalid_api_key",
        }
    },
    {"x-request-id": "req_401"},
)



@pytest.fixture
def everything(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)  # the root logger: urllib3 and requests too
    caplog.set_level(logging.DEBUG, logger="openai_stream")
    yield caplog


def leaks(*texts: str) -> list[str]:
    return [text for text in texts if KEY in text or KEY[8:] in text]


def assert_clean(
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    *objects: Any,
    error: BaseException | None = None,
) -> None:
    texts = [repr(obj) for obj in objects] + [str(obj) for obj in objects]
    if error is not None:
        texts += [
            str(error),
            repr(error),
            "".join(traceback.format_exception(type(error), error, error.__traceback__)),
        ]
        if isinstance(error, openai_stream.APIError):
            texts += [str(error.message), repr(error.body)]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            texts += ["".join(traceback.format_exception(*record.exc_info))]
    out, err = capsys.readouterr()
    texts += [out, err]
    assert leaks(*texts) == []
    assert out == ""


def run_stream(base_url: str, **kwargs: Any) -> tuple[openai_stream.Client, Any, Any, BaseException | None]:
    client = openai_stream.Client(
        api_key=KEY, base_url=base_url, **{"max_retries": 0, "timeout": 10, **kwargs}
    )
    stream = client.chat.completions.stream(model="m", messages=[])
    try:
        completion = stream.until_done()
    except openai_stream.OpenAIError as exc:
        return client, stream, None, exc
    return client, stream, completion, None


def test_success(everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    with FaultServer(OK) as server:
        client, stream, completion, error = run_stream(server.base_url)
    assert error is None and completion is not None
    assert_clean(everything, capsys, client, stream, completion)
    assert KEY.encode() in server.requests[0]  # it was sent, so the scan is meaningful


def test_retries(
    waits: list[float], everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = answer(503, {"error": {"message": "busy"}}, {"x-request-id": "req_busy"})
    with FaultServer([busy, busy, OK]) as server:
        client, stream, _, error = run_stream(server.base_url, max_retries=2)
    assert error is None and len(waits) == 2
    assert_clean(everything, capsys, client, stream)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
def test_http_errors_that_echo_the_key(
    status: int, waits: list[float], everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"error": {"message": f"bad key {KEY}", "type": "invalid_request_error", "param": None}}
    with FaultServer(answer(status, body, {"x-request-id": "req_e"})) as server:
        client, stream, _, error = run_stream(server.base_url)
    assert isinstance(error, openai_stream.APIStatusError) and error.status_code == status
    assert "<redacted API key>" in error.message
    assert_clean(everything, capsys, client, stream, error=error)


def test_authentication_error(
    everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with FaultServer(ECHO_401) as server:
        client, stream, _, error = run_stream(server.base_url)
    assert isinstance(error, openai_stream.AuthenticationError) and error.request_id == "req_401"
    assert_clean(everything, capsys, client, stream, error=error)


@pytest.mark.parametrize(
    "handler",
    [
        script(
            head(), chunk(sse({"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}}]})), reset()
        ),
        script(head(), chunk(b"data: {oops\n\n"), chunk(b"")),
        script(head(), chunk(b'data: {"error": {"message": "quota", "code": 429}}\n\n'), chunk(b"")),
        script(head(), stall(30)),
    ],
    ids=["reset", "bad-json", "in-stream-error", "read-timeout"],
)
def test_stream_failures(
    handler: Any, everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with FaultServer(handler) as server:
        client, stream, _, error = run_stream(
            server.base_url, timeout=openai_stream.Timeout(connect=5, read=0.5)
        )
    assert isinstance(error, openai_stream.APIError)
    assert_clean(everything, capsys, client, stream, error=error)


def test_connection_refused(
    waits: list[float], everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stream, _, error = run_stream(f"http://127.0.0.1:{refuse_port()}/v1", max_retries=2)
    assert isinstance(error, openai_stream.APIConnectionError)
    assert_clean(everything, capsys, client, stream, error=error)


def test_unknown_host(
    waits: list[float], everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stream, _, error = run_stream("http://secrets-test.invalid/v1", max_retries=1)
    assert isinstance(error, openai_stream.APIConnectionError)
    assert_clean(everything, capsys, client, stream, error=error)


def test_redirect_to_another_host(
    everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with FaultServer(OK) as target:
        moved = raw(
            f"HTTP/1.1 307 Moved\r\nLocation: http://localhost:{target.port}/v1/chat/completions\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        with FaultServer(moved) as origin:
            client, stream, completion, error = run_stream(origin.base_url)
    assert error is None and completion is not None
    assert KEY.encode() not in target.requests[0]
    assert_clean(everything, capsys, client, stream)


@pytest.mark.parametrize("key", [KEY + "\n", "\n" + KEY, KEY + "\r\nX-Injected: 1"])
def test_malformed_key_is_not_quoted(
    key: str, waits: list[float], everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused when the client is built, before anything is sent.
    with pytest.raises(openai_stream.OpenAIError) as info:
        openai_stream.Client(api_key=key, base_url=f"http://127.0.0.1:{refuse_port()}/v1")
    assert waits == []
    assert_clean(everything, capsys, error=info.value)


def test_create_errors(
    waits: list[float], everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with FaultServer(ECHO_401) as server:
        client = openai_stream.Client(api_key=KEY, base_url=server.base_url, max_retries=0)
        with pytest.raises(openai_stream.AuthenticationError) as info:
            client.chat.completions.create(model="m", messages=[])
    assert_clean(everything, capsys, client, error=info.value)


# --- what is logged ---------------------------------------------------------------------------


def test_logging_reports_request_id_status_retries_and_waits(
    waits: list[float], everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = answer(429, {"error": {"message": "slow down"}}, {"x-request-id": "req_busy", "retry-after": "2"})
    with FaultServer([busy, OK]) as server:
        run_stream(server.base_url, max_retries=1)
    ours = [r for r in everything.records if r.name.startswith("openai_stream")]
    assert ours and all(r.levelno <= logging.INFO for r in ours)
    text = "\n".join(r.getMessage() for r in ours)
    assert "429" in text and "req_busy" in text and "2.00s" in text and "1 left" in text
    assert "200" in text and "req_ok" in text
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_connection_retries_are_logged(
    waits: list[float], everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    port = refuse_port()
    run_stream(f"http://127.0.0.1:{port}/v1", max_retries=2)
    ours = [r.getMessage() for r in everything.records if r.name == "openai_stream"]
    assert len([m for m in ours if "retrying in" in m and f"127.0.0.1:{port}" in m]) == 2
    assert capsys.readouterr().out == ""


def test_nothing_is_printed_without_logging_configured(capsys: pytest.CaptureFixture[str]) -> None:
    with FaultServer(OK) as server:
        run_stream(server.base_url)
    _client, _, _, _ = run_stream(f"http://127.0.0.1:{refuse_port()}/v1")
    out, err = capsys.readouterr()
    assert out == "" and err == ""


# --- errors that arrive with status 200 -------------------------------------------------------

ECHO = f"Incorrect API key provided: {KEY}. Find your key at ..."
ECHO_EVENT = json.dumps({"message": ECHO, "type": "authentication_error"}).encode()


@pytest.mark.parametrize(
    "handler",
    [
        script(
            head(),
            chunk(sse({"error": {"message": ECHO, "code": "invalid_api_key", "param": KEY}})),
            chunk(b""),
        ),
        script(
            head(),
            chunk(b"event: error\ndata: " + ECHO_EVENT[:40]),  # the key split across reads
            chunk(ECHO_EVENT[40:]),
            chunk(b"\n\n"),
            chunk(b""),
        ),
        answer(200, {"error": {"message": ECHO, "code": "invalid_api_key"}}),
    ],
    ids=["error-field", "error-event", "json-body"],
)
def test_error_inside_the_stream_that_echoes_the_key(
    handler: Any, everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    told: list[Any] = []
    with FaultServer(handler) as server:
        client = openai_stream.Client(api_key=KEY, base_url=server.base_url, max_retries=0, timeout=10)
        stream = client.chat.completions.stream(model="m", messages=[])
        stream.on("error", told.append)
        with pytest.raises(openai_stream.AuthenticationError) as info:
            stream.until_done()
    error = info.value
    assert "<redacted API key>" in error.message
    assert [event.error for event in told] == [error]
    texts = [repr(error.args), json.dumps(error.body), repr(error.param)]
    assert leaks(*texts) == []
    assert_clean(everything, capsys, client, stream, error=error)


@pytest.mark.parametrize(
    "body",
    [b"data: {not json " + KEY.encode() + b"\n\n", b"<html><body>key " + KEY.encode() + b"</body></html>"],
    ids=["bad-json-line", "html-page"],
)
def test_invalid_stream_data_that_quotes_the_key(
    body: bytes, everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    content_type = "text/html" if body.startswith(b"<") else "text/event-stream"
    with FaultServer(script(head(headers={"Content-Type": content_type}), chunk(body), chunk(b""))) as server:
        client, stream, _, error = run_stream(server.base_url)
    assert isinstance(error, openai_stream.InvalidStreamDataError)
    assert "<redacted API key>" in error.message
    assert leaks(repr(error.args), repr(error.body)) == []
    assert_clean(everything, capsys, client, stream, error=error)


def test_create_answer_that_is_not_json_and_quotes_the_key(
    everything: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    page = b"<html>key " + KEY.encode() + b"</html>"
    handler = raw(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
        + f"Content-Length: {len(page)}\r\n\r\n".encode()
        + page
    )
    with FaultServer(handler) as server:
        client = openai_stream.Client(api_key=KEY, base_url=server.base_url, max_retries=0)
        with pytest.raises(openai_stream.InvalidStreamDataError) as info:
            client.chat.completions.create(model="m", messages=[])
    assert "<redacted API key>" in info.value.message
    assert leaks(repr(info.value.args), repr(info.value.body)) == []
    assert_clean(everything, capsys, client, error=info.value)
