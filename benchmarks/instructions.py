"""Instructions per chunk and per short stream under callgrind: figures that hold on a busy machine.

``python -m benchmarks.instructions`` (needs ``valgrind``) runs each client
in a fresh interpreter under ``valgrind --tool=callgrind``, twice per
scenario: on a small and a large stream (or on few and many short streams).
The difference in instructions over the difference in chunks (or streams)
is what one more chunk (or stream) costs; start-up, imports and warm-up
cancel out. The loopback server runs in its own process, outside valgrind.
Instruction counts leave out the kernel (system calls) and memory stalls,
so they point the way for wall time but do not replace it.

Options: ``--clients floor,ours.handlers`` (names from ``benchmarks.clients``),
``--scenarios content,tools,short``, ``--threads N`` (the short streams
from N threads of one client; callgrind runs one thread at a time).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from . import clients as bench_clients
from .scenarios import Scenario, build_chunks
from .server import ServerProcess

__all__ = ["PAIRS", "drive", "main"]

WARM_UPS = 2
PAIRS: Dict[str, Tuple[Scenario, Scenario, int]] = {
    # scenario name -> (small, large, runs of each in one interpreter)
    "content": (Scenario("content-2000", "content", 2000), Scenario("content-12000", "content", 12000), 1),
    "tools": (Scenario("tools-4x500", "tools", 500), Scenario("tools-4x3000", "tools", 3000), 1),
    "short": (Scenario("short-30", "content", 30), Scenario("short-30", "content", 30), 0),
}
SHORT_RUNS = (16, 112)
"""Short streams per interpreter: the per-stream figure is the difference over 96 streams."""


def _client_classes() -> Dict[str, type]:
    classes = [
        bench_clients.FloorClient,
        bench_clients.OursHandlersClient,
        bench_clients.OursIterClient,
        bench_clients.OursToolDeltaClient,
    ]
    return {cls.name: cls for cls in classes}


def drive(client_name: str, base_url: str, model: str, runs: int, threads: int = 1) -> None:
    """Warm ``client_name`` up on ``model``, then consume it ``runs`` times (from ``threads`` threads)."""
    import gc
    import threading

    client = _client_classes()[client_name](base_url)
    try:
        for _ in range(WARM_UPS):
            client.run(model)
        gc.collect()
        gc.freeze()
        if threads <= 1:
            for _ in range(runs):
                client.run(model)
            return
        per_thread = runs // threads

        def work() -> None:
            for _ in range(per_thread):
                client.run(model)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        client.close()


def _instructions(client: str, base_url: str, model: str, runs: int, threads: int) -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # A fixed hash seed: dict and set probing, and so the counts, repeat from run to run.
    path = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    env = dict(os.environ, PYTHONPATH=path, PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={os.path.join(scratch, 'callgrind.out')}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--drive",
            client,
            base_url,
            model,
            str(runs),
            str(threads),
        ]
        done = subprocess.run(command, capture_output=True, text=True, cwd=root, env=env, timeout=3600)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def measure(clients: Sequence[str], scenarios: Sequence[str], threads: int) -> List[Dict[str, object]]:
    """One row per (scenario, client): instructions per chunk (long streams) or per stream (short)."""
    wanted = [PAIRS[name] for name in scenarios]
    served = {s.name: s for small, large, _ in wanted for s in (small, large)}
    rows: List[Dict[str, object]] = []
    with ServerProcess(list(served.values())) as server:
        for name, (small, large, runs) in zip(scenarios, wanted):
            for client in clients:
                if name == "short":
                    few, many = SHORT_RUNS
                    low = _instructions(client, server.base_url, small.name, few, threads)
                    high = _instructions(client, server.base_url, small.name, many, threads)
                    per, unit = (high - low) / (many - few), "stream"
                else:
                    low = _instructions(client, server.base_url, small.name, runs, 1)
                    high = _instructions(client, server.base_url, large.name, runs, 1)
                    chunks = (len(build_chunks(large)) - len(build_chunks(small))) * (runs + WARM_UPS)
                    per, unit = (high - low) / chunks, "chunk"
                rows.append({"scenario": name, "client": client, "instructions": per, "per": unit})
                print(f"{name:8s} {client:16s} {per:12,.0f} instructions per {unit}", flush=True)
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--drive"]:  # the interpreter run under valgrind
        client, base_url, model, runs, threads = args[1:6]
        drive(client, base_url, model, int(runs), int(threads))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    parser.add_argument("--clients", default="floor,ours.handlers", help="comma-separated client names")
    parser.add_argument("--scenarios", default="content,tools,short", help="content, tools, short")
    parser.add_argument("--threads", type=int, default=1, help="threads for the short streams (default 1)")
    options = parser.parse_args(args)
    clients = [c for c in options.clients.split(",") if c]
    scenarios = [s for s in options.scenarios.split(",") if s]
    unknown = [c for c in clients if c not in _client_classes()] + [s for s in scenarios if s not in PAIRS]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    measure(clients, scenarios, options.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
