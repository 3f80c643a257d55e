"""The flags screen: every flag at a glance, changed from the keyboard with a reason.

It renders the snapshot's flags (``snapshot.flag_state``) and re-renders
whenever the app's snapshot changes, so changes made elsewhere (the CLI,
another console, a rollout stage) show up here too; changes are commands
passed to ``engine.execute``. Every change goes
through a confirmation that asks for a reason; the kill switch also makes the
operator type the flag's name.

The table is as tall as its flags; the detail under it takes the rest of the
screen: what the selected flag does, its allowlist in words, and as many of
its recent changes as fit.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.engine.commands import Command
from console.engine.flags import DisableFlag, EnableFlag, FlagView, KillFlag, SetFlagPercent
from console.engine.snapshot import FlagsView
from console.errors import ConsoleError
from console.model.describe import describe_change
from console.model.events import Event
from console.model.flags import key_problem, percent_to_weight
from console.model.units import parse_percent
from console.ui.modals.confirm import ConfirmModal
from console.ui.modals.prompt import PromptModal
from console.ui.text import format_age, safe_markup, safe_text

if TYPE_CHECKING:
    from console.engine.core import Engine
    from console.ui.app import ConnApp

_COLUMNS = (("name", "Flag"), ("state", "State"), ("percent", "%"), ("allow", "Allow (keys+groups)"),
            ("change", "Last change"))


def _percent_problem(text: str) -> str | None:
    if not text:
        return "type a percentage, e.g. 10 or 0.5%"
    try:
        percent_to_weight(parse_percent(text))
    except ValueError as e:
        return str(e)
    return None


def _key_problem(text: str) -> str | None:
    """What the prompt says about a typed targeting key (None: fine)."""
    if not text:
        return "type a targeting key, e.g. user-42"
    problem = key_problem(text)
    return f"{text[:40]!r} {problem}" if problem else None


def allow_cell(view: FlagView) -> str:
    """The Allow column: keys on the flag's own allowlist, plus its groups ("0+2")."""
    return f"{view.allowlist_size}+{len(view.groups)}" if view.groups else f"{view.allowlist_size}"


def allow_line(view: FlagView) -> str:
    """The Allow column in words: "allowlist: 0 keys + 2 groups (internal, qa) — 5 keys in all"."""
    keys = f"{view.allowlist_size} key{'s' if view.allowlist_size != 1 else ''}"
    if not view.groups:
        return f"allowlist: {keys}, no groups"
    groups = f"{len(view.groups)} group{'s' if len(view.groups) != 1 else ''}"
    return (f"allowlist: {keys} + {groups} ({', '.join(view.groups)}) — "
            f"{view.targeted_keys} key{'s' if view.targeted_keys != 1 else ''} in all")


def change_lines(events: tuple[Event, ...], name: str) -> list[str]:
    """The flag's recent changes, newest first, one line each: when, who, what, why (plain text)."""
    lines = []
    for event in reversed(events):
        if event.stream != f"flag/{name}":
            continue
        when = datetime.fromtimestamp(event.time).strftime("%Y-%m-%d %H:%M")
        reason = f" — {event.reason}" if event.reason else ""
        lines.append(f"{when} {event.actor}: {describe_change(event)}{reason}")
    return lines


def rollout_line(view: FlagView) -> str:
    """What the flag does now, in words that are true for its state (plain text, not markup).

    A killed or disabled flag keeps its percentage and allowlist for when it
    is turned on again; until then they do nothing, and the line says so
    rather than "10% get 'on'".
    """
    keys = f"{view.targeted_keys} key{'s' if view.targeted_keys != 1 else ''}"
    groups = f" (groups {', '.join(view.groups)})" if view.groups else ""
    if view.killed:
        return (f"killed — everyone gets {view.off_variant!r} ({view.percent_text} and "
                f"{keys} kept for when it is turned on)")
    if not view.enabled:
        return (f"disabled — flagd treats it as absent ({view.percent_text} and "
                f"{keys} apply once it is on)")
    return f"enabled — {view.percent_text} get {view.on_variant!r}; {keys} always on{groups}"


