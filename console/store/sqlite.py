"""The embedded event store: one SQLite file that several processes share.

Conn runs alone by default, so the default store must need no server. SQLite
in WAL mode lets a console, ``conn agent`` and scripting commands read while
one of them writes; ``BEGIN IMMEDIATE`` takes the write lock before the
version check, so the check and the insert are one atomic step across
processes, and the global hash chain stays linear.

Opening is careful with files that are not ours: a foreign or newer file is
refused before anything is written to it, so pointing Conn at the wrong path
never damages someone's data.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from console.errors import (
    ConcurrencyError,
    NotAConnDatabase,
    SchemaTooNew,
    StateDirError,
    StoreError,
)
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
)
from console.store.base import LiveRow
from console.store.locks import FileLeaderLock

_T = TypeVar("_T")

_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE events (
        position INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        stream TEXT NOT NULL,
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        time REAL NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        payload TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        UNIQUE (stream, version)
    )""",
    """CREATE TABLE live (
        service TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL,
        writer TEXT NOT NULL
    )""",
)

_COLUMNS = COLUMNS


def _inspect(conn: sqlite3.Connection, path: Path) -> int | None:
    """The file's Conn schema version, or None for a brand-new (empty) file.

    Raises:
        NotAConnDatabase: SQLite, but not written by Conn.
        SchemaTooNew: written by a newer Conn.
    """
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    if not tables and user_version == 0:
        return None
    if "meta" not in tables:
        raise NotAConnDatabase(
            f"{path} is a SQLite database, but not Conn's (no meta table); it was not changed"
        )
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError as e:
        raise NotAConnDatabase(f"{path} is not a Conn database ({e}); it was not changed") from e
    if meta.get("app") != APP:
        raise NotAConnDatabase(
            f"{path} is a SQLite database of app {meta.get('app')!r}, not Conn's; it was not changed"
        )
    try:
        version = int(meta["schema_version"])
    except (KeyError, ValueError) as e:
        raise NotAConnDatabase(
            f"{path} has no valid Conn schema version; it was not changed"
        ) from e
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{path} was written by a newer Conn (schema version {version}, this Conn "
            f"knows up to {SCHEMA_VERSION}); upgrade Conn. The file was not changed."
        )
    return version


def _probe(path: Path, timeout: float) -> None:
    """Check an existing file read-only, so a file that is not ours stays byte-for-byte intact."""
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open {path}: {e}") from e
    try:
        _inspect(conn, path)
    except sqlite3.DatabaseError as e:
        if getattr(e, "sqlite_errorcode", None) == _SQLITE_NOTADB:
            raise NotAConnDatabase(
                f"{path} is not a SQLite database (so not a Conn store); it was not changed"
            ) from e
        raise StoreError(f"cannot read {path}: {e}") from e
    finally:
        conn.close()


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StateDirError(
            f"cannot create the state directory {directory}: {e.strerror or e}"
        ) from e
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StateDirError(f"the state directory {directory} is not writable")


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
    ) -> SQLiteEventStore:
        """Open (creating if needed) the store at ``path``.

        Args:
            path: the database file; its directory is created if missing.
            poll_interval: seconds between polls in :meth:`subscribe`.
            busy_timeout: seconds to wait for another process's write lock.

        Raises:
            StateDirError: the directory cannot be created or written.
            NotAConnDatabase: the file exists but is not a Conn store (untouched).
            SchemaTooNew: the file was written by a newer Conn (untouched).
            StoreError: any other failure to open.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conn-sqlite")
        try:
            absolute, conn = await asyncio.get_running_loop().run_in_executor(
                executor, _open_blocking, path, busy_timeout
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

    @staticmethod
    @contextmanager
    def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
        # IMMEDIATE takes the write lock now, so what we read is still true at COMMIT.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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
            with self._write_transaction(conn):
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


def _open_blocking(
    given: str | os.PathLike[str], busy_timeout: float
) -> tuple[Path, sqlite3.Connection]:
    path = Path(os.path.abspath(os.fspath(given)))
    _ensure_dir(path.parent)
    existed = path.exists()
    if existed:
        if not path.is_file():
            raise StoreError(f"{path} is not a file")
        _probe(path, busy_timeout)
    try:
        conn = sqlite3.connect(
            str(path), timeout=busy_timeout, isolation_level=None
        )
    except sqlite3.Error as e:
        raise _open_error(path, existed, e) from e
    try:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        with SQLiteEventStore._write_transaction(conn):
            # Checked again under the write lock: another process may have
            # created the schema since the probe.
            # (A file at an older schema version would be migrated here; there is none yet.)
            if _inspect(conn, path) is None:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("app", APP), ("schema_version", str(SCHEMA_VERSION))],
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.Error as e:
        conn.close()
        raise _open_error(path, existed, e) from e
    except BaseException:
        conn.close()
        raise
    return path, conn


def _open_error(path: Path, existed: bool, error: sqlite3.Error) -> StoreError:
    if not existed and getattr(error, "sqlite_errorcode", None) == _SQLITE_CANTOPEN:
        return StateDirError(f"cannot create {path} in its state directory: {error}")
    if getattr(error, "sqlite_errorcode", None) == _SQLITE_NOTADB:
        return NotAConnDatabase(f"{path} is not a SQLite database (so not a Conn store)")
    return StoreError(f"cannot open {path}: {error}")
