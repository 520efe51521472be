"""Streams through an HTTP forward proxy (``HTTP_PROXY``/``HTTPS_PROXY``, ``NO_PROXY``) on loopback.

Plain HTTP goes as absolute-form requests through the proxy; HTTPS goes through
a ``CONNECT`` tunnel to a TLS server whose certificate comes from the test CA
in ``tests/fixtures/tls``. Events are held back by the server until the
client's handler saw the one before, so a proxy that buffered would hang the
test instead of passing it.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
from typing import Any

import pytest
from conftest import TLS
from fault_server import FaultServer, chunk, dripping, head, refuse_port, script, stall
from proxy_server import ForwardProxy

import openai_stream

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def event(content: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    return b"data: " + json.dumps({"id": "c1", "choices": [choice]}).encode() + b"\n\n"


PIECES = [event("one "), event("two "), event("three", "stop"), b"data: [DONE]\n\n"]


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "server.pem")
    return context


def held_stream(hold: threading.Event) -> Any:
    return script(head(), dripping(PIECES, hold=hold), chunk(b""))


def stream_with_hold(client: openai_stream.Client, hold: threading.Event) -> tuple[str, list[str]]:
    seen: list[str] = []
    stream = client.chat.completions.stream(model="m", messages=[])

    @stream.on("content.delta")
    def release(e: Any) -> None:
        seen.append(e.delta)
        hold.set()  # the server writes the next event only now

    completion = stream.until_done()
    return completion.choices[0].message.content or "", seen


def test_a_stream_passes_through_an_http_proxy_event_by_event(monkeypatch: pytest.MonkeyPatch) -> None:
    hold = threading.Event()
    with FaultServer(held_stream(hold)) as server, ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
        content, seen = stream_with_hold(client, hold)
        client.close()
    assert content == "one two three" and seen == ["one ", "two ", "three"]
    assert proxy.request_lines == [f"POST {server.base_url}/chat/completions HTTP/1.1"]
    assert server.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"authorization: bearer sk-test" in server.requests[0].lower()
    assert proxy.errors == [] and server.errors == []


def test_https_goes_through_a_connect_tunnel_event_by_event(monkeypatch: pytest.MonkeyPatch) -> None:
    hold = threading.Event()
    with FaultServer(held_stream(hold), tls=tls_context()) as server, ForwardProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(TLS / "ca.pem"))
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
        content, seen = stream_with_hold(client, hold)
        client.close()
    assert content == "one two three" and seen == ["one ", "two ", "three"]
    assert len(proxy.request_lines) == 1  # http.client tunnels with HTTP/1.0 or 1.1, by version
    assert proxy.request_lines[0].startswith(f"CONNECT 127.0.0.1:{server.port} HTTP/1.")
    assert server.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert proxy.errors == [] and server.errors == []


def test_no_proxy_sends_the_request_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    hold = threading.Event()
    with FaultServer(held_stream(hold)) as server, ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
        content, _ = stream_with_hold(client, hold)
        client.close()
    assert content == "one two three"
    assert proxy.connections == 0 and server.connections == 1


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_close_stops_a_stream_through_the_proxy(scheme: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = tls_context() if scheme == "https" else None
    answer = script(head(), chunk(event("partial ")), stall(30))
    with FaultServer(answer, tls=tls) as server, ForwardProxy() as proxy:
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxy.url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(TLS / "ca.pem"))
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
        stream = client.chat.completions.stream(model="m", messages=[])
        first = threading.Event()
        stream.on("content.delta", lambda e: first.set())
        stream.start()
        assert first.wait(10)
        stream.close()
        with pytest.raises(openai_stream.APIUserAbortError) as info:
            stream.until_done(timeout=5)
        assert proxy.client_closed.wait(5)  # the proxy saw the client's connection end
        client.close()
    assert info.value.completion is not None
    assert info.value.completion.choices[0].message.content == "partial "
    assert len(proxy.request_lines) == 1


def test_an_unreachable_proxy_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{refuse_port()}")
    client = openai_stream.Client(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(openai_stream.APIConnectionError) as info:
        client.chat.completions.stream(model="m", messages=[]).until_done()
    message = str(info.value)
    assert "proxy" in message and "HTTPS_PROXY / HTTP_PROXY" in message and "sk-test" not in message


def whole_stream() -> Any:
    return script(head(), chunk(b"".join(PIECES)), chunk(b""))


def test_a_change_of_the_proxy_variables_applies_to_the_next_request_of_the_same_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests reads the environment for every request; the client remembers what it read only
    # while os.environ stays the same.
    with FaultServer(whole_stream()) as server, ForwardProxy() as proxy:
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0)

        def content() -> str:
            completion = client.chat.completions.stream(model="m", messages=[]).until_done()
            return completion.choices[0].message.content or ""

        assert content() == "one two three"  # no proxy set: direct
        assert (proxy.connections, server.connections) == (0, 1)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert content() == "one two three"
        assert (len(proxy.request_lines), server.connections) == (1, 2)  # through the proxy
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert content() == "one two three"
        assert (len(proxy.request_lines), server.connections) == (1, 3)  # direct again
        monkeypatch.delenv("NO_PROXY")
        assert content() == "one two three"
        assert (len(proxy.request_lines), server.connections) == (2, 4)
        monkeypatch.delenv("HTTP_PROXY")
        assert content() == "one two three"
        assert (len(proxy.request_lines), server.connections) == (2, 5)
        client.close()
    assert proxy.errors == [] and server.errors == []


def test_the_environment_is_read_again_only_when_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests.sessions

    reads: list[str] = []
    original = requests.sessions.get_environ_proxies

    def counted(url: str, no_proxy: Any = None) -> Any:
        reads.append(url)
        return original(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    with FaultServer(whole_stream()) as server:
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0)
        for _ in range(3):
            client.chat.completions.stream(model="m", messages=[]).until_done()
        assert len(reads) == 1
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(TLS / "ca.pem"))  # any change: read again
        for _ in range(2):
            client.chat.completions.stream(model="m", messages=[]).until_done()
        assert len(reads) == 2
        client.close()


def test_a_no_proxy_set_for_a_moment_by_another_thread_is_not_remembered_once_it_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests' own set_environ puts no_proxy into os.environ for one proxy lookup whenever a request
    # anywhere in the process passes proxies={"no_proxy": ...}. A request of ours gathering the
    # environment meanwhile goes direct, as requests' own would; once the variable is gone, the next
    # request goes through the proxy again (a memo filed under the environment as it was before
    # that moment would send every later request direct).
    import requests.sessions
    import requests.utils

    holding, release = threading.Event(), threading.Event()
    set_environ: Any = requests.utils.set_environ  # typed by requests for None alone

    def other_request() -> None:
        with set_environ("no_proxy", "127.0.0.1"):
            holding.set()
            release.wait(10)

    other = threading.Thread(target=other_request)
    original = requests.sessions.get_environ_proxies

    def gathered(url: str, no_proxy: Any = None) -> Any:
        if not holding.is_set():  # the first gathering happens during the other thread's moment
            other.start()
            assert holding.wait(10)
        return original(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", gathered)
    with FaultServer(whole_stream()) as server, ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client = openai_stream.Client(api_key="sk-test", base_url=server.base_url, max_retries=0)

        def content() -> str:
            completion = client.chat.completions.stream(model="m", messages=[]).until_done()
            return completion.choices[0].message.content or ""

        try:
            assert content() == "one two three"
            assert (len(proxy.request_lines), server.connections) == (0, 1)  # direct, during the moment
        finally:
            release.set()
            other.join(10)
        assert "no_proxy" not in os.environ and "NO_PROXY" not in os.environ
        for sent in (1, 2):
            assert content() == "one two three"
            assert (len(proxy.request_lines), server.connections) == (sent, 1 + sent)  # through the proxy
        client.close()
    assert proxy.errors == [] and server.errors == []
