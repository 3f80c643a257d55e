"""The dashboard: every service at a glance, the selected one in detail, recent activity.

Snapshots arrive several times a second and the clock ticks every second, so
everything here changes the screen only when what it shows changed: the
table repaints changed rows, the panels changed cells, and the activity pane
is replaced only when its text differs.

The detail gets the room it needs and the activity pane the rest: in the
narrow layout (80x24) the detail keeps everything but four lines of events;
when the panels are boxes (120x40) the detail is as tall as the selected
service's boxes and the activity shows as many events as fit below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.engine.snapshot import Snapshot
from console.errors import ActionError
from console.model.describe import describe_change
from console.model.sanitize import clean_text
from console.ui.modals.fault import describe_faults
from console.ui.text import safe_markup, safe_text
from console.ui.widgets.service_detail import WIDE_MIN_WIDTH, ServiceDetail, wide_height_of
from console.ui.widgets.service_table import ServiceTable
from console.ui.widgets.top_bar import TopBar

if TYPE_CHECKING:
    from console.ui.app import ConnApp

ACTIVITY_MIN = 5
"""The activity pane's least height: its rule and four events."""

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


def detail_height(snapshot: Snapshot, name: str | None) -> int:
    """Lines the wide detail needs for the service ``name`` (0: none selected)."""
    view = snapshot.service(name) if name else None
    if view is None:
        return 0
    baseline = view.live.baseline if view.live else None
    return wide_height_of(view, compared=bool(baseline and snapshot.service(baseline)))


class DashboardScreen(Screen[None]):
    """Services, the selected service's panels, and the last events."""

    @property
    def conn(self) -> ConnApp:
        """The app, typed: the engine, the clock and the demo fleet's URLs."""
        return cast("ConnApp", self.app)

    # The fault keys are bound twice under the same ids (so a [keymap] moves both):
    # in `conn demo` they act; anywhere else the hidden twin says why nothing happens.
    BINDINGS = [
        Binding("x", "demo_fault", "Fault", id="demo-fault", show=True),
        Binding("c", "demo_clear", "Clear", id="demo-clear", show=True),
        Binding("x", "demo_only", "Fault", id="demo-fault", show=False),
        Binding("c", "demo_only", "Clear", id="demo-clear", show=False),
    ]

    DEFAULT_CSS = """
    DashboardScreen #faults {
        display: none; height: 1; padding: 0 1; color: $warning; text-style: bold;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    DashboardScreen #faults.-shown { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._activity: Text | None = None
        self._faults: dict[str, dict[str, object]] = {}
        self._faults_line: Text | None = None

    def compose(self) -> ComposeResult:
        yield TopBar()
        yield ServiceTable(id="services")
        yield Static("", id="faults")
        yield ServiceDetail(id="detail")
        yield Static("", id="activity")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._show, init=True)
        if self.conn.ticking:
            self.set_interval(1.0, self._tick)
        self.query_one(ServiceTable).focus()
        if self.conn.demo_urls:
            self._read_faults(tuple(self.conn.demo_urls))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
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
        table = self.query_one(ServiceTable)
        table.show(snapshot.services, self._now())
        self._show_detail()
        self._show_activity()
        # After the next layout: the table may have grown, and sizes are known then.
        self.call_after_refresh(self._fit)

    def _tick(self) -> None:
        snapshot = self._snapshot
        if snapshot is not None:
            self.query_one(ServiceTable).show(snapshot.services, self._now())
            self.query_one(ServiceDetail).now = self._now()

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
        need = detail_height(snapshot, self.query_one(ServiceTable).selected)
        if detail.size.width >= WIDE_MIN_WIDTH and 0 < need <= room - ACTIVITY_MIN:
            detail.styles.height = need
            activity.styles.height = "1fr"
        else:
            detail.styles.height = "1fr"
            activity.styles.height = ACTIVITY_MIN
        self.call_after_refresh(self._show_activity)  # as many events as now fit

    @on(DataTable.RowHighlighted)
    def _selected(self) -> None:
        self._show_detail()

    # --- demo fault keys -----------------------------------------------------------------

    def select(self, name: str) -> None:
        """Put the cursor on the service called ``name`` (from the command palette)."""
        table = self.query_one(ServiceTable)
        if name in table.rows:
            table.move_cursor(row=table.get_row_index(name))
            table.focus()

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
        """One line under the table with what is injected into the selected service."""
        name = self.query_one(ServiceTable).selected
        faults = self._faults.get(name) if name else None
        line = self.query_one("#faults", Static)
        text = (
            safe_text(f"⚡ demo faults in {name}: {describe_faults(faults)} — c clears", limit=300)
            if name and faults
            else Text("")
        )
        if text != self._faults_line:
            self._faults_line = text
            line.update(text)
            line.set_class(bool(faults), "-shown")
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
