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
from console.engine.core import Engine
from console.engine.flags import SeedFlags, SetFlagPercent
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
        async with Engine(config, store, clock=SystemClock(), actor=Actor("bench"), lead=False,
                          follow=False, flag_file=Path(tmp) / f"flags-{group_size}.json") as engine:
            await engine.execute(SeedFlags(), actor=engine.auto_actor)
            engine.evaluate_flag("checkout_v2", "warm-up")
            start = time.perf_counter()
            for i in range(EVALUATIONS):
                engine.evaluate_flag("checkout_v2", f"user-{i}")
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
        flag_file = Path(tmp) / "flags.json"
        async with Engine(config, store, clock=SystemClock(), actor=Actor("bench"), lead=False,
                          follow=False, flag_file=flag_file) as engine:
            await engine.execute(SeedFlags(), actor=engine.auto_actor)
            start = time.perf_counter()
            for i in range(CHANGES):
                await engine.execute(
                    SetFlagPercent(flag="checkout_v2", percent=10 + (i % 2), reason="bench"))
            elapsed = time.perf_counter() - start
        print(f"change: {elapsed / CHANGES * 1000:.1f} ms per change (command: append + re-read + atomic export)")
        start = time.perf_counter()
        async with Engine(config, store, clock=SystemClock(), lead=False, follow=False,
                          sync_flag_file=False, flag_file=flag_file):
            print(f"load: {(time.perf_counter() - start) * 1000:.1f} ms to fold {CHANGES + 2} events")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
