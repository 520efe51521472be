"""The streams the benchmark replays, built deterministically from a name and a size.

Chunks are shaped like OpenAI's own (same keys, same order, compact JSON), so
JSON decoding costs what it costs against the real API. Every client reduces
its result to one canonical string with :func:`final_text`-style helpers, and
the runner asserts they all agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Sequence

__all__ = [
    "Scenario",
    "build_chunks",
    "RESPONSES",
    "encode_events",
    "chunked_body",
    "text_from_choices",
    "CHOICE_SEP",
    "CALL_SEP",
]

# Separators that cannot occur in generated text: choice boundaries and tool calls.
CHOICE_SEP = "\x1e"
CALL_SEP = "\x1f"

_ID = "chatcmpl-BENCH0000000000000000000000"
_CREATED = 1727346168
_MODEL = "gpt-4o-2024-08-06"
_FINGERPRINT = "fp_5050236cbd"
# fmt: off
_WORDS = (
    "the", "stream", "of", "tokens", "arrives", "one", "small", "piece", "at", "a", "time",
    "and", "every", "handler", "sees", "it", "as", "soon", "bytes", "land", "café", "naïve",
    "ok", "—", "results", "with", "parallel", "calls", "in", "order", ",", ".", "\n",
)
# fmt: on


RESPONSES = "responses"
"""The kind of a Responses API scenario (``POST /responses`` events, no ``[DONE]``)."""
_RESPONSE_ID = "resp_BENCH00000000000000000000000000000000000000000"
_ITEM_ID = "msg_BENCH00000000000000000000000000000000000000000"


@dataclass(frozen=True)
class Scenario:
    """One benchmark stream: ``kind`` is ``content``, ``tools``, ``choices`` or ``responses``.

    A ``responses`` scenario is a Responses API stream of one message with
    ``size`` ``response.output_text.delta`` events, shaped as OpenAI sends them
    (``event:`` lines, ``sequence_number``, indexes, ``logprobs``, ``obfuscation``).

    ``size`` is the number of content deltas (``content``), argument fragments
    per call (``tools``, with ``calls`` calls) or deltas per choice
    (``choices``, with ``n`` choices).
    """

    name: str
    kind: str
    size: int
    calls: int = 4
    n: int = 3

    def spec(self) -> Dict[str, Any]:
        """A JSON-ready description (the server subprocess rebuilds the stream from it)."""
        return {"name": self.name, "kind": self.kind, "size": self.size, "calls": self.calls, "n": self.n}

    @classmethod
    def from_spec(cls, spec: Dict[str, Any]) -> Scenario:
        """The inverse of :meth:`spec`."""
        return cls(spec["name"], spec["kind"], int(spec["size"]), int(spec["calls"]), int(spec["n"]))


def _token(i: int) -> str:
    word = _WORDS[(i * 7 + i // 5) % len(_WORDS)]
    return word if i == 0 else " " + word


def _chunk(choices: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": _MODEL,
        "system_fingerprint": _FINGERPRINT,
        "choices": choices,
    }


def _choice(index: int, delta: Dict[str, Any], finish_reason: Any = None) -> Dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _usage_chunk(completion_tokens: int) -> Dict[str, Any]:
    chunk = _chunk([])
    chunk["usage"] = {
        "prompt_tokens": 17,
        "completion_tokens": completion_tokens,
        "total_tokens": 17 + completion_tokens,
    }
    return chunk


def _content_chunks(size: int) -> Iterator[Dict[str, Any]]:
    yield _chunk([_choice(0, {"role": "assistant", "content": "", "refusal": None})])
    for i in range(size):
        yield _chunk([_choice(0, {"content": _token(i)})])
    yield _chunk([_choice(0, {}, "stop")])
    yield _usage_chunk(size)


def _tool_chunks(calls: int, fragments: int) -> Iterator[Dict[str, Any]]:
    yield _chunk([_choice(0, {"role": "assistant", "content": None})])
    for k in range(calls):
        announce = {
            "index": k,
            "id": f"call_BENCH{k:018d}",
            "type": "function",
            "function": {"name": f"search_{k}", "arguments": ""},
        }
        yield _chunk([_choice(0, {"tool_calls": [announce]})])
        for j in range(fragments):
            if j == 0:
                piece = '{"query": "'
            elif j == fragments - 1:
                piece = '"}'
            else:
                piece = _token(j + k).replace("\n", "\\n")
            yield _chunk([_choice(0, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})])
    yield _chunk([_choice(0, {}, "tool_calls")])
    yield _usage_chunk(calls * fragments)


def _choices_chunks(n: int, size: int) -> Iterator[Dict[str, Any]]:
    for c in range(n):
        yield _chunk([_choice(c, {"role": "assistant", "content": "", "refusal": None})])
    for i in range(size):
        for c in range(n):
            yield _chunk([_choice(c, {"content": _token(i + c)})])
    for c in range(n):
        yield _chunk([_choice(c, {}, "stop")])
    yield _usage_chunk(n * size)


def _response_events(size: int) -> Iterator[Dict[str, Any]]:
    """A Responses API text stream, as OpenAI's API reference documents each event."""
    response = {
        "id": _RESPONSE_ID, "object": "response", "created_at": _CREATED, "status": "in_progress",
        "error": None, "incomplete_details": None, "model": _MODEL, "output": [], "usage": None,
    }
    yield {"type": "response.created", "response": response}
    yield {"type": "response.in_progress", "response": response}
    item = {"id": _ITEM_ID, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    yield {"type": "response.output_item.added", "output_index": 0, "item": item}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    yield {"type": "response.content_part.added", "item_id": _ITEM_ID, "output_index": 0,
           "content_index": 0, "part": part}
    texts = []
    for i in range(size):
        token = _token(i)
        texts.append(token)
        padding = "x" * (16 - len(token) % 16)  # OpenAI pads deltas to hide their length
        yield {"type": "response.output_text.delta", "item_id": _ITEM_ID, "output_index": 0,
               "content_index": 0, "delta": token, "logprobs": [], "obfuscation": padding}
    text = "".join(texts)
    yield {"type": "response.output_text.done", "item_id": _ITEM_ID, "output_index": 0, "content_index": 0,
           "text": text, "logprobs": []}
    done_part = {**part, "text": text}
    yield {"type": "response.content_part.done", "item_id": _ITEM_ID, "output_index": 0,
           "content_index": 0, "part": done_part}
    done_item = {**item, "status": "completed", "content": [done_part]}
    yield {"type": "response.output_item.done", "output_index": 0, "item": done_item}
    usage = {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": size,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 9 + size}
    yield {"type": "response.completed",
           "response": {**response, "status": "completed", "output": [done_item], "usage": usage}}


def build_chunks(scenario: Scenario) -> List[Dict[str, Any]]:
    """The chunk dicts (event payloads) of ``scenario``, in order (without a final ``[DONE]``)."""
    if scenario.kind == RESPONSES:
        events = list(_response_events(scenario.size))
        for number, event in enumerate(events):
            event["sequence_number"] = number
        return events
    if scenario.kind == "content":
        return list(_content_chunks(scenario.size))
    if scenario.kind == "tools":
        return list(_tool_chunks(scenario.calls, scenario.size))
    if scenario.kind == "choices":
        return list(_choices_chunks(scenario.n, scenario.size))
    raise ValueError(f"unknown scenario kind {scenario.kind!r}")


def encode_events(chunks: Sequence[Dict[str, Any]]) -> List[bytes]:
    """Each chunk as one SSE event (``data: {json}`` and a blank line), then ``[DONE]``.

    Responses API events (a ``type`` of ``response.*``) go as OpenAI sends them:
    ``event: TYPE`` before each data line, and no ``[DONE]``.
    """
    if chunks and str(chunks[0].get("type", "")).startswith("response."):
        return [
            b"event: " + c["type"].encode() + b"\ndata: "
            + json.dumps(c, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
            for c in chunks
        ]
    events = [
        b"data: " + json.dumps(c, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
        for c in chunks
    ]
    events.append(b"data: [DONE]\n\n")
    return events


def chunked_body(events: Sequence[bytes]) -> bytes:
    """The HTTP/1.1 chunked body with one SSE event per HTTP chunk, and its terminator."""
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


def text_from_choices(choices: Dict[int, Any]) -> str:
    """The canonical final text: each choice's content, then each call as name and arguments.

    ``choices`` maps a choice index to ``(content, [(name, arguments), ...])``.
    """
    out = []
    for index in sorted(choices):
        content, calls = choices[index]
        out.append((content or "") + "".join(f"{CALL_SEP}{name}{CALL_SEP}{args}" for name, args in calls))
    return CHOICE_SEP.join(out)
