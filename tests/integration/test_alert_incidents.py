"""Alerts in: a real Alertmanager's firing alerts open or join incidents, once, and resolve on them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from console.config import ConnConfig
from console.engine.core import Engine
from console.engine.incidents import OpenIncident
from console.model.events import Actor
from console.store import open_store
from tests.fixtures.alertmanager import (
    AlertmanagerServer,
    alertmanager_server_fixture,
    post_alerts,
    resolve_alert,
)
from tests.fixtures.waiting import until

__all__ = ["alertmanager_server_fixture"]

pytestmark = pytest.mark.slow

LABELS = {"alertname": "HighErrorRate", "service": "payments", "severity": "critical"}


def config(tmp_path: Path, url: str) -> ConnConfig:
    return ConnConfig.model_validate(tomllib.loads(f"""
store = "sqlite://{tmp_path / 'conn.db'}"
[services.payments]
health_url = "http://127.0.0.1:9/health"
[services.checkout]
health_url = "http://127.0.0.1:9/health"
[sources.alertmanager]
url = "{url}"
interval = "1s"
[[sources.alertmanager.rules]]
matchers = ['alertname="HighErrorRate"', 'severity=~"crit.*"']
severity = "SEV2"
[[sources.alertmanager.rules]]
matchers = ['alertname="DiskFull"']
severity = "SEV4"
service = "checkout"
"""))


async def test_a_firing_alert_opens_one_incident_and_resolves_on_it(
    tmp_path: Path, alertmanager_server: AlertmanagerServer
) -> None:
    url = alertmanager_server.url
    cfg = config(tmp_path, url)
    post_alerts(url, [{"labels": LABELS, "annotations": {"summary": "payments 5xx \x1b[31mabove 5%"}},
                      {"labels": {"alertname": "Unrouted", "service": "payments"}}])
    store = await open_store(cfg.store)
    try:
        async with Engine(cfg, store, retry_leadership=0.1) as engine:
            await until(lambda: engine.snapshot.open_incidents, within=20, what="an incident from the alert")
            state = engine.snapshot.open_incidents[0].state
            assert (state.id, state.severity, state.services) == ("INC-1", "SEV2", ("payments",))
            assert state.title == "payments 5xx above 5%"  # escape sequence stripped
            assert len(state.alerts) == 1  # the alert no rule matches opened nothing
            # Every console shows what fires, with the incident it opened (or none).
            await until(lambda: engine.snapshot.alerts is not None and len(engine.snapshot.alerts.alerts) == 2,
                        within=10, what="the alerts strip's data")
            shown = {a.name: a for a in engine.snapshot.alerts.alerts}  # type: ignore[union-attr]
            assert shown["HighErrorRate"].incident == "INC-1" and shown["HighErrorRate"].severity == "SEV2"
            assert shown["Unrouted"].incident is None and shown["Unrouted"].severity is None
            # Polls repeat every second: the same occurrence is a no-op.
            version = state.version
            await until(lambda: engine.snapshot.problem is None, within=5, what="a clean poll")
            import asyncio

            await asyncio.sleep(2.5)
            assert engine.incident("INC-1").state.version == version
            assert len(engine.snapshot.incidents) == 1
            # Another alert for the same service joins the open incident.
            post_alerts(url, [{"labels": {**LABELS, "instance": "b"}}])
            await until(lambda: len(engine.incident("INC-1").state.alerts) == 2, within=10, what="joined")
            resolve_alert(url, LABELS)
            await until(lambda: any(e.kind == "alert resolved" for e in engine.incident("INC-1").state.entries),
                        within=10, what="the alert resolved on the incident")
            assert len(engine.snapshot.incidents) == 1
    finally:
        await store.close()


async def test_an_alertmanager_that_is_down_is_a_source_problem_and_no_churn(
    tmp_path: Path, alertmanager_server: AlertmanagerServer
) -> None:
    from tests.fixtures.prometheus import free_port

    cfg = config(tmp_path, f"http://127.0.0.1:{free_port()}")
    store = await open_store(cfg.store)
    try:
        async with Engine(cfg, store, actor=Actor("alice"), retry_leadership=0.1) as engine:
            await engine.execute(OpenIncident(title="payments slow", services=("payments",)))
            await until(lambda: "alertmanager" in (engine.snapshot.problem or "").lower(), within=10,
                        what="the source problem shown")
            assert "connection refused" in (engine.snapshot.problem or "")
            await until(lambda: engine.snapshot.alerts is not None, within=10, what="the poll shown")
            assert "connection refused" in (engine.snapshot.alerts.problem or "")  # type: ignore[union-attr]
            assert len(engine.snapshot.incidents) == 1
            assert engine.incident("INC-1").state.version == 1
    finally:
        await store.close()
