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

Slices outlive a leader through the signal history
(:mod:`console.model.history`): :func:`encode_sketch` writes a slice's sketch
in DDSketch's standard protobuf wire format (the one Datadog's Go and Java
implementations read), and :func:`decode_sketch` reads it back into Conn's own
mapping and collapsing store, so a restored slice merges exactly with live ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ddsketch import CollapsingLowestDenseStore, LogarithmicMapping
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.pb import ddsketch_pb2
from google.protobuf.message import DecodeError

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

_pb: Any = ddsketch_pb2
"""ddsketch's generated messages (DDSketch, IndexMapping, Store): built at import, so untyped."""


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


def encode_sketch(sketch: BaseDDSketch) -> bytes:
    """The sketch in DDSketch's protobuf wire format (``DDSketch`` message), compactly.

    Each store is written with whichever of the format's two bin layouts is
    shorter: ``contiguousBinCounts`` (8 bytes per bin from the lowest
    non-empty bin to the highest) for a dense slice, the sparse ``binCounts``
    map (about 14 bytes per non-empty bin) for a few scattered probes. Readers
    of the standard format sum both; ddsketch's own ``DDSketchProto.from_proto``
    reads only the contiguous one, which is one reason :func:`decode_sketch`
    exists. The format keeps bins and counts only: the sketch's exact
    min/max/sum are not carried (Conn reads quantiles and counts only).

    Raises:
        ValueError: the sketch does not use a logarithmic mapping, the only
            kind Conn makes (see :func:`new_sketch`).
    """
    if type(sketch._mapping) is not LogarithmicMapping:
        raise ValueError(f"only logarithmic mappings are encoded, not {type(sketch._mapping).__name__}")
    message = _pb.DDSketch(
        mapping=_pb.IndexMapping(
            gamma=sketch._mapping.gamma,
            indexOffset=sketch._mapping._offset,
            interpolation=_pb.IndexMapping.NONE,
        ),
        zeroCount=sketch._zero_count,
    )
    _write_store(sketch._store, message.positiveValues)
    _write_store(sketch._negative_store, message.negativeValues)
    return bytes(message.SerializeToString())


def _write_store(store: CollapsingLowestDenseStore, out: Any) -> None:
    counts = [(i + store.offset, c) for i, c in enumerate(store.bins) if c]
    if not counts:
        return
    low, high = counts[0][0], counts[-1][0]
    contiguous = _pb.Store(
        contiguousBinCounts=store.bins[low - store.offset : high - store.offset + 1],
        contiguousBinIndexOffset=low,
    )
    sparse = _pb.Store(binCounts=dict(counts))
    out.CopyFrom(sparse if sparse.ByteSize() < contiguous.ByteSize() else contiguous)


_MAX_ENCODED_BINS = 4 * BIN_LIMIT
"""More bins than any sketch of Conn's holds: such bytes were not written by Conn."""


def decode_sketch(data: bytes) -> BaseDDSketch:
    """A sketch written by :func:`encode_sketch`, as one of Conn's (see :func:`new_sketch`).

    The bins go into Conn's collapsing store with the shared mapping, so the
    result merges with live sketches and gives the quantiles the original gave.

    Raises:
        ValueError: the bytes are not a DDSketch message, or one written with
            another mapping (accuracy, offset or interpolation), or with a
            negative, non-finite or absurdly many bin counts.
    """
    try:
        message = _pb.DDSketch.FromString(data)
    except DecodeError as e:
        raise ValueError(f"not an encoded sketch: {e}") from e
    mapping = message.mapping
    if (
        mapping.interpolation != _pb.IndexMapping.NONE
        or mapping.indexOffset != _MAPPING._offset
        or not math.isclose(mapping.gamma, _MAPPING.gamma, rel_tol=1e-12)
    ):
        raise ValueError(
            f"sketch uses another mapping (gamma {mapping.gamma!r}, offset {mapping.indexOffset!r},"
            f" interpolation {mapping.interpolation}); Conn's is gamma {_MAPPING.gamma!r}"
        )
    zero = message.zeroCount
    if not (math.isfinite(zero) and zero >= 0):
        raise ValueError(f"sketch has a zero count of {zero!r}")
    return BaseDDSketch(
        mapping=_MAPPING,
        store=_read_store(message.positiveValues),
        negative_store=_read_store(message.negativeValues),
        zero_count=float(zero),
    )


