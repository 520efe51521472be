"""Helpers and fixtures shared by the test modules, and where the recorded transcripts are.

Plain ``pytest`` and ``python -m pytest`` both put this directory on
``sys.path``, so a test module imports the helpers with ``from conftest import
...``; the fixtures here are found by pytest itself.

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

import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from openai_stream import ChatCompletionAccumulator, OpenAIError, StreamInterruptedError
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
SHARED_MISSING = (
    f"needs the transcripts recorded by other projects in {SHARED_SSE}, which are read in place and "
    "never copied into this repository; they are beside the clone in CI (../shared), not in a fresh clone"
)


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
