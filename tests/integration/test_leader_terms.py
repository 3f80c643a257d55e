"""Leader terms under faults: a duty that cannot start, a source that raises, a dead task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from console.config import ConnConfig, parse_config
from console.engine.core import Engine
from console.model.events import Actor, Event, NewEvent
from console.sources.prometheus import PrometheusSource
from console.store import EventStore, open_store
from tests.fixtures.waiting import until

pytestmark = pytest.mark.slow

SERVICE = """
[services.api]
health_url = "http://127.0.0.1:9/health"
interval = "1s"
timeout = "1s"
"""


def with_prometheus(store: str, extra: str = "") -> ConnConfig:
    return parse_config(
        f'store = "{store}"\n[sources.prometheus]\nurl = "http://127.0.0.1:9"\n'
        f'interval = "1s"\n{extra}\n{SERVICE}\n'
        '[services.api.queries]\np95 = "histogram_quantile(0.95, x)"\n'
    )


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[EventStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'conn.db'}")
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_duty_that_cannot_start_backs_off_instead_of_flapping(
    sqlite_store: EventStore, tmp_path: Path
) -> None:
    """Bug: a missing ca_bundle made the process take and drop leadership every second,
    probing and writing live rows each time."""
    config = with_prometheus(sqlite_store.url, f'ca_bundle = "{tmp_path / "missing.pem"}"')
    engine = Engine(config, sqlite_store, retry_leadership=0.1)
    async with engine:
        await until(lambda: "cannot lead" in (engine.snapshot.problem or ""), within=5,
                    what="the failed start is shown")
        assert "ca_bundle" in (engine.snapshot.problem or "")
        await asyncio.sleep(2.5)  # 25 leadership rounds at 0.1 s
        assert engine._leadership is not None
        assert engine._leadership.failed_starts == 1, "one attempt, then a back-off"
        assert engine.role == "follower"
        assert await sqlite_store.read_live() == {}, "nothing was probed or written"
        other = await open_store(sqlite_store.url)
        try:
            lock = other.leader_lock()
            assert await lock.try_acquire(), "the lock is free for a healthy process"
            await lock.release()
        finally:
            await other.close()
        assert engine.failure is None


async def test_an_unexpected_error_in_a_prometheus_round_is_shown_not_fatal(
    sqlite_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug: a non-ConsoleError in a Prometheus round killed the engine (the prober survived)."""
    rounds = 0

    async def broken(self: PrometheusSource, name: str, spec: Any, **kw: Any) -> Any:
        nonlocal rounds
        rounds += 1
        raise RuntimeError("a bug in a source")

    monkeypatch.setattr(PrometheusSource, "query_service", broken)
    engine = Engine(with_prometheus(sqlite_store.url), sqlite_store, retry_leadership=0.1)
    async with engine:
        await until(lambda: engine.role == "leader", within=5, what="leads")
        await until(lambda: "internal error" in (engine.snapshot.problem or ""), within=5,
                    what="the error is shown")
        await until(lambda: rounds >= 2, within=10, what="the rounds go on")
        assert engine.failure is None and engine.role == "leader"
        await until(lambda: engine.snapshot.services[0].live is not None, within=5,
                    what="probing goes on")


async def test_a_failed_engine_cancels_before_it_releases_the_advisory_lock(
    postgres_dsn: str,
) -> None:
    """Bug: a failed engine released the lock before cancelling its leadership task, so
    the cancelled task could re-acquire the PostgreSQL advisory lock with no owner."""
    config = parse_config(f'store = "{postgres_dsn}"\n{SERVICE}')
    first_store, second_store = await open_store(postgres_dsn), await open_store(postgres_dsn)
    first = Engine(config, first_store, retry_leadership=0.05)
    second = Engine(config, second_store, retry_leadership=0.05)
    try:
        await first.start()
        await until(lambda: first.role == "leader", within=5, what="the first engine leads")
        await second.start()

        def broken(event: Event) -> bool:
            raise RuntimeError("a bug in folding")

        first.projections.projections[0].apply = broken  # type: ignore[method-assign]
        await first_store.append("flag/boom", 0, [NewEvent("note")], actor=Actor("ops"),
                                 at=time.time())
        await asyncio.wait_for(first.failed.wait(), 5)
        assert first.failure is not None and "follow-events" in first.failure
        await until(lambda: second.role == "leader", within=5, what="a healthy engine takes over")
        await asyncio.sleep(1.0)  # twenty of the failed engine's old leadership rounds
        assert first.role == "follower"
        assert first._leadership is not None and not first._leadership.lock.held
        assert second.role == "leader"
        assert (first.snapshot.problem or "").startswith("engine task")
    finally:
        await first.stop()
        await second.stop()
        await first_store.close()
        await second_store.close()
