"""The why view: one criterion of a rollout — where its value comes from, its recent
values, the rule, the latest verdict with its evidence, and how long a bad canary
can live before it is caught.

Opened with ``enter`` on a criterion row of the rollout panel. The verdict is
the leader's (the snapshot's live row) and follows each snapshot; the recent
values are a query (:meth:`~console.engine.core.Engine.history`, 10 s slices
of the last :data:`SPAN` seconds), asked when the view opens and again at
most once a slice while it stays open.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, cast

from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static
from textual.worker import Worker, WorkerState

from console.config import ConnConfig
from console.engine.snapshot import RolloutPanel, Snapshot
from console.errors import ConsoleError
from console.model.gates import HEALTH_FAILURES, Criterion, span_text
from console.model.history import SLICE_SECONDS
from console.model.rollout_config import RolloutConfig
from console.model.sanitize import clean_text
from console.model.thresholds import BUILTIN_SIGNALS
from console.model.units import format_value
from console.ui.text import format_age, safe_markup
from console.ui.widgets.rollout_text import (
    OUTCOMES,
    CriterionRow,
    Role,
    budget_text,
    canary_units,
    clock_text,
    criterion_rows,
    parsed,
    threshold_text,
    value_text,
)
from console.ui.widgets.sparkline import SparkText

if TYPE_CHECKING:
    from console.ui.app import ConnApp

SPAN = 15 * 60.0
"""Seconds of history the sparklines show."""

EVALUATION_LINES = 4
"""The newest outcome spans the why view lists."""


def format_clock(at: float) -> str:
    """A clock time as the activity panel shows it (local time, to the second)."""
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")

_QUANTILES = {"p50": "50th", "p95": "95th", "p99": "99th"}


def source_text(config: ConnConfig, service: str, signal: str) -> str:
    """Where ``service``'s ``signal`` comes from: the prober, a health JSON path or a PromQL query."""
    spec = config.services.get(service)
    if spec is None:
        return f"{service} is not a configured service"
    every = f"a probe every {span_text(spec.interval)}"
    prometheus = config.sources.prometheus
    rounds = f"every {span_text(prometheus.interval)}" if prometheus is not None else "each query round"
    if signal == HEALTH_FAILURES:
        return f"failed probes of {service}'s health endpoint, counted ({every})"
    if (named := spec.signals.get(signal)) is not None:
        if named.promql:
            return f"PromQL, {rounds}: {named.promql.replace('{service}', service)}"
        scale = f" × {named.scale:g}" if named.scale != 1 else ""
        return f"health JSON {named.json_path}{scale}, read by each probe ({every})"
    if (path := spec.health_json.sources().get(signal)) is not None:
        scale = f" × {path.scale:g}" if path.scale != 1 else ""
        return f"health JSON {path.path}{scale}, read by each probe ({every})"
    if (query := getattr(spec.queries, signal, None)) and prometheus is not None:
        return f"PromQL, {rounds}: {query.replace('{service}', service)}"
    if signal in _QUANTILES:
        return (f"measured by the prober: the {_QUANTILES[signal]} percentile of the health "
                f"endpoint's response times over the last 1m ({every})")
    if signal in BUILTIN_SIGNALS:
        return f"measured by the prober: failed probes ÷ probes over the last 1m ({every})"
    return f"{signal} is not a signal of {service}"


def rule_text(plan: RolloutConfig, row: CriterionRow, criterion: Criterion | None) -> str:
    """What the rule asks and what its outcomes do, in the config's terms."""
    shown = str(criterion) if criterion is not None else row.text
    if row.role == "gate":
        gate = plan.gate
        return (f"gate — must hold before an advance: {shown}. On fail: {gate.on_fail}; "
                f"no data: {gate.on_no_data}; source down: {gate.on_source_error}; at least "
                f"{gate.min_samples} samples in the window, else no data.")
    grace = f" after a {span_text(plan.grace)} countdown" if plan.grace and plan.abort.on_fail == "rollback" else ""
    return (f"abort — must not hold, in every stage and during holds: {shown}. When it "
            f"holds: {plan.abort.on_fail}{grace}. No data or a source down never rolls back.")


