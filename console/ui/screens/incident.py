"""The incident screen: one incident's header, clocks and roles over its timeline.

Opened with ``enter`` on the dashboard's incidents strip, ``I`` (the newest
open incident) or the palette's "Incident INC-n". The header says what the
commander needs at a glance — severity (labelled and coloured), status,
title, services, the clocks (open for, acknowledgement against the
severity's target, next update due) and who holds each role — and follows
every snapshot; the clocks tick with a 1 s timer.

The timeline is a log widget, written to as the incident's entries arrive:
the screen remembers the last log position it wrote and appends only what
is newer, so a long incident is never re-rendered and the operator's scroll
position holds. Pinning an entry that is already written appends a line
saying so (a log is not edited in place); entries pinned before the screen
opened carry the ``PIN`` mark on their own line, and the header lists the
latest pinned one.

Keys (each in the footer, all usable at 80x24 with the keyboard alone):
``a`` acknowledge, ``s`` status (a picker), ``v`` severity (a picker and a
reason), ``n`` note, ``p`` pin or unpin an entry (a picker of recent ones,
starting on the newest unpinned note), ``r`` hand a role over (a picker and
the new holder), Esc back. Each runs one engine command; a refusal shows as
an error toast in the engine's words.

Runbooks: under the header, the runbooks offered for the incident (their
front matter names one of its services or matches one of its alerts) and
its runs, one line each (or that ``b`` lists them all when none is
offered); ``b`` opens the runbooks list with the offered ones first, and a
run started there is linked to the incident (its steps join this timeline).
Without runbooks, nothing is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, cast

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static
from textual.worker import Worker, WorkerState

from console.engine.commands import Command
from console.engine.incidents import (
    AcknowledgeIncident,
    AssignIncidentRole,
    NoteIncident,
    OpenIncident,
    PinIncidentEntry,
    SetIncidentSeverity,
    SetIncidentStatus,
)
from console.engine.snapshot import IncidentPanel, Snapshot
from console.errors import ConsoleError
from console.model.incidents import ROLES, STATUSES, Entry
from console.model.runbook_runs import RunState
from console.model.sanitize import clean_text
from console.secrets import redact
from console.ui.modals.declare import Choice, ChoiceModal, DeclareModal, severity_option
from console.ui.modals.prompt import PromptModal
from console.ui.text import safe_markup
from console.ui.widgets.incident_strip import (
    clock_parts,
    severity_label,
    status_word,
    title_text,
)
from console.ui.widgets.runbook_steps import StatusOf, run_progress

if TYPE_CHECKING:
    from console.ui.app import ConnApp

MAX_LOG_LINES = 5000
"""Timeline lines the log keeps (as many as an incident keeps entries; the store keeps all)."""

PIN_CHOICES = 20
"""Recent entries offered by ``p``."""

PIN_MARK = "PIN"

RUN_LINES = 3
"""Runbook runs of the incident listed under the header (the latest ones)."""


def entry_time(at: float) -> str:
    """An entry's clock time, as the activity pane shows times."""
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


def entry_line(entry: Entry, *, pinned: bool | None = None) -> Text:
    """One timeline entry on one line: time, ``PIN`` when pinned, kind, what happened, who (literal)."""
    pinned = entry.pinned if pinned is None else pinned
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(entry_time(entry.at), style="dim")
    text.append(" ")
    text.append(PIN_MARK if pinned else "   ", style="bold reverse" if pinned else "")
    text.append(f" {entry.kind:<8} ", style="bold")
    text.append(clean_text(redact(entry.text), limit=300))
    if entry.actor:
        text.append(f" · {clean_text(entry.actor, limit=60)}", style="dim")
    return text


def entry_row(entry: Entry, *, pinned: bool | None = None, kind: str | None = None) -> Table:
    """A timeline entry for the log: its text wraps under itself, the time and kind stay in
    their columns (a note may run to 4000 characters)."""
    pinned = entry.pinned if pinned is None else pinned
    row = Table.grid(padding=(0, 1), expand=True)
    row.add_column(no_wrap=True, width=8)
    row.add_column(no_wrap=True, width=3)
    row.add_column(no_wrap=True, width=8)
    row.add_column(ratio=1, overflow="fold")
    text = Text(clean_text(redact(entry.text), limit=4000).strip())
    if entry.actor:
        text.append(f" · {clean_text(entry.actor, limit=60)}", style="dim")
    row.add_row(Text(entry_time(entry.at), style="dim"),
                Text(PIN_MARK, style="bold reverse") if pinned else Text(""),
                Text(kind or entry.kind, style="bold"), text)
    return row


