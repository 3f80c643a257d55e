"""The rollout panel's words: stage bar, phase, criterion rows, who did what last, the countdown.

Pure functions of the snapshot's :class:`~console.engine.snapshot.RolloutPanel`
and a clock time, so the panel, the countdown line, the why view and the
tests read a rollout the same way, and the one-second tick only recomputes
text (no engine call). Outside text (reasons, actors, evidence) comes back
escaped for Textual markup where a function returns markup, and cleaned
where it returns plain text.

A criterion's verdict is the leader's (the live row ``rollout/NAME``); a
row the leader has not judged in this run reads "—", and verdicts older
than the one staleness rule allows are marked ``⌛`` with their age.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rich.cells import cell_len
from rich.text import Text

from console.config import ConnConfig
from console.engine.rollouts import EVALUATION_INTERVAL, detection_budget
from console.engine.snapshot import RolloutPanel
from console.model.gates import Criterion, CriterionError, parse_criterion, span_text
from console.model.live import is_fresh
from console.model.rollout_config import RolloutConfig
from console.model.rollout_live import CriterionLive, RolloutLive
from console.model.rollouts import RolloutView
from console.model.sanitize import clean_text
from console.model.units import format_value
from console.ui.text import format_age, safe_markup

Role = Literal["gate", "abort"]

OUTCOMES: dict[str, tuple[str, str]] = {
    "fail": ("✖ fail", "bold red"),
    "source_error": ("⚠ source down", "magenta"),
    "no_data": ("? no data", "dim"),
    "pass": ("✔ pass", "green"),
}
"""Outcome -> (mark and word, Rich style), like the services table's states: told apart
without colour too."""

NOT_JUDGED = ("— not judged", "dim")
"""A criterion without a verdict in this run (before the first judgement, or no run active)."""

ORDER = ("fail", "source_error", "no_data", "pass", None)
"""Rows worst first — a failing abort criterion before a failing gate (it rolls back, a
gate only holds) — so what threatens the rollout is on the rows a compact panel shows."""

VERDICT_TIMEOUT = 2.0
"""Slack over the evaluation interval before verdicts count as old (a judgement reads history)."""

DEMO_NOTE = "demo: short windows, real 5m"
"""Said on the panel in ``conn demo``, whose criteria say "for 10s" where real ones say "for 5m"."""

PHASE_CLASSES = (
    "-phase-pending", "-phase-baking", "-phase-ready", "-phase-held", "-phase-rolling-back",
    "-phase-rolled-back", "-phase-complete", "-phase-action-failed", "-phase-blocked",
)  # fmt: skip
"""Every class :func:`phase_text` can return."""


@dataclass(frozen=True)
class CriterionRow:
    """One criterion as the panel lists it: its rule, its text and its latest verdict."""

    role: Role
    text: str
    live: CriterionLive | None
    """The leader's latest verdict in this run; None: not judged."""

    @property
    def key(self) -> str:
        """Stable across snapshots (the table's row key)."""
        return f"{self.role}:{self.text}"

    @property
    def outcome(self) -> str | None:
        return self.live.outcome if self.live is not None else None


def current_live(panel: RolloutPanel) -> RolloutLive | None:
    """The leader's verdicts when they are about this run; None otherwise."""
    live = panel.live
    return live if live is not None and live.run == panel.state.run else None


def verdicts_fresh(live: RolloutLive, now: float) -> bool:
    """Whether the verdicts were judged recently (the one staleness rule, a judgement per second)."""
    return is_fresh(live.at, EVALUATION_INTERVAL, now, timeout=VERDICT_TIMEOUT)


def gate_texts(plan: RolloutConfig, view: RolloutView) -> tuple[str, ...]:
    """The current stage's gate (the first stage's before a run, the last one's after)."""
    index = view.stage_index if view.stage_index is not None else 0
    return plan.criteria_for(max(0, min(index, len(plan.stages) - 1)))


