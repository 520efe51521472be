"""The streaming test cases of five other projects (``../shared/peer-cases``), run against openai_stream.

Each case gives a stream (chunks or raw SSE) and what that project expects of
it. Nobody on this project wrote the expectations, so they are an independent
oracle. A case runs through the accumulator fed in memory (scope ``acc``),
through the real client over a loopback ReplayServer (scope ``e2e``), or both.
Every case must agree, or differ only where ``KNOWN`` names the deliberate
difference and why (``../shared/peer-cases/README.md`` lists the peers'
choices that are not ours). The files are read in place and never copied
here; without ``../shared`` the tests skip.
``PYTHONPATH=.:tests python tests/chat/test_peer_cases.py`` prints the summary.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Dict, List, Optional

import pytest
from conftest import PEER_CASES, run_accumulator

import openai_stream
from openai_stream.testing import ReplayServer, ScriptedResponse

ABSENT = "<absent>"


def _load() -> List[Dict[str, Any]]:
    cases: List[Dict[str, Any]] = []
    for path in sorted(PEER_CASES.glob("*/cases.json")):
        cases.extend(json.loads(path.read_text(encoding="utf-8")))
    return cases


CASES = _load()

_INDEX_GUARD = (
    "openai-node refuses choice and tool-call indexes outside 0..127 or beyond n (its array storage); "
    "we key by index and lose nothing (a non-integer index does fail here)"
)
_UNTERMINATED = (
    "a last data line without its blank line is taken when it is whole (Azure omits the blank line "
    "after [DONE]); openai-node drops it"
)
_NO_FINISH = (
    "[DONE] with no finish_reason completes with finish_reason None (Snowflake's streams do exactly "
    "this; documented); Vercel refuses the stream"
)
_NAMELESS_CALL = (
    "a tool call that never gets a name is kept (name None) and [DONE] completes it; Vercel refuses "
    "the stream"
)
_CONTENT_AT_INDEX_1 = (
    "Vercel's fixture puts the content under choice index 1 while role and finish are at 0; no real "
    "server does this, and each index keeps its own content here"
)
_USAGE_MERGE = (
    "LiteLLM merges usage fields across chunks; an OpenAI stream sends usage once, so the last "
    "non-null usage wins (OpenAI's contract)"
)
_AUDIO_FINISH = (
    "openai-node guesses finish_reason 'stop' when an audio stream sends none; we report None, as "
    "received (the audio itself agrees)"
)
_CHUNK_BUILDER = (
    "LiteLLM's chunk builder merges a list, not a stream: without [DONE] or a finish_reason the "
    "client reports StreamInterruptedError (this completion attached); the accumulator agrees"
)
_ROLE_USER = "the role is kept as the server sent it ('user'); openai-node refuses a non-assistant message"
_JSON_OBJECT = (
    "content of a json_object response_format is parsed too (issue 10 §3: any JSON response_format); "
    "openai-node parses only formats its helpers declare"
)
_STRUCTURED_CUT = (
    "structured output cut off (finish length/content_filter): the peer raises; we complete and raise "
    "StructuredOutputError only when content.done's parsed is read (documented)"
)
_LOGPROB_EVENTS = "openai-python emits logprobs.* events; logprobs are on the completion here, not events"
_EMPTY_DELTAS = (
    "openai-python emits content.delta for the empty content of role chunks; content.delta here is "
    "for non-empty fragments (documented)"
)
_DONE_SPACES = (
    "whitespace around [DONE] still ends the stream, as padded JSON lines are accepted (issue 10 §7); "
    "openai-node sees a JSON error"
)
_DONE_ERROR = "event: error with data [DONE] is an error, not the end (issue 10 §7); openai-node ends there"

ALL = ""
"""A KNOWN prefix that excuses every disagreement of the case."""

KNOWN: Dict[str, Dict[str, str]] = {
    **{
        case_id: {"error:": _INDEX_GUARD}
        for case_id in [
            *(f"node-iv-choice-{i}" for i in ("-1", "128", "100000000", "4294967295", "4294967296")),
            *(f"node-iv-choice-{i}" for i in ("9007199254740991", "9007199254740992", "127-then-128")),
            *(f"node-iv-toolcall-{i}" for i in ("-1", "128", "100000000", "4294967295", "4294967296")),
            *(f"node-iv-toolcall-{i}" for i in ("9007199254740991", "9007199254740992", "127-then-128")),
            "node-iv-beyond-n",
            "node-iv-n1-index1",
        ]
    },
    "node-core-unterminated-last-event": {"error:": _UNTERMINATED},
    "vercel-compat-1978-done": {"error:": _NO_FINISH},
    "vercel-compat-2691": {"error:": _NAMELESS_CALL},
    **{f"vercel-openai-{n}": {ALL: _CONTENT_AT_INDEX_1} for n in (2338, 2522, 3814, 3895, 3981)},
    "litellm-cache-read-usage": {"usage.": _USAGE_MERGE},
    "litellm-get-combined-tool-content": {"error:": _CHUNK_BUILDER},
    "litellm-empty-initial-id": {"error:": _CHUNK_BUILDER},
    "litellm-thinking-blocks": {"error:": _CHUNK_BUILDER},
    "node-audio-expires-at": {"choice 0.finish_reason": _AUDIO_FINISH},
    "node-role-user-finalization": {"error:": _ROLE_USER},
    "node-json-object-unparsed": {"choice 0.parsed": _JSON_OBJECT, "content_done[0].parsed": _JSON_OBJECT},
    "node-unfinished-schema-length": {"error:": _STRUCTURED_CUT},
    "node-unfinished-schema-content_filter": {"error:": _STRUCTURED_CUT},
    "oaipy-max-tokens-reached": {"error:": _STRUCTURED_CUT},
    "oaipy-content-logprobs": {"event_types:": _LOGPROB_EVENTS},
    "oaipy-refusal-logprobs": {"event_types:": _LOGPROB_EVENTS},
    "oaipy-n3-choices": {"event_types:": _EMPTY_DELTAS},
    "node-sentinel-suffix-trailing": {"error:": _DONE_SPACES},
    "node-sentinel-named-error-done": {"error:": _DONE_ERROR},
}
"""Case id -> {start of a disagreement: why the peer's expectation is not this project's behaviour}.

