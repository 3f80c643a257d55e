"""`conn db migrate`: upgrade the configured store to the schema this Conn writes.

An upgrade is one-way (older Conns then refuse the store), so it is never a
side effect of opening: every other command refuses an older store and points
here. ``--dry-run`` shows each step and its SQL for whoever has to approve it.

It does not go through ``command_context``, which opens the store normally
and would refuse exactly the store this command exists to upgrade.
"""

from __future__ import annotations

import argparse
import asyncio
import textwrap
from typing import Any

from console.cli.common import add_config_option
from console.config import load_config
from console.secrets import get_secret
from console.store import MigrationReport, migrate_store


def register(sub: Any) -> None:
    parser = sub.add_parser("db", help="look after the store: `conn db migrate` upgrades its schema")
    commands = parser.add_subparsers(dest="db_command", metavar="COMMAND", title="commands")
    commands.required = True
    migrate = commands.add_parser(
        "migrate", help="upgrade the store to the schema version this Conn writes",
        description="Upgrade the configured store to the schema version this Conn writes, "
        "one transaction per step. Older Conns sharing the store will refuse it afterwards.",
    )
    add_config_option(migrate)
    migrate.add_argument(
        "--dry-run", action="store_true", help="show the steps and their SQL; change nothing",
    )
    migrate.set_defaults(handler=handle_migrate)


def handle_migrate(args: argparse.Namespace) -> int:
    return asyncio.run(_migrate(args))


async def _migrate(args: argparse.Namespace) -> int:
    config, _ = load_config(getattr(args, "config", None))
    password = None
    if config.store_password_secret:
        # The keyring may block (D-Bus, an unlock prompt): off the event loop.
        password = await asyncio.to_thread(get_secret, config.store_password_secret)
    # StoreError (a newer store, no store, an unreachable server) reaches
    # `conn`'s main, which prints it and exits 1.
    report = await migrate_store(config.store, password=password, dry_run=args.dry_run)
    print("\n".join(describe(report, dry_run=args.dry_run)))
    return 0


def describe(report: MigrationReport, *, dry_run: bool) -> list[str]:
    """The lines ``conn db migrate`` prints for ``report``."""
    if report.up_to_date:
        return [f"store {report.url} is already at version {report.to_version}; nothing to do"]
    lines = [
        f"store {report.url} is at schema version {report.from_version}; "
        f"this Conn writes version {report.to_version}"
    ]
    for step in report.steps:
        lines.append(f"  v{step.version}: {step.description}")
        if dry_run:
            lines += [f"      {line}" for sql in step.sql for line in _sql_lines(sql)]
    lines.append(
        "(dry run: nothing changed)" if dry_run else f"migrated to version {report.to_version}"
    )
    return lines



def _sql_lines(statement: str) -> list[str]:
    """One statement as lines ending with ';', its body indented under its first line."""
    first, _, body = (statement + ";").partition("\n")
    return [first, *textwrap.dedent(body).splitlines()]
