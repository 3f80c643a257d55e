"""What views render: one immutable snapshot of the engine's state.

Snapshots compare by equality, so an unchanged state causes no repaint.
Ages are not stored here; views compute them from ``observed_at`` with
their own clock, so a snapshot does not change every second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from console.engine.flags import FlagView
from console.model.events import Event
from console.model.live import ServiceLive

Role = Literal["starting", "leader", "follower"]

CLOCK_SKEW = 5.0
"""Seconds a value may seem to come from the future (another machine's clock) and still count."""


def is_fresh(updated_at: float | None, interval: float, now: float) -> bool:
    """Written within the last three intervals — and not from the future.

    A row stamped ahead of this clock by more than :data:`CLOCK_SKEW` is not
    trusted: a leader with a fast clock must not hide its own death for as
    long as its clock is ahead.
    """
    if updated_at is None:
        return False
    age = now - updated_at
    return -CLOCK_SKEW <= age <= 3 * interval


@dataclass(frozen=True)
class ServiceView:
    """One configured service and its latest live value (None before the first one)."""

    name: str
    interval: float
    live: ServiceLive | None = None
    updated_at: float | None = None
    writer: str | None = None
    problem: str | None = None
    """Why the live row could not be read, when it could not."""


@dataclass(frozen=True)
class Snapshot:
    """The whole state a view needs, at one moment."""

    environment: str
    store_url: str
    role: Role
    leader: str | None
    services: tuple[ServiceView, ...]
    flags: tuple[FlagView, ...] = ()
    recent_events: tuple[Event, ...] = field(default=())
    """The last few events of the log, newest last (bounded)."""
    problem: str | None = None
    """Why what is shown may not be current (the store or an engine task failed); None when fine."""

    def service(self, name: str) -> ServiceView | None:
        """The view of one service by name."""
        return next((s for s in self.services if s.name == name), None)
