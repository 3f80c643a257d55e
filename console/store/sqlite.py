"""The embedded event store: one SQLite file that several processes share.

Conn runs alone by default, so the default store must need no server. SQLite
in WAL mode lets a console, ``conn agent`` and scripting commands read while
one of them writes; ``BEGIN IMMEDIATE`` takes the write lock before the
version check, so the check and the insert are one atomic step across
processes, and the global hash chain stays linear.

Opening, creating and migrating the file live in ``_sqlite_schema``; this
module is the store once it is open.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from console.errors import ConcurrencyError, StoreError
from console.model.events import GENESIS_HASH, Actor, Event, NewEvent, check_stream_name
from console.model.history import HistorySlice
from console.store._common import (
    COLUMNS,
    LIVE_COLUMNS,
    READ_BATCH,
    build_events,
    check_append,
    check_limit,
    check_live,
    describe_row,
    event_from_row,
    live_from_row,
    no_winner,
)
from console.store._history import (
    HISTORY_COLUMNS,
    check_resolution,
    check_retention,
    check_services,
    check_window,
    history_from_row,
    history_rows,
)
from console.store._sqlite_schema import open_blocking, write_transaction
from console.store.base import LiveRow
from console.store.locks import FileLeaderLock

_T = TypeVar("_T")

_COLUMNS = COLUMNS


class SQLiteEventStore:
    """An :class:`~console.store.base.EventStore` in one SQLite file.

    Build it with ``await SQLiteEventStore.open(path)`` (or ``open_store``);
    ``await store.close()`` when done.

    The store owns one connection and one worker thread that alone uses it,
    so calls are serialised without a lock, and a call waiting on another
    process's write lock occupies this thread only — never the default
    executor that the rest of Conn shares (``asyncio.to_thread``).
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        *,
        poll_interval: float,
    ) -> None:
        """Wrap a connection opened in ``executor``'s thread; use :meth:`open` instead."""
        self._path = path
        self._conn: sqlite3.Connection | None = conn
        self._executor = executor
        self._poll_interval = poll_interval

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 0.25,
        busy_timeout: float = 10.0,
        migrate: bool = False,
    ) -> SQLiteEventStore:
        """Open (creating if needed) the store at ``path``.

        Args:
            path: the database file; its directory is created if missing.
            poll_interval: seconds between polls in :meth:`subscribe`.
            busy_timeout: seconds to wait for another process's write lock.
            migrate: bring a file at an older schema version up to date
                instead of refusing it.

        Raises:
            StateDirError: the directory cannot be created or written.
            NotAConnDatabase: the file exists but is not a Conn store (untouched).
            SchemaTooNew: the file was written by a newer Conn (untouched).
            SchemaTooOld: the file is at an older version and not ``migrate`` (untouched).
            StoreError: any other failure to open.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conn-sqlite")
        try:
            absolute, conn = await asyncio.get_running_loop().run_in_executor(
                executor, lambda: open_blocking(path, busy_timeout, migrate=migrate)
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(absolute, conn, executor, poll_interval=poll_interval)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def url(self) -> str:
        """``sqlite:///abs/path``."""
        return f"sqlite://{self._path}"

    # -- plumbing ------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._conn is None:
            raise StoreError(f"{self.url} is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._run_blocking, work
        )

    def _run_blocking(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._conn is None:  # closed while this call was queued
            raise StoreError(f"{self.url} is closed")
        try:
            return work(self._conn)
        except sqlite3.Error as e:
            raise StoreError(f"{self.url}: {e}") from e

    # -- events --------------------------------------------------------------

    async def append(
        self,
        stream: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        actor: Actor,
        at: float,
    ) -> int:
        """Append ``events`` if ``stream`` is still at ``expected_version``; return the new version.

        Raises:
            ConcurrencyError: someone appended first; names their latest event.
            ValueError: a bad stream name, version, or a payload that is not JSON.
            StoreError: the file could not be written.
        """
        check_append(stream, expected_version, events)
        who = str(actor)

        def work(conn: sqlite3.Connection) -> int:
            with write_transaction(conn):
                actual = conn.execute(
                    "SELECT coalesce(max(version), 0) FROM events WHERE stream = ?", (stream,)
                ).fetchone()[0]
                if actual != expected_version:
                    raise ConcurrencyError(
                        stream, expected_version, actual, _latest(conn, stream)
                    )
                last = conn.execute(
                    "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
                ).fetchone()
                position, prev_hash = (last[0], last[1]) if last else (0, GENESIS_HASH)
                built = build_events(
                    stream=stream, expected_version=expected_version,
                    first_position=position + 1, prev_hash=prev_hash, events=events,
                    actor=who, at=at,
                )
                conn.executemany(
                    f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (e.position, e.id, e.stream, e.version, e.type, e.time, e.actor,
                         e.reason, text, e.prev_hash, e.hash)
                        for e, text in built
                    ],
                )
                return built[-1][0].version

        return await self._run(work)

    async def stream_version(self, stream: str) -> int:
        """The stream's current version (0 when it has no events)."""
        check_stream_name(stream)
        return await self._run(
            lambda conn: int(
                conn.execute(
                    "SELECT coalesce(max(version), 0) FROM events WHERE stream = ?", (stream,)
                ).fetchone()[0]
            )
        )

    async def read_stream(self, stream: str) -> list[Event]:
        """Every event of ``stream``, oldest first."""
        check_stream_name(stream)
        return await self._run(
            lambda conn: [
                event_from_row(row)
                for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE stream = ? ORDER BY version", (stream,)
                )
            ]
        )

    async def read_all(self, after: int = 0, limit: int | None = None) -> list[Event]:
        """Events with a position greater than ``after``, oldest first, at most ``limit``."""
        return await self._run(
            lambda conn: [
                event_from_row(row)
                for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
                    (after, -1 if limit is None else limit),
                )
            ]
        )

    async def read_tail(self, limit: int) -> list[Event]:
        """The newest ``limit`` events, oldest first (what a console needs at start-up)."""
        check_limit(limit)

        def work(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events ORDER BY position DESC LIMIT ?", (limit,)
            ).fetchall()
            return [event_from_row(row) for row in reversed(rows)]

        return await self._run(work)

    async def subscribe(self, after: int = 0) -> AsyncIterator[Event]:
        """Every event after ``after``, then new ones as other processes append them.

        Polls every ``poll_interval`` seconds, in batches of at most
        ``READ_BATCH`` events, so a far-behind subscriber never loads the whole log.
        """
        position = after
        while True:
            batch = await self.read_all(position, limit=READ_BATCH)
            for event in batch:
                position = event.position
                yield event
            if len(batch) < READ_BATCH:
                await asyncio.sleep(self._poll_interval)

    # -- live table ------------------------------------------------------------

    async def write_live(
        self, service: str, data: Mapping[str, Any], *, at: float, writer: str
    ) -> None:
        """Overwrite the live row of ``service``.

        Raises:
            ValueError: ``data`` is not plain JSON (NaN and infinities included),
                or a bad service name, writer or time.
        """
        text, when = check_live(service, data, at, writer)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO live ({LIVE_COLUMNS}) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (service) DO UPDATE SET data = excluded.data, "
                "updated_at = excluded.updated_at, writer = excluded.writer",
                (service, text, when, writer),
            )

        await self._run(work)

    async def read_live(self) -> dict[str, LiveRow]:
        """Every live row, by service name.

        Raises:
            CorruptRow: a row was damaged; it names the service.
        """

        def work(conn: sqlite3.Connection) -> dict[str, LiveRow]:
            rows = (live_from_row(row) for row in conn.execute(f"SELECT {LIVE_COLUMNS} FROM live"))
            return {row.service: row for row in rows}

        return await self._run(work)

    # -- signal history --------------------------------------------------------

    async def write_history(self, slices: Sequence[HistorySlice]) -> None:
        """Upsert ``slices`` by (service, resolution, start), all in one transaction.

        Raises:
            ValueError: a slice that cannot be stored (nothing is written then).
            StoreError: the file could not be written.
        """
        rows = history_rows(slices)
        if not rows:
            return

        def work(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                conn.executemany(
                    f"INSERT INTO history ({HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (service, resolution, start) DO UPDATE SET "
                    "samples = excluded.samples, errors = excluded.errors, "
                    "sketch = excluded.sketch, data = excluded.data",
                    rows,
                )

        await self._run(work)

    async def read_history(
        self,
        *,
        since: float,
        until: float | None = None,
        services: Collection[str] | None = None,
        resolution: int = 10,
    ) -> list[HistorySlice]:
        """Slices of ``resolution`` with ``since <= start < until``, ordered by (service, start).

        Raises:
            ValueError: a bound that is not a finite number, a bad resolution or name.
            CorruptRow: a row was damaged; names its service, start and field.
        """
        first, last = check_window(since, until)
        names = check_services(services)
        check_resolution(resolution)
        if names == []:
            return []
        query = f"SELECT {HISTORY_COLUMNS} FROM history WHERE resolution = ? AND start >= ?"
        args: list[object] = [resolution, first]
        if last is not None:
            query += " AND start < ?"
            args.append(last)
        if names is not None:
            query += f" AND service IN ({', '.join('?' * len(names))})"
            args += names
        query += " ORDER BY service, start"
        return await self._run(
            lambda conn: [history_from_row(row) for row in conn.execute(query, args)]
        )

    async def prune_history(
        self, *, now: float, retention: Mapping[int, float], sketch_retention: float
    ) -> int:
        """Delete slices older than their resolution's retention; drop older sketches.

        Resolutions missing from ``retention`` are kept. One transaction.

        Returns:
            How many slices were deleted.
        """
        cutoffs, sketch_cutoff = check_retention(now, retention, sketch_retention)

        def work(conn: sqlite3.Connection) -> int:
            deleted = 0
            with write_transaction(conn):
                for resolution, cutoff in cutoffs:
                    deleted += conn.execute(
                        "DELETE FROM history WHERE resolution = ? AND start < ?",
                        (resolution, cutoff),
                    ).rowcount
                conn.execute(
                    "UPDATE history SET sketch = NULL WHERE sketch IS NOT NULL AND start < ?",
                    (sketch_cutoff,),
                )
            return deleted

        return await self._run(work)

    # -- leadership and lifetime ----------------------------------------------

    def leader_lock(self) -> FileLeaderLock:
        """An ``flock`` on ``<db path>.lock`` beside the database (not yet taken)."""
        return FileLeaderLock(self._path.with_name(self._path.name + ".lock"))

    async def close(self) -> None:
        """Close the connection (idempotent); later calls raise StoreError."""

        if self._conn is None:
            return

        def work() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        # Queued behind any call still running, so it never closes under one.
        await asyncio.get_running_loop().run_in_executor(self._executor, work)
        self._executor.shutdown(wait=False)


def _latest(conn: sqlite3.Connection, stream: str) -> str:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1", (stream,)
    ).fetchone()
    return describe_row(row) if row else no_winner(stream)
