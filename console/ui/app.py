"""The Textual app: one worker bridges engine snapshots into a reactive; screens render it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.engine.core import Engine
from console.engine.snapshot import Snapshot
from console.model.clock import Clock, SystemClock
from console.ui.alerts import RolloutAlerts
from console.ui.screens.dashboard import DashboardScreen
from console.ui.text import safe_markup
from console.ui.themes import CONN_THEMES


class ConnApp(App[None]):
    """The Conn console.

    Args:
        engine: a started engine; the app renders its snapshots and calls its commands.
        demo_urls: base URLs of the demo fleet's services (demo mode only: fault keys).
        clock: the clock ages are computed with (frozen in snapshot tests).
        ticking: whether UI timers (ages) tick; False for frozen snapshot tests.
    """

    CSS_PATH = "app.tcss"
    TITLE = "Conn"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app-quit"),
        Binding("f", "flags", "Flags", id="app-flags"),
        Binding("question_mark", "help", "Help", id="app-help"),
    ]

    snapshot: var[Snapshot | None] = var(None)
    """The latest engine snapshot; screens watch it.

    A ``var``, not a ``reactive``: a reactive on the App repaints the whole
    screen on every change (``App.refresh``), i.e. several full-screen
    redraws a second; widgets repaint what they show themselves.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        demo_urls: dict[str, str] | None = None,
        clock: Clock | None = None,
        ticking: bool = True,
        keymap: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.demo_urls = demo_urls or {}
        self.clock: Clock = clock or SystemClock()
        self.ticking = ticking
        self._keymap = keymap or dict(engine.config.keymap)
        self._owns_engine = False
        self.pump_failure: str | None = None
        """Why the console stopped receiving snapshots, once it has."""
        self._alerts = RolloutAlerts()

    async def on_mount(self) -> None:
        for theme in CONN_THEMES:
            self.register_theme(theme)
        self.theme = self.engine.config.theme
        if self._keymap:
            self.set_keymap(self._keymap)
        if self.engine.state == "created":
            # The app owns an engine it was handed unstarted: start it in this loop.
            await self.engine.start()
            self._owns_engine = True
        self.push_screen(DashboardScreen())  # first: the first snapshot's alerts know what is shown
        self.snapshot = self.engine.snapshot
        self.run_worker(self._pump(), name="snapshots", exit_on_error=False, group="engine")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The snapshot pump must never stop silently: the screen would freeze as if all were calm."""
        if event.worker.group != "engine" or event.state not in (WorkerState.ERROR, WorkerState.SUCCESS):
            return
        error = event.worker.error
        why = f"{type(error).__name__}: {error}" if error is not None else "it ended"
        self.pump_failure = f"the console stopped receiving updates ({why}); what is shown is frozen — restart conn"
        self.notify(safe_markup(self.pump_failure, limit=300), severity="error",
                    title="updates stopped", timeout=3600)
        if self.snapshot is not None:
            self.snapshot = replace(self.snapshot, problem=self.pump_failure)

    async def on_unmount(self) -> None:
        if self._owns_engine:
            await self.engine.stop()

    async def _pump(self) -> None:
        async for snapshot in self.engine.snapshots():
            self.snapshot = snapshot

    def watch_snapshot(self, snapshot: Snapshot | None) -> None:
        """Rollbacks ring the bell and show a toast on every console, whatever screen is open."""
        if snapshot is None:
            return
        on_dashboard = bool(self.screen_stack) and isinstance(self.screen, DashboardScreen)
        for alert in self._alerts.observe(snapshot, self.clock.now(), countdown_shown=on_dashboard):
            if alert.bell:
                self.bell()
            self.notify(safe_markup(alert.message, limit=400), title=safe_markup(alert.title),
                        severity="error", timeout=alert.timeout)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Conn's own commands in the palette (ctrl+p), beside Textual's."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Feature flags", "Open the flags screen (f)", self.action_flags)
        yield SystemCommand("Keys", "Every key and what it does (?)", self.action_help)
        yield SystemCommand("Runbooks", "Start or resume a runbook run (b on the dashboard or an incident)",
                            self._open_runbooks)
        yield SystemCommand("Declare an incident", "Severity, title, services (i on the dashboard)",
                            self._declare_incident)
        snapshot = self.snapshot
        for panel in snapshot.incidents if snapshot is not None else ():
            state = panel.state
            # Only the help is markup (escaped); the name stays plain so the fuzzy match lines up.
            yield SystemCommand(
                f"Incident {state.id}",
                f"{state.severity} · {state.status.replace('_', ' ')} · {safe_markup(state.title, limit=80)}",
                partial(self._open_incident, state.id), discover=state.is_open,
            )
        for name in self.engine.config.rollouts:
            for kind, title, help_text in (
                ("advance", "advance", "Advance to the next stage, or start a run (a)"),
                ("hold", "hold or resume", "Hold it with a reason, or resume it (h)"),
                ("rollback", "roll back", "Roll it back: type its name to confirm (R)"),
            ):
                yield SystemCommand(f"Rollout {name}: {title}", help_text,
                                    partial(self._rollout_command, name, kind))
        for name in self.engine.config.services:
            yield SystemCommand(
                f"Service: {name}", f"Show {name} in detail on the dashboard",
                partial(self._select_service, name), discover=False,
            )

    def _select_service(self, name: str) -> None:
        """Back to the dashboard from wherever the palette was opened, with ``name`` selected."""
        dashboard = next((s for s in self.screen_stack if isinstance(s, DashboardScreen)), None)
        if dashboard is None:
            return
        if self.screen is not dashboard:
            # Dialogs on the way are dismissed with None: each one's caller reads "cancelled".
            dashboard.pop_until_active()
        dashboard.select(name)

    def _open_incident(self, incident_id: str) -> None:
        """An incident's screen from the palette, over the dashboard (dialogs on the way closed)."""
        dashboard = next((s for s in self.screen_stack if isinstance(s, DashboardScreen)), None)
        if dashboard is None:
            return
        if self.screen is dashboard:
            dashboard.open_incident(incident_id)
            return
        dashboard.pop_until_active()
        self.call_later(dashboard.open_incident, incident_id)

    def _open_runbooks(self) -> None:
        """The runbooks list; from an incident's screen, for that incident (as `b` there)."""
        from console.ui.screens.incident import IncidentScreen
        from console.ui.screens.runbooks import RunbooksScreen

        screen = self.screen
        self.push_screen(RunbooksScreen(screen.incident_id if isinstance(screen, IncidentScreen) else None))

    def _declare_incident(self) -> None:
        dashboard = next((s for s in self.screen_stack if isinstance(s, DashboardScreen)), None)
        if dashboard is None:
            return
        if self.screen is dashboard:
            dashboard.action_declare()
            return
        dashboard.pop_until_active()
        self.call_later(dashboard.action_declare)

    def _rollout_command(self, name: str, kind: str) -> None:
        """A rollout command from the palette: back to the dashboard, that rollout shown, its dialog."""
        dashboard = next((s for s in self.screen_stack if isinstance(s, DashboardScreen)), None)
        if dashboard is None:
            return
        dashboard.pick(name)
        if self.screen is dashboard:
            dashboard.run_rollout(kind, name)
            return
        # The screens above are popped by a queued callback: open the dialog after it,
        # or the pop would dismiss the dialog too.
        dashboard.pop_until_active()
        self.call_later(dashboard.run_rollout, kind, name)

    def action_flags(self) -> None:
        from console.ui.screens.flags import FlagsScreen

        if not isinstance(self.screen, FlagsScreen):
            self.push_screen(FlagsScreen())

    def action_help(self) -> None:
        from console.ui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    @property
    def store_path(self) -> Path | None:
        """The SQLite file of the store, in embedded mode."""
        return self.engine.config.store_path
