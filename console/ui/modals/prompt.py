"""A one-line typed input dialog (a percentage, a targeting key)."""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from console.ui.text import safe_markup


class PromptModal(ModalScreen[str | None]):
    """Ask for one value. ``validate`` returns an error message, or None when fine."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal-cancel")]

    DEFAULT_CSS = """
    PromptModal { align: center middle; }
    PromptModal > Vertical {
        width: 60; max-width: 100%; height: auto;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    PromptModal .title { text-style: bold; }
    PromptModal .error { color: $error; height: auto; }
    """

    def __init__(
        self,
        title: str,
        label: str,
        *,
        placeholder: str = "",
        value: str = "",
        validate: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__()
        self._title = title
        self._label = label
        self._placeholder = placeholder
        self._value = value
        self._validate = validate

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(safe_markup(self._title), classes="title")
            yield Label(safe_markup(self._label))
            yield Input(value=self._value, placeholder=self._placeholder, id="prompt-input")
            yield Static("Enter to accept, Escape to cancel", id="prompt-error", classes="error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        problem = self._validate(value) if self._validate else None
        if problem:
            self.query_one("#prompt-error", Static).update(safe_markup(problem))
            return
        self.dismiss(value)
