"""Metrics of one call: timings, counts and token rate, readable from any thread at any time.

:class:`StreamMetrics` is the frozen snapshot users read (``stream.metrics``,
``runner.metrics``, the ``*.end`` hooks). :class:`Recorder` is what the
stream engine and the transport write while a call runs: a few attributes,
each written by one thread (the one running the call) and read by any, so a
snapshot taken mid-stream may combine figures that are one chunk apart;
each figure on its own is always valid, and the snapshot taken at the end
(``final``) is complete and consistent. :class:`Recording` is a stream's
snapshot with the clock readings and gap sample behind it
(``stream.recording``): what :func:`combine` adds up for a call made of
several streams (a tool runner's rounds).

The engine reads the clock once per payload, when the stream's loop takes
it from the body reader (so the time the handlers of one chunk take counts
in the gap before the next). Inter-chunk gaps are summarised in constant
memory per stream: the maximum exactly, the median estimated from a
stratified random sample of 64 to :data:`RESERVOIR_SIZE` (128) gaps (one gap
at a random position of each stretch of ``s`` consecutive gaps; when the
sample is full, every other one is dropped, chosen by a coin flip, and ``s``
doubles; see :meth:`Recorder.sample`). The position of the next gap to keep
is drawn ahead of time, so a gap that is not kept costs one integer
comparison, and about ``K + K/2 * log2(n / K)`` of ``n`` gaps are kept in
all (the engine appends the first ``K`` itself). With 64 samples the
estimate lies within about 6 percentiles of the true median (one standard
error, 4 with 128; stratifying only narrows it). The sample is small on
purpose: each kept gap costs a call, and this runs for every stream.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

__all__ = ["RESERVOIR_SIZE", "Recorder", "Recording", "StreamMetrics", "combine"]

RESERVOIR_SIZE = 128
_clock = time.perf_counter  # every metric's clock; module-level so that tests can script it
# The gap sample's random numbers: not the global generator, which the application may seed.
# One call is one C-level operation, safe from any thread, also without a GIL.
_coin = random.Random().random


def now() -> float:
    """The metrics' clock (``time.perf_counter`` unless a test replaced it)."""
    return _clock()


def clock_function() -> Callable[[], float]:
    """The clock itself, for a loop that reads it often."""
    return _clock


