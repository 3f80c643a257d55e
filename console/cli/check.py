"""`conn check`: validate the config and report every problem at once."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from console.cli.common import add_config_option
from console.config import load_config
from console.errors import ConfigError
from console.model.text import plural


def register(sub: Any) -> None:
    parser = sub.add_parser("check", help="validate the config; print every problem with its key")
    add_config_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        config, path = load_config(args.config)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    flags = len(config.flags.define)
    print(
        f"{path}: ok — environment {config.environment!r}, "
        f"{plural(len(config.services), 'service')}, {plural(flags, 'flag')}, store {config.store}"
    )
    return 0
