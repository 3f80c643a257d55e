"""`conn secret`: store, inspect and delete secrets in the OS keyring.

Values are read from a prompt (or standard input when it is not a terminal),
never from the command line, and never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from console import secrets
from console.cli.common import add_config_option, fail
from console.config import load_config
from console.errors import ConfigError, ConfigNotFound
from console.model.text import plural


def register(sub: Any) -> None:
    parser = sub.add_parser("secret", help="store, inspect and delete secrets (OS keyring)")
    actions = parser.add_subparsers(dest="secret_command", metavar="ACTION", required=True)
    for name, helptext in (
        ("set", "store a secret (value read from a prompt or stdin, never argv)"),
        ("get", "say where a secret resolves from and its length (never its value)"),
        ("delete", "delete a secret from the keyring"),
        ("list", "list known secret names and where each resolves from"),
    ):
        action = actions.add_parser(name, help=helptext)
        if name != "list":
            action.add_argument("name", metavar="NAME")
        else:
            add_config_option(action)
        action.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    command = args.secret_command
    if command == "set":
        if sys.stdin.isatty():
            value = getpass.getpass(f"value for {args.name}: ")
        else:
            value = sys.stdin.readline().rstrip("\r\n")
        secrets.set_secret(args.name, value)
        print(f"stored {args.name} in the keyring ({secrets.backend_name()})")
        return 0
    if command == "get":
        info = secrets.describe(args.name)
        if info.source == "missing":
            return fail(
                f"secret {args.name!r} is not set (keyring: {secrets.backend_name()}; "
                f"environment: {secrets.env_var(args.name)})"
            )
        length = plural(info.length, "character")
        print(f"{args.name}: set in {info.source}, {length} «secret:{args.name}»")
        return 0
    if command == "delete":
        if secrets.delete_secret(args.name):
            print(f"deleted {args.name} from the keyring")
            return 0
        return fail(f"secret {args.name!r} was not in the keyring")
    print(f"keyring backend: {secrets.backend_name()}")
    names = secrets.known_names(_config_secret_names(args))
    if not names:
        print("(no secrets known)")
    for name in names:
        info = secrets.describe(name)
        print(f"  {name:<24} {info.source}")
    return 0


def _config_secret_names(args: argparse.Namespace) -> list[str]:
    """The secret names the config refers to, so `list` shows the missing ones too."""
    try:
        config, _ = load_config(getattr(args, "config", None))
    except ConfigNotFound:
        return []
    except ConfigError as e:
        print(f"note: the config could not be read, so its secret names are not listed: {e}")
        return []
    prometheus = config.sources.prometheus
    names = [config.store_password_secret]
    if prometheus is not None:
        names += [prometheus.token_secret, prometheus.password_secret]
    return [name for name in names if name]