class StreamMetrics:
    """What one stream (or create call, or tool runner) measured, frozen at the moment it was read.

    Times are seconds from the moment the call started (before its request
    was sent), ``None`` until the thing happened:

    - ``time_to_headers``: the response headers of the attempt that answered
      (retries and their waits included);
    - ``time_to_first_chunk``: the first payload of the body;
    - ``time_to_first_delta``: the first generated delta of any kind
      (content, reasoning, refusal, tool-call arguments);
    - ``time_to_first_token``: the first content delta;
    - ``total_seconds``: until the end, or until now while running.

    Counts: ``chunks`` (payloads decoded), ``content_deltas``,
    ``output_deltas`` (every generated delta, content included), ``bytes``
    (of the body as received), ``attempts`` (requests sent) and ``retries``
    (attempts after the first, a resend on a stale pooled connection
    included, and a Responses stream resumed after its body broke).

    ``gap_median`` and ``gap_max`` summarise the seconds between consecutive
    chunks, as the stream's loop took them from the socket (the median is
    estimated from a stratified sample of 64 to 128 gaps spread over the
    whole stream, the maximum is exact); ``None`` before the second chunk.

    ``usage`` is the usage the server sent (a dict, ``None`` when it sent
    none), ``input_tokens``/``output_tokens`` its counts, ``finish_reasons``
    one per choice (``None`` for a choice that has none yet).

    ``tokens_per_second`` is the output rate after the first delta: output
    tokens after the first, over the time from the first delta to the last
    chunk. ``tokens_source`` says where the count came from: ``usage`` when
    the server reported output tokens, else ``deltas`` (each generated delta
    counted as one token: llama.cpp and OpenAI send one token per delta,
    other servers may send several). ``None`` when there is nothing to
    measure (fewer than two tokens, or no time between them).

    ``finished`` is true once the call ended; the figures no longer change.
    A runner's metrics add up its rounds (see
    :attr:`~openai_stream.ToolRunner.metrics`); ``rounds`` counts them
    (1 for a stream).
    """

    _FIELDS = (
        "time_to_headers",
        "time_to_first_chunk",
        "time_to_first_delta",
        "time_to_first_token",
        "total_seconds",
        "chunks",
        "content_deltas",
        "output_deltas",
        "bytes",
        "gap_median",
        "gap_max",
        "usage",
        "input_tokens",
        "output_tokens",
        "finish_reasons",
        "attempts",
        "retries",
        "tokens_per_second",
        "tokens_source",
        "rounds",
        "finished",
    )
    """The figures, in the order repr and to_dict show them."""
    __slots__ = _FIELDS

    time_to_headers: Optional[float]
    time_to_first_chunk: Optional[float]
    time_to_first_delta: Optional[float]
    time_to_first_token: Optional[float]
    total_seconds: float
    chunks: int
    content_deltas: int
    output_deltas: int
    bytes: int
    gap_median: Optional[float]
    gap_max: Optional[float]
    usage: Optional[Dict[str, Any]]
    input_tokens: Optional[int]
    output_tokens: Optional[int]
    finish_reasons: Tuple[Optional[str], ...]
    attempts: int
    retries: int
    tokens_per_second: Optional[float]
    tokens_source: Optional[str]
    rounds: int
    finished: bool

    def __init__(self, **values: Any) -> None:
        for name in self._FIELDS:
            object.__setattr__(self, name, values.pop(name))
        if values:
            raise TypeError(f"unknown metrics: {', '.join(sorted(values))}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("StreamMetrics is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamMetrics):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_rebuild, (self.to_dict(),))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS if name != "usage")
        return f"StreamMetrics({shown})"

    def to_dict(self) -> Dict[str, Any]:
        """Every figure as a JSON-ready dict (``finish_reasons`` as a list)."""
        out = {name: getattr(self, name) for name in self._FIELDS}
        out["finish_reasons"] = list(self.finish_reasons)
        return out

    def summary(self) -> str:
        """One line for a person: first token, total, rate (with its source), retries."""
        parts = []
        if self.time_to_first_token is not None:
            parts.append(f"first token {self.time_to_first_token:.2f} s")
        elif self.time_to_first_delta is not None:
            parts.append(f"first delta {self.time_to_first_delta:.2f} s")
        parts.append(f"total {self.total_seconds:.2f} s")
        if self.tokens_per_second is not None:
            counted = "" if self.tokens_source == "usage" else ", counted deltas"
            parts.append(f"{self.tokens_per_second:.1f} tokens/s after the first{counted}")
        if self.gap_max is not None:
            parts.append(f"gaps median {_ms(self.gap_median)} max {_ms(self.gap_max)}")
        if self.retries:
            parts.append(f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}")
        return ", ".join(parts)


def _ms(seconds: Optional[float]) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def _rebuild(values: Dict[str, Any]) -> StreamMetrics:
    values = dict(values)
    values["finish_reasons"] = tuple(values["finish_reasons"])
    return StreamMetrics(**values)


class Recording(NamedTuple):
    """A stream's metrics with the moments behind them: what adding several streams up takes.

    ``metrics`` is the stream's :class:`StreamMetrics`, whose times count from
    the stream's own start. The moments are readings of the metrics clock
    (``time.perf_counter()``), ``None`` until the thing happened, so that the
    recordings of several streams fall on one time line (a tool runner's
    rounds, timed from the runner's start). ``gap_sample`` is the stream's
    sample of the gaps between chunks (see :attr:`StreamMetrics.gap_median`);
    each sampled gap stands for ``max(metrics.chunks - 1, len(gap_sample)) /
    len(gap_sample)`` gaps. Read ``stream.recording`` from any thread; like
    ``stream.metrics`` mid-stream, its figures may be one chunk apart.
    """

    metrics: StreamMetrics
    started: Optional[float]
    """When the stream started (before its request was sent); ``None`` if it never ran."""
    headers_at: Optional[float]
    first_chunk_at: Optional[float]
    first_delta_at: Optional[float]
    first_token_at: Optional[float]
    last_chunk_at: Optional[float]
    gap_sample: Tuple[float, ...]


