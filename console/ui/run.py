"""Starting the console: open the store, start the engine, run the app, close it all."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from console.config import ConnConfig, load_config
from console.engine.core import Engine
from console.engine.session import open_configured_store
from console.ui.app import ConnApp


async def _run(
    config: ConnConfig, demo_urls: dict[str, str] | None = None, *, read_only: bool = False
) -> int:
    # The demo owns its store: it brings an older one up to date by itself.
    store = await open_configured_store(config, migrate=demo_urls is not None)
    try:
        # Started before the app, so a store that cannot be read is a clear error
        # message from `conn`, not a traceback from inside the UI.
        async with Engine(config, store, read_only=read_only) as engine:
            await ConnApp(engine, demo_urls=demo_urls).run_async()
    finally:
        await store.close()
    return 0


def _quiet_logging() -> None:
    # The screen is the UI; log lines would scribble over it.
    logging.getLogger().handlers.clear()
    logging.getLogger().addHandler(logging.NullHandler())


def run_console(config: ConnConfig, path: Path, *, read_only: bool = False) -> int:
    """`conn`: the console on the configured environment (``read_only``: changes refused)."""
    _quiet_logging()
    return asyncio.run(_run(config, read_only=read_only))


def run_demo(state_dir: Path) -> int:
    """`conn demo`: start the demo fleet, then the console watching it."""
    from console.demo.fleet import DemoFleet

    state_dir.mkdir(parents=True, exist_ok=True)
    fleet = DemoFleet(state_dir, flag_file=state_dir / "flags.json")
    info = fleet.start()
    try:
        config, _ = load_config(info.config_path)
        _quiet_logging()
        return asyncio.run(_run(config, demo_urls=dict(info.urls)))
    finally:
        fleet.stop()
