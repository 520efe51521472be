"""Write tests/expected/<fixture>.json from the raw SSE fixtures with a naive oracle.

Run it by hand (``python tests/expected/make_expected.py``) only when a fixture
or a rule of the spec (issue 2, "Accumulation" and "SSE and the end of a
stream") changes, and review the diff by reading the fixture.

It deliberately does not import ``openai_stream``: the expectations must not be
a snapshot of the code under test. Each rule below is a plain restatement of
the spec, applied to the ``data:`` lines read with a few lines of string
handling. Whether the ``openai`` package's ``ChatCompletionStreamState`` survives
the file is recorded in the JSON (``openai_oracle``); where it does, the tests
compare its snapshot with our completion, a second opinion independent of this one.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "sse"  # the project's own recordings and documented shapes
# Other projects' recordings, read in place beside the clone (never copied in).
SHARED_ROOT = Path(os.environ.get("OPENAI_STREAM_SHARED") or HERE.parent.parent.parent / "shared")
SHARED = SHARED_ROOT / "fixtures" / "sse"


def fixture_path(name: str) -> Path:
    own = FIXTURES / f"{name}.sse"
    return own if own.exists() else SHARED / f"{name}.sse"

# Fields the spec names; everything else is an "extra" that must be kept.
CHUNK_FIELDS = {"id", "object", "created", "model", "system_fingerprint", "choices", "usage", "error"}
CHOICE_FIELDS = {"index", "delta", "message", "finish_reason", "logprobs"}
DELTA_FIELDS = {"role", "content", "refusal", "reasoning_content", "reasoning", "tool_calls", "function_call"}
APPENDED = {"annotations", "reasoning_details"}
DROPPED = {"obfuscation"}  # OpenAI's per-chunk padding: not part of the answer (issue 10 §3)

# Mapping of in-stream error payloads (issue 2): numeric code / status_code like HTTP.
STATUS_CLASS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}

NOTES = {
    "anthropic-openai-compat-tool-call-index1": "first tool-call index is 1; final list index 0",
    "azure-ai-inference-usage-every-chunk": "usage on every chunk, last kept; [DONE] without newline",
    "azure-async-filter-offsets": "trailing filter chunks with id ''/created 0 after finish",
    "azure-prompt-filter-first-chunk": "empty first chunk; no [DONE], complete (choice finished)",
    "azure-tool-call-prompt-filter": "empty first chunk; tool call split",
    "deepseek-finish-length": "400 deltas; finish length; no [DONE]",
    "groq-compound-executed-tools": "usage only under x_groq (promoted); executed_tools extra",
    "groq-error-event-tool-use-failed": "event: error frame -> BadRequestError 400",
    "huggingface-tgi-logprobs-nospace": "'data:' without space; id ''; no [DONE]",
    "llamacpp-n2-interleaved-usage-per-choice": "choice 1 first; one usage per choice, the last is kept",
    "mistral-incremental-tool-call": "second fragment has name '' and no id",
    "mistral-magistral-thinking-content-list": "content as typed parts",
    "mistral-tool-call-one-chunk": "call without index/type in the finishing chunk",
    "openai-moderation-chunk": "extra 'moderation' chunk after usage",
    "openai-n3-choices": "3 interleaved choices",
    "openrouter-keepalive-reasoning-length-error": "error chunk {code:400} after finish -> BadRequestError",
    "openrouter-reasoning-claude": "chunk with usage after the finish chunk",
    "openrouter-web-search-annotations": "annotations appended; finish chunk repeated",
    "perplexity-citations": "citations repeated whole; no [DONE], complete",
    "qwen-dashscope-tool-call": "id '' on continuation fragments",
    "snowflake-cortex-no-finish-reason": "[DONE] without finish_reason -> finish_reason None",
}


# --------------------------------------------------------------------------- SSE
def read_data_events(path: Path) -> Tuple[List[Tuple[str, str]], bool]:
    """(event type, data) of every event with data, and whether [DONE] came. Naive but per spec."""
    text = path.read_bytes().decode("utf-8")
    events: List[Tuple[str, str]] = []
    data: List[str] = []
    kind = ""
    for line in re.split(r"\r\n|\r|\n", text):
        if line == "":
            if data:
                events.append((kind or "message", "\n".join(data)))
            data, kind = [], ""
        elif line.startswith(":"):
            continue
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        elif line.startswith("event:"):
            kind = line[6:].strip()
    if data:  # last event without its blank line: taken when whole
        events.append((kind or "message", "\n".join(data)))
    done = any(d == "[DONE]" for _, d in events)
    cut = [e for e in events if e[1] != "[DONE]"]
    if done:
        cut = events[: [d for _, d in events].index("[DONE]")]
    return cut, done


# --------------------------------------------------------------------------- oracle
class ProtocolError(Exception):
    """The stream broke a rule: the client raises InvalidStreamDataError."""


class Call:
    def __init__(self) -> None:
        self.id: Optional[str] = None
        self.type: Optional[str] = None
        self.name: Optional[str] = None
        self.args: List[str] = []
        self.custom = False
        self.done = False


def whole_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


class ChoiceState:
    def __init__(self, index: int) -> None:
        self.index = index
        self.role: Optional[str] = None
        self.content: List[str] = []
        self.content_sent = False  # content "" counts: the content is empty, not absent
        self.refusal: List[str] = []
        self.reasoning: List[str] = []
        self.reasoning_field: Optional[str] = None
        self.calls: List[Call] = []
        self.by_index: Dict[Any, Call] = {}
        self.finish: Optional[str] = None
        self.finished = False
        self.logprobs: Optional[Dict[str, Any]] = None
        self.message_extra: Dict[str, Any] = {}
        self.choice_extra: Dict[str, Any] = {}


class Oracle:
    def __init__(self) -> None:
        self.first: Dict[str, Any] = {}
        self.usage: Optional[Dict[str, Any]] = None
        self.extra: Dict[str, Any] = {}
        self.choices: Dict[int, ChoiceState] = {}
        self.events: List[Tuple[Any, ...]] = []
        self.chunk_no = 0

    def emit(self, *event: Any) -> None:
        self.events.append((*event, self.chunk_no))

    def chunk(self, c: Dict[str, Any]) -> None:
        self.chunk_no += 1
        self.emit("chunk", None)
        for key in ("id", "model", "created", "system_fingerprint"):
            if key not in self.first and c.get(key):
                self.first[key] = c[key]
        for key, value in c.items():
            if key not in CHUNK_FIELDS and value is not None and key not in DROPPED:
                self.extra[key] = value
        for ch in c.get("choices") or []:
            self.choice(ch)
        if c.get("usage") is not None:
            self.usage = c["usage"]
            self.emit("usage", None)
        elif self.usage is None and isinstance((c.get("x_groq") or {}).get("usage"), dict):
            # choice (spec silent): Groq compound reports usage only inside x_groq
            self.usage = c["x_groq"]["usage"]
            self.emit("usage", None)

    def choice(self, ch: Dict[str, Any]) -> None:
        i = ch.get("index", 0)
        st = self.choices.setdefault(i, ChoiceState(i))
        delta = ch.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            st.content_sent = True
        if isinstance(content, str) and content:
            st.content.append(content)
            self.emit("content.delta", i)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text" and part.get("text"):
                    st.content.append(part["text"])
                    self.emit("content.delta", i)
                elif part.get("type") == "thinking":
                    for t in part["thinking"]:
                        if t.get("text"):
                            st.reasoning.append(t["text"])
                            st.reasoning_field = st.reasoning_field or "reasoning_content"
                            self.emit("reasoning.delta", i)
        if delta.get("refusal"):
            st.refusal.append(delta["refusal"])
            self.emit("refusal.delta", i)
        for field in ("reasoning_content", "reasoning"):
            if delta.get(field):
                st.reasoning.append(delta[field])
                st.reasoning_field = st.reasoning_field or field
                self.emit("reasoning.delta", i)
                break
        for frag in delta.get("tool_calls") or []:
            self.tool_fragment(st, frag)
        if delta.get("role") and st.role is None:
            st.role = delta["role"]
        for key, value in delta.items():
            if key in DELTA_FIELDS or value is None:
                continue
            old = st.message_extra.get(key)
            if key in APPENDED and isinstance(value, list):
                st.message_extra[key] = (old if isinstance(old, list) else []) + value
            elif key == "audio" and isinstance(value, dict):
                # issue 10 §3: data and transcript fragments joined, other fields the last value
                merged = dict(old) if isinstance(old, dict) else {}
                for k, v in value.items():
                    if k in ("data", "transcript") and isinstance(v, str):
                        merged[k] = (merged.get(k) or "") + v
                    elif v is not None:
                        merged[k] = v
                st.message_extra[key] = merged
            elif key == "thinking_blocks" and isinstance(value, list):
                st.message_extra[key] = merge_thinking(old if isinstance(old, list) else [], value)
            elif isinstance(value, str) and key not in ("channel", "index", "type"):
                # issue 10 §3: an unknown string field is text, concatenated (labels are not:
                # index and type as in openai-python, Groq's channel repeated in every chunk)
                st.message_extra[key] = (old if isinstance(old, str) else "") + value
            else:
                st.message_extra[key] = value
        for key, value in ch.items():
            if key not in CHOICE_FIELDS and value is not None:
                st.choice_extra[key] = value
        if ch.get("logprobs"):
            lp = st.logprobs if st.logprobs is not None else {}
            st.logprobs = lp
            for key, value in ch["logprobs"].items():
                if isinstance(value, list):
                    lp[key] = (lp.get(key) or []) + value
                elif value is not None or key not in lp:
                    lp[key] = value
        if ch.get("finish_reason") and not st.finished:
            st.finish = ch["finish_reason"]
            self.finish(st)

    def tool_fragment(self, st: ChoiceState, frag: Dict[str, Any]) -> None:
        custom = frag.get("custom")
        fn = custom if isinstance(custom, dict) else frag.get("function") or {}
        name, cid, idx = fn.get("name"), frag.get("id"), frag.get("index")
        if idx is not None and type(idx) is not int:
            raise ProtocolError(f"tool call index {idx!r}")
        call: Optional[Call]
        if idx is not None:
            call = st.by_index.get(idx)
            if call is not None and name and cid and call.id and cid != call.id:
                call = None
        elif cid:
            call = next((c for c in st.calls if c.id == cid), None)
        else:
            call = st.calls[-1] if st.calls else None
        if call is not None and cid and call.id and cid != call.id:
            call = next((c for c in st.calls if c.id == cid), call)
        if (call is not None and call.done) or (call is None and st.finished):
            raise ProtocolError("a fragment for a tool call already done")  # issue 10 §1
        new = call is None
        if call is None:
            # issue 10 §1: a new call completes the earlier ones whose arguments are a whole object
            for earlier in st.calls:
                if not earlier.done and whole_object("".join(earlier.args)):
                    earlier.done = True
                    self.emit("tool_call.done", st.index, st.calls.index(earlier))
            call = Call()
            st.calls.append(call)
            if idx is not None:
                st.by_index[idx] = call
        named_now = bool(name) and call.name is None
        call.id = call.id or cid or None
        call.type = call.type or frag.get("type") or None
        call.name = call.name or name or None
        call.custom = call.custom or isinstance(custom, dict) or frag.get("type") == "custom"
        args = (fn.get("input") if isinstance(custom, dict) else fn.get("arguments")) or ""
        if not isinstance(args, str):
            args = json.dumps(args)
        call.args.append(args)
        if args or new or named_now:
            self.emit("tool_call.delta", st.index, st.calls.index(call))

    def finish(self, st: ChoiceState) -> None:
        st.finished = True
        if st.reasoning:
            self.emit("reasoning.done", st.index)
        if st.content or (st.content_sent and not st.refusal and not st.calls):
            self.emit("content.done", st.index)
        if st.refusal:
            self.emit("refusal.done", st.index)
        for k, call in enumerate(st.calls):
            if not call.done:
                call.done = True
                self.emit("tool_call.done", st.index, k)
        self.emit("done", st.index)

    def end(self) -> None:
        self.chunk_no = None  # type: ignore[assignment]
        for i in sorted(self.choices):
            if not self.choices[i].finished:
                self.finish(self.choices[i])
        self.emit("completion", None)

    def facts(self) -> Dict[str, Any]:
        choices = []
        for i in sorted(self.choices):
            st = self.choices[i]
            logprobs = None
            if st.logprobs is not None:
                logprobs = {}
                for key, value in st.logprobs.items():
                    if isinstance(value, list):
                        logprobs[key] = {"tokens": len(value), "text": "".join(t["token"] for t in value)}
                    else:
                        logprobs[key] = value
            choices.append(
                {
                    "index": i,
                    "role": st.role or "assistant",
                    "finish_reason": st.finish,
                    "content": "".join(st.content) if st.content or st.content_sent else None,
                    "refusal": "".join(st.refusal) if st.refusal else None,
                    "reasoning": {"field": st.reasoning_field, "text": "".join(st.reasoning)}
                    if st.reasoning
                    else None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": c.type or ("custom" if c.custom else "function"),
                            "name": c.name,
                            "arguments": "".join(c.args),
                        }
                        for c in st.calls
                    ],
                    "logprobs": logprobs,
                    "message_extra": st.message_extra,
                    "choice_extra": st.choice_extra,
                }
            )
        return {
            "id": self.first.get("id", ""),
            "model": self.first.get("model", ""),
            "created": self.first.get("created", 0),
            "system_fingerprint": self.first.get("system_fingerprint"),
            "usage": self.usage,
            "extra": self.extra,
            "choices": choices,
        }


def merge_thinking(blocks: List[Any], fragments: List[Any]) -> List[Any]:
    """thinking_blocks (issue 10 §3): appended; thinking text continues an unsigned thinking
    block before it, and a fragment with only a signature signs the block before it."""
    blocks = [dict(b) if isinstance(b, dict) else b for b in blocks]
    for frag in fragments:
        last: Dict[str, Any] = blocks[-1] if blocks and isinstance(blocks[-1], dict) else {}
        mergeable = (
            isinstance(frag, dict)
            and bool(last)
            and set(frag) <= {"type", "thinking", "signature"}
            and frag.get("type", "thinking") == "thinking"
            and not last.get("signature")
        )
        if mergeable and last.get("type") == "thinking" and isinstance(frag.get("thinking") or "", str):
            last["thinking"] = (last.get("thinking") or "") + (frag.get("thinking") or "")
            if frag.get("signature"):
                last["signature"] = frag["signature"]
            continue
        if mergeable and not frag.get("thinking") and frag.get("signature"):
            last["signature"] = frag["signature"]
            continue
        blocks.append(dict(frag) if isinstance(frag, dict) else frag)
    return blocks


def error_outcome(payload: Dict[str, Any]) -> Dict[str, Any]:
    err: Dict[str, Any] = payload["error"] if isinstance(payload.get("error"), dict) else payload
    status = None
    for candidate in (err.get("code"), err.get("status_code"), err.get("status")):
        if isinstance(candidate, int) and not isinstance(candidate, bool):
            status = candidate
            break
    cls = "APIError"
    if status is not None:
        cls = "InternalServerError" if status >= 500 else STATUS_CLASS.get(status, "APIStatusError")
    return {
        "kind": "error",
        "class": cls,
        "status_code": status,
        "code": err.get("code"),
        "message": err.get("message"),
    }


def summarize(events: List[Tuple[Any, ...]]) -> Dict[str, Any]:
    counts: Dict[str, int] = {}
    for e in events:
        counts[e[0]] = counts.get(e[0], 0) + 1
    done_types = {"content.done", "refusal.done", "reasoning.done", "tool_call.done", "done", "completion"}
    sequence = []
    for e in events:
        if e[0] in done_types:
            # "type choice[/call] @chunk": the chunk (1-based) it came with, or @end for end()
            where = "end" if e[-1] is None else str(e[-1])
            target = "" if e[0] == "completion" else f" {e[1]}" + (f"/{e[2]}" if len(e) == 4 else "")
            sequence.append(f"{e[0]}{target} @{where}")
    return {"counts": dict(sorted(counts.items())), "done_sequence": sequence}


def run_oracle(path: Path) -> Dict[str, Any]:
    events, done = read_data_events(path)
    oracle = Oracle()
    outcome: Dict[str, Any] = {"kind": "ok"}
    for kind, data in events:
        payload = json.loads(data)
        if kind == "error":  # an `event: error` frame is never a chunk
            outcome = error_outcome(payload)
            break
        try:
            oracle.chunk(payload)
        except ProtocolError as exc:
            outcome = {
                "kind": "error",
                "class": "InvalidStreamDataError",
                "status_code": None,
                "code": None,
                "message": None,
                "reason": str(exc),
            }
            break
        if payload.get("error") is not None or payload.get("object") == "error":
            outcome = error_outcome(payload)
            break
    else:
        unfinished = not oracle.choices or not all(c.finished for c in oracle.choices.values())
        if not done and unfinished:
            outcome = {
                "kind": "error",
                "class": "StreamInterruptedError",
                "status_code": None,
                "code": None,
                "message": None,
            }
        else:
            oracle.end()
    return {
        "fixture": path.name,
        "data_events": len(events),
        "done_marker": done,
        "outcome": outcome,
        "completion": oracle.facts(),
        "events": summarize(oracle.events),
    }


# --------------------------------------------------------------------------- openai cross-check
def openai_opinion(path: Path) -> str:
    """Whether openai's ChatCompletionStreamState survives the fixture (read as current_completion_snapshot).

    tests/chat/test_fixtures.py compares that snapshot with our completion wherever it survives.
    """
    try:
        from openai._models import construct_type
        from openai.lib.streaming.chat import ChatCompletionStreamState
        from openai.types.chat import ChatCompletionChunk
    except ImportError:
        return "not run (openai not installed)"
    warnings.simplefilter("ignore")  # pydantic complains about non-string content parts
    events, _ = read_data_events(path)
    state: Any = ChatCompletionStreamState()
    try:
        for kind, data in events:
            payload = json.loads(data)
            if kind == "error" or payload.get("error") is not None:
                break  # openai's Stream raises APIError here
            state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=payload))
        state.current_completion_snapshot.to_dict()
    except Exception as exc:
        return f"crashes: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return "survives"


def main(argv: List[str]) -> int:
    names = argv or sorted({p.stem for folder in (FIXTURES, SHARED) for p in folder.glob("*.sse")})
    for name in names:
        path = fixture_path(name)
        expected = run_oracle(path)
        expected["openai_oracle"] = openai_opinion(path)
        if name in NOTES:
            expected["notes"] = NOTES[name]
        out = HERE / f"{name}.json"
        out.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(
            f"{name}: {expected['outcome']['kind']} {expected['outcome'].get('class', '')} "
            f"| openai: {expected['openai_oracle']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
