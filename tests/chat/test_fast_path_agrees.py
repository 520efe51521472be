"""The accumulator's fast path and its general path agree, event for event and on the completion.

Every recorded transcript (ours, and the shared ones where present), as sent
and with fields of their own added at random to chunks and choices (OpenAI's
``service_tier`` and ``obfuscation``, Azure's ``content_filter_results``, a
field that appears only late or turns null, Groq's ``x_groq`` with or without
usage...), is fed twice: as plain dicts, and as a dict subclass, which the fast
path's ``type(chunk) is dict`` refuses, so every chunk takes the general path.
The general path is the oracle; the test fails when the fast path takes a chunk
it must refuse, or keeps a field differently.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import SSE

from openai_stream import ChatCompletionAccumulator, OpenAIError
from openai_stream.transport._body import BodyReader

ROUNDS = 12


class _General(dict):  # type: ignore[type-arg]
    """A chunk the fast path refuses (it takes exact dicts only); the general path reads it as any dict."""


def payloads(path: Path) -> List[Any]:
    accumulator = ChatCompletionAccumulator()
    reader = BodyReader(
        [path.read_bytes()],
        content_type="text/event-stream",
        error_for=accumulator.error_from_payload,
        finished=lambda: False,
    )
    found: List[Any] = []
    try:
        found.extend(reader)
    except OpenAIError:  # an error frame ends the transcript; the chunks before it are enough
        pass
    return found


def shown(event: Any) -> Tuple[str, str, Dict[str, Any]]:
    fields = event.to_dict()
    if event.type == "chunk":
        fields = {"chunk": dict(fields["chunk"])}
    names = ("snapshot", "arguments_snapshot")
    snapshots = {name: getattr(event, name) for name in names if hasattr(event, name)}
    return event.type, json.dumps(fields, sort_keys=True, default=repr), snapshots


def run(chunks: List[Any], general: bool) -> Tuple[List[Any], Optional[Tuple[str, str]], str, int]:
    accumulator = ChatCompletionAccumulator()
    slow = 0
    feed_general = accumulator._feed

    def counted(chunk: Any, events: Any) -> None:
        nonlocal slow
        slow += 1
        feed_general(chunk, events)

    accumulator._feed = counted  # type: ignore[method-assign]
    events: List[Any] = []
    error: Optional[Tuple[str, str]] = None
    try:
        for chunk in copy.deepcopy(chunks):
            events.extend(shown(e) for e in accumulator.feed(_General(chunk) if general else chunk))
        events.extend(shown(e) for e in accumulator.end())
    except OpenAIError as exc:
        error = (type(exc).__name__, str(exc))
    completion = json.dumps(accumulator.completion().to_dict(), sort_keys=True, default=repr)
    return events, error, completion, slow


def with_fields_of_their_own(chunks: List[Any], rng: random.Random) -> List[Any]:
    varied = copy.deepcopy(chunks)
    late = rng.randrange(len(varied) + 1)
    for number, chunk in enumerate(varied):
        if rng.random() < 0.8:
            chunk["service_tier"] = rng.choice(["default", "flex", "priority", None])
        if rng.random() < 0.8:
            chunk["obfuscation"] = "x" * rng.randrange(5)
        if number >= late:
            chunk["late_field"] = {"n": number} if rng.random() < 0.7 else None
        if rng.random() < 0.1:
            usage = {"prompt_tokens": 1, "completion_tokens": number, "total_tokens": 1 + number}
            chunk["x_groq"] = rng.choice([{"id": "req"}, {"usage": usage}])
        if rng.random() < 0.05:
            chunk["system_fingerprint"] = rng.choice(["fp_a", "fp_b", None, ""])
        for choice in chunk.get("choices") or []:
            if rng.random() < 0.7:
                filters = {"hate": {"filtered": False, "n": number}}
                choice["content_filter_results"] = rng.choice([None, {}, filters])
            if rng.random() < 0.1:
                choice["stop_reason"] = rng.choice([None, 7, "x"])
            if rng.random() < 0.1:
                choice["logprobs"] = rng.choice([None, {}, []])
    return varied


@pytest.mark.parametrize("name", SSE.names())
def test_the_fast_path_and_the_general_path_agree(name: str) -> None:
    chunks = payloads(SSE / f"{name}.sse")
    if not chunks or not all(type(chunk) is dict for chunk in chunks):
        pytest.skip(f"{name}: no chunk objects to compare")
    rng = random.Random(name)
    fast_taken = 0
    for round_ in range(ROUNDS + 1):
        variant = chunks if round_ == 0 else with_fields_of_their_own(chunks, rng)
        fast, general = run(variant, general=False), run(variant, general=True)
        assert general[3] == len(variant) or general[1] is not None  # the oracle took no fast path
        assert fast[:3] == general[:3], f"round {round_}"
        fast_taken += len(variant) - fast[3]
    if name.startswith(("openai-content", "llamacpp-content", "mistral-content")):
        assert fast_taken > 0  # the comparison covered the fast path at all
