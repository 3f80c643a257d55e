"""Signal history: slices out, a new leader's restore, roll-ups, the sketch encoding."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest
from ddsketch import LogCollapsingLowestDenseDDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.pb import ddsketch_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from console.model.clock import FakeClock
from console.model.health import HEALTH_STATES, ProbeResult
from console.model.history import (
    HistorySlice,
    merge_slices,
    settle,
    signal_points,
)
from console.model.live import ServiceLive, SignalValue
from console.model.signals import ServiceSignals
from console.model.sketch import QUANTILES, decode_sketch, encode_sketch, new_sketch
from console.model.thresholds import JsonSource, SignalSpec, Threshold

T0 = FakeClock().now()
"""2026-01-01T00:00:00Z: a whole minute, so slices and roll-ups start on it."""

CACHE = SignalSpec(json_path="metrics.cache_hit_rate", unit="%", scale=100.0, label="cache hit")
MEMORY = SignalSpec(promql='memory_usage_percent{service="{service}"}', unit="%")
FROM_JSON = {
    "p50": JsonSource(path="metrics.p50_ms"),
    "error_rate": JsonSource(path="metrics.error_rate", scale=100.0),
}
"""Built-ins read from the health JSON; p95 stays the prober's and p99 is Prometheus'."""
THRESHOLDS = {
    "p95": Threshold.model_validate({"warning": 150, "critical": 400, "for": "30s"}),
    "error_rate": Threshold.model_validate({"warning": 10, "critical": 50, "for": "10s"}),
    "cache": Threshold.model_validate({"warning": 80, "critical": 70, "direction": "below", "for": "20s"}),
    "memory": Threshold.model_validate({"warning": 80, "critical": 90, "for": "15s"}),
    "p99": Threshold(warning=300),
}


def probe(
    at: float, latency: float = 100.0, *, ok: bool = True, health: str = "up", body: Any = None
) -> ProbeResult:
    reason = "HTTP 200" if ok else "HTTP 503"
    return ProbeResult("checkout", at, latency, health, reason, ok, 200 if ok else 503, body)  # type: ignore[arg-type]


def make(thresholds: dict[str, Threshold] | None = None, **kwargs: Any) -> ServiceSignals:
    return ServiceSignals(
        "checkout",
        interval=5.0,
        thresholds=THRESHOLDS if thresholds is None else thresholds,
        signals={"cache": CACHE, "memory": MEMORY},
        prometheus={"p99"},
        **{"health_json": FROM_JSON, **kwargs},
    )


def value(live: ServiceLive, name: str) -> SignalValue:
    found = live.signal(name)
    assert found is not None
    return found


class Store:
    """The store's side, as far as the model sees it: one row per (service, resolution, start)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int, float], HistorySlice] = {}

    def write(self, slices: Iterable[HistorySlice]) -> None:
        """Upsert, keeping ``data`` as JSON does (the store refuses NaN and infinity)."""
        for piece in slices:
            data = json.loads(json.dumps(piece.data, allow_nan=False))
            self.rows[(piece.service, piece.resolution, piece.start)] = replace(piece, data=data)

    def slices(self) -> list[HistorySlice]:
        return list(self.rows.values())


def tick(signals: ServiceSignals, store: Store, now: float) -> ServiceLive:
    """What the leader does after a sample: snapshot, then write the changed slices."""
    live = signals.snapshot(now)
    store.write(signals.history_slices(now))
    return live


def bins(sketch: BaseDDSketch) -> tuple[dict[int, float], float, float]:
    store = sketch._store
    return {i + store.offset: c for i, c in enumerate(store.bins) if c}, sketch._zero_count, sketch.count


def quantile(sketch: BaseDDSketch, q: float) -> float:
    found = sketch.get_quantile_value(q)
    assert found is not None
    return float(found)


def quantiles(sketch: BaseDDSketch) -> list[float | None]:
    return [sketch.get_quantile_value(q) for q in (*QUANTILES, 0.0, 0.25, 0.75, 0.999, 1.0)]


# --- the sketch encoding ---------------------------------------------------------


LATENCIES = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e9)), min_size=0, max_size=400
)