def _read_store(message: Any) -> CollapsingLowestDenseStore:
    counts: dict[int, float] = {}
    contiguous = message.contiguousBinCounts
    if len(contiguous) + len(message.binCounts) > _MAX_ENCODED_BINS:
        raise ValueError(f"sketch has more than {_MAX_ENCODED_BINS} bins")
    for key, count in (*message.binCounts.items(), *enumerate(contiguous, message.contiguousBinIndexOffset)):
        if not (math.isfinite(count) and count >= 0):
            raise ValueError(f"sketch bin {key} has a count of {count!r}")
        if count:
            counts[key] = counts.get(key, 0.0) + count
    store = CollapsingLowestDenseStore(BIN_LIMIT)
    for key in sorted(counts):
        store.add(key, counts[key])
    return store


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

    def __init__(self, index: int, sketch: BaseDDSketch | None = None) -> None:
        self.index = index
        self.sketch = new_sketch() if sketch is None else sketch
        self.total = 0
        self.failed = 0


@dataclass(frozen=True)
class SliceCounts:
    """What the ring holds for one slice (see :meth:`SlidingWindows.slice`).

    Attributes:
        index: the slice's number: its start is ``index × bucket_seconds``.
        total: outcomes in the slice.
        failed: failed outcomes in the slice.
        sketch: the slice's own latency sketch, shared with the ring: read or
            merge it into another sketch, never add to it.
    """

    index: int
    total: int
    failed: int
    sketch: BaseDDSketch


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
        self._newest: int | None = None
        self._changed: set[int] = set()

    def index_of(self, at: float) -> int:
        """The number of the slice holding clock time ``at``."""
        return math.floor(at / self.bucket_seconds)

    def add(self, at: float, *, ok: bool, latency: float | None = None) -> None:
        """Record one outcome at clock time ``at``, with its latency when there is one.

        A non-finite or missing latency counts the outcome only; a negative
        one (a clock step) counts as zero.
        """
        index = self.index_of(at)
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
        self._placed(index)
        self._changed.add(index)
        if len(self._changed) > self.buckets:  # nobody is draining: keep what the ring holds
            self._changed = {i for i in self._changed if self.holds(i)}

    def holds(self, index: int) -> bool:
        """Whether the ring still knows slice ``index`` (an empty slice is known too).

        False once a sample ``buckets`` slices newer has arrived: the slice's
        slot may have been reused since.
        """
        return self._newest is None or index > self._newest - self.buckets

    def slice(self, index: int) -> SliceCounts | None:
        """Slice ``index``'s counts and sketch, or None when it had no outcome or is no longer held."""
        bucket = self._ring[index % self.buckets]
        if bucket is None or bucket.index != index:
            return None
        return SliceCounts(index, bucket.total, bucket.failed, bucket.sketch)

    def take_changed(self, up_to: int) -> list[int]:
        """Slices (up to ``up_to``) that gained outcomes since the last call, oldest first.

        Later slices (samples stamped ahead of the caller's clock) stay marked
        until the caller's clock reaches them.
        """
        taken = sorted(i for i in self._changed if i <= up_to)
        self._changed.difference_update(taken)
        return [i for i in taken if self.holds(i)]

    def restore(self, index: int, *, total: int, failed: int, sketch: BaseDDSketch) -> None:
        """Put back slice ``index`` as a previous leader held it (not marked as changed).

        The ring keeps ``sketch``. A slice older than the one in its slot is
        ignored, as a late sample would be; so is an empty one, which the
        ring would not have held either.
        """
        slot = index % self.buckets
        current = self._ring[slot]
        if (current is not None and current.index > index) or (total == 0 and not sketch.count):
            return
        bucket = self._ring[slot] = _Bucket(index, sketch)
        bucket.total, bucket.failed = total, failed
        self._placed(index)

    def _placed(self, index: int) -> None:
        if self._newest is None or index > self._newest:
            self._newest = index

    def summaries(self, now: float, windows: tuple[float, ...]) -> tuple[WindowSummary, ...]:
        """Summaries of each window ending at ``now``, shortest first.

        Windows must be given in increasing length; each one is built by
        merging more slices into the previous one, so a 1m and a 5m window cost
        one pass over the ring.

        Raises:
            ValueError: a window is longer than the ring or out of order.
        """
        now_index = self.index_of(now)
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
