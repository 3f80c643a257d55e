"""Keys, in one place."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Conn keys

| key | where | what |
|---|---|---|
| ↑ ↓ | dashboard | select a service |
| f | anywhere | feature flags |
| x | demo | inject a fault into the selected service |
| c | demo | clear the selected service's faults |
| ? | anywhere | this help |
| q | anywhere | quit |
| Esc | screens, dialogs | back / cancel |

Flags screen: `space` toggle, `%` percentage, `k` kill switch, `e` evaluate a key.
"""


class HelpScreen(ModalScreen[None]):
    """The key table."""

    BINDINGS = [
        Binding("escape", "dismiss", "Back", id="help-back"),
        Binding("question_mark", "dismiss", "Back", show=False, id="help-back-2"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen Markdown { width: 72; max-width: 100%; height: auto; max-height: 100%; background: $surface; border: thick $primary; }
    """

    def compose(self) -> ComposeResult:
        yield Markdown(HELP)
