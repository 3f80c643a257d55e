"""Incidents: the fold of ``incident/INC-N`` streams, their deciders and their timeline.

Like a rollout, an incident is never stored: it is the fold of its stream.
Two kinds of pure function live here:

* **Deciders** (:func:`open_incident`, :func:`acknowledge`, :func:`set_status`,
  :func:`set_severity`, :func:`assign_role`, :func:`add_note`, :func:`pin`,
  :func:`stamp_milestone`, :func:`join`, :func:`alert_joined`,
  :func:`alert_resolved`) take a state and return the ``(type, payload)``
  pairs to append, or raise :class:`IncidentRefused` in the operator's words.
* :meth:`IncidentState.apply` folds one event; :meth:`IncidentState.relate`
  adds another stream's event (a rollout stage, a flag flip, a health change,
  a runbook step) to the timeline. Which events relate is decided by the
  engine's projection (:func:`relates`), from the config.

Ids are short and human: ``INC-42``. The number is the stream's: opening
appends the first event of ``incident/INC-<n+1>`` expecting version 0, so two
consoles racing for the same number cannot both win (the loser takes the
next); no counter stream is needed for uniqueness.

Lifecycle: investigating → identified → mitigated → resolved → postmortem
done. Moving forward past a status stamps it too (as Dispatch does: an
incident marked resolved straight away was also mitigated, at that moment).
Moving back from resolved or later reopens it. Milestones (started,
detected, acknowledged, mitigated, resolved) give the durations of the
postmortem; ``detected`` and ``mitigated`` may be backdated, never before
``started``, and no duration is ever negative.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from console.model.events import Event
from console.model.events import payload_error as _bad
from console.model.events import payload_value as _get
from console.model.incident_config import SEVERITIES, Severity, severity_of

__all__ = [
    "ALERT_JOINED", "ALERT_RESOLVED", "INCIDENT_ACKNOWLEDGED", "INCIDENT_JOINED", "INCIDENT_NOTED",
    "INCIDENT_OPENED", "INCIDENT_PINNED", "INCIDENT_ROLE", "INCIDENT_SEVERITY", "INCIDENT_STATUS",
    "INCIDENT_STREAM", "MILESTONE_STAMPED", "OPEN_STATUSES", "ROLES", "STATUSES", "AlertRecord",
    "Change", "Entry", "IncidentRefused", "IncidentState", "Milestone", "Role", "RoleInterval",
    "Status", "acknowledge", "add_note", "alert_joined", "alert_resolved", "assign_role",
    "durations", "fold", "incident_id", "join", "number_of", "open_incident", "pin", "role_of",
    "set_severity", "set_status", "stamp_milestone", "status_of",
]

INCIDENT_STREAM = "incident/"
"""An incident's events live on ``incident/INC-<n>``."""

INCIDENT_OPENED = "IncidentOpened"
INCIDENT_ACKNOWLEDGED = "IncidentAcknowledged"
INCIDENT_STATUS = "IncidentStatusChanged"
INCIDENT_SEVERITY = "IncidentSeverityChanged"
INCIDENT_ROLE = "IncidentRoleAssigned"
INCIDENT_NOTED = "IncidentNoted"
INCIDENT_PINNED = "IncidentPinned"
INCIDENT_JOINED = "IncidentJoined"
MILESTONE_STAMPED = "IncidentMilestoneStamped"
ALERT_JOINED = "IncidentAlertJoined"
ALERT_RESOLVED = "IncidentAlertResolved"

Status = Literal["investigating", "identified", "mitigated", "resolved", "postmortem_done"]
STATUSES: tuple[Status, ...] = ("investigating", "identified", "mitigated", "resolved", "postmortem_done")
OPEN_STATUSES: frozenset[Status] = frozenset({"investigating", "identified", "mitigated"})
"""An incident in these is open: related events join it, its clocks run."""

Role = Literal["commander", "scribe", "comms"]
ROLES: tuple[Role, ...] = ("commander", "scribe", "comms")

Milestone = Literal["started", "detected", "acknowledged", "mitigated", "resolved"]
MILESTONES: tuple[Milestone, ...] = ("started", "detected", "acknowledged", "mitigated", "resolved")
_BACKDATABLE = frozenset({"detected", "mitigated"})

MAX_TITLE = 200
MAX_NOTE = 4000
MAX_ENTRIES = 5000
"""Timeline entries kept per incident (the log keeps everything)."""

Change = tuple[str, dict[str, Any]]


