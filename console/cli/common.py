"""What every CLI subcommand shares: loading the config, opening the store, printing errors."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

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
