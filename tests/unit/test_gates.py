"""Gates: criteria as the plans write them, four-outcome verdicts, limits, detection budgets."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.model.gates import (
    OPERATORS,
    SERVICE,
    Criterion,
    CriterionError,
    GateTracker,
    Observations,
    Outcome,
    Role,
    Sample,
    Unit,
    Verdict,
    describe_budget,
    evaluate,
    live_sample,
    parse_criterion,
    points_series,
    service_series,
    signal_series,
    span_text,
    unknown_signals,
    worst_case_detection,
)
from console.model.history import HistorySlice, judgement_data
from console.model.live import SignalState, SignalValue
from console.model.thresholds import BUILTIN_SIGNALS

T0 = 1_767_268_800.0
"""2026-01-01 12:00:00 UTC, on a slice boundary."""
STEP = 10.0


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at))


# --- the plans' criteria ----------------------------------------------------------

PLANS = [
    ("p95 < 500ms", Criterion("p95", "<", 500, "ms"), 500.0),
    ("p95 > 15s", Criterion("p95", ">", 15, "s"), 15_000.0),
    ("error_rate < 0.1%", Criterion("error_rate", "<", 0.1, "%"), 0.1),
    ("cache_hit_rate > 70%", Criterion("cache_hit_rate", ">", 70, "%"), 70.0),
    ("memory_pct < 70%", Criterion("memory_pct", "<", 70, "%"), 70.0),
    ("error_rate > 5% for 5m", Criterion("error_rate", ">", 5, "%", window="for", seconds=300), 5.0),
    ("health_failures > 3 within 5m",
     Criterion("health_failures", ">", 3, window="within", seconds=300), 3.0),
    ("circuit_breaker_opens increase > 5 within 10m",
     Criterion("circuit_breaker_opens", ">", 5, increase=True, window="within", seconds=600), 5.0),
    ("p95 > 1.5x baseline", Criterion("p95", ">", 1.5, relative=True), None),
    ("error_rate > 1.5x baseline for 1m",
     Criterion("error_rate", ">", 1.5, relative=True, window="for", seconds=60), None),
    ("p95 <= 1.2x baseline", Criterion("p95", "<=", 1.2, relative=True), None),
]


@pytest.mark.parametrize(("text", "expected", "threshold"), PLANS, ids=[p[0] for p in PLANS])
def test_plans_criteria_parse_as_written(text: str, expected: Criterion, threshold: float | None) -> None:
    criterion = parse_criterion(text)
    assert criterion == expected
    assert str(criterion) == text
    assert criterion.threshold == threshold


def test_units_are_normalised_to_what_conn_shows() -> None:
    assert parse_criterion("p95 > 15s").threshold == 15_000  # latency in ms
    assert parse_criterion("p95 < 0.5s").threshold == 500
    assert parse_criterion("p99 < 1.5m").threshold == 90_000
    assert parse_criterion("error_rate < 0.1%").threshold == 0.1  # rates stay in percent
    assert parse_criterion("p95 > 1.5x baseline").factor == 1.5
    assert parse_criterion("error_rate > 5% for 5m").seconds == 300
    assert parse_criterion("circuit_breaker_opens increase > 5 within 10m").counts
    assert parse_criterion("p95 < 500ms").value_unit == "ms"
    assert parse_criterion("error_rate > 1.5x baseline").value_unit == "%"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("p95<500ms", "p95 < 500ms"),
        ("  p95   <   500.0ms  ", "p95 < 500ms"),
        ("p95 ≤ 1.2x baseline", "p95 <= 1.2x baseline"),
        ("p95 =< 1.2 x baseline", "p95 <= 1.2x baseline"),
        ("error_rate > 5% for 300s", "error_rate > 5% for 5m"),
        ("p95 > -5ms", "p95 > -5ms"),
    ],
)
def test_other_spellings_read_the_same(text: str, canonical: str) -> None:
    assert str(parse_criterion(text)) == canonical


# --- errors point at the bad part ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("p95 < fast", 6, "expected a number such as 500ms"),
        ("p95 <", 6, "found the end"),
        ("errorrate > 5% for", 19, "expected a duration such as 5m after 'for'"),
        ("p95 > 1.5y baseline", 9, "'y' is not one"),
        ("health_failures > 3", 20, "add 'within 5m'"),
        ("health_failures > 3 for 5m", 20, "not 'for'"),
        ("circuit_breaker_opens increase > 5", 35, "counted within a window"),
        ("health_failures increase > 3 within 5m", 16, "drop 'increase'"),
        ("p95 > 500ms within 5m", 12, "write 'for 5m'"),
        ("error rate > 5%", 6, "expected 'increase' or an operator"),
        ("p95 == 500ms", 4, "expected <, <=, > or >="),
        ("p95 500ms", 4, "an operator"),
        ("p95 < 500 ms", 10, "right after the number (500ms)"),
        ("p95 < 500", 6, "p95 is a latency"),
        ("error_rate < 500ms", 16, "error_rate is a percentage"),
        ("health_failures > 3% within 5m", 19, "is a count: no unit"),
        ("p95 > 1.5x", 11, "'baseline' after 1.5x"),
        ("p95 > 1.5x baselin", 11, "'baseline' after 1.5x"),
        ("p95 > 0x baseline", 6, "factor more than 0"),
        ("p95 < 500ms for 0s", 16, "longer than 0"),
        ("p95 < 500ms for 5", 16, "with its unit"),
        ("p95 < 500ms for 5y", 17, "duration unit"),
        ("p95 < 500ms and p99 < 1s", 12, "expected 'for', 'within' or the end"),
        ("p95 < 500ms for 5m and", 19, "expected the end"),
        ("", 0, "expected a signal name"),
        ("P95 < 500ms", 0, "lower case ('p95')"),
        ("< 500ms", 0, "expected a signal name"),
    ],
)
def test_errors_point_at_the_bad_part(text: str, column: int, fragment: str) -> None:
    with pytest.raises(CriterionError) as caught:
        parse_criterion(text)
    error = caught.value
    assert error.column == column, error.pointer()
    assert fragment in error.message
    assert error.text == text
    assert isinstance(error, ValueError)


def test_pointer_is_the_text_and_a_caret_under_the_bad_part() -> None:
    with pytest.raises(CriterionError) as caught:
        parse_criterion("p95 < fast")
    assert caught.value.pointer() == "p95 < fast\n      ^^^^"
    with pytest.raises(CriterionError) as caught:
        parse_criterion("p95 > 1.5y baseline")
    assert caught.value.pointer() == "p95 > 1.5y baseline\n         ^"
    with pytest.raises(CriterionError) as caught:
        parse_criterion("health_failures > 3")
    assert caught.value.pointer().splitlines()[1] == " " * 20 + "^"


def test_named_signal_units_are_checked_when_known() -> None:
    units = {"cache_hit_rate": "%", "queue_ms": "ms", "opens": ""}
    assert parse_criterion("cache_hit_rate > 70%", units=units).threshold == 70
    assert parse_criterion("queue_ms < 2s", units=units).threshold == 2000
    assert parse_criterion("opens < 5", units=units).threshold == 5
    with pytest.raises(CriterionError, match="cache_hit_rate is a percentage") as caught:
        parse_criterion("cache_hit_rate > 0.7", units=units)
    assert caught.value.column == 17
    with pytest.raises(CriterionError, match="opens is without a unit: write a bare number"):
        parse_criterion("opens < 5%", units=units)
    # unknown to the units table: any unit reads (names are checked by unknown_signals)
    assert parse_criterion("other > 5%").threshold == 5


def test_unknown_signals() -> None:
    known = (*BUILTIN_SIGNALS, "cache_hit_rate")
    assert unknown_signals(parse_criterion("errorrate > 5% for 5m"), known) == ["errorrate"]
    assert unknown_signals(parse_criterion("cache_hit_rate > 70%"), known) == []
    assert unknown_signals(parse_criterion("health_failures > 3 within 5m"), ()) == []


@pytest.mark.parametrize(
    "build",
    [
        lambda: Criterion("health_failures", ">", 3),
        lambda: Criterion("p95", "<", 500, "%"),
        lambda: Criterion("p95", ">", 0, relative=True),
        lambda: Criterion("p95", ">", 500, "ms", window="for"),
        lambda: Criterion("p95", ">", 500, "ms", window="within", seconds=60),
        lambda: Criterion("P95", ">", 500, "ms"),
        lambda: Criterion("p95", ">", float("nan"), "ms"),
    ],
)
def test_a_criterion_that_means_nothing_cannot_be_built(build: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message is checked through the parser
        build()  # type: ignore[operator]


# --- round trip ----------------------------------------------------------------------

_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True).filter(
    lambda name: name not in (*BUILTIN_SIGNALS, "health_failures")
)
_NUMBERS = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
_FACTORS = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
_DURATIONS = st.one_of(
    st.integers(min_value=1, max_value=10**7).map(float),
    st.floats(min_value=0.001, max_value=1e7, allow_nan=False, allow_infinity=False),
)


@st.composite
def criteria(draw: st.DrawFn) -> Criterion:
    kind = draw(st.sampled_from(["latency", "percent", "named", "failures", "increase"]))
    op = draw(st.sampled_from(OPERATORS))
    relative = draw(st.booleans())
    number = draw(_FACTORS if relative else _NUMBERS)
    if kind in ("failures", "increase"):
        signal = "health_failures" if kind == "failures" else draw(_NAMES)
        return Criterion(signal, op, number, relative=relative, increase=kind == "increase",
                         window="within", seconds=draw(_DURATIONS))
    units: list[Unit] = ["ms", "s", "m"] if kind == "latency" else ["%"] if kind == "percent" else (
        ["ms", "s", "m", "%", ""]
    )
    unit = draw(st.sampled_from(units))
    if kind == "latency":
        signal = draw(st.sampled_from(["p50", "p95", "p99"]))
    elif kind == "percent":
        signal = draw(st.sampled_from(["error_rate", "probe_errors"]))
    else:
        signal = draw(_NAMES)
    sustained = draw(st.booleans())
    return Criterion(signal, op, number, "" if relative else unit, relative=relative,
                     window="for" if sustained else None,
                     seconds=draw(_DURATIONS) if sustained else 0.0)


@given(criteria())
def test_round_trip(criterion: Criterion) -> None:
    assert parse_criterion(str(criterion)) == criterion


@given(criteria(), st.lists(st.sampled_from([" ", "  ", "\t"]), min_size=12, max_size=12))
def test_spacing_does_not_matter(criterion: Criterion, spaces: list[str]) -> None:
    words = str(criterion).split(" ")
    spaced = "".join(word + spaces[i % len(spaces)] for i, word in enumerate(words))
    assert parse_criterion(spaced) == criterion


_WORDS = ["p95", "error_rate", "health_failures", "opens", "increase", "<", "<=", ">", "==", "500ms",
          "0.1%", "3", "1.5x", "1.5", "x", "baseline", "for", "within", "5m", "0s", "ms", "%", "y", "-"]


@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(_WORDS), max_size=8).map(" ".join)))
def test_any_text_reads_or_says_where_it_goes_wrong(text: str) -> None:
    problem: CriterionError | None = None
    try:
        criterion = parse_criterion(text)
    except CriterionError as e:
        problem = e
    if problem is None:
        assert parse_criterion(str(criterion)) == criterion
    else:
        assert 0 <= problem.column <= len(text.rstrip()) + 1
        assert problem.message.strip()
        assert len(problem.pointer().split("\n")) == 2


def test_numbers_too_large_to_compare() -> None:
    with pytest.raises(CriterionError, match="too large"):
        parse_criterion("p95 < " + "9" * 400 + "ms")
    with pytest.raises(CriterionError, match="too long"):
        parse_criterion("p95 < 5ms for " + "9" * 400 + "d")


# --- evaluation helpers -------------------------------------------------------------


def run(
    values: Sequence[float | None], *, start: float = T0, state: SignalState = "ok",
    states: dict[int, SignalState] | None = None,
) -> list[Sample]:
    """One sample per STEP from ``start``; ``states`` overrides some by index."""
    return [
        Sample(start + i * STEP, value, (states or {}).get(i, state))
        for i, value in enumerate(values)
    ]


def judge(
    text: str, now: float, canary: Mapping[str, Sequence[Sample]],
    baseline: Mapping[str, Sequence[Sample]] | None = None, *, role: Role = "abort", min_samples: int = 0,
) -> Verdict:
    observations = Observations(now=now, canary=canary, baseline=baseline or {}, step=STEP)
    return evaluate(parse_criterion(text), observations, role=role, min_samples=min_samples,
                    time_text=clock)


def sustained(breach_from: float, now: float, *, value: float = 7.1, calm: float = 1.0) -> list[Sample]:
    """error_rate calm for 10 minutes before ``breach_from``, then ``value`` up to ``now`` (a live sample at now)."""
    samples = []
    at = breach_from - 600
    while at < now:
        samples.append(Sample(at, value if at >= breach_from else calm, "ok"))
        at += STEP
    samples.append(Sample(now, value, "ok"))
    return samples


# --- evaluation: current values ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "role", "value", "outcome", "evidence"),
    [
        ("p95 < 500ms", "gate", 420.0, "pass", "p95 420 ms < 500 ms"),
        ("p95 < 500ms", "gate", 612.0, "fail", "p95 612 ms, not < 500 ms"),
        ("p95 > 15s", "abort", 16_200.0, "fail", "p95 16.2 s > 15.0 s"),
        ("p95 > 15s", "abort", 900.0, "pass", "p95 900 ms, not > 15.0 s"),
        ("error_rate < 0.1%", "gate", 0.04, "pass", "error_rate 0.04% < 0.10%"),
        ("error_rate < 0.1%", "gate", 0.1, "fail", "error_rate 0.10%, not < 0.10%"),
        ("cache_hit_rate > 70%", "gate", 93.1, "pass", "cache_hit_rate 93.1% > 70.0%"),
        ("memory_pct < 70%", "gate", 71.0, "fail", "memory_pct 71.0%, not < 70.0%"),
    ],
)
def test_current_value_against_a_threshold(
    text: str, role: Role, value: float, outcome: Outcome, evidence: str
) -> None:
    signal = text.split()[0]
    verdict = judge(text, T0 + 60, {signal: run([value], start=T0 + 60)}, role=role)
    assert verdict.outcome == outcome
    assert verdict.evidence == evidence
    assert verdict.value == value
    assert verdict.threshold == parse_criterion(text).threshold
    assert verdict.window == 60


@pytest.mark.parametrize(
    ("state", "value", "outcome", "reason"),
    [
        ("stale", 420.0, "no_data", "p95: stale (no new value for 15s)"),
        ("no_data", None, "no_data", "p95: no data (no new value for 15s)"),
        ("source_down", None, "source_error", "p95: source down (no new value for 15s)"),
        ("ok", None, "no_data", "p95: no data (no new value for 15s)"),
    ],
)
@pytest.mark.parametrize("role", ["gate", "abort"])
def test_a_current_value_that_cannot_be_judged_never_passes_or_fails(
    state: SignalState, value: float | None, outcome: Outcome, reason: str, role: Role
) -> None:
    sample = Sample(T0, value, state, detail="no new value for 15s")
    verdict = judge("p95 < 500ms", T0, {"p95": [sample]}, role=role)
    assert verdict.outcome == outcome
    assert verdict.holds is None
    assert verdict.reason == reason
    assert verdict.evidence == f"p95 < 500ms: {reason}"


def test_no_values_or_only_old_ones_are_no_data() -> None:
    assert judge("p95 < 500ms", T0, {}).reason == "p95: no values"
    old = judge("p95 < 500ms", T0 + 60, {"p95": run([100.0])}, role="gate")
    assert (old.outcome, old.reason) == ("no_data", "p95: no value for 1m")


def test_samples_after_now_are_ignored_so_a_backtest_can_replay() -> None:
    samples = run([100.0, 100.0, 900.0])
    assert judge("p95 < 500ms", T0 + 10, {"p95": samples}, role="gate").outcome == "pass"
    assert judge("p95 < 500ms", T0 + 20, {"p95": samples}, role="gate").outcome == "fail"


# --- evaluation: relative to the baseline -----------------------------------------------


def test_relative_to_the_baseline() -> None:
    canary, base = {"p95": run([812.0], start=T0)}, {"p95": run([410.0], start=T0)}
    verdict = judge("p95 > 1.5x baseline", T0, canary, base)
    assert verdict.outcome == "fail"
    assert (verdict.value, verdict.baseline, verdict.threshold) == (812.0, 410.0, 615.0)
    assert verdict.evidence == "p95 812 ms > 615 ms (1.5x baseline 410 ms)"
    calm = judge("p95 > 1.5x baseline", T0, {"p95": run([500.0])}, base)
    assert calm.outcome == "pass"
    assert calm.evidence == "p95 500 ms, not > 615 ms (1.5x baseline 410 ms)"


def test_at_most_a_factor_includes_the_factor() -> None:
    verdict = judge("p95 <= 1.2x baseline", T0, {"p95": run([480.0])}, {"p95": run([400.0])}, role="gate")
    assert verdict.outcome == "pass"
    assert judge("p95 <= 1.2x baseline", T0, {"p95": run([481.0])}, {"p95": run([400.0])},
                 role="gate").outcome == "fail"


@pytest.mark.parametrize(
    ("baseline", "outcome", "reason"),
    [
        (run([0.0]), "no_data", "baseline p95 is 0: no ratio"),
        ({}, "no_data", "baseline p95: no values"),
        (run([400.0], state="stale"), "no_data", "baseline p95: stale"),
        (run([None], state="source_down"), "source_error", "baseline p95: source down"),
        (run([400.0], start=T0 - 60), "no_data", "baseline p95: no recent value"),
    ],
)
@pytest.mark.parametrize("role", ["gate", "abort"])
def test_a_zero_or_missing_baseline_is_no_data_never_infinity(
    baseline: list[Sample] | dict[str, list[Sample]], outcome: Outcome, reason: str, role: Role
) -> None:
    base = baseline if isinstance(baseline, dict) else {"p95": baseline}
    verdict = judge("p95 > 1.5x baseline", T0, {"p95": run([812.0])}, base, role=role)
    assert verdict.outcome == outcome
    assert verdict.reason == reason


# --- evaluation: sustained ----------------------------------------------------------


def test_sustained_abort_triggers_after_exactly_its_duration() -> None:
    text = "error_rate > 5% for 5m"
    breach = T0
    almost = judge(text, breach + 299, {"error_rate": sustained(breach, breach + 299)})
    assert almost.outcome == "pass"
    assert almost.holds is False
    assert almost.since == breach
    assert almost.evidence == "error_rate 7.10% > 5.00% for 4m 59s of 5m (since 12:00:00)"
    held = judge(text, breach + 300, {"error_rate": sustained(breach, breach + 300)})
    assert held.outcome == "fail"
    assert held.since == breach
    assert held.samples == 31
    assert held.evidence == "error_rate 7.10% > 5.00% for 5m (since 12:00:00, 31 samples)"


def test_sustained_without_a_formatter_says_how_long() -> None:
    observations = Observations(T0 + 300, {"error_rate": sustained(T0, T0 + 300)})
    verdict = evaluate(parse_criterion("error_rate > 5% for 5m"), observations, role="abort")
    assert verdict.evidence == "error_rate 7.10% > 5.00% for 5m (held 5m, 31 samples)"


def test_sustained_is_not_held_when_the_value_is_fine_now() -> None:
    samples = [*sustained(T0, T0 + 400)[:-1], Sample(T0 + 400, 1.0, "ok")]
    verdict = judge("error_rate > 5% for 5m", T0 + 400, {"error_rate": samples})
    assert (verdict.outcome, verdict.since) == ("pass", None)
    assert verdict.evidence == "error_rate 1.00%, not > 5.00% for 5m"


def test_sustained_gate_must_hold_throughout() -> None:
    text = "error_rate < 0.1% for 5m"
    fine = [Sample(T0 + i * STEP, 0.05, "ok") for i in range(31)]
    assert judge(text, T0 + 300, {"error_rate": fine}, role="gate").outcome == "pass"
    blip = [*fine[:10], Sample(T0 + 100, 0.3, "ok"), *fine[11:]]
    verdict = judge(text, T0 + 300, {"error_rate": blip}, role="gate")
    assert verdict.outcome == "fail"
    assert verdict.since == T0 + 110
    assert verdict.evidence == "error_rate 0.05% < 0.10% for 3m 10s of 5m (since 12:01:50)"


def test_a_stale_sample_in_the_window_is_no_data() -> None:
    samples = sustained(T0, T0 + 300)
    stale = samples.index(next(s for s in samples if s.at == T0 + 100))
    samples[stale] = Sample(T0 + 100, 7.1, "stale", detail="no new value for 15s")
    verdict = judge("error_rate > 5% for 5m", T0 + 300, {"error_rate": samples})
    assert verdict.outcome == "no_data"
    assert verdict.reason == "error_rate: stale (no new value for 15s)"


def test_a_source_outage_in_the_window_is_a_source_error() -> None:
    samples = sustained(T0, T0 + 300)
    samples[-5] = Sample(samples[-5].at, None, "source_down", detail="Prometheus: timeout after 5s")
    verdict = judge("error_rate > 5% for 5m", T0 + 300, {"error_rate": samples})
    assert verdict.outcome == "source_error"
    assert "Prometheus: timeout after 5s" in verdict.evidence


def test_a_gap_in_the_window_is_no_data_but_a_calm_sample_still_decides() -> None:
    samples = [s for s in sustained(T0, T0 + 300) if not T0 + 100 <= s.at <= T0 + 130]
    verdict = judge("error_rate > 5% for 5m", T0 + 300, {"error_rate": samples})
    assert verdict.outcome == "no_data"
    assert verdict.reason == "error_rate: no samples for 50s in the last 5m"
    # a calm sample inside the window: the condition did not hold for 5m, whatever is unknown
    calm = [Sample(T0 + 50, 1.0, "ok") if s.at == T0 + 50 else s for s in samples]
    assert judge("error_rate > 5% for 5m", T0 + 300, {"error_rate": calm}).outcome == "pass"


def test_sustained_needs_history_that_covers_its_duration() -> None:
    young = [Sample(T0 + 100 + i * STEP, 7.1, "ok") for i in range(21)]
    verdict = judge("error_rate > 5% for 5m", T0 + 300, {"error_rate": young})
    assert verdict.outcome == "no_data"
    assert verdict.reason == "error_rate: history covers 3m 20s of 5m"


def test_relative_sustained_pairs_each_sample_with_the_baseline_then() -> None:
    text = "error_rate > 1.5x baseline for 1m"
    canary = {"error_rate": [Sample(T0 + i * STEP, 2.0, "ok") for i in range(7)]}
    steady = {"error_rate": [Sample(T0 + i * STEP, 1.0, "ok") for i in range(7)]}
    verdict = judge(text, T0 + 60, canary, steady)
    assert verdict.outcome == "fail"
    assert verdict.evidence == "error_rate 2.00% > 1.50% (1.5x baseline 1.00%) for 1m (since 12:00:00, 7 samples)"
    risen = {"error_rate": [Sample(T0 + i * STEP, 2.0 if i == 3 else 1.0, "ok") for i in range(7)]}
    assert judge(text, T0 + 60, canary, risen).outcome == "pass"
    zero = {"error_rate": [Sample(T0 + i * STEP, 0.0 if i == 3 else 1.0, "ok") for i in range(7)]}
    assert judge(text, T0 + 60, canary, zero).reason == "baseline error_rate is 0: no ratio"


# --- evaluation: counts within a window ----------------------------------------------


def probes(errors: Sequence[int], *, end: float, total: int = 10) -> list[Sample]:
    """The service's slices ending at ``end`` (one per STEP, oldest first), ``total`` probes each."""
    first = end - (len(errors) - 1) * STEP
    return [Sample(first + i * STEP, None, None, total, e) for i, e in enumerate(errors)]


