"""Run the whole benchmark: ``python -m benchmarks.run [--quick] [--json PATH]``.

One process measures every client against the same loopback server and the
same bytes, interleaved: each repeat runs every scenario with the clients in a
rotated order, and the table shows medians over the repeats. Every client's
final text is checked against the scenario's expected text.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import clients as bench_clients
from .scenarios import RESPONSES, Scenario, build_chunks
from .server import CLOSING_PREFIX, ServerProcess, SSEServer
from .short_streams import SHORT_SCENARIO, THREADS, measure_short_streams

__all__ = ["Sizes", "FULL", "QUICK", "main", "run"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCUMULATOR = "ours.accumulator"
FLOOR = "floor"
OPENAI_STREAM = "openai.stream"
OURS = "ours.handlers"
TOOL_DELTA = "ours.tool_delta"
PARTIAL = "ours.partial_args"
HOOKS = "ours.hooks"
OBSERVED = "ours.observed"
LATENCY_INTERVAL_MS = 20
# Snapshot sizes (UTF-8 bytes) at which one read of ``partial_arguments`` is timed in memory.
PARTIAL_READ_BYTES = (100, 1_000, 10_000, 100_000)
PARTIAL_READ_SAMPLE_S = 0.05


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is and how often it runs."""

    content: int
    tool_fragments: int
    choice_deltas: int
    scale_small: int
    scale_large: int
    memory_deltas: int
    latency_events: int
    repeats: int
    import_repeats: int
    reconnect_streams: int = 200
    short_streams: int = 320

    def scaled(self, factor: float) -> Sizes:
        """Every stream size times ``factor`` (at least 10 deltas); repeats unchanged."""

        def s(n: int) -> int:
            return max(10, int(n * factor))

        return Sizes(
            s(self.content),
            s(self.tool_fragments),
            s(self.choice_deltas),
            s(self.scale_small),
            s(self.scale_large),
            s(self.memory_deltas),
            max(5, int(self.latency_events * factor)),
            self.repeats,
            self.import_repeats,
            max(10, int(self.reconnect_streams * factor)),
            max(16, int(self.short_streams * factor)),
        )


FULL = Sizes(20_000, 2_000, 5_000, 5_000, 40_000, 100_000, 300, 5, 9, 200, 320)
QUICK = Sizes(2_000, 200, 500, 500, 4_000, 10_000, 30, 3, 3, 40, 64)
# The reconnect measurement: short streams, each on a connection the server closes right after.
RECONNECT_SCENARIO = Scenario("short-1", "content", 1)
# Streams a client runs back to back (its next request follows its last answer at once, inside
# the server's close window) before the next client's turn.
RECONNECT_BLOCK = 10
FRESH_FLOOR = "floor.fresh"
LOCAL_MODEL_STREAMS = 40
OURS_DEFAULTS = "ours.defaults"


@dataclass
class Results:
    """Everything measured, ready for the table and the JSON file."""

    machine: Dict[str, Any]
    settings: Dict[str, Any]
    throughput: List[Dict[str, Any]] = field(default_factory=list)
    latency: List[Dict[str, Any]] = field(default_factory=list)
    memory: List[Dict[str, Any]] = field(default_factory=list)
    imports: List[Dict[str, Any]] = field(default_factory=list)
    targets: List[Dict[str, Any]] = field(default_factory=list)
    partial_arguments: List[Dict[str, Any]] = field(default_factory=list)
    partial_arguments_read: List[Dict[str, Any]] = field(default_factory=list)
    reconnect: List[Dict[str, Any]] = field(default_factory=list)
    local_model: List[Dict[str, Any]] = field(default_factory=list)
    short_streams: List[Dict[str, Any]] = field(default_factory=list)
    observability: List[Dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "machine": self.machine,
            "settings": self.settings,
            "throughput": self.throughput,
            "latency": self.latency,
            "memory": self.memory,
            "import": self.imports,
            "targets": self.targets,
            "partial_arguments": self.partial_arguments,
            "partial_arguments_read": self.partial_arguments_read,
            "reconnect": self.reconnect,
            "local_model": self.local_model,
            "short_streams": self.short_streams,
            "observability": self.observability,
        }


def scenarios_for(sizes: Sizes) -> List[Scenario]:
    """The throughput scenarios, in table order."""
    return [
        Scenario(f"content-{sizes.content}", "content", sizes.content),
        Scenario(f"tools-4x{sizes.tool_fragments}", "tools", sizes.tool_fragments, calls=4),
        Scenario(f"n3-3x{sizes.choice_deltas}", "choices", sizes.choice_deltas, n=3),
        Scenario(f"scale-{sizes.scale_small}", "content", sizes.scale_small),
        Scenario(f"scale-{sizes.scale_large}", "content", sizes.scale_large),
        Scenario(f"responses-{sizes.content}", RESPONSES, sizes.content),
        Scenario(f"responses-scale-{sizes.scale_small}", RESPONSES, sizes.scale_small),
        Scenario(f"responses-scale-{sizes.scale_large}", RESPONSES, sizes.scale_large),
    ]