@settings(max_examples=150, deadline=None)
@given(values=LATENCIES, others=LATENCIES)
def test_encoded_sketch_decodes_to_the_same_bins_and_merges(values: list[float], others: list[float]) -> None:
    sketch, other = new_sketch(), new_sketch()
    for v in values:
        sketch.add(v)
    for v in others:
        other.add(v)
    decoded = decode_sketch(encode_sketch(sketch))
    assert bins(decoded) == bins(sketch)
    assert quantiles(decoded) == quantiles(sketch)
    fresh = new_sketch()
    fresh.merge(decoded)  # a decoded sketch merges into a live one ...
    assert quantiles(fresh) == quantiles(sketch)
    expected, merged = new_sketch(), decode_sketch(encode_sketch(sketch))
    expected.merge(sketch)
    expected.merge(other)
    merged.merge(other)  # ... and a live one into a decoded one
    assert bins(merged) == bins(expected)
    assert quantiles(merged) == quantiles(expected)


def test_collapsed_sketch_round_trips() -> None:
    rng = random.Random(5)
    sketch = new_sketch()
    for _ in range(3000):
        sketch.add(10 ** rng.uniform(-300, 300))
    assert sketch._store.is_collapsed
    decoded = decode_sketch(encode_sketch(sketch))
    assert bins(decoded) == bins(sketch)
    assert quantiles(decoded) == quantiles(sketch)
    assert len(encode_sketch(sketch)) < 2048 * 9 + 100  # bounded by the bin cap


def test_encoding_is_compact() -> None:
    """Figures quoted in the report: 10 probes, and 600 samples in one slice."""
    rng = random.Random(7)
    few, many = new_sketch(), new_sketch()
    for _ in range(10):
        few.add(rng.lognormvariate(math.log(120), 0.3))
    for _ in range(600):
        many.add(rng.lognormvariate(math.log(120), 0.3))
    assert len(encode_sketch(few)) <= 160
    assert len(encode_sketch(many)) <= 1000
    assert len(encode_sketch(new_sketch())) < 30


def _message(**store: Any) -> bytes:
    pb: Any = ddsketch_pb2
    return bytes(
        pb.DDSketch(
            mapping=pb.IndexMapping(gamma=new_sketch()._mapping.gamma), positiveValues=pb.Store(**store)
        ).SerializeToString()
    )


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "another mapping"),
        (b"\xff\xff\xff", "not an encoded sketch"),
        (b"definitely not a sketch", "not an encoded sketch"),
        (encode_sketch(LogCollapsingLowestDenseDDSketch(0.02, 2048)), "another mapping"),
        (_message(binCounts={3: -1.0}), "count of -1"),
        (_message(contiguousBinCounts=[1.0, math.nan]), "count of nan"),
        (_message(contiguousBinCounts=[1.0] * 9000), "more than"),
    ],
)
def test_bad_bytes_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decode_sketch(data)


