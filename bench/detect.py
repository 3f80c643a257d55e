"""How fast a bad canary is rolled back: fault injected → first rollback action started.

    .venv/bin/python bench/detect.py [RUNS]

For probe intervals of 1 s and 5 s, RUNS times each (default 20): a demo
fleet (1 s traffic window), an engine leading it with the demo's checkout
rollout in its 10 % stage and one abort rule, ``error_rate > 5% for 5s``
(the service's own errors from its health JSON), then 30 % errors injected
into the canary. Measured: from the injection to the ``ActionStarted``
event of the rollback's first action, minus the rule's own 5 s. Prints p50
and max; asserts nothing. Not part of the test run.

Peers, from their documentation: Flagger's canary analysis runs every
``interval`` (1m in its examples) and rolls back after ``threshold`` failed
checks (5 in its examples: ~5–10 min to a rollback); Argo Rollouts'
AnalysisRun samples every ``interval`` (its examples: 5m) with a
``failureLimit``, so a failing canary is aborted after minutes.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from console.config import load_config
from console.demo.fleet import DemoFleet
from console.engine.core import Engine
from console.engine.rollouts import AdvanceRollout
from console.errors import CommandError
from console.store import open_store

FOR = 5.0


async def advance_when_ready(engine: Engine) -> None:
    """Advance to 10 % as soon as the leader has set the flag for the first stage."""
    deadline = time.monotonic() + 30
    while True:
        try:
            await engine.execute(AdvanceRollout(rollout="checkout", reason="bench: 10%",
                                                override="bench: the gate is not under test"))
            return
        except CommandError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def one_run(interval: str, seed: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        fleet = DemoFleet(Path(tmp) / "state", flag_file=Path(tmp) / "state" / "flags.json",
                          window_s=1.0, seed=seed)
        info = fleet.start()
        try:
            text = info.config_path.read_text()
            text = text.replace('interval = "1s"', f'interval = "{interval}"')
            text = text.replace('bake = "15s"', 'bake = "0s"').replace('bake = "20s"', 'bake = "0s"')
            text = text.replace('grace = "5s"', 'grace = "0s"')
            text = text.replace(
                'criteria = ["error_rate > 5% for 10s", "health_failures > 3 within 30s", "p95 > 1000ms for 10s"]',
                f'criteria = ["error_rate > 5% for {FOR:g}s"]')
            path = Path(tmp) / "detect.toml"
            path.write_text(text)
            config = load_config(path)[0]
            store = await open_store(config.store)
            try:
                async with Engine(config, store, retry_leadership=0.1) as engine:
                    await engine.execute(AdvanceRollout(rollout="checkout", reason="bench"))
                    await advance_when_ready(engine)
                    await asyncio.sleep(3 * float(interval.rstrip("s")))  # healthy windows first
                    async with httpx.AsyncClient() as client:
                        injected = time.time()
                        await client.post(f"{info.urls['checkout-canary']}/_demo/faults",
                                          json={"error_rate": 0.3})
                    deadline = time.monotonic() + 120
                    while True:
                        events = await store.read_stream("rollout/checkout")
                        started = [e for e in events if e.type == "ActionStarted"
                                   and "/rollback/" in str(e.payload.get("action"))]
                        if started:
                            return started[0].time - injected - FOR
                        if time.monotonic() > deadline:
                            raise RuntimeError("no rollback within 120 s")
                        await asyncio.sleep(0.05)
            finally:
                await store.close()
        finally:
            fleet.stop()


async def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    logging.disable(logging.WARNING)
    for interval in ("1s", "5s"):
        beyond = [await one_run(interval, seed) for seed in range(runs)]
        print(f"probe interval {interval}: fault → rollback action started, beyond the rule's "
              f"{FOR:g}s: p50 {statistics.median(beyond):.2f}s, max {max(beyond):.2f}s ({runs} runs)")


if __name__ == "__main__":
    asyncio.run(main())
