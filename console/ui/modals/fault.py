"""Demo only: choose a fault to inject into a demo service."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from console.ui.text import safe_markup

FAULTS: dict[str, tuple[str, dict[str, object]]] = {
    "latency": ("latency +900 ms", {"latency_ms": 900}),
    "errors": ("error rate 20%", {"error_rate": 0.2}),
    "down": ("health: down", {"health": "down"}),
    "degraded": ("health: degraded", {"health": "degraded"}),
    "cache": ("cache hit rate 50%", {"cache_hit_rate": 0.5}),
    "breaker": ("circuit breaker opens: 7", {"circuit_breaker_opens": 7}),
    "clear": ("clear all faults", {}),
}


class FaultModal(ModalScreen[dict[str, object] | None]):
    """Pick one fault; dismisses its JSON body (``{}`` clears), or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal-cancel")]
    DEFAULT_CSS = """
    FaultModal { align: center middle; }
    FaultModal > Vertical { width: 44; height: auto; border: thick $warning; background: $surface; }
    FaultModal OptionList { height: auto; max-height: 12; }
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f" Inject a fault into [b]{safe_markup(self._service)}[/b]")
            yield OptionList(*(Option(label, id=key) for key, (label, _) in FAULTS.items()))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        key = event.option.id or "clear"
        self.dismiss(dict(FAULTS[key][1]))