def test_standard_messages_from_other_writers_are_read() -> None:
    """Both of the format's bin layouts, summed where they overlap, as other readers do."""
    sketch = decode_sketch(_message(binCounts={100: 2.0}, contiguousBinCounts=[1.0, 0.0, 3.0], contiguousBinIndexOffset=99))
    assert bins(sketch) == ({99: 1.0, 100: 2.0, 101: 3.0}, 0.0, 6.0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decoding_random_bytes_raises_only_value_error(data: bytes) -> None:
    try:
        sketch = decode_sketch(data)
    except ValueError:
        return
    assert sketch.count >= 0


# --- slices out ------------------------------------------------------------------


def test_history_slices_give_what_changed_once() -> None:
    signals, store = make(), Store()
    signals.record_probe(probe(T0 + 3, 120.0))
    signals.snapshot(T0 + 3)
    (first,) = signals.history_slices(T0 + 3)
    assert (first.service, first.resolution, first.start, first.samples, first.errors) == (
        "checkout", 10, T0, 1, 0,
    )
    assert first.sketch is not None
    assert signals.history_slices(T0 + 3) == []  # nothing changed
    signals.record_probe(probe(T0 + 7, 300.0, ok=False, health="down"))
    signals.snapshot(T0 + 7)
    (again,) = signals.history_slices(T0 + 7)
    assert (again.start, again.samples, again.errors) == (T0, 2, 1)
    assert again.data["as_of"] == T0 + 7
    # A boundary passes; a slow probe stamped in the previous slice lands late.
    signals.record_probe(probe(T0 + 12, 80.0))
    signals.record_probe(probe(T0 + 9, 200.0))
    signals.snapshot(T0 + 12)
    previous, current = signals.history_slices(T0 + 12)
    assert (previous.start, previous.samples) == (T0, 3)
    assert previous.data["as_of"] == T0 + 7  # keeps the judgement it was last written with
    assert previous.data["p95"] == round(quantile(decode_sketch(previous.sketch or b""), 0.95), 1)
    assert (current.start, current.samples, current.data["as_of"]) == (T0 + 10, 1, T0 + 12)
    store.write([first, again, previous, current])  # plain JSON, no NaN
    assert signals.snapshot(T0 + 12).errors["1m"].total == 4


def test_slice_data_is_the_snapshots_judgement_and_plain_json() -> None:
    signals = make()
    signals.record_query("memory", 93.0, at=T0)
    signals.record_query("p99", None, at=T0, error="Prometheus: timeout after 5s")
    for t in range(0, 30, 5):
        signals.record_probe(probe(T0 + t, 500.0, body={"metrics": {"cache_hit_rate": 0.5}}))
        live = signals.snapshot(T0 + t)
    *_, piece = signals.history_slices(T0 + 25)  # the earlier slices too: never written yet
    data = piece.data
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert (data["health"], data["reason"], data["health_since"]) == (live.health, live.reason, live.health_since)
    assert (data["last_at"], data["last_health"], data["observed_at"]) == (T0 + 25, "up", T0 + 25)
    assert data["p50"] == data["p95"] == data["p99"] == pytest.approx(500, rel=0.01)  # this slice alone
    for shown in live.signals:
        entry = data["signals"][shown.name]
        assert (entry["value"], entry["state"], entry["at"]) == (shown.value, shown.state, shown.at)
        view = shown.threshold
        assert (entry["past"], entry["past_since"]) == (
            (None, None) if view is None else (view.past, view.past_since)
        )
    assert data["signals"]["p95"]["timers"] == {"warning": T0, "critical": T0}
    assert data["signals"]["p99"]["detail"] == "Prometheus: timeout after 5s"
    assert data["signals"]["memory"]["past"] == "critical"


def test_non_finite_latencies_never_reach_the_data() -> None:
    signals = make()
    signals.record_probe(probe(T0, math.inf))
    signals.record_probe(probe(T0 + 1, math.nan))
    signals.record_query("memory", math.inf, at=T0)
    (piece,) = signals.history_slices(T0 + 1)
    assert piece.samples == 2
    assert piece.sketch is None
    assert piece.data["p95"] is None
    json.dumps(piece.data, allow_nan=False)


METRICS = st.fixed_dictionaries({}, optional={
    "cache_hit_rate": st.floats(min_value=0.0, max_value=1.0),
    "error_rate": st.one_of(st.floats(min_value=0.0, max_value=1.0), st.none(), st.just("7%")),
    "p50_ms": st.floats(min_value=1.0, max_value=2000.0),
})
"""A health body's metrics: any of the JSON-fed signals present, missing or not a number."""

FEED = st.lists(
    st.one_of(
        st.tuples(
            st.just("probe"),
            st.floats(min_value=0.0, max_value=15.0),  # time since the previous step
            st.floats(min_value=0.0, max_value=4.0),  # how late the result is stamped
            st.floats(min_value=1.0, max_value=2000.0),
            st.booleans(),
            st.sampled_from(HEALTH_STATES),
            st.one_of(st.none(), METRICS),  # None: no JSON body
        ),
        st.tuples(
            st.just("query"),
            st.floats(min_value=0.0, max_value=15.0),
            st.sampled_from(["p99", "memory"]),
            st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=50, max_value=100)),
            st.one_of(st.none(), st.text(max_size=20)),
        ),
    ),
    max_size=60,
)


def feed_one(signals: ServiceSignals, item: tuple[Any, ...], t: float) -> None:
    """One step of FEED at clock time ``t``."""
    if item[0] == "probe":
        _, _, late, latency, ok, health, metrics = item
        body = None if metrics is None else {"metrics": metrics}
        signals.record_probe(probe(t - late, latency, ok=ok, health=health, body=body))
    else:
        _, _, name, raw, error = item
        signals.record_query(name, raw, t, error=error)