def expected_text(chunks: Sequence[Dict[str, Any]]) -> str:
    """The final text computed straight from the chunks, with no client involved."""
    if chunks and str(chunks[0].get("type", "")).startswith("response."):
        return "".join(c["delta"] for c in chunks if c["type"] == "response.output_text.delta")
    collector = bench_clients._Collector()
    for chunk in chunks:
        collector.add(chunk, None)
    return collector.text()


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def measure_throughput(
    sizes: Sizes,
    server_mode: str,
    log: Callable[[str], None],
    partial: bool = True,
    observed: bool = True,
) -> List[Dict[str, Any]]:
    """Every client on every scenario, interleaved; medians over ``sizes.repeats``.

    With ``partial``, the two clients of :func:`clients.partial_clients` (a no-op
    ``tool_call.delta`` handler, and one reading ``partial_arguments``) join the
    rotation on the tools scenarios only. With ``observed``, the clients of
    :func:`clients.observed_clients` (handlers plus every client hook, and plus
    OpenTelemetry) join it on every scenario.
    """
    scenarios = scenarios_for(sizes)
    warmup = Scenario("warmup", "tools", 20, calls=2)
    server: Any = (ServerProcess if server_mode == "process" else SSEServer)([*scenarios, warmup])
    rows: List[Dict[str, Any]] = []
    with server:
        classes = bench_clients.network_clients() + (bench_clients.partial_clients() if partial else [])
        classes += bench_clients.observed_clients() if observed else []
        clients = [cls(server.base_url) for cls in classes]
        tools_only = {TOOL_DELTA, PARTIAL}
        try:
            chunks = {s.name: build_chunks(s) for s in [*scenarios, warmup]}
            expected = {name: expected_text(c) for name, c in chunks.items()}
            runners: Dict[str, Callable[[str], str]] = {c.name: c.run for c in clients}
            speaks_responses = {c.name for c in clients if c.responses} | {ACCUMULATOR}
            runners[ACCUMULATOR] = lambda name: bench_clients.accumulate_in_memory(chunks[name])
            names = list(runners)
            for name in names:
                _check(name, "warmup", runners[name]("warmup"), expected["warmup"])
            # Everything alive now (modules, clients, chunks) stays out of the collections
            # run before each measurement, so those take microseconds, not 0.1 s.
            gc.collect()
            gc.freeze()

            def runs_on(name: str, scenario: Scenario) -> bool:
                if scenario.kind == RESPONSES:
                    return name in speaks_responses
                return scenario.kind == "tools" or name not in tools_only

            times: Dict[str, Dict[str, List[float]]] = {
                s.name: {n: [] for n in names if runs_on(n, s)} for s in scenarios
            }
            cpu_times: Dict[str, Dict[str, List[float]]] = {
                s.name: {n: [] for n in names if runs_on(n, s)} for s in scenarios
            }
            for repeat in range(sizes.repeats):
                order = names[repeat % len(names) :] + names[: repeat % len(names)]
                log(f"repeat {repeat + 1}/{sizes.repeats}: {', '.join(order)}")
                for scenario in scenarios:
                    for name in order:
                        if not runs_on(name, scenario):
                            continue
                        gc.collect()
                        cpu = time.process_time()
                        start = time.perf_counter()
                        text = runners[name](scenario.name)
                        elapsed = time.perf_counter() - start
                        cpu = time.process_time() - cpu
                        _check(name, scenario.name, text, expected[scenario.name])
                        times[scenario.name][name].append(elapsed)
                        cpu_times[scenario.name][name].append(cpu)
        finally:
            gc.unfreeze()
            for client in clients:
                client.close()
    for scenario in scenarios:
        medians = {n: _median(v) for n, v in times[scenario.name].items()}
        cpu_medians = {n: _median(v) for n, v in cpu_times[scenario.name].items()}
        n_chunks = len(chunks[scenario.name])
        for name, median in medians.items():
            openai_time = medians.get(OPENAI_STREAM)
            rows.append(
                {
                    "scenario": scenario.name,
                    "client": name,
                    "chunks": n_chunks,
                    "median_s": median,
                    "runs_s": times[scenario.name][name],
                    "us_per_chunk": median / n_chunks * 1e6,
                    "x_floor": median / medians[FLOOR],
                    "cpu_median_s": cpu_medians[name],
                    "cpu_x_floor": cpu_medians[name] / cpu_medians[FLOOR],
                    "openai_stream_over_this": openai_time / median if openai_time else None,
                    "same_text": True,
                }
            )
    return rows


def _check(client: str, scenario: str, text: str, expected: str) -> None:
    if text != expected:
        short = min(len(text), len(expected))
        first = next((i for i in range(short) if text[i] != expected[i]), short)
        raise AssertionError(
            f"{client} produced a different final text on {scenario}: {len(text)} characters "
            f"vs {len(expected)} expected, first difference at {first}: "
            f"{text[first : first + 40]!r} vs {expected[first : first + 40]!r}"
        )


