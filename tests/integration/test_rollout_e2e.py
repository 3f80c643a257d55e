"""Staged rollouts end to end on the demo fleet, with `conn agent` leading in its own process.

A bad canary is rolled back by itself (the reason in the log); a good one
advances through every stage to complete; with Prometheus down the rollout
holds and never rolls back; the leader killed with SIGKILL mid-rollback
leaves a follower that finishes it, the rollback command having run once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from console.config import ConnConfig, load_config
from console.demo.fleet import DemoFleet, FleetInfo
from console.engine.core import Engine
from console.engine.rollouts import AdvanceRollout
from console.store import EventStore, open_store
from tests.fixtures.fleet import fast_fleet_fixture, flag_file_fixture
from tests.fixtures.waiting import until

__all__ = ["fast_fleet_fixture", "flag_file_fixture"]

pytestmark = pytest.mark.slow

QUICK = """
[rollouts.checkout.on_rollback]
actions = [
  { run = ["sleep", "4"], timeout = "20s", idempotent = true },
  { run = ["sh", "-c", "echo ran >> {ran}"], timeout = "20s" },
]
"""


def quick_config(info: FleetInfo, tmp_path: Path, *, bakes: str = "1s") -> Path:
    """The demo config with short bakes and a rollback that runs two commands."""
    text = info.config_path.read_text()
    text = text.replace('bake = "15s"', f'bake = "{bakes}"').replace('bake = "20s"', f'bake = "{bakes}"')
    text += QUICK.replace("{ran}", str(tmp_path / "ran.txt"))
    path = tmp_path / "rollout.toml"
    path.write_text(text)
    return path


class Agent:
    """`conn agent` in its own process, its log collected."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "console", "agent", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))

        import threading

        threading.Thread(target=read, daemon=True).start()

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=15)


@pytest.fixture
def config_path(fast_fleet: tuple[DemoFleet, FleetInfo], tmp_path: Path) -> Path:
    return quick_config(fast_fleet[1], tmp_path)


@pytest.fixture
def config(config_path: Path) -> ConnConfig:
    return load_config(config_path)[0]


@pytest.fixture
async def store(config: ConnConfig) -> AsyncIterator[EventStore]:
    opened = await open_store(config.store)
    yield opened
    await opened.close()


@pytest.fixture
def agent(config_path: Path) -> Iterator[Agent]:
    running = Agent(config_path)
    yield running
    running.stop()


async def fault(info: FleetInfo, service: str, faults: dict[str, object]) -> None:
    async with httpx.AsyncClient() as client:
        (await client.post(f"{info.urls[service]}/_demo/faults", json=faults)).raise_for_status()


async def advance_when_ready(config_path: Path, reason: str = "next stage") -> None:
    """`conn advance` until the stage has baked and its actions are done (a captain retrying)."""
    deadline = time.monotonic() + 40
    while True:
        advanced = await asyncio.to_thread(conn, config_path, "advance", "checkout", "--reason", reason, "--yes")
        if advanced.returncode == 0:
            return
        assert time.monotonic() < deadline, advanced.stderr
        await asyncio.sleep(1)


async def types(store: EventStore) -> list[str]:
    return [e.type for e in await store.read_stream("rollout/checkout")]


def conn(config_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console", *argv, "--config", str(config_path)],
        capture_output=True, text=True, timeout=60,
    )


async def test_a_bad_canary_is_rolled_back_by_itself_and_a_good_one_completes(
    fast_fleet: tuple[DemoFleet, FleetInfo], config_path: Path, store: EventStore, agent: Agent,
    tmp_path: Path,
) -> None:
    _, info = fast_fleet
    await until(lambda: agent.saw("role: leader"), within=20, what="the agent leads")
    # A release captain starts the rollout from another process (the CLI's engine).
    async with Engine(load_config(config_path)[0], store, lead=False, follow=False) as captain:
        await captain.execute(AdvanceRollout(rollout="checkout", reason="release 1.43"))
    await until(lambda: agent.saw("carry out checkout's actions"), within=15,
                what="the leader carries out stage 1 (the flag's audience)")
    # Stage 2: 10 % of the simulated users go to the canary (stage 1 is five people).
    await advance_when_ready(config_path)
    await until(lambda: agent.saw("set checkout_v2 to 10"), within=15, what="10 % of users on the canary")
    await fault(info, "checkout-canary", {"error_rate": 0.3})
    await until(lambda: agent.saw("roll back checkout by conn-auto"), within=45,
                what="the leader rolls back by itself")
    line = next(x for x in agent.lines if "roll back checkout by conn-auto" in x)
    assert "error_rate" in line or "health_failures" in line or "p95" in line
    deadline = time.monotonic() + 30
    while "RollbackFinished" not in await types(store):
        assert time.monotonic() < deadline, await types(store)
        await asyncio.sleep(0.2)
    events = await store.read_stream("rollout/checkout")
    started = next(e for e in events if e.type == "RollbackStarted")
    assert started.actor.startswith("conn-auto@") and started.payload["automatic"] is True
    assert started.payload["criterion"] in {"error_rate > 5% for 10s", "health_failures > 3 within 30s"}
    assert (tmp_path / "ran.txt").read_text() == "ran\n"
    flag = (await store.read_stream("flag/checkout_v2"))[-1]
    assert flag.payload["change"] == "kill" and flag.actor.startswith("conn-auto@")
    watch = await asyncio.to_thread(conn, config_path, "watch", "checkout", "--until-done")
    assert watch.returncode == 1, watch.stdout + watch.stderr
    audit = await asyncio.to_thread(conn, config_path, "audit", "--stream", "rollout/checkout")
    assert "conn-auto@" in audit.stdout and "release 1.43" in audit.stdout

    # Healthy again: a new run advances through every stage to complete.
    await fault(info, "checkout-canary", {})
    await asyncio.sleep(12)  # the 10 s windows drain
    result = await asyncio.to_thread(conn, config_path, "advance", "checkout", "--reason", "run 2", "--yes")
    assert result.returncode == 0, result.stderr
    for _ in range(4):  # internal → 10 % → 50 % → 100 % → complete
        await advance_when_ready(config_path)
    assert "RolloutCompleted" in await types(store)
    percent = (await store.read_stream("flag/checkout_v2"))[-1].payload["after"]["on_weight"]
    assert percent == 10_000