def test_health_failures_count_failed_probes_within_the_window() -> None:
    now = T0 + 600
    text = "health_failures > 3 within 5m"
    errors = [0] * 31
    errors[0] = 9  # the slice ending at now - 5m lies outside the window
    errors[10], errors[20], errors[30] = 1, 2, 1
    verdict = judge(text, now, {SERVICE: probes(errors, end=now)})
    assert verdict.outcome == "fail"
    assert verdict.value == 4
    assert verdict.probes == 300
    assert verdict.evidence == "health_failures 4 > 3 within 5m (4 of 300 probes failed)"
    errors[30] = 0
    calm = judge(text, now, {SERVICE: probes(errors, end=now)})
    assert calm.outcome == "pass"
    assert calm.evidence == "health_failures 3, not > 3 within 5m (3 of 300 probes failed)"


def test_health_failures_in_a_young_history() -> None:
    now, text = T0 + 600, "health_failures > 3 within 5m"
    # 2 minutes of history with 5 failures: the count can only grow, so it already holds
    assert judge(text, now, {SERVICE: probes([1] * 5 + [0] * 7, end=now)}).outcome == "fail"
    young = judge(text, now, {SERVICE: probes([1] + [0] * 11, end=now)})
    assert young.outcome == "no_data"
    assert young.reason == "health_failures: history covers 2m of 5m"
    idle = judge(text, now, {SERVICE: probes([0] * 30, end=now, total=0)})
    assert idle.reason == "health_failures: no probe outcomes in 5m"
    assert judge(text, now, {}).outcome == "no_data"