class IncidentRefused(ValueError):
    """A change the incident's state does not allow; the message is for the operator."""


# --- names -------------------------------------------------------------------


def incident_id(number: int) -> str:
    return f"INC-{number}"


def number_of(text: str) -> int:
    """``INC-42``, ``inc-42``, ``42`` → 42; a ValueError saying what an id looks like otherwise."""
    raw = text.strip().upper().removeprefix("INC-")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{text!r} is not an incident id (they read INC-1, INC-2, …)")
    return int(raw)


def status_of(text: str) -> Status:
    """An operator's word for a status ("postmortem done", "resolved") → the status."""
    value = text.strip().lower().replace(" ", "_").replace("-", "_")
    if value not in STATUSES:
        words = ", ".join(s.replace("_", " ") for s in STATUSES)
        raise ValueError(f"unknown status {text!r}: use one of {words}")
    return value


def role_of(text: str) -> Role:
    value = text.strip().lower()
    if value not in ROLES:
        raise ValueError(f"unknown role {text!r}: use one of {', '.join(ROLES)}")
    return value


# --- state -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One line of an incident's timeline: its own event, or a related one from another stream."""

    position: int
    """The event's position in the log: timeline order, and what ``pin`` names."""
    at: float
    """When it happened (a backdated milestone: the time it names)."""
    kind: str
    """``opened``, ``note``, ``status``, ``severity``, ``role``, ``ack``, ``milestone``,
    ``alert``, ``alert resolved``, ``joined``; related: ``rollout``, ``flag``, ``health``,
    ``runbook``."""
    text: str
    actor: str
    stream: str
    pinned: bool = False


@dataclass(frozen=True)
class RoleInterval:
    """Who held a role from when until when (None: still holds it)."""

    role: Role
    user: str
    since: float
    until: float | None = None
    by: str = ""


@dataclass(frozen=True)
class AlertRecord:
    """An Alertmanager alert occurrence that joined the incident."""

    fingerprint: str
    starts_at: float
    title: str
    labels: Mapping[str, str]
    joined_at: float
    resolved_at: float | None = None

    @property
    def occurrence(self) -> tuple[str, float]:
        return (self.fingerprint, self.starts_at)


@dataclass(frozen=True)
class IncidentState:
    """One incident folded from ``incident/INC-<n>``; ``apply`` returns a new state."""

    number: int
    version: int = 0
    title: str = ""
    services: tuple[str, ...] = ()
    severity: Severity = "SEV3"
    status: Status = "investigating"
    declared_at: float = 0.0
    declared_by: str = ""
    automatic: bool = False
    trigger: Mapping[str, Any] | None = None
    """What opened it when Conn did: ``{"kind": "rollback" | "alert", ...}``."""
    milestones: Mapping[str, float] = field(default_factory=dict)
    acknowledged_by: str | None = None
    roles: tuple[RoleInterval, ...] = ()
    severity_history: tuple[tuple[float, Severity, str, str], ...] = ()
    """``(at, severity, by, reason)``: the first is the declared severity."""
    status_history: tuple[tuple[float, Status, str], ...] = ()
    reopened: int = 0
    triggers: frozenset[str] = frozenset()
    """Keys of every trigger that opened or joined it (a rollback event id, an alert occurrence)."""
    alerts: Mapping[str, AlertRecord] = field(default_factory=dict)
    """By occurrence key (``fingerprint@startsAt``)."""
    entries: tuple[Entry, ...] = ()
    last_update: float = 0.0
    """When the incident was last updated by a person or Conn (notes, status, severity…):
    the "next update due" clock counts from here."""

    @property
    def id(self) -> str:
        return incident_id(self.number)

    @property
    def stream(self) -> str:
        return INCIDENT_STREAM + self.id

    @property
    def opened(self) -> bool:
        return self.version > 0

    @property
    def is_open(self) -> bool:
        return self.opened and self.status in OPEN_STATUSES

    @property
    def acknowledged_at(self) -> float | None:
        return self.milestones.get("acknowledged")

    def holder(self, role: Role) -> str | None:
        """Who holds ``role`` now (None: nobody)."""
        current = [r for r in self.roles if r.role == role and r.until is None]
        return current[-1].user if current else None

    @property
    def pinned(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.pinned)

    def apply(self, event: Event) -> IncidentState:
        """Fold one event of this incident's stream (others, seen versions, unknown types: no change).

        Raises:
            ValueError: the payload is unreadable or cannot follow this state.
        """
        if event.stream != self.stream or event.version <= self.version:
            return self
        state = replace(self, version=event.version)
        step = _STEPS.get(event.type)
        if step is None:
            return state
        if not isinstance(event.payload, Mapping):
            raise _bad(event, "has no payload")
        if event.type != INCIDENT_OPENED and not self.opened:
            raise _bad(event, "comes before the incident was opened")
        return step(state, event, event.payload)

    def relate(self, event: Event, kind: str, text: str) -> IncidentState:
        """Add another stream's event to the timeline (once: by position)."""
        if any(e.position == event.position for e in self.entries[-50:]):
            return self
        return self._entry(Entry(event.position, event.time, kind, text, event.actor, event.stream))

    def _entry(self, entry: Entry) -> IncidentState:
        entries = (*self.entries, entry)
        if len(entries) > MAX_ENTRIES:  # keep pinned ones and the first (opened)
            keep = [e for e in entries[1:] if e.pinned]
            rest = [e for e in entries[1:] if not e.pinned][-(MAX_ENTRIES - len(keep) - 1):]
            entries = (entries[0], *sorted(keep + rest, key=lambda e: e.position))
        return replace(self, entries=entries)


