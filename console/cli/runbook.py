"""`conn runbook list|show|run|check`: the runbook screens' twins, and a linter for CI.

``run`` executes the same engine commands as the runner screen
(:mod:`console.engine.runbooks`) in a one-shot engine, so the same rules
apply and the same events land on ``runbook/<run-id>`` (and on the linked
incident's timeline). Output is lines: each step's title, the exact command
with the run's variables filled in (recorded as previewed), its output as it
comes (stderr lines prefixed ``! ``; already cleaned and redacted by the
runner, printed literally), then how it ended.

* On a terminal, each step waits for the operator: Enter runs a command
  (``s`` skips it with a typed reason, ``q`` stops), a dangerous or
  ``conn.confirm`` step asks for its text to be typed, each check is ticked
  with Enter, a note is read. After a failure: retry, skip, or run the
  failed step's ``conn.rollback`` at once.
* ``--yes`` runs every step in order without asking: checks are ticked and
  notes acknowledged with the reason "--yes", a confirmation is typed for
  the operator (reason "--yes"), and the first failure stops the run (exit 1).
  Without a terminal and without ``--yes`` nothing runs (exit 2): a script
  must never block on a question nobody sees.
* ``--step N`` resumes: it continues the newest unfinished run of the
  runbook (of ``--incident``'s runs when given) from step N, every step
  before N having succeeded or been skipped. A stopped step N runs again; one
  that was *interrupted* (its console went away mid-step: it may or may not
  have run) runs again only with ``--reason``. A step another console may
  still be running (until its timeout, the kill grace and
  :data:`~console.engine.runbooks.ELSEWHERE_SLACK` have passed) is refused.
* Ctrl-C while a step runs stops its process group; the step is recorded as
  cancelled and ``conn`` exits 130. SIGTERM and SIGHUP do the same (exit 143,
  129), so ``kill``, a CI job's timeout or a closed terminal never leave a step
  running unwatched; after SIGKILL the step shows as running until it could no
  longer be, then as interrupted.

``check PATH…`` needs no config or store: it parses runbook files and
folders and names the line of every error, for CI in a runbook repository.

Exit codes: 0 done; 1 refused (the engine's reason on stderr), a step
failed, or the operator stopped; 2 usage, including a run that could not be
confirmed (no terminal, no ``--yes``) and a missing variable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, Literal

from console.actions.runbook_files import load_runbooks
from console.cli.common import USAGE, add_config_option, command_context, fail, when
from console.engine.commands import Command, CommandResult
from console.engine.core import Engine
from console.engine.runbooks import (
    ELSEWHERE_SLACK,
    KILL_GRACE,
    AcknowledgeRunbookStep,
    FinishRunbook,
    PreviewRunbookStep,
    RunbookCommands,
    RunRunbookStep,
    SkipRunbookStep,
    StartRunbook,
    TickRunbookCheck,
)
from console.errors import CommandError, ConcurrencyError, ConsoleError
from console.model.clock import Clock
from console.model.runbook_runs import RunState, rollback_offer
from console.model.runbooks import (
    MissingVariables,
    Runbook,
    Step,
    is_variable_name,
    resolve,
    secret_variable,
)
from console.model.sanitize import clean_text
from console.model.units import format_duration
from console.secrets import describe, env_var, get_secret, redact

YES = "--yes"
"""The reason recorded on what ``--yes`` did for the operator (ticks, reads, confirmations)."""

DERIVED = {
    "SERVICE": "the incident's service (--incident ID)",
    "INCIDENT": "the incident (--incident ID)",
    "HEALTH_URL": "the service's health_url in the config",
    "ROLLOUT": "the rollout of the service in the config",
}
"""Where the engine finds a variable the runbook does not set (RunbookCommands.values)."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a run as Ctrl-C does (Ctrl-C itself is asyncio.run's: exit 130)."""

Outcome = Literal["done", "failed", "stopped"]
_DONE = ("succeeded", "skipped")
_STOPPED = ("failed", "timed_out", "cancelled", "interrupted")


