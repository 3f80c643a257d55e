"""`conn incident …`: the incident screen's twins, and the postmortem export.

Each change is the command the keys run (:mod:`console.engine.incidents`),
executed by a one-shot engine, so the bus checks it the same way and the
same events are written; the leader (`conn agent` or a console) then tells
the chat webhooks, as it does for a key press.

During an incident speed matters more than ceremony: declaring,
acknowledging, noting, pinning, handing a role over, stamping a milestone
and changing the severity (which needs ``--reason``) run at once. Closing an
incident — marking it resolved or postmortem done — stops its clocks and
tells the channel it is over, so it asks first: a prompt on a terminal, or
``--yes``; without a terminal and without ``--yes`` it is refused, so a
script never blocks on a prompt nobody sees. Every change takes ``--yes``,
so a script can pass it throughout.

What people typed (titles, notes) is printed as plain text: markup such as
``[bold]`` reads as itself and escape sequences are removed.

Exit codes: 0 done; 1 refused (the engine's reason on stderr: an unknown
incident, severity, status or role — listing the valid ones —, acknowledged
already, someone else changed it first) or failed; 2 usage, including a
change that could not be confirmed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from console.actions.files import write_atomic_async
from console.cli.common import USAGE, add_config_option, command_context, confirm, fail, when
from console.engine.commands import Command
from console.engine.core import Engine
from console.engine.incidents import (
    AcknowledgeIncident,
    AssignIncidentRole,
    NoteIncident,
    OpenIncident,
    PinIncidentEntry,
    SetIncidentSeverity,
    SetIncidentStatus,
    StampIncidentMilestone,
)
from console.engine.snapshot import IncidentPanel
from console.engine.status import incident_json
from console.errors import CommandError, ConcurrencyError
from console.model.events import Event
from console.model.gates_parse import span_text
from console.model.incident_config import DEFAULT_SEVERITIES, SEVERITIES, severity_of
from console.model.incidents import durations, status_of
from console.model.postmortem import (
    GRAPH_SIGNALS,
    alerts_json,
    graph_window,
    postmortem,
    render_markdown,
    roles_json,
    timeline_json,
)
from console.model.sanitize import clean_text
from console.model.units import parse_duration
from console.secrets import redact

CLOSING = ("resolved", "postmortem_done")
"""Statuses that end an incident's response: the CLI asks before setting them."""

TIME_HELP = 'a duration back from now ("10m"), a time of day ("09:40", the latest past one) or ISO-8601'

SEVERITY_HELP = "severities (the defaults; [incidents.severities] in the config may change them):\n" + "\n".join(
    f"  {name}  {spec.description}; acknowledge within {span_text(spec.respond)}"
    for name, spec in DEFAULT_SEVERITIES.items())


