"""The signal panels: health, latency, errors, named signals, canary vs baseline.

Each panel holds one reactive projection from :mod:`panel_data`; assigning an
equal one does nothing (Textual compares before it calls a watcher). When it
does change, the watcher hands each piece to a :class:`Cell`, whose own
reactive compares again — so a new probe that moves one number repaints that
one cell, and the once-a-second tick repaints only :class:`Age` cells.

The reactives are ``var``: they run their watcher but do not repaint the
widget that holds them, because repainting a panel repaints every cell in its
region; the only things that repaint are a :class:`Cell` whose text or state
changed (``Static.update``) and a sparkline whose line changed.

Layout (narrow one-line rows, or bordered boxes when there is room) is CSS
in ``ServiceDetail.DEFAULT_CSS``; the panels only decide what is in them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import HorizontalGroup, VerticalGroup
from textual.reactive import var
from textual.widgets import Static

from console.ui.text import safe_text
from console.ui.widgets.panel_data import (
    CompareData,
    CompareRow,
    ErrorsData,
    HealthData,
    LatencyData,
    Shown,
    SignalRow,
)
from console.ui.widgets.sparkline import SparkText
from console.ui.widgets.styles import STATE_CLASSES, state_class

CELL_LIMIT = 160
"""The longest text a cell takes; a detail or reason longer than this is cut with "…"."""


class Cell(Static):
    """One piece of text in one state's colour; repaints only when either changes."""

    shown: var[Shown] = var(Shown(""), init=False)
    """The text and its state."""

    def __init__(self, shown: Shown | str = "", *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.set_reactive(Cell.shown, Shown(shown) if isinstance(shown, str) else shown)

    def on_mount(self) -> None:
        self._draw(self.shown)

    def watch_shown(self, shown: Shown) -> None:
        self._draw(shown)

    def _draw(self, shown: Shown) -> None:
        # Outside text (reasons, details, labels, units) is stripped of control
        # sequences and never parsed as markup: a Text is taken literally.
        self.update(safe_text(shown.text, limit=CELL_LIMIT))
        wanted = state_class(shown.state)
        for name in STATE_CLASSES:
            self.set_class(name == wanted, name)

    def show(self, shown: Shown | str) -> None:
        """Set the text (a plain str has no state); an equal value repaints nothing."""
        self.shown = Shown(shown) if isinstance(shown, str) else shown


class Age(Cell):
    """An age ("2s", "for 4m · updated 2s ago"): the only thing the clock tick repaints."""


class _Titled(VerticalGroup):
    """A panel whose border title (shown in the wide layout) follows its data."""

    _title_text = ""

    def _set_title(self, title: str) -> None:
        # Only when it differs: Textual repaints on every assignment.
        if title != self._title_text:
            self._title_text = title
            self.border_title = safe_text(title, limit=80)


class HealthPanel(HorizontalGroup):
    """State with its symbol, the reason, and how long ago (narrow: one line)."""

    data: var[HealthData | None] = var(None, init=False)
    """What the panel shows, without ages."""

    def __init__(self) -> None:
        super().__init__()
        self.border_title = "health"

    def compose(self) -> ComposeResult:
        with HorizontalGroup(classes="head"):
            yield Cell(classes="name")
            yield Cell(classes="state")
        yield Cell(classes="reason")
        yield Age(classes="age")

    def watch_data(self, data: HealthData | None) -> None:
        if data is None:
            return
        self.query_one(".name", Cell).show(data.name)
        self.query_one(".state", Cell).show(data.state)
        self.query_one(".reason", Cell).show(data.reason)

    def show_age(self, age: Shown) -> None:
        """Called on every tick; repaints only when the text changes."""
        self.query_one(Age).show(age)


class LatencyPanel(_Titled):
    """p50/p95/p99 over 1m marked against thresholds, 5m values, a p95 sparkline."""

    data: var[LatencyData | None] = var(None, init=False)
    """What the panel shows."""

    def compose(self) -> ComposeResult:
        with HorizontalGroup(classes="row now"):
            yield Cell("latency 1m", classes="title")
            yield Cell("1m", classes="window")
            for p in ("p50", "p95", "p99"):
                yield Cell(classes=f"value {p}")
            yield SparkText(classes="spark inline")
            yield Cell(classes="note inline")
        with HorizontalGroup(classes="row five"):
            yield Cell("5m", classes="window label-five")
            for p in ("p50", "p95", "p99"):
                yield Cell(classes=f"value {p}")
        with HorizontalGroup(classes="row history"):
            yield Cell("p95", classes="window")
            yield SparkText(classes="spark block")
        yield Cell(classes="note block")

    def watch_data(self, data: LatencyData | None) -> None:
        if data is None:
            return
        self._set_title("latency" if data.source == "probe" else f"latency · {data.source}")
        self.query_one(".label-five", Cell).show(data.five_label)
        window = max(5, cell_len(data.five_label) + 1)  # the rows' labels line up
        for label in self.query(".window").results(Cell):
            if label.styles.width is None or label.styles.width.value != window:
                label.styles.width = window
        for index, p in enumerate(("p50", "p95", "p99")):
            # As wide as the wider of 1m and 5m, so the two rows line up under each other.
            width = max(VALUE_MIN + 1, *(cell_len(row[index].text) + 1 for row in (data.now, data.five)))
            for row, values in (("now", data.now), ("five", data.five)):
                cell = self.query_one(f".{row} .{p}", Cell)
                cell.show(values[index])
                if cell.styles.width is None or cell.styles.width.value != width:
                    cell.styles.width = width
        for note in self.query(".note").results(Cell):
            note.show(Shown(data.note, "source_down"))
        self.set_class(bool(data.note), "-noted")
        for spark in self.query(SparkText):
            spark.show(data.history, high=data.ceiling)


class ErrorsPanel(_Titled):
    """Error rate with its counts ("0.42% · 3 of 712 in 1m"), 5m, a rate sparkline."""

    data: var[ErrorsData | None] = var(None, init=False)
    """What the panel shows."""

    def compose(self) -> ComposeResult:
        with HorizontalGroup(classes="row now"):
            yield Cell("errors 1m", classes="title")
            yield Cell(classes="value")
            yield Cell(classes="counts")
            yield SparkText(classes="spark inline")
            yield Cell(classes="note inline")
        with HorizontalGroup(classes="row five"):
            yield Cell(classes="value")
            yield Cell(classes="counts")
        with HorizontalGroup(classes="row history"):
            yield Cell("rate", classes="window")
            yield SparkText(classes="spark block")
        yield Cell(classes="note block")

    def watch_data(self, data: ErrorsData | None) -> None:
        if data is None:
            return
        self._set_title("errors" if data.source == "probe" else f"errors · {data.source}")
        self.query_one(".now .value", Cell).show(data.rate)
        self.query_one(".now .counts", Cell).show(Shown(data.counts, "muted"))
        self.query_one(".five .value", Cell).show(data.rate_five)
        self.query_one(".five .counts", Cell).show(Shown(data.counts_five, "muted"))
        for note in self.query(".note").results(Cell):
            note.show(Shown(data.note, "source_down"))
        self.set_class(bool(data.note), "-noted")
        for spark in self.query(SparkText):
            spark.show(data.history, high=data.ceiling)


RowData = SignalRow | CompareRow
"""What one row of a table panel shows."""


class _Row(VerticalGroup):
    """One row of a table panel (a line of cells); its data is reactive like a panel's.

    A row is created with its data and may get ages and column widths before
    it is mounted (rows mount asynchronously); all are applied when it mounts.
    """

    data: var[RowData | None] = var(None, init=False)
    """What the row shows, without its age."""

    def __init__(self, data: RowData, widths: Mapping[str, int] | None = None) -> None:
        super().__init__(classes="item")
        self.set_reactive(_Row.data, data)
        self._age = ""
        self._ready = False
        self._widths: dict[str, int] = dict(widths or {})

    def on_mount(self) -> None:
        if not self.is_attached or not self.query(Age):
            return  # removed again while it was mounting: a newer selection replaced it
        self._ready = True
        if self.data is not None:
            self._draw(self.data)
        self.query_one(Age).show(Shown(self._age, "muted"))
        self._apply_widths()

    def set_widths(self, widths: Mapping[str, int]) -> None:
        """Width of each named column (cell class -> cells), so the rows line up."""
        if widths != self._widths:
            self._widths = dict(widths)
            if self._ready:
                self._apply_widths()

    def _apply_widths(self) -> None:
        for name, width in self._widths.items():
            cell = self.query_one(f".row .{name}", Cell)
            if cell.styles.width is None or cell.styles.width.value != width:
                cell.styles.width = width

    def watch_data(self, data: RowData | None) -> None:
        if self._ready and data is not None:
            self._draw(data)

    _draw: Callable[[RowData], None]
    """Each kind of row draws its data in its own cells (SignalRowView, CompareRowView)."""

    def show_age(self, age: str) -> None:
        """Called on every tick; repaints only when the text changes."""
        self._age = age
        if self._ready:
            self.query_one(Age).show(Shown(age, "muted"))


class SignalRowView(_Row):
    """label · value and mark · source · age · detail (on a line of its own when it is long)."""

    def compose(self) -> ComposeResult:
        with HorizontalGroup(classes="row"):
            yield Cell(classes="label")
            yield Cell(classes="value")
            yield Cell(classes="source")
            yield Age(classes="age")
            yield Cell(classes="detail")
        yield Cell(classes="below")

    def _draw(self, data: RowData) -> None:
        assert isinstance(data, SignalRow)
        self.query_one(".label", Cell).show(data.label)
        self.query_one(".value", Cell).show(data.value)
        self.query_one(".source", Cell).show(Shown(data.source, "muted"))
        detail_state = data.value.state if data.value.state in ("source_down", "stale") else "muted"
        for detail in self.query(".detail, .below").results(Cell):
            detail.show(Shown(data.detail, detail_state))
        self.set_class(data.quiet, "-quiet")


class CompareRowView(_Row):
    """label · canary · baseline · ratio · canary's age · why / where from."""

    def compose(self) -> ComposeResult:
        with HorizontalGroup(classes="row"):
            yield Cell(classes="label")
            yield Cell(classes="value canary")
            yield Cell(classes="value baseline")
            yield Cell(classes="ratio")
            yield Age(classes="age")
            yield Cell(classes="detail")

    def _draw(self, data: RowData) -> None:
        assert isinstance(data, CompareRow)
        self.query_one(".label", Cell).show(data.label)
        self.query_one(".canary", Cell).show(data.canary)
        self.query_one(".baseline", Cell).show(data.baseline)
        self.query_one(".ratio", Cell).show(data.ratio)
        self.query_one(".detail", Cell).show(data.info)


class _RowList(_Titled):
    """Rows keyed by signal name: a new set of names remounts, otherwise rows update in place."""

    def __init__(self) -> None:
        super().__init__()
        self._row_views: list[_Row] = []
        self._widths: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Cell(classes="more")

    def _sync(self, rows: Sequence[RowData], make: type[_Row], widths: Mapping[str, int]) -> None:
        """Show ``rows``, their value columns ``widths`` wide (cell class -> columns)."""
        self._widths = dict(widths)
        current = self._row_views
        if [r.data.name if r.data is not None else None for r in current] != [r.name for r in rows]:
            for widget in current:
                widget.remove()
            self._row_views = [make(r, widths) for r in rows]
            if self._row_views:
                self.mount_all(self._row_views, before=self.query_one(".more"))
            return
        for widget, row in zip(current, rows, strict=True):
            widget.data = row
            widget.set_widths(widths)

    def fit_rows(self, limit: int | None) -> None:
        """Show at most ``limit`` lines of rows; what does not fit is counted, never silently cut."""
        total = len(self._row_views)
        shown = total if limit is None or total <= limit else max(limit - 1, 0)
        for index, widget in enumerate(self._row_views):
            widget.set_class(index >= shown, "-over")
        more = total - shown
        text = f"+{more} more not shown: a taller terminal shows them" if more else ""
        self.query_one(".more", Cell).show(Shown(text, "muted"))
        self.query_one(".more", Cell).set_class(bool(more), "-shown")

    def show_ages(self, ages: Sequence[str]) -> None:
        """One age per row, in order."""
        for widget, age in zip(self._row_views, ages, strict=False):
            widget.show_age(age)


class SignalsPanel(_RowList):
    """The named signals, one row each."""

    data: var[tuple[SignalRow, ...]] = var((), init=False)
    """The rows shown."""

    def __init__(self) -> None:
        super().__init__()
        self.border_title = "signals"

    def watch_data(self, data: tuple[SignalRow, ...]) -> None:
        self._sync(data, SignalRowView, {"value": value_width(data)})


class ComparePanel(_RowList):
    """The canary next to its baseline: p95, error rate, named signals, ratios."""

    data: var[CompareData | None] = var(None, init=False)
    """The table shown; None hides the panel."""

    def compose(self) -> ComposeResult:
        with HorizontalGroup(classes="row header"):
            yield Cell("canary vs", classes="label")
            yield Cell(classes="value canary")
            yield Cell(classes="value baseline")
            yield Cell("ratio", classes="ratio")
        yield from super().compose()

    def watch_data(self, data: CompareData | None) -> None:
        if data is None:
            self._sync((), CompareRowView, {})
            return
        self._set_title(f"{data.canary} vs {data.baseline}")
        widths = compare_widths(data)
        for name, text in (("canary", data.canary), ("baseline", data.baseline)):
            header = self.query_one(f".header .{name}", Cell)
            header.show(Shown(text, "muted"))
            header.styles.width = widths[name]
        self._sync(data.rows, CompareRowView, widths)


VALUE_MIN = 14
"""The least width of a value column: "p95 no data", "source down ⚠" and most values fit."""


def value_width(rows: Sequence[SignalRow]) -> int:
    """The signals' value column: the longest value and a space, so the columns line up."""
    return max([VALUE_MIN, *(cell_len(r.value.text) + 1 for r in rows)])


def compare_widths(data: CompareData) -> dict[str, int]:
    """The comparison's canary and baseline columns: their longest value or name, and a space."""
    return {
        "canary": max([VALUE_MIN, cell_len(data.canary) + 1,
                       *(cell_len(r.canary.text) + 1 for r in data.rows)]),
        "baseline": max([VALUE_MIN, cell_len(data.baseline) + 1,
                         *(cell_len(r.baseline.text) + 1 for r in data.rows)]),
    }


__all__ = [
    "Age",
    "Cell",
    "ComparePanel",
    "CompareRowView",
    "ErrorsPanel",
    "HealthPanel",
    "LatencyPanel",
    "SignalRowView",
    "SignalsPanel",
]
