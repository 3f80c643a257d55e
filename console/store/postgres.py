"""The team event store: PostgreSQL via asyncpg, shared by many consoles.

Every append runs in one transaction that first takes a transaction-level
advisory lock, so appends from all consoles are serialised: the version check
and the insert are atomic, positions are dense (1, 2, 3, … — no sequence
gaps), commits happen in position order, and the global hash chain stays
linear. Appends are rare (decisions, not samples), so one lock costs nothing.

Subscribers hear ``NOTIFY conn_events`` on a dedicated connection and poll as
a fallback, so a lost listener only makes them slower, never blind.
Tables are prefixed ``conn_`` so the store can live in a shared database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

from console.errors import ConcurrencyError, NotAConnDatabase, SchemaTooNew, StoreError
from console.model.events import GENESIS_HASH, Actor, Event, NewEvent, check_stream_name
from console.store._common import (
    APP,
    COLUMNS,
    LIVE_COLUMNS,
    READ_BATCH,
    SCHEMA_VERSION,
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
from console.store.base import LiveRow

_T = TypeVar("_T")

APPEND_LOCK_KEY = 0x636F_6E6E_0001
"""Advisory lock (transaction-level) that serialises appends and schema changes."""

LEADER_LOCK_KEY = 0x636F_6E6E_0002
"""Advisory lock (session-level) held by the leader on its own connection."""

CHANNEL = "conn_events"
"""NOTIFY channel; the payload is the last appended position."""

_LISTEN_RETRY = 5.0
"""Seconds between attempts to re-open a lost listener connection."""

_LOCK_QUERY_TIMEOUT = 5.0
"""Seconds a leader-lock query may take before the lock is treated as lost."""

_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)

_SCHEMA = (
    "CREATE TABLE conn_meta (key text PRIMARY KEY, value text NOT NULL)",
    # payload is `json`, not `jsonb`: json keeps the text verbatim, so what was
    # hashed is what reads back (jsonb would rewrite 1e100 and re-hash wrong).
    """CREATE TABLE conn_events (
        position bigint PRIMARY KEY,
        id text NOT NULL UNIQUE,
        stream text NOT NULL,
        version integer NOT NULL,
        type text NOT NULL,
        time double precision NOT NULL,
        actor text NOT NULL,
        reason text NOT NULL,
        payload json NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        UNIQUE (stream, version)
    )""",
    """CREATE TABLE conn_live (
        service text PRIMARY KEY,
        data json NOT NULL,
        updated_at double precision NOT NULL,
        writer text NOT NULL
    )""",
)

_COLUMNS = COLUMNS

_URL_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ClientConfigurationError,
    ValueError,
    OverflowError,
    TypeError,
    UnicodeError,
)
"""What asyncpg raises, besides driver errors, for a DSN it cannot use (port 99999 → OverflowError)."""


def _port_problem(port: str) -> str | None:
    if not port:
        return None
    shown = port if len(port) <= 20 else port[:20] + "…"
    if not port.isascii() or not port.isdigit():
        return f"port {shown!r} is not a number"
    if not 1 <= int(port) <= 65535:
        return f"port {shown} is out of range (1-65535)"
    return None


def _url_problem(dsn: str) -> str | None:
    """What is wrong with the ports of ``dsn``, or None.

    Checked before asyncpg sees the URL, because asyncpg reports a bad port
    as a bare OverflowError from deep in its connect code.
    """
    try:
        parts = urlsplit(dsn)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as e:
        return str(e)
    hosts = parts.netloc.rpartition("@")[2]  # the password may hold ':' or ','
    ports = []
    for host in hosts.split(","):
        if host.startswith("["):  # [::1]:5432
            ports.append(host.partition("]")[2].removeprefix(":"))
        else:
            ports.append(host.partition(":")[2])
    ports += [p for k, v in query if k == "port" for p in v.split(",")]
    for port in ports:
        problem = _port_problem(port)
        if problem is not None:
            return problem
    return None


async def _translate(url: str, work: Awaitable[_T]) -> _T:
    try:
        return await work
    except _DRIVER_ERRORS as e:
        raise StoreError(f"{url}: {e}") from e


async def _initialize(conn: asyncpg.Connection, url: str) -> None:
    """Create the schema in an empty database, or check an existing one is ours and not newer."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
        found = await conn.fetchrow(
            "SELECT to_regclass('conn_meta') IS NOT NULL AS meta, "
            "to_regclass('conn_events') IS NOT NULL AS events, "
            "to_regclass('conn_live') IS NOT NULL AS live"
        )
        if found is None or not found["meta"]:
            if found is not None and (found["events"] or found["live"]):
                raise NotAConnDatabase(
                    f"{url} has conn_events/conn_live tables but no conn_meta; not changed"
                )
            for statement in _SCHEMA:
                await conn.execute(statement)
            await conn.executemany(
                "INSERT INTO conn_meta (key, value) VALUES ($1, $2)",
                [("app", APP), ("schema_version", str(SCHEMA_VERSION))],
            )
            return
        meta = {r["key"]: r["value"] for r in await conn.fetch("SELECT key, value FROM conn_meta")}
        if meta.get("app") != APP:
            raise NotAConnDatabase(f"{url}: conn_meta does not belong to Conn; not changed")
        try:
            version = int(meta["schema_version"])
        except (KeyError, ValueError) as e:
            raise NotAConnDatabase(f"{url}: conn_meta has no valid schema_version") from e
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{url} was written by a newer Conn (schema version {version}, this Conn "
                f"knows up to {SCHEMA_VERSION}); upgrade Conn. Nothing was changed."
            )


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

        Raises:
            NotAConnDatabase: conn_* tables exist but are not Conn's.
            SchemaTooNew: written by a newer Conn (nothing changed).
            StoreError: the server cannot be reached or refused us.
        """
        url = redact_url(dsn)
        problem = _url_problem(dsn)
        if problem is not None:
            raise StoreError(f"{url} is not a usable PostgreSQL URL: {problem}")
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=max_connections, timeout=connect_timeout,
                command_timeout=command_timeout, password=password,
            )
        except _URL_ERRORS as e:  # asyncpg's DSN parsing; before _DRIVER_ERRORS on purpose
            raise StoreError(f"{url} is not a usable PostgreSQL URL: {e}") from e
        except _DRIVER_ERRORS as e:
            raise StoreError(f"cannot connect to {url}: {e}") from e
        try:
            async with pool.acquire() as conn:
                await _translate(url, _initialize(conn, url))
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
        except _DRIVER_ERRORS:
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
        except _DRIVER_ERRORS:
            self._pool.terminate()  # a connection stuck or already broken: cut it
        except asyncio.CancelledError:
            self._pool.terminate()
            raise


class AdvisoryLeaderLock:
    """A :class:`~console.store.base.LeaderLock`: ``pg_try_advisory_lock`` on a dedicated connection.

    The database releases the lock when that connection ends — the holder
    died, its host vanished, or :meth:`release` closed it.
    """

    def __init__(
        self, dsn: str, key: int = LEADER_LOCK_KEY, *, password: str | None = None
    ) -> None:
        """Prepare a lock on ``key`` in the database at ``dsn``; nothing connects yet."""
        self._dsn = dsn
        self._password = password
        self._url = redact_url(dsn)
        self._key = key
        self._conn: asyncpg.Connection | None = None
        self._held = False

    @property
    def held(self) -> bool:
        """True while the lock is taken and its connection is alive."""
        return self._held and self._conn is not None and not self._conn.is_closed()

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; True while held. Does not wait for the holder.

        When already held, checks the connection is still alive (a dead
        connection means the database has already given the lock away).

        Raises:
            StoreError: the database cannot be reached.
        """
        if self._conn is not None and self._conn.is_closed():
            self._conn, self._held = None, False
        try:
            if self._conn is None:
                self._conn = await asyncpg.connect(self._dsn, timeout=10, password=self._password)
            if self._held:
                await self._conn.fetchval("SELECT 1", timeout=_LOCK_QUERY_TIMEOUT)
                return True
            self._held = bool(
                await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", self._key, timeout=_LOCK_QUERY_TIMEOUT
                )
            )
        except _DRIVER_ERRORS as e:
            await self._drop()
            raise StoreError(f"leader lock on {self._url}: {e}") from e
        return self._held

    async def release(self) -> None:
        """Give the lock up and close its connection (idempotent)."""
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is None or conn.is_closed():
            return
        try:
            # Ending the session frees the lock; an explicit unlock is not needed.
            await asyncio.wait_for(conn.close(), timeout=5)
        except _DRIVER_ERRORS:
            conn.terminate()  # broken already: the server drops the lock with it
        except asyncio.CancelledError:
            conn.terminate()
            raise