def test_counter_increase_counts_resets_and_is_never_negative() -> None:
    now, text = T0 + 600, "circuit_breaker_opens increase > 5 within 10m"
    values = [10.0, 12.0, 15.0, 2.0, 4.0]  # 2 + 3 + reset to 2 + 2 = 9
    series = [Sample(now - 600 + i * 150, v, "ok") for i, v in enumerate(values)]
    observations = Observations(now, {"circuit_breaker_opens": series}, step=150)
    verdict = evaluate(parse_criterion(text), observations, role="abort")
    assert verdict.outcome == "fail"
    assert verdict.value == 9
    assert verdict.evidence == "circuit_breaker_opens increase 9 > 5 within 10m"
    falling = [Sample(now - 600 + i * 150, v, "ok") for i, v in enumerate([10.0, 3.0, 3.0, 3.0, 3.0])]
    quiet = evaluate(parse_criterion(text), Observations(now, {"circuit_breaker_opens": falling}, step=150),
                     role="abort")
    assert (quiet.outcome, quiet.value) == ("pass", 3.0)  # a reset: the new count is the increase


def test_counter_increase_uses_the_value_before_the_window_as_its_base() -> None:
    now, text = T0 + 600, "circuit_breaker_opens increase > 5 within 5m"
    series = [Sample(T0 + i * STEP, 100.0 + max(0, i - 30), "ok") for i in range(61)]
    verdict = judge(text, now, {"circuit_breaker_opens": series})
    assert verdict.value == 30  # from 100 at now - 5m to 130 now
    assert verdict.outcome == "fail"


