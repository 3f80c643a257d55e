"""The rollout keys at 80x24, keyboard only, on a real leading engine and SQLite store.

`a`, `h` and `R` open their dialogs, run the engine's commands, and what is
asserted is what the store recorded (type, actor, reason, payload) and what
the console shows. The leader carries out each stage's flag action, as in
production; its probes of 127.0.0.1:9 fail, so a `p95` gate has no data and
fails (never passes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input, Static

from console.config import parse_config
from console.engine.core import Engine
from console.engine.rollouts import AdvanceRollout
from console.model.clock import FakeClock
from console.model.events import Actor, Event
from console.store import EventStore, open_store
from console.ui.app import ConnApp
from console.ui.modals.confirm import ConfirmModal
from console.ui.modals.hold import HoldModal
from console.ui.screens.dashboard import DashboardScreen
from console.ui.widgets.rollout_panel import RolloutPane
from tests.fixtures.pilot import type_text, until

pytestmark = pytest.mark.slow

STREAM = "rollout/checkout"


def config_text(tmp_path: Path, *, gate: str = "", bake: str = "0s", extra: str = "") -> str:
    return f"""
store = "sqlite:///{tmp_path / 'conn.db'}"
[flags]
export = "{tmp_path / 'flags.json'}"
[flags.groups]
internal = ["user-1", "user-2"]
[flags.define.checkout_v2]
groups = ["internal"]

[services.checkout]
health_url = "http://127.0.0.1:9/health"
interval = "1s"
[services.checkout-canary]
health_url = "http://127.0.0.1:9/health"
interval = "1s"
baseline = "checkout"

[rollouts.checkout]
canary = "checkout-canary"
baseline = "checkout"
flag = "checkout_v2"
[[rollouts.checkout.stages]]
name = "internal"
groups = ["internal"]
bake = "{bake}"
[[rollouts.checkout.stages]]
name = "10%"
percent = 10
[[rollouts.checkout.stages]]
name = "100%"
percent = 100
[rollouts.checkout.gate]
criteria = [{gate}]
min_samples = 1
{extra}"""


Leader = Callable[..., Any]


@pytest.fixture
async def leader(tmp_path: Path) -> AsyncIterator[Leader]:
    """Make a console whose engine leads (``alice`` at the keyboard); closes its store after."""
    stores: list[EventStore] = []

    async def make(**options: str) -> tuple[ConnApp, EventStore]:
        config = parse_config(config_text(tmp_path, **options))
        store = await open_store(config.store)
        stores.append(store)
        engine = Engine(config, store, clock=FakeClock(), actor=Actor("alice"), retry_leadership=0.1)
        return ConnApp(engine, clock=engine.clock, ticking=False), store

    yield make
    for store in stores:
        await store.close()


async def events(store: EventStore) -> list[Event]:
    return await store.read_stream(STREAM)


def phase(app: ConnApp) -> str:
    snapshot = app.snapshot
    assert snapshot is not None
    panel = snapshot.rollout("checkout")
    assert panel is not None
    return panel.view(app.clock.now()).phase


def stage(app: ConnApp) -> int | None:
    snapshot = app.snapshot
    panel = snapshot.rollout("checkout") if snapshot is not None else None
    return panel.state.stage.index if panel is not None and panel.state.stage is not None else None


def modal_text(app: ConnApp) -> str:
    """The dialog's title and body."""
    return " ".join(str(w.render()) for w in app.screen.query("Label, Static"))


async def press_for_dialog(pilot: Any, app: ConnApp, key: str, kind: type = ConfirmModal) -> str:
    """Press ``key`` and wait for its dialog (an advance asks the engine about the gate first)."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, kind), f"the dialog of {key!r}")
    return modal_text(app)


async def confirm(pilot: Any, app: ConnApp, reason: str) -> None:
    assert isinstance(app.screen, ConfirmModal)
    await type_text(pilot, reason)
    await pilot.press("enter")


async def leading(pilot: Any, app: ConnApp) -> None:
    await until(pilot, lambda: app.engine.role == "leader", "this console leads", within=10)


def actions_done(app: ConnApp) -> bool:
    snapshot = app.snapshot
    panel = snapshot.rollout("checkout") if snapshot is not None else None
    return panel is not None and panel.state.run > 0 and not panel.view(app.clock.now()).actions


async def stage_actions_done(pilot: Any, app: ConnApp) -> None:
    """Wait for the leader to carry out the current stage's flag action."""
    await until(pilot, lambda: actions_done(app), "the stage's actions finished", within=10)


