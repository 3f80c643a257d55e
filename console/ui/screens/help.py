"""Keys, in one place, compact enough for 80x24."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KEYS: tuple[tuple[str, str, str], ...] = (
    ("↑ ↓ · o", "dashboard", "select a service · worst first / config order"),
    ("a h R r", "rollout panel", "advance (override) · hold · roll back · next"),
    ("tab ⏎", "rollout panel", "criteria rows; why one passes or fails"),
    ("i · I", "dashboard", "declare an incident · open the newest open one"),
    ("a s v n", "incident", "acknowledge · status · severity · note"),
    ("p r b", "incident", "pin an entry · hand a role over · runbooks"),
    ("b · ⏎", "runbooks", "list, an incident's first · start/resume a run"),
    ("r y c", "runner", "run (preview, typed confirm) · retry · cancel"),
    ("t k n f", "runner", "tick a check · skip (reason) · read · finish"),
    ("x · c", "conn demo", "fault into / clear the selected service"),
    ("␣ % k e", "flags", "on/off · percent · kill switch · is key X in?"),
    ("f ? q", "anywhere", "feature flags · this help · quit"),
    ("Esc", "anywhere", "back (screens) / cancel (dialogs)"),
    ("ctrl+p", "anywhere", "palette: flags, rollouts, incidents, runbooks"),
)


MARKS: tuple[tuple[str, str], ...] = (
    ("✖ … +1", "worst signal, past its critical level (▲ warning); +1 more"),
    ("▲ > 500 ms", "past its warning level: the level follows the value"),
    ("⌛", "stale: no new value for over 3 probe intervals"),
    ("⚠", "cannot be trusted as shown; its text or detail says why"),
)
"""The marks Conn draws (worst-signal column, values, top bar, flags), as the help explains them.

⚠ marks "⚠ unreadable" (a service's live row could not be read, the detail
says why), "source down ⚠" (a signal's source did not answer; its detail
names the error), "⚠ <problem>" in the top bar (nothing shown is current),
and a flag written by another openfeature-flagd-core version (its detail
says bucketing may differ). One line, so the help still fits 80x24.
"""


def marks_table() -> Table:
    """Conn's marks, with what they mean."""
    table = Table(box=None, show_header=False, padding=(0, 1))
    table.add_column("mark", style="bold", no_wrap=True)
    table.add_column("means")
    for mark, means in MARKS:
        table.add_row(mark, means)
    return table


def key_table() -> Table:
    """The keys as a borderless table."""
    table = Table(box=None, show_header=True, header_style="bold", padding=(0, 1))
    table.add_column("key", style="bold")
    table.add_column("where", style="dim")
    table.add_column("what")
    for key, where, what in KEYS:
        table.add_row(key, where, what)
    return table


class HelpScreen(ModalScreen[None]):
    """The key table; any of Esc, ? or q closes it."""

    BINDINGS = [
        Binding("escape", "dismiss", "Back", id="help-back"),
        Binding("question_mark", "dismiss", "Back", show=False, id="help-back-2"),
        Binding("q", "dismiss", "Back", show=False, id="help-back-3"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        background: $surface; border: thick $primary; padding: 0 1;
    }
    HelpScreen .title { text-style: bold; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Conn keys", classes="title")
            yield Static(key_table())
            yield Label("Marks", classes="title")
            yield Static(marks_table())
            yield Label("Every binding has an id; rebind keys in the config's [keymap].", markup=False)
