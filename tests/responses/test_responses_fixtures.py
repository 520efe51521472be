"""The Responses API transcripts of tests/fixtures/responses: where they come from and what they show.

These tests read the raw files only (no openai_stream): the llama.cpp recordings
hold the facts issue 12 states about llama.cpp's stream, and the OpenAI-shaped
files are exactly what their generator writes and validate against
openai-python's own event types.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Set, Tuple

import pytest
from conftest import RESPONSES_FIXTURES

FIXTURES = RESPONSES_FIXTURES
SSE_FILES = sorted(FIXTURES.glob("*.sse"))
LLAMACPP = [p for p in SSE_FILES if p.name.startswith("llamacpp-")]
OPENAI_SHAPED = [p for p in SSE_FILES if p.name.startswith("openai-")]
INDEX_FIELDS = ("sequence_number", "output_index", "content_index", "summary_index")


def blocks(path: Path) -> List[Tuple[List[str], Dict[str, Any]]]:
    """(event: values, decoded data) per SSE event of a file, parsed by hand."""
    out = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        names = [line[len("event: ") :] for line in lines if line.startswith("event: ")]
        data = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        assert len(names) + len(data) == len(lines), f"{path.name}: unexpected line in {block!r}"
        assert len(data) == 1, f"{path.name}: {block!r}"
        out.append((names, json.loads(data[0])))
    return out


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_openai_shaped", FIXTURES / "make_openai_shaped.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_transcript_has_a_sources_line() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([a-z0-9.-]+\.(?:sse|json))`", sources))
    on_disk = {p.name for p in FIXTURES.iterdir() if p.suffix in (".sse", ".json")}
    assert on_disk <= listed, sorted(on_disk - listed)
    assert len(LLAMACPP) >= 10 and len(OPENAI_SHAPED) >= 13


def test_openai_shaped_files_are_what_the_generator_writes() -> None:
    generator = load_generator()
    built = {t.name + ".sse": t.body() for t in (build() for build in generator.BUILDERS)}
    assert sorted(built) == sorted(p.name for p in OPENAI_SHAPED)
    for name, body in built.items():
        assert (FIXTURES / name).read_bytes() == body, f"{name} differs from make_openai_shaped.py's output"


@pytest.mark.parametrize("path", OPENAI_SHAPED, ids=lambda p: p.stem)
def test_openai_shaped_events_validate_against_openai_python_types(path: Path) -> None:
    pydantic = pytest.importorskip("pydantic")
    types = pytest.importorskip("openai.types.responses")
    adapter = pydantic.TypeAdapter(types.ResponseStreamEvent)
    for number, (names, data) in enumerate(blocks(path)):
        adapter.validate_python(data)  # raises on any field the documented type does not allow
        assert names == [data["type"]]
        assert data["sequence_number"] == number


# --------------------------------------------------------------------------- llama.cpp facts (issue 12)
ISSUE_TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.parametrize("path", LLAMACPP, ids=lambda p: p.stem)
def test_llamacpp_sends_event_lines_named_as_the_type_and_no_index_fields(path: Path) -> None:
    events = blocks(path)
    assert events, path
    for names, data in events:
        assert names == [data["type"]]  # `event: NAME` + `data: {"type": NAME, ...}`
        assert not set(INDEX_FIELDS) & set(data), data  # no sequence_number, no indexes
        for key in ("item", "part"):
            if isinstance(data.get(key), dict):
                assert not set(INDEX_FIELDS) & set(data[key])
    assert b"[DONE]" not in path.read_bytes()


@pytest.mark.parametrize("path", LLAMACPP, ids=lambda p: p.stem)
def test_llamacpp_deltas_name_an_item_added_before_them(path: Path) -> None:
    added: Set[str] = set()
    for _, data in blocks(path):
        if data["type"] == "response.output_item.added":
            added.add(data["item"]["id"])
        elif data["type"].endswith((".delta", ".done")) and data["type"] != "response.output_item.done":
            assert data["item_id"] in added, data


@pytest.mark.parametrize("path", [p for p in LLAMACPP if "reasoning" not in p.name], ids=lambda p: p.stem)
def test_llamacpp_text_streams_use_exactly_the_events_the_issue_lists(path: Path) -> None:
    kinds = [data["type"] for _, data in blocks(path)]
    assert set(kinds) == set(ISSUE_TEXT_EVENTS)
    responses = kinds.count("response.created")
    assert kinds.count("response.completed") == responses
    if responses == 1:
        deltas = kinds.count("response.output_text.delta")
        assert (
            kinds == ISSUE_TEXT_EVENTS[:4] + ["response.output_text.delta"] * deltas + ISSUE_TEXT_EVENTS[5:]
        )


@pytest.mark.parametrize("path", [p for p in LLAMACPP if "reasoning" in p.name], ids=lambda p: p.stem)
def test_llamacpp_reasoning_arrives_only_as_reasoning_text_deltas(path: Path) -> None:
    events = blocks(path)
    kinds = {data["type"] for _, data in events}
    assert "response.reasoning_text.delta" in kinds
    assert not {"response.reasoning_text.done", "response.reasoning_summary_text.delta"} & kinds
    reasoning_ids = {
        d["item"]["id"]
        for _, d in events
        if d["type"] == "response.output_item.added" and d["item"]["type"] == "reasoning"
    }
    part_items = {d["item_id"] for _, d in events if d["type"].startswith("response.content_part.")}
    assert not reasoning_ids & part_items  # no content_part events for the reasoning item
    deltas = "".join(d["delta"] for _, d in events if d["type"] == "response.reasoning_text.delta")
    done = [
        d["item"]
        for _, d in events
        if d["type"] == "response.output_item.done" and d["item"]["type"] == "reasoning"
    ]
    assert [part["text"] for part in done[0]["content"]] == [deltas]


def test_llamacpp_reports_a_max_output_tokens_cut_as_completed() -> None:
    events = blocks(FIXTURES / "llamacpp-max-output-tokens.sse")
    final = events[-1][1]
    assert final["type"] == "response.completed"
    assert final["response"]["status"] == "completed"
    assert "incomplete_details" not in final["response"]
    assert final["response"]["usage"]["output_tokens"] == 8  # the limit: the answer was cut


def test_llamacpp_n2_streams_two_whole_responses_in_one_body() -> None:
    events = [d for _, d in blocks(FIXTURES / "llamacpp-n2-two-responses.sse")]
    created = [d["response"]["id"] for d in events if d["type"] == "response.created"]
    completed = [d["response"]["id"] for d in events if d["type"] == "response.completed"]
    assert len(set(created)) == 2 and sorted(created) == sorted(completed)
    first_done = next(i for i, d in enumerate(events) if d["type"] == "response.completed")
    second_created = [i for i, d in enumerate(events) if d["type"] == "response.created"][1]
    assert second_created < first_done  # interleaved, not one after the other


@pytest.mark.parametrize("name", ["llamacpp-text", "llamacpp-reasoning-then-text"])
def test_llamacpp_streamed_text_equals_the_non_streamed_answer(name: str) -> None:
    streamed = blocks(FIXTURES / f"{name}.sse")[-1][1]["response"]
    whole = json.loads((FIXTURES / f"{name}.nonstream.json").read_text(encoding="utf-8"))

    def texts(response: Dict[str, Any]) -> List[Tuple[str, List[str]]]:
        return [
            (item["type"], [part["text"] for part in item.get("content") or []])
            for item in response["output"]
        ]

    assert texts(streamed) == texts(whole)
    assert streamed["usage"]["output_tokens"] == whole["usage"]["output_tokens"]
