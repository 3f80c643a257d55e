"""`conn status`: live state of every service (and flags), read from the store.

The JSON shape is stable and documented in the README::

    {"environment": str, "store": str, "generated_at": float, "leader": str | null,
     "services": [{"name", "health", "reason", "observed_at", "age_s", "stale",
                   "source": "live" | "probe", "writer", "health_since",
                   "signals": [{"name", "label", "value", "unit", "source", "age_s",
                                "stale", "state", "detail", "threshold"}]}],
     "flags": [...], "rollouts": [], "incidents": [], "notes": [str]}
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from console.cli.common import add_config_option, command_context
from console.engine.core import Engine
from console.engine.status import status_document
from console.model.sanitize import clean_text
from console.secrets import redact


def register(sub: Any) -> None:
    parser = sub.add_parser("status", help="live health and signals of every service")
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output (stable shape)")
    parser.add_argument(
        "--no-probe", action="store_true",
        help="never probe directly, even when no leader has written lately",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_status(args))


async def _status(args: argparse.Namespace) -> int:
    async with command_context(args) as ctx:
        engine = Engine(ctx.config, ctx.store, clock=ctx.clock, actor=ctx.actor, lead=False)
        document = await status_document(engine, probe=not args.no_probe)
    if args.json:
        print(redact(json.dumps(document, indent=2, ensure_ascii=False)))
        return 0
    print(clean_text(redact(f"environment {document['environment']} · store {document['store']}"), limit=300))
    print(clean_text(redact(f"leader: {document['leader'] or 'none writing'}"), limit=300))
    for note in document["notes"]:
        print(f"note: {clean_text(note)}")
    width = max((len(s["name"]) for s in document["services"]), default=8)
    for service in document["services"]:
        age = "—" if service["age_s"] is None else f"{service['age_s']:.0f}s"
        stale = " STALE" if service["stale"] else ""
        signals = {s["name"]: s for s in service["signals"]}
        line = (
            f"  {service['name']:<{width}}  {service['health']:<8} {age:>5}{stale}  "
            f"p95 {_value(signals.get('p95')):>9}  errors {_value(signals.get('error_rate')):>7}  "
            f"{service['reason']}"
        )
        print(clean_text(redact(line), limit=300))
    for flag in document["flags"]:
        print(clean_text(redact(f"  flag {flag.get('name')}: {flag.get('summary', '')}"), limit=300))
    return 0


def _value(signal: dict[str, Any] | None) -> str:
    """A signal as people read it: "74.4 ms", "0.42%", "no data", with ▲/✖ past thresholds."""
    if signal is None or signal["value"] is None:
        return "no data"
    unit = signal["unit"]
    text = f"{signal['value']:g}{unit if unit == '%' else ' ' + unit if unit else ''}"
    return text + {"warning": " ▲", "critical": " ✖"}.get(signal["state"], "")
