"""The engine against real things: the demo fleet over HTTP, a SQLite store, OS processes.

Leadership is tested across processes (`conn agent` killed with SIGKILL) because
that is how it fails in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from console.config import ConnConfig, load_config
from console.demo.fleet import DemoFleet, FleetInfo
from console.engine.core import Engine
from console.engine.snapshot import Snapshot
from console.engine.status import status_document
from console.model.clock import FakeClock
from console.model.events import Actor, NewEvent
from console.model.live import ServiceLive, SignalValue, stale_after
from console.store import open_store
from console.store.base import EventStore
from tests.fixtures.fleet import demo_fleet_fixture, fast_fleet_fixture, flag_file_fixture
from tests.fixtures.waiting import until

__all__ = ["demo_fleet_fixture", "fast_fleet_fixture", "flag_file_fixture"]

pytestmark = pytest.mark.slow


@pytest.fixture
def config(demo_fleet: tuple[DemoFleet, FleetInfo]) -> ConnConfig:
    return load_config(demo_fleet[1].config_path)[0]


@pytest.fixture
async def store(config: ConnConfig) -> AsyncIterator[EventStore]:
    opened = await open_store(config.store)
    yield opened
    await opened.close()


def all_up(snapshot: Snapshot) -> bool:
    return all(v.live is not None and v.live.health == "up" for v in snapshot.services)


async def test_leader_probes_the_fleet_and_writes_the_live_table(
    config: ConnConfig, store: EventStore
) -> None:
    async with Engine(config, store) as engine:
        await until(lambda: engine.role == "leader", within=5, what="the only engine leads")
        await until(lambda: all_up(engine.snapshot), within=10, what="every demo service is up")
        rows = await store.read_live()
    rollouts = {f"rollout/{name}" for name in config.rollouts}
    assert set(rows) == set(config.services) | rollouts, "a row per service, and per rollout"
    rows = {name: row for name, row in rows.items() if name not in rollouts}
    assert all(row.writer == engine.label for row in rows.values())
    assert all(row.data["health"] == "up" for row in rows.values())


async def test_one_leader_per_store_and_the_follower_renders_its_rows(
    config: ConnConfig, store: EventStore
) -> None:
    second_store = await open_store(config.store)
    try:
        async with Engine(config, store) as first, Engine(config, second_store) as second:
            await until(lambda: "leader" in (first.role, second.role), within=5, what="someone leads")
            await asyncio.sleep(1.5)  # several leadership rounds: nobody else may take it
            roles = sorted([first.role, second.role])
            assert roles == ["follower", "leader"]
            follower = first if first.role == "follower" else second
            leader = second if follower is first else first
            await until(lambda: all_up(follower.snapshot), within=10, what="the follower sees the leader's values")
            assert follower.snapshot.leader == leader.label
            assert follower.snapshot.role == "follower"
    finally:
        await second_store.close()


@pytest.fixture
def agent(demo_fleet: tuple[DemoFleet, FleetInfo]) -> Iterator[subprocess.Popen[str]]:
    """`conn agent` on the demo config, in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "console", "agent", "--config", str(demo_fleet[1].config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    assert process.stdout is not None
    process.stdout.close()


async def agent_is_writing(store: EventStore, pid: int, timeout: float = 15) -> None:
    async def written() -> bool:
        rows = await store.read_live()
        return bool(rows) and all(f"pid {pid}" in row.writer for row in rows.values())

    deadline = time.monotonic() + timeout
    while not await written():
        assert time.monotonic() < deadline, "the agent never wrote the live table"
        await asyncio.sleep(0.1)


async def test_follower_takes_over_within_seconds_when_the_leader_is_killed(
    config: ConnConfig, store: EventStore, agent: subprocess.Popen[str]
) -> None:
    await agent_is_writing(store, agent.pid)
    async with Engine(config, store) as engine:
        await asyncio.sleep(1.5)
        assert engine.role == "follower"
        agent.send_signal(signal.SIGKILL)
        took = await until(lambda: engine.role == "leader", within=5, what="the follower takes over")
        await until(lambda: all_up(engine.snapshot), within=10, what="the new leader probes")
    print(f"takeover after SIGKILL: {took:.2f}s")


async def test_agent_stops_cleanly_on_sigterm(
    store: EventStore, agent: subprocess.Popen[str]
) -> None:
    await agent_is_writing(store, agent.pid)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=10) == 0
    assert agent.stdout is not None
    log = agent.stdout.read()
    assert "role: leader" in log and "stopped cleanly" in log


