"""Health transitions recorded as events: levels, settling, flap damping, a new leader continuing."""

from __future__ import annotations

from pathlib import Path

from console.engine.commands import automatic_actor
from console.engine.health_events import HealthProjection, HealthRecorder
from console.engine.projections import ProjectionSet
from console.model.clock import FakeClock
from console.model.health import ProbeResult
from console.model.signals import ServiceSignals
from console.model.thresholds import Threshold
from console.store import open_store

T0 = 1_800_000_000.0


def signals() -> ServiceSignals:
    threshold = Threshold.model_validate({"warning": 500.0, "critical": 1000.0})
    return ServiceSignals("payments", interval=1.0, timeout=1.0, thresholds={"p95": threshold}, signals={})


def probe(at: float, latency: float, health: str = "up") -> ProbeResult:
    return ProbeResult(service="payments", at=at, latency_ms=latency, health=health,  # type: ignore[arg-type]
                       reason="HTTP 200" if health == "up" else "HTTP 503", ok=health != "down",
                       http_status=200 if health == "up" else 503, body=None)


async def test_levels_settle_flaps_are_damped_and_a_new_leader_continues(tmp_path: Path) -> None:
    store = await open_store(f"sqlite://{tmp_path / 'conn.db'}")
    clock = FakeClock(T0)
    try:
        health = HealthProjection()
        projections = ProjectionSet([health])
        recorder = HealthRecorder(store, projections, health, clock, automatic_actor())
        series = signals()

        async def run(seconds: int, latency: float, state: str = "up") -> None:
            for _ in range(seconds):
                series.record_probe(probe(clock.now(), latency, state))
                await recorder.seen("payments", series.snapshot(clock.now()))
                clock.advance(1)

        await run(5, 20)            # up from the start: nothing recorded
        await run(30, 700)          # a warning is not a health change
        assert await store.read_all() == []
        await run(5, 3000, "down")  # down, held past the settle time
        await run(2, 20)            # a blip of up: shorter than the settle time
        await run(5, 3000, "down")
        events = await store.read_all()
        assert [(e.payload["from"], e.payload["to"]) for e in events] == [("up", "down")]
        assert events[0].payload["why"] == "HTTP 503"
        await run(90, 20)           # recovered for good (the 1m window drains)
        events = await store.read_all()
        assert [(e.payload["from"], e.payload["to"]) for e in events][-1] == ("down", "up")
        # A new leader folds the log and does not record again what is already recorded.
        again = HealthProjection()
        ProjectionSet([again]).apply_all(events)
        assert again.last["payments"][0] == "up"
    finally:
        await store.close()
