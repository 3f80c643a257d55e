"""``python -m console.demo``: run the demo fleet in the foreground.

The first line printed is the absolute path of the config that watches the
fleet (a script reads it, then points ``conn --config`` at it); the service
URLs follow. SIGINT or SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from console.demo.fleet import run_fleet_only
from console.paths import state_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m console.demo", description="Run Conn's demo fleet in the foreground."
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=state_dir() / "demo",
        help="where the config, store and flag export live (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    return run_fleet_only(args.state_dir)


if __name__ == "__main__":
    raise SystemExit(main())