def pin_row(entry: Entry, pinned: bool) -> Table:
    """The row appended when an entry already written is pinned or unpinned later."""
    row = Table.grid(padding=(0, 1), expand=True)
    row.add_column(no_wrap=True, width=8)
    row.add_column(no_wrap=True, width=3)
    row.add_column(no_wrap=True, width=8)
    row.add_column(ratio=1, overflow="fold")
    row.add_row(Text("↑", style="dim", justify="right"),
                Text(PIN_MARK, style="bold reverse") if pinned else Text(""),
                Text("pinned" if pinned else "unpinned", style="bold"),
                Text(f"{entry_time(entry.at)} {entry.kind}: {clean_text(redact(entry.text), limit=300)}"))
    return row


def header_text(panel: IncidentPanel, now: float) -> Text:
    """The header: what, how bad, where it stands, its clocks, who holds each role, the latest pin."""
    state = panel.state
    text = severity_label(state.severity)
    text.append(f" {state.id} ", style="bold")
    text.append(status_word(state.status).upper(), style="bold italic")
    if state.reopened:
        text.append(f" (reopened {state.reopened}×)", style="italic")
    text.append("  ")
    text.append(title_text(state.title, limit=200), style="bold")
    text.append("\n")
    text.append_text(clock_parts(panel, now))
    same_day = datetime.fromtimestamp(state.declared_at).date() == datetime.fromtimestamp(now).date()
    declared = datetime.fromtimestamp(state.declared_at).strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")
    text.append(f" · declared {declared} by {clean_text(state.declared_by, limit=40)}", style="dim")
    text.append("\n")
    services = ", ".join(clean_text(s, limit=40) for s in state.services) or "none named"
    text.append(f"services {services}")
    for role in ROLES:
        holder = state.holder(role)
        text.append(f" · {role} ")
        text.append(clean_text(holder, limit=40) if holder else "—", style="bold" if holder else "dim")
    pinned = state.pinned
    if pinned:
        latest = pinned[-1]
        text.append("\n")
        text.append(f"{PIN_MARK}", style="bold reverse")
        text.append(f" {entry_time(latest.at)} {latest.kind}: {clean_text(redact(latest.text), limit=300)}")
        if len(pinned) > 1:
            text.append(f" (+{len(pinned) - 1} more pinned)", style="dim")
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def runbooks_text(offered: Sequence[str], runs: Sequence[RunState], status_of: StatusOf, *,
                  known: int = 0) -> Text:
    """"runbooks: high-error-rate (b)", then each run of the incident on its own line
    (the latest :data:`RUN_LINES`). With none offered and no run, a line saying ``b`` lists
    the ``known`` runbooks; empty when there are none."""
    text = Text()
    if offered:
        text.append("runbooks: ", style="bold")
        text.append(", ".join(clean_text(name, limit=60) for name in offered))
        text.append(" (b)", style="dim")
    elif known and not runs:
        text.append("runbooks: ", style="bold")
        text.append(f"none names its services or alerts; b lists all {known}", style="dim")
    shown = runs[-RUN_LINES:]
    if len(runs) > len(shown):
        if text:
            text.append("\n")
        text.append(f"+{len(runs) - len(shown)} earlier runs (b lists them)", style="dim")
    for run in shown:
        if text:
            text.append("\n")
        text.append("run ", style="bold")
        text.append(f"{clean_text(run.run_id, limit=60)}: ")
        text.append_text(run_progress(run, status_of))
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


async def run_command(app: ConnApp, command: Command, title: str) -> bool:
    """Execute ``command``; the result or the engine's refusal shows as a toast."""
    try:
        result = await app.engine.execute(command)
    except ConsoleError as e:  # CommandError, ConcurrencyError, ActionError
        app.notify(safe_markup(str(e), limit=400), severity="error", title=title)
        return False
    app.notify(safe_markup(result.message, limit=300), title="incident")
    return True


