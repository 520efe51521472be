"""Every recorded provider stream in tests/fixtures/sse, checked against tests/expected.

The expectations were derived from the raw files by the naive oracle in
tests/expected/make_expected.py (which never imports openai_stream) and read by
hand against each file. Each fixture is checked three ways:

(a) the sans-I/O accumulator fed by SSEDecoder gives the expected completion;
(b) its events obey the stream invariants and match the expected summary;
(c) the real client over a loopback ReplayServer (chunked and close-delimited,
    decorator handlers and pull iteration) gives the same completion and events,
    or raises the expected typed error with the partial completion attached.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import EXPECTED, OWN_SSE, SHARED_MISSING, SSE, Outcome, facts, run_accumulator

import openai_stream
from openai_stream import EVENT_TYPES, ChatCompletionAccumulator
from openai_stream.testing import ReplayServer, ScriptedResponse

FIXTURES = SSE  # ours in tests/fixtures/sse, the shared ones read in place from ../shared
NAMES = SSE.names()

DONE_TYPES = {"content.done", "refusal.done", "reasoning.done", "tool_call.done", "done", "completion"}


def test_all_fixtures_have_expectations() -> None:
    expected = sorted(p.stem for p in EXPECTED.glob("*.json"))
    own = sorted(p.stem for p in OWN_SSE.glob("*.sse"))
    assert set(own) <= set(expected) and len(own) >= 4
    if not SSE.shared_present:
        pytest.skip(f"the 42 shared transcripts: {SHARED_MISSING}")
    assert len(NAMES) >= 46  # the 42 of issue 2, plus the project's own
    assert expected == NAMES


def expected_for(name: str) -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads((EXPECTED / f"{name}.json").read_text(encoding="utf-8"))
    return data


# --------------------------------------------------------------------------- helpers
def run_fixture(name: str) -> Outcome:
    return run_accumulator((FIXTURES / f"{name}.sse").read_bytes())


def check_attribute_access(completion: Any, want: Dict[str, Any]) -> None:
    """The same facts read the way users read them."""
    assert completion.id == want["id"]
    assert completion.model == want["model"]
    for choice, expected in zip(completion.choices, want["choices"]):
        assert choice.finish_reason == expected["finish_reason"]
        assert choice.message.content == expected["content"]
        for call, expected_call in zip(choice.message.tool_calls or [], expected["tool_calls"]):
            assert call.id == expected_call["id"]
            assert call.function.name == expected_call["name"]
            assert call.function.arguments == expected_call["arguments"]
    if want["usage"] is not None:
        assert completion.usage.total_tokens == want["usage"].get("total_tokens")


def summarize(events: List[Any], end_start: int) -> Dict[str, Any]:
    """Counts per event type, and each done-type event as "type choice[/call] @chunk".

    ``@chunk`` is the 1-based number of the chunk whose events it came with;
    ``@end`` marks the events that end() produced (from ``end_start`` on).
    """
    counts: Dict[str, int] = {}
    sequence = []
    chunk_no = 0
    for position, event in enumerate(events):
        kind = event.type
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "chunk":
            chunk_no += 1
        if kind in DONE_TYPES:
            target = "" if kind == "completion" else f" {event.choice_index}"
            if kind == "tool_call.done":
                target += f"/{event.index}"
            where = "end" if position >= end_start else str(chunk_no)
            sequence.append(f"{kind}{target} @{where}")
    return {"counts": dict(sorted(counts.items())), "done_sequence": sequence}


def norm(event: Any) -> Tuple[Any, ...]:
    """An event as comparable plain data (buffers replaced by the snapshot they stand for)."""
    kind = event.type
    if kind == "chunk":
        return (kind, json.dumps(event.chunk, sort_keys=True))
    if kind in ("content.delta", "refusal.delta", "reasoning.delta"):
        return (kind, event.choice_index, event.delta, event.snapshot)
    if kind == "tool_call.delta":
        return (
            kind,
            event.choice_index,
            event.index,
            event.call_id,
            event.name,
            event.arguments_delta,
            event.arguments_snapshot,
        )
    if kind == "completion":
        return (kind, json.dumps(event.completion.to_dict(), sort_keys=True))
    if kind == "usage":
        return (kind, json.dumps(event.usage.to_dict(), sort_keys=True))
    if kind == "response":
        return (kind, event.status_code)
    return (kind, *event.to_dict().values())


def check_error(error: BaseException, outcome: Dict[str, Any]) -> None:
    """The typed error the expectation names, with its status code, code and message."""
    cls = getattr(openai_stream, outcome["class"])
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    if outcome["status_code"] is not None:
        assert error.status_code == outcome["status_code"]  # type: ignore[attr-defined]
    if outcome["code"] is not None:
        assert error.code == outcome["code"]  # type: ignore[attr-defined]
    if outcome["message"]:
        assert outcome["message"] in str(error)


def check_invariants(events: List[Any], want: Dict[str, Any], ended: bool) -> None:
    """What must hold for every stream, whatever the provider."""
    assert events and events[0].type == "chunk"
    finals = {c["index"]: c for c in want["choices"]}
    texts: Dict[Tuple[str, int], List[str]] = {}
    args: Dict[Tuple[int, int], List[str]] = {}
    done_once: Dict[Tuple[Any, ...], int] = {}
    choice_done: Dict[int, int] = {}
    first_delta: Dict[Tuple[int, int], int] = {}
    last_delta: Dict[Tuple[int, int], int] = {}
    chunk_positions = [p for p, e in enumerate(events) if e.type == "chunk"]
    for position, event in enumerate(events):
        kind = event.type
        if kind in ("chunk", "usage", "completion"):
            if kind == "completion":
                assert position == len(events) - 1, "completion must be the last event"
            continue
        ci = event.choice_index
        assert ci in finals, f"{kind} for unknown choice {ci}"
        assert ci not in choice_done, f"{kind} after choice {ci} was done"
        final = finals[ci]
        if kind in ("content.delta", "refusal.delta", "reasoning.delta"):
            assert event.delta, f"empty {kind}"
            running = texts.setdefault((kind.split(".")[0], ci), [])
            running.append(event.delta)
            assert event.snapshot == "".join(running)
        elif kind == "tool_call.delta":
            key = (ci, event.index)
            assert 0 <= event.index < len(final["tool_calls"])
            assert ("tool_call.done", ci, event.index) not in done_once, "delta after tool_call.done"
            call = final["tool_calls"][event.index]
            running = args.setdefault(key, [])
            running.append(event.arguments_delta)
            assert event.arguments_snapshot == "".join(running)
            assert event.name in (None, call["name"])
            assert event.call_id in (None, call["id"])
            first_delta.setdefault(key, position)
            last_delta[key] = position
        elif kind in ("content.done", "refusal.done", "reasoning.done"):
            text_kind = kind.split(".")[0]
            assert (kind, ci) not in done_once, f"{kind} twice"
            done_once[(kind, ci)] = position
            value = getattr(event, text_kind)
            assert value == "".join(texts.get((text_kind, ci), []))
            expected = final["reasoning"]["text"] if text_kind == "reasoning" else final[text_kind]
            assert value == expected
        elif kind == "tool_call.done":
            key = (ci, event.index)
            assert ("tool_call.done", ci, event.index) not in done_once, "tool_call.done twice"
            done_once[("tool_call.done", ci, event.index)] = position
            call = final["tool_calls"][event.index]
            assert event.arguments == "".join(args.get(key, [])) == call["arguments"]
            assert (event.call_id, event.name) == (call["id"], call["name"])
            assert key in last_delta and last_delta[key] < position
        elif kind == "done":
            assert event.finish_reason == final["finish_reason"]
            choice_done[ci] = position
        else:
            raise AssertionError(f"unexpected event type {kind}")
    assert sum(e.type == "completion" for e in events) == (1 if ended else 0)
    if ended:
        assert set(choice_done) == set(finals), "every choice gets its done event"
    for ci, final in finals.items():
        calls = final["tool_calls"]
        for k in range(len(calls)):
            assert (ci, k) in first_delta, f"call {k} of choice {ci} never announced"
        if ci not in choice_done:
            continue
        at = choice_done[ci]
        for text_kind in ("content", "refusal", "reasoning"):
            if texts.get((text_kind, ci)):
                assert done_once[(f"{text_kind}.done", ci)] < at
        for k in range(len(calls)):
            done_at = done_once[("tool_call.done", ci, k)]
            # Known complete when the next call starts (same chunk, before its first fragment)
            # or when the choice finishes (with the choice's own done events).
            until = first_delta[(ci, k + 1)] if k + 1 < len(calls) else at
            assert done_at < until
            assert not any(done_at < p < until for p in chunk_positions), (
                f"tool_call.done {ci}/{k} not emitted as soon as the call was known complete"
            )
    usage_events = [e.usage.to_dict() for e in events if e.type == "usage"]
    if usage_events:
        assert usage_events[-1] == want["usage"]
    else:
        assert want["usage"] is None


# --------------------------------------------------------------------------- (a) and (b)
@pytest.mark.parametrize("name", NAMES)
def test_accumulator_final_completion(name: str) -> None:
    want = expected_for(name)
    out = run_fixture(name)
    outcome = want["outcome"]
    if outcome["kind"] == "ok":
        assert out.error is None and not out.interrupted
        assert out.events[-1].type == "completion"
        completion = out.events[-1].completion
        assert completion == out.completion
    elif outcome["class"] == "StreamInterruptedError":
        assert out.interrupted and out.error is None
        completion = out.completion
    else:
        assert out.error is not None, "the in-stream error was dropped"
        check_error(out.error, outcome)
        completion = out.error.completion  # type: ignore[attr-defined]
        assert completion is not None, "the error must carry the partial completion"
    assert facts(completion) == want["completion"]
    check_attribute_access(completion, want["completion"])


@pytest.mark.parametrize("name", NAMES)
def test_accumulator_events(name: str) -> None:
    want = expected_for(name)
    out = run_fixture(name)
    check_invariants(out.events, want["completion"], ended=want["outcome"]["kind"] == "ok")
    assert summarize(out.events, out.end_start) == want["events"]


# --------------------------------------------------------------------------- (c)
def _register_everywhere(stream: Any, seen: List[Any]) -> None:
    for kind in EVENT_TYPES:

        @stream.on(kind)  # type: ignore[untyped-decorator]
        def handler(event: Any) -> None:
            seen.append(event)


@pytest.fixture(scope="module")
def references() -> Dict[str, Outcome]:
    return {name: run_fixture(name) for name in NAMES}


@pytest.mark.parametrize("style", ["until_done", "iterate"])
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
@pytest.mark.parametrize("name", NAMES)
def test_client_end_to_end(name: str, chunked: bool, style: str, references: Dict[str, Outcome]) -> None:
    want = expected_for(name)
    ref = [norm(e) for e in references[name].events]
    outcome = want["outcome"]
    response = ScriptedResponse.sse_file(FIXTURES / f"{name}.sse", chunked=chunked)
    with ReplayServer([response], repeat_last=False) as server:
        client = openai_stream.Client(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10)
        try:
            stream = client.chat.completions.stream(
                model="replay", messages=[{"role": "user", "content": "hi"}]
            )
            handled: List[Any] = []
            pulled: List[Any] = []
            _register_everywhere(stream, handled)
            error: Optional[BaseException] = None
            completion: Any = None
            try:
                with stream:
                    if style == "until_done":
                        completion = stream.until_done()
                    else:
                        for event in stream:
                            pulled.append(event)
                        completion = stream.current_completion
            except openai_stream.OpenAIError as exc:
                error = exc
        finally:
            client.close()
        assert len(server.requests) == 1
        assert server.requests[0].json["stream"] is True
    assert handled[0].type == "response" and handled[0].status_code == 200
    if style == "iterate":
        assert [norm(e) for e in pulled] == [norm(e) for e in handled if e.type != "error"]
    if outcome["kind"] == "ok":
        assert error is None, repr(error)
        assert facts(completion) == want["completion"]
        assert stream.state == "done"
    else:
        assert error is not None
        check_error(error, outcome)
        assert facts(error.completion) == want["completion"]  # type: ignore[attr-defined]
        assert handled[-1].type == "error" and handled[-1].error is error
        handled = handled[:-1]
    assert [norm(e) for e in handled[1:]] == ref


# --------------------------------------------------------------------------- the oracles
def _oracle_module() -> Any:
    spec = importlib.util.spec_from_file_location("make_expected", EXPECTED / "make_expected.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def oracle() -> Any:
    return _oracle_module()


@pytest.mark.parametrize("name", NAMES)
def test_expectations_are_the_oracles(name: str, oracle: Any) -> None:
    """The stored files are what the naive oracle derives (nobody edited one by hand)."""
    stored = expected_for(name)
    derived = oracle.run_oracle(FIXTURES / f"{name}.sse")
    assert {k: v for k, v in stored.items() if k not in ("openai_oracle", "notes")} == derived


# --------------------------------------------------------------------------- openai-python's state
# A second oracle that shares nothing with make_expected.py or the accumulator: openai-python's own
# ChatCompletionStreamState, fed the same payloads (read by make_expected's naive SSE reader, up to
# the first error payload, where openai's Stream raises) and read through current_completion_snapshot
# (get_final_completion() refuses every finish_reason "length"). Its rules differ from ours in a few
# documented places; each difference is named in _openai_view/_our_view and nothing else is mapped.


def openai_snapshot(name: str, oracle: Any) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """openai's snapshot as a dict, and the payloads it was fed; skips where openai crashes."""
    pytest.importorskip("openai")
    import warnings

    from openai._models import construct_type
    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk

    events, _ = oracle.read_data_events(FIXTURES / f"{name}.sse")
    payloads: List[Dict[str, Any]] = []
    for kind, data in events:
        payload = json.loads(data)
        if kind == "error" or payload.get("error") is not None:
            break
        payloads.append(payload)
    state: Any = ChatCompletionStreamState()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydantic warns about provider fields it does not know
            for payload in payloads:
                state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=payload))
        snapshot: Dict[str, Any] = state.current_completion_snapshot.to_dict()
    except Exception as exc:  # openai's own limits, recorded in the expectation files
        pytest.skip(f"openai's ChatCompletionStreamState does not survive it: {type(exc).__name__}: {exc}")
    return snapshot, payloads


