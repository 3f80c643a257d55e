"""What the rollout panel looks like in each state, at 80x24 and 120x40, and its dialogs.

The frozen console (fixed data, frozen clock, a follower engine over SQLite)
with the checkout rollout baking with a passing gate, baked with a failing gate,
held, counting down to an automatic rollback, rolled back, and complete
(:func:`tests.fixtures.frozen.frozen_rollout_app`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from console.ui.app import ConnApp
from console.ui.modals.confirm import ConfirmModal
from console.ui.screens.rollout_why import WhyScreen
from console.ui.widgets.sparkline import SparkText
from tests.fixtures.frozen import ROLLOUT_STATES, frozen_rollout_app
from tests.fixtures.pilot import until


@pytest.fixture
def rollout_app(request: pytest.FixtureRequest) -> Iterator[ConnApp]:
    yield from frozen_rollout_app(request.param)


async def _settle(pilot: Any) -> None:
    # Let the follower engine read the live rows and the screen render them.
    await pilot.pause(0.3)


def _pressing(*keys: str, until_shown: Callable[[ConnApp], bool]) -> Callable[[Any], Awaitable[None]]:
    """Settle, press ``keys``, and wait for what they open (dialogs that ask the engine first)."""

    async def run(pilot: Any) -> None:
        await _settle(pilot)
        await pilot.press(*keys)
        await until(pilot, lambda: until_shown(pilot.app), f"what {keys} opens")
        await pilot.pause(0.2)

    return run


@pytest.mark.parametrize("rollout_app", ROLLOUT_STATES, indirect=True)
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_rollout_panel(snap_compare: Any, rollout_app: ConnApp, size: tuple[int, int]) -> None:
    assert snap_compare(rollout_app, terminal_size=size, run_before=_settle)


def _sparkline_drawn(app: ConnApp) -> bool:
    return isinstance(app.screen, WhyScreen) and bool(app.screen.query_one("#why-canary", SparkText).line)


@pytest.mark.parametrize("rollout_app", ["countdown"], indirect=True)
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_why_view(snap_compare: Any, rollout_app: ConnApp, size: tuple[int, int]) -> None:
    """`enter` on the criterion counting down: its source, 15 minutes of it, the rule, the evidence."""
    run = _pressing("tab", "enter", until_shown=_sparkline_drawn)
    assert snap_compare(rollout_app, terminal_size=size, run_before=run)


@pytest.mark.parametrize("rollout_app", ["ready_failing"], indirect=True)
def test_override_dialog(snap_compare: Any, rollout_app: ConnApp) -> None:
    """`a` over a failing gate: the dialog says why it fails and asks for the override's reason."""
    run = _pressing("a", until_shown=lambda app: isinstance(app.screen, ConfirmModal))
    assert snap_compare(rollout_app, terminal_size=(80, 24), run_before=run)


@pytest.mark.parametrize("rollout_app", ["countdown"], indirect=True)
def test_rollback_dialog(snap_compare: Any, rollout_app: ConnApp) -> None:
    """`R`: type the rollout's name and a reason; Cancel has the focus."""
    run = _pressing("R", until_shown=lambda app: isinstance(app.screen, ConfirmModal))
    assert snap_compare(rollout_app, terminal_size=(80, 24), run_before=run)