def register(sub: Any) -> None:
    """Add ``conn incident open|list|show|ack|note|status|severity|assign|pin|stamp|export``."""
    parser = sub.add_parser("incident", help="declare, list, update and export incidents")
    actions = parser.add_subparsers(dest="incident_command", metavar="ACTION", required=True)

    opening = actions.add_parser(
        "open", help="declare an incident", epilog=SEVERITY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    opening.add_argument("title", metavar="TITLE")
    opening.add_argument("--sev", "--severity", dest="severity", required=True, metavar="SEV",
                         help=f"{', '.join(SEVERITIES)} (or 1–4), defined below")
    opening.add_argument("--service", dest="services", action="append", default=[], metavar="NAME",
                         help="an affected service (repeat for several)")
    opening.add_argument("--started", metavar="WHEN", help=f"when it began, if before now: {TIME_HELP}")

    listing = actions.add_parser("list", help="open incidents: severity, status, age, acknowledgement")
    listing.add_argument("--json", action="store_true", help="the shape of `conn status --json`'s incidents")
    listing.add_argument("--all", action="store_true", help="resolved ones too")

    show = actions.add_parser("show", help="one incident: clocks, roles, alerts and its whole timeline")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="machine-readable")

    changes = []
    ack = actions.add_parser("ack", help="acknowledge an incident (stops its response clock)")
    ack.add_argument("id", metavar="ID")
    changes.append(ack)
    note = actions.add_parser("note", help="add a note to the timeline")
    note.add_argument("id", metavar="ID")
    note.add_argument("text", metavar="TEXT")
    note.add_argument("--pin", action="store_true", help="pin it (postmortems mark pinned entries)")
    changes.append(note)
    status = actions.add_parser(
        "status", help="move to investigating, identified, mitigated, resolved or postmortem done")
    status.add_argument("id", metavar="ID")
    status.add_argument("status", nargs="+", metavar="STATUS",
                        help='investigating, identified, mitigated, resolved, "postmortem done"')
    status.add_argument("--at", metavar="WHEN", help=f"backdate it: {TIME_HELP}")
    status.add_argument("--reason", default="", help="why (on the timeline)")
    changes.append(status)
    severity = actions.add_parser("severity", help="change the severity (a reason is required)")
    severity.add_argument("id", metavar="ID")
    severity.add_argument("severity", metavar="SEV")
    severity.add_argument("--reason", required=True, help="why (on the timeline and in the audit log)")
    changes.append(severity)
    assign = actions.add_parser("assign", help="hand a role (commander, scribe, comms) to someone")
    assign.add_argument("id", metavar="ID")
    assign.add_argument("role", metavar="ROLE")
    assign.add_argument("user", metavar="USER")
    changes.append(assign)
    pin = actions.add_parser("pin", help="pin a timeline entry (its # as `show` prints it)")
    pin.add_argument("id", metavar="ID")
    pin.add_argument("entry", metavar="ENTRY", type=_entry_number, help="the entry's number: 123 or #123")
    pin.add_argument("--unpin", action="store_true", help="unpin it instead")
    changes.append(pin)
    stamp = actions.add_parser("stamp", help="backdate when it was detected or mitigated")
    stamp.add_argument("id", metavar="ID")
    stamp.add_argument("milestone", metavar="MILESTONE", help="detected or mitigated")
    stamp.add_argument("--at", required=True, metavar="WHEN", help=TIME_HELP)
    changes.append(stamp)
    for change in changes:
        change.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        change.set_defaults(incident_change=True)

    export = actions.add_parser("export", help="the postmortem: summary, durations, timeline, graphs")
    export.add_argument("id", metavar="ID")
    export.add_argument("--format", choices=("md", "json"), default="md", help="Markdown (default) or JSON")
    export.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write it to FILE (atomically) instead of stdout")

    for action in actions.choices.values():
        add_config_option(action)
        action.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def _entry_number(text: str) -> int:
    raw = text.strip().removeprefix("#")
    if not raw.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a timeline entry: give its # as `show` prints it")
    return int(raw)


def past_time(text: str, now: float, option: str) -> float:
    """``--started``/``--at``: a duration back from ``now``, the latest past time of day, or ISO-8601.

    The engine refuses a time in the future or before the incident started.

    Raises:
        CommandError: none of these forms (the message shows each).
    """
    text = text.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            of_day = clock_time.fromisoformat(text)
        except ValueError:
            raise CommandError(f"{option} {text!r} is not a time: give {TIME_HELP}") from None
        zone = of_day.tzinfo or datetime.fromtimestamp(now).astimezone().tzinfo
        moment = datetime.combine(datetime.fromtimestamp(now, zone).date(), of_day.replace(tzinfo=None), zone)
        if moment.timestamp() > now:
            moment -= timedelta(days=1)
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


async def _run(args: argparse.Namespace) -> int:
    async with command_context(args) as ctx:
        engine = Engine(ctx.config, ctx.store, clock=ctx.clock, actor=ctx.actor, lead=False,
                        follow=False, sync_flag_file=False)
        async with engine:
            command = args.incident_command
            if command == "list":
                return _list(engine, show_all=args.all, json_output=args.json)
            if command == "show":
                return _show(engine.incident(args.id), engine.clock.now(), json_output=args.json)
            if command == "export":
                return await _export(engine, args)
            if command == "open":
                return await _open(engine, args)
            return await _change(engine, args)


