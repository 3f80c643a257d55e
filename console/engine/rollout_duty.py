"""The leader's rollout duty: judge every active rollout each second, and act when the rules say so.

Each second, for each rollout: carry out the current step's actions (once
each, recorded), lift expired holds, judge the gate and abort criteria
(:class:`~console.engine.rollouts.RolloutEvaluator`), write the verdicts to the
live table so every console shows them, and decide:

- an abort criterion that fails (``failure_limit`` times in a row) with
  ``on_fail = "rollback"`` — or a gate criterion with that policy — starts the
  rollback, after the rollout's ``grace`` countdown (shown on every console;
  a hold during the countdown stops it: a person has taken over);
- ``on_fail = "hold"`` (and no data, a source down) hold the rollout where it
  is: no automatic advance, never a rollback, never a pass;
- ``on_fail = "notify"`` records and shows, nothing more (for tuning queries);
- ``advance = "auto"``: the leader advances once the bake time has passed and
  the gate passes.

Every decision is a command executed as the leader's automatic actor, so it
is checked, recorded and attributed like any operator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from console.config import ConnConfig
from console.engine.commands import Command, CommandResult
from console.engine.rollouts import (
    EVALUATION_INTERVAL,
    AdvanceRollout,
    Judgement,
    ProgressRollout,
    ResumeRollout,
    RollbackRollout,
    RolloutEvaluator,
    RolloutProjection,
)
from console.engine.supervisor import Reporter, Supervisor, keep_going
from console.errors import CommandError, ConsoleError
from console.model.clock import Clock
from console.model.events import Actor
from console.model.gates import GateTracker, Verdict
from console.model.rollout_live import RolloutLive
from console.model.rollouts import auto_advance_due, hold_expired, pending_actions

log = logging.getLogger(__name__)

MIN_GAP = 0.2
"""Least seconds between two evaluations, however often canaries report."""

Execute = Callable[[Command, Actor], Awaitable[CommandResult]]
LiveWriter = Callable[[str, RolloutLive], Awaitable[None]]


@dataclass
class _Watch:
    """What the duty remembers about one rollout between evaluations (this term only)."""

    run: int = 0
    trackers: dict[str, GateTracker] = field(default_factory=dict)
    rollback_at: float | None = None
    trigger: tuple[str, Verdict] | None = None


class RolloutDuty:
    """One leadership term's judging and acting for every configured rollout."""

    def __init__(
        self, config: ConnConfig, *, rollouts: RolloutProjection, evaluator: RolloutEvaluator,
        execute: Execute, actor: Actor, clock: Clock, write_live: LiveWriter,
        wake: asyncio.Event | None = None,
    ) -> None:
        self._config = config
        self._rollouts = rollouts
        self._evaluator = evaluator
        self._execute = execute
        self._actor = actor
        self._clock = clock
        self._write_live = write_live
        self._wake = wake or asyncio.Event()
        """Set when a canary's or baseline's live value changes: judge at once, not at the next tick."""
        self._watch: dict[str, _Watch] = {}

    def start(self, stack: contextlib.AsyncExitStack, supervisor: Supervisor, report: Reporter) -> None:
        if not self._config.rollouts:
            return

        async def step() -> float:
            # A new value of a canary (or its baseline) is judged as soon as it is written,
            # and every rollout at least once per EVALUATION_INTERVAL.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=EVALUATION_INTERVAL)
            self._wake.clear()
            for name in self._config.rollouts:
                await self.tick(name)
            return MIN_GAP

        task = supervisor.spawn(keep_going("rollouts", step, report, retry=EVALUATION_INTERVAL), "rollouts")
        stack.push_async_callback(supervisor.cancel, [task])

    async def tick(self, name: str) -> None:
        """One evaluation of one rollout (a refused decision is logged, never fatal)."""
        plan = self._config.rollouts[name]
        state = self._rollouts.state(name)
        watch = self._watch.setdefault(name, _Watch())
        if watch.run != state.run:
            self._watch[name] = watch = _Watch(run=state.run)
        if state.lifecycle == "rolling_back" or any(
            a.status == "not_started" or (a.status == "running")
            for a in pending_actions(state, plan)
        ):
            await self._act(ProgressRollout(rollout=name))
            state = self._rollouts.state(name)
        now = self._clock.now()
        if hold_expired(state, now):
            await self._act(ResumeRollout(rollout=name, reason="the hold expired"))
            state = self._rollouts.state(name)
        if state.lifecycle != "active":
            await self._write_live(name, RolloutLive(name=name, run=state.run, at=now))
            return
        judgement = await self._evaluator.judge(name, state)
        trigger = self._trigger(name, judgement, watch)
        notices = tuple(
            f"{text}: {verdict.evidence}" for text, verdict in (*judgement.gate, *judgement.abort)
            if verdict.outcome == "fail" and self._policy(name, verdict) == "notify"
        )
        if trigger is None:
            watch.rollback_at = watch.trigger = None
        elif watch.rollback_at is None:
            watch.rollback_at, watch.trigger = now + plan.grace, trigger
            if plan.grace:
                log.warning("%s: automatic rollback in %.0fs: %s", name, plan.grace, trigger[1].evidence)
        held = state.held_at(now) is not None
        if held:
            watch.rollback_at = watch.trigger = None  # a person took over during the countdown
        if watch.rollback_at is not None and watch.trigger is not None and now >= watch.rollback_at:
            text, verdict = watch.trigger
            await self._act(RollbackRollout(
                rollout=name, reason=f"{text}: {verdict.evidence}", criterion=text,
                evidence={"outcome": verdict.outcome, "value": verdict.value,
                          "baseline": verdict.baseline, "threshold": verdict.threshold,
                          "since": verdict.since, "evidence": verdict.evidence},
            ))
            self._watch[name] = _Watch(run=state.run)
            await self._act(ProgressRollout(rollout=name))  # the flag off now, not next tick
        elif trigger is None and not held and judgement.gate_passing and auto_advance_due(state, plan, now):
            await self._act(AdvanceRollout(rollout=name, reason="baked and the gate passes"))
        state = self._rollouts.state(name)
        await self._write_live(name, self._evaluator.live_row(
            name, state, judgement, rollback_at=watch.rollback_at,
            rollback_reason=f"{watch.trigger[0]}: {watch.trigger[1].evidence}" if watch.trigger else "",
            notices=notices,
        ))

    def _policy(self, name: str, verdict: Verdict) -> str:
        plan = self._config.rollouts[name]
        return plan.gate.on_fail if verdict.role == "gate" else plan.abort.on_fail

    def _trigger(self, name: str, judgement: Judgement, watch: _Watch) -> tuple[str, Verdict] | None:
        """The first criterion whose policy is "rollback" and whose failure limit is reached."""
        plan = self._config.rollouts[name]
        found = None
        for text, verdict in (*judgement.abort, *judgement.gate):
            key = f"{verdict.role}:{text}"
            tracker = watch.trackers.get(key) or GateTracker(
                failure_limit=plan.gate.failure_limit, successes_to_pass=None)
            tracker = tracker.observe(verdict)
            watch.trackers[key] = tracker
            if (found is None and tracker.tripped and verdict.outcome == "fail"
                    and self._policy(name, verdict) == "rollback"):
                found = (text, verdict)
            if verdict.outcome == "pass":
                watch.trackers[key] = tracker.reset()
        return found

    async def _act(self, command: Command) -> None:
        try:
            await self._execute(command, self._actor)
        except CommandError as e:
            log.info("%s: not done: %s", command.summary, e)
        except ConsoleError as e:
            log.warning("%s failed: %s", command.summary, e)
