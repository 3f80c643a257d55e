"""Runbooks, the fourth projection: runs folded from ``runbook/<run-id>``, their commands, the runner.

The format and the run's state machine are pure (:mod:`console.model.runbooks`,
:mod:`console.model.runbook_runs`); running a step's script is
:func:`console.actions.shell.run_step`. This module gives them the engine's
plumbing:

* :class:`RunbookLibrary` — the ``*.md`` files under ``[runbooks] paths``,
  with the broken ones and why (listed, never hiding the others);
* :class:`RunbookProjection` — every run, folded;
* commands — start a run (linked to an incident or not), preview, run or
  retry a step (the subprocess runs inside the command, on the operator's
  console, attributed to the operator; output streams to ``on_output``),
  tick a check, acknowledge a note, skip with a reason, finish, abandon.

**Interrupted.** A step recorded as started and not ended is *running* while
this process runs it, or while the console that started it still may: on
this machine, while its process lives (the step's event names its host and
pid); on another machine, until its timeout, the kill grace and
:data:`ELSEWHERE_SLACK` have passed. After that it is *interrupted*: it may
or may not have run, and it runs again only when retried with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from console.actions.runbook_files import load_runbooks
from console.actions.shell import cancelled_outcome, run_step, step_changes
from console.config import ConnConfig
from console.engine.commands import Command, CommandResult, Handler
from console.engine.projections import ProjectionSet, append_and_fold
from console.errors import ActionError, CommandError, ConcurrencyError, ConsoleError
from console.model.clock import Clock
from console.model.events import Actor, Event
from console.model.runbook_runs import (
    RUN_STREAM,
    STEP_STARTED,
    Change,
    RunbookRefused,
    RunState,
    StepStatus,
    abandon_run,
    acknowledge_step,
    fail_step,
    finish_run,
    preview_step,
    retry_step,
    skip_step,
    start_run,
    start_step,
    tick_check,
)
from console.model.runbooks import BrokenRunbook, Runbook, run_values
from console.model.text import suggest
from console.secrets import get_secret, redact
from console.store.base import EventStore

KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when a step is stopped."""
ELSEWHERE_SLACK = 10.0
"""Seconds past a step's timeout (and the kill grace) during which a step a console on
another machine started is still shown as running there; after that, as interrupted.
(On the same machine the runner's process is looked at directly.)"""
OPEN_ATTEMPTS = 20

OutputCallback = Callable[[str, str], None]


# --- the library and the projection ----------------------------------------------


class RunbookLibrary:
    """The runbooks under ``[runbooks] paths``, read at start and on :meth:`reload`."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = tuple(paths)
        self.runbooks: dict[str, Runbook] = {}
        self.broken: tuple[BrokenRunbook, ...] = ()
        self.revision = 0

    def reload(self) -> None:
        runbooks, broken = load_runbooks(self.paths)
        self.runbooks = {r.name: r for r in runbooks}
        self.broken = tuple(broken)
        self.revision += 1

    def get(self, name: str) -> Runbook:
        runbook = self.runbooks.get(name)
        if runbook is not None:
            return runbook
        bad = next((b for b in self.broken if b.name == name), None)
        if bad is not None:
            raise CommandError(f"runbook {name!r} cannot be read: {bad.describe()}")
        known = ", ".join(sorted(self.runbooks)) or "none (put *.md files under [runbooks] paths)"
        raise CommandError(f"no runbook named {name!r}.{suggest(name, self.runbooks)} Runbooks: {known}")

    def offered(self, services: Sequence[str], labels: Sequence[Mapping[str, str]] = ()) -> list[Runbook]:
        """Runbooks whose front matter names one of ``services`` or matches one of the alerts' labels."""
        found = [r for r in self.runbooks.values()
                 if (r.service and r.service in services) or any(r.matches(x) for x in labels)]
        return sorted(found, key=lambda r: r.name)