def criterion_rows(panel: RolloutPanel, view: RolloutView) -> tuple[CriterionRow, ...]:
    """The stage's gate and the abort criteria with their verdicts, worst first.

    After an automatic rollback the leader judges nothing more; the criterion that
    started it keeps the verdict recorded with the rollback (its evidence).
    """
    live = current_live(panel)
    verdicts = {(c.role, c.text): c for c in (*live.gate, *live.abort)} if live is not None else {}
    if not verdicts and (recorded := rollback_verdict(panel)) is not None:
        verdicts[(recorded.role, recorded.text)] = recorded
    rows = [CriterionRow("gate", text, verdicts.get(("gate", text))) for text in gate_texts(panel.plan, view)]
    rows += [CriterionRow("abort", text, verdicts.get(("abort", text))) for text in panel.plan.abort.criteria]
    # Failing abort criteria first (they roll back; a failing gate only holds), then by outcome.
    return tuple(sorted(rows, key=lambda row: (
        ORDER.index(row.outcome), (row.role == "abort") != (row.outcome == "fail"))))


def rollback_verdict(panel: RolloutPanel) -> CriterionLive | None:
    """The verdict an automatic rollback recorded for its criterion, as a row's verdict."""
    rollback = panel.state.rollback
    if rollback is None or rollback.criterion is None:
        return None
    role: Role = "abort" if rollback.criterion in panel.plan.abort.criteria else "gate"
    evidence = rollback.evidence or {}

    def number(key: str) -> float | None:
        value = evidence.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    return CriterionLive(
        text=rollback.criterion, role=role, outcome="fail", value=number("value"),
        baseline=number("baseline"), threshold=number("threshold"), since=None,
        evidence=str(evidence.get("evidence") or rollback.reason),
    )


def parsed(text: str, units: Mapping[str, str]) -> Criterion | None:
    """The criterion behind ``text`` with the canary's signal units (``conn check`` has
    parsed it already; None if it does not parse)."""
    try:
        return parse_criterion(text, units=units)
    except (CriterionError, ValueError):
        return None


def outcome_cell(row: CriterionRow) -> Text:
    word, style = OUTCOMES.get(row.outcome or "", NOT_JUDGED)
    return Text(word, style=style)


def value_text(row: CriterionRow, criterion: Criterion | None) -> str:
    """The value the verdict read, in the signal's unit ("7.10%", "944 ms", "4")."""
    if row.live is None:
        return "—"
    unit = criterion.value_unit if criterion is not None else ""
    if row.live.value is None:
        return "no data" if row.live.outcome != "source_error" else "—"
    return format_value(row.live.value, unit)


def threshold_text(row: CriterionRow, criterion: Criterion | None) -> str:
    """What the value is compared with: "< 500 ms", "> 1.5x baseline (167 ms)"."""
    if criterion is None:
        return ""
    unit = criterion.value_unit
    if criterion.factor is not None:
        level = row.live.threshold if row.live is not None else None
        if level is None:
            return f"{criterion.op} {criterion.factor:g}x baseline"
        return f"{criterion.op} {format_value(level, unit)} ({criterion.factor:g}x)"
    if criterion.threshold is None:
        return ""
    return f"{criterion.op} {format_value(criterion.threshold, unit)}"


def held_text(row: CriterionRow, now: float) -> str:
    """For how long the condition has held ("12s"), for sustained criteria; "" otherwise."""
    if row.live is None or row.live.since is None:
        return ""
    return span_text(max(0, math.floor(now - row.live.since)))


def canary_units(config: ConnConfig, plan: RolloutConfig) -> dict[str, str]:
    """The canary's named signals and their units: criteria values read in them."""
    spec = config.services.get(plan.canary)
    return {key: signal.unit for key, signal in spec.signals.items()} if spec is not None else {}


def budget_text(
    config: ConnConfig, plan: RolloutConfig, criterion: Criterion, *, formula: bool = False
) -> str:
    """"≤ 1m 12s" (with ``formula``, its parts too): the worst case by the leader's formula,
    for a criterion it has not judged yet."""
    if plan.canary not in config.services:
        return ""
    text = detection_budget(config, plan, criterion)[1]
    return text if formula else text.split(" (", 1)[0]


def budget_short(row: CriterionRow) -> str:
    """The worst-case detection, without its formula: "≤ 1m 12s"."""
    if row.live is None or not row.live.budget_text:
        return ""
    return row.live.budget_text.split(" (", 1)[0]


def why_not_judged(row: CriterionRow) -> str:
    """Why there is no pass or fail ("0 probe outcomes in 1m, …"), for no_data and source_error."""
    return clean_text(row.live.reason, limit=200) if row.live is not None else ""


