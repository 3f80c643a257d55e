"""The notification outbox: chat messages derived from the log, delivered by the leader.

What to send is not a queue anyone writes to: it is derived from the log.
Every incident opening, acknowledgement, note, status, severity and role
change, every rollout stage change and rollback is a notice for each
``[notify.NAME]`` sink that wants its type — whoever made the change (a key,
``conn incident`` on another machine, the leader itself). What was sent is
recorded on ``notify/<sink>`` (``NoticeDelivered`` with the notice's key), so:

* nothing is lost across restarts or a change of leader: a new leader folds
  the log, finds the notices without a delivery, and sends them, in order;
* nothing is sent twice after a crash: a delivered notice is recorded right
  after the receiver's 2xx, and each request carries the notice's key as
  ``Idempotency-Key`` for receivers that deduplicate;
* a sink added to the config later starts with the notices of the last
  :data:`BACKLOG` (``OutboxStarted`` records the log position it starts
  after), not from the log's beginning.

A failing sink is retried with back-off (``NoticeFailed`` is recorded when
the error changes, so ``conn status`` on any machine shows it); it never
blocks the incident, and later notices wait behind the failed one so the
channel reads in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from console.actions.notify import DeliveryError, deliver
from console.config import ConnConfig
from console.engine.incidents import IncidentProjection
from console.engine.projections import ProjectionSet
from console.engine.supervisor import Supervisor
from console.errors import ConcurrencyError, ConsoleError, StoreError
from console.model.clock import Clock
from console.model.describe import describe_change
from console.model.events import Actor, Event, NewEvent
from console.model.incidents import (
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_NOTED,
    INCIDENT_OPENED,
    INCIDENT_ROLE,
    INCIDENT_SEVERITY,
    INCIDENT_STATUS,
    INCIDENT_STREAM,
    number_of,
)
from console.model.notify import Notice, NotifyConfig, backoff, wants
from console.model.sanitize import clean_text
from console.secrets import get_secret, redact
from console.store.base import EventStore

log = logging.getLogger(__name__)

OUTBOX_STREAM = "notify/"
OUTBOX_STARTED = "OutboxStarted"
NOTICE_DELIVERED = "NoticeDelivered"
NOTICE_FAILED = "NoticeFailed"
BACKLOG = 900.0
"""A newly configured sink is sent the notices of the last 15 minutes (an incident
declared while no leader ran still reaches it), never the whole history."""

_INCIDENT_TYPES = {
    INCIDENT_OPENED: "incident.opened",
    INCIDENT_ACKNOWLEDGED: "incident.acknowledged",
    INCIDENT_NOTED: "incident.note",
    INCIDENT_STATUS: "incident.status",
    INCIDENT_SEVERITY: "incident.severity",
    INCIDENT_ROLE: "incident.role",
}
_ROLLOUT_TYPES = {"StageEntered": "rollout.stage", "RolloutCompleted": "rollout.stage",
                  "RollbackStarted": "rollout.rollback", "RollbackFinished": "rollout.stage"}


@dataclass
class SinkState:
    """One sink's outbox: where it started, what waits, what was sent, how it fails."""

    name: str
    after: int | None = None
    """Log position the sink starts after (None: not started yet)."""
    pending: OrderedDict[str, Notice] = field(default_factory=OrderedDict)
    delivered: set[str] = field(default_factory=set)
    sent: int = 0
    failure: str | None = None
    """The latest recorded failure (shown until a delivery succeeds)."""
    permanent: bool = False
    failed_key: str | None = None


@dataclass(frozen=True)
class OutboxView:
    """One sink as views and ``conn status`` show it."""

    name: str
    format: str
    pending: int
    sent: int
    failure: str | None
    needs_fixing: bool

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format, "pending": self.pending,
                "sent": self.sent, "failure": self.failure, "needs_fixing": self.needs_fixing}


