"""Backtest: a rollout's gate and abort criteria replayed over the recorded signal history.

Why it exists: a release captain should see what a rule would have done before
trusting it with a canary. "error_rate > 5% for 5m" over yesterday's history —
would it have rolled back, when, on what evidence, and how long was it blind
(no data)? No rollout tool offers this; Conn has the history the leader
records, so it can.

The replay is the leader's own judgement (:func:`~console.model.gates.evaluate`)
at every step from ``since`` to ``until``, over one read of the history:
samples after a step's ``now`` are ignored by the evaluation, so the same
series serve every step. What each outcome would have done follows the
rollout's policies as the leader's duty applies them:

- pass: nothing;
- fail: the rule's ``on_fail`` — "hold" (no advance), "notify" (recorded
  only), or "rollback": once ``failure_limit`` evaluations in a row have
  failed and the failure has outlasted the ``grace`` countdown (a failing
  run counts from its first failing step to its last; the leader evaluates
  every ``evaluation_interval`` within it);
- no_data / source_error: a gate rule's ``on_no_data`` / ``on_source_error``
  ("hold" or "notify"); an abort rule does nothing then — never a rollback,
  never a pass.

Everything is pure: the CLI reads the slices and prints :func:`report_lines`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from console.model.gates import (
    SERVICE,
    Criterion,
    Observations,
    Outcome,
    Role,
    Sample,
    TimeText,
    evaluate,
    parse_criterion,
    service_series,
    signal_series,
    span_text,
)
from console.model.history import SLICE_SECONDS, HistorySlice
from console.model.rollout_config import RolloutConfig
from console.model.text import plural

__all__ = [
    "OUTCOME_WORDS", "Action", "BacktestReport", "Change", "Held", "Rule", "RuleReport", "Span",
    "Trigger", "backtest", "report_lines", "rules_of",
]

Action = Literal["none", "hold", "rollback", "notify"]
"""What an outcome would have made the rollout do."""

OUTCOME_WORDS: dict[Outcome, str] = {
    "pass": "pass", "fail": "fail", "no_data": "no data", "source_error": "source error",
}
_ACTION_WORDS: dict[Action, str] = {
    "none": "", "hold": "held", "rollback": "rolled back", "notify": "notified",
}


@dataclass(frozen=True)
class Rule:
    """One criterion to replay, with what each of its outcomes would have done.

    Attributes:
        key: where it is configured ("abort.criteria[0]", "stages[1].gate[0]").
        text: the criterion as written.
        criterion: it, parsed.
        role: "gate" (must hold) or "abort" (must not hold).
        on_fail: what a fail does.
        on_no_data: what no data does ("none" for abort rules).
        on_source_error: what a source error does ("none" for abort rules).
        min_samples: fewer probe outcomes in the window is no data (gate rules).
    """

    key: str
    text: str
    criterion: Criterion
    role: Role
    on_fail: Literal["hold", "rollback", "notify"]
    on_no_data: Literal["hold", "notify", "none"] = "none"
    on_source_error: Literal["hold", "notify", "none"] = "none"
    min_samples: int = 0

    def action(self, outcome: Outcome) -> Action:
        """What ``outcome`` would have made the rollout do."""
        if outcome == "fail":
            return self.on_fail
        if outcome == "no_data":
            return self.on_no_data
        if outcome == "source_error":
            return self.on_source_error
        return "none"


def rules_of(
    rollout: RolloutConfig, keyed: Sequence[tuple[str, str]], units: Mapping[str, str]
) -> list[Rule]:
    """The rollout's rules, once each, from its criteria and their config keys.

    Args:
        keyed: (key, text) pairs as ``console.config.criteria_of`` gives them;
            keys under ``abort.`` are abort rules, every other one a gate rule
            (a stage's gate is replayed over the whole span, like the rollout's).
        units: the canary's configured signal units, for the parser.

    Raises:
        CriterionError: a criterion that does not parse (`conn check` says where).
    """
    rules: list[Rule] = []
    seen: set[tuple[str, str]] = set()
    gate = rollout.gate
    for key, text in keyed:
        role: Role = "abort" if key.startswith("abort.") else "gate"
        if (role, text) in seen:
            continue
        seen.add((role, text))
        criterion = parse_criterion(text, units=units)
        if role == "abort":
            rules.append(Rule(key, text, criterion, role, rollout.abort.on_fail))
        else:
            rules.append(Rule(key, text, criterion, role, gate.on_fail, gate.on_no_data,
                              gate.on_source_error, gate.min_samples))
    return rules


# --- the report ----------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """Consecutive evaluations with one outcome: from the first to the next that differs."""

    outcome: Outcome
    start: float
    last: float
    """The last evaluation in the span: the last time the outcome is known to hold."""
    end: float
    """The next evaluation with another outcome, or the end of the backtest."""
    evaluations: int
    evidence: str
    """The first evaluation's."""

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Held:
    """A time when some rule's outcome would have held the rollout (no advance)."""

    start: float
    end: float
    why: str
    """The rules holding it at ``start``, with their evidence."""

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Change:
    """One kind of transition (pass → fail, …) and the first time it happened."""

    before: Outcome | None
    """None: the first evaluation of the backtest."""
    after: Outcome
    at: float
    count: int
    action: Action
    """What the new outcome would have done."""
    evidence: str


