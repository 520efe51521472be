"""Helpers and fixtures shared by the test modules, and where the recorded transcripts are.

The tests live in one folder per layer of the package (``transport/``,
``engine/``, ``chat/``, ``responses/``, ``tools/``, ``client/``,
``observability/``, ``tooling/``, ``project/``); what they share stays here at
the top, with the loopback servers (``fault_server.py``, ``proxy_server.py``)
and the data folders. The folders have no ``__init__.py``: plain ``pytest`` and
``python -m pytest`` both put this directory on ``sys.path`` to import this
file, so a test module in any folder imports the helpers with ``from conftest
import ...`` (and the servers with ``from fault_server import ...``); the
fixtures here are found by pytest itself. Test file names stay unique across
the folders, as each is imported as a top-level module.

Transcripts gathered from other projects' public test suites are read in
place from ``../shared/fixtures/sse`` (beside the clone, as in CI) and never
copied into this repository. What the project recorded itself (from the
local llama.cpp server) or wrote from documented shapes lives in
``tests/fixtures/sse``. :data:`SSE` (also :data:`SSE_FIXTURES`) looks a name up
in both; a test that needs a shared transcript skips, saying why, where
``../shared`` is absent (a user's fresh clone). ``OPENAI_STREAM_SHARED`` points
at another copy.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from openai_stream import ChatCompletionAccumulator, OpenAIError, StreamInterruptedError, local
from openai_stream.transport import _http as transport
from openai_stream.transport._body import BodyReader

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
ROOT = REPO
SHARED = Path(os.environ.get("OPENAI_STREAM_SHARED") or REPO.parent / "shared")
"""Data from other projects, read in place (``../shared`` beside the clone, as in CI)."""
SHARED_SSE = SHARED / "fixtures" / "sse"
PEER_CASES = SHARED / "peer-cases"
SHARED_PEER_CASES = PEER_CASES
OWN_SSE = TESTS / "fixtures" / "sse"
"""The project's own chat transcripts and their ``SOURCES.md``."""
EXPECTED = TESTS / "expected"
"""The chat oracle's expectations, one ``<transcript>.json`` each (``make_expected.py``)."""
RESPONSES_FIXTURES = TESTS / "fixtures" / "responses"
"""The Responses API transcripts (all the project's own) and their ``SOURCES.md``."""
EXPECTED_RESPONSES = TESTS / "expected_responses"
"""The Responses API oracle's expectations (``make_expected_responses.py``)."""
RESPONSES_NAMES = sorted(p.stem for p in RESPONSES_FIXTURES.glob("*.sse"))
"""The Responses API transcripts' names (without ``.sse``)."""
RESPONSES_HIGH_LEVEL = (
    "content.delta",
    "content.done",
    "refusal.delta",
    "refusal.done",
    "reasoning.delta",
    "reasoning.done",
    "tool_call.delta",
    "tool_call.done",
    "usage",
    "done",
    "completion",
    "error",
)
"""The chat-compatible events a Responses stream emits beside the server's own."""


def expected_response(name: str) -> Dict[str, Any]:
    """The Responses oracle's expectation for transcript ``name``."""
    data: Dict[str, Any] = json.loads((EXPECTED_RESPONSES / f"{name}.json").read_text(encoding="utf-8"))
    return data
TLS = TESTS / "fixtures" / "tls"
"""The loopback test certificate and key."""
PACKAGE = REPO / "openai_stream"
EXAMPLES = REPO / "examples"
SHARED_MISSING = (
    f"needs the transcripts recorded by other projects in {SHARED_SSE}, which are read in place and "
    "never copied into this repository; they are beside the clone in CI (../shared), not in a fresh clone"
)



def _local_missing() -> Optional[str]:
    if sys.version_info < (3, 10):
        return "xllamacpp needs Python 3.10+"
    if importlib.util.find_spec("xllamacpp") is None:
        return f"xllamacpp is not installed; install with: {local.INSTALL_HINT}"
    try:
        local.find_model()
    except local.LocalServerError as exc:
        return str(exc)
    return None


LOCAL_MISSING = _local_missing()
"""Why the local llama.cpp model cannot run here, or None when it can."""


def pytest_configure(config: pytest.Config) -> None:
    """Register the package's pytest plugin (``replay_server``) where its entry point did not.

    An install made before the ``pytest11`` entry point existed, or
    ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``, leaves it out; the suite still needs the
    fixture. Whether installing the package registers it is tested by
    ``tooling/test_pytest_plugin.py`` in a pytest of its own.
    """
    if not config.pluginmanager.has_plugin("openai_stream"):
        import _openai_stream_pytestplugin

        config.pluginmanager.register(_openai_stream_pytestplugin, "openai_stream")


