"""``stream.metrics``, ``runner.metrics`` and ``create()``'s: counts and timings against independent oracles.

Timings are never measured here: the metrics' clock is replaced by a
scripted one (``_metrics._clock``) that a chunk handler moves to the next
scripted arrival time, so every expected gap, time to first chunk and token
rate is computed by the test from the script itself.
"""

from __future__ import annotations

import json
import pickle
import random
import statistics
import threading
from typing import Any, Dict, List, Optional

import pytest
from conftest import RESPONSES_FIXTURES

import openai_stream
from openai_stream.engine import _metrics
from openai_stream.engine._metrics import RESERVOIR_SIZE, Recorder, StreamMetrics
from openai_stream.testing import ReplayServer, ScriptedResponse

USER = [{"role": "user", "content": "hi"}]


def content_chunks(
    n: int, usage: Optional[Dict[str, int]] = None, empty_first: bool = True
) -> List[Dict[str, Any]]:
    chunks: List[Dict[str, Any]] = []
    if empty_first:
        chunks.append(
            {
                "id": "c",
                "model": "m",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
            }
        )
    for i in range(n):
        chunks.append({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": f"t{i} "}}]})
    chunks.append({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage is not None:
        chunks.append({"id": "c", "model": "m", "choices": [], "usage": usage})
    return chunks


class ScriptedClock:
    """A clock at ``now``; the stream's ``chunk`` handler moves it to the next payload's arrival time."""

    def __init__(self, arrivals: List[float]) -> None:
        self.now = 0.0
        self.arrivals = arrivals
        self.next = 0

    def __call__(self) -> float:
        return self.now

    def advance(self, event: Any = None) -> None:
        if self.next < len(self.arrivals):
            self.now = self.arrivals[self.next]
            self.next += 1


def scripted_stream(
    client: openai_stream.Client, clock: ScriptedClock, **params: Any
) -> openai_stream.ChatCompletionStream:
    stream = client.chat.completions.stream(model="m", messages=USER, **params)
    stream.on("response", clock.advance)  # the first payload arrives at arrivals[0]
    stream.on("chunk", clock.advance)  # each chunk's handler: the next one arrives at the next time
    return stream


def run_scripted(
    monkeypatch: pytest.MonkeyPatch, chunks: List[Dict[str, Any]], arrivals: List[float]
) -> openai_stream.ChatCompletionStream:
    """Stream ``chunks`` from a replay server to the end, the metrics' clock reading ``arrivals``."""
    clock = ScriptedClock(arrivals)
    monkeypatch.setattr(_metrics, "_clock", clock)
    with ReplayServer([ScriptedResponse.from_chunks(chunks)]) as server, openai_stream.Client(
        api_key="sk-test", base_url=server.base_url
    ) as client:
        stream = scripted_stream(client, clock)
        stream.until_done()
    return stream


def test_counts_timings_and_rate_from_a_scripted_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 100
    chunks = content_chunks(n, usage={"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n})
    rng = random.Random(5)
    gaps = [rng.randint(1, 1000) / 1000.0 for _ in range(len(chunks) - 1)]
    arrivals = [2.0]
    for gap in gaps:
        arrivals.append(arrivals[-1] + gap)
    stream = run_scripted(monkeypatch, chunks, arrivals)
    m = stream.metrics
    assert m.finished and m is stream.metrics
    assert (m.chunks, m.content_deltas, m.output_deltas) == (len(chunks), n, n)
    assert m.time_to_first_chunk == 2.0 and m.time_to_headers == 0.0  # the clock moves with chunks only
    assert m.time_to_first_token == m.time_to_first_delta == arrivals[1]  # chunk 0 carries "" only
    assert m.gap_max == pytest.approx(max(gaps))
    assert m.gap_median == pytest.approx(statistics.median(gaps))  # under 128 gaps: every one kept
    assert (m.input_tokens, m.output_tokens, m.finish_reasons) == (7, n, ("stop",))
    assert m.usage == {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
    assert m.tokens_source == "usage"
    assert m.tokens_per_second == pytest.approx((n - 1) / (arrivals[-1] - arrivals[1]))
    assert (m.attempts, m.retries, m.rounds) == (1, 0, 1)
    assert m.total_seconds == arrivals[-1]  # the clock stays at the last arrival until the end
    json.dumps(m.to_dict())


def test_without_usage_the_rate_counts_deltas_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 20
    chunks = content_chunks(n, empty_first=False)
    arrivals = [1.0 + 0.5 * i for i in range(len(chunks))]
    stream = run_scripted(monkeypatch, chunks, arrivals)
    m = stream.metrics
    assert m.usage is None and m.output_tokens is None
    assert m.tokens_source == "deltas"
    # n deltas, the first at arrivals[0], the last chunk (the finish) at arrivals[n]
    assert m.tokens_per_second == pytest.approx((n - 1) / (arrivals[n] - arrivals[0]))
    assert m.gap_median == 0.5 and m.gap_max == 0.5


def test_the_gap_median_of_a_long_stream_is_estimated_from_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 1500
    chunks = content_chunks(n)
    gaps = [i / 1000.0 for i in range(1, len(chunks))]
    random.Random(11).shuffle(gaps)
    arrivals = [0.0]
    for gap in gaps:
        arrivals.append(arrivals[-1] + gap)
    stream = run_scripted(monkeypatch, chunks, [a + 1.0 for a in arrivals])
    m = stream.metrics
    assert m.gap_max == pytest.approx(max(gaps))
    assert m.gap_median is not None
    # The gaps are 1..N ms, so a gap's value is its rank: a random sample of 64 or more puts the
    # median's rank within a few percentiles of 50 (6.2 % is one standard error); 25 is four of them.
    rank = m.gap_median / max(gaps)
    assert 0.25 < rank < 0.75
    assert RESERVOIR_SIZE // 2 <= len(stream.recording.gap_sample) <= RESERVOIR_SIZE


def offer_all(gaps: List[float]) -> Recorder:
    """A recorder offered ``gaps`` as the stream's loop offers them (only the ones it asks for)."""
    recorder = Recorder()
    offer = 1
    for number, gap in enumerate(gaps, start=1):
        if number >= offer:
            offer = recorder.sample(gap, number)
    return recorder


def test_the_sample_covers_the_whole_stream_evenly() -> None:
    """Every stretch of a 10,000-gap stream is kept as often as any other."""
    total, trials, deciles, kept = 10_000, 200, [0] * 10, 0
    positions = [float(number) for number in range(1, total + 1)]
    for _ in range(trials):
        sample = offer_all(positions).reservoir
        assert RESERVOIR_SIZE // 2 <= len(sample) <= RESERVOIR_SIZE
        kept += len(sample)
        for position in sample:
            deciles[int(position - 1) * 10 // total] += 1
    for count in deciles:
        assert abs(count - kept / 10) < 0.08 * kept / 10, deciles


def test_a_periodic_pattern_does_not_line_up_with_the_sample() -> None:
    """Gaps alternating short and long (two events per read, say): the sample holds both about half each."""
    gaps = [0.001 if number % 2 else 0.1 for number in range(1, 5001)]
    for _ in range(20):
        sample = offer_all(gaps).reservoir
        short = sum(1 for gap in sample if gap == 0.001) / len(sample)
        assert 0.25 < short < 0.75


def test_metrics_are_readable_from_another_thread_mid_stream() -> None:
    chunks = content_chunks(30)
    seen: List[StreamMetrics] = []
    with ReplayServer([ScriptedResponse.from_chunks(chunks)]) as server, openai_stream.Client(
        api_key="sk-test", base_url=server.base_url
    ) as client:
        stream = client.chat.completions.stream(model="m", messages=USER)

        def read_elsewhere(event: Any) -> None:
            if len(event.snapshot) and event.delta == "t9 ":
                reader = threading.Thread(target=lambda: seen.append(stream.metrics))
                reader.start()
                reader.join(10)

        stream.on("content.delta", read_elsewhere)
        assert stream.metrics.chunks == 0 and not stream.metrics.finished  # before it starts
        stream.until_done()
    (mid,) = seen
    assert not mid.finished
    assert mid.content_deltas == 10 and mid.chunks == 11  # the empty first chunk, then t0..t9
    assert mid.finish_reasons == (None,)
    assert stream.metrics.finished and stream.metrics.content_deltas == 30


def test_reasoning_and_tool_deltas_count_as_output_not_content() -> None:
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":'}}
    chunks = [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]},
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]},
        {
            "id": "c",
            "model": "m",
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}}
            ],
        },
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    with ReplayServer([ScriptedResponse.from_chunks(chunks)]) as server, openai_stream.Client(
        api_key="sk-test", base_url=server.base_url
    ) as client:
        stream = client.chat.completions.stream(model="m", messages=USER)
        stream.until_done()
    m = stream.metrics
    assert m.content_deltas == 0 and m.time_to_first_token is None
    assert m.output_deltas == 3 and m.time_to_first_delta is not None  # reasoning, two argument pieces
    assert m.finish_reasons == ("tool_calls",)


def test_several_choices_have_one_finish_reason_each() -> None:
    chunks = [
        {"id": "c", "model": "m", "choices": [{"index": i, "delta": {"content": "x"}} for i in range(3)]},
        {
            "id": "c",
            "model": "m",
            "choices": [
                {"index": 0, "delta": {}, "finish_reason": "stop"},
                {"index": 1, "delta": {}, "finish_reason": "length"},
                {"index": 2, "delta": {}, "finish_reason": "stop"},
            ],
        },
    ]
    with ReplayServer([ScriptedResponse.from_chunks(chunks)]) as server, openai_stream.Client(
        api_key="sk-test", base_url=server.base_url
    ) as client:
        stream = client.chat.completions.stream(model="m", messages=USER, n=3)
        stream.until_done()
    assert stream.metrics.finish_reasons == ("stop", "length", "stop")
    assert stream.metrics.content_deltas == 3


def test_a_runner_adds_its_rounds_up() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "echo", "arguments": '{"x": 1}'},
    }
    first: List[Dict[str, Any]] = [
        {"id": "r1", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]},
        {"id": "r1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {
            "id": "r1",
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        },
    ]
    second = content_chunks(4, usage={"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24})

    def echo(x: int) -> int:
        """Echo."""
        return x

    replies = [ScriptedResponse.from_chunks(first), ScriptedResponse.from_chunks(second)]
    with ReplayServer(replies) as server, openai_stream.Client(base_url=server.base_url) as client:
        runner = client.chat.completions.run_tools(model="m", messages=USER, tools=[echo])
        assert runner.metrics.rounds == 0
        runner.until_done()
    m = runner.metrics
    assert m.finished and m.rounds == 2
    assert m.chunks == len(first) + len(second)
    assert (m.input_tokens, m.output_tokens) == (30, 9)
    assert m.usage == {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}
    assert m.content_deltas == 4 and m.output_deltas == 5  # the one argument piece of round 1
    assert m.finish_reasons == ("stop",)
    assert m.tokens_source == "usage"


def test_metrics_are_frozen_comparable_and_pickle() -> None:
    recorder = Recorder()
    recorder.start()
    m = recorder.snapshot(chunks=0, received=0, usage=None, finish_reasons=(), finished=False)
    with pytest.raises(AttributeError):
        m.chunks = 3
    assert pickle.loads(pickle.dumps(m)) == m
    assert "time_to_first_token=None" in repr(m)
    assert m.summary().startswith("total ")


def test_weighted_median_and_usage_sums() -> None:
    assert _metrics.weighted_median([(1.0, 1.0), (2.0, 1.0), (3.0, 5.0)]) == 3.0
    assert _metrics.weighted_median([]) is None
    added = _metrics._add_usage(
        {"prompt_tokens": 1, "completion_tokens_details": {"reasoning_tokens": 2}},
        {"prompt_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 4}, "extra": True},
    )
    assert added == {"prompt_tokens": 4, "completion_tokens_details": {"reasoning_tokens": 6}, "extra": True}


def test_a_resumed_responses_stream_counts_both_bodies_and_the_resume() -> None:
    """A body cut after event 9, resumed from there: every chunk counted once, one retry, two attempts."""
    from fault_server import FaultServer, chunk, head, reset, script

    from openai_stream.testing import split_sse_events

    fixture = RESPONSES_FIXTURES / "openai-text.sse"
    events = split_sse_events(fixture.read_bytes())
    handlers = [
        script(head(), chunk(b"".join(events[:10])), reset()),
        script(head(), chunk(b"".join(events[10:])), chunk(b"")),
    ]
    with FaultServer(handlers) as server, openai_stream.Client(
        base_url=server.base_url, api_key="sk-test", timeout=10
    ) as client:
        stream = client.responses.stream(model="m", input="hi", resume=True, background=True)
        stream.until_done()
    m = stream.metrics
    assert m.chunks == len(events) and m.bytes == sum(len(e) for e in events)
    assert (m.attempts, m.retries) == (2, 1)


def test_a_streams_recording_gives_the_moments_behind_its_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = content_chunks(20)
    arrivals = [3.0 + 0.25 * i + (0.5 if i % 3 == 0 else 0.0) for i in range(len(chunks))]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    clock = ScriptedClock(arrivals)
    monkeypatch.setattr(_metrics, "_clock", clock)
    with ReplayServer([ScriptedResponse.from_chunks(chunks)]) as server, openai_stream.Client(
        api_key="sk-test", base_url=server.base_url
    ) as client:
        stream = scripted_stream(client, clock)
        before = stream.recording
        assert before.started is None and before.metrics.chunks == 0 and before.gap_sample == ()
        stream.until_done()
    recording = stream.recording
    assert recording.metrics == stream.metrics and recording.metrics.finished
    # The clock reads 0 until the response handler moves it to the first arrival.
    assert (recording.started, recording.headers_at) == (0.0, 0.0)
    assert recording.first_chunk_at == arrivals[0]
    assert recording.first_token_at == recording.first_delta_at == arrivals[1]  # chunk 0 carries ""
    assert recording.last_chunk_at == arrivals[-1]
    assert sorted(recording.gap_sample) == pytest.approx(sorted(gaps))  # under 128 gaps: every one kept
    assert isinstance(recording, openai_stream.Recording)