Only the disagreements that start so are excused; everything else the case
expects must still agree (``ALL`` excuses the whole case).
"""


# --------------------------------------------------------------------------- running a case
class Run:
    """What openai_stream made of one case: the error or the completion, and the events."""

    def __init__(self) -> None:
        self.events: List[Any] = []
        self.error: Optional[BaseException] = None
        self.completion: Any = None
        self.cut = False  # accumulator runs: the body ended without [DONE], a choice unfinished


def _body_pieces(source: Dict[str, Any]) -> List[bytes]:
    if "chunks" in source:
        events = ScriptedResponse.from_chunks(source["chunks"], done=bool(source.get("done"))).events
        assert events is not None
        return events
    if "sse" in source:
        return [source["sse"].encode()]
    if "sse_pieces" in source:
        return [piece.encode() for piece in source["sse_pieces"]]
    return [base64.b64decode(piece) for piece in source["sse_b64_pieces"]]


def run_accumulator_case(case: Dict[str, Any]) -> Run:
    """The accumulator fed in memory, through the engine's BodyReader, as the stream feeds it."""
    request = case.get("request") or {}
    out = run_accumulator(b"".join(_body_pieces(case["input"])), request.get("response_format"))
    run = Run()
    run.events = [e for e in out.events if e.type != "error"]
    run.error = out.error
    run.cut = out.interrupted
    run.completion = getattr(out.error, "completion", None) or out.completion
    return run


def run_client(case: Dict[str, Any]) -> Run:
    """The real client over a loopback ReplayServer, with a handler on every event type."""
    run = Run()
    response = ScriptedResponse(events=_body_pieces(case["input"]))
    with ReplayServer([response], repeat_last=False) as server, openai_stream.Client(
        base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=10
    ) as client:
        request = dict(case.get("request") or {})
        stream = client.chat.completions.stream(
            model="peer-case", messages=[{"role": "user", "content": "hi"}], **request
        )
        for kind in openai_stream.EVENT_TYPES:
            if kind not in ("response", "error"):
                stream.on(kind, run.events.append)
        try:
            with stream:
                run.completion = stream.until_done()
        except openai_stream.OpenAIError as exc:
            run.error = exc
            run.completion = getattr(exc, "completion", None)
    return run


