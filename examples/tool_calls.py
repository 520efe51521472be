"""Tool calls as events: act on each call as soon as it is complete.

``tool_call.done`` fires for call 0 while call 1 is still streaming, so a
handler can start work early. Replays a transcript with two parallel calls,
built from OpenAI's documented chunk shape, unless OPENAI_API_KEY is set.
"""

from __future__ import annotations

import json
import os

import openai_stream
from openai_stream import ToolCallDeltaEvent, ToolCallDoneEvent
from openai_stream.testing import demo_server

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "GetWeatherArgs",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "country": {"type": "string"},
                    "units": {"type": "string", "enum": ["c", "f"]},
                },
                "required": ["city", "country", "units"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_stock_price",
            "parameters": {
                "type": "object",
                "properties": {"ticker": {"type": "string"}, "exchange": {"type": "string"}},
                "required": ["ticker", "exchange"],
            },
        },
    },
]


def main(base_url: str | None = None) -> list[tuple[str, dict[str, object]]]:
    calls: list[tuple[str, dict[str, object]]] = []
    with openai_stream.Client(base_url=base_url) as client:
        stream = client.chat.completions.stream(
            model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
            messages=[{"role": "user", "content": "Weather in Edinburgh in C, and AAPL's price?"}],
            tools=TOOLS,
        )

        @stream.on("tool_call.delta")
        def progress(event: ToolCallDeltaEvent) -> None:
            print(f"  call {event.index} ({event.name}): {event.arguments_snapshot}")

        @stream.on("tool_call.done")
        def run(event: ToolCallDoneEvent) -> None:
            arguments = json.loads(event.arguments)
            print(f"-> call {event.index} complete: {event.name}({arguments}) id={event.call_id}")
            calls.append((event.name or "", arguments))

        completion = stream.until_done()
        print("finish_reason:", completion.choices[0].finish_reason)
    return calls


if __name__ == "__main__":
    if os.environ.get("OPENAI_API_KEY"):
        main()
    else:
        with demo_server("documented-parallel-tool-calls.sse") as server:
            print(f"(no OPENAI_API_KEY: replaying a documented-shape transcript from {server.base_url})")
            main(server.base_url)