class OutboxProjection:
    """Every sink's outbox, from ``notify/<sink>`` and the notices the log implies."""

    prefix = OUTBOX_STREAM

    def __init__(self, config: ConnConfig, incidents: IncidentProjection) -> None:
        self.config = config
        self._incidents = incidents
        self.sinks: dict[str, SinkState] = {name: SinkState(name) for name in config.notify}
        self._early: list[tuple[int, Notice]] = []
        """Notices seen before a sink's start position was known (the scan's order)."""

    def apply(self, event: Event) -> bool:
        name = event.stream.removeprefix(OUTBOX_STREAM)
        sink = self.sinks.get(name)
        if sink is None:
            return False  # a sink no longer configured
        p = event.payload if isinstance(event.payload, Mapping) else {}
        if event.type == OUTBOX_STARTED:
            after = p.get("after")
            if not isinstance(after, int):
                raise ValueError(f"{event.stream} v{event.version}: OutboxStarted has no 'after'")
            sink.after = after
            for position, notice in self._early:
                if position > after and notice.key not in sink.delivered and self._wants(name, notice):
                    sink.pending[notice.key] = notice
            return True
        key = p.get("key")
        if not isinstance(key, str):
            raise ValueError(f"{event.stream} v{event.version}: {event.type} has no 'key'")
        if event.type == NOTICE_DELIVERED:
            sink.delivered.add(key)
            sink.pending.pop(key, None)
            sink.sent += 1
            sink.failure, sink.permanent, sink.failed_key = None, False, None
            return True
        if event.type == NOTICE_FAILED:
            sink.failure = clean_text(str(p.get("error", "")), limit=300)
            sink.permanent = bool(p.get("permanent", False))
            sink.failed_key = key
            return True
        return False

    def observe(self, event: Event) -> bool:
        notice = self.notice_of(event)
        if notice is None:
            return False
        self._early.append((event.position, notice))
        if len(self._early) > 5000:
            del self._early[:1000]
        changed = False
        for name, sink in self.sinks.items():
            if (sink.after is not None and event.position > sink.after
                    and notice.key not in sink.delivered and self._wants(name, notice)):
                sink.pending[notice.key] = notice
                changed = True
        return changed

    def _wants(self, name: str, notice: Notice) -> bool:
        return wants(self.config.notify[name], notice.type)

    def notice_of(self, event: Event) -> Notice | None:
        """The notice an event implies, or None (most events imply none)."""
        p = event.payload if isinstance(event.payload, Mapping) else {}
        env = self.config.environment
        if event.stream.startswith(INCIDENT_STREAM) and event.type in _INCIDENT_TYPES:
            try:
                state = self._incidents.states.get(number_of(event.stream.removeprefix(INCIDENT_STREAM)))
            except ValueError:
                return None
            if state is None:
                return None
            kind = _INCIDENT_TYPES[event.type]
            what = {
                "incident.opened": f"{state.id} declared {p.get('severity', state.severity)}: {state.title}",
                "incident.acknowledged": f"{state.id} acknowledged by {event.actor}",
                "incident.note": f"{state.id} note by {event.actor}: {p.get('text', '')}",
                "incident.status": f"{state.id} is now {str(p.get('status', '')).replace('_', ' ')}",
                "incident.severity": f"{state.id} severity {p.get('from', '?')} → {p.get('severity', '?')}",
                "incident.role": f"{state.id} {p.get('role', '')}: {p.get('user', '')}",
            }[kind]
            if event.reason and kind != "incident.note":
                what += f" — {event.reason}"
            detail = str(p.get("entry") or "") if kind == "incident.opened" else ""
            return Notice(
                key=event.id, type=kind, summary=redact(clean_text(what, limit=500)), time=event.time,  # type: ignore[arg-type]
                incident=state.id, title=state.title,
                severity=str(p.get("severity")) if kind in ("incident.opened", "incident.severity")
                else state.severity,
                status=str(p.get("status")) if kind == "incident.status" else state.status,
                services=state.services, actor=event.actor, detail=redact(detail), environment=env,
            )
        if event.stream.startswith("rollout/") and event.type in _ROLLOUT_TYPES:
            name = event.stream.removeprefix("rollout/")
            plan = self.config.rollouts.get(name)
            services = tuple(s for s in (plan.baseline, plan.canary) if s) if plan else ()
            incident = self._incidents.open_for(services) if services else None
            detail = ""
            if event.type == "RollbackStarted" and p.get("automatic"):
                evidence = p.get("evidence") if isinstance(p.get("evidence"), Mapping) else {}
                detail = f"{p.get('criterion', '')}: {evidence.get('evidence', '') if evidence else ''}"
            return Notice(
                key=event.id, type=_ROLLOUT_TYPES[event.type],  # type: ignore[arg-type]
                summary=redact(clean_text(f"{name}: {describe_change(event)}", limit=500)),
                time=event.time, incident=incident.id if incident else None,
                title=incident.title if incident else None,
                severity=incident.severity if incident else None,
                status=incident.status if incident else None, services=services,
                actor=event.actor, detail=redact(clean_text(detail, limit=500)), environment=env,
            )
        return None

    def backlog_start(self, since: float) -> int:
        """The position a new sink starts after: its first notices are those since ``since``."""
        return max((position for position, notice in self._early if notice.time < since), default=0)

    def views(self) -> tuple[OutboxView, ...]:
        return tuple(
            OutboxView(name, self.config.notify[name].format, len(sink.pending), sink.sent,
                       sink.failure, sink.permanent)
            for name, sink in self.sinks.items()
        )


