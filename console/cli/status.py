"""`conn status`: live state of every service (and flags), read from the store.

The JSON shape is stable and documented in the README::

    {"environment": str, "store": str, "generated_at": float, "leader": str | null,
     "services": [{"name", "health", "reason", "observed_at", "age_s", "stale",
                   "source": "live" | "probe", "writer", "health_since",
                   "signals": [{"name", "label", "value", "unit", "source", "age_s",
                                "stale", "state", "detail", "threshold"}]}],
     "flags": [...], "rollouts": [...],
     "incidents": [{"id", "title", "severity", "status", "open", "services", "declared_at",
                    "declared_by", "started_at", "acknowledged_at", "acknowledged_by",
                    "ack_due_at", "ack_overdue", "next_update_due", "mitigated_at",
                    "resolved_at", "commander", "automatic"}],
     "notify": [{"name", "format", "pending", "sent", "failure", "needs_fixing"}],
     "notes": [str]}

(``rollouts``: :func:`console.engine.status.rollout_json`, shape in the README.
``incidents``: :func:`console.engine.status.incident_json` — the open ones, and
those resolved within the last 24 hours; ``notify``: each chat webhook's outbox.)

The exit status follows the monitoring-plugin convention that Nagios, Icinga
and Sensu checks use, so ``conn status`` can be a check as it is:

    0  OK        every service up, no signal past its warning level
    1  WARNING   a signal at warning, a service degraded, or some (not all)
                 services without a current value
    2  CRITICAL  a service down or a signal critical
    3  UNKNOWN   could not tell: no services, no current value for any of
                 them (stale everywhere), or the config or store unreadable

Stale signals are not judged: an old value says nothing about now.
``--no-fail`` exits 0 whatever the services say (the behaviour before these
codes); a config or store that cannot be read then exits 1, as any command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from typing import Any

from console.cli.common import add_config_option, command_context, fail
from console.cli.rollout import status_line
from console.engine.core import Engine
from console.engine.status import status_document
from console.errors import ConsoleError
from console.model.sanitize import clean_text
from console.model.text import plural
from console.model.units import NO_DATA, format_value
from console.secrets import redact

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
"""Exit statuses, as monitoring plugins (Nagios, Icinga, Sensu) define them."""

WORDS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}

EXIT_HELP = """\
exit status (the monitoring-plugin convention of Nagios, Icinga and Sensu):
  0  OK        every service up, no signal past its warning level
  1  WARNING   a signal at warning, a service degraded, or some services
               without a current value
  2  CRITICAL  a service down or a signal critical
  3  UNKNOWN   could not tell: no current value for any service, or the
               config or store cannot be read
--no-fail always exits 0 once the status was read.
"""


@dataclass(frozen=True)
class Verdict:
    """The fleet in one exit status, and the findings that decided it."""

    code: int
    findings: tuple[str, ...]
    """The worst findings first ("payments down", "checkout p95 critical")."""

    @property
    def word(self) -> str:
        return WORDS[self.code]


def verdict(document: dict[str, Any]) -> Verdict:
    """Judge a status document: critical beats unknown, which beats warning.

    A service whose health is not up, degraded or down (no value yet, or a
    stale row) cannot be judged; when none can, the answer is UNKNOWN, and
    when only some cannot, it is a WARNING (never a quiet OK). Stale signals
    are skipped: only current values count.
    """
    services = document.get("services") or []
    critical: list[str] = []
    warning: list[str] = []
    unknown: list[str] = []
    for service in services:
        name, health = service["name"], service["health"]
        if health == "down":
            critical.append(f"{name} down")
        elif health == "degraded":
            warning.append(f"{name} degraded")
        elif health != "up":
            unknown.append(f"{name} {'stale' if service['stale'] else 'has no value'}")
        for signal in service["signals"]:
            if signal["stale"] or signal["state"] not in ("warning", "critical"):
                continue
            label = signal["label"] or signal["name"]
            (critical if signal["state"] == "critical" else warning).append(
                f"{name} {label} {signal['state']}"
            )
    if critical:
        return Verdict(CRITICAL, tuple(critical + unknown + warning))
    if not services:
        return Verdict(UNKNOWN, ("no services in the config",))
    if len(unknown) == len(services):
        return Verdict(UNKNOWN, (f"no current value for any of {plural(len(services), 'service')}",))
    if warning or unknown:
        return Verdict(WARNING, tuple(unknown + warning))
    return Verdict(OK, ())


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "status", help="live health and signals of every service (exit 0/1/2/3: ok/warning/critical/unknown)",
        description="Live health and signals of every service, read from the store.",
        epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output (stable shape)")
    parser.add_argument(
        "--no-probe", action="store_true",
        help="never probe directly, even when no leader has written lately",
    )
    parser.add_argument(
        "--no-fail", action="store_true",
        help="exit 0 whatever the services' state (errors reading the config or store still exit 1)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_status(args))


async def _status(args: argparse.Namespace) -> int:
    try:
        async with command_context(args) as ctx:
            engine = Engine(ctx.config, ctx.store, clock=ctx.clock, actor=ctx.actor, lead=False,
                            follow=False, sync_flag_file=False)
            async with engine:
                document = await status_document(engine, probe=not args.no_probe)
    except ConsoleError as e:  # config or store unreadable: the fleet's state is unknown
        failed = fail(str(e))
        return failed if args.no_fail else UNKNOWN
    judged = verdict(document)
    code = OK if args.no_fail else judged.code
    if args.json:
        print(redact(json.dumps(document, indent=2, ensure_ascii=False)))
        return code
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
            f"p95 {signal_text(signals.get('p95')):>9}  errors {signal_text(signals.get('error_rate')):>7}  "
            f"{service['reason']}"
        )
        print(clean_text(redact(line), limit=300))
    for flag in document["flags"]:
        print(clean_text(redact(f"  flag {flag.get('name')}: {flag.get('summary', '')}"), limit=300))
    for rollout in document["rollouts"]:
        print(clean_text(redact(f"  {status_line(rollout, document['generated_at'])}"), limit=400))
    for incident in document["incidents"]:
        if incident.get("open"):
            print(clean_text(redact(f"  {incident_line(incident)}"), limit=400))
    for sink in document.get("notify", []):
        if sink.get("failure"):
            print(clean_text(redact(f"  chat {sink['name']}: failing ({sink['pending']} waiting): "
                                    f"{sink['failure']}"), limit=400))
    findings = f" — {'; '.join(judged.findings)}" if judged.findings else ""
    print(clean_text(redact(f"overall: {judged.word}{findings}"), limit=300))
    return code


def signal_text(signal: dict[str, Any] | None) -> str:
    """A signal as people read it (:func:`format_value`: "74.4 ms", "0.42%", "no data"),
    with ▲/✖ past its thresholds, as the console's table shows it."""
    if signal is None:
        return NO_DATA
    text = format_value(signal["value"], signal["unit"])
    if signal["value"] is None:
        return text
    return text + {"warning": " ▲", "critical": " ✖"}.get(signal["state"], "")


def incident_line(incident: dict[str, Any]) -> str:
    """One open incident for the text output: "incident INC-3 SEV2 investigating — title (ack OVERDUE)"."""
    ack = "acknowledged" if incident.get("acknowledged_at") else (
        "ack OVERDUE" if incident.get("ack_overdue") else "not acknowledged")
    status = str(incident.get("status", "")).replace("_", " ")
    return (f"incident {incident.get('id')} {incident.get('severity')} {status} — {incident.get('title')} "
            f"({ack}; {', '.join(incident.get('services') or []) or 'no service'})")
