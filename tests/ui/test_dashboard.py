"""The dashboard with fixed data: what repaints, the worst-signal mark, the room it gives, the fault keys.

The console runs on the frozen store (a real follower engine over SQLite, a
frozen clock); tests push snapshots into the app as the engine would.
"""

from __future__ import annotations

import dataclasses
import html
import re
from typing import Any

import pytest
from textual.geometry import Region
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from console.engine.snapshot import Snapshot
from console.model.events import Event
from console.model.flags import FlagState, flag_event
from console.ui.app import ConnApp
from console.ui.modals.fault import FAULTS, describe_faults
from console.ui.screens.dashboard import ACTIVITY_MIN, DEMO_ONLY, DashboardScreen, activity_text
from console.ui.screens.help import MARKS, HelpScreen
from console.ui.widgets.service_detail import ServiceDetail, wide_height_of
from console.ui.widgets.service_table import ServiceTable, health_cell
from console.ui.widgets.styles import STATE_MARK
from console.ui.widgets.top_bar import TopBar
from tests.fixtures.frozen import frozen_app_fixture
from tests.fixtures.panels import NOW, live, named, signal, view

__all__ = ["frozen_app_fixture"]


@dataclasses.dataclass
class Repaint:
    widget: Widget
    regions: tuple[Region, ...]
    layout: bool


@pytest.fixture
def repaints(monkeypatch: pytest.MonkeyPatch) -> list[Repaint]:
    """Every widget that asks to be repainted (Widget.refresh), with the regions it names."""
    seen: list[Repaint] = []
    original = Widget.refresh

    def recording(self: Widget, *regions: Region, repaint: bool = True, **kw: bool) -> Widget:
        if repaint or kw.get("layout"):
            seen.append(Repaint(self, regions, bool(kw.get("layout"))))
        return original(self, *regions, repaint=repaint, **kw)

    monkeypatch.setattr(Widget, "refresh", recording)
    return seen


