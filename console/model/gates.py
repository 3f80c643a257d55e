"""Gates: criteria judged over a signal's history, with four outcomes and their evidence.

Why four outcomes: a rollout tool that counts "no values found" or "Prometheus
down" as a failed check rolls back healthy canaries, and one that counts them
as a pass promotes blind. Here a criterion is **pass** or **fail** only when
the samples say so; otherwise it is **no_data** (no fresh value, a window the
history does not cover, too few probes, a zero or missing baseline) or
**source_error** (the value's source was down), and the rollout's policy
decides what those do — never a pass, never a rollback.

A *gate* criterion says what must hold (pass when it holds); an *abort*
criterion says what must not (fail, i.e. trigger, when it holds). Every
:class:`Verdict` carries its evidence in the console's words, so "why did it
roll back" is answered by the verdict itself.

Everything is pure: the engine builds :class:`Observations` from the signal
history (:func:`signal_series`, :func:`service_series`) and the live row
(:func:`live_sample`) and passes the time in. The grammar of criteria lives
in :mod:`console.model.gates_parse`; it is re-exported here.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

from console.model.gates_budget import describe_budget, detection_terms, worst_case_detection
from console.model.gates_parse import (
    HEALTH_FAILURES,
    OPERATORS,
    Criterion,
    CriterionError,
    Op,
    Unit,
    WindowKind,
    duration_text,
    number_text,
    parse_criterion,
    span_text,
    unknown_signals,
)
from console.model.gates_tracker import GateTracker
from console.model.history import SLICE_SECONDS, HistorySlice, read_record
from console.model.live import WINDOWS, SignalState, SignalValue
from console.model.text import plural
from console.model.units import format_value

__all__ = [
    "HEALTH_FAILURES",
    "OPERATORS",
    "SERVICE",
    "Criterion",
    "CriterionError",
    "GateTracker",
    "Observations",
    "Op",
    "Outcome",
    "Role",
    "Sample",
    "TimeText",
    "Unit",
    "Verdict",
    "WindowKind",
    "describe_budget",
    "detection_terms",
    "duration_text",
    "evaluate",
    "live_sample",
    "number_text",
    "parse_criterion",
    "points_series",
    "service_series",
    "signal_series",
    "span_text",
    "unknown_signals",
    "worst_case_detection",
]

Outcome = Literal["pass", "fail", "no_data", "source_error"]
Role = Literal["gate", "abort"]
TimeText = Callable[[float], str]
"""Clock seconds to text ("12:00:01"); the views pass one, the model never looks up local time."""

SERVICE = ""
"""The key of a service's own slices in :class:`Observations` (probe outcomes and failures)."""

GAP_STEPS = 1.5
"""Samples further apart than this many steps leave a gap: "held throughout" cannot be claimed across it."""