_LABELS = ("role", "channel")
_NOT_COMPARED = {
    # Groq repeats the whole list in a later chunk, the call again with its output: openai merges it
    # by index as if it were fragments (the arguments twice); our rule keeps the last whole value.
    "executed_tools",
}


def _one_label(value: Any) -> Any:
    """openai concatenates a label a provider repeats in every chunk ("assistantassistant"): undo it."""
    if isinstance(value, str) and value:
        for size in range(1, len(value) // 2 + 1):
            if len(value) % size == 0 and value[:size] * (len(value) // size) == value:
                return value[:size]
    return value


def _by_index(entries: Any) -> Any:
    """A list of dicts with "index" merged per index (strings joined, other values the last non-null).

    openai merges such lists (reasoning_details, executed_tools) by index; ours appends the
    fragments as they came (the spec's rule for reasoning_details). Both sides go through this.
    """
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "index" in e for e in entries):
        return entries
    merged: Dict[Any, Dict[str, Any]] = {}
    for entry in entries:
        into = merged.setdefault(entry["index"], {})
        for key, value in entry.items():
            if isinstance(value, str) and isinstance(into.get(key), str) and key not in ("index", "type"):
                into[key] += value
            elif value is not None or key not in into:
                into[key] = value
    return list(merged.values())


def _message_view(message: Dict[str, Any]) -> Dict[str, Any]:
    skip = {"parsed", "tool_calls", *_NOT_COMPARED}
    view = {k: v for k, v in message.items() if v is not None and k not in skip}
    for key in _LABELS:
        if key in view:
            view[key] = _one_label(view[key])
    if view.get("refusal") == "":
        del view["refusal"]  # "" sent as refusal (Snowflake): openai keeps "", ours counts it as none
    view = {k: _by_index(v) for k, v in view.items()}
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        calls.append(
            {
                "id": _one_label(call.get("id")),
                "type": call.get("type"),
                "name": _one_label(function.get("name")),
                "arguments": function.get("arguments"),
            }
        )
    view["tool_calls"] = calls
    return view


def compare_with_openai(snapshot: Dict[str, Any], ours: Dict[str, Any]) -> List[str]:
    """Where our completion differs from openai's snapshot of the same payloads."""
    problems: List[str] = []
    # Identity: openai keeps the first chunk's value even when empty (Azure's prompt-filter chunk);
    # ours is the first non-empty. Compared wherever openai's is not empty.
    for key in ("id", "model", "created"):
        if snapshot.get(key) and snapshot[key] != ours.get(key):
            problems.append(f"{key}: openai {snapshot[key]!r}, ours {ours.get(key)!r}")
    # openai overwrites usage and system_fingerprint with every chunk's, null included (a chunk after
    # the usage chunk resets it); ours keeps the last non-null. Compared wherever openai's is set.
    for key in ("usage", "system_fingerprint"):
        if snapshot.get(key) and snapshot[key] != ours.get(key):
            problems.append(f"{key}: openai {snapshot[key]!r:.120}, ours {ours.get(key)!r:.120}")
    theirs = snapshot["choices"]
    mine = ours["choices"]
    indexes = ([c["index"] for c in theirs], [c["index"] for c in mine])
    if indexes[0] != indexes[1]:
        return [*problems, f"choices: openai {indexes[0]}, ours {indexes[1]}"]
    for their_choice, our_choice in zip(theirs, mine):
        where = f"choice {our_choice['index']}"
        if their_choice.get("finish_reason") != our_choice.get("finish_reason"):
            problems.append(f"{where} finish_reason: openai {their_choice.get('finish_reason')!r}")
        their_message = _message_view(their_choice["message"])
        our_message = _message_view(our_choice["message"])
        if their_message.get("role") is None:  # openai: absent until a chunk names it; ours defaults
            our_message.pop("role", None)
        for their_call, our_call in zip(their_message["tool_calls"], our_message["tool_calls"]):
            if their_call["type"] is None:  # openai: absent when never sent; ours defaults "function"
                our_call["type"] = None
        for key in sorted(set(their_message) | set(our_message)):
            if their_message.get(key) != our_message.get(key):
                problems.append(
                    f"{where} message.{key}: openai {their_message.get(key)!r:.160}, "
                    f"ours {our_message.get(key)!r:.160}"
                )
        their_logprobs = their_choice.get("logprobs") or {}
        our_logprobs = our_choice.get("logprobs") or {}
        for key in ("content", "refusal"):
            if (their_logprobs.get(key) or None) != (our_logprobs.get(key) or None):
                problems.append(f"{where} logprobs.{key} differ")
    return problems


@pytest.mark.parametrize("name", NAMES)
def test_openai_stream_state_agrees(name: str, oracle: Any) -> None:
    """On every fixture openai-python's state survives, our accumulator fed the same payloads agrees."""
    snapshot, payloads = openai_snapshot(name, oracle)
    accumulator = ChatCompletionAccumulator()
    for payload in payloads:
        accumulator.feed(payload)
    problems = compare_with_openai(snapshot, accumulator.completion().to_dict())
    assert not problems, "\n".join(problems)
