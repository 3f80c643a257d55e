"""`conn` (or `conn console`): the console on the configured environment."""

from __future__ import annotations

import argparse
from typing import Any

from console.cli.common import add_config_option


def register(sub: Any) -> None:
    parser = sub.add_parser("console", help="the console on the configured environment (default)")
    add_config_option(parser)
    parser.add_argument(
        "--read-only", action="store_true",
        help="watch only: every change (flags, later rollouts) is refused with a message",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from console.config import load_config
    from console.ui.run import run_console

    config, path = load_config(args.config)
    return run_console(config, path, read_only=getattr(args, "read_only", False))
