"""A runbook run: the fold of its events on ``runbook/<run-id>``, and the deciders.

As with rollouts (:mod:`console.model.rollouts`), a run's state is never
stored; it is the fold of its stream, so the audit log, other consoles and a
console started again after the SSH session dropped all see the same run.

* **Deciders** (:func:`start_run`, :func:`preview_step`, :func:`start_step`,
  :func:`retry_step`, :func:`record_output`, :func:`finish_step`,
  :func:`fail_step`, :func:`tick_check`, :func:`acknowledge_step`,
  :func:`skip_step`, :func:`finish_run`, :func:`abandon_run`) take the state
  (and the runbook, where the step's definition matters) and return the
  ``(type, payload)`` pairs to append, or raise :class:`RunbookRefused` with
  a sentence for the operator. Actor and reason live on the event.
* **Views** (:meth:`RunState.step_status`, :attr:`RunState.current_step`,
  …) read a state.

Rules: steps go in order; a step starts only when every step before it
succeeded or was skipped (with a reason), so a failed step stops the run
until it is retried or skipped. The one exception is the failed step's
``conn.rollback``: that later step may run at once, out of turn
(:func:`rollback_offer`); the failed step still has to be retried or skipped
before the run goes on. One step runs at a time. A command step
that needs a confirmation starts only with the exact text typed
(``conn.confirm``, or a dangerous step's name), recorded as confirmed. A
check step succeeds when its last item is ticked; a note step when it is
acknowledged. The runbook file's version is recorded when the run starts;
if the file changes under a run, steps are refused (start a new run) rather
than guess which step is which.

**Interrupted.** A step that started and has no finished or failed event is
``running`` in the log. Only the caller knows whether a runner is still
alive for it (the console that started it, in this process); a reader that
knows none is shows it as ``interrupted`` (``step_status(n, live=False)``):
it may or may not have run, so it is never run again by itself. Retrying it
takes a typed reason, and first records the old attempt as interrupted.

Event types and payloads (JSON)::

    runbook.started        {runbook, version, incident, vars, steps: [titles], names, kinds}
    runbook.step_previewed {step, command}
    runbook.step_confirmed {step}
    runbook.step_started   {step, command, attempt, retry_reason, rollback_of}
    runbook.step_output    {step, excerpt}
    runbook.step_finished  {step, exit_code, duration, excerpt}   (exit_code, duration null for checks and notes)
    runbook.step_failed    {step, outcome, exit_code, duration, error, excerpt}
                           outcome: "failed" | "timed_out" | "cancelled" | "interrupted"
    runbook.check_ticked   {step, item}
    runbook.step_skipped   {step, reason}
    runbook.finished       {}
    runbook.abandoned      {reason}

``step`` is the 1-based step number. Excerpts and errors must already be
redacted (:func:`console.actions.shell.run_step` output is); ``command`` is
the script with the run's variables filled in and secrets left as
``${NAME}``, so no secret value is ever in a payload.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from console.model.events import Event, check_stream_name
from console.model.events import payload_error as _bad
from console.model.events import payload_strings as _strings
from console.model.events import payload_value as _get
from console.model.runbooks import (
    MissingVariables,
    Runbook,
    Step,
    StepKind,
    is_variable_name,
    resolve,
)

__all__ = [
    "CHECK_TICKED", "EVENT_TYPES", "MAX_EXCERPT", "RUN_ABANDONED", "RUN_FINISHED", "RUN_STARTED",
    "RUN_STREAM", "STEP_CONFIRMED", "STEP_FAILED", "STEP_FINISHED", "STEP_OUTPUT", "STEP_PREVIEWED",
    "STEP_SKIPPED", "STEP_STARTED", "Change", "FailOutcome", "RunLifecycle", "RunState",
    "RunbookRefused", "StepRecord", "StepStatus", "abandon_run", "acknowledge_step", "fail_step",
    "finish_run", "finish_step", "fold", "preview_step", "record_output", "retry_step",
    "rollback_offer", "run_stream",
    "skip_step", "start_run", "start_step", "step_command", "tick_check",
]

RUN_STREAM = "runbook/"
"""A run's events live on ``runbook/<run-id>``."""

