"""Files other programs read while Conn writes them: never half-written.

flagd and its providers watch the exported flag file and reload it whenever
it changes. A plain ``write()`` lets them read a truncated file mid-write, so
every write here goes to a temporary file in the same directory, is flushed
to disk (``fsync``), and replaces the target with one ``os.replace`` — a
reader sees the old file or the new one, nothing in between.

OS errors become :class:`~console.errors.ActionError` naming the path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from console.errors import ActionError

MAX_READ = 64 * 1024 * 1024
"""Largest file :func:`read_file` reads (a flag file is kilobytes; this bounds a mistake)."""

CHECKSUM_SUFFIX = ".sha256"
"""Beside an owned file, ``<name>.sha256`` records what Conn last wrote (``sha256sum -c`` format)."""


class FileConflict(ActionError):
    """An owned file was changed by someone else (or never written by Conn); not overwritten."""

    def __init__(self, message: str, *, path: Path, current: str, recorded: str | None) -> None:
        self.path = path
        self.current = current
        self.recorded = recorded
        super().__init__(message)


def _describe(path: Path, error: OSError) -> str:
    return f"{path}: {error.strerror or error}"


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically, creating missing parent directories.

    Args:
        path: the file to write.
        data: its new contents.
        mode: permission bits; by default those of the file being replaced, or
            0o644 less the umask for a new file (readers such as flagd often run
            as another user, and ``mkstemp`` would make it 0o600).

    Raises:
        ActionError: the directory or file cannot be created or written.
    """
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ActionError(f"cannot create the directory for {_describe(path, e)}") from e
    if mode is None:
        mode = _existing_mode(path)
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise ActionError(f"cannot write {_describe(path, e)}") from e
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(temporary, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise ActionError(f"cannot write {_describe(path, e)}") from e
    _fsync_directory(directory)


def _existing_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o644 & ~umask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; best effort (some filesystems refuse it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_file(path: Path) -> bytes | None:
    """The contents of ``path``, or None when it does not exist.

    Raises:
        ActionError: it exists but cannot be read, or is larger than ``MAX_READ``.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_READ + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ActionError(f"cannot read {_describe(path, e)}") from e
    if len(data) > MAX_READ:
        raise ActionError(f"{path} is larger than {MAX_READ} bytes; refusing to read it")
    return data


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (what the checksum file beside an export records)."""
    return hashlib.sha256(data).hexdigest()


async def write_atomic_async(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """:func:`write_atomic` in a worker thread, so the event loop never waits on fsync."""
    await asyncio.to_thread(write_atomic, path, data, mode=mode)


async def read_file_async(path: Path) -> bytes | None:
    """:func:`read_file` in a worker thread."""
    return await asyncio.to_thread(read_file, path)


# --- owned files: detect edits made outside Conn ------------------------------


def checksum_path(path: Path) -> Path:
    """Where the hash of what Conn last wrote to ``path`` is kept."""
    return path.with_name(path.name + CHECKSUM_SUFFIX)


@dataclass(frozen=True)
class FileCheck:
    """What is on disk at an owned file's path, against what Conn last wrote there."""

    path: Path
    current: str | None
    """SHA-256 of the file now; None when it does not exist."""
    recorded: str | None
    """SHA-256 Conn recorded at its last write; None when there is no record."""

    @property
    def edited(self) -> bool:
        """The file exists and is not what Conn last wrote (or Conn never wrote it)."""
        return self.current is not None and self.current != self.recorded


def check_owned(path: Path) -> FileCheck:
    """Hash the file and read the recorded hash beside it.

    Raises:
        ActionError: either file exists but cannot be read.
    """
    data = read_file(path)
    record = read_file(checksum_path(path))
    recorded: list[str] = []
    for line in (record or b"").decode("ascii", errors="replace").splitlines()[:2]:
        token = line.split(maxsplit=1)
        if token and len(token[0]) == 64 and all(c in "0123456789abcdef" for c in token[0]):
            recorded.append(token[0])
    current = sha256(data) if data is not None else None
    # Two lines only while a write is in flight: either hash is Conn's own content.
    matched = current if current in recorded else (recorded[0] if recorded else None)
    return FileCheck(path, current, matched)


def write_owned(path: Path, data: bytes, *, force: bool = False) -> FileCheck:
    """Write ``data`` to ``path`` atomically unless someone else changed the file.

    The file is replaced when it is missing, is what Conn last wrote, already
    holds ``data``, or ``force`` is set. Afterwards ``<path>.sha256`` records
    the new hash.

    Returns:
        The check after writing (``current == recorded``).

    Raises:
        FileConflict: the file was edited outside Conn, or was never written by
            it, and ``force`` is not set. Nothing was written.
        ActionError: the file or its checksum cannot be written.
    """
    check = check_owned(path)
    digest = sha256(data)
    if check.edited and check.current != digest and not force:
        record = checksum_path(path)
        if check.recorded is None:
            why = f"exists and was not written by Conn (no {record.name} beside it)"
        else:
            why = f"was edited outside Conn (its SHA-256 no longer matches {record.name})"
        raise FileConflict(
            f"{path} {why}; not overwritten. Look at it, then export with force "
            "(`conn flag export --force`) to replace it.",
            path=path, current=check.current or "", recorded=check.recorded,
        )
    line = f"{digest}  {path.name}\n"
    if check.current is not None and check.current != digest:
        # Record both hashes until the new file is in place, so a crash between
        # the two renames is not later mistaken for an edit made outside Conn.
        write_atomic(checksum_path(path), (line + f"{check.current}  {path.name}\n").encode())
    write_atomic(path, data)
    write_atomic(checksum_path(path), line.encode())
    return FileCheck(path, digest, digest)
