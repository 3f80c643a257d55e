"""Persistence: the event log, the live table and the signal history, behind one protocol.

Callers hold an :class:`~console.store.base.EventStore` and never know which
backend it is; :func:`open_store` picks one from the URL scheme and imports it
lazily, so the embedded mode never imports asyncpg (encode/databases'
``SUPPORTED_BACKENDS`` idea)::

    store = await open_store("sqlite:///home/me/.local/state/conn/conn.db")
    try:
        version = await store.append("flag/new_checkout", 0, [NewEvent("flag.created")],
                                     actor=Actor("alice"), at=clock.now())
    finally:
        await store.close()

A store at an older schema version is refused (SchemaTooOld) until
:func:`migrate_store` (``conn db migrate``) upgrades it; see ``migrations``.
"""

from __future__ import annotations

from typing import Any

from console.errors import StoreError
from console.paths import sqlite_url_path
from console.store.base import EventStore, LeaderLock, LiveRow
from console.store.migrations import SCHEMA_VERSION, MigrationReport, MigrationStep

__all__ = [
    "SCHEMA_VERSION",
    "EventStore",
    "LeaderLock",
    "LiveRow",
    "MigrationReport",
    "MigrationStep",
    "migrate_store",
    "open_store",
    "sqlite_path",
]

_EXAMPLES = (
    "sqlite:///var/lib/conn/conn.db (a local file) or "
    "postgresql://user@db.example.com:5432/conn (a shared database)"
)


def sqlite_path(url: str) -> str:
    """The absolute file path in a ``sqlite:///…`` URL (read by :func:`console.paths.sqlite_url_path`).

    Raises:
        StoreError: ``url`` is not ``sqlite:///`` followed by a path.
    """
    try:
        path = sqlite_url_path(url)
    except ValueError:
        path = None
    if path is None:
        raise StoreError(f"{url!r} is not a SQLite store URL; expected e.g. {_EXAMPLES}")
    return str(path)


def _scheme(url: str) -> str:
    """The backend ``url`` names: "sqlite" or "postgresql".

    Raises:
        StoreError: any other scheme.
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        return scheme
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    shown = scheme if len(scheme) <= 20 else scheme[:20] + "…"
    raise StoreError(f"unknown store scheme {shown!r}; expected e.g. {_EXAMPLES}")


async def open_store(
    url: str, *, password: str | None = None, migrate: bool = False, **options: Any
) -> EventStore:
    """Open the store at ``url``, creating its schema on first use.

    Async because PostgreSQL connects asynchronously and SQLite's checks run in
    a worker thread. The caller owns the store: ``await store.close()`` when done.

    Args:
        url: ``sqlite:///abs/path/conn.db`` or ``postgresql://user@host:port/db``
            (``postgres://`` too).
        password: PostgreSQL's password, kept out of the URL (it comes from a
            secret). A SQLite file has none, so it is ignored there.
        migrate: bring a store at an older schema version up to date instead
            of refusing it — for a caller that owns its store, like the demo.
            Anyone else leaves it to the operator's ``conn db migrate``.
        options: passed to the backend's ``open`` (e.g. ``poll_interval``).

    Raises:
        StoreError: unknown scheme or bad URL; or any of its subclasses from the
            backend (StateDirError, NotAConnDatabase, SchemaTooNew, SchemaTooOld).
    """
    if _scheme(url) == "sqlite":
        from console.store.sqlite import SQLiteEventStore

        return await SQLiteEventStore.open(sqlite_path(url), migrate=migrate, **options)
    from console.store.postgres import PostgresEventStore

    return await PostgresEventStore.open(url, password=password, migrate=migrate, **options)


async def migrate_store(
    url: str, *, password: str | None = None, dry_run: bool = False
) -> MigrationReport:
    """Bring the existing store at ``url`` to this Conn's schema version, or only plan it.

    What ``conn db migrate`` runs. Each step is one transaction, so a step
    that fails leaves the store at the version before it, and a store that
    is already current is left alone (migrating twice is a no-op).

    Args:
        url: as for :func:`open_store`.
        password: as for :func:`open_store`.
        dry_run: report the steps and their SQL; change nothing.

    Raises:
        StoreError: no store at ``url`` yet (it is not created), or it cannot
            be read or written; SchemaTooNew and NotAConnDatabase leave it untouched.
    """
    if _scheme(url) == "sqlite":
        from console.store import _sqlite_schema

        return await _sqlite_schema.migrate(sqlite_path(url), dry_run=dry_run)
    from console.store import _postgres_schema

    return await _postgres_schema.migrate(url, password=password, dry_run=dry_run)