def run(feed: list[tuple[Any, ...]], signals: ServiceSignals, store: Store) -> float:
    """Feed ``signals`` over at most six minutes from T0 as a leader; returns the last step's time."""
    t = T0
    for item in feed:
        t += item[1]
        if t > T0 + 360:
            break
        feed_one(signals, item, t)
        tick(signals, store, t)
    return t


def assert_same_view(theirs: ServiceLive, mine: ServiceLive) -> None:
    assert theirs.latency == mine.latency
    assert theirs.errors == mine.errors
    assert theirs.signals == mine.signals  # values, states, details and threshold timers
    assert (theirs.health, theirs.reason, theirs.health_since, theirs.observed_at) == (
        mine.health, mine.reason, mine.health_since, mine.observed_at,
    )


@settings(max_examples=150, deadline=None)
@given(feed=FEED, after=st.floats(min_value=0.0, max_value=60.0), more=FEED)
def test_new_leader_shows_what_the_old_one_would(
    feed: list[tuple[Any, ...]], after: float, more: list[tuple[Any, ...]]
) -> None:
    old, store = make(), Store()
    now = run(feed, old, store) + after
    new = make()
    assert new.restore(store.slices(), now) == []
    assert_same_view(new.snapshot(now), old.snapshot(now))
    # Both carry on alike from there: windows slide and timers run on.
    t = now
    for item in more[:10]:
        t += item[1]
        for signals in (old, new):
            feed_one(signals, item, t)
        assert_same_view(new.snapshot(t), old.snapshot(t))


@pytest.mark.parametrize("seed", range(6))
def test_new_leader_matches_at_any_moment_of_six_minutes(seed: int) -> None:
    """A long, busy run: a new leader taken over at many moments matches the old one."""
    rng = random.Random(seed)
    old, store = make(), Store()
    t = T0
    while t < T0 + 360:
        t += rng.uniform(0.5, 6.0)
        if rng.random() < 0.15:
            old.record_query("memory", rng.uniform(60, 100), t)
        if rng.random() < 0.05:
            old.record_query("p99", None if rng.random() < 0.5 else rng.uniform(0.1, 0.5), t, error=rng.choice([None, "Prometheus: HTTP 502"]))
        slow = (t - T0) % 120 > 60  # a minute slow, a minute fast
        ok = rng.random() > (0.3 if slow else 0.02)
        old.record_probe(probe(
            t - rng.uniform(0, 2), rng.lognormvariate(math.log(600 if slow else 80), 0.4), ok=ok,
            health="up" if ok else "down", body={"metrics": {
                "cache_hit_rate": rng.uniform(0.6, 0.95),
                "error_rate": rng.uniform(0.3, 0.6) if slow else rng.uniform(0, 0.05),
                "p50_ms": rng.uniform(50, 500),
            }},
        ))
        tick(old, store, t)
        if rng.random() < 0.1:
            now = t + rng.uniform(0, 25)
            new = make()
            assert new.restore(store.slices(), now) == []
            assert_same_view(new.snapshot(now), old.snapshot(now))


@settings(max_examples=100, deadline=None)
@given(feed=FEED, pattern=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=5))
def test_writing_history_changes_no_snapshot(feed: list[tuple[Any, ...]], pattern: list[tuple[bool, bool]]) -> None:
    """Slices written at any step, with or without a snapshot at that time, change no snapshot."""
    plain, writer = make(), make()
    t = T0
    for step, item in enumerate(feed):
        t += item[1]
        for signals in (plain, writer):
            feed_one(signals, item, t)
        write, look = pattern[step % len(pattern)]
        if write:
            writer.history_slices(t)
        if look:
            assert writer.snapshot(t) == plain.snapshot(t)


# --- a new leader ----------------------------------------------------------------