class RunbookProjection:
    """Every run, folded from its stream."""

    prefix = RUN_STREAM

    def __init__(self) -> None:
        self.runs: dict[str, RunState] = {}
        self.runners: dict[tuple[str, int], tuple[str, int]] = {}
        """(run, step) → (host, pid) of the console that started the step's latest attempt."""

    def apply(self, event: Event) -> bool:
        run_id = event.stream.removeprefix(RUN_STREAM)
        before = self.runs.get(run_id) or RunState(run_id)
        after = before.apply(event)
        self.runs[run_id] = after
        runner = event.payload.get("runner") if isinstance(event.payload, Mapping) else None
        step = event.payload.get("step") if isinstance(event.payload, Mapping) else None
        if event.type == STEP_STARTED and isinstance(runner, Mapping) and isinstance(step, int):
            host, pid = runner.get("host"), runner.get("pid")
            if isinstance(host, str) and isinstance(pid, int):
                self.runners[(run_id, step)] = (host, pid)
        return after is not before

    def get(self, run_id: str) -> RunState:
        state = self.runs.get(run_id)
        if state is None or state.lifecycle == "pending":
            recent = ", ".join(sorted(self.runs)[-5:]) or "none yet"
            raise CommandError(f"no runbook run {run_id!r} (runs: {recent})")
        return state

    def of_runbook(self, name: str) -> list[RunState]:
        return sorted((r for r in self.runs.values() if r.runbook == name),
                      key=lambda r: r.started_at or 0.0)


# --- commands --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StartRunbook(Command):
    """Start a run of ``runbook``; linked to ``incident`` when given (its steps join its timeline)."""

    runbook: str
    incident: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"run runbook {self.runbook}" + (f" for {self.incident}" if self.incident else "")


@dataclass(frozen=True, kw_only=True)
class PreviewRunbookStep(Command):
    run: str
    step: int
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"preview step {self.step} of {self.run}"


@dataclass(frozen=True, kw_only=True)
class RunRunbookStep(Command):
    """Run a command step (or retry a stopped one: then a reason is needed if it was interrupted).

    The script runs while the command executes; ``on_output`` gets each line as
    it comes. Cancelling the task that executes it stops the step's process
    group and records it as cancelled.
    """

    run: str
    step: int
    typed: str | None = None
    on_output: OutputCallback | None = field(default=None, compare=False, repr=False)
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"run step {self.step} of {self.run}"


@dataclass(frozen=True, kw_only=True)
class TickRunbookCheck(Command):
    run: str
    step: int
    item: str | int
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"tick a check of step {self.step} of {self.run}"


@dataclass(frozen=True, kw_only=True)
class AcknowledgeRunbookStep(Command):
    run: str
    step: int
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"mark step {self.step} of {self.run} read"


@dataclass(frozen=True, kw_only=True)
class SkipRunbookStep(Command):
    """Skip a step: the reason is required (it is on the timeline)."""

    run: str
    step: int

    @property
    def summary(self) -> str:
        return f"skip step {self.step} of {self.run}"


@dataclass(frozen=True, kw_only=True)
class FinishRunbook(Command):
    run: str
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"finish {self.run}"


@dataclass(frozen=True, kw_only=True)
class AbandonRunbook(Command):
    run: str

    @property
    def summary(self) -> str:
        return f"abandon {self.run}"


# --- handlers --------------------------------------------------------------------