# --------------------------------------------------------------------------- comparing
def _matches(want: Any, got: Any, path: str, problems: List[str], loose_space: bool = False) -> None:
    """``want`` is a subset of ``got``: dict keys it names, lists element by element."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            problems.append(f"{path}: want an object, got {got!r:.80}")
            return
        for key, value in want.items():
            if value == ABSENT:
                if key in got:
                    problems.append(f"{path}.{key}: want absent, got {got[key]!r:.80}")
            elif key.endswith("~"):
                _matches(value, got.get(key[:-1]), f"{path}.{key}", problems, loose_space=True)
            else:
                _matches(value, got.get(key), f"{path}.{key}", problems, loose_space)
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            problems.append(f"{path}: want {len(want)} items {want!r:.200}, got {got!r:.200}")
            return
        for i, (w, g) in enumerate(zip(want, got)):
            _matches(w, g, f"{path}[{i}]", problems, loose_space)
    elif loose_space and isinstance(want, str) and isinstance(got, str):
        if re.sub(r"\s+", "", want) != re.sub(r"\s+", "", got):
            problems.append(f"{path}: want {want!r:.120} (modulo whitespace), got {got!r:.120}")
    elif want != got or (type(want) is not type(got) and not (
        isinstance(want, (int, float)) and isinstance(got, (int, float)) and not isinstance(got, bool)
    )):
        problems.append(f"{path}: want {want!r:.200}, got {got!r:.200}")


def _calls(message: Dict[str, Any]) -> Optional[List[Dict[str, Any]]]:
    calls = message.get("tool_calls")
    if calls is None:
        return None
    flat = []
    for call in calls:
        entry = dict(call)
        function = call.get("function")
        if isinstance(function, dict):
            entry["name"] = function.get("name")
            entry["arguments"] = function.get("arguments")
        flat.append(entry)
    return flat


def _choice_facts(choice: Dict[str, Any]) -> Dict[str, Any]:
    message = choice["message"]
    facts = {
        "content": message.get("content"),
        "refusal": message.get("refusal"),
        "reasoning": message.get("reasoning_content", message.get("reasoning")),
        "finish_reason": choice.get("finish_reason"),
        "role": message.get("role"),
        "tool_calls": _calls(message),
        "parsed": message.get("parsed"),
        "logprobs": choice.get("logprobs"),
        "message": message,
        "choice": choice,
    }
    return facts


def _done_facts(event: Any) -> Dict[str, Any]:
    facts: Dict[str, Any] = {}
    for name in ("content", "refusal", "finish_reason", "call_id", "name", "arguments", "index"):
        if hasattr(event, name):
            facts["id" if name == "call_id" else name] = getattr(event, name)
    if event.type == "content.done":
        try:
            facts["parsed"] = event.parsed
        except openai_stream.OpenAIError as exc:
            facts["parsed"] = f"raises {type(exc).__name__}"
    return facts


def _error_agrees(want: Any, error: Optional[BaseException], problems: List[str]) -> None:
    if want is None:
        return
    if want is False:
        if error is not None:
            problems.append(f"error: want none, got {type(error).__name__}: {error}")
        return
    if error is None:
        problems.append(f"error: want {want}, got none")
        return
    if want is True:
        return
    names = [want] if isinstance(want, str) else list(want)
    mro = {klass.__name__ for klass in type(error).__mro__}
    if not mro & set(names):
        problems.append(f"error: want {names}, got {type(error).__name__}: {error}")


def disagreements(case: Dict[str, Any], run: Run, *, client: bool) -> List[str]:
    """Each way ``run`` differs from the case's expectations (empty: it agrees)."""
    want = case["expect"]
    problems: List[str] = []
    wanted_error = want.get("error")
    scope = case.get("scope", "both")
    if wanted_error and run.error is None and run.cut and not client and scope == "both":
        # The body ended without [DONE] while a choice was unfinished: raising StreamInterruptedError
        # there is the stream's decision, which the client run of this case checks.
        wanted_error = None
    _error_agrees(wanted_error, run.error, problems)
    if "error_message" in want and (run.error is None or want["error_message"] not in str(run.error)):
        problems.append(f"error_message: want {want['error_message']!r} in {str(run.error)!r:.200}")
    data = run.completion.to_dict() if run.completion is not None else {"choices": []}
    choices = {choice["index"]: choice for choice in data["choices"]}
    if "n_choices" in want and len(choices) != want["n_choices"]:
        problems.append(f"n_choices: want {want['n_choices']}, got {len(choices)}")
    for index, expected in (want.get("choices") or {}).items():
        choice = choices.get(int(index))
        if choice is None:
            problems.append(f"choice {index}: missing")
            continue
        _matches(expected, _choice_facts(choice), f"choice {index}", problems)
    if "usage" in want:
        _matches(want["usage"], data.get("usage"), "usage", problems)
    if "top" in want:
        _matches(want["top"], data, "top", problems)
    for key, kind in (
        ("content_deltas", "content.delta"),
        ("reasoning_deltas", "reasoning.delta"),
        ("refusal_deltas", "refusal.delta"),
    ):
        if key in want:
            got = [e.delta for e in run.events if e.type == kind and e.delta]
            _matches(want[key], got, key, problems)
    if "tool_arg_deltas" in want:
        got_args = [[e.call_id, e.arguments_delta] for e in run.events if e.type == "tool_call.delta"]
        got_args = [pair for pair in got_args if pair[1]]
        _matches(want["tool_arg_deltas"], got_args, "tool_arg_deltas", problems)
    for key, kind in (
        ("tool_done", "tool_call.done"),
        ("content_done", "content.done"),
        ("refusal_done", "refusal.done"),
        ("done", "done"),
    ):
        if key in want:
            got_done = [_done_facts(e) for e in run.events if e.type == kind]
            _matches(want[key], got_done, key, problems)
    if "event_types" in want:
        named = set(want.get("event_types_filter") or want["event_types"])
        got_types = [e.type for e in run.events if e.type in named]
        _matches(want["event_types"], got_types, "event_types", problems)
    return problems