RUN_STARTED = "runbook.started"
STEP_PREVIEWED = "runbook.step_previewed"
STEP_CONFIRMED = "runbook.step_confirmed"
STEP_STARTED = "runbook.step_started"
STEP_OUTPUT = "runbook.step_output"
STEP_FINISHED = "runbook.step_finished"
STEP_FAILED = "runbook.step_failed"
CHECK_TICKED = "runbook.check_ticked"
STEP_SKIPPED = "runbook.step_skipped"
RUN_FINISHED = "runbook.finished"
RUN_ABANDONED = "runbook.abandoned"
EVENT_TYPES = frozenset({
    RUN_STARTED, STEP_PREVIEWED, STEP_CONFIRMED, STEP_STARTED, STEP_OUTPUT, STEP_FINISHED,
    STEP_FAILED, CHECK_TICKED, STEP_SKIPPED, RUN_FINISHED, RUN_ABANDONED,
})

MAX_EXCERPT = 64 * 1024
"""Characters of output kept in an event; longer excerpts keep their head and tail."""

StepStatus = Literal[
    "pending", "previewed", "running", "succeeded", "failed", "timed_out", "cancelled",
    "skipped", "interrupted",
]
FailOutcome = Literal["failed", "timed_out", "cancelled", "interrupted"]
RunLifecycle = Literal["pending", "active", "finished", "abandoned"]
Change = tuple[str, dict[str, Any]]
"""An event to append: its type and payload."""

_DONE: frozenset[StepStatus] = frozenset({"succeeded", "skipped"})
_STOPPED: frozenset[StepStatus] = frozenset({"failed", "timed_out", "cancelled", "interrupted"})
_FAIL_OUTCOMES: tuple[FailOutcome, ...] = get_args(FailOutcome)
_KINDS: tuple[StepKind, ...] = ("command", "check", "note")
_INTERRUPTED_ERROR = "interrupted: the console running it went away; it may or may not have run"


class RunbookRefused(ValueError):
    """A command the run's state does not allow; the message is for the operator."""


def run_stream(run_id: str) -> str:
    """``runbook/<run-id>``; ValueError when the id cannot name a stream."""
    return check_stream_name(RUN_STREAM + run_id)


# --- state -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRecord:
    """One step as the run's events tell it."""

    number: int
    title: str
    name: str
    kind: StepKind
    status: StepStatus = "pending"
    """As recorded: a step whose runner went away is still "running" here (see
    :meth:`RunState.step_status`)."""
    attempts: int = 0
    command: str | None = None
    """The script as last previewed or started (variables filled in, secrets not)."""
    confirmed: bool = False
    """The operator typed the confirmation for the current (or coming) attempt; a failure
    clears it, so a retry is confirmed again."""
    ticked: tuple[str, ...] = ()
    started_at: float | None = None
    started_by: str | None = None
    ended_at: float | None = None
    duration: float | None = None
    """Seconds the last attempt ran (the runner's clock); a check's from its first tick."""
    exit_code: int | None = None
    error: str = ""
    excerpt: str = ""
    reason: str = ""
    """Why it was skipped, or why an interrupted attempt was run again."""
    rollback_of: int | None = None
    """The last attempt ran out of turn, as the ``conn.rollback`` of this failed step."""
    by: str = ""
    """Who changed it last."""


