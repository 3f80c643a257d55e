"""The dashboard: every service at a glance, the selected one in detail, recent activity."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.engine.snapshot import Snapshot
from console.errors import ActionError
from console.model.sanitize import clean_text
from console.ui.text import safe_markup
from console.ui.widgets.service_detail import ServiceDetail
from console.ui.widgets.service_table import ServiceTable
from console.ui.widgets.top_bar import TopBar

if TYPE_CHECKING:
    from console.ui.app import ConnApp


def activity_text(snapshot: Snapshot, *, limit: int) -> Text:
    """The newest events first, one line each: time, who, what, where, why."""
    events = list(reversed(snapshot.recent_events[-limit:]))
    if not events:
        return Text("no events yet — changes you make appear here", style="dim")
    text = Text(no_wrap=True, overflow="ellipsis")
    for index, event in enumerate(events):
        if index:
            text.append("\n")
        when = datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
        text.append(f"{when} ", style="dim")
        text.append(clean_text(event.actor, limit=24), style="bold")
        text.append(f" {clean_text(event.type, limit=30)} {clean_text(event.stream, limit=40)}")
        if event.reason:
            text.append(f" — {clean_text(event.reason, limit=80)}", style="italic")
    return text


class DashboardScreen(Screen[None]):
    """Services, the selected service's panels, and the last events."""

    @property
    def conn(self) -> ConnApp:
        """The app, typed: the engine, the clock and the demo fleet's URLs."""
        return cast("ConnApp", self.app)

    BINDINGS = [
        Binding("x", "demo_fault", "Fault", id="demo-fault", show=True),
        Binding("c", "demo_clear", "Clear", id="demo-clear", show=True),
    ]

    def compose(self) -> ComposeResult:
        yield TopBar()
        yield ServiceTable(id="services")
        yield ServiceDetail(id="detail")
        yield Static("", id="activity")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._show, init=True)
        if self.conn.ticking:
            self.set_interval(1.0, self._tick)
        self.query_one(ServiceTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("demo_fault", "demo_clear"):
            return bool(self.conn.demo_urls)
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
        self.query_one("#activity", Static).update(activity_text(snapshot, limit=4))

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

    @on(DataTable.RowHighlighted)
    def _selected(self) -> None:
        self._show_detail()

    # --- demo fault keys -----------------------------------------------------------------

    def action_demo_fault(self) -> None:
        name = self.query_one(ServiceTable).selected
        if name and name in self.conn.demo_urls:
            from console.ui.modals.fault import FaultModal

            def chosen(faults: dict[str, object] | None) -> None:
                if faults is not None:
                    self._send_faults(name, faults)

            self.app.push_screen(FaultModal(name), chosen)

    def action_demo_clear(self) -> None:
        name = self.query_one(ServiceTable).selected
        if name and name in self.conn.demo_urls:
            self._send_faults(name, {})

    @work(exclusive=False, exit_on_error=False)
    async def _send_faults(self, name: str, faults: dict[str, object]) -> None:
        from console.demo.control import clear_faults, get_faults, inject_faults

        url = self.conn.demo_urls[name]
        try:
            if faults:
                # Faults add up: latency then errors leaves both in place until cleared.
                merged = {**(await get_faults(url)), **faults}
                await inject_faults(url, merged)
                self.notify(f"{name}: {safe_markup(str(merged))}", title="demo fault")
            else:
                await clear_faults(url)
                self.notify(f"{name}: faults cleared", title="demo fault")
        except ActionError as e:
            self.notify(safe_markup(str(e)), severity="error", title="demo fault failed")