def test_for_timer_carries_on_across_a_failover() -> None:
    """Critical after 30 s past the level: at t0 + 30 even though the leader changed at t0 + 20."""
    thresholds = {"p95": Threshold.model_validate({"critical": 400, "for": "30s"})}
    old, store = make(thresholds), Store()
    for t in (0, 5, 10, 15):
        old.record_probe(probe(T0 + t, 900.0))
        tick(old, store, T0 + t)
    new, unrestored = make(thresholds), make(thresholds)
    assert new.restore(store.slices(), T0 + 20) == []
    shown = value(new.snapshot(T0 + 20), "p95")  # before any new probe
    assert (shown.state, shown.threshold and shown.threshold.past_since) == ("ok", T0)
    states = []
    for t in (20, 25, 30):
        for signals in (new, unrestored):
            signals.record_probe(probe(T0 + t, 900.0))
        states.append(value(new.snapshot(T0 + t), "p95"))
        unrestored.snapshot(T0 + t)
    assert [s.state for s in states] == ["ok", "ok", "critical"]
    assert states[-1].threshold is not None
    assert states[-1].threshold.past_since == T0
    # Without the history the timer would have restarted: critical only at t0 + 50.
    assert value(unrestored.snapshot(T0 + 30), "p95").state == "ok"


def test_a_json_fed_builtins_for_timer_carries_on_across_a_failover() -> None:
    """error_rate read from the health JSON, 10 s past critical: critical at t0 + 10, not 10 s after the takeover."""
    old, store = make(), Store()
    for t in (0, 5):
        old.record_probe(probe(T0 + t, body={"metrics": {"error_rate": 0.6}}))
        tick(old, store, T0 + t)
    new = make()
    assert new.restore(store.slices(), T0 + 7) == []
    restored = value(new.snapshot(T0 + 7), "error_rate")
    assert (restored.value, restored.source, restored.state) == (60.0, "health-json", "ok")
    assert restored.threshold is not None and restored.threshold.past_since == T0
    new.record_probe(probe(T0 + 10, body={"metrics": {"error_rate": 0.6}}))
    shown = value(new.snapshot(T0 + 10), "error_rate")
    assert (shown.state, shown.threshold and shown.threshold.past_since) == ("critical", T0)
    assert value(new.snapshot(T0 + 10), "probe_errors").value == 0.0


def test_a_signal_whose_source_changed_carries_nothing_over() -> None:
    """error_rate was the probes' (all failing, past critical); the new leader's config reads it
    from the health JSON: that reading and its timer start afresh, the probes' rate carries on."""
    thresholds = {"error_rate": Threshold.model_validate({"critical": 50, "for": "10s"})}
    old, store = make(thresholds, health_json={}), Store()
    for t in (0, 5):
        old.record_probe(probe(T0 + t, ok=False, health="down", body={"metrics": {}}))
        tick(old, store, T0 + t)
    before = value(old.snapshot(T0 + 5), "error_rate")
    assert (before.source, before.threshold and before.threshold.past) == ("probe", "critical")
    new = make(thresholds)
    assert new.restore(store.slices(), T0 + 7) == []
    errors = value(new.snapshot(T0 + 7), "error_rate")
    assert (errors.source, errors.state, errors.value) == ("health-json", "no_data", None)
    assert new._past_since == {}
    assert value(new.snapshot(T0 + 7), "probe_errors").value == 100.0
    new.record_probe(probe(T0 + 10, body={"metrics": {"error_rate": 0.6}}))
    errors = value(new.snapshot(T0 + 10), "error_rate")
    assert (errors.value, errors.state, errors.threshold and errors.threshold.past_since) == (60.0, "ok", T0 + 10)


def test_stale_history_resets_timers_and_health_is_unknown() -> None:
    old, store = make(), Store()
    for t in (0, 5, 10, 15):
        old.record_probe(probe(T0 + t, 900.0, body={"metrics": {"cache_hit_rate": 0.5}}))
        tick(old, store, T0 + t)
    now = T0 + 15 + 3 * 5 + 1  # the newest probe is older than 3 intervals
    new = make()
    assert new.restore(store.slices(), now) == []
    live = new.snapshot(now)
    assert (live.health, live.health_since) == ("unknown", T0 + 30)
    assert live.reason == "no probe result for 15s (3 intervals); last: up"
    assert live == old.snapshot(now).model_copy(update={"history": live.history})
    assert value(live, "p95").state == "stale"
    assert value(live, "cache").state == "stale"
    assert new._past_since == {}
    new.record_probe(probe(now, 900.0, body={"metrics": {"cache_hit_rate": 0.5}}))
    live = new.snapshot(now)
    p95, cache = value(live, "p95"), value(live, "cache")
    assert p95.threshold is not None and p95.threshold.past_since == now  # a new timer
    assert cache.threshold is not None and cache.threshold.past_since == now
    assert (live.health, live.health_since) == ("up", now)