@dataclass(frozen=True)
class Trigger:
    """When a rule's action would have started, and on what evidence."""

    at: float
    """The hold or notice: the first evaluation of the run; a rollback: the end of
    the failure limit and the grace countdown."""
    since: float
    """The first evaluation of the run that led to it."""
    action: Action
    evidence: str


@dataclass(frozen=True)
class RuleReport:
    """What one rule would have done over the backtest."""

    rule: Rule
    evaluations: int
    counts: Mapping[Outcome, int]
    spans: tuple[Span, ...]
    """Every run of one outcome, in order (passes too)."""
    changes: tuple[Change, ...]
    """Each kind of transition once, at its first occurrence, in order."""
    triggers: tuple[Trigger, ...]
    """Every time its action would have started (one per run that leads to one)."""

    @property
    def first_trigger(self) -> Trigger | None:
        return self.triggers[0] if self.triggers else None

    def spans_of(self, outcome: Outcome) -> tuple[Span, ...]:
        return tuple(span for span in self.spans if span.outcome == outcome)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.rule.key, "criterion": self.rule.text, "role": self.rule.role,
            "policy": {"fail": self.rule.on_fail, "no_data": self.rule.on_no_data,
                       "source_error": self.rule.on_source_error},
            "evaluations": self.evaluations, "counts": dict(self.counts),
            "spans": [
                {"outcome": s.outcome, "start": s.start, "end": s.end,
                 "evaluations": s.evaluations, "evidence": s.evidence}
                for s in self.spans if s.outcome != "pass"
            ],
            "changes": [
                {"before": c.before, "after": c.after, "first_at": c.at, "count": c.count,
                 "action": c.action, "evidence": c.evidence}
                for c in self.changes
            ],
            "triggers": [
                {"at": t.at, "since": t.since, "action": t.action, "evidence": t.evidence}
                for t in self.triggers
            ],
        }


@dataclass(frozen=True)
class BacktestReport:
    """What a rollout's rules would have done between ``since`` and ``until``."""

    rollout: str
    canary: str
    baseline: str | None
    since: float
    until: float
    step: float
    """Seconds between evaluations (the history's resolution)."""
    slices: int
    """History slices read (canary and baseline)."""
    times: tuple[float, ...]
    """When each evaluation was made."""
    rules: tuple[RuleReport, ...]
    held: tuple[Held, ...] = field(default=())
    """When a "hold" policy would have kept the rollout from advancing (merged across rules)."""

    @property
    def first_rollback(self) -> tuple[RuleReport, Trigger] | None:
        found = [(r, t) for r in self.rules for t in r.triggers if t.action == "rollback"]
        return min(found, key=lambda pair: pair[1].at) if found else None

    @property
    def held_seconds(self) -> float:
        return sum(span.seconds for span in self.held)

    def as_json(self) -> dict[str, Any]:
        first = self.first_rollback
        return {
            "rollout": self.rollout, "canary": self.canary, "baseline": self.baseline,
            "since": self.since, "until": self.until, "step": self.step,
            "evaluations": len(self.times), "slices": self.slices,
            "first_rollback": None if first is None else {
                "criterion": first[0].rule.text, "key": first[0].rule.key, "at": first[1].at,
                "since": first[1].since, "evidence": first[1].evidence,
            },
            "held": [{"start": s.start, "end": s.end} for s in self.held],
            "held_seconds": self.held_seconds,
            "criteria": [r.as_json() for r in self.rules],
        }


