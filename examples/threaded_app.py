"""A worker pool that streams several prompts at once through one client, and cancels one.

Each worker thread streams one prompt with ``until_done()``; the main thread
watches them and cancels the one it no longer wants with ``stream.close()``,
which stops that stream at once (even while the server is silent) and makes its
worker's ``until_done()`` raise ``APIUserAbortError`` with the text received so
far. The other streams carry on over the same pooled client.

Ctrl-C stops the whole pool at once: the main thread, which waits on the
futures, gets the KeyboardInterrupt and calls ``client.close()``, which stops
every stream still running on the client (each worker's ``until_done()``
raises ``APIUserAbortError`` with what it received) and refuses new requests,
so queued workers fail fast and the pool shuts down in well under a second.

Runs against a real OpenAI-compatible server when OPENAI_API_KEY is set
(OPENAI_BASE_URL and OPENAI_MODEL pick the server and model); otherwise it
replays a recorded stream, slowed down, from a loopback server, and says so.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import openai_stream
from openai_stream.testing import demo_server

PROMPTS = [
    "Explain TCP slow start in two sentences.",
    "Write a haiku about connection pools.",
    "List three uses of a condition variable.",
    "Describe the SSE wire format briefly.",
]
CANCEL = 1  # the prompt whose stream the main thread cancels once it has started


def work(stream: openai_stream.ChatCompletionStream) -> str:
    """One worker: stream to the end and describe the outcome."""
    try:
        completion = stream.until_done()
    except openai_stream.APIUserAbortError as exc:
        choices = exc.completion.choices if exc.completion is not None else []
        partial = (choices[0].message.content or "") if choices else ""
        return f"cancelled after {len(partial)} characters: {partial!r}"
    except openai_stream.OpenAIError as exc:
        return f"failed: {exc}"
    return f"done: {completion.choices[0].message.content!r}"


def main(base_url: str | None = None) -> list[str]:
    model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    # idle_timeout: no worker hangs on a server that goes quiet (keep-alive pings do not count).
    with openai_stream.Client(base_url=base_url, max_connections=len(PROMPTS), idle_timeout=60) as client:
        streams = [
            client.chat.completions.stream(model=model, messages=[{"role": "user", "content": prompt}])
            for prompt in PROMPTS
        ]
        started = threading.Event()
        streams[CANCEL].once("content.delta", lambda event: started.set())
        with ThreadPoolExecutor(max_workers=len(PROMPTS), thread_name_prefix="worker") as pool:
            futures = [pool.submit(work, stream) for stream in streams]
            try:
                if started.wait(60):
                    streams[CANCEL].close()  # from the main thread, while its worker waits in until_done()
                outcomes = [future.result(timeout=300) for future in futures]
            except KeyboardInterrupt:
                client.close()  # stops every running stream of this client; the pool then exits at once
                print("interrupted: every stream was closed", flush=True)
                raise
    for number, (prompt, outcome) in enumerate(zip(PROMPTS, outcomes)):
        print(f"[{number}] {prompt}\n    {outcome}")
    return outcomes


if __name__ == "__main__":
    if os.environ.get("OPENAI_API_KEY"):
        main()
    else:
        # Every request gets the same recorded reply, one event every 50 ms (or DEMO_DELAY seconds).
        delay = float(os.environ.get("DEMO_DELAY", "0.05"))
        with demo_server("llamacpp-content-usage", delay=delay) as server:
            print(
                "(no OPENAI_API_KEY: every prompt gets the same recorded reply, slowed down, "
                f"from a loopback server at {server.base_url})"
            )
            main(server.base_url)
