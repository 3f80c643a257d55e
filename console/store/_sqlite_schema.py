"""Opening, creating and migrating the SQLite file, carefully with files that are not ours.

A foreign, newer or older file is refused before anything is written to it
(a read-only look comes first), so pointing Conn at the wrong path, or an old
Conn at a new store, never damages anyone's data. Creation and each
migration run under ``BEGIN IMMEDIATE``, so processes opening one file at
once agree on what it holds.

Everything here blocks; the store calls it from its own worker thread, and
:func:`migrate` hands it to a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from console.errors import NotAConnDatabase, StateDirError, StoreError
from console.store._common import APP
from console.store.migrations import (
    BASE_VERSION,
    MIGRATIONS,
    SCHEMA_VERSION,
    SQLITE_V1,
    Migration,
    MigrationReport,
    MigrationStep,
    check_version,
    pending,
)

_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

_UNCHANGED = "The file was not changed."


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if anything in it fails, COMMIT included.

    IMMEDIATE takes the write lock now, so what is read inside is still true
    at COMMIT. A COMMIT can fail (an I/O error, a full disk) and leave the
    transaction open; it is rolled back then too, or every later
    ``BEGIN`` on this connection would fail until the process restarts.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            # The error being raised says what went wrong; a failing ROLLBACK
            # (SQLite already rolled back) would only hide it.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def inspect(conn: sqlite3.Connection, path: Path, *, allow_older: bool) -> int | None:
    """The file's Conn schema version, or None for a brand-new (empty) file.

    Raises:
        NotAConnDatabase: SQLite, but not written by Conn.
        SchemaTooNew: written by a newer Conn.
        SchemaTooOld: at an older version, and not ``allow_older``.
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
    check_version(str(path), version, allow_older=allow_older, unchanged=_UNCHANGED)
    return version


def probe(path: Path, timeout: float, *, allow_older: bool) -> int | None:
    """Check an existing file read-only, so a file that is not ours stays byte-for-byte intact.

    Returns:
        The file's schema version, or None for an empty file.
    """
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open {path}: {e}") from e
    try:
        return inspect(conn, path, allow_older=allow_older)
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


def _record_version(conn: sqlite3.Connection, version: int) -> None:
    """Bump both version marks: ``meta`` is what Conn reads, ``user_version`` what sqlite3 shows."""
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.execute(f"PRAGMA user_version = {int(version)}")


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    for statement in migration.sqlite:
        conn.execute(statement)
    _record_version(conn, migration.version)


def _create(conn: sqlite3.Connection) -> None:
    """Version 1, then every migration, inside the caller's transaction.

    One transaction for all of it: another process opening the new file at
    the same moment must find it empty or current, never at version 1 (which
    it would refuse as too old).
    """
    for statement in SQLITE_V1:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [("app", APP), ("schema_version", str(BASE_VERSION))],
    )
    conn.execute(f"PRAGMA user_version = {BASE_VERSION}")
    for migration in MIGRATIONS:
        _apply(conn, migration)


def _migrate(conn: sqlite3.Connection, path: Path) -> tuple[int, list[MigrationStep]]:
    """Apply the pending migrations, each in its own transaction; return (from-version, steps).

    The version is read again under each step's write lock, so two processes
    migrating at once apply every step exactly once between them.
    """
    first: int | None = None
    applied: list[MigrationStep] = []
    while True:
        with write_transaction(conn):
            version = inspect(conn, path, allow_older=True)
            if version is None:
                raise StoreError(f"{path} was emptied while it was being migrated")
            first = version if first is None else first
            todo = pending(version)
            if not todo:
                return first, applied
            _apply(conn, todo[0])
        applied.append(MigrationStep(todo[0].version, todo[0].description, todo[0].sqlite))


