"""Staged rollouts: the state machine, folded from the events of ``rollout/<name>``.

A rollout's state is never stored; it is the fold of its stream, so the
audit log, multi-console sync and crash recovery are the one mechanism the
architecture asks for. Two kinds of function live here, both pure:

* **Deciders** (:func:`start`, :func:`advance`, :func:`hold`, :func:`resume`,
  :func:`rollback`, :func:`finish_rollback`, :func:`complete`, and the action
  builders) take a state and return the ``(type, payload)`` pairs to append,
  or raise :class:`RolloutRefused` with a sentence for the operator. The
  engine appends each pair as ``NewEvent(type, payload, reason=<the
  command's reason>)``: actor and reason live on the event, not the payload.
* **Views** (:func:`status`, :func:`pending_actions`, :func:`auto_advance_due`)
  read a state with the plan (the config) and ``now``; "ready" (the bake time
  has passed) and an expired hold are derived here, never events.

Lifecycle of a run: started → stage 1 … stage N (each baking, then ready) →
complete; from any active stage, or after completing, a rollback (rolling
back → rolled back). A hold is an overlay on the current stage: it stops
advances, while gates and abort criteria keep running and rollback stays
reachable. A complete or rolled-back rollout starts again as run N+1.

Each stage's flag audience and actions, and the rollback's, are *planned
actions* with ids (``run2/stage3/flag``); their started / finished / failed
events make a crash visible: after a fold, an action that started and did not
finish shows as ``running``, with whether it is safe to run again.

The stage names are recorded when a run starts; if the config's stages change
under a running run, advancing is refused (roll back, start a new run) rather
than guess which stage is which. Bake times, criteria and actions are read
from the config as it is now.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from console.model.events import Event
from console.model.events import payload_error as _bad
from console.model.events import payload_strings as _strings
from console.model.events import payload_value as _get
from console.model.rollout_config import (
    ROLLOUT_STREAM,
    AdvanceMode,
    CommandAction,
    RolloutConfig,
    RolloutsConfig,
    WebhookAction,
    check_rollout_name,
    stage_audience,
)

__all__ = [
    "ACTION_FAILED", "ACTION_FINISHED", "ACTION_STARTED", "EVENT_TYPES", "ROLLBACK_FINISHED",
    "ROLLBACK_STARTED", "ROLLOUT_ADVANCED", "ROLLOUT_COMPLETED", "ROLLOUT_HELD", "ROLLOUT_RESUMED",
    "ROLLOUT_STARTED", "ROLLOUT_STREAM", "STAGE_ENTERED", "ActionRecord", "ActionView", "Change",
    "Hold", "Lifecycle", "Phase", "PlannedAction", "Rollback", "RolloutConfig", "RolloutRefused",
    "RolloutState", "RolloutView", "RolloutsConfig", "Stage", "Transition", "action_failed",
    "action_finished", "action_started", "advance", "auto_advance_due", "complete",
    "finish_rollback", "fold", "hold", "hold_expired", "pending_actions", "planned_actions",
    "resume", "rollback", "stage_audience", "start", "status",
]

ROLLOUT_STARTED = "RolloutStarted"
STAGE_ENTERED = "StageEntered"
ROLLOUT_ADVANCED = "RolloutAdvanced"
ROLLOUT_HELD = "RolloutHeld"
ROLLOUT_RESUMED = "RolloutResumed"
ROLLBACK_STARTED = "RollbackStarted"
ROLLBACK_FINISHED = "RollbackFinished"
ROLLOUT_COMPLETED = "RolloutCompleted"
ACTION_STARTED = "ActionStarted"
ACTION_FINISHED = "ActionFinished"
ACTION_FAILED = "ActionFailed"
EVENT_TYPES = frozenset({
    ROLLOUT_STARTED, STAGE_ENTERED, ROLLOUT_ADVANCED, ROLLOUT_HELD, ROLLOUT_RESUMED,
    ROLLBACK_STARTED, ROLLBACK_FINISHED, ROLLOUT_COMPLETED, ACTION_STARTED, ACTION_FINISHED,
    ACTION_FAILED,
})

Lifecycle = Literal["pending", "active", "rolling_back", "rolled_back", "complete"]
Phase = Literal[
    "pending", "baking", "ready", "held", "rolling_back", "rolled_back", "complete", "action_failed"
]
Change = tuple[str, dict[str, Any]]
"""An event to append: its type and payload."""


class RolloutRefused(ValueError):
    """A command the state does not allow; the message is for the operator."""


# --- state -------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """Who did what, when and why: the record every transition leaves."""

    what: str
    by: str
    at: float
    why: str


@dataclass(frozen=True)
class Hold:
    """An operator's (or a policy's) hold on the current stage."""

    reason: str
    by: str
    since: float
    until: float | None
    """When it lifts by itself; None: until someone resumes."""

    def in_effect(self, now: float) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True)
class Stage:
    """The stage a run is in, as entered."""

    index: int
    """0-based; people read ``index + 1`` ("stage 2")."""
    name: str
    percent: float
    entered_at: float
    entered_by: str

    @property
    def label(self) -> str:
        return f"stage {self.index + 1} ({self.name})"


@dataclass(frozen=True)
class Rollback:
    """Why and how a run is being (or was) rolled back."""

    reason: str
    by: str
    started_at: float
    automatic: bool
    criterion: str | None
    evidence: Mapping[str, Any] | None
    finished_at: float | None = None
    accepted_failures: tuple[str, ...] = ()
    """Failed actions a person accepted when finishing the rollback."""


ActionStatus = Literal["running", "finished", "failed"]


@dataclass(frozen=True)
class ActionRecord:
    """An action of the current run, as its events tell it."""

    id: str
    kind: str
    description: str
    idempotent: bool
    status: ActionStatus
    """"running": started and not ended; after a crash, it may or may not have run."""
    attempts: int
    started_at: float
    started_by: str
    ended_at: float | None = None
    detail: str = ""
    """The failure, or what it did."""


@dataclass(frozen=True)
class RolloutState:
    """One rollout, folded from ``rollout/<name>``; ``apply`` returns a new state."""

    name: str
    version: int = 0
    """The stream's version, counting every event (even unknown types): the next append expects it."""
    run: int = 0
    """Runs count from 1; 0 means never started."""
    lifecycle: Lifecycle = "pending"
    stage_names: tuple[str, ...] = ()
    """The stages as the run started (a config that changes them cannot be advanced)."""
    stage: Stage | None = None
    hold: Hold | None = None
    """The latest hold; it may have expired (see :meth:`held_at`)."""
    rollback: Rollback | None = None
    actions: Mapping[str, ActionRecord] = field(default_factory=dict)
    """This run's actions by id."""
    overrides: tuple[Transition, ...] = ()
    """This run's advances over a failing gate."""
    last: Transition | None = None

    @property
    def stream(self) -> str:
        return ROLLOUT_STREAM + self.name

    def held_at(self, now: float) -> Hold | None:
        """The hold in effect at ``now``, or None (none, or it expired)."""
        return self.hold if self.hold is not None and self.hold.in_effect(now) else None

    def apply(self, event: Event) -> RolloutState:
        """Fold one event; other streams, unknown types, older runs and seen versions change nothing.

        Raises:
            ValueError: the payload is unreadable, or the event cannot follow
                this state (a log no decider wrote).
        """
        if event.stream != self.stream or event.version <= self.version:
            return self
        state = replace(self, version=event.version)
        step = _STEPS.get(event.type)
        if step is None:
            return state
        payload = event.payload
        if not isinstance(payload, Mapping):
            raise _bad(event, "has no payload")
        run = _get(event, "run", int)
        if run < 1:
            raise _bad(event, f"names run {run}; runs count from 1")
        if event.type != ROLLOUT_STARTED:
            if run < state.run:
                return state  # late news of an earlier run (its action ending)
            if run > state.run:
                raise _bad(event, f"is for run {run}, which has not started")
        return step(state, event, payload)


