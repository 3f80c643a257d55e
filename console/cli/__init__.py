"""The `conn` command: the console, the headless agent and their scripting twins.

Every subcommand goes through the same engine and store as the keyboard, so
the same checks apply and the same events are written.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from console import __version__
from console.errors import ConsoleError

# Subcommand modules, each with register(subparsers); kept lazy-importable so
# `conn status` never loads Textual.
_MODULES = (
    "console.cli.console_cmd",
    "console.cli.demo",
    "console.cli.agent",
    "console.cli.status",
    "console.cli.check",
    "console.cli.audit",
    "console.cli.db",
    "console.cli.flag",
    "console.cli.rollout",
    "console.cli.watch",
    "console.cli.incident",
    "console.cli.secret",
    "console.cli.runbook",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="conn",
        description="Conn: a terminal console for rollouts and incidents.",
        epilog="Run `conn demo` to see it on a local demo fleet. `conn COMMAND --help` for more.",
    )
    parser.add_argument("--version", action="version", version=f"conn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    parser.add_argument(
        "--config", metavar="PATH", default=None,
        help="config file (default: $CONN_CONFIG, ./conn.toml, then ~/.config/conn/conn.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in _MODULES:
        module = importlib.import_module(name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `conn`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from console.secrets import RedactingFilter

    # One line per request would drown the agent's journal.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    handler_fn: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler_fn is None:
        # No subcommand: the console on the configured environment.
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "console"])
        handler_fn = args.handler
    assert handler_fn is not None
    try:
        return handler_fn(args)
    except ConsoleError as e:
        from console.cli.common import fail

        return fail(str(e))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `conn status --json | head`: the reader left; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141

