"""The leader's incident duties: automatic rollbacks and firing alerts open incidents.

* An **automatic rollback** (a ``RollbackStarted`` event with ``automatic``)
  opens an incident with ``[incidents] auto_rollback_severity`` (SEV2 by
  default), or joins the open incident of the rollout's services, with the
  triggering criterion and its evidence as the first entry. The trigger's
  key is the rollback event's id: a leader that crashed after the rollback
  and before the incident leaves the work to the next one, which does it
  once (a trigger already on an incident is a no-op).
* **Alerts** (``[sources.alertmanager]``): each poll of Alertmanager's API v2
  lists the active, unsilenced, uninhibited alerts; an occurrence
  (fingerprint, startsAt) matching a rule opens or joins an incident with the
  rule's severity; repeats are no-ops. An occurrence that is no longer listed
  by a successful poll is noted resolved on its incident. A poll that fails
  or returns garbage is a source problem shown in the header: it changes no
  incident.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from console.config import ConnConfig
from console.engine.commands import Command, CommandResult
from console.engine.incidents import IncidentProjection, RaiseIncident, ResolveIncidentAlert
from console.engine.supervisor import Supervisor
from console.errors import ConsoleError
from console.model.clock import Clock
from console.model.events import Actor, Event
from console.model.incidents import OPEN_STATUSES
from console.secrets import redact

log = logging.getLogger(__name__)

TRIGGER_MAX_AGE = 900.0
"""An automatic rollback older than this (seconds) opens no incident: a leader that
starts on an old log does not declare last week's rollbacks."""
TICK = 0.5
"""Seconds between looks at new triggers when no event woke the duty sooner."""

Execute = Callable[[Command, Actor], Awaitable[CommandResult]]


def rollback_trigger(config: ConnConfig, event: Event) -> RaiseIncident | None:
    """The incident an automatic rollback event raises, or None (not automatic, unknown rollout)."""
    if event.type != "RollbackStarted" or not event.stream.startswith("rollout/"):
        return None
    p = event.payload if isinstance(event.payload, Mapping) else {}
    if not p.get("automatic"):
        return None
    name = event.stream.removeprefix("rollout/")
    plan = config.rollouts.get(name)
    if plan is None:
        return None
    services = tuple(s for s in (plan.baseline, plan.canary) if s)
    criterion = str(p.get("criterion") or "an abort criterion")
    evidence = p.get("evidence") if isinstance(p.get("evidence"), Mapping) else {}
    said = str(evidence.get("evidence") or "") if evidence else ""
    since = evidence.get("since") if evidence else None
    started = float(since) if isinstance(since, int | float) and not isinstance(since, bool) else None
    entry = (f"automatic rollback of {name} (run {p.get('run')}): {criterion}"
             + (f" — {said}" if said else ""))
    return RaiseIncident(
        title=f"{name}: automatic rollback ({criterion})",
        services=services, severity=config.incidents.auto_rollback_severity,
        trigger={"kind": "rollback", "key": event.id, "rollout": name, "run": p.get("run"),
                 "criterion": criterion, "evidence": dict(evidence) if evidence else None},
        entry=redact(entry), started_at=min(started, event.time) if started else None,
        detected_at=event.time,
    )


