"""The leader's history recorder on a real store, driven by a fake clock: writes, roll-ups, pruning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.config import HistoryConfig
from console.engine.history import History
from console.model.clock import FakeClock
from console.model.health import ProbeResult
from console.model.history import ROLLUP_SECONDS, SLICE_SECONDS
from console.model.signals import ServiceSignals
from console.store import EventStore, open_store

T0 = 1_800_000_000.0  # a multiple of 60
STEP = 5.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'conn.db'}")
    try:
        yield opened
    finally:
        await opened.close()


def probe(at: float, latency: float, ok: bool = True) -> ProbeResult:
    return ProbeResult(service="api", at=at, latency_ms=latency, health="up" if ok else "down",
                       reason="HTTP 200" if ok else "HTTP 503", ok=ok,
                       http_status=200 if ok else 503, body=None)


async def test_slices_rollups_and_pruning_follow_the_retention(store: EventStore) -> None:
    clock = FakeClock(start=T0)
    retention = HistoryConfig(slices=1800.0, rollups=3600.0, sketches=300.0)
    history = History(retention, store, clock, tick=STEP)
    signals = {"api": ServiceSignals("api", interval=STEP, thresholds={}, signals={})}
    minutes = 90
    for i in range(int(minutes * 60 / STEP)):
        at = T0 + i * STEP
        clock.set(at)
        signals["api"].record_probe(probe(at, 100.0 + (i % 12) * 10, ok=i % 10 != 0))
        signals["api"].snapshot(at)
        await history.record(signals)
    now = clock.now()
    fine = await store.read_history(since=0, resolution=SLICE_SECONDS)
    rollups = await store.read_history(since=0, resolution=ROLLUP_SECONDS)
    # Retention: no 10 s slice older than 30 min, no roll-up older than an hour
    # (pruning runs once a minute, so allow one minute of slack).
    assert fine and min(s.start for s in fine) >= now - 1800 - 60
    assert rollups and min(s.start for s in rollups) >= now - 3600 - 60
    assert max(s.start for s in fine) == (now // SLICE_SECONDS) * SLICE_SECONDS
    # Sketches only within their 5 minutes; counts and quantiles stay.
    assert all(s.sketch is None for s in fine if s.start < now - 300 - 60)
    assert any(s.sketch is not None for s in fine if s.start >= now - 300)
    assert all("p95" in s.data for s in fine)
    # Settled past the sketch retention: values and states stay, takeover details go.
    old = [s for s in fine if s.start < now - 300 - 60]
    assert old and all("as_of" not in s.data and "signals" in s.data for s in old)
    assert all(set(e) <= {"value", "state", "past", "past_since"}
               for s in old for e in s.data["signals"].values())
    # One roll-up per completed minute, equal to its six slices' counts.
    by_start = {s.start: s for s in fine}
    checked = 0
    for rollup in rollups:
        parts = [by_start.get(rollup.start + k * SLICE_SECONDS) for k in range(6)]
        if all(p is not None for p in parts):
            assert rollup.samples == sum(p.samples for p in parts if p)
            assert rollup.errors == sum(p.errors for p in parts if p)
            checked += 1
    assert checked >= 25
    assert len({r.start for r in rollups}) == len(rollups)
    # Each tick wrote once for all services.
    assert history.stats.writes == int(minutes * 60 / STEP)
    points = await history.points("api", "p95", since=now - 600)
    assert len(points) >= 59 and all(p.value is not None for p in points)
    assert all(p.at >= now - 600 for p in points)