def _probe_settled(path: Path, busy_timeout: float, *, allow_older: bool) -> None:
    """:func:`probe`, looking again for a moment before calling a file "not Conn's".

    A read-only look at a store another process is creating right now can see
    it half-way (its tables checkpointed, its meta row not yet): a new store
    becomes Conn's within moments, a foreign file stays foreign, so only the
    refusal waits.
    """
    deadline = time.monotonic() + min(busy_timeout, 2.0)
    while True:
        try:
            probe(path, busy_timeout, allow_older=allow_older)
            return
        except NotAConnDatabase:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _use_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch a new file to WAL, waiting for other processes opening it at the same moment.

    Changing the journal mode needs the file to itself, and SQLite answers
    "database is locked" at once instead of calling the busy handler while
    another connection creates the schema: two consoles started together on a
    new store would otherwise have one of them fail to open it.
    """
    deadline = time.monotonic() + busy_timeout
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def open_blocking(
    given: str | os.PathLike[str], busy_timeout: float, *, migrate: bool
) -> tuple[Path, sqlite3.Connection]:
    """Open (creating if needed) the store file; migrate an older one only when ``migrate``.

    Raises:
        StateDirError: the directory cannot be created or written.
        NotAConnDatabase, SchemaTooNew, SchemaTooOld: refused, the file untouched.
        StoreError: any other failure to open.
    """
    path = Path(os.path.abspath(os.fspath(given)))
    _ensure_dir(path.parent)
    existed = path.exists()
    if existed:
        if not path.is_file():
            raise StoreError(f"{path} is not a file")
        _probe_settled(path, busy_timeout, allow_older=migrate)
    try:
        conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as e:
        raise _open_error(path, existed, e) from e
    try:
        _use_wal(conn, busy_timeout)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        with write_transaction(conn):
            # Checked again under the write lock: another process may have
            # created or migrated the schema since the probe.
            version = inspect(conn, path, allow_older=migrate)
            if version is None:
                _create(conn)
                version = SCHEMA_VERSION
        if version < SCHEMA_VERSION:
            _migrate(conn, path)
    except sqlite3.Error as e:
        conn.close()
        raise _open_error(path, existed, e) from e
    except BaseException:
        conn.close()
        raise
    return path, conn


def _migrate_blocking(
    given: str | os.PathLike[str], busy_timeout: float, dry_run: bool
) -> MigrationReport:
    path = Path(os.path.abspath(os.fspath(given)))
    url = f"sqlite://{path}"
    if not path.exists():
        raise StoreError(
            f"there is no store at {path}; nothing to migrate "
            "(Conn creates a new store at the current version when it first opens it)"
        )
    if not path.is_file():
        raise StoreError(f"{path} is not a file")
    version = probe(path, busy_timeout, allow_older=True)
    if version is None:
        raise StoreError(f"{path} is an empty file, not a Conn store yet; nothing to migrate")
    if dry_run:
        steps = tuple(MigrationStep(m.version, m.description, m.sqlite) for m in pending(version))
        return MigrationReport(url, version, SCHEMA_VERSION, steps, applied=False)
    try:
        conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as e:
        raise _open_error(path, True, e) from e
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        first, applied = _migrate(conn, path)
    except sqlite3.Error as e:
        raise StoreError(f"cannot migrate {path}: {e}; it is still at its last version") from e
    finally:
        conn.close()
    return MigrationReport(url, first, SCHEMA_VERSION, tuple(applied), applied=bool(applied))


async def migrate(
    path: str | os.PathLike[str], *, dry_run: bool = False, busy_timeout: float = 10.0
) -> MigrationReport:
    """Bring the store file at ``path`` to :data:`SCHEMA_VERSION` (or only plan it: ``dry_run``).

    Raises:
        StoreError: no store there, or it cannot be read or written (a failed
            step leaves the file at the version before it).
        NotAConnDatabase, SchemaTooNew: refused, the file untouched.
    """
    return await asyncio.to_thread(_migrate_blocking, path, busy_timeout, dry_run)


def _open_error(path: Path, existed: bool, error: sqlite3.Error) -> StoreError:
    if not existed and getattr(error, "sqlite_errorcode", None) == _SQLITE_CANTOPEN:
        return StateDirError(f"cannot create {path} in its state directory: {error}")
    if getattr(error, "sqlite_errorcode", None) == _SQLITE_NOTADB:
        return NotAConnDatabase(f"{path} is not a SQLite database (so not a Conn store)")
    return StoreError(f"cannot open {path}: {error}")
