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
ALLOWLIST = 1_000

CONFIG = f"""
[flags.groups]
internal = [{", ".join(f'"staff-{i}"' for i in range(ALLOWLIST))}]

[flags.define.checkout_v2]
percent = 10
groups = ["internal"]
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(f'store = "sqlite:///{tmp}/conn.db"\n' + CONFIG)
        store = await open_store(config.store)
        flags = FlagService(store=store, config=config, clock=SystemClock(), actor=Actor("bench"),
                            export_path=Path(tmp) / "flags.json")
        await flags.load()
        flags.evaluate("checkout_v2", "warm-up")
        start = time.perf_counter()
        for i in range(EVALUATIONS):
            flags.evaluate("checkout_v2", f"user-{i}")
        elapsed = time.perf_counter() - start
        print(f"evaluate: {EVALUATIONS / elapsed:,.0f} evaluations/s "
              f"(openfeature-flagd-core, {ALLOWLIST}-key group + 10% fractional)")
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