def test_counter_increase_with_its_source_down_is_a_source_error() -> None:
    now, text = T0 + 600, "circuit_breaker_opens increase > 5 within 5m"
    series = [Sample(T0 + i * STEP, 100.0 + i, "ok") for i in range(60)]
    series.append(Sample(now, None, "source_down", detail="Prometheus: connection refused"))
    verdict = judge(text, now, {"circuit_breaker_opens": series})
    assert verdict.outcome == "source_error"
    assert verdict.evidence == (
        "circuit_breaker_opens increase > 5 within 5m: circuit_breaker_opens: source down"
        " (Prometheus: connection refused)"
    )


def test_relative_counts_need_a_baseline_count_above_zero() -> None:
    now, text = T0 + 600, "health_failures > 2x baseline within 5m"
    canary = {SERVICE: probes([1] * 31, end=now)}
    assert judge(text, now, canary, {SERVICE: probes([0] * 31, end=now)}).reason == (
        "baseline health_failures is 0 within 5m: no ratio"
    )
    verdict = judge(text, now, canary, {SERVICE: probes([1] + [0] * 29 + [1], end=now)})
    assert (verdict.outcome, verdict.value, verdict.baseline, verdict.threshold) == ("fail", 30, 1, 2)


_STATES: list[SignalState | None] = ["ok", "ok", "ok", "warning", "critical", "stale", "no_data",
                                     "source_down", None]


