"""The selected service in detail: the health, latency, errors, signals and canary panels.

The dashboard sets three reactives — ``view``, ``baseline`` (for a canary)
and ``now`` (every second) — and this widget turns them into each panel's
projection (:mod:`panel_data`). Every panel compares before it draws, so a
snapshot that changes nothing on screen costs no repaint and the clock tick
repaints only the ages.

Two layouts, chosen from the widget's own size rather than the terminal's,
since the dashboard decides how much room the detail gets:

* narrow (the 80x24 case, about 10–12 rows): one line per panel and per
  signal, sparklines squeezed into what is left of a line, no 5m values; for a
  canary the comparison table replaces the signals list (it has the same
  rows, plus the baseline and the ratio). When the rows do not fit, the last
  ones are counted ("+2 more"); the comparison's header (which column is the
  canary) goes only when not even one row would be left under it.
* wide (at least ``WIDE_MIN_WIDTH`` columns and tall enough for every box,
  e.g. 120x40): bordered panels two by two, 5m values, full-width sparklines,
  and the comparison below them. A signal's detail too long for its line
  gets a line of its own when the height allows (:func:`wide_height_of`
  counts it), rather than being cut.

A value past a level shows the level ("p95 907 ms ▲ > 500 ms"), and value
columns are as wide as their longest value, so rows line up.

The three inputs are ``var`` reactives: setting them runs ``_update`` but
does not repaint this widget (which would repaint every panel in it).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Container
from textual.css.scalar import Unit
from textual.events import Resize
from textual.reactive import var
from textual.widget import Widget

from console.engine.snapshot import ServiceView
from console.ui.text import format_age
from console.ui.widgets.panel_data import (
    COMPARED_FIRST,
    HEALTH_ROW,
    SignalRow,
    compare_data,
    errors_data,
    health_ages,
    health_data,
    latency_data,
    named_signals,
    signal_rows,
)
from console.ui.widgets.panels import (
    Cell,
    ComparePanel,
    ErrorsPanel,
    HealthPanel,
    LatencyPanel,
    SignalsPanel,
    value_width,
)

WIDE_MIN_WIDTH = 100
"""Below this many columns the panels are one-line rows."""

LABEL_WIDTH = 14
SOURCE_WIDTH = 12
AGE_WIDTH = 5
"""Fixed columns of a signal row (the age with its margin); the value column follows its values."""

BOX = 4
"""Columns a wide box takes for its border and padding."""


def narrow_height(signals: int, compared: int | None) -> int:
    """Lines the narrow layout needs: health, latency, errors, then the signals or the comparison.

    Args:
        signals: named signals of the service.
        compared: rows of the canary-vs-baseline table, None when not a canary.
    """
    return 3 + (1 + compared if compared is not None else signals)


def wide_height(signals: int, compared: int | None, *, two_line: bool = False) -> int:
    """Lines the wide layout needs: two rows of boxes, and the comparison box below.

    ``two_line``: every signal's detail has a line of its own under its value.
    """
    lines = signals * (2 if two_line else 1)
    return 5 + max(5, lines + 2 if signals else 0) + (compared + 3 if compared is not None else 0)


def wide_widths(width: int) -> tuple[int, int]:
    """The wide layout's two columns of boxes (health and errors; latency and signals): 2 to 3."""
    left = width * 2 // 5
    return left, width - left


def needs_own_line(rows: Sequence[SignalRow], width: int) -> bool:
    """Whether a signal's detail is too long for its line in the wide signals box ``width`` wide."""
    inner = wide_widths(width)[1] - BOX
    room = inner - LABEL_WIDTH - (value_width(rows) + 1) - SOURCE_WIDTH - AGE_WIDTH
    return any(cell_len(row.detail) > room for row in rows)


def narrow_height_of(view: ServiceView, compared: bool) -> int:
    """Lines the narrow layout needs for ``view`` (``compared``: a canary with a baseline)."""
    signals = len(named_signals(view.live))
    return narrow_height(signals, len(COMPARED_FIRST) + signals if compared else None)


def wide_height_of(
    view: ServiceView, compared: bool, width: int | None = None, now: float | None = None
) -> int:
    """Lines the wide layout needs for ``view`` (``compared``: a canary with a baseline).

    With ``width`` and ``now``, a signal detail too long for its line counts a
    line of its own (:func:`needs_own_line`); without, details are cut to their line.
    """
    signals = len(named_signals(view.live))
    two_line = (
        width is not None and now is not None and needs_own_line(signal_rows(view, now), width)
    )
    return wide_height(signals, len(COMPARED_FIRST) + signals if compared else None, two_line=two_line)


