"""The incidents UI: `i` declares, the strip lists, the incident screen acknowledges and annotates.

Keyboard tests run a real leading engine on a temporary SQLite store (no
probe answers: 127.0.0.1:9) with a fake clock, press keys at 80x24, and
assert on what the store recorded and what the screen shows. Snapshot tests
use the frozen console (:mod:`tests.fixtures.frozen`) with three incidents
written through a real engine at fixed times before it starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, RichLog, SelectionList, Static

from console.config import parse_config
from console.engine.core import Engine
from console.engine.incidents import (
    AcknowledgeIncident,
    AssignIncidentRole,
    NoteIncident,
    OpenIncident,
    PinIncidentEntry,
    SetIncidentStatus,
)
from console.engine.outbox import OutboxView
from console.model.clock import FakeClock
from console.model.events import Actor, Event
from console.store import EventStore, open_store
from console.ui.app import ConnApp
from console.ui.modals.declare import ChoiceModal, DeclareModal
from console.ui.modals.prompt import PromptModal
from console.ui.screens.dashboard import DashboardScreen
from console.ui.screens.incident import IncidentScreen
from console.ui.widgets.incident_strip import IncidentStrip, ack_text, incident_line, notify_line
from console.ui.widgets.service_table import ServiceTable
from tests.fixtures.frozen import T0, frozen_app
from tests.fixtures.pilot import type_text, until

ALICE = Actor("alice")
HOSTILE = "checkout [bold red]pwned[/] \x1b[2J\x1b]8;;http://evil.example\x07link\x1b]8;;\x07"
"""A title with Rich markup, a clear-screen and an OSC 8 hyperlink."""


def config_text(tmp_path: Path) -> str:
    return f"""
