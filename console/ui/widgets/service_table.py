"""The services table: one row per service, the worst first — health, worst signal, reason.

It is on screen all the time and updated by every snapshot and every
one-second tick, so it repaints as little as it can: a cell is replaced only
when its text changes, only the rows that changed are repainted (Textual's
``DataTable.update_cell`` repaints the whole table, header included), column
widths are recomputed only when a cell no longer fits its column, and rows
are re-sorted only when the order changes.

Rows are ordered by :func:`console.model.triage.order` (down, critical,
warning, stale, ok; config order within each) unless ``order`` is "config".
The "worst signal" column names the signal past the worst level, its value
and the level (``✖ 5xx rate 7.70% > 5.00%``, :func:`~console.model.triage.breach_text`),
with ``+N`` for the other signals past a level, so a service whose health
endpoint says "up" while its 5xx rate is critical does not look calm in the
one place everyone looks first. Every rule here is triage's; this module only
draws it.

Which columns show depends on the width: below :data:`WIDE_TABLE_WIDTH`
(80x24) the table keeps service, health, worst signal and reason — the
worst signal names any breached p95 or error rate with its level, and ``⌛``
in the health column marks a stale row, so p95, errors and age are the
columns that go.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, Self

from rich.text import Text
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.reactive import var
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from console.engine.snapshot import ServiceView
from console.model import triage
from console.model.live import ServiceLive
from console.model.triage import Trouble
from console.model.units import NO_DATA, format_value
from console.ui.text import format_age, safe_text
from console.ui.widgets.styles import HEALTH_STYLE, STATE_MARK, STATE_STYLE

Order = Literal["trouble", "config"]
"""The table's order: worst first, or as the config lists the services."""

LABELS = {
    "service": "service", "health": "health", "worst": "worst signal", "p95": "p95",
    "errors": "errors", "age": "age", "reason": "reason",
}  # fmt: skip
"""Column key -> header."""

NARROW_COLUMNS = ("service", "health", "worst", "reason")
"""The columns below :data:`WIDE_TABLE_WIDTH`: who, how it answers, what is wrong, why."""

WIDE_COLUMNS = ("service", "health", "worst", "p95", "errors", "age", "reason")
"""The columns from :data:`WIDE_TABLE_WIDTH` on."""

WIDE_TABLE_WIDTH = 110
"""From this many columns the table also shows p95, errors and age (the reason keeps ~30)."""

CELL_PADDING = 1
"""DataTable's default padding on each side of a cell."""

MIN_REASON = 16
"""The reason keeps at least this many columns, even in a narrow terminal."""


def is_stale(view: ServiceView, now: float) -> bool:
    """No value, or a row that is not fresh (the one rule: :func:`is_fresh`)."""
    return not view.fresh(now)


def service_trouble(view: ServiceView, now: float) -> Trouble:
    """How bad the service is (:func:`triage.trouble`), stale judged by the one staleness rule."""
    return triage.trouble(view.live, stale=is_stale(view, now))


def troubles_of(views: Iterable[ServiceView], now: float) -> dict[str, Trouble]:
    """Every service's trouble by name, for the table's order and the header's summary."""
    return {view.name: service_trouble(view, now) for view in views}


def health_cell(view: ServiceView, now: float) -> Text:
    """The health state with its symbol (``✖ down``); dimmed with ⌛ when stale."""
    live = view.live
    if live is None:
        return Text("? unknown" if view.problem is None else "⚠ unreadable", style="dim")
    if is_stale(view, now):
        return Text(f"⌛ {live.health}", style="dim")
    label, style = HEALTH_STYLE.get(live.health, HEALTH_STYLE["unknown"])
    return Text(label, style=style)


def worst_cell(view: ServiceView, now: float) -> Text:
    """``✖ 5xx rate 7.70% > 5.00% +1``: the worst breach in its state's colour, and how many more.

    Empty when no signal is past a level, and for a stale row, whose values are not current.
    """
    if view.live is None or is_stale(view, now):
        return Text("")
    found = triage.breaches(view.live)
    if not found:
        return Text("")
    worst = found[0]
    style = STATE_STYLE[worst.state]
    text = Text(f"{STATE_MARK[worst.state].strip()} {triage.breach_text(worst)}", style=style)
    if len(found) > 1:
        text.append(f" +{len(found) - 1}", style=STATE_STYLE[found[1].state])
    return text


def signal_cell(live: ServiceLive | None, name: str, *, stale: bool = False) -> Text:
    """One signal's value with its unit (:func:`format_value`), marked by its threshold state."""
    if live is None:
        return Text("—", style="dim")
    signal = live.signal(name)
    if signal is None or signal.value is None:
        return Text(NO_DATA, style="dim")
    text = format_value(signal.value, signal.unit)
    if stale:
        return Text(text, style="dim")
    return Text(text + STATE_MARK.get(signal.state, ""), style=STATE_STYLE.get(signal.state, ""))


def row_cells(view: ServiceView, now: float) -> dict[str, Text]:
    """Every cell of a service's row but the reason, which is cut to the room left."""
    stale = is_stale(view, now)
    return {
        "service": Text(view.name, style="bold"),
        "health": health_cell(view, now),
        "worst": worst_cell(view, now),
        "p95": signal_cell(view.live, "p95", stale=stale),
        "errors": signal_cell(view.live, "error_rate", stale=stale),
        "age": Text(format_age(None if view.updated_at is None else now - view.updated_at)),
    }


