"""The hold dialog: a reason (recorded) and, optionally, when the hold lifts by itself."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console.model.clock import Clock
from console.model.units import UNTIL_EXAMPLES, parse_until
from console.ui.text import safe_markup


@dataclass(frozen=True)
class HoldResult:
    """What the operator held with."""

    reason: str
    until: float | None
    """Clock time the hold lifts by itself; None: until someone resumes."""


class HoldModal(ModalScreen[HoldResult | None]):
    """Ask why, and until when (blank: until resumed). Dismisses a HoldResult, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal-cancel")]

    DEFAULT_CSS = """
    HoldModal { align: center middle; }
    HoldModal > Vertical {
        width: 70; max-width: 100%; height: auto; max-height: 100%;
        border: thick $warning; background: $surface; padding: 0 1;
    }
    HoldModal .title { text-style: bold; width: 1fr; }
    HoldModal .error { color: $error; height: auto; }
    HoldModal Input { margin: 0; }
    HoldModal Horizontal { height: auto; align-horizontal: right; }
    HoldModal Button { margin: 0 0 0 1; min-width: 10; }
    """

    def __init__(self, title: str, body: str, *, clock: Clock) -> None:
        super().__init__()
        self._title = title
        self._body = body
        self._clock = clock

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(safe_markup(self._title), classes="title")
            yield Static(safe_markup(self._body, limit=1000))
            yield Input(id="hold-reason", placeholder="reason (recorded in the audit log)")
            yield Input(id="hold-until", placeholder="until (optional): 30m, 2h or 17:00")
            yield Static("", id="hold-error", classes="error")
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Hold", id="hold", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#hold-reason", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#hold")
    def _hold(self) -> None:
        error = self.query_one("#hold-error", Static)
        reason = self.query_one("#hold-reason", Input).value.strip()
        if not reason:
            error.update("A reason is required; it goes into the audit log.")
            self.query_one("#hold-reason", Input).focus()
            return
        typed = self.query_one("#hold-until", Input).value.strip()
        until = None
        if typed:
            now = self._clock.now()
            try:
                until = parse_until(typed, now)
            except ValueError:
                until = None
            if until is None or until <= now:
                error.update(safe_markup(f"{typed!r}: give {UNTIL_EXAMPLES}, or leave it blank"))
                self.query_one("#hold-until", Input).focus()
                return
        self.dismiss(HoldResult(reason=reason, until=until))
