"""How fast flags are where it matters: evaluations, a change (append + export), a fold.

    .venv/bin/python bench/flags.py

Prints figures; asserts nothing. Not part of the test run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from console.config import parse_config
from console.engine.flags import FlagService
from console.model.clock import SystemClock
from console.model.events import Actor
from console.store import open_store

EVALUATIONS = 50_000
CHANGES = 100
GROUP_SIZES = (3, 1_000)
"""A small internal team and a large beta group: flagd walks the key list on each evaluation."""


def config_text(group_size: int) -> str:
    keys = ", ".join(f'"staff-{i}"' for i in range(group_size))
    return f"""
[flags.groups]
internal = [{keys}]

[flags.define.checkout_v2]
percent = 10
groups = ["internal"]
"""


async def evaluations_per_second(group_size: int, tmp: str) -> float:
    config = parse_config(f'store = "sqlite:///{tmp}/eval-{group_size}.db"\n' + config_text(group_size))
    store = await open_store(config.store)
    try:
        flags = FlagService(store=store, config=config, clock=SystemClock(), actor=Actor("bench"),
                            export_path=Path(tmp) / f"flags-{group_size}.json")
        await flags.load()
        flags.evaluate("checkout_v2", "warm-up")
        start = time.perf_counter()
        for i in range(EVALUATIONS):
            flags.evaluate("checkout_v2", f"user-{i}")
        return EVALUATIONS / (time.perf_counter() - start)
    finally:
        await store.close()


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for size in GROUP_SIZES:
            rate = await evaluations_per_second(size, tmp)
            print(f"evaluate: {rate:,.0f} evaluations/s "
                  f"(openfeature-flagd-core, {size}-key group + 10% fractional)")
        config = parse_config(f'store = "sqlite:///{tmp}/conn.db"\n' + config_text(GROUP_SIZES[-1]))
        store = await open_store(config.store)
        flags = FlagService(store=store, config=config, clock=SystemClock(), actor=Actor("bench"),
                            export_path=Path(tmp) / "flags.json")
        await flags.load()
        start = time.perf_counter()
        for i in range(CHANGES):
            await flags.set_percent("checkout_v2", 10 + (i % 2), reason="bench")
        elapsed = time.perf_counter() - start
        print(f"change: {elapsed / CHANGES * 1000:.1f} ms per change (append + re-read + atomic export)")
        start = time.perf_counter()
        again = FlagService(store=store, config=config, clock=SystemClock(), actor=Actor("bench"),
                            export_path=Path(tmp) / "flags.json")
        await again.load(export=False)
        print(f"load: {(time.perf_counter() - start) * 1000:.1f} ms to fold {CHANGES + 2} events")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
