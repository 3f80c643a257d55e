"""The runbooks list (``b``): every runbook this console read, the broken ones, and their last run.

Opened from the dashboard, or from an incident's screen: then the runbooks
offered for that incident (their front matter names one of its services, or
matches one of its alerts' labels: :meth:`RunbookLibrary.offered`) come
first, marked ``★``, and a run started here is linked to the incident (its
steps join the timeline).

Enter on a runbook starts a run, after two questions when they apply:

* the latest unfinished run of that runbook (for the same incident; from
  the dashboard, for any) is offered to resume, beside a new run, so a run
  interrupted by a dropped SSH session is picked up rather than started
  over;
* a variable with no value (declared with an empty default, or used and
  not known from the incident) is asked for, one input dialog each — the
  same rule the engine refuses a start by
  (:meth:`~console.model.runbooks.Runbook.missing_variables` over the
  values the engine derives, :meth:`RunbookCommands.values`).

A broken runbook (bad front matter, an unclosed code block, an unknown
``conn.`` key) is listed under the table with its error and line; the others
still load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from console.engine.runbooks import StartRunbook
from console.engine.snapshot import Snapshot
from console.errors import ConsoleError
from console.model.runbook_runs import RunState
from console.model.runbooks import Runbook
from console.model.text import plural
from console.ui.modals.declare import Choice, ChoiceModal
from console.ui.modals.prompt import PromptModal
from console.ui.text import format_age, safe_markup
from console.ui.widgets.runbook_steps import StatusOf, plain, run_progress

if TYPE_CHECKING:
    from console.ui.app import ConnApp

OFFERED_MARK = "★"

Row = tuple[Text, ...]

WIDE_MIN_WIDTH = 100
"""From this many columns the table has a title column."""


class RunbooksScreen(Screen[None]):
    """Runbooks: name, title, service, steps, last run; Enter starts (or resumes) a run."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="runbooks-back"),
        # Over the table's own Enter, so the footer names what it does.
        Binding("enter", "start", "Start/resume", id="runbooks-start", priority=True),
    ]

    DEFAULT_CSS = """
    RunbooksScreen #runbooks-header { height: auto; max-height: 2; padding: 0 1; background: $panel; }
    RunbooksScreen #runbooks-table { height: 1fr; border: none; }
    RunbooksScreen #runbooks-detail {
        height: auto; max-height: 4; padding: 0 1; border-top: solid $panel-lighten-2;
    }
    RunbooksScreen #runbooks-broken {
        display: none; height: auto; max-height: 6; padding: 0 1; color: $error;
        border-top: solid $panel-lighten-2;
    }
    RunbooksScreen #runbooks-broken.-shown { display: block; }
    """

    def __init__(self, incident_id: str | None = None) -> None:
        """``incident_id``: list the runbooks offered for it first, and link runs to it."""
        super().__init__()
        self.incident_id = incident_id
        self._rows: list[tuple[str, Row]] = []
        self._wide: bool | None = None
        self._starting = False
        self._shown: dict[str, Text] = {}

    @property
    def conn(self) -> ConnApp:
        return cast("ConnApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static("", id="runbooks-header")
        yield DataTable[Text](id="runbooks-table", cursor_type="row")
        yield Static("", id="runbooks-detail")
        yield Static("", id="runbooks-broken")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._show, init=True)
        self.query_one(DataTable).focus()

    # --- what is shown -------------------------------------------------------------------

    def offered(self, snapshot: Snapshot) -> list[str]:
        """Names of the runbooks offered for the incident (none without one)."""
        panel = snapshot.incident(self.incident_id) if self.incident_id else None
        if panel is None:
            return []
        return [r.name for r in self.conn.engine.offered_runbooks(panel.state.id)]

    def ordered(self, snapshot: Snapshot) -> list[Runbook]:
        """The runbooks in the order listed: offered first, then by name."""
        offered = self.offered(snapshot)
        return sorted(snapshot.runbooks.runbooks,
                      key=lambda r: (r.name not in offered, r.name))

    def _show(self, snapshot: Snapshot | None) -> None:
        if snapshot is None:
            return
        offered = self.offered(snapshot)
        header = Text("Runbooks", style="bold")
        if self.incident_id:
            header.append(f" for {plain(self.incident_id, 40)}", style="bold")
            header.append(f": {OFFERED_MARK} offered (its service or alert matches) come first; "
                          "a run started here goes on its timeline" if offered else
                          ": none matches its services or alerts; a run started here goes on its timeline")
        header.append("\n")
        header.append(f"{plural(len(snapshot.runbooks.runbooks), 'runbook')} · "
                      "⏎ starts a run (or resumes an unfinished one) · Esc back", style="dim")
        self._update("#runbooks-header", header)
        self._show_table(snapshot, offered)
        self._show_broken(snapshot)
        self._show_detail()

    def _show_table(self, snapshot: Snapshot, offered: list[str]) -> None:
        now = self.conn.clock.now()
        status_of = self.conn.engine.runbook_commands.status
        # Narrower than WIDE_MIN_WIDTH, the title goes to the line under the table: with it,
        # a run's state ("step 4/6 ⚠ interrupted · 15m ago") would not fit 80 columns.
        wide = self.app.size.width >= WIDE_MIN_WIDTH
        rows: list[tuple[str, Row]] = []
        for runbook in self.ordered(snapshot):
            name = Text(no_wrap=True)
            if offered:
                name.append(f"{OFFERED_MARK} " if runbook.name in offered else "  ", style="bold")
            name.append(plain(runbook.name, 40), style="bold")
            last = snapshot.runbooks.last_run(runbook.name)
            title = [Text(plain(runbook.title, 32), no_wrap=True, overflow="ellipsis")] if wide else []
            rows.append((runbook.name, (
                name, *title,
                Text(plain(runbook.service or "any", 20), style="" if runbook.service else "dim"),
                Text(str(len(runbook.steps)), justify="right"),
                self._last_run(last, now, status_of) if last else Text("never run", style="dim"),
            )))
        if rows == self._rows:
            return
        table = self.query_one(DataTable)
        selected = self.selected_name
        self._rows = rows
        table.clear(columns=wide != self._wide)
        if wide != self._wide:
            self._wide = wide
            table.add_columns("runbook", *(["title"] if wide else []), "service", "steps", "last run")
        for key, row in rows:
            table.add_row(*row, key=key)
        names = [key for key, _ in rows]
        if selected in names:
            table.move_cursor(row=names.index(selected), animate=False)

    @staticmethod
    def _last_run(run: RunState, now: float, status_of: StatusOf) -> Text:
        text = run_progress(run, status_of)
        when = run.ended_at or run.started_at
        if when is not None:
            text.append(f" · {format_age(now - when)} ago", style="dim")
        return text

    def _show_broken(self, snapshot: Snapshot) -> None:
        broken = snapshot.runbooks.broken
        text = Text()
        for index, bad in enumerate(broken):
            if index:
                text.append("\n")
            text.append("⚠ broken ", style="bold")
            text.append(plain(bad.describe(), 300))
        self._update("#runbooks-broken", text)
        self.query_one("#runbooks-broken").set_class(bool(broken), "-shown")

    def _show_detail(self) -> None:
        runbook = self.selected
        text = Text()
        if runbook is None:
            text.append("No runbooks: put *.md files under [runbooks] paths in the config", style="dim")
        else:
            kinds = [s.kind for s in runbook.steps]
            parts = [plural(kinds.count(kind), kind) for kind in ("command", "check", "note") if kind in kinds]
            text.append(plain(runbook.title, 80), style="bold")
            text.append(f" · {plain(runbook.name, 60)}.md · {plural(len(kinds), 'step')}: {', '.join(parts)}")
            dangerous = sum(1 for s in runbook.steps if s.dangerous)
            if dangerous:
                text.append(f" · ⚠ {dangerous} dangerous", style="bold")
            if runbook.alerts:
                text.append(f" · alerts {plain(', '.join(runbook.alerts), 80)}", style="dim")
            if runbook.summary:
                text.append("\n")
                text.append(plain(runbook.summary, 300))
        text.no_wrap = False
        self._update("#runbooks-detail", text)

    def _update(self, selector: str, text: Text) -> None:
        if self._shown.get(selector) != text:
            self._shown[selector] = text
            self.query_one(selector, Static).update(text)

    def on_resize(self) -> None:
        self._show(self.conn.snapshot)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    @property
    def selected_name(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    @property
    def selected(self) -> Runbook | None:
        snapshot = self.conn.snapshot
        name = self.selected_name
        if snapshot is None or name is None:
            return None
        return next((r for r in snapshot.runbooks.runbooks if r.name == name), None)

    # --- keys ----------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_start(self) -> None:
        runbook = self.selected
        if runbook is None:
            self.notify("no runbook selected", severity="warning", title="runbook")
            return
        if self._starting:  # a second Enter while the first one's start is on its way
            return
        self._starting = True
        self._start(runbook)

    # Not `exclusive`: that would cancel a start half way through (the run started, no runner).
    @work(exit_on_error=False, group="runbooks")
    async def _start(self, runbook: Runbook) -> None:
        try:
            await self._start_or_resume(runbook)
        finally:
            self._starting = False

    async def _start_or_resume(self, runbook: Runbook) -> None:
        from console.ui.screens.runner import RunnerScreen

        resume = await self._resume_choice(runbook)
        if resume is False:
            return
        if isinstance(resume, str):
            self.app.push_screen(RunnerScreen(resume))
            return
        values = await self._ask_values(runbook)
        if values is None:
            return
        try:
            result = await self.conn.engine.execute(StartRunbook(
                runbook=runbook.name, incident=self.incident_id, values=values))
        except ConsoleError as e:
            self.notify(safe_markup(str(e), limit=400), severity="error", title=f"run {runbook.name}")
            return
        self.notify(safe_markup(result.message, limit=200), title="runbook")
        self.app.push_screen(RunnerScreen(result.detail.run_id))

    async def _resume_choice(self, runbook: Runbook) -> str | bool:
        """The run to resume (its id), True for a new run, False when cancelled."""
        snapshot = self.conn.snapshot
        runs = snapshot.runbooks.runs if snapshot is not None else ()
        # For an incident, its own runs; from the dashboard, any (a commander whose session
        # dropped finds the incident's run again with `b`).
        unfinished = [r for r in runs if r.runbook == runbook.name and not r.done
                      and (self.incident_id is None or r.incident == self.incident_id)]
        if not unfinished:
            return True
        latest = unfinished[-1]
        when = format_age(self.conn.clock.now() - (latest.started_at or 0))
        label = Text(f"resume {latest.run_id}" + (f" (for {plain(latest.incident, 40)})" if latest.incident else "")
                     + " — ")
        label.append_text(run_progress(latest, self.conn.engine.runbook_commands.status))
        label.append(f" · started {when} ago by {plain(latest.started_by, 40)}", style="dim")
        picked = await self.app.push_screen_wait(ChoiceModal(
            f"{runbook.name} has an unfinished run", [
                Choice(latest.run_id, label),
                Choice("", Text(f"start a new run of {plain(runbook.name, 60)}")),
            ], highlighted=latest.run_id, hint="↑↓ choose · Enter confirms · Esc cancels"))
        if picked is None:
            return False
        return picked.value or True

    async def _ask_values(self, runbook: Runbook) -> dict[str, str] | None:
        """A value for each variable the run has none for; None when the operator cancels."""
        try:
            known = self.conn.engine.runbook_commands.values(runbook, self.incident_id, {})
        except ConsoleError as e:
            self.notify(safe_markup(str(e), limit=400), severity="error", title=f"run {runbook.name}")
            return None
        missing = runbook.missing_variables(known)
        values: dict[str, str] = {}
        for index, name in enumerate(missing, start=1):
            value = await self.app.push_screen_wait(PromptModal(
                f"{runbook.name} needs {name} ({index} of {len(missing)})",
                f"The value of ${{{name}}} for this run:",
                validate=_one_line))
            if value is None:
                self.notify(f"{safe_markup(runbook.name)} was not started", title="runbook")
                return None
            values[name] = value
        return values

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A start that dies says so (a bug, never silent)."""
        if event.worker.group == "runbooks" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(safe_markup(f"{type(error).__name__}: {error}", limit=400),
                        severity="error", title="runbook command failed")


def _one_line(value: str) -> str | None:
    if not value:
        return "a value is required"
    if not value.isprintable():
        return "one line of text, without control characters"
    return None
