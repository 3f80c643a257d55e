"""Projections: each stream family folded once, fed from one scan and then one subscription.

A projection owns every stream under its prefix (``flag/``; later
``rollout/``, ``incident/``, ``runbook/``) and keeps the state views need.
The engine loads all of them with **one** scan of the log at start, then
routes each followed event to the projection that owns its stream. A new
feature is a new projection class plus one line in the engine's registry.

Stream versions are kept here for every owned stream, whatever happens to the
fold: an event a projection cannot read is shown and skipped (start-up and
following alike), but its version still counts, so the next command on that
stream appends at the right version instead of failing forever.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from console.model.events import Actor, Event, NewEvent
from console.model.sanitize import clean_text
from console.secrets import redact
from console.store.base import EventStore

log = logging.getLogger(__name__)

READ_PAGE = 1000
"""Events per read during the start-up scan (bounded memory per page)."""

MAX_SKIPPED = 20
"""How many unreadable events are remembered for views (the log keeps them all)."""


class Projection(Protocol):
    """A fold of one stream family."""

    prefix: str
    """Streams starting with this belong to the projection (``"flag/"``)."""

    def apply(self, event: Event) -> bool:
        """Fold one event of an owned stream; True if the state changed.

        Raises:
            ValueError: the event cannot be read (its payload is malformed).
        """
        ...


class Observer(Protocol):
    """A projection that also sees every other stream's events, once each, in log order.

    Incidents observe: a rollout stage or a health change of an open
    incident's service joins its timeline. ``observe`` returns True when its
    state changed.
    """

    def observe(self, event: Event) -> bool: ...


@dataclass(frozen=True)
class SkippedEvent:
    """An event a projection could not read: shown, never silently dropped."""

    position: int
    stream: str
    version: int
    problem: str

    def __str__(self) -> str:
        return f"event {self.position} ({self.stream} v{self.version}) skipped: {self.problem}"


class ProjectionSet:
    """Every registered projection, their stream versions and the recent tail of the log."""

    def __init__(self, projections: Sequence[Projection], *, recent: int = 50) -> None:
        prefixes = [p.prefix for p in projections]
        for i, prefix in enumerate(prefixes):
            for other in prefixes[i + 1:]:
                if prefix.startswith(other) or other.startswith(prefix):
                    raise ValueError(f"projection prefixes overlap: {prefix!r} and {other!r}")
        self.projections = tuple(projections)
        self.position = 0
        """Position of the last event seen (folded or not)."""
        self.recent: deque[Event] = deque(maxlen=recent)
        """The newest events of the whole log (for the activity panel)."""
        self.skipped: deque[SkippedEvent] = deque(maxlen=MAX_SKIPPED)
        self.revision = 0
        """Bumped whenever any projection's state changes (views cache on it)."""
        self._versions: dict[str, int] = {}

    def owner(self, stream: str) -> Projection | None:
        return next((p for p in self.projections if stream.startswith(p.prefix)), None)

    def version_of(self, stream: str) -> int:
        """The stream's version as seen here: the expected version of the next append."""
        return self._versions.get(stream, 0)

    async def load(self, store: EventStore) -> int:
        """Fold the whole log with one scan (paged); return how many events were read.

        Following must start at :attr:`position` afterwards, so nothing
        appended during the scan is missed or applied twice.
        """
        count = 0
        while True:
            page = await store.read_all(after=self.position, limit=READ_PAGE)
            self.apply_all(page)
            count += len(page)
            if len(page) < READ_PAGE:
                return count

    def apply_all(self, events: Iterable[Event]) -> bool:
        changed = False
        for event in events:
            changed = self.apply(event) or changed
        return changed

    def apply(self, event: Event, *, in_order: bool = True) -> bool:
        """Route one event; True if some projection's state changed.

        Args:
            event: from the scan or the subscription (``in_order``), or read
                back after a command (not in order: the log may hold others'
                events before it that the subscription has not delivered yet,
                so the position and the recent tail do not move).

        Events already folded (by version within their stream) are not folded
        again, so a command's events folded at once and again when the
        subscription delivers them count once.
        """
        owner = self.owner(event.stream)
        changed = self._fold(event, owner)
        if in_order and event.position > self.position:
            # Observers see each event once, in log order, after its owner folded it.
            self.position = event.position
            self.recent.append(event)
            if self._observe(event, owner):
                self.revision += 1
                changed = True
        return changed

    def _fold(self, event: Event, owner: Projection | None) -> bool:
        if owner is None or event.version <= self.version_of(event.stream):
            return False
        self._versions[event.stream] = event.version
        try:
            changed = owner.apply(event)
        except (ValueError, TypeError, KeyError) as e:
            skipped = SkippedEvent(event.position, event.stream, event.version,
                                   clean_text(str(e), limit=200))
            log.warning("%s", skipped)
            self.skipped.append(skipped)
            self.revision += 1  # views show the skipped event; the fold itself is unchanged
            return False
        if changed:
            self.revision += 1
        return changed

    def _observe(self, event: Event, owner: Projection | None) -> bool:
        """Show an event to every other projection that observes the whole log, in order."""
        changed = False
        for projection in self.projections:
            observe = getattr(projection, "observe", None)
            if projection is owner or observe is None:
                continue
            try:
                changed = bool(observe(event)) or changed
            except (ValueError, TypeError, KeyError) as e:
                log.warning("event %s (%s) could not be observed: %s", event.position, event.stream, e)
        return changed

    async def refresh(self, store: EventStore, stream: str) -> list[Event]:
        """Read ``stream`` and fold what is new; return the new events (after a command).

        Raises:
            StoreError: the stream cannot be read.
        """
        known = self.version_of(stream)
        events = [e for e in await store.read_stream(stream) if e.version > known]
        for event in events:
            self.apply(event, in_order=False)
        return events


async def append_and_fold(
    store: EventStore, projections: ProjectionSet, stream: str,
    changes: Sequence[tuple[str, Mapping[str, Any]]], *, actor: Actor, reason: str, at: float,
    expected: int | None = None,
) -> tuple[Event, ...]:
    """Append a decider's changes to ``stream`` (expecting the version folded here, or
    ``expected``), then fold what the stream holds, win or lose; return what was appended.

    Every command handler appends this way: the reason is redacted and lives on each event,
    and after a lost race the projection has the winner's events, so the next try decides
    on them.

    Raises:
        ConcurrencyError: someone appended first (it names who and what).
        StoreError: the store cannot be written.
    """
    known = projections.version_of(stream) if expected is None else expected
    try:
        await store.append(
            stream, known,
            [NewEvent(kind, payload, redact(reason.strip())) for kind, payload in changes],
            actor=actor, at=at,
        )
    finally:
        appended = await projections.refresh(store, stream)
    return tuple(e for e in appended if e.version > known)
