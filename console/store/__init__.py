"""Persistence: the event log and the live table, behind one protocol.

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
"""

from __future__ import annotations

from typing import Any

from console.errors import StoreError
from console.store.base import EventStore, LeaderLock, LiveRow

__all__ = ["EventStore", "LeaderLock", "LiveRow", "open_store", "sqlite_path"]

_EXAMPLES = (
    "sqlite:///var/lib/conn/conn.db (a local file) or "
    "postgresql://user@db.example.com:5432/conn (a shared database)"
)


def sqlite_path(url: str) -> str:
    """The absolute file path in a ``sqlite:///…`` URL.

    ``sqlite:///abs/path`` and ``sqlite:////abs/path`` both mean ``/abs/path``:
    the store only takes absolute paths, so the number of slashes cannot change
    which file is meant.

    Raises:
        StoreError: ``url`` is not ``sqlite:///`` followed by a path.
    """
    rest = url[len("sqlite://"):] if url.startswith("sqlite://") else ""
    path = "/" + rest.lstrip("/")
    if not rest.startswith("/") or path == "/" or "?" in rest or "#" in rest:
        raise StoreError(f"{url!r} is not a SQLite store URL; expected e.g. {_EXAMPLES}")
    return path


async def open_store(url: str, **options: Any) -> EventStore:
    """Open the store at ``url``, creating its schema on first use.

    Async because PostgreSQL connects asynchronously and SQLite's checks run in
    a worker thread. The caller owns the store: ``await store.close()`` when done.

    Args:
        url: ``sqlite:///abs/path/conn.db`` or ``postgresql://user:pw@host:port/db``
            (``postgres://`` too).
        options: passed to the backend's ``open`` (e.g. ``poll_interval``).

    Raises:
        StoreError: unknown scheme or bad URL; or any of its subclasses from the
            backend (StateDirError, NotAConnDatabase, SchemaTooNew).
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from console.store.sqlite import SQLiteEventStore

        return await SQLiteEventStore.open(sqlite_path(url), **options)
    if scheme in ("postgresql", "postgres"):
        from console.store.postgres import PostgresEventStore

        return await PostgresEventStore.open(url, **options)
    shown = scheme if len(scheme) <= 20 else scheme[:20] + "…"
    raise StoreError(f"unknown store scheme {shown!r}; expected e.g. {_EXAMPLES}")