async def test_prometheus_down_holds_and_never_rolls_back(
    fast_fleet: tuple[DemoFleet, FleetInfo], tmp_path: Path
) -> None:
    """A criterion whose source is down is a source error: the rollout holds, says so,
    and neither passes nor rolls back."""
    _, info = fast_fleet
    text = quick_config(info, tmp_path).read_text()
    text += '\n[sources.prometheus]\nurl = "http://127.0.0.1:9"\ninterval = "1s"\ntimeout = "1s"\n'
    text += '\n[services.checkout-canary.signals.queue_depth]\npromql = "queue_depth{service=\\"{service}\\"}"\n'
    text = text.replace('criteria = ["error_rate > 5% for 10s"', 'criteria = ["queue_depth > 100", "error_rate > 5% for 10s"')
    path = tmp_path / "prometheus-down.toml"
    path.write_text(text)
    config = load_config(path)[0]
    store = await open_store(config.store)
    try:
        async with Engine(config, store, retry_leadership=0.1) as engine:
            await until(lambda: engine.role == "leader", within=10, what="leads")
            await engine.execute(AdvanceRollout(rollout="checkout", reason="start"))
            await until(lambda: (p := engine.snapshot.rollout("checkout")) is not None
                        and p.live is not None and any(c.outcome == "source_error" for c in p.live.abort),
                        within=20, what="the down source is a source error")
            await asyncio.sleep(5)
            panel = engine.snapshot.rollout("checkout")
            assert panel is not None and panel.live is not None
            assert panel.view(engine.clock.now()).phase in ("baking", "ready")
            assert panel.live.rollback_at is None
            assert "RollbackStarted" not in await types(store)
            depth = next(c for c in panel.live.abort if c.text == "queue_depth > 100")
            assert depth.outcome == "source_error" and "Prometheus" in depth.reason
    finally:
        await store.close()


async def test_a_follower_finishes_a_rollback_the_killed_leader_started_exactly_once(
    fast_fleet: tuple[DemoFleet, FleetInfo], config_path: Path, config: ConnConfig,
    store: EventStore, agent: Agent, tmp_path: Path,
) -> None:
    await until(lambda: agent.saw("role: leader"), within=20, what="the agent leads")
    async with Engine(config, store, lead=False, follow=False) as captain:
        await captain.execute(AdvanceRollout(rollout="checkout", reason="release"))
    await asyncio.sleep(2)
    rollback = await asyncio.to_thread(conn, config_path, "rollback", "checkout", "--reason",
                                       "the captain saw errors", "--yes")
    assert rollback.returncode == 0, rollback.stderr
    # The first rollback command (sleep 4, idempotent) is running: kill the leader now.
    deadline = time.monotonic() + 20
    while not any(e.type == "ActionStarted" and e.payload["action"].endswith("action1")
                  for e in await store.read_stream("rollout/checkout")):
        assert time.monotonic() < deadline, "the leader never started the rollback's command"
        await asyncio.sleep(0.1)
    agent.process.kill()
    async with Engine(config, store, retry_leadership=0.1) as follower:
        await until(lambda: follower.role == "leader", within=10, what="the follower takes over")
        deadline = time.monotonic() + 40
        while "RollbackFinished" not in await types(store):
            assert time.monotonic() < deadline, await types(store)
            await asyncio.sleep(0.2)
    events = await store.read_stream("rollout/checkout")
    ran = [e for e in events if e.type == "ActionStarted" and e.payload["action"].endswith("action2")]
    assert len(ran) == 1, "the non-idempotent command started once"
    assert (tmp_path / "ran.txt").read_text() == "ran\n", "and ran once"
    again = [e for e in events if e.type == "ActionStarted" and e.payload["action"].endswith("action1")]
    assert [e.payload["attempt"] for e in again] == [1, 2], "the idempotent one was run again"
    assert events[-1].type == "RollbackFinished" and f"pid {agent.process.pid}" not in events[-1].actor