# --- the replay ------------------------------------------------------------------------


def backtest(
    rollout: str,
    rules: Sequence[Rule],
    slices: Sequence[HistorySlice],
    *,
    canary: str,
    baseline: str | None,
    since: float,
    until: float,
    probe_interval: float,
    resolution: int = SLICE_SECONDS,
    failure_limit: int = 1,
    evaluation_interval: float = 1.0,
    grace: float = 0.0,
    time_text: TimeText | None = None,
    extra: Mapping[str, Mapping[str, Sequence[Sample]]] | None = None,
) -> BacktestReport:
    """Replay ``rules`` over ``slices`` at every ``resolution`` seconds from ``since`` to ``until``.

    Args:
        slices: the canary's and the baseline's history at ``resolution`` (others are ignored).
        probe_interval: the canary's; with the resolution it sets the samples' spacing.
        failure_limit: consecutive failing evaluations before a rollback starts.
        evaluation_interval: seconds between the leader's evaluations.
        grace: the rollout's countdown before an automatic rollback.
        time_text: formats clock times in the evidence.
        extra: service -> signal -> samples from elsewhere (Prometheus range queries
            for PromQL-fed signals), used where the recorded history has no value.

    Raises:
        ValueError: ``until`` is before ``since``, or the resolution is not positive.
    """
    if until < since or resolution <= 0:
        raise ValueError("a backtest runs forward over a positive resolution")
    signals = {rule.criterion.signal for rule in rules}

    def observed(service: str) -> dict[str, Sequence[Sample]]:
        mine = [s for s in slices if s.service == service and s.resolution == resolution]
        out: dict[str, Sequence[Sample]] = {SERVICE: service_series(mine, now=until)}
        for signal in signals:
            recorded = signal_series(mine, signal, now=until)
            more = (extra or {}).get(service, {}).get(signal, ())
            out[signal] = _merged(recorded, more) if more else recorded
        return out

    canary_samples = observed(canary)
    baseline_samples = observed(baseline) if baseline else {}
    used = sum(1 for s in slices if s.resolution == resolution and s.service in (canary, baseline))
    times = _times(since, until, resolution)
    step = max(float(resolution), probe_interval)
    outcomes: list[list[tuple[Outcome, str]]] = [[] for _ in rules]
    for now in times:
        observations = Observations(now=now, canary=canary_samples, baseline=baseline_samples, step=step)
        for index, rule in enumerate(rules):
            verdict = evaluate(rule.criterion, observations, role=rule.role,
                               min_samples=rule.min_samples, time_text=time_text)
            outcomes[index].append((verdict.outcome, verdict.evidence))
    reports = tuple(
        _rule_report(rule, times, judged, until, failure_limit * evaluation_interval
                     - evaluation_interval, grace)
        for rule, judged in zip(rules, outcomes, strict=True)
    )
    return BacktestReport(
        rollout=rollout, canary=canary, baseline=baseline, since=since, until=until,
        step=float(resolution), slices=used, times=times, rules=reports,
        held=_held(rules, times, outcomes, until),
    )


