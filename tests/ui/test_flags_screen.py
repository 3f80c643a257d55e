"""The flags screen driven by the keyboard alone, at 80x24, on a real engine and SQLite store.

Each test asserts what ends up stored (events, the flagd file) and what is shown.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from console.config import ConnConfig, parse_config
from console.engine.core import Engine
from console.model.clock import FakeClock
from console.model.events import Actor
from console.store import EventStore, open_store
from console.ui.app import ConnApp
from console.ui.modals.confirm import ConfirmModal
from console.ui.modals.prompt import PromptModal
from console.ui.screens.flags import FlagsScreen
from tests.fixtures.consoles import OtherConsole as FlagService
from tests.fixtures.pilot import open_flags, type_text, until

pytestmark = pytest.mark.slow

FLAGS = """
[flags.groups]
internal = ["user1", "user2", "user3"]

[flags.define.calendar_refactor]
description = "new calendar"
groups = ["internal"]

[flags.define.checkout_v2]
percent = "0.5%"
allow = ["qa-1"]
"""


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[ConnApp, EventStore, Path]]:
    export = tmp_path / "flags.json"
    config: ConnConfig = parse_config(
        f'store = "sqlite:///{tmp_path / "conn.db"}"\n[flags]\nexport = "{export}"\n' + FLAGS)
    store = await open_store(config.store)
    clock = FakeClock()
    # A leader has created the config's flags (followers only read).
    await FlagService(store=store, config=config, clock=clock, actor=Actor("alice")).load()
    app = ConnApp(Engine(config, store, clock=clock, actor=Actor("alice"), lead=False),
                  clock=clock, ticking=False)
    yield app, store, export
    await store.close()


def cell(screen: FlagsScreen, row: str, column: str) -> str:
    return str(screen.query_one(DataTable).get_cell(row, column))


async def confirm_with(pilot: Pilot[None], app: ConnApp, reason: str, *, name: str | None = None) -> None:
    assert isinstance(app.screen, ConfirmModal)
    if name is not None:
        await pilot.click("#confirm-name")
        await type_text(pilot, name)
    await pilot.click("#confirm-reason")
    await type_text(pilot, reason)
    await pilot.press("enter")


async def test_f_opens_the_table_and_escape_goes_back(setup: tuple[ConnApp, EventStore, Path]) -> None:
    app, _, export = setup
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_flags(app, pilot, "calendar_refactor")
        assert [str(k.value) for k in screen.query_one(DataTable).rows] == ["calendar_refactor", "checkout_v2"]
        assert cell(screen, "checkout_v2", "state") == "enabled"
        assert cell(screen, "checkout_v2", "percent") == "0.5%"
        assert cell(screen, "calendar_refactor", "allow") == "0+1"
        table = screen.query_one(DataTable)
        assert str(table.columns[ColumnKey("allow")].label) == "Allow (keys+groups)"
        detail = str(screen.query_one("#flags-detail", Static).render())
        assert "allowlist: 0 keys + 1 group (internal)" in detail, "the Allow column in words"
        # Created by the config; the age first, the author cut to what 80 columns leave.
        assert cell(screen, "checkout_v2", "change").startswith("0s ago · conn-auto@")
        text = app.export_screenshot().replace("&#160;", " ")
        for shown in ("calendar_refactor", "checkout_v2", "0.5%", "flag file", "Kill", "Key in?"):
            assert shown in text
        assert str(screen.query_one("#flags-export", Static).render()) == f"flag file {export}: ok"
        await pilot.press("escape")
        assert not isinstance(app.screen, FlagsScreen)


async def test_space_toggles_after_a_confirmation_with_a_reason(setup: tuple[ConnApp, EventStore, Path]) -> None:
    app, store, export = setup
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_flags(app, pilot, "calendar_refactor")
        await pilot.press("space", "escape")  # cancelled: nothing changes
        assert isinstance(app.screen, FlagsScreen)
        assert len(await store.read_stream("flag/calendar_refactor")) == 1
        await pilot.press("space")
        await pilot.click("#confirm")  # no reason yet: refused in the dialog
        assert isinstance(app.screen, ConfirmModal)
        assert "reason is required" in str(app.screen.query_one("#confirm-error", Static).render())
        await type_text(pilot, "rollback")
        await pilot.press("enter")
        await until(pilot, lambda: cell(screen, "calendar_refactor", "state") == "disabled", "disabled shown")
        event = (await store.read_stream("flag/calendar_refactor"))[-1]
        assert (event.payload["change"], event.reason, event.actor) == ("disable", "rollback", "alice")
        assert json.loads(export.read_bytes())["flags"]["calendar_refactor"]["state"] == "DISABLED"
        await pilot.press("space")
        await confirm_with(pilot, app, "fixed")
        await until(pilot, lambda: cell(screen, "calendar_refactor", "state") == "enabled", "enabled shown")


async def test_percent_key_sets_a_typed_percentage(setup: tuple[ConnApp, EventStore, Path]) -> None:
    app, store, export = setup
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_flags(app, pilot, "checkout_v2")
        await pilot.press("percent_sign")
        assert isinstance(app.screen, PromptModal)
        await type_text(pilot, "150")
        await pilot.press("enter")
        assert isinstance(app.screen, PromptModal)  # refused in place
        assert "outside 0–100%" in str(app.screen.query_one("#prompt-error", Static).render())
        for _ in range(3):
            await pilot.press("backspace")
        await type_text(pilot, "10")
        await pilot.press("enter")
        await confirm_with(pilot, app, "stage 2")
        await until(pilot, lambda: cell(screen, "checkout_v2", "percent") == "10%", "10% shown")
        assert app.engine.flag("checkout_v2").percent == 10.0
        flag = json.loads(export.read_bytes())["flags"]["checkout_v2"]
        assert flag["targeting"]["if"][2] == {"fractional": [["on", 1000], ["off", 9000]]}
        assert (await store.read_stream("flag/checkout_v2"))[-1].reason == "stage 2"


async def test_k_kills_only_after_the_name_is_typed(setup: tuple[ConnApp, EventStore, Path]) -> None:
    app, store, _ = setup
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_flags(app, pilot, "checkout_v2")
        await pilot.press("k")
        await confirm_with(pilot, app, "errors up", name="checkout")  # wrong name
        assert isinstance(app.screen, ConfirmModal)
        assert "Type checkout_v2 exactly" in str(app.screen.query_one("#confirm-error", Static).render())
        await pilot.click("#confirm-name")
        await pilot.press("end")
        await type_text(pilot, "_v2")
        await pilot.press("enter")
        await until(pilot, lambda: cell(screen, "checkout_v2", "state") == "killed", "killed shown")
        assert (await store.read_stream("flag/checkout_v2"))[-1].payload["change"] == "kill"
        assert app.engine.evaluate_flag("checkout_v2", "qa-1").reason == "killed"


async def test_e_shows_the_variant_and_reason_for_a_key(setup: tuple[ConnApp, EventStore, Path]) -> None:
    app, _, _ = setup
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_flags(app, pilot, "calendar_refactor")
        await pilot.press("e")
        assert isinstance(app.screen, PromptModal)
        await type_text(pilot, "user2")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FlagsScreen), "prompt closed")
        detail = str(screen.query_one("#flags-detail", Static).render())
        assert "user2 → on (true): allowlist TARGETING_MATCH, group internal" in detail
        await pilot.press("e")
        await type_text(pilot, "user-42")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, FlagsScreen), "prompt closed")
        expected = app.engine.evaluate_flag("calendar_refactor", "user-42")
        assert expected.reason == "default"
        assert "user-42 → off (false): default" in str(screen.query_one("#flags-detail", Static).render())


async def test_changes_from_elsewhere_and_export_problems_are_shown(
    setup: tuple[ConnApp, EventStore, Path]
) -> None:
    app, store, export = setup
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_flags(app, pilot, "checkout_v2")
        other = FlagService(store=store, config=app.engine.config, clock=FakeClock(),
                            actor=Actor("bob"), export_path=export)
        await other.load()
        await other.set_percent("checkout_v2", 25, reason="from the CLI")
        await until(pilot, lambda: cell(screen, "checkout_v2", "percent") == "25%", "bob's change shown")
        assert cell(screen, "checkout_v2", "change").endswith(" ago · bob")
        export.write_text("{}")  # edited by hand
        await app.engine.check_flag_file()
        await pilot.pause()
        export_line = screen.query_one("#flags-export", Static)
        assert export_line.has_class("problem")
        assert "edited" in str(export_line.render())
        # A change still records, and the refusal to overwrite is shown, not hidden.
        await pilot.press("percent_sign")
        await type_text(pilot, "30")
        await pilot.press("enter")
        await confirm_with(pilot, app, "stage 3")
        await until(pilot, lambda: cell(screen, "checkout_v2", "percent") == "30%", "30% shown")
        assert export.read_text() == "{}"
        assert "edited outside Conn" in str(export_line.render())
