"""Porting: a script written for openai-python runs on openai_stream with the import and client lines changed.

``tests/porting/openai_python_chat.py`` is plain openai-python code: it is first
run as it is, with the ``openai`` package (the oracle: what it prints there is
what it must print here), then with exactly its two ``PORT`` lines rewritten, each
against its own loopback ReplayServer answering the same script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from conftest import ROOT, TESTS

from openai_stream.testing import RecordedRequest, ReplayServer, ScriptedResponse

pytest.importorskip("openai")
pytest.importorskip("pydantic")

SCRIPT = TESTS / "porting" / "openai_python_chat.py"
PORTED = {
    "import openai  # PORT: the import line": "import openai_stream as openai  # PORT: the import line",
    "client = openai.OpenAI(": "client = openai.Client(",
}
ANSWER = {
    "steps": [{"explanation": "Subtract 7 from both sides.", "output": "8x = -30"},
              {"explanation": "Divide by 8.", "output": "x = -3.75"}],
    "final_answer": "x = -3.75",
}


def chunk(delta: Dict[str, Any], finish: Any = None) -> Dict[str, Any]:
    return {"id": "chatcmpl-port", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def answer(content: str) -> ScriptedResponse:
    return ScriptedResponse.json({
        "id": "chatcmpl-whole", "object": "chat.completion", "created": 1_700_000_001, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": content, "refusal": None}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    })


def responses() -> List[ScriptedResponse]:
    text = json.dumps(ANSWER)
    pieces = [text[i : i + 17] for i in range(0, len(text), 17)]
    structured = [chunk({"role": "assistant", "content": ""}), *[chunk({"content": p}) for p in pieces],
                  chunk({}, "stop"),
                  {"id": "chatcmpl-port", "object": "chat.completion.chunk", "created": 1_700_000_000,
                   "model": "gpt-4o-mini", "choices": [],
                   "usage": {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60}}]
    call = {"index": 0, "id": "call_w1", "type": "function",
            "function": {"name": "GetWeather", "arguments": ""}}
    tool = [chunk({"role": "assistant", "tool_calls": [call]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris", '}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"unit": "c"}'}}]}),
            chunk({}, "tool_calls")]
    return [ScriptedResponse.from_chunks(structured), answer("Minus three point seven five."),
            ScriptedResponse.from_chunks(tool), answer("It is 18 degrees and sunny in Paris.")]


def run(source: str, tmp_path: Path, name: str) -> tuple[str, List[RecordedRequest]]:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = str(ROOT)
    with ReplayServer(responses(), repeat_last=False) as server:
        result = subprocess.run([sys.executable, str(path), server.base_url], env=env, cwd=str(tmp_path),
                                capture_output=True, text=True, timeout=120)
        requests = list(server.requests)
    assert result.returncode == 0, f"{name} failed:\n{result.stderr}"
    return result.stdout, requests


def test_the_openai_python_script_runs_with_two_lines_changed(tmp_path: Path) -> None:
    original = SCRIPT.read_text(encoding="utf-8")
    ported = original
    for old, new in PORTED.items():
        assert original.count(old) == 1
        ported = ported.replace(old, new)
    changed = [(a, b) for a, b in zip(original.splitlines(), ported.splitlines()) if a != b]
    assert len(changed) == 2 and all("# PORT" in a for a, _ in changed)

    expected, theirs = run(original, tmp_path, "with_openai.py")
    printed, ours = run(ported, tmp_path, "with_openai_stream.py")
    assert printed == expected
    assert "parsed on content.done: x = -3.75" in printed and "tool call: GetWeather" in printed
    assert printed.splitlines()[-1] == "final: It is 18 degrees and sunny in Paris."

    # The same requests went out. An assistant message that went back in differs only where
    # openai-python adds its own `parsed` and spells out absent fields as null.
    assert [r.path for r in ours] == [r.path for r in theirs]
    for mine, reference in zip(ours, theirs):
        assert _normal(mine.json) == _normal(reference.json)
    assert ours[1].headers["X-Trace"] == "porting" and ours[1].json["top_k"] == 1


def _normal(body: Dict[str, Any]) -> Dict[str, Any]:
    """openai-python also sends its own ``parsed`` and ``parsed_arguments``, the stream's tool-call
    ``index``, and absent fields as null; the rest must be equal."""
    messages = []
    for message in body["messages"]:
        message = {k: v for k, v in message.items() if k != "parsed" and v is not None}
        if "tool_calls" in message:
            message["tool_calls"] = [
                {**{k: v for k, v in call.items() if k != "index"},
                 "function": {k: v for k, v in call["function"].items() if k != "parsed_arguments"}}
                for call in message["tool_calls"]
            ]
        messages.append(message)
    return {**body, "messages": messages}
