"""The dashboard: every service at a glance, the selected one in detail, recent activity.

Snapshots arrive several times a second and the clock ticks every second, so
everything here changes the screen only when what it shows changed: the
table repaints changed rows, the panels changed cells, and the activity pane
is replaced only when its text differs.

The detail gets the room it needs and the activity pane the rest, in both
layouts: one-line panels (80x24) or boxes (120x40). When the detail needs
more than there is, the activity gives up lines down to its rule and two
events before the detail cuts anything (and the detail cuts rows before it
drops a column header).

With rollouts configured, the rollout panel sits under the services table
(compact at 80x24, full from ``FULL_MIN_HEIGHT`` rows; the detail and the
activity share what is left, as before), and an automatic rollback counting
down puts a line in the error colour under the header. ``a``, ``h`` and ``R``
act on the rollout the panel shows (:mod:`console.ui.rollout_commands`);
``enter`` on a criterion row opens the why view.

Open incidents are listed under the header by the incidents strip
(:mod:`console.ui.widgets.incident_strip`, hidden when there are none): ``i``
declares one, ``I`` opens the newest open one, ``enter`` on a strip line
opens that one (:mod:`console.ui.screens.incident`); an acknowledgement
that goes overdue rings the bell once. ``b`` lists the runbooks
(:mod:`console.ui.screens.runbooks`); it stays out of the footer, like the
rollout keys, and the help names it.

The services table is ordered worst first (``[ui] order``; the `o` key
switches to config order and back), and the header counts the services in
each trouble; both come from :mod:`console.model.triage`, judged once per
snapshot or tick here and handed down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from console.engine.snapshot import RolloutPanel, Snapshot
from console.errors import ActionError
from console.model import triage
from console.model.describe import describe_change
from console.model.sanitize import clean_text
from console.ui import rollout_commands
from console.ui.modals.fault import describe_faults
from console.ui.text import format_age, safe_markup, safe_text
from console.ui.widgets.incident_strip import IncidentStrip
from console.ui.widgets.rollout_panel import FULL_MIN_HEIGHT, RolloutPane
from console.ui.widgets.rollout_text import countdowns, urgency
from console.ui.widgets.service_detail import (
    WIDE_MIN_WIDTH,
    ServiceDetail,
    narrow_height_of,
    wide_height_of,
)
from console.ui.widgets.service_table import Order, ServiceTable, troubles_of
from console.ui.widgets.top_bar import TopBar

if TYPE_CHECKING:
    from console.ui.app import ConnApp

ACTIVITY_MIN = 5
"""The activity pane's height before the dashboard has sized it: its rule and four events."""

ACTIVITY_FLOOR = 3
"""The least the activity keeps when the detail needs more: its rule and two events."""

DEMO_ONLY = "fault keys work in `conn demo` only: this console watches real services"


def activity_text(snapshot: Snapshot, *, limit: int) -> Text:
    """The newest events first, one line each: time, who, where, what changed, why."""
    events = list(reversed(snapshot.recent_events[-limit:])) if limit > 0 else []
    if not events:
        return Text("no events yet — changes you make appear here", style="dim")
    text = Text(no_wrap=True, overflow="ellipsis")
    for index, event in enumerate(events):
        if index:
            text.append("\n")
        when = datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
        text.append(f"{when} ", style="dim")
        text.append(clean_text(event.actor, limit=24), style="bold")
        text.append(f" {clean_text(event.stream, limit=40)}: {describe_change(event)}")
        if event.reason:
            text.append(f" — {clean_text(event.reason, limit=80)}", style="italic")
    return text


def detail_height(
    snapshot: Snapshot,
    name: str | None,
    *,
    layout: Literal["wide", "wide-cut", "narrow"] = "wide",
    width: int = 0,
    now: float = 0.0,
) -> int:
    """Lines the detail needs for the service ``name`` (0: none selected).

    Args:
        snapshot: the state shown.
        name: the selected service.
        layout: "wide" (boxes, a long signal detail on a line of its own),
            "wide-cut" (boxes, long details cut to their line) or "narrow".
        width: the detail's width, for "wide".
        now: the clock time, for "wide" (a stale row's details read differently).
    """
    view = snapshot.service(name) if name else None
    if view is None:
        return 0
    baseline = view.live.baseline if view.live else None
    compared = bool(baseline and snapshot.service(baseline))
    if layout == "narrow":
        return narrow_height_of(view, compared)
    if layout == "wide-cut":
        return wide_height_of(view, compared)
    return wide_height_of(view, compared, width, now)


