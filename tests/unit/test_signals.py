"""ServiceSignals: windows, error rate, health, thresholds, staleness, snapshots."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from console.model.clock import FakeClock
from console.model.health import HEALTH_STATES, ProbeResult
from console.model.json_path import extract_json_path
from console.model.live import ServiceLive, SignalValue, compare_to_baseline
from console.model.signals import HISTORY_POINTS, ServiceSignals
from console.model.thresholds import JsonSource, SignalSpec, Threshold

CACHE = SignalSpec(json_path="metrics.cache_hit_rate", unit="%", scale=100.0, label="cache hit")
MEMORY = SignalSpec(promql='memory_usage_percent{service="{service}"}', unit="%")


def probe(
    at: float,
    latency: float = 100.0,
    *,
    ok: bool = True,
    health: str = "up",
    body: Any = None,
    reason: str = "HTTP 200",
) -> ProbeResult:
    return ProbeResult("checkout", at, latency, health, reason, ok, 200 if ok else 503, body)  # type: ignore[arg-type]


def make(
    thresholds: dict[str, Threshold] | None = None,
    *,
    interval: float = 5.0,
    signals: dict[str, SignalSpec] | None = None,
    **kwargs: Any,
) -> ServiceSignals:
    return ServiceSignals(
        "checkout",
        interval=interval,
        thresholds=thresholds or {},
        signals={"cache": CACHE, "memory": MEMORY} if signals is None else signals,
        **kwargs,
    )


def value(live: ServiceLive, name: str) -> SignalValue:
    found = live.signal(name)
    assert found is not None
    return found


# --- before anything arrives ---------------------------------------------------


def test_empty_service_says_no_data_everywhere() -> None:
    live = make().snapshot(FakeClock().now())
    assert (live.health, live.reason, live.health_since, live.observed_at) == (
        "unknown",
        "no probe yet",
        None,
        None,
    )
    assert [s.name for s in live.signals] == [
        "p50", "p95", "p99", "error_rate", "probe_errors", "cache", "memory",
    ]
    assert {s.state for s in live.signals} == {"no_data"}
    assert live.errors["1m"].rate_pct is None
    assert live.errors["5m"].total == 0
    assert live.latency["1m"].p95 is None
    assert value(live, "memory").detail == "waiting for Prometheus"
    assert value(live, "memory").source == "prometheus"
    assert value(live, "cache").source == "health-json"


# --- error rate ----------------------------------------------------------------


def test_error_rate_counts_and_words() -> None:
    clock = FakeClock()
    signals = make(interval=0.1)
    for i in range(1204):
        signals.record_probe(probe(clock.now(), ok=i % 400 != 7))
        clock.advance(0.04)
    live = signals.snapshot(clock.now())
    errors = live.errors["1m"]
    assert (errors.failed, errors.total) == (3, 1204)
    assert errors.rate_pct == round(300 / 1204, 2)
    shown = value(live, "error_rate")
    assert shown.detail == "3 of 1,204 failed in 1m"
    assert shown.value == errors.rate_pct
    assert shown.unit == "%"
    assert shown.source == "probe"
    # Without a JSON path or a query, error_rate is the probes' failures: probe_errors' value.
    own = value(live, "probe_errors")
    assert (own.value, own.detail, own.unit, own.source, own.label) == (
        shown.value, shown.detail, "%", "probe", "probe errors",
    )


def test_error_rate_with_no_probes_in_window_is_no_data_not_zero() -> None:
    clock = FakeClock()
    signals = make(interval=60.0)  # probes stay fresh for 3 minutes
    signals.record_probe(probe(clock.now(), ok=False))
    clock.advance(75)
    live = signals.snapshot(clock.now())
    assert live.errors["1m"] == live.errors["1m"].model_copy(
        update={"failed": 0, "total": 0, "rate_pct": None}
    )
    assert live.errors["5m"].rate_pct == 100.0
    shown = value(live, "error_rate")
    assert (shown.state, shown.value, shown.detail) == ("no_data", None, "no probes in the last 1m")


def test_all_failed_has_no_latency_but_full_error_rate() -> None:
    clock = FakeClock()
    signals = make()
    for _ in range(5):
        signals.record_probe(probe(clock.now(), 2000.0, ok=False, health="down", reason="timeout after 2s"))
        clock.advance(5)
    live = signals.snapshot(clock.now())
    assert value(live, "p95").state == "no_data"
    assert value(live, "p95").detail == "no successful probe in the last 1m"
    assert value(live, "error_rate").value == 100.0
    assert (live.health, live.reason) == ("down", "timeout after 2s")


# --- windows -------------------------------------------------------------------


def test_latency_windows_expire_with_the_clock() -> None:
    clock = FakeClock(start=1_000_000.0)
    signals = make()
    for _ in range(12):  # a minute of slow probes
        signals.record_probe(probe(clock.now(), 900.0))
        clock.advance(5)
    for _ in range(24):  # then two minutes of fast ones
        signals.record_probe(probe(clock.now(), 50.0))
        clock.advance(5)
    live = signals.snapshot(clock.now() - 5)
    assert live.latency["1m"].p99 == pytest.approx(50.0, rel=0.01)
    assert live.latency["5m"].p99 == pytest.approx(900.0, rel=0.01)
    assert live.latency["5m"].count == 36
    clock.advance(180)
    signals.record_probe(probe(clock.now(), 50.0))
    live = signals.snapshot(clock.now())
    assert live.latency["5m"].p99 == pytest.approx(50.0, rel=0.01)
    assert value(live, "p95").value == live.latency["1m"].p95
    assert live.latency["1m"].p95 == round(live.latency["1m"].p95 or 0, 1)


# --- health --------------------------------------------------------------------


def test_health_since_is_the_time_of_the_last_change() -> None:
    signals = make()
    signals.record_probe(probe(100.0))
    signals.record_probe(probe(105.0))
    assert signals.snapshot(105.0).health_since == 100.0
    signals.record_probe(probe(110.0, ok=True, health="degraded", reason="checks.redis = slow"))
    signals.record_probe(probe(115.0, health="degraded", reason="checks.redis = slow"))
    live = signals.snapshot(115.0)
    assert (live.health, live.reason, live.health_since) == ("degraded", "checks.redis = slow", 110.0)
    signals.record_probe(probe(90.0, health="down"))  # a late answer does not rewrite the present
    assert signals.snapshot(116.0).health == "degraded"


def test_health_goes_unknown_when_probes_stop_and_since_restarts() -> None:
    signals = make()
    signals.record_probe(probe(100.0))
    live = signals.snapshot(115.0)  # exactly 3 intervals: still fresh
    assert live.health == "up"
    live = signals.snapshot(116.0)
    assert (live.health, live.health_since) == ("unknown", 115.0)
    assert live.reason == "no probe result for 15s (3 intervals); last: up"
    assert value(live, "p95").state == "stale"
    assert value(live, "cache").state == "stale"
    signals.record_probe(probe(200.0))
    assert signals.snapshot(200.0).health_since == 200.0


# --- thresholds ----------------------------------------------------------------


def test_threshold_levels_and_direction() -> None:
    thresholds = {
        "p95": Threshold(warning=100, critical=200),
        "cache": Threshold(warning=80, critical=70, direction="below"),
    }
    signals = make(thresholds)
    signals.record_probe(probe(0.0, 150.0, body={"metrics": {"cache_hit_rate": 0.65}}))
    live = signals.snapshot(0.0)
    assert value(live, "p95").state == "warning"
    assert value(live, "cache").value == 65.0
    assert value(live, "cache").state == "critical"
    view = value(live, "cache").threshold
    assert view is not None
    assert (view.warning, view.critical, view.direction, view.past, view.past_since) == (
        80.0,
        70.0,
        "below",
        "critical",
        0.0,
    )
    signals.record_probe(probe(5.0, body={"metrics": {"cache_hit_rate": 0.8}}))  # at the level
    assert value(signals.snapshot(5.0), "cache").state == "warning"
    signals.record_probe(probe(10.0, body={"metrics": {"cache_hit_rate": 0.95}}))
    assert value(signals.snapshot(10.0), "cache").state == "ok"


def test_threshold_for_needs_the_value_past_the_level_continuously() -> None:
    clock = FakeClock(start=0.0)
    signals = make({"cache": Threshold.model_validate({"warning": 80, "critical": 70, "direction": "below", "for": "30s"})})

    def feed(ratio: float) -> SignalValue:
        signals.record_probe(probe(clock.now(), body={"metrics": {"cache_hit_rate": ratio}}))
        shown = value(signals.snapshot(clock.now()), "cache")
        clock.advance(5)
        return shown

    assert feed(0.9).state == "ok"
    started = clock.now()
    states = [feed(0.5) for _ in range(7)]  # 0 s, 5 s, ... 30 s past critical
    assert [s.state for s in states] == ["ok"] * 6 + ["critical"]
    assert states[0].detail.endswith("past critical for less than 30s")
    assert states[0].threshold is not None
    assert states[0].threshold.past_since == started
    assert feed(0.9).state == "ok"  # one good reading resets the timers
    assert [feed(0.75).state for _ in range(7)] == ["ok"] * 6 + ["warning"]
    signals.record_probe(probe(clock.now(), body={"metrics": {}}))  # a gap resets too
    assert value(signals.snapshot(clock.now()), "cache").state == "no_data"
    clock.advance(5)
    assert feed(0.5).state == "ok"


def test_threshold_for_on_a_window_value_uses_snapshot_time() -> None:
    signals = make({"p95": Threshold.model_validate({"warning": 100, "for": "10s"})}, interval=1.0)
    for t in range(12):
        signals.record_probe(probe(float(t), 500.0))
        live = signals.snapshot(float(t))
        assert value(live, "p95").state == ("warning" if t >= 10 else "ok")


# --- named signals -------------------------------------------------------------


def test_json_path_signal_reads_scales_and_explains() -> None:
    signals = make(signals={"cache": CACHE, "first": SignalSpec(json_path="checks.0.ms")})
    signals.record_probe(probe(1.0, body={"metrics": {"cache_hit_rate": 0.93124}, "checks": [{"ms": 12}]}))
    live = signals.snapshot(1.0)
    assert value(live, "cache").value == 93.12
    assert value(live, "cache").detail == "metrics.cache_hit_rate in the health JSON"
    assert value(live, "cache").label == "cache hit"
    assert value(live, "first").value == 12.0
    assert value(live, "first").label == "first"
    signals.record_probe(probe(2.0, ok=False, health="down", reason="HTTP 503\n\x1b[31mred"))
    cache = value(signals.snapshot(2.0), "cache")
    assert (cache.state, cache.value, cache.at) == ("no_data", None, 2.0)
    assert cache.detail == "no JSON body (HTTP 503 red)"  # control sequences stripped


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        ({"a": {"b": 0.5}}, "a.b", (0.5, "")),
        ({"a": {"b": True}}, "a.b", (1.0, "")),
        ({"a": {"b": False}}, "a.b", (0.0, "")),
        ({"a": [1, {"c": 7}]}, "a.1.c", (7.0, "")),
        ({"a": {}}, "a.b", (None, "health JSON has no a.b")),
        ({"a": [1]}, "a.3", (None, "health JSON has no a.3")),
        ({"a": "up"}, "a.b", (None, "health JSON: a is text, not an object")),
        ("just text", "a", (None, "health JSON: the body is text, not an object")),
        ([1, 2], "a", (None, "health JSON: the body is a list, not an object")),
        ({"a": "93%"}, "a", (None, "health JSON: a is text, not a number")),
        ({"a": None}, "a", (None, "health JSON: a is null, not a number")),
        ({"a": {"b": 1}}, "a", (None, "health JSON: a is an object, not a number")),
        ({"a": 10**400}, "a", (None, "health JSON: a is not a finite number")),
        (json.loads('{"a": NaN}'), "a", (None, "health JSON: a is not a finite number")),
        (json.loads('{"a": -Infinity}'), "a", (None, "health JSON: a is not a finite number")),
    ],
)
def test_extract_json_path(body: Any, path: str, expected: tuple[float | None, str]) -> None:
    assert extract_json_path(body, path) == expected


KEYS = st.sampled_from(["a", "b", "0", "1", "metrics"])
"""Few keys, so generated paths often hit generated bodies."""
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200)
@given(body=JSON, path=st.lists(KEYS, min_size=1, max_size=4).map(".".join))
def test_extract_json_path_never_raises_on_garbage(body: Any, path: str) -> None:
    found, why = extract_json_path(body, path)
    assert (found is None) != (why == "")
    if found is not None:
        assert math.isfinite(found)


def test_prometheus_values_are_converted_and_can_go_down() -> None:
    signals = make(prometheus={"p95", "error_rate"}, prometheus_interval=15.0)
    signals.record_query("p95", 0.18734, at=100.0)
    signals.record_query("error_rate", 0.0123, at=100.0)
    signals.record_query("memory", 71.349, at=100.0)
    live = signals.snapshot(101.0)
    assert (value(live, "p95").value, value(live, "p95").unit, value(live, "p95").source) == (
        187.3,
        "ms",
        "prometheus",
    )
    assert value(live, "error_rate").value == 1.23
    assert value(live, "memory").value == 71.35
    assert live.observed_at == 100.0
    signals.record_query("memory", None, at=115.0, error="Prometheus: timeout after 5s")
    signals.record_query("p95", None, at=115.0)
    signals.record_query("error_rate", math.nan, at=115.0)
    live = signals.snapshot(115.0)
    memory = value(live, "memory")
    assert (memory.state, memory.value, memory.detail, memory.at) == (
        "source_down",
        None,
        "Prometheus: timeout after 5s",
        115.0,
    )
    assert value(live, "p95").state == "no_data"
    assert value(live, "p95").detail == "no data from Prometheus"
    assert value(live, "error_rate").state == "no_data"
    signals.record_query("memory", 50.0, at=100.0)  # a slow answer overtaken by a newer one
    assert value(signals.snapshot(115.0), "memory").state == "source_down"
    signals.record_query("memory", 50.0, at=130.0)
    assert value(signals.snapshot(130.0), "memory").state == "ok"


def test_prometheus_values_go_stale_after_three_of_its_intervals() -> None:
    signals = make(prometheus={"p95"}, prometheus_interval=15.0)
    signals.record_query("p95", 0.2, at=100.0)
    signals.record_probe(probe(140.0))
    assert value(signals.snapshot(145.0), "p95").state == "ok"
    stale = value(signals.snapshot(146.0), "p95")
    assert (stale.state, stale.value, stale.at) == ("stale", 200.0, 100.0)
    assert stale.detail == "no new value for 45s (3 × 15s interval)"
    assert value(signals.snapshot(146.0), "p50").state == "ok"  # probe-fed, still fresh


def test_bad_wiring_is_refused() -> None:
    with pytest.raises(ValueError, match="built in"):
        make(signals={"p95": CACHE})
    with pytest.raises(ValueError, match="built in"):
        make(signals={"probe_errors": CACHE})
    with pytest.raises(ValueError, match="not built-in"):
        make(prometheus={"memory"})
    with pytest.raises(ValueError, match="not built-in"):
        make(health_json={"probe_errors": JsonSource(path="metrics.errors")})  # the prober's own
    with pytest.raises(ValueError, match="both Prometheus and the health JSON"):
        make(prometheus={"p95"}, health_json={"p95": JsonSource(path="metrics.p95_ms")})
    with pytest.raises(ValueError, match="has no PromQL query"):
        make().record_query("cache", 1.0, at=0.0)
    with pytest.raises(ValueError, match="has no PromQL query"):
        make().record_query("p95", 1.0, at=0.0)


# --- built-ins from the health JSON ---------------------------------------------

FROM_JSON = {
    "p95": JsonSource(path="metrics.p95_ms"),
    "error_rate": JsonSource(path="metrics.error_rate", scale=100.0),
}


def traffic(p95: float | None = 210.0, error_rate: float | None = 0.077) -> dict[str, Any]:
    """An advanced health body, as the demo services answer it."""
    metrics = {"p95_ms": p95, "error_rate": error_rate, "cache_hit_rate": 0.9}
    return {"status": "ok", "metrics": {k: v for k, v in metrics.items() if v is not None}}


def test_builtins_from_the_health_json_are_read_scaled_and_say_where_from() -> None:
    signals = make(health_json=FROM_JSON)
    signals.record_probe(probe(1.0, 40.0, body=traffic()))
    live = signals.snapshot(1.0)
    errors = value(live, "error_rate")
    assert (errors.value, errors.unit, errors.label, errors.source) == (7.7, "%", "errors", "health-json")
    assert errors.detail == "metrics.error_rate in the health JSON"
    p95 = value(live, "p95")
    assert (p95.value, p95.unit, p95.source, p95.at) == (210.0, "ms", "health-json", 1.0)
    # What is not fed from the JSON stays the prober's, and so do the windows.
    p50 = value(live, "p50")
    assert p50.source == "probe"
    assert p50.value == pytest.approx(40.0, rel=0.01)
    own = value(live, "probe_errors")
    assert (own.value, own.source, own.detail) == (0.0, "probe", "0 of 1 failed in 1m")
    assert live.latency["1m"].p95 == pytest.approx(40.0, rel=0.01)
    assert (live.errors["1m"].failed, live.errors["1m"].rate_pct) == (0, 0.0)
    assert live.history["error_rate"][-1] == 7.7  # the sparkline shows the signal as shown


def test_a_json_builtin_without_a_reading_is_no_data_and_goes_stale() -> None:
    signals = make(health_json=FROM_JSON, interval=5.0, timeout=2.0)
    live = signals.snapshot(0.0)
    assert (value(live, "error_rate").state, value(live, "error_rate").detail) == ("no_data", "no probe yet")
    signals.record_probe(probe(0.0, body=traffic(error_rate=None)))
    missing = value(signals.snapshot(0.0), "error_rate")
    assert (missing.state, missing.value, missing.detail) == (
        "no_data", None, "health JSON has no metrics.error_rate",
    )
    assert value(signals.snapshot(0.0), "p95").state == "ok"  # one path missing hides no other
    signals.record_probe(probe(5.0, ok=False, health="down", reason="HTTP 503"))
    down = value(signals.snapshot(5.0), "error_rate")
    assert (down.state, down.detail) == ("no_data", "no JSON body (HTTP 503)")
    assert value(signals.snapshot(5.0), "probe_errors").value == 50.0  # 1 of 2 probes failed
    signals.record_probe(probe(10.0, body=traffic()))
    assert value(signals.snapshot(27.0), "error_rate").state == "ok"  # 3 × 5 s + 2 s timeout
    stale = value(signals.snapshot(27.5), "error_rate")
    assert (stale.state, stale.value, stale.at) == ("stale", 7.7, 10.0)
    assert stale.detail == "no new value for 17s (3 × 5s interval + 2s timeout)"


def test_a_json_builtin_is_judged_with_its_for_timer_and_probe_errors_on_its_own() -> None:
    thresholds = {
        "error_rate": Threshold.model_validate({"warning": 1, "critical": 5, "for": "10s"}),
        "probe_errors": Threshold.model_validate({"warning": 1, "critical": 5}),
    }
    signals = make(thresholds, health_json=FROM_JSON)
    states = []
    for t in (0.0, 5.0, 10.0):
        signals.record_probe(probe(t, body=traffic(error_rate=0.077)))
        states.append(value(signals.snapshot(t), "error_rate"))
    assert [s.state for s in states] == ["ok", "ok", "critical"]
    assert states[0].detail.endswith("past critical for less than 10s")
    assert states[-1].threshold is not None
    assert (states[-1].threshold.past, states[-1].threshold.past_since) == ("critical", 0.0)
    assert value(signals.snapshot(10.0), "probe_errors").state == "ok"  # every probe answered
    signals.record_probe(probe(12.0, body=traffic(error_rate=0.002)))  # back under: timers reset
    errors = value(signals.snapshot(12.0), "error_rate")
    assert (errors.state, errors.value) == ("ok", 0.2)
    assert errors.threshold is not None and errors.threshold.past is None
    # The reverse: the traffic is fine, Conn's health checks fail.
    for t in (15.0, 16.0):
        signals.record_probe(probe(t, ok=False, health="down", body=traffic(error_rate=0.0)))
    live = signals.snapshot(16.0)
    assert (value(live, "error_rate").state, value(live, "error_rate").value) == ("ok", 0.0)
    assert (value(live, "probe_errors").state, value(live, "probe_errors").value) == ("critical", 33.33)  # 2 of 6


# --- history -------------------------------------------------------------------


def test_history_carries_a_fresh_value_over_a_slow_probe() -> None:
    """A probe slower than its interval skips a point; the value was still current there."""
    signals = make(interval=1.0)
    signals.record_probe(probe(0.0, 900.0))
    signals.snapshot(0.0)
    signals.record_probe(probe(2.2, 900.0))
    live = signals.snapshot(2.2)  # one interval skipped: carried forward, no hole
    shown = value(live, "p95").value
    assert shown is not None
    assert live.history["p95"][-3:] == (shown, shown, shown)


def test_history_is_bounded_and_shows_gaps() -> None:
    signals = make(interval=5.0)
    for i in range(100):
        signals.record_probe(probe(i * 5.0, 100.0 + i))
        live = signals.snapshot(i * 5.0)
    assert len(live.history["p95"]) == HISTORY_POINTS
    assert live.history["p95"][-1] == value(live, "p95").value
    assert live.history_step == 5.0
    signals.record_probe(probe(520.0, 100.0))
    live = signals.snapshot(520.0)  # skipped 3 intervals: the value went stale, a visible gap
    assert live.history["p95"][-4:-1] == (None, None, None)
    assert len(live.history["error_rate"]) == HISTORY_POINTS
    signals.record_probe(probe(520.0 + 10_000.0))
    live = signals.snapshot(520.0 + 10_000.0)
    assert len(live.history["p95"]) == HISTORY_POINTS
    assert live.history["p95"][:-1] == (None,) * (HISTORY_POINTS - 1)


# --- snapshots -----------------------------------------------------------------


def test_snapshot_is_frozen_and_equal_when_nothing_changed() -> None:
    signals = make()
    signals.record_probe(probe(10.0, 123.456))
    first, second = signals.snapshot(10.0), signals.snapshot(10.0)
    assert first == second
    assert first.latency["1m"].p95 == round(first.latency["1m"].p95 or 0.0, 1)
    with pytest.raises(ValidationError):
        first.health = "down"  # type: ignore[misc]


def test_compare_to_baseline() -> None:
    canary, baseline = make(), make()
    for t in range(0, 60, 5):
        canary.record_probe(probe(float(t), 200.0, ok=t != 0))
        baseline.record_probe(probe(float(t), 100.0))
    ratios = compare_to_baseline(canary.snapshot(55.0), baseline.snapshot(55.0))
    assert ratios["p95"] == pytest.approx(2.0, rel=0.03)
    assert ratios["error_rate"] is None  # 8.33 % against 0 %: no ratio, never ×∞
    same = compare_to_baseline(baseline.snapshot(55.0), baseline.snapshot(55.0))
    assert same["p95"] == 1.0
    assert same["error_rate"] is None  # 0 ÷ 0 is not evidence of agreement
    nothing = compare_to_baseline(make().snapshot(55.0), baseline.snapshot(55.0))
    assert nothing["p95"] is None
    assert nothing["error_rate"] is None
    assert compare_to_baseline(canary.snapshot(500.0), baseline.snapshot(55.0))["p95"] is None  # stale


FEED = st.lists(
    st.one_of(
        st.tuples(
            st.just("probe"),
            st.floats(min_value=0.0, max_value=600.0),
            st.floats(min_value=0.0, max_value=10_000.0),
            st.booleans(),
            st.sampled_from(HEALTH_STATES),
            st.one_of(st.none(), JSON, st.builds(lambda r: {"metrics": {"cache_hit_rate": r}}, st.floats())),
        ),
        st.tuples(
            st.just("query"),
            st.floats(min_value=0.0, max_value=600.0),
            st.sampled_from(["p95", "memory"]),
            st.one_of(st.none(), st.floats()),
            st.one_of(st.none(), st.text(max_size=20)),
        ),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(feed=FEED, now=st.floats(min_value=0.0, max_value=900.0))
def test_snapshot_round_trips_through_json(feed: list[tuple[Any, ...]], now: float) -> None:
    signals = make(
        {"p95": Threshold(warning=100, critical=500), "cache": Threshold(warning=80, direction="below")},
        prometheus={"p95"},
        health_json={"error_rate": JsonSource(path="metrics.cache_hit_rate", scale=100.0)},
    )
    for item in feed:
        if item[0] == "probe":
            _, at, latency, ok, health, body = item
            signals.record_probe(probe(at, latency, ok=ok, health=health, body=body))
        else:
            _, at, name, raw, error = item
            signals.record_query(name, raw, at, error=error)
    live = signals.snapshot(now)
    assert ServiceLive.model_validate(live.model_dump(mode="json")) == live
    assert ServiceLive.model_validate_json(live.model_dump_json()) == live
    assert ServiceLive.model_validate(json.loads(json.dumps(live.model_dump(mode="json")))) == live
    for shown in live.signals:
        assert shown.value is None or math.isfinite(shown.value)
        assert "\n" not in shown.detail
