"""The Responses API with the chat handlers: print the text as it streams, then the usage.

The same ``content.delta`` handler as ``quickstart.py``, on ``client.responses.stream()``.
Runs against a real server when OPENAI_API_KEY is set (OPENAI_BASE_URL and OPENAI_MODEL pick
the server and model); otherwise it replays a Responses API stream recorded from the local
llama.cpp model from a loopback demo server, and says so.
"""

from __future__ import annotations

import os

import openai_stream
from openai_stream.testing import demo_server


def main(base_url: str | None = None) -> openai_stream.Response:
    client = openai_stream.Client(base_url=base_url)
    stream = client.responses.stream(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        input="Say hello in five words.",
        max_output_tokens=40,
    )

    @stream.on("content.delta")
    def show(event: openai_stream.ContentDeltaEvent) -> None:
        print(event.delta, end="", flush=True)

    @stream.on("response.completed")
    def finished(event: openai_stream.ResponseStreamEvent) -> None:
        print(f"\n[{event.type}: status {event.response.status}]")

    response = stream.until_done()
    if response.usage is not None:
        print(f"[{response.usage.input_tokens} input + {response.usage.output_tokens} output tokens]")
    client.close()
    return response


if __name__ == "__main__":
    if os.environ.get("OPENAI_API_KEY"):
        main()
    else:
        with demo_server("llamacpp-responses-text") as server:
            print(f"(no OPENAI_API_KEY: replaying a recorded Responses API stream from {server.base_url})")
            main(server.base_url)
