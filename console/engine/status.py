"""The `conn status` document: one stable JSON shape for scripts and views."""

from __future__ import annotations

from typing import Any

from console.engine.core import Engine
from console.engine.sampling import probe_once
from console.engine.snapshot import IncidentPanel, RolloutPanel
from console.model.incidents import MAX_TITLE
from console.model.live import ServiceLive, current_writer, is_fresh
from console.model.sanitize import clean_text

RECENTLY_RESOLVED = 24 * 3600.0
"""Seconds a resolved incident stays in ``conn status --json``: a script (or the next shift)
still sees what ended overnight; older ones are in `conn incident list --all`."""


async def status_document(engine: Engine, *, probe: bool = True) -> dict[str, Any]:
    """Read the live table (and probe directly what no leader has written lately).

    A live row older than three probe intervals means no leader is writing;
    then, unless ``probe`` is False, the service is probed once here and the
    document says so in ``notes``. ``engine`` is started here if it was not
    (a reader: it neither follows nor writes).
    """
    if engine.state == "created":
        await engine.start()
    store = engine.store
    rows = await store.read_live()
    now = engine.clock.now()
    notes: list[str] = []
    fresh: dict[str, tuple[ServiceLive | None, float | None, str | None]] = {}
    missing: list[str] = []
    for name, spec in engine.config.services.items():
        row = rows.get(name)
        if row is None or not is_fresh(row.updated_at, spec.interval, now, timeout=spec.timeout):
            missing.append(name)
            continue
        try:
            live: ServiceLive | None = ServiceLive.model_validate(row.data)
        except ValueError:
            live = None
        fresh[name] = (live, row.updated_at, row.writer)
    probed: dict[str, ServiceLive] = {}
    if missing and probe:
        probed = await probe_once(engine.config, engine.clock, missing)
        notes.append(
            f"no leader has written {', '.join(missing)} within three intervals; "
            "probed directly once (run `conn agent` or a console to keep it live)"
        )
    elif missing:
        notes.append(f"no leader has written {', '.join(missing)} within three intervals")
    services = []
    for name, spec in engine.config.services.items():
        if name in fresh:
            live, updated, writer = fresh[name]
            source = "live"
        elif name in probed:
            live, updated, writer, source = probed[name], now, None, "probe"
        else:
            row = rows.get(name)
            live, updated, writer, source = None, row.updated_at if row else None, None, "live"
        services.append(_service(name, spec.interval, spec.timeout, live, updated, writer, source, now))
    leader = current_writer(
        ((row.writer, row.updated_at, engine.config.services[name].interval,
          engine.config.services[name].timeout)
         for name, row in rows.items() if name in engine.config.services),
        now,
    )
    return {
        "environment": engine.config.environment,
        "store": store.url,
        "generated_at": now,
        "leader": leader,
        "services": services,
        "flags": [view.as_json() for view in engine.snapshot.flags],
        "rollouts": [rollout_json(panel, now) for panel in engine.snapshot.rollouts],
        "incidents": [incident_json(panel, now) for panel in engine.snapshot.incidents
                      if shown_in_status(panel, now)],
        "notify": [view.as_json() for view in engine.snapshot.notify],
        "notes": notes,
    }


def _service(
    name: str,
    interval: float,
    timeout: float,
    live: ServiceLive | None,
    updated: float | None,
    writer: str | None,
    source: str,
    now: float,
) -> dict[str, Any]:
    age = None if updated is None else round(max(0.0, now - updated), 3)
    stale = not is_fresh(updated, interval, now, timeout=timeout)
    signals = []
    if live is not None:
        for signal in live.signals:
            signal_age = None if signal.at is None else round(max(0.0, now - signal.at), 3)
            signals.append({
                "name": signal.name,
                "label": signal.label,
                "value": signal.value,
                "unit": signal.unit,
                "source": signal.source,
                "age_s": signal_age,
                "stale": signal.state == "stale" or stale,
                "state": signal.state,
                "detail": signal.detail,
                "threshold": None if signal.threshold is None else signal.threshold.model_dump(mode="json"),
            })
    return {
        "name": name,
        "health": "unknown" if live is None or (stale and source == "live") else live.health,
        "reason": (
            "no value yet" if live is None
            else f"stale: last written {age:.0f}s ago — {live.reason}" if stale and source == "live"
            else live.reason
        ),
        "observed_at": updated,
        "age_s": age,
        "stale": stale,
        "source": source,
        "writer": writer,
        "health_since": None if live is None else live.health_since,
        "signals": signals,
    }


def rollout_json(panel: RolloutPanel, now: float) -> dict[str, Any]:
    """One rollout in ``conn status --json``: where it is, and its criteria with evidence."""
    document = panel.view(now).as_json()
    live = panel.live
    current = live is not None and live.run == panel.state.run
    document.update({
        "judged_at": live.at if current and live else None,
        "gate_passing": live.gate_passing if current and live else None,
        "blocked": live.blocked if current and live else "",
        "rollback_at": live.rollback_at if current and live else None,
        "rollback_reason": live.rollback_reason if current and live else "",
        "gate": [c.model_dump(mode="json") for c in live.gate] if current and live else [],
        "abort": [c.model_dump(mode="json") for c in live.abort] if current and live else [],
    })
    return document


def shown_in_status(panel: IncidentPanel, now: float) -> bool:
    """Open incidents, and those resolved within :data:`RECENTLY_RESOLVED` of ``now``."""
    state = panel.state
    if state.is_open:
        return True
    resolved = state.milestones.get("resolved")
    return resolved is not None and now - resolved <= RECENTLY_RESOLVED


def incident_json(panel: IncidentPanel, now: float) -> dict[str, Any]:
    """One incident in ``conn status --json`` (and `conn incident list --json`): who, what, its clocks.

    ``ack_overdue`` is true while it is unacknowledged past its severity's target;
    ``next_update_due`` is the clock time the commander owes the next update by (null
    once it is no longer open). The title is cleaned of escape sequences and control
    characters; markup stays as the characters it is.
    """
    state = panel.state
    clock = panel.clocks(now)
    commander = state.holder("commander")
    return {
        "id": state.id,
        "title": clean_text(state.title, limit=MAX_TITLE),
        "severity": state.severity,
        "status": state.status,
        "open": state.is_open,
        "services": list(state.services),
        "declared_at": state.declared_at,
        "declared_by": clean_text(state.declared_by),
        "started_at": state.milestones.get("started", state.declared_at),
        "acknowledged_at": state.acknowledged_at,
        "acknowledged_by": clean_text(state.acknowledged_by) if state.acknowledged_by else None,
        "ack_due_at": state.declared_at + panel.severity.respond,
        "ack_overdue": bool(clock["ack_overdue"]),
        "next_update_due": state.last_update + panel.severity.update_every if state.is_open else None,
        "mitigated_at": state.milestones.get("mitigated"),
        "resolved_at": state.milestones.get("resolved"),
        "commander": clean_text(commander) if commander else None,
        "automatic": state.automatic,
    }
