"""The one persistence contract: an event log, a small live table and the signal history.

Two implementations fit it: SQLite (embedded, the default) and PostgreSQL
(team mode). Callers never know which one they hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from console.model.events import Actor, Event, NewEvent
from console.model.history import HistorySlice


@dataclass(frozen=True)
class LiveRow:
    """The latest signal snapshot of one service, overwritten each tick (never appended)."""

    service: str
    data: Mapping[str, Any]
    updated_at: float
    writer: str


class LeaderLock(Protocol):
    """Leadership of one store: held by exactly one process at a time.

    The OS or the database releases it when the holder dies.
    """

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; True while this process holds it. Never blocks."""
        ...

    async def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        ...


class EventStore(Protocol):
    """An append-only event log with optimistic concurrency, the live table and the history."""

    @property
    def url(self) -> str:
        """Where the store lives, for people (``sqlite:///…`` or ``postgresql://…``, no password)."""
        ...

    async def append(
        self,
        stream: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        actor: Actor,
        at: float,
    ) -> int:
        """Append ``events`` to ``stream`` if it is still at ``expected_version``.

        Returns:
            The stream's new version.

        Raises:
            ConcurrencyError: another actor appended first; it names who and what.
            StoreError: the store could not be written.
        """
        ...

    async def stream_version(self, stream: str) -> int:
        """The stream's current version (0 for a stream with no events)."""
        ...

    async def read_stream(self, stream: str) -> list[Event]:
        """Every event of one stream, oldest first.

        Every read of events raises CorruptRow (a StoreError) naming the
        position and the field when a row was damaged or edited by hand so it
        no longer reads back as an event.
        """
        ...

    async def read_all(self, after: int = 0, limit: int | None = None) -> list[Event]:
        """Events of every stream with a position greater than ``after``, oldest first."""
        ...

    async def read_tail(self, limit: int) -> list[Event]:
        """The newest ``limit`` events of the whole log, oldest first.

        For start-up, which needs the recent history and the last position but
        not the whole log: the cost is ``limit`` rows however long the log is.
        Fewer than ``limit`` when the log is shorter; ``[]`` for ``limit=0``.

        Raises:
            ValueError: ``limit`` is not an int >= 0.
            CorruptRow: one of those rows is damaged (position and field named).
        """
        ...

    def subscribe(self, after: int = 0) -> AsyncIterator[Event]:
        """Every event after ``after``, then each new one as it is appended, forever."""
        ...

    async def write_live(
        self, service: str, data: Mapping[str, Any], *, at: float, writer: str
    ) -> None:
        """Overwrite the live row of ``service``."""
        ...

    async def read_live(self) -> dict[str, LiveRow]:
        """Every live row, by service name.

        Raises:
            CorruptRow: a row was damaged; names the service and what is wrong.
        """
        ...

    async def write_history(self, slices: Sequence[HistorySlice]) -> None:
        """Upsert ``slices`` by (service, resolution, start), all in one transaction.

        The leader calls it once per tick with every service's slice, so it is
        one transaction and, where the driver allows, one round trip. Within a
        batch, a later slice with the same key wins.

        Raises:
            ValueError: a slice that cannot be stored or read back (a bad
                service name, a start that is not a time, a negative count,
                more errors than samples, data that is not plain JSON, a
                sketch that is not bytes); nothing is written then.
            StoreError: the store could not be written.
        """
        ...

    async def read_history(
        self,
        *,
        since: float,
        until: float | None = None,
        services: Collection[str] | None = None,
        resolution: int = 10,
    ) -> list[HistorySlice]:
        """Slices of ``resolution`` with ``since <= start < until``, ordered by (service, start).

        ``until=None`` reads to the newest slice; ``services=None`` reads every
        service. Service names are ordered by code point on both backends.

        Raises:
            ValueError: a bound that is not a finite number, a bad resolution or name.
            CorruptRow: a row was damaged; names its service, start and field.
        """
        ...

    async def prune_history(
        self, *, now: float, retention: Mapping[int, float], sketch_retention: float
    ) -> int:
        """Apply retention, in one transaction.

        Deletes the slices of each resolution in ``retention`` that start before
        ``now - retention[resolution]`` (other resolutions are kept), and drops
        the sketch of every slice that starts before ``now - sketch_retention``.

        Returns:
            How many slices were deleted.

        Raises:
            ValueError: a time or retention that is not a finite number >= 0.
        """
        ...

    def leader_lock(self) -> LeaderLock:
        """A lock object for leadership of this store (not yet acquired)."""
        ...

    async def close(self) -> None:
        """Release connections and files (idempotent)."""
        ...
