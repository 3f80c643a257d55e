"""The services table: one row per service — health, age, p95, errors, reason.

It is on screen all the time and updated by every snapshot and every
one-second tick, so it repaints as little as it can: a cell is replaced only
when its text changes, only the rows that changed are repainted (Textual's
``DataTable.update_cell`` repaints the whole table, header included), and
column widths are recomputed only when a cell no longer fits its column.

The health cell also carries the worst of the service's signals ("● up ✖2":
up, but two signals critical), so a service whose health endpoint says "up"
while its 5xx rate is critical does not look calm in the one place everyone
looks first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

from rich.text import Text
from textual.geometry import Region
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from console.engine.snapshot import ServiceView
from console.model.live import ServiceLive
from console.model.units import NO_DATA, format_value
from console.ui.text import format_age, safe_text
from console.ui.widgets.styles import HEALTH_STYLE, STATE_MARK, STATE_STYLE, signal_counts

COLUMNS = ("service", "health", "age", "p95", "errors", "reason")

CELL_PADDING = 1
"""DataTable's default padding on each side of a cell."""

MIN_REASON = 16
"""The reason keeps at least this many columns, even in a narrow terminal."""


def health_cell(view: ServiceView, now: float) -> Text:
    """The health state with a symbol and the worst signals' mark; dimmed with ⌛ when stale.

    ``● up ✖2``: the health endpoint says up, but two signals are critical;
    ``● up ▲1``: one signal is past its warning level. The mark takes the
    colour of the worst state. A stale row gets no mark: its values are not current.
    """
    live = view.live
    if live is None:
        return Text("? unknown" if view.problem is None else "⚠ unreadable", style="dim")
    label, style = HEALTH_STYLE.get(live.health, HEALTH_STYLE["unknown"])
    if is_stale(view, now):
        return Text(f"⌛ {live.health}", style="dim")
    text = Text(label, style=style)
    mark, mark_style = worst_mark(live)
    if mark:
        text.append(" ")
        text.append(mark, style=mark_style)
    return text


def worst_mark(live: ServiceLive) -> tuple[str, str]:
    """``("✖2", style)`` for two critical signals, ``("▲1", style)`` for one warning, else ``("", "")``."""
    critical, warning = signal_counts(live.signals)
    if critical:
        return f"{STATE_MARK['critical'].strip()}{critical}", STATE_STYLE["critical"]
    if warning:
        return f"{STATE_MARK['warning'].strip()}{warning}", STATE_STYLE["warning"]
    return "", ""


def is_stale(view: ServiceView, now: float) -> bool:
    """No value, or a row that is not fresh (the one rule: :func:`is_fresh`)."""
    return not view.fresh(now)


def signal_cell(live: ServiceLive | None, name: str) -> Text:
    """One signal's value with its unit (:func:`format_value`), marked by its threshold state."""
    if live is None:
        return Text("—", style="dim")
    signal = next((s for s in live.signals if s.name == name), None)
    if signal is None or signal.value is None:
        return Text(NO_DATA, style="dim")
    text = format_value(signal.value, signal.unit)
    return Text(text + STATE_MARK.get(signal.state, ""), style=STATE_STYLE.get(signal.state, ""))


def row_cells(view: ServiceView, now: float) -> dict[str, Text]:
    """Every cell of a service's row but the reason, which is cut to the room left."""
    return {
        "service": Text(view.name, style="bold"),
        "health": health_cell(view, now),
        "age": Text(format_age(None if view.updated_at is None else now - view.updated_at)),
        "p95": signal_cell(view.live, "p95"),
        "errors": signal_cell(view.live, "error_rate"),
    }


def reason_of(view: ServiceView) -> str:
    """Why the service is in its state (or why there is no value)."""
    return view.problem or (view.live.reason if view.live else "waiting for the first probe")


class ServiceTable(DataTable[Text]):
    """The services, one row each, keyed by name; a changed cell repaints its row only."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown: tuple[tuple[ServiceView, ...], float] | None = None
        self._batching = False

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = False
        for column in COLUMNS:
            self.add_column(column, key=column)

    def on_resize(self) -> None:
        # The reason column takes what the others leave: recompute at the new width.
        if self._shown is not None:
            self.show(*self._shown)

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        # While `show` replaces cells, `update_cell` asks to repaint the whole table
        # each time; `show` repaints the rows that changed itself, once.
        if self._batching and not (regions or layout or recompose):
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def show(self, views: tuple[ServiceView, ...], now: float) -> None:
        """Bring the table up to date with ``views`` (add rows, update changed cells)."""
        self._shown = (views, now)
        rows = {view.name: row_cells(view, now) for view in views}
        reason_width = self._reason_width(rows.values())
        for view in views:
            rows[view.name]["reason"] = safe_text(reason_of(view), limit=reason_width)
        changed: list[str] = []
        full = False
        self._batching = True
        try:
            for name, cells in rows.items():
                if name not in self.rows:
                    self.add_row(*(cells[c] for c in COLUMNS), key=name)
                    full = True
                    continue
                for column, value in cells.items():
                    if self.get_cell(name, column) == value:
                        continue
                    wider = value.cell_len > self.columns[ColumnKey(column)].content_width
                    self.update_cell(name, column, value, update_width=wider)
                    full = full or wider
                    if name not in changed:
                        changed.append(name)
        finally:
            self._batching = False
        if full:
            self.refresh()  # a column grew or a row came: everything may have moved
        else:
            for name in changed:
                self.refresh_row(self.get_row_index(name))

    def _reason_width(self, rows: Iterable[dict[str, Text]]) -> int:
        """What is left of the width for the reason, so the table never scrolls sideways.

        Columns only grow (a cell narrower than its column leaves it as it
        is), so each column takes the widest of its header, its current width
        and the cells about to be shown.
        """
        widths = {c: len(c) for c in COLUMNS if c != "reason"}
        for column in widths:
            if (current := self.columns.get(ColumnKey(column))) is not None:
                widths[column] = max(widths[column], current.content_width)
        for cells in rows:
            for column in widths:
                widths[column] = max(widths[column], cells[column].cell_len)
        used = sum(width + 2 * CELL_PADDING for width in widths.values()) + 2 * CELL_PADDING
        # Without the vertical scrollbar, when there are more services than rows.
        return max(MIN_REASON, (self.scrollable_content_region.width or 80) - used)

    @property
    def selected(self) -> str | None:
        """The name of the service under the cursor."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None