@dataclass(frozen=True)
class RunState:
    """One run, folded from ``runbook/<run-id>``; ``apply`` returns a new state."""

    run_id: str
    version: int = 0
    """The stream's version (every event counts): the next append expects it."""
    lifecycle: RunLifecycle = "pending"
    runbook: str = ""
    runbook_version: str = ""
    incident: str | None = None
    vars: Mapping[str, str] = field(default_factory=dict)
    steps: tuple[StepRecord, ...] = ()
    started_at: float | None = None
    started_by: str = ""
    ended_at: float | None = None
    ended_by: str = ""
    abandon_reason: str = ""

    @property
    def stream(self) -> str:
        return RUN_STREAM + self.run_id

    @property
    def done(self) -> bool:
        """Finished or abandoned: nothing more happens in this run."""
        return self.lifecycle in ("finished", "abandoned")

    def record(self, number: int) -> StepRecord:
        """Step ``number`` (1-based); KeyError when the run has no such step."""
        if not 1 <= number <= len(self.steps):
            raise KeyError(f"run {self.run_id} has no step {number} (it has {len(self.steps)})")
        return self.steps[number - 1]

    def step_status(self, number: int, *, live: bool = False) -> StepStatus:
        """The step's status; a recorded "running" reads "interrupted" unless ``live`` (a
        runner for it is known to be alive, in this process)."""
        status = self.record(number).status
        return "interrupted" if status == "running" and not live else status

    @property
    def running_step(self) -> int | None:
        """The step recorded as running (live or interrupted), if any."""
        return next((s.number for s in self.steps if s.status == "running"), None)

    @property
    def current_step(self) -> int | None:
        """The first step neither succeeded nor skipped: where the run is; None when all are."""
        return next((s.number for s in self.steps if s.status not in _DONE), None)

    @property
    def next_step(self) -> int | None:
        """The step that can be started (or ticked, or acknowledged) now: the current one
        if it is pending or previewed; None while it runs, after it stopped (retry or
        skip it), or when the run is done."""
        current = self.current_step
        if self.lifecycle != "active" or current is None:
            return None
        return current if self.record(current).status in ("pending", "previewed") else None

    @property
    def failed_step(self) -> int | None:
        """The step that failed, timed out, was cancelled or recorded as interrupted: it stops the run."""
        return next((s.number for s in self.steps if s.status in _STOPPED), None)

    def interrupted_step(self, *, live: bool = False) -> int | None:
        """The step that started and has no runner (unless ``live``), or was recorded interrupted."""
        return next(
            (s.number for s in self.steps if self.step_status(s.number, live=live) == "interrupted"), None
        )

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish or abandonment; None while the run goes on."""
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def apply(self, event: Event) -> RunState:
        """Fold one event; other streams, unknown types and seen versions change nothing.

        Raises:
            ValueError: the payload is unreadable, or the event cannot follow
                this state (a log no decider wrote).
        """
        if event.stream != self.stream or event.version <= self.version:
            return self
        state = replace(self, version=event.version)
        if event.type not in EVENT_TYPES:
            return state
        if not isinstance(event.payload, Mapping):
            raise _bad(event, "has no payload")
        if event.type == RUN_STARTED:
            return _started(state, event)
        if state.lifecycle != "active":
            raise _bad(event, f"but the run is {state.lifecycle}")
        if event.type == RUN_FINISHED:
            return _run_finished(state, event)
        if event.type == RUN_ABANDONED:
            return _run_abandoned(state, event)
        number = _get(event, "step", int)
        if not 1 <= number <= len(state.steps):
            raise _bad(event, f"names step {number}; the run has {len(state.steps)}")
        return _STEP_HANDLERS[event.type](state, event, state.steps[number - 1])


def fold(run_id: str, events: Iterable[Event], start: RunState | None = None) -> RunState:
    """The state of run ``run_id`` after ``events`` (any streams, in log order)."""
    state = start or RunState(run_id)
    for event in events:
        state = state.apply(event)
    return state


# --- folding -------------------------------------------------------------------------------


def _duration(event: Event) -> float | None:
    value = _get(event, "duration", (int, float), optional=True)
    if value is not None and (not math.isfinite(value) or value < 0):
        raise _bad(event, f"has a negative or endless duration ({value!r})")
    return None if value is None else float(value)


def _set(state: RunState, record: StepRecord) -> RunState:
    steps = list(state.steps)
    steps[record.number - 1] = record
    return replace(state, steps=tuple(steps))


def _in_turn(state: RunState, event: Event, record: StepRecord) -> None:
    """Every step before ``record`` succeeded or was skipped, and no other step runs."""
    blocking = next((s for s in state.steps[: record.number - 1] if s.status not in _DONE), None)
    if blocking is not None:
        raise _bad(event, f"for step {record.number} while step {blocking.number} is {blocking.status}")
    running = state.running_step
    if running is not None and running != record.number:
        raise _bad(event, f"for step {record.number} while step {running} is running")


def _started(state: RunState, event: Event) -> RunState:
    if state.lifecycle != "pending":
        raise _bad(event, "but the run has already started")
    titles, names, kinds = _strings(event, "steps"), _strings(event, "names"), _strings(event, "kinds")
    if not titles or not len(titles) == len(names) == len(kinds):
        raise _bad(event, "has no steps, or steps, names and kinds of different lengths")
    if any(kind not in _KINDS for kind in kinds):
        raise _bad(event, f"has an unknown step kind in {list(kinds)}")
    values = _get(event, "vars", Mapping)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        raise _bad(event, "has a non-text variable")
    steps = tuple(
        StepRecord(number, title, name, kind)  # type: ignore[arg-type]  # checked against _KINDS
        for number, (title, name, kind) in enumerate(zip(titles, names, kinds, strict=True), start=1)
    )
    return replace(
        state, lifecycle="active", runbook=_get(event, "runbook", str),
        runbook_version=_get(event, "version", str), incident=_get(event, "incident", str, optional=True),
        vars=dict(values), steps=steps, started_at=event.time, started_by=event.actor,
    )


def _previewed(state: RunState, event: Event, record: StepRecord) -> RunState:
    if record.status in ("running", *_DONE):
        raise _bad(event, f"for step {record.number}, which is {record.status}")
    status: StepStatus = "previewed" if record.status == "pending" else record.status
    return _set(state, replace(record, status=status, command=_get(event, "command", str), by=event.actor))


def _confirmed(state: RunState, event: Event, record: StepRecord) -> RunState:
    if record.kind != "command" or record.status in ("running", *_DONE):
        raise _bad(event, f"for step {record.number}, a {record.kind} step that is {record.status}")
    return _set(state, replace(record, confirmed=True, by=event.actor))


def _step_started(state: RunState, event: Event, record: StepRecord) -> RunState:
    if record.kind != "command":
        raise _bad(event, f"for step {record.number}, a {record.kind} step")
    if record.status in ("running", *_DONE):
        raise _bad(event, f"for step {record.number}, which is {record.status}")
    rollback_of = _get(event, "rollback_of", int, optional=True)
    if rollback_of is None:
        _in_turn(state, event, record)
    elif (
        state.current_step != rollback_of or rollback_of >= record.number
        or state.steps[rollback_of - 1].status not in _STOPPED or state.running_step is not None
    ):
        raise _bad(
            event, f"runs step {record.number} as the rollback of step {rollback_of}, which did not stop the run"
        )
    return _set(state, replace(
        record, status="running", attempts=record.attempts + 1, command=_get(event, "command", str),
        rollback_of=rollback_of,
        started_at=event.time, started_by=event.actor, ended_at=None, duration=None, exit_code=None,
        error="", excerpt="", by=event.actor,
        reason=_get(event, "retry_reason", str, optional=True) or "",
    ))


def _output(state: RunState, event: Event, record: StepRecord) -> RunState:
    if record.status != "running":
        raise _bad(event, f"for step {record.number}, which is {record.status}")
    return _set(state, replace(record, excerpt=_get(event, "excerpt", str)))


def _finished(state: RunState, event: Event, record: StepRecord) -> RunState:
    duration = _duration(event)
    if record.kind == "command":
        if record.status != "running":
            raise _bad(event, f"for step {record.number}, which is {record.status}")
        if _get(event, "exit_code", int) != 0:
            raise _bad(event, "with a non-zero exit code (a failure is step_failed)")
    else:
        if record.status not in ("pending", "previewed"):
            raise _bad(event, f"for step {record.number}, which is {record.status}")
        _in_turn(state, event, record)
        if record.kind == "check" and duration is None and record.started_at is not None:
            duration = max(0.0, event.time - record.started_at)
    return _set(state, replace(
        record, status="succeeded", ended_at=event.time, duration=duration,
        exit_code=_get(event, "exit_code", int, optional=True),
        excerpt=_get(event, "excerpt", str, optional=True) or record.excerpt, by=event.actor,
    ))


def _failed(state: RunState, event: Event, record: StepRecord) -> RunState:
    if record.status != "running":
        raise _bad(event, f"for step {record.number}, which is {record.status}")
    outcome = _get(event, "outcome", str)
    if outcome not in _FAIL_OUTCOMES:
        raise _bad(event, f"has an unknown outcome {outcome!r}")
    return _set(state, replace(
        record, status=outcome, confirmed=False, ended_at=event.time, duration=_duration(event),
        exit_code=_get(event, "exit_code", int, optional=True), error=_get(event, "error", str),
        excerpt=_get(event, "excerpt", str, optional=True) or record.excerpt, by=event.actor,
    ))


def _ticked(state: RunState, event: Event, record: StepRecord) -> RunState:
    if record.kind != "check" or record.status not in ("pending", "previewed"):
        raise _bad(event, f"for step {record.number}, a {record.kind} step that is {record.status}")
    _in_turn(state, event, record)
    item = _get(event, "item", str)
    if item in record.ticked:
        raise _bad(event, f"ticks {item!r} twice")
    started = record.started_at if record.ticked else event.time
    return _set(state, replace(record, ticked=(*record.ticked, item), started_at=started, by=event.actor))


def _skipped(state: RunState, event: Event, record: StepRecord) -> RunState:
    if record.status in _DONE:
        raise _bad(event, f"for step {record.number}, which is {record.status}")
    _in_turn(state, event, record)
    reason = _get(event, "reason", str)
    if not reason.strip():
        raise _bad(event, "without a reason")
    return _set(state, replace(record, status="skipped", reason=reason, ended_at=event.time, by=event.actor))


def _run_finished(state: RunState, event: Event) -> RunState:
    if any(step.status not in _DONE for step in state.steps):
        raise _bad(event, "before every step succeeded or was skipped")
    return replace(state, lifecycle="finished", ended_at=event.time, ended_by=event.actor)


def _run_abandoned(state: RunState, event: Event) -> RunState:
    reason = _get(event, "reason", str)
    if not reason.strip():
        raise _bad(event, "without a reason")
    steps = tuple(
        replace(step, status="interrupted", error=_INTERRUPTED_ERROR) if step.status == "running" else step
        for step in state.steps
    )
    return replace(
        state, lifecycle="abandoned", steps=steps, ended_at=event.time, ended_by=event.actor,
        abandon_reason=reason,
    )


_STEP_HANDLERS = {
    STEP_PREVIEWED: _previewed, STEP_CONFIRMED: _confirmed, STEP_STARTED: _step_started,
    STEP_OUTPUT: _output, STEP_FINISHED: _finished, STEP_FAILED: _failed, CHECK_TICKED: _ticked,
    STEP_SKIPPED: _skipped,
}


# --- deciders ------------------------------------------------------------------------------


def rollback_offer(state: RunState, runbook: Runbook) -> int | None:
    """The step to offer now because the step that stopped the run names it as its
    ``conn.rollback``; None when there is none, or it already ran to success.

    A step that is still recorded as running is not stopped: record it as
    interrupted first (:func:`fail_step` with ``outcome="interrupted"``).
    """
    current = state.current_step
    if state.lifecycle != "active" or current is None or state.running_step is not None:
        return None
    if state.record(current).status not in _STOPPED or runbook.version != state.runbook_version:
        return None
    target = runbook.step(current).rollback
    if target is None:
        return None
    number = runbook.step(target).number
    return number if state.record(number).status not in _DONE else None


def start_run(
    state: RunState, runbook: Runbook, *, incident: str | None, values: Mapping[str, str]
) -> list[Change]:
    """Start the run: record the runbook's version, the incident and every variable's value.

    Args:
        values: the run's variables (see :func:`console.model.runbooks.run_values`);
            declared defaults fill the rest.

    Raises:
        RunbookRefused: already started, a runbook without steps, a value
            missing (each one named, to ask the operator), a value for a
            secret, or a value that is not one line of text.
    """
    if state.lifecycle != "pending":
        raise RunbookRefused(f"run {state.run_id} has already started ({state.runbook})")
    if not runbook.steps:
        raise RunbookRefused(f"{runbook.name} has no steps to run")
    secret = sorted(set(values) & set(runbook.secret_variables))
    if secret:
        raise RunbookRefused(
            f"{', '.join(secret)} is a secret: steps get it from the secret store, never as a variable"
        )
    bad = sorted(name for name, value in values.items() if not is_variable_name(name) or not value.isprintable())
    if bad:
        raise RunbookRefused(f"{', '.join(bad)}: variables are capitals, digits and '_', with one line of text")
    missing = runbook.missing_variables(values)
    if missing:
        raise RunbookRefused(f"{runbook.name} needs a value for {', '.join(missing)}")
    recorded = {**{k: v for k, v in runbook.vars.items() if v}, **values}
    return [(RUN_STARTED, {
        "runbook": runbook.name, "version": runbook.version, "incident": incident,
        "vars": dict(sorted(recorded.items())), "steps": [s.title for s in runbook.steps],
        "names": [s.name for s in runbook.steps], "kinds": [s.kind for s in runbook.steps],
    })]


def step_command(state: RunState, runbook: Runbook, step: Step) -> str:
    """The step's script as the operator sees it: the run's variables filled in, secrets
    left as ``${NAME}`` (the shell fills those from the environment)."""
    if step.command is None:
        return ""
    return _resolve(state, runbook, step.command)


def preview_step(state: RunState, runbook: Runbook, number: int) -> list[Change]:
    """Record that the operator was shown the command of the current step (or of the
    stopped one, before a retry)."""
    step, record = _step(state, runbook, number)
    if step.kind != "command":
        raise RunbookRefused(f"step {number} ({step.title}) has no command to preview")
    if record.status in ("running", *_DONE):
        raise RunbookRefused(f"step {number} ({step.title}) is {record.status}")
    return [(STEP_PREVIEWED, {"step": number, "command": step_command(state, runbook, step)})]


def start_step(state: RunState, runbook: Runbook, number: int, *, typed: str | None = None) -> list[Change]:
    """Start a command step: [confirmed,] started. The caller then runs it.

    Args:
        typed: what the operator typed, when the step needs a confirmation.

    Raises:
        RunbookRefused: not the step's turn (an earlier step has not succeeded
            or been skipped), another step running, the step already
            started (retry it), a check or note step, or a confirmation
            missing or different.
    """
    step, record = _step(state, runbook, number)
    if step.kind != "command":
        verb = "tick its checks" if step.kind == "check" else "acknowledge it"
        raise RunbookRefused(f"step {number} ({step.title}) has no command: {verb}")
    if record.status in _STOPPED or record.status == "running":
        raise RunbookRefused(f"step {number} ({step.title}) already ran ({record.status}); retry it or skip it")
    if record.status in _DONE:
        raise RunbookRefused(f"step {number} ({step.title}) is {record.status}")
    rollback_of = _turn_or_rollback(state, runbook, number)
    return [
        *_confirmation(state, runbook, step, typed),
        _step_started_change(state, runbook, step, attempt=record.attempts + 1, rollback_of=rollback_of),
    ]


def retry_step(
    state: RunState, runbook: Runbook, number: int, *, typed: str | None = None,
    reason: str | None = None, live: bool = False,
) -> list[Change]:
    """Run a stopped step again (failed, timed out, cancelled, interrupted).

    An interrupted step (started, no runner alive: ``live`` False) may have
    run; it runs again only with a typed ``reason``, and its old attempt is
    first recorded as interrupted.

    Raises:
        RunbookRefused: the step has not stopped (or still runs, ``live``),
            no reason for an interrupted step, or the confirmation is
            missing or different.
    """
    step, record = _step(state, runbook, number)
    status = state.step_status(number, live=live)
    if status == "running":
        raise RunbookRefused(f"step {number} ({step.title}) is still running; cancel it first")
    if status not in _STOPPED:
        raise RunbookRefused(f"step {number} ({step.title}) is {status}; only a stopped step is retried")
    text = _text(reason)
    if status == "interrupted" and not text:
        raise RunbookRefused(
            f"step {number} ({step.title}) was interrupted: it may have run. It runs again only "
            "with a typed reason"
        )
    rollback_of = _turn_or_rollback(state, runbook, number)
    changes = list(_confirmation(state, runbook, step, typed))
    if record.status == "running":  # interrupted, as yet unrecorded
        changes.insert(0, (STEP_FAILED, {
            "step": number, "outcome": "interrupted", "exit_code": None, "duration": None,
            "error": _INTERRUPTED_ERROR, "excerpt": record.excerpt,
        }))
    changes.append(_step_started_change(
        state, runbook, step, attempt=record.attempts + 1, reason=text, rollback_of=rollback_of
    ))
    return changes


def record_output(state: RunState, number: int, excerpt: str) -> list[Change]:
    """An excerpt of a running step's output so far (for other consoles, and a crash)."""
    _running(state, number)
    return [(STEP_OUTPUT, {"step": number, "excerpt": _bounded(excerpt)})]


