"""The agent's journal: current states only, breaches and recoveries in the console's words."""

from __future__ import annotations

from console.engine.journal import Journal
from console.engine.snapshot import ServiceView, Snapshot
from console.model.health import ProbeResult
from console.model.signals import ServiceSignals
from console.model.thresholds import Threshold

T0 = 1_800_000_000.0


def probe(at: float, latency: float, health: str = "up") -> ProbeResult:
    return ProbeResult(service="payments", at=at, latency_ms=latency, health=health,  # type: ignore[arg-type]
                       reason="HTTP 200" if health == "up" else "HTTP 503", ok=health != "down",
                       http_status=200 if health == "up" else 503, body=None)


def snapshot(signals: ServiceSignals, now: float, *, written: float | None = None) -> Snapshot:
    live = signals.snapshot(now)
    view = ServiceView(name="payments", interval=1.0, live=live,
                       updated_at=now if written is None else written, writer="w", timeout=1.0)
    return Snapshot(environment="t", store_url="sqlite:///x", role="leader", leader="w",
                    services=(view,))


def make() -> ServiceSignals:
    threshold = Threshold.model_validate({"warning": 500.0, "critical": 1000.0, "for": "2s"})
    return ServiceSignals("payments", interval=1.0, timeout=1.0, thresholds={"p95": threshold},
                          signals={})


def test_a_previous_runs_row_is_not_reported_as_current() -> None:
    signals = make()
    signals.record_probe(probe(T0, 20.0, "down"))
    journal = Journal()
    assert journal.lines(snapshot(signals, T0 + 60, written=T0), T0 + 60) == []


def test_health_changes_breaches_and_recoveries_are_logged_once_each() -> None:
    signals, journal = make(), Journal()
    lines: list[tuple[str, str]] = []
    t = T0
    for _ in range(5):
        signals.record_probe(probe(t, 20.0))
        lines += journal.lines(snapshot(signals, t), t)
        t += 1
    assert lines == [("INFO", "payments is up: HTTP 200")]
    for _ in range(30):  # slow: p95 past 1000 ms, critical after its 2 s
        signals.record_probe(probe(t, 1500.0))
        lines += journal.lines(snapshot(signals, t), t)
        t += 1
    breaches = [line for line in lines[1:] if "p95" in line[1]]
    assert [level for level, _ in breaches] == ["WARNING"]
    assert breaches[0][1].startswith("payments: p95 critical for 2s: p95 1.50 s > 1.00 s")
    for _ in range(80):  # fast again: the 1m window drains, p95 recovers
        signals.record_probe(probe(t, 20.0))
        lines += journal.lines(snapshot(signals, t), t)
        t += 1
    recoveries = [line for line in lines if "recovered" in line[1]]
    assert len(recoveries) == 1 and recoveries[0][0] == "INFO"
    assert recoveries[0][1].startswith("payments: p95 recovered: p95 ")
    signals.record_probe(probe(t, 20.0, "down"))
    assert journal.lines(snapshot(signals, t), t)[0] == ("WARNING", "payments is now down: HTTP 503")
