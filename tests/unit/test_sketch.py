"""The quantile sketch keeps its 1% promise, and its windows slide and stay bounded."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.model.sketch import (
    BIN_LIMIT,
    BUCKETS,
    QUANTILES,
    RELATIVE_ACCURACY,
    SlidingWindows,
    new_sketch,
)

TOLERANCE = RELATIVE_ACCURACY * (1 + 1e-9)  # the bound, plus float rounding in the mapping


def exact_quantile(values: list[float], q: float) -> float:
    """The rank-matched sample DDSketch approximates: rank floor(q * (n - 1))."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def assert_within_bound(estimate: float | None, exact: float) -> None:
    assert estimate is not None
    assert abs(estimate - exact) <= TOLERANCE * abs(exact), (estimate, exact)


def draw_samples(kind: str, n: int, seed: int, scale: float) -> list[float]:
    rng = random.Random(seed)
    if kind == "uniform":
        return [rng.uniform(0.0, scale) for _ in range(n)]
    if kind == "lognormal":
        return [rng.lognormvariate(math.log(scale), 0.8) for _ in range(n)]
    if kind == "bimodal":  # fast cache hits and slow misses
        return [
            rng.gauss(scale, scale / 20) if rng.random() < 0.8 else rng.gauss(scale * 30, scale)
            for _ in range(n)
        ]
    if kind == "constant":
        return [scale] * n
    if kind == "pareto":  # heavy tail: a few requests take forever
        return [scale * rng.paretovariate(1.1) for _ in range(n)]
    if kind == "exponential":
        return [rng.expovariate(1 / scale) for _ in range(n)]
    raise AssertionError(kind)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(["uniform", "lognormal", "bimodal", "constant", "pareto", "exponential"]),
    n=st.integers(min_value=1, max_value=3000),
    seed=st.integers(min_value=0, max_value=2**32),
    scale=st.floats(min_value=1e-3, max_value=1e5),
)
def test_sketch_is_within_one_percent_of_exact(kind: str, n: int, seed: int, scale: float) -> None:
    values = [max(v, 0.0) for v in draw_samples(kind, n, seed, scale)]
    sketch = new_sketch()
    for value in values:
        sketch.add(value)
    for q in (*QUANTILES, 0.0, 0.25, 0.75, 0.999, 1.0):
        assert_within_bound(sketch.get_quantile_value(q), exact_quantile(values, q))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e9)), min_size=1, max_size=500
    )
)
def test_sketch_bound_holds_for_arbitrary_values(values: list[float]) -> None:
    """Any mix of zeros and values spanning 15 orders of magnitude (1 ns to 11 days in ms)."""
    sketch = new_sketch()
    for value in values:
        sketch.add(value)
    for q in QUANTILES:
        assert_within_bound(sketch.get_quantile_value(q), exact_quantile(values, q))


def test_bin_cap_sacrifices_only_the_lowest_values() -> None:
    """Past ~10^17 of spread the lowest bins collapse; high quantiles keep the bound."""
    values = [1e-250] * 10 + [float(v) for v in range(1, 1001)]
    sketch = new_sketch()
    for value in values:
        sketch.add(value)
    assert sketch._store.is_collapsed
    for q in QUANTILES:
        assert_within_bound(sketch.get_quantile_value(q), exact_quantile(values, q))
    low = sketch.get_quantile_value(0.0)
    assert low is not None
    assert low > 1e-250 * 1.01  # the collapsed minimum is no longer within the bound


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["lognormal", "bimodal", "pareto"]),
    seed=st.integers(min_value=0, max_value=2**32),
    n=st.integers(min_value=1, max_value=1500),
)
def test_merged_window_keeps_the_bound(kind: str, seed: int, n: int) -> None:
    """Samples spread over 30 slices, merged on read, are as accurate as one sketch."""
    values = draw_samples(kind, n, seed, 80.0)
    windows = SlidingWindows()
    step = 299.0 / n
    for i, value in enumerate(values):
        windows.add(i * step, ok=True, latency=value)
    (five,) = windows.summaries(299.0, (300.0,))
    assert five.count == n
    assert five.total == n
    for q, estimate in zip(QUANTILES, five.quantiles, strict=True):
        assert_within_bound(estimate, exact_quantile(values, q))


def test_windows_slide_by_ten_second_slices() -> None:
    windows = SlidingWindows()
    for t in range(0, 300, 5):  # one sample every 5 s for 5 minutes, latency = t
        windows.add(float(t), ok=t % 50 != 0, latency=float(t))
    one, five = windows.summaries(299.0, (60.0, 300.0))
    # 1m = the slice holding 299 plus the five before: samples 240..295.
    assert one.count == 12
    assert one.total == 12
    assert five.total == 60
    assert five.failed == 6  # t = 0, 50, 100, ..., 250
    assert one.failed == 1  # t = 250
    assert one.quantiles[0] is not None
    assert 240 * 0.99 <= one.quantiles[0] <= 295 * 1.01
    # 61 s later the 1m window is empty, the 5m one still holds most.
    one, five = windows.summaries(360.0, (60.0, 300.0))
    assert (one.count, one.total, one.quantiles) == (0, 0, (None, None, None))
    assert five.total == 46  # samples 70..295
    # Five minutes after the last sample, nothing is left.
    (five,) = windows.summaries(600.0, (300.0,))
    assert (five.count, five.total) == (0, 0)


def test_failed_outcomes_without_latency_count_only_in_totals() -> None:
    windows = SlidingWindows()
    windows.add(1.0, ok=False)
    windows.add(2.0, ok=False, latency=math.nan)
    windows.add(3.0, ok=True, latency=-5.0)  # a clock step: counted as 0 ms
    (one,) = windows.summaries(5.0, (60.0,))
    assert (one.count, one.total, one.failed) == (1, 3, 2)
    assert one.quantiles == (0.0, 0.0, 0.0)


def test_late_and_future_samples() -> None:
    windows = SlidingWindows()
    windows.add(1000.0, ok=True, latency=10.0)
    windows.add(995.0, ok=True, latency=20.0)  # late but inside the ring: counted
    windows.add(1000.0 - 301.0, ok=True, latency=30.0)  # older than the ring: dropped
    (one,) = windows.summaries(1000.0, (60.0,))
    assert one.count == 2
    windows.add(1050.0, ok=True, latency=40.0)  # ahead of "now": not yet in any window
    (one,) = windows.summaries(1000.0, (60.0,))
    assert one.count == 2


def test_memory_is_bounded_by_the_ring_and_bin_cap() -> None:
    windows = SlidingWindows()
    rng = random.Random(3)
    for i in range(20_000):  # ~55 hours of one sample every 10 s, absurd values included
        windows.add(i * 10.0, ok=True, latency=10 ** rng.uniform(-300, 300))
    assert sum(b is not None for b in windows._ring) == BUCKETS
    for bucket in windows._ring:
        assert bucket is not None
        assert len(bucket.sketch._store.bins) <= BIN_LIMIT
    sketch = new_sketch()
    for _ in range(5_000):
        sketch.add(10 ** rng.uniform(-300, 300))
    assert len(sketch._store.bins) <= BIN_LIMIT


def test_windows_must_fit_the_ring_in_order() -> None:
    windows = SlidingWindows()
    with pytest.raises(ValueError, match="longer than the ring"):
        windows.summaries(0.0, (600.0,))
    with pytest.raises(ValueError, match="out of order"):
        windows.summaries(0.0, (300.0, 60.0))
    with pytest.raises(ValueError, match="bucket_seconds"):
        SlidingWindows(bucket_seconds=0)
