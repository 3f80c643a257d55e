"""What the signal panels look like, at 80x24 and 120x40, with fixed data and a frozen clock.

The detail gets the rows the dashboard gives it (12 at 80x24 under the
services table, 28 at 120x40); no engine, no timers. Read the HTML report
before ``--snapshot-update``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.panels import DetailApp, scenarios

ROWS = {(80, 24): 12, (120, 40): 28}
"""Rows of the detail area per terminal size, as in the dashboard."""


def _app(name: str, size: tuple[int, int]) -> DetailApp:
    shown, baseline = scenarios()[name]
    return DetailApp(shown, baseline=baseline, height=ROWS[size])


@pytest.mark.parametrize("size", list(ROWS), ids=["80x24", "120x40"])
@pytest.mark.parametrize("state", ["up", "stale", "source_down", "canary"])
def test_panels(snap_compare: Any, state: str, size: tuple[int, int]) -> None:
    assert snap_compare(_app(state, size), terminal_size=size)


def test_hostile_text_is_shown_literally(snap_compare: Any) -> None:
    assert snap_compare(_app("hostile", (80, 24)), terminal_size=(80, 24))


def test_no_value_yet(snap_compare: Any) -> None:
    assert snap_compare(_app("unknown", (80, 24)), terminal_size=(80, 24))