def register(sub: Any) -> None:
    """Add ``conn runbook list|show|run|check``."""
    parser = sub.add_parser("runbook", help="list, show, run and check Markdown runbooks")
    actions = parser.add_subparsers(dest="runbook_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every runbook (and the broken ones, with the line at fault)")
    listing.add_argument("--json", action="store_true", help="machine-readable")
    show = actions.add_parser("show", help="a runbook's steps, variables and secrets, as the runner shows them")
    show.add_argument("name", metavar="NAME")
    run = actions.add_parser(
        "run", help="run a runbook step by step (or resume a run with --step)",
        description="Run a runbook step by step: on a terminal each step waits for you; --yes runs them "
                    "all without asking and stops at the first failure.")
    run.add_argument("name", metavar="NAME")
    run.add_argument("--incident", metavar="ID", help="link the run to an incident (its steps join the timeline)")
    run.add_argument("--step", type=int, metavar="N",
                     help="resume the newest unfinished run of NAME from step N (retrying N if it stopped)")
    run.add_argument("--reason", default="", help="why an interrupted step runs again (with --step)")
    run.add_argument("--var", dest="vars", action="append", default=[], type=_assignment,
                     metavar="NAME=VALUE", help="a variable's value for a new run (repeat for several)")
    run.add_argument("--yes", action="store_true",
                     help="run every step without asking; checks are recorded as ticked by --yes")
    for action in (listing, show, run):
        add_config_option(action)
        action.set_defaults(handler=handle)
    check = actions.add_parser("check", help="parse runbook files or folders; exit 1 if any is broken (CI)")
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    check.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.runbook_command == "check":
        return check(args.paths)
    return asyncio.run(_stopped_by_signals(execute(args)))