async def test_injected_fault_shows_in_status_json_within_two_intervals(
    demo_fleet: tuple[DemoFleet, FleetInfo], store: EventStore, agent: subprocess.Popen[str]
) -> None:
    """The foundation's "done when": curl a fault, see it in `conn status --json`."""
    _, info = demo_fleet
    await agent_is_writing(store, agent.pid)
    interval = load_config(info.config_path)[0].services["payments"].interval
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{info.urls['payments']}/_demo/faults", json={"health": "down"})
        response.raise_for_status()
    injected = time.monotonic()

    async def payments_down() -> bool:
        rows = await store.read_live()
        return rows["payments"].data["health"] == "down"

    while not await payments_down():
        assert time.monotonic() - injected < 2 * interval + 0.5, "not down within two intervals"
        await asyncio.sleep(0.05)
    took = time.monotonic() - injected
    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "console", "status", "--json", "--config", str(info.config_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert status.returncode == 2, status.stderr  # a service down: critical
    document = json.loads(status.stdout)
    by_name = {s["name"]: s for s in document["services"]}
    assert by_name["payments"]["health"] == "down"
    assert by_name["payments"]["source"] == "live"
    assert "503" in by_name["payments"]["reason"] or "down" in by_name["payments"]["reason"]
    assert by_name["search"]["health"] == "up"
    assert document["leader"] and f"pid {agent.pid}" in document["leader"]
    print(f"fault visible in the live table after {took:.2f}s (interval {interval}s)")


def named(live: ServiceLive | None, name: str) -> SignalValue:
    signal = live.signal(name) if live is not None else None
    assert signal is not None, f"no {name} signal"
    return signal


async def test_traffic_errors_are_the_services_errors_not_the_probes(
    fast_fleet: tuple[DemoFleet, FleetInfo],
) -> None:
    """What an on-call engineer saw: 20 % 5xx in payments' traffic, and "errors 0.00%".

    The demo reads error_rate from each service's health JSON, so the injected
    traffic errors are what error_rate shows (critical past 5 %), from the
    health JSON, while probe_errors (Conn's own failed health checks) stays 0.
    """
    _, info = fast_fleet  # a 1 s traffic window: the fault dominates within a second
    config = load_config(info.config_path)[0]
    interval = config.services["payments"].interval
    store = await open_store(config.store)
    try:
        async with Engine(config, store) as engine:
            def payments() -> ServiceLive | None:
                view = engine.snapshot.service("payments")
                return view.live if view is not None and view.writer == engine.label else None

            await until(lambda: engine.role == "leader", within=5, what="the only engine leads")
            await until(lambda: (live := payments()) is not None and named(live, "error_rate").state == "ok",
                        within=10, what="payments' traffic errors are read and fine")
            async with httpx.AsyncClient() as client:
                response = await client.post(f"{info.urls['payments']}/_demo/faults", json={"error_rate": 0.2})
                response.raise_for_status()
            took = await until(lambda: named(payments(), "error_rate").state == "critical",
                               within=2 * interval + 0.5, what="error_rate critical within two intervals")
            live = payments()
            errors, probes = named(live, "error_rate"), named(live, "probe_errors")
            assert errors.source == "health-json"
            assert errors.value is not None and 8.0 < errors.value < 35.0, errors.value
            assert (probes.source, probes.value, probes.state) == ("probe", 0.0, "ok")
            assert live is not None and live.errors["1m"].failed == 0  # the probe windows are the prober's

            status = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "console", "status", "--json", "--config", str(info.config_path)],
                capture_output=True, text=True, timeout=60,
            )
            assert status.returncode == 2, status.stderr  # a signal critical
            document = json.loads(status.stdout)
            shown = next(s for s in document["services"] if s["name"] == "payments")
            assert shown["source"] == "live"
            signals = {s["name"]: s for s in shown["signals"]}
            assert (signals["error_rate"]["source"], signals["error_rate"]["state"]) == ("health-json", "critical")
            assert 8.0 < signals["error_rate"]["value"] < 35.0
            assert (signals["probe_errors"]["source"], signals["probe_errors"]["value"]) == ("probe", 0.0)
            assert signals["p95"]["source"] == "health-json"
    finally:
        await store.close()
    print(f"traffic errors critical after {took:.2f}s (interval {interval}s)")


