"""Helpers and fixtures shared by the test modules.

Plain ``pytest`` and ``python -m pytest`` both put this directory on
``sys.path``, so a test module imports the helpers with ``from conftest import
...``; the fixtures here are found by pytest itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from openai_stream import ChatCompletionAccumulator, OpenAIError, StreamInterruptedError
from openai_stream.transport import _http as transport
from openai_stream.transport._body import BodyReader

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SSE_FIXTURES = TESTS / "fixtures" / "sse"
"""The recorded chat streams (``*.sse``) and their ``SOURCES.md``."""
SHARED = REPO.parent / "shared"
"""Data from other projects, read in place (``../shared`` beside the clone, as in CI)."""
PEER_CASES = SHARED / "peer-cases"


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
