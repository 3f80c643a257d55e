"""Incidents, the third projection: the fold of ``incident/``, its commands, its timeline.

The lifecycle and the deciders are pure (:mod:`console.model.incidents`).
This module gives them the engine's plumbing: a projection over
``incident/INC-<n>`` streams that also *observes* every other event of the
log, so a rollout stage, a flag flip, a health change or a runbook step of an
open incident's services joins its timeline as it happens; command types for
the keys and the CLI; and the leader-only :class:`RaiseIncident` that an
automatic rollback or a firing alert uses to open an incident or join the
open one of the same service.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from console.config import ConnConfig
from console.engine.commands import Command, CommandResult, Handler
from console.engine.projections import ProjectionSet, append_and_fold
from console.errors import CommandError, ConcurrencyError
from console.model.clock import Clock
from console.model.describe import describe_change
from console.model.events import Actor, Event
from console.model.incident_config import Severity, severity_of
from console.model.incidents import (
    INCIDENT_STREAM,
    Change,
    IncidentRefused,
    IncidentState,
    Role,
    Status,
    acknowledge,
    add_note,
    alert_joined,
    alert_resolved,
    assign_role,
    incident_id,
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
from console.model.sanitize import clean_text
from console.model.text import suggest
from console.store.base import EventStore

log = logging.getLogger(__name__)

LOOKBACK = 300.0
"""Seconds before an incident started whose related events still join its timeline
(the stage change that let a bad canary in comes before the breach)."""
RECENT_RELATED = 2000
"""Related events kept for that look-back (bounded)."""
OPEN_ATTEMPTS = 20
"""Numbers tried when opening races other consoles for the next one."""

HEALTH_STREAM = "health/"
"""A service's health transitions (recorded by the leader) live on ``health/<service>``."""
HEALTH_CHANGED = "HealthChanged"
RUNBOOK_STREAM = "runbook/"


# --- the projection --------------------------------------------------------------


