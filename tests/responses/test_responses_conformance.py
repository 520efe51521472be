"""Every Responses API transcript in tests/fixtures/responses, checked against tests/expected_responses.

The expectations were derived from the raw files by the naive oracle in
tests/expected_responses/make_expected_responses.py (which never imports
openai_stream) and read by hand against each file. Each fixture is checked:

(a) the sans-I/O accumulator fed by SSEDecoder gives the expected response
    (or raises the expected typed error, with the expected partial response);
(b) its events obey the stream rules (deltas add up to the done text, every
    server event comes out once under its own name, ``done`` then one
    ``completion`` last) and match the expected counts and done sequence.

End to end through the client over loopback follows once ``client.responses`` exists.
"""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType
from typing import Any, Dict, List, Optional

import pytest
from conftest import (
    EXPECTED_RESPONSES,
    RESPONSES_FIXTURES,
    RESPONSES_HIGH_LEVEL,
    RESPONSES_NAMES,
    expected_response,
)

from openai_stream.engine._events import (
    CompletionEvent,
    ContentDeltaEvent,
    ContentDoneEvent,
    DoneEvent,
    ErrorEvent,
    RefusalDeltaEvent,
    RefusalDoneEvent,
    ToolCallDeltaEvent,
    ToolCallDoneEvent,
)
from openai_stream.errors import APIError, InvalidStreamDataError, StreamInterruptedError
from openai_stream.responses._accumulator import ResponseAccumulator
from openai_stream.responses._events import (
    ResponseCompletionEvent,
    ResponseReasoningDeltaEvent,
    ResponseReasoningDoneEvent,
    ResponseStreamEvent,
    ResponseUsageEvent,
)
from openai_stream.transport._body import BodyReader

FIXTURES = RESPONSES_FIXTURES
EXPECTED = EXPECTED_RESPONSES
NAMES = RESPONSES_NAMES
HIGH_LEVEL = RESPONSES_HIGH_LEVEL
expected_for = expected_response


def test_every_fixture_has_an_expectation() -> None:
    assert len(NAMES) >= 23
    assert sorted(p.stem for p in EXPECTED.glob("*.json")) == NAMES


@pytest.fixture(scope="module")
def oracle() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_expected_responses", EXPECTED / "make_expected_responses.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- helpers
class Outcome:
    """What feeding one fixture through SSEDecoder + ResponseAccumulator produced."""

    def __init__(self) -> None:
        self.payloads: List[Dict[str, Any]] = []  # as fed, and an error frame's payload last
        self.events: List[Any] = []
        self.steps: List[Any] = []  # the 1-based payload each event came with, or "end"
        self.error: Optional[BaseException] = None
        self.interrupted = False
        self.response: Any = None


def run_accumulator(name: str) -> Outcome:
    """Mirror the stream engine's loop: BodyReader turns the bytes into payloads (and raises on
    ``event: error`` frames and cut bodies), the accumulator turns payloads into events."""
    out = Outcome()
    acc = ResponseAccumulator(text=expected_for(name)["text_param"])
    body = (FIXTURES / f"{name}.sse").read_bytes()
    reader = BodyReader(
        [body[i : i + 97] for i in range(0, len(body), 97)],
        content_type="text/event-stream",
        error_for=acc.error_from_payload,
        finished=lambda: acc.finished,
        protocol="a Responses API stream",
    )
    step = 0
    try:
        for payload in reader:
            step += 1
            out.payloads.append(payload)
            try:
                events = acc.feed(payload)
            except InvalidStreamDataError as exc:
                events = [*exc.events, ErrorEvent(exc)]
            out.events.extend(events)
            out.steps.extend([step] * len(events))
            errors = [e for e in events if isinstance(e, ErrorEvent)]
            if errors:
                out.error = errors[0].error
                break
    except StreamInterruptedError:
        out.interrupted = True
    except APIError as exc:  # an error frame: BodyReader raised what error_from_payload built
        out.error = exc
        out.events.append(ErrorEvent(exc))  # the engine tells error listeners, as for a fed error
        out.steps.append(step + 1)
        out.payloads.append(json.loads(body.split(b"event: error\ndata: ")[1].split(b"\n")[0]))
    if out.error is None and not out.interrupted:
        closing = acc.end()
        out.events.extend(closing)
        out.steps.extend(["end"] * len(closing))
    out.response = acc.snapshot()
    return out