def observability_rows(throughput: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """What hooks and OpenTelemetry add to handlers on every event, per scenario (same interleaved run)."""
    rows: List[Dict[str, Any]] = []
    for scenario in dict.fromkeys(r["scenario"] for r in throughput):
        by_client = {r["client"]: r for r in throughput if r["scenario"] == scenario}
        base = by_client.get(OURS)
        if base is None:
            continue
        for name in (OURS, HOOKS, OBSERVED):
            r = by_client.get(name)
            if r is None:
                continue
            rows.append(
                {
                    "scenario": scenario,
                    "client": name,
                    "chunks": r["chunks"],
                    "us_per_chunk": r["us_per_chunk"],
                    "x_floor": r["x_floor"],
                    "cpu_x_floor": r["cpu_x_floor"],
                    "x_handlers": r["median_s"] / base["median_s"],
                    "cpu_x_handlers": r["cpu_median_s"] / base["cpu_median_s"],
                    "extra_us_per_stream": (r["median_s"] - base["median_s"]) * 1e6,
                }
            )
    return rows


def tool_delta_stats(chunks: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    """How many ``tool_call.delta`` events ``chunks`` give, and how many snapshot bytes reading
    ``partial_arguments`` on each of them parses in all (the sum over deltas of each snapshot's size).
    """
    from openai_stream import ChatCompletionAccumulator

    accumulator = ChatCompletionAccumulator()
    deltas = parsed = 0
    final: Dict[Any, int] = {}
    for chunk in chunks:
        for event in accumulator.feed(chunk):
            if event.type == "tool_call.delta":
                size = len(event.arguments_snapshot.encode("utf-8"))  # type: ignore[attr-defined]
                deltas += 1
                parsed += size
                final[event.choice_index, event.index] = size  # type: ignore[attr-defined]
    accumulator.end()
    return {"deltas": deltas, "snapshot_bytes_parsed": parsed, "final_arguments_bytes": sum(final.values())}


def partial_stream_rows(throughput: Sequence[Dict[str, Any]], sizes: Sizes) -> List[Dict[str, Any]]:
    """Per-delta cost of the no-op delta handler and of reading ``partial_arguments``, from the
    throughput rows of the tools scenarios (same interleaved run)."""
    rows: List[Dict[str, Any]] = []
    for scenario in scenarios_for(sizes):
        if scenario.kind != "tools":
            continue
        by_client = {r["client"]: r for r in throughput if r["scenario"] == scenario.name}
        base = by_client.get(TOOL_DELTA)
        if base is None:
            continue
        stats = tool_delta_stats(build_chunks(scenario))
        deltas = stats["deltas"]
        for name in (TOOL_DELTA, PARTIAL):
            r = by_client.get(name)
            if r is None:
                continue
            extra = cpu_extra = None
            if name != TOOL_DELTA:
                extra = (r["median_s"] - base["median_s"]) / deltas * 1e6
                cpu_extra = (r["cpu_median_s"] - base["cpu_median_s"]) / deltas * 1e6
            rows.append(
                {
                    "scenario": scenario.name,
                    "client": name,
                    "deltas": deltas,
                    "median_s": r["median_s"],
                    "us_per_delta": r["median_s"] / deltas * 1e6,
                    "cpu_us_per_delta": r["cpu_median_s"] / deltas * 1e6,
                    "x_noop": r["median_s"] / base["median_s"],
                    "cpu_x_noop": r["cpu_median_s"] / base["cpu_median_s"],
                    "extra_us_per_delta": extra,
                    "cpu_extra_us_per_delta": cpu_extra,
                    "snapshot_bytes_parsed": stats["snapshot_bytes_parsed"] if name == PARTIAL else 0,
                    "final_arguments_bytes": stats["final_arguments_bytes"],
                    "same_final_arguments": r["same_text"],
                }
            )
    return rows


def _delta_event_of_size(size: int) -> Any:
    """A real ``tool_call.delta`` event (from the accumulator) whose snapshot is ``size`` UTF-8
    bytes or just over, cut inside the string value being written, as mid-stream."""
    from openai_stream import ChatCompletionAccumulator

    accumulator = ChatCompletionAccumulator()
    for chunk in build_chunks(Scenario("partial-read", "tools", size // 3 + 10, calls=1)):
        for event in accumulator.feed(chunk):
            if event.type == "tool_call.delta" and len(event.arguments_snapshot.encode("utf-8")) >= size:  # type: ignore[attr-defined]
                return event
    raise AssertionError(f"the partial-read stream never reached {size} bytes")


def _per_call(fn: Callable[[], Any], samples: int) -> float:
    """Median seconds per call of ``fn`` over ``samples`` timings of about PARTIAL_READ_SAMPLE_S each."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= PARTIAL_READ_SAMPLE_S / 4:
            break
        number *= 2
    number *= 4
    timings = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        timings.append((time.perf_counter() - start) / number)
    return _median(timings)


def measure_partial_reads(sizes: Sizes, log: Callable[[str], None]) -> List[Dict[str, Any]]:
    """One read of ``partial_arguments`` in memory, at a few snapshot sizes (no I/O, no emitter).

    Next to it, ``json.loads`` of the same snapshot closed (``"}`` appended) prices a full parse.
    """
    rows = []
    for size in PARTIAL_READ_BYTES:
        event = _delta_event_of_size(size)
        snapshot = event.arguments_snapshot
        closed = snapshot + '"}'
        expected = json.loads(closed)
        if event.partial_arguments != expected:
            raise AssertionError(f"partial_arguments at {size} bytes is not the snapshot's string so far")
        read = _per_call(functools.partial(getattr, event, "partial_arguments"), sizes.repeats)
        full = _per_call(functools.partial(json.loads, closed), sizes.repeats)
        nbytes = len(snapshot.encode("utf-8"))
        log(f"partial_arguments read at {nbytes} bytes: {read * 1e6:.2f} us")
        rows.append(
            {
                "snapshot_bytes": nbytes,
                "us_per_read": read * 1e6,
                "ns_per_byte": read / nbytes * 1e9,
                "json_loads_us": full * 1e6,
                "x_json_loads": read / full,
            }
        )
    return rows


def measure_latency(sizes: Sizes, log: Callable[[str], None]) -> List[Dict[str, Any]]:
    """Write-to-handler latency: the server (a thread here) stamps each event with perf_counter."""
    rows = []
    model = f"latency:{sizes.latency_events}:{LATENCY_INTERVAL_MS}"
    with SSEServer() as server:
        for cls in bench_clients.network_clients():
            client = cls(server.base_url)
            samples: List[float] = []

            def record(delta: str, samples: List[float] = samples) -> None:
                samples.append(time.perf_counter() - float(delta))

            try:
                log(f"latency: {client.name}")
                client.run(model, record)
            finally:
                client.close()
            if len(samples) != sizes.latency_events:
                raise AssertionError(
                    f"{client.name} saw {len(samples)} of {sizes.latency_events} latency events"
                )
            rows.append(
                {
                    "client": client.name,
                    "events": len(samples),
                    "interval_ms": LATENCY_INTERVAL_MS,
                    "median_ms": _median(samples) * 1e3,
                    "p99_ms": _percentile(samples, 99) * 1e3,
                    "max_ms": max(samples) * 1e3,
                }
            )
    return rows


def measure_reconnect(sizes: Sizes, server_mode: str, log: Callable[[str], None]) -> List[Dict[str, Any]]:
    """Sequential one-token streams against a server that closes each connection after its answer.

    Each client runs ``sizes.reconnect_streams`` streams in blocks of
    ``RECONNECT_BLOCK`` back to back, the blocks interleaved with the other
    clients' in a rotating order; each stream is timed alone. The floor opens a
    new connection for every request; a client that pools connections meets
    closed ones and must send again without a backoff to stay near it. A
    stream that raises is counted as a failure (and its time left out).
    """
    scenario = RECONNECT_SCENARIO
    expected = expected_text(build_chunks(scenario))
    model = CLOSING_PREFIX + scenario.name
    # (FloorClient stops reading at [DONE], so it never pools a connection either.)
    classes: List[type] = [bench_clients.FreshConnectionFloorClient]
    classes += [c for c in bench_clients.network_clients() if getattr(c, "name", None) == OPENAI_STREAM]
    classes += [bench_clients.OursDefaultsClient, bench_clients.OursHandlersClient]
    server: Any = (ServerProcess if server_mode == "process" else SSEServer)([scenario])
    with server:
        clients = [cls(server.base_url) for cls in classes]
        times: Dict[str, List[float]] = {c.name: [] for c in clients}
        failures: Dict[str, int] = {c.name: 0 for c in clients}
        errors: Dict[str, str] = {}
        try:
            log(f"reconnect: {sizes.reconnect_streams} streams x {', '.join(times)}")
            total = sizes.reconnect_streams
            blocks = [min(RECONNECT_BLOCK, total - first) for first in range(0, total, RECONNECT_BLOCK)]
            for block, count in enumerate(blocks):
                for client in clients[block % len(clients) :] + clients[: block % len(clients)]:
                    for _ in range(count):
                        start = time.perf_counter()
                        try:
                            text = client.run(model)
                        except Exception as exc:  # counted: the point is how often this happens
                            failures[client.name] += 1
                            errors.setdefault(client.name, f"{type(exc).__name__}: {str(exc)[:120]}")
                            continue
                        elapsed = time.perf_counter() - start
                        _check(client.name, scenario.name, text, expected)
                        times[client.name].append(elapsed)
        finally:
            for client in clients:
                client.close()
    floor = times[FRESH_FLOOR]
    floor_median, floor_p90 = _median(floor), _percentile(floor, 90)
    rows = []
    for name, samples in times.items():
        row: Dict[str, Any] = {
            "client": name,
            "streams": sizes.reconnect_streams,
            "failures": failures[name],
            "first_error": errors.get(name),
        }
        if samples:
            median, p90 = _median(samples), _percentile(samples, 90)
            row.update(
                {
                    "median_ms": median * 1e3,
                    "p90_ms": p90 * 1e3,
                    "max_ms": max(samples) * 1e3,
                    "median_x_floor": median / floor_median,
                    "p90_x_floor": p90 / floor_p90,
                    "p90_over_median": p90 / median,
                }
            )
        rows.append(row)
    return rows


def measure_local_model(streams: int, log: Callable[[str], None]) -> List[Dict[str, Any]]:
    """Sequential one-token streams against the local llama.cpp model, client at default settings.

    llama.cpp closes each connection right after a streamed body; before the
    client sent such requests again at once, about one stream in ten paid a
    retry backoff. Needs the ``local`` extra and the model (``--local``).
    """
    import openai_stream
    from openai_stream import local

    samples: List[float] = []
    messages = [{"role": "user", "content": "Say hi."}]
    with local.server() as base_url, openai_stream.Client(base_url=base_url, api_key="unused") as client:
        log(f"local model: {streams} one-token streams at {base_url}")

        def one() -> None:
            stream = client.chat.completions.stream(model=local.MODEL_NAME, messages=messages, max_tokens=1)
            stream.until_done()

        one()  # warm up
        for _ in range(streams):
            start = time.perf_counter()
            one()
            samples.append(time.perf_counter() - start)
    median, p90 = _median(samples), _percentile(samples, 90)
    return [
        {
            "client": OURS_DEFAULTS,
            "streams": streams,
            "median_ms": median * 1e3,
            "p90_ms": p90 * 1e3,
            "max_ms": max(samples) * 1e3,
            "p90_over_median": p90 / median,
        }
    ]


def measure_memory(sizes: Sizes, server_mode: str, log: Callable[[str], None]) -> List[Dict[str, Any]]:
    """Peak traced memory while a client consumes one long stream (server memory not traced)."""
    chat = Scenario(f"memory-{sizes.memory_deltas}", "content", sizes.memory_deltas)
    responses = Scenario(f"responses-memory-{sizes.memory_deltas}", RESPONSES, sizes.memory_deltas)
    rows = []
    warmups = {
        "chat": Scenario("warmup", "content", 20),
        "responses": Scenario("responses-warmup", RESPONSES, 20),
    }
    served = [chat, responses, *warmups.values()]
    server: Any = (ServerProcess if server_mode == "process" else SSEServer)(served)
    names = {bench_clients.FloorClient, bench_clients.OursHandlersClient, bench_clients.OursIterClient}
    with server:
        for api, scenario in (("chat", chat), ("responses", responses)):
            expected = expected_text(build_chunks(scenario))
            text_bytes = len(expected.encode("utf-8"))
            for cls in bench_clients.network_clients():
                if cls not in names:
                    continue
                client = cls(server.base_url)
                try:
                    log(f"memory: {client.name}, {scenario.name}")
                    client.run(warmups[api].name)
                    gc.collect()
                    tracemalloc.start()
                    try:
                        text = client.run(scenario.name)
                        peak = tracemalloc.get_traced_memory()[1]
                    finally:
                        tracemalloc.stop()
                finally:
                    client.close()
                _check(client.name, scenario.name, text, expected)
                rows.append(
                    {
                        "client": client.name,
                        "api": api,
                        "deltas": sizes.memory_deltas,
                        "peak_bytes": peak,
                        "final_text_bytes": text_bytes,
                        "limit_bytes": 3 * text_bytes + 5 * 1024 * 1024,
                        "peak_over_text": peak / text_bytes,
                    }
                )
    return rows


def measure_imports(repeats: int, log: Callable[[str], None]) -> List[Dict[str, Any]]:
    """``import X`` timed inside fresh interpreters (startup excluded), interleaved, medians."""
    modules = ["openai_stream", "requests"]
    try:
        import importlib.util

        if importlib.util.find_spec("openai") is not None:
            modules.append("openai")
    except (ImportError, ValueError):
        pass
    env = dict(os.environ)
    # Time imports as users see them after the first run: with bytecode caches.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    code = "import time; t = time.perf_counter(); import {0}; print(time.perf_counter() - t)"

    def once(module: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", code.format(module)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])

    for module in modules:  # warm the OS file cache and write bytecode caches
        once(module)
    samples: Dict[str, List[float]] = {m: [] for m in modules}
    for repeat in range(repeats):
        order = modules[repeat % len(modules) :] + modules[: repeat % len(modules)]
        for module in order:
            samples[module].append(once(module))
    log("imports: " + ", ".join(f"{m} {_median(v) * 1e3:.1f} ms" for m, v in samples.items()))
    base = _median(samples["requests"])
    return [
        {
            "module": m,
            "median_ms": _median(v) * 1e3,
            "runs_ms": [x * 1e3 for x in v],
            "x_requests": _median(v) / base,
        }
        for m, v in samples.items()
    ]


def evaluate_targets(results: Results, sizes: Sizes) -> List[Dict[str, Any]]:
    """The issue's targets, each with the measured value and pass/miss."""
    targets: List[Dict[str, Any]] = []

    def add(name: str, limit: str, value: Optional[float], ok: Optional[bool], fmt: str) -> None:
        targets.append(
            {
                "target": name,
                "limit": limit,
                "measured": value,
                "shown": "n/a" if value is None else fmt.format(value),
                "status": "n/a" if ok is None else ("pass" if ok else "MISS"),
            }
        )

    def row(scenario: str, client: str) -> Optional[Dict[str, Any]]:
        for r in results.throughput:
            if r["scenario"] == scenario and r["client"] == client:
                return r
        return None

    for scenario in (f"content-{sizes.content}", f"tools-4x{sizes.tool_fragments}"):
        r = row(scenario, OURS)
        if r is not None:
            add(f"{OURS} vs floor, {scenario}", "<= 1.0x", r["x_floor"], r["x_floor"] <= 1.0, "{:.3f}x")
            speedup = r["openai_stream_over_this"]
            add(
                f"{OURS} faster than openai stream(), {scenario}",
                ">= 15x",
                speedup,
                None if speedup is None else speedup >= 15,
                "{:.1f}x",
            )
    r = row(f"responses-{sizes.content}", OURS)
    if r is not None:
        scenario = f"responses-{sizes.content}"
        add(f"{OURS} vs floor, {scenario}", "<= 1.5x", r["x_floor"], r["x_floor"] <= 1.5, "{:.3f}x")
        speedup = r["openai_stream_over_this"]
        add(
            f"{OURS} faster than openai responses.stream(), {scenario}",
            ">= 15x",
            speedup,
            None if speedup is None else speedup >= 15,
            "{:.1f}x",
        )
    for prefix in ("scale", "responses-scale"):
        small = row(f"{prefix}-{sizes.scale_small}", OURS)
        large = row(f"{prefix}-{sizes.scale_large}", OURS)
        if small is not None and large is not None:
            factor = sizes.scale_large / sizes.scale_small
            ratio = large["median_s"] / small["median_s"]
            add(
                f"{OURS} {'responses ' if prefix != 'scale' else ''}scaling {sizes.scale_large} vs "
                f"{sizes.scale_small} deltas",
                f"<= {factor * 1.1:.1f}x",
                ratio,
                ratio <= factor * 1.1,
                "{:.3f}x",
            )
    for r in results.short_streams:
        if r["client"] == OURS and r["mode"] == f"{THREADS} threads":
            add(
                f"{OURS} vs floor, short streams from {THREADS} threads",
                "<= 1.1x",
                r["x_floor"],
                r["x_floor"] <= 1.1,
                "{:.3f}x",
            )
    for r in results.latency:
        if r["client"] == OURS:
            add(f"{OURS} latency median", "<= 2 ms", r["median_ms"], r["median_ms"] <= 2.0, "{:.3f} ms")
            add(f"{OURS} latency p99", "<= 10 ms", r["p99_ms"], r["p99_ms"] <= 10.0, "{:.3f} ms")
    for r in results.reconnect:
        if r["client"] == OURS_DEFAULTS:
            add(
                f"{OURS_DEFAULTS} failures, closing server",
                "0",
                float(r["failures"]),
                r["failures"] == 0,
                "{:.0f}",
            )
            ratio = r.get("p90_over_median")
            add(
                f"{OURS_DEFAULTS} p90 / median, closing server",
                "<= 3x",
                ratio,
                None if ratio is None else ratio <= 3.0,
                "{:.2f}x",
            )
    for r in results.local_model:
        ratio = r["p90_over_median"]
        add(f"{OURS_DEFAULTS} p90 / median, local llama.cpp", "<= 3x", ratio, ratio <= 3.0, "{:.2f}x")
    for r in results.memory:
        if r["client"] == OURS:
            api = " (responses)" if r.get("api") == "responses" else ""
            add(
                f"{OURS} peak memory{api}, {r['deltas']} deltas",
                f"<= 3x text + 5 MB = {r['limit_bytes'] / 1e6:.1f} MB",
                r["peak_bytes"] / 1e6,
                r["peak_bytes"] <= r["limit_bytes"],
                "{:.1f} MB",
            )
    by_module = {r["module"]: r for r in results.imports}
    if "openai_stream" in by_module:
        x = by_module["openai_stream"]["x_requests"]
        add("import openai_stream vs import requests", "<= 1.5x", x, x <= 1.5, "{:.3f}x")
    return targets


def machine_info() -> Dict[str, Any]:
    """Where the numbers came from."""
    info: Dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "loadavg_start": _loadavg(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for dist in ("requests", "urllib3", "pyee", "sseclient-py", "openai", "httpx", "httpx2"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            continue
    info["versions"] = versions
    return info


def _loadavg() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run(
    sizes: Sizes,
    *,
    server_mode: str = "process",
    latency: bool = True,
    reconnect: bool = True,
    local_model: bool = False,
    memory: bool = True,
    imports: bool = True,
    partial: bool = True,
    short: bool = True,
    observed: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> Results:
    """Measure everything and return the results (targets evaluated)."""
    results = Results(
        machine_info(),
        {"sizes": sizes.__dict__, "server": server_mode, "latency_interval_ms": LATENCY_INTERVAL_MS},
    )
    results.throughput = measure_throughput(sizes, server_mode, log, partial=partial, observed=observed)
    results.observability = observability_rows(results.throughput)
    if partial:
        results.partial_arguments = partial_stream_rows(results.throughput, sizes)
        results.partial_arguments_read = measure_partial_reads(sizes, log)
    if short:
        server: Any = (ServerProcess if server_mode == "process" else SSEServer)([SHORT_SCENARIO])
        with server:
            results.short_streams = measure_short_streams(
                server.base_url, sizes.short_streams, sizes.repeats, log
            )
    if latency:
        results.latency = measure_latency(sizes, log)
    if reconnect:
        results.reconnect = measure_reconnect(sizes, server_mode, log)
    if local_model:
        results.local_model = measure_local_model(LOCAL_MODEL_STREAMS, log)
    if memory:
        results.memory = measure_memory(sizes, server_mode, log)
    if imports:
        results.imports = measure_imports(sizes.import_repeats, log)
    results.targets = evaluate_targets(results, sizes)
    results.machine["loadavg_end"] = _loadavg()
    return results


def format_table(results: Results) -> str:
    """The results as one plain-text table with a section per measurement."""
    lines: List[str] = []
    m = results.machine
    sizes = results.settings["sizes"]
    lines.append(
        f"openai_stream benchmark: Python {m['python']} on {m.get('cpu', '?')} x{m['cpus']}, "
        f"{m['platform']}; load {m['loadavg_start']} -> {m.get('loadavg_end')}"
    )
    lines.append(
        f"server: loopback raw-socket SSE ({results.settings['server']}), one SSE event per HTTP chunk; "
        f"medians of {sizes['repeats']} interleaved repeats (cpu x floor: this process's CPU time, "
        "less sensitive to other load than wall time)"
    )
    lines.append("")
    header = (
        f"{'scenario':<16} {'client':<18} {'chunks':>7} {'median s':>9} {'us/chunk':>9} "
        f"{'x floor':>8} {'openai.stream()/this':>21} {'cpu x floor':>12}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    last = None
    for r in results.throughput:
        if last is not None and r["scenario"] != last:
            lines.append("")
        last = r["scenario"]
        speed = r["openai_stream_over_this"]
        lines.append(
            f"{r['scenario']:<16} {r['client']:<18} {r['chunks']:>7} {r['median_s']:>9.4f} "
            f"{r['us_per_chunk']:>9.2f} {r['x_floor']:>7.2f}x "
            f"{(f'{speed:.1f}x' if speed else 'n/a'):>21} {r['cpu_x_floor']:>11.2f}x"
        )
    lines.extend(_partial_table(results))
    if results.short_streams:
        lines.append("")
        lines.append(
            f"short streams ({SHORT_SCENARIO.size} content deltas each) on one client: one after another, "
            f"and from {THREADS} threads at once"
        )
        lines.append(
            f"{'mode':<12} {'client':<18} {'streams':>7} {'median s':>9} {'us/stream':>10} {'x floor':>8}"
        )
        for r in results.short_streams:
            lines.append(
                f"{r['mode']:<12} {r['client']:<18} {r['streams']:>7} {r['median_s']:>9.4f} "
                f"{r['us_per_stream']:>10.1f} {r['x_floor']:>7.2f}x"
            )
    lines.extend(_observability_table(results))
    if results.latency:
        lines.append("")
        lines.append(
            f"latency (write -> user code), one event every {results.settings['latency_interval_ms']} ms"
        )
        lines.append(f"{'client':<18} {'events':>7} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
        for r in results.latency:
            lines.append(
                f"{r['client']:<18} {r['events']:>7} {r['median_ms']:>10.3f} {r['p99_ms']:>8.3f} "
                f"{r['max_ms']:>8.3f}"
            )
    if results.reconnect:
        lines.append("")
        lines.append(
            "sequential one-token streams, server closes each connection a few ms after its answer "
            f"(x floor: against {FRESH_FLOOR}, a new connection per request)"
        )
        lines.append(
            f"{'client':<18} {'streams':>7} {'failed':>7} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} "
            f"{'median x floor':>15} {'p90 x floor':>12} {'p90/median':>11}"
        )
        for r in results.reconnect:
            if "median_ms" in r:
                timing = (
                    f"{r['median_ms']:>10.3f} {r['p90_ms']:>8.3f} {r['max_ms']:>8.3f} "
                    f"{r['median_x_floor']:>14.2f}x {r['p90_x_floor']:>11.2f}x {r['p90_over_median']:>10.2f}x"
                )
            else:
                timing = f"{'n/a':>10}"
            lines.append(f"{r['client']:<18} {r['streams']:>7} {r['failures']:>7} {timing}")
        for r in results.reconnect:
            if r["first_error"]:
                lines.append(f"  {r['client']} first failure: {r['first_error']}")
    for r in results.local_model:
        lines.append("")
        lines.append(
            f"local llama.cpp model, {r['streams']} sequential one-token streams, default client settings: "
            f"median {r['median_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms ({r['p90_over_median']:.2f}x), "
            f"max {r['max_ms']:.2f} ms"
        )
    if results.memory:
        lines.append("")
        lines.append("peak memory (tracemalloc) while consuming one stream")
        lines.append(
            f"{'client':<18} {'api':<10} {'deltas':>7} {'peak MB':>8} {'text MB':>8} {'peak/text':>10}"
        )
        for r in results.memory:
            api = r.get("api", "chat")
            lines.append(
                f"{r['client']:<18} {api:<10} {r['deltas']:>7} {r['peak_bytes'] / 1e6:>8.2f} "
                f"{r['final_text_bytes'] / 1e6:>8.3f} {r['peak_over_text']:>9.1f}x"
            )
    if results.imports:
        lines.append("")
        lines.append("import time in a fresh interpreter (medians)")
        lines.append(f"{'module':<18} {'ms':>8} {'x requests':>11}")
        for r in results.imports:
            lines.append(f"{r['module']:<18} {r['median_ms']:>8.1f} {r['x_requests']:>10.2f}x")
    if results.targets:
        lines.append("")
        lines.append("targets")
        width = max(len(t["target"]) for t in results.targets)
        for t in results.targets:
            lines.append(f"{t['target']:<{width}}  {t['limit']:<28} {t['shown']:>12}  {t['status']}")
    return "\n".join(lines)


def _observability_table(results: Results) -> List[str]:
    rows = results.observability
    if not rows:
        return []
    lines = [
        "",
        f"observability: {OURS} (metrics always on), {HOOKS} (+ a no-op hook on every client hook), "
        f"{OBSERVED} (+ OpenTelemetry, SDK with in-memory export)",
        f"{'scenario':<16} {'client':<18} {'us/chunk':>9} {'x floor':>8} {'cpu x floor':>12} "
        f"{'x handlers':>11} {'cpu x handlers':>15} {'+us/stream':>11}",
    ]
    for r in rows:
        lines.append(
            f"{r['scenario']:<16} {r['client']:<18} {r['us_per_chunk']:>9.2f} {r['x_floor']:>7.2f}x "
            f"{r['cpu_x_floor']:>11.2f}x {r['x_handlers']:>10.3f}x {r['cpu_x_handlers']:>14.3f}x "
            f"{r['extra_us_per_stream']:>11.0f}"
        )
    return lines


def _partial_table(results: Results) -> List[str]:
    lines: List[str] = []
    stream = results.partial_arguments
    for scenario in dict.fromkeys(r["scenario"] for r in stream):
        rows = [r for r in stream if r["scenario"] == scenario]
        lines.append("")
        lines.append(
            f"partial_arguments on every tool_call.delta, {scenario} ({rows[0]['deltas']} deltas; "
            "same interleaved run, through the client and the loopback server)"
        )
        lines.append(
            f"{'client':<18} {'deltas':>7} {'median s':>9} {'us/delta':>9} {'x no-op':>8} "
            f"{'+us/delta':>10} {'cpu us/delta':>13} {'cpu x no-op':>12} {'MB parsed':>10}"
        )
        for r in rows:
            extra = r["extra_us_per_delta"]
            lines.append(
                f"{r['client']:<18} {r['deltas']:>7} {r['median_s']:>9.4f} {r['us_per_delta']:>9.2f} "
                f"{r['x_noop']:>7.2f}x {('n/a' if extra is None else f'{extra:.2f}'):>10} "
                f"{r['cpu_us_per_delta']:>13.2f} {r['cpu_x_noop']:>11.2f}x "
                f"{r['snapshot_bytes_parsed'] / 1e6:>10.2f}"
            )
        last = rows[-1]
        lines.append(
            f"  final arguments {last['final_arguments_bytes'] / 1e3:.1f} KB in all; checked: same final "
            "text, and each call's last partial_arguments equal its arguments"
        )
    reads = results.partial_arguments_read
    if reads:
        lines.append("")
        lines.append("partial_arguments, one read in memory (snapshot cut inside the string being written)")
        lines.append(
            f"{'snapshot bytes':>14} {'us/read':>9} {'ns/byte':>8} {'json.loads us':>14} {'x loads':>8}"
        )
        for r in reads:
            lines.append(
                f"{r['snapshot_bytes']:>14} {r['us_per_read']:>9.2f} {r['ns_per_byte']:>8.2f} "
                f"{r['json_loads_us']:>14.2f} {r['x_json_loads']:>7.2f}x"
            )
    if stream or reads:
        lines.append(
            "  notes: each read parses the whole snapshot (jiter, partial mode), so its cost grows with the"
        )
        lines.append(
            "  call's arguments so far, and reading it on every delta is quadratic in the call's length by"
        )
        lines.append(
            "  nature: k fragments of an n-byte call parse about k*n/2 bytes ('MB parsed'). Nothing is parsed"
        )
        lines.append(
            "  unless a handler reads it; read it every Nth delta or per redraw, and use parsed_arguments on"
        )
        lines.append("  tool_call.done (parsed once) for the final value. json.loads: that snapshot, closed.")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--repeats", type=int, help="repeats per scenario (default 5, quick 3)")
    parser.add_argument("--import-repeats", type=int, help="interpreters per module (default 9, quick 3)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stream size by this")
    parser.add_argument(
        "--server",
        choices=("process", "thread"),
        default="process",
        help="serve throughput scenarios from a child process (default) or a thread of this process",
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument("--no-short", action="store_true", help="skip the short-streams measurement")
    parser.add_argument(
        "--no-reconnect", action="store_true", help="skip the closing-server (reconnect) measurement"
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="also time one-token streams against the local llama.cpp model (needs the local extra)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    parser.add_argument("--no-import", action="store_true", help="skip the import time measurement")
    parser.add_argument(
        "--no-partial", action="store_true", help="skip the partial_arguments clients and read timings"
    )
    parser.add_argument(
        "--no-observed", action="store_true", help="skip the hooks and OpenTelemetry clients"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)

    sizes = (QUICK if args.quick else FULL).scaled(args.scale)
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})
    if args.import_repeats:
        sizes = Sizes(**{**sizes.__dict__, "import_repeats": args.import_repeats})

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[bench] {message}", file=sys.stderr, flush=True)

    results = run(
        sizes,
        server_mode=args.server,
        latency=not args.no_latency,
        reconnect=not args.no_reconnect,
        short=not args.no_short,
        local_model=args.local,
        memory=not args.no_memory,
        imports=not args.no_import,
        partial=not args.no_partial,
        observed=not args.no_observed,
        log=log,
    )
    results.settings["command"] = " ".join(["python -m benchmarks.run", *(argv or sys.argv[1:])])
    print(format_table(results))
    if args.json:
        directory = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(directory, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results.as_dict(), fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