# --- reading -------------------------------------------------------------------------


def _age(seconds: float) -> str:
    """Whole seconds under an hour ("12m 5s"), whole minutes past it ("3h 12m")."""
    seconds = max(0.0, seconds)
    return span_text(round(seconds) if seconds < 3600 else round(seconds / 60) * 60)


def ack_text(panel: IncidentPanel, now: float) -> str:
    """ "acked after 1m 30s", "ack OVERDUE by 3m", "ack due in 12m": against the severity's target."""
    clock = panel.clocks(now)
    if clock["ack_after"] is not None:
        return f"acked after {_age(float(clock['ack_after']))}"  # type: ignore[arg-type]
    left = float(clock["ack_left"])  # type: ignore[arg-type]
    if not panel.state.is_open:
        return "never acked"
    return f"ack OVERDUE by {_age(-left)}" if clock["ack_overdue"] else f"ack due in {_age(left)}"


def _list(engine: Engine, *, show_all: bool, json_output: bool) -> int:
    now = engine.clock.now()
    panels = [p for p in engine.snapshot.incidents if show_all or p.state.is_open]
    if json_output:
        document = {"generated_at": now, "incidents": [incident_json(p, now) for p in panels]}
        print(redact(json.dumps(document, indent=2, ensure_ascii=False)))
        return 0
    if not panels:
        print("(no open incidents)" if not show_all else "(no incidents)")
        if not show_all and engine.snapshot.incidents:
            print(f"{len(engine.snapshot.incidents)} resolved: `conn incident list --all`")
        return 0
    rows = [
        (p.id, p.state.severity, p.state.status.replace("_", " "), _age(now - p.state.declared_at),
         ack_text(p, now), p.state.holder("commander") or "—", ",".join(p.state.services) or "—",
         p.state.title)
        for p in panels
    ]
    head = ("ID", "SEV", "STATUS", "AGE", "ACK", "COMMANDER", "SERVICES", "TITLE")
    cleaned = [tuple(clean_text(redact(cell), limit=200) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in (head, *cleaned)) for i in range(len(head) - 1)]
    for row in (head, *cleaned):
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip())
    return 0


def detail_json(panel: IncidentPanel, now: float) -> dict[str, Any]:
    """`show --json`: the status object plus clocks, durations, roles, alerts and the whole timeline."""
    state = panel.state
    document = incident_json(panel, now)
    document.update({
        "severity_definition": clean_text(panel.severity.description),
        "clocks": panel.clocks(now),
        "milestones": dict(state.milestones),
        "durations": durations(state),
        "reopened": state.reopened,
        "severity_history": [{"at": at, "severity": sev, "by": clean_text(by), "reason": clean_text(why)}
                             for at, sev, by, why in state.severity_history],
        "status_history": [{"at": at, "status": st, "by": clean_text(by)}
                           for at, st, by in state.status_history],
        "roles": roles_json(state.roles, redact),
        "alerts": alerts_json(state, redact),
        "timeline": timeline_json(state.entries, redact),
    })
    return document


def _show(panel: IncidentPanel, now: float, *, json_output: bool) -> int:
    if json_output:
        print(redact(json.dumps(detail_json(panel, now), indent=2, ensure_ascii=False)))
        return 0
    for line in show_lines(panel, now):
        print(clean_text(redact(line), limit=5000))
    return 0


