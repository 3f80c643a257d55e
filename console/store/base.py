"""The one persistence contract: an event log plus a small live table.

Two implementations fit it: SQLite (embedded, the default) and PostgreSQL
(team mode). Callers never know which one they hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from console.model.events import Actor, Event, NewEvent


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
    """An append-only event log with optimistic concurrency, plus the live table."""

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

    def leader_lock(self) -> LeaderLock:
        """A lock object for leadership of this store (not yet acquired)."""
        ...

    async def close(self) -> None:
        """Release connections and files (idempotent)."""
        ...
