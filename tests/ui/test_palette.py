"""The command palette (ctrl+p) carries Conn's own commands."""

from __future__ import annotations

from textual.screen import Screen

from console.ui.app import ConnApp
from console.ui.screens.dashboard import DashboardScreen
from console.ui.screens.flags import FlagsScreen
from console.ui.widgets.service_detail import ServiceDetail
from console.ui.widgets.service_table import ServiceTable
from tests.fixtures.frozen import frozen_app_fixture

__all__ = ["frozen_app_fixture"]


async def test_palette_opens_flags_and_selects_a_service(frozen_app: ConnApp) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        titles = [c.title for c in frozen_app.get_system_commands(frozen_app.screen)]
        assert "Feature flags" in titles
        assert "Service: payments" in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        for key in "payments":
            await pilot.press(key)
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert frozen_app.screen.query_one(ServiceTable).selected == "payments"
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        for key in "flags":
            await pilot.press(key)
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.2)
        screen: Screen[None] = frozen_app.screen
        assert isinstance(screen, FlagsScreen)


async def test_choosing_a_service_from_the_flags_screen_goes_back_to_the_dashboard(
    frozen_app: ConnApp,
) -> None:
    async with frozen_app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("f")
        assert isinstance(frozen_app.screen, FlagsScreen)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        for key in "search":
            await pilot.press(key)
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(frozen_app.screen, DashboardScreen)
        table = frozen_app.screen.query_one(ServiceTable)
        assert table.selected == "search"
        assert table.has_focus
        detail = frozen_app.screen.query_one(ServiceDetail)
        assert detail.view is not None and detail.view.name == "search"
