"""Transport: request shapes (with ``responses``), retries and timeouts (on real loopback sockets).

Retry waits are recorded by patching ``openai_stream.transport._http._sleep``, so no
test sleeps through a backoff.
"""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from fault_server import FaultServer, chunk, close, head, raw, read_request, refuse_port, reset, script, stall

import openai_stream
from openai_stream.transport import _http as transport
from openai_stream.transport._http import Timeout, backoff, retry_wait

BASE = "https://api.test.invalid/v1"
URL = BASE + "/chat/completions"
CHUNK = {"id": "c1", "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
SSE_OK = b"data: " + json.dumps(CHUNK).encode() + b"\n\ndata: [DONE]\n\n"
COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
}



@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def respond(status: int, body: bytes | dict[str, Any] = b"", headers: dict[str, str] | None = None) -> Any:
    """A whole HTTP response with a Content-Length, then the connection closes."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    fields = {
        "Content-Type": "application/json" if isinstance(body, dict) else "text/html",
        "Content-Length": str(len(data)),
        "Connection": "close",
        **(headers or {}),
    }
    head_text = f"HTTP/1.1 {status} Status\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return raw(head_text.encode("latin-1") + b"\r\n" + data)


def ok_stream() -> Any:
    return script(head(), chunk(SSE_OK), chunk(b""))


def client_for(server: FaultServer, **kwargs: Any) -> openai_stream.Client:
    kwargs.setdefault("timeout", 10)
    return openai_stream.Client(api_key="sk-test", base_url=server.base_url, **kwargs)


def stream_once(client: openai_stream.Client, **kwargs: Any) -> openai_stream.ChatCompletion:
    return client.chat.completions.stream(model="m", messages=[], **kwargs).until_done()


# --- request shapes ---------------------------------------------------------------------------


@responses.activate
def test_stream_request_shape() -> None:
    responses.add(responses.POST, URL, body=SSE_OK, content_type="text/event-stream")
    client = openai_stream.Client(api_key="sk-test", base_url=BASE + "/")
    completion = client.chat.completions.stream(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}]
    ).until_done()
    assert completion.choices[0].message.content == "ok"
    request = responses.calls[0].request
    assert request.url == URL and request.method == "POST"
    headers = request.headers
    assert headers["Authorization"] == "Bearer sk-test"
    assert headers["Accept"] == "text/event-stream"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == f"openai_stream/{openai_stream.__version__}"
    assert json.loads(request.body or b"") == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }


@responses.activate
def test_create_request_shape() -> None:
    responses.add(responses.POST, URL, json=COMPLETION)
    client = openai_stream.Client(api_key="sk-test", base_url=BASE)
    completion = client.chat.completions.create(model="gpt-x", messages=[])
    assert completion.choices[0].message.content == "ok"
    request = responses.calls[0].request
    assert request.headers["Accept"] == "application/json"
    assert "stream" not in json.loads(request.body or b"")


PARAMS: dict[str, Any] = {
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "n": 3,
    "stream_options": {"include_usage": True},
    "logprobs": True,
    "top_logprobs": 2,
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    "temperature": 0.2,
    "seed": 7,
    "max_tokens": None,
    "parallel_tool_calls": False,
}
EXTRAS: dict[str, Any] = {  # provider extras: in extra_body, merged into the body
    "top_k": 40,
    "repetition_penalty": 1.1,
    "provider": {"order": ["a", "b"]},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "chat_template_kwargs": {"enable_thinking": False},
}


@responses.activate
def test_every_param_passes_through_unchanged() -> None:
    responses.add(responses.POST, URL, body=SSE_OK, content_type="text/event-stream")
    responses.add(responses.POST, URL, json=COMPLETION)
    client = openai_stream.Client(api_key="sk-test", base_url=BASE)
    client.chat.completions.stream(model="m", messages=[], **PARAMS, extra_body=EXTRAS).until_done()
    client.chat.completions.create(model="m", messages=[], **PARAMS, extra_body=EXTRAS)
    streamed = json.loads(responses.calls[0].request.body or b"")
    created = json.loads(responses.calls[1].request.body or b"")
    assert streamed == {"model": "m", "messages": [], **PARAMS, **EXTRAS, "stream": True}
    assert created == {"model": "m", "messages": [], **PARAMS, **EXTRAS}


@responses.activate
def test_default_and_extra_headers() -> None:
    responses.add(responses.POST, URL, body=SSE_OK, content_type="text/event-stream")
    client = openai_stream.Client(
        api_key="sk-test",
        base_url=BASE,
        default_headers={"X-Team": "a", "User-Agent": "mine/1", "OpenAI-Organization": "org"},
    )
    client.chat.completions.stream(
        model="m", messages=[], extra_headers={"X-Team": "b", "X-Trace": "t"}
    ).until_done()
    headers = responses.calls[0].request.headers
    assert headers["X-Team"] == "b"
    assert headers["X-Trace"] == "t"
    assert headers["User-Agent"] == "mine/1"
    assert headers["OpenAI-Organization"] == "org"
    assert headers["Authorization"] == "Bearer sk-test"


@responses.activate
def test_no_key_sends_no_authorization() -> None:
    responses.add(responses.POST, URL, body=SSE_OK, content_type="text/event-stream")
    openai_stream.Client(base_url=BASE).chat.completions.stream(model="m", messages=[]).until_done()
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", BASE)
    responses.add(responses.POST, URL, body=SSE_OK, content_type="text/event-stream")
    openai_stream.Client().chat.completions.stream(model="m", messages=[]).until_done()
    assert responses.calls[0].request.headers["Authorization"] == "Bearer sk-env"


def test_default_base_url_is_openai() -> None:
    assert openai_stream.Client().base_url == "https://api.openai.com/v1"


@responses.activate
def test_one_session_per_client_is_reused() -> None:
    responses.add(responses.POST, URL, json=COMPLETION)
    client = openai_stream.Client(api_key="k", base_url=BASE)
    session = client._transport.session
    client.chat.completions.create(model="m", messages=[])
    client.chat.completions.create(model="m", messages=[])
    assert client._transport.session is session and len(responses.calls) == 2


def test_unserializable_body_is_not_retried_and_is_typed(waits: list[float]) -> None:
    client = openai_stream.Client(api_key="sk-test", base_url=f"http://127.0.0.1:{refuse_port()}/v1")
    with pytest.raises(TypeError) as info:  # refused before anything is sent, naming the parameter
        client.chat.completions.create(model="m", messages=[], temperature=float("nan"))
    assert "temperature is nan" in str(info.value)
    assert waits == []


# --- backoff and retry waits (pure functions) -------------------------------------------------


def test_backoff_doubles_from_half_a_second_to_eight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("openai_stream.transport._http.random.random", lambda: 0.0)
    assert [backoff(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_jitter_takes_off_at_most_a_quarter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("openai_stream.transport._http.random.random", lambda: 0.999999)
    assert backoff(0) == pytest.approx(0.375, rel=1e-4)
    assert backoff(10) == pytest.approx(6.0, rel=1e-4)
    monkeypatch.undo()
    for attempt in range(8):
        base = min(0.5 * 2**attempt, 8.0)
        values = {backoff(attempt) for _ in range(50)}
        assert all(0.75 * base <= v <= base for v in values)
        assert len(values) > 1  # jittered


def test_retry_wait_prefers_retry_after_ms() -> None:
    assert retry_wait({"retry-after-ms": "1500", "retry-after": "9"}, 0) == 1.5


def test_retry_wait_seconds() -> None:
    assert retry_wait({"retry-after": "2"}, 0) == 2.0
    assert retry_wait({"retry-after": "0.25"}, 0) == 0.25


def test_retry_wait_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 27 <= retry_wait({"retry-after": when}, 0) <= 31


def test_retry_wait_ignores_a_say_so_over_60_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("openai_stream.transport._http.random.random", lambda: 0.0)
    assert retry_wait({"retry-after": "61"}, 0) == 0.5
    assert retry_wait({"retry-after-ms": "600000"}, 1) == 1.0
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert retry_wait({"retry-after": when}, 2) == 2.0


@pytest.mark.parametrize("value", ["soon", "", "-5", "nan", "inf", "Mon, 99 Foo 2020"])
def test_retry_wait_falls_back_to_backoff_on_nonsense(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("openai_stream.transport._http.random.random", lambda: 0.0)
    assert retry_wait({"retry-after": value}, 3) == 4.0
    assert retry_wait({"retry-after-ms": value}, 3) == 4.0


def test_retry_wait_date_in_the_past_falls_back_to_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("openai_stream.transport._http.random.random", lambda: 0.0)
    when = email.utils.formatdate(time.time() - 3600, usegmt=True)
    assert retry_wait({"retry-after": when}, 0) == 0.5


# --- retries on a real loopback server --------------------------------------------------------

ERROR_BODY = {"error": {"message": "try again", "type": "server_error"}}


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retried_statuses(status: int, waits: list[float]) -> None:
    with FaultServer([respond(status, ERROR_BODY), respond(status, ERROR_BODY), ok_stream()]) as server:
        completion = stream_once(client_for(server, max_retries=2))
    assert completion.choices[0].message.content == "ok"
    assert server.connections == 3 and len(waits) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_not_retried_statuses(status: int, waits: list[float]) -> None:
    with (
        FaultServer([respond(status, ERROR_BODY), ok_stream()]) as server,
        pytest.raises(openai_stream.APIStatusError) as info,
    ):
        stream_once(client_for(server, max_retries=2))
    assert info.value.status_code == status
    assert server.connections == 1 and waits == []


def test_x_should_retry_true_wins(waits: list[float]) -> None:
    with FaultServer([respond(400, ERROR_BODY, {"x-should-retry": "true"}), ok_stream()]) as server:
        stream_once(client_for(server))
    assert server.connections == 2 and len(waits) == 1


def test_x_should_retry_false_wins(waits: list[float]) -> None:
    with (
        FaultServer([respond(503, ERROR_BODY, {"x-should-retry": "false"}), ok_stream()]) as server,
        pytest.raises(openai_stream.InternalServerError),
    ):
        stream_once(client_for(server))
    assert server.connections == 1 and waits == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after-ms": "1234"}, 1.234), ({"retry-after": "3"}, 3.0), ({"retry-after": "0"}, 0.0)],
)
def test_server_say_so_is_honoured(headers: dict[str, str], expected: float, waits: list[float]) -> None:
    with FaultServer([respond(429, ERROR_BODY, headers), ok_stream()]) as server:
        stream_once(client_for(server))
    assert waits == [expected]


def test_retry_after_http_date_is_honoured(waits: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    with FaultServer([respond(503, ERROR_BODY, {"retry-after": when}), ok_stream()]) as server:
        stream_once(client_for(server))
    assert len(waits) == 1 and 17 <= waits[0] <= 21


def test_say_so_over_60_seconds_falls_back_to_backoff(waits: list[float]) -> None:
    with FaultServer([respond(429, ERROR_BODY, {"retry-after": "3600"}), ok_stream()]) as server:
        stream_once(client_for(server))
    assert len(waits) == 1 and 0.375 <= waits[0] <= 0.5


def test_backoff_sequence_between_attempts(waits: list[float]) -> None:
    with FaultServer(respond(500, ERROR_BODY)) as server, pytest.raises(openai_stream.InternalServerError):
        stream_once(client_for(server, max_retries=6))
    assert server.connections == 7
    for attempt, wait in enumerate(waits):
        base = min(0.5 * 2**attempt, 8.0)
        assert 0.75 * base <= wait <= base


def test_max_retries_per_client(waits: list[float]) -> None:
    with FaultServer(respond(503, ERROR_BODY)) as server, pytest.raises(openai_stream.InternalServerError):
        stream_once(client_for(server, max_retries=3))
    assert server.connections == 4 and len(waits) == 3


def test_max_retries_per_request_overrides_the_client(waits: list[float]) -> None:
    with FaultServer(respond(503, ERROR_BODY)) as server:
        client = client_for(server, max_retries=3)
        with pytest.raises(openai_stream.InternalServerError):
            stream_once(client, max_retries=0)
        assert server.connections == 1
        with pytest.raises(openai_stream.InternalServerError):
            client.chat.completions.create(model="m", messages=[], max_retries=1)
        assert server.connections == 3


def test_connection_refused_is_retried(waits: list[float]) -> None:
    client = openai_stream.Client(api_key="k", base_url=f"http://127.0.0.1:{refuse_port()}/v1", max_retries=2)
    with pytest.raises(openai_stream.APIConnectionError) as info:
        stream_once(client)
    assert type(info.value) is openai_stream.APIConnectionError
    assert len(waits) == 2


def test_connection_refused_then_success(waits: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    with FaultServer(ok_stream()) as server:
        real_post = requests.Session.post
        calls = []

        def flaky(self: requests.Session, url: str, **kwargs: Any) -> requests.Response:
            calls.append(url)
            if len(calls) == 1:  # the first attempt goes to a closed port
                url = url.replace(str(server.port), str(refuse_port()))
            return real_post(self, url, **kwargs)

        monkeypatch.setattr(requests.Session, "post", flaky)
        completion = stream_once(client_for(server))
    assert completion.choices[0].message.content == "ok"
    assert len(calls) == 2 and len(waits) == 1


def test_no_retry_once_the_body_started(waits: list[float]) -> None:
    body_start = (
        b"data: " + json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}}]}).encode()
    )
    with (
        FaultServer([script(head(), chunk(body_start + b"\n\n"), reset()), ok_stream()]) as server,
        pytest.raises(openai_stream.StreamInterruptedError),
    ):
        stream_once(client_for(server, max_retries=5))
    assert server.connections == 1 and waits == []


def test_retries_are_logged(waits: list[float], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="openai_stream")
    with FaultServer(
        [respond(503, ERROR_BODY, {"x-request-id": "req_a", "retry-after": "1"}), ok_stream()]
    ) as server:
        stream_once(client_for(server))
    messages = [r.getMessage() for r in caplog.records if r.name == "openai_stream"]
    assert any("503" in m and "req_a" in m and "retrying in 1.00s" in m for m in messages)
    assert any("-> 200" in m for m in messages)


# --- timeouts ----------------------------------------------------------------------------------


def test_timeout_forms() -> None:
    assert Timeout(5).as_requests() == (5, 5)
    assert Timeout(connect=1.0, read=2.0).as_requests() == (1.0, 2.0)
    assert Timeout(3, read=9).as_requests() == (3, 9)
    assert transport.as_timeout(2.5) == Timeout(2.5)
    assert transport.as_timeout(None).as_requests() == (None, None)
    assert openai_stream.Client(base_url=BASE, timeout=4).timeout == Timeout(4)
    assert openai_stream.Client(base_url=BASE).timeout == Timeout(connect=5.0, read=600.0)
    assert repr(Timeout(connect=1, read=2)) == "Timeout(connect=1, read=2)"


def _stall_mid_body() -> Any:
    first = b"data: " + json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}}]}).encode()
    return script(head(), chunk(first + b"\n\n"), stall(30))


@pytest.mark.parametrize(
    "where", ["client-timeout-object", "client-float", "request-timeout-object", "request-float"]
)
def test_read_timeout_mid_body(where: str, waits: list[float]) -> None:
    limit = 0.5
    client_timeout: Any = 10
    request_timeout: Any = None
    if where == "client-timeout-object":
        client_timeout = Timeout(connect=5, read=limit)
    elif where == "client-float":
        client_timeout = limit
    elif where == "request-timeout-object":
        request_timeout = Timeout(connect=5, read=limit)
    else:
        request_timeout = limit
    with FaultServer(_stall_mid_body()) as server:
        client = client_for(server, timeout=client_timeout)
        started = time.monotonic()
        with pytest.raises(openai_stream.APITimeoutError) as info:
            stream_once(client, timeout=request_timeout)
        elapsed = time.monotonic() - started
    assert elapsed < limit + 5  # did not hang until the server's 30 s stall ended
    assert "read timeout" in str(info.value)
    assert info.value.completion is not None
    assert info.value.completion.choices[0].message.content == "x"
    assert server.connections == 1 and waits == []


def test_read_timeout_before_headers_is_retried(waits: list[float]) -> None:
    with FaultServer([stall(30), ok_stream()]) as server:
        completion = stream_once(client_for(server, timeout=Timeout(connect=5, read=0.3)))
    assert completion.choices[0].message.content == "ok"
    assert len(waits) == 1


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: connecting to it times out (SYNs are dropped)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.2)
    try:
        try:
            probe.connect(("127.0.0.1", port))
        except OSError:
            pass
        else:
            pytest.skip("this kernel does not drop connections to a full accept queue")
        yield port
    finally:
        probe.close()
        filler.close()
        listener.close()


def test_connect_timeout_is_retried_then_raised(full_backlog: int, waits: list[float]) -> None:
    client = openai_stream.Client(
        api_key="k",
        base_url=f"http://127.0.0.1:{full_backlog}/v1",
        timeout=Timeout(connect=0.2, read=10),
        max_retries=2,
    )
    started = time.monotonic()
    with pytest.raises(openai_stream.APITimeoutError) as info:
        stream_once(client)
    assert time.monotonic() - started < 10  # did not hang
    assert f"127.0.0.1:{full_backlog}" in str(info.value)
    assert len(waits) == 2


# --- bodies with a Content-Length ---------------------------------------------------------------

FINISHED = b"data: " + json.dumps(CHUNK).encode() + b"\n\n"
USAGE = {"id": "c1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
WITH_USAGE = FINISHED + b"data: " + json.dumps(USAGE).encode() + b"\n\ndata: [DONE]\n\n"


def sized_head(length: int, close_after: bool) -> bytes:
    connection = "Connection: close\r\n" if close_after else ""
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {length}\r\n{connection}\r\n"
    ).encode()


def test_a_body_shorter_than_its_content_length_is_an_interrupted_stream() -> None:
    # The choice finished, but the usage chunk and [DONE] promised by the length never came.
    cut = raw(sized_head(len(WITH_USAGE), close_after=True) + FINISHED)
    server = FaultServer(script(cut, close())).start()
    try:
        with pytest.raises(openai_stream.StreamInterruptedError) as info:
            stream_once(client_for(server, max_retries=0))
    finally:
        server.close()
    assert info.value.completion is not None
    assert info.value.completion.choices[0].message.content == "ok"


def test_a_body_read_to_its_content_length_returns_its_connection_to_the_pool() -> None:
    response = sized_head(len(WITH_USAGE), close_after=False) + WITH_USAGE

    def keep_alive(conn: socket.socket, request: bytes) -> None:
        conn.sendall(response)
        for _ in range(2):
            if not read_request(conn):
                return
            conn.sendall(response)

    with FaultServer(keep_alive) as server:
        client = client_for(server, max_retries=0)
        for _ in range(3):
            usage = stream_once(client).usage
            assert usage is not None and usage.total_tokens == 2
        client.close()
    assert server.connections == 1
