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
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from console.config import UiConfig
from console.engine.snapshot import Snapshot
from console.model import triage
from console.model.events import Event
from console.model.flags import FlagState, flag_event
from console.model.live import ThresholdView
from console.ui.app import ConnApp
from console.ui.modals.fault import FAULTS, describe_faults
from console.ui.screens.dashboard import (
    ACTIVITY_FLOOR,
    ACTIVITY_MIN,
    DEMO_ONLY,
    DashboardScreen,
    activity_text,
)
from console.ui.screens.help import MARKS, HelpScreen
from console.ui.widgets.service_detail import ServiceDetail, wide_height_of
from console.ui.widgets.service_table import ServiceTable, health_cell, worst_cell
from console.ui.widgets.styles import STATE_MARK
from console.ui.widgets.top_bar import TopBar, summary_markup
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


def table_order(table: ServiceTable) -> list[str]:
    """The services as the table lists them, top to bottom."""
    keys = (table.coordinate_to_cell_key(Coordinate(row, 0)).row_key for row in range(table.row_count))
    return [str(key.value) for key in keys]


def with_health(snapshot: Snapshot, name: str, health: str) -> Snapshot:
    """``snapshot`` with the live health of service ``name`` replaced, as the engine would write it."""
    found = snapshot.service(name)
    assert found is not None and found.live is not None
    changed = dataclasses.replace(found, live=found.live.model_copy(update={"health": health}))
    return dataclasses.replace(
        snapshot, services=tuple(changed if v.name == name else v for v in snapshot.services)
    )


def header_summary(app: ConnApp) -> str:
    """The summary as the header shows it."""
    return str(app.screen.query_one(TopBar).query_one(".summary", Static).render())


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
    # Wide enough for the header to name the leader (a short one says "○ follower" only).
    async with frozen_app.run_test(size=(200, 60)) as pilot:
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


# --- the worst signal, the order, the header's summary -------------------------------------------


def test_the_worst_signal_cell_names_the_signal_its_value_and_its_level() -> None:
    threshold = ThresholdView(warning=1.0, critical=5.0, direction="above", for_seconds=0.0)
    two_critical = live("payments", extra=(
        signal("five_xx", 19.1, unit="%", label="5xx rate", source="health-json", state="critical",
               threshold=threshold),
        signal("breaker", 5.0, unit="", label="breaker opens", source="health-json", state="critical"),
        signal("memory", 91.0, unit="%", label="memory", source="health-json", state="warning"),
    ))  # fmt: skip
    cell = worst_cell(view(two_critical), NOW)
    assert cell.plain == "✖ 5xx rate 19.1% > 5.00% +2", "the worst, its level, and how many more"
    assert "red" in str(cell.style)
    warned = worst_cell(view(live(extra=named(cache=72.0, cache_state="warning"))), NOW)
    assert warned.plain == "▲ cache hit 72.0%"  # no threshold on this signal: no level to show
    assert "yellow" in str(warned.style)
    assert worst_cell(view(live()), NOW).plain == ""
    stale = worst_cell(view(two_critical, updated_at=NOW - 30), NOW)
    assert stale.plain == "", "a stale row has no current signals to name"
    assert health_cell(view(two_critical), NOW).plain == "● up", "the health column says health only"


