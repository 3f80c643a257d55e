"""What the console looks like, at 80x24, 120x40 and 200x60, with fixed data and a frozen clock.

The frozen fleet has one service in each trouble (payments down, the canary
critical, checkout at warning, search ok), so the dashboard shows the table
worst first, the header's summary and the worst-signal column.
"""

from __future__ import annotations

from typing import Any

import pytest

from console.ui.app import ConnApp
from tests.fixtures.frozen import frozen_app_fixture, with_demo_faults

__all__ = ["frozen_app_fixture"]


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
def test_dashboard(snap_compare: Any, frozen_app: ConnApp, size: tuple[int, int]) -> None:
    assert snap_compare(frozen_app, terminal_size=size, run_before=_settle)


def test_canary_with_the_demo_fault_banner_keeps_its_header(snap_compare: Any, frozen_app: ConnApp) -> None:
    """80x24 in `conn demo` with faults in two services: the banner lists both, the
    canary's comparison keeps its column header (the activity gives up lines first)."""
    faults = {"checkout-canary": {"latency_ms": 900}, "payments": {"health": "down", "error_rate": 0.2}}
    with with_demo_faults(frozen_app, faults) as app:
        assert snap_compare(app, terminal_size=(80, 24), press=["down"], run_before=_settle)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_dashboard_canary_selected(snap_compare: Any, frozen_app: ConnApp, size: tuple[int, int]) -> None:
    assert snap_compare(frozen_app, terminal_size=size, press=["down"], run_before=_settle)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_flags_screen(snap_compare: Any, frozen_app: ConnApp, size: tuple[int, int]) -> None:
    assert snap_compare(frozen_app, terminal_size=size, press=["f"], run_before=_settle)


def test_kill_switch_dialog(snap_compare: Any, frozen_app: ConnApp) -> None:
    """The destructive dialog: type the flag's name, give a reason."""
    assert snap_compare(frozen_app, terminal_size=(80, 24), press=["f", "k"], run_before=_settle)


def test_percentage_prompt(snap_compare: Any, frozen_app: ConnApp) -> None:
    assert snap_compare(frozen_app, terminal_size=(80, 24), press=["f", "percent_sign"], run_before=_settle)


def test_help(snap_compare: Any, frozen_app: ConnApp) -> None:
    assert snap_compare(frozen_app, terminal_size=(80, 24), press=["question_mark"], run_before=_settle)


async def _settle(pilot: Any) -> None:
    # Let the follower engine read the live rows and the screen render them.
    await pilot.pause(0.3)
