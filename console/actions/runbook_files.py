"""Read the runbook files: every ``*.md`` in the configured folders, each parsed on its own.

``[runbooks] paths`` lists folders (or single files), relative to the config
file's folder. A runbook's name is its file name without ``.md``. A file
that cannot be used — unreadable, not UTF-8, too large, or rejected by
:func:`~console.model.runbooks.parse_runbook` — is listed as a
:class:`~console.model.runbooks.BrokenRunbook` with the line at fault, and
the others still load: one bad edit must not take every runbook away
during an incident.

Rules kept simple so the list is predictable: folders are not searched
recursively; ``README.md`` (any case) is a folder's description, not a
runbook; a folder that does not exist holds no runbooks; when two folders
hold the same name, the first folder's file wins and the other is listed
as broken, naming the one it clashes with. Files are read in name order.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from console.model.runbooks import BrokenRunbook, Runbook, RunbookError, parse_runbook

__all__ = ["MAX_RUNBOOK_BYTES", "demo_runbooks_folder", "load_runbooks", "read_runbook"]

MAX_RUNBOOK_BYTES = 1024 * 1024
"""A runbook larger than this (1 MiB) is refused: it is not a page a person reads in an incident."""


def demo_runbooks_folder() -> Path:
    """The runbooks shipped with Conn for the demo fleet (``console/demo/runbooks``)."""
    return Path(__file__).resolve().parent.parent / "demo" / "runbooks"


def load_runbooks(paths: Iterable[Path]) -> tuple[list[Runbook], list[BrokenRunbook]]:
    """Every runbook under ``paths`` (folders or ``.md`` files), and the ones that are broken.

    Both lists are in the order read: folder by folder, files by name.
    """
    runbooks: list[Runbook] = []
    seen: dict[str, Path] = {}
    files, broken = _files(paths)
    for file in files:
        name = file.stem
        if name in seen:
            broken.append(BrokenRunbook(
                name, file, f"another runbook is also called {name!r} ({seen[name]}); this one is ignored", None
            ))
            continue
        seen[name] = file
        try:
            runbooks.append(read_runbook(file))
        except RunbookError as e:
            broken.append(BrokenRunbook(name, file, e.message, e.line))
    return runbooks, broken


def read_runbook(path: Path) -> Runbook:
    """Read and parse one runbook file.

    Raises:
        RunbookError: unreadable, too large, not UTF-8, or not a valid runbook
            (with the line).
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_RUNBOOK_BYTES + 1)
    except OSError as e:
        raise RunbookError(f"cannot read it: {(e.strerror or str(e)).lower()}") from e
    if len(data) > MAX_RUNBOOK_BYTES:
        raise RunbookError(f"it is larger than {MAX_RUNBOOK_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise RunbookError("it is not UTF-8 text", line) from e
    return parse_runbook(path.stem, text, path)


def _files(paths: Iterable[Path]) -> tuple[list[Path], list[BrokenRunbook]]:
    """The runbook files in order, and the folders that could not be listed."""
    files: list[Path] = []
    unlisted: list[BrokenRunbook] = []
    for path in paths:
        if path.is_dir():
            try:
                entries = sorted(path.iterdir(), key=lambda entry: entry.name)
            except OSError as e:
                reason = (e.strerror or str(e)).lower()
                unlisted.append(BrokenRunbook(path.name, path, f"cannot list the folder: {reason}", None))
                continue
            files.extend(
                entry for entry in entries
                if entry.suffix == ".md" and entry.name.lower() != "readme.md" and entry.is_file()
            )
        elif path.suffix == ".md" and path.exists():
            files.append(path)
    return files, unlisted