def test_restore_brings_back_a_down_service_and_prometheus_readings() -> None:
    old, store = make(), Store()
    old.record_probe(probe(T0, 100.0))
    tick(old, store, T0)
    old.record_query("memory", 95.0, at=T0 + 2)
    old.record_query("p99", None, at=T0 + 2, error="Prometheus: HTTP 502")
    old.record_probe(probe(T0 + 5, 2000.0, ok=False, health="down"))
    tick(old, store, T0 + 5)
    new = make()
    assert new.restore(store.slices(), T0 + 8) == []
    mine, theirs = old.snapshot(T0 + 8), new.snapshot(T0 + 8)
    assert (theirs.health, theirs.reason, theirs.health_since) == ("down", "HTTP 503", T0 + 5)
    assert theirs.signals == mine.signals
    assert value(theirs, "p99").detail == "Prometheus: HTTP 502"
    memory = value(theirs, "memory")
    assert memory.threshold is not None
    assert (memory.state, memory.threshold.past, memory.threshold.past_since) == ("ok", "critical", T0 + 2)
    # The next probe continues from the recorded one: a change of health, not a gap.
    new.record_probe(probe(T0 + 10, 100.0))
    assert new.snapshot(T0 + 10).health_since == T0 + 10


def test_restore_rebuilds_the_sparkline_at_slice_resolution() -> None:
    old, store = make(), Store()
    for i in range(40):  # 200 s of one probe every 5 s, latency rising
        old.record_probe(probe(T0 + 5 * i, 100.0 + 10 * i))
        tick(old, store, T0 + 5 * i)
    now = T0 + 200
    new = make()
    new.restore(store.slices(), now)
    mine, theirs = old.snapshot(now).history["p95"], new.snapshot(now).history["p95"]
    assert len(theirs) == len(mine) == 41
    assert theirs[-1] == mine[-1]
    # A 10 s slice keeps the value of its last write: right for its second 5 s point,
    # and shown for its first one too.
    assert theirs[1::2] == mine[1::2]
    assert theirs[0:40:2] == theirs[1:40:2]
    assert new.snapshot(now).history["error_rate"] == old.snapshot(now).history["error_rate"]
    new.record_probe(probe(now + 5, 100.0))
    old.record_probe(probe(now + 5, 100.0))
    assert new.snapshot(now + 5).history["p95"][-2:] == old.snapshot(now + 5).history["p95"][-2:]


def test_only_the_ring_and_this_service_are_read() -> None:
    old, store = make(), Store()
    for t in range(0, 600, 5):
        old.record_probe(probe(T0 + t, 100.0, ok=t % 50 != 0))
        tick(old, store, T0 + t)
    now = T0 + 600
    rollup = old.rollup(T0 + 540)
    assert rollup is not None
    stranger = HistorySlice("search", 10, T0 + 590, 5, 5, None, {})
    new = make()
    problems = new.restore([*store.slices(), rollup, stranger], now)
    assert problems == ["'search' slice at 1767226190.0 given to 'checkout': skipped"]
    assert new.snapshot(now).errors == old.snapshot(now).errors
    assert new.snapshot(now).latency == old.snapshot(now).latency


def test_restore_replaces_what_was_there() -> None:
    signals = make()
    for t in range(0, 60, 5):
        signals.record_probe(probe(T0 + t, 500.0))
        signals.snapshot(T0 + t)
    assert signals.restore([], T0 + 60) == []
    assert signals.snapshot(T0 + 60) == make().snapshot(T0 + 60)


