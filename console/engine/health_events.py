"""Health transitions as events: a service going down, critical, warning or back to ok.

The leader records each change of a service's trouble (:mod:`console.model.triage`)
as a ``HealthChanged`` event on ``health/<service>``, so an incident's
timeline and its postmortem show when its services went bad and when they
recovered, from the same hash-chained log as everything else.

Three levels are recorded: ``down``, ``critical`` (a signal past its
critical level: degraded in the operator's sense) and ``up`` (everything
else, warnings included: a warning is a reason to look, not a change of the
service's health, and a signal hovering at its warning level would fill the
log). Only transitions are recorded, with the breach that caused them
(``up → critical (errors 12.3% > 5.00%)``). A stale row records nothing:
"we could not see it" is not a change of the service. Flapping is damped
twice: a new level must hold for :data:`SETTLE` seconds before it is
recorded, and two transitions of one service are at least :data:`MIN_GAP`
apart.

The last recorded state per service is a projection of ``health/``, so a new
leader continues where the old one stopped instead of recording again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from console.engine.incidents import HEALTH_CHANGED, HEALTH_STREAM
from console.engine.projections import ProjectionSet
from console.errors import ConcurrencyError, StoreError
from console.model.clock import Clock
from console.model.events import Actor, Event, NewEvent
from console.model.live import ServiceLive
from console.model.sanitize import clean_text
from console.model.triage import breach_text, trouble, worst_signal
from console.store.base import EventStore

log = logging.getLogger(__name__)

MIN_GAP = 10.0
"""Seconds between two recorded transitions of one service (flap damping)."""
SETTLE = 3.0
"""Seconds a new level must hold before it is recorded."""
LEVELS = {"down": "down", "critical": "critical", "warning": "up", "ok": "up"}


class HealthProjection:
    """The last recorded trouble of each service, folded from ``health/<service>``."""

    prefix = HEALTH_STREAM

    def __init__(self) -> None:
        self.last: dict[str, tuple[str, float]] = {}

    def apply(self, event: Event) -> bool:
        if event.type != HEALTH_CHANGED:
            return False
        to = event.payload.get("to") if isinstance(event.payload, Mapping) else None
        if not isinstance(to, str):
            raise ValueError(f"{event.stream} v{event.version}: HealthChanged has no 'to'")
        self.last[event.stream.removeprefix(HEALTH_STREAM)] = (to, event.time)
        return True


def state_of(live: ServiceLive) -> tuple[str, str]:
    """A fresh row's trouble (down, critical, warning, ok) and why, in the console's words."""
    level = trouble(live, stale=False)
    if level == "stale":
        return "stale", ""
    worst = worst_signal(live)
    if level == "down" or worst is None:
        why = live.reason if level == "down" else ""
    else:
        why = breach_text(worst) if level == "critical" else ""
    return LEVELS[level], clean_text(why or "", limit=160)


class HealthRecorder:
    """The leader's: records a service's transition when its fresh row says something new."""

    def __init__(self, store: EventStore, projections: ProjectionSet, health: HealthProjection,
                 clock: Clock, actor: Actor) -> None:
        self._store = store
        self._projections = projections
        self._health = health
        self._clock = clock
        self._actor = actor
        self._pending: dict[str, tuple[str, float]] = {}

    async def seen(self, service: str, live: ServiceLive) -> Event | None:
        """Record ``live``'s state if it differs from the last recorded one (and the gap allows)."""
        to, why = state_of(live)
        if to == "stale":
            return None
        before, at = self._health.last.get(service, ("up", 0.0))
        now = self._clock.now()
        if to == before:
            self._pending.pop(service, None)
            return None
        pending = self._pending.get(service)
        if pending is None or pending[0] != to:
            self._pending[service] = (to, now)
            return None
        if now - pending[1] < SETTLE or (at and now - at < MIN_GAP):
            return None
        stream = HEALTH_STREAM + service
        payload: dict[str, Any] = {"service": service, "from": before, "to": to, "why": why,
                                   "health": live.health}
        try:
            await self._store.append(stream, self._projections.version_of(stream),
                                     [NewEvent(HEALTH_CHANGED, payload)], actor=self._actor, at=now)
        except ConcurrencyError:
            pass  # another leader recorded it first: its event is read back below
        except StoreError as e:
            log.warning("could not record %s's health change: %s", service, e)
            return None
        self._pending.pop(service, None)
        events = await self._projections.refresh(self._store, stream)
        return events[-1] if events else None
