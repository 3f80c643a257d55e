"""The runner: one runbook run, executed step by step from the keyboard.

Opened from the runbooks list (:mod:`console.ui.screens.runbooks`). Top to
bottom: the run (runbook, run id, incident, where it stands), a danger banner
(the runbook's ``> [!WARNING]`` blocks, the selected step's, and a dangerous
step's mark), the steps with their state (a mark *and* a word:
``✓ succeeded``, ``✖ failed``, ``⏱ timed out``, ``⊘ cancelled``/``skipped``,
``⚠ interrupted``, ``▶ running``, ``· pending``), the selected step's detail
(the exact resolved command, its checks, how it ended, its prose) and the
output log.

The keys act on the selected step; the selection follows the run (when a
step is done it moves to the next) and ↑↓ move it, e.g. to a failed step's
``conn.rollback``, which may run out of turn. ``r`` records the preview and
runs the step (a typed confirmation first when the step needs one, showing
what to type), ``y`` retries a stopped one (an interrupted step also asks
why), ``t`` or space ticks the next check, ``n`` marks a note read, ``k``
skips with a reason, ``c`` cancels the running step, ``f`` finishes the run.
The engine decides: a refusal is an error toast in its words.

**A step runs in a worker** (:meth:`RunnerScreen._execute`), so the screen
stays responsive; one at a time, refused while one runs (an ``exclusive``
worker would *cancel* the running step instead). Cancelling the worker
stops the step's process group and records it as cancelled. Esc is refused
while a step runs (cancel it first): a step never runs unwatched.

**Output** is untrusted: lines arrive cleaned of escapes and redacted (see
:mod:`console.actions.process`) and are written as ``Text(line)``, never as
markup. They are queued and written ten times a second at most, the newest
:data:`FLUSH_LINES` of each burst (the rest are counted on a line of their
own), into a log bounded by ``max_lines``: a step printing megabytes costs
the screen a bounded amount of work and runs at its own speed (the loop
that renders is the one that reads its output). On opening, the log shows
each step's recorded excerpt (a run resumed after the console closed shows
what it printed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, OptionList, RichLog, Static
from textual.worker import Worker, WorkerState

from console.engine.commands import Command
from console.engine.runbooks import (
    AcknowledgeRunbookStep,
    FinishRunbook,
    PreviewRunbookStep,
    RunRunbookStep,
    SkipRunbookStep,
    TickRunbookCheck,
)
from console.engine.snapshot import Snapshot
from console.errors import ConsoleError
from console.model.runbook_runs import RunState, StepStatus, rollback_offer
from console.model.runbooks import Runbook, Step
from console.ui.modals.confirm import ConfirmModal
from console.ui.modals.prompt import PromptModal
from console.ui.text import safe_markup
from console.ui.widgets.runbook_steps import (
    STATUS_MARKS,
    STOPPED,
    RunbookSteps,
    confirmation_of,
    danger_lines,
    plain,
    preview_of,
    run_progress,
    step_detail,
    step_line,
)

if TYPE_CHECKING:
    from console.ui.app import ConnApp

MAX_OUTPUT_LINES = 2000
"""Lines the output log keeps (and the most queued between two writes); the run keeps an excerpt."""

FLUSH_LINES = 100
"""The most lines written to the log at once: a burst keeps its newest lines and counts the rest
(writing a line costs a render; a flood must not hold the loop the step's output is read on)."""

FLUSH_EVERY = 0.1
"""Seconds between two writes of queued output to the log: a refresh rate, as a terminal has
one (a step printing a line at a time still shows each line, a tenth of a second later)."""

LINE_LIMIT = 2000
"""Characters of a recorded excerpt's line that are shown."""


class RunnerScreen(Screen[None]):
    """One run: its steps, the selected step's preview, the output; keys to run it."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="runner-back"),
        Binding("r", "step('run')", "Run", id="runner-run"),
        Binding("t", "step('tick')", "Tick", id="runner-tick"),
        Binding("space", "step('tick')", "Tick", id="runner-tick", show=False),
        Binding("k", "step('skip')", "Skip", id="runner-skip"),
        Binding("y", "step('retry')", "Retry", id="runner-retry"),
        Binding("c", "cancel", "Cancel", id="runner-cancel"),
        Binding("n", "step('next')", "Next", id="runner-next"),
        Binding("f", "step('finish')", "Finish", id="runner-finish"),
    ]

    DEFAULT_CSS = """
    RunnerScreen #runner-header {
        height: auto; max-height: 2; padding: 0 1; background: $panel;
    }
    RunnerScreen #runner-banner {
        display: none; height: auto; max-height: 3; padding: 0 1;
        background: $error; color: $text;
    }
    RunnerScreen #runner-banner.-shown { display: block; }
    RunnerScreen #runner-steps { max-height: 35%; }
    RunnerScreen #runner-detail {
        height: auto; max-height: 25%; padding: 0 1; border-top: solid $panel-lighten-2;
        overflow-y: auto;
    }
    RunnerScreen #runner-output {
        height: 1fr; min-height: 4; border-top: solid $panel-lighten-2; padding: 0 1;
        background: $surface; overflow-y: auto;
    }
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.running_step: int | None = None
        """The step this screen's worker runs now."""
        self._worker: Worker[None] | None = None
        self._queued: deque[tuple[str, str]] = deque(maxlen=FLUSH_LINES)
        self._dropped = 0
        self._flush_due = False
        self._followed: int | None = None
        """The run's current step when the selection last followed it."""
        self._shown: dict[str, Text] = {}
        self._keys = asyncio.Lock()
        """Held by the key being handled: keys pressed meanwhile wait their turn."""

    @property
    def conn(self) -> ConnApp:
        return cast("ConnApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static("", id="runner-header")
        yield Static("", id="runner-banner")
        yield RunbookSteps(id="runner-steps")
        yield Static("", id="runner-detail")
        output = RichLog(id="runner-output", max_lines=MAX_OUTPUT_LINES, wrap=True, min_width=20)
        output.border_title = "output"
        yield output
        # Compact, without the palette's entry (ctrl+p still opens it): the keys fit 80 columns.
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self._write_recorded()
        self.watch(self.app, "snapshot", self._on_snapshot, init=True)
        self.query_one(RunbookSteps).focus()

    # --- what is shown -------------------------------------------------------------------

    def _view(self) -> tuple[RunState, Runbook] | None:
        """The run as the engine has it now, and its runbook (as read now; the steps as the
        run recorded them when the file is gone)."""
        try:
            run = self.conn.engine.run(self.run_id)
        except ConsoleError:
            return None
        runbook = self.conn.engine.runbooks.runbooks.get(run.runbook)
        if runbook is None or len(runbook.steps) != len(run.steps):
            steps = tuple(Step(r.number, r.title, "", r.kind, r.name, 0) for r in run.steps)
            runbook = Runbook(run.runbook, None, run.runbook, None, None, (), {}, (), (), steps, "")
        return run, runbook

    def status(self, run: RunState, number: int) -> StepStatus:
        """A step's status; the one this screen runs is running from the moment it is asked to."""
        if number == self.running_step:
            return "running"
        return self.conn.engine.runbook_commands.status(run, number)

    def _on_snapshot(self, snapshot: Snapshot | None) -> None:
        self._show()

    def _show(self) -> None:
        view = self._view()
        if view is None:
            self._update("#runner-header", Text(f"run {self.run_id}: not found (yet) in this console's log",
                                                 style="bold"))
            return
        run, runbook = view
        steps = self.query_one(RunbookSteps)
        steps.show([step_line(step, run.record(step.number), self.status(run, step.number),
                              current=step.number == run.current_step) for step in runbook.steps])
        current = run.current_step or len(run.steps)
        if current != self._followed:  # the run moved on: so does the selection
            self._followed = current
            steps.select_step(current)
        self._update("#runner-header", self._header(run, runbook))
        self._show_selected(run, runbook)

    def _header(self, run: RunState, runbook: Runbook) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("RUNBOOK ", style="bold reverse")
        text.append(f" {plain(runbook.title, 80)}", style="bold")
        text.append(f" · {run.run_id}")
        if run.incident:
            text.append(f" · for {plain(run.incident, 40)}", style="bold")
        text.append("\n")
        started = datetime.fromtimestamp(run.started_at or 0).strftime("%H:%M")
        text.append(f"started {started} by {plain(run.started_by, 40)} · ", style="dim")
        text.append_text(run_progress(run, self.status))
        read = self.conn.engine.runbooks.runbooks.get(run.runbook)
        if read is None:
            text.append(f" · ⚠ {plain(run.runbook, 60)}.md is gone or broken: the steps as recorded",
                        style="bold yellow")
        elif read.version != run.runbook_version:
            text.append(" · ⚠ the file changed since this run started: start a new run to use it",
                        style="bold yellow")
        return text

    def _show_selected(self, run: RunState, runbook: Runbook) -> None:
        number = self.query_one(RunbookSteps).selected_step
        step = runbook.step(number) if number is not None and number <= len(runbook.steps) else None
        banner = Text("\n").join(danger_lines(step, run, runbook))
        self._update("#runner-banner", banner)
        self.query_one("#runner-banner").set_class(bool(banner), "-shown")
        if step is not None:
            self._update("#runner-detail", step_detail(step, run.record(step.number),
                                                       self.status(run, step.number), run, runbook))

    def _update(self, selector: str, text: Text) -> None:
        if self._shown.get(selector) != text:  # snapshots come several times a second
            self._shown[selector] = text
            self.query_one(selector, Static).update(text)

    @on(OptionList.OptionHighlighted, "#runner-steps")
    def _highlighted(self) -> None:
        if (view := self._view()) is not None:
            self._show_selected(*view)

    # --- output --------------------------------------------------------------------------

    def _write_recorded(self) -> None:
        """Each step's recorded output excerpt, in order (a run resumed shows what it printed)."""
        view = self._view()
        if view is None:
            return
        run, _ = view
        log = self.query_one(RichLog)
        for record in run.steps:
            if record.excerpt:
                log.write(self._rule(record.number, record.title, record.attempts))
                for line in record.excerpt.splitlines():
                    log.write(Text(plain(line, LINE_LIMIT)))

    @staticmethod
    def _rule(number: int, title: str, attempt: int) -> Text:
        again = f" · attempt {attempt}" if attempt > 1 else ""
        return Text(f"── step {number} · {plain(title, 80)}{again} ──", style="bold")

    def _output(self, stream: str, line: str) -> None:
        """A line from the running step (already cleaned and redacted): queued, written soon."""
        if len(self._queued) == FLUSH_LINES:
            self._dropped += 1
        self._queued.append((stream, line))
        if not self._flush_due:
            self._flush_due = True
            self.set_timer(FLUSH_EVERY, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if not self.is_attached:  # closed under a running step (it was cancelled): nothing to show
            return
        log = self.query_one(RichLog)
        if self._dropped:
            log.write(Text(f"… {self._dropped:,} lines not shown here (the run keeps an excerpt) …",
                           style="dim italic"))
            self._dropped = 0
        while self._queued:
            stream, line = self._queued.popleft()
            log.write(Text(line, style="yellow" if stream == "stderr" else ""))
        self._show()

    # --- keys ----------------------------------------------------------------------------

    def action_back(self) -> None:
        if self.running_step is not None:
            self.notify(f"step {self.running_step} is running: c cancels it, then Esc goes back",
                        severity="warning", title="a step is running")
            return
        self.app.pop_screen()

    def action_cancel(self) -> None:
        if self.running_step is None or self._worker is None:
            self.notify("no step is running here", severity="warning", title="cancel")
            return
        self.notify(f"cancelling step {self.running_step}: its processes are stopped", title="cancel")
        self._worker.cancel()

    def action_step(self, kind: str) -> None:
        self._flow(kind)

    @work(exit_on_error=False, group="runner-keys")
    async def _flow(self, kind: str) -> None:
        # In the order pressed (`t t` ticks two checks); not `exclusive`, which would cancel
        # a command half way through.
        async with self._keys:
            await self._act(kind)

    async def _act(self, kind: str) -> None:
        view = self._view()
        number = self.query_one(RunbookSteps).selected_step
        if view is None or number is None:
            self.notify(f"run {safe_markup(self.run_id)} is not in this console's log",
                        severity="warning", title="runbook")
            return
        run, runbook = view
        if kind == "finish":
            await self._command(FinishRunbook(run=run.run_id), "finish")
            return
        step = runbook.step(number)
        if kind in ("run", "retry"):
            await self._run(run, runbook, step, retry=kind == "retry")
        elif kind == "tick":
            await self._tick(run, step)
        elif kind == "next":
            await self._next(run, step)
        elif kind == "skip":
            await self._skip(run, step)

    async def _command(self, command: Command, title: str) -> bool:
        """Execute ``command``; a refusal is an error toast in the engine's words."""
        try:
            result = await self.conn.engine.execute(command)
        except ConsoleError as e:
            self.notify(safe_markup(str(e), limit=400), severity="error", title=title)
            return False
        if title == "finish":
            self.notify(safe_markup(result.message, limit=300), title="runbook")
        self._show()
        return True

    def _refuse(self, message: str, title: str) -> None:
        self.notify(safe_markup(message, limit=400), severity="warning", title=title)

    async def _run(self, run: RunState, runbook: Runbook, step: Step, *, retry: bool) -> None:
        """Preview, confirm when the step asks for it, then run it in the step worker."""
        if self.running_step is not None:
            self._refuse(f"step {self.running_step} is running: one step at a time (c cancels it)", "run")
            return
        if step.kind != "command":
            what = "t ticks its checks" if step.kind == "check" else "n marks it read"
            self._refuse(f"step {step.number} is a {step.kind} step: {what}", "run")
            return
        status = self.status(run, step.number)
        stopped = status in STOPPED
        if retry and not stopped:
            self._refuse(f"step {step.number} is {STATUS_MARKS[status][1]}: only a stopped step is "
                         "retried (r runs it)", "retry")
            return
        if status in ("succeeded", "skipped", "running"):
            self._refuse(f"step {step.number} is {STATUS_MARKS[status][1]}", "run")
            return
        if not stopped and step.number not in (run.next_step, rollback_offer(run, runbook)):
            self._refuse(self._not_yet(run, step), "run")
            return
        if status != "interrupted" and not await self._command(
                PreviewRunbookStep(run=run.run_id, step=step.number), "preview"):
            return
        confirm = confirmation_of(step, run, runbook)
        typed, reason = None, ""
        if confirm is not None or status == "interrupted":
            body = f"Step {step.number} · {step.title}\n$ {preview_of(step, run, runbook)}"
            if status == "interrupted":
                body += ("\nThis step was interrupted: it may have run already. It runs again only "
                         "with a reason (it goes on the run's record).")
            answer = await self.app.push_screen_wait(ConfirmModal(
                f"Run step {step.number}" + (" — DANGEROUS" if step.dangerous else ""), body,
                type_to_confirm=confirm, require_reason=status == "interrupted", confirm_label="Run"))
            if answer is None:
                self.notify(f"step {step.number} was not run", title="run")
                return
            typed, reason = confirm, answer.reason
        self._start(step, typed, reason)

    def _not_yet(self, run: RunState, step: Step) -> str:
        """Why ``step`` cannot start now (said before a preview is recorded for it)."""
        current = run.current_step
        if run.done or current is None:
            return f"run {run.run_id} is {run.lifecycle}"
        record = run.record(current)
        status = self.status(run, current)
        word = STATUS_MARKS[status][1]
        if current == step.number or status == "running":
            return f"step {current} ({plain(record.title, 60)}) is {word}"
        advice = "y retries it, k skips it" if status in STOPPED else "do it first, or k skips it"
        return f"step {step.number} waits for step {current} ({plain(record.title, 60)}), which is {word}: {advice}"

    async def _tick(self, run: RunState, step: Step) -> None:
        if step.kind != "check":
            self._refuse(f"step {step.number} has no checks to tick", "tick")
            return
        ticked = run.record(step.number).ticked
        item = next((i for i, text in enumerate(step.checks, 1) if text not in ticked), None)
        if item is None:
            self._refuse(f"every check of step {step.number} is ticked", "tick")
            return
        await self._command(TickRunbookCheck(run=run.run_id, step=step.number, item=item), "tick")

    async def _next(self, run: RunState, step: Step) -> None:
        """A note: marked read. Otherwise back to the run's current step."""
        if step.kind == "note" and self.status(run, step.number) in ("pending", "previewed"):
            await self._command(AcknowledgeRunbookStep(run=run.run_id, step=step.number), "next")
            return
        current = run.current_step
        if current is None:
            self._refuse("every step is done: f finishes the run", "next")
        elif current != step.number:
            self.query_one(RunbookSteps).select_step(current)
        else:
            hint = "y retries it" if self.status(run, current) in STOPPED else (
                "r runs it" if step.kind == "command" else "t ticks its checks")
            self._refuse(f"step {step.number} is the one to do: {hint}, or k skips it", "next")

    async def _skip(self, run: RunState, step: Step) -> None:
        reason = await self.app.push_screen_wait(PromptModal(
            f"Skip step {step.number} ({plain(step.title, 60)})",
            "Why is it skipped? (it goes on the run's record and the incident's timeline)",
            placeholder="e.g. no rollout in the last hour",
            validate=lambda value: None if value else "a reason is required"))
        if reason:
            await self._command(SkipRunbookStep(run=run.run_id, step=step.number, reason=reason), "skip")

    # --- the step worker -----------------------------------------------------------------

    def _start(self, step: Step, typed: str | None, reason: str) -> None:
        self.running_step = step.number
        attempts = self._view()
        attempt = attempts[0].record(step.number).attempts + 1 if attempts else 1
        self.query_one(RichLog).write(self._rule(step.number, step.title, attempt))
        self._worker = self.run_worker(self._execute(step.number, typed, reason), name=f"step {step.number}",
                                       group="runner-step", exit_on_error=False)
        self._show()

    async def _execute(self, number: int, typed: str | None, reason: str) -> None:
        """Run step ``number`` through the engine; output streams to the log as it comes."""
        log = self.query_one(RichLog)
        try:
            result = await self.conn.engine.execute(RunRunbookStep(
                run=self.run_id, step=number, typed=typed, reason=reason, on_output=self._output))
        except ConsoleError as e:
            log.write(Text(f"── not run: {plain(str(e), 400)}", style="bold"))
            self.notify(safe_markup(str(e), limit=400), severity="error", title=f"step {number}")
            return
        finally:
            self.running_step = None
            self._flush()  # also after a cancel: what it printed, then its state
        if not self.is_attached:
            return
        outcome = result.message.removeprefix(f"step {number}: ")
        status = self.status(self.conn.engine.run(self.run_id), number)
        mark, word, style = STATUS_MARKS[status]
        log.write(Text(f"── {mark} {word}: {plain(outcome, 300)}", style=f"bold {style}"))
        if status in STOPPED:
            self.notify(f"{safe_markup(plain(outcome))} — y retries it, k skips it (with a reason)",
                        severity="error", title=f"step {number} {word}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The step's end (also a cancel before it began); a key's worker that dies says so."""
        worker = event.worker
        if worker.group == "runner-step" and event.state in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            if worker is self._worker:
                self._worker = None
                self.running_step = None
            if event.state == WorkerState.CANCELLED:
                self.query_one(RichLog).write(Text("── ⊘ cancelled by the operator", style="bold yellow"))
            self._show()
        if worker.group in ("runner-step", "runner-keys") and event.state == WorkerState.ERROR:
            error = worker.error
            self.notify(safe_markup(f"{type(error).__name__}: {error}", limit=400),
                        severity="error", title="runbook command failed")
