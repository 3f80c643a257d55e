"""The incident dialogs: declaring one (``i``), and the pickers of the incident screen.

Declaring is the moment with the least attention to spare, so the dialog
does the remembering: each severity is listed with its definition and its
acknowledgement target from the config (``[incidents.severities]``), the
service selected on the dashboard is already ticked, and Enter anywhere
declares (a missing title is asked for, nothing else is). Esc cancels.

:class:`ChoiceModal` is the incident screen's one other dialog: a list to
pick from (a status, a severity, a role, a timeline entry) and, when the
change needs it, a line of text (the severity change's reason, the new role
holder). Both dismiss typed results; neither runs a command — the caller
does, so the engine's refusals show as toasts in its words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, SelectionList, Static
from textual.widgets.option_list import Option

from console.model.incident_config import Severity, SeverityConfig
from console.model.incidents import MAX_TITLE
from console.model.units import format_duration
from console.ui.text import safe_markup
from console.ui.widgets.incident_strip import severity_label

DEFAULT_SEVERITY = "SEV3"
"""Where the severity list starts (the CLI's default too)."""


@dataclass(frozen=True)
class DeclareResult:
    """What the operator declared."""

    severity: str
    title: str
    services: tuple[str, ...]


def severity_option(name: str, config: SeverityConfig) -> Text:
    """"SEV2  ack within 15m · update every 30m" then the definition, for a picker."""
    text = severity_label(name)
    text.append(f"  ack within {format_duration(config.respond)} · "
                f"update every {format_duration(config.update_every)}", style="bold")
    text.append(f"\n{config.description}")
    return text


class DeclareModal(ModalScreen[DeclareResult | None]):
    """Severity, title, services. Dismisses a DeclareResult, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="modal-cancel"),
        Binding("enter", "confirm", "Declare", id="modal-confirm", priority=True),
    ]

    DEFAULT_CSS = """
    DeclareModal { align: center middle; }
    DeclareModal > Vertical {
        width: 78; max-width: 100%; height: auto; max-height: 100%;
        border: thick $error; background: $surface; padding: 0 1;
    }
    DeclareModal .title { text-style: bold; width: 1fr; }
    DeclareModal .label { color: $text-muted; }
    DeclareModal .error { color: $error; height: auto; }
    DeclareModal OptionList, DeclareModal OptionList:focus {
        height: auto; max-height: 8; border: none; padding: 0;
    }
    DeclareModal SelectionList, DeclareModal SelectionList:focus {
        height: auto; max-height: 5; border: none; padding: 0;
    }
    DeclareModal Input { margin: 0; }
    """

    def __init__(
        self,
        severities: Mapping[Severity, SeverityConfig],
        services: Sequence[str],
        *,
        selected_service: str | None = None,
    ) -> None:
        super().__init__()
        self._severities: dict[str, SeverityConfig] = {str(k): v for k, v in severities.items()}
        self._services = list(services)
        self._selected_service = selected_service

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Declare an incident", classes="title")
            yield OptionList(*(Option(severity_option(name, config), id=name)
                               for name, config in self._severities.items()), id="declare-severity")
            yield Input(id="declare-title", placeholder="title: what is broken, for whom",
                        max_length=MAX_TITLE)
            yield Label("services (space ticks):", classes="label")
            yield SelectionList[str](
                *((safe_markup(name, limit=60), name, name == self._selected_service)
                  for name in self._services), id="declare-services")
            yield Static("↑↓ severity · Tab next field · Enter declares · Esc cancels",
                         id="declare-error", classes="error")

    def on_mount(self) -> None:
        severities = self.query_one("#declare-severity", OptionList)
        names = list(self._severities)
        severities.highlighted = names.index(DEFAULT_SEVERITY) if DEFAULT_SEVERITY in names else 0
        services = self.query_one("#declare-services", SelectionList)
        if self._selected_service in self._services:
            services.highlighted = self._services.index(self._selected_service)
        severities.focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_confirm(self) -> None:
        title = self.query_one("#declare-title", Input).value.strip()
        if not title:
            self.query_one("#declare-error", Static).update("A title is required: what is broken, for whom.")
            self.query_one("#declare-title", Input).focus()
            return
        severities = self.query_one("#declare-severity", OptionList)
        index = severities.highlighted if severities.highlighted is not None else 0
        severity = severities.get_option_at_index(index).id or DEFAULT_SEVERITY
        services = self.query_one("#declare-services", SelectionList)
        chosen = tuple(name for name in self._services if name in services.selected)
        self.dismiss(DeclareResult(severity=severity, title=title, services=chosen))


@dataclass(frozen=True)
class ChoiceResult:
    """The option picked, and the text typed with it ("" when none was asked)."""

    value: str
    text: str = ""


@dataclass(frozen=True)
class Choice:
    """One option of a :class:`ChoiceModal`: the value dismissed, and how it reads."""

    value: str
    label: Text


class ChoiceModal(ModalScreen[ChoiceResult | None]):
    """Pick one option, and type a line when ``ask`` says what for. Enter confirms, Esc cancels."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="modal-cancel"),
        Binding("enter", "confirm", "Confirm", id="modal-confirm", priority=True),
    ]

    DEFAULT_CSS = """
    ChoiceModal { align: center middle; }
    ChoiceModal > Vertical {
        width: 78; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    ChoiceModal .title { text-style: bold; width: 1fr; }
    ChoiceModal .error { color: $error; height: auto; }
    ChoiceModal OptionList, ChoiceModal OptionList:focus {
        height: auto; max-height: 12; border: none; padding: 0;
    }
    ChoiceModal Input { margin: 0; }
    """

    def __init__(
        self,
        title: str,
        choices: Sequence[Choice],
        *,
        highlighted: str | None = None,
        ask: str | None = None,
        hint: str = "↑↓ choose · Enter confirms · Esc cancels",
    ) -> None:
        """``ask``: the text field's placeholder; the field is required when given."""
        super().__init__()
        self._title = title
        self._choices = list(choices)
        self._highlighted = highlighted
        self._ask = ask
        self._hint = hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(safe_markup(self._title), classes="title")
            yield OptionList(*(Option(choice.label, id=f"choice-{index}")
                               for index, choice in enumerate(self._choices)), id="choice-list")
            if self._ask is not None:
                yield Input(id="choice-text", placeholder=self._ask)
            yield Static(safe_markup(self._hint), id="choice-error", classes="error")

    def on_mount(self) -> None:
        options = self.query_one("#choice-list", OptionList)
        values = [c.value for c in self._choices]
        if self._choices:
            options.highlighted = values.index(self._highlighted) if self._highlighted in values else 0
        options.focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(OptionList.OptionSelected)
    def _clicked(self) -> None:
        self.action_confirm()

    def action_confirm(self) -> None:
        options = self.query_one("#choice-list", OptionList)
        if options.highlighted is None or not self._choices:
            return
        text = ""
        if self._ask is not None:
            field = self.query_one("#choice-text", Input)
            text = field.value.strip()
            if not text:
                if field.has_focus:
                    self.query_one("#choice-error", Static).update(f"Required: {safe_markup(self._ask)}")
                field.focus()
                return
        self.dismiss(ChoiceResult(self._choices[options.highlighted].value, text))