async def test_the_table_is_ordered_worst_first_with_the_summary_in_the_header(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        table = frozen_app.screen.query_one(ServiceTable)
        # Config order is checkout, checkout-canary, payments, search.
        assert table_order(table) == ["payments", "checkout-canary", "checkout", "search"]
        assert str(table.get_cell("payments", "health")) == "✖ down"
        assert str(table.get_cell("checkout-canary", "worst")) == "✖ errors 15.0% > 5.00% +1"
        assert str(table.get_cell("checkout", "worst")) == "▲ cache hit 78.0% < 80.0%"
        assert [c.key.value for c in table.columns.values()] == ["service", "health", "worst", "reason"]
        assert header_summary(frozen_app) == "1 down · 1 critical · 1 warning"
        # The cursor starts on the top row: the worst service is the one in the detail.
        assert table.selected == "payments"
        assert frozen_app.screen.query_one(ServiceDetail).view.name == "payments"  # type: ignore[union-attr]
        await pilot.press("question_mark")
        assert isinstance(frozen_app.screen, HelpScreen)
        shown = screen_text(frozen_app)
        assert "worst signal, past its critical level (▲ warning); +1 more" in shown
        assert "o " in shown and "worst first / config order" in shown
        assert "⚠" in shown and "cannot be trusted" in shown


def test_the_summary_shows_each_count_in_its_trouble_s_colour() -> None:
    markup, plain = summary_markup(triage.summary(["ok", "down", "critical", "critical", "stale"]))
    assert plain == "1 down · 2 critical · 1 stale"
    assert markup == "[bold $error]1 down[/] · [$error]2 critical[/] · [italic $text-muted]1 stale[/]"
    assert summary_markup(triage.summary(["ok", "ok"])) == ("[$success]all ok[/]", "all ok")


@pytest.mark.parametrize(("size", "role"), [((120, 40), "○ follower"), ((200, 60), "○ follower of oncall@bastion pid 4242")])
async def test_the_header_keeps_the_store_path_whole_before_the_leader_s_name(
    frozen_app: ConnApp, size: tuple[int, int], role: str
) -> None:
    async with frozen_app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        top = frozen_app.screen.query_one(TopBar)
        store = top.query_one(".store", Static)
        assert str(store.render()) == "sqlite:///tmp/conn-frozen-console/conn.db"
        assert store.content_size.width >= len("sqlite:///tmp/conn-frozen-console/conn.db"), "not cut"
        assert str(top.query_one(".role", Static).render()) == role


async def test_a_service_that_goes_down_moves_to_the_top_and_the_header_counts_it(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        table = frozen_app.screen.query_one(ServiceTable)
        frozen_app.snapshot = with_health(_snapshot(frozen_app), "search", "down")
        await pilot.pause()
        assert table_order(table) == ["payments", "search", "checkout-canary", "checkout"]
        assert header_summary(frozen_app) == "2 down · 1 critical · 1 warning"


async def test_the_cursor_follows_its_service_when_rows_move(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        table = frozen_app.screen.query_one(ServiceTable)
        await pilot.press("down", "down")  # the operator chooses checkout (third row)
        assert table.selected == "checkout"
        frozen_app.snapshot = with_health(_snapshot(frozen_app), "search", "down")
        await pilot.pause()
        assert table_order(table).index("checkout") == 3, "checkout moved down a row"
        assert table.selected == "checkout", "and the cursor with it"
        assert frozen_app.screen.query_one(ServiceDetail).view.name == "checkout"  # type: ignore[union-attr]


async def test_the_order_key_switches_to_config_order_and_back(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        table = frozen_app.screen.query_one(ServiceTable)
        await pilot.press("down")
        assert table.selected == "checkout-canary"
        assert "o Config order" in screen_text(frozen_app)
        await pilot.press("o")
        await pilot.pause()
        assert table.order == "config"
        assert table_order(table) == ["checkout", "checkout-canary", "payments", "search"]
        assert table.selected == "checkout-canary", "the cursor stays on its service"
        assert "o Worst first" in screen_text(frozen_app)
        await pilot.press("o")
        await pilot.pause()
        assert table_order(table) == ["payments", "checkout-canary", "checkout", "search"]


async def test_config_order_from_the_config(frozen_app: ConnApp, monkeypatch: pytest.MonkeyPatch) -> None:
    config = frozen_app.engine.config.model_copy(update={"ui": UiConfig(order="config")})
    monkeypatch.setattr(frozen_app.engine, "config", config)  # the same store, another [ui] order
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        table = frozen_app.screen.query_one(ServiceTable)
        assert table_order(table) == ["checkout", "checkout-canary", "payments", "search"]


async def test_the_selected_row_keeps_its_state_colour(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        table = frozen_app.screen.query_one(ServiceTable)
        assert table.selected == "payments" and table.has_focus
        # The cursor's line as drawn: "✖ down" in red and bold, not in the cursor's colours.
        line = table.region.y + 1 + table.cursor_row  # below the column labels
        svg = frozen_app.export_screenshot()
        styles = dict(re.findall(r"\.(terminal-[\w-]+) \{ ([^}]*) \}", svg))
        drawn = [
            (html.unescape(text).replace("\xa0", " "), styles[cls])
            for cls, text in re.findall(rf'<text class="([^"]+)"[^>]*line-{line}\)">([^<]*)</text>', svg)
        ]
        health = next(style for text, style in drawn if "✖ down" in text)
        name = next(style for text, style in drawn if "payments" in text)
        assert next(text for text, _ in drawn if "✖ down" in text).strip() == "✖ down", "its own colour"
        assert health != name, "not the cursor's colours"
        red = re.search(r"fill: (#[0-9a-f]+)", health)
        assert red is not None and int(red.group(1)[1:3], 16) > 0xC0 and "bold" in health, health


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
        payments = snapshot.service("payments")  # the top row: down
        assert payments is not None
        assert detail.has_class("-wide")
        now = frozen_app.clock.now()
        assert detail.outer_size.height == wide_height_of(payments, False, 120, now)
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
        assert detail.outer_size.height == wide_height_of(canary, True, 120, now)
        assert detail.has_class("-wide")


async def test_at_80x24_the_detail_takes_what_it_needs_and_the_activity_the_rest(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        screen = frozen_app.screen
        detail, activity = screen.query_one(ServiceDetail), screen.query_one("#activity")
        room = 24 - 1 - 5 - 1  # header, table, footer
        # payments: health, latency, errors, its one signal (probe errors).
        assert detail.has_class("-narrow")
        assert detail.outer_size.height == 4
        assert activity.outer_size.height == room - 4
        # The canary needs 3 lines, the comparison's header and a row per signal (8).
        await pilot.press("down")
        await pilot.pause()
        assert detail.outer_size.height == 3 + 1 + 8
        assert activity.outer_size.height == room - 12 >= ACTIVITY_FLOOR
        assert detail.query_one("ComparePanel .header").region.height == 1, "labelled columns"


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
