"""Backtest: a rollout's criteria replayed over a synthetic history with a known breach."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from console.model.backtest import BacktestReport, Rule, backtest, report_lines, rules_of
from console.model.gates import parse_criterion
from console.model.history import HistorySlice, judgement_data
from console.model.live import SignalState, SignalValue
from console.model.rollout_config import RolloutConfig

T0 = 1_767_268_800.0
"""2026-01-01 12:00:00 UTC, on a slice boundary."""
HOUR = 3600
BREACH = (T0 + 1200, T0 + 1800)
"""Ten minutes of 7% errors on the canary, 20 minutes in."""


def clock(at: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(at))


def piece(
    service: str, start: float, *, error_rate: float | None = 0.05, p95: float = 90.0,
    state: SignalState = "ok", errors: int = 0, resolution: int = 10,
) -> HistorySlice:
    """One slice as the leader writes it: ten probes, the values the live row showed at its end."""
    at = start + resolution - 1
    values = [
        SignalValue(name="error_rate", label="errors", value=error_rate, unit="%", source="health-json",
                    at=at, state=state, detail="Prometheus: timeout" if state == "source_down" else ""),
        SignalValue(name="p95", label="p95", value=p95, unit="ms", source="health-json", at=at,
                    state="ok", detail=""),
    ]
    data = judgement_data(as_of=at, health="up", reason="HTTP 200", health_since=T0, last_at=at,
                          last_health="up", last_health_since=T0, observed_at=at, signals=values, timers={})
    return HistorySlice(service, resolution, start, 10, errors, None, data)


def history(
    canary: Callable[[float], HistorySlice] | None = None, *, hours: float = 1, baseline_errors: float = 0.05
) -> list[HistorySlice]:
    """An hour of slices: the canary bad during BREACH (unless ``canary`` says otherwise), a calm baseline."""
    def bad(start: float) -> HistorySlice:
        breached = BREACH[0] <= start < BREACH[1]
        return piece("checkout-canary", start, error_rate=7.0 if breached else 0.05)

    make = canary or bad
    out = []
    for index in range(int(hours * HOUR / 10)):
        start = T0 + 10 * index
        out.append(make(start))
        out.append(piece("checkout", start, error_rate=baseline_errors))
    return out


def rule(text: str, role: str = "abort", on_fail: str = "rollback", **policy: object) -> Rule:
    return Rule(f"{role}.criteria[0]", text, parse_criterion(text), role, on_fail, **policy)  # type: ignore[arg-type]


def replay(rules: list[Rule], slices: list[HistorySlice], **options: object) -> BacktestReport:
    settings: dict[str, object] = {"since": T0, "until": T0 + HOUR, "probe_interval": 1.0}
    settings.update(options)
    return backtest("checkout", rules, slices, canary="checkout-canary", baseline="checkout",
                    time_text=clock, **settings)  # type: ignore[arg-type]


# --- the breach ------------------------------------------------------------------------------


def test_a_sustained_breach_rolls_back_once_it_held_its_window_and_the_grace_ran_out() -> None:
    report = replay([rule("error_rate > 5% for 5m")], history(), grace=5.0)
    (abort,) = report.rules
    fail = abort.spans_of("fail")
    # The first bad slice ends at BREACH[0] + 10; five minutes of it first hold 300 s later.
    assert [(s.start, s.last, s.end, s.evaluations) for s in fail] == [
        (BREACH[0] + 310, BREACH[1], BREACH[1] + 10, 30)
    ]
    (trigger,) = abort.triggers
    assert (trigger.at, trigger.since, trigger.action) == (BREACH[0] + 315, BREACH[0] + 310, "rollback")
    assert trigger.evidence == "error_rate 7.00% > 5.00% for 5m (since 12:20:10Z, 31 samples)"
    assert report.first_rollback == (abort, trigger)
    assert abort.counts == {"pass": 330, "fail": 30, "no_data": 1, "source_error": 0}
    assert abort.spans_of("no_data")[0].start == T0  # no history before the first slice ends


def test_a_breach_shorter_than_the_grace_or_the_failure_limit_does_not_roll_back() -> None:
    rules = [rule("error_rate > 5% for 5m")]
    assert replay(rules, history(), grace=290.0).first_rollback is not None  # 300 s of failing: enough
    assert replay(rules, history(), grace=300.0).first_rollback is None  # the run ends first
    limited = replay(rules, history(), failure_limit=120, evaluation_interval=1.0, grace=5.0)
    assert limited.rules[0].triggers[0].at == BREACH[0] + 310 + 119 + 5
    assert replay(rules, history(), failure_limit=400, evaluation_interval=1.0).first_rollback is None


def test_the_gate_holds_while_it_fails_and_says_since_when() -> None:
    gate = rule("error_rate < 1%", role="gate", on_fail="hold", on_no_data="hold", on_source_error="hold")
    report = replay([gate], history(), since=T0 + 10)
    (judged,) = report.rules
    assert [(s.start, s.evaluations) for s in judged.spans_of("fail")] == [(BREACH[0] + 10, 60)]
    assert [(t.at, t.action) for t in judged.triggers] == [(BREACH[0] + 10, "hold")]
    assert [(h.start, h.end) for h in report.held] == [(BREACH[0] + 10, BREACH[1] + 10)]
    assert report.held_seconds == 600
    assert report.held[0].why == "error_rate < 1%: error_rate 7.00%, not < 1.00%"
    assert report.first_rollback is None


def test_no_data_and_a_source_down_never_roll_back_and_hold_as_the_policy_says() -> None:
    def outage(start: float) -> HistorySlice:
        if BREACH[0] <= start < BREACH[1]:
            return piece("checkout-canary", start, error_rate=None, state="source_down")
        return piece("checkout-canary", start)

    abort = rule("error_rate > 5%")
    gate = rule("error_rate < 1%", role="gate", on_fail="hold", on_no_data="notify", on_source_error="hold")
    report = replay([abort, gate], history(outage), since=T0 - 60)
    judged_abort, judged_gate = report.rules
    assert judged_abort.counts["source_error"] == 60 and judged_abort.triggers == ()
    assert report.first_rollback is None
    assert [t.action for t in judged_gate.triggers] == ["notify", "hold"]  # no history yet, then the outage
    assert judged_gate.triggers[1].evidence == "error_rate < 1%: error_rate: source down (Prometheus: timeout)"
    assert [(h.start, h.end) for h in report.held] == [(BREACH[0] + 10, BREACH[1] + 10)]


def test_a_baseline_at_zero_is_no_data_never_a_rollback() -> None:
    relative = rule("error_rate > 1.5x baseline")
    calm = replay([relative], history(baseline_errors=0.0), since=T0 + 60)
    assert calm.rules[0].counts == {"pass": 0, "fail": 0, "no_data": 355, "source_error": 0}
    assert calm.first_rollback is None  # the canary's 7% included: no ratio against 0
    assert calm.rules[0].spans[0].evidence == "error_rate > 1.5x baseline: baseline error_rate is 0: no ratio"
    worse = replay([relative], history(baseline_errors=1.0))
    assert worse.rules[0].triggers[0].at == BREACH[0] + 10  # 7% > 1.5 × 1%
    assert worse.rules[0].triggers[0].evidence == "error_rate 7.00% > 1.50% (1.5x baseline 1.00%)"


def test_failed_probes_are_counted_within_the_window() -> None:
    def failing(start: float) -> HistorySlice:
        return piece("checkout-canary", start, errors=2 if BREACH[0] <= start < BREACH[0] + 30 else 0)

    report = replay([rule("health_failures > 3 within 5m")], history(failing))
    (trigger,) = report.rules[0].triggers
    assert trigger.at == BREACH[0] + 20  # the second failing slice makes 4
    assert trigger.evidence == "health_failures 4 > 3 within 5m (4 of 300 probes failed)"


def test_only_the_canary_and_baseline_at_the_resolution_count_and_nothing_after_until() -> None:
    stranger = [piece("payments", T0 + 10 * i, error_rate=50.0) for i in range(360)]
    rollups = [piece("checkout-canary", T0 + 60 * i, error_rate=50.0, resolution=60) for i in range(60)]
    report = replay([rule("error_rate > 5%")], history() + stranger + rollups, until=BREACH[0])
    assert report.first_rollback is None
    assert report.slices == 2 * 360
    assert report.times[0] == T0 and report.times[-1] == BREACH[0]
    odd = replay([rule("error_rate > 5%")], history(), since=T0 + 3, until=T0 + 27.5)
    assert odd.times == (T0 + 10, T0 + 20, T0 + 27.5)
    with pytest.raises(ValueError, match="forward"):
        replay([], history(), since=T0 + 10, until=T0)


def test_minute_rollups_replay_at_their_own_resolution() -> None:
    rollups = []
    for i in range(60):
        start = T0 + 60 * i
        breached = BREACH[0] <= start < BREACH[1]
        rollups.append(piece("checkout-canary", start, error_rate=7.0 if breached else 0.05, resolution=60))
        rollups.append(piece("checkout", start, resolution=60))
    report = replay([rule("error_rate > 5% for 5m")], rollups, resolution=60)
    assert report.step == 60 and len(report.times) == 61
    assert report.first_rollback is not None
    assert report.first_rollback[1].at == BREACH[0] + 60 + 300


# --- rules and text ------------------------------------------------------------------------------


def test_rules_of_a_rollout_take_each_criterion_once_with_its_policies() -> None:
    plan = RolloutConfig.model_validate({
        "canary": "checkout-canary", "baseline": "checkout",
        "stages": [{"name": "10%", "percent": 10, "gate": ["p95 < 500ms", "memory_pct < 70%"]}],
        "gate": {"criteria": ["p95 < 500ms"], "on_no_data": "notify", "min_samples": 12},
        "abort": {"criteria": ["error_rate > 5% for 5m"], "on_fail": "hold"},
    })
    keyed = [("gate.criteria[0]", "p95 < 500ms"), ("abort.criteria[0]", "error_rate > 5% for 5m"),
             ("stages[0].gate[0]", "p95 < 500ms"), ("stages[0].gate[1]", "memory_pct < 70%")]
    rules = rules_of(plan, keyed, {"memory_pct": "%"})
    assert [(r.key, r.role, r.on_fail, r.on_no_data, r.min_samples) for r in rules] == [
        ("gate.criteria[0]", "gate", "hold", "notify", 12),
        ("abort.criteria[0]", "abort", "hold", "none", 0),
        ("stages[0].gate[1]", "gate", "hold", "notify", 12),
    ]
    assert rules[2].action("no_data") == "notify" and rules[1].action("no_data") == "none"


def test_the_report_reads_verdict_first_then_each_criterion() -> None:
    gate = rule("error_rate < 1%", role="gate", on_fail="hold", on_no_data="hold", on_source_error="hold")
    report = replay([gate, rule("error_rate > 5% for 5m")], history(), grace=5.0)
    lines = report_lines(report, clock)
    assert lines[:3] == [
        "backtest of checkout: 2 criteria over checkout-canary (baseline checkout), 12:00:00Z → 13:00:00Z: "
        "361 evaluations every 10s, 720 history slices",
        "would have rolled back at 12:25:15Z: abort error_rate > 5% for 5m: error_rate 7.00% > 5.00% for 5m "
        "(since 12:20:10Z, 31 samples)",
        "would have held for 10m 10s in all (2 spans), first at 12:00:00Z: error_rate < 1%: error_rate: "
        "no values",
    ]
    abort = lines[lines.index("abort error_rate > 5% for 5m  (abort.criteria[0]; fail: rollback)"):]
    assert abort[1:] == [
        "  361 evaluations: pass 330, fail 30 in 1 span (5m), no data 1 in 1 span (10s), source error never",
        "  first trigger 12:25:15Z: would have rolled back (failing from 12:25:10Z, then 5s of failure "
        "limit and grace) — error_rate 7.00% > 5.00% for 5m (since 12:20:10Z, 31 samples)",
        "  12:00:00Z starts no data: error_rate: no values",
        "  12:00:10Z no data → pass: error_rate 0.05%, not > 5.00% for 5m",
        "  12:25:10Z pass → fail (rollback): error_rate 7.00% > 5.00% for 5m (since 12:20:10Z, 31 samples)",
        "  12:30:10Z fail → pass: error_rate 0.05%, not > 5.00% for 5m",
    ]
    document = report.as_json()
    assert document["first_rollback"] == {
        "criterion": "error_rate > 5% for 5m", "key": "abort.criteria[0]", "at": BREACH[0] + 315,
        "since": BREACH[0] + 310,
        "evidence": "error_rate 7.00% > 5.00% for 5m (since 12:20:10Z, 31 samples)",
    }
    assert document["evaluations"] == 361 and document["held_seconds"] == 610
    criterion = document["criteria"][1]
    assert [c["before"] for c in criterion["changes"]] == [None, "no_data", "pass", "fail"]
    assert all(span["outcome"] != "pass" for span in criterion["spans"])


def test_an_empty_history_says_where_history_comes_from() -> None:
    report = replay([rule("error_rate > 5%")], [])
    assert report.slices == 0 and report.rules[0].counts["no_data"] == len(report.times)
    assert "no recorded history for checkout-canary" in report_lines(report, clock)[1]


def test_samples_from_elsewhere_fill_only_what_the_history_does_not_cover() -> None:
    from console.model.backtest import _merged
    from console.model.gates import Sample

    recorded = (Sample(90.0, None), Sample(100.0, 1.0, "ok"), Sample(200.0, 2.0, "ok"))
    more = (Sample(50.0, 9.0, "ok"), Sample(150.0, 9.0, "ok"), Sample(250.0, 9.0, "ok"))
    merged = _merged(recorded, more)
    assert [(s.at, s.value) for s in merged] == [(50.0, 9.0), (90.0, None), (100.0, 1.0), (200.0, 2.0), (250.0, 9.0)]
    assert [s.at for s in _merged((Sample(10.0, None),), more)] == [50.0, 150.0, 250.0]