def show_lines(panel: IncidentPanel, now: float) -> list[str]:
    """`conn incident show`, line by line (each still to be cleaned and redacted)."""
    state = panel.state
    clock = panel.clocks(now)
    lines = [f"{state.id} {state.severity} {state.status.replace('_', ' ')}: {state.title}",
             f"  severity: {state.severity} — {panel.severity.description} "
             f"(acknowledge within {span_text(panel.severity.respond)}, update every "
             f"{span_text(panel.severity.update_every)})",
             f"  services: {', '.join(state.services) or 'none'}",
             f"  declared {when(state.declared_at)} by {state.declared_by} ({_age(now - state.declared_at)} ago)"
             + (f"; started {when(state.milestones['started'])}"
                if state.milestones.get("started", state.declared_at) != state.declared_at else "")]
    if state.acknowledged_at is not None:
        lines.append(f"  acknowledged {when(state.acknowledged_at)} by {state.acknowledged_by} "
                     f"({ack_text(panel, now)})")
    else:
        lines.append(f"  not acknowledged: {ack_text(panel, now)}")
    due = clock["update_due_in"]
    if isinstance(due, int | float):
        lines.append(f"  next update {'OVERDUE by ' + _age(-due) if due < 0 else 'due in ' + _age(due)}")
    if state.reopened:
        lines.append(f"  reopened {state.reopened}×")
    spans = durations(state)
    lines.append("  time to " + ", ".join(
        f"{name} {_age(value) if value is not None else 'not yet'}" for name, value in spans.items()))
    lines.append("roles:")
    for role in state.roles:
        until = when(role.until) if role.until is not None else "now"
        lines.append(f"  {role.role:<9}  {role.user}  {when(role.since)} → {until}")
    if not state.roles:
        lines.append("  nobody (the first to acknowledge becomes the commander)")
    lines.append("severity:")
    for at, severity, by, reason in state.severity_history:
        lines.append(f"  {when(at)}  {severity}  {by}" + (f": {reason}" if reason else ""))
    if state.alerts:
        lines.append("alerts:")
        for alert in sorted(state.alerts.values(), key=lambda a: a.joined_at):
            where = f"resolved {when(alert.resolved_at)}" if alert.resolved_at is not None else "firing"
            lines.append(f"  {where}  {alert.title} (since {when(alert.starts_at)})")
    lines.append("timeline (★ pinned; pin with `conn incident pin ID #N`):")
    for entry in timeline_json(state.entries):
        mark = "★" if entry["pinned"] else " "
        lines.append(f"  #{entry['position']:<6} {mark} {when(entry['at'])}  {entry['actor'] or 'Conn'}  "
                     f"{entry['kind']:<8} {entry['text']}")
    return lines


async def _export(engine: Engine, args: argparse.Namespace) -> int:
    panel = engine.incident(args.id)
    now = engine.clock.now()
    state = panel.state
    since, until = graph_window(state, now)
    graphs = {
        service: {signal: [(p.at, p.value) for p in await engine.history(service, signal, since, until)]
                  for signal, _ in GRAPH_SIGNALS}
        for service in state.services if service in engine.config.services
    }
    tail = await engine.store.read_tail(1)
    head = tail[-1] if tail else None
    document = postmortem(
        panel, severity_defs={s: engine.config.incidents.severity(s) for s in SEVERITIES},
        graphs=graphs, head_hash=head.hash if head else None,
        head_position=head.position if head else None, generated_at=now, redact=redact,
    )
    if args.format == "json":
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    else:
        text = render_markdown(document)
    text = redact(text)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    await write_atomic_async(args.output, text.encode())
    print(f"wrote the postmortem of {state.id} ({args.format}) to {args.output}")
    return 0


# --- changes ---------------------------------------------------------------------------


async def _open(engine: Engine, args: argparse.Namespace) -> int:
    now = engine.clock.now()
    started = past_time(args.started, now, "--started") if args.started else None
    command = OpenIncident(title=args.title, services=tuple(args.services),
                           severity=_severity_word(args.severity), started_at=started)
    try:
        result = await engine.execute(command)
    except CommandError as e:
        return fail(str(e))
    panel = engine.incident(result.detail.id)
    print(clean_text(redact(f"{result.message}: {panel.state.title}"), limit=300))
    _leader_note(engine)
    return 0


