"""The one-line header: environment, how many services are in trouble, store, role.

What the eye needs first comes first and is never cut: the environment and
the summary ("1 down · 2 critical · 1 warning", each count in its colour).
When the line is short, the role drops the leader's name first ("○ follower
of oncall@bastion pid 4242" becomes "○ follower"), so the store's URL shows
in full; only then is the URL cut. A problem ("⚠ …") is cut, never dropped.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Resize
from textual.reactive import var
from textual.widgets import Static

from console.engine.snapshot import Snapshot
from console.model.sanitize import clean_text
from console.model.triage import Summary
from console.ui.text import safe_markup
from console.ui.widgets.styles import TROUBLE_STYLE

GAP = 2
"""Columns between two parts of the header."""


def summary_markup(summary: Summary | None) -> tuple[str, str]:
    """The summary as Textual markup with each count in its trouble's colour, and as plain text."""
    if summary is None:
        return "", ""
    parts = [(f"{count} {trouble}", TROUBLE_STYLE[trouble])
             for trouble, count in summary.counts if count and trouble != "ok"]  # fmt: skip
    if not parts:
        return f"[{TROUBLE_STYLE['ok']}]all ok[/]", "all ok"
    markup = " · ".join(f"[{style}]{text}[/]" for text, style in parts)
    return markup, summary.text()


def role_texts(snapshot: Snapshot) -> tuple[str, str | None]:
    """The role in full and, when there is one, a shorter form for a short line (plain text)."""
    if snapshot.problem:
        # Nothing on screen can be trusted to be current: say so where the eye starts.
        return f"⚠ {clean_text(snapshot.problem, limit=70)}", None
    if snapshot.role == "leader":
        return "● LEADER", None
    if snapshot.role == "follower":
        leader = clean_text(snapshot.leader or "no leader writing", limit=40)
        return f"○ follower of {leader}", "○ follower"
    return "… starting", None


class TopBar(Horizontal):
    """Environment · summary · store · role (LEADER / follower of …)."""

    DEFAULT_CSS = """
    TopBar Static { width: auto; margin-right: 2; text-wrap: nowrap; }
    TopBar .store { width: 1fr; color: $text-muted; text-overflow: ellipsis; }
    TopBar .role { margin-right: 0; }
    """

    snapshot: var[Snapshot | None] = var(None)
    """The snapshot whose header is shown (a ``var``: the parts that change repaint themselves)."""
    summary: var[Summary | None] = var(None)
    """How many services are in each trouble (:func:`console.model.triage.summary`)."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static("Conn", classes="env")
        yield Static("", classes="summary")
        yield Static("", classes="store")
        yield Static("", classes="role")

    def watch_snapshot(self) -> None:
        self._draw()

    def watch_summary(self) -> None:
        self._draw()

    def on_resize(self, event: Resize) -> None:
        self._draw()

    def _draw(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        environment = clean_text(snapshot.environment, limit=30)
        self._show(".env", f"[b]Conn[/b] · {safe_markup(environment)}")
        summary, summary_plain = summary_markup(self.summary)
        self._show(".summary", summary)
        self.query_one(".summary").display = bool(summary)
        self._show(".store", safe_markup(snapshot.store_url, limit=300))
        full, short = role_texts(snapshot)
        room = self.content_size.width
        used = cell_len(f"Conn · {environment}") + GAP + (cell_len(summary_plain) + GAP if summary_plain else 0)
        store = cell_len(clean_text(snapshot.store_url, limit=300))
        role = full
        if room and used + store + GAP + cell_len(full) > room:
            # The leader's name goes first; a problem is cut to the room, never dropped.
            role = short if short is not None else clean_text(full, limit=max(12, room - used - GAP))
        self._show(".role", safe_markup(role, limit=300))
        self.set_class(snapshot.role == "leader", "leader")
        self.set_class(snapshot.role == "follower", "follower")
        self.set_class(bool(snapshot.problem), "problem")

    def _show(self, selector: str, markup: str) -> None:
        """Update one part only when its text changed: every snapshot (several a
        second) comes here, and ``Static.update`` repaints even the same text."""
        if self._shown.get(selector) != markup:
            self._shown[selector] = markup
            self.query_one(selector, Static).update(markup)
