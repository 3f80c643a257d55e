"""The services table: one row per service — health, age, p95, errors, reason."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from console.engine.snapshot import ServiceView
from console.model.live import ServiceLive
from console.ui.text import format_age, safe_text
from console.ui.widgets.styles import HEALTH_STYLE, STATE_MARK, STATE_STYLE

COLUMNS = ("service", "health", "age", "p95", "errors", "reason")


def health_cell(view: ServiceView, now: float) -> Text:
    """The health state with a symbol, dimmed with ⌛ when the value is stale."""
    live = view.live
    if live is None:
        return Text("? unknown" if view.problem is None else "⚠ unreadable", style="dim")
    label, style = HEALTH_STYLE.get(live.health, HEALTH_STYLE["unknown"])
    if is_stale(view, now):
        return Text(f"⌛ {live.health}", style="dim")
    return Text(label, style=style)


def is_stale(view: ServiceView, now: float) -> bool:
    """No value, or a value older than three probe intervals."""
    return view.updated_at is None or now - view.updated_at > 3 * view.interval


def signal_cell(live: ServiceLive | None, name: str) -> Text:
    """One signal's value with its unit, marked by its threshold state."""
    if live is None:
        return Text("—", style="dim")
    signal = next((s for s in live.signals if s.name == name), None)
    if signal is None or signal.value is None:
        return Text("no data", style="dim")
    unit = signal.unit
    value = f"{signal.value:.0f}" if abs(signal.value) >= 100 else f"{signal.value:.1f}"
    if name == "error_rate":
        value = f"{signal.value:.2f}"
    text = f"{value}{unit if unit == '%' else ' ' + unit if unit else ''}"
    return Text(text + STATE_MARK.get(signal.state, ""), style=STATE_STYLE.get(signal.state, ""))


class ServiceTable(DataTable[Text]):
    """The services, one row each, keyed by name; cells update only when they change."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = False
        for column in COLUMNS:
            self.add_column(column, key=column)

    _shown: tuple[tuple[ServiceView, ...], float] | None = None

    def on_resize(self) -> None:
        # The reason column takes what the others leave: recompute at the new width.
        if self._shown is not None:
            self.show(*self._shown)

    def show(self, views: tuple[ServiceView, ...], now: float) -> None:
        """Bring the table up to date with ``views`` (add rows, update changed cells)."""
        self._shown = (views, now)
        for view in views:
            cells = {
                "service": Text(view.name, style="bold"),
                "health": health_cell(view, now),
                "age": Text(format_age(None if view.updated_at is None else now - view.updated_at)),
                "p95": signal_cell(view.live, "p95"),
                "errors": signal_cell(view.live, "error_rate"),
                "reason": safe_text(
                    view.problem or (view.live.reason if view.live else "waiting for the first probe"),
                    limit=self._reason_width(views),
                ),
            }
            if view.name not in self.rows:
                self.add_row(*(cells[c] for c in COLUMNS), key=view.name)
                continue
            for column, value in cells.items():
                if self.get_cell(view.name, column) != value:
                    self.update_cell(view.name, column, value, update_width=True)

    def _reason_width(self, views: tuple[ServiceView, ...]) -> int:
        """What is left of the width for the reason, so the table never scrolls sideways."""
        name_width = max((len(v.name) for v in views), default=8)
        used = name_width + 42  # the other columns and cell padding
        return max(16, (self.size.width or 80) - used)

    @property
    def selected(self) -> str | None:
        """The name of the service under the cursor."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None