class DashboardScreen(Screen[None]):
    """Services, the selected service's panels, and the last events."""

    @property
    def conn(self) -> ConnApp:
        """The app, typed: the engine, the clock and the demo fleet's URLs."""
        return cast("ConnApp", self.app)

    # The fault keys are bound twice under the same ids (so a [keymap] moves both):
    # in `conn demo` they act; anywhere else the hidden twin says why nothing happens.
    # The order key is bound twice the same way: the footer names what it switches to.
    # The rollout keys stay out of the footer (at 80 columns it would push out `?`): the
    # panel names them where they apply ("a advances", "h hold, R roll back now").
    BINDINGS = [
        Binding("a", "rollout('advance')", "Advance", id="rollout-advance", show=False),
        Binding("h", "rollout('hold')", "Hold/resume", id="rollout-hold", show=False),
        Binding("R", "rollout('rollback')", "Roll back", id="rollout-rollback", show=False),
        Binding("r", "next_rollout", "Next rollout", id="rollout-next", show=False),
        Binding("i", "declare", "Declare", id="incident-declare", show=False),
        Binding("I", "incident", "Incident", id="incident-open"),
        Binding("b", "runbooks", "Runbooks", id="runbooks-open", show=False),
        Binding("o", "order('config')", "Config order", id="services-order"),
        Binding("o", "order('trouble')", "Worst first", id="services-order"),
        Binding("x", "demo_fault", "Fault", id="demo-fault", show=True),
        Binding("c", "demo_clear", "Clear", id="demo-clear", show=True),
        Binding("x", "demo_only", "Fault", id="demo-fault", show=False),
        Binding("c", "demo_only", "Clear", id="demo-clear", show=False),
    ]

    DEFAULT_CSS = """
    DashboardScreen #faults {
        display: none; height: auto; max-height: 3; padding: 0 1; color: $warning; text-style: bold;
        text-overflow: ellipsis;
    }
    DashboardScreen #faults.-shown { display: block; }
    DashboardScreen #countdown {
        display: none; height: auto; max-height: 3; padding: 0 1;
        background: $error; color: $text; text-style: bold;
    }
    DashboardScreen #countdown.-shown { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._activity: Text | None = None
        self._faults: dict[str, dict[str, object]] = {}
        self._faults_line: Text | None = None
        self._countdown: str | None = None
        self._picked: str | None = None
        """The rollout the operator chose with `r`; None: the most urgent one."""

    def compose(self) -> ComposeResult:
        config = self.conn.engine.config
        yield TopBar()
        yield Static("", id="countdown")
        yield IncidentStrip(clock=self.conn.clock, ticking=self.conn.ticking, id="incidents")
        yield ServiceTable(id="services")
        yield Static("", id="faults")
        if config.rollouts:
            yield RolloutPane(config=config, demo=bool(self.conn.demo_urls), id="rollout")
        yield ServiceDetail(id="detail")
        yield Static("", id="activity")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ServiceTable).order = self.conn.engine.config.ui.order
        self.watch(self.app, "snapshot", self._show, init=True)
        if self.conn.ticking:
            self.set_interval(1.0, self._tick)
        self.query_one(ServiceTable).focus()
        if self.conn.demo_urls:
            self._read_faults(tuple(self.conn.demo_urls))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("rollout", "next_rollout"):
            return self._rollout_key(action)
        if action == "order":
            return parameters != (self.query_one(ServiceTable).order,)
        if action == "incident":
            # Shown in the footer only while an incident is open (the strip lists them).
            return bool(self._snapshot and self._snapshot.open_incidents)
        if action in ("demo_fault", "demo_clear"):
            return bool(self.conn.demo_urls)
        if action == "demo_only":
            return not self.conn.demo_urls
        return True

    @property
    def _snapshot(self) -> Snapshot | None:
        return self.conn.snapshot

    def _now(self) -> float:
        return self.conn.clock.now()

    def _show(self, snapshot: Snapshot | None) -> None:
        if snapshot is None:
            return
        self.query_one(TopBar).snapshot = snapshot
        self._show_incidents(snapshot)
        self._show_services(snapshot)
        self._show_rollout(snapshot)
        self._show_detail()
        self._show_activity()
        # After the next layout: the table may have grown, and sizes are known then.
        self.call_after_refresh(self._fit)

    def _tick(self) -> None:
        snapshot = self._snapshot
        if snapshot is not None:
            self._show_services(snapshot)  # rows go stale as the clock moves
            self._show_rollout(snapshot)  # bake timers, holds and countdowns tick
            self.query_one(ServiceDetail).now = self._now()

    def _show_services(self, snapshot: Snapshot) -> None:
        """The table and the header's summary, from one judgement of every service."""
        now = self._now()
        troubles = troubles_of(snapshot.services, now)
        self.query_one(ServiceTable).show(snapshot.services, now, troubles)
        self.query_one(TopBar).summary = triage.summary(troubles.values())

    def _show_incidents(self, snapshot: Snapshot) -> None:
        """The strip's slices of the snapshot (it ticks its clocks itself)."""
        strip = self.query_one(IncidentStrip)
        had = bool(strip.incidents)
        strip.now = self._now()
        strip.incidents = snapshot.open_incidents
        strip.outbox = snapshot.notify
        strip.alerts = snapshot.alerts
        if had != bool(strip.incidents):
            self.refresh_bindings()  # `I` shows in the footer while an incident is open

    def _show_detail(self) -> None:
        snapshot = self._snapshot
        if snapshot is None:
            return
        detail = self.query_one(ServiceDetail)
        name = self.query_one(ServiceTable).selected
        view = snapshot.service(name) if name else None
        detail.now = self._now()
        detail.view = view
        baseline = view.live.baseline if view and view.live else None
        detail.baseline = snapshot.service(baseline) if baseline else None
        self._fit()  # before the detail lays itself out for the new service
        self._show_faults()

    def _show_activity(self) -> None:
        """Replace the events only when they read differently (``update`` always repaints)."""
        snapshot = self._snapshot
        if snapshot is None:
            return
        activity = self.query_one("#activity", Static)
        lines = activity.content_size.height or ACTIVITY_MIN - 1
        text = activity_text(snapshot, limit=lines)
        if text != self._activity:
            self._activity = text
            activity.update(text, layout=False)  # its height never follows its text

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """Split the room below the table between the detail and the activity pane."""
        snapshot = self._snapshot
        detail = self.query_one(ServiceDetail)
        activity = self.query_one("#activity", Static)
        room = detail.outer_size.height + activity.outer_size.height
        if snapshot is None or not room:
            return
        if self.conn.engine.config.rollouts:
            pane = self.query_one(RolloutPane)
            full = self.size.height >= FULL_MIN_HEIGHT
            if pane.full != full:
                pane.full = full  # its height changes: split the room once it has
                self.call_after_refresh(self._fit)
                return
        selected = self.query_one(ServiceTable).selected
        width = detail.size.width
        # Boxes with every detail on show, else boxes with long details cut, else one-line
        # panels; the activity gives up lines down to its floor before anything is cut.
        whole = detail_height(snapshot, selected, width=width, now=self._now())
        cut = detail_height(snapshot, selected, layout="wide-cut")
        if width >= WIDE_MIN_WIDTH and 0 < whole <= room - ACTIVITY_FLOOR:
            detail.styles.height = whole
        elif width >= WIDE_MIN_WIDTH and 0 < cut <= room - ACTIVITY_FLOOR:
            detail.styles.height = cut
        else:
            # One-line panels: as many lines as they need, the activity keeping at least its floor.
            need = detail_height(snapshot, selected, layout="narrow")
            detail.styles.height = max(1, min(need, room - ACTIVITY_FLOOR))
        activity.styles.height = "1fr"
        self.call_after_refresh(self._show_activity)  # as many events as now fit

    @on(DataTable.RowHighlighted, "#services")
    def _selected(self) -> None:
        self._show_detail()

    # --- rollouts ------------------------------------------------------------------------

    def shown_rollout(self, snapshot: Snapshot | None = None) -> RolloutPanel | None:
        """The rollout on the panel: the one picked with `r`, else the most urgent."""
        snapshot = snapshot or self._snapshot
        if snapshot is None or not snapshot.rollouts:
            return None
        if self._picked is not None and (picked := snapshot.rollout(self._picked)) is not None:
            return picked
        now = self._now()
        return min(snapshot.rollouts, key=lambda panel: urgency(panel, now))

    def _show_rollout(self, snapshot: Snapshot) -> None:
        """The countdown line (every rollout's) and the panel (the shown one's)."""
        now = self._now()
        lines = countdowns(snapshot.rollouts, now)
        text = "\n".join(safe_markup(line, limit=400) for line in lines) if lines else None
        if text != self._countdown:
            self._countdown = text
            widget = self.query_one("#countdown", Static)
            widget.update(text or "")
            widget.set_class(text is not None, "-shown")
            self.call_after_refresh(self._fit)
        panel = self.shown_rollout(snapshot)
        if panel is None:
            return
        pane = self.query_one(RolloutPane)
        names = [r.name for r in snapshot.rollouts]
        pane.picked = (names.index(panel.name) + 1, len(names)) if len(names) > 1 else None
        pane.now = now
        pane.panel = panel

    def _rollout_key(self, action: str) -> bool:
        """The rollout keys work when rollouts are configured; `r` with more than one."""
        snapshot = self._snapshot
        if snapshot is None or not snapshot.rollouts:
            return False
        return action == "rollout" or len(snapshot.rollouts) > 1

    def action_rollout(self, kind: str) -> None:
        panel = self.shown_rollout()
        if panel is not None:
            self.run_rollout(kind, panel.name)

    def run_rollout(self, kind: str, name: str) -> None:
        """Start the dialog and command behind a rollout key (also from the command palette)."""
        flows = {
            "advance": rollout_commands.advance, "hold": rollout_commands.hold_or_resume,
            "rollback": rollout_commands.roll_back,
        }
        self._rollout_flow(flows[kind], name)

    @work(exclusive=True, exit_on_error=False, group="rollout")
    async def _rollout_flow(
        self, flow: Callable[[ConnApp, str], Awaitable[None]], name: str
    ) -> None:
        await flow(self.conn, name)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A rollout or incident dialog's worker that dies says so (a bug, never silent)."""
        if event.worker.group in ("rollout", "incident") and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(safe_markup(f"{type(error).__name__}: {error}", limit=400),
                        severity="error", title=f"{event.worker.group} command failed")

    def action_next_rollout(self) -> None:
        snapshot = self._snapshot
        shown = self.shown_rollout()
        if snapshot is None or shown is None:
            return
        names = [r.name for r in snapshot.rollouts]
        self.pick(names[(names.index(shown.name) + 1) % len(names)])

    def pick(self, name: str) -> None:
        """Show the rollout called ``name`` on the panel (from `r` or the palette)."""
        self._picked = name
        if (snapshot := self._snapshot) is not None:
            self._show_rollout(snapshot)
            self.call_after_refresh(self._fit)

    @on(RolloutPane.WhyRequested)
    def _why(self, event: RolloutPane.WhyRequested) -> None:
        from console.ui.screens.rollout_why import WhyScreen

        self.app.push_screen(WhyScreen(event.rollout, event.role, event.text))

    # --- incidents -----------------------------------------------------------------------

    def action_declare(self) -> None:
        """``i``: declare an incident, the selected service ticked."""
        self._incident_flow(self.query_one(ServiceTable).selected)

    @work(exclusive=True, exit_on_error=False, group="incident")
    async def _incident_flow(self, service: str | None) -> None:
        from console.ui.screens.incident import declare

        await declare(self.conn, service)

    def action_incident(self) -> None:
        """``I``: the newest open incident."""
        snapshot = self._snapshot
        if snapshot is None or not snapshot.open_incidents:
            return
        newest = max(snapshot.open_incidents, key=lambda panel: panel.state.declared_at)
        self.open_incident(newest.id)

    def open_incident(self, incident_id: str) -> None:
        """Show one incident's screen (from the strip, `I` or the palette)."""
        from console.ui.screens.incident import IncidentScreen

        self.app.push_screen(IncidentScreen(incident_id))

    def action_runbooks(self) -> None:
        """``b``: the runbooks list, with their last runs and the broken ones."""
        from console.ui.screens.runbooks import RunbooksScreen

        self.app.push_screen(RunbooksScreen())

    @on(IncidentStrip.Opened)
    def _incident_opened(self, event: IncidentStrip.Opened) -> None:
        self.open_incident(event.incident_id)

    @on(IncidentStrip.Overdue)
    def _incident_overdue(self, event: IncidentStrip.Overdue) -> None:
        """Ring once, and say what is owed, whatever screen is on top."""
        state = event.panel.state
        self.app.bell()
        self.notify(
            f"{state.id} ({state.severity}) is not acknowledged within "
            f"{format_age(event.panel.severity.respond)}: {safe_markup(state.title, limit=80)}",
            title="acknowledgement overdue", severity="error", timeout=30)

    @on(IncidentStrip.LinesChanged)
    def _strip_resized(self) -> None:
        strip = self.query_one(IncidentStrip)
        if strip.has_focus and not strip.incidents:  # the last one closed: back to the table
            self.query_one(ServiceTable).focus()
        self.call_after_refresh(self._fit)

    # --- demo fault keys -----------------------------------------------------------------

    def select(self, name: str) -> None:
        """Put the cursor on the service called ``name`` (from the command palette)."""
        table = self.query_one(ServiceTable)
        table.select(name)
        table.focus()

    def action_order(self, order: Order) -> None:
        """Worst first, or the config's order; the cursor stays on its service."""
        self.query_one(ServiceTable).order = order
        self.refresh_bindings()
        words = "worst first" if order == "trouble" else "in config order"
        self.notify(f"services {words} (o switches)", title="order")

    def action_demo_fault(self) -> None:
        name = self._demo_target()
        if name is not None:
            from console.ui.modals.fault import FaultModal

            def chosen(faults: dict[str, object] | None) -> None:
                if faults is not None:
                    self._send_faults(name, faults)

            self.app.push_screen(FaultModal(name), chosen)

    def action_demo_clear(self) -> None:
        name = self._demo_target()
        if name is not None:
            self._send_faults(name, {})

    def action_demo_only(self) -> None:
        self.notify(DEMO_ONLY, title="no demo fleet", severity="warning")

    def _demo_target(self) -> str | None:
        """The selected service when it is one of the demo fleet's; otherwise say why not."""
        name = self.query_one(ServiceTable).selected
        if name is None:
            self.notify("select a service first", title="demo fault", severity="warning")
            return None
        if name not in self.conn.demo_urls:
            self.notify(f"{safe_markup(name)} is not a demo service: faults cannot be injected",
                        title="demo fault", severity="warning")
            return None
        return name

    def _show_faults(self) -> None:
        """Under the table, what is injected into every demo service (wrapped, up to three lines)."""
        injected = [f"{name}: {describe_faults(faults)}" for name, faults in self._faults.items() if faults]
        line = self.query_one("#faults", Static)
        text = Text("")
        if injected:
            # What a demo service answered is outside text: cleaned, taken literally.
            text = safe_text(f"⚡ demo faults — {' · '.join(injected)} (c clears the selected service)",
                             limit=600)
            text.no_wrap = False
        if text != self._faults_line:
            self._faults_line = text
            line.update(text)
            line.set_class(bool(injected), "-shown")
            self.call_after_refresh(self._fit)

    def _record_faults(self, name: str, faults: Mapping[str, object]) -> None:
        self._faults[name] = dict(faults)
        self._show_faults()

    @work(group="demo-faults", exclusive=False, exit_on_error=False)
    async def _read_faults(self, names: tuple[str, ...]) -> None:
        """What the demo services already have injected (a fleet outlives a console)."""
        from console.demo.control import get_faults

        for name in names:
            try:
                self._record_faults(name, await get_faults(self.conn.demo_urls[name]))
            except ActionError:
                continue  # the fault keys report a fleet that does not answer

    @work(exclusive=False, exit_on_error=False)
    async def _send_faults(self, name: str, faults: dict[str, object]) -> None:
        from console.demo.control import clear_faults, get_faults, inject_faults

        url = self.conn.demo_urls[name]
        try:
            if faults:
                # Faults add up: latency then errors leaves both in place until cleared.
                merged = {**(await get_faults(url)), **faults}
                now = await inject_faults(url, merged)
                self._record_faults(name, now)
                self.notify(f"{safe_markup(name)}: {safe_markup(describe_faults(now))}",
                            title="demo fault")
            else:
                await clear_faults(url)
                self._record_faults(name, {})
                self.notify(f"{safe_markup(name)}: faults cleared", title="demo fault")
        except ActionError as e:
            self.notify(safe_markup(str(e)), severity="error", title="demo fault failed")