# --- the stage bar ---------------------------------------------------------------------


def stage_names(panel: RolloutPanel) -> tuple[str, ...]:
    """The run's stages as it started them; the config's before a run."""
    return panel.state.stage_names or tuple(stage.name for stage in panel.plan.stages)


def stage_marks(panel: RolloutPanel, view: RolloutView) -> list[tuple[str, str, str]]:
    """(stage name, mark, Textual style) per stage: done ✔, current ●, next ○, rolled back from ✖."""
    names = stage_names(panel)
    current = view.stage_index
    marks: list[tuple[str, str, str]] = []
    for index, name in enumerate(names):
        if view.phase == "complete" or (current is not None and index < current):
            marks.append((name, "✔", "$success"))
        elif current is not None and index == current:
            if view.phase in ("rolling_back", "rolled_back"):
                marks.append((name, "✖", "bold $error"))
            else:
                style = {"ready": "bold $success", "held": "bold $warning",
                         "action_failed": "bold $error"}.get(view.phase, "bold $accent")
                marks.append((name, "●", style))
        else:
            marks.append((name, "○", "$text-muted"))
    return marks


def stage_bar(panel: RolloutPanel, view: RolloutView, width: int | None = None) -> tuple[str, int]:
    """The stage bar as markup and its width: ``internal ✔ ─ 10% ● ─ 50% ○ ─ 100% ○``.

    When ``width`` is too small it closes up (``internal✔─10%●─50%○``), then
    names only the current stage (``stage 2/4 10% ●``).
    """
    marks = stage_marks(panel, view)
    names = [clean_text(name, limit=40) for name, _, _ in marks]
    for separator, gap in ((" ─ ", " "), ("─", "")):
        plain = separator.join(f"{name}{gap}{mark}" for name, (_, mark, _) in zip(names, marks, strict=True))
        if width is None or cell_len(plain) <= width:
            markup = separator.join(
                f"{safe_markup(name)}{gap}[{style}]{mark}[/]"
                for name, (_, mark, style) in zip(names, marks, strict=True)
            )
            return markup.replace(separator, f"[$text-muted]{separator}[/]"), cell_len(plain)
    index = view.stage_index if view.stage_index is not None else 0
    index = min(index, len(marks) - 1)
    _, mark, style = marks[index]
    plain = f"stage {index + 1}/{len(marks)} {names[index]} {mark}"
    return f"stage {index + 1}/{len(marks)} {safe_markup(names[index])} [{style}]{mark}[/]", cell_len(plain)


# --- the phase -------------------------------------------------------------------------


def clock_text(at: float, *, seconds: bool = False) -> str:
    """A clock time as the dashboard shows times (local, "14:30", or "14:30:05")."""
    return datetime.fromtimestamp(at).strftime("%H:%M:%S" if seconds else "%H:%M")


def seconds_left(seconds: float) -> str:
    """Whole seconds, rounded up, as a countdown reads ("2m 47s", "8s")."""
    return span_text(max(0, math.ceil(seconds)))


def next_stage(panel: RolloutPanel, view: RolloutView) -> str:
    """Where ``a`` goes from here: "to 50%", "to complete"."""
    names = stage_names(panel)
    index = view.stage_index if view.stage_index is not None else -1
    return f"to {names[index + 1]}" if index + 1 < len(names) else "to complete"