def finish_step(state: RunState, number: int, *, duration: float, excerpt: str = "") -> list[Change]:
    """The running step exited 0 after ``duration`` seconds."""
    _running(state, number)
    return [(STEP_FINISHED, {
        "step": number, "exit_code": 0, "duration": _seconds(duration), "excerpt": _bounded(excerpt),
    })]


def fail_step(
    state: RunState, number: int, *, outcome: FailOutcome, duration: float | None, error: str,
    excerpt: str = "", exit_code: int | None = None,
) -> list[Change]:
    """The running step failed (a non-zero exit, or it could not start), timed out, was
    cancelled, or is recorded as interrupted. The run stops at it."""
    _running(state, number)
    if outcome not in _FAIL_OUTCOMES:
        raise RunbookRefused(f"{outcome!r} is not a way a step fails ({', '.join(_FAIL_OUTCOMES)})")
    return [(STEP_FAILED, {
        "step": number, "outcome": outcome, "exit_code": exit_code,
        "duration": None if duration is None else _seconds(duration), "error": error,
        "excerpt": _bounded(excerpt),
    })]


def tick_check(state: RunState, runbook: Runbook, number: int, item: str | int) -> list[Change]:
    """Tick one item (its text, or its 1-based position) of the current check step; the
    last tick also finishes the step."""
    step, record = _step(state, runbook, number)
    if step.kind != "check":
        raise RunbookRefused(f"step {number} ({step.title}) has no checks")
    if record.status in _DONE:
        raise RunbookRefused(f"step {number} ({step.title}) is {record.status}")
    _turn(state, number)
    if isinstance(item, int):
        if not 1 <= item <= len(step.checks):
            raise RunbookRefused(f"step {number} has {len(step.checks)} checks, not {item}")
        item = step.checks[item - 1]
    if item not in step.checks:
        raise RunbookRefused(f"step {number} has no check {item!r}")
    if item in record.ticked:
        raise RunbookRefused(f"{item!r} is already ticked")
    changes: list[Change] = [(CHECK_TICKED, {"step": number, "item": item})]
    if set(step.checks) <= {*record.ticked, item}:
        changes.append((STEP_FINISHED, {"step": number, "exit_code": None, "duration": None, "excerpt": ""}))
    return changes


