"""Short streams, where the cost of each request dominates: sequentially and from 16 threads.

A usual chat answer is a few dozen deltas, so what a client spends per request
(building it, sending it, taking a pooled connection, reading the headers,
setting a stream up and tearing it down) matters as much as what it spends
per chunk. Each client runs the same short stream (30 content deltas) over
its own connection pool, one stream after another, then from 16 threads
sharing one client. Clients are interleaved in a rotating order; each figure
is the median of the repeats, as total seconds over all streams of a run.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any, Callable, Dict, List, Sequence

from . import clients as bench_clients
from .scenarios import Scenario, build_chunks

__all__ = ["SHORT_SCENARIO", "THREADS", "measure_short_streams"]

SHORT_SCENARIO = Scenario("short-30", "content", 30)
THREADS = 16
FLOOR = "floor"


def _expected() -> str:
    collector = bench_clients._Collector()
    for chunk in build_chunks(SHORT_SCENARIO):
        collector.add(chunk, None)
    return collector.text()


def _sequential(client: Any, streams: int, expected: str) -> float:
    start = time.perf_counter()
    for _ in range(streams):
        if client.run(SHORT_SCENARIO.name) != expected:
            raise AssertionError(f"{client.name} returned the wrong text")
    return time.perf_counter() - start


def _threaded(client: Any, per_thread: int, expected: str) -> float:
    wrong: List[str] = []
    barrier = threading.Barrier(THREADS + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            try:
                if client.run(SHORT_SCENARIO.name) != expected:
                    wrong.append("wrong text")
            except Exception as exc:  # reported below; a benchmark must not hide a failure
                wrong.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join(300)
    elapsed = time.perf_counter() - start
    if wrong or any(t.is_alive() for t in threads):
        raise AssertionError(f"{client.name} failed in threads: {wrong[:3]}")
    return elapsed


def measure_short_streams(
    base_url: str, streams: int, repeats: int, log: Callable[[str], None]
) -> List[Dict[str, Any]]:
    """Rows per (mode, client): seconds per stream, and the ratio to the floor in the same run.

    ``base_url`` is a benchmark server that serves :data:`SHORT_SCENARIO`.
    ``streams`` is the number of streams per run, sequential and threaded alike.
    """
    expected = _expected()
    classes: Sequence[type] = [
        bench_clients.FloorClient,
        bench_clients.OursHandlersClient,
        bench_clients.OursIterClient,
        *[c for c in bench_clients.network_clients() if getattr(c, "name", "") == "openai.stream"],
    ]
    clients = [cls(base_url) for cls in classes]
    per_thread = max(1, streams // THREADS)
    modes: Dict[str, Callable[[Any], float]] = {
        "sequential": lambda client: _sequential(client, streams, expected),
        f"{THREADS} threads": lambda client: _threaded(client, per_thread, expected),
    }
    counts = {"sequential": streams, f"{THREADS} threads": per_thread * THREADS}
    times: Dict[str, Dict[str, List[float]]] = {mode: {c.name: [] for c in clients} for mode in modes}
    try:
        for client in clients:  # warm each pool and code path once
            _sequential(client, 3, expected)
        for repeat in range(repeats):
            order = clients[repeat % len(clients) :] + clients[: repeat % len(clients)]
            log(f"short streams, repeat {repeat + 1}/{repeats}: {', '.join(c.name for c in order)}")
            for mode, run in modes.items():
                for client in order:
                    times[mode][client.name].append(run(client))
    finally:
        for client in clients:
            client.close()
    rows: List[Dict[str, Any]] = []
    for mode, by_client in times.items():
        floor = statistics.median(by_client[FLOOR])
        for name, samples in by_client.items():
            median = statistics.median(samples)
            rows.append(
                {
                    "mode": mode,
                    "client": name,
                    "streams": counts[mode],
                    "deltas": SHORT_SCENARIO.size,
                    "median_s": median,
                    "runs_s": samples,
                    "us_per_stream": median / counts[mode] * 1e6,
                    "x_floor": median / floor,
                }
            )
    return rows
