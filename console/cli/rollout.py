"""`conn rollout list|backtest`, `conn advance|hold|resume|rollback`: the rollout panel's twins.

Each change is the command the keys run (:mod:`console.engine.rollouts`),
executed by a one-shot engine, so the bus checks it the same way and the
same events are written; the leader (`conn agent` or a console) then carries
out the flag changes and actions, as it does for a key press. Changes need
``--reason`` and a confirmation: a prompt on a terminal (a rollback makes
the operator type the rollout's name), or ``--yes``; without a terminal and
without ``--yes`` a change is refused, so a script never blocks on a prompt
nobody sees. `conn watch` lives in :mod:`console.cli.watch`.

Exit codes: 0 done; 1 refused (the engine's reason on stderr: baking, held,
the gate fails, someone else changed it first) or failed; 2 usage, including
a change that could not be confirmed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from datetime import UTC, datetime
from typing import Any

from console.cli.common import USAGE, add_config_option, command_context, confirm, fail, when
from console.config import ConnConfig, criteria_of
from console.engine.commands import Command
from console.engine.core import Engine
from console.engine.rollouts import (
    EVALUATION_INTERVAL,
    AdvanceRollout,
    HoldRollout,
    ResumeRollout,
    RollbackRollout,
    RolloutProjection,
)
from console.engine.snapshot import RolloutPanel
from console.engine.status import rollout_json
from console.errors import CommandError, ConcurrencyError, ConsoleError
from console.model.backtest import backtest, report_lines, rules_of
from console.model.gates import Sample, span_text
from console.model.history import ROLLUP_SECONDS, SLICE_SECONDS
from console.model.live import is_fresh
from console.model.rollout_config import RolloutConfig, stage_audience
from console.model.sanitize import clean_text
from console.model.signals import PROMETHEUS_SCALE
from console.model.text import plural
from console.model.units import parse_duration
from console.model.units import parse_until as until_time
from console.secrets import get_secret, redact
from console.sources.prometheus import PrometheusSource

VERDICT_TIMEOUT = 2.0
"""Slack over the evaluation interval before verdicts count as old (the rollout panel's too)."""

PHASE_WORDS = {
    "pending": "pending", "baking": "baking", "ready": "ready", "held": "held",
    "rolling_back": "rolling back", "rolled_back": "rolled back", "complete": "complete",
    "action_failed": "action failed",
}


def register(sub: Any) -> None:
    """Add ``conn rollout list|backtest`` and ``conn advance|hold|resume|rollback``."""
    parser = sub.add_parser("rollout", help="list rollouts; backtest their criteria over the signal history")
    actions = parser.add_subparsers(dest="rollout_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="every rollout: run, phase, stage, bake, hold, verdicts, last transition")
    listing.add_argument("--json", action="store_true", help="the shape of `conn status --json`'s rollouts")
    replay = actions.add_parser(
        "backtest", help="replay a rollout's gate and abort criteria over the recorded signal history")
    replay.add_argument("name", metavar="NAME")
    replay.add_argument("--since", default="24h", metavar="WHEN",
                        help='how far back: a duration ("24h", "90m") or an ISO-8601 time (default 24h)')
    replay.add_argument("--json", action="store_true", help="machine-readable report")
    for action in actions.choices.values():
        add_config_option(action)
        action.set_defaults(handler=handle)

    changes = {
        "advance": "move a rollout to its next stage (starts a run when none is active)",
        "hold": "hold a rollout at its stage: no advances (criteria keep running)",
        "resume": "lift a hold",
        "rollback": "roll a rollout back: its flag off for everyone, then its rollback actions",
    }
    for name, helptext in changes.items():
        change = sub.add_parser(name, help=helptext, description=helptext + ".")
        change.add_argument("rollout", metavar="ROLLOUT")
        change.add_argument("--reason", required=True, help="why (recorded in the audit log)")
        change.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        if name == "advance":
            change.add_argument("--override", action="store_true",
                                help="advance although the gate fails; the reason is recorded as the override")
        if name == "hold":
            change.add_argument("--until", metavar="TIME",
                                help='lift by itself at TIME: ISO-8601 ("2026-11-29T17:00Z", "17:00") '
                                     'or a duration from now ("30m")')
        add_config_option(change)
        change.set_defaults(handler=handle, rollout_change=name)


def handle(args: argparse.Namespace) -> int:
    if getattr(args, "rollout_change", None):
        return asyncio.run(_change(args))
    if args.rollout_command == "backtest":
        return asyncio.run(_backtest(args))
    return asyncio.run(_list(args))


# --- reading -------------------------------------------------------------------------


async def _list(args: argparse.Namespace) -> int:
    async with command_context(args) as ctx:
        engine = Engine(ctx.config, ctx.store, clock=ctx.clock, actor=ctx.actor, lead=False,
                        follow=False, sync_flag_file=False)
        async with engine:
            now = engine.clock.now()
            documents = [rollout_json(panel, now) for panel in engine.snapshot.rollouts]
    if args.json:
        print(redact(json.dumps({"generated_at": now, "rollouts": documents}, indent=2, ensure_ascii=False)))
        return 0
    if not documents:
        print("(no rollouts: define them under [rollouts.NAME] in the config)")
        return 0
    rows = [
        (document["name"], str(document["run"]), PHASE_WORDS[document["phase"]], stage_text(document),
         _bake(document["bake_remaining"]), verdicts_text(document, "gate"), verdicts_text(document, "abort"))
        for document in documents
    ]
    head = ("NAME", "RUN", "PHASE", "STAGE", "BAKE", "GATE", "ABORT")
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]

    def aligned(row: tuple[str, ...]) -> str:
        # RUN and BAKE are numbers: right-aligned; the last column is not padded.
        cells = [cell.rjust(width) if i in (1, 4) else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells).rstrip()

    print(aligned(head))
    for row, document in zip(rows, documents, strict=True):
        print(clean_text(redact(aligned(row)), limit=300))
        for line in detail_lines(document, now):
            print(clean_text(redact(f"  {line}"), limit=400))
    return 0


def _bake(left: float | None) -> str:
    """Time left to bake, in whole seconds rounded up ("3m 12s"), "done", or "—" outside a stage."""
    if left is None:
        return "—"
    return span_text(math.ceil(left)) if left > 0 else "done"


def stage_text(document: dict[str, Any]) -> str:
    """ "2/4 10% (10%)": the stage's number of the run's stages, its name and its share."""
    if document["stage_index"] is None:
        return "—"
    percent = f"{document['stage_percent']:g}%"
    name = document["stage_name"]
    return f"{document['stage_index'] + 1}/{document['stage_count']} {name}" + (
        "" if name == percent else f" ({percent})")


def verdicts_text(document: dict[str, Any], role: str) -> str:
    """ "3 pass", "2 pass 1 fail", or "—" without current verdicts."""
    rows = document[role]
    if document["judged_at"] is None or not rows:
        return "—"
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    order = ("pass", "fail", "no_data", "source_error")
    return " ".join(f"{counts[o]} {o.replace('_', ' ')}" for o in order if o in counts)


def detail_lines(document: dict[str, Any], now: float) -> list[str]:
    """Under a rollout's row: hold, countdown, what fails, actions, the last transition."""
    lines = []
    if document["held_by"]:
        until = f" until {when(document['held_until'])}" if document["held_until"] else ""
        lines.append(f"held by {document['held_by']}{until}: {document['held_reason']}")
    if document["rollback_at"] is not None:
        lines.append(f"automatic rollback at {when(document['rollback_at'])}: {document['rollback_reason']}")
    if (rollback := document["rollback"]) is not None:
        lines.append(f"{_rollback_text(rollback)} — {rollback['by']} {when(rollback['started_at'])}")
    if not judged(document, now):
        lines.append("no current verdicts: no leader is judging it (run `conn agent` or a console)")
    for row in failing(document):
        lines.append(f"{row['role']} {row['text']}: {row['outcome'].replace('_', ' ')} — "
                     f"{row['evidence'] or row['reason']}")
    for action in document["actions"]:
        error = f": {action['error']}" if action["error"] else ""
        lines.append(f"action {action['description']}: {action['status'].replace('_', ' ')}{error}")
    if document["stages_changed"]:
        lines.append("the config's stages changed since this run started: roll back and start a new run")
    last = document["last"]
    if last is not None:
        lines.append(f"last: {last['what']} — {last['by']} {when(last['at'])}: {last['why']}")
    return lines


def judged(document: dict[str, Any], now: float) -> bool:
    """False when a run in a stage has no verdicts this recent (the one staleness rule, a judgement
    per second): no leader is judging it."""
    if document["phase"] not in ("baking", "ready", "held"):
        return True
    return is_fresh(document["judged_at"], EVALUATION_INTERVAL, now, timeout=VERDICT_TIMEOUT)


def _rollback_text(rollback: dict[str, Any]) -> str:
    how = "automatic rollback" if rollback["automatic"] else "rollback"
    return f"{how}: {rollback['reason']}"


def failing(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The criteria that do not pass now (gate: not passing; abort: failing)."""
    return [row for role in ("gate", "abort") for row in document[role]
            if row["outcome"] != "pass" and (role == "gate" or row["outcome"] == "fail")]


def status_line(document: dict[str, Any], now: float, *, verdicts: bool = True) -> str:
    """One line per rollout for `conn status`: phase, stage, failing criteria (unless not ``verdicts``)."""
    head = f"rollout {document['name']}: {PHASE_WORDS[document['phase']]}"
    if document["run"]:
        head += f", run {document['run']}"
    if document["stage_index"] is not None and document["phase"] not in ("complete", "rolled_back"):
        head += f", stage {stage_text(document)}"
    if document["rollback_at"] is not None:
        head += f" — automatic rollback at {when(document['rollback_at'])}"
    if (rollback := document["rollback"]) is not None and document["phase"] in ("rolling_back", "rolled_back"):
        return f"{head} — {_rollback_text(rollback)}"
    if not verdicts:
        return head
    if not judged(document, now):
        return head + " — no current verdicts (no leader is judging it)"
    if rows := failing(document):
        return head + " — failing: " + "; ".join(
            f"{row['text']} ({row['outcome'].replace('_', ' ')}: {row['evidence'] or row['reason']})"
            for row in rows)
    return head + (" — gate passes" if document["gate"] else "")


# --- backtest --------------------------------------------------------------------------


async def _backtest(args: argparse.Namespace) -> int:
    async with command_context(args) as ctx:
        config = ctx.config
        plan = _plan(config, args.name)
        now = ctx.clock.now()
        since = _since(args.since, now)
        # Ten-second slices while the history keeps them, else the 1-minute roll-ups.
        resolution = SLICE_SECONDS if now - since <= config.history.slices else ROLLUP_SECONDS
        canary = config.services[plan.canary]
        units = {key: spec.unit for key, spec in canary.signals.items()}
        rules = rules_of(plan, criteria_of(plan), units)
        window = max([rule.criterion.seconds for rule in rules] + [60.0])
        services = [plan.canary] + ([plan.baseline] if plan.baseline else [])
        slices = await ctx.store.read_history(
            since=since - window - 3 * resolution, services=services, resolution=resolution)
        extra = await _from_prometheus(
            config, plan, {rule.criterion.signal for rule in rules}, since - window, now, resolution)
    report = backtest(
        args.name, rules, slices, canary=plan.canary, baseline=plan.baseline, since=since,
        until=now, probe_interval=canary.interval, resolution=resolution,
        failure_limit=plan.gate.failure_limit, evaluation_interval=EVALUATION_INTERVAL,
        grace=plan.grace, time_text=_clock, extra=extra,
    )
    filled = sum(len(samples) for signals in extra.values() for samples in signals.values())
    if filled and not args.json:
        print(f"note: {filled} samples of PromQL-fed signals came from Prometheus range queries")
    if args.json:
        print(redact(json.dumps(report.as_json(), indent=2, ensure_ascii=False)))
        return 0
    for line in report_lines(report, when):
        print(clean_text(redact(line), limit=600))
    return 0


async def _from_prometheus(
    config: ConnConfig, plan: RolloutConfig, signals: set[str], start: float, end: float, step: float
) -> dict[str, dict[str, list[Sample]]]:
    """PromQL-fed signals of the canary (and baseline) over the span, from Prometheus itself.

    The recorded history has what the leader saw; a range query fills what it
    did not record (before the history began, or while no leader ran). A
    Prometheus that cannot answer leaves the history alone, with a note.
    """
    prometheus = config.sources.prometheus
    if prometheus is None:
        return {}
    wanted: dict[str, dict[str, tuple[str, float]]] = {}
    for service in filter(None, (plan.canary, plan.baseline)):
        spec = config.services[service]
        for signal in signals:
            named = spec.signals.get(signal)
            query = named.promql if named is not None else getattr(spec.queries, signal, None)
            if query:
                scale = named.scale if named is not None else PROMETHEUS_SCALE.get(signal, 1.0)
                wanted.setdefault(service, {})[signal] = (query, scale)
    out: dict[str, dict[str, list[Sample]]] = {}
    if not wanted:
        return out
    async with PrometheusSource(prometheus, secret_lookup=get_secret) as source:
        for service, queries in wanted.items():
            quoted = service.replace("\\", "\\\\").replace('"', '\\"')
            for signal, (query, scale) in queries.items():
                try:
                    points = await source.query_range(  # on the evaluations' grid
                        query.replace("{service}", quoted), start=math.floor(start / step) * step,
                        end=end, step=step)
                except ConsoleError as e:
                    print(clean_text(f"note: {service} {signal}: {e}; using the recorded history only",
                                     limit=300), file=sys.stderr)
                    continue
                out.setdefault(service, {})[signal] = [
                    Sample(at, None if value is None else value * scale, "ok" if value is not None else "no_data")
                    for at, value in points
                ]
    return out


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%SZ")


def _plan(config: ConnConfig, name: str) -> RolloutConfig:
    RolloutProjection(config).state(name)  # an unknown name: the engine's CommandError, with a hint
    return config.rollouts[name]


def _since(text: str, now: float) -> float:
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--since {text!r}: give a duration back from now (24h, 90m) or an ISO-8601 time "
            "(2026-11-29T08:00Z)") from None
    at = (moment if moment.tzinfo else moment.astimezone()).timestamp()
    if at >= now:
        raise CommandError(f"--since {text!r} is not in the past")
    return at


def parse_until(text: str, now: float) -> float:
    """``--until``: :func:`console.model.units.parse_until` (the hold dialog's rule), refused in
    the CLI's words.

    Raises:
        CommandError: not a duration, a time of day or an ISO-8601 time.
    """
    try:
        return until_time(text, now)
    except ValueError as e:
        raise CommandError(f"--until {e}") from None


# --- changes ---------------------------------------------------------------------------


async def _change(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise CommandError("a reason is required: say why (it goes in the audit log)")
    async with command_context(args) as ctx:
        engine = Engine(ctx.config, ctx.store, clock=ctx.clock, actor=ctx.actor, lead=False,
                        follow=False, sync_flag_file=False)
        async with engine:
            panel = engine.rollout(args.rollout)  # an unknown name: CommandError with a hint
            summary, command = change_plan(panel, args, engine.clock.now())
            if not args.yes:
                typed = args.rollout if args.rollout_change == "rollback" else None
                answer = confirm(summary, type_name=typed, noun="rollout")
                if answer is None:
                    print(f"conn: refusing to {summary}: no terminal to confirm on; pass --yes",
                          file=sys.stderr)
                    return USAGE
                if not answer:
                    print("cancelled; nothing changed")
                    return 1
            try:
                result = await engine.execute(command)
            except CommandError as e:
                return fail(f"{args.rollout}: {e}")
            except ConcurrencyError as e:
                return fail(f"{args.rollout}: not done — someone else changed it first: {e.winner}")
            now = engine.clock.now()
            document = rollout_json(engine.rollout(args.rollout), now)
            leader = engine.snapshot.leader
    print(clean_text(redact(result.message), limit=300))
    print(clean_text(redact(status_line(document, now, verdicts=False)), limit=400))
    if args.rollout_change in ("advance", "rollback") and leader is None:
        print("note: no leader is running: the flag change and actions wait for `conn agent` or a console")
    return 0


def change_plan(panel: RolloutPanel, args: argparse.Namespace, now: float) -> tuple[str, Command]:
    """What the change will do, in words (for the confirmation), and the command that does it."""
    name, reason, plan, state = panel.name, args.reason, panel.plan, panel.state
    stage = state.stage
    where = f"run {state.run} at {stage.label}" if stage is not None else f"run {state.run}"
    if args.rollout_change == "advance":
        override = reason if args.override else None
        if state.lifecycle in ("pending", "complete", "rolled_back"):
            summary = (f"start run {state.run + 1} of {name}: stage 1 of {len(plan.stages)} "
                       f"({plan.stages[0].name}{_audience(plan, 0)})")
        elif state.lifecycle != "active":
            summary = f"advance {name} ({where}, {state.lifecycle.replace('_', ' ')})"
        elif stage is not None and stage.index + 1 < len(plan.stages):
            after = plan.stages[stage.index + 1]
            summary = (f"advance {name} {where} to stage {stage.index + 2} "
                       f"({after.name}{_audience(plan, stage.index + 1)})")
        else:
            summary = f"complete {name} ({where}, the last stage)"
        if override:
            summary += " over a failing gate, recording the reason as the override"
        return summary, AdvanceRollout(rollout=name, reason=reason, override=override)
    if args.rollout_change == "hold":
        until = parse_until(args.until, now) if args.until else None
        lasts = f"until {when(until)}" if until is not None else "until someone resumes it"
        return f"hold {name} {where} {lasts}", HoldRollout(rollout=name, reason=reason, until=until)
    if args.rollout_change == "resume":
        held = f" (held by {state.hold.by}: {state.hold.reason})" if state.hold else ""
        return f"resume {name} {where}{held}", ResumeRollout(rollout=name, reason=reason)
    flag = f"{plan.flag} off for everyone, then " if plan.flag else ""
    actions = plural(len(plan.on_rollback.actions), "rollback action")
    return (f"ROLL BACK {name} {where}: {flag}{actions}",
            RollbackRollout(rollout=name, reason=reason))


def _audience(plan: RolloutConfig, index: int) -> str:
    if plan.flag is None:
        return ""
    percent, groups, allow = stage_audience(plan, index)
    extra = "".join(f" +{group}" for group in groups) + (f" +{plural(len(allow), 'key')}" if allow else "")
    return f": {plan.flag} at {percent:g}%{extra}"