def acknowledge_step(state: RunState, runbook: Runbook, number: int) -> list[Change]:
    """The operator read the current note step: it succeeds."""
    step, record = _step(state, runbook, number)
    if step.kind != "note":
        raise RunbookRefused(f"step {number} ({step.title}) is a {step.kind} step, not a note")
    if record.status in _DONE:
        raise RunbookRefused(f"step {number} ({step.title}) is {record.status}")
    _turn(state, number)
    return [(STEP_FINISHED, {"step": number, "exit_code": None, "duration": None, "excerpt": ""})]


def skip_step(state: RunState, number: int, reason: str, *, live: bool = False) -> list[Change]:
    """Skip the current step, with a reason (also a stopped or interrupted one)."""
    _active(state)
    record = _record(state, number)
    if not _text(reason):
        raise RunbookRefused("skipping a step needs a reason")
    status = state.step_status(number, live=live)
    if status == "running":
        raise RunbookRefused(f"step {number} ({record.title}) is running; cancel it first")
    if status in _DONE:
        raise RunbookRefused(f"step {number} ({record.title}) is already {status}")
    _turn(state, number)
    return [(STEP_SKIPPED, {"step": number, "reason": _text(reason)})]


def finish_run(state: RunState) -> list[Change]:
    """Close the run once every step succeeded or was skipped."""
    _active(state)
    left = [s for s in state.steps if s.status not in _DONE]
    if left:
        first = left[0]
        raise RunbookRefused(
            f"step {first.number} ({first.title}) is {first.status}; "
            f"{len(left)} step{'s' if len(left) > 1 else ''} left (skip with a reason to finish)"
        )
    return [(RUN_FINISHED, {})]


