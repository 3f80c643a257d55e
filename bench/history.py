"""What the signal history costs: bytes per service per day, a tick's write, a new leader's rebuild.

    .venv/bin/python bench/history.py                      # a temporary SQLite file
    .venv/bin/python bench/history.py postgresql://u@h/db  # an existing (empty) database
    .venv/bin/python bench/history.py --postgres           # a throwaway local cluster (fsync off)

A fake clock drives the real recorder (``console.engine.history.History``)
and real ``ServiceSignals`` with the demo's six custom signals and
thresholds, so rows have the sizes a real leader writes. Prints figures;
asserts nothing. Not part of the test run.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from console.config import HistoryConfig, parse_config
from console.engine.history import History
from console.engine.sampling import accumulator
from console.model.clock import FakeClock
from console.model.health import ProbeResult
from console.model.signals import ServiceSignals
from console.store import EventStore, open_store

REPO = str(Path(__file__).resolve().parents[1])
DAY = 86_400.0
INTERVAL = 5.0
"""Probe interval of the simulated services (the example config's default)."""
SERVICES_PER_DAY = 4
SERVICES_PER_TICK = 200

SERVICE = """
[services.{name}]
health_url = "http://127.0.0.1:9/{name}"
interval = "5s"
[services.{name}.signals.cache_hit_rate]
json_path = "metrics.cache_hit_rate"
unit = "%"
scale = 100
[services.{name}.signals.memory_pct]
json_path = "metrics.memory_pct"
unit = "%"
[services.{name}.signals.circuit_breaker_opens]
json_path = "metrics.circuit_breaker_opens"
[services.{name}.thresholds.cache_hit_rate]
warning = 80.0
critical = 70.0
direction = "below"
"""


def services(count: int, store: str) -> dict[str, ServiceSignals]:
    text = f'store = "{store}"\n' + "".join(SERVICE.format(name=f"svc{i}") for i in range(count))
    config = parse_config(text)
    return {name: accumulator(config, name) for name in config.services}


def feed(signals: dict[str, ServiceSignals], at: float, rng: random.Random) -> None:
    for name, accumulator_ in signals.items():
        ok = rng.random() > 0.01
        body = {"status": "ok", "metrics": {"cache_hit_rate": rng.uniform(0.8, 0.95),
                                            "memory_pct": rng.uniform(40, 60),
                                            "circuit_breaker_opens": rng.randint(0, 2)}}
        accumulator_.record_probe(ProbeResult(
            service=name, at=at + rng.uniform(0, 0.5), latency_ms=rng.lognormvariate(4.5, 0.4),
            health="up" if ok else "down", reason="HTTP 200" if ok else "timeout after 2s",
            ok=ok, http_status=200 if ok else None, body=body if ok else None,
        ))


async def size_of(store: EventStore, url: str, path: Path | None) -> int:
    if path is not None:
        import sqlite3

        def vacuumed() -> int:
            with sqlite3.connect(path) as db:
                db.execute("VACUUM")
                if _has_dbstat(db):  # the history table and its indexes only
                    (size,) = db.execute(
                        "SELECT sum(pgsize) FROM dbstat WHERE name LIKE '%history%'"
                    ).fetchone()
                    return int(size)
                return path.stat().st_size
        return await asyncio.to_thread(vacuumed)
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM FULL conn_history")
        return int(await conn.fetchval("SELECT pg_total_relation_size('conn_history')"))
    finally:
        await conn.close()


def _has_dbstat(db: object) -> bool:
    import sqlite3

    assert isinstance(db, sqlite3.Connection)
    try:
        db.execute("SELECT 1 FROM dbstat LIMIT 1")
    except sqlite3.Error:
        return False
    return True


async def a_day(url: str, path: Path | None) -> None:
    """SERVICES_PER_DAY services for 24 h of fake time, with the default retention."""
    store = await open_store(url)
    clock = FakeClock(start=1_800_000_000.0)
    history = History(HistoryConfig(), store, clock, tick=INTERVAL)
    signals = services(SERVICES_PER_DAY, url)
    rng = random.Random(1)
    steps = int(DAY / INTERVAL)
    began = time.perf_counter()
    for _ in range(steps):
        at = clock.now()
        feed(signals, at, rng)
        await history.record(signals)
        clock.set(at + INTERVAL)
    elapsed = time.perf_counter() - began
    fine = await store.read_history(since=0)
    rollups = await store.read_history(since=0, resolution=60)
    size = await size_of(store, url, path)
    await store.close()
    print(f"a day of history ({SERVICES_PER_DAY} services, {INTERVAL:g}s probes, default retention): "
          f"{size / SERVICES_PER_DAY / 1024:,.0f} KiB per service on disk "
          f"({len(fine) // SERVICES_PER_DAY:,} 10s slices + {len(rollups) // SERVICES_PER_DAY:,} "
          f"1m roll-ups each; simulated in {elapsed:.0f}s)")


async def ticks_and_rebuild(url: str) -> None:
    """SERVICES_PER_TICK services: the cost of one tick's write, then a new leader's rebuild."""
    store = await open_store(url)
    clock = FakeClock(start=1_900_000_000.0)
    history = History(HistoryConfig(), store, clock, tick=INTERVAL)
    signals = services(SERVICES_PER_TICK, url)
    rng = random.Random(2)
    costs = []
    for _ in range(int(360 / INTERVAL)):  # six minutes: every window full
        at = clock.now()
        feed(signals, at, rng)
        before = history.stats.seconds
        await history.record(signals)
        costs.append((history.stats.seconds - before) * 1000)
        clock.set(at + INTERVAL)
    costs.sort()
    print(f"one tick, {SERVICES_PER_TICK} services in one write: median {statistics.median(costs):.1f} ms, "
          f"p95 {costs[int(len(costs) * 0.95)]:.1f} ms, max {costs[-1]:.1f} ms")
    rebuilds = []
    for _ in range(5):
        fresh = services(SERVICES_PER_TICK, url)
        began = time.perf_counter()
        await History(HistoryConfig(), store, clock, tick=INTERVAL).restore(fresh)
        rebuilds.append(time.perf_counter() - began)
    now = clock.now()
    old = signals["svc7"].snapshot(now)
    new = fresh["svc7"].snapshot(now)
    same = old.latency == new.latency and old.errors == new.errors
    print(f"new leader rebuilds {SERVICES_PER_TICK} services' windows and timers: "
          f"median {statistics.median(rebuilds) * 1000:.0f} ms, max {max(rebuilds) * 1000:.0f} ms "
          f"(windows identical to the old leader's: {same})")
    await store.close()


async def throwaway_postgres() -> None:
    """Start the test suite's throwaway cluster (fsync off: figures are the CPU and protocol cost)."""
    import asyncpg

    sys.path.insert(0, REPO)
    from tests.fixtures.postgres import throwaway_cluster

    with throwaway_cluster() as server:
        admin = await asyncpg.connect(server.dsn())
        await admin.execute('CREATE DATABASE "bench"')
        await admin.close()
        url = server.dsn("bench")
        print("store: PostgreSQL (throwaway local cluster, fsync off)")
        await a_day(url, None)
        await ticks_and_rebuild(url)


async def main() -> None:
    if sys.argv[1:] == ["--postgres"]:
        await throwaway_postgres()
        return
    if len(sys.argv) > 1:
        url = sys.argv[1]
        print(f"store: {url.split('@')[-1]}")
        await a_day(url, None)
        await ticks_and_rebuild(url)
        return
    with tempfile.TemporaryDirectory() as tmp:
        print("store: SQLite (temporary file)")
        day = Path(tmp) / "day.db"
        await a_day(f"sqlite:///{day}", day)
        await ticks_and_rebuild(f"sqlite:///{Path(tmp) / 'ticks.db'}")


if __name__ == "__main__":
    os.environ.setdefault("TZ", "UTC")
    asyncio.run(main())