DAMAGED: list[tuple[str, HistorySlice]] = [
    ("no judgement", HistorySlice("checkout", 10, T0 + 10, 1, 0, None, {})),
    ("health", HistorySlice("checkout", 10, T0 + 10, 1, 0, None, {"health": "fine", "reason": "x"})),
    ("reason", HistorySlice("checkout", 10, T0 + 10, 1, 0, None, {"health": "up", "reason": 3, "health_since": None, "last_at": None})),
    ("last_at", HistorySlice("checkout", 10, T0 + 10, 1, 0, None, {"health": "up", "reason": "", "health_since": None, "last_at": "noon"})),
    ("health_since", HistorySlice("checkout", 10, T0 + 10, 1, 0, None, {"health": "up", "reason": "", "last_at": T0})),
    ("not counts", HistorySlice("checkout", 10, T0 + 10, 1, 2, None, {})),
    ("not counts", HistorySlice("checkout", 10, T0 + 10, True, 0, None, {})),  # a bool is no count
    ("sketch unreadable", HistorySlice("checkout", 10, T0 + 10, 1, 0, b"\xff\x00junk", {})),
    ("sketch unreadable", HistorySlice("checkout", 10, T0 + 10, 1, 0, "text", {})),  # type: ignore[arg-type]
    ("starting at nan", HistorySlice("checkout", 10, math.nan, 1, 0, None, {})),
]


@pytest.mark.parametrize(("problem", "piece"), DAMAGED, ids=[f"{i}-{p}" for i, (p, _) in enumerate(DAMAGED)])
def test_damaged_slices_are_skipped_and_named(problem: str, piece: HistorySlice) -> None:
    old, store = make(), Store()
    old.record_probe(probe(T0 + 1, 100.0))
    tick(old, store, T0 + 1)
    new = make()
    problems = new.restore([*store.slices(), piece], T0 + 12)
    assert len(problems) >= 1
    assert any(problem in line for line in problems), problems
    live = new.snapshot(T0 + 12)
    assert live.errors["1m"].total in (1, 2)  # the good slice is still read
    assert live.health == "up"  # from the newest readable judgement


def test_damaged_signal_entries_are_skipped_one_by_one() -> None:
    old, store = make(), Store()
    old.record_query("memory", 95.0, at=T0)
    old.record_probe(probe(T0, 900.0))
    tick(old, store, T0)
    (piece,) = store.slices()
    signals = dict(piece.data["signals"])
    signals["p95"] = {**signals["p95"], "timers": "soon"}
    signals["p50"] = {**signals["p50"], "state": "great"}
    signals["error_rate"] = [1, 2]
    signals["memory"] = {**signals["memory"], "value": math.inf}
    signals["cache"] = {**signals["cache"], "past": "doom"}
    damaged = HistorySlice(piece.service, 10, piece.start, piece.samples, piece.errors, piece.sketch, {**piece.data, "signals": signals})
    new = make()
    problems = new.restore([damaged], T0 + 1)
    assert len(problems) == 5
    assert any("'memory': value is inf, not a finite number" in line for line in problems)
    live = new.snapshot(T0 + 1)
    assert value(live, "p99").state == "no_data"  # still read: its entry was fine
    assert value(live, "memory").state == "no_data"  # waiting for Prometheus again


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)
DATA_KEYS = ["health", "reason", "health_since", "last_at", "last_health", "as_of", "observed_at", "signals", "p95"]


@settings(max_examples=200, deadline=None)
@given(
    data=st.dictionaries(st.sampled_from(DATA_KEYS), JSON | st.sampled_from([*HEALTH_STATES, T0])),
    signals=st.dictionaries(st.sampled_from(["p95", "cache", "memory", "p99"]), st.dictionaries(
        st.sampled_from(["value", "state", "at", "past", "past_since", "timers", "detail", "source"]),
        JSON | st.sampled_from(["ok", "critical", "warning", "no_data", "health-json", T0]),
    )),
    samples=st.integers(min_value=-2, max_value=5),
    errors=st.integers(min_value=-2, max_value=5),
    sketch=st.one_of(st.none(), st.binary(max_size=40)),
)
def test_restore_never_raises_on_garbage(
    data: dict[str, Any], signals: dict[str, Any], samples: int, errors: int, sketch: bytes | None
) -> None:
    if "signals" not in data:
        data["signals"] = signals
    piece = HistorySlice("checkout", 10, T0, samples, errors, sketch, data)
    new = make()
    problems = new.restore([piece], T0 + 5)
    assert all(isinstance(line, str) for line in problems)
    live = new.snapshot(T0 + 5)
    assert ServiceLive.model_validate_json(live.model_dump_json()) == live
    new.record_probe(probe(T0 + 6))
    new.snapshot(T0 + 6)
    for written in new.history_slices(T0 + 6):
        json.dumps(written.data, allow_nan=False)


# --- roll-ups --------------------------------------------------------------------