class IncidentProjection:
    """Every incident, folded; related events of other streams joined to open ones."""

    prefix = INCIDENT_STREAM

    def __init__(self, config: ConnConfig) -> None:
        self.config = config
        self.states: dict[int, IncidentState] = {}
        self._recent: deque[tuple[Event, str, str, frozenset[str] | None, str | None]] = deque(
            maxlen=RECENT_RELATED)
        self._run_incident: dict[str, str] = {}
        self._run_steps: dict[str, tuple[str, list[str]]] = {}
        self.rollbacks: deque[Event] = deque(maxlen=100)
        """Automatic rollbacks seen (the leader's duty raises an incident for each, once)."""
        self._rollout_services = {
            name: frozenset(s for s in (plan.canary, plan.baseline) if s)
            for name, plan in config.rollouts.items()
        }
        flag_services: dict[str, set[str]] = {}
        for name, plan in config.rollouts.items():
            if plan.flag:
                flag_services.setdefault(plan.flag, set()).update(self._rollout_services[name])
        self._flag_services = {k: frozenset(v) for k, v in flag_services.items()}

    # folding

    def apply(self, event: Event) -> bool:
        try:
            number = number_of(event.stream.removeprefix(INCIDENT_STREAM))
        except ValueError as e:
            raise ValueError(f"{event.stream}: not an incident stream ({e})") from None
        before = self.states.get(number) or IncidentState(number)
        after = before.apply(event)
        if after is before:
            return False
        if not before.opened and after.opened:
            after = self._backfill(after)
        self.states[number] = after
        return True

    def observe(self, event: Event) -> bool:
        """Another stream's event, in log order: join it to every open incident it relates to."""
        if (event.type == "RollbackStarted" and isinstance(event.payload, Mapping)
                and event.payload.get("automatic")):
            self.rollbacks.append(event)
        related = self._relation(event)
        if related is None:
            return False
        kind, text, services, incident = related
        self._recent.append((event, kind, text, services, incident))
        changed = False
        for number, state in self.states.items():
            if state.is_open and _relates(state, services, incident):
                self.states[number] = state.relate(event, kind, text)
                changed = True
        return changed

    def _backfill(self, state: IncidentState) -> IncidentState:
        since = state.milestones.get("started", state.declared_at) - LOOKBACK
        for event, kind, text, services, incident in self._recent:
            # A flag no rollout ties to a service joins open incidents as it changes,
            # but is not pulled in from before the incident (seeding, unrelated work).
            if services is None:
                continue
            if event.time >= since and _relates(state, services, incident):
                state = state.relate(event, kind, text)
        entries = tuple(sorted(state.entries, key=lambda e: e.position))
        return replace(state, entries=entries)

    def _relation(self, event: Event) -> tuple[str, str, frozenset[str] | None, str | None] | None:
        """``(kind, text, services or None for any, incident id or None)``, or None: unrelated."""
        kind, _, name = event.stream.partition("/")
        if kind == "rollout":
            services = self._rollout_services.get(name, frozenset())
            return "rollout", f"{name}: {describe_change(event)}", services, None
        if kind == "flag":
            return "flag", f"flag {name}: {describe_change(event)}", self._flag_services.get(name), None
        if kind == "health" and event.type == HEALTH_CHANGED:
            return "health", health_text(event), frozenset({name}), None
        if event.stream.startswith(RUNBOOK_STREAM):
            payload = event.payload if isinstance(event.payload, Mapping) else {}
            linked = payload.get("incident")
            if isinstance(linked, str) and linked:
                self._run_incident[event.stream] = linked
                steps = payload.get("steps")
                self._run_steps[event.stream] = (
                    str(payload.get("runbook", "")), [str(t) for t in steps] if isinstance(steps, list) else [])
            incident = self._run_incident.get(event.stream)
            if incident is None:
                return None
            runbook, titles = self._run_steps.get(event.stream, ("", []))
            step = payload.get("step")
            if isinstance(step, int) and 0 < step <= len(titles) and "title" not in payload:
                payload = {**payload, "title": titles[step - 1]}
            described = describe_change(replace(event, payload=payload))
            text = described if event.type == "runbook.started" else f"runbook {runbook}: {described}"
            return "runbook", text, frozenset(), incident
        return None

    # queries

    def get(self, text: str) -> IncidentState:
        """One incident by id (``INC-3``, ``3``). Raises CommandError when there is none."""
        try:
            number = number_of(text)
        except ValueError as e:
            raise CommandError(str(e)) from None
        state = self.states.get(number)
        if state is None or not state.opened:
            known = ", ".join(s.id for s in self.ordered()[:10]) or "none yet"
            raise CommandError(f"no incident {incident_id(number)} (incidents: {known})")
        return state

    def ordered(self) -> list[IncidentState]:
        """Open ones first (most severe, then newest), then the rest newest first."""
        states = [s for s in self.states.values() if s.opened]
        return sorted(states, key=lambda s: (not s.is_open, s.severity if s.is_open else "",
                                             -s.declared_at))

    def open_for(self, services: Sequence[str]) -> IncidentState | None:
        """The newest open incident sharing a service with ``services``."""
        wanted = set(services)
        found = [s for s in self.states.values() if s.is_open and wanted & set(s.services)]
        return max(found, key=lambda s: s.declared_at) if found else None

    def next_number(self) -> int:
        return max(self.states, default=0) + 1

    def has_trigger(self, key: str) -> bool:
        return any(key in s.triggers for s in self.states.values())


def _relates(state: IncidentState, services: frozenset[str] | None, incident: str | None) -> bool:
    if incident is not None:
        return incident == state.id
    return services is None or bool(services & set(state.services))


AUTO_ROLLBACK_ALERT = "ConnAutoRollback"
"""The ``alertname`` an automatic rollback's incident answers to when runbooks are offered."""


def incident_labels(state: IncidentState, config: ConnConfig) -> list[dict[str, str]]:
    """Label sets a runbook's ``alerts`` matchers are matched against: each alert's labels,
    and for an incident an automatic rollback opened, ``alertname``, ``rollout``, ``signal``
    (the criterion's signal) and ``service`` (the canary)."""
    labels = [dict(alert.labels) for alert in state.alerts.values()]
    trigger = state.trigger or {}
    if trigger.get("kind") == "rollback":
        rollout = str(trigger.get("rollout") or "")
        criterion = str(trigger.get("criterion") or "")
        plan = config.rollouts.get(rollout)
        signal = criterion.split()[0] if criterion.split() else ""
        labels.append({"alertname": AUTO_ROLLBACK_ALERT, "rollout": rollout, "signal": signal,
                       "service": plan.canary if plan else ""})
    return labels


def health_text(event: Event) -> str:
    """A health transition in words: ``checkout-canary: ok → critical (errors 12.3% > 5.00%)``."""
    p = event.payload if isinstance(event.payload, Mapping) else {}
    name = event.stream.removeprefix(HEALTH_STREAM)
    why = clean_text(str(p.get("why") or ""), limit=160)
    return f"{name}: {p.get('from', '?')} → {p.get('to', '?')}" + (f" ({why})" if why else "")


# --- commands --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OpenIncident(Command):
    """Declare an incident."""

    title: str
    services: tuple[str, ...] = ()
    severity: str = "SEV3"
    started_at: float | None = None

    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"declare a {self.severity.upper()} incident"