def fold(name: str, events: Iterable[Event], start: RolloutState | None = None) -> RolloutState:
    """The state of rollout ``name`` after ``events`` (any streams, in log order)."""
    state = start or RolloutState(check_rollout_name(name))
    for event in events:
        state = state.apply(event)
    return state


def _need(event: Event, state: RolloutState, *lifecycles: Lifecycle) -> None:
    if state.lifecycle not in lifecycles:
        raise _bad(event, f"cannot follow a {state.lifecycle.replace('_', ' ')} run {state.run}")


def _started(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    run = _get(event, "run", int)
    if state.lifecycle in ("active", "rolling_back"):
        raise _bad(event, f"while run {state.run} is still {state.lifecycle.replace('_', ' ')}")
    if run != state.run + 1:
        raise _bad(event, f"starts run {run} after run {state.run}")
    names = _strings(event, "stages")
    if not names:
        raise _bad(event, "has no stages")
    return RolloutState(
        name=state.name, version=state.version, run=run, lifecycle="active", stage_names=names,
        last=Transition(f"started run {run}", event.actor, event.time, event.reason),
    )


def _entered(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    _need(event, state, "active")
    index = _get(event, "index", int)
    expected = 0 if state.stage is None else state.stage.index + 1
    if index != expected or index >= len(state.stage_names):
        raise _bad(event, f"enters stage index {index}; the next is {expected} of {len(state.stage_names)}")
    name = _get(event, "name", str)
    if name != state.stage_names[index]:
        raise _bad(event, f"names stage {index} {name!r}; run {state.run} calls it {state.stage_names[index]!r}")
    percent = float(_get(event, "percent", (int, float)))
    if not 0 <= percent <= 100:
        raise _bad(event, f"sets {percent:g}%, outside 0–100%")
    for key in ("groups", "allow"):
        _strings(event, key)  # the audience is the flag's business; it must still be readable
    # The decider judged any hold; a hold left over here had expired.
    stage = Stage(index, name, percent, event.time, event.actor)
    return replace(state, stage=stage, hold=None)


def _advanced(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    _need(event, state, "active")
    start = _get(event, "from_index", int)
    if state.stage is None or start != state.stage.index:
        raise _bad(event, f"advances from stage index {start}, which is not the current stage")
    target = _get(event, "to_index", int, optional=True)
    if target is not None and target != start + 1:
        raise _bad(event, f"skips from stage index {start} to {target}")
    override = _get(event, "override", str, optional=True)
    if target is not None and target < len(state.stage_names):
        what = f"advanced from {state.stage.label} to stage {target + 1} ({state.stage_names[target]})"
    else:
        what = f"advanced from {state.stage.label} to complete"
    if _get(event, "automatic", bool):
        what += " (automatic)"
    transition = Transition(what, event.actor, event.time, event.reason)
    overrides = state.overrides
    if override is not None:
        transition = replace(transition, what=f"{what}, over a failing gate: {override}")
        overrides = (*overrides, transition)
    return replace(state, last=transition, overrides=overrides, hold=None)


def _held(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    _need(event, state, "active")
    until = _get(event, "until", (int, float), optional=True)
    hold = Hold(event.reason, event.actor, event.time, None if until is None else float(until))
    return replace(state, hold=hold, last=Transition("held", event.actor, event.time, event.reason))


def _resumed(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    _need(event, state, "active")
    if state.hold is None:
        raise _bad(event, "but the rollout is not held")
    what = "hold expired" if _get(event, "expired", bool) else "resumed"
    return replace(state, hold=None, last=Transition(what, event.actor, event.time, event.reason))


def _rollback_started(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    _need(event, state, "active", "complete")
    automatic = _get(event, "automatic", bool)
    criterion = _get(event, "criterion", str, optional=True)
    evidence = _get(event, "evidence", Mapping, optional=True)
    record = Rollback(event.reason, event.actor, event.time, automatic, criterion, evidence)
    what = "rollback started"
    if automatic:
        what += f" (automatic: {criterion})" if criterion else " (automatic)"
    return replace(
        state, lifecycle="rolling_back", hold=None, rollback=record,
        last=Transition(what, event.actor, event.time, event.reason),
    )


def _rollback_finished(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    _need(event, state, "rolling_back")
    assert state.rollback is not None  # set with lifecycle "rolling_back"
    accepted = _strings(event, "accepted_failures")
    record = replace(state.rollback, finished_at=event.time, accepted_failures=accepted)
    return replace(
        state, lifecycle="rolled_back", rollback=record,
        last=Transition("rolled back", event.actor, event.time, event.reason),
    )


def _completed(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    _need(event, state, "active")
    if state.stage is None or state.stage.index != len(state.stage_names) - 1:
        raise _bad(event, "before the last stage")
    return replace(
        state, lifecycle="complete", hold=None,
        last=Transition(f"completed run {state.run}", event.actor, event.time, event.reason),
    )


def _action_started(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    action = _get(event, "action", str)
    before = state.actions.get(action)
    if before is not None and before.status == "finished":
        raise _bad(event, f"for {action}, which already finished")
    record = ActionRecord(
        id=action, kind=_get(event, "kind", str), description=_get(event, "description", str),
        idempotent=_get(event, "idempotent", bool), status="running",
        attempts=(before.attempts if before else 0) + 1, started_at=event.time, started_by=event.actor,
    )
    return replace(state, actions={**state.actions, action: record})


def _action_ended(state: RolloutState, event: Event, payload: Mapping[str, Any]) -> RolloutState:
    action = _get(event, "action", str)
    before = state.actions.get(action)
    if before is None or before.status != "running":
        raise _bad(event, f"for {action}, which is not running")
    failed = event.type == ACTION_FAILED
    detail = _get(event, "error" if failed else "detail", str)
    record = replace(before, status="failed" if failed else "finished", ended_at=event.time, detail=detail)
    return replace(state, actions={**state.actions, action: record})


_STEPS = {
    ROLLOUT_STARTED: _started, STAGE_ENTERED: _entered, ROLLOUT_ADVANCED: _advanced,
    ROLLOUT_HELD: _held, ROLLOUT_RESUMED: _resumed, ROLLBACK_STARTED: _rollback_started,
    ROLLBACK_FINISHED: _rollback_finished, ROLLOUT_COMPLETED: _completed,
    ACTION_STARTED: _action_started, ACTION_FINISHED: _action_ended, ACTION_FAILED: _action_ended,
}


# --- planned actions ---------------------------------------------------------


@dataclass(frozen=True)
class PlannedAction:
    """Something the current step must do: set the flag, run a command, call a webhook."""

    id: str
    """Stable across leaders: ``run2/stage3/flag``, ``run2/stage3/action1``, ``run2/rollback/action1``."""
    kind: Literal["flag", "run", "webhook"]
    description: str
    idempotent: bool
    spec: CommandAction | WebhookAction | None = None
    """The command or webhook; None for the flag."""
    audience: tuple[float, tuple[str, ...], tuple[str, ...]] | None = None
    """For the flag: (percent, groups, allow); (0, (), ()) on rollback, off for everyone."""


def planned_actions(state: RolloutState, plan: RolloutConfig) -> tuple[PlannedAction, ...]:
    """The actions of the current step, in order: the stage's on entry, or the rollback's."""
    step = _step(state, plan)
    if step is None:
        return ()
    if state.lifecycle == "active":
        assert state.stage is not None  # _step has a stage step only with a stage
        audience = stage_audience(plan, state.stage.index)
        specs = plan.stages[state.stage.index].actions
        percent, groups, allow = audience
        keys = [f"+{len(allow)} keys"] if allow else []
        shown = " ".join([f"{percent:g}%", *(f"+{g}" for g in groups), *keys])
    else:
        audience, specs, shown = (0.0, (), ()), plan.on_rollback.actions, "off for everyone"
    planned = []
    if plan.flag is not None:
        planned.append(PlannedAction(
            f"{step}/flag", "flag", f"flag {plan.flag} → {shown}", True, audience=audience
        ))
    for number, spec in enumerate(specs, start=1):
        kind: Literal["run", "webhook"] = "run" if isinstance(spec, CommandAction) else "webhook"
        planned.append(PlannedAction(f"{step}/action{number}", kind, spec.describe(), spec.idempotent, spec=spec))
    return tuple(planned)


@dataclass(frozen=True)
class ActionView:
    """An action of the current step that has not finished."""

    id: str
    kind: str
    description: str
    idempotent: bool
    status: Literal["not_started", "running", "failed"]
    attempts: int = 0
    started_at: float | None = None
    error: str = ""

    @property
    def needs_confirmation(self) -> bool:
        """Started, not finished, not safe twice: only a person may run it again."""
        return self.status == "running" and not self.idempotent


def _step(state: RolloutState, plan: RolloutConfig) -> str | None:
    """The id prefix of the current step's actions, or None when there is no step."""
    if state.lifecycle in ("rolling_back", "rolled_back"):
        return f"run{state.run}/rollback"
    if state.lifecycle == "active" and state.stage is not None and state.stage.index < len(plan.stages):
        return f"run{state.run}/stage{state.stage.index + 1}"
    return None


def pending_actions(state: RolloutState, plan: RolloutConfig) -> tuple[ActionView, ...]:
    """What blocks the current step: its planned actions not yet finished, in order, and
    any action of this run still running (whatever step started it: its outcome is unknown).

    A failed action of an earlier step no longer blocks (a rollback supersedes it).
    """
    views = []
    planned = planned_actions(state, plan)
    for action in planned:
        if action.id not in state.actions:
            views.append(ActionView(
                action.id, action.kind, action.description, action.idempotent, "not_started"
            ))
    step = _step(state, plan)
    for r in state.actions.values():
        if r.status == "running" or (r.status == "failed" and step and r.id.startswith(step + "/")):
            status: Literal["running", "failed"] = r.status
            views.append(ActionView(
                r.id, r.kind, r.description, r.idempotent, status, r.attempts, r.started_at,
                r.detail if status == "failed" else "",
            ))
    order = {action.id: number for number, action in enumerate(planned)}
    return tuple(sorted(views, key=lambda v: order.get(v.id, len(order))))


def action_started(
    state: RolloutState, action: PlannedAction, *, retry_reason: str | None = None
) -> Change:
    """The event that records ``action`` starting (a first run or a retry).

    Raises:
        RolloutRefused: it already finished; or it started before and did not
            finish, is not idempotent, and no person gave a reason to run it again.
    """
    if state.run == 0:
        raise RolloutRefused(f"{state.name} has not started")
    before = state.actions.get(action.id)
    if before is not None and before.status == "finished":
        raise RolloutRefused(f"{action.description} already finished; an action runs once")
    safe_twice = action.idempotent and (before is None or before.idempotent)  # as promised when it started
    if before is not None and before.status == "running" and not safe_twice and not _text(retry_reason):
        raise RolloutRefused(
            f"{action.description} started and did not finish: it may have run. It is not "
            "idempotent, so it runs again only when a person says so (retry with a typed reason)"
        )
    return ACTION_STARTED, {
        "rollout": state.name, "run": state.run, "action": action.id, "kind": action.kind,
        "description": action.description, "idempotent": action.idempotent,
        "attempt": (before.attempts if before else 0) + 1, "retry_reason": _text(retry_reason),
    }


def action_finished(state: RolloutState, action_id: str, *, detail: str = "") -> Change:
    """The event that records a running action's success."""
    _running(state, action_id)
    return ACTION_FINISHED, {"rollout": state.name, "run": state.run, "action": action_id, "detail": detail}


def action_failed(state: RolloutState, action_id: str, *, error: str) -> Change:
    """The event that records a running action's failure (or that it was interrupted)."""
    _running(state, action_id)
    return ACTION_FAILED, {"rollout": state.name, "run": state.run, "action": action_id, "error": error}


def _running(state: RolloutState, action_id: str) -> None:
    record = state.actions.get(action_id)
    if record is None or record.status != "running":
        raise RolloutRefused(f"action {action_id} is not running")


# --- deciders ----------------------------------------------------------------


def start(state: RolloutState, plan: RolloutConfig) -> list[Change]:
    """Start run N+1 in its first stage."""
    if state.lifecycle in ("active", "rolling_back"):
        where = state.stage.label if state.stage else "starting"
        raise RolloutRefused(
            f"run {state.run} is still {'active' if state.lifecycle == 'active' else 'rolling back'} "
            f"({where}); complete it or roll it back first"
        )
    run = state.run + 1
    names = [stage.name for stage in plan.stages]
    return [
        (ROLLOUT_STARTED, {"rollout": state.name, "run": run, "stages": names, "flag": plan.flag}),
        _stage_entered(state.name, run, plan, 0),
    ]


def advance(
    state: RolloutState, plan: RolloutConfig, now: float, *, gate_passing: bool,
    override: str | None = None, gate_failure: str = "", automatic: bool = False,
) -> list[Change]:
    """Leave the current stage for the next one (or complete, from the last).

    Args:
        gate_passing: the stage's gate passes now (the engine's verdict).
        override: a person's reason to advance over a failing gate; recorded.
        gate_failure: what fails, for the refusal ("error_rate 7.1% > 0.1%").
        automatic: the leader advancing by itself (``advance = "auto"``).

    Raises:
        RolloutRefused: not active, held, the config's stages changed, the
            stage's actions have not all finished, still baking, or the gate
            fails without an override.
    """
    stage = _active_stage(state, "advance")
    if hold := state.held_at(now):
        raise RolloutRefused(f"{_held_text(hold, now)}; resume first")
    _same_stages(state, plan)
    if stage is None:  # a log cut between starting and entering (not written by ``start``)
        return [_stage_entered(state.name, state.run, plan, 0)]
    _actions_done(state, plan, stage.label)
    reason = _text(override)
    if automatic and (reason or plan.advance_mode(stage.index) != "auto"):
        raise RolloutRefused(
            "an automatic advance never overrides" if reason
            else f"{stage.label} advances by hand (advance = \"manual\")"
        )
    if (left := _bake_left(state, plan, now)) > 0:
        raise RolloutRefused(f"{stage.label} is still baking: {_span(left)} left")
    if not gate_passing and not reason:
        because = f": {gate_failure}" if gate_failure else ""
        raise RolloutRefused(f"the gate fails{because}; override with a typed reason")
    last = stage.index + 1 >= len(plan.stages)
    changes: list[Change] = [(ROLLOUT_ADVANCED, {
        "rollout": state.name, "run": state.run, "from_index": stage.index,
        "to_index": None if last else stage.index + 1, "automatic": automatic,
        "override": None if gate_passing else reason,
        "gate_failure": None if gate_passing else gate_failure,
    })]
    if last:
        changes.append((ROLLOUT_COMPLETED, {"rollout": state.name, "run": state.run}))
    else:
        changes.append(_stage_entered(state.name, state.run, plan, stage.index + 1))
    return changes


def complete(
    state: RolloutState, plan: RolloutConfig, now: float, *, gate_passing: bool,
    override: str | None = None, gate_failure: str = "", automatic: bool = False,
) -> list[Change]:
    """Advance out of the last stage: the run is complete. Refused from any other stage."""
    stage = _active_stage(state, "complete")
    if stage is None or stage.index != len(state.stage_names) - 1:
        where = stage.label if stage else "no stage yet"
        raise RolloutRefused(
            f"only the last stage completes ({where} of {len(state.stage_names)}); advance instead"
        )
    return advance(
        state, plan, now, gate_passing=gate_passing, override=override,
        gate_failure=gate_failure, automatic=automatic,
    )


def hold(state: RolloutState, now: float, reason: str, until: float | None = None) -> list[Change]:
    """Hold the current stage (no advances) until someone resumes, or until ``until``.

    ``reason`` is checked here and recorded as the event's reason (pass the
    same text to ``NewEvent``); gates and abort criteria keep running.
    """
    _active_stage(state, "hold")
    if not _text(reason):
        raise RolloutRefused("a hold needs a reason")
    if existing := state.held_at(now):
        raise RolloutRefused(f"already {_held_text(existing, now)}")
    if until is not None and until <= now:
        raise RolloutRefused("the hold would end before it starts; give a later time")
    return [(ROLLOUT_HELD, {"rollout": state.name, "run": state.run, "until": until})]


def resume(state: RolloutState, now: float) -> list[Change]:
    """Lift the hold; also how the leader records that a hold expired."""
    _active_stage(state, "resume")
    if state.hold is None:
        raise RolloutRefused(f"{state.name} is not held")
    expired = not state.hold.in_effect(now)
    return [(ROLLOUT_RESUMED, {"rollout": state.name, "run": state.run, "expired": expired})]


def rollback(
    state: RolloutState, reason: str, *, automatic: bool = False,
    criterion: str | None = None, evidence: Mapping[str, Any] | None = None,
) -> list[Change]:
    """Start rolling back: from any stage, held or not, and from a completed run.

    Refused only when the run is already rolling back or rolled back (a
    second rollback of the same run does nothing), and before any run.
    """
    if state.run == 0:
        raise RolloutRefused(f"{state.name} has never been started; there is nothing to roll back")
    if state.lifecycle == "rolling_back":
        assert state.rollback is not None
        raise RolloutRefused(f"already rolling back (run {state.run}), started by {state.rollback.by}")
    if state.lifecycle == "rolled_back":
        raise RolloutRefused(f"already rolled back (run {state.run}); start a new run")
    if not _text(reason):
        raise RolloutRefused("a rollback needs a reason")
    return [(ROLLBACK_STARTED, {
        "rollout": state.name, "run": state.run, "automatic": automatic, "criterion": criterion,
        "evidence": dict(evidence) if evidence is not None else None,
        "from_index": state.stage.index if state.stage else None,
    })]


def finish_rollback(
    state: RolloutState, plan: RolloutConfig, *, accept_failed: str | None = None
) -> list[Change]:
    """Mark the rollback done once its actions have finished.

    Args:
        accept_failed: a person's reason to finish although an action
            failed; the failed actions are recorded with it.
    """
    if state.lifecycle == "rolled_back":
        raise RolloutRefused(f"already rolled back (run {state.run}); start a new run")
    if state.lifecycle != "rolling_back":
        raise RolloutRefused(f"{state.name} is not rolling back")
    pending = pending_actions(state, plan)
    if blocking := [a for a in pending if a.status != "failed"]:
        raise RolloutRefused(f"the rollback is still working: {_actions_text(blocking)}")
    failed = [a for a in pending if a.status == "failed"]
    if failed and not _text(accept_failed):
        raise RolloutRefused(
            f"a rollback action failed: {_actions_text(failed)}; retry it, or finish with a "
            "typed reason to accept the failure"
        )
    return [(ROLLBACK_FINISHED, {
        "rollout": state.name, "run": state.run, "accepted_failures": [a.id for a in failed],
        "accept_reason": _text(accept_failed) if failed else None,
    })]


def _stage_entered(name: str, run: int, plan: RolloutConfig, index: int) -> Change:
    percent, groups, allow = stage_audience(plan, index)
    return STAGE_ENTERED, {
        "rollout": name, "run": run, "index": index, "name": plan.stages[index].name,
        "percent": percent, "groups": list(groups), "allow": list(allow), "bake": plan.stages[index].bake,
    }


def _active_stage(state: RolloutState, verb: str) -> Stage | None:
    """The current stage of an active run; refused with where the rollout is otherwise."""
    if state.lifecycle == "active":
        return state.stage
    if state.run == 0:
        raise RolloutRefused(f"{state.name} has not started; start run 1 first")
    if state.lifecycle == "rolling_back":
        raise RolloutRefused(f"run {state.run} is rolling back; nothing to {verb}")
    if state.lifecycle == "rolled_back":
        raise RolloutRefused(f"already rolled back (run {state.run}); start a new run")
    raise RolloutRefused(f"run {state.run} is complete; nothing to {verb} (start a new run)")


def _same_stages(state: RolloutState, plan: RolloutConfig) -> None:
    now = tuple(stage.name for stage in plan.stages)
    if now != state.stage_names:
        raise RolloutRefused(
            f"the config's stages changed since run {state.run} started "
            f"({' → '.join(state.stage_names)}; now {' → '.join(now)}); "
            "roll back and start a new run to use them"
        )


def _actions_done(state: RolloutState, plan: RolloutConfig, label: str) -> None:
    pending = pending_actions(state, plan)
    if any(a.status == "failed" for a in pending):
        raise RolloutRefused(f"{label}: an action failed: {_actions_text(pending)}; retry it or roll back")
    if pending:
        raise RolloutRefused(f"{label}: actions have not finished: {_actions_text(pending)}")


def _bake_left(state: RolloutState, plan: RolloutConfig, now: float) -> float:
    stage = state.stage
    if stage is None or stage.index >= len(plan.stages):
        return 0.0
    return max(0.0, stage.entered_at + plan.stages[stage.index].bake - now)


def _held_text(hold: Hold, now: float) -> str:
    ends = f" (ends in {_span(hold.until - now)})" if hold.until is not None else ""
    return f"held by {hold.by}: {hold.reason}{ends}"


def _actions_text(actions: Iterable[ActionView]) -> str:
    words = {"not_started": "not started", "running": "running", "failed": "failed"}
    return "; ".join(
        f"{a.description} ({words[a.status]}{': ' + a.error if a.error else ''})" for a in actions
    )


def _text(value: str | None) -> str | None:
    """``value`` stripped, or None when it is missing or blank."""
    return (value.strip() or None) if value is not None else None


def _span(seconds: float) -> str:
    """Whole seconds, rounded up, in the two largest units: "3m 12s", "1h 5m", "45s"."""
    total = max(0, math.ceil(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
    return " ".join(parts[:2])


# --- views -------------------------------------------------------------------


def hold_expired(state: RolloutState, now: float) -> bool:
    """A hold whose ``until`` has passed and whose end nobody recorded yet (a leader duty)."""
    return state.lifecycle == "active" and state.hold is not None and not state.hold.in_effect(now)


def auto_advance_due(state: RolloutState, plan: RolloutConfig, now: float) -> bool:
    """The leader may advance by itself now, if the gate passes (``advance = "auto"``)."""
    stage = state.stage
    return (
        state.lifecycle == "active" and stage is not None and state.held_at(now) is None
        and tuple(s.name for s in plan.stages) == state.stage_names
        and plan.advance_mode(stage.index) == "auto" and _bake_left(state, plan, now) == 0
        and not pending_actions(state, plan)
    )


@dataclass(frozen=True)
class RolloutView:
    """What the UI and ``conn status --json`` show for one rollout."""

    name: str
    run: int
    phase: Phase
    stage_index: int | None
    stage_name: str | None
    stage_percent: float | None
    stage_count: int
    advance_mode: AdvanceMode | None
    """How the current stage is left; None outside a stage."""
    bake_remaining: float | None
    """Seconds until the stage may advance; None outside a stage."""
    held_reason: str | None
    held_by: str | None
    held_until: float | None
    last: Transition | None
    actions: tuple[ActionView, ...]
    """The current step's unfinished actions."""
    overrides: tuple[Transition, ...]
    rollback: Rollback | None
    stages_changed: bool
    """The config's stages differ from the run's: advancing is refused."""

    def as_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        data["actions"] = [{**asdict(a), "needs_confirmation": a.needs_confirmation} for a in self.actions]
        if self.rollback is not None:
            data["rollback"]["evidence"] = dict(self.rollback.evidence or {}) or None
        return data


def status(state: RolloutState, plan: RolloutConfig, now: float) -> RolloutView:
    """The rollout as a view, at ``now``."""
    stage = state.stage
    hold = state.held_at(now) if state.lifecycle == "active" else None
    actions = pending_actions(state, plan)
    changed = state.run > 0 and tuple(s.name for s in plan.stages) != state.stage_names
    phase: Phase
    if state.lifecycle in ("complete", "rolled_back"):
        phase = state.lifecycle
    elif any(a.status == "failed" for a in actions):
        phase = "action_failed"
    elif state.lifecycle == "rolling_back":
        phase = "rolling_back"
    elif stage is None:
        phase = "pending"
    elif hold is not None:
        phase = "held"
    else:
        phase = "ready" if _bake_left(state, plan, now) == 0 else "baking"
    in_stage = state.lifecycle == "active" and stage is not None and stage.index < len(plan.stages)
    return RolloutView(
        name=state.name, run=state.run, phase=phase,
        stage_index=stage.index if stage else None, stage_name=stage.name if stage else None,
        stage_percent=stage.percent if stage else None,
        stage_count=len(state.stage_names or plan.stages),
        advance_mode=plan.advance_mode(stage.index) if in_stage and stage else None,
        bake_remaining=_bake_left(state, plan, now) if in_stage else None,
        held_reason=hold.reason if hold else None, held_by=hold.by if hold else None,
        held_until=hold.until if hold else None, last=state.last, actions=actions,
        overrides=state.overrides, rollback=state.rollback, stages_changed=changed,
    )