def _merged(recorded: Sequence[Sample], more: Sequence[Sample]) -> tuple[Sample, ...]:
    """The recorded samples, plus the others outside the span the recorded values cover."""
    known = [s.at for s in recorded if s.value is not None]
    if not known:
        return tuple(sorted(more, key=lambda s: s.at))
    first, last = min(known), max(known)
    kept = [s for s in recorded if s.value is not None or not first <= s.at <= last]
    outside = [s for s in more if s.at < first or s.at > last]
    return tuple(sorted([*kept, *outside], key=lambda s: s.at))


def _times(since: float, until: float, resolution: int) -> tuple[float, ...]:
    """Every multiple of ``resolution`` from ``since`` to ``until``, and ``until`` itself."""
    first = math.ceil(since / resolution) * resolution
    count = max(0, math.floor((until - first) / resolution) + 1)
    times = [float(first + i * resolution) for i in range(count)]
    if not times or times[-1] < until:
        times.append(until)
    return tuple(times)


def _rule_report(
    rule: Rule, times: Sequence[float], judged: Sequence[tuple[Outcome, str]], until: float,
    limit_wait: float, grace: float,
) -> RuleReport:
    spans: list[Span] = []
    for index, (at, (outcome, evidence)) in enumerate(zip(times, judged, strict=True)):
        end = times[index + 1] if index + 1 < len(times) else until
        if spans and spans[-1].outcome == outcome:
            last = spans[-1]
            spans[-1] = Span(outcome, last.start, at, end, last.evaluations + 1, last.evidence)
        else:
            spans.append(Span(outcome, at, at, end, 1, evidence))
    counts: dict[Outcome, int] = dict.fromkeys(OUTCOME_WORDS, 0)
    for outcome, _ in judged:
        counts[outcome] += 1
    changes: dict[tuple[Outcome | None, Outcome], Change] = {}
    before: Outcome | None = None
    for span in spans:
        kind = (before, span.outcome)
        seen = changes.get(kind)
        if seen is None:
            changes[kind] = Change(before, span.outcome, span.start, 1, rule.action(span.outcome),
                                   span.evidence)
        else:
            changes[kind] = Change(seen.before, seen.after, seen.at, seen.count + 1, seen.action,
                                   seen.evidence)
        before = span.outcome
    triggers: list[Trigger] = []
    for span in spans:
        action = rule.action(span.outcome)
        if action == "rollback":
            # The failure limit, then the countdown: the failure must outlast both.
            at = span.start + limit_wait + grace
            if at <= span.last:
                triggers.append(Trigger(at, span.start, action, span.evidence))
        elif action != "none":
            triggers.append(Trigger(span.start, span.start, action, span.evidence))
    return RuleReport(rule, len(times), counts, tuple(spans),
                      tuple(sorted(changes.values(), key=lambda c: c.at)), tuple(triggers))


def _held(
    rules: Sequence[Rule], times: Sequence[float], outcomes: Sequence[Sequence[tuple[Outcome, str]]],
    until: float,
) -> tuple[Held, ...]:
    """When any rule's outcome would have held the rollout, merged into spans."""
    held: list[Held] = []
    for index, at in enumerate(times):
        reasons = [
            _said(rule, judged[index][1]) for rule, judged in zip(rules, outcomes, strict=True)
            if rule.action(judged[index][0]) == "hold"
        ]
        if not reasons:
            continue
        end = times[index + 1] if index + 1 < len(times) else until
        if held and held[-1].end == at:
            held[-1] = Held(held[-1].start, end, held[-1].why)
        else:
            held.append(Held(at, end, "; ".join(reasons)))
    return tuple(held)


def _span(seconds: float) -> str:
    """A duration in the report: whole seconds (the replay's own steps are 10 s or more)."""
    return span_text(round(seconds))


def _said(rule: Rule, evidence: str) -> str:
    """The evidence with its criterion in front, once (no-data evidence already starts with it)."""
    return evidence if evidence.startswith(f"{rule.criterion}: ") else f"{rule.text}: {evidence}"


def _own(rule: Rule, evidence: str) -> str:
    """The evidence without its criterion in front, under a line that names it."""
    return evidence.removeprefix(f"{rule.criterion}: ")


# --- text ------------------------------------------------------------------------------


