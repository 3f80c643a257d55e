"""Rollouts, the second projection: the fold of ``rollout/``, its commands, its criteria.

The state machine and its deciders are pure (:mod:`console.model.rollouts`);
the criteria are pure (:mod:`console.model.gates`). This module gives them
the engine's plumbing: a projection over ``rollout/<name>`` streams, command
types for the keys and the CLI (advance, hold, resume, roll back) and the
leader (progress: run the step's actions exactly once, finish a rollback),
and :class:`RolloutEvaluator`, which judges a rollout's criteria from the
signal history and the live rows — the same code whether the leader judges
each second or an operator's advance asks "does the gate pass now?".
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from console.actions.process import run_process
from console.actions.webhooks import call_webhook, render_body
from console.config import ConnConfig
from console.engine.commands import Command, CommandResult, Handler, is_automatic
from console.engine.flags import AllowFlagKeys, EnableFlag, KillFlag, SetFlagPercent
from console.engine.projections import ProjectionSet, append_and_fold
from console.errors import ActionError, CommandError, ConsoleError
from console.model.clock import Clock
from console.model.events import Actor, Event
from console.model.gates import (
    SERVICE,
    Criterion,
    Observations,
    Sample,
    Verdict,
    describe_budget,
    evaluate,
    live_sample,
    parse_criterion,
    service_series,
    signal_series,
    worst_case_detection,
)
from console.model.history import SLICE_SECONDS
from console.model.live import ServiceLive
from console.model.rollout_config import CommandAction, RolloutConfig, WebhookAction
from console.model.rollout_live import CriterionLive, RolloutLive
from console.model.rollouts import (
    ROLLOUT_STREAM,
    Change,
    PlannedAction,
    RolloutRefused,
    RolloutState,
    action_failed,
    action_finished,
    action_started,
    advance,
    finish_rollback,
    hold,
    pending_actions,
    planned_actions,
    resume,
    rollback,
    start,
)
from console.secrets import get_secret, redact
from console.store.base import EventStore

log = logging.getLogger(__name__)

EVALUATION_INTERVAL = 1.0
"""Seconds between the leader's evaluations of every active rollout."""

MAX_FINE = 3600
"""Most per-evaluation samples kept per signal (an hour at one a second)."""


# --- the projection --------------------------------------------------------------


class RolloutProjection:
    """Every configured rollout's state, folded from its stream."""

    prefix = ROLLOUT_STREAM

    def __init__(self, config: ConnConfig) -> None:
        self.config = config
        self.states: dict[str, RolloutState] = {name: RolloutState(name) for name in config.rollouts}

    def apply(self, event: Event) -> bool:
        name = event.stream.removeprefix(ROLLOUT_STREAM)
        before = self.states.get(name) or RolloutState(name)
        after = before.apply(event)
        self.states[name] = after
        return after is not before

    def state(self, name: str) -> RolloutState:
        """One rollout's state. Raises CommandError (with a suggestion) for an unknown name."""
        if name not in self.config.rollouts:
            from console.model.text import suggest

            known = ", ".join(sorted(self.config.rollouts)) or "none are configured ([rollouts.NAME])"
            raise CommandError(f"no rollout named {name!r}.{suggest(name, self.config.rollouts)} Rollouts: {known}")
        return self.states.get(name) or RolloutState(name)


# --- commands --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AdvanceRollout(Command):
    """Move to the next stage (or start a run, or complete from the last stage).

    Refused while the gate fails unless ``override`` gives a typed reason
    (recorded as an override).
    """

    rollout: str
    override: str | None = None

    @property
    def summary(self) -> str:
        return f"advance {self.rollout}" + (" over a failing gate" if self.override else "")


@dataclass(frozen=True, kw_only=True)
class HoldRollout(Command):
    """Hold the current stage: no advances (gates and abort criteria keep running)."""

    rollout: str
    until: float | None = None

    @property
    def summary(self) -> str:
        return f"hold {self.rollout}"