async def declare(app: ConnApp, service: str | None) -> None:
    """``i``: the declare dialog, then ``OpenIncident`` (the dashboard's strip then shows it)."""
    config = app.engine.config
    result = await app.push_screen_wait(DeclareModal(
        config.incidents.severities, list(config.services), selected_service=service))
    if result is not None:
        await run_command(app, OpenIncident(title=result.title, services=result.services,
                                            severity=result.severity), "declare an incident")


class IncidentScreen(Screen[None]):
    """One incident: header and timeline; keys to acknowledge, change and annotate it."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="incident-back"),
        Binding("a", "acknowledge", "Ack", id="incident-ack"),
        Binding("s", "status", "Status", id="incident-status"),
        Binding("v", "severity", "Severity", id="incident-severity"),
        Binding("n", "note", "Note", id="incident-note"),
        Binding("p", "pin", "Pin", id="incident-pin"),
        Binding("r", "role", "Role", id="incident-role"),
        # Out of the compact footer (it fills 80 columns); the runbooks line names it.
        Binding("b", "runbooks", "Runbooks", id="runbooks-open", show=False),
    ]

    DEFAULT_CSS = """
    IncidentScreen #incident-header {
        height: auto; max-height: 4; padding: 0 1; background: $panel;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    IncidentScreen #incident-runbooks {
        display: none; height: auto; max-height: 4; padding: 0 1; background: $panel;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    IncidentScreen #incident-runbooks.-shown { display: block; }
    IncidentScreen #incident-timeline {
        height: 1fr; border-top: solid $panel-lighten-2; padding: 0 1; background: $surface;
        overflow-y: auto;
    }
    """

    def __init__(self, incident_id: str) -> None:
        super().__init__()
        self.incident_id = incident_id
        self._written = -1
        """The log position of the newest entry written to the timeline."""
        self._pins: set[int] = set()
        """Positions of the written entries the timeline shows as pinned."""
        self._header: Text | None = None
        self._runbooks: Text | None = None

    @property
    def conn(self) -> ConnApp:
        return cast("ConnApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static("", id="incident-header")
        yield Static("", id="incident-runbooks")
        timeline = RichLog(id="incident-timeline", max_lines=MAX_LOG_LINES, wrap=True, min_width=20)
        timeline.border_title = "timeline"
        yield timeline
        # Compact, without the palette's entry (ctrl+p still opens it): every key of this
        # screen and the app's fits 80 columns.
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._show, init=True)
        if self.conn.ticking:
            self.set_interval(1.0, self._tick)
        self.query_one(RichLog).focus()

    @property
    def panel(self) -> IncidentPanel | None:
        """The incident as of the app's latest snapshot."""
        snapshot = self.conn.snapshot
        return snapshot.incident(self.incident_id) if snapshot is not None else None

    def _show(self, snapshot: Snapshot | None) -> None:
        panel = self.panel
        if panel is None:
            self._set_header(Text(f"{self.incident_id}: not found (yet) in this console's log",
                                  style="bold"))
            return
        self._show_header(panel)
        self._show_runbooks(panel, snapshot)
        self._append(panel.state.entries)

    def _tick(self) -> None:
        if (panel := self.panel) is not None:
            self._show_header(panel)

    def _show_header(self, panel: IncidentPanel) -> None:
        self._set_header(header_text(panel, self.conn.clock.now()))

    def _set_header(self, text: Text) -> None:
        if text != self._header:  # snapshots come several times a second
            self._header = text
            self.query_one("#incident-header", Static).update(text)

    def _show_runbooks(self, panel: IncidentPanel, snapshot: Snapshot | None) -> None:
        """The runbooks offered for the incident, and its runs (one line each)."""
        state = panel.state
        offered = self.conn.engine.offered_runbooks(state.id)
        runs = snapshot.runbooks.for_incident(state.id) if snapshot is not None else ()
        text = runbooks_text([r.name for r in offered], runs, self.conn.engine.runbook_commands.status,
                             known=len(snapshot.runbooks.runbooks) if snapshot is not None else 0)
        if text != self._runbooks:
            self._runbooks = text
            line = self.query_one("#incident-runbooks", Static)
            line.update(text)
            line.set_class(bool(text), "-shown")

    def _append(self, entries: Sequence[Entry]) -> None:
        """Write the entries newer than the last one written; note pins of older ones."""
        log = self.query_one(RichLog)
        for entry in entries:
            if entry.position <= self._written:
                if entry.pinned != (entry.position in self._pins):
                    log.write(pin_row(entry, entry.pinned), expand=True)
                    self._pins.symmetric_difference_update({entry.position})
                continue
            log.write(entry_row(entry), expand=True)
            self._written = entry.position
            if entry.pinned:
                self._pins.add(entry.position)

    # --- keys ----------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_runbooks(self) -> None:
        """``b``: the runbooks, those offered for this incident first; a run started is linked to it."""
        from console.ui.screens.runbooks import RunbooksScreen

        self.app.push_screen(RunbooksScreen(self.incident_id))

    def action_acknowledge(self) -> None:
        self._flow("ack")

    def action_status(self) -> None:
        self._flow("status")

    def action_severity(self) -> None:
        self._flow("severity")

    def action_note(self) -> None:
        self._flow("note")

    def action_pin(self) -> None:
        self._flow("pin")

    def action_role(self) -> None:
        self._flow("role")

    @work(exclusive=True, exit_on_error=False, group="incident")
    async def _flow(self, kind: str) -> None:
        panel = self.panel
        if panel is None:
            self.notify(f"{safe_markup(self.incident_id)} is not in this console's log",
                        severity="warning", title="incident")
            return
        command = await self._ask(kind, panel)
        if command is not None:
            await run_command(self.conn, command, f"{kind}: {self.incident_id}")

    async def _ask(self, kind: str, panel: IncidentPanel) -> Command | None:
        """The dialog behind a key, and the command it asks for (None: cancelled)."""
        state = panel.state
        app = self.conn
        if kind == "ack":
            return AcknowledgeIncident(incident=state.id)
        if kind == "note":
            text = await app.push_screen_wait(PromptModal(
                f"Note on {state.id}", "What was seen or done (it goes on the timeline):",
                placeholder="e.g. rolled checkout back to v41", validate=lambda v: None if v else "type the note"))
            return NoteIncident(incident=state.id, text=text) if text else None
        if kind == "status":
            after = STATUSES.index(state.status) + 1
            choices = [Choice(s, Text(status_word(s) + (" (now)" if s == state.status else ""),
                                      style="bold" if s == state.status else ""))
                       for s in STATUSES]
            picked = await app.push_screen_wait(ChoiceModal(
                f"{state.id} is {status_word(state.status)}: move it to",
                choices, highlighted=STATUSES[min(after, len(STATUSES) - 1)],
                hint="Forward stamps skipped statuses; back from resolved reopens · Enter · Esc"))
            return SetIncidentStatus(incident=state.id, status=picked.value) if picked else None
        if kind == "severity":
            config = app.engine.config.incidents
            choices = [Choice(name, severity_option(name, config.severity(name)))
                       for name in config.severities]
            picked = await app.push_screen_wait(ChoiceModal(
                f"{state.id} is {state.severity}: change it to", choices, highlighted=state.severity,
                ask="reason (required; it goes on the timeline)"))
            return (SetIncidentSeverity(incident=state.id, severity=picked.value, reason=picked.text)
                    if picked else None)
        if kind == "role":
            choices = [Choice(role, Text(f"{role:<10} now {clean_text(state.holder(role) or '—', limit=40)}"))
                       for role in ROLES]
            picked = await app.push_screen_wait(ChoiceModal(
                f"Hand a role of {state.id} over", choices, ask="to whom (a user name)"))
            return (AssignIncidentRole(incident=state.id, role=picked.value, user=picked.text)
                    if picked else None)
        if kind == "pin":
            recent = list(reversed(state.entries[-PIN_CHOICES:]))
            if not recent:
                return None
            start = next((e for e in recent if e.kind == "note" and not e.pinned),
                         next((e for e in recent if not e.pinned), recent[0]))
            choices = [Choice(str(e.position), entry_line(e)) for e in recent]
            picked = await app.push_screen_wait(ChoiceModal(
                f"Pin or unpin an entry of {state.id} (newest first)", choices,
                highlighted=str(start.position), hint="Enter pins (or unpins a PIN entry) · Esc cancels"))
            if picked is None:
                return None
            entry = next(e for e in recent if str(e.position) == picked.value)
            return PinIncidentEntry(incident=state.id, entry=entry.position, pinned=not entry.pinned)
        return None

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A key's worker that dies says so (a bug, never silent)."""
        if event.worker.group == "incident" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(safe_markup(f"{type(error).__name__}: {error}", limit=400),
                        severity="error", title="incident command failed")