# --- observations ----------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One point of a signal: a history slice, or the current live value.

    Attributes:
        at: clock time the value was true: a slice's end (the live row's value
            at its last write; the current slice: now), or now for the live value.
        value: the value in the signal's unit; None when there was none.
        state: the signal's state then; None when not recorded.
        samples: probe outcomes behind it (a service's slice; for ``min_samples``).
        errors: failed probes among them (for ``health_failures``).
        detail: why there is no value ("Prometheus: timeout after 5s"), when known.
    """

    at: float
    value: float | None
    state: SignalState | None = None
    samples: int = 0
    errors: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Observations:
    """What a criterion is judged on, as of ``now``.

    Attributes:
        now: the evaluation's time.
        canary: signal name -> samples, oldest first; :data:`SERVICE` ("") -> the
            service's slices (``samples``/``errors``). Samples after ``now`` are ignored,
            so a backtest can pass the whole history and replay any ``now``.
        baseline: the same for the baseline service (empty when there is none).
        step: seconds between samples: the history's slice, or the probe interval
            when that is longer (a slice without a probe is then not written).
        signal_window: the window behind a current value (the 1m window); the
            ``min_samples`` window of criteria without ``for`` or ``within``.
    """

    now: float
    canary: Mapping[str, Sequence[Sample]]
    baseline: Mapping[str, Sequence[Sample]] = field(default_factory=dict)
    step: float = float(SLICE_SECONDS)
    signal_window: float = WINDOWS["1m"]

    def __post_init__(self) -> None:
        if not self.step > 0 or not self.signal_window > 0:
            raise ValueError("step and signal_window are more than 0")


def points_series(
    points: Iterable[tuple[float, float | None, SignalState | None]], *, step: float, now: float
) -> tuple[Sample, ...]:
    """Samples from :func:`~console.model.history.signal_points` rows ``(slice start, value, state)``.

    A slice's value is the live row's at the slice's last write, so it is
    placed at the slice's end (``start + step``), or at ``now`` for the slice
    still being written.
    """
    return tuple(Sample(min(start + step, now), value, state) for start, value, state in points)


def signal_series(slices: Sequence[HistorySlice], signal: str, *, now: float) -> tuple[Sample, ...]:
    """Samples of ``signal`` as the live row showed it at each slice's last write.

    This is what gates should read: for p50/p95/p99 it is the 1m-window value
    the thresholds judged (:func:`~console.model.history.signal_points` plots
    each slice's own quantile instead). A slice without a readable judgement of
    ``signal`` is a sample without a value (no data), never a raise.
    """
    out: list[Sample] = []
    for piece in sorted(slices, key=lambda piece: piece.start):
        record, _ = read_record(piece)
        entry = None if record is None else record.signals.get(signal)
        at = min(piece.start + piece.resolution, now)
        if entry is None:
            out.append(Sample(at, None, None))
        else:
            out.append(Sample(at, entry.value, entry.state, detail=entry.detail))
    return tuple(out)


def service_series(slices: Sequence[HistorySlice], *, now: float) -> tuple[Sample, ...]:
    """The service's probe outcomes per slice (``samples``, ``errors``), placed like :func:`points_series`."""
    ordered = sorted(slices, key=lambda piece: piece.start)
    return tuple(
        Sample(min(piece.start + piece.resolution, now), None, None, piece.samples, piece.errors)
        for piece in ordered
    )


def live_sample(value: SignalValue, now: float) -> Sample:
    """The current value of a live row as the newest sample."""
    return Sample(now, value.value, value.state, detail=value.detail)


# --- verdicts --------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One evaluation of one criterion, with its evidence.

    Attributes:
        criterion: what was judged.
        role: "gate" (must hold) or "abort" (must not hold).
        outcome: pass, fail, no_data or source_error.
        at: the evaluation's time.
        holds: whether the criterion's condition held; None when it could not be told.
        value: the canary's value (the current value, or the count / increase).
        baseline: the baseline's value, for "x baseline" criteria.
        threshold: the level compared with: the criterion's, or factor × baseline.
        window: seconds looked at: ``for``/``within`` D, else the signal window.
        samples: samples the verdict read (for ``for``: those since the condition has held).
        probes: probe outcomes in the window, when the service's slices were given.
        since: since when the condition has held (``for``): the oldest sample of the
            run it read, which stops at the first one at or before now - D; None
            when the condition does not hold now.
        reason: why no_data or source_error; "" otherwise.
        evidence: one line for people: "error_rate 7.10% > 5.00% for 5m (since 12:00:01, 31 samples)".
    """

    criterion: Criterion
    role: Role
    outcome: Outcome
    at: float
    holds: bool | None
    value: float | None
    baseline: float | None
    threshold: float | None
    window: float
    samples: int
    probes: int | None
    since: float | None
    reason: str
    evidence: str


@dataclass
class _Unknown:
    """Why a value cannot be judged."""

    kind: Literal["no_data", "source_error"]
    reason: str


@dataclass
class _Finding:
    holds: bool | None
    unknown: _Unknown | None = None
    value: float | None = None
    baseline: float | None = None
    level: float | None = None
    since: float | None = None
    samples: int = 0
    failed: int | None = None
    total: int | None = None


def evaluate(
    criterion: Criterion,
    observations: Observations,
    *,
    role: Role,
    min_samples: int = 0,
    unit: str | None = None,
    time_text: TimeText | None = None,
) -> Verdict:
    """Judge ``criterion`` as of ``observations.now``.

    How the condition is told (each step in order; the first that decides wins):

    1. The newest sample is the current value: source_down -> source_error;
       stale, no_data, no value, or older than 1.5 steps -> no_data. A relative
       criterion needs the same of the baseline's sample at that time, and a
       baseline that is 0 is no_data (never ×∞).
    2. ``SIGNAL OP value``: the current value against the level.
       ``… for D``: any judged sample in the last D where the comparison is
       false -> does not hold; otherwise walking back from now while it holds:
       an unjudgeable sample (stale, no data; source down -> source_error) or a
       gap -> unknown; once the run reaches back D (``now - since >= D``) ->
       holds; history that ends first -> no_data (not covered).
       ``… within D``: slices ending after now - D are counted (the window
       rounded out to whole slices); the oldest must start by now - D, with no
       gaps, every sample judged. When not, a ">"/">=" count already past its
       level still holds (the count can only grow); else no_data.
    3. ``min_samples``: fewer probe outcomes than that in the window (D for
       ``for``/``within``, else the signal window) -> no_data.

    Then: a gate passes when the condition holds and fails when not; an abort
    criterion fails (triggers) when it holds and passes when not.

    Args:
        unit: the signal's unit for the evidence, when the criterion does not say it.
        time_text: formats clock times in the evidence; without it, "since" reads as an age.
    """
    now = observations.now
    window = criterion.seconds if criterion.window else observations.signal_window
    if criterion.counts:
        found = _count(criterion, observations)
    elif criterion.window == "for":
        found = _sustained(criterion, observations)
    else:
        found = _level(criterion, observations)
    probes = _probes(observations, window)
    if found.unknown is None and min_samples > 0 and (probes or 0) < min_samples:
        counted = plural(probes or 0, "probe outcome")
        found.unknown = _Unknown(
            "no_data", f"{counted} in {span_text(window)}, fewer than min_samples ({min_samples})"
        )
    if found.unknown is not None:
        found.holds = None
        outcome: Outcome = found.unknown.kind
    elif role == "gate":
        outcome = "pass" if found.holds else "fail"
    else:
        outcome = "fail" if found.holds else "pass"
    shown_unit = unit if unit is not None else criterion.value_unit
    return Verdict(
        criterion=criterion,
        role=role,
        outcome=outcome,
        at=now,
        holds=found.holds,
        value=found.value,
        baseline=found.baseline,
        threshold=found.level,
        window=window,
        samples=found.samples,
        probes=found.total if found.total is not None else probes,
        since=found.since,
        reason="" if found.unknown is None else found.unknown.reason,
        evidence=_evidence(criterion, found, now, shown_unit, time_text),
    )


def _series(
    observed: Mapping[str, Sequence[Sample]], name: str, now: float, since: float = -math.inf,
    *, before: bool = False,
) -> list[Sample]:
    """The samples with ``since <= at <= now`` (and, with ``before``, the latest one before ``since``).

    The given samples are oldest first; of two at the same time the later given wins.
    """
    given = observed.get(name, ())
    low = bisect_left(given, since, key=_at)
    high = bisect_right(given, now, key=_at)
    out: list[Sample] = []
    for sample in given[max(0, low - 1) if before else low:high]:
        if out and out[-1].at == sample.at:
            out[-1] = sample
        else:
            out.append(sample)
    return out


def _at(sample: Sample) -> float:
    return sample.at


def _reading(sample: Sample, what: str) -> float | _Unknown:
    if sample.state == "source_down":
        return _Unknown("source_error", f"{what}: source down{_detail(sample)}")
    if sample.state in ("stale", "no_data") or sample.value is None or not math.isfinite(sample.value):
        why = "stale" if sample.state == "stale" else "no data"
        return _Unknown("no_data", f"{what}: {why}{_detail(sample)}")
    return sample.value


def _detail(sample: Sample) -> str:
    return f" ({sample.detail})" if sample.detail else ""


def _gap(observations: Observations) -> float:
    return GAP_STEPS * observations.step


def _current(series: list[Sample], what: str, observations: Observations) -> Sample | _Unknown:
    if not series:
        return _Unknown("no_data", f"{what}: no values")
    newest = series[-1]
    if observations.now - newest.at > _gap(observations):
        return _Unknown("no_data", f"{what}: no value for {span_text(observations.now - newest.at)}")
    return newest


def _level_at(
    criterion: Criterion, observations: Observations, baseline: list[Sample], at: float
) -> tuple[float, float | None] | _Unknown:
    """The level to compare with at ``at``: the threshold, or factor × the baseline then."""
    if criterion.threshold is not None:
        return criterion.threshold, None
    factor = criterion.factor
    assert factor is not None
    what = f"baseline {criterion.signal}"
    index = bisect_right(baseline, at, key=_at) - 1
    if index < 0 or at - baseline[index].at > _gap(observations):
        known = bool(observations.baseline.get(criterion.signal))
        return _Unknown("no_data", f"{what}: no recent value" if known else f"{what}: no values")
    reading = _reading(baseline[index], what)
    if isinstance(reading, _Unknown):
        return reading
    if reading == 0:
        return _Unknown("no_data", f"{what} is 0: no ratio")
    return factor * reading, reading


def _judge(
    criterion: Criterion, observations: Observations, baseline: list[Sample], sample: Sample
) -> tuple[bool, float, float, float | None] | _Unknown:
    """(holds, value, level, baseline value) at one sample."""
    reading = _reading(sample, criterion.signal)
    if isinstance(reading, _Unknown):
        return reading
    level = _level_at(criterion, observations, baseline, sample.at)
    if isinstance(level, _Unknown):
        return level
    return criterion.compare(reading, level[0]), reading, level[0], level[1]


def _level(criterion: Criterion, observations: Observations) -> _Finding:
    now, gap = observations.now, _gap(observations)
    series = _series(observations.canary, criterion.signal, now, now - gap, before=True)
    current = _current(series, criterion.signal, observations)
    if isinstance(current, _Unknown):
        return _Finding(None, current)
    baseline = _series(observations.baseline, criterion.signal, now, now - 2 * gap)
    judged = _judge(criterion, observations, baseline, current)
    if isinstance(judged, _Unknown):
        return _Finding(None, judged, value=current.value)
    holds, value, level, base = judged
    return _Finding(holds, value=value, baseline=base, level=level, samples=1)


def _sustained(criterion: Criterion, observations: Observations) -> _Finding:
    now, need, gap = observations.now, criterion.seconds, _gap(observations)
    # The walk back stops at the first sample at or past now - need, or sooner at a gap.
    series = _series(observations.canary, criterion.signal, now, now - need - gap, before=True)
    current = _current(series, criterion.signal, observations)
    if isinstance(current, _Unknown):
        return _Finding(None, current)
    baseline = _series(observations.baseline, criterion.signal, now, now - need - 3 * gap)
    first = _judge(criterion, observations, baseline, current)
    if isinstance(first, _Unknown):
        return _Finding(None, first, value=current.value)
    _, value, level, base = first
    found = _Finding(None, value=value, baseline=base, level=level)
    judged = [_judge(criterion, observations, baseline, s) for s in series]
    broken = any(not isinstance(j, _Unknown) and not j[0]
                 for s, j in zip(series, judged, strict=True) if s.at >= now - need)
    newer_at = now
    for sample, verdict in zip(reversed(series), reversed(judged), strict=True):
        if newer_at - sample.at > gap:
            if broken:
                break
            found.unknown = _Unknown("no_data", f"{criterion.signal}: no samples for "
                                     f"{span_text(newer_at - sample.at)} in the last {span_text(need)}")
            return found
        if isinstance(verdict, _Unknown):
            if not broken:
                found.unknown = verdict
                return found
            break
        if not verdict[0]:
            break
        found.since, found.samples = sample.at, found.samples + 1
        if now - sample.at >= need:
            found.holds = True
            return found
        newer_at = sample.at
    else:
        if not broken:
            covered = now - series[0].at
            found.unknown = _Unknown("no_data", f"{criterion.signal}: history covers "
                                     f"{span_text(round(covered))} of {span_text(need)}")
            return found
    found.holds = False
    return found


def _count(criterion: Criterion, observations: Observations) -> _Finding:
    """health_failures or a counter's increase within the window, for the canary and the baseline."""
    mine = _window_count(criterion, observations, observations.canary, criterion.signal)
    if criterion.factor is None:
        assert criterion.threshold is not None
        if mine.unknown is not None and not (
            mine.partial and criterion.op in (">", ">=")
            and mine.value is not None and criterion.compare(mine.value, criterion.threshold)
        ):
            return _Finding(None, mine.unknown, value=mine.value, samples=mine.samples,
                            failed=mine.failed, total=mine.total)
        assert mine.value is not None
        holds = criterion.compare(mine.value, criterion.threshold)
        return _Finding(holds, value=mine.value, level=criterion.threshold, samples=mine.samples,
                        failed=mine.failed, total=mine.total)
    theirs = _window_count(criterion, observations, observations.baseline, f"baseline {criterion.signal}")
    found = _Finding(None, value=mine.value, baseline=theirs.value, samples=mine.samples,
                     failed=mine.failed, total=mine.total)
    found.unknown = mine.unknown or theirs.unknown
    if found.unknown is None and theirs.value == 0:
        found.unknown = _Unknown("no_data", f"baseline {criterion.signal} is 0 within "
                                 f"{span_text(criterion.seconds)}: no ratio")
    if found.unknown is None:
        assert mine.value is not None
        assert theirs.value is not None
        found.level = criterion.factor * theirs.value
        found.holds = criterion.compare(mine.value, found.level)
    return found


@dataclass
class _WindowCount:
    value: float | None = None
    unknown: _Unknown | None = None
    partial: bool = False
    """The unknown is about the past only: ``value`` is a lower bound."""
    samples: int = 0
    failed: int | None = None
    total: int | None = None


def _window_count(
    criterion: Criterion, observations: Observations, observed: Mapping[str, Sequence[Sample]], what: str
) -> _WindowCount:
    now, need, gap = observations.now, criterion.seconds, _gap(observations)
    failures = criterion.signal == HEALTH_FAILURES
    if failures:  # slices that end within the window: the window rounded out to whole slices
        series = [s for s in _series(observed, SERVICE, now, now - need) if s.at > now - need]
    else:  # the latest value before the window's start is the base of the increase
        series = _series(observed, criterion.signal, now, now - need, before=True)
    current = _current(series, what, observations)
    if isinstance(current, _Unknown):
        return _WindowCount(unknown=current)
    if not failures and isinstance(now_reading := _reading(current, what), _Unknown):
        return _WindowCount(unknown=now_reading)
    out = _WindowCount(samples=len(series))
    start = series[0].at - observations.step  # a sample stands for the slice it ends
    if start > now - need:
        out.unknown = _Unknown("no_data", f"{what}: history covers {span_text(round(now - start))} "
                               f"of {span_text(need)}")
    for older, newer in pairwise(series):
        if newer.at - older.at > gap and out.unknown is None:
            out.unknown = _Unknown("no_data", f"{what}: no samples for {span_text(newer.at - older.at)}")
    if failures:
        out.failed = sum(s.errors for s in series)
        out.total = sum(s.samples for s in series)
        out.value = float(out.failed)
        if out.total == 0 and out.unknown is None:
            out.unknown = _Unknown("no_data", f"{what}: no probe outcomes in {span_text(need)}")
        out.partial = out.unknown is not None
        return out
    increase, last = 0.0, None
    for sample in series:
        reading = _reading(sample, what)
        if isinstance(reading, _Unknown):
            out.unknown = out.unknown or reading
            continue
        if last is not None:
            increase += reading - last if reading >= last else reading  # a reset starts from 0
        last = reading
    out.value = increase
    out.partial = out.unknown is not None
    return out


def _probes(observations: Observations, window: float) -> int | None:
    """Probe outcomes in the service's slices ending within ``window`` of now; None without slices."""
    now = observations.now
    if not observations.canary.get(SERVICE):
        return None
    return sum(s.samples for s in _series(observations.canary, SERVICE, now, now - window) if s.at > now - window)


# --- evidence ---------------------------------------------------------------------


def _evidence(
    criterion: Criterion, found: _Finding, now: float, unit: str, time_text: TimeText | None
) -> str:
    if found.unknown is not None:
        return f"{criterion}: {found.unknown.reason}"
    subject = f"{criterion.signal} increase" if criterion.increase else criterion.signal
    value = format_value(found.value, unit)
    level = format_value(found.level, unit)
    relative = ""
    if criterion.factor is not None:
        relative = f" ({number_text(criterion.factor)}x baseline {format_value(found.baseline, unit)})"
    op = criterion.op
    if criterion.counts:
        counted = ""
        if found.failed is not None and found.total is not None:
            counted = f" ({found.failed:,} of {plural(found.total, 'probe')} failed)"
        relation = f"{op}" if found.holds else f"not {op}"
        joiner = " " if found.holds else ", "
        return f"{subject} {value}{joiner}{relation} {level}{relative} within {span_text(criterion.seconds)}{counted}"
    if criterion.window == "for" and found.since is not None:
        since = f"since {time_text(found.since)}" if time_text else f"held {span_text(round(now - found.since))}"
        duration = span_text(criterion.seconds)
        if found.holds:
            return (f"{subject} {value} {op} {level}{relative} for {duration} "
                    f"({since}, {plural(found.samples, 'sample')})")
        return f"{subject} {value} {op} {level}{relative} for {span_text(now - found.since)} of {duration} ({since})"
    if found.holds:
        return f"{subject} {value} {op} {level}{relative}"
    suffix = f" for {span_text(criterion.seconds)}" if criterion.window == "for" else ""
    return f"{subject} {value}, not {op} {level}{relative}{suffix}"
