"""What README.rst states about the project, checked against the project.

The number of recorded streams and providers is counted in the folder the
transcripts are read from, so the README cannot drift from it; the
quickstart's structured-output-and-Azure example is run against a loopback
server standing in for Azure.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from typing import Any, Dict, List

import pytest
from conftest import EXPECTED_RESPONSES, RESPONSES_FIXTURES, ROOT, SHARED_MISSING, SHARED_SSE

from openai_stream.testing import ReplayServer, ScriptedResponse

README = (ROOT / "README.rst").read_text(encoding="utf-8")


@pytest.mark.skipif(not SHARED_SSE.is_dir(), reason=SHARED_MISSING)
def test_the_count_of_recorded_streams_is_the_folders() -> None:
    recorded = [p.name for p in SHARED_SSE.glob("*.sse") if not p.name.startswith("documented-")]
    providers = {name.split("-", 1)[0] for name in recorded}
    claims = re.findall(r"(\d+) real (?:recorded )?streams\s+from (\d+) providers", README)
    assert claims, "the README no longer states the count"
    for streams, named in claims:
        assert (int(streams), int(named)) == (len(recorded), len(providers))


def test_the_install_section_names_the_distribution_and_jiter() -> None:
    install = README.split("Install\n=======", 1)[1].split("Quickstart\n", 1)[0]
    (line,) = [line for line in install.splitlines() if line.strip().startswith("pip install -e . ")]
    assert "jiter" in line
    assert "pip install 'openai-stream-events[pydantic]'" in install and "editable_mode=strict" in install


def _quickstart_blocks() -> List[str]:
    quickstart = README.split("Quickstart\n==========", 1)[1].split("\nComing from openai-python\n", 1)[0]
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", quickstart)
    return ["\n".join(line[4:] for line in block.splitlines()) for block in blocks]


def test_the_quickstart_shows_a_model_as_response_format_and_azure_and_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("pydantic")
    (block,) = [b for b in _quickstart_blocks() if "AzureClient(" in b]
    assert "response_format=City" in block and "class City(BaseModel)" in block
    city = {"name": "Tokyo", "country": "Japan", "population": 37_000_000}
    text = json.dumps(city)
    chunks: List[Dict[str, Any]] = [
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
         "choices": [{"index": 0, "delta": {"content": text[i : i + 9]}, "finish_reason": None}]}
        for i in range(0, len(text), 9)
    ]
    chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-readme-key")
    with ReplayServer([ScriptedResponse.from_chunks(chunks)]) as server:
        endpoint = f"http://127.0.0.1:{server.port}"
        assert block.count("https://NAME.openai.azure.com") == 1
        namespace: Dict[str, Any] = {}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile("import openai_stream\n" + block.replace("https://NAME.openai.azure.com", endpoint),
                         "README.rst", "exec"), namespace)
        (request,) = server.requests
    assert namespace["city"] == namespace["City"](**city)
    assert request.path == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == "azure-readme-key"
    assert printed.getvalue().splitlines()[-1] == repr(city)


def test_the_section_for_openai_python_users_is_there() -> None:
    section = README.split("\nComing from openai-python\n", 1)[1].split("\nEvents\n", 1)[0]
    assert "import openai_stream as openai" in section and "tests/project/test_porting.py" in section
    assert "What differs on purpose" in section


def _first_section() -> str:
    return README.split("\nTwo commands\n", 1)[0]


def test_the_first_section_runs_one_handler_on_a_chat_and_a_responses_stream() -> None:
    (block,) = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", _first_section())
    code = "\n".join(line[4:] for line in block.splitlines())
    assert code.count('"content.delta"') == 2 and "client.responses.stream(" in code
    chat = [
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]},
        {"id": "c", "choices": [{"index": 0, "delta": {"content": " chat"}, "finish_reason": "stop"}]},
    ]
    responses = (RESPONSES_FIXTURES / "openai-text.sse").read_bytes()
    expected = json.loads((EXPECTED_RESPONSES / "openai-text.json").read_text("utf-8"))
    from openai_stream.testing import split_sse_events

    scripted = [ScriptedResponse.from_chunks(chat), ScriptedResponse(events=split_sse_events(responses))]
    with ReplayServer(scripted) as server:
        code = code.replace("openai_stream.Client()", f"openai_stream.Client(base_url={server.base_url!r}, "
                            "api_key='sk-readme')")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.rst", "exec"), {})
        paths = [r.path for r in server.requests]
    assert paths == ["/v1/chat/completions", "/v1/responses"]
    text = expected["output_text"]
    usage = expected["response"]["usage"]["total_tokens"]
    assert printed.getvalue() == f"Hello chat{text}{text} {usage}\n"


def test_the_event_mapping_table_names_real_events() -> None:
    from openai_stream.responses._events import RESPONSE_EVENT_TYPES, SERVER_EVENT_TYPES

    table = _first_section().split("server event (``/responses``)", 1)[1]
    names = set(re.findall(r"``([a-z_.]+)``", table))
    server = {name for name in names if name.startswith("response.")}
    assert len(server) >= 15 and server <= set(SERVER_EVENT_TYPES)
    high = {"content.delta", "content.done", "refusal.delta", "reasoning.delta", "tool_call.delta",
            "tool_call.done", "usage", "done", "completion", "error", "response"}
    assert high <= names and high <= set(RESPONSE_EVENT_TYPES)