def change_plan(panel: IncidentPanel, args: argparse.Namespace, now: float) -> tuple[str, Command, bool]:
    """What the change does in words (for a confirmation), its command, and whether to ask first."""
    incident = panel.id
    what = f"{incident} ({panel.state.severity}: {panel.state.title})"
    command = args.incident_command
    if command == "ack":
        return f"acknowledge {what}", AcknowledgeIncident(incident=incident), False
    if command == "note":
        return f"note on {what}", NoteIncident(incident=incident, text=args.text, pinned=args.pin), False
    if command == "status":
        words = " ".join(args.status)
        at = past_time(args.at, now, "--at") if args.at else None
        try:
            closing = status_of(words) in CLOSING
        except ValueError:
            closing = False  # the engine says what the statuses are
        return (f"mark {what} {words}", SetIncidentStatus(incident=incident, status=words, at=at,
                                                           reason=args.reason), closing)
    if command == "severity":
        return (f"change {what} to {args.severity}",
                SetIncidentSeverity(incident=incident, severity=_severity_word(args.severity),
                                    reason=args.reason), False)
    if command == "assign":
        return (f"hand {args.role} of {what} to {args.user}",
                AssignIncidentRole(incident=incident, role=args.role, user=args.user), False)
    if command == "pin":
        verb = "unpin" if args.unpin else "pin"
        return (f"{verb} entry #{args.entry} of {what}",
                PinIncidentEntry(incident=incident, entry=args.entry, pinned=not args.unpin), False)
    at = past_time(args.at, now, "--at")
    return (f"stamp {args.milestone} on {what} at {when(at)}",
            StampIncidentMilestone(incident=incident, milestone=args.milestone.strip().lower(), at=at), False)


async def _change(engine: Engine, args: argparse.Namespace) -> int:
    if args.incident_command == "severity" and not args.reason.strip():
        raise CommandError("a reason is required: say why (it goes on the timeline and in the audit log)")
    panel = engine.incident(args.id)  # an unknown id: CommandError listing some
    summary, command, ask = change_plan(panel, args, engine.clock.now())
    summary = clean_text(redact(summary), limit=300)
    if ask and not args.yes:
        answer = confirm(summary, noun="incident")
        if answer is None:
            print(f"conn: refusing to {summary}: no terminal to confirm on; pass --yes", file=sys.stderr)
            return USAGE
        if not answer:
            print("cancelled; nothing changed")
            return 1
    try:
        result = await engine.execute(command)
    except CommandError as e:
        return fail(f"{panel.id}: {e}")
    except ConcurrencyError as e:
        return fail(f"{panel.id}: not done — someone else changed it first: {e.winner}")
    after = engine.incident(panel.id)
    print(clean_text(redact(done_line(after, result.events, result.message)), limit=400))
    print(clean_text(redact(summary_line(after, engine.clock.now())), limit=400))
    _leader_note(engine)
    return 0


def done_line(panel: IncidentPanel, events: Sequence[Event], message: str) -> str:
    """What the change put on the timeline, with the entry's # ("INC-3 #41 note: rolled back"),
    so a note can be pinned later; the engine's message when it made no entry (a pin)."""
    positions = {event.position for event in events}
    made = [e for e in panel.state.entries if e.position in positions]
    if not made:
        return message
    return "; ".join(
        f"{panel.id} #{e.position} {e.text if e.text.startswith(e.kind + ':') else f'{e.kind}: {e.text}'}"
        for e in made)


def summary_line(panel: IncidentPanel, now: float) -> str:
    """ "INC-3 SEV2 mitigated, 12m old, acked after 1m 30s, commander alice — title"."""
    state = panel.state
    commander = state.holder("commander")
    return (f"{state.id} {state.severity} {state.status.replace('_', ' ')}, {_age(now - state.declared_at)} old, "
            f"{ack_text(panel, now)}, commander {commander or 'nobody'} — {state.title}")


def _severity_word(text: str) -> str:
    """``2`` → ``SEV2`` for the confirmation and the log; anything else as typed, for the
    engine to refuse with the list of severities."""
    try:
        return severity_of(text)
    except ValueError:
        return text


def _leader_note(engine: Engine) -> None:
    if engine.config.notify and engine.snapshot.leader is None:
        print("note: no leader is running: chat notifications wait for `conn agent` or a console")
