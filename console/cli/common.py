"""What every CLI subcommand shares: loading the config, opening the store, printing errors."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from console.config import ConnConfig, load_config
from console.engine.identity import current_actor
from console.engine.session import open_configured_store
from console.model.clock import Clock, SystemClock
from console.model.events import Actor
from console.model.sanitize import clean_text
from console.secrets import redact
from console.store.base import EventStore


@dataclass
class CommandContext:
    """The config, store, clock and actor a subcommand works with."""

    config: ConnConfig
    config_path: Path
    store: EventStore
    clock: Clock
    actor: Actor


@contextlib.asynccontextmanager
async def command_context(args: argparse.Namespace) -> AsyncIterator[CommandContext]:
    """Load the config named by ``--config`` (or found), open its store, close it after."""
    config, path = load_config(getattr(args, "config", None))
    store = await open_configured_store(config)
    try:
        yield CommandContext(config, path, store, SystemClock(), current_actor())
    finally:
        await store.close()


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """The ``--config PATH`` option every subcommand that reads the config takes."""
    parser.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS,
        help="config file (default: $CONN_CONFIG, ./conn.toml, then ~/.config/conn/conn.toml)",
    )


def fail(message: str) -> int:
    """Print an error for people on stderr (redacted, control characters removed); return 1."""
    safe = "\n".join(clean_text(line, limit=2000) for line in redact(message).splitlines())
    print(f"conn: {safe}", file=sys.stderr)
    return 1


USAGE = 2
"""Exit status of a usage error, including a change that could not be confirmed."""


def confirm(
    summary: str, *, type_name: str | None = None, noun: str = "flag",
    stdin: TextIO | None = None, stdout: TextIO | None = None,
) -> bool | None:
    """Ask on the terminal; None when there is no terminal to ask on.

    Args:
        summary: what will happen.
        type_name: for destructive changes, the operator must type this name.
        noun: what ``type_name`` names ("flag", "rollout"), for the prompt.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if not stdin.isatty():
        return None
    if type_name is not None:
        stdout.write(f"{summary}\nType the {noun} name ({type_name}) to confirm: ")
        stdout.flush()
        return stdin.readline().strip() == type_name
    stdout.write(f"{summary}? [y/N] ")
    stdout.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def when(at: float) -> str:
    """A clock time as every CLI line prints it: "2026-01-01 12:00:00Z" (UTC, like `conn audit`)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
