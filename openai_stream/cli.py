"""``openai-stream``: stream a chat completion or a response, replay or record a transcript.

    openai-stream chat "Why is the sky blue?"          # OPENAI_API_KEY, or --base-url
    openai-stream chat --local "Name three colors."    # a real local model, no key
    openai-stream chat --api responses "Hello"         # the Responses API (POST /responses)
    openai-stream demo                                 # a packaged replay, no key, no network
    openai-stream replay transcript.sse                # any recorded stream
    openai-stream record transcript.sse "Hello"        # save a stream's raw bytes

Exit status: 0 ok, 1 the API or the stream failed (message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

import requests

from . import local
from ._version import __distribution__, __version__
from .chat._accumulator import ChatCompletionAccumulator
from .client import DEFAULT_BASE_URL, Client
from .engine._events import (
    CompletionEvent,
    ContentDeltaEvent,
    ErrorEvent,
    Event,
    ReasoningDeltaEvent,
    RefusalDeltaEvent,
    ResponseEvent,
    ToolCallDeltaEvent,
    ToolCallDoneEvent,
    UsageEvent,
)
from .engine._metrics import StreamMetrics
from .engine._stream import BaseStream
from .errors import OpenAIError
from .responses._accumulator import ResponseAccumulator
from .responses._events import ResponseCompletionEvent, ResponseUsageEvent
from .responses._response import Response
from .testing import ReplayServer, ScriptedResponse, demo_transcript, demo_transcripts, split_sse_events
from .transport._http import iter_body
from .transport._sse import SSEDecoder

__all__ = ["main", "event_to_dict", "Renderer"]

DEMO_TRANSCRIPT = "llamacpp-content-usage"


class UsageError(Exception):
    """A command-line mistake: exit status 2."""


def event_to_dict(event: Event) -> Dict[str, Any]:
    """A JSON-ready dict of an event: ``type`` plus its fields.

    Delta events leave out ``snapshot`` (join the deltas instead), so the
    output stays linear in the length of the stream.
    """
    head: Dict[str, Any] = {"type": event.type}
    if isinstance(event, ResponseEvent):
        return {**head, "status_code": event.status_code, "headers": dict(event.headers),
                "request_id": event.request_id}
    if isinstance(event, (CompletionEvent, ResponseCompletionEvent)):
        return {**head, "completion": event.completion.to_dict()}
    if isinstance(event, (UsageEvent, ResponseUsageEvent)):
        return {**head, "usage": event.usage.to_dict()}
    if isinstance(event, ErrorEvent):
        return {**head, "error": _error_dict(event.error)}
    return {**head, **event.to_dict()}


def _error_dict(error: BaseException) -> Dict[str, Any]:
    info: Dict[str, Any] = {"class": type(error).__name__, "message": str(error)}
    for name in ("status_code", "code", "request_id"):
        value = getattr(error, name, None)
        if value is not None:
            info[name] = value
    return info


class Renderer:
    """Writes events for a person: content plain, reasoning dim, tool calls and refusals marked.

    Each switch of kind starts a new line with a label (``[reasoning]``,
    ``[tool call N]``, ``[refusal]``). With ``several_choices`` (known before
    the stream starts: ``-n``, or a transcript read ahead), every choice is
    labelled ``[choice N]`` and shown in index order: choice 0 streams live,
    the others when :meth:`finish` is called at the end of the stream. When
    a second choice turns up unannounced, the first one to arrive has
    already streamed: the others follow it, labelled.
    """

    _STYLES = {"reasoning": "\x1b[2m", "tool": "\x1b[36m", "refusal": "\x1b[33m"}
    _RESET = "\x1b[0m"

    def __init__(self, out: TextIO, *, color: bool, several_choices: bool = False) -> None:
        self.out = out
        self.color = color
        self.several_choices = several_choices
        self._live: Optional[int] = None
        self._started = False  # the live choice showed its first event (and label)
        self._held: Dict[int, List[Event]] = {}
        self._section: Optional[str] = None
        self._line_open = False

    def handle(self, event: Event) -> None:
        """Show one event (events without text are ignored)."""
        choice = getattr(event, "choice_index", None)
        if choice is None:
            return
        if self._live is None:
            self._live = 0 if self.several_choices else choice
        if choice != self._live:
            self.several_choices = True
            self._held.setdefault(choice, []).append(event)
            return
        if not self._started:
            self._started = True
            if self.several_choices or choice != 0:
                self._announce(choice)
        if isinstance(event, ContentDeltaEvent):
            self._write("content", "", event.delta)
        elif isinstance(event, ReasoningDeltaEvent):
            self._write("reasoning", "[reasoning] ", event.delta)
        elif isinstance(event, RefusalDeltaEvent):
            self._write("refusal", "[refusal] ", event.delta)
        elif isinstance(event, ToolCallDeltaEvent):
            label = f"[tool call {event.index}] {event.name or '?'}("
            self._write(f"tool{event.index}", label, event.arguments_delta, style="tool")
        elif isinstance(event, ToolCallDoneEvent) and self._section == f"tool{event.index}":
            self._styled(")", "tool")
            self.end_line()
            self._section = None

    def finish(self) -> None:
        """Show the choices held back, in index order, and end the last line."""
        while self._held:
            choice = min(self._held)
            self.end_line()
            self._live, self._section, self._started = choice, None, True
            self._announce(choice)
            for event in self._held.pop(choice):
                self.handle(event)
        self.end_line()

    def _announce(self, choice: int) -> None:
        self.end_line()
        self.out.write(f"[choice {choice}]\n")

    def end_line(self) -> None:
        """Finish the current line, if text is on it."""
        if self._line_open:
            self.out.write("\n")
            self._line_open = False
        self.out.flush()

    def _write(self, kind: str, label: str, text: str, style: Optional[str] = None) -> None:
        if self._section != kind:
            self.end_line()
            self._section = kind
            self._styled(label, style or kind)
        self._styled(text, style or kind)
        self.out.flush()

    def _styled(self, text: str, kind: str) -> None:
        if not text:
            return
        code = self._STYLES.get(kind) if self.color else None
        self.out.write(f"{code}{text}{self._RESET}" if code else text)
        self._line_open = not text.endswith("\n")


def _run(stream: BaseStream[Any], args: argparse.Namespace, out: TextIO, err: TextIO, *,
         several_choices: bool = False, live: bool = True) -> int:
    """Consume the stream (chat or responses), showing events as they arrive; then the summary on ``err``.

    With ``--json`` the last line (the completion, or the error) also carries
    ``metrics``: the stream's :class:`~openai_stream.StreamMetrics`, as
    measured by the client (of the replay, for ``replay`` and ``demo``).
    """
    renderer = Renderer(out, color=_use_color(out), several_choices=several_choices)
    completion: Any = None
    last: Optional[Event] = None
    try:
        with stream:
            for event in stream:
                if isinstance(event, (CompletionEvent, ResponseCompletionEvent)):
                    completion, last = event.completion, event  # shown once the stream ended
                elif args.json:
                    out.write(json.dumps(event_to_dict(event), ensure_ascii=False) + "\n")
                    out.flush()
                else:
                    renderer.handle(event)
        if args.json and last is not None:
            # After the loop: the metrics are final.
            shown = {**event_to_dict(last), "metrics": stream.metrics.to_dict()}
            out.write(json.dumps(shown, ensure_ascii=False) + "\n")
            out.flush()
    except OpenAIError as exc:
        renderer.finish()
        if args.json:
            shown = {**event_to_dict(ErrorEvent(exc)), "metrics": stream.metrics.to_dict()}
            out.write(json.dumps(shown, ensure_ascii=False) + "\n")
            out.flush()
        err.write(f"error: {type(exc).__name__}: {exc}\n")
        return 1
    renderer.finish()
    if completion is not None:
        for line in _summary(completion, stream.metrics if live else None):
            err.write(line + "\n")
    return 0


def _summary(completion: Any, metrics: Optional[StreamMetrics]) -> List[str]:
    """Finish reasons (a response's status), usage, and timing from the metrics (``None``: a replay)."""
    data = completion.to_dict()
    usage = data.get("usage")
    if isinstance(completion, Response):
        details = data.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        lines = [f"[status] {data.get('status')}" + (f" ({reason})" if reason else "")]
        if isinstance(usage, dict):
            lines.append(
                f"[usage] {usage.get('input_tokens')} input + {usage.get('output_tokens')} "
                f"output = {usage.get('total_tokens')} tokens"
            )
    else:
        reasons = [str(choice.get("finish_reason")) for choice in data.get("choices", [])]
        lines = [f"[finish] {', '.join(reasons) or 'no choices'}"]
        if isinstance(usage, dict):
            lines.append(
                f"[usage] {usage.get('prompt_tokens')} prompt + {usage.get('completion_tokens')} "
                f"completion = {usage.get('total_tokens')} tokens"
            )
    timings = data.get("timings")
    server = ""
    if isinstance(timings, dict) and isinstance(timings.get("predicted_per_second"), (int, float)):
        server = (
            f"server: prompt {timings.get('prompt_per_second') or 0:.1f} tokens/s, "
            f"generation {timings['predicted_per_second']:.1f} tokens/s"
        )
    if metrics is None:
        lines.append("[time] replayed: no live timing" + (f" (recorded {server})" if server else ""))
        return lines
    lines.append("[time] " + metrics.summary() + (f", {server}" if server else ""))
    return lines


def _use_color(out: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def _request(args: argparse.Namespace) -> Dict[str, Any]:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if args.api == "responses":
        return _responses_request(args, prompt)
    messages: List[Dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    body: Dict[str, Any] = {"messages": messages}
    for name in ("max_tokens", "temperature", "seed", "n"):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    if not args.no_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def _responses_request(args: argparse.Namespace, prompt: str) -> Dict[str, Any]:
    """The body of a Responses API request: the prompt as ``input``, --system as ``instructions``."""
    if args.n not in (None, 1):
        raise UsageError("the Responses API has no n (one request, one response): drop -n, or use --api chat")
    body: Dict[str, Any] = {"input": prompt}
    if args.system:
        body["instructions"] = args.system
    if args.max_tokens is not None:
        body["max_output_tokens"] = args.max_tokens
    if args.temperature is not None:
        body["temperature"] = args.temperature
    if args.seed is not None:
        body["seed"] = args.seed  # not an OpenAI parameter; llama.cpp and vLLM take it
    return body  # usage always comes with response.completed: --no-usage changes nothing


def _stream(client: Client, args: argparse.Namespace, model: str, body: Dict[str, Any]) -> BaseStream[Any]:
    """The stream of one request, on the API --api names."""
    if args.api == "responses":
        body = dict(body)
        seed = body.pop("seed", None)
        extra = {"seed": seed} if seed is not None else None
        return client.responses.stream(model=model, extra_body=extra, **body)
    return client.chat.completions.stream(model=model, **body)


def _client_settings(args: argparse.Namespace, base_url: Optional[str]) -> Dict[str, Any]:
    if base_url is not None:  # the local server: no key, never send the user's real one
        return {"base_url": base_url, "api_key": "local", "max_retries": args.max_retries}
    url = args.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    key = args.api_key or os.environ.get("OPENAI_API_KEY")
    if not key and url.rstrip("/") == DEFAULT_BASE_URL:
        raise UsageError(
            "no API key: set OPENAI_API_KEY (or pass --api-key), or point --base-url at your server; "
            "without a key try `openai-stream chat --local \"...\"` or `openai-stream demo`"
        )
    return {"base_url": url, "api_key": key, "max_retries": args.max_retries}


def _model(args: argparse.Namespace, base_url: Optional[str]) -> str:
    if args.model:
        return str(args.model)
    return local.MODEL_NAME if base_url else os.environ.get("OPENAI_MODEL", "gpt-4o-mini")


def _with_server(args: argparse.Namespace, err: TextIO, action: Callable[[Optional[str]], int]) -> int:
    """Run ``action(base_url_or_None)``, inside a local llama.cpp server when ``--local``."""
    if not args.local:
        return action(None)
    if args.base_url:
        raise UsageError("--local and --base-url exclude each other")
    model_path = local.check()
    err.write(f"starting llama.cpp with {local.MODEL_NAME} on this machine (no API key needed)...\n")
    with local.LocalServer(model_path, n_parallel=max(2, args.n or 1)) as server:
        err.write(f"model loaded in {server.load_seconds or 0:.1f} s, serving {server.base_url}\n")
        return action(server.base_url)


def cmd_chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    body = _request(args)

    def chat(base_url: Optional[str]) -> int:
        model = _model(args, base_url)
        with Client(**_client_settings(args, base_url)) as client:
            stream = _stream(client, args, model, body)
            return _run(stream, args, out, err, several_choices=(args.n or 1) > 1)

    return _with_server(args, err, chat)


def cmd_record(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.file.endswith(".sse"):
        raise UsageError(
            f"record saves to a FILE ending in .sse, got {args.file!r}; the FILE comes before the "
            "PROMPT: openai-stream record FILE.sse \"PROMPT\""
        )
    if os.path.exists(args.file) and not args.force:
        raise UsageError(f"{args.file} exists; pass --force to overwrite it")
    body = _request(args)

    def record(base_url: Optional[str]) -> int:
        payload = {"model": _model(args, base_url), **body, "stream": True}
        with Client(**_client_settings(args, base_url)) as client:
            # The client's own transport: the same session, headers, retries and error mapping.
            path = "responses" if args.api == "responses" else "chat/completions"
            response = client._transport.post(path, payload, stream=True)
            try:
                size = _save_body(response, args.file, err)
            finally:
                response.close()
        with open(args.file, "rb") as fh:
            check = _check_transcript(fh.read())
        err.write(f"saved {size} bytes to {args.file} ({check})\n")
        err.write(f"play it with: openai-stream replay {args.file}\n")
        return 0

    return _with_server(args, err, record)


def _save_body(response: requests.Response, path: str, err: TextIO) -> int:
    """Write the body's bytes to ``path`` as they arrive; on a broken stream keep what came."""
    size = 0
    try:
        with open(path, "wb") as fh:
            try:
                for data in iter_body(response):
                    fh.write(data)
                    size += len(data)
            except OpenAIError:
                err.write(f"the stream broke; the {size} bytes received are saved in {path}\n")
                raise
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return size


def _check_transcript(data: bytes) -> str:
    """A one-line account of a transcript, read through the decoder and accumulator."""
    decoder = SSEDecoder()
    accumulator = ChatCompletionAccumulator()
    events = list(decoder.feed(data))
    trailing = decoder.end()
    if trailing is not None:
        events.append(trailing)
    if _api_of(data) == "responses":
        responses = ResponseAccumulator()
        try:
            for sse in events:
                if sse.data and sse.data != "[DONE]":
                    responses.feed(json.loads(sse.data))
        except (ValueError, OpenAIError) as exc:
            return f"{len(events)} events; not a clean stream: {exc}"
        status = responses.response().status if responses.finished else "cut before it finished"
        return f"{len(events)} events, a Responses API stream, status {status}"
    done = False
    try:
        for sse in events:
            if sse.data == "[DONE]":
                done = True
                break
            accumulator.feed(json.loads(sse.data))
    except (ValueError, OpenAIError) as exc:
        return f"{len(events)} events; not a clean stream: {exc}"
    reasons = [str(c.get("finish_reason")) for c in accumulator.completion().to_dict().get("choices", [])]
    return f"{len(events)} events, finish {', '.join(reasons) or 'none'}{', [DONE]' if done else ''}"


def _api_of(data: bytes) -> str:
    """``responses`` when a transcript's events are the Responses API's (``type: response.*``), else ``chat``.

    The first event that tells decides: a chunk with ``choices`` is chat's, an
    event typed ``response.*`` the Responses API's (named so on its ``event:``
    line or in its data).
    """
    decoder = SSEDecoder()
    try:
        events = list(decoder.feed(data))
        trailing = decoder.end()
    except OpenAIError:
        return "chat"
    if trailing is not None:
        events.append(trailing)
    for sse in events:
        if sse.event.startswith("response."):
            return "responses"
        try:
            payload = json.loads(sse.data)
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        if "choices" in payload:
            return "chat"
        kind = payload.get("type")
        if isinstance(kind, str) and kind.startswith("response."):
            return "responses"
    return "chat"


def _choice_count(data: bytes) -> int:
    """How many choices a transcript holds, read ahead so that each can be labelled in order."""
    decoder = SSEDecoder()
    events = list(decoder.feed(data))
    trailing = decoder.end()
    if trailing is not None:
        events.append(trailing)
    seen = set()
    for sse in events:
        try:
            chunk = json.loads(sse.data)
        except ValueError:
            continue
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict):
                seen.add(choice.get("index", 0))
    return len(seen)


def _not_a_transcript(data: bytes, label: str) -> Optional[str]:
    """Why ``data`` is not a server-sent-events transcript, or None when it is one."""
    if not data.strip():
        return f"{label} is empty"
    decoder = SSEDecoder()
    try:
        events = list(decoder.feed(data))
        trailing = decoder.end()
    except OpenAIError:
        return None  # an event stream, broken in a way the replay reports
    if trailing is not None:
        events.append(trailing)
    if any(sse.data for sse in events):
        return None
    start = data.lstrip()[:1]
    kind = "a JSON document (a non-streamed answer?)" if start in (b"{", b"[") else "not an event stream"
    return (
        f"{label} is {kind}: it has no 'data:' lines. replay plays a transcript of server-sent "
        "events, the raw bytes `openai-stream record FILE.sse PROMPT` saves"
    )


def _replay(data: bytes, label: str, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    problem = _not_a_transcript(data, label)
    if problem is not None:
        raise UsageError(problem)
    # Close-delimited: the server hangs up after the last event, so no idle keep-alive
    # connection is left for the client to reset when it closes.
    response = ScriptedResponse(events=split_sse_events(data), delay=args.delay, chunked=False)
    with ReplayServer([response]) as server:
        err.write(f"REPLAY of {label}: a recorded transcript served from {server.base_url}, "
                  "not a live model; the real client streams it\n")
        with Client(base_url=server.base_url, api_key="replay", max_retries=0) as client:
            if _api_of(data) == "responses":
                err.write("(a Responses API stream: it goes through client.responses.stream)\n")
                stream: BaseStream[Any] = client.responses.stream(model="replay", input="(replay)")
                return _run(stream, args, out, err, live=False)
            stream = client.chat.completions.stream(
                model="replay", messages=[{"role": "user", "content": "(replay)"}]
            )
            return _run(stream, args, out, err, several_choices=_choice_count(data) > 1, live=False)


def cmd_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        with open(args.file, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    return _replay(data, args.file, args, out, err)


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        data = demo_transcript(args.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return _replay(data, f"the packaged transcript {args.name}.sse", args, out, err)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openai-stream",
        description="Stream chat completions and responses from OpenAI-compatible servers.",
        epilog="Exit status: 0 ok, 1 API or stream error, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"openai_stream {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    show = argparse.ArgumentParser(add_help=False)
    show.add_argument("--json", action="store_true", help="print every event as one JSON line")

    request = argparse.ArgumentParser(add_help=False)
    request.add_argument(
        "--model",
        help=f"model name (default: $OPENAI_MODEL or gpt-4o-mini; with --local, {local.MODEL_NAME})",
    )
    request.add_argument(
        "--api",
        choices=("chat", "responses"),
        default="chat",
        help="chat: POST /chat/completions (the default); responses: POST /responses (the Responses API)",
    )
    request.add_argument("--base-url", help="server URL (default: $OPENAI_BASE_URL or OpenAI)")
    request.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY; prefer the variable)")
    request.add_argument("--system", help="a system message sent before the prompt")
    request.add_argument("--max-tokens", type=int)
    request.add_argument("--temperature", type=float)
    request.add_argument("--seed", type=int)
    request.add_argument("-n", "--n", dest="n", type=int, help="number of choices (each is labelled)")
    request.add_argument("--max-retries", type=int, default=2, help="retries before the body starts")
    request.add_argument("--no-usage", action="store_true", help="leave out stream_options.include_usage")
    request.add_argument(
        "--local",
        action="store_true",
        help=f"start the local llama.cpp model for this command (pip install '{__distribution__}[local]')",
    )

    pace = argparse.ArgumentParser(add_help=False)
    pace.add_argument("--delay", type=float, default=0.0, help="seconds between replayed events")

    prompt_help = "the user message ('-' reads it from stdin)"
    chat = commands.add_parser("chat", parents=[request, show], help="stream an answer")
    chat.add_argument("prompt", help=prompt_help)
    chat.set_defaults(func=cmd_chat)
    replay = commands.add_parser("replay", parents=[show, pace], help="replay a recorded .sse transcript")
    replay.add_argument("file", help="a transcript saved by `record` (raw SSE bytes)")
    replay.set_defaults(func=cmd_replay)
    record = commands.add_parser("record", parents=[request], help="save the raw SSE bytes of a request")
    record.add_argument("file", help="where to write the transcript (a new FILE.sse)")
    record.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    record.add_argument("prompt", help=prompt_help)
    record.set_defaults(func=cmd_record)
    names = demo_transcripts()
    demo = commands.add_parser(
        "demo", parents=[show], help="replay a packaged transcript (no key, no network)",
        description=f"Replay a packaged transcript. The transcripts: {', '.join(names)}.",
    )
    demo.add_argument(
        "name", nargs="?", default=DEMO_TRANSCRIPT,
        help=f"which packaged transcript: {', '.join(names)} (default: {DEMO_TRANSCRIPT})",
    )
    demo.add_argument("--delay", type=float, default=0.02, help="seconds between replayed events")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    out, err = sys.stdout, sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's own usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args, out, err))
    except UsageError as exc:
        err.write(f"openai-stream: {exc}\n")
        return 2
    except OpenAIError as exc:
        err.write(f"error: {type(exc).__name__}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        err.write("\ninterrupted\n")
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `| head`)
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
