"""How a runbook run reads on screen: step marks, step lines, a step's detail, a run's progress.

Shared by the runner (:mod:`console.ui.screens.runner`), the runbooks list
(its "last run" column) and the incident screen (its runs, one line each), so
a step's state reads the same everywhere. Every state has a mark *and* a
word (``✖ failed``, ``⊘ skipped``), so it reads the same without colour.

Runbook text (titles, prose, commands) is the team's own file, but a run's
variables may come from an alert's labels and a step's result from its
output: everything goes through :func:`~console.model.sanitize.clean_text`
and :func:`~console.secrets.redact`, and is put in ``Text`` literally, never
parsed as markup.

:class:`RunbookSteps` is the runner's step list: an ``OptionList`` whose
lines are replaced in place when they change, so the cursor (the step the
keys act on) stays where it is while a step runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from console.model.runbook_runs import (
    RunbookRefused,
    RunState,
    StepRecord,
    StepStatus,
    step_command,
)
from console.model.runbooks import MissingVariables, Runbook, Step, resolve
from console.model.sanitize import clean_text
from console.model.units import format_duration
from console.secrets import redact

STATUS_MARKS: Mapping[StepStatus, tuple[str, str, str]] = {
    "pending": ("·", "pending", "dim"),
    "previewed": ("·", "previewed", "dim"),
    "running": ("▶", "running", "bold cyan"),
    "succeeded": ("✓", "succeeded", "green"),
    "failed": ("✖", "failed", "bold red"),
    "timed_out": ("⏱", "timed out", "bold red"),
    "cancelled": ("⊘", "cancelled", "yellow"),
    "skipped": ("⊘", "skipped", "dim"),
    "interrupted": ("⚠", "interrupted", "bold yellow"),
}
"""Step status -> (mark, word, Rich style)."""

STOPPED: frozenset[str] = frozenset({"failed", "timed_out", "cancelled", "interrupted"})
"""Statuses that stop a run until the step is retried or skipped."""

StatusOf = Callable[[RunState, int], StepStatus]
"""``status(run, step)``: a step's status with "running" or "interrupted" decided (the engine's)."""


def status_text(status: StepStatus) -> Text:
    """``✖ failed``: the mark and the word, in the status's style."""
    mark, word, style = STATUS_MARKS[status]
    return Text(f"{mark} {word}", style=style)


def seconds(value: float | None) -> str:
    """``0.4s``, ``12s``, ``3m``: a step's duration."""
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 10 else format_duration(round(value))


def plain(text: str, limit: int = 300) -> str:
    """Outside or file text made safe for one line of the screen."""
    return clean_text(redact(text), limit=limit)


def outcome_text(record: StepRecord, status: StepStatus) -> str:
    """How the step's last attempt ended, in words: "exit 0 in 0.4s", "skipped: no rollout".

    "" while it is pending or running.
    """
    if status == "skipped":
        return f"skipped: {plain(record.reason, 200)}"
    if status == "succeeded":
        if record.kind == "check":
            return f"{len(record.ticked)} ticked"
        if record.kind == "note":
            return "read"
        took = seconds(record.duration)
        return f"exit {record.exit_code if record.exit_code is not None else 0}" + (f" in {took}" if took else "")
    if status in STOPPED:
        return plain(record.error or STATUS_MARKS[status][1], 200)
    if record.kind == "check" and record.ticked:
        return f"{len(record.ticked)} ticked"
    return ""


def step_line(step: Step, record: StepRecord, status: StepStatus, *, current: bool = False) -> Text:
    """One line of the step list: state, number, title, kind and marks, how it ended."""
    mark, word, style = STATUS_MARKS[status]
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{mark} {word:<11}", style=style)
    text.append(f"{step.number:>2} ", style="bold" if current else "")
    text.append(plain(step.title, 80), style="bold" if current else "")
    text.append(f"  {step.kind}", style="dim")
    if step.dangerous:
        text.append("  ⚠ dangerous", style="bold red")
    elif step.confirmation is not None:
        text.append("  ⌨ confirm", style="yellow")
    ended = outcome_text(record, status)
    if ended:
        text.append(f"  {ended}", style="dim" if status in ("succeeded", "skipped") else style)
    return text


def run_progress(run: RunState, status_of: StatusOf) -> Text:
    """Where a run stands: "✓ finished", "⊘ abandoned", "step 3/6 ✖ failed", "all steps done"."""
    if run.lifecycle == "finished":
        return Text("✓ finished", style="green")
    if run.lifecycle == "abandoned":
        return Text("⊘ abandoned", style="dim")
    current = run.current_step
    if current is None:
        return Text("✓ every step done (f finishes)", style="green")
    text = Text(f"step {current}/{len(run.steps)} ")
    text.append_text(status_text(status_of(run, current)))
    return text


