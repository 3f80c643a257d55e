"""`conn agent`'s log: current states at start, then health changes, breaches and recoveries."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from console.demo.fleet import DemoFleet, FleetInfo
from tests.fixtures.fleet import demo_fleet_fixture, flag_file_fixture
from tests.fixtures.waiting import until

__all__ = ["demo_fleet_fixture", "flag_file_fixture"]

pytestmark = pytest.mark.slow


class Agent:
    """`conn agent` in its own process, its log lines collected as they come."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "console", "agent", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)


async def test_the_agent_logs_breaches_and_only_current_states(
    demo_fleet: tuple[DemoFleet, FleetInfo],
) -> None:
    _, info = demo_fleet
    first = Agent(info.config_path)
    try:
        await until(lambda: first.saw("payments is up"), within=30, what="the first state is logged")
        async with httpx.AsyncClient() as client:
            (await client.post(f"{info.urls['payments']}/_demo/faults",
                               json={"health": "down"})).raise_for_status()
            await until(lambda: first.saw("payments is now down"), within=10, what="down is logged")
            (await client.post(f"{info.urls['payments']}/_demo/faults",
                               json={"latency_ms": 1500})).raise_for_status()
            await until(lambda: first.saw("payments: p95 critical"), within=20,
                        what="the breach is logged with its threshold")
            breach = next(line for line in first.lines if "payments: p95 critical" in line)
            assert "> 1.00 s" in breach and "WARNING" in breach
            (await client.post(f"{info.urls['payments']}/_demo/faults",
                               json={"health": "down"})).raise_for_status()
            await until(lambda: sum("payments is now down" in x for x in first.lines) == 2,
                        within=10, what="the last state this agent saw: down")
    finally:
        first.stop()
    # The next agent starts after a pause: the old rows are stale, and what they last
    # said (payments down) is not logged as if it were happening now; payments (up
    # again) is logged as its own probes find it.
    async with httpx.AsyncClient() as client:
        (await client.post(f"{info.urls['payments']}/_demo/faults", json={})).raise_for_status()
    await asyncio.sleep(6)  # past three intervals and a timeout: the old rows are stale
    second = Agent(info.config_path)
    try:
        await until(lambda: second.saw("payments is up"), within=20, what="payments' current state")
        payments = [line for line in second.lines if "payments" in line]
        assert "payments is up" in payments[0], payments
        assert not second.saw("is down") and not second.saw("is now down")
    finally:
        second.stop()
