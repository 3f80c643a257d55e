"""Triage: which service is worst, which signal says so, and the words every view uses."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from console.model import triage
from console.model.live import ServiceLive, SignalValue, ThresholdView
from console.model.triage import TROUBLE_ORDER, Trouble

ERRORS = ThresholdView(warning=1.0, critical=5.0, direction="above", for_seconds=0.0)
P95 = ThresholdView(warning=500.0, critical=1000.0, direction="above", for_seconds=0.0)
CACHE = ThresholdView(warning=80.0, critical=70.0, direction="below", for_seconds=0.0)


def value(name: str, number: float | None, state: str = "ok", *, unit: str = "ms",
          label: str | None = None, threshold: ThresholdView | None = None) -> SignalValue:  # fmt: skip
    return SignalValue(
        name=name, label=label or name, value=number, unit=unit, source="probe", at=0.0,
        state=state, detail="", threshold=threshold,
    )


def service(health: str = "up", *signals: SignalValue) -> ServiceLive:
    return ServiceLive(
        name="checkout", health=health, reason="", health_since=None, observed_at=0.0,
        interval=1.0, baseline=None, latency={}, errors={}, signals=signals, history={},
        history_step=1.0,
    )


def test_the_worst_signal_is_critical_before_warning_then_in_row_order() -> None:
    p95 = value("p95", 907.0, "warning", threshold=P95)
    errors = value("error_rate", 7.7, "critical", unit="%", label="5xx rate", threshold=ERRORS)
    cache = value("cache_hit_rate", 64.0, "critical", unit="%", label="cache hit", threshold=CACHE)
    live = service("up", value("p50", 40.0), p95, errors, cache)
    assert triage.worst_signal(live) == errors
    assert triage.breaches(live) == (errors, cache, p95)
    assert triage.worst_signal(service("up", value("p50", 40.0))) is None
    assert triage.worst_signal(None) is None
    assert triage.breaches(None) == ()


def test_no_data_stale_and_source_down_are_not_breaches() -> None:
    live = service(
        "up", value("p95", None, "no_data"), value("p99", 2000.0, "stale"),
        value("error_rate", None, "source_down", unit="%"),
    )  # fmt: skip
    assert triage.breaches(live) == ()
    assert triage.trouble(live, stale=False) == "ok"


def test_trouble_down_then_critical_then_warning_then_stale() -> None:
    critical = value("error_rate", 9.0, "critical", unit="%", threshold=ERRORS)
    warning = value("p95", 600.0, "warning", threshold=P95)
    assert triage.trouble(service("down", critical), stale=False) == "down"
    assert triage.trouble(service("up", warning, critical), stale=False) == "critical"
    assert triage.trouble(service("up", warning), stale=False) == "warning"
    assert triage.trouble(service("degraded"), stale=False) == "warning", "degraded health alone"
    assert triage.trouble(service("unknown"), stale=False) == "stale"
    assert triage.trouble(service("up"), stale=False) == "ok"
    # A stale row says nothing current, whatever it said last.
    assert triage.trouble(service("down", critical), stale=True) == "stale"
    assert triage.trouble(None, stale=False) == "stale"


def test_rank_follows_the_trouble_order() -> None:
    assert [triage.rank(t) for t in TROUBLE_ORDER] == [0, 1, 2, 3, 4]
    assert TROUBLE_ORDER == ("down", "critical", "warning", "stale", "ok")


def test_order_puts_the_worst_first_and_keeps_config_order_within_a_trouble() -> None:
    names = ["checkout", "checkout-canary", "payments", "search", "ledger"]
    troubles: list[Trouble] = ["ok", "critical", "ok", "down", "critical"]
    assert triage.order(names, troubles) == ["search", "checkout-canary", "ledger", "checkout", "payments"]
    assert triage.order([], []) == []


@given(st.lists(st.sampled_from(TROUBLE_ORDER), max_size=12))
def test_order_is_a_stable_sort_by_rank(troubles: list[Trouble]) -> None:
    names = [f"s{i}" for i in range(len(troubles))]
    ordered = triage.order(names, troubles)
    assert sorted(ordered) == sorted(names)
    ranks = [triage.rank(troubles[names.index(n)]) for n in ordered]
    assert ranks == sorted(ranks)
    for a, b in pairwise(ordered):
        if triage.rank(troubles[names.index(a)]) == triage.rank(troubles[names.index(b)]):
            assert names.index(a) < names.index(b), "config order within a trouble"


def test_summary_counts_every_trouble_but_shows_only_what_is_not_ok() -> None:
    found = triage.summary(["ok", "critical", "down", "critical", "warning", "stale", "ok"])
    assert found.text() == "1 down · 2 critical · 1 warning · 1 stale"
    assert found.count("critical") == 2 and found.count("ok") == 2
    assert [t for t, _ in found.counts] == list(TROUBLE_ORDER)
    assert triage.summary(["ok", "ok"]).text() == "all ok"
    assert triage.summary([]).text() == "all ok"


def test_breach_text_names_the_signal_its_value_and_the_level_it_is_past() -> None:
    errors = value("error_rate", 7.7, "critical", unit="%", label="5xx rate", threshold=ERRORS)
    assert triage.breach_text(errors) == "5xx rate 7.70% > 5.00%"
    p95 = value("p95", 907.0, "warning", threshold=P95)
    assert triage.breach_text(p95) == "p95 907 ms > 500 ms"
    cache = value("cache_hit_rate", 64.0, "critical", unit="%", label="cache hit", threshold=CACHE)
    assert triage.breach_text(cache) == "cache hit 64.0% < 70.0%"
    assert triage.breach_text(value("p50", 40.0)) == "p50 40.0 ms", "no threshold, no level"


def test_threshold_text_is_the_next_level_to_trip() -> None:
    assert triage.threshold_text(value("p95", 907.0, "warning", threshold=P95)) == "> 500 ms"
    assert triage.threshold_text(value("p95", 1200.0, "critical", threshold=P95)) == "> 1.00 s"
    assert triage.threshold_text(value("p95", 100.0, "ok", threshold=P95)) == "> 500 ms"
    only_critical = ThresholdView(warning=None, critical=5.0, direction="above", for_seconds=0.0)
    assert triage.threshold_text(value("e", 1.0, "ok", unit="%", threshold=only_critical)) == "> 5.00%"
    only_warning = ThresholdView(warning=3.0, critical=None, direction="above", for_seconds=0.0)
    assert triage.threshold_text(value("b", 4.0, "critical", unit="", threshold=only_warning)) == "> 3"
    assert triage.threshold_text(value("p50", 40.0)) == ""


def test_level_past_judges_another_window_by_the_same_levels() -> None:
    assert triage.level_past(944.0, P95) == "warning"
    assert triage.level_past(1000.0, P95) == "critical", "at the level counts, as in the engine"
    assert triage.level_past(499.9, P95) is None
    assert triage.level_past(64.0, CACHE) == "critical"
    assert triage.level_past(79.0, CACHE) == "warning"
    assert triage.level_past(86.0, CACHE) is None
    assert triage.level_past(None, P95) is None
    assert triage.level_past(2000.0, None) is None


def test_level_text_words_another_window_s_level_the_same_way() -> None:
    assert triage.level_text(P95, "critical", "ms") == "> 1.00 s"
    assert triage.level_text(P95, "warning", "ms") == "> 500 ms"
    assert triage.level_text(CACHE, "critical", "%") == "< 70.0%"
    assert triage.level_text(None, "critical", "ms") == ""