@pytest.fixture
def notes(frozen_app: ConnApp, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(title, message) of every notification the app shows."""
    seen: list[tuple[str, str]] = []
    original = frozen_app.notify

    def recording(message: str, *, title: str = "", **kw: Any) -> None:
        seen.append((title, message))
        original(message, title=title, **kw)

    monkeypatch.setattr(frozen_app, "notify", recording)
    return seen


def screen_text(app: ConnApp) -> str:
    """The characters on screen (the screenshot's text, without SVG markup)."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def _snapshot(app: ConnApp) -> Snapshot:
    snapshot = app.snapshot
    assert snapshot is not None
    return snapshot


def _dashboard_widgets(app: ConnApp) -> list[Widget]:
    screen = app.screen
    top = screen.query_one(TopBar)
    return [screen, top, *top.query(Static), screen.query_one("#activity"),
            screen.query_one(ServiceTable), screen.query_one(ServiceDetail)]  # fmt: skip


# --- the repaint storm -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_a_snapshot_that_shows_nothing_new_repaints_nothing(
    frozen_app: ConnApp, repaints: list[Repaint], size: tuple[int, int]
) -> None:
    async with frozen_app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        repaints.clear()
        # What a leader writes every second: new times and writers, the same values on screen.
        snapshot = _snapshot(frozen_app)
        for writer in ("leader@a pid 1", "leader@a pid 2"):
            services = tuple(dataclasses.replace(v, writer=writer) for v in snapshot.services)
            frozen_app.snapshot = dataclasses.replace(snapshot, services=services)
            await pilot.pause()
        assert isinstance(frozen_app.screen, DashboardScreen)
        frozen_app.screen._tick()  # the clock has not moved: no age changes either
        await pilot.pause()
        watched = _dashboard_widgets(frozen_app)
        assert [r.widget for r in repaints if r.widget in watched] == []


async def test_a_changed_value_repaints_its_row_only(
    frozen_app: ConnApp, repaints: list[Repaint]
) -> None:
    async with frozen_app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        table = frozen_app.screen.query_one(ServiceTable)
        assert str(table.get_cell("search", "p95")) == "34.8 ms"
        repaints.clear()
        snapshot = _snapshot(frozen_app)
        search = snapshot.service("search")
        assert search is not None and search.live is not None
        signals = tuple(
            s.model_copy(update={"value": 36.2}) if s.name == "p95" else s for s in search.live.signals
        )
        moved = dataclasses.replace(search, live=search.live.model_copy(update={"signals": signals}))
        services = tuple(moved if v.name == "search" else v for v in snapshot.services)
        frozen_app.snapshot = dataclasses.replace(snapshot, services=services)
        await pilot.pause()
        assert str(table.get_cell("search", "p95")) == "36.2 ms"
        asked = [r for r in repaints if r.widget is table]
        assert asked, "the changed row is repainted"
        row = table.get_row_index("search") + 1  # below the header
        assert all(r.regions and not r.layout for r in asked), "never the whole table"
        assert {(region.y, region.height) for r in asked for region in r.regions} == {(row, 1)}
        watched = [w for w in _dashboard_widgets(frozen_app) if w is not table]
        assert [r.widget for r in repaints if r.widget in watched] == []


async def test_the_app_snapshot_does_not_repaint_the_screen(frozen_app: ConnApp, repaints: list[Repaint]) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        repaints.clear()
        snapshot = _snapshot(frozen_app)
        assert snapshot.leader == "oncall@bastion pid 4242"
        frozen_app.snapshot = dataclasses.replace(snapshot, leader="oncall@bastion pid 4243")
        await pilot.pause()
        assert not [r for r in repaints if isinstance(r.widget, Screen)], "no full-screen repaint"
        # The role line changed (its width did not), so it alone repaints.
        changed = {r.widget for r in repaints if r.widget in _dashboard_widgets(frozen_app)}
        assert changed == {frozen_app.screen.query_one(TopBar).query_one(".role")}


# --- the worst signal, in the health column -----------------------------------------------------


def test_health_cell_marks_the_worst_signals() -> None:
    two_critical = live("payments", extra=(
        signal("five_xx", 19.1, unit="%", label="5xx rate", source="health-json", state="critical"),
        signal("breaker", 5.0, unit="", label="breaker opens", source="health-json", state="critical"),
        signal("memory", 91.0, unit="%", label="memory", source="health-json", state="warning"),
    ))  # fmt: skip
    cell = health_cell(view(two_critical), NOW)
    assert cell.plain == "● up ✖2"
    mark = next(span for span in cell.spans if cell.plain[span.start:span.end] == "✖2")
    assert "red" in str(mark.style)
    warned = health_cell(view(live(extra=named(cache=72.0, cache_state="warning"))), NOW)
    assert warned.plain == "● up ▲1"
    assert "yellow" in str(warned.spans[-1].style)
    assert health_cell(view(live()), NOW).plain == "● up"
    stale = health_cell(view(two_critical, updated_at=NOW - 30), NOW)
    assert stale.plain == "⌛ up", "a stale row has no current signals to mark"


async def test_the_table_and_help_show_the_mark(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        table = frozen_app.screen.query_one(ServiceTable)
        # The canary is degraded, its error rate critical (15%) and its p95 at warning.
        assert str(table.get_cell("checkout-canary", "health")) == "▲ degraded ✖1"
        assert str(table.get_cell("checkout", "health")) == "● up"
        await pilot.press("question_mark")
        assert isinstance(frozen_app.screen, HelpScreen)
        shown = screen_text(frozen_app)
        assert "● up ✖2" in shown and "up, but 2 of its signals are critical" in shown
        assert "⚠" in shown and "cannot be trusted" in shown


def test_the_help_explains_every_mark_a_value_can_carry() -> None:
    explained = "".join(mark for mark, _ in MARKS)
    for mark in (m.strip() for m in STATE_MARK.values() if m.strip()):
        assert mark in explained, f"{mark} is drawn but the help does not say what it means"


# --- the room below the table ------------------------------------------------------------------


async def test_the_activity_takes_the_room_the_boxes_leave(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        screen = frozen_app.screen
        detail, activity = screen.query_one(ServiceDetail), screen.query_one("#activity", Static)
        snapshot = _snapshot(frozen_app)
        checkout = snapshot.service("checkout")
        assert checkout is not None
        assert detail.has_class("-wide")
        assert detail.outer_size.height == wide_height_of(checkout, compared=False)
        assert activity.outer_size.height == 40 - 1 - 5 - detail.outer_size.height - 1
        # As many events as fit, newest first.
        events = tuple(
            dataclasses.replace(snapshot.recent_events[-1], position=1000 + i, reason=f"change {i}")
            for i in range(40)
        )
        frozen_app.snapshot = dataclasses.replace(snapshot, recent_events=events)
        await pilot.pause()
        await pilot.pause()
        lines = str(activity.render()).splitlines()
        assert len(lines) == activity.content_size.height > ACTIVITY_MIN
        assert "change 39" in lines[0] and f"change {40 - len(lines)}" in lines[-1]
        # The canary's boxes are taller: the detail grows and is laid out wide at once.
        await pilot.press("down")
        await pilot.pause()
        canary = snapshot.service("checkout-canary")
        assert canary is not None
        assert detail.outer_size.height == wide_height_of(canary, compared=True)
        assert detail.has_class("-wide")


async def test_at_80x24_the_activity_keeps_four_lines(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        screen = frozen_app.screen
        assert screen.query_one("#activity").outer_size.height == ACTIVITY_MIN
        assert screen.query_one(ServiceDetail).outer_size.height == 12
        assert screen.query_one(ServiceDetail).has_class("-narrow")


def test_activity_text_shows_the_newest_first_up_to_the_limit() -> None:
    events = tuple(
        Event(position=i, id=f"e{i}", stream="flag/x", version=i, type="FlagChanged", time=NOW + i,
              actor="alice", reason=f"r{i}", payload={}, prev_hash="", hash="")
        for i in range(12)
    )  # fmt: skip
    snapshot = Snapshot("test", "sqlite://", "leader", None, (), recent_events=events)
    lines = activity_text(snapshot, limit=5).plain.splitlines()
    assert len(lines) == 5
    assert lines[0].endswith("alice flag/x: FlagChanged — r11")  # no before/after: the type
    assert lines[-1].endswith("— r7")
    empty = dataclasses.replace(snapshot, recent_events=())
    assert activity_text(empty, limit=5).plain.startswith("no events yet")


def test_activity_says_what_each_flag_event_changed() -> None:
    """A kill, an off → on and 0% → 10% no longer all read "FlagChanged"."""
    base = FlagState(name="checkout_v2")
    states = [
        (base, None),
        (dataclasses.replace(base, on_weight=1000), base),
        (dataclasses.replace(base, on_weight=1000, enabled=False), dataclasses.replace(base, on_weight=1000)),
        (dataclasses.replace(base, on_weight=1000), dataclasses.replace(base, on_weight=1000, enabled=False)),
        (dataclasses.replace(base, on_weight=1000, killed=True), dataclasses.replace(base, on_weight=1000)),
    ]
    events = tuple(
        Event(position=i, id=f"e{i}", stream="flag/checkout_v2", version=i + 1, type=kind,
              time=NOW + i, actor="alice", reason=f"r{i}", payload=payload, prev_hash="", hash="")
        for i, (kind, payload) in enumerate(
            flag_event(after, before, change="x", evaluator="2") for after, before in states
        )
    )  # fmt: skip
    snapshot = Snapshot("test", "sqlite://", "leader", None, (), recent_events=events)
    lines = activity_text(snapshot, limit=10).plain.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "flag/checkout_v2: kill — r4",
        "flag/checkout_v2: off → on — r3",
        "flag/checkout_v2: on → off — r2",
        "flag/checkout_v2: 0% → 10% — r1",
        "flag/checkout_v2: created (0%, on) — r0",
    ]


def test_activity_shows_a_hostile_payload_as_plain_clean_text() -> None:
    before = FlagState(name="x")
    after = dataclasses.replace(before, allow=("[bold]qa[/]\x1b[2J\x07",))
    kind, payload = flag_event(after, before, change="allow", evaluator="2")
    hostile = Event(position=1, id="e1", stream="flag/x", version=2, type=kind, time=NOW,
                    actor="[red]mallory\x1b]8;;http://evil/\x07", reason="[link=http://evil]r[/]",
                    payload=payload, prev_hash="", hash="")  # fmt: skip
    snapshot = Snapshot("test", "sqlite://", "leader", None, (), recent_events=(hostile,))
    text = activity_text(snapshot, limit=5)
    assert text.plain.endswith("[red]mallory flag/x: allowlist +[bold]qa[/] — [link=http://evil]r[/]")
    assert not any(span.style and "link" in str(span.style) for span in text.spans)
    assert "\x1b" not in text.plain and "\x07" not in text.plain


# --- fault keys ---------------------------------------------------------------------------------


async def test_fault_keys_outside_the_demo_say_why_they_do_nothing(
    frozen_app: ConnApp, notes: list[tuple[str, str]]
) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        shown = [b.binding.description for b in frozen_app.screen.active_bindings.values() if b.binding.show]
        assert "Fault" not in shown and "Clear" not in shown, "not offered where it cannot work"
        await pilot.press("x")
        await pilot.press("c")
        await pilot.pause()
        assert notes == [("no demo fleet", DEMO_ONLY)] * 2
        assert "`conn demo` only" in DEMO_ONLY
        assert isinstance(frozen_app.screen, DashboardScreen), "no fault dialog opened"


def test_faults_are_described_in_words() -> None:
    assert describe_faults({"error_rate": 0.2, "health": "down"}) == (
        "5xx in its traffic 20%, health down"
    )
    assert describe_faults({"latency_ms": 900, "cache_hit_rate": 0.5}) == (
        "latency +900 ms, cache hit rate 50%"
    )
    assert describe_faults({"circuit_breaker_opens": 7, "memory_pct": 91.5}) == (
        "breaker opens 7, memory 91.5%"
    )
    assert describe_faults({}) == "none"
    assert describe_faults({"surprise": [1]}) == "surprise [1]"
    label, body = FAULTS["errors"]
    assert (label, body) == ("5xx in its traffic: 20%", {"error_rate": 0.2})



async def test_a_rebound_fault_key_moves_with_its_twin(
    frozen_app: ConnApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = ConnApp(frozen_app.engine, clock=frozen_app.clock, ticking=False, keymap={"demo-fault": "z"})
    seen: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **kw: seen.append(message))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("x")
        assert seen == []
        await pilot.press("z")
        assert seen == [DEMO_ONLY]