class IncidentDuty:
    """Raises incidents for automatic rollbacks (and alerts, when configured), as the leader."""

    def __init__(self, config: ConnConfig, *, incidents: IncidentProjection, recent: Callable[[], list[Event]],
                 execute: Execute, actor: Actor, clock: Clock,
                 report: Callable[[str | None], None], wake: asyncio.Event | None = None,
                 write_alerts: Callable[[Any], Awaitable[None]] | None = None) -> None:
        self._config = config
        self._incidents = incidents
        self._recent = recent
        self._execute = execute
        self._actor = actor
        self._clock = clock
        self._report = report
        self._done: set[str] = set()
        self._wake = wake or asyncio.Event()
        self._write_alerts = write_alerts

    def start(self, stack: contextlib.AsyncExitStack, supervisor: Supervisor) -> None:
        tasks = [supervisor.spawn(self._rollbacks(), "incidents")]
        if self._config.sources.alertmanager is not None:
            tasks.append(supervisor.spawn(self._alerts(), "alertmanager"))
        stack.push_async_callback(supervisor.cancel, tasks)

    async def _rollbacks(self) -> None:
        while True:
            self._wake.clear()
            await self.check_rollbacks()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=TICK)

    async def check_rollbacks(self) -> None:
        now = self._clock.now()
        for event in self._recent():
            if event.id in self._done or now - event.time > TRIGGER_MAX_AGE:
                continue
            raise_ = rollback_trigger(self._config, event)
            if raise_ is None:
                self._done.add(event.id)
                continue
            if self._incidents.has_trigger(event.id):
                self._done.add(event.id)
                continue
            try:
                result = await self._execute(raise_, self._actor)
            except ConsoleError as e:
                self._report(f"could not open the incident for {event.stream}'s rollback: {e}")
                continue
            self._report(None)
            self._done.add(event.id)
            log.warning("%s: %s", event.stream, result.message)

    # --- alerts ----------------------------------------------------------------------

    async def _alerts(self) -> None:
        from console.model.alerts import alert_service, alert_title, match_rule
        from console.sources.alertmanager import AlertmanagerSource

        spec = self._config.sources.alertmanager
        assert spec is not None
        from console.model.alerts import AlertsLive, FiringAlert
        from console.model.incidents import alert_key

        async with AlertmanagerSource(spec) as source:
            while True:
                try:
                    alerts = await source.fetch()
                except ConsoleError as e:
                    self._report(f"alertmanager: {e}")
                    await self._show(AlertsLive(at=self._clock.now(), problem=redact(str(e))))
                    await asyncio.sleep(spec.interval)
                    continue
                self._report(None)
                listed: set[tuple[str, float]] = set()
                shown: list[FiringAlert] = []
                for alert in alerts:
                    rule = match_rule(spec.rules, alert)
                    service, title = alert_service(rule, alert), alert_title(rule, alert)
                    if rule is not None:
                        listed.add(alert.occurrence)
                        await self._alert_fired(alert, rule, service, title)
                    key = alert_key(alert.fingerprint, alert.starts_at)
                    incident = next((s.id for s in self._incidents.states.values() if key in s.triggers), None)
                    shown.append(FiringAlert(
                        name=alert.name, title=title, fingerprint=alert.fingerprint,
                        starts_at=alert.starts_at, service=service,
                        severity=rule.severity if rule is not None else None, incident=incident))
                await self._alerts_gone(listed)
                await self._show(AlertsLive(at=self._clock.now(), alerts=tuple(shown)))
                await asyncio.sleep(spec.interval)

    async def _show(self, live: Any) -> None:
        if self._write_alerts is not None:
            await self._write_alerts(live)

    async def _alert_fired(self, alert: Any, rule: Any, service: str | None, title: str) -> None:
        from console.model.incidents import alert_key

        key = alert_key(alert.fingerprint, alert.starts_at)
        if self._incidents.has_trigger(key):
            return
        services = (service,) if service and service in self._config.services else ()
        command = RaiseIncident(
            title=title, services=services, severity=rule.severity,
            trigger={"kind": "alert", "key": key, "fingerprint": alert.fingerprint},
            entry=f"alert firing: {title}", started_at=min(alert.starts_at, self._clock.now()),
            detected_at=self._clock.now(),
            alert={"fingerprint": alert.fingerprint, "starts_at": alert.starts_at,
                   "labels": dict(alert.labels), "title": title},
        )
        try:
            await self._execute(command, self._actor)
        except ConsoleError as e:
            self._report(f"could not open an incident for alert {title}: {e}")

    async def _alerts_gone(self, listed: set[tuple[str, float]]) -> None:
        for state in list(self._incidents.states.values()):
            if state.status not in OPEN_STATUSES:
                continue
            for record in state.alerts.values():
                if record.resolved_at is None and record.occurrence not in listed:
                    with contextlib.suppress(ConsoleError):
                        await self._execute(ResolveIncidentAlert(
                            incident=state.id, fingerprint=record.fingerprint,
                            starts_at=record.starts_at), self._actor)