@dataclass(frozen=True, kw_only=True)
class ResumeRollout(Command):
    """Lift a hold."""

    rollout: str

    @property
    def summary(self) -> str:
        return f"resume {self.rollout}"


@dataclass(frozen=True, kw_only=True)
class RollbackRollout(Command):
    """Start rolling back: the flag off for everyone, then the rollback's actions."""

    rollout: str
    criterion: str | None = None
    evidence: Mapping[str, Any] | None = None

    @property
    def summary(self) -> str:
        return f"roll back {self.rollout}"


@dataclass(frozen=True, kw_only=True)
class RetryRolloutAction(Command):
    """Run a failed (or interrupted, not idempotent) action of the current step again."""

    rollout: str
    action: str

    @property
    def summary(self) -> str:
        return f"retry {self.action} of {self.rollout}"


@dataclass(frozen=True, kw_only=True)
class ProgressRollout(Command):
    """The leader's step: run the current step's actions once each, finish a rollback."""

    rollout: str

    automatic_only: ClassVar[bool] = True
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"carry out {self.rollout}'s actions"


# --- evaluation ------------------------------------------------------------------


def detection_budget(
    config: ConnConfig, rollout: RolloutConfig, criterion: Criterion
) -> tuple[float, str]:
    """Worst-case detection of one criterion, and its text: what the panel and `conn check` show.

    The canary's probe interval, :data:`EVALUATION_INTERVAL`, the Prometheus
    interval when the signal is PromQL-fed, the gate's ``failure_limit`` and
    the rollout's ``grace`` (:func:`~console.model.gates.worst_case_detection`).
    """
    spec = config.services[rollout.canary]
    prometheus = config.sources.prometheus
    source = None
    if criterion.signal in spec.signals:
        source = "prometheus" if spec.signals[criterion.signal].promql else "health-json"
    elif criterion.signal in spec.health_json.sources():
        source = "health-json"
    elif getattr(spec.queries, criterion.signal, None):
        source = "prometheus"
    kwargs: dict[str, Any] = {
        "probe_interval": spec.interval, "evaluation_interval": EVALUATION_INTERVAL,
        "source_interval": prometheus.interval if source == "prometheus" and prometheus else None,
        "source": source, "failure_limit": rollout.gate.failure_limit, "grace": rollout.grace,
    }
    return worst_case_detection(criterion, **kwargs), describe_budget(criterion, **kwargs)



@dataclass(frozen=True)
class Judgement:
    """A rollout's gate and abort verdicts at one moment."""

    gate: tuple[tuple[str, Verdict], ...]
    abort: tuple[tuple[str, Verdict], ...]

    @property
    def gate_passing(self) -> bool:
        return all(v.outcome == "pass" for _, v in self.gate)

    def gate_failure(self) -> str:
        """What keeps the gate from passing, in words ("" when it passes)."""
        return "; ".join(f"{text}: {v.evidence or v.reason}" for text, v in self.gate if v.outcome != "pass")