async def test_a_starts_a_run_then_advances_with_a_reason(leader: Leader) -> None:
    app, store = await leader()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await pilot.press("a")
        assert "Start run 1 of checkout?" in modal_text(app)
        assert "flag checkout_v2 → group internal" in modal_text(app)
        await pilot.press("escape")  # cancelled: nothing recorded
        assert isinstance(app.screen, DashboardScreen)
        assert await events(store) == []
        await pilot.press("a")
        await confirm(pilot, app, "first canary of v2")
        await until(pilot, lambda: stage(app) == 0, "run 1 in its first stage")
        started, entered = (await events(store))[:2]
        assert (started.type, started.actor, started.reason) == ("RolloutStarted", "alice", "first canary of v2")
        assert (entered.type, entered.actor, entered.payload["name"]) == ("StageEntered", "alice", "internal")
        await stage_actions_done(pilot, app)
        pane = app.screen.query_one(RolloutPane)
        assert "ready: baked, the gate passes — a advances to 10%" in str(
            pane.query_one("#rollout-phase", Static).render())

        text = await press_for_dialog(pilot, app, "a")
        assert "Advance checkout?" in text
        assert "The gate passes. Next: stage 2 (10%): flag checkout_v2 → 10% of everyone" in text
        await confirm(pilot, app, "internal users happy")
        await until(pilot, lambda: stage(app) == 1, "stage 2")
        advanced = next(e for e in await events(store) if e.type == "RolloutAdvanced")
        assert (advanced.actor, advanced.reason, advanced.payload["override"]) == (
            "alice", "internal users happy", None)
        last = str(pane.query_one("#rollout-last", Static).render())
        assert "advanced from stage 1 (internal) to stage 2 (10%) · alice" in last
        assert "internal users happy" in last


async def test_a_over_a_failing_gate_offers_an_override_and_records_it(leader: Leader) -> None:
    app, store = await leader(gate='"p95 < 500ms"')
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await app.engine.execute(AdvanceRollout(rollout="checkout", reason="start"))
        await stage_actions_done(pilot, app)
        text = await press_for_dialog(pilot, app, "a")
        assert "Advance checkout over a failing gate?" in text
        assert "The gate fails: p95 < 500ms:" in text  # the engine's own words for why
        assert "records an override" in text
        await pilot.click("#confirm")  # no reason: refused in the dialog
        assert isinstance(app.screen, ConfirmModal)
        await confirm(pilot, app, "probe path is known slow")
        await until(pilot, lambda: stage(app) == 1, "stage 2 over the gate")
        advanced = next(e for e in await events(store) if e.type == "RolloutAdvanced")
        assert advanced.actor == "alice"
        assert advanced.reason == advanced.payload["override"] == "probe path is known slow"
        assert "p95 < 500ms" in advanced.payload["gate_failure"]


async def test_a_while_baking_is_refused_in_the_engines_words_without_a_dialog(
    leader: Leader, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, store = await leader(bake="1h")
    notes: list[tuple[str, str, str]] = []
    original = app.notify

    def recording(message: str, *, title: str = "", severity: str = "information", **kw: Any) -> None:
        notes.append((title, message, severity))
        original(message, title=title, severity=severity, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "notify", recording)
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await app.engine.execute(AdvanceRollout(rollout="checkout", reason="start"))
        await stage_actions_done(pilot, app)
        assert phase(app) == "baking"
        before = len(await events(store))
        await pilot.press("a")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DashboardScreen)
        assert ("advance checkout", "stage 1 (internal) is still baking: 1h left", "error") in notes
        assert len(await events(store)) == before