async def _stopped_by_signals(work: Coroutine[Any, Any, int]) -> int:
    """``work``, cancelled by SIGTERM or SIGHUP as Ctrl-C cancels it (``kill``, a CI job's
    ``timeout``, a closed terminal): a running step's group is stopped and recorded as
    cancelled instead of running on unwatched. Exits 128 + the signal's number."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def stop(number: int) -> None:
        received.append(number)
        if task is not None:
            task.cancel()

    for number in STOP_SIGNALS:
        loop.add_signal_handler(number, stop, number)
    try:
        return await work
    except asyncio.CancelledError:
        if not received or task is None:
            raise
        task.uncancel()
        return 128 + received[0]
    finally:
        for number in STOP_SIGNALS:
            loop.remove_signal_handler(number)


def _assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not is_variable_name(name):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give NAME=VALUE, NAME in capitals, digits and '_' (SERVICE=checkout)")
    return name, value


async def execute(args: argparse.Namespace, *, clock: Clock | None = None) -> int:
    """``list``, ``show`` or ``run`` with a one-shot engine (``clock`` replaces the system's)."""
    if args.runbook_command == "run":
        problem = _usage_problem(args)
        if problem:
            print(f"conn: {problem}", file=sys.stderr)
            return USAGE
    async with command_context(args) as ctx:
        engine = Engine(ctx.config, ctx.store, clock=clock or ctx.clock, actor=ctx.actor, lead=False,
                        follow=False, sync_flag_file=False)
        async with engine:
            if args.runbook_command == "list":
                return _list(engine, json_output=args.json)
            if args.runbook_command == "show":
                return _show(engine, args.name)
            return await _run(engine, args)


def _usage_problem(args: argparse.Namespace) -> str | None:
    if not args.yes and not sys.stdin.isatty():
        return (f"refusing to run runbook {args.name}: no terminal to confirm its steps on; "
                "pass --yes to run every step without asking")
    if args.step is not None and args.vars:
        return "--var sets a new run's variables; a resumed run (--step) keeps the values it started with"
    if args.reason.strip() and args.step is None:
        return "--reason says why a stopped step runs again: it goes with --step N"
    if args.step is not None and args.step < 1:
        return f"--step counts from 1, not {args.step}"
    return None


def _line(text: str, limit: int = 5000) -> str:
    return clean_text(redact(text), limit=limit)


def say(text: str = "") -> None:
    """One line (or several) of ``conn``'s own, flushed so a pipe sees steps as they happen."""
    print("\n".join(_line(part) for part in text.split("\n")), flush=True)


def _shown(text: str, runbook: Runbook, values: Mapping[str, str]) -> str:
    """``text`` with the values filled in where they are known (secrets stay ``${NAME}``)."""
    try:
        return resolve(text, values, leave=runbook.secret_variables)
    except MissingVariables:
        return text


# --- list and show ------------------------------------------------------------------------


def run_status(commands: RunbookCommands, state: RunState) -> tuple[str, int | None]:
    """Where a run is: ("finished" | "abandoned" | "running" | "interrupted" | "failed" |
    "timed_out" | "cancelled" | "active", the step it is at)."""
    if state.done:
        return state.lifecycle, None
    running = state.running_step
    if running is not None:
        return commands.status(state, running), running
    stopped = state.failed_step
    if stopped is not None:
        return state.record(stopped).status, stopped
    return "active", state.current_step


def run_text(commands: RunbookCommands, state: RunState) -> str:
    """ "high-error-rate-2 failed at step 4, started 2026-01-01 12:00:00Z"."""
    status, step = run_status(commands, state)
    word = {"active": "in progress", "timed_out": "timed out"}.get(status, status)
    where = f" at step {step}" if step is not None else ""
    return f"{state.run_id} {word}{where}, started {when(state.started_at or 0.0)}"


def _list(engine: Engine, *, json_output: bool) -> int:
    commands = engine.runbook_commands
    library = engine.runbooks
    last = {r.runbook: r for r in engine.runs()}  # oldest first: the newest stays
    if json_output:
        document = {"runbooks": [_runbook_json(r, last.get(r.name), commands) for r in library.runbooks.values()],
                    "broken": [{"name": b.name, "path": str(b.path) if b.path else None, "line": b.line,
                                "error": b.error, "message": b.describe()} for b in library.broken]}
        print(redact(json.dumps(document, indent=2, ensure_ascii=False)))
        return 0
    if not library.runbooks and not library.broken:
        folders = ", ".join(str(p) for p in library.paths) or "none"
        say(f"(no runbooks: put *.md files under [runbooks] paths: {folders})")
        return 0
    head = ("NAME", "TITLE", "SERVICE", "SEVERITY", "STEPS", "LAST RUN")
    rows = [(r.name, r.title, r.service or "any", r.severity or "—", str(len(r.steps)),
             run_text(commands, last[r.name]) if r.name in last else "never")
            for r in library.runbooks.values()]
    cleaned = [tuple(_line(cell, 200) for cell in row) for row in (head, *rows)]
    widths = [max(len(row[i]) for row in cleaned) for i in range(len(head) - 1)]
    for row in cleaned:
        cells = [cell.rjust(w) if i == 4 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=False))]
        print("  ".join([*cells, row[-1]]).rstrip())
    if library.broken:
        say("broken (not loaded; the others are):")
        for bad in library.broken:
            say(f"  {bad.name}: {bad.describe()}")
    return 0


def _runbook_json(runbook: Runbook, last: RunState | None, commands: RunbookCommands) -> dict[str, Any]:
    latest = None
    if last is not None:
        status, step = run_status(commands, last)
        latest = {"id": last.run_id, "status": status, "step": step, "incident": last.incident,
                  "started_at": last.started_at, "ended_at": last.ended_at}
    return {"name": runbook.name, "title": runbook.title, "service": runbook.service,
            "severity": runbook.severity, "alerts": list(runbook.alerts), "steps": len(runbook.steps),
            "path": str(runbook.path) if runbook.path else None, "version": runbook.version,
            "last_run": latest}