class RolloutEvaluator:
    """Judges a rollout's criteria from the signal history and the latest live values.

    Args:
        live: the latest live value of a service (the leader's own, or the live table's).
    """

    def __init__(
        self, config: ConnConfig, store: EventStore, clock: Clock,
        live: Callable[[str], ServiceLive | None],
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._live = live
        self._parsed: dict[str, Criterion] = {}
        self._fine: dict[tuple[str, str], deque[Sample]] = {}
        """The live values seen at each evaluation (this process only): finer than the
        history's 10 s slices, so "for 10s" is judged to the second, not to the slice."""

    def criterion(self, rollout: RolloutConfig, text: str) -> Criterion:
        if text not in self._parsed:
            canary = self._config.services.get(rollout.canary)
            units = {key: spec.unit for key, spec in canary.signals.items()} if canary else {}
            self._parsed[text] = parse_criterion(text, units=units)
        return self._parsed[text]

    def budget(self, rollout: RolloutConfig, text: str) -> tuple[float, str]:
        """Worst-case detection of one criterion, and its text ("≤ 1m 2s (…)")."""
        return detection_budget(self._config, rollout, self.criterion(rollout, text))

    async def judge(self, name: str, state: RolloutState) -> Judgement:
        """The current stage's gate and the abort criteria, judged now.

        Raises:
            StoreError: the history cannot be read.
        """
        rollout = self._config.rollouts[name]
        index = state.stage.index if state.stage is not None else 0
        gate_texts = rollout.criteria_for(min(index, len(rollout.stages) - 1))
        abort_texts = tuple(rollout.abort.criteria)
        criteria = [self.criterion(rollout, t) for t in (*gate_texts, *abort_texts)]
        now = self._clock.now()
        span = max([c.seconds for c in criteria] + [60.0]) + 3 * SLICE_SECONDS
        services = [rollout.canary] + ([rollout.baseline] if rollout.baseline else [])
        slices = await self._store.read_history(since=now - span, services=services)
        signals = {c.signal for c in criteria}

        keep = int(span / EVALUATION_INTERVAL) + 10

        def observed(service: str) -> dict[str, Sequence[Sample]]:
            mine = [s for s in slices if s.service == service]
            live = self._live(service)
            out: dict[str, Sequence[Sample]] = {SERVICE: service_series(mine, now=now)}
            for signal in signals:
                fine = self._fine.setdefault((service, signal), deque(maxlen=min(keep, MAX_FINE)))
                if fine.maxlen is not None and fine.maxlen < min(keep, MAX_FINE):
                    fine = self._fine[(service, signal)] = deque(fine, maxlen=min(keep, MAX_FINE))
                value = live.signal(signal) if live is not None else None
                if value is not None and (not fine or fine[-1].at < now):
                    fine.append(live_sample(value, now))
                while fine and fine[0].at < now - span:
                    fine.popleft()
                # The history up to where this process's own finer samples begin.
                first = fine[0].at if fine else math.inf
                series = [x for x in signal_series(mine, signal, now=now) if x.at < first]
                out[signal] = (*series, *fine)
            return out

        step = max(float(SLICE_SECONDS), self._config.services[rollout.canary].interval)
        observations = Observations(
            now=now, canary=observed(rollout.canary),
            baseline=observed(rollout.baseline) if rollout.baseline else {}, step=step,
        )
        minimum = rollout.gate.min_samples

        def judged(texts: Sequence[str], role: str) -> tuple[tuple[str, Verdict], ...]:
            return tuple(
                (text, evaluate(self.criterion(rollout, text), observations, role=role,  # type: ignore[arg-type]
                                min_samples=minimum if role == "gate" else 0))
                for text in texts
            )

        return Judgement(gate=judged(gate_texts, "gate"), abort=judged(abort_texts, "abort"))

    def live_row(self, name: str, state: RolloutState, judgement: Judgement, **extra: Any) -> RolloutLive:
        rollout = self._config.rollouts[name]

        def rows(pairs: Sequence[tuple[str, Verdict]]) -> tuple[CriterionLive, ...]:
            return tuple(CriterionLive.of(v, t, *self.budget(rollout, t)) for t, v in pairs)

        blocked = "" if judgement.gate_passing else judgement.gate_failure()
        return RolloutLive(
            name=name, run=state.run, at=self._clock.now(), gate=rows(judgement.gate),
            abort=rows(judgement.abort), gate_passing=judgement.gate_passing,
            blocked=redact(blocked), **extra,
        )


# --- handlers --------------------------------------------------------------------


class RolloutCommands:
    """The handlers of the rollout commands, registered on the engine's bus."""

    def __init__(
        self, *, store: EventStore, projections: ProjectionSet, rollouts: RolloutProjection,
        evaluator: RolloutEvaluator, clock: Clock,
        execute: Callable[[Command, Actor], Any],
    ) -> None:
        self._store = store
        self._projections = projections
        self._rollouts = rollouts
        self._evaluator = evaluator
        self._clock = clock
        self._execute = execute

    def handlers(self) -> dict[type[Command], Handler]:
        return {
            AdvanceRollout: self._advance,
            HoldRollout: self._hold,
            ResumeRollout: self._resume,
            RollbackRollout: self._rollback,
            RetryRolloutAction: self._retry,
            ProgressRollout: self._progress,
        }

    def _plan(self, name: str) -> tuple[RolloutState, RolloutConfig]:
        return self._rollouts.state(name), self._rollouts.config.rollouts[name]

    async def _advance(self, command: AdvanceRollout, actor: Actor) -> CommandResult:
        state, plan = self._plan(command.rollout)
        if state.lifecycle in ("pending", "complete", "rolled_back"):
            changes = self._decide(lambda: start(state, plan))
            events = await self._append(state, changes, actor, command.reason)
            return CommandResult(command, actor, events, f"{command.rollout}: run {state.run + 1} started")
        judgement = await self._evaluator.judge(command.rollout, state)
        changes = self._decide(lambda: advance(
            state, plan, self._clock.now(), gate_passing=judgement.gate_passing,
            override=command.override, gate_failure=judgement.gate_failure(),
            automatic=is_automatic(actor),
        ))
        events = await self._append(state, changes, actor, command.reason)
        after = self._rollouts.state(command.rollout)
        where = after.stage.label if after.lifecycle == "active" and after.stage else after.lifecycle
        return CommandResult(command, actor, events, f"{command.rollout}: {where}")

    async def _hold(self, command: HoldRollout, actor: Actor) -> CommandResult:
        state, _ = self._plan(command.rollout)
        changes = self._decide(lambda: hold(state, self._clock.now(), command.reason, command.until))
        events = await self._append(state, changes, actor, command.reason)
        return CommandResult(command, actor, events, f"{command.rollout}: held")

    async def _resume(self, command: ResumeRollout, actor: Actor) -> CommandResult:
        state, _ = self._plan(command.rollout)
        changes = self._decide(lambda: resume(state, self._clock.now()))
        events = await self._append(state, changes, actor, command.reason)
        return CommandResult(command, actor, events, f"{command.rollout}: resumed")

    async def _rollback(self, command: RollbackRollout, actor: Actor) -> CommandResult:
        state, _ = self._plan(command.rollout)
        changes = self._decide(lambda: rollback(
            state, command.reason, automatic=is_automatic(actor), criterion=command.criterion,
            evidence=command.evidence,
        ))
        events = await self._append(state, changes, actor, command.reason)
        return CommandResult(command, actor, events, f"{command.rollout}: rolling back")

    async def _retry(self, command: RetryRolloutAction, actor: Actor) -> CommandResult:
        state, plan = self._plan(command.rollout)
        action = next((a for a in planned_actions(state, plan) if a.id == command.action), None)
        if action is None:
            raise CommandError(f"{command.rollout} has no action {command.action!r} in its current step")
        events = await self._run_action(state, plan, action, actor, retry_reason=command.reason)
        return CommandResult(command, actor, tuple(events), f"{command.action}: retried")

    async def _progress(self, command: ProgressRollout, actor: Actor) -> CommandResult:
        """Run each not-yet-started action of the current step in order, then finish a rollback.

        An action another leader started and did not finish runs again only when
        idempotent; otherwise it is recorded as failed ("may have run") for a person
        to retry. Stops at the first failure: later actions wait.
        """
        state, plan = self._plan(command.rollout)
        events: list[Event] = []
        for view in pending_actions(state, plan):
            state = self._rollouts.state(command.rollout)
            if view.status == "failed":
                break
            if view.status == "running" and view.needs_confirmation:
                change = action_failed(state, view.id, error=(
                    "started by a leader that stopped before it finished: it may have run; "
                    "not run again by itself (retry it by hand)"))
                events += await self._append(state, [change], actor, "interrupted action")
                break
            action = next((a for a in planned_actions(state, plan) if a.id == view.id), None)
            if action is None:
                continue
            ran = await self._run_action(state, plan, action, actor)
            events += ran
            if self._rollouts.state(command.rollout).actions.get(action.id, None) is None or (
                self._rollouts.state(command.rollout).actions[action.id].status != "finished"
            ):
                break
        state = self._rollouts.state(command.rollout)
        if state.lifecycle == "rolling_back" and not pending_actions(state, plan):
            events += await self._append(state, self._decide(lambda: finish_rollback(state, plan)),
                                         actor, "every rollback action finished")
        return CommandResult(command, actor, tuple(events), f"{command.rollout}: {len(events)} event(s)")

    async def _run_action(
        self, state: RolloutState, plan: RolloutConfig, action: PlannedAction, actor: Actor,
        retry_reason: str | None = None,
    ) -> list[Event]:
        """Record the start (exactly one leader wins that append), do it, record the end."""
        started = self._decide(lambda: action_started(state, action, retry_reason=retry_reason))
        events = list(await self._append(state, started, actor, retry_reason or action.description))
        state = self._rollouts.state(state.name)
        try:
            detail = await self._do(state, plan, action, actor)
        except ConsoleError as e:
            change = action_failed(state, action.id, error=redact(str(e))[:1000])
        else:
            change = action_finished(state, action.id, detail=redact(detail)[:1000])
        events += await self._append(self._rollouts.state(state.name), [change], actor, action.description)
        return events

    async def _do(
        self, state: RolloutState, plan: RolloutConfig, action: PlannedAction, actor: Actor
    ) -> str:
        """Carry out one action; raises a ConsoleError saying why it failed.

        The flag is changed through the flag commands (so it is a flag event
        too), attributed to whoever runs the action: the leader, or the
        operator who retried it.
        """
        if action.kind == "flag":
            assert plan.flag is not None
            assert action.audience is not None
            percent, groups, allow = action.audience
            reason = f"rollout {state.name} run {state.run}: {action.description}"
            if state.lifecycle in ("rolling_back", "rolled_back"):
                await self._execute(KillFlag(flag=plan.flag, reason=reason), actor)
                return f"{plan.flag} killed: everyone gets its off variant"
            await self._execute(EnableFlag(flag=plan.flag, reason=reason), actor)
            await self._execute(SetFlagPercent(flag=plan.flag, percent=percent, reason=reason), actor)
            keys = tuple(f"@{g}" for g in groups) + tuple(allow)
            if keys:  # already on the allowlist: nothing appended
                await self._execute(AllowFlagKeys(flag=plan.flag, keys=keys, reason=reason), actor)
            return f"{plan.flag}: {percent:g}%{''.join(' +' + g for g in groups)}"
        spec = action.spec
        values = {"rollout": state.name, "run": str(state.run),
                  "stage": state.stage.name if state.stage else "",
                  "reason": state.rollback.reason if state.rollback else ""}
        if isinstance(spec, CommandAction):
            env = dict(spec.env)
            secrets = []
            for name in spec.secrets:
                value = get_secret(name)
                env[name.upper()] = value
                secrets.append(value)
            outcome = await run_process(spec.run, timeout=spec.timeout, env=env, secrets=secrets)
            if not outcome.ok:
                tail = outcome.output_excerpt.strip().splitlines()[-3:]
                raise ActionError(f"{outcome.summary()}" + (f": {' / '.join(tail)}" if tail else ""))
            return outcome.summary()
        if isinstance(spec, WebhookAction):
            url = get_secret(spec.webhook)
            result = await call_webhook(url, render_body(spec.body, values), timeout=spec.timeout,
                                        name=f"«secret:{spec.webhook}»")
            return result.summary()
        raise ActionError(f"{action.id}: unknown action kind {action.kind!r}")

    def _decide(self, decide: Callable[[], list[Change]] | Callable[[], Change]) -> list[Change]:
        try:
            made = decide()
        except RolloutRefused as e:
            raise CommandError(str(e)) from e
        return made if isinstance(made, list) else [made]

    async def _append(
        self, state: RolloutState, changes: Sequence[Change], actor: Actor, reason: str
    ) -> tuple[Event, ...]:
        return await append_and_fold(self._store, self._projections, state.stream, changes,
                                     actor=actor, reason=reason, at=self._clock.now())
