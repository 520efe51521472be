"""The benchmark suite runs end to end at small sizes and every client agrees on the final text.

No timing is asserted here: the numbers come from ``python -m benchmarks.run``.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from benchmarks import clients as bench_clients
from benchmarks import run as bench_run
from benchmarks.scenarios import CALL_SEP, CHOICE_SEP, Scenario, build_chunks, encode_events
from benchmarks.server import CLOSING_PREFIX, SSEServer, response_bytes

TINY = bench_run.Sizes(
    content=60,
    tool_fragments=12,
    choice_deltas=15,
    scale_small=20,
    scale_large=160,
    memory_deltas=300,
    latency_events=5,
    repeats=2,
    import_repeats=1,
)


def _rows(results: Dict[str, Any], scenario: str) -> List[Dict[str, Any]]:
    return [r for r in results["throughput"] if r["scenario"] == scenario]


def test_quick_run_end_to_end_writes_json_and_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results" / "bench.json"
    code = bench_run.main(
        ["--quick", "--scale", "0.02", "--repeats", "2", "--import-repeats", "1", "-q", "--json", str(out)]
    )
    assert code == 0
    results = json.loads(out.read_text())
    expected_clients = {"floor", "ours.handlers", "ours.iter", bench_run.ACCUMULATOR}
    if _has("openai"):
        expected_clients |= {"openai.stream", "openai.create"}
    scenarios = {r["scenario"] for r in results["throughput"]}
    assert len(scenarios) == 8  # 5 chat, 3 responses (issue 12 §10)
    assert sum(name.startswith("responses-") for name in scenarios) == 3
    responses_rows = [r for r in results["throughput"] if r["scenario"].startswith("responses-")]
    assert "sseclient" not in {r["client"] for r in responses_rows}  # it speaks chat only
    assert {r["api"] for r in results["memory"]} == {"chat", "responses"}
    targets = {t["target"] for t in results["targets"]}
    assert any("openai responses.stream()" in t for t in targets)
    assert any("responses scaling" in t for t in targets)
    partial_clients = {bench_run.TOOL_DELTA, bench_run.PARTIAL}
    for scenario in scenarios:
        rows = _rows(results, scenario)
        assert {r["client"] for r in rows} >= expected_clients
        names = {r["client"] for r in rows}
        assert names >= partial_clients if scenario.startswith("tools-") else not names & partial_clients
        assert all(r["same_text"] for r in rows)
        assert all(len(r["runs_s"]) == 2 for r in rows)
        floor = next(r for r in rows if r["client"] == "floor")
        assert floor["x_floor"] == 1.0
    assert {r["client"] for r in results["latency"]} >= {"floor", "ours.handlers", "ours.iter"}
    events = results["settings"]["sizes"]["latency_events"]
    assert all(r["events"] == events and r["p99_ms"] >= r["median_ms"] for r in results["latency"])
    reconnect = {r["client"]: r for r in results["reconnect"]}
    assert set(reconnect) >= {"floor.fresh", "ours.defaults", "ours.handlers"}
    streams = results["settings"]["sizes"]["reconnect_streams"]
    assert all(r["streams"] == streams for r in reconnect.values())
    # A server that closes every connection after its answer costs openai_stream no failure,
    # not even with max_retries=0 (ours.handlers).
    assert reconnect["ours.defaults"]["failures"] == reconnect["ours.handlers"]["failures"] == 0
    assert reconnect["floor.fresh"]["median_x_floor"] == 1.0
    short = results["short_streams"]
    assert {(r["mode"], r["client"]) for r in short} >= {
        (mode, client) for mode in ("sequential", "16 threads") for client in ("floor", "ours.handlers")
    }
    assert all(r["streams"] >= 16 and len(r["runs_s"]) == 2 for r in short)
    assert all(r["x_floor"] == 1.0 for r in short if r["client"] == "floor")
    target_names = [t["target"] for t in results["targets"]]
    assert any(name.startswith("ours.handlers vs floor, short streams") for name in target_names)
    assert {r["client"] for r in results["memory"]} == {"floor", "ours.handlers", "ours.iter"}
    assert all(r["peak_bytes"] > 0 for r in results["memory"])
    assert {r["module"] for r in results["import"]} >= {"openai_stream", "requests"}
    statuses = {t["target"]: t["status"] for t in results["targets"]}
    assert any(name.startswith("ours.handlers vs floor") for name in statuses)
    assert set(statuses.values()) <= {"pass", "MISS", "n/a"}
    tools = next(s for s in scenarios if s.startswith("tools-"))
    partial = results["partial_arguments"]
    assert [(r["scenario"], r["client"]) for r in partial] == [
        (tools, bench_run.TOOL_DELTA),
        (tools, bench_run.PARTIAL),
    ]
    stats = bench_run.tool_delta_stats(
        build_chunks(Scenario(tools, "tools", results["settings"]["sizes"]["tool_fragments"], calls=4))
    )
    noop, reading = partial
    assert all(r["deltas"] == stats["deltas"] > 0 and r["same_final_arguments"] for r in partial)
    assert noop["x_noop"] == 1.0 and noop["extra_us_per_delta"] is None
    assert reading["extra_us_per_delta"] is not None and reading["x_noop"] > 0
    assert reading["snapshot_bytes_parsed"] == stats["snapshot_bytes_parsed"] > stats["final_arguments_bytes"]
    reads = results["partial_arguments_read"]
    assert [r["snapshot_bytes"] // 10 for r in reads] == [n // 10 for n in bench_run.PARTIAL_READ_BYTES]
    assert all(r["us_per_read"] > 0 and r["json_loads_us"] > 0 for r in reads)
    table = capsys.readouterr().out
    assert "ours.handlers" in table and "targets" in table and "x floor" in table
    assert "server closes each connection" in table and "p90/median" in table
    assert "short streams" in table and "16 threads" in table
    assert "partial_arguments on every tool_call.delta" in table and "quadratic" in table
    assert "ours.partial_args" in table and "us/read" in table
    observed = {(r["scenario"], r["client"]) for r in results["observability"]}
    wanted = {"ours.handlers", bench_run.HOOKS}
    if _has("opentelemetry.sdk"):
        wanted.add(bench_run.OBSERVED)
    assert observed == {(s, c) for s in scenarios for c in wanted}
    assert all(r["x_handlers"] == 1.0 for r in results["observability"] if r["client"] == "ours.handlers")
    assert "observability:" in table and "x handlers" in table


def test_the_observed_clients_record_one_span_per_stream() -> None:
    scenarios = bench_run.scenarios_for(TINY)[:1]
    with SSEServer(scenarios) as server:
        clients = [cls(server.base_url) for cls in bench_clients.observed_clients()]
        try:
            expected = bench_run.expected_text(build_chunks(scenarios[0]))
            for client in clients:
                assert client.run(scenarios[0].name) == expected  # the observed one checks its span
                assert client.client.hooks.active
        finally:
            for client in clients:
                client.close()


def test_every_client_gives_the_expected_text_on_every_scenario_shape() -> None:
    scenarios = bench_run.scenarios_for(TINY)[:3]
    with SSEServer(scenarios) as server:
        clients = [cls(server.base_url) for cls in bench_clients.network_clients()]
        try:
            for scenario in scenarios:
                chunks = build_chunks(scenario)
                expected = bench_run.expected_text(chunks)
                assert bench_clients.accumulate_in_memory(chunks) == expected
                for client in clients:
                    assert client.run(scenario.name) == expected, (client.name, scenario.name)
        finally:
            for client in clients:
                client.close()


def test_partial_arguments_client_ends_with_each_call_s_final_arguments() -> None:
    scenarios = bench_run.scenarios_for(TINY)[:2]
    with SSEServer(scenarios) as server:
        noop = bench_clients.OursToolDeltaClient(server.base_url)
        reading = bench_clients.OursPartialArgumentsClient(server.base_url)
        try:
            for scenario in scenarios:
                expected = bench_run.expected_text(build_chunks(scenario))
                assert noop.run(scenario.name) == expected
                assert reading.run(scenario.name) == expected
            partials = reading.last_partials
        finally:
            noop.close()
            reading.close()
    calls = bench_run.expected_text(build_chunks(scenarios[1])).split(CALL_SEP)[1:]
    assert partials == {(0, k): json.loads(calls[2 * k + 1]) for k in range(4)}


def test_partial_arguments_client_fails_when_a_partial_parse_is_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from openai_stream import ToolCallDeltaEvent

    monkeypatch.setattr(ToolCallDeltaEvent, "partial_arguments", property(lambda event: {"query": ""}))
    scenario = bench_run.scenarios_for(TINY)[1]
    with SSEServer([scenario]) as server:
        client = bench_clients.OursPartialArgumentsClient(server.base_url)
        try:
            with pytest.raises(AssertionError, match=r"last partial_arguments of call \(0, 0\)"):
                client.run(scenario.name)
        finally:
            client.close()


def test_tool_delta_stats_count_the_quadratic_bytes_a_reader_parses() -> None:
    chunks = build_chunks(Scenario("t", "tools", 5, calls=2))
    fragments: Dict[int, List[bytes]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or ():
                fragments.setdefault(call["index"], []).append(call["function"]["arguments"].encode())
    snapshots = [len(b"".join(parts[: i + 1])) for parts in fragments.values() for i in range(len(parts))]
    stats = bench_run.tool_delta_stats(chunks)
    assert stats["deltas"] == len(snapshots) == 2 * (1 + 5)  # the announcing delta, then 5 fragments
    assert stats["snapshot_bytes_parsed"] == sum(snapshots)
    assert stats["final_arguments_bytes"] == sum(len(b"".join(parts)) for parts in fragments.values())


def test_expected_texts_have_the_shape_of_their_scenario() -> None:
    tools = bench_run.expected_text(build_chunks(Scenario("t", "tools", 12, calls=4)))
    calls = tools.split(CALL_SEP)[1:]
    assert [calls[i] for i in range(0, 8, 2)] == ["search_0", "search_1", "search_2", "search_3"]
    for arguments in calls[1::2]:
        assert json.loads(arguments)["query"]
    assert bench_run.expected_text(build_chunks(Scenario("n", "choices", 5, n=3))).count(CHOICE_SEP) == 2
    content = build_chunks(Scenario("c", "content", 40))
    assert len(content) == 40 + 3  # role chunk, deltas, finish chunk, usage chunk
    assert all(e.endswith(b"\n\n") for e in encode_events(content))


def test_a_client_that_loses_text_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    original = bench_clients.OursIterClient.run

    def lossy(self: Any, model: str, on_content: Any = None) -> str:
        return original(self, model, on_content)[:-1]

    monkeypatch.setattr(bench_clients.OursIterClient, "run", lossy)
    with pytest.raises(AssertionError, match=r"ours\.iter produced a different final text"):
        bench_run.measure_throughput(TINY, "thread", lambda message: None)


def test_server_answers_unknown_models_with_404_and_keeps_the_connection() -> None:
    scenario = Scenario("tiny", "content", 3)
    with (
        SSEServer([scenario]) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn,
    ):
        for model, status in (("nope", b"404"), ("tiny", b"200")):
            body = json.dumps({"model": model}).encode()
            conn.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            data = b""
            end = b"0\r\n\r\n" if status == b"200" else b"}}"
            while not data.endswith(end):
                piece = conn.recv(65536)
                assert piece, "server closed the connection"
                data += piece
            assert data.split(b" ")[1] == status
        assert data == response_bytes(scenario)


def test_latency_server_stamps_each_event_when_it_writes_it() -> None:
    with SSEServer() as server:
        client = bench_clients.FloorClient(server.base_url)
        seen: List[float] = []
        try:
            start = time.perf_counter()
            client.run("latency:4:20", lambda delta: seen.append(float(delta)))
        finally:
            client.close()
    assert len(seen) == 4
    assert all(start < stamp for stamp in seen)
    assert seen == sorted(seen)


def test_closing_server_answers_once_then_closes_without_reading_more() -> None:
    scenario = Scenario("tiny", "content", 3)
    body = json.dumps({"model": CLOSING_PREFIX + "tiny"}).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    with SSEServer([scenario]) as server, socket.create_connection(("127.0.0.1", server.port), 5) as conn:
        conn.sendall(request)
        data = b""
        while True:
            piece = conn.recv(65536)
            if not piece:
                break
            data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"Keep-Alive: timeout=5" in head
    expected_body = response_bytes(scenario).partition(b"\r\n\r\n")
    assert rest == expected_body[2]  # the whole answer, then the end of the connection


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_the_instruction_count_driver_consumes_each_client_s_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    # What benchmarks.instructions runs under valgrind (valgrind itself is not needed here).
    from benchmarks import instructions

    small, large, _ = instructions.PAIRS["content"]
    tiny = Scenario("content-40", "content", 40)
    runs: List[str] = []
    real_run = bench_clients.FloorClient.run

    def counted(self: Any, model: str, on_content: Any = None) -> str:
        runs.append(model)
        return str(real_run(self, model, on_content))

    monkeypatch.setattr(bench_clients.FloorClient, "run", counted)
    with SSEServer([tiny]) as server:
        for name in ("floor", "ours.handlers"):
            instructions.drive(name, server.base_url, tiny.name, 3)
        instructions.drive("floor", server.base_url, tiny.name, 4, threads=2)
    assert runs == [tiny.name] * (instructions.WARM_UPS + 3 + instructions.WARM_UPS + 4)
    assert small.kind == large.kind == "content" and large.size > small.size