def history_signal(criterion: Criterion | None, text: str) -> tuple[str, str]:
    """The signal whose history is drawn, and what to call it (failed probes for health_failures)."""
    signal = criterion.signal if criterion is not None else text.split(" ", 1)[0]
    if signal == HEALTH_FAILURES:
        return "probe_errors", "failed probes (probe_errors, %)"
    return signal, signal


def legend(values: Sequence[float | None], unit: str, level: float | None) -> str:
    """"now 944 ms · lowest 180 ms · highest 950 ms · level 500 ms" (plain text)."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return "no values recorded in the last 15m (no leader recording, or a source down)"
    parts = [f"latest {format_value(present[-1], unit)}", f"lowest {format_value(min(present), unit)}",
             f"highest {format_value(max(present), unit)}"]
    if level is not None:
        parts.append(f"the rule's level {format_value(level, unit)}")
    return " · ".join(parts)


class WhyScreen(ModalScreen[None]):
    """Why one criterion passes or fails. Esc goes back."""

    BINDINGS = [Binding("escape", "dismiss", "Back", id="why-back")]

    DEFAULT_CSS = """
    WhyScreen { align: center middle; }
    WhyScreen > Vertical {
        width: 110; max-width: 100%; height: auto; max-height: 100%;
        background: $surface; border: thick $primary; padding: 0 1;
    }
    WhyScreen .title { text-style: bold; width: 1fr; }
    WhyScreen .label { color: $text-muted; margin-top: 1; }
    WhyScreen .baseline { display: none; }
    WhyScreen.-relative .baseline { display: block; }
    WhyScreen SparkText { color: $primary; }
    WhyScreen #why-facts { height: auto; }
    WhyScreen .hint { color: $text-muted; }
    """

    def __init__(self, rollout: str, role: str, text: str) -> None:
        super().__init__()
        self.rollout = rollout
        self.role = role
        self.text = text
        self._loaded_at: float | None = None

    @property
    def conn(self) -> ConnApp:
        return cast("ConnApp", self.app)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("", id="why-title", classes="title")
            yield Static("", id="why-facts")
            yield Label("", id="why-canary-label", classes="label")
            yield SparkText(id="why-canary")
            yield Static("", id="why-canary-legend")
            yield Label("", id="why-baseline-label", classes="label baseline")
            yield SparkText(id="why-baseline", classes="baseline")
            yield Static("", id="why-baseline-legend", classes="baseline")
            yield Static("", id="why-evaluations")
            yield Label("Esc back · a bar per 10 s slice, newest at the right; · no value", classes="hint")

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._show, init=True)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A history query that dies says so where its sparkline would be (never silent)."""
        if event.worker.group == "why" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.query_one("#why-canary-legend", Static).update(
                safe_markup(f"history unavailable: {type(error).__name__}: {error}", limit=300))

    def _panel(self) -> RolloutPanel | None:
        snapshot = self.conn.snapshot
        return snapshot.rollout(self.rollout) if snapshot is not None else None

    async def _evaluations(self, now: float) -> None:
        """The criterion's outcomes over the last minutes, replayed from the signal history."""
        target = self.query_one("#why-evaluations", Static)
        try:
            spans = await self.conn.engine.evaluation_history(self.rollout, self.role, self.text, now - SPAN)
        except ConsoleError as e:
            target.update(f"evaluations unavailable: {safe_markup(str(e), limit=300)}")
            return
        if not spans:
            target.update("[dim]no evaluations in the recorded history yet[/]")
            return
        lines = [f"[b]evaluations[/b], last {span_text(SPAN)} (replayed from the signal history):"]
        for span in spans[-EVALUATION_LINES:]:
            lines.append(
                f" {format_clock(span.start)}–{format_clock(span.end)} {span.outcome.replace('_', ' ')}"
                f" · {safe_markup(span.evidence, limit=90)}"
            )
        target.update("\n".join(lines))

    def _units(self, panel: RolloutPanel) -> dict[str, str]:
        return canary_units(self.conn.engine.config, panel.plan)

    def _row(self, panel: RolloutPanel, now: float) -> CriterionRow:
        rows = criterion_rows(panel, panel.view(now))
        found = next((r for r in rows if (r.role, r.text) == (self.role, self.text)), None)
        return found or CriterionRow(cast(Role, self.role), self.text, None)

    def _show(self, snapshot: Snapshot | None) -> None:
        panel = self._panel()
        if panel is None:
            return
        now = self.conn.clock.now()
        row = self._row(panel, now)
        criterion = parsed(self.text, self._units(panel))
        word, _ = OUTCOMES.get(row.outcome or "", ("— not judged", ""))
        self.query_one("#why-title", Label).update(
            f"{safe_markup(panel.name)} · {row.role}: {safe_markup(self.text)} — {word}")
        config = self.conn.engine.config
        plan = panel.plan
        facts = Table.grid(padding=(0, 1))
        facts.add_column(style="bold", no_wrap=True)
        facts.add_column(overflow="fold")
        signal = criterion.signal if criterion is not None else "?"
        facts.add_row("source", clean_text(
            f"{signal} of {plan.canary}: {source_text(config, plan.canary, signal)}", limit=600))
        if criterion is not None and criterion.relative and plan.baseline:
            facts.add_row("baseline", clean_text(
                f"{signal} of {plan.baseline}: {source_text(config, plan.baseline, signal)}", limit=600))
        facts.add_row("rule", rule_text(plan, row, criterion))
        facts.add_row("now", self._now_text(row, criterion, now))
        if row.live is not None and row.live.since is not None:
            facts.add_row("held", f"for {span_text(max(0, math.floor(now - row.live.since)))} "
                                  f"(since {clock_text(row.live.since, seconds=True)})")
        detect = row.live.budget_text if row.live is not None and row.live.budget_text else (
            budget_text(config, plan, criterion, formula=True) if criterion is not None else "?")
        facts.add_row("detection", f"worst case {clean_text(detect, limit=300)}: from a bad canary to "
                                   "its rollback starting, by this criterion")
        self.query_one("#why-facts", Static).update(facts)
        self.set_class(bool(criterion and criterion.relative and plan.baseline), "-relative")
        if self._loaded_at is None or now - self._loaded_at >= SLICE_SECONDS:
            self._loaded_at = now
            self._load(panel, criterion)

    def _now_text(self, row: CriterionRow, criterion: Criterion | None, now: float) -> str:
        live = row.live
        if live is None:
            return "not judged in this run (the leader judges the criteria of an active run each second)"
        word, _ = OUTCOMES[live.outcome]
        value = value_text(row, criterion)
        level = threshold_text(row, criterion)
        text = f"{word}: {clean_text(live.evidence, limit=400) or f'{value} {level}'}"
        if live.reason and live.outcome in ("no_data", "source_error"):
            text += f" ({clean_text(live.reason, limit=300)})"
        panel = self._panel()
        at = panel.live.at if panel is not None and panel.live is not None else None
        return text + (f" · judged {format_age(now - at)} ago" if at is not None else "")

    @work(exclusive=True, exit_on_error=False, group="why")
    async def _load(self, panel: RolloutPanel, criterion: Criterion | None) -> None:
        """The canary's (and for a relative rule the baseline's) last 15 minutes, on one scale."""
        signal, label = history_signal(criterion, self.text)
        unit = "%" if signal == "probe_errors" else (criterion.value_unit if criterion else "")
        level = None
        if criterion is not None and signal != "probe_errors":
            row = self._row(panel, self.conn.clock.now())
            level = criterion.threshold if not criterion.relative else (
                row.live.threshold if row.live is not None else None)
        now = self.conn.clock.now()
        plan = panel.plan
        targets = [("canary", plan.canary)]
        if criterion is not None and criterion.relative and plan.baseline:
            targets.append(("baseline", plan.baseline))
        series: dict[str, tuple[float | None, ...]] = {}
        for part, service in targets:
            self.query_one(f"#why-{part}-label", Label).update(
                f"{safe_markup(service)} {safe_markup(label)}, last {span_text(SPAN)}")
            try:
                points = await self.conn.engine.history(service, signal, since=now - SPAN)
            except ConsoleError as e:
                self.query_one(f"#why-{part}-legend", Static).update(
                    f"history unavailable: {safe_markup(str(e), limit=300)}")
                continue
            series[part] = tuple(p.value for p in points)
        present = [v for values in series.values() for v in values if v is not None and math.isfinite(v)]
        high = max([*present, level or 0.0]) if present else None
        await self._evaluations(now)
        for part, values in series.items():
            self.query_one(f"#why-{part}", SparkText).show(values, high=high)
            self.query_one(f"#why-{part}-legend", Static).update(
                safe_markup(legend(values, unit, level if part == "canary" else None), limit=300))