class OutboxDuty:
    """The leader's: start new sinks, then deliver each sink's pending notices in order."""

    def __init__(self, config: ConnConfig, *, store: EventStore, projections: ProjectionSet,
                 outbox: OutboxProjection, clock: Clock, actor: Actor,
                 wake: asyncio.Event, published: Callable[[], None]) -> None:
        self._config = config
        self._store = store
        self._projections = projections
        self._outbox = outbox
        self._clock = clock
        self._actor = actor
        self._wake = wake
        self._published = published
        self._attempts: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}

    def start(self, stack: contextlib.AsyncExitStack, supervisor: Supervisor) -> None:
        if not self._config.notify:
            return
        task = supervisor.spawn(self._run(), "notify")
        stack.push_async_callback(supervisor.cancel, [task])

    async def _run(self) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            for name, sink in self._outbox.sinks.items():
                if sink.after is None:
                    after = self._outbox.backlog_start(self._clock.now() - BACKLOG)
                    await self._record(name, OUTBOX_STARTED, {"after": after})
            while True:
                for name in self._outbox.sinks:
                    await self._drain(name, client)
                waits = [at - self._clock.now() for at in self._retry_at.values()]
                timeout = max(0.05, min(waits, default=5.0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 5.0))
                self._wake.clear()

    async def _drain(self, name: str, client: httpx.AsyncClient) -> None:
        sink = self._outbox.sinks[name]
        spec: NotifyConfig = self._config.notify[name]
        while sink.pending:
            if self._retry_at.get(name, 0.0) > self._clock.now():
                return
            key, notice = next(iter(sink.pending.items()))
            try:
                url = get_secret(spec.url_secret)
                await deliver(spec.format, url, notice, timeout=spec.timeout, client=client,
                              name=f"{name} «secret:{spec.url_secret}»")
            except (DeliveryError, ConsoleError) as e:
                attempt = self._attempts.get(name, 0) + 1
                self._attempts[name] = attempt
                self._retry_at[name] = self._clock.now() + backoff(attempt)
                error = redact(str(e))
                permanent = bool(getattr(e, "permanent", False))
                if sink.failure != clean_text(error, limit=300) or sink.failed_key != key:
                    log.warning("notify %s: %s (attempt %d; retrying)", name, error, attempt)
                    await self._record(name, NOTICE_FAILED, {"key": key, "error": error, "attempt": attempt,
                                                             "permanent": permanent,
                                                             "code": getattr(e, "code", None)})
                return
            self._attempts.pop(name, None)
            self._retry_at.pop(name, None)
            await self._record(name, NOTICE_DELIVERED, {"key": key, "type": notice.type})
            sink.pending.pop(key, None)  # even if the record failed: never send it twice from here

    async def _record(self, name: str, kind: str, payload: dict[str, Any]) -> None:
        stream = OUTBOX_STREAM + name
        try:
            await self._store.append(stream, self._projections.version_of(stream),
                                     [NewEvent(kind, payload)], actor=self._actor, at=self._clock.now())
        except ConcurrencyError:
            pass
        except StoreError as e:
            log.warning("notify %s: cannot record %s: %s", name, kind, e)
        with contextlib.suppress(StoreError):
            await self._projections.refresh(self._store, stream)
        self._published()