async def test_status_probes_directly_when_no_leader_writes(
    config: ConnConfig, store: EventStore
) -> None:
    clock = FakeClock(start=time.time())
    engine = Engine(config, store, clock=clock, lead=False, follow=False)
    await store.write_live(
        "search", {"not": "a live row"}, at=clock.now(), writer="someone@elsewhere pid 1"
    )
    spec = config.services["search"]
    clock.advance(stale_after(spec.interval, spec.timeout) + 1)
    async with engine:
        document = await status_document(engine)
        quiet = await status_document(engine, probe=False)
    by_name = {s["name"]: s for s in document["services"]}
    assert all(s["source"] == "probe" for s in document["services"])
    assert by_name["search"]["health"] == "up"
    assert any("probed directly" in note for note in document["notes"])
    assert all(s["health"] == "unknown" and s["stale"] for s in quiet["services"])


def test_status_text_output_names_every_service(demo_fleet: tuple[DemoFleet, FleetInfo]) -> None:
    _, info = demo_fleet
    run = subprocess.run(
        [sys.executable, "-m", "console", "status", "--config", str(info.config_path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
    )
    assert run.returncode == 0, run.stderr
    for name in ("checkout", "checkout-canary", "payments", "search"):
        assert name in run.stdout
    assert "probed directly" in run.stdout


async def test_team_mode_on_postgresql_one_leader_and_a_follower(
    demo_fleet: tuple[DemoFleet, FleetInfo], postgres_dsn: str
) -> None:
    """Two consoles sharing a PostgreSQL store: one leads (advisory lock), one follows."""
    text = demo_fleet[1].config_path.read_text()
    text = "\n".join(
        f'store = "{postgres_dsn}"' if line.startswith("store =") else line
        for line in text.splitlines()
    )
    from console.config import parse_config

    config = parse_config(text)
    first_store = await open_store(config.store)
    second_store = await open_store(config.store)
    try:
        async with Engine(config, first_store) as first, Engine(config, second_store) as second:
            await until(lambda: "leader" in (first.role, second.role), within=5, what="someone leads")
            await asyncio.sleep(1.5)
            assert sorted([first.role, second.role]) == ["follower", "leader"]
            follower = first if first.role == "follower" else second
            await until(lambda: all_up(follower.snapshot), within=10, what="the follower renders the leader's rows")
            leader = second if follower is first else first
            await leader.stop()
            await until(lambda: follower.role == "leader", within=5, what="the follower takes over")
    finally:
        await first_store.close()
        await second_store.close()


async def test_a_database_outage_is_shown_and_followed_through(
    config: ConnConfig, postgres_dsn: str
) -> None:
    """Team mode: the database refuses connections for a while, then comes back.

    The follower says so in its snapshot (the header shows it), keeps running,
    and resumes from the last event it saw: an event appended right after the
    outage is not missed.
    """
    import asyncpg  # type: ignore[import-untyped]

    database = postgres_dsn.rsplit("/", 1)[1]
    admin_dsn = postgres_dsn.rsplit("/", 1)[0] + "/postgres"
    team = config.model_copy(update={"store": postgres_dsn})
    store = await open_store(team.store)
    engine = Engine(team, store, lead=False, follow_interval=0.1)
    await engine.start()
    admin = await asyncpg.connect(admin_dsn)
    try:
        assert engine.snapshot.problem is None
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
        )
        await until(lambda: engine.snapshot.problem is not None, within=10, what="the outage is shown")
        assert "cannot read" in (engine.snapshot.problem or "")
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        writer = await open_store(team.store)
        try:
            await writer.append(
                "flag/after_outage", 0, [NewEvent("note")], actor=Actor("ops"), at=time.time()
            )
        finally:
            await writer.close()
        await until(lambda: engine.snapshot.problem is None, within=20, what="the store answers again")
        await until(
            lambda: any(e.stream == "flag/after_outage" for e in engine.snapshot.recent_events),
            within=10, what="the event appended after the outage is seen",
        )
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
        await engine.stop()
        await store.close()


async def test_team_store_password_comes_from_a_secret(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.config import parse_config
    from console.engine.session import open_configured_store
    from console.errors import SecretError

    config = parse_config(f'store = "{postgres_dsn}"\nstore_password_secret = "team_db_pw"\n')
    monkeypatch.delenv("CONN_SECRET_TEAM_DB_PW", raising=False)
    import keyring
    from keyring.backends.fail import Keyring as NoKeyring

    previous = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    try:
        with pytest.raises(SecretError, match="CONN_SECRET_TEAM_DB_PW"):
            await open_configured_store(config)
        monkeypatch.setenv("CONN_SECRET_TEAM_DB_PW", "s3cret-db-pw")
        store = await open_configured_store(config)
        try:
            assert "s3cret-db-pw" not in store.url
            assert await store.stream_version("flag/x") == 0
        finally:
            await store.close()
    finally:
        keyring.set_keyring(previous)


async def test_reading_never_writes_to_the_audit_log(
    config: ConnConfig, store: EventStore, demo_fleet: tuple[DemoFleet, FleetInfo]
) -> None:
    """status, flag list and flag eval are readers: the log is the same after them."""
    assert config.flags.define, "the demo config defines flags"
    before = len(await store.read_all())
    path = str(demo_fleet[1].config_path)
    for argv in (["status", "--json"], ["flag", "list"], ["flag", "eval", "checkout_v2", "user-1"]):
        run = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "console", *argv, "--config", path],
            capture_output=True, text=True, timeout=60,
        )
        if argv[1:2] == ["eval"]:
            assert run.returncode == 1
            assert "in the config but not in the log yet" in run.stderr
        else:
            assert run.returncode == 0, run.stderr
    assert len(await store.read_all()) == before
    listed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "console", "flag", "list", "--config", path],
        capture_output=True, text=True, timeout=60,
    )
    assert "not in the log yet" in listed.stdout
    async with Engine(config, store) as engine:
        await until(lambda: engine.role == "leader", within=5, what="leads")
        await until(lambda: len(engine.snapshot.flags) == len(config.flags.define), within=5, what="the leader seeds")