def _show(engine: Engine, name: str) -> int:
    runbook = engine.runbooks.get(name)
    known = engine.runbook_commands.values(runbook, None, {})
    say(f"{runbook.name} — {runbook.title}")
    say(f"  file      {runbook.path} (version {runbook.version[:12]})")
    say(f"  service   {runbook.service or 'any (the incident’s)'}; severity {runbook.severity or '—'}; "
        f"alerts {', '.join(runbook.alerts) or 'none'}")
    runs = [r for r in engine.runs() if r.runbook == name]
    say(f"  last run  {run_text(engine.runbook_commands, runs[-1]) if runs else 'never'}")
    for warning in runbook.warnings:
        _banner(warning)
    if runbook.summary:
        _indented(runbook.summary, "  ")
    say("variables (--var NAME=value sets any of them):" if runbook.variables() else "variables: none")
    for variable in sorted(runbook.variables()):
        say(f"  {variable:<12} {variable_source(runbook, variable, known)}")
    if runbook.secrets:
        say("secrets (given to steps as environment variables; values never shown):")
    for secret in runbook.secrets:
        try:
            where = {"keyring": "set (keyring)", "env": "set (environment)"}.get(describe(secret).source, "NOT SET")
        except ConsoleError as e:
            where = f"unknown ({e})"
        say(f"  {secret} as ${secret_variable(secret)}: {where}; "
            f"`conn secret set {secret}` or {env_var(secret)}")
    say("steps:")
    for step in runbook.steps:
        for text in step_lines(runbook, step):
            say(text)
    return 0


def variable_source(runbook: Runbook, name: str, known: Mapping[str, str]) -> str:
    """Where a run gets ``name`` from, and its value when it is known before the run."""
    if runbook.vars.get(name):
        source = "declared, default"
    elif name == "SERVICE" and runbook.service:
        source = "the runbook's service"
    elif name in DERIVED:
        source = DERIVED[name]
    else:
        source = f"an alert's {name.lower()!r} label, else asked"
    if name in runbook.vars and not runbook.vars[name]:
        source += " (declared without a default)"
    value = known.get(name)
    return f"{source}: {value}" if value else source


def step_lines(runbook: Runbook, step: Step) -> list[str]:
    """A step as the operator reads it, as written: number, title, kind, warnings, prose, command, checks."""
    marks = [step.kind, step.name]
    if step.kind == "command":
        marks.append(f"timeout {format_duration(step.timeout)}")
    danger = "⚠ DANGEROUS " if step.dangerous else ""
    lines = [f"  {step.number}. {danger}{step.title}  [{', '.join(marks)}]"]
    for warning in step.warnings:
        lines += _banner_lines(warning, "     ")
    lines += [f"     {text}" for text in step.body.splitlines()]
    lines += command_lines(runbook, step, {}, "     ")
    lines += [f"     [ ] {item}" for item in step.checks]
    return lines


def command_lines(runbook: Runbook, step: Step, values: Mapping[str, str], indent: str) -> list[str]:
    """The script (``$`` before its first line), what to type to run it, the rollback it offers."""
    lines = []
    if step.command is not None:
        script = _shown(step.command, runbook, values).splitlines() or [""]
        lines += [f"{indent}$ {script[0]}", *(f"{indent}  {text}" for text in script[1:])]
    if step.confirmation is not None:
        lines.append(f"{indent}confirm: type {_shown(step.confirmation, runbook, values)!r} to run it")
    if step.rollback is not None:
        target = runbook.step(step.rollback)
        lines.append(f"{indent}if it fails: offers step {target.number} ({target.name}) at once")
    return lines


def _banner_lines(text: str, indent: str = "") -> list[str]:
    """A ``> [!WARNING]`` block: "⚠ " before its first line."""
    return [f"{indent}{'⚠ ' if number == 0 else '  '}{part}" for number, part in enumerate(text.splitlines())]


def _banner(text: str, indent: str = "") -> None:
    for line in _banner_lines(text, indent):
        say(line)


def _indented(text: str, indent: str) -> None:
    for part in text.splitlines():
        say(f"{indent}{part}" if part else "")


