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
    store_problem: str | None = None
    """Why the store cannot be read or written right now (None when it can)."""

    def service(self, name: str) -> ServiceView | None:
        """The view of one service by name."""
        return next((s for s in self.services if s.name == name), None)