@st.composite
def histories(draw: st.DrawFn) -> list[Sample]:
    """Up to 8 minutes of 10 s samples ending near T0 + 600, with gaps, odd states and resets."""
    samples = []
    for i in range(draw(st.integers(0, 48))):
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing slice
        value = draw(st.one_of(st.none(), st.floats(0, 20), st.sampled_from([0.0, 5.0, 7.1])))
        samples.append(Sample(T0 + 600 - 470 + i * STEP, value, draw(st.sampled_from(_STATES)),
                              draw(st.integers(0, 10)), draw(st.integers(0, 3))))
    return samples


@given(st.sampled_from([p[0] for p in PLANS]), histories(), histories(), st.integers(0, 20),
       st.floats(T0 + 500, T0 + 700))
def test_roles_are_mirror_images_and_unknowns_never_pass(
    text: str, canary: list[Sample], baseline: list[Sample], min_samples: int, now: float
) -> None:
    criterion = parse_criterion(text)
    signal = criterion.signal if criterion.signal != "health_failures" else SERVICE
    observations = Observations(now, {signal: canary, SERVICE: canary}, {signal: baseline, SERVICE: baseline})
    gate = evaluate(criterion, observations, role="gate", min_samples=min_samples)
    abort = evaluate(criterion, observations, role="abort", min_samples=min_samples)
    assert gate.holds == abort.holds
    mirrored = {"pass": "fail", "fail": "pass", "no_data": "no_data", "source_error": "source_error"}
    assert abort.outcome == mirrored[gate.outcome]
    assert (gate.holds is None) == (gate.outcome in ("no_data", "source_error"))
    assert (gate.reason == "") == (gate.holds is not None)
    assert gate.evidence
    current = [s for s in canary if s.at <= now][-1:]
    if current and current[0].state == "source_down" and signal != SERVICE and current[0].at >= now - 15:
        assert gate.outcome == "source_error"  # the current value's source is down: nothing else counts