def abandon_run(state: RunState, reason: str, *, live: bool = False) -> list[Change]:
    """Stop the run for good, with a reason; an interrupted step stays interrupted."""
    _active(state)
    if not _text(reason):
        raise RunbookRefused("abandoning a run needs a reason")
    running = state.running_step
    if running is not None and live:
        raise RunbookRefused(f"step {running} is running; cancel it first")
    return [(RUN_ABANDONED, {"reason": _text(reason)})]


# --- decider helpers -------------------------------------------------------------------------


def _active(state: RunState) -> None:
    if state.lifecycle == "pending":
        raise RunbookRefused(f"run {state.run_id} has not started")
    if state.lifecycle != "active":
        raise RunbookRefused(f"run {state.run_id} is {state.lifecycle}")


def _record(state: RunState, number: int) -> StepRecord:
    try:
        return state.record(number)
    except KeyError as e:
        raise RunbookRefused(str(e.args[0])) from None


def _step(state: RunState, runbook: Runbook, number: int) -> tuple[Step, StepRecord]:
    """The step's definition and record, once the runbook is the one the run started with."""
    _active(state)
    if runbook.name != state.runbook or runbook.version != state.runbook_version:
        raise RunbookRefused(
            f"{runbook.name} changed since run {state.run_id} started (version "
            f"{state.runbook_version[:12]}, now {runbook.version[:12]}); start a new run to use it"
        )
    record = _record(state, number)
    return runbook.step(number), record


