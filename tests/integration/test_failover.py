"""A change of leader mid-breach: windows and `for` timers continue from the signal history.

`conn agent` leads the demo fleet; a latency fault pushes payments' p95 past
its critical level, whose `for = "30s"` has not run out yet; the agent is
killed with SIGKILL. The console that takes over must show the same breach
start and the same 1m p95 (within one interval), and turn critical when the
old leader would have — not 30 s after it took over.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.config import load_config
from console.demo.fleet import DemoFleet, FleetInfo
from console.engine.core import Engine
from console.engine.history import HistoryPoint
from console.model.live import ServiceLive
from console.store import open_store
from tests.fixtures.fleet import demo_fleet_fixture, flag_file_fixture
from tests.fixtures.waiting import until

__all__ = ["demo_fleet_fixture", "flag_file_fixture"]

pytestmark = pytest.mark.slow

FOR = 30.0


@pytest.fixture
def breach_config(demo_fleet: tuple[DemoFleet, FleetInfo], tmp_path: Path) -> Path:
    """The demo config with payments' p95 critical only after 30 s past 1000 ms."""
    text = demo_fleet[1].config_path.read_text()
    text += (
        "\n[services.payments.thresholds.p95]\n"
        f'warning = 500.0\ncritical = 1000.0\nfor = "{FOR:g}s"\n'
    )
    path = tmp_path / "breach.toml"
    path.write_text(text)
    return path


@pytest.fixture
def agent(breach_config: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "console", "agent", "--config", str(breach_config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    assert process.stdout is not None
    process.stdout.close()


def p95(live: ServiceLive) -> Any:
    signal = live.signal("p95")
    assert signal is not None
    return signal


async def test_the_new_leader_continues_the_breach_from_the_history(
    demo_fleet: tuple[DemoFleet, FleetInfo], breach_config: Path, agent: subprocess.Popen[str]
) -> None:
    config = load_config(breach_config)[0]
    store = await open_store(config.store)
    try:
        async def payments() -> ServiceLive | None:
            row = (await store.read_live()).get("payments")
            if row is None or f"pid {agent.pid}" not in row.writer:
                return None
            return ServiceLive.model_validate(row.data)

        deadline = time.monotonic() + 20
        while (await payments()) is None:
            assert time.monotonic() < deadline, "the agent never wrote payments' live row"
            await asyncio.sleep(0.2)
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{demo_fleet[1].urls['payments']}/_demo/faults",
                                         json={"latency_ms": 1500})
            response.raise_for_status()
        # Wait until the breach has started but its 30 s have not run out.
        before: ServiceLive | None = None
        deadline = time.monotonic() + 30
        while True:
            before = await payments()
            threshold = p95(before).threshold if before else None
            if threshold is not None and threshold.past == "critical":
                break
            assert time.monotonic() < deadline, "p95 never went past its critical level"
            await asyncio.sleep(0.2)
        assert before is not None
        breach_since = p95(before).threshold.past_since
        assert breach_since is not None
        assert p95(before).state != "critical", "still inside its 30 s"
        await asyncio.sleep(4)  # a few history ticks into the breach
        last = await payments()
        assert last is not None

        engine = Engine(config, store, retry_leadership=0.1)
        async with engine:
            await asyncio.sleep(0.5)
            assert engine.role == "follower"
            agent.kill()  # SIGKILL: no goodbye, the OS releases the lock
            killed = time.monotonic()
            await until(lambda: engine.role == "leader", within=10, what="the console takes over")

            def mine() -> ServiceLive | None:
                view = engine.snapshot.service("payments")
                return view.live if view and view.writer == engine.label else None

            await until(lambda: mine() is not None, within=5, what="the new leader writes payments")
            after = mine()
            assert after is not None
            took = time.monotonic() - killed
            signal = p95(after)
            assert signal.threshold is not None
            assert signal.threshold.past == "critical"
            assert signal.threshold.past_since == breach_since, "the breach's start is unchanged"
            old_p95 = last.latency["1m"].p95
            new_p95 = after.latency["1m"].p95
            assert old_p95 is not None and new_p95 is not None
            assert abs(new_p95 - old_p95) / old_p95 < 0.1, (old_p95, new_p95)
            assert after.latency["1m"].count >= last.latency["1m"].count - 2, "the window was rebuilt"
            # Critical when the old leader would have turned it: breach start + 30 s.
            await until(lambda: (m := mine()) is not None and p95(m).state == "critical",
                        within=FOR + 10, what="critical after the rule's 30 s")
            turned = engine.clock.now()
            # Views read the same history: the breach is in it, old leader's slices and new
            # (written once a tick, so the critical state reaches it within one).
            points: list[HistoryPoint] = []

            async def recorded() -> bool:
                nonlocal points
                points = await engine.history("payments", "p95", since=breach_since - 30)
                return any(p.state == "critical" for p in points[-2:])

            await until(recorded, within=engine.recorder.tick + 1, what="the history records critical")
            assert len(points) >= 4
            assert max(p.value or 0 for p in points) > 1000
            assert turned - breach_since < FOR + 2 * config.services["payments"].interval + 2.5, (
                "critical ran from the old breach start, not from the takeover"
            )
        print(f"takeover with restored windows after {took:.2f}s; "
              f"critical at breach + {turned - breach_since:.1f}s (for = {FOR:g}s)")
    finally:
        await store.close()
