"""The one-line header: environment, store, and whether this console leads."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import var
from textual.widgets import Static

from console.engine.snapshot import Snapshot
from console.ui.text import safe_markup


class TopBar(Horizontal):
    """Environment · store · role (LEADER / follower of …)."""

    DEFAULT_CSS = """
    TopBar Static { width: auto; margin-right: 2; }
    TopBar .store { width: 1fr; color: $text-muted; }
    """

    snapshot: var[Snapshot | None] = var(None)
    """The snapshot whose header is shown (a ``var``: the parts that change repaint themselves)."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static("Conn", classes="env")
        yield Static("", classes="store")
        yield Static("", classes="role")

    def watch_snapshot(self, snapshot: Snapshot | None) -> None:
        if snapshot is None:
            return
        self._show(".env", f"[b]Conn[/b] · {safe_markup(snapshot.environment, limit=30)}")
        self._show(".store", safe_markup(snapshot.store_url, limit=120))
        if snapshot.problem:
            # Nothing on screen can be trusted to be current: say so where the eye starts.
            role = f"⚠ {safe_markup(snapshot.problem, limit=70)}"
        elif snapshot.role == "leader":
            role = "● LEADER"
        elif snapshot.role == "follower":
            leader = snapshot.leader or "no leader writing"
            role = f"○ follower of {safe_markup(leader, limit=40)}"
        else:
            role = "… starting"
        self._show(".role", role)
        self.set_class(snapshot.role == "leader", "leader")
        self.set_class(snapshot.role == "follower", "follower")
        self.set_class(bool(snapshot.problem), "problem")

    def _show(self, selector: str, markup: str) -> None:
        """Update one part only when its text changed: every snapshot (several a
        second) comes here, and ``Static.update`` repaints even the same text."""
        if self._shown.get(selector) != markup:
            self._shown[selector] = markup
            self.query_one(selector, Static).update(markup)