def label(event: Any) -> Optional[str]:
    if isinstance(event, ContentDoneEvent):
        return "content.done output_text"
    if isinstance(event, RefusalDoneEvent):
        return "refusal.done refusal"
    if isinstance(event, ResponseReasoningDoneEvent):
        return "reasoning.done " + ("summary_text" if event.kind == "reasoning_summary_text" else event.kind)
    if isinstance(event, ToolCallDoneEvent):
        return f"tool_call.done #{event.index}"
    if isinstance(event, DoneEvent):
        return f"done {event.finish_reason}"
    if isinstance(event, (ResponseUsageEvent, ResponseCompletionEvent)):
        return event.type
    return None


# --------------------------------------------------------------------------- (a) the response
@pytest.mark.parametrize("name", NAMES)
def test_accumulator_gives_the_expected_response(name: str) -> None:
    expected = expected_for(name)
    out = run_accumulator(name)
    outcome = expected["outcome"]
    if outcome["kind"] == "ok":
        assert out.error is None and not out.interrupted
        final = out.events[-1]
        assert isinstance(final, ResponseCompletionEvent)
        assert final.completion.to_dict() == expected["response"]
    elif outcome["kind"] == "interrupted":
        assert out.error is None and out.interrupted
    else:
        assert type(out.error).__name__ == outcome["class"], out.error
        assert getattr(out.error, "code", None) == outcome["code"]
        assert out.error.completion.to_dict() == expected["response"]  # type: ignore[union-attr]
    assert out.response.to_dict() == expected["response"]
    assert out.response.output_text == expected["output_text"]
    if expected["text_param"] is not None:
        assert out.response.parsed == expected["response"]["parsed"]


# --------------------------------------------------------------------------- (b) the events
@pytest.mark.parametrize("name", NAMES)
def test_events_match_the_expected_counts_and_done_sequence(name: str) -> None:
    expected = expected_for(name)
    out = run_accumulator(name)
    counts: Dict[str, int] = {}
    for event in out.events:
        if event.type in HIGH_LEVEL:
            counts[event.type] = counts.get(event.type, 0) + 1
    assert dict(sorted(counts.items())) == expected["events"]["counts"]
    sequence = [
        f"{label(event)} @{step}" for event, step in zip(out.events, out.steps) if label(event) is not None
    ]
    assert sequence == expected["events"]["done_sequence"]


@pytest.mark.parametrize("name", NAMES)
def test_every_server_event_comes_out_once_under_its_own_name(name: str) -> None:
    out = run_accumulator(name)
    server = [e for e in out.events if isinstance(e, ResponseStreamEvent)]
    last_step = max((s for s in out.steps if s != "end"), default=0)
    expected = [p for p in out.payloads[:last_step] if p["type"] != "error"]
    assert [e.to_dict() for e in server] == expected
    assert all(e.type == p["type"] for e, p in zip(server, expected))
    for event, step in zip(out.events, out.steps):  # each payload's own event comes first
        if isinstance(event, ResponseStreamEvent):
            assert out.payloads[step - 1] is event._data


@pytest.mark.parametrize("name", NAMES)
def test_deltas_add_up_to_their_done_text(name: str) -> None:
    out = run_accumulator(name)
    for delta_cls, done_cls, field in (
        (ContentDeltaEvent, ContentDoneEvent, "content"),
        (RefusalDeltaEvent, RefusalDoneEvent, "refusal"),
        (ResponseReasoningDeltaEvent, ResponseReasoningDoneEvent, "reasoning"),
    ):
        parts: Dict[int, List[Any]] = {}
        order: List[int] = []
        finished: List[str] = []
        for event in out.events:
            if isinstance(event, delta_cls):
                key = id(event._values[2])  # the part's text buffer
                if key not in parts:
                    parts[key] = []
                    order.append(key)
                assert len(finished) < order.index(key) + 1, "a delta came after its part's done event"
                parts[key].append(event)
                assert event.snapshot == "".join(e.delta for e in parts[key])
            elif isinstance(event, done_cls):
                finished.append(getattr(event, field))
        joined = ["".join(e.delta for e in parts[key]) for key in order]
        assert joined[: len(finished)] == finished
        if out.error is None and not out.interrupted:
            assert len(finished) == len(joined)  # every part that streamed was closed
    calls: Dict[int, str] = {}
    closed: Dict[int, str] = {}
    for event in out.events:
        if isinstance(event, ToolCallDeltaEvent):
            assert event.index not in closed
            calls[event.index] = calls.get(event.index, "") + event.arguments_delta
            assert event.arguments_snapshot == calls[event.index]
        elif isinstance(event, ToolCallDoneEvent):
            assert event.index not in closed
            closed[event.index] = event.arguments
    for index, arguments in closed.items():
        assert calls[index] == arguments
    assert sorted(calls) == list(range(len(calls)))  # call positions 0, 1, ... in order


