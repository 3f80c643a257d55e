"""`conn audit`: print the event log, or verify its hash chain."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from console.cli.common import add_config_option, command_context, fail
from console.model.events import check_stream_name, verify_chain
from console.model.sanitize import clean_text
from console.secrets import redact


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="print the event log; --verify checks its hash chain")
    add_config_option(parser)
    parser.add_argument("--stream", metavar="S", help="only this stream, e.g. flag/checkout_v2")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--verify", action="store_true", help="recompute the hash chain")
    parser.add_argument("--limit", type=int, metavar="N", help="only the last N events")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_audit(args))


async def _audit(args: argparse.Namespace) -> int:
    async with command_context(args) as ctx:
        if args.verify:
            events = await ctx.store.read_all()
            broken = verify_chain(events)
            if broken is not None:
                return fail(
                    f"audit chain BROKEN at position {broken.position} "
                    f"({broken.stream} v{broken.version}): {broken.problem}"
                )
            print(f"audit chain ok: {len(events)} events verified ({ctx.store.url})")
            return 0
        if args.stream:
            try:
                check_stream_name(args.stream)
            except ValueError as e:
                return fail(str(e))
            events = await ctx.store.read_stream(args.stream)
        else:
            events = await ctx.store.read_all()
        if args.limit is not None:
            events = events[-args.limit:] if args.limit > 0 else []
        for event in events:
            if args.json:
                print(redact(json.dumps(event.as_json(), ensure_ascii=False)))
            else:
                when = datetime.fromtimestamp(event.time, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
                because = f" — {event.reason}" if event.reason else ""
                line = (
                    f"{event.position:>6} {when} {event.stream} v{event.version} "
                    f"{event.type} by {event.actor}{because}"
                )
                print(clean_text(redact(line), limit=500))
        if not events and not args.json:
            print("(no events)")
    return 0