def resolved(text: str, run: RunState, runbook: Runbook) -> str:
    """Runbook text with the run's variables filled in (secrets left as ``${NAME}``)."""
    try:
        return resolve(text, run.vars, leave=runbook.secret_variables)
    except MissingVariables:  # a runbook edited since the run started: show it as written
        return text


def confirmation_of(step: Step, run: RunState, runbook: Runbook) -> str | None:
    """What the operator types before ``step`` runs (its variables filled in), or None."""
    wanted = step.confirmation
    return None if wanted is None else resolved(wanted, run, runbook)


def preview_of(step: Step, run: RunState, runbook: Runbook) -> str:
    """The exact command ``step`` runs, as the run's events record it."""
    try:
        return step_command(run, runbook, step)
    except RunbookRefused:
        return step.command or ""


def step_detail(step: Step, record: StepRecord, status: StepStatus, run: RunState, runbook: Runbook) -> Text:
    """The selected step: what it is, the exact command, its checks, how it ended, its prose."""
    text = Text()
    text.append(f"Step {step.number} of {len(runbook.steps)} · {step.kind}", style="bold")
    if step.kind == "command":
        text.append(f" · timeout {format_duration(step.timeout)}")
    confirm = confirmation_of(step, run, runbook)
    if confirm is not None:
        text.append(" · r asks you to type ")
        text.append(plain(confirm, 80), style="bold")
    if step.kind == "command":
        for index, line in enumerate(preview_of(step, run, runbook).splitlines() or [""]):
            text.append("\n")
            text.append("$ " if index == 0 else "  ", style="dim")
            text.append(plain(line, 400), style="bold")
    if step.kind == "check":
        upcoming = next((item for item in step.checks if item not in record.ticked), None)
        for item in step.checks:
            done = item in record.ticked
            text.append("\n")
            text.append("[x] " if done else ("▸[ ] " if item == upcoming else " [ ] "),
                        style="green" if done else "bold" if item == upcoming else "")
            text.append(plain(resolved(item, run, runbook), 200))
    ended = outcome_text(record, status)
    if ended or status == "running":
        text.append("\n")
        text.append_text(status_text(status))
        if ended:
            text.append(f": {ended}")
        if record.attempts > 1:
            text.append(f" (attempt {record.attempts})", style="dim")
        if record.by:
            text.append(f" · {plain(record.by, 40)}", style="dim")
    if status in STOPPED and step.rollback is not None:
        target = runbook.step(step.rollback)
        text.append("\n")
        text.append(f"its rollback: step {target.number} ({plain(target.title, 60)}) may run now, "
                    "out of turn (select it, r)", style="bold yellow")
    body = resolved(step.body, run, runbook).strip()
    if body:
        for paragraph in body.split("\n\n"):
            text.append("\n")
            text.append(plain(paragraph, 1000))
    return text


def danger_lines(step: Step | None, run: RunState, runbook: Runbook) -> list[Text]:
    """The danger banner: a dangerous step's mark, its warnings, then the runbook's (the most
    pressing first: a small terminal shows the banner's first lines)."""
    lines: list[Text] = []
    if step is not None and step.dangerous:
        line = Text(f"⚠ DANGEROUS step {step.number}: ", style="bold")
        line.append(f"r asks you to type {plain(confirmation_of(step, run, runbook) or step.name, 80)} first")
        lines.append(line)
    for warning in [*(step.warnings if step is not None else ()), *runbook.warnings]:
        line = Text("⚠ WARNING ", style="bold")
        line.append(plain(resolved(warning, run, runbook), 400))
        lines.append(line)
    return lines


class RunbookSteps(OptionList):
    """The runner's steps, one line each; the highlighted one is the step the keys act on."""

    DEFAULT_CSS = """
    RunbookSteps, RunbookSteps:focus {
        height: auto; max-height: 10; border: none; padding: 0 1; background: $surface;
    }
    """

    def show(self, lines: Sequence[Text]) -> None:
        """Show ``lines``: replaced in place where they differ, so the cursor stays put."""
        if self.option_count != len(lines):
            highlighted = self.highlighted
            self.clear_options()
            self.add_options([Option(line, id=f"step-{index + 1}") for index, line in enumerate(lines)])
            if lines:
                self.highlighted = min(highlighted or 0, len(lines) - 1)
            return
        for index, line in enumerate(lines):
            if self.get_option_at_index(index).prompt != line:
                self.replace_option_prompt_at_index(index, line)

    @property
    def selected_step(self) -> int | None:
        """The highlighted step's number (1-based)."""
        return None if self.highlighted is None else self.highlighted + 1

    def select_step(self, number: int) -> None:
        if 0 < number <= self.option_count:
            self.highlighted = number - 1
