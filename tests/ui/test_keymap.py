"""The config's [keymap] rebinds keys by binding id (Textual's keymap)."""

from __future__ import annotations

from console.ui.app import ConnApp
from console.ui.screens.flags import FlagsScreen
from tests.fixtures.frozen import frozen_app_fixture

__all__ = ["frozen_app_fixture"]


async def test_a_rebound_key_opens_flags_and_the_old_one_does_not(frozen_app: ConnApp) -> None:
    app = ConnApp(frozen_app.engine, clock=frozen_app.clock, ticking=False, keymap={"app-flags": "g"})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("f")
        assert not isinstance(app.screen, FlagsScreen)
        await pilot.press("g")
        assert isinstance(app.screen, FlagsScreen)