def reason_of(view: ServiceView) -> str:
    """Why the service is in its state (or why there is no value)."""
    return view.problem or (view.live.reason if view.live else "waiting for the first probe")


class ServiceTable(DataTable[Text]):
    """The services, one row each, keyed by name, worst first; a changed cell repaints its row only.

    The cursor stays on the service the operator put it on (keys, mouse, the
    palette) when rows move; until then it stays on the top row, so the
    worst service is the one in the detail.
    """

    # A dim cursor: the cells keep their own colours on it (red "✖ down" stays red and readable).
    DEFAULT_CSS = """
    ServiceTable > .datatable--cursor, ServiceTable:focus > .datatable--cursor {
        background: $primary 35%; color: $text; text-style: bold;
    }
    """

    order: var[Order] = var[Order]("trouble", init=False)
    """Worst first ("trouble") or as the config lists the services ("config")."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        # The cell's own colour wins under the cursor: a selected down row still reads red.
        super().__init__(id=id, classes=classes, cursor_foreground_priority="renderable")
        self._shown: tuple[tuple[ServiceView, ...], float, Mapping[str, Trouble]] | None = None
        self._batching = False
        self._columns: tuple[str, ...] = ()
        self._placing = False
        self._chosen = False

    def watch_order(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)

    def watch_cursor_coordinate(self, old_coordinate: Coordinate, new_coordinate: Coordinate) -> None:
        super().watch_cursor_coordinate(old_coordinate, new_coordinate)
        if old_coordinate != new_coordinate and not self._placing:
            self._chosen = True  # the operator moved it: from now on it follows its service

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = False

    def on_resize(self) -> None:
        # The columns and the reason's room follow the width: recompute at the new one.
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

    def show(
        self, views: tuple[ServiceView, ...], now: float, troubles: Mapping[str, Trouble] | None = None
    ) -> None:
        """Bring the table up to date with ``views``: columns, rows, changed cells, order.

        Args:
            views: every service, in config order.
            now: the clock time staleness and ages are judged at.
            troubles: each service's trouble (:func:`troubles_of`), when the caller has them.
        """
        troubles = troubles if troubles is not None else troubles_of(views, now)
        self._shown = (views, now, troubles)
        before = self.selected
        self._fit_columns()
        names = [view.name for view in views]
        wanted = (
            triage.order(names, [troubles[n] for n in names]) if self.order == "trouble" else names
        )
        rows = {view.name: row_cells(view, now) for view in views}
        reason_width = self._reason_width(rows.values())
        for view in views:
            rows[view.name]["reason"] = safe_text(reason_of(view), limit=reason_width)
        changed: list[str] = []
        full = False
        self._batching = True
        try:
            for name in wanted:
                cells = {column: rows[name][column] for column in self._columns}
                if name not in self.rows:
                    self.add_row(*cells.values(), key=name)
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
        if self._row_names() != wanted:
            position = {name: index for index, name in enumerate(wanted)}
            last = len(position)  # a row no view names (none today) goes to the bottom
            self.sort("service", key=lambda cell: position.get(cell.plain, last))  # repaints it all
        elif full:
            self.refresh()  # a column grew or a row came: everything may have moved
        else:
            for name in changed:
                self.refresh_row(self.get_row_index(name))
        self._keep_cursor(before)

    def select(self, name: str) -> None:
        """Put the cursor on ``name`` and keep it there when rows move."""
        if name in self.rows:
            self.move_cursor(row=self.get_row_index(name))
            self._chosen = True

    def _keep_cursor(self, before: str | None) -> None:
        """After rows moved: the cursor back on the operator's service, or on the top row."""
        if not self.row_count:
            return
        row = self.get_row_index(before) if self._chosen and before is not None and before in self.rows else 0
        if row != self.cursor_row:
            self._placing = True
            try:
                self.move_cursor(row=row)  # posts RowHighlighted
            finally:
                self._placing = False
        elif self.selected != before:
            # Another service moved under a cursor that stayed put: say so, as a move would.
            self.post_message(DataTable.RowHighlighted(self, row, self._row_key(row)))

    def _row_key(self, row: int) -> RowKey:
        return self.coordinate_to_cell_key(Coordinate(row, 0)).row_key

    def _row_names(self) -> list[str]:
        return [str(self.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value)
                for i in range(self.row_count)]  # fmt: skip

    def _fit_columns(self) -> None:
        """The columns for the current width; rebuilt (rows re-added by ``show``) when they change."""
        width = self.scrollable_content_region.width or self.size.width or 80
        columns = WIDE_COLUMNS if width >= WIDE_TABLE_WIDTH else NARROW_COLUMNS
        if columns == self._columns:
            return
        self._placing = True
        try:
            self.clear(columns=True)
            for column in columns:
                self.add_column(LABELS[column], key=column)
        finally:
            self._placing = False
        self._columns = columns

    def _reason_width(self, rows: Iterable[dict[str, Text]]) -> int:
        """What is left of the width for the reason, so the table never scrolls sideways.

        Columns only grow (a cell narrower than its column leaves it as it
        is), so each column takes the widest of its header, its current width
        and the cells about to be shown.
        """
        widths = {c: len(LABELS[c]) for c in self._columns if c != "reason"}
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