class Recorder:
    """The running figures of one call, written by the thread that runs it.

    The transport writes ``attempts``, ``retries`` and ``headers_at``; the
    engine's loop writes the rest (see ``BaseStream._run``). Times are
    ``time.perf_counter()`` values; ``started`` is set when the call starts.
    ``reservoir`` is only appended to or assigned by index (each one list
    operation), and read as a copy.
    """

    __slots__ = (
        "_next",
        "_stride",
        "attempts",
        "call",
        "content_deltas",
        "ended_at",
        "first_chunk_at",
        "first_other_at",
        "first_token_at",
        "gap_max",
        "headers_at",
        "last_chunk_at",
        "other_deltas",
        "prior_bytes",
        "prior_chunks",
        "reservoir",
        "retries",
        "started",
    )

    def __init__(self) -> None:
        self.call: Any = None  # the stream or create call measured, named in the transport's hooks
        self.started: Optional[float] = None
        self.headers_at: Optional[float] = None
        self.first_chunk_at: Optional[float] = None
        self.first_token_at: Optional[float] = None  # the first content delta
        self.first_other_at: Optional[float] = None  # the first other generated delta
        self.last_chunk_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self.attempts = 0
        self.retries = 0
        self.content_deltas = 0
        self.other_deltas = 0  # reasoning, refusal and tool-call deltas
        self.prior_chunks = 0  # what the bodies before a resume brought (their readers are gone)
        self.prior_bytes = 0
        self.gap_max = 0.0
        self.reservoir: List[float] = []
        self._next = 2  # the first gap of the next stratum (once strata are longer than one gap)
        self._stride = 1  # gaps per stratum

    def start(self) -> None:
        """The call starts now."""
        self.started = _clock()

    def headers_arrived(self) -> None:
        """An attempt's response headers arrived now (the transport calls it)."""
        self.headers_at = _clock()

    def resumed(self, chunks: int, received: int) -> None:
        """The stream goes on in a new response (a resume, a retry): keep the old body's counts."""
        self.prior_chunks += chunks
        self.prior_bytes += received
        self.retries += 1

    def sample(self, gap: float, number: int) -> int:
        """Keep gap ``number`` (from 1), the one drawn for its stratum; return the number of the next one.

        The gaps are cut into strata of ``_stride`` consecutive gaps, and one
        gap at a random position of each is kept. When the sample is full,
        one of each two neighbouring strata's gaps is kept (a coin flip), which
        makes strata twice as long: every kept gap stays a uniform pick from
        its stratum, so the sample is stratified over the whole stream and no
        periodic pattern in the gaps can line up with the positions kept.
        """
        reservoir = self.reservoir
        reservoir.append(gap)
        stride = self._stride
        # While every gap is kept (the engine appends those itself), the next stratum is the next gap.
        start = self._next if stride > 1 else number + 1
        if len(reservoir) >= RESERVOIR_SIZE:
            # A new list, replaced whole: a reader copies either the old one or the new one.
            self.reservoir = [reservoir[i + (_coin() < 0.5)] for i in range(0, len(reservoir) - 1, 2)]
            stride = self._stride = stride * 2
        self._next = start + stride
        return start + int(_coin() * stride)

    @property
    def first_delta_at(self) -> Optional[float]:
        """When the first generated delta of any kind came."""
        token, other = self.first_token_at, self.first_other_at
        if token is None or other is None:
            return token if other is None else other
        return min(token, other)

    @property
    def output_deltas(self) -> int:
        """Every generated delta so far, content included."""
        return self.content_deltas + self.other_deltas

    def gap_median(self) -> Optional[float]:
        """The median of the sampled gaps, ``None`` before the first."""
        sample = list(self.reservoir)
        return quantile(sample, 0.5) if sample else None

    def recording(self, metrics: StreamMetrics) -> Recording:
        """``metrics`` (a snapshot of this recorder's stream) with the moments behind them."""
        return Recording(
            metrics,
            self.started,
            self.headers_at,
            self.first_chunk_at,
            self.first_delta_at,
            self.first_token_at,
            self.last_chunk_at,
            tuple(self.reservoir),
        )

    def snapshot(
        self,
        *,
        chunks: int,
        received: int,
        usage: Any,
        finish_reasons: Sequence[Optional[str]],
        finished: bool,
    ) -> StreamMetrics:
        """The figures now, with what the stream knows besides (counts of its body reader, its result)."""
        started = self.started
        chunks += self.prior_chunks
        received += self.prior_bytes
        end = self.ended_at if finished and self.ended_at is not None else _clock()
        usage_dict = _usage_dict(usage)
        input_tokens, output_tokens = token_counts(usage_dict)
        first_delta = self.first_delta_at
        last = self.last_chunk_at
        rate, source = tokens_per_second(
            output_tokens, self.output_deltas, first_delta, last if last is not None else end
        )
        gap_max = self.gap_max if chunks > 1 else None
        return StreamMetrics(
            time_to_headers=_since(started, self.headers_at),
            time_to_first_chunk=_since(started, self.first_chunk_at),
            time_to_first_delta=_since(started, first_delta),
            time_to_first_token=_since(started, self.first_token_at),
            total_seconds=(end - started) if started is not None else 0.0,
            chunks=chunks,
            content_deltas=self.content_deltas,
            output_deltas=self.output_deltas,
            bytes=received,
            gap_median=self.gap_median() if gap_max is not None else None,
            gap_max=gap_max,
            usage=usage_dict,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            finish_reasons=tuple(finish_reasons),
            attempts=self.attempts,
            retries=self.retries,
            tokens_per_second=rate,
            tokens_source=source,
            rounds=1,
            finished=finished,
        )