def case_disagreements(case: Dict[str, Any]) -> List[str]:
    """Disagreements of every run the case's scope asks for, each prefixed with the run's name."""
    scope = case.get("scope", "both")
    found = []
    if scope in ("both", "acc"):
        found += [f"accumulator: {p}" for p in disagreements(case, run_accumulator_case(case), client=False)]
    if scope in ("both", "e2e"):
        found += [f"client: {p}" for p in disagreements(case, run_client(case), client=True)]
    return found


# --------------------------------------------------------------------------- the tests
needs_cases = pytest.mark.skipif(
    not CASES, reason=f"the peer cases are read in place from {PEER_CASES}, which is absent"
)


def _excuse(case_id: str, problem: str) -> Optional[str]:
    """The reason a disagreement is a known, deliberate difference, or None."""
    detail = problem.split(": ", 1)[1]  # after "accumulator: " or "client: "
    for prefix, reason in KNOWN.get(case_id, {}).items():
        if detail.startswith(prefix):
            return reason
    return None


@needs_cases
def test_known_differences_name_real_cases() -> None:
    assert set(KNOWN) <= {case["id"] for case in CASES}
    assert len(CASES) == 156


@needs_cases
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_peer_case(case: Dict[str, Any]) -> None:
    """The case agrees, or differs only where KNOWN names a deliberate difference."""
    problems = case_disagreements(case)
    unexcused = [p for p in problems if _excuse(case["id"], p) is None]
    assert not unexcused, "\n".join(unexcused)
    if case["id"] in KNOWN:
        assert problems, f"{case['id']} agrees now: remove it from KNOWN"


if __name__ == "__main__":  # a summary: PYTHONPATH=.:tests python tests/chat/test_peer_cases.py
    agree = excused = 0
    for case in CASES:
        found = case_disagreements(case)
        unexcused = [p for p in found if _excuse(case["id"], p) is None]
        agree += not found
        excused += bool(found) and not unexcused
        for problem in unexcused:
            print(f"{case['id']}: {problem[:300]}")
    print(f"{agree} of {len(CASES)} agree, {excused} differ only where KNOWN says why")
