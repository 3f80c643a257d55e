"""The team event store: PostgreSQL via asyncpg, shared by many consoles.

Every append runs in one transaction that first takes a transaction-level
advisory lock, so appends from all consoles are serialised: the version check
and the insert are atomic, positions are dense (1, 2, 3, … — no sequence
gaps), commits happen in position order, and the global hash chain stays
linear. Appends are rare (decisions, not samples), so one lock costs nothing.

Subscribers hear ``NOTIFY conn_events`` on a dedicated connection and poll as
a fallback, so a lost listener only makes them slower, never blind.
Tables are prefixed ``conn_`` so the store can live in a shared database.

The signal history is written once per tick for every service, so a write is
one ``INSERT … SELECT FROM unnest(…)`` statement: one round trip, one transaction.
Schema creation and migrations live in ``_postgres_schema``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

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
    redact_url,
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
from console.store._postgres_schema import (
    APPEND_LOCK_KEY,
    DRIVER_ERRORS,
    URL_ERRORS,
    check_url,
    initialize,
)
from console.store.base import LiveRow
from console.store.postgres_lock import AdvisoryLeaderLock

_T = TypeVar("_T")

CHANNEL = "conn_events"
"""NOTIFY channel; the payload is the last appended position."""

_LISTEN_RETRY = 5.0
"""Seconds between attempts to re-open a lost listener connection."""

_COLUMNS = COLUMNS


async def _translate(url: str, work: Awaitable[_T]) -> _T:
    try:
        return await work
    except DRIVER_ERRORS as e:
        raise StoreError(f"{url}: {e}") from e


class PostgresEventStore:
    """An :class:`~console.store.base.EventStore` in a PostgreSQL database.

    Build it with ``await PostgresEventStore.open(dsn)`` (or ``open_store``);
    ``await store.close()`` when done.
    """

    def __init__(
        self, dsn: str, pool: asyncpg.Pool, *, poll_interval: float, password: str | None = None
    ) -> None:
        """Wrap a pool on an initialised database; use :meth:`open` instead."""
        self._dsn = dsn
        self._password = password
        self._url = redact_url(dsn)
        self._pool = pool
        self._poll_interval = poll_interval
        self._closed = False
        self._listener: asyncpg.Connection | None = None
        self._listen_attempt = -_LISTEN_RETRY
        self._wake = asyncio.Event()

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        poll_interval: float = 1.0,
        max_connections: int = 4,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        password: str | None = None,
        migrate: bool = False,
    ) -> PostgresEventStore:
        """Connect to ``dsn`` (``postgresql://user:pw@host:port/db``) and prepare the schema.

        Args:
            dsn: any URL asyncpg accepts.
            poll_interval: seconds between polls when no NOTIFY arrives.
            max_connections: size limit of the connection pool.
            connect_timeout: seconds to wait for the server.
            command_timeout: seconds before any one query is given up (a hung
                server becomes a StoreError instead of a frozen console).
            password: the password, kept out of the URL (it comes from a secret).
            migrate: bring tables at an older schema version up to date
                instead of refusing them.

        Raises:
            NotAConnDatabase: conn_* tables exist but are not Conn's.
            SchemaTooNew: written by a newer Conn (nothing changed).
            SchemaTooOld: at an older version and not ``migrate`` (nothing changed).
            StoreError: the server cannot be reached or refused us.
        """
        url = check_url(dsn)
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=max_connections, timeout=connect_timeout,
                command_timeout=command_timeout, password=password,
            )
        except URL_ERRORS as e:  # asyncpg's DSN parsing; before DRIVER_ERRORS on purpose
            raise StoreError(f"{url} is not a usable PostgreSQL URL: {e}") from e
        except DRIVER_ERRORS as e:
            raise StoreError(f"cannot connect to {url}: {e}") from e
        try:
            async with pool.acquire() as conn:
                await _translate(url, initialize(conn, url, migrate=migrate))
        except BaseException:
            pool.terminate()
            raise
        return cls(dsn, pool, poll_interval=poll_interval, password=password)

    @property
    def url(self) -> str:
        """The DSN without its password."""
        return self._url

    async def _with_conn(self, work: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
        if self._closed:
            raise StoreError(f"{self._url} is closed")

        async def run() -> _T:
            async with self._pool.acquire() as conn:
                return await work(conn)

        return await _translate(self._url, run())

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
            StoreError: the database could not be written.
        """
        check_append(stream, expected_version, events)
        who = str(actor)

        async def work(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
                actual = await conn.fetchval(
                    "SELECT coalesce(max(version), 0) FROM conn_events WHERE stream = $1", stream
                )
                if actual != expected_version:
                    row = await conn.fetchrow(
                        f"SELECT {_COLUMNS} FROM conn_events WHERE stream = $1 "
                        "ORDER BY version DESC LIMIT 1",
                        stream,
                    )
                    winner = describe_row(row) if row else no_winner(stream)
                    raise ConcurrencyError(stream, expected_version, actual, winner)
                last = await conn.fetchrow(
                    "SELECT position, hash FROM conn_events ORDER BY position DESC LIMIT 1"
                )
                position, prev_hash = (last[0], last[1]) if last else (0, GENESIS_HASH)
                built = build_events(
                    stream=stream, expected_version=expected_version,
                    first_position=position + 1, prev_hash=prev_hash, events=events,
                    actor=who, at=at,
                )
                await conn.executemany(
                    f"INSERT INTO conn_events ({_COLUMNS}) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    [
                        (e.position, e.id, e.stream, e.version, e.type, e.time, e.actor,
                         e.reason, text, e.prev_hash, e.hash)
                        for e, text in built
                    ],
                )
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(built[-1][0].position))
                return built[-1][0].version

        return await self._with_conn(work)

    async def stream_version(self, stream: str) -> int:
        """The stream's current version (0 when it has no events)."""
        check_stream_name(stream)

        async def work(conn: asyncpg.Connection) -> int:
            return int(
                await conn.fetchval(
                    "SELECT coalesce(max(version), 0) FROM conn_events WHERE stream = $1", stream
                )
            )

        return await self._with_conn(work)

    async def read_stream(self, stream: str) -> list[Event]:
        """Every event of ``stream``, oldest first."""
        check_stream_name(stream)

        async def work(conn: asyncpg.Connection) -> list[Event]:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM conn_events WHERE stream = $1 ORDER BY version", stream
            )
            return [event_from_row(row) for row in rows]

        return await self._with_conn(work)

    async def read_all(self, after: int = 0, limit: int | None = None) -> list[Event]:
        """Events with a position greater than ``after``, oldest first, at most ``limit``."""

        async def work(conn: asyncpg.Connection) -> list[Event]:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM conn_events WHERE position > $1 "
                "ORDER BY position LIMIT $2",
                after,
                limit,
            )
            return [event_from_row(row) for row in rows]

        return await self._with_conn(work)

    async def read_tail(self, limit: int) -> list[Event]:
        """The newest ``limit`` events, oldest first (what a console needs at start-up)."""
        check_limit(limit)

        async def work(conn: asyncpg.Connection) -> list[Event]:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM conn_events ORDER BY position DESC LIMIT $1", limit
            )
            return [event_from_row(row) for row in reversed(rows)]

        return await self._with_conn(work)

    async def subscribe(self, after: int = 0) -> AsyncIterator[Event]:
        """Every event after ``after``, then new ones as any console appends them.

        Woken by NOTIFY; polls every ``poll_interval`` seconds regardless, in
        batches of at most ``READ_BATCH`` events.
        """
        position = after
        while True:
            await self._ensure_listener()
            wake = self._wake  # taken before reading, so a NOTIFY during the read is not lost
            batch = await self.read_all(position, limit=READ_BATCH)
            for event in batch:
                position = event.position
                yield event
            if len(batch) < READ_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self._poll_interval)

    def _on_notify(self, *_: object) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def _ensure_listener(self) -> None:
        """Open the LISTEN connection if it is missing; failures just leave polling on."""
        if self._closed or (self._listener is not None and not self._listener.is_closed()):
            return
        now = time.monotonic()
        if now - self._listen_attempt < _LISTEN_RETRY:
            return
        self._listen_attempt = now
        self._listener = None
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=self._poll_interval * 5, password=self._password
            )
            await conn.add_listener(CHANNEL, self._on_notify)
        except DRIVER_ERRORS:
            return  # polling continues; retried after _LISTEN_RETRY
        if self._closed:
            await conn.close()
            return
        self._listener = conn

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

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                f"INSERT INTO conn_live ({LIVE_COLUMNS}) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (service) DO UPDATE SET "
                "data = excluded.data, updated_at = excluded.updated_at, writer = excluded.writer",
                service, text, when, writer,
            )

        await self._with_conn(work)

    async def read_live(self) -> dict[str, LiveRow]:
        """Every live row, by service name.

        Raises:
            CorruptRow: a row was damaged; it names the service.
        """

        async def work(conn: asyncpg.Connection) -> dict[str, LiveRow]:
            rows = await conn.fetch(f"SELECT {LIVE_COLUMNS} FROM conn_live")
            return {row.service: row for row in map(live_from_row, rows)}

        return await self._with_conn(work)

    # -- signal history --------------------------------------------------------

    async def write_history(self, slices: Sequence[HistorySlice]) -> None:
        """Upsert ``slices`` by (service, resolution, start) in one statement (one round trip).

        Raises:
            ValueError: a slice that cannot be stored (nothing is written then).
            StoreError: the database could not be written.
        """
        rows = history_rows(slices)
        if not rows:
            return
        columns = [list(column) for column in zip(*rows, strict=True)]

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                f"INSERT INTO conn_history ({HISTORY_COLUMNS}) "
                "SELECT * FROM unnest($1::text[], $2::integer[], $3::double precision[], "
                "$4::bigint[], $5::bigint[], $6::bytea[], $7::json[]) "
                "ON CONFLICT (service, resolution, start) DO UPDATE SET "
                "samples = excluded.samples, errors = excluded.errors, "
                "sketch = excluded.sketch, data = excluded.data",
                *columns,
            )

        await self._with_conn(work)

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

        async def work(conn: asyncpg.Connection) -> list[HistorySlice]:
            # NULL for "no bound" / "every service" keeps it one prepared statement.
            rows = await conn.fetch(
                f"SELECT {HISTORY_COLUMNS} FROM conn_history "
                "WHERE resolution = $1 AND start >= $2 AND ($3::double precision IS NULL "
                "OR start < $3) AND ($4::text[] IS NULL OR service = ANY($4)) "
                "ORDER BY service, start",
                resolution, first, last, names,
            )
            return [history_from_row(row) for row in rows]

        return await self._with_conn(work)

    async def prune_history(
        self, *, now: float, retention: Mapping[int, float], sketch_retention: float
    ) -> int:
        """Delete slices older than their resolution's retention; drop older sketches.

        Resolutions missing from ``retention`` are kept. One transaction.

        Returns:
            How many slices were deleted.
        """
        cutoffs, sketch_cutoff = check_retention(now, retention, sketch_retention)

        async def work(conn: asyncpg.Connection) -> int:
            deleted = 0
            async with conn.transaction():
                for resolution, cutoff in cutoffs:
                    status = await conn.execute(
                        "DELETE FROM conn_history WHERE resolution = $1 AND start < $2",
                        resolution, cutoff,
                    )
                    deleted += int(status.rpartition(" ")[2])  # "DELETE 42"
                await conn.execute(
                    "UPDATE conn_history SET sketch = NULL "
                    "WHERE sketch IS NOT NULL AND start < $1",
                    sketch_cutoff,
                )
            return deleted

        return await self._with_conn(work)

    # -- leadership and lifetime ----------------------------------------------

    def leader_lock(self) -> AdvisoryLeaderLock:
        """A session advisory lock on its own connection (not yet taken)."""
        return AdvisoryLeaderLock(self._dsn, password=self._password)

    async def close(self) -> None:
        """Close the listener and the pool (idempotent); later calls raise StoreError."""
        if self._closed:
            return
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()
        try:
            await asyncio.wait_for(self._pool.close(), timeout=5)
        except DRIVER_ERRORS:
            self._pool.terminate()  # a connection stuck or already broken: cut it
        except asyncio.CancelledError:
            self._pool.terminate()
            raise