# --- min_samples ----------------------------------------------------------------------


def test_fewer_probe_outcomes_than_min_samples_is_no_data() -> None:
    now = T0 + 600
    canary: dict[str, Sequence[Sample]] = {"p95": run([120.0], start=now),
                                           SERVICE: probes([0] * 6, end=now, total=2)}
    verdict = judge("p95 < 500ms", now, canary, role="gate", min_samples=20)
    assert verdict.outcome == "no_data"
    assert verdict.reason == "12 probe outcomes in 1m, fewer than min_samples (20)"
    assert judge("p95 < 500ms", now, canary, role="gate", min_samples=12).outcome == "pass"
    without = judge("p95 < 500ms", now, {"p95": run([120.0], start=now)}, role="gate", min_samples=1)
    assert without.outcome == "no_data"


# --- building observations from the history and the live row --------------------------


def test_observations_from_history_and_live_row() -> None:
    now = T0 + 25
    points = [(T0, 100.0, "ok"), (T0 + 10, 120.0, "ok"), (T0 + 20, 130.0, "warning")]
    series = points_series(points, step=STEP, now=now)  # type: ignore[arg-type]
    assert [s.at for s in series] == [T0 + 10, T0 + 20, now]
    live = SignalValue(name="p95", label="p95", value=640.0, unit="ms", source="probe", at=now - 1,
                       state="critical", detail="1m window")
    samples = [*series, live_sample(live, now)]
    verdict = judge("p95 < 500ms", now, {"p95": samples}, role="gate")
    assert (verdict.outcome, verdict.value) == ("fail", 640.0)  # the live value wins at now
    slices = [HistorySlice("checkout", 10, T0 + 20, 5, 1), HistorySlice("checkout", 10, T0 + 10, 6, 0)]
    assert service_series(slices, now=now) == (  # the slice still being written stands at now
        Sample(T0 + 20, None, None, 6, 0), Sample(now, None, None, 5, 1)
    )


