"""Decorator quickstart: print content as it streams, then the usage.

Runs against a real OpenAI-compatible server when OPENAI_API_KEY is set
(OPENAI_BASE_URL and OPENAI_MODEL pick the server and model); otherwise it
replays a stream recorded from the local llama.cpp model from a loopback demo server, and says so.
"""

from __future__ import annotations

import os

import openai_stream
from openai_stream.testing import demo_server


def main(base_url: str | None = None) -> openai_stream.ChatCompletion:
    client = openai_stream.Client(base_url=base_url)
    stream = client.chat.completions.stream(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        messages=[{"role": "user", "content": "Write a haiku about streams."}],
        stream_options={"include_usage": True},
    )

    @stream.on("content.delta")
    def show(event: openai_stream.ContentDeltaEvent) -> None:
        print(event.delta, end="", flush=True)

    @stream.on("done")
    def finished(event: openai_stream.DoneEvent) -> None:
        print(f"\n[choice {event.choice_index} finished: {event.finish_reason}]")

    completion = stream.until_done()
    if completion.usage is not None:
        print(f"[{completion.usage.total_tokens} tokens]")
    client.close()
    return completion


if __name__ == "__main__":
    if os.environ.get("OPENAI_API_KEY"):
        main()
    else:
        with demo_server("llamacpp-content-usage.sse") as server:
            print(f"(no OPENAI_API_KEY: replaying a recorded stream from {server.base_url})")
            main(server.base_url)