def phase_text(panel: RolloutPanel, view: RolloutView, now: float) -> tuple[str, str]:
    """The phase in words (plain text) and its CSS class.

    baking (time left), ready (where ``a`` goes, or why the gate holds it),
    held by X: why (until …), rolling back, rolled back, complete, action
    failed: what and why.
    """
    live = current_live(panel)
    blocked = clean_text(live.blocked, limit=300) if live is not None and live.blocked else ""
    if view.phase == "pending":
        return f"not started — a starts run {view.run + 1}", "-phase-pending"
    if view.phase == "baking":
        left = seconds_left(view.bake_remaining or 0)
        then = "then advances by itself if the gate passes" if view.advance_mode == "auto" else "then a advances"
        return f"baking: {left} left, {then}", "-phase-baking"
    if view.phase == "ready" and view.actions:
        first = view.actions[0]
        return (f"ready once the stage's actions finish: {clean_text(first.description, limit=80)} "
                f"({first.status.replace('_', ' ')})"), "-phase-baking"
    if view.phase == "ready":
        if live is not None and not live.gate_passing:
            return f"ready, but the gate holds it: {blocked or 'not judged yet'}", "-phase-blocked"
        how = "advances by itself" if view.advance_mode == "auto" else "a advances"
        return f"ready: baked, the gate passes — {how} {next_stage(panel, view)}", "-phase-ready"
    if view.phase == "held":
        until = (f"until {clock_text(view.held_until)} ({seconds_left(view.held_until - now)} left)"
                 if view.held_until is not None else "until resumed (h)")
        return (f"held by {clean_text(view.held_by or '?', limit=60)} {until}: "
                f"{clean_text(view.held_reason or '', limit=200)}"), "-phase-held"
    if view.phase == "action_failed":
        failed = next((a for a in view.actions if a.status == "failed"), None)
        what = f"{clean_text(failed.description, limit=80)}: {clean_text(failed.error, limit=200)}" if failed else "?"
        return f"action failed: {what} — a retries, R rolls back", "-phase-action-failed"
    rollback = view.rollback
    why = clean_text(rollback.reason, limit=300) if rollback is not None else ""
    by = clean_text(rollback.by, limit=60) if rollback is not None else "?"
    how = "automatically" if rollback is not None and rollback.automatic else f"by {by}"
    if view.phase == "rolling_back":
        working = [a for a in view.actions if a.status != "failed"]
        doing = (f" — {clean_text(working[0].description, limit=60)} "
                 f"({working[0].status.replace('_', ' ')})") if working else ""
        return f"rolling back {how}: {why}{doing}", "-phase-rolling-back"
    if view.phase == "rolled_back":
        ago = f" {format_age(now - rollback.started_at)} ago" if rollback is not None else ""
        return f"rolled back {how}{ago}: {why} — a starts run {view.run + 1}", "-phase-rolled-back"
    return f"complete: run {view.run} — a starts run {view.run + 1}", "-phase-complete"


def last_text(view: RolloutView, now: float) -> str:
    """Who did what last, when and why (plain text): "last: held · bob · 5m ago — flaky"."""
    last = view.last
    if last is None:
        return "last: nothing yet — no run has started"
    why = f" — {clean_text(last.why, limit=300)}" if last.why else ""
    return (f"last: {clean_text(last.what, limit=200)} · {clean_text(last.by, limit=60)} · "
            f"{format_age(now - last.at)} ago{why}")


# --- the countdown ---------------------------------------------------------------------


def countdown_reason(live: RolloutLive) -> str:
    """What the automatic rollback is for, as the leader's evidence says it ("error_rate 7.10% > …")."""
    for row in live.failing():
        if live.rollback_reason.startswith(f"{row.text}: ") and row.evidence:
            return row.evidence
    return live.rollback_reason


def countdown_text(panel: RolloutPanel, now: float) -> str | None:
    """``auto-rollback of checkout in 8s: error_rate 7.10% > 5.00% for 10s — h hold, R roll back now``.

    None when no automatic rollback is counting down for this run.
    """
    live = current_live(panel)
    if live is None or live.rollback_at is None or panel.state.lifecycle != "active":
        return None
    left = live.rollback_at - now
    when = f"in {seconds_left(left)}" if left > 0 else "now"
    reason = clean_text(countdown_reason(live), limit=300)
    return f"⚠ auto-rollback of {clean_text(panel.name, limit=60)} {when}: {reason} — h hold, R roll back now"


def countdowns(panels: Sequence[RolloutPanel], now: float) -> list[str]:
    """Every rollout's countdown line, in config order."""
    return [line for panel in panels if (line := countdown_text(panel, now)) is not None]


def urgency(panel: RolloutPanel, now: float) -> int:
    """How much a rollout needs eyes, most first: a countdown, a rollback, a failed action,
    an active run, then the rest (the panel shows the most urgent until one is picked)."""
    if countdown_text(panel, now) is not None:
        return 0
    lifecycle = panel.state.lifecycle
    if lifecycle == "rolling_back":
        return 1
    if lifecycle == "active":
        return 2
    return 3