def _turn(state: RunState, number: int) -> None:
    """Refused unless every earlier step is done and no step runs."""
    for record in state.steps[: number - 1]:
        if record.status not in _DONE:
            status = state.step_status(record.number)
            advice = "retry it" if status in _STOPPED else "do it first,"
            raise RunbookRefused(
                f"step {record.number} ({record.title}) is {status.replace('_', ' ')}: "
                f"{advice} or skip it with a reason"
            )
    running = state.running_step
    if running is not None and running != number:
        raise RunbookRefused(f"step {running} is running")


def _turn_or_rollback(state: RunState, runbook: Runbook, number: int) -> int | None:
    """None when it is the step's turn; the failed step's number when the step is that
    step's ``conn.rollback`` (it may run out of turn); refused otherwise."""
    offered = rollback_offer(state, runbook)
    if offered == number:
        return state.current_step
    _turn(state, number)
    return None


def _running(state: RunState, number: int) -> None:
    _active(state)
    record = _record(state, number)
    if record.status != "running":
        raise RunbookRefused(f"step {number} ({record.title}) is not running ({record.status})")


def _confirmation(state: RunState, runbook: Runbook, step: Step, typed: str | None) -> list[Change]:
    wanted = step.confirmation
    if wanted is None:
        return []
    expected = _resolve(state, runbook, wanted)
    if typed is None or typed == "":
        what = "is dangerous" if step.dangerous else "needs a confirmation"
        raise RunbookRefused(f"step {step.number} ({step.title}) {what}: type {expected!r} to run it")
    if typed != expected:
        raise RunbookRefused(f"what was typed is not {expected!r}; step {step.number} did not run")
    return [(STEP_CONFIRMED, {"step": step.number})]


def _step_started_change(
    state: RunState, runbook: Runbook, step: Step, *, attempt: int, reason: str | None = None,
    rollback_of: int | None = None,
) -> Change:
    return (STEP_STARTED, {
        "step": step.number, "command": step_command(state, runbook, step), "attempt": attempt,
        "retry_reason": reason, "rollback_of": rollback_of,
    })


def _resolve(state: RunState, runbook: Runbook, text: str) -> str:
    try:
        return resolve(text, state.vars, leave=runbook.secret_variables)
    except MissingVariables as e:  # the run recorded every variable of this runbook version
        raise RunbookRefused(f"run {state.run_id} has no value for {', '.join(e.names)}") from None


def _bounded(text: str) -> str:
    if len(text) <= MAX_EXCERPT:
        return text
    half = MAX_EXCERPT // 2
    return f"{text[:half]}\n… {len(text) - 2 * half:,} characters omitted …\n{text[-half:]}"


def _seconds(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise RunbookRefused(f"a duration of {value!r} seconds is not possible")
    return float(value)


def _text(value: str | None) -> str | None:
    """``value`` stripped, or None when it is missing or blank."""
    return (value.strip() or None) if value is not None else None
