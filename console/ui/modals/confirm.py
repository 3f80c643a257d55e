"""A confirmation dialog for consequential actions: a reason is asked, and for
destructive ones the operator types the target's name; Enter alone never confirms."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console.ui.text import safe_markup


@dataclass(frozen=True)
class ConfirmResult:
    """What the operator confirmed with."""

    reason: str


class ConfirmModal(ModalScreen[ConfirmResult | None]):
    """Ask before acting. Dismisses a ConfirmResult, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal-cancel")]

    DEFAULT_CSS = """
    ConfirmModal { align: center middle; }
    ConfirmModal > Vertical {
        width: 70; max-width: 100%; height: auto; max-height: 100%;
        border: thick $error; background: $surface; padding: 0 1;
    }
    ConfirmModal .title { text-style: bold; width: 1fr; }
    ConfirmModal .error { color: $error; height: auto; }
    ConfirmModal Input { margin: 0; }
    ConfirmModal Horizontal { height: auto; align-horizontal: right; }
    ConfirmModal Button { margin: 0 0 0 1; min-width: 10; }
    """

    def __init__(
        self,
        title: str,
        body: str,
        *,
        type_to_confirm: str | None = None,
        require_reason: bool = True,
        confirm_label: str = "Confirm",
        focus_cancel: bool = False,
    ) -> None:
        """``focus_cancel``: start on Cancel, and leave Confirm out of the Tab order, so
        Tab goes from Cancel to the first field and only Enter in a field confirms."""
        super().__init__()
        self._title = title
        self._body = body
        self._type_to_confirm = type_to_confirm
        self._require_reason = require_reason
        self._confirm_label = confirm_label
        self._focus_cancel = focus_cancel

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(safe_markup(self._title), classes="title")
            yield Static(safe_markup(self._body, limit=1000))
            if self._type_to_confirm is not None:
                yield Label(f"Type [b]{safe_markup(self._type_to_confirm)}[/b] to confirm:")
                yield Input(id="confirm-name", placeholder=self._type_to_confirm)
            if self._require_reason:
                yield Input(id="confirm-reason", placeholder="reason (recorded in the audit log)")
            yield Static("", id="confirm-error", classes="error")
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                confirm = Button(self._confirm_label, id="confirm", variant="error")
                confirm.can_focus = not self._focus_cancel
                yield confirm

    def on_mount(self) -> None:
        # Keystrokes go to the first field; no single key can confirm, because an
        # empty reason or a mistyped name is refused. Without fields, Cancel has focus;
        # a destructive dialog may ask for Cancel first (Tab then reaches the fields).
        fields = self.query(Input)
        if fields and not self._focus_cancel:
            fields.first().focus()
        else:
            self.query_one("#cancel", Button).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        error = self.query_one("#confirm-error", Static)
        if self._type_to_confirm is not None:
            typed = self.query_one("#confirm-name", Input).value.strip()
            if typed != self._type_to_confirm:
                error.update(f"Type {safe_markup(self._type_to_confirm)} exactly to confirm.")
                self.query_one("#confirm-name", Input).focus()
                return
        reason = ""
        if self._require_reason:
            reason = self.query_one("#confirm-reason", Input).value.strip()
            if not reason:
                error.update("A reason is required; it goes into the audit log.")
                self.query_one("#confirm-reason", Input).focus()
                return
        self.dismiss(ConfirmResult(reason=reason))
