"""Latency percentiles and error counts over sliding windows, in bounded memory.

Why a sketch: keeping every latency sample of the last five minutes for
hundreds of services grows with traffic; a DDSketch answers p50/p95/p99 with a
*relative* error bound (a true p95 of 200 ms is reported as 198–202 ms) in a
few kilobytes, and two sketches merge exactly, so a window is the merge of
small per-slice sketches.

The guarantee, precisely: for a quantile ``q`` over ``n`` samples, let ``x`` be
the sample of rank ``floor(q * (n - 1))`` in sorted order; the sketch returns a
value within ``x * (1 ± RELATIVE_ACCURACY)``. The store is capped at
``BIN_LIMIT`` bins and collapses the *lowest* bins first, so the bound holds
for every value within a factor of about 10^17 of the largest sample — every
latency a service can have — and memory stays bounded even for absurd inputs.

Windows follow the convention of Prometheus' own summaries: time is cut into
``BUCKET_SECONDS`` slices keyed by the (injected) clock time of each sample; a
window of 60 s at time ``now`` is the slice holding ``now`` plus the five
before it, so it spans between 50 and 60 s of samples and data leaves it ten
seconds at a time. A ring of ``BUCKETS`` slices covers the longest window
(5 min); nothing older is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ddsketch import CollapsingLowestDenseStore, LogarithmicMapping
from ddsketch.ddsketch import BaseDDSketch

RELATIVE_ACCURACY = 0.01
"""DDSketch's alpha: every reported quantile is within ±1% of the true one."""

BIN_LIMIT = 2048
"""Hard cap on bins per sketch (about 16 KiB at worst); see the module docstring."""

BUCKET_SECONDS = 10.0
"""Width of one time slice; windows gain and lose data at this granularity."""

BUCKETS = 30
"""Slices in the ring: 30 × 10 s = the 5-minute window, the longest one kept."""

QUANTILES = (0.5, 0.95, 0.99)
"""The quantiles every window reports: p50, p95, p99."""


_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
"""Immutable and shared: building a mapping per slice costs a third of a sketch's setup."""


def new_sketch() -> BaseDDSketch:
    """An empty sketch with Conn's accuracy and bin cap (all merged sketches must match).

    This is ``LogCollapsingLowestDenseDDSketch(RELATIVE_ACCURACY, BIN_LIMIT)``
    built around one shared mapping: slices are created every 10 s per service.
    """
    return BaseDDSketch(
        mapping=_MAPPING,
        store=CollapsingLowestDenseStore(BIN_LIMIT),
        negative_store=CollapsingLowestDenseStore(BIN_LIMIT),
        zero_count=0.0,
    )


@dataclass(frozen=True)
class WindowSummary:
    """What one window holds at one moment.

    Attributes:
        seconds: the window's nominal length.
        count: latency samples in the window (successful probes).
        quantiles: p50, p95, p99 in the samples' unit; None when ``count`` is 0.
        total: outcomes in the window (every probe, failed or not).
        failed: failed outcomes in the window.
    """

    seconds: float
    count: int
    quantiles: tuple[float | None, float | None, float | None]
    total: int
    failed: int


class _Bucket:
    """One time slice: a sketch of its latencies and its outcome counts."""

    __slots__ = ("failed", "index", "sketch", "total")

    def __init__(self, index: int) -> None:
        self.index = index
        self.sketch = new_sketch()
        self.total = 0
        self.failed = 0


class SlidingWindows:
    """Per-slice sketches and counts in a fixed ring; windows are merged on read.

    Memory is ``BUCKETS`` sketches and counters, whatever the traffic and
    uptime. Samples are placed by their own time, so late samples land in
    their slice; one older than the ring is dropped.
    """

    def __init__(self, *, bucket_seconds: float = BUCKET_SECONDS, buckets: int = BUCKETS) -> None:
        if bucket_seconds <= 0 or buckets < 1:
            raise ValueError("bucket_seconds must be > 0 and buckets ≥ 1")
        self.bucket_seconds = bucket_seconds
        self.buckets = buckets
        self._ring: list[_Bucket | None] = [None] * buckets

    def _index(self, at: float) -> int:
        return math.floor(at / self.bucket_seconds)

    def add(self, at: float, *, ok: bool, latency: float | None = None) -> None:
        """Record one outcome at clock time ``at``, with its latency when there is one.

        A non-finite or missing latency counts the outcome only; a negative
        one (a clock step) counts as zero.
        """
        index = self._index(at)
        slot = index % self.buckets
        bucket = self._ring[slot]
        if bucket is None or bucket.index < index:
            bucket = self._ring[slot] = _Bucket(index)
        elif bucket.index > index:
            return  # older than the ring: outside every window
        bucket.total += 1
        if not ok:
            bucket.failed += 1
        if latency is not None and math.isfinite(latency):
            bucket.sketch.add(max(latency, 0.0))

    def summaries(self, now: float, windows: tuple[float, ...]) -> tuple[WindowSummary, ...]:
        """Summaries of each window ending at ``now``, shortest first.

        Windows must be given in increasing length; each one is built by
        merging more slices into the previous one, so a 1m and a 5m window cost
        one pass over the ring.

        Raises:
            ValueError: a window is longer than the ring or out of order.
        """
        now_index = self._index(now)
        live = sorted(
            (b for b in self._ring if b is not None and b.index <= now_index),
            key=lambda b: -b.index,
        )
        merged = new_sketch()
        total = failed = 0
        position = 0
        out: list[WindowSummary] = []
        previous = 0.0
        for seconds in windows:
            if seconds < previous or seconds > self.bucket_seconds * self.buckets:
                raise ValueError(f"window {seconds}s is out of order or longer than the ring")
            previous = seconds
            oldest = now_index - max(1, round(seconds / self.bucket_seconds)) + 1
            while position < len(live) and live[position].index >= oldest:
                bucket = live[position]
                merged.merge(bucket.sketch)
                total += bucket.total
                failed += bucket.failed
                position += 1
            count = int(merged.count)
            quantiles = (
                (None, None, None)
                if count == 0
                else tuple(_quantile(merged, q) for q in QUANTILES)
            )
            out.append(WindowSummary(seconds, count, quantiles, total, failed))  # type: ignore[arg-type]
        return tuple(out)


def _quantile(sketch: BaseDDSketch, q: float) -> float | None:
    value = sketch.get_quantile_value(q)
    return None if value is None else float(value)
