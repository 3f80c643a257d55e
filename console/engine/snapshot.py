"""What views render: one immutable snapshot of the engine's state.

Snapshots compare by equality, so an unchanged state causes no repaint.
Ages are not stored here; views compute them from ``observed_at`` with
their own clock, so a snapshot does not change every second. Projection
state (flags; later rollouts and incidents) reaches views only through the
snapshot, never by reading the engine's folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from console.actions.flagd_file import ExportStatus
from console.engine.flags import FlagView
from console.engine.outbox import OutboxView
from console.model.alerts import AlertsLive
from console.model.events import Event
from console.model.incident_config import SeverityConfig
from console.model.incidents import IncidentState, clocks
from console.model.live import ServiceLive, is_fresh
from console.model.rollout_config import RolloutConfig
from console.model.rollout_live import RolloutLive
from console.model.rollouts import RolloutState, RolloutView
from console.model.rollouts import status as rollout_status
from console.model.runbook_runs import RunState
from console.model.runbooks import BrokenRunbook, Runbook

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
    timeout: float = 0.0
    """The probe timeout: staleness allows for one (:func:`~console.model.live.stale_after`)."""

    def fresh(self, now: float) -> bool:
        """Whether the row is fresh at ``now`` (the one rule: :func:`~console.model.live.is_fresh`)."""
        return is_fresh(self.updated_at, self.interval, now, timeout=self.timeout)


@dataclass(frozen=True)
class FlagsView:
    """The flags projection as views need it."""

    flags: tuple[FlagView, ...] = ()
    export: ExportStatus | None = None
    """This machine's flagd file: whether it says what the log says."""
    evaluator_version: str = ""
    """The installed openfeature-flagd-core version."""
    unseeded: tuple[str, ...] = ()
    """Flags the config defines that the log does not have yet."""
    groups: tuple[str, ...] = ()

    def get(self, name: str) -> FlagView | None:
        return next((f for f in self.flags if f.name == name), None)


@dataclass(frozen=True)
class RolloutPanel:
    """One configured rollout: its folded state, its plan, and the leader's latest verdicts.

    Views compute what depends on time (bake remaining, countdowns) with their
    own clock from these, so the snapshot does not change every second.
    """

    name: str
    state: RolloutState
    plan: RolloutConfig
    live: RolloutLive | None = None
    """The criteria as the leader last judged them; None before the first judgement."""

    def view(self, now: float) -> RolloutView:
        return rollout_status(self.state, self.plan, now)


@dataclass(frozen=True)
class IncidentPanel:
    """One incident: its folded state and its severity's definition and clocks.

    Views compute the clocks (time since declared, acknowledgement target,
    next update due) with their own clock, so the snapshot does not change
    every second.
    """

    state: IncidentState
    severity: SeverityConfig

    @property
    def id(self) -> str:
        return self.state.id

    def clocks(self, now: float) -> dict[str, object]:
        return clocks(self.state, respond=self.severity.respond,
                      update_every=self.severity.update_every, now=now)


@dataclass(frozen=True)
class RunbooksView:
    """The runbooks this console read, the broken ones, and every run (oldest first)."""

    runbooks: tuple[Runbook, ...] = ()
    broken: tuple[BrokenRunbook, ...] = ()
    runs: tuple[RunState, ...] = ()
    revision: int = 0

    def last_run(self, name: str) -> RunState | None:
        found = [r for r in self.runs if r.runbook == name]
        return found[-1] if found else None

    def for_incident(self, incident_id: str) -> tuple[RunState, ...]:
        return tuple(r for r in self.runs if r.incident == incident_id)


@dataclass(frozen=True)
class Snapshot:
    """The whole state a view needs, at one moment."""

    environment: str
    store_url: str
    role: Role
    leader: str | None
    services: tuple[ServiceView, ...]
    flags: tuple[FlagView, ...] = ()
    flag_state: FlagsView = field(default_factory=FlagsView)
    rollouts: tuple[RolloutPanel, ...] = ()
    recent_events: tuple[Event, ...] = field(default=())
    """The last few events of the log, newest last (bounded)."""
    problem: str | None = None
    """Why what is shown may not be current (the store or an engine task failed); None when fine."""
    incidents: tuple[IncidentPanel, ...] = ()
    """Every incident, open ones first (most severe, newest), then the rest newest first."""
    notify: tuple[OutboxView, ...] = ()
    """Each chat webhook's outbox: pending notices and the latest failure."""
    runbooks: RunbooksView = field(default_factory=RunbooksView)
    alerts: AlertsLive | None = None
    """Alertmanager's firing alerts as the leader last polled them (None: not configured or not yet)."""

    def incident(self, incident_id: str) -> IncidentPanel | None:
        return next((i for i in self.incidents if i.id == incident_id), None)

    @property
    def open_incidents(self) -> tuple[IncidentPanel, ...]:
        return tuple(i for i in self.incidents if i.state.is_open)

    def service(self, name: str) -> ServiceView | None:
        """The view of one service by name."""
        return next((s for s in self.services if s.name == name), None)

    def rollout(self, name: str) -> RolloutPanel | None:
        return next((r for r in self.rollouts if r.name == name), None)