class ServiceDetail(Widget):
    """Health, latency, errors, named signals and, for a canary, the comparison."""

    DEFAULT_CSS = """
    ServiceDetail { layout: vertical; overflow: hidden hidden; }
    ServiceDetail Cell { width: auto; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    ServiceDetail .empty { display: none; color: $text-muted; padding: 0 1; }
    ServiceDetail.-empty .empty { display: block; }
    ServiceDetail.-empty .pair, ServiceDetail.-empty ComparePanel { display: none; }

    ServiceDetail .pair { layout: vertical; width: 1fr; height: auto; }
    ServiceDetail HealthPanel, ServiceDetail LatencyPanel, ServiceDetail ErrorsPanel,
    ServiceDetail SignalsPanel, ServiceDetail ComparePanel { width: 1fr; height: auto; padding: 0 1; }
    ServiceDetail .row { height: 1; width: 1fr; }
    ServiceDetail .item { height: auto; width: 1fr; }
    ServiceDetail .title, ServiceDetail .label { width: 14; color: $text-muted; }
    ServiceDetail .window { width: 5; color: $text-muted; }
    ServiceDetail .spark { color: $primary; }
    ServiceDetail .five, ServiceDetail .history, ServiceDetail .now .window { display: none; }

    ServiceDetail HealthPanel .head { width: auto; }
    ServiceDetail HealthPanel .name { text-style: bold; max-width: 24; margin-right: 2; }
    ServiceDetail HealthPanel .state { margin-right: 2; }
    ServiceDetail HealthPanel .reason { width: 1fr; }
    ServiceDetail HealthPanel .age { margin-left: 2; }

    ServiceDetail LatencyPanel .value { min-width: 15; margin-right: 1; }
    ServiceDetail ErrorsPanel .value { margin-right: 1; }
    ServiceDetail ErrorsPanel .counts { margin-right: 2; }
    ServiceDetail .spark.inline { margin-left: 1; }
    ServiceDetail .note { display: none; width: 1fr; }
    ServiceDetail .note.inline { margin-left: 1; }
    ServiceDetail .-noted .note.inline { display: block; }
    ServiceDetail .-noted .spark.inline { display: none; }

    ServiceDetail .item .value, ServiceDetail .header .value { margin-right: 1; }
    ServiceDetail .source { width: 12; }
    ServiceDetail .below { display: none; width: 1fr; margin-left: 14; color: $text-muted; }
    ServiceDetail .ratio { min-width: 7; margin-right: 1; text-style: bold; }
    ServiceDetail .age { width: auto; min-width: 4; margin-right: 1; }
    ServiceDetail .detail { width: 1fr; }
    ServiceDetail SignalRowView.-quiet .detail { display: none; }
    ServiceDetail SignalsPanel.-empty, ServiceDetail ComparePanel.-empty { display: none; }
    ServiceDetail.-narrow.-compare SignalsPanel { display: none; }
    ServiceDetail.-tight ComparePanel .header { display: none; }
    ServiceDetail .-over, ServiceDetail .more { display: none; }
    ServiceDetail .more.-shown { display: block; width: 1fr; color: $text-muted; }

    ServiceDetail.-wide .pair { layout: horizontal; }
    ServiceDetail.-wide HealthPanel, ServiceDetail.-wide LatencyPanel, ServiceDetail.-wide ErrorsPanel,
    ServiceDetail.-wide SignalsPanel, ServiceDetail.-wide ComparePanel {
        border: round $panel-lighten-2; border-title-color: $text-muted; padding: 0 1;
    }
    ServiceDetail.-wide HealthPanel { layout: vertical; }
    ServiceDetail.-wide HealthPanel .reason, ServiceDetail.-wide HealthPanel .age { width: 1fr; margin: 0; }
    ServiceDetail.-wide .title, ServiceDetail.-wide .spark.inline { display: none; }
    ServiceDetail.-wide .five, ServiceDetail.-wide .history, ServiceDetail.-wide .now .window { display: block; }
    ServiceDetail.-wide SignalRowView.-quiet .detail { display: block; }
    ServiceDetail.-wide SignalsPanel.-two-line .row .detail { display: none; }
    ServiceDetail.-wide SignalsPanel.-two-line .below { display: block; }
    ServiceDetail.-wide .-noted .note.inline, ServiceDetail.-wide .-noted .history { display: none; }
    ServiceDetail.-wide .-noted .note.block { display: block; }

    ServiceDetail .-s-up { color: $success; }
    ServiceDetail .-s-degraded, ServiceDetail .-s-warning { color: $warning; }
    ServiceDetail .-s-down, ServiceDetail .-s-critical { color: $error; text-style: bold; }
    ServiceDetail .-s-source-down { color: $accent; text-style: italic; }
    ServiceDetail .-s-unknown, ServiceDetail .-s-no-data, ServiceDetail .-s-muted { color: $text-muted; }
    ServiceDetail .-s-stale { color: $text-muted; text-style: italic; }
    ServiceDetail HealthPanel .-s-stale { color: $warning; text-style: bold; }
    """

    view: var[ServiceView | None] = var(None, init=False)
    """The service shown (None: nothing selected)."""
    baseline: var[ServiceView | None] = var(None, init=False)
    """Its baseline when it is a canary; shows the comparison."""
    now: var[float] = var(0.0, init=False)
    """The clock time ages and staleness are judged against."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._ready = False
        self._scheduled = False

    def compose(self) -> ComposeResult:
        yield Cell("select a service to see its signals", classes="empty")
        with Container(classes="pair top"):
            yield HealthPanel()
            yield LatencyPanel()
        with Container(classes="pair middle"):
            yield ErrorsPanel()
            yield SignalsPanel()
        yield ComparePanel()

    def on_mount(self) -> None:
        self._ready = True
        self._update()

    def watch_view(self) -> None:
        self._schedule()

    def watch_baseline(self) -> None:
        self._schedule()

    def watch_now(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        """Update once after the caller has set all three inputs.

        The dashboard sets ``now``, ``view`` and ``baseline`` one after the
        other; updating after each would build a comparison of the new
        service with the old baseline and mount rows only to remove them.
        """
        if self._ready and not self._scheduled:
            self._scheduled = True
            self.call_next(self._update)

    def on_resize(self, event: Resize) -> None:
        self._fit()

    def _update(self) -> None:
        """Hand every panel its projection; equal projections draw nothing."""
        self._scheduled = False
        if not self._ready:
            return
        view, now = self.view, self.now
        self.set_class(view is None, "-empty")
        if view is None:
            return
        self.query_one(HealthPanel).data = health_data(view, now)
        self.query_one(HealthPanel).show_age(health_ages(view, now))
        self.query_one(LatencyPanel).data = latency_data(view, now)
        self.query_one(ErrorsPanel).data = errors_data(view, now)
        signals = self.query_one(SignalsPanel)
        rows = signal_rows(view, now)
        signals.data = rows
        signals.set_class(not rows, "-empty")
        ages = {s.name: _age(s.at, now) for s in named_signals(view.live)}
        if view.live is not None:
            ages |= {
                n: _age(s.at, now) for n in ("p95", "error_rate") if (s := view.live.signal(n))
            }
        signals.show_ages([ages[r.name] for r in rows])
        compare = self.query_one(ComparePanel)
        table = compare_data(view, self.baseline, now) if self.baseline is not None else None
        compare.data = table
        compare.set_class(table is None, "-empty")
        if table is not None:
            ages[HEALTH_ROW] = _age(view.updated_at, now)
            compare.show_ages([ages.get(r.name, "—") for r in table.rows])
        self._fit()

    def _fit(self) -> None:
        """Pick the layout that shows everything in the room this widget has."""
        width, height = self.size
        planned = self.styles.height
        if planned is not None and planned.unit == Unit.CELLS and self.size:
            # The dashboard has just set the height this service gets; the next
            # layout applies it. Lay out for it now rather than for one frame at the old one.
            height = int(planned.value)
        signals = self.query_one(SignalsPanel)
        rows = len(signals.data)
        table = self.query_one(ComparePanel).data
        compared = len(table.rows) if table is not None else None
        wide = width >= WIDE_MIN_WIDTH and height >= wide_height(rows, compared)
        two_line = (
            wide
            and needs_own_line(signals.data, width)
            and height >= wide_height(rows, compared, two_line=True)
        )
        # Health, latency and errors take a line each; the list below gets the rest.
        room = height - 3
        # The comparison's header goes last: only when not even one row and the
        # "+N more" line would be left under it.
        tight = (
            not wide and compared is not None and 1 + compared > room and room < 3
        )
        self.set_class(wide, "-wide")
        self.set_class(not wide, "-narrow")
        self.set_class(table is not None, "-compare")
        self.set_class(tight, "-tight")
        signals.set_class(two_line, "-two-line")
        self._size_boxes(width if wide else None)
        listed = None if wide else room - (1 if compared is not None and not tight else 0)
        signals.fit_rows(None if table is not None and not wide else listed)
        self.query_one(ComparePanel).fit_rows(listed)

    def _size_boxes(self, width: int | None) -> None:
        """Wide: the boxes two to three (:func:`wide_widths`), so a row's room is known; else 1fr."""
        left, right = wide_widths(width) if width is not None else (None, None)
        for panel, box in ((HealthPanel, left), (ErrorsPanel, left), (LatencyPanel, right),
                           (SignalsPanel, right)):  # fmt: skip
            widget = self.query_one(panel)
            wanted = f"{box}" if box is not None else "1fr"
            if str(widget.styles.width) != wanted:
                widget.styles.width = box if box is not None else "1fr"

def _age(at: float | None, now: float) -> str:
    return format_age(None if at is None else now - at)
