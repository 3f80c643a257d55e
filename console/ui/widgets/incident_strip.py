"""The incidents strip: one line per open incident on the dashboard, clocks ticking.

An incident commander's first question is "what is open, and who owes what
by when": each line gives the severity (coloured *and* labelled ``SEV1`` …
``SEV4``, so it reads the same without colour), the id, the title, the
status, how long it has been open, the acknowledgement clock against the
severity's target ("ack 3m/15m", ``OVERDUE`` once past it) and when the
next update to the channel is due. At most :data:`MAX_LINES` incidents are
listed, then "+N more"; a chat sink that fails adds a one-line warning
(notices wait in the outbox, they are not lost, but nobody is being told).
The strip is hidden when there is nothing to say, so a calm dashboard looks
as it always did.

The dashboard hands it slices of the snapshot (attributes down); the clocks
tick with the widget's own 1 s timer reading the app's clock, never by a new
snapshot. What happens goes up as messages: :class:`IncidentStrip.Opened`
(``enter`` on a line) and :class:`IncidentStrip.Overdue` (once per incident,
the first time its acknowledgement is seen overdue; the dashboard rings the
bell).

The formatting helpers are shared with the incident screen's header, so a
clock reads the same in both places.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from console.engine.outbox import OutboxView
from console.engine.snapshot import IncidentPanel
from console.model.alerts import AlertsLive
from console.model.clock import Clock
from console.model.sanitize import clean_text
from console.model.text import plural
from console.secrets import redact
from console.ui.text import format_age

MAX_LINES = 3
"""Open incidents listed; the rest are counted ("+2 more")."""

SEVERITY_STYLE: dict[str, str] = {
    "SEV1": "bold white on red3",
    "SEV2": "bold black on dark_orange",
    "SEV3": "bold black on yellow1",
    "SEV4": "bold white on dodger_blue2",
}
"""Severity -> the Rich style of its label (the label's text is always there too). Fixed
256-colour names rather than the 16 ANSI ones, which many terminal themes draw yellow and
orange alike."""

OVERDUE_STYLE = "bold reverse red"
LATE_STYLE = "bold yellow"


def _seconds(clocks: Mapping[str, object], key: str) -> float | None:
    value = clocks.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def severity_label(severity: str) -> Text:
    """``SEV2`` as a coloured badge (the word itself carries the meaning without colour)."""
    text = Text()
    text.append(f" {severity} ", style=SEVERITY_STYLE.get(severity, "bold reverse"))
    return text


def status_word(status: str) -> str:
    """``postmortem_done`` -> ``postmortem done``."""
    return status.replace("_", " ")


def open_text(clocks: Mapping[str, object]) -> str:
    """Time since declared: ``open 12m``."""
    return f"open {format_age(_seconds(clocks, 'since_declared'))}"


def ack_text(clocks: Mapping[str, object]) -> tuple[str, bool]:
    """``ack 3m/15m`` while waiting, ``acked in 2m`` once acknowledged; True when overdue."""
    after = _seconds(clocks, "ack_after")
    if after is not None:
        return f"acked in {format_age(after)}", False
    target = _seconds(clocks, "ack_target") or 0.0
    left = _seconds(clocks, "ack_left")
    waited = target - left if left is not None else 0.0
    overdue = bool(clocks.get("ack_overdue"))
    return f"ack {format_age(waited)}/{format_age(target)}", overdue


def update_text(clocks: Mapping[str, object]) -> tuple[str, bool]:
    """The next update to the channel: ``update in 27m`` or ``update 3m late`` (True); "" when closed."""
    due = _seconds(clocks, "update_due_in")
    if due is None:
        return "", False
    if due < 0:
        return f"update {format_age(-due)} late", True
    return f"update in {format_age(due)}", False


def clock_pieces(panel: IncidentPanel, now: float) -> dict[str, Text]:
    """Each clock as styled text: ``open``, ``ack`` (with ``OVERDUE``) and ``update`` (when open)."""
    clocks = panel.clocks(now)
    ack, overdue = ack_text(clocks)
    pieces = {"open": Text(open_text(clocks)), "ack": Text(ack)}
    if overdue:
        pieces["ack"].append(" ")
        pieces["ack"].append("OVERDUE", style=OVERDUE_STYLE)
    update, late = update_text(clocks)
    if update:
        pieces["update"] = Text(update, style=LATE_STYLE if late else "")
    return pieces


def clock_parts(panel: IncidentPanel, now: float) -> Text:
    """"open 12m · ack 3m/15m OVERDUE · update in 27m", each clock styled by its urgency."""
    return Text(" · ").join(clock_pieces(panel, now).values())


def title_text(title: str, *, limit: int = 200) -> str:
    """An incident's title as a terminal may show it: no escapes, secrets redacted, one line."""
    return clean_text(redact(title), limit=limit).strip()


MIN_TITLE = 16
"""Cells the title keeps on a strip line before clocks give way."""

def _drops(acknowledged: bool) -> tuple[tuple[str, ...], ...]:
    """What a short line leaves out, in turn: first the clock that says least (while
    unacknowledged, "open" repeats the ack clock; once acknowledged, the ack clock is history),
    then when the next update is due, then the status. The label and the id always stay, and
    an unacknowledged incident's ack clock too."""
    first = "ack" if acknowledged else "open"
    return ((), (first,), (first, "update"), (first, "update", "status"))


def incident_line(panel: IncidentPanel, now: float, width: int) -> Text:
    """One strip line, ``width`` cells wide at most: the title gives way first, then the clocks."""
    state = panel.state
    head = severity_label(state.severity)
    head.append(f" {state.id} ", style="bold")
    title = Text(title_text(state.title))
    pieces = {"status": Text(status_word(state.status), style="italic"), **clock_pieces(panel, now)}
    order = ("status", "open", "ack", "update")
    for drop in _drops(state.acknowledged_at is not None):
        tail = Text("  ") + Text(" · ").join(pieces[k] for k in order if k in pieces and k not in drop)
        room = width - head.cell_len - tail.cell_len
        if room >= min(MIN_TITLE, title.cell_len):
            break
    title.truncate(max(1, room), overflow="ellipsis")
    line = head + title + tail
    line.truncate(width, overflow="ellipsis")
    return line


def notify_line(views: tuple[OutboxView, ...]) -> Text | None:
    """The failing chat sinks in one line, or None when every sink delivers."""
    failing = [v for v in views if v.failure]
    if not failing:
        return None
    parts = [
        f"{clean_text(v.name, limit=40)}: {clean_text(redact(v.failure or ''), limit=120)}"
        + (f" ({v.pending} waiting)" if v.pending else "")
        + (" — fix the config" if v.needs_fixing else "")
        for v in failing
    ]
    text = Text("⚠ chat notifications failing — ", style=LATE_STYLE)
    text.append(" · ".join(parts))
    return text


def alerts_line(alerts: AlertsLive | None) -> Text | None:
    """Alertmanager's firing alerts in one line (each with the incident it opened, or
    "no rule" when none matches), or why the poll failed; None when nothing fires."""
    if alerts is None:
        return None
    if alerts.problem:
        text = Text("⚠ alerts unknown — ", style=LATE_STYLE)
        text.append(clean_text(redact(alerts.problem), limit=160))
        return text
    if not alerts.alerts:
        return None
    text = Text(f"⚑ {plural(len(alerts.alerts), 'alert')} firing: ", style="bold")
    for index, alert in enumerate(alerts.alerts[:6]):
        if index:
            text.append(" · ")
        where = f" ({clean_text(alert.service, limit=30)})" if alert.service else ""
        text.append(clean_text(alert.name or alert.title, limit=50) + where)
        if alert.incident:
            text.append(f" → {alert.incident}", style="bold")
        elif alert.severity is None:
            text.append(" no rule", style="dim")
    if len(alerts.alerts) > 6:
        text.append(f" · +{len(alerts.alerts) - 6} more")
    return text


class IncidentStrip(Widget, can_focus=True):
    """Open incidents, one line each, Alertmanager's firing alerts and failing chat sinks;
    hidden when there are none."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Previous", show=False, id="strip-previous"),
        Binding("down", "cursor(1)", "Next", show=False, id="strip-next"),
        Binding("enter", "open", "Open incident", id="strip-open"),
    ]

    COMPONENT_CLASSES = {"incident-strip--cursor"}

    DEFAULT_CSS = """
    IncidentStrip { display: none; height: auto; padding: 0 1; }
    IncidentStrip.-shown { display: block; }
    IncidentStrip > .incident-strip--cursor { text-style: reverse; }
    """

    incidents: reactive[tuple[IncidentPanel, ...]] = reactive((), layout=True)
    """The open incidents, most urgent first (the snapshot's order)."""
    outbox: reactive[tuple[OutboxView, ...]] = reactive((), layout=True)
    """Every chat sink's outbox (only failing ones are shown)."""
    alerts: reactive[AlertsLive | None] = reactive(None, layout=True)
    """Alertmanager's firing alerts as the leader last polled them (one line)."""
    now: reactive[float] = reactive(0.0)
    """The clock time the clocks are shown at (the widget's timer moves it each second)."""
    cursor: reactive[int] = reactive(0)
    """The line ``enter`` opens."""

    class Opened(Message):
        """``enter`` on an incident's line: show that incident."""

        def __init__(self, incident_id: str) -> None:
            super().__init__()
            self.incident_id = incident_id

    class Overdue(Message):
        """An incident's acknowledgement is past its severity's target (once per incident)."""

        def __init__(self, panel: IncidentPanel) -> None:
            super().__init__()
            self.panel = panel

    class LinesChanged(Message):
        """The strip grew or shrank, or stopped listing incidents: the screen re-splits its room
        (and takes the focus back when no incident is left to open)."""

    def __init__(self, *, clock: Clock, ticking: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._ticking = ticking
        self._rung: set[str] = set()
        """Incidents whose overdue acknowledgement was announced (this process)."""
        self._shape = (0, False)
        """Lines shown, and whether any is an incident's (what the screen re-fits for)."""

    def on_mount(self) -> None:
        self.now = self._clock.now()
        if self._ticking:
            self.set_interval(1.0, self._tick)

    def on_focus(self) -> None:
        self.refresh()  # the cursor line shows only while the strip has the focus

    def on_blur(self) -> None:
        self.refresh()

    def _tick(self) -> None:
        self.now = self._clock.now()

    def watch_incidents(self) -> None:
        self.cursor = min(self.cursor, max(0, min(len(self.incidents), MAX_LINES) - 1))
        self._changed()

    def watch_outbox(self) -> None:
        self._changed()

    def watch_alerts(self) -> None:
        self._changed()

    def watch_now(self) -> None:
        self._check_overdue()

    def _changed(self) -> None:
        lines = self.line_count
        self.set_class(lines > 0, "-shown")
        self.can_focus = bool(self.incidents)
        self._check_overdue()
        shape = (lines, bool(self.incidents))
        if shape != self._shape:
            self._shape = shape
            self.post_message(self.LinesChanged())

    def _check_overdue(self) -> None:
        for panel in self.incidents:
            if panel.id in self._rung or not panel.clocks(self.now).get("ack_overdue"):
                continue
            self._rung.add(panel.id)
            self.post_message(self.Overdue(panel))

    @property
    def line_count(self) -> int:
        """Lines shown: incidents, "+N more", the alerts, the chat warning."""
        count = min(len(self.incidents), MAX_LINES)
        count += len(self.incidents) > MAX_LINES
        count += notify_line(self.outbox) is not None
        count += alerts_line(self.alerts) is not None
        return count

    @property
    def selected(self) -> IncidentPanel | None:
        """The incident under the cursor."""
        shown = self.incidents[:MAX_LINES]
        return shown[self.cursor] if 0 <= self.cursor < len(shown) else None

    def render(self) -> Text:
        width = max(20, self.content_region.width or self.size.width or 80)
        lines: list[Text] = []
        cursor_style = self.get_component_rich_style("incident-strip--cursor")
        for index, panel in enumerate(self.incidents[:MAX_LINES]):
            line = incident_line(panel, self.now, width)
            if index == self.cursor and self.has_focus:
                line.stylize(cursor_style)
            lines.append(line)
        if len(self.incidents) > MAX_LINES:
            more = len(self.incidents) - MAX_LINES
            lines.append(Text(f"+{more} more open (ctrl+p: Incident …)", style="dim"))
        for extra in (alerts_line(self.alerts), notify_line(self.outbox)):
            if extra is not None:
                extra.truncate(width, overflow="ellipsis")
                lines.append(extra)
        text = Text("\n").join(lines)
        text.no_wrap = True
        text.overflow = "ellipsis"
        return text

    def action_cursor(self, step: int) -> None:
        shown = min(len(self.incidents), MAX_LINES)
        if shown:
            self.cursor = (self.cursor + step) % shown

    def action_open(self) -> None:
        if (panel := self.selected) is not None:
            self.post_message(self.Opened(panel.id))
