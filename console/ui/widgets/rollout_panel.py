"""The rollout panel: stage bar, phase, each criterion as a row, and who did what last.

The dashboard hands it the rollout to show (a snapshot's
:class:`~console.engine.snapshot.RolloutPanel`) and the clock time each
second; everything on it is computed from those two (:mod:`rollout_text`),
so the bake timer ticks without an engine call. Each part is replaced only
when its text changes: snapshots arrive several times a second.

Two layouts, chosen by the dashboard from the room it has (and, within each,
columns by the width: :data:`WIDE_MIN_WIDTH`):

* compact (80x24): a rule carrying the title, one line with the stage bar
  and the phase, two criterion rows (worst first; the rest scroll under the
  cursor once the table has focus), and the last change — five lines;
* full (from :data:`FULL_MIN_HEIGHT` rows): the stage bar and the phase on
  lines of their own, every criterion under a header, and the leader's notices.

``enter`` on a criterion row posts :class:`RolloutPane.WhyRequested`; the
dashboard opens the why view.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import DescendantBlur, Resize
from textual.message import Message
from textual.reactive import var
from textual.widgets import DataTable, Static

from console.config import ConnConfig
from console.engine.snapshot import RolloutPanel
from console.model.gates import Criterion
from console.model.rollouts import RolloutView
from console.model.sanitize import clean_text
from console.ui.text import format_age, safe_markup, safe_text
from console.ui.widgets.rollout_text import (
    DEMO_NOTE,
    PHASE_CLASSES,
    CriterionRow,
    budget_short,
    budget_text,
    canary_units,
    criterion_rows,
    current_live,
    held_text,
    last_text,
    outcome_cell,
    parsed,
    phase_text,
    stage_bar,
    threshold_text,
    value_text,
    verdicts_fresh,
)

FULL_MIN_HEIGHT = 34
"""Terminal rows from which the dashboard shows the full panel (120x40 does; 80x24 does not)."""

WIDE_MIN_WIDTH = 100
"""From this width the table has a rule column (gate / abort) and a threshold column
(a relative criterion's level: "> 394 ms (1.5x)"); narrower, the criterion's text
carries its threshold, and the why view a relative one's level."""

_COLUMNS = (
    ("outcome", "outcome"), ("rule", "rule"), ("criterion", "criterion"), ("value", "value"),
    ("threshold", "threshold"), ("held", "held"), ("detect", "worst case"),
)  # fmt: skip


class RolloutPane(Vertical):
    """One rollout's progress and criteria (the dashboard picks which)."""

    DEFAULT_CSS = """
    RolloutPane {
        height: auto; padding: 0 1; border-top: solid $panel-lighten-2;
        border-title-align: left; border-title-color: $text; border-title-style: bold;
    }
    RolloutPane Static { height: 1; width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    RolloutPane #rollout-bar { display: none; }
    RolloutPane.-full #rollout-bar { display: block; }
    RolloutPane.-full #rollout-phase { height: auto; max-height: 2; text-wrap: wrap; }
    RolloutPane #rollout-last { color: $text-muted; }
    RolloutPane #rollout-notices { display: none; height: auto; max-height: 3; color: $warning; }
    RolloutPane #rollout-notices.-shown { display: block; }
    RolloutPane DataTable { height: auto; max-height: 2; border: none; padding: 0; overflow: hidden hidden; }
    RolloutPane.-full DataTable { max-height: 14; }
    RolloutPane DataTable > .datatable--cursor { background: $panel; }
    RolloutPane DataTable:focus > .datatable--cursor { background: $accent 40%; }
    RolloutPane .-phase-baking { color: $accent; }
    RolloutPane .-phase-ready, RolloutPane .-phase-complete { color: $success; }
    RolloutPane .-phase-held, RolloutPane .-phase-blocked { color: $warning; }
    RolloutPane .-phase-rolling-back, RolloutPane .-phase-rolled-back,
    RolloutPane .-phase-action-failed { color: $error; text-style: bold; }
    RolloutPane .-phase-pending { color: $text-muted; }
    """

    panel: var[RolloutPanel | None] = var(None, init=False)
    """The rollout shown (a snapshot's); None before the first snapshot."""
    now: var[float] = var(0.0, init=False)
    """The clock time the bake timer, holds and ages are computed with."""
    full: var[bool] = var(False, init=False)
    """The full layout (every row, a header) rather than the compact one."""

    class WhyRequested(Message):
        """``enter`` on a criterion row: show why it passes or fails."""

        def __init__(self, rollout: str, role: str, text: str) -> None:
            super().__init__()
            self.rollout = rollout
            self.role = role
            self.text = text

    def __init__(self, *, config: ConnConfig, demo: bool = False, id: str | None = None) -> None:
        """``config``: the canaries' signal units and the detection budgets come from it."""
        super().__init__(id=id)
        self._config = config
        self._budgets: dict[tuple[str, str], str] = {}
        self._demo = demo
        self._shown: dict[str, str] = {}
        self._rows: tuple[CriterionRow, ...] = ()
        self._cells: dict[str, tuple[object, ...]] = {}
        self._notices = 0
        self.picked: tuple[int, int] | None = None
        """(shown, of) when there are several rollouts: the title says "1 of 3 (r: next)"."""

    def compose(self) -> ComposeResult:
        yield Static("", id="rollout-bar")
        yield Static("", id="rollout-phase")
        table: DataTable[object] = DataTable(id="rollout-criteria", cursor_type="row", show_header=False)
        yield table
        yield Static("", id="rollout-last")
        yield Static("", id="rollout-notices")

    def on_mount(self) -> None:
        self._columns()
        self._draw()

    def watch_panel(self) -> None:
        self._draw()

    def watch_now(self) -> None:
        self._draw()

    def watch_full(self, full: bool) -> None:
        self.set_class(full, "-full")
        self.query_one(DataTable).show_header = full
        self._columns()
        self._draw()

    def on_resize(self, event: Resize) -> None:
        self._columns()
        self._draw()

    # --- drawing ----------------------------------------------------------------------

    def _columns(self) -> None:
        """The table's columns for this width (rule and threshold from :data:`WIDE_MIN_WIDTH`)."""
        table = self.query_one(DataTable)
        wide = self.size.width >= WIDE_MIN_WIDTH
        wanted = [key for key, _ in _COLUMNS if wide or key not in ("rule", "threshold")]
        if [str(key.value) for key in table.columns] == wanted:
            return
        table.clear(columns=True)
        labels = dict(_COLUMNS)
        for key in wanted:
            table.add_column(labels[key], key=key)
        self._cells = {}

    def _draw(self) -> None:
        panel = self.panel
        if panel is None or not self.is_mounted:
            return
        now = self.now
        view = panel.view(now)
        live = current_live(panel)
        width = self.content_size.width or 78
        # What matters most first: the title is cut at the right edge.
        title = f"rollout {panel.name} · run {view.run}" if view.run else f"rollout {panel.name}"
        if live is not None and not verdicts_fresh(live, now):
            title += f" · ⌛ verdicts {format_age(now - live.at)} old: is a leader running?"
        if self.picked is not None:
            title += f" · {self.picked[0]} of {self.picked[1]} (r: next)"
        if self._demo:
            title += f" · {DEMO_NOTE}"
        if panel.state.lifecycle == "active":
            title += " · h hold · R roll back"
        if self.full:
            title += " · tab, enter: why a criterion passes or fails"
        self._set_title(title)
        phase, phase_class = phase_text(panel, view, now)
        phase_widget = self.query_one("#rollout-phase", Static)
        for name in PHASE_CLASSES:
            phase_widget.set_class(name == phase_class, name)
        if self.full:
            bar, _ = stage_bar(panel, view, width)
            self._show("#rollout-bar", bar)
            self._show("#rollout-phase", safe_markup(phase, limit=600))
        else:
            # The bar closes up (then names only the current stage) before the phase is cut.
            bar, _ = stage_bar(panel, view, max(width - cell_len(phase) - 2, width * 2 // 5))
            self._show("#rollout-phase", f"{bar}  {safe_markup(phase, limit=600)}")
        self._show("#rollout-last", safe_markup(last_text(view, now), limit=600))
        notices = self.query_one("#rollout-notices", Static)
        shown = live.notices[:3] if live is not None and self.full else ()
        self._notices = len(shown)
        notices.set_class(bool(shown), "-shown")
        self._show("#rollout-notices", "\n".join(
            f"notice (on_fail = notify): {safe_markup(n, limit=300)}" for n in shown))
        self._draw_rows(panel, view, now, width)

    def _draw_rows(self, panel: RolloutPanel, view: RolloutView, now: float, width: int) -> None:
        table = self.query_one(DataTable)
        rows = criterion_rows(panel, view)
        units = canary_units(self._config, panel.plan)
        columns = [str(key.value) for key in table.columns]
        cells: dict[str, tuple[object, ...]] = {}
        for row in rows:
            criterion = parsed(row.text, units)
            by_column: dict[str, object] = {
                "outcome": outcome_cell(row),
                "rule": Text(row.role, style="dim"),
                "criterion": row.text,
                "value": value_text(row, criterion),
                "threshold": threshold_text(row, criterion),
                "held": held_text(row, now),
                "detect": budget_short(row) or self._budget(panel, row, criterion),
            }
            cells[row.key] = tuple(by_column[column] for column in columns)
        room = self._criterion_room(cells, columns, width)
        place = columns.index("criterion")
        for key, row in zip(cells, rows, strict=True):
            values = list(cells[key])
            values[place] = safe_text(row.text, limit=room)
            cells[key] = tuple(values)
        keys = [row.key for row in rows]
        selected = self.selected_key
        if [str(k.value) for k in table.rows] != keys:
            table.clear()
            for key in keys:
                table.add_row(*cells[key], key=key)
            if selected in keys and table.has_focus:
                table.move_cursor(row=keys.index(selected))
        else:
            for key in keys:
                if self._cells.get(key) != cells[key]:
                    for column, value in zip(columns, cells[key], strict=True):
                        if table.get_cell(key, column) != value:
                            table.update_cell(key, column, value)
        self._cells = cells
        self._rows = rows

    def _budget(self, panel: RolloutPanel, row: CriterionRow, criterion: Criterion | None) -> str:
        """The worst case of a criterion the leader has not judged yet (the same formula)."""
        key = (panel.name, row.text)
        if key not in self._budgets:
            self._budgets[key] = "" if criterion is None else budget_text(self._config, panel.plan, criterion)
        return self._budgets[key]

    def _criterion_room(self, cells: Mapping[str, tuple[object, ...]], columns: list[str], width: int) -> int:
        """Columns left for the criterion's text so the table never scrolls sideways."""
        labels = dict(_COLUMNS)
        used = 0
        for index, column in enumerate(columns):
            if column == "criterion":
                continue
            # A column is as wide as its label too, header shown or not (DataTable's rule).
            widest = max([len(labels[column]), *(Text(str(row[index])).cell_len for row in cells.values())])
            used += widest + 2
        return max(12, width - used - 2)

    def _set_title(self, title: str) -> None:
        if self._shown.get("title") != title:
            self._shown["title"] = title
            self.border_title = safe_markup(clean_text(title, limit=300), limit=300)

    def _show(self, selector: str, markup: str) -> None:
        """``Static.update`` only when the text changed (it repaints even the same text)."""
        if self._shown.get(selector) != markup:
            self._shown[selector] = markup
            self.query_one(selector, Static).update(markup)

    # --- the criteria -----------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        """The criterion row under the cursor ("gate:p95 < 500ms")."""
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value) if row_key.value is not None else None

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        panel = self.panel
        key = str(event.row_key.value) if event.row_key.value is not None else ""
        role, _, text = key.partition(":")
        if panel is not None and text:
            self.post_message(self.WhyRequested(panel.name, role, text))

    @on(DescendantBlur)
    def _left(self) -> None:
        # Unfocused, the compact table shows its worst rows; focused, the cursor scrolls.
        table = self.query_one(DataTable)
        if table.row_count:
            table.move_cursor(row=0)