@dataclass(frozen=True, kw_only=True)
class AcknowledgeIncident(Command):
    incident: str
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"acknowledge {self.incident}"


@dataclass(frozen=True, kw_only=True)
class SetIncidentStatus(Command):
    incident: str
    status: str
    at: float | None = None
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"mark {self.incident} {self.status.replace('_', ' ')}"


@dataclass(frozen=True, kw_only=True)
class SetIncidentSeverity(Command):
    """Change the severity: a reason is required (it is on the timeline)."""

    incident: str
    severity: str

    @property
    def summary(self) -> str:
        return f"change {self.incident} to {self.severity.upper()}"


@dataclass(frozen=True, kw_only=True)
class AssignIncidentRole(Command):
    incident: str
    role: str
    user: str
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"hand {self.role} of {self.incident} to {self.user}"


@dataclass(frozen=True, kw_only=True)
class NoteIncident(Command):
    incident: str
    text: str
    pinned: bool = False
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"note on {self.incident}"


@dataclass(frozen=True, kw_only=True)
class PinIncidentEntry(Command):
    incident: str
    entry: int
    pinned: bool = True
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"{'pin' if self.pinned else 'unpin'} entry #{self.entry} of {self.incident}"


@dataclass(frozen=True, kw_only=True)
class StampIncidentMilestone(Command):
    incident: str
    milestone: str
    at: float
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"stamp {self.milestone} on {self.incident}"


@dataclass(frozen=True, kw_only=True)
class RaiseIncident(Command):
    """The leader's: open an incident for a trigger, or join the open one of its services.

    ``trigger`` carries a ``key`` (a rollback event's id, an alert occurrence):
    a trigger already on an incident does nothing, so a new leader repeating
    the work after a crash never opens a second incident.
    """

    title: str
    services: tuple[str, ...]
    severity: str
    trigger: Mapping[str, Any]
    entry: str
    started_at: float | None = None
    detected_at: float | None = None
    alert: Mapping[str, Any] | None = None
    """An alert occurrence: ``fingerprint``, ``starts_at``, ``labels``, ``title``."""

    automatic_only: ClassVar[bool] = True
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"raise an incident for {', '.join(self.services) or 'an alert'}"


@dataclass(frozen=True, kw_only=True)
class ResolveIncidentAlert(Command):
    """The leader's: an alert of an incident stopped firing."""

    incident: str
    fingerprint: str
    starts_at: float

    automatic_only: ClassVar[bool] = True
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"note an alert of {self.incident} resolved"


# --- handlers --------------------------------------------------------------------