def test_gates_read_the_value_the_live_row_showed_not_the_slices_own_quantile() -> None:
    def piece(start: float, shown: float, state: SignalState) -> HistorySlice:
        value = SignalValue(name="p95", label="p95", value=shown, unit="ms", source="probe",
                            at=start + 9, state=state, detail="1m window, 60 successful probes")
        data = judgement_data(as_of=start + 9, health="up", reason="HTTP 200", health_since=T0,
                              last_at=start + 9, last_health="up", last_health_since=T0,
                              observed_at=start + 9, signals=[value], timers={})
        return HistorySlice("checkout-canary", 10, start, 10, 0, None, {**data, "p95": 99.0})

    slices = [piece(T0 + 10, 640.0, "critical"), piece(T0, 480.0, "ok"), HistorySlice("checkout-canary", 10, T0 + 20)]
    series = signal_series(slices, "p95", now=T0 + 25)
    assert series == (
        Sample(T0 + 10, 480.0, "ok"),
        Sample(T0 + 20, 640.0, "critical"),
        Sample(T0 + 25, None, None),  # no judgement in the slice: no data
    )


# --- tracking ---------------------------------------------------------------------------


def verdict(outcome: Outcome, at: float = T0) -> Verdict:
    return Verdict(parse_criterion("p95 < 500ms"), "gate", outcome, at, None, None, None, None,
                   60.0, 0, None, None, "", "")


def fold(tracker: GateTracker, outcomes: str) -> GateTracker:
    names: dict[str, Outcome] = {"P": "pass", "F": "fail", "N": "no_data", "S": "source_error"}
    for i, letter in enumerate(outcomes):
        tracker = tracker.observe(verdict(names[letter], T0 + i))
    return tracker


def test_by_default_the_first_fail_trips_and_nothing_passes_early() -> None:
    tracker = fold(GateTracker(), "P" * 50)
    assert not tracker.passed_early
    assert not tracker.tripped
    tripped = fold(tracker, "F")
    assert tripped.tripped
    assert tripped.tripped_by == verdict("fail", T0)