def fold(number: int, events: Iterable[Event]) -> IncidentState:
    state = IncidentState(number)
    for event in events:
        state = state.apply(event)
    return state


# --- folding -----------------------------------------------------------------


def _severity(event: Event, key: str = "severity") -> Severity:
    try:
        return severity_of(_get(event, key, str))
    except ValueError as e:
        raise _bad(event, str(e)) from None


def _time(event: Event, key: str) -> float | None:
    value = _get(event, key, (int, float), optional=True)
    return None if value is None else float(value)


def _opened(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    if state.opened and state.version > 1:
        raise _bad(event, "opens an incident that is already open")
    title = _get(event, "title", str)
    services = tuple(_get(event, "services", list))
    if not all(isinstance(s, str) for s in services):
        raise _bad(event, "has a non-text service")
    severity = _severity(event)
    started = _time(event, "started_at")
    started = min(started, event.time) if started is not None else event.time
    trigger = _get(event, "trigger", Mapping, optional=True)
    milestones: dict[str, float] = {"started": started}
    detected = _time(event, "detected_at")
    if detected is not None:
        milestones["detected"] = min(max(detected, started), event.time)
    commander = _get(event, "commander", str, optional=True)
    roles = (RoleInterval("commander", commander, event.time, by=event.actor),) if commander else ()
    key = str(trigger.get("key")) if trigger and trigger.get("key") is not None else None
    first = _get(event, "entry", str, optional=True) or f"{severity} declared: {title}"
    state = replace(
        state, title=title, services=services, severity=severity, status="investigating",
        declared_at=event.time, declared_by=event.actor, automatic=trigger is not None,
        trigger=dict(trigger) if trigger else None, milestones=milestones, roles=roles,
        severity_history=((event.time, severity, event.actor, event.reason),),
        status_history=((event.time, "investigating", event.actor),),
        triggers=frozenset({key}) if key else frozenset(), last_update=event.time,
    )
    return state._entry(Entry(event.position, event.time, "opened", first, event.actor, event.stream))


def _acknowledged(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    if state.acknowledged_at is not None:
        return state  # a second acknowledgement changes nothing
    milestones = {**state.milestones, "acknowledged": max(event.time, state.declared_at)}
    roles = state.roles
    if state.holder("commander") is None:
        roles = (*roles, RoleInterval("commander", event.actor, event.time, by=event.actor))
    state = replace(state, milestones=milestones, acknowledged_by=event.actor, roles=roles,
                    last_update=event.time)
    return state._entry(Entry(event.position, event.time, "ack", f"acknowledged by {event.actor}",
                              event.actor, event.stream))


def _status(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    try:
        status = status_of(_get(event, "status", str))
    except ValueError as e:
        raise _bad(event, str(e)) from None
    at = _time(event, "at") or event.time
    at = min(max(at, state.milestones.get("started", at)), event.time)
    before = STATUSES.index(state.status)
    after = STATUSES.index(status)
    milestones = dict(state.milestones)
    reopened = state.reopened
    if after > before:
        # Skipping a status still stamps it: resolved straight away was also mitigated then.
        if after >= STATUSES.index("mitigated"):
            milestones.setdefault("mitigated", at)
        if after >= STATUSES.index("resolved"):
            milestones.setdefault("resolved", at)
        words = f"status: {state.status.replace('_', ' ')} → {status.replace('_', ' ')}"
    else:
        if before >= STATUSES.index("resolved") > after:
            reopened += 1
            milestones.pop("resolved", None)
        if after < STATUSES.index("mitigated"):
            milestones.pop("mitigated", None)
        words = f"status: {state.status.replace('_', ' ')} → {status.replace('_', ' ')}"
        if reopened > state.reopened:
            words = "reopened; " + words
    state = replace(state, status=status, milestones=milestones, reopened=reopened,
                    status_history=(*state.status_history, (event.time, status, event.actor)),
                    last_update=event.time)
    if event.reason:
        words += f" — {event.reason}"
    return state._entry(Entry(event.position, at, "status", words, event.actor, event.stream))


def _severity_changed(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    severity = _severity(event)
    words = f"severity: {state.severity} → {severity}" + (f" — {event.reason}" if event.reason else "")
    state = replace(state, severity=severity, last_update=event.time, severity_history=(
        *state.severity_history, (event.time, severity, event.actor, event.reason)))
    return state._entry(Entry(event.position, event.time, "severity", words, event.actor, event.stream))


def _role(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    try:
        role = role_of(_get(event, "role", str))
    except ValueError as e:
        raise _bad(event, str(e)) from None
    user = _get(event, "user", str)
    before = state.holder(role)
    roles = tuple(replace(r, until=event.time) if r.role == role and r.until is None else r
                  for r in state.roles)
    roles = (*roles, RoleInterval(role, user, event.time, by=event.actor))
    words = f"{role}: {before} → {user}" if before else f"{role}: {user}"
    state = replace(state, roles=roles, last_update=event.time)
    return state._entry(Entry(event.position, event.time, "role", words, event.actor, event.stream))


def _noted(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    text = _get(event, "text", str)
    state = replace(state, last_update=event.time)
    return state._entry(Entry(event.position, event.time, "note", text, event.actor, event.stream,
                              pinned=bool(payload.get("pinned", False))))


def _pinned(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    position = _get(event, "entry", int)
    pinned = bool(_get(event, "pinned", bool))
    entries = tuple(replace(e, pinned=pinned) if e.position == position else e for e in state.entries)
    return replace(state, entries=entries)


def _milestone(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    name = _get(event, "milestone", str)
    if name not in _BACKDATABLE:
        raise _bad(event, f"stamps {name!r}; only {', '.join(sorted(_BACKDATABLE))} are stamped by hand")
    at = float(_get(event, "at", (int, float)))
    at = min(max(at, state.milestones.get("started", at)), event.time)
    state = replace(state, milestones={**state.milestones, name: at})
    return state._entry(Entry(event.position, at, "milestone", f"{name} at this time (stamped)",
                              event.actor, event.stream))


def _joined(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    services = tuple(s for s in _get(event, "services", list) if isinstance(s, str))
    trigger = _get(event, "trigger", Mapping, optional=True)
    key = str(trigger.get("key")) if trigger and trigger.get("key") is not None else None
    merged = state.services + tuple(s for s in services if s not in state.services)
    text = _get(event, "entry", str, optional=True) or f"joined: {', '.join(services)}"
    state = replace(state, services=merged, last_update=event.time,
                    triggers=state.triggers | ({key} if key else set()))
    return state._entry(Entry(event.position, event.time, "joined", text, event.actor, event.stream))


def _alert(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    fingerprint = _get(event, "fingerprint", str)
    starts_at = float(_get(event, "starts_at", (int, float)))
    labels = _get(event, "labels", Mapping)
    title = _get(event, "title", str)
    record = AlertRecord(fingerprint, starts_at, title,
                         {str(k): str(v) for k, v in labels.items()}, event.time)
    key = alert_key(fingerprint, starts_at)
    services = tuple(s for s in _get(event, "services", list, optional=True) or () if isinstance(s, str))
    merged = state.services + tuple(s for s in services if s not in state.services)
    state = replace(state, alerts={**state.alerts, key: record}, services=merged,
                    triggers=state.triggers | {key}, last_update=event.time)
    return state._entry(Entry(event.position, event.time, "alert", f"alert firing: {title}",
                              event.actor, event.stream))


def _alert_resolved(state: IncidentState, event: Event, payload: Mapping[str, Any]) -> IncidentState:
    key = alert_key(_get(event, "fingerprint", str), float(_get(event, "starts_at", (int, float))))
    record = state.alerts.get(key)
    if record is None or record.resolved_at is not None:
        return state
    alerts = {**state.alerts, key: replace(record, resolved_at=event.time)}
    state = replace(state, alerts=alerts)
    return state._entry(Entry(event.position, event.time, "alert resolved",
                              f"alert resolved: {record.title}", event.actor, event.stream))


_STEPS = {
    INCIDENT_OPENED: _opened,
    INCIDENT_ACKNOWLEDGED: _acknowledged,
    INCIDENT_STATUS: _status,
    INCIDENT_SEVERITY: _severity_changed,
    INCIDENT_ROLE: _role,
    INCIDENT_NOTED: _noted,
    INCIDENT_PINNED: _pinned,
    INCIDENT_JOINED: _joined,
    MILESTONE_STAMPED: _milestone,
    ALERT_JOINED: _alert,
    ALERT_RESOLVED: _alert_resolved,
}


def alert_key(fingerprint: str, starts_at: float) -> str:
    """An alert occurrence's key: the same alert firing again later is a new occurrence."""
    return f"{fingerprint}@{starts_at:.3f}"


# --- deciders ----------------------------------------------------------------


def _clean(text: str, what: str, limit: int) -> str:
    value = " ".join(text.split())
    if not value:
        raise IncidentRefused(f"the {what} is empty")
    if len(value) > limit:
        raise IncidentRefused(f"the {what} is longer than {limit} characters")
    return value


def _need_open(state: IncidentState) -> None:
    if not state.opened:
        raise IncidentRefused(f"{state.id} does not exist")


def open_incident(
    state: IncidentState, *, title: str, services: Sequence[str], severity: Severity,
    started_at: float | None = None, detected_at: float | None = None,
    commander: str | None = None, trigger: Mapping[str, Any] | None = None, entry: str | None = None,
) -> list[Change]:
    """Declare an incident (``state`` is the empty state of its new number)."""
    if state.opened:
        raise IncidentRefused(f"{state.id} already exists")
    payload: dict[str, Any] = {
        "id": state.id, "title": _clean(title, "title", MAX_TITLE),
        "services": sorted(set(services)), "severity": severity_of(severity),
    }
    if started_at is not None:
        payload["started_at"] = started_at
    if detected_at is not None:
        payload["detected_at"] = detected_at
    if commander:
        payload["commander"] = commander
    if trigger is not None:
        payload["trigger"] = dict(trigger)
    if entry:
        payload["entry"] = entry[:MAX_NOTE]
    return [(INCIDENT_OPENED, payload)]


def acknowledge(state: IncidentState) -> list[Change]:
    _need_open(state)
    if state.acknowledged_at is not None:
        raise IncidentRefused(f"{state.id} was acknowledged by {state.acknowledged_by} already")
    return [(INCIDENT_ACKNOWLEDGED, {"id": state.id})]


def set_status(state: IncidentState, status: Status, *, at: float | None = None, now: float) -> list[Change]:
    """Move to ``status`` (forward stamps skipped ones; back from resolved reopens)."""
    _need_open(state)
    status = status_of(status)
    if status == state.status:
        raise IncidentRefused(f"{state.id} is {status.replace('_', ' ')} already")
    payload: dict[str, Any] = {"id": state.id, "status": status, "from": state.status}
    if at is not None:
        if at > now:
            raise IncidentRefused("a status cannot be stamped in the future")
        if at < state.milestones.get("started", at):
            raise IncidentRefused(f"{state.id} started at {state.milestones['started']:.0f}; "
                                  "nothing can be stamped before that")
        payload["at"] = at
    return [(INCIDENT_STATUS, payload)]


def set_severity(state: IncidentState, severity: Severity) -> list[Change]:
    _need_open(state)
    severity = severity_of(severity)
    if severity == state.severity:
        raise IncidentRefused(f"{state.id} is {severity} already")
    return [(INCIDENT_SEVERITY, {"id": state.id, "severity": severity, "from": state.severity})]


def assign_role(state: IncidentState, role: Role, user: str) -> list[Change]:
    _need_open(state)
    role = role_of(role)
    user = _clean(user, "user", 200)
    if state.holder(role) == user:
        raise IncidentRefused(f"{user} is the {role} of {state.id} already")
    return [(INCIDENT_ROLE, {"id": state.id, "role": role, "user": user})]


def add_note(state: IncidentState, text: str, *, pinned: bool = False) -> list[Change]:
    _need_open(state)
    note = text.strip()
    if not note:
        raise IncidentRefused("the note is empty")
    if len(note) > MAX_NOTE:
        raise IncidentRefused(f"the note is longer than {MAX_NOTE} characters")
    return [(INCIDENT_NOTED, {"id": state.id, "text": note, "pinned": pinned})]


def pin(state: IncidentState, position: int, *, pinned: bool = True) -> list[Change]:
    _need_open(state)
    entry = next((e for e in state.entries if e.position == position), None)
    if entry is None:
        raise IncidentRefused(f"{state.id} has no timeline entry #{position}")
    if entry.pinned == pinned:
        raise IncidentRefused(f"entry #{position} is {'pinned' if pinned else 'not pinned'} already")
    return [(INCIDENT_PINNED, {"id": state.id, "entry": position, "pinned": pinned})]


def stamp_milestone(state: IncidentState, milestone: str, at: float, *, now: float) -> list[Change]:
    """Backdate ``detected`` or ``mitigated``: never before started, never in the future."""
    _need_open(state)
    if milestone not in _BACKDATABLE:
        raise IncidentRefused(f"unknown milestone {milestone!r}: use one of {', '.join(sorted(_BACKDATABLE))}")
    started = state.milestones.get("started", state.declared_at)
    if at < started:
        raise IncidentRefused(f"{milestone} cannot be before the incident started")
    if at > now:
        raise IncidentRefused(f"{milestone} cannot be in the future")
    return [(MILESTONE_STAMPED, {"id": state.id, "milestone": milestone, "at": at})]


def join(state: IncidentState, *, services: Sequence[str], trigger: Mapping[str, Any],
         entry: str) -> list[Change]:
    """Conn joins a trigger (an automatic rollback) to this open incident (once per trigger key)."""
    _need_open(state)
    key = str(trigger.get("key"))
    if key in state.triggers:
        raise IncidentRefused(f"{state.id} has this trigger already")
    return [(INCIDENT_JOINED, {"id": state.id, "services": sorted(set(services)),
                               "trigger": dict(trigger), "entry": entry[:MAX_NOTE]})]


def alert_joined(state: IncidentState, *, fingerprint: str, starts_at: float, title: str,
                 labels: Mapping[str, str], services: Sequence[str] = ()) -> list[Change]:
    _need_open(state)
    if alert_key(fingerprint, starts_at) in state.triggers:
        raise IncidentRefused(f"{state.id} has this alert already")
    return [(ALERT_JOINED, {"id": state.id, "fingerprint": fingerprint, "starts_at": starts_at,
                            "title": title[:MAX_TITLE], "labels": dict(labels),
                            "services": sorted(set(services))})]


def alert_resolved(state: IncidentState, *, fingerprint: str, starts_at: float) -> list[Change]:
    _need_open(state)
    record = state.alerts.get(alert_key(fingerprint, starts_at))
    if record is None or record.resolved_at is not None:
        raise IncidentRefused(f"{state.id} has no firing alert {fingerprint}")
    return [(ALERT_RESOLVED, {"id": state.id, "fingerprint": fingerprint, "starts_at": starts_at})]


# --- views -------------------------------------------------------------------


def durations(state: IncidentState) -> dict[str, float | None]:
    """Time to detect, acknowledge, mitigate and resolve, in seconds (None: not yet).

    Detect counts from started; acknowledge from the declaration; mitigate and
    resolve from started. Never negative.
    """
    m = state.milestones
    started = m.get("started", state.declared_at)

    def since(name: str, origin: float) -> float | None:
        return max(0.0, m[name] - origin) if name in m else None

    return {
        "detect": since("detected", started),
        "acknowledge": since("acknowledged", state.declared_at),
        "mitigate": since("mitigated", started),
        "resolve": since("resolved", started),
    }


def clocks(state: IncidentState, *, respond: float, update_every: float, now: float) -> dict[str, Any]:
    """The incident's clocks at ``now``: time since declared, the acknowledgement target, next update.

    ``ack_overdue`` is True while unacknowledged past the severity's target;
    ``update_due_in`` is negative when an update is overdue (open incidents only).
    """
    ack = state.acknowledged_at
    waited = (ack if ack is not None else now) - state.declared_at
    return {
        "since_declared": max(0.0, now - state.declared_at),
        "ack_target": respond,
        "ack_after": max(0.0, waited) if ack is not None else None,
        "ack_left": None if ack is not None else respond - waited,
        "ack_overdue": ack is None and waited > respond and state.is_open,
        "update_due_in": (state.last_update + update_every - now) if state.is_open else None,
    }


def severities() -> tuple[Severity, ...]:
    return SEVERITIES
