"""The exported flagd file: what flagd and its providers read, kept in step with the log.

Every write replaces the whole file atomically (:mod:`console.actions.files`)
and records its hash beside it, so a file changed outside Conn is detected
and never overwritten unless forced. Failures are kept in :class:`ExportStatus`
for views; the next change (or ``conn flag export``) tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from console.actions.files import FileConflict, check_owned, sha256, write_owned
from console.errors import ActionError
from console.model.flagd import render_document

ExportState = Literal["ok", "pending", "edited", "error"]


@dataclass(frozen=True)
class ExportStatus:
    """Whether the flagd file on disk says what the log says."""

    path: str
    state: ExportState
    """ok: up to date; pending: not written yet or stale; edited: changed outside
    Conn (not overwritten); error: the last write failed."""
    message: str = ""
    sha256: str | None = None
    """Hash of what Conn last wrote there (also in ``<path>.sha256``)."""

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "state": self.state, "message": self.message,
                "sha256": self.sha256}



class FlagFile:
    """The flagd file on this machine: written from the log's document, never over a hand edit.

    Args:
        path: where flagd (or its providers) read the file.
        document: the flagd document the log describes now.
        has_flags: whether the log has any flag (no flags: no empty file is left behind).
    """

    def __init__(
        self, path: Path, *, document: Callable[[], dict[str, Any]], has_flags: Callable[[], bool]
    ) -> None:
        self._document = document
        self._has_flags = has_flags
        self.path = path
        self.status = ExportStatus(str(path), "pending", "not checked yet")

    async def write(self, path: Path | None = None, *, force: bool = False) -> ExportStatus:
        """Write the flagd file (the configured one, or ``path``) now.

        Raises:
            FileConflict: the file was changed outside Conn and ``force`` is not set.
            ActionError: the file cannot be written (it names the path).
        """
        target = path or self.path
        data = render_document(self._document())
        try:
            check = await asyncio.to_thread(write_owned, target, data, force=force)
        except FileConflict as e:
            self._record(target, ExportStatus(str(target), "edited", str(e), e.recorded))
            raise
        except ActionError as e:
            self._record(target, ExportStatus(str(target), "error", f"{e}; retried on the next change"))
            raise
        status = ExportStatus(str(target), "ok", "", check.current)
        self._record(target, status)
        return status

    async def check(self) -> ExportStatus:
        """Look at the configured file (no writing): ok, pending (stale), edited or unreadable."""
        target = self.path
        try:
            check = await asyncio.to_thread(check_owned, target)
        except ActionError as e:
            self.status = ExportStatus(str(target), "error", str(e))
            return self.status
        wanted = sha256(render_document(self._document()))
        if check.current == wanted:
            self.status = ExportStatus(str(target), "ok", "", check.current)
        elif check.current is None:
            self.status = ExportStatus(str(target), "pending", "not written yet", check.recorded)
        elif check.edited:
            who = "was not written by Conn" if check.recorded is None else "was edited outside Conn"
            self.status = ExportStatus(
                str(target), "edited",
                f"{target} {who}; not overwritten (export with force to replace it)",
                check.recorded,
            )
        else:
            self.status = ExportStatus(str(target), "pending", "older than the log", check.recorded)
        return self.status

    async def sync(self) -> ExportStatus:
        """Write the configured file if it is missing or stale; never when edited outside Conn.

        Errors are recorded in the status (shown by views), not raised: this
        runs at start-up and after others' changes, where nobody asked for it.
        """
        status = await self.check()
        if status.state == "pending" and not self._has_flags() and status.sha256 is None:
            # No flags and no file yet: a console without flags leaves no empty file behind.
            self.status = replace(status, message="no flags yet; written on the first change")
        elif status.state == "pending":
            with contextlib.suppress(ActionError):  # write() records it in the status
                await self.write()
        return self.status

    def _record(self, target: Path, status: ExportStatus) -> None:
        if target == self.path:
            self.status = status