class IncidentCommands:
    """The handlers of the incident commands, registered on the engine's bus."""

    def __init__(self, *, store: EventStore, projections: ProjectionSet,
                 incidents: IncidentProjection, clock: Clock) -> None:
        self._store = store
        self._projections = projections
        self._incidents = incidents
        self._clock = clock

    def handlers(self) -> dict[type[Command], Handler]:
        return {
            OpenIncident: self._open,
            AcknowledgeIncident: self._simple(lambda s, c, now: acknowledge(s), "acknowledged"),
            SetIncidentStatus: self._simple(
                lambda s, c, now: set_status(s, _word(status_of, c.status), at=c.at, now=now), "status"),
            SetIncidentSeverity: self._simple(
                lambda s, c, now: set_severity(s, _word(severity_of, c.severity)), "severity"),
            AssignIncidentRole: self._simple(
                lambda s, c, now: assign_role(s, _word(role_of, c.role), c.user), "role"),
            NoteIncident: self._simple(lambda s, c, now: add_note(s, c.text, pinned=c.pinned), "noted"),
            PinIncidentEntry: self._simple(lambda s, c, now: pin(s, c.entry, pinned=c.pinned), "pinned"),
            StampIncidentMilestone: self._simple(
                lambda s, c, now: stamp_milestone(s, c.milestone, c.at, now=now), "stamped"),
            RaiseIncident: self._raise,
            ResolveIncidentAlert: self._simple(
                lambda s, c, now: alert_resolved(s, fingerprint=c.fingerprint, starts_at=c.starts_at),
                "alert resolved"),
        }

    def _simple(self, decide: Callable[[IncidentState, Any, float], list[Change]], word: str) -> Handler:
        async def handle(command: Any, actor: Actor) -> CommandResult:
            state = self._incidents.get(command.incident)
            changes = _decided(lambda: decide(state, command, self._clock.now()))
            events = await self._append(state, changes, actor, command.reason)
            after = self._incidents.get(command.incident)
            return CommandResult(command, actor, events, f"{after.id}: {word}", detail=after)
        return handle

    def _check_services(self, services: Sequence[str]) -> None:
        for name in services:
            if name not in self._incidents.config.services:
                known = ", ".join(self._incidents.config.services) or "none"
                raise CommandError(
                    f"no service named {name!r}.{suggest(name, self._incidents.config.services)} "
                    f"Services: {known}")

    async def _open(self, command: OpenIncident, actor: Actor) -> CommandResult:
        self._check_services(command.services)
        severity = _word(severity_of, command.severity)
        now = self._clock.now()
        if command.started_at is not None and command.started_at > now:
            raise CommandError("an incident cannot have started in the future")
        return await self._create(command, actor, lambda state: open_incident(
            state, title=command.title, services=command.services, severity=severity,
            started_at=command.started_at, commander=str(actor),
        ))

    async def _raise(self, command: RaiseIncident, actor: Actor) -> CommandResult:
        key = str(command.trigger.get("key"))
        if self._incidents.has_trigger(key):
            return CommandResult(command, actor, (), "already on an incident")
        existing = self._incidents.open_for(command.services) if command.services else None
        if existing is not None:
            if command.alert is not None:
                changes = _decided(lambda: alert_joined(existing, services=command.services, **_alert(command)))
            else:
                changes = _decided(lambda: join(existing, services=command.services,
                                                trigger=command.trigger, entry=command.entry))
            events = await self._append(existing, changes, actor, command.reason)
            return CommandResult(command, actor, events, f"{existing.id}: joined",
                                 detail=self._incidents.get(existing.id))
        severity = _word(severity_of, command.severity)

        # An alert's key is recorded by its own event (which also resolves it later).
        trigger = ({k: v for k, v in command.trigger.items() if k != "key"} if command.alert is not None
                   else command.trigger)

        def decide(state: IncidentState) -> list[Change]:
            changes = open_incident(
                state, title=command.title, services=command.services, severity=severity,
                started_at=command.started_at, detected_at=command.detected_at,
                trigger=trigger, entry=command.entry,
            )
            if command.alert is not None:
                opened = state.apply(_preview(state, changes[0], self._clock.now()))
                changes += alert_joined(opened, services=command.services, **_alert(command))
            return changes

        return await self._create(command, actor, decide)

    async def _create(self, command: Command, actor: Actor,
                      decide: Callable[[IncidentState], list[Change]]) -> CommandResult:
        """Open at the next free number: expecting version 0 makes each number one incident."""
        number = self._incidents.next_number()
        for _ in range(OPEN_ATTEMPTS):
            state = IncidentState(number)
            changes = _decided(lambda state=state: decide(state))  # type: ignore[misc]
            try:
                events = await self._append(state, changes, actor, command.reason)
            except ConcurrencyError:
                number = max(number + 1, self._incidents.next_number())
                continue
            opened = self._incidents.get(state.id)
            return CommandResult(command, actor, events, f"{opened.id} declared ({opened.severity})",
                                 detail=opened)
        raise CommandError("could not pick an incident number (other consoles keep taking them); try again")

    async def _append(self, state: IncidentState, changes: Sequence[Change], actor: Actor,
                      reason: str) -> tuple[Event, ...]:
        return await append_and_fold(self._store, self._projections, state.stream, changes,
                                     actor=actor, reason=reason, at=self._clock.now())


def _alert(command: RaiseIncident) -> dict[str, Any]:
    alert = command.alert or {}
    return {"fingerprint": str(alert["fingerprint"]), "starts_at": float(alert["starts_at"]),
            "title": str(alert.get("title") or command.title),
            "labels": {str(k): str(v) for k, v in dict(alert.get("labels") or {}).items()}}


def _preview(state: IncidentState, change: Change, now: float) -> Event:
    """The opening event as it will be folded, so later changes of the same append can be decided."""
    kind, payload = change
    return Event(position=0, id="", stream=state.stream, version=1, type=kind, time=now,
                 actor="", reason="", payload=payload, prev_hash="", hash="")


def _word(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except ValueError as e:
        raise CommandError(str(e)) from None


def _decided(decide: Callable[[], list[Change]]) -> list[Change]:
    try:
        return decide()
    except IncidentRefused as e:
        raise CommandError(str(e)) from e


__all__ = [
    "HEALTH_CHANGED", "HEALTH_STREAM", "AcknowledgeIncident", "AssignIncidentRole",
    "IncidentCommands", "IncidentProjection", "NoteIncident", "OpenIncident", "PinIncidentEntry",
    "RaiseIncident", "ResolveIncidentAlert", "Role", "SetIncidentSeverity", "SetIncidentStatus",
    "Severity", "StampIncidentMilestone", "Status", "health_text",
]