def report_lines(report: BacktestReport, time_text: TimeText, *, changes: int = 6) -> list[str]:
    """The report as people read it: the verdict first, then each rule's summary and transitions.

    Args:
        time_text: formats clock times ("2026-01-01 12:00:00Z").
        changes: at most this many kinds of transition per rule (the first ones).
    """
    against = f" (baseline {report.baseline})" if report.baseline else ""
    lines = [
        f"backtest of {report.rollout}: {plural(len(report.rules), 'criterion', 'criteria')} over "
        f"{report.canary}{against}, {time_text(report.since)} → {time_text(report.until)}: "
        f"{plural(len(report.times), 'evaluation')} every {span_text(report.step)}, "
        f"{plural(report.slices, 'history slice')}",
    ]
    if report.slices == 0:
        lines.append(f"no recorded history for {report.canary} in this span: every criterion is no data "
                     "(the leader records it: `conn agent` or a console must have been running)")
    first = report.first_rollback
    if first is None:
        lines.append("would not have rolled back")
    else:
        rule, trigger = first
        count = sum(1 for r in report.rules for t in r.triggers if t.action == "rollback")
        more = f" ({plural(count, 'rollback trigger')} in all)" if count > 1 else ""
        lines.append(f"would have rolled back at {time_text(trigger.at)}{more}: {rule.rule.role} "
                     f"{_said(rule.rule, trigger.evidence)}")
    if report.held:
        span = report.held[0]
        lines.append(
            f"would have held for {_span(report.held_seconds)} in all "
            f"({plural(len(report.held), 'span')}), first at {time_text(span.start)}: {span.why}"
        )
    else:
        lines.append("would never have held")
    for rule_report in report.rules:
        lines.append("")
        lines.extend(_rule_lines(rule_report, time_text, changes))
    return lines


def _rule_lines(report: RuleReport, time_text: TimeText, limit: int) -> list[str]:
    rule = report.rule
    policy = f"fail: {rule.on_fail}"
    if rule.role == "gate":
        policy += f", no data: {rule.on_no_data}, source error: {rule.on_source_error}"
    lines = [f"{rule.role} {rule.text}  ({rule.key}; {policy})"]
    parts = []
    for outcome in OUTCOME_WORDS:
        spans = report.spans_of(outcome)
        count = report.counts[outcome]
        if outcome == "pass":
            parts.append(f"pass {count:,}")
        elif count == 0:
            parts.append(f"{OUTCOME_WORDS[outcome]} never")
        else:
            seconds = sum(s.seconds for s in spans)
            parts.append(f"{OUTCOME_WORDS[outcome]} {count:,} in {plural(len(spans), 'span')} "
                         f"({_span(seconds)})")
    lines.append(f"  {plural(report.evaluations, 'evaluation')}: " + ", ".join(parts))
    trigger = report.first_trigger
    if trigger is None:
        lines.append("  never triggered")
    else:
        waited = ""
        if trigger.at != trigger.since:
            waited = (f" (failing from {time_text(trigger.since)}, then "
                      f"{_span(trigger.at - trigger.since)} of failure limit and grace)")
        times = f"; {plural(len(report.triggers), 'time')} in all" if len(report.triggers) > 1 else ""
        lines.append(f"  first trigger {time_text(trigger.at)}: would have {_ACTION_WORDS[trigger.action]}"
                     f"{waited}{times} — {_own(rule, trigger.evidence)}")
    for change in report.changes[:limit]:
        after = OUTCOME_WORDS[change.after]
        what = f"starts {after}" if change.before is None else f"{OUTCOME_WORDS[change.before]} → {after}"
        if change.action != "none":
            what += f" ({change.action})"
        if change.count > 1:
            what += f", {plural(change.count, 'time')}"
        lines.append(f"  {time_text(change.at)} {what}: {_own(rule, change.evidence)}")
    if len(report.changes) > limit:
        lines.append(f"  … {plural(len(report.changes) - limit, 'more kind')} of transition (--json lists them)")
    return lines