def delta(content: str, finish: Optional[str] = None, index: int = 0) -> Dict[str, Any]:
    """A chat chunk carrying one content fragment (and a finish reason) for choice ``index``."""
    choice: Dict[str, Any] = {"index": index, "delta": {"content": content}, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Record retry waits instead of sleeping."""
    recorded: List[float] = []
    monkeypatch.setattr(transport, "_sleep", recorded.append)
    return recorded


class Outcome:
    """What feeding one body through SSEDecoder and the accumulator produced."""

    def __init__(self) -> None:
        self.events: List[Any] = []
        self.error: Optional[BaseException] = None
        self.interrupted = False
        self.completion: Any = None
        self.end_start = 0


def run_accumulator(body: bytes, response_format: Optional[Dict[str, Any]] = None) -> Outcome:
    """The stream's loop without sockets: the engine's BodyReader, then the accumulator.

    Error frames and error payloads end it with ``error``. A body that ends
    without ``[DONE]`` while a choice is unfinished (or inside an event) is
    marked ``interrupted`` (the stream raises StreamInterruptedError there) and
    not ended. A chunk that fails leaves the events it produced in ``events``.
    """
    out = Outcome()
    acc = ChatCompletionAccumulator(response_format=response_format)
    reader = BodyReader(
        [body],
        content_type="text/event-stream",
        error_for=acc.error_from_payload,
        finished=lambda: acc.all_choices_finished,
    )
    try:
        for payload in reader:
            for event in acc.feed(payload):
                if event.type == "error":
                    raise event.error  # type: ignore[attr-defined]
                out.events.append(event)
    except StreamInterruptedError:
        out.interrupted = True
    except OpenAIError as exc:
        out.error = exc
        out.events.extend(getattr(exc, "events", ()))
    out.end_start = len(out.events)
    if out.error is None and not out.interrupted:
        out.events.extend(acc.end())
    out.completion = acc.completion()
    return out


class FixtureDir:
    """The recorded transcripts, ours and the shared ones, as one folder: ``SSE / "name.sse"``."""

    def __truediv__(self, name: str) -> Path:
        for folder in (OWN_SSE, SHARED_SSE):
            path = folder / name
            if path.exists():
                return path
        if SHARED_SSE.is_dir():
            raise FileNotFoundError(f"no transcript {name} in {OWN_SSE} or {SHARED_SSE}")
        pytest.skip(f"{name} {SHARED_MISSING}")

    def glob(self, pattern: str) -> Iterator[Path]:
        """Every transcript matching ``pattern``, ours first, by name; shared ones only where present."""
        found = {p.name: p for p in SHARED_SSE.glob(pattern)} if SHARED_SSE.is_dir() else {}
        found.update({p.name: p for p in OWN_SSE.glob(pattern)})
        return iter(sorted(found.values(), key=lambda p: p.name))

    def names(self) -> List[str]:
        """The stems of every transcript available here."""
        return sorted(p.stem for p in self.glob("*.sse"))

    @property
    def shared_present(self) -> bool:
        return SHARED_SSE.is_dir()


SSE = FixtureDir()
SSE_FIXTURES = SSE
"""The recorded chat streams (``*.sse``): ours, and the shared ones where present."""


# The facts of a chat completion that the expectation files (tests/expected) hold.
MESSAGE_FIELDS = {
    "role",
    "content",
    "refusal",
    "reasoning_content",
    "reasoning",
    "tool_calls",
    "function_call",
}
CHOICE_FIELDS = {"index", "message", "finish_reason", "logprobs"}
COMPLETION_FIELDS = {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}


def facts(completion: Any) -> Dict[str, Any]:
    """The completion reduced to the facts the expectation files hold."""
    data = completion.to_dict()
    assert data["object"] == "chat.completion"
    choices = []
    for choice in data["choices"]:
        message = choice["message"]
        reasoning_fields = [f for f in ("reasoning_content", "reasoning") if message.get(f) is not None]
        assert len(reasoning_fields) <= 1, message
        reasoning = None
        if reasoning_fields:
            reasoning = {"field": reasoning_fields[0], "text": message[reasoning_fields[0]]}
        calls = []
        for call in message.get("tool_calls") or []:
            assert set(call) == {"id", "type", "function"}, call
            assert set(call["function"]) == {"name", "arguments"}, call
            calls.append(
                {
                    "id": call["id"],
                    "type": call["type"],
                    "name": call["function"]["name"],
                    "arguments": call["function"]["arguments"],
                }
            )
        logprobs = choice.get("logprobs")
        if logprobs is not None:
            logprobs = {
                key: {"tokens": len(value), "text": "".join(t["token"] for t in value)}
                if isinstance(value, list)
                else value
                for key, value in logprobs.items()
            }
        choices.append(
            {
                "index": choice["index"],
                "role": message["role"],
                "finish_reason": choice["finish_reason"],
                "content": message["content"],
                "refusal": message.get("refusal"),
                "reasoning": reasoning,
                "tool_calls": calls,
                "logprobs": logprobs,
                "message_extra": {k: v for k, v in message.items() if k not in MESSAGE_FIELDS},
                "choice_extra": {k: v for k, v in choice.items() if k not in CHOICE_FIELDS},
            }
        )
    return {
        "id": data["id"],
        "model": data["model"],
        "created": data["created"],
        "system_fingerprint": data.get("system_fingerprint"),
        "usage": data["usage"],
        "extra": {k: v for k, v in data.items() if k not in COMPLETION_FIELDS},
        "choices": choices,
    }
