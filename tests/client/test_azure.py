"""AzureClient against a loopback ReplayServer: the exact method, path, query and headers Azure expects.

The expected requests are written from Azure OpenAI's REST reference:
``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``
with an ``api-key`` header or ``Authorization: Bearer <Entra ID token>``; the
v1 API at ``{endpoint}/openai/v1/chat/completions`` without a version. The
recorded Azure transcripts (``../shared/fixtures/sse/azure-*.sse``, read in
place) are replayed through an AzureClient and checked against the same
expectations as every other fixture (``tests/expected``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, List
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import EXPECTED, SHARED_MISSING, SHARED_SSE, facts

import openai_stream
from openai_stream.testing import ReplayServer, ScriptedResponse

AZURE_TRANSCRIPTS = sorted(SHARED_SSE.glob("azure-*.sse")) if SHARED_SSE.is_dir() else []
USER = [{"role": "user", "content": "hi"}]
CHUNKS = [
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]},
]
AZURE_ENV = (
    "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION",
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
)
DEPLOYED = "/openai/deployments/gpt-4o/chat/completions"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def server() -> Iterator[ReplayServer]:
    with ReplayServer([ScriptedResponse.from_chunks(CHUNKS)]) as running:
        yield running


def endpoint(server: ReplayServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def split(path: str) -> tuple[str, List[tuple[str, str]]]:
    parts = urlsplit(path)
    return parts.path, parse_qsl(parts.query, keep_blank_values=True)


def test_api_key_deployment_from_model_and_api_version(server: ReplayServer) -> None:
    client = openai_stream.AzureClient(
        azure_endpoint=endpoint(server) + "/", api_version="2024-10-21", api_key="azure-key-123"
    )
    completion = client.chat.completions.stream(model="gpt-4o", messages=USER).until_done()
    assert completion.choices[0].message.content == "ok"
    (request,) = server.requests
    assert request.method == "POST"
    assert split(request.path) == (DEPLOYED, [("api-version", "2024-10-21")])
    assert request.headers["api-key"] == "azure-key-123"
    assert "Authorization" not in request.headers
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "text/event-stream"
    assert request.json == {"model": "gpt-4o", "messages": USER, "stream": True}


def test_environment_variables_and_create(server: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server._queue[0] = ScriptedResponse.json({"id": "x", "object": "chat.completion", "created": 1,
                                              "model": "m", "choices": []})
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", endpoint(server))
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-01-01-preview")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-must-not-leak")
    client = openai_stream.AzureClient()
    client.chat.completions.create(model="my deployment/x", messages=USER, extra_query={"trace": "1"})
    (request,) = server.requests
    path, query = split(request.path)
    assert path == "/openai/deployments/my%20deployment%2Fx/chat/completions"
    assert query == [("api-version", "2025-01-01-preview"), ("trace", "1")]
    assert request.headers["api-key"] == "env-key"
    assert "sk-openai-must-not-leak" not in json.dumps(dict(request.headers))
    assert request.headers["Accept"] == "application/json"


def test_azure_deployment_keeps_the_model_in_the_body(server: ReplayServer) -> None:
    client = openai_stream.AzureClient(
        azure_endpoint=endpoint(server), api_version="2024-10-21", azure_deployment="prod-4o", api_key="k1234"
    )
    client.chat.completions.stream(model="gpt-4o-mini", messages=USER).until_done()
    (request,) = server.requests
    assert split(request.path) == (
        "/openai/deployments/prod-4o/chat/completions", [("api-version", "2024-10-21")]
    )
    assert request.json["model"] == "gpt-4o-mini"


def test_a_token_provider_is_called_for_every_request(server: ReplayServer) -> None:
    tokens = iter(["tok-1", "tok-2", "tok-3"])
    calls: List[str] = []

    def provider() -> str:
        token = next(tokens)
        calls.append(token)
        return token

    client = openai_stream.AzureClient(
        azure_endpoint=endpoint(server), api_version="2024-10-21", azure_ad_token_provider=provider
    )
    for _ in range(3):
        client.chat.completions.stream(model="gpt-4o", messages=USER).until_done()
    assert calls == ["tok-1", "tok-2", "tok-3"]
    sent = [r.headers["Authorization"] for r in server.requests]
    assert sent == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-3"]
    assert all("api-key" not in r.headers for r in server.requests)


def test_a_static_token_and_the_token_variable(server: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    openai_stream.AzureClient(
        azure_endpoint=endpoint(server), api_version="v", azure_ad_token="static-token"
    ).chat.completions.stream(model="d", messages=USER).until_done()
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "env-token")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key")  # the token variable wins, as in openai-python
    openai_stream.AzureClient(azure_endpoint=endpoint(server), api_version="v").chat.completions.stream(
        model="d", messages=USER
    ).until_done()
    sent = [r.headers["Authorization"] for r in server.requests]
    assert sent == ["Bearer static-token", "Bearer env-token"]


def test_a_provider_that_returns_no_token_is_a_clear_error(server: ReplayServer) -> None:
    client = openai_stream.AzureClient(
        azure_endpoint=endpoint(server), api_version="v", azure_ad_token_provider=lambda: ""
    )
    with pytest.raises(openai_stream.OpenAIError, match="azure_ad_token_provider returned"):
        client.chat.completions.stream(model="d", messages=USER).until_done()
    assert server.requests == []


def test_the_v1_path_style(server: ReplayServer) -> None:
    for client in (
        openai_stream.AzureClient(azure_endpoint=endpoint(server), api_version="v1", api_key="key-v1"),
        openai_stream.AzureClient(azure_endpoint=endpoint(server) + "/openai/v1/", api_key="key-v1"),
        openai_stream.AzureClient(
            azure_endpoint=endpoint(server) + "/openai/v1", api_version="preview", api_key="key-v1"
        ),
    ):
        client.chat.completions.stream(model="gpt-4o", messages=USER).until_done()
    paths = [split(r.path) for r in server.requests]
    assert paths == [
        ("/openai/v1/chat/completions", []),
        ("/openai/v1/chat/completions", []),
        ("/openai/v1/chat/completions", [("api-version", "preview")]),
    ]
    assert all(r.headers["api-key"] == "key-v1" and r.json["model"] == "gpt-4o" for r in server.requests)


def test_non_deployment_paths_go_under_openai(server: ReplayServer) -> None:
    client = openai_stream.AzureClient(
        azure_endpoint=endpoint(server), api_version="2025-04-01-preview", azure_deployment="dep",
        api_key="k1234",
    )
    assert client._route("responses", {"model": "m"}) == f"{endpoint(server)}/openai/responses"
    assert client._route("chat/completions", {"model": "m"}) == "chat/completions"
    body = {"model": "m", "input": "x"}
    client._transport.post(client._route("responses", body), body, stream=True).close()
    assert split(server.requests[0].path) == ("/openai/responses", [("api-version", "2025-04-01-preview")])
    plain = openai_stream.AzureClient(azure_endpoint=endpoint(server), api_version="v", api_key="k1234")
    assert plain._route("responses", {"model": "m"}) == "responses"
    assert plain.base_url == f"{endpoint(server)}/openai"


def test_missing_settings_are_clear_errors() -> None:
    with pytest.raises(openai_stream.OpenAIError, match="no Azure credential"):
        openai_stream.AzureClient(azure_endpoint="https://x.openai.azure.com", api_version="v")
    with pytest.raises(openai_stream.OpenAIError, match="no Azure endpoint"):
        openai_stream.AzureClient(api_version="v", api_key="k")
    with pytest.raises(openai_stream.OpenAIError, match="no API version"):
        openai_stream.AzureClient(azure_endpoint="https://x.openai.azure.com", api_key="k")
    with pytest.raises(ValueError, match="one credential"):
        openai_stream.AzureClient(
            azure_endpoint="https://x", api_version="v", api_key="k", azure_ad_token="t"
        )
    with pytest.raises(ValueError, match="v1 API"):
        openai_stream.AzureClient(
            azure_endpoint="https://x", api_version="v1", api_key="k", azure_deployment="d"
        )


def test_with_options_switches_credentials_and_version_over_the_same_pool(server: ReplayServer) -> None:
    client = openai_stream.AzureClient(
        azure_endpoint=endpoint(server), api_version="2024-10-21", api_key="k1234"
    )
    other = client.with_options(azure_ad_token="tok", api_version="2025-01-01")
    assert isinstance(other, openai_stream.AzureClient)
    client.chat.completions.stream(model="d", messages=USER).until_done()
    other.chat.completions.stream(model="d", messages=USER).until_done()
    first, second = server.requests
    assert first.headers["api-key"] == "k1234" and "Authorization" not in first.headers
    assert second.headers["Authorization"] == "Bearer tok" and "api-key" not in second.headers
    assert split(second.path)[1] == [("api-version", "2025-01-01")]
    assert server.connections == 1


def test_organization_and_project_headers_as_openai_pythons_azure_client_sends_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # openai-python's AzureOpenAI takes organization and project (OPENAI_ORG_ID, OPENAI_PROJECT_ID)
    # and sends them as OpenAI-Organization and OpenAI-Project.
    answers = [ScriptedResponse.from_chunks(CHUNKS) for _ in range(5)]
    with ReplayServer(answers) as server:
        client = openai_stream.AzureClient(
            azure_endpoint=endpoint(server), api_version="2024-10-21", api_key="k1234",
            organization="org-az", project="proj-az",
        )
        assert (client.organization, client.project) == ("org-az", "proj-az")
        copy = client.with_options(max_retries=0, default_headers={"X-Extra": "1"})
        moved = client.with_options(project="proj-2")
        monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
        monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
        from_env = openai_stream.AzureClient(
            azure_endpoint=endpoint(server), api_version="2024-10-21", api_key="k1234"
        )
        monkeypatch.delenv("OPENAI_ORG_ID")
        monkeypatch.delenv("OPENAI_PROJECT_ID")
        bare = openai_stream.AzureClient(
            azure_endpoint=endpoint(server), api_version="2024-10-21", api_key="k"
        )
        for each in (client, copy, moved, from_env, bare):
            each.chat.completions.stream(model="gpt-4o", messages=USER).until_done()
    sent = [(r.headers.get("OpenAI-Organization"), r.headers.get("OpenAI-Project")) for r in server.requests]
    assert sent == [
        ("org-az", "proj-az"),
        ("org-az", "proj-az"),
        ("org-az", "proj-2"),
        ("org-env", "proj-env"),
        (None, None),
    ]
    assert server.requests[1].headers["X-Extra"] == "1"
    assert all(split(r.path) == (DEPLOYED, [("api-version", "2024-10-21")]) for r in server.requests)
    assert server.requests[0].headers["api-key"] == "k1234"


def test_the_key_and_tokens_are_redacted_from_errors() -> None:
    echo = {"error": {"message": "bad key azure-secret-key and token Bearer tok-secret-1", "type": "x"}}
    with ReplayServer([ScriptedResponse.json(echo, status=400)]) as server:
        for client in (
            openai_stream.AzureClient(
                azure_endpoint=endpoint(server), api_version="v", api_key="azure-secret-key"
            ),
            openai_stream.AzureClient(
                azure_endpoint=endpoint(server), api_version="v",
                azure_ad_token_provider=lambda: "tok-secret-1",
            ),
        ):
            with pytest.raises(openai_stream.BadRequestError) as info:
                client.chat.completions.stream(model="d", messages=USER).until_done()
            text = f"{info.value} {info.value!r} {info.value.body}"
            assert "<redacted API key>" in text
            secret = "azure-secret-key" if client._api_key else "tok-secret-1"
            assert secret not in text


@pytest.mark.skipif(not AZURE_TRANSCRIPTS, reason=SHARED_MISSING)
@pytest.mark.parametrize("path", AZURE_TRANSCRIPTS, ids=lambda p: p.stem)
def test_recorded_azure_transcripts_replay_through_an_azure_client(path: Path) -> None:
    expected = json.loads((EXPECTED / f"{path.stem}.json").read_text(encoding="utf-8"))
    with ReplayServer([ScriptedResponse.sse_file(path)]) as server:
        client = openai_stream.AzureClient(
            azure_endpoint=endpoint(server), api_version="2024-10-21", api_key="azure-key", max_retries=0
        )
        stream = client.chat.completions.stream(model="gpt-4o", messages=USER)
        outcome: Any
        if expected["outcome"]["kind"] == "ok":
            outcome = stream.until_done()
        else:
            with pytest.raises(openai_stream.APIError) as info:
                stream.until_done()
            outcome = info.value.completion
        assert facts(outcome) == expected["completion"]
        (request,) = server.requests
        assert split(request.path) == (DEPLOYED, [("api-version", "2024-10-21")])
        assert request.headers["api-key"] == "azure-key"