store = "sqlite:///{tmp_path / 'conn.db'}"
[flags]
export = "{tmp_path / 'flags.json'}"
[services.checkout]
health_url = "http://127.0.0.1:9/health"
interval = "1s"
[services.payments]
health_url = "http://127.0.0.1:9/health"
interval = "1s"
[services.search]
health_url = "http://127.0.0.1:9/health"
interval = "1s"
"""


Make = Callable[..., Any]


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Make]:
    """Make a console whose engine leads (``alice`` at the keyboard); closes its store after."""
    stores: list[EventStore] = []

    async def make(*, ticking: bool = False) -> tuple[ConnApp, EventStore]:
        config = parse_config(config_text(tmp_path))
        store = await open_store(config.store)
        stores.append(store)
        engine = Engine(config, store, clock=FakeClock(T0), actor=ALICE, retry_leadership=0.1)
        return ConnApp(engine, clock=engine.clock, ticking=ticking), store

    yield make
    for store in stores:
        await store.close()


async def incident_events(store: EventStore, number: int = 1) -> list[Event]:
    return await store.read_stream(f"incident/INC-{number}")


def strip_text(app: ConnApp) -> str:
    dashboard = next(s for s in app.screen_stack if isinstance(s, DashboardScreen))
    strip = dashboard.query_one(IncidentStrip)
    return str(strip.render()) if strip.display else ""


def timeline(app: ConnApp) -> str:
    log = app.screen.query_one(RichLog)
    return "\n".join("".join(segment.text for segment in line) for line in log.lines)


def timeline_kinds(app: ConnApp) -> list[str]:
    """The kind column of each entry, top to bottom (a wrapped entry's later lines have none).

    Health entries are left out: the leader's probes of 127.0.0.1:9 fail, and when the
    services' health transitions land among the incident's entries depends on timing.
    """
    found = (re.match(r"\d\d:\d\d:\d\d +(?:PIN +)?(\S+)", line) for line in timeline(app).splitlines())
    return [match.group(1) for match in found if match and match.group(1) != "health"]


def header(app: ConnApp) -> str:
    return str(app.screen.query_one("#incident-header", Static).render())


def screen_text(app: ConnApp) -> str:
    """The characters on screen (the screenshot's text, without SVG markup)."""
    return html.unescape(re.sub(r"<[^>]+>", "", app.export_screenshot())).replace("\xa0", " ")


def record_notes(app: ConnApp, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(title, message) of every notification the app shows from now on."""
    seen: list[tuple[str, str]] = []
    original = app.notify

    def recording(message: str, *, title: str = "", **kw: Any) -> None:
        seen.append((title, message))
        original(message, title=title, **kw)

    monkeypatch.setattr(app, "notify", recording)
    return seen


async def leading(pilot: Any, app: ConnApp) -> None:
    await until(pilot, lambda: app.engine.role == "leader", "this console leads", within=10)


# --- declaring ---------------------------------------------------------------------------


async def test_i_declares_an_incident_that_the_strip_then_shows(console: Make) -> None:
    app, store = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        assert not strip_text(app), "the strip is hidden while nothing is open"
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, DeclareModal), "the declare dialog")
        text = screen_text(app)
        assert "Complete outage, data loss or a security breach" in text  # definitions shown
        assert "ack within 5m" in text and "ack within 8h" in text  # targets from the config
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)
        assert await incident_events(store) == []

        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, DeclareModal), "the declare dialog")
        await pilot.press("enter")  # no title: asked for, nothing declared
        assert isinstance(app.screen, DeclareModal)
        assert app.screen.query_one("#declare-title", Input).has_focus
        await pilot.press("shift+tab", "up")  # from SEV3 to SEV2
        await pilot.press("tab")
        await type_text(pilot, "checkout errors for EU users")
        await pilot.press("enter")
        await until(pilot, lambda: "INC-1" in strip_text(app), "the strip lists INC-1")
        opened = (await incident_events(store))[0]
        assert (opened.type, opened.actor) == ("IncidentOpened", "alice")
        assert opened.payload["severity"] == "SEV2"
        assert opened.payload["title"] == "checkout errors for EU users"
        selected = app.screen.query_one(ServiceTable).selected
        assert opened.payload["services"] == [selected], "the selected service is pre-selected"
        line = strip_text(app)
        assert "SEV2" in line and "investigating" in line and "ack 0s/15m" in line
        assert "update in 30m" in line
        assert "Incident" in screen_text(app)  # `I` is in the footer while one is open


async def test_the_declare_dialog_ticks_more_services_with_space(console: Make) -> None:
    app, store = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, DeclareModal), "the declare dialog")
        await pilot.press("tab")
        await type_text(pilot, "search and payments")
        await pilot.press("tab")  # the services list
        selected = set(app.screen.query_one("#declare-services", SelectionList).selected)
        await pilot.press("home", "space", "end", "space")
        await pilot.press("enter")
        await until(pilot, lambda: "INC-1" in strip_text(app), "the strip lists INC-1")
        payload = (await incident_events(store))[0].payload
        assert payload["severity"] == "SEV3"  # where the list starts
        assert set(payload["services"]) == selected ^ {"checkout", "search"}


# --- the incident screen -----------------------------------------------------------------


async def test_the_incident_screen_acknowledges_notes_and_moves_the_status(console: Make) -> None:
    app, store = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await app.engine.execute(OpenIncident(title="checkout down", services=("checkout",), severity="SEV1"))
        await pilot.press("I")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "the incident screen")
        await until(pilot, lambda: "SEV1 declared: checkout down" in timeline(app), "the first entry")
        assert "INVESTIGATING" in header(app) and "ack 0s/5m" in header(app)
        footer = [line for line in screen_text(app).splitlines() if line.strip()][-1]
        for key, word in (("a", "Ack"), ("s", "Status"), ("v", "Severity"), ("n", "Note"),
                          ("p", "Pin"), ("r", "Role"), ("esc", "Back")):
            assert f"{key} {word}" in footer, (key, footer)

        await pilot.press("a")
        await until(pilot, lambda: "acknowledged by alice" in timeline(app), "the ack on the timeline")
        assert "acked in 0s" in header(app)

        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, PromptModal), "the note prompt")
        await type_text(pilot, "rolled checkout back to v41")
        await pilot.press("enter")
        await until(pilot, lambda: "rolled checkout back to v41" in timeline(app), "the note")

        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ChoiceModal), "the status picker")
        await pilot.press("down")  # from identified (the next one) to mitigated
        await pilot.press("enter")
        await until(pilot, lambda: "investigating → mitigated" in timeline(app), "the status change")
        assert "MITIGATED" in header(app)

        events = await incident_events(store)
        assert [e.type for e in events] == [
            "IncidentOpened", "IncidentAcknowledged", "IncidentNoted", "IncidentStatusChanged"]
        assert all(e.actor == "alice" for e in events)
        assert events[2].payload["text"] == "rolled checkout back to v41"
        assert events[3].payload["status"] == "mitigated"
        assert timeline_kinds(app) == ["opened", "ack", "note", "status"]

        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_severity_needs_a_reason_and_roles_and_pins_are_picked(console: Make) -> None:
    app, store = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await app.engine.execute(OpenIncident(title="payments slow", services=("payments",), severity="SEV3"))
        await app.engine.execute(NoteIncident(incident="INC-1", text="p95 at 2s since 14:02"))
        await pilot.press("I")
        await until(pilot, lambda: "p95 at 2s since 14:02" in timeline(app), "the note on the timeline")

        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ChoiceModal), "the severity picker")
        await pilot.press("up")  # SEV3 → SEV2
        await pilot.press("enter")  # no reason yet: the field gets the focus
        assert isinstance(app.screen, ChoiceModal)
        assert app.screen.query_one(Input).has_focus
        await type_text(pilot, "half of the users")
        await pilot.press("enter")
        await until(pilot, lambda: "SEV3 → SEV2 — half of the users" in timeline(app), "the severity change")

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ChoiceModal), "the role picker")
        await pilot.press("down")  # scribe
        await pilot.press("tab")
        await type_text(pilot, "bob")
        await pilot.press("enter")
        await until(pilot, lambda: "scribe: bob" in timeline(app), "the handoff")
        assert "commander alice" in header(app) and "scribe bob" in header(app)

        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ChoiceModal), "the entry picker")
        await pilot.press("enter")  # starts on the newest unpinned note
        await until(pilot, lambda: "pinned" in timeline(app).splitlines()[-1], "the pin line")
        assert "PIN" in header(app) and "p95 at 2s since 14:02" in header(app)

        events = await incident_events(store)
        severity = next(e for e in events if e.type == "IncidentSeverityChanged")
        assert (severity.payload["severity"], severity.reason) == ("SEV2", "half of the users")
        role = next(e for e in events if e.type == "IncidentRoleAssigned")
        assert (role.payload["role"], role.payload["user"]) == ("scribe", "bob")
        pin = next(e for e in events if e.type == "IncidentPinned")
        note = next(e for e in events if e.type == "IncidentNoted")
        assert (pin.payload["entry"], pin.payload["pinned"]) == (note.position, True)


async def test_a_refused_command_shows_the_engines_words(console: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    app, _ = await console()
    notes = record_notes(app, monkeypatch)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await leading(pilot, app)
        await app.engine.execute(OpenIncident(title="search", services=("search",), severity="SEV4"))
        await app.engine.execute(AcknowledgeIncident(incident="INC-1"))
        await pilot.press("I")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "the incident screen")
        await pilot.press("a")
        await until(pilot, lambda: ("ack: INC-1", "INC-1 was acknowledged by alice already") in notes,
                    "the refusal")


async def test_entries_arriving_later_are_appended_not_rewritten(console: Make) -> None:
    app, _ = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        engine = app.engine
        await engine.execute(OpenIncident(title="checkout", services=("checkout",), severity="SEV2"))
        await pilot.press("I")
        await until(pilot, lambda: "declared" in timeline(app), "the first entry")
        log = app.screen.query_one(RichLog)
        written = list(log.lines)
        other = Actor("bob")
        await engine.execute(NoteIncident(incident="INC-1", text="from the CLI"), actor=other)
        await engine.execute(AssignIncidentRole(incident="INC-1", role="comms", user="carol"), actor=other)
        await until(pilot, lambda: "comms: carol" in timeline(app), "changes made elsewhere")
        assert log.lines[:len(written)] == written, "the log appends; what was written stays"
        assert all(a is b for a, b in zip(log.lines, written, strict=False))
        assert timeline_kinds(app) == ["opened", "note", "role"]
        note = next(e for e in engine.incident("INC-1").state.entries if e.kind == "note")
        await engine.execute(PinIncidentEntry(incident="INC-1", entry=note.position), actor=other)
        await until(pilot, lambda: "PIN pinned" in timeline(app), "the pin appended")
        pinned = next(line for line in timeline(app).splitlines() if "PIN pinned" in line)
        assert "note: from the CLI" in pinned
        await engine.execute(SetIncidentStatus(incident="INC-1", status="resolved"), actor=other)
        await until(pilot, lambda: "→ resolved" in timeline(app), "the status")
        assert timeline_kinds(app) == ["opened", "note", "role", "status"]
        assert "RESOLVED" in header(app) and "PIN" in header(app)


# --- hostile text, overdue, failing sinks, the palette, the strip's keys --------------------


async def test_a_title_with_markup_and_escapes_is_shown_literally(console: Make) -> None:
    app, _ = await console()
    async with app.run_test(size=(120, 30)) as pilot:
        await leading(pilot, app)
        await app.engine.execute(OpenIncident(title=HOSTILE, services=("checkout",), severity="SEV2"))
        await until(pilot, lambda: "INC-1" in strip_text(app), "the strip")
        shown = screen_text(app)
        assert "checkout [bold red]pwned[/] link" in shown
        assert "\x1b" not in strip_text(app)
        await pilot.press("I")
        await until(pilot, lambda: "pwned" in timeline(app), "the timeline")
        assert "checkout [bold red]pwned[/] link" in header(app)
        assert "checkout [bold red]pwned[/] link" in timeline(app)
        assert "\x1b" not in timeline(app) + header(app)


async def test_an_overdue_acknowledgement_shows_overdue_and_rings_once(
    console: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = await console(ticking=True)
    notes = record_notes(app, monkeypatch)
    rings: list[str] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(type(app.screen).__name__))
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await leading(pilot, app)
        await app.engine.execute(OpenIncident(title="payments down", services=("payments",), severity="SEV1"))
        await until(pilot, lambda: "ack 0s/5m" in strip_text(app), "the ack clock")
        assert "OVERDUE" not in strip_text(app) and rings == []
        clock = app.clock
        assert isinstance(clock, FakeClock)
        clock.advance(4 * 60)
        await until(pilot, lambda: "ack 4m/5m" in strip_text(app), "the clock ticking (4 minutes)")
        assert rings == []
        clock.advance(2 * 60)
        await until(pilot, lambda: "ack 6m/5m OVERDUE" in strip_text(app), "OVERDUE past the target")
        await until(pilot, lambda: rings == ["DashboardScreen"], "the bell")
        assert [t for t, m in notes if "not acknowledged within 5m: payments down" in m] == [
            "acknowledgement overdue"]
        await pilot.press("I")
        await until(pilot, lambda: "OVERDUE" in header(app), "OVERDUE on the incident screen")
        clock.advance(60)
        await until(pilot, lambda: "ack 7m/5m" in header(app), "the screen's clock ticking")
        assert rings == ["DashboardScreen"], "the bell rings once per incident"
        await pilot.press("a")
        await until(pilot, lambda: "acked in 7m" in header(app), "acknowledged")
        await pilot.press("escape")
        assert "OVERDUE" not in strip_text(app)


async def test_an_acknowledgement_going_overdue_behind_the_incident_screen_rings_too(
    console: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = await console(ticking=True)
    rings: list[str] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(type(app.screen).__name__))
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await app.engine.execute(OpenIncident(title="search slow", services=("search",), severity="SEV3"))
        await pilot.press("I")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "the incident screen")
        clock = app.clock
        assert isinstance(clock, FakeClock)
        clock.advance(3601)
        await until(pilot, lambda: "ack 1h/1h OVERDUE" in header(app), "OVERDUE on the incident screen")
        await until(pilot, lambda: rings == ["IncidentScreen"], "the bell, whatever screen is on top")


async def test_a_failing_chat_sink_shows_a_one_line_warning(console: Make) -> None:
    app, _ = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        snapshot = app.snapshot
        assert snapshot is not None
        failing = OutboxView("oncall", "slack", pending=2, sent=5, failure="HTTP 404: channel_not_found",
                             needs_fixing=True)
        app.snapshot = dataclasses.replace(snapshot, notify=(
            failing, OutboxView("pager", "json", pending=0, sent=7, failure=None, needs_fixing=False)))
        await until(pilot, lambda: "chat notifications failing" in strip_text(app), "the warning")
        assert "oncall: HTTP 404: channel_not_found (2 waiting)" in strip_text(app)
        assert "pager" not in strip_text(app)
        assert len(strip_text(app).splitlines()) == 1


async def test_firing_alerts_show_as_one_line_with_their_incident(console: Make) -> None:
    from console.model.alerts import AlertsLive, FiringAlert

    app, _ = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        snapshot = app.snapshot
        assert snapshot is not None
        firing = AlertsLive(at=0.0, alerts=(
            FiringAlert(name="HighErrorRate", title="payments 5xx", fingerprint="a", starts_at=0.0,
                        service="payments", severity="SEV2", incident="INC-1"),
            FiringAlert(name="[bold]Disk\x1b[2J", title="x", fingerprint="b", starts_at=0.0),
        ))
        app.snapshot = dataclasses.replace(snapshot, alerts=firing)
        await until(pilot, lambda: "alerts firing" in strip_text(app), "the alerts line")
        text = strip_text(app)
        assert "⚑ 2 alerts firing: HighErrorRate (payments) → INC-1 · [bold]Disk no rule" in text
        app.snapshot = dataclasses.replace(snapshot, alerts=AlertsLive(at=0.0, problem="connection refused"))
        await until(pilot, lambda: "alerts unknown — connection refused" in strip_text(app), "the poll problem")
        app.snapshot = dataclasses.replace(snapshot, alerts=AlertsLive(at=0.0))
        await until(pilot, lambda: "alert" not in strip_text(app), "nothing firing: no line")


async def test_the_palette_and_the_strip_open_an_incident(console: Make) -> None:
    app, _ = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        for title, service, severity in (("one", "checkout", "SEV3"), ("two", "payments", "SEV1"),
                                          ("three", "search", "SEV2"), ("four", "search", "SEV4")):
            await app.engine.execute(OpenIncident(title=title, services=(service,), severity=severity))
        await until(pilot, lambda: "+1 more open" in strip_text(app), "three lines and +1 more")
        lines = strip_text(app).splitlines()
        assert [line.split()[1] for line in lines[:3]] == ["INC-2", "INC-3", "INC-1"]  # most severe first

        await pilot.press("ctrl+p")
        await type_text(pilot, "Incident INC-4")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "the incident screen")
        assert isinstance(app.screen, IncidentScreen) and app.screen.incident_id == "INC-4"
        await pilot.press("escape")

        await pilot.press("shift+tab")  # from the services table back to the strip
        strip = app.screen.query_one(IncidentStrip)
        assert strip.has_focus
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "the incident screen")
        assert isinstance(app.screen, IncidentScreen) and app.screen.incident_id == "INC-3"


async def test_the_strip_hides_when_the_last_incident_closes_and_gives_the_focus_back(console: Make) -> None:
    app, _ = await console()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await app.engine.execute(OpenIncident(title="one", services=("checkout",), severity="SEV3"))
        await until(pilot, lambda: "INC-1" in strip_text(app), "the strip")
        await pilot.press("shift+tab")
        assert app.screen.query_one(IncidentStrip).has_focus
        await app.engine.execute(SetIncidentStatus(incident="INC-1", status="resolved"))
        await until(pilot, lambda: not strip_text(app), "the strip hidden")
        await until(pilot, lambda: app.screen.query_one(ServiceTable).has_focus, "the table has the focus")
        assert "Incident" not in [line for line in screen_text(app).splitlines() if line.strip()][-1]


def test_strip_lines_keep_label_id_and_clocks_and_cut_the_title_first() -> None:
    from console.engine.snapshot import IncidentPanel
    from console.model.incident_config import DEFAULT_SEVERITIES
    from console.model.incidents import IncidentState

    state = IncidentState(7, version=1, title="x" * 150, severity="SEV1", declared_at=T0,
                          milestones={"started": T0}, last_update=T0)
    panel = IncidentPanel(state, DEFAULT_SEVERITIES["SEV1"])
    wide = incident_line(panel, T0 + 400, 118)
    assert wide.cell_len == 118
    assert wide.plain.startswith(" SEV1  INC-7 xxx")
    assert wide.plain.endswith("…  investigating · open 6m · ack 6m/5m OVERDUE · update in 8m")
    # Narrower, "open" goes first (the ack clock says the same), then the next update.
    assert incident_line(panel, T0 + 400, 85).plain.endswith("investigating · ack 6m/5m OVERDUE · update in 8m")
    narrow = incident_line(panel, T0 + 400, 78).plain
    assert narrow.endswith("x…  investigating · ack 6m/5m OVERDUE") and len(narrow) == 78
    assert incident_line(panel, T0 + 400, 40).plain == " SEV1  INC-7 xxxxxxx…  ack 6m/5m OVERDUE"
    acked = dataclasses.replace(state, milestones={"started": T0, "acknowledged": T0 + 60})
    # Once acknowledged, the ack clock is history: it goes before "open".
    assert incident_line(IncidentPanel(acked, panel.severity), T0 + 400, 78).plain.endswith(
        "x…  investigating · open 6m · update in 8m")
    assert ack_text(panel.clocks(T0 + 10)) == ("ack 10s/5m", False)
    assert notify_line(()) is None


# --- snapshots -----------------------------------------------------------------------------


async def _write_incidents(app: ConnApp) -> None:
    """Three incidents on the frozen store, written through a real engine at fixed times."""
    engine = app.engine
    clock = FakeClock(T0 - 20 * 60)  # the app's clock stands at T0 and never goes back
    alice, bob = Actor("alice", "10.0.0.7"), Actor("bob", "10.0.0.9")
    async with Engine(engine.config, engine.store, clock=clock, actor=alice, lead=False, follow=False,
                      sync_flag_file=False) as writer:
        async def at(seconds_before: float, command: Any, actor: Actor = alice) -> None:
            clock.set(T0 - seconds_before)
            await writer.execute(command, actor=actor)

        await at(18 * 60, OpenIncident(title="checkout errors for EU users [bold]5xx[/] \x1b[2J",
                                       services=("checkout", "checkout-canary"), severity="SEV2"))
        await at(17 * 60, NoteIncident(incident="INC-1", text="error rate 12% on the canary since 11:40"))
        await at(16 * 60, AssignIncidentRole(incident="INC-1", role="scribe", user="bob"))
        await at(12 * 60, NoteIncident(incident="INC-1", text="flag checkout_v2 down to 0%"), bob)
        await at(11 * 60, PinIncidentEntry(incident="INC-1", entry=writer.incident("INC-1").state.entries[1].position))
        await at(9 * 60, SetIncidentStatus(incident="INC-1", status="identified"))
        await at(7 * 60, OpenIncident(title="search results stale", services=("search",), severity="SEV4"), bob)
        await at(5 * 60, AcknowledgeIncident(incident="INC-2"), bob)
        await at(2 * 60, OpenIncident(title="payments: every request fails", services=("payments",),
                                      severity="SEV1"))


@pytest.fixture
def incident_app() -> Iterator[ConnApp]:
    for app in frozen_app():
        asyncio.run(_write_incidents(app))
        yield app


async def _settle(pilot: Any) -> None:
    await pilot.pause(0.3)


def _opening(*keys: str, shown: Callable[[ConnApp], bool]) -> Callable[[Any], Any]:
    async def run(pilot: Any) -> None:
        await _settle(pilot)
        await pilot.press(*keys)
        await until(pilot, lambda: shown(pilot.app), f"what {keys} opens")
        await pilot.pause(0.3)

    return run


SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])


@SIZES
def test_dashboard_with_the_incidents_strip(snap_compare: Any, incident_app: ConnApp, size: tuple[int, int]) -> None:
    """SEV1 (ack clock running), SEV2 (OVERDUE) and SEV4 (acknowledged): labelled, coloured, clocked."""
    assert snap_compare(incident_app, terminal_size=size, run_before=_settle)


@SIZES
def test_declare_dialog(snap_compare: Any, incident_app: ConnApp, size: tuple[int, int]) -> None:
    run = _opening("i", shown=lambda app: isinstance(app.screen, DeclareModal))
    assert snap_compare(incident_app, terminal_size=size, run_before=run)


@SIZES
def test_incident_screen(snap_compare: Any, incident_app: ConnApp, size: tuple[int, int]) -> None:
    """INC-1: header with clocks and roles, a pinned note, the timeline in the log."""
    def shown(app: ConnApp) -> bool:
        return isinstance(app.screen, IncidentScreen) and "investigating → identified" in timeline(app)

    run = _opening("ctrl+p", *"Incident", "space", *"INC", "minus", "1", "enter", shown=shown)
    assert snap_compare(incident_app, terminal_size=size, run_before=run)