class FlagsScreen(Screen[None]):
    """Flags: name, state, percentage, allowlist size, last change; keys to change them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="flags-back"),
        Binding("space", "toggle_flag", "On/off", id="flags-toggle"),
        Binding("percent_sign", "percent", "Set %", id="flags-percent", key_display="%"),
        Binding("k", "kill", "Kill", id="flags-kill"),
        Binding("e", "evaluate", "Key in?", id="flags-evaluate"),
    ]

    DEFAULT_CSS = """
    FlagsScreen #flags-title { height: 1; padding: 0 1; background: $panel; text-style: bold; }
    FlagsScreen #flags-table { height: auto; max-height: 60%; border: none; }
    FlagsScreen #flags-detail {
        height: 1fr; min-height: 6; padding: 0 1; border-top: solid $panel-lighten-2;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    FlagsScreen #flags-export { height: auto; padding: 0 1; }
    FlagsScreen #flags-export.problem { color: $error; text-style: bold; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._evaluation: tuple[str, int, str] | None = None
        """The last "is key X in?" answer: flag, the flag's version it was asked at, the line."""
        self._shown: dict[str, str] = {}
        """What each Static shows now, so an unchanged text is not repainted."""

    def compose(self) -> ComposeResult:
        yield Static("Feature flags", id="flags-title")
        table: DataTable[Any] = DataTable(id="flags-table", cursor_type="row", zebra_stripes=True)
        for key, label in _COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static("", id="flags-detail")
        yield Static("", id="flags-export")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", lambda _: self.refresh_flags(), init=True)
        if getattr(self.app, "ticking", True):
            self.set_interval(5.0, self.refresh_flags)  # ages only
        self.query_one(DataTable).focus()

    # --- state ------------------------------------------------------------------------

    @property
    def state(self) -> FlagsView:
        """The flags as of the app's latest snapshot."""
        snapshot = cast("ConnApp", self.app).snapshot
        return snapshot.flag_state if snapshot is not None else FlagsView()

    def _view(self, name: str) -> FlagView | None:
        return self.state.get(name)

    @property
    def selected(self) -> str | None:
        """The flag under the cursor."""
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value) if row_key.value is not None else None

    def _now(self) -> float:
        clock = getattr(self.app, "clock", None)
        return float(clock.now()) if clock is not None else 0.0

    def refresh_flags(self) -> None:
        """Render the snapshot's flags now (after a snapshot, a command or a tick)."""
        views = self.state.flags
        table = self.query_one(DataTable)
        selected = self.selected
        names = [v.name for v in views]
        rows = [self._cells(view) for view in views]
        room = self._change_room(rows)
        rows = [(*cells[:-1], safe_text(str(cells[-1]), limit=room)) for cells in rows]
        if [str(key.value) for key in table.rows] != names:
            table.clear()
            for view, cells in zip(views, rows, strict=True):
                table.add_row(*cells, key=view.name)
            if selected in names:
                table.move_cursor(row=names.index(selected))
        else:
            for view, cells in zip(views, rows, strict=True):
                for (column, _), cell in zip(_COLUMNS, cells, strict=True):
                    if table.get_cell(view.name, column) != cell:
                        table.update_cell(view.name, column, cell, update_width=True)
        self._show_detail()
        status = self.state.export
        export = self.query_one("#flags-export", Static)
        if status is None:
            return
        problem = status.state in ("edited", "error")
        export.set_class(problem, "problem")
        text = f"flag file {status.path}: {status.state}"
        self._update(export, safe_markup(text + (f" — {status.message}" if status.message else ""),
                                         limit=400))

    def _update(self, widget: Static, markup: str) -> None:
        """``Static.update`` only when the text differs: snapshots come several times a second."""
        if self._shown.get(widget.id or "") != markup:
            self._shown[widget.id or ""] = markup
            widget.update(markup)

    def _cells(self, view: FlagView) -> tuple[Any, ...]:
        """A flag's row; the last change comes whole, cut to the room by ``refresh_flags``."""
        style = {"killed": "bold reverse", "disabled": "dim"}.get(view.state, "")
        mark = " ⚠" if view.evaluator_mismatch else ""
        age = format_age(self._now() - view.changed_at)
        return (
            safe_text(view.name + mark, limit=28),
            safe_text(view.state, style=style),
            view.percent_text,
            allow_cell(view),
            f"{age} ago · {view.changed_by}",  # when first: what a cut keeps
        )

    def _change_room(self, rows: list[tuple[Any, ...]]) -> int:
        """Columns left for "Last change" so the table never scrolls sideways (the detail says it all)."""
        table = self.query_one(DataTable)
        used = 0
        for index, (_, label) in enumerate(_COLUMNS[:-1]):
            widest = max([len(label), *(Text(str(row[index])).cell_len for row in rows)])
            used += widest + 2  # a cell's padding on each side
        return max(16, (table.scrollable_content_region.width or 80) - used - 2)

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self.refresh_flags)

    def _show_detail(self) -> None:
        name = self.selected
        detail = self.query_one("#flags-detail", Static)
        if name is None:
            self._update(detail, "[dim]no flags — define them under \\[flags.define.NAME] in the config[/]")
            return
        view = self._view(name)
        if view is None:
            return
        lines = [
            f"[b]{safe_markup(view.name)}[/b] {safe_markup(view.description, limit=120)}",
            safe_markup(rollout_line(view), limit=300),
            safe_markup(allow_line(view), limit=300),
            f"v{view.version} {safe_markup(view.last_change)} by {safe_markup(view.changed_by)}: "
            f"{safe_markup(view.reason, limit=160)}",
        ]
        if view.evaluator_mismatch:
            lines.append(
                f"[b]⚠ written with openfeature-flagd-core {safe_markup(view.evaluator_version)}, "
                f"installed {safe_markup(self.state.evaluator_version)}: bucketing may differ[/b]"
            )
        if self._evaluation is not None:
            flag, version, line = self._evaluation
            if (flag, version) == (name, view.version):
                lines.append(line)
            else:
                self._evaluation = None  # another flag, or this one changed: the answer is old
        snapshot = cast("ConnApp", self.app).snapshot
        changes = change_lines(snapshot.recent_events, name) if snapshot is not None else []
        if changes:
            # As many as the detail shows; the rest are below its bottom edge, not wrapped into it.
            lines.append("[dim]recent changes, newest first:[/]")
            lines.extend(f"  {safe_markup(line, limit=300)}" for line in changes)
        self._update(detail, "\n".join(lines))

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()

    # --- actions ------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_toggle_flag(self) -> None:
        if (name := self.selected) is not None:
            self._toggle(name)

    def action_percent(self) -> None:
        if (name := self.selected) is not None:
            self._set_percent(name)

    def action_kill(self) -> None:
        if (name := self.selected) is not None:
            self._kill(name)

    def action_evaluate(self) -> None:
        if (name := self.selected) is not None:
            self._evaluate(name)

    @work(exclusive=True, exit_on_error=False, group="flags")
    async def _toggle(self, name: str) -> None:
        view = self._view(name)
        if view is None:
            return
        turn_off = view.state == "enabled"
        if turn_off:
            title, body = f"Turn {name} off?", (
                "flagd will treat the flag as absent: applications get their code default.")
        else:
            title = f"Turn {name} on?"
            body = (f"Lifts the kill switch; {view.percent_text} and the allowlist apply again."
                    if view.killed else f"{view.percent_text} and the allowlist apply again.")
        result = await self.app.push_screen_wait(ConfirmModal(title, body))
        if result is not None:
            command = (DisableFlag if turn_off else EnableFlag)(flag=name, reason=result.reason)
            await self._run(command, f"{name}: turned {'off' if turn_off else 'on'}")

    @work(exclusive=True, exit_on_error=False, group="flags")
    async def _set_percent(self, name: str) -> None:
        view = self._view(name)
        if view is None:
            return
        typed = await self.app.push_screen_wait(PromptModal(
            f"Roll out {name}", f"Percentage of keys that get {view.on_variant!r} (now {view.percent_text}):",
            placeholder="e.g. 10 or 0.5%", validate=_percent_problem,
        ))
        if not typed:
            return
        wanted = f"{parse_percent(typed):g}%"
        if view.state != "enabled":
            # Nothing changes for anyone yet: say so, or "10%" reads as live.
            note = (f" The flag is {view.state}: everyone gets "
                    + (f"{view.off_variant!r}" if view.killed else "the code default")
                    + f"; {wanted} applies only once it is turned on.")
        elif parse_percent(typed) < view.percent:
            note = " Lowering it turns some keys off."
        else:
            note = ""
        result = await self.app.push_screen_wait(ConfirmModal(
            f"Set {name} to {wanted}?", f"Now {view.percent_text}.{note}", confirm_label="Set"))
        if result is not None:
            await self._run(
                SetFlagPercent(flag=name, percent=typed, reason=result.reason), f"{name}: {wanted}")

    @work(exclusive=True, exit_on_error=False, group="flags")
    async def _kill(self, name: str) -> None:
        view = self._view(name)
        if view is None:
            return
        result = await self.app.push_screen_wait(ConfirmModal(
            f"Kill {name}?",
            f"Everyone gets {view.off_variant!r}, whatever the percentage, allowlist or code "
            "default, until it is turned on again.",
            type_to_confirm=name, confirm_label="Kill",
        ))
        if result is not None:
            await self._run(KillFlag(flag=name, reason=result.reason), f"{name}: killed")

    @work(exclusive=True, exit_on_error=False, group="flags")
    async def _evaluate(self, name: str) -> None:
        key = await self.app.push_screen_wait(PromptModal(
            f"Is a key in {name}?", "Targeting key (e.g. a user id):",
            placeholder="a targeting key, e.g. user-42", validate=_key_problem,
        ))
        if not key:
            return
        try:
            answer = self.engine.evaluate_flag(name, key)
        except ConsoleError as e:
            self.notify(safe_markup(str(e)), severity="error", title="evaluate")
            return
        variant = answer.variant if answer.variant is not None else "(code default)"
        line = (f"{safe_markup(key, limit=40)} → [b]{safe_markup(variant)}[/b] "
                f"({safe_markup(str(answer.value).lower())}): {answer.reason} "
                f"[dim]{safe_markup(answer.detail)}[/]")
        # Kept in the detail until another flag is selected or this one changes:
        # the next snapshot (within a second) redraws the detail.
        current = self._view(name)
        self._evaluation = (name, current.version if current else 0, line)
        self._show_detail()
        self.notify(line, title=f"{safe_markup(name)}: {safe_markup(answer.reason)}")

    @property
    def engine(self) -> Engine:
        return cast("ConnApp", self.app).engine

    async def _run(self, command: Command, done: str) -> None:
        """Execute a command; show what happened (errors in the operator's words)."""
        try:
            await self.engine.execute(command)
        except ConsoleError as e:  # CommandError, ConcurrencyError, ActionError (recorded)
            self.notify(safe_markup(str(e), limit=400), severity="error", title="flag change")
        else:
            self.notify(safe_markup(done), title="flags")
        self.refresh_flags()
