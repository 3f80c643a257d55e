"""Leadership of an embedded store: an ``flock`` on a file beside the database.

The OS releases an ``flock`` when its holder dies, however it dies (SIGKILL,
OOM, a dropped SSH session), so a follower can take over without anyone
cleaning up a stale pid file. The lock file also says who holds it, for a
person running ``cat conn.db.lock``; the content is informational only — the
lock is the ``flock``, never the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

from console.errors import StoreError


class FileLeaderLock:
    """A :class:`~console.store.base.LeaderLock` on ``path`` via ``flock(LOCK_EX | LOCK_NB)``.

    The file descriptor stays open while the lock is held; closing it (or
    the process dying) releases the lock. Two locks on the same path conflict
    even inside one process, because each opens its own file description.
    """

    def __init__(self, path: Path) -> None:
        """Prepare a lock on ``path`` (created on first :meth:`try_acquire`)."""
        self._path = path
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        """The lock file."""
        return self._path

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; True while held. Never waits for the holder.

        Raises:
            StoreError: the lock file cannot be created or opened.
        """
        if self._fd is not None:
            if await asyncio.to_thread(self._still_ours):
                return True
            await self.release()
        return await asyncio.to_thread(self._try_acquire_blocking)

    def _still_ours(self) -> bool:
        """False when someone deleted or replaced the lock file under us.

        Another process could then lock a new file at the same path and lead
        too; noticing it here lets this holder step down and compete again.
        """
        assert self._fd is not None
        try:
            on_disk = os.stat(self._path)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def _try_acquire_blocking(self) -> bool:
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StoreError(f"cannot open the leader lock {self._path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as e:
            os.close(fd)
            raise StoreError(f"cannot lock {self._path}: {e.strerror}") from e
        self._fd = fd
        if not self._still_ours():  # the file was replaced between open and flock
            self._fd = None
            os.close(fd)
            return False
        note = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        with contextlib.suppress(OSError):  # the note is for people; the flock is what counts
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode(), 0)
        return True

    async def release(self) -> None:
        """Give up the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):  # at worst the note outlives the lock
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor releases the flock