@pytest.mark.parametrize("name", NAMES)
def test_one_completion_last_after_done_and_every_part_done(name: str) -> None:
    out = run_accumulator(name)
    kinds = [e.type for e in out.events]
    if out.error is not None or out.interrupted:
        assert "completion" not in kinds and "done" not in kinds
        return
    assert kinds.count("completion") == 1 and kinds[-1] == "completion"
    assert kinds.count("done") == 1
    done_at = kinds.index("done")
    high = [k for k in kinds if k in HIGH_LEVEL]
    assert all(k in ("usage", "done", "completion") for k in high[high.index("done") :])
    assert all(not k.endswith(".delta") for k in kinds[done_at:] if k in HIGH_LEVEL)
    assert kinds.count("usage") <= 1
    assert not any(isinstance(e, CompletionEvent) for e in out.events)  # the responses class, not chat's


def test_expectations_are_the_oracles(oracle: Any) -> None:
    """The stored files are what the naive oracle derives (nobody edited one by hand)."""
    for name in NAMES:
        stored = expected_for(name)
        derived = oracle.run_oracle(FIXTURES / f"{name}.sse")
        assert {k: v for k, v in stored.items() if k != "openai_oracle"} == derived, name


@pytest.mark.parametrize("name", [n for n in NAMES if expected_for(n)["openai_oracle"] == "agrees"])
def test_openai_package_agrees(name: str, oracle: Any) -> None:
    """Where openai-python's ResponseStreamState handles a fixture, it reaches the same response."""
    pytest.importorskip("openai")
    assert oracle.openai_opinion(FIXTURES / f"{name}.sse", expected_for(name)) == "agrees"


@pytest.mark.parametrize(
    "name", [n for n in NAMES if n.startswith("llamacpp-") and "reasoning-only" not in n]
)
def test_openai_package_crashes_on_llamacpp_streams_where_we_do_not(name: str, oracle: Any) -> None:
    """Issue 12: openai-python's state machine indexes by output_index, which llama.cpp omits.

    (llamacpp-reasoning-only has a single item and no content events, so it survives.)
    """
    pytest.importorskip("openai")
    verdict = oracle.openai_opinion(FIXTURES / f"{name}.sse", expected_for(name))
    assert verdict.startswith("crashes: "), verdict
    assert "NoneType" in verdict or "output index None" in verdict
    expected = expected_for(name)
    out = run_accumulator(name)
    assert out.response.to_dict() == expected["response"]


def test_openai_package_needs_response_created_first_where_we_do_not() -> None:
    """Issue 12: a stream picked up after its first event (a resume with starting_after) is refused
    by openai-python's ResponseStreamState; the accumulator builds the same text from it."""
    pytest.importorskip("openai")
    from openai._models import construct_type_unchecked
    from openai._types import omit
    from openai.lib.streaming.responses._responses import ResponseStreamState
    from openai.types.responses import ResponseStreamEvent as OpenAIEvent

    body = (FIXTURES / "openai-text.sse").read_bytes()
    payloads = [
        json.loads(line[len(b"data: ") :]) for line in body.split(b"\n") if line.startswith(b"data: ")
    ]
    resumed = payloads[2:]  # after response.created and response.in_progress
    state: Any = ResponseStreamState(input_tools=omit, text_format=omit)
    first: Any = construct_type_unchecked(type_=OpenAIEvent, value=resumed[0])  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"response\.created"):
        state.handle_event(first)
    acc = ResponseAccumulator()
    for payload in resumed:
        acc.feed(payload)
    assert acc.finished and acc.snapshot().output_text == expected_for("openai-text")["output_text"]
