"""`conn flag`: the scripting twin of the flags screen.

Same engine service, same events, same flagd file as the keyboard. Changes
need ``--reason`` (it goes in the audit log) and a confirmation: a prompt on
a terminal, or ``--yes``; without a terminal and without ``--yes`` the change
is refused, so a script never blocks on a prompt nobody sees.

Exit codes: 0 ok, 1 error (message on stderr), 2 usage (including a change
that could not be confirmed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from console.cli.common import USAGE, add_config_option, command_context, confirm, fail, when
from console.engine.commands import Command
from console.engine.core import Engine
from console.engine.flags import (
    AllowFlagKeys,
    DisableFlag,
    EnableFlag,
    ExportFlags,
    FlagView,
    KillFlag,
    SeedFlags,
    SetFlagPercent,
)
from console.engine.snapshot import FlagsView
from console.errors import ActionError, CommandError
from console.model.sanitize import clean_text
from console.model.units import parse_percent


def register(sub: Any) -> None:
    """Add ``conn flag list|set|on|off|kill|allow|eval|export``."""
    parser = sub.add_parser("flag", help="list, change, evaluate and export feature flags")
    actions = parser.add_subparsers(dest="flag_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every flag: state, %%, allowlist, last change")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    setter = actions.add_parser("set", help="set a flag's rollout percentage")
    setter.add_argument("name", metavar="NAME")
    setter.add_argument("--percent", required=True, metavar="P", help='e.g. 10, "0.5%%"')

    changes = [setter]
    for name, helptext in (
        ("on", "enable a flag (also lifts a kill switch)"),
        ("off", "disable a flag (flagd treats it as absent: apps use their code default)"),
        ("kill", "serve the off variant to everyone, whatever else is set"),
    ):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("name", metavar="NAME")
        changes.append(action)
    allow = actions.add_parser("allow", help="add targeting keys (or @group) to a flag's allowlist")
    allow.add_argument("name", metavar="NAME")
    allow.add_argument("keys", nargs="+", metavar="KEY", help="a targeting key, or @group")
    allow.add_argument("--remove", action="store_true", help="take the keys off instead")
    changes.append(allow)
    for action in changes:
        action.add_argument("--reason", required=True, help="why (recorded in the audit log)")
        action.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    evaluate = actions.add_parser("eval", help="what flagd answers for targeting key(s)")
    evaluate.add_argument("name", metavar="NAME")
    evaluate.add_argument("keys", nargs="+", metavar="KEY")
    evaluate.add_argument("--json", action="store_true", help="one JSON object per key")

    export = actions.add_parser("export", help="write the flagd JSON file now")
    export.add_argument("path", nargs="?", type=Path, metavar="PATH",
                        help="where (default: [flags] export in the config)")
    export.add_argument("--force", action="store_true",
                        help="overwrite a file changed outside Conn")

    for action in actions.choices.values():
        add_config_option(action)
        action.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    async with command_context(args) as ctx:
        command = args.flag_command
        # Reading never writes: list and eval neither append events nor touch the file.
        reading = command in ("list", "eval")
        engine = Engine(ctx.config, ctx.store, clock=ctx.clock, actor=ctx.actor, lead=False,
                        follow=False, sync_flag_file=not reading)
        async with engine:
            if command == "list":
                return _list(engine.snapshot.flag_state, json_output=args.json)
            if command == "eval":
                return _eval(engine, args.name, args.keys, json_output=args.json)
            # A writer creates what the config defines first, as the leader would.
            await engine.execute(SeedFlags(), actor=engine.auto_actor)
            if command == "export":
                result = await engine.execute(ExportFlags(path=args.path, force=args.force))
                print(result.message)
                return 0
            return await _change(engine, args)


def _flag(engine: Engine, name: str) -> FlagView:
    return engine.flag(name)  # an unknown name: CommandError with a hint


def _change_plan(engine: Engine, args: argparse.Namespace) -> tuple[str, Command]:
    """What the command will do, in words, and the command that does it."""
    view = _flag(engine, args.name)
    name, reason = args.name, args.reason
    command = args.flag_command
    if command == "set":
        try:
            wanted = f"{parse_percent(args.percent):g}%"
        except ValueError as e:
            raise CommandError(f"{name}: {e}") from e
        return (
            f"set {name} to {wanted} (now {view.percent_text})",
            SetFlagPercent(flag=name, percent=args.percent, reason=reason),
        )
    if command == "on":
        extra = " and lift its kill switch" if view.killed else ""
        return f"enable {name}{extra}", EnableFlag(flag=name, reason=reason)
    if command == "off":
        return f"disable {name}", DisableFlag(flag=name, reason=reason)
    if command == "kill":
        return (
            f"KILL {name}: everyone gets {view.off_variant!r}",
            KillFlag(flag=name, reason=reason),
        )
    verb = "remove from" if args.remove else "add to"
    shown = ", ".join(args.keys[:5]) + (f" (+{len(args.keys) - 5} more)" if len(args.keys) > 5 else "")
    return (
        f"{verb} {name}'s allowlist: {shown}",
        AllowFlagKeys(flag=name, keys=tuple(args.keys), remove=args.remove, reason=reason),
    )


async def _change(engine: Engine, args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise CommandError("a reason is required: say why (it goes in the audit log)")
    summary, command = _change_plan(engine, args)
    if not args.yes:
        answer = confirm(summary, type_name=args.name if args.flag_command == "kill" else None)
        if answer is None:
            print(
                f"conn: refusing to {summary}: no terminal to confirm on; pass --yes",
                file=sys.stderr,
            )
            return USAGE
        if not answer:
            print("cancelled; nothing changed")
            return 1
    try:
        await engine.execute(command)
    except ActionError as e:
        print(_describe(_flag(engine, args.name)))
        return fail(str(e))
    view = _flag(engine, args.name)
    print(_describe(view))
    print(f"flag file {view.export.path}: {view.export.state}")
    return 0


def _describe(view: FlagView) -> str:
    groups = f" +{','.join(view.groups)}" if view.groups else ""
    return clean_text(
        f"{view.name}: {view.state}, {view.percent_text}, allowlist {view.allowlist_size}{groups}"
        f" — flag/{view.name} v{view.version} by {view.changed_by}",
        limit=300,
    )


def _list(state: FlagsView, *, json_output: bool) -> int:
    views = state.flags
    status = state.export
    assert status is not None
    if json_output:
        print(json.dumps({
            "evaluator_version": state.evaluator_version,
            "export": status.as_json(),
            "flags": [view.as_json() for view in views],
        }, indent=2, ensure_ascii=False))
        return 0
    if not views and not state.unseeded:
        print("(no flags: define them under [flags.define.NAME] in the config)")
    width = max([4, *(len(v.name) for v in views)])
    print(f"{'NAME':<{width}}  {'STATE':<8} {'PERCENT':>7}  {'ALLOW':>5}  LAST CHANGE")
    for view in views:
        groups = f" +{','.join(view.groups)}" if view.groups else ""
        line = (
            f"{view.name:<{width}}  {view.state:<8} {view.percent_text:>7}  "
            f"{view.allowlist_size:>5}{groups}  {view.changed_by} {when(view.changed_at)}: "
            f"{view.reason}"
        )
        print(clean_text(line, limit=300))
    if pending := state.unseeded:
        print(clean_text(
            f"note: {len(pending)} flag(s) in the config are not in the log yet ({', '.join(pending)}); "
            "the leader (`conn agent` or a console) or any `conn flag` change creates them",
            limit=400,
        ))
    for view in views:
        if view.evaluator_mismatch:
            print(clean_text(
                f"note: {view.name} was last written with {_evaluator(view.evaluator_version)}; "
                f"installed is {_evaluator(state.evaluator_version)} — bucketing may differ "
                "(older flagd hashed the key's UTF-8 string, 2.x hashes its CBOR encoding); "
                "check `conn flag eval`, then re-save the flag to record the new version",
                limit=400,
            ))
    message = f" — {status.message}" if status.message else ""
    line = clean_text(f"flag file {status.path}: {status.state}{message}", limit=400)
    print(line, file=sys.stdout if status.state in ("ok", "pending") else sys.stderr)
    return 0


def _evaluator(version: str) -> str:
    return f"openfeature-flagd-core {version}"


def _eval(engine: Engine, name: str, keys: list[str], *, json_output: bool) -> int:
    for key in keys:
        result = engine.evaluate_flag(name, key)  # unknown flag: CommandError with a hint
        if json_output:
            print(json.dumps(result.as_json(), ensure_ascii=False))
        else:
            variant = result.variant if result.variant is not None else "(code default)"
            print(clean_text(
                f"{name} {key}: {variant} ({json.dumps(result.value)}) — {result.reason} "
                f"[{result.detail}]",
                limit=400,
            ))
    return 0

