"""`conn demo`: the console on the embedded demo fleet — no config, no servers to set up."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from console.paths import state_dir


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="the console on a local demo fleet (no setup)")
    parser.add_argument(
        "--fleet-only", action="store_true",
        help="run only the fleet; print the config path that watches it on the first line",
    )
    parser.add_argument(
        "--state-dir", type=Path, metavar="DIR",
        help="where the demo keeps its config, store and flag file (default: the XDG state dir)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from console.demo.fleet import run_fleet_only

    directory: Path = args.state_dir or state_dir() / "demo"
    if args.fleet_only:
        return run_fleet_only(directory)
    from console.ui.run import run_demo

    return run_demo(directory)
