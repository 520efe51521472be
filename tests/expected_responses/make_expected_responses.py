"""Write tests/expected_responses/<fixture>.json from the Responses API transcripts with a naive oracle.

    python tests/expected_responses/make_expected_responses.py [name ...]

Run it by hand only when a fixture or a rule changes, and review the diff by
reading the fixture. It deliberately does not import ``openai_stream``: each
rule below restates issue 12 and the API reference, applied to the decoded
``data:`` payloads with plain string and dict handling.

Rules (the documented ones, and the choices written down in the accumulator's docstring):

- A terminal event (``response.completed``, ``.incomplete``, ``.failed``) sends the final
  response object: its fields are the answer. When its ``output`` is empty (or it never came),
  the output is what the events built: items in the order they were announced, each item the
  ``response.output_item.done`` copy when that arrived, else the announced item with its parts
  (text = the ``*.done`` text, else the deltas joined; ``output_text`` parts get
  ``annotations`` and ``logprobs`` lists), or its arguments/input joined.
- Other top-level keys of the terminal event (llama.cpp's ``timings``) are kept on the response.
- A stream without a terminal event keeps the last lifecycle snapshot's fields (status
  ``in_progress``) and ends "interrupted"; ``response.failed`` and ``error`` end with a typed
  error (mapped by code like HTTP statuses); a second response id ends with InvalidStreamDataError.
- High-level events: one ``content.delta``/``refusal.delta``/``reasoning.delta`` per non-empty
  text delta, one ``*.done`` per part; ``tool_call.delta`` once when a call is announced plus one
  per non-empty arguments delta; ``tool_call.done`` once per call; ``usage`` and ``done`` at the
  terminal event; ``completion`` last, from ``end()``.

The ``openai`` package's ``ResponseStreamState`` is run as a second opinion
(``openai_oracle``): ``agrees``, ``differs: ...`` or ``crashes: ...``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "responses"

# The request's `text` parameter, for the fixtures that asked for JSON (from record_llamacpp.py
# and make_openai_shaped.py).
TEXT_PARAMS = {
    "llamacpp-json-schema": {"format": {"type": "json_schema", "name": "person"}},
    "openai-structured-output": {"format": {"type": "json_schema", "name": "person"}},
}
# Error codes of the fixtures -> the class the status mapping gives (errors.py: string codes by name).
ERROR_CLASSES = {"server_error": "InternalServerError", "rate_limit_exceeded": "RateLimitError"}
TEXT_KEYS = {"output_text": "text", "refusal": "refusal", "reasoning_text": "text", "summary_text": "text"}
VALUE_KEYS = {"function_call": "arguments", "custom_tool_call": "input"}
DELTA_PARTS = {
    "response.output_text.delta": "output_text",
    "response.refusal.delta": "refusal",
    "response.reasoning_text.delta": "reasoning_text",
    "response.reasoning_summary_text.delta": "summary_text",
}
DONE_PARTS = {
    "response.output_text.done": ("output_text", "text"),
    "response.refusal.done": ("refusal", "refusal"),
    "response.reasoning_text.done": ("reasoning_text", "text"),
    "response.reasoning_summary_text.done": ("summary_text", "text"),
}
HIGH_LEVEL = {
    "output_text": "content",
    "refusal": "refusal",
    "reasoning_text": "reasoning",
    "summary_text": "reasoning",
}


def read_payloads(path: Path) -> List[Dict[str, Any]]:
    payloads = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        data = [line[len("data:") :].lstrip(" ") for line in block.split("\n") if line.startswith("data:")]
        if data:
            payloads.append(json.loads("\n".join(data)))
    return payloads


class Oracle:
    def __init__(self) -> None:
        self.items: List[Dict[str, Any]] = []  # {"data", "parts", "summary", "value", "done", ...}
        self.snapshot: Optional[Dict[str, Any]] = None
        self.response_id: Optional[str] = None
        self.terminal: Optional[str] = None
        self.extra: Dict[str, Any] = {}
        self.counts: Dict[str, int] = {}
        self.dones: List[str] = []
        self.outcome: Dict[str, Any] = {"kind": "ok"}
        self.tool_calls = 0
        self.step = 0

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def done(self, label: str) -> None:
        self.count(label.split(" ")[0])
        self.dones.append(f"{label} @{self.step}")

    # --------------------------------------------------------------- items and parts
    def item(self, item_id: Optional[str], kind: str) -> Any:
        for item in self.items:
            if item_id is not None and item["data"].get("id") == item_id:
                return item
        if item_id is None:
            for item in reversed(self.items):
                if item["data"].get("type") == kind:
                    return item
        return self.new_item({"id": item_id, "type": kind} if item_id else {"type": kind})

    def new_item(self, data: Dict[str, Any]) -> Any:
        item: Dict[str, Any] = {
            "data": copy.deepcopy(data),
            "parts": [],
            "summary": [],
            "value": "",
            "final": None,
            "done": None,
            "tool": None,
            "tool_done": False,
        }
        if data.get("type") in VALUE_KEYS:
            item["tool"] = self.tool_calls
            self.tool_calls += 1
        self.items.append(item)
        return item

    def part(self, item: Dict[str, Any], payload: Dict[str, Any], kind: str, ending: bool) -> Any:
        summary = kind == "summary_text"
        parts = item["summary" if summary else "parts"]
        index = payload.get("summary_index" if summary else "content_index")
        if index is not None:
            while len(parts) <= index:
                parts.append(self.new_part({"type": kind}))
            return parts[index]
        same = [p for p in parts if p["data"]["type"] == kind]
        if same and (ending or not same[-1]["closed"]):
            return same[-1]
        part = self.new_part({"type": kind})
        parts.append(part)
        return part

    def new_part(self, data: Dict[str, Any]) -> Any:
        return {
            "data": copy.deepcopy(data),
            "text": "",
            "final": None,
            "done": None,
            "closed": False,
            "annotations": [],
            "logprobs": [],
        }

    def part_text(self, part: Dict[str, Any]) -> Any:
        if part["done"] is not None:
            return part["done"][TEXT_KEYS[part["data"]["type"]]]
        return part["final"] if part["final"] is not None else part["text"]

    def close_part(self, part: Dict[str, Any]) -> None:
        if not part["closed"]:
            part["closed"] = True
            kind = part["data"]["type"]
            self.done(f"{HIGH_LEVEL[kind]}.done {kind}")

    def close_item(self, item: Dict[str, Any]) -> None:
        for part in item["summary"] + item["parts"]:
            self.close_part(part)
        if item["tool"] is not None and not item["tool_done"]:
            item["tool_done"] = True
            key = VALUE_KEYS[item["data"]["type"]]
            final = item["done"][key] if item["done"] is not None else item["final"]
            if not item["value"] and final:
                self.count("tool_call.delta")  # arguments that arrived only whole: one delta
            self.done(f"tool_call.done #{item['tool']}")

    def finish_item(self, item: Dict[str, Any], data: Dict[str, Any]) -> None:
        """output_item.done (or a terminal snapshot's item): the item's final form."""
        item["done"] = copy.deepcopy(data)
        for key in ("summary", "content"):
            parts = item["summary" if key == "summary" else "parts"]
            for position, final in enumerate(data.get(key) or []):
                if position >= len(parts) or parts[position]["data"]["type"] != final["type"]:
                    parts.insert(position, self.new_part({"type": final["type"]}))
                part = parts[position]
                if not part["closed"]:
                    part["done"] = final
                    if not part["text"] and self.part_text(part):
                        self.count(f"{HIGH_LEVEL[final['type']]}.delta")  # the whole text as one delta
        self.close_item(item)

    def build_item(self, item: Dict[str, Any]) -> Any:
        if item["done"] is not None:
            return copy.deepcopy(item["done"])
        data = copy.deepcopy(item["data"])
        if item["parts"] or data.get("type") == "message":
            data["content"] = [self.build_part(p) for p in item["parts"]]
        if item["summary"]:
            data["summary"] = [self.build_part(p) for p in item["summary"]]
        key = VALUE_KEYS.get(data.get("type", ""))
        if key is not None:
            data[key] = item["final"] if item["final"] is not None else item["value"]
        return data

    def build_part(self, part: Dict[str, Any]) -> Any:
        if part["done"] is not None:
            return copy.deepcopy(part["done"])
        data = copy.deepcopy(part["data"])
        kind = data["type"]
        data[TEXT_KEYS[kind]] = self.part_text(part)
        if kind == "output_text":
            data["annotations"] = list(data.get("annotations") or []) + part["annotations"]
            data["logprobs"] = list(data.get("logprobs") or []) + part["logprobs"]
        return data

    # --------------------------------------------------------------- events
    def feed(self, payload: Dict[str, Any]) -> bool:
        """Apply one event; False when the stream ends here with an error."""
        kind = payload["type"]
        if kind in (
            "response.created",
            "response.in_progress",
            "response.queued",
            "response.completed",
            "response.incomplete",
            "response.failed",
        ):
            new_id = payload["response"].get("id")
            if self.response_id is None:
                self.response_id = new_id
            elif new_id != self.response_id:
                self.outcome = {"kind": "error", "class": "InvalidStreamDataError", "code": None}
                self.count("error")
                return False
            self.snapshot = payload["response"]
        if kind == "error":
            self.outcome = {"kind": "error", "class": ERROR_CLASSES[payload["code"]], "code": payload["code"]}
            self.count("error")
            return False
        if kind == "response.failed":
            self.terminal = kind
            self.extra.update(
                {k: v for k, v in payload.items() if k not in ("type", "response", "sequence_number")}
            )
            code = payload["response"]["error"]["code"]
            self.outcome = {"kind": "error", "class": ERROR_CLASSES[code], "code": code}
            self.count("error")
            return False
        if kind in ("response.completed", "response.incomplete"):
            self.terminal = kind
            self.extra.update(
                {k: v for k, v in payload.items() if k not in ("type", "response", "sequence_number")}
            )
            for data in payload["response"].get("output") or []:
                item = self.item(data.get("id"), data["type"])
                if item["done"] is None:
                    self.finish_item(item, data)
            for item in self.items:
                self.close_item(item)
            if isinstance(payload["response"].get("usage"), dict):
                self.done("usage")
            self.done(f"done {self.finish_reason(payload)}")
        elif kind == "response.output_item.added":
            if not any(i["data"].get("id") == payload["item"]["id"] for i in self.items):
                item = self.new_item(payload["item"])
                if item["tool"] is not None:
                    self.count("tool_call.delta")
        elif kind == "response.output_item.done":
            self.finish_item(self.item(payload["item"].get("id"), payload["item"]["type"]), payload["item"])
        elif kind in ("response.content_part.added", "response.reasoning_summary_part.added"):
            item = self.item(payload.get("item_id"), "message")
            summary = kind.startswith("response.reasoning_summary")
            parts = item["summary" if summary else "parts"]
            parts.append(self.new_part(payload["part"]))
        elif kind in ("response.content_part.done", "response.reasoning_summary_part.done"):
            item = self.item(payload.get("item_id"), "message")
            part = self.part(item, payload, payload["part"]["type"], ending=True)
            if not part["closed"]:
                part["done"] = payload["part"]
                self.close_part(part)
        elif kind in DELTA_PARTS:
            item = self.item(payload.get("item_id"), "message")
            part = self.part(item, payload, DELTA_PARTS[kind], ending=False)
            part["text"] += payload["delta"]
            part["logprobs"] += payload.get("logprobs") or []
            if payload["delta"]:
                self.count(f"{HIGH_LEVEL[DELTA_PARTS[kind]]}.delta")
        elif kind in DONE_PARTS:
            part_kind, key = DONE_PARTS[kind]
            item = self.item(payload.get("item_id"), "message")
            part = self.part(item, payload, part_kind, ending=True)
            if not part["closed"]:
                part["final"] = payload[key]
                self.close_part(part)
        elif kind == "response.output_text.annotation.added":
            item = self.item(payload.get("item_id"), "message")
            self.part(item, payload, "output_text", ending=True)["annotations"].append(payload["annotation"])
        elif kind in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
            item = self.item(payload.get("item_id"), "function_call")
            item["value"] += payload["delta"]
            if payload["delta"]:
                self.count("tool_call.delta")
        elif kind in ("response.function_call_arguments.done", "response.custom_tool_call_input.done"):
            item = self.item(payload.get("item_id"), "function_call")
            item["final"] = payload["arguments" if "arguments" in payload else "input"]
            self.close_item(item)
        elif kind.startswith("response.web_search_call."):
            item = self.item(payload.get("item_id"), "web_search_call")
            if item["done"] is None:
                item["data"]["status"] = kind.rsplit(".", 1)[1]
        return True

    def finish_reason(self, payload: Dict[str, Any]) -> Any:
        """What a chat handler would read: stop, tool_calls, or length for a max_output_tokens cut."""
        if payload["type"] == "response.incomplete":
            reason = payload["response"]["incomplete_details"]["reason"]
            return {"max_output_tokens": "length", "content_filter": "content_filter"}.get(reason, reason)
        return "tool_calls" if self.tool_calls else "stop"

    def response(self) -> Dict[str, Any]:
        data = copy.deepcopy(self.snapshot) if self.snapshot is not None else {}
        data.setdefault("id", self.response_id or "")
        data.setdefault("object", "response")
        if data.get("status") is None:
            data["status"] = "in_progress"
        if not (self.terminal and data.get("output")):
            data["output"] = [self.build_item(item) for item in self.items]
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data


def output_text(response: Dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def run_oracle(path: Path) -> Dict[str, Any]:
    oracle = Oracle()
    for step, payload in enumerate(read_payloads(path), start=1):
        oracle.step = step
        if not oracle.feed(payload):
            break
    else:
        if oracle.terminal is None:
            oracle.outcome = {"kind": "interrupted", "class": "StreamInterruptedError"}
        else:
            oracle.step = "end"  # type: ignore[assignment]
            oracle.done("completion")
    response = oracle.response()
    text_param = TEXT_PARAMS.get(path.stem)
    if text_param is not None:
        try:
            response["parsed"] = json.loads(output_text(response))
        except ValueError:
            response["parsed"] = None
    return {
        "text_param": text_param,
        "outcome": oracle.outcome,
        "output_text": output_text(response),
        "response": response,
        "events": {"counts": dict(sorted(oracle.counts.items())), "done_sequence": oracle.dones},
    }


# --------------------------------------------------------------------------- openai cross-check
def openai_opinion(path: Path, expected: Dict[str, Any]) -> str:
    """What openai's ResponseStreamState makes of the fixture, compared with the oracle."""
    try:
        from openai._models import construct_type_unchecked
        from openai._types import omit
        from openai.lib.streaming.responses._responses import ResponseStreamState
        from openai.types.responses import ResponseStreamEvent
    except ImportError:
        return "not run (openai not installed)"
    state: Any = ResponseStreamState(input_tools=omit, text_format=omit)
    final: Optional[Dict[str, Any]] = None
    try:
        for payload in read_payloads(path):
            if payload["type"] in ("error", "response.failed"):
                break  # openai's stream raises here
            event: Any = construct_type_unchecked(type_=ResponseStreamEvent, value=payload)  # type: ignore[arg-type]
            for out in state.handle_event(event):
                if out.type == "response.completed":
                    final = out.response.to_dict()
    except Exception as exc:  # the verdict records how it failed
        return f"crashes: {type(exc).__name__}: {exc}"[:300]
    if expected["outcome"]["kind"] != "ok":
        return "agrees" if final is None else "differs: completed a stream the oracle does not"
    if final is None:
        return "differs: no response.completed" if expected["response"]["status"] == "completed" else "agrees"
    mine = expected["response"]
    theirs_text = "".join(
        part.get("text") or ""
        for item in final.get("output") or []
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    )
    if theirs_text != expected["output_text"]:
        return f"differs: output_text {theirs_text[:60]!r}"
    if [i.get("id") for i in final.get("output") or []] != [i.get("id") for i in mine["output"]]:
        return "differs: output item ids"
    return "agrees"


def main(argv: List[str]) -> int:
    names = argv or sorted(p.stem for p in FIXTURES.glob("*.sse"))
    for name in names:
        path = FIXTURES / f"{name}.sse"
        expected = run_oracle(path)
        expected["openai_oracle"] = openai_opinion(path, expected)
        out = HERE / f"{name}.json"
        out.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(
            f"{name}: {expected['outcome']['kind']} {expected['outcome'].get('class', '')} "
            f"| openai: {expected['openai_oracle']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