# --- check --------------------------------------------------------------------------------


def check(paths: list[Path]) -> int:
    """Parse every runbook under ``paths``; report each one; 1 if any is broken (no config needed)."""
    for path in paths:
        if not path.exists():
            print(f"conn: {path}: no such file or folder", file=sys.stderr)
            return USAGE
        if path.is_file() and path.suffix != ".md":
            print(f"conn: {path}: not a runbook (a .md file) or a folder of them", file=sys.stderr)
            return USAGE
    runbooks, broken = load_runbooks(paths)
    rows = [(str(r.path), f"ok      {r.path}  ({len(r.steps)} step{'s' if len(r.steps) != 1 else ''})")
            for r in runbooks]
    rows += [(str(b.path), f"BROKEN  {b.path}" + (f" line {b.line}" if b.line else "") + f": {b.error}")
             for b in broken]
    for _, text in sorted(rows):
        say(text)
    if not rows:
        print(f"conn: no runbooks (*.md) in {', '.join(map(str, paths))}", file=sys.stderr)
        return 1
    say(f"{len(rows)} runbook{'s' if len(rows) != 1 else ''}: {len(runbooks)} ok, {len(broken)} broken")
    return 1 if broken else 0


# --- run ----------------------------------------------------------------------------------


class Terminal:
    """Questions on the operator's terminal. Answers are read when the terminal has a line,
    without blocking the event loop, so Ctrl-C during a question stops at once."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def ask(self, question: str) -> str | None:
        """The answer without surrounding blanks, or None at the end of input (Ctrl-D)."""
        sys.stdout.write(_line(question))
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(self._fd, lambda: None if ready.done() else ready.set_result(None))
        try:
            await ready
        except asyncio.CancelledError:
            print(flush=True)
            raise
        finally:
            loop.remove_reader(self._fd)
        data = os.read(self._fd, 4096)
        return clean_text(data.decode(errors="replace"), limit=1000).strip() if data else None

    async def choose(self, question: str, keys: str) -> str:
        """One of ``keys`` ("" is Enter); the end of input is "q"."""
        while True:
            answer = await self.ask(question)
            if answer is None:
                return "q"
            if answer.lower() in ("", *keys):
                return answer.lower()
            say(f"  type one of: {', '.join('Enter' if k == '' else k for k in ('', *keys))}")

    async def text(self, question: str) -> str | None:
        """A line that is not blank; None when the operator gives up (end of input)."""
        while True:
            answer = await self.ask(question)
            if answer is None or answer:
                return answer
            say("  (it cannot be blank)")


async def _run(engine: Engine, args: argparse.Namespace) -> int:
    runbook = engine.runbooks.get(args.name)
    terminal = None if args.yes else Terminal(sys.stdin.fileno())
    for secret in runbook.secrets:  # a missing one is said before anything runs
        try:
            get_secret(secret)
        except ConsoleError as e:
            return fail(f"{runbook.name} needs the secret {secret!r}: {e}")
    if args.step is not None:
        return await _resume(engine, runbook, args, terminal)
    given = dict(args.vars)
    values = engine.runbook_commands.values(runbook, args.incident, given)
    missing = runbook.missing_variables(values)
    if missing and terminal is None:
        options = " ".join(f"--var {name}=…" for name in missing)
        hint = " (or --incident ID for SERVICE and INCIDENT)" if {"SERVICE", "INCIDENT"} & set(missing) \
            and not args.incident else ""
        print(f"conn: {runbook.name} needs a value for {', '.join(missing)}: give {options}{hint}",
              file=sys.stderr)
        return USAGE
    for name in missing:
        assert terminal is not None
        answer = await terminal.text(f"{name} ({variable_source(runbook, name, {})}): ")
        if answer is None:
            say("stopped; nothing ran")
            return 1
        given[name] = answer
    unfinished = [r for r in engine.runs() if r.runbook == runbook.name and not r.done]
    result = await _execute(engine, StartRunbook(runbook=runbook.name, incident=args.incident, values=given))
    if result is None:
        return 1
    state: RunState = result.detail
    say(f"{state.run_id} started" + (f" for {state.incident}" if state.incident else "")
        + f" by {state.started_by}: {_shown(runbook.title, runbook, state.vars)} "
        f"({len(runbook.steps)} steps, version {runbook.version[:12]})")
    if unfinished:
        say(f"note: {unfinished[-1].run_id} is unfinished too (resume it with --step N)")
    return await StepRunner(engine, runbook, state.run_id, terminal, args.reason).run_from(1)


async def _resume(engine: Engine, runbook: Runbook, args: argparse.Namespace, terminal: Terminal | None) -> int:
    incident = engine.incident(args.incident).id if args.incident else None
    runs = [r for r in engine.runs() if r.runbook == runbook.name and not r.done
            and (incident is None or r.incident == incident)]
    of = f" for {args.incident}" if args.incident else ""
    if not runs:
        return fail(f"no unfinished run of {runbook.name}{of} to resume: start one without --step")
    state = runs[-1]
    number: int = args.step
    if number > len(state.steps):
        print(f"conn: {state.run_id} has steps 1–{len(state.steps)}, not {number}", file=sys.stderr)
        return USAGE
    record = state.record(number)
    if record.status in _DONE:
        at = state.current_step
        where = f"; it goes on at step {at}: --step {at}" if at is not None else ""
        return fail(f"{state.run_id}: step {number} ({record.title}) {record.status} already{where}")
    say(f"resuming {state.run_id}" + (f" (for {state.incident})" if state.incident else "")
        + f" at step {number}, started {when(state.started_at or 0.0)} by {state.started_by}")
    return await StepRunner(engine, runbook, state.run_id, terminal, args.reason).run_from(number)


async def _execute(engine: Engine, command: Command) -> CommandResult | None:
    """The command's result; None after printing why the engine refused it."""
    try:
        return await engine.execute(command)
    except CommandError as e:
        fail(str(e))
    except ConcurrencyError as e:
        fail(f"not done: someone else changed the run first: {e.winner}")
    return None


