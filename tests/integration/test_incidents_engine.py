"""Incidents through the engine on a real SQLite store: commands, numbers, timeline, auto-incidents."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import ConnConfig
from console.engine.commands import automatic_actor
from console.engine.core import Engine
from console.engine.incidents import (
    AcknowledgeIncident,
    AssignIncidentRole,
    NoteIncident,
    OpenIncident,
    PinIncidentEntry,
    SetIncidentSeverity,
    SetIncidentStatus,
)
from console.errors import CommandError
from console.model.events import Actor, NewEvent
from console.model.incidents import durations
from console.store import open_store

ALICE = Actor("alice")


def config(tmp_path: Path, extra: str = "") -> ConnConfig:
    import tomllib

    text = f"""
store = "sqlite://{tmp_path / 'conn.db'}"
[services.checkout]
health_url = "http://127.0.0.1:9/health"
[services.checkout-canary]
health_url = "http://127.0.0.1:9/health"
[services.payments]
health_url = "http://127.0.0.1:9/health"
[flags.define.checkout_v2]
[rollouts.checkout]
flag = "checkout_v2"
canary = "checkout-canary"
baseline = "checkout"
[[rollouts.checkout.stages]]
name = "ten"
percent = 10
[rollouts.checkout.gate]
criteria = ["error_rate < 5%"]
""" + extra
    return ConnConfig.model_validate(tomllib.loads(text))


async def test_an_incident_is_declared_acknowledged_noted_and_resolved(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = await open_store(cfg.store)
    try:
        async with Engine(cfg, store, actor=ALICE, lead=False, follow=False, sync_flag_file=False) as engine:
            opened = await engine.execute(OpenIncident(title="checkout [bold]slow\x1b[2J", services=("checkout",),
                                                       severity="2"))
            assert opened.message == "INC-1 declared (SEV2)"
            second = await engine.execute(OpenIncident(title="payments", services=("payments",), severity="SEV4"))
            assert second.detail.id == "INC-2"
            await engine.execute(AcknowledgeIncident(incident="inc-1"))
            await engine.execute(NoteIncident(incident="INC-1", text="rolled back by hand"))
            await engine.execute(AssignIncidentRole(incident="1", role="scribe", user="bob"))
            with pytest.raises(CommandError, match="reason is required"):
                await engine.execute(SetIncidentSeverity(incident="INC-1", severity="SEV1"))
            await engine.execute(SetIncidentSeverity(incident="INC-1", severity="SEV1", reason="all users"))
            await engine.execute(SetIncidentStatus(incident="INC-1", status="resolved"))
            with pytest.raises(CommandError, match="unknown status 'fixed'"):
                await engine.execute(SetIncidentStatus(incident="INC-1", status="fixed"))
            with pytest.raises(CommandError, match=r"no service named 'chekout'.*checkout"):
                await engine.execute(OpenIncident(title="x", services=("chekout",)))
            state = engine.incident("INC-1").state
            assert state.status == "resolved" and state.severity == "SEV1"
            assert state.holder("commander") == "alice" and state.holder("scribe") == "bob"
            assert set(state.milestones) >= {"started", "acknowledged", "mitigated", "resolved"}
            d = durations(state)
            assert all(v is not None and v >= 0 for v in (d["acknowledge"], d["mitigate"], d["resolve"]))
            kinds = [e.kind for e in state.entries]
            assert kinds == ["opened", "ack", "note", "role", "severity", "status"], kinds
            note = state.entries[2]
            await engine.execute(SetIncidentStatus(incident="INC-1", status="investigating"))
            await engine.execute(PinIncidentEntry(incident="INC-1", entry=note.position))
            assert engine.incident("INC-1").state.pinned[0].text == "rolled back by hand"
            assert engine.incident("INC-1").state.reopened == 1
        # A second engine folds the same state from the log.
        async with Engine(cfg, store, lead=False, follow=False, sync_flag_file=False) as again:
            assert again.incident("INC-1").state == engine.incident("INC-1").state
            assert [i.id for i in again.snapshot.incidents][:2] == ["INC-1", "INC-2"]
    finally:
        await store.close()


async def test_two_consoles_racing_for_a_number_get_different_ones(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = await open_store(cfg.store)
    try:
        async with Engine(cfg, store, actor=ALICE, lead=False, follow=False, sync_flag_file=False) as a, \
                Engine(cfg, store, actor=Actor("bob"), lead=False, follow=False, sync_flag_file=False) as b:
            first = await a.execute(OpenIncident(title="one", services=("checkout",)))
            second = await b.execute(OpenIncident(title="two", services=("payments",)))  # b has not seen INC-1
            assert (first.detail.id, second.detail.id) == ("INC-1", "INC-2")
    finally:
        await store.close()


async def test_related_events_join_the_open_incidents_timeline(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = await open_store(cfg.store)
    try:
        async with Engine(cfg, store, actor=ALICE, lead=False, follow=False, sync_flag_file=False) as engine:
            await engine.execute(OpenIncident(title="checkout errors", services=("checkout",)))
        auto = automatic_actor()
        await store.append("health/checkout-canary", 0, [NewEvent("HealthChanged", {
            "service": "checkout-canary", "from": "ok", "to": "critical", "why": "errors 12% > 5.00%"})],
            actor=auto, at=engine.clock.now())
        await store.append("health/checkout", 0, [NewEvent("HealthChanged", {
            "service": "checkout", "from": "ok", "to": "warning", "why": "p95 620 ms > 500 ms"})],
            actor=auto, at=engine.clock.now())
        await store.append("health/payments", 0, [NewEvent("HealthChanged", {
            "service": "payments", "from": "ok", "to": "down", "why": "refused"})], actor=auto,
            at=engine.clock.now())
        async with Engine(cfg, store, lead=False, follow=False, sync_flag_file=False) as again:
            texts = [e.text for e in again.incident("INC-1").state.entries]
        # Only the incident's own services join: checkout does, its canary and payments do not.
        assert "checkout: ok → warning (p95 620 ms > 500 ms)" in texts
        assert not any("payments" in t or "canary" in t for t in texts), texts
    finally:
        await store.close()
