"""If the worker that brings snapshots to the screen dies, the screen says so."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest

from console.config import parse_config
from console.engine.core import Engine
from console.engine.snapshot import Snapshot
from console.model.clock import FakeClock
from console.store import EventStore, open_store
from console.ui.app import ConnApp
from tests.fixtures.pilot import until


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'conn.db'}")
    yield opened
    await opened.close()


async def test_a_dead_snapshot_pump_is_shown_on_screen(store: EventStore, tmp_path: Path) -> None:
    """Bug: if the UI's snapshot pump died the console froze silently, looking calm."""
    config = parse_config(
        f'store = "{store.url}"\n[services.api]\nhealth_url = "http://127.0.0.1:9/h"\n'
    )
    engine = Engine(config, store, clock=FakeClock(), lead=False, flag_file=tmp_path / "f.json")

    async def dying() -> AsyncGenerator[Snapshot, None]:
        yield engine.snapshot
        raise RuntimeError("the engine went away")

    engine.snapshots = dying  # type: ignore[method-assign]
    app = ConnApp(engine, clock=FakeClock(), ticking=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.pump_failure is not None, "the failure is recorded")
        await pilot.pause()
        text = html.unescape(re.sub(r"<[^>]+>", "", app.export_screenshot())).replace("\xa0", " ")
        assert "stopped receiving updates" in text, text
        assert app.snapshot is not None and "RuntimeError" in (app.snapshot.problem or "")
