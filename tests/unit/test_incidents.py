"""Incidents: the lifecycle folded from events the deciders produced, with explicit times.

Every state here is a fold of events (round-tripped through JSON, as the
store returns them), never a hand-built state.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.model.events import GENESIS_HASH, Event, event_hash
from console.model.incident_config import DEFAULT_SEVERITIES, IncidentsConfig, severity_of
from console.model.incidents import (
    OPEN_STATUSES,
    STATUSES,
    Change,
    IncidentRefused,
    IncidentState,
    acknowledge,
    add_note,
    alert_joined,
    alert_resolved,
    assign_role,
    clocks,
    durations,
    join,
    number_of,
    open_incident,
    pin,
    role_of,
    set_severity,
    set_status,
    stamp_milestone,
    status_of,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Log:
    """One incident's stream: deciders' changes appended as real events."""

    def __init__(self, number: int = 1) -> None:
        self.state = IncidentState(number)
        self.position = 0

    def add(self, changes: list[Change], *, at: float, actor: str = "alice", reason: str = "") -> IncidentState:
        for kind, payload in changes:
            self.position += 1
            payload = json.loads(json.dumps(payload))
            version = self.state.version + 1
            fields: dict[str, Any] = {
                "id": f"e{self.position}", "stream": self.state.stream, "version": version, "type": kind,
                "time": at, "actor": actor, "reason": reason, "payload": payload, "prev_hash": GENESIS_HASH,
            }
            event = Event(position=self.position, hash=event_hash(**fields), **fields)
            self.state = self.state.apply(event)
        return self.state


def opened(at: float = T0, **kw: Any) -> Log:
    log = Log()
    log.add(open_incident(log.state, title=kw.pop("title", "checkout errors"),
                          services=kw.pop("services", ["checkout"]), severity=kw.pop("severity", "SEV2"),
                          commander=kw.pop("commander", None), **kw), at=at)
    return log


def test_names_read_as_operators_type_them() -> None:
    assert number_of("INC-42") == number_of("inc-42") == number_of("42") == 42
    assert severity_of("2") == severity_of("sev2") == "SEV2"
    assert status_of("postmortem done") == "postmortem_done"
    assert role_of("Scribe") == "scribe"
    with pytest.raises(ValueError, match="use one of SEV1, SEV2, SEV3, SEV4"):
        severity_of("SEV5")
    with pytest.raises(ValueError, match="investigating, identified, mitigated, resolved, postmortem done"):
        status_of("fixed")
    with pytest.raises(ValueError, match="commander, scribe, comms"):
        role_of("boss")
    with pytest.raises(ValueError, match="INC-1, INC-2"):
        number_of("INC-x")


def test_defaults_are_the_readiness_plans_and_tables_override_only_what_they_set() -> None:
    assert [DEFAULT_SEVERITIES[s].respond for s in ("SEV1", "SEV2", "SEV3", "SEV4")] == [300, 900, 3600, 28800]
    config = IncidentsConfig.model_validate({"severities": {"SEV3": {"respond": "30m"}}})
    assert config.severity("SEV3").respond == 1800
    assert config.severity("SEV3").description == DEFAULT_SEVERITIES["SEV3"].description
    assert config.severity("SEV1") == DEFAULT_SEVERITIES["SEV1"]


def test_a_whole_incident_from_declaration_to_postmortem() -> None:
    log = opened(started_at=T0 - 120)
    state = log.add(acknowledge(log.state), at=T0 + 60, actor="bob")
    assert state.holder("commander") == "bob"  # the first to acknowledge leads when nobody does
    state = log.add(add_note(state, "errors from the canary only"), at=T0 + 90)
    state = log.add(set_status(state, "identified", now=T0 + 100), at=T0 + 100)
    state = log.add(assign_role(state, "commander", "carol"), at=T0 + 110, actor="bob")
    state = log.add(set_status(state, "resolved", now=T0 + 300), at=T0 + 300)
    assert state.milestones["mitigated"] == state.milestones["resolved"] == T0 + 300  # skipped still stamps
    assert durations(state) == {"detect": None, "acknowledge": 60.0, "mitigate": 420.0, "resolve": 420.0}
    commander = [r for r in state.roles if r.role == "commander"]
    assert [(r.user, r.since, r.until) for r in commander] == [("bob", T0 + 60, T0 + 110), ("carol", T0 + 110, None)]
    state = log.add(set_status(state, "investigating", now=T0 + 400), at=T0 + 400, reason="errors are back")
    assert state.reopened == 1 and "resolved" not in state.milestones and state.is_open
    assert state.entries[-1].text == "reopened; status: resolved → investigating — errors are back"


def test_refusals_say_why() -> None:
    log = opened()
    with pytest.raises(IncidentRefused, match="SEV2 already"):
        set_severity(log.state, "SEV2")
    with pytest.raises(IncidentRefused, match="investigating already"):
        set_status(log.state, "investigating", now=T0)
    with pytest.raises(IncidentRefused, match="before the incident started"):
        stamp_milestone(log.state, "detected", T0 - 1, now=T0 + 10)
    with pytest.raises(IncidentRefused, match="in the future"):
        stamp_milestone(log.state, "mitigated", T0 + 100, now=T0 + 10)
    with pytest.raises(IncidentRefused, match="empty"):
        add_note(log.state, "   ")
    with pytest.raises(IncidentRefused, match="no timeline entry #99"):
        pin(log.state, 99)
    state = log.add(acknowledge(log.state), at=T0 + 1)
    with pytest.raises(IncidentRefused, match="acknowledged by alice already"):
        acknowledge(state)
    with pytest.raises(IncidentRefused, match="does not exist"):
        acknowledge(IncidentState(7))


def test_triggers_and_alerts_join_once_and_resolve() -> None:
    log = opened(trigger={"kind": "rollback", "key": "ev-1"}, entry="automatic rollback of checkout")
    assert log.state.automatic and "ev-1" in log.state.triggers
    state = log.add(join(log.state, services=["payments"], trigger={"key": "ev-2"}, entry="also payments"),
                    at=T0 + 5)
    assert state.services == ("checkout", "payments")
    with pytest.raises(IncidentRefused, match="has this trigger already"):
        join(state, services=["payments"], trigger={"key": "ev-2"}, entry="again")
    state = log.add(alert_joined(state, fingerprint="abc", starts_at=T0 - 30, title="HighErrorRate",
                                 labels={"service": "checkout"}), at=T0 + 6)
    with pytest.raises(IncidentRefused, match="has this alert already"):
        alert_joined(state, fingerprint="abc", starts_at=T0 - 30, title="x", labels={})
    state = log.add(alert_resolved(state, fingerprint="abc", starts_at=T0 - 30), at=T0 + 60)
    assert [e.text for e in state.entries][-2:] == ["alert firing: HighErrorRate", "alert resolved: HighErrorRate"]


def test_clocks_show_an_overdue_acknowledgement_and_the_next_update() -> None:
    log = opened()
    c = clocks(log.state, respond=900, update_every=1800, now=T0 + 1000)
    assert c["ack_overdue"] and c["ack_left"] == -100 and c["update_due_in"] == 800
    state = log.add(acknowledge(log.state), at=T0 + 1200)
    c = clocks(state, respond=900, update_every=1800, now=T0 + 1300)
    assert not c["ack_overdue"] and c["ack_after"] == 1200 and c["update_due_in"] == 1700


# --- any sequence of commands ---------------------------------------------------

ACTIONS = st.sampled_from([
    "ack", "note", "status", "severity", "role", "pin", "stamp", "join", "alert", "resolve_alert",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(ACTIONS, st.integers(0, 10), st.floats(-500, 500)), max_size=40))
def test_no_sequence_of_commands_reaches_an_impossible_state(steps: list[tuple[str, int, float]]) -> None:
    now = T0
    log = opened(at=now, started_at=T0 - 60)
    for action, n, offset in steps:
        now += 7
        state = log.state
        try:
            if action == "ack":
                changes = acknowledge(state)
            elif action == "note":
                changes = add_note(state, f"note {n}")
            elif action == "status":
                changes = set_status(state, STATUSES[n % len(STATUSES)], now=now,
                                     at=now + offset if offset < 0 else None)
            elif action == "severity":
                changes = set_severity(state, f"SEV{n % 4 + 1}")  # type: ignore[arg-type]
            elif action == "role":
                changes = assign_role(state, ("commander", "scribe", "comms")[n % 3], f"user{n}")
            elif action == "pin":
                changes = pin(state, state.entries[n % len(state.entries)].position)
            elif action == "stamp":
                changes = stamp_milestone(state, ("detected", "mitigated")[n % 2], now + offset, now=now)
            elif action == "join":
                changes = join(state, services=[f"s{n}"], trigger={"key": f"k{n}"}, entry="joined")
            elif action == "alert":
                changes = alert_joined(state, fingerprint=f"f{n}", starts_at=T0, title="a", labels={})
            else:
                changes = alert_resolved(state, fingerprint=f"f{n}", starts_at=T0)
        except IncidentRefused:
            continue
        state = log.add(changes, at=now)
        started = state.milestones["started"]
        assert all(at >= started for at in state.milestones.values())
        assert all(v is None or v >= 0 for v in durations(state).values())
        assert state.status in STATUSES
        assert state.is_open == (state.status in OPEN_STATUSES)
        if "resolved" in state.milestones:
            assert STATUSES.index(state.status) >= STATUSES.index("resolved")
            assert state.milestones["resolved"] >= started
        for role in ("commander", "scribe", "comms"):
            assert len([r for r in state.roles if r.role == role and r.until is None]) <= 1
        assert [e.position for e in state.entries] == sorted(e.position for e in state.entries)
