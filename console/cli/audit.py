"""`conn audit`: print the event log, or verify its hash chain.

Each line says what the event changed ("0% → 10%", "kill", "allowlist +qa-1"),
in the words the console's activity pane uses (:mod:`console.model.describe`);
``--json`` prints the stored event as it is, with that line as ``summary``.

A chain shows edits, deletions in the middle and reordering, but not the
loss of the newest events; so ``--verify`` prints the head (position and
hash) for people to compare with a copy kept elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from console.cli.common import add_config_option, command_context, fail
from console.errors import CorruptRow
from console.model.describe import describe_change
from console.model.events import GENESIS_HASH, Event, check_stream_name, verify_chain
from console.model.sanitize import clean_text
from console.model.text import plural
from console.secrets import redact


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="print the event log; --verify checks its hash chain")
    add_config_option(parser)
    parser.add_argument("--stream", metavar="S", help="only this stream, e.g. flag/checkout_v2")
    parser.add_argument(
        "--json", action="store_true",
        help="one JSON object per line: the stored event, plus a \"summary\" of what it changed",
    )
    parser.add_argument(
        "--verify", action="store_true",
        help="recompute the hash chain and print its head (position and hash) to compare "
        "with a copy kept elsewhere",
    )
    parser.add_argument("--limit", type=int, metavar="N", help="only the last N events")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_audit(args))


async def _audit(args: argparse.Namespace) -> int:
    async with command_context(args) as ctx:
        if args.verify:
            try:
                events = await ctx.store.read_all()
            except CorruptRow as e:  # a row so damaged it is not an event any more
                return _broken(args, f": {e}", {"problem": str(e)})
            broken = verify_chain(events)
            if broken is not None:
                return _broken(
                    args,
                    f" at position {broken.position} ({broken.stream} v{broken.version}): "
                    f"{broken.problem}",
                    {"position": broken.position, "stream": broken.stream,
                     "version": broken.version, "problem": broken.problem},
                )
            _print_head(args, events, ctx.store.url)
            return 0
        if args.stream:
            try:
                check_stream_name(args.stream)
            except ValueError as e:
                return fail(str(e))
            events = await ctx.store.read_stream(args.stream)
            if args.limit is not None:
                events = events[-args.limit:] if args.limit > 0 else []
        elif args.limit is not None:
            events = await ctx.store.read_tail(args.limit) if args.limit > 0 else []
        else:
            events = await ctx.store.read_all()
        for event in events:
            if args.json:
                row = {**event.as_json(), "summary": describe_change(event)}
                print(redact(json.dumps(row, ensure_ascii=False)))
            else:
                print(event_line(event))
        if not events and not args.json:
            print("(no events)")
    return 0


def event_line(event: Event) -> str:
    """One event as ``conn audit`` prints it: position, time, stream and version,
    what changed (:func:`describe_change`), who, and why; clean and redacted."""
    when = datetime.fromtimestamp(event.time, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    because = f" — {event.reason}" if event.reason else ""
    line = (
        f"{event.position:>6} {when} {event.stream} v{event.version} "
        f"{describe_change(event)} by {event.actor}{because}"
    )
    return clean_text(redact(line), limit=500)


def _print_head(args: argparse.Namespace, events: list[Event], url: str) -> None:
    """Say the chain is intact and name its head, the one thing a chain cannot vouch for."""
    position, digest = (events[-1].position, events[-1].hash) if events else (0, GENESIS_HASH)
    if args.json:
        print(json.dumps(
            {"ok": True, "events": len(events), "head_position": position, "head_hash": digest}
        ))
        return
    print(
        f"audit chain ok: {plural(len(events), 'event')} verified; "
        f"head position {position} hash {digest[:16]} ({url})"
    )


def _broken(args: argparse.Namespace, message: str, details: dict[str, Any]) -> int:
    """Report a broken chain: on stderr for people, and on stdout too with ``--json``."""
    if args.json:
        print(redact(json.dumps({"ok": False, **details}, ensure_ascii=False)))
    return fail(f"audit chain BROKEN{message}")
