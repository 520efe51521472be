"""A two-tool agent: decorated functions, run while the answer streams, results sent back.

``@openai_stream.tool`` turns typed functions into tool definitions;
``run_tools`` streams each round, starts every tool as soon as its call is
complete, sends the results back and repeats until the model answers.

Without OPENAI_API_KEY it talks to a loopback server replaying a scripted
two-round conversation (it says so); with a key it asks the real API
(OPENAI_BASE_URL and OPENAI_MODEL are honoured).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Literal, Optional

import openai_stream
from openai_stream import ContentDeltaEvent, RoundEvent, ToolCallDeltaEvent, ToolResultEvent
from openai_stream.testing import ReplayServer, ScriptedResponse

_TEMPERATURES = {"paris": 21.0, "edinburgh": 13.5, "tokyo": 26.0}
_OFFSETS = {"paris": 2, "edinburgh": 1, "tokyo": 9}


@openai_stream.tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> Dict[str, Any]:
    """The current temperature in a city.

    Args:
        city: The city's name, e.g. "Paris".
        unit: The temperature unit.
    """
    celsius = _TEMPERATURES.get(city.lower())
    if celsius is None:
        raise ValueError(f"no weather data for {city}")
    value = celsius if unit == "celsius" else celsius * 9 / 5 + 32
    return {"city": city, "temperature": round(value, 1), "unit": unit}


@openai_stream.tool
def get_local_time(city: str, utc_time: Optional[str] = None) -> str:
    """The local time in a city.

    Args:
        city: The city's name.
        utc_time: A UTC time as HH:MM; now (12:00 in this demo) when omitted.
    """
    hours, minutes = (utc_time or "12:00").split(":")
    offset = _OFFSETS.get(city.lower(), 0)
    return f"{(int(hours) + offset) % 24:02d}:{minutes} in {city}"


def _chunk(delta: Dict[str, Any], finish: Optional[str] = None) -> Dict[str, Any]:
    return {
        "id": "chatcmpl-demo",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "scripted-demo",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _call(index: int, call_id: str, name: str, arguments: str) -> List[Dict[str, Any]]:
    """One tool call as a model streams it: the name first, then the arguments in pieces."""
    head = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    pieces = [arguments[i : i + 6] for i in range(0, len(arguments), 6)]
    return [_chunk({"tool_calls": [head]})] + [
        _chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}) for p in pieces
    ]


def scripted_conversation() -> List[ScriptedResponse]:
    """Round 1 calls both tools in parallel; round 2 answers with their results."""
    first = [
        _chunk({"role": "assistant", "content": None}),
        *_call(0, "call_weather", "get_weather", json.dumps({"city": "Edinburgh", "unit": "celsius"})),
        *_call(1, "call_time", "get_local_time", json.dumps({"city": "Edinburgh"})),
        _chunk({}, "tool_calls"),
    ]
    answer = "It is 13.5 °C in Edinburgh, where the local time is 13:00."
    second = [_chunk({"role": "assistant", "content": ""})]
    second += [_chunk({"content": answer[i : i + 8]}) for i in range(0, len(answer), 8)]
    second.append(_chunk({}, "stop"))
    return [ScriptedResponse.from_chunks(first, delay=0.02), ScriptedResponse.from_chunks(second, delay=0.02)]


def main(base_url: Optional[str] = None) -> List[Dict[str, Any]]:
    """Run the agent and return the whole conversation."""
    with openai_stream.Client(base_url=base_url) as client:
        runner = client.chat.completions.run_tools(
            model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
            messages=[{"role": "user", "content": "What's the weather and the local time in Edinburgh?"}],
            tools=[get_weather, get_local_time],
            max_rounds=5,
        )

        @runner.on("tool_call.delta")
        def arguments_so_far(event: ToolCallDeltaEvent) -> None:
            print(f"  [call {event.index}] {event.name}({event.partial_arguments})")

        @runner.on("tool.result")
        def result(event: ToolResultEvent) -> None:
            outcome = f"failed: {event.exception}" if event.exception else event.content
            print(f"  -> {event.name} {outcome} ({event.seconds * 1000:.1f} ms)")

        @runner.on("content.delta")
        def show(event: ContentDeltaEvent) -> None:
            print(event.delta, end="", flush=True)

        @runner.on("round")
        def round_done(event: RoundEvent) -> None:
            print(f"\n(round {event.number}: finish_reason={event.completion.choices[0].finish_reason})")

        runner.until_done()
        return runner.messages


if __name__ == "__main__":
    if os.environ.get("OPENAI_API_KEY"):
        main()
    else:
        with ReplayServer(scripted_conversation(), repeat_last=False) as server:
            print(f"(no OPENAI_API_KEY: a scripted two-round conversation replayed from {server.base_url})")
            conversation = main(server.base_url)
            sent_back = server.requests[-1].json["messages"]
            assert sent_back == conversation[:-1], "the second request carries the tool results"
            print(f"({len(server.requests)} requests; the last one sent {len(sent_back)} messages back)")