class RunbookCommands:
    """The handlers of the runbook commands, registered on the engine's bus.

    Args:
        incident: looks up an incident's services, alert labels (for the run's variables).
        conn_config: the config file the steps' ``conn`` commands read.
    """

    def __init__(self, *, config: ConnConfig, store: EventStore, projections: ProjectionSet,
                 runs: RunbookProjection, library: RunbookLibrary, clock: Clock,
                 incident: Callable[[str], tuple[str, tuple[str, ...], tuple[Mapping[str, str], ...]]],
                 conn_config: Path | None) -> None:
        self._config = config
        self._store = store
        self._projections = projections
        self._runs = runs
        self._library = library
        self._clock = clock
        self._incident = incident
        self._conn_config = conn_config
        self.running: dict[tuple[str, int], float] = {}
        """Steps this process runs now: (run, step) → monotonic start."""

    def handlers(self) -> dict[type[Command], Handler]:
        return {
            StartRunbook: self._start,
            PreviewRunbookStep: self._simple(lambda s, r, c: preview_step(s, r, c.step), "previewed"),
            RunRunbookStep: self._run,
            TickRunbookCheck: self._simple(lambda s, r, c: tick_check(s, r, c.step, c.item), "ticked"),
            AcknowledgeRunbookStep: self._simple(lambda s, r, c: acknowledge_step(s, r, c.step), "read"),
            SkipRunbookStep: self._simple(
                lambda s, r, c: skip_step(s, c.step, c.reason, live=self.live(s, c.step)), "skipped"),
            FinishRunbook: self._simple(lambda s, r, c: finish_run(s), "finished"),
            AbandonRunbook: self._simple(
                lambda s, r, c: abandon_run(s, c.reason, live=self.live(s, s.running_step)), "abandoned"),
        }

    # views

    def live(self, state: RunState, number: int | None) -> bool:
        """Whether step ``number`` of ``state`` may still be running (here, or on another console)."""
        if number is None:
            return False
        if (state.run_id, number) in self.running:
            return True
        record = state.record(number) if 0 < number <= len(state.steps) else None
        if record is None or record.status != "running" or record.started_at is None:
            return False
        runner = self._runs.runners.get((state.run_id, number))
        if runner is not None and runner[0] == socket.gethostname():
            # Started on this machine: its console either still runs or is gone for good.
            return runner[1] != os.getpid() and _alive(runner[1])
        runbook = self._library.runbooks.get(state.runbook)
        timeout = runbook.steps[number - 1].timeout if runbook and number <= len(runbook.steps) else 0.0
        return self._clock.now() < record.started_at + timeout + KILL_GRACE + ELSEWHERE_SLACK

    def status(self, state: RunState, number: int) -> StepStatus:
        return state.step_status(number, live=self.live(state, number))

    # handlers

    def _simple(self, decide: Callable[[RunState, Runbook, Any], list[Change]], word: str) -> Handler:
        async def handle(command: Any, actor: Actor) -> CommandResult:
            state = self._runs.get(command.run)
            runbook = self._library.get(state.runbook)
            changes = _decided(lambda: decide(state, runbook, command))
            events = await self._append(state.stream, changes, actor, command.reason)
            return CommandResult(command, actor, events, f"{state.run_id}: {word}",
                                 detail=self._runs.get(command.run))
        return handle

    def values(self, runbook: Runbook, incident: str | None, given: Mapping[str, str]) -> dict[str, str]:
        """The run's variables: the runbook's defaults, the incident's alert labels and
        service (``SERVICE``, ``INCIDENT``, ``HEALTH_URL``, ``ROLLOUT``), then ``given``."""
        service = runbook.service
        labels: dict[str, str] = {}
        if incident is not None:
            incident, services, alerts = self._incident(incident)
            if service is None or service not in services:
                service = services[0] if services else service
            for alert in alerts:
                labels.update(alert)
        derived: dict[str, str] = {}
        if service is not None and service in self._config.services:
            derived["HEALTH_URL"] = self._config.services[service].health_url
            rollout = next((name for name, plan in self._config.rollouts.items()
                            if service in (plan.canary, plan.baseline)), None)
            if rollout is not None:
                derived["ROLLOUT"] = rollout
        return run_values(runbook, service=service, incident=incident, labels=labels,
                          given={**derived, **given})

    async def _start(self, command: StartRunbook, actor: Actor) -> CommandResult:
        runbook = self._library.get(command.runbook)
        values = self.values(runbook, command.incident, command.values)
        incident = values.get("INCIDENT") if command.incident else None
        number = len(self._runs.of_runbook(runbook.name)) + 1
        for _ in range(OPEN_ATTEMPTS):
            run_id = f"{runbook.name}-{number}"
            state = self._runs.runs.get(run_id) or RunState(run_id)
            if state.lifecycle != "pending":
                number += 1
                continue
            changes = _decided(lambda state=state: start_run(  # type: ignore[misc]
                state, runbook, incident=incident, values=values))
            try:
                events = await self._append(state.stream, changes, actor, command.reason, expected=0)
            except ConcurrencyError:
                number += 1
                continue
            return CommandResult(command, actor, events, f"{run_id} started", detail=self._runs.get(run_id))
        raise CommandError("could not pick a run id (other consoles keep taking them); try again")

    async def _run(self, command: RunRunbookStep, actor: Actor) -> CommandResult:
        state = self._runs.get(command.run)
        runbook = self._library.get(state.runbook)
        if not 0 < command.step <= len(runbook.steps):
            raise CommandError(f"{runbook.name} has steps 1–{len(runbook.steps)}, not {command.step}")
        step = runbook.steps[command.step - 1]
        if step.kind != "command" or step.command is None:
            raise CommandError(f"step {command.step} ({step.title}) has no command to run")
        status = self.status(state, command.step)
        if status == "running":
            record = state.record(command.step)
            where = self._runs.runners.get((state.run_id, command.step))
            raise CommandError(
                f"step {command.step} ({step.title}) is still running, started by {record.started_by}"
                + (f" on {where[0]}" if where else "")
                + ": cancel it there, or retry it once it counts as interrupted")
        if status in ("failed", "timed_out", "cancelled", "interrupted"):
            changes = _decided(lambda: retry_step(state, runbook, command.step, typed=command.typed,
                                                  reason=command.reason, live=False))
        else:
            changes = _decided(lambda: start_step(state, runbook, command.step, typed=command.typed))
        secrets: dict[str, str] = {}
        for name in runbook.secrets:
            try:
                secrets[name] = get_secret(name)
            except ConsoleError as e:
                raise CommandError(f"{runbook.name} needs the secret {name!r}: {e}") from e
        # Who runs it: a console on this machine can tell at once when that process is gone.
        runner = {"host": socket.gethostname(), "pid": os.getpid()}
        changes = [(kind, {**payload, "runner": runner}) if kind == STEP_STARTED else (kind, payload)
                   for kind, payload in changes]
        events = list(await self._append(state.stream, changes, actor, command.reason))
        key = (state.run_id, command.step)
        self.running[key] = time.monotonic()
        try:
            outcome = await run_step(
                step.command, timeout=step.timeout, shell=tuple(self._config.runbooks.shell),
                env=dict(self._runs.get(command.run).vars), secrets=secrets,
                conn_config=self._conn_config, on_output=command.on_output, kill_grace=KILL_GRACE,
            )
        except ActionError as e:  # the shell could not start
            after = self._runs.get(command.run)
            events += await self._append(after.stream, fail_step(
                after, command.step, outcome="failed", duration=0.0, error=redact(str(e)),
                excerpt="", exit_code=None), actor, "")
            return CommandResult(command, actor, tuple(events), f"step {command.step}: {e}",
                                 detail=self._runs.get(command.run))
        except asyncio.CancelledError as e:
            stopped = cancelled_outcome(e)
            if stopped is not None:
                after = self._runs.get(command.run)
                with contextlib.suppress(ConsoleError):
                    await asyncio.shield(self._append(after.stream, step_changes(after, command.step, stopped),
                                                      actor, "cancelled by the operator"))
            raise
        finally:
            self.running.pop(key, None)
        after = self._runs.get(command.run)
        events += await self._append(after.stream, step_changes(after, command.step, outcome), actor, "")
        return CommandResult(command, actor, tuple(events), f"step {command.step}: {outcome.summary()}",
                             detail=self._runs.get(command.run))

    async def _append(self, stream: str, changes: Sequence[Change], actor: Actor, reason: str,
                      *, expected: int | None = None) -> tuple[Event, ...]:
        return await append_and_fold(self._store, self._projections, stream, changes, actor=actor,
                                     reason=reason, at=self._clock.now(), expected=expected)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _decided(decide: Callable[[], list[Change]]) -> list[Change]:
    try:
        return decide()
    except RunbookRefused as e:
        raise CommandError(str(e)) from e


__all__ = [
    "AbandonRunbook", "AcknowledgeRunbookStep", "FinishRunbook", "PreviewRunbookStep",
    "RunRunbookStep", "RunbookCommands", "RunbookLibrary", "RunbookProjection", "SkipRunbookStep",
    "StartRunbook", "TickRunbookCheck",
]