def test_consecutive_failure_limit() -> None:
    assert not fold(GateTracker(failure_limit=3), "FFPFF").tripped
    assert fold(GateTracker(failure_limit=3), "FFPFFF").tripped
    assert fold(GateTracker(failure_limit=2), "FNSF").tripped  # unknowns neither recover nor fail
    assert not fold(GateTracker(failure_limit=2), "NNNNSSS").tripped


def test_total_failure_limit() -> None:
    assert fold(GateTracker(failure_limit=5, total_failure_limit=3), "FPFPF").tripped
    assert not fold(GateTracker(failure_limit=5, total_failure_limit=3), "FPFPP").tripped


def test_a_trip_stays_until_reset() -> None:
    tracker = fold(GateTracker(failure_limit=2), "FFPPP")
    assert tracker.tripped
    assert tracker.tripped_by is not None and tracker.tripped_by.at == T0 + 1
    fresh = tracker.reset()
    assert fresh == GateTracker(failure_limit=2)


def test_early_pass_needs_unbroken_passes() -> None:
    assert fold(GateTracker(successes_to_pass=3), "FPPP").passed_early
    assert not fold(GateTracker(successes_to_pass=3), "PPNP").passed_early
    assert not fold(GateTracker(successes_to_pass=3), "PPPF").passed_early


def test_limits_are_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GateTracker(failure_limit=0)


@given(st.text(alphabet="PFNS", max_size=40), st.integers(1, 5), st.integers(1, 8))
def test_tracker_matches_a_plain_count(outcomes: str, limit: int, total: int) -> None:
    tracker = fold(GateTracker(failure_limit=limit, total_failure_limit=total), outcomes)
    assert tracker.total_failures == outcomes.count("F")
    run_ = longest = 0
    for letter in outcomes:
        run_ = 0 if letter == "P" else run_ + (letter == "F")
        longest = max(longest, run_)
    assert tracker.tripped == (longest >= limit or outcomes.count("F") >= total)
    trailing = len(outcomes) - len(outcomes.rstrip("P"))
    assert tracker.consecutive_successes == trailing


# --- detection budget --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "options", "seconds", "described"),
    [
        ("error_rate > 5% for 5m", {}, 362, "≤ 6m 2s (1m window + 5m for + 1s probe + 1s evaluation)"),
        ("health_failures > 3 within 5m", {}, 302, "≤ 5m 2s (5m within + 1s probe + 1s evaluation)"),
        ("p95 > 1.5x baseline for 1m", {}, 122, "≤ 2m 2s (1m window + 1m for + 1s probe + 1s evaluation)"),
        ("p95 > 1.5x baseline", {"probe_interval": 5.0}, 66,
         "≤ 1m 6s (1m window + 5s probe + 1s evaluation)"),
        ("p95 > 15s", {"probe_interval": 5.0}, 66, "≤ 1m 6s (1m window + 5s probe + 1s evaluation)"),
        ("error_rate > 1.5x baseline", {"source_interval": 15.0}, 16,
         "≤ 16s (15s Prometheus + 1s evaluation)"),
        ("circuit_breaker_opens increase > 5 within 10m", {"source_interval": 15.0}, 616,
         "≤ 10m 16s (15s Prometheus + 10m within + 1s evaluation)"),
        ("cache_hit_rate > 70%", {"source": "health-json", "probe_interval": 5.0}, 6,
         "≤ 6s (5s probe + 1s evaluation)"),
        ("p95 < 500ms", {"failure_limit": 3, "grace": 10.0}, 74,
         "≤ 1m 14s (1m window + 1s probe + evaluations (3 × 1s) + 10s grace)"),
    ],
)
def test_detection_budget_of_the_plans(
    text: str, options: dict[str, object], seconds: float, described: str
) -> None:
    criterion = parse_criterion(text)
    kwargs: dict[str, object] = {"probe_interval": 1.0, "evaluation_interval": 1.0, **options}
    assert worst_case_detection(criterion, **kwargs) == seconds  # type: ignore[arg-type]
    assert describe_budget(criterion, **kwargs) == described  # type: ignore[arg-type]


def test_a_prometheus_budget_needs_its_interval() -> None:
    with pytest.raises(ValueError, match="source_interval"):
        worst_case_detection(parse_criterion("p95 < 500ms"), probe_interval=1, evaluation_interval=1,
                             source="prometheus")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(362, "6m 2s"), (60, "1m"), (1.5, "1.5s"), (0.5, "500ms"), (5400, "1h 30m"), (0, "0s"), (3601, "1h 1s")],
)
def test_span_text(seconds: float, text: str) -> None:
    assert span_text(seconds) == text


def test_evidence_never_mentions_local_time() -> None:
    verdict = judge("error_rate > 5% for 5m", T0 + 300, {"error_rate": sustained(T0, T0 + 300)})
    assert re.search(r"since 12:00:00", verdict.evidence)