def _since(start: Optional[float], moment: Optional[float]) -> Optional[float]:
    if start is None or moment is None:
        return None
    return moment - start


def quantile(values: List[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values``, interpolated between neighbours (sorts in place)."""
    values.sort()
    position = min(max(q, 0.0), 1.0) * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _usage_dict(usage: Any) -> Optional[Dict[str, Any]]:
    if usage is None:
        return None
    if isinstance(usage, dict):
        return dict(usage)
    to_dict = getattr(usage, "to_dict", None)
    if callable(to_dict):
        value = to_dict()
        return value if isinstance(value, dict) else None
    return None


def token_counts(usage: Optional[Dict[str, Any]]) -> Tuple[Optional[int], Optional[int]]:
    """Input and output tokens of a usage dict, under chat's names or the Responses API's."""
    if not usage:
        return None, None
    return _count(usage, "prompt_tokens", "input_tokens"), _count(usage, "completion_tokens", "output_tokens")


def _count(usage: Dict[str, Any], *names: str) -> Optional[int]:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def tokens_per_second(
    output_tokens: Optional[int], deltas: int, first: Optional[float], last: Optional[float]
) -> Tuple[Optional[float], Optional[str]]:
    """Tokens after the first over the time from the first to the last; and where the count came from."""
    if output_tokens is not None:
        count, source = output_tokens, "usage"
    else:
        count, source = deltas, "deltas"
    if first is None or last is None or count < 2 or last <= first:
        return None, None
    return (count - 1) / (last - first), source


def combine(
    recordings: Sequence[Recording],
    *,
    started: Optional[float],
    ended: Optional[float],
    finished: bool,
    finish_reasons: Sequence[Optional[str]],
) -> StreamMetrics:
    """The metrics of a call made of several streams (a runner's rounds), from their recordings in order.

    A recording of a stream that never started is left out. Times to the
    first headers, chunk, delta and token are from ``started`` (the
    composite call's start) to the first stream that had one; counts and
    usage are summed; the gap maximum is the largest of any stream and the
    gap median a weighted median of every stream's sample (each sampled gap
    weighted by how many gaps it stands for); the token rate covers every
    stream's output over the time from the first delta to the last chunk of
    the last stream that had chunks (what ran in between included).
    """
    now = _clock()
    end = ended if finished and ended is not None else now
    parts = [part for part in recordings if part.started is not None]

    def first(moments: Sequence[Optional[float]]) -> Optional[float]:
        return next((_since(started, m) for m in moments if m is not None), None)

    usage: Optional[Dict[str, Any]] = None
    for part in parts:
        if part.metrics.usage:
            usage = _add_usage(usage or {}, part.metrics.usage)
    input_tokens, output_tokens = token_counts(usage)
    first_delta = next((p.first_delta_at for p in parts if p.first_delta_at is not None), None)
    last_chunk = next((p.last_chunk_at for p in reversed(parts) if p.last_chunk_at is not None), None)
    every_usage = all(p.metrics.output_tokens is not None for p in parts)
    deltas = sum(p.metrics.output_deltas for p in parts)
    counted = output_tokens if every_usage else None
    last = last_chunk if last_chunk is not None else end
    rate, source = tokens_per_second(counted, deltas, first_delta, last)
    weighted: List[Tuple[float, float]] = []
    for part in parts:
        sample = part.gap_sample
        if sample:
            weight = max(part.metrics.chunks - 1, len(sample)) / len(sample)
            weighted.extend((gap, weight) for gap in sample)
    maxima = [p.metrics.gap_max for p in parts if p.metrics.gap_max is not None]
    return StreamMetrics(
        time_to_headers=first([p.headers_at for p in parts]),
        time_to_first_chunk=first([p.first_chunk_at for p in parts]),
        time_to_first_delta=first([p.first_delta_at for p in parts]),
        time_to_first_token=first([p.first_token_at for p in parts]),
        total_seconds=(end - started) if started is not None else 0.0,
        chunks=sum(p.metrics.chunks for p in parts),
        content_deltas=sum(p.metrics.content_deltas for p in parts),
        output_deltas=deltas,
        bytes=sum(p.metrics.bytes for p in parts),
        gap_median=weighted_median(weighted),
        gap_max=max(maxima) if maxima else None,
        usage=usage,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reasons=tuple(finish_reasons),
        attempts=sum(p.metrics.attempts for p in parts),
        retries=sum(p.metrics.retries for p in parts),
        tokens_per_second=rate,
        tokens_source=source,
        rounds=len(parts),
        finished=finished,
    )


def weighted_median(pairs: List[Tuple[float, float]]) -> Optional[float]:
    """The value at which the cumulative weight of ``(value, weight)`` pairs first reaches half."""
    if not pairs:
        return None
    pairs.sort()
    half = sum(weight for _, weight in pairs) / 2.0
    total = 0.0
    for value, weight in pairs:
        total += weight
        if total >= half:
            return value
    return pairs[-1][0]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _add_usage(into: Dict[str, Any], more: Dict[str, Any]) -> Dict[str, Any]:
    """Usage dicts added up: numbers summed, nested dicts (token details) added the same way."""
    out = dict(into)
    for name, value in more.items():
        have = out.get(name)
        if isinstance(value, bool) or value is None:
            out.setdefault(name, value)
        elif _number(value) and _number(have):
            out[name] = have + value
        elif isinstance(value, dict) and isinstance(have, dict):
            out[name] = _add_usage(have, value)
        elif have is None:
            out[name] = value
    return out