class StepRunner:
    """Runs one run's steps from a number on, asking on ``terminal`` or, without one, as ``--yes``."""

    def __init__(self, engine: Engine, runbook: Runbook, run_id: str, terminal: Terminal | None,
                 reason: str) -> None:
        self.engine, self.runbook, self.run_id = engine, runbook, run_id
        self.terminal = terminal
        self.reason = reason.strip()
        """``--reason``: why a stopped (interrupted) step runs again."""

    @property
    def state(self) -> RunState:
        return self.engine.run(self.run_id)

    async def run_from(self, first: int) -> int:
        """Steps ``first``… in order (done ones passed over), then finish the run; the exit code."""
        values = self.state.vars
        for warning in self.runbook.warnings:
            _banner(_shown(warning, self.runbook, values))
        if self.terminal is not None and self.runbook.summary:
            _indented(_shown(self.runbook.summary, self.runbook, values), "  ")
        number = first
        while number <= len(self.runbook.steps):
            state = self.state
            if state.record(number).status in _DONE:
                number += 1
                continue
            blocker = self._blocker(number)
            if blocker is not None:
                return fail(blocker)
            outcome = await self.step(number)
            if outcome != "done":
                self._stopped_at(number, outcome)
                return 1
            number += 1
        if await _execute(self.engine, FinishRunbook(run=self.run_id)) is None:
            return 1
        done = self.state.steps
        skipped = sum(1 for s in done if s.status == "skipped")
        say(f"{self.run_id} finished: {len(done) - skipped} steps succeeded, {skipped} skipped")
        return 0

    def _blocker(self, number: int) -> str | None:
        """Why step ``number`` cannot run now (an earlier step not done), or None."""
        state = self.state
        if rollback_offer(state, self.runbook) == number:
            return None
        current = state.current_step
        if current is None or current >= number:
            return None
        status = self.engine.runbook_commands.status(state, current)
        return (f"{self.run_id}: step {current} ({state.record(current).title}) is {status.replace('_', ' ')}; "
                f"resume from it: conn runbook run {self.runbook.name} --step {current}")

    def _stopped_at(self, number: int, outcome: Outcome) -> None:
        state = self.state
        rerun = f"conn runbook run {self.runbook.name}" + (f" --incident {state.incident}" if state.incident else "")
        status = self.engine.runbook_commands.status(state, number)
        verb = "stopped" if outcome == "stopped" else "stopped by a failure"
        say(f"{self.run_id} {verb} at step {number} ({state.record(number).title}); resume it:")
        say(f"  {rerun} --step {number}" + (" --reason WHY" if status == "interrupted" else ""))
        offered = rollback_offer(state, self.runbook)
        if offered is not None:
            target = self.runbook.step(offered)
            say(f"  its rollback, step {offered} ({target.name}), can run now: {rerun} --step {offered}")

    async def step(self, number: int) -> Outcome:
        step = self.runbook.step(number)
        values = self.state.vars
        total = len(self.runbook.steps)
        danger = "  ⚠ DANGEROUS" if step.dangerous else ""
        say(f"\n== step {number}/{total}: {_shown(step.title, self.runbook, values)} [{step.kind}]{danger}")
        for warning in step.warnings:
            _banner(_shown(warning, self.runbook, values))
        if self.terminal is not None and step.body:
            _indented(_shown(step.body, self.runbook, values), "  ")
        if step.kind == "command":
            return await self._command(step)
        if step.kind == "check":
            return await self._checks(step)
        return await self._note(step)

    async def _note(self, step: Step) -> Outcome:
        if self.terminal is not None:
            key = await self.terminal.choose("  [Enter] read · s skip · q stop: ", "sq")
            if key != "":
                return await self._skip_or_stop(step, key)
        reason = YES if self.terminal is None else ""
        done = await _execute(self.engine, AcknowledgeRunbookStep(run=self.run_id, step=step.number, reason=reason))
        if done is None:
            return "failed"
        say("  read" + (" (acknowledged by --yes)" if self.terminal is None else ""))
        return "done"

    async def _checks(self, step: Step) -> Outcome:
        for item in step.checks:
            text = _shown(item, self.runbook, self.state.vars)
            if item in self.state.record(step.number).ticked:
                say(f"  [x] {text}")
                continue
            if self.terminal is not None:
                key = await self.terminal.choose(f"  [ ] {text}  [Enter] tick · s skip the step · q stop: ", "sq")
                if key != "":
                    return await self._skip_or_stop(step, key)
            reason = YES if self.terminal is None else ""
            tick = TickRunbookCheck(run=self.run_id, step=step.number, item=item, reason=reason)
            if await _execute(self.engine, tick) is None:
                return "failed"
            say(f"  [x] {text}" + (" (ticked by --yes)" if self.terminal is None else ""))
        return "done"

    async def _command(self, step: Step) -> Outcome:
        state = self.state
        status = self.engine.runbook_commands.status(state, step.number)
        if status == "running":  # started by a console that may still be running it
            record = state.record(step.number)
            after = (record.started_at or 0.0) + step.timeout + KILL_GRACE + ELSEWHERE_SLACK
            fail(f"{self.run_id}: step {step.number} ({record.title}) started {when(record.started_at or 0.0)} by "
                 f"{record.started_by} and may still be running on that console; it counts as interrupted "
                 f"from {when(after)} (its {format_duration(step.timeout)} timeout, then "
                 f"{format_duration(KILL_GRACE + ELSEWHERE_SLACK)}): retry it then, with --reason")
            return "failed"
        preview = PreviewRunbookStep(run=self.run_id, step=step.number)
        # A step recorded as running (interrupted) cannot be previewed: its retry records the old attempt first.
        if state.record(step.number).status != "running" and await _execute(self.engine, preview) is None:
            return "failed"
        for text in command_lines(self.runbook, step, state.vars, "  "):
            say(text)
        if status in _STOPPED:
            record = state.record(step.number)
            say(f"  last attempt: {status.replace('_', ' ')}" + (f" ({record.error})" if record.error else ""))
        if self.terminal is None:
            if step.confirmation is not None:
                say(f"  confirmed by {YES}")
            return await self._run_step(step, status, typed=self._expected(step), reason=self._reason(step, status))
        return await self._ask_and_run(step)

    def _expected(self, step: Step) -> str | None:
        return None if step.confirmation is None else _shown(step.confirmation, self.runbook, self.state.vars)

    def _reason(self, step: Step, status: str) -> str:
        """What ``--yes`` records: the ``--reason`` of a retry, and "--yes" on a confirmation it typed."""
        if status in _STOPPED and self.reason:
            return f"{self.reason} ({YES})" if step.confirmation is not None else self.reason
        return YES if step.confirmation is not None else ""

    async def _ask_and_run(self, step: Step) -> Outcome:
        assert self.terminal is not None
        while True:
            status = self.engine.runbook_commands.status(self.state, step.number)
            verb = "retry" if status in _STOPPED else "run it"
            key = await self.terminal.choose(f"  [Enter] {verb} · s skip · q stop: ", "sq")
            if key != "":
                return await self._skip_or_stop(step, key)
            typed = None
            expected = self._expected(step)
            if expected is not None:
                typed = await self.terminal.ask(f"  type {expected!r} to run it: ")
                if typed is None:
                    return "stopped"
            reason = self.reason
            if status == "interrupted" and not reason:
                answer = await self.terminal.text("  it may have run already; why run it again? ")
                if answer is None:
                    return "stopped"
                reason = answer
            if await self._run_step(step, status, typed=typed, reason=reason) == "done":
                return "done"
            if self.state.record(step.number).status not in _STOPPED:
                continue  # refused (say, the confirmation was mistyped): ask again
            offered = rollback_offer(self.state, self.runbook)
            while offered is not None:
                target = self.runbook.step(offered)
                key = await self.terminal.choose(
                    f"  its rollback is step {offered} ({target.name}): b run it now · Enter go on: ", "b")
                if key != "b":
                    break
                if await self.step(offered) == "stopped":
                    return "stopped"
                offered = rollback_offer(self.state, self.runbook)

    async def _run_step(self, step: Step, status: str, *, typed: str | None, reason: str) -> Outcome:
        command = RunRunbookStep(run=self.run_id, step=step.number, typed=typed, reason=reason, on_output=_output)
        try:
            result = await self.engine.execute(command)
        except CommandError as e:
            hint = status == "interrupted" and not reason and self.terminal is None
            fail(str(e) + (": pass --reason" if hint else ""))
            return "failed"
        except ConcurrencyError as e:
            fail(f"not done: someone else changed the run first: {e.winner}")
            return "failed"
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                say(f"\n✗ step {step.number} cancelled: its processes were stopped")
            raise
        record = self.engine.run(self.run_id).record(step.number)
        if record.status == "succeeded":
            say(f"✓ step {step.number} succeeded: exit 0 in {record.duration or 0.0:.1f}s")
            return "done"
        say(f"✗ step {step.number} {record.status.replace('_', ' ')}: {record.error or result.message}")
        return "failed"

    async def _skip_or_stop(self, step: Step, key: str) -> Outcome:
        if key == "q" or self.terminal is None:
            return "stopped"
        reason = await self.terminal.text("  why skip it (on the timeline)? ")
        if reason is None:
            return "stopped"
        if await _execute(self.engine, SkipRunbookStep(run=self.run_id, step=step.number, reason=reason)) is None:
            return "failed"
        say(f"  skipped: {reason}")
        return "done"


def _output(stream: str, line: str) -> None:
    """A step's output line as it comes: cleaned and redacted by the runner, printed literally."""
    print(f"! {line}" if stream == "stderr" else f"  {line}", flush=True)
