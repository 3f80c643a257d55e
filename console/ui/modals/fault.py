"""Demo only: choose a fault to inject into a demo service, and say in words what is injected."""

from __future__ import annotations

from collections.abc import Mapping

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
    # Not "error rate": the prober's error rate counts failed probes, while this
    # fault makes the service fail 20% of its own traffic (the "5xx rate" signal).
    "errors": ("5xx in its traffic: 20%", {"error_rate": 0.2}),
    "down": ("health: down", {"health": "down"}),
    "degraded": ("health: degraded", {"health": "degraded"}),
    "cache": ("cache hit rate 50%", {"cache_hit_rate": 0.5}),
    "breaker": ("circuit breaker opens: 7", {"circuit_breaker_opens": 7}),
    "clear": ("clear all faults", {}),
}


def describe_faults(faults: Mapping[str, object]) -> str:
    """The faults in force, in words: "5xx in its traffic 20%, health down"; "none" when empty.

    ``faults`` is what the demo service answered (JSON, so untrusted): keys
    this console does not know are shown as they came, for the caller to escape.
    """
    words = [_fault_words(key, value) for key, value in faults.items()]
    return ", ".join(words) if words else "none"


def _fault_words(key: str, value: object) -> str:
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if key == "latency_ms" and number is not None:
        return f"latency +{number:g} ms"
    if key == "error_rate" and number is not None:
        return f"5xx in its traffic {number * 100:g}%"
    if key == "health":
        return f"health {value}"
    if key == "cache_hit_rate" and number is not None:
        return f"cache hit rate {number * 100:g}%"
    if key == "memory_pct" and number is not None:
        return f"memory {number:g}%"
    if key == "circuit_breaker_opens" and number is not None:
        return f"breaker opens {number:g}"
    return f"{key} {value}"


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
