"""Pull style: iterate over the same events a handler would get, in the same order.

Handlers registered on the stream still fire while you iterate. Leaving the
``with`` block closes the HTTP response, even if you stop early.
"""

from __future__ import annotations

import os
from collections import Counter

import openai_stream
from openai_stream import ContentDoneEvent
from openai_stream.testing import demo_server


def main(base_url: str | None = None) -> Counter[str]:
    seen: Counter[str] = Counter()
    client = openai_stream.Client(base_url=base_url)
    with client.chat.completions.stream(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        messages=[{"role": "user", "content": "Give me a fruit."}],
        n=2,
    ) as stream:
        for event in stream:
            seen[event.type] += 1
            if isinstance(event, ContentDoneEvent):
                print(f"choice {event.choice_index}: {event.content}")
        print("final:", [c.message.content for c in stream.current_completion.choices])
    client.close()
    print(dict(seen))
    return seen


if __name__ == "__main__":
    if os.environ.get("OPENAI_API_KEY"):
        main()
    else:
        with demo_server("llamacpp-n2-interleaved-usage-per-choice.sse") as server:
            print(f"(no OPENAI_API_KEY: replaying a recorded stream from {server.base_url})")
            main(server.base_url)