async def test_a_dead_engine_task_is_shown_and_leadership_given_up(
    config: ConnConfig, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that kills an engine task must not leave a process that holds the lock and does nothing."""
    async with Engine(config, store) as engine:
        await until(lambda: engine.role == "leader", within=5, what="leads")

        def broken(event: object) -> bool:
            raise RuntimeError("a bug in folding")

        monkeypatch.setattr(engine.projections.projections[0], "apply", broken)
        await store.append("flag/boom", 0, [NewEvent("note")], actor=Actor("ops"), at=time.time())
        await asyncio.wait_for(engine.failed.wait(), 5)
        assert engine.failure is not None
        assert "follow-events" in engine.failure
        await until(lambda: engine.role == "follower", within=5, what="leadership given up")
        await until(lambda: (engine.snapshot.problem or "").startswith("engine task"), within=5, what="shown")
        other = await open_store(config.store)
        try:
            lock = other.leader_lock()
            assert await lock.try_acquire(), "a healthy process can lead now"
            await lock.release()
        finally:
            await other.close()


async def test_a_row_from_the_future_is_not_trusted(config: ConnConfig, store: EventStore) -> None:
    """A leader whose clock runs ahead must not look alive after it died."""
    clock = FakeClock(start=time.time())
    live = {"not": "checked"}
    for name in config.services:
        await store.write_live(name, live, at=clock.now() + 3600, writer="fast@clock pid 1")
    async with Engine(config, store, clock=clock, lead=False, follow=False) as engine:
        document = await status_document(engine, probe=False)
    assert document["leader"] is None
    assert all(s["stale"] for s in document["services"])
