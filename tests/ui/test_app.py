"""The console driven by the keyboard alone, at 80x24, on the real demo fleet."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from textual.widgets import OptionList, Static

from console.config import load_config
from console.demo.fleet import DemoFleet, FleetInfo
from console.engine.core import Engine
from console.store import open_store
from console.ui.app import ConnApp
from console.ui.modals.fault import FaultModal
from console.ui.screens.help import HelpScreen
from console.ui.widgets.service_table import ServiceTable
from tests.fixtures.fleet import demo_fleet_fixture, flag_file_fixture
from tests.fixtures.pilot import until

__all__ = ["demo_fleet_fixture", "flag_file_fixture"]

pytestmark = pytest.mark.slow


@pytest.fixture
async def demo_app(demo_fleet: tuple[DemoFleet, FleetInfo]) -> AsyncIterator[ConnApp]:
    _, info = demo_fleet
    config, _ = load_config(info.config_path)
    store = await open_store(config.store)
    yield ConnApp(Engine(config, store), demo_urls=dict(info.urls))
    await store.close()


def screen_text(app: ConnApp) -> str:
    """The characters on screen (the screenshot's text, without SVG markup)."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def health_of(app: ConnApp, name: str) -> str:
    table = app.screen.query_one(ServiceTable)
    return str(table.get_cell(name, "health"))


def rows_up(app: ConnApp) -> bool:
    table = app.screen.query(ServiceTable)
    if not table or table.first().row_count < 4:
        return False
    return all("up" in health_of(app, n) for n in ("checkout", "checkout-canary", "payments", "search"))


async def test_demo_console_shows_every_service_live(demo_app: ConnApp) -> None:
    async with demo_app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: rows_up(demo_app), "four services up", within=10)
        assert demo_app.engine.role == "leader"
        shown = screen_text(demo_app)
        for name in ("checkout", "checkout-canary", "payments", "search", "LEADER"):
            assert name in shown
        await pilot.press("q")
    assert demo_app.return_code == 0


async def test_fault_keys_take_a_service_down_and_bring_it_back(demo_app: ConnApp) -> None:
    async with demo_app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: rows_up(demo_app), "four services up", within=10)
        await pilot.press("down", "down")
        assert demo_app.screen.query_one(ServiceTable).selected == "payments"
        await pilot.press("x")
        assert isinstance(demo_app.screen, FaultModal)
        options = demo_app.screen.query_one(OptionList)
        down = next(i for i in range(options.option_count) if options.get_option_at_index(i).id == "down")
        for _ in range(down):
            await pilot.press("down")
        await pilot.press("enter")
        await until(pilot, lambda: "down" in health_of(demo_app, "payments"), "payments down", within=5)
        assert "up" in health_of(demo_app, "search"), "other services keep their state"
        await pilot.press("c")
        await until(pilot, lambda: "up" in health_of(demo_app, "payments"), "payments back up", within=5)


async def test_help_opens_and_closes_from_the_keyboard(demo_app: ConnApp) -> None:
    async with demo_app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(demo_app.screen, HelpScreen)
        assert "Conn keys" in screen_text(demo_app)
        await pilot.press("escape")
        assert not isinstance(demo_app.screen, HelpScreen)
        await pilot.press("escape")  # escape on the dashboard does nothing harmful
        await pilot.press("q")
    assert demo_app.return_code == 0


async def test_fault_modal_cancels_without_changing_anything(demo_app: ConnApp) -> None:
    async with demo_app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: rows_up(demo_app), "four services up", within=10)
        await pilot.press("x", "escape")
        assert not isinstance(demo_app.screen, FaultModal)
        await asyncio.sleep(2.5)
        assert "up" in health_of(demo_app, "checkout")


async def test_faults_are_named_in_words_and_shown_while_they_last(
    demo_app: ConnApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    toasts: list[str] = []
    original = demo_app.notify

    def recording(message: str, **kw: Any) -> None:
        toasts.append(message)
        original(message, **kw)

    monkeypatch.setattr(demo_app, "notify", recording)

    async def inject(option: str) -> None:
        await pilot.press("x")
        assert isinstance(demo_app.screen, FaultModal)
        options = demo_app.screen.query_one(OptionList)
        labels = {options.get_option_at_index(i).id: i for i in range(options.option_count)}
        assert str(options.get_option_at_index(labels["errors"]).prompt) == "5xx in its traffic: 20%"
        for _ in range(labels[option]):
            await pilot.press("down")
        await pilot.press("enter")

    async with demo_app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: rows_up(demo_app), "four services up", within=10)
        line = demo_app.screen.query_one("#faults", Static)
        await pilot.press("down", "down")
        assert not line.display, "nothing injected, nothing shown"
        await inject("errors")
        await until(pilot, lambda: "payments: 5xx in its traffic 20%" in toasts, "the toast", within=5)
        await inject("down")
        await until(pilot, lambda: "payments: 5xx in its traffic 20%, health down" in toasts,
                    "both faults, in words", within=5)  # fmt: skip
        assert not [t for t in toasts if "{" in t], "no Python dict on screen"
        assert line.display
        assert str(line.render()) == (
            "⚡ demo faults — payments: 5xx in its traffic 20%, health down (c clears the selected service)"
        )
        # payments is critical now, so it leads the table and the cursor went with it.
        assert demo_app.screen.query_one(ServiceTable).selected == "payments"
        await pilot.press("down")  # another service: every service's faults stay in the line
        assert demo_app.screen.query_one(ServiceTable).selected != "payments"
        assert line.display and "payments: 5xx" in str(line.render())
        # Back to payments (other rows may have moved meanwhile: the canary's cache hit hovers
        # at its warning level), then clear it.
        for _ in range(4):
            if demo_app.screen.query_one(ServiceTable).selected == "payments":
                break
            await pilot.press("up")
        assert demo_app.screen.query_one(ServiceTable).selected == "payments"
        await pilot.press("c")
        await until(pilot, lambda: "payments: faults cleared" in toasts, "cleared", within=5)
        assert not line.display