async def test_h_holds_with_a_reason_and_an_expiry_then_resumes(leader: Leader) -> None:
    app, store = await leader()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await app.engine.execute(AdvanceRollout(rollout="checkout", reason="start"))
        await stage_actions_done(pilot, app)
        await pilot.press("h")
        assert isinstance(app.screen, HoldModal)
        await type_text(pilot, "looking at the cache")
        await pilot.press("tab")
        await type_text(pilot, "soon")
        await pilot.press("enter")  # not a time: refused in the dialog
        assert isinstance(app.screen, HoldModal)
        assert "'soon': give a duration from now (30m, 2h)" in str(
            app.screen.query_one("#hold-error", Static).render())
        for _ in "soon":
            await pilot.press("backspace")
        await type_text(pilot, "30m")
        await pilot.press("enter")
        await until(pilot, lambda: phase(app) == "held", "held")
        held = (await events(store))[-1]
        assert (held.type, held.actor, held.reason) == ("RolloutHeld", "alice", "looking at the cache")
        assert held.payload["until"] == app.clock.now() + 1800
        shown = str(app.screen.query_one(RolloutPane).query_one("#rollout-phase", Static).render())
        assert "held by alice until " in shown and "(30m left): looking at the cache" in shown

        await pilot.press("h")
        assert "Resume checkout?" in modal_text(app)
        await confirm(pilot, app, "cache is fine")
        await until(pilot, lambda: phase(app) == "ready", "resumed")
        resumed = (await events(store))[-1]
        assert (resumed.type, resumed.actor, resumed.reason) == ("RolloutResumed", "alice", "cache is fine")


async def test_R_rolls_back_only_once_the_rollouts_name_is_typed(leader: Leader) -> None:
    app, store = await leader()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        await app.engine.execute(AdvanceRollout(rollout="checkout", reason="start"))
        await stage_actions_done(pilot, app)
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmModal)
        assert "Roll back checkout?" in modal_text(app)
        assert "flag checkout_v2 off for everyone" in modal_text(app)
        focused = app.focused
        assert isinstance(focused, Button) and focused.id == "cancel"  # destructive: Cancel first
        await pilot.press("enter")  # Enter on Cancel cancels
        assert isinstance(app.screen, DashboardScreen)
        assert [e.type for e in await events(store)].count("RollbackStarted") == 0

        await pilot.press("R")
        await pilot.press("tab")  # from Cancel straight to the name (Confirm is not in the Tab order)
        assert isinstance(app.focused, Input) and app.focused.id == "confirm-name"
        await type_text(pilot, "checkou")
        await pilot.press("tab")
        await type_text(pilot, "errors on the canary")
        await pilot.press("enter")
        assert isinstance(app.screen, ConfirmModal)  # the wrong name: nothing happens
        assert "Type checkout exactly" in str(app.screen.query_one("#confirm-error", Static).render())
        assert [e.type for e in await events(store)].count("RollbackStarted") == 0

        app.screen.query_one("#confirm-name", Input).focus()
        await pilot.press("end")
        await type_text(pilot, "t")
        await pilot.press("enter")
        await until(pilot, lambda: phase(app) in ("rolling_back", "rolled_back"), "rolling back")
        started = next(e for e in await events(store) if e.type == "RollbackStarted")
        assert (started.actor, started.reason, started.payload["automatic"]) == (
            "alice", "errors on the canary", False)
        await until(pilot, lambda: phase(app) == "rolled_back", "rolled back by the leader", within=10)


async def test_the_palette_runs_the_rollout_commands(leader: Leader) -> None:
    app, _ = await leader()
    async with app.run_test(size=(80, 24)) as pilot:
        await leading(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Rollout checkout: advance", "Rollout checkout: hold or resume",
                      "Rollout checkout: roll back"):
            assert title in titles
        await pilot.press("f")  # from another screen: back to the dashboard first
        await pilot.press("ctrl+p")
        await type_text(pilot, "checkout advance")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the start dialog")
        assert "Start run 1 of checkout?" in modal_text(app)
        assert isinstance(app.screen_stack[-2], DashboardScreen)


async def test_r_shows_the_next_rollout(tmp_path: Path) -> None:
    extra = """
[rollouts.search]
canary = "checkout-canary"
[[rollouts.search.stages]]
name = "all"
"""
    config = parse_config(config_text(tmp_path, extra=extra))
    store = await open_store(config.store)
    try:
        app = ConnApp(Engine(config, store, clock=FakeClock(), actor=Actor("alice"), lead=False),
                      ticking=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            pane = app.screen.query_one(RolloutPane)
            assert "rollout checkout · 1 of 2 (r: next)" in str(pane.border_title)
            await pilot.press("r")
            assert "rollout search · 2 of 2 (r: next)" in str(pane.border_title)
            await pilot.press("a")
            assert "Start run 1 of search?" in modal_text(app)
    finally:
        await store.close()