def test_rollup_is_the_merge_of_the_minutes_six_slices() -> None:
    signals, store = make(), Store()
    rng = random.Random(11)
    for i in range(60):  # two minutes, one probe every 2 s
        t = T0 + 2 * i
        signals.record_probe(probe(t, rng.lognormvariate(math.log(150), 0.6), ok=rng.random() > 0.1))
        tick(signals, store, t)
    rollup = signals.rollup(T0)
    assert rollup is not None
    six = [store.rows[("checkout", 10, T0 + 10 * k)] for k in range(6)]
    merged = new_sketch()
    for piece in six:
        merged.merge(decode_sketch(piece.sketch or b""))
    assert (rollup.service, rollup.resolution, rollup.start) == ("checkout", 60, T0)
    assert (rollup.samples, rollup.errors) == (sum(p.samples for p in six), sum(p.errors for p in six))
    assert bins(decode_sketch(rollup.sketch or b"")) == bins(merged)
    for key, q in zip(("p50", "p95", "p99"), QUANTILES, strict=True):
        assert rollup.data[key] == round(quantile(merged, q), 1)
    assert rollup.data["signals"] == six[-1].data["signals"]
    assert rollup.data["health"] == six[-1].data["health"]
    assert merge_slices(six, service="checkout", start=T0) == rollup  # from the store, same answer
    json.dumps(rollup.data, allow_nan=False)


def test_rollup_is_none_once_the_ring_lost_the_minute() -> None:
    signals = make()
    for t in range(0, 400, 5):
        signals.record_probe(probe(T0 + t))
        signals.history_slices(T0 + t)
    assert signals.rollup(T0) is None  # samples five minutes newer reused its slots
    kept = signals.rollup(T0 + 300)
    assert kept is not None and kept.samples == 12
    empty = signals.rollup(T0 + 600)  # nothing there yet, but nothing lost either
    assert empty is not None and (empty.samples, empty.sketch, empty.data["p95"]) == (0, None, None)
    with pytest.raises(ValueError, match="whole minute"):
        signals.rollup(T0 + 30)


# --- reading for views -------------------------------------------------------------


def test_signal_points() -> None:
    signals, store = make(), Store()
    shown: list[ServiceLive] = []  # the live row at each slice's last write
    for t in range(0, 30, 5):
        signals.record_probe(probe(T0 + t, 100.0 + 100 * t, body={"metrics": {"cache_hit_rate": 0.9 - t / 100, "p50_ms": 40.0 + t}}))
        live = tick(signals, store, T0 + t)
        if t % 10 == 5:
            shown.append(live)
    slices = [*store.slices(), HistorySlice("checkout", 10, T0 + 30, 0, 0, None, {"signals": []})]
    p95 = signal_points(slices, "p95")
    assert [start for start, _, _ in p95] == [T0, T0 + 10, T0 + 20, T0 + 30]
    # Each slice's own p95 (two samples: the lower one, by DDSketch's rank), not the 1m window's.
    assert [v for _, v, _ in p95] == [pytest.approx(100, rel=0.01), pytest.approx(1100, rel=0.01), pytest.approx(2100, rel=0.01), None]
    assert [s for _, _, s in p95] == [value(live, "p95").state for live in shown] + [None]
    cache = signal_points(slices, "cache")
    assert [v for _, v, _ in cache] == [85.0, 75.0, 65.0, None]
    assert [s for _, _, s in cache] == [value(live, "cache").state for live in shown] + [None]
    assert value(shown[-1], "cache").threshold.past == "critical"  # type: ignore[union-attr]
    assert signal_points(slices, "nothing") == [(p[0], None, None) for p in p95]
    # A built-in read from the health JSON (p50) or Prometheus (p99, silent here) plots
    # what the live row showed, not the prober's sketch; settled slices too.
    p50 = [(v, s) for _, v, s in signal_points(slices, "p50")]
    assert p50 == [(value(live, "p50").value, value(live, "p50").state) for live in shown] + [(None, None)]
    assert [v for v, _ in p50[:3]] == [45.0, 55.0, 65.0]
    assert [v for _, v, _ in signal_points(slices, "p99")][:3] == [None, None, None]
    assert signal_points([settle(piece) for piece in slices], "p50") == signal_points(slices, "p50")
