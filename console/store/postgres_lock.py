"""Leadership of a team store: a session advisory lock on a connection of its own.

PostgreSQL releases a session lock when its connection ends, however the
holder died (SIGKILL, a lost network, a closed laptop), so a follower takes
over without anyone cleaning up.
"""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

from console.errors import StoreError
from console.store._common import redact_url
from console.store._postgres_schema import DRIVER_ERRORS

LEADER_LOCK_KEY = 0x636F_6E6E_0002
"""Advisory lock (session-level) held by the leader on its own connection."""

_LOCK_QUERY_TIMEOUT = 5.0
"""Seconds a leader-lock query may take before the lock is treated as lost."""


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
        except DRIVER_ERRORS as e:
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
        except DRIVER_ERRORS:
            conn.terminate()  # broken already: the server drops the lock with it
        except asyncio.CancelledError:
            conn.terminate()
            raise
