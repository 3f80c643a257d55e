"""`conn watch ROLLOUT [--until-done]`: a line per change of one rollout, for a terminal or a pipeline.

A following engine (it never leads and changes nothing) reads the event log
and the live table as every console does, and each change is printed once,
timestamped: the phase and stage, the last transition with who and why,
criteria whose verdict changed (with the evidence), an automatic rollback's
countdown, actions starting, finishing or failing, notices, and problems
reading the store. With ``--until-done`` it exits 0 once the run completes and
1 once it is rolled back (at once when it already is), so a deploy pipeline
can wait on a rollout; 2 on an error (an unknown rollout, a store that cannot
be opened).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

from console.cli.common import USAGE, add_config_option, command_context, fail, when
from console.cli.rollout import PHASE_WORDS, stage_text
from console.engine.core import Engine
from console.engine.snapshot import RolloutPanel, Snapshot
from console.engine.status import rollout_json
from console.errors import ConsoleError
from console.model.gates import span_text
from console.model.rollouts import Rollback, Transition
from console.model.sanitize import clean_text
from console.secrets import redact

DONE = {"complete": 0, "rolled_back": 1}
"""``--until-done``'s exit status for a run that ended."""
TICK = 1.0
"""Seconds between looks at the time-derived phase (a bake ends, a hold expires)."""


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "watch", help="follow a rollout: a line per change (--until-done: exit 0 complete, 1 rolled back)",
        description="Follow a rollout and print a timestamped line per change.",
        epilog="exit status with --until-done: 0 the run completed, 1 it was rolled back, 2 an error "
               "(unknown rollout, store unreachable)",
    )
    parser.add_argument("rollout", metavar="ROLLOUT")
    parser.add_argument("--until-done", action="store_true",
                        help="exit when the run completes (0) or is rolled back (1)")
    add_config_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_watch(args))


async def _watch(args: argparse.Namespace) -> int:
    try:
        async with command_context(args) as ctx:
            engine = Engine(ctx.config, ctx.store, clock=ctx.clock, actor=ctx.actor, lead=False,
                            sync_flag_file=False, read_only=True)
            async with engine:
                engine.rollout(args.rollout)  # an unknown name: CommandError with a hint
                return await follow(engine, args.rollout, until_done=args.until_done)
    except ConsoleError as e:
        fail(str(e))
        return USAGE


async def follow(engine: Engine, name: str, *, until_done: bool) -> int:
    """Print a line per change of rollout ``name`` until it is done (or forever)."""
    latest = engine.snapshot
    changed = asyncio.Event()

    async def pump() -> None:
        nonlocal latest
        async for snapshot in engine.snapshots():
            latest = snapshot
            changed.set()

    task = asyncio.ensure_future(pump())
    watch = RolloutWatch()
    try:
        while True:
            now = engine.clock.now()
            panel = latest.rollout(name)
            assert panel is not None  # the name was checked and the config does not change
            for line in watch.lines(panel, latest, now):
                print(clean_text(redact(f"{when(now)} {name}: {line}"), limit=600), flush=True)
            if until_done and panel.state.lifecycle in DONE:
                return DONE[panel.state.lifecycle]
            if engine.failed.is_set():
                fail(engine.failure or "the engine stopped")
                return USAGE
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=TICK)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@dataclass
class RolloutWatch:
    """What was last printed about one rollout; :meth:`lines` says what changed since."""

    head: str | None = None
    last: Transition | None = None
    run: int | None = None
    verdicts: dict[tuple[str, str], str] = field(default_factory=dict)
    countdown: float | None = None
    actions: dict[str, str] = field(default_factory=dict)
    notices: set[str] = field(default_factory=set)
    problem: str | None = None
    rollback: Rollback | None = None

    def lines(self, panel: RolloutPanel, snapshot: Snapshot, now: float) -> list[str]:
        """The lines for what changed since the last call (everything worth saying, the first time)."""
        document = rollout_json(panel, now)
        state = panel.state
        out: list[str] = []
        if state.run != self.run:
            if self.run is None:  # what already ended is history: say only what is still open
                self.actions = {a.id: _action(a.status, a.detail) for a in state.actions.values()
                                if a.status == "finished"}
            else:
                self.actions = {}
            self.run, self.verdicts, self.notices, self.rollback = state.run, {}, set(), None
        head = _head(document)
        if head != self.head:
            self.head = head
            bake = document["bake_remaining"]
            out.append(head + (f", {span_text(math.ceil(bake))} of bake left"
                               if document["phase"] == "baking" and bake else ""))
        if state.rollback is not None and state.rollback != self.rollback:
            self.rollback = state.rollback
            how = "automatic rollback" if state.rollback.automatic else "rollback"
            out.append(f"{how} started {when(state.rollback.started_at)} by {state.rollback.by}: "
                       f"{state.rollback.reason}")
        if state.last is not None and state.last != self.last:
            self.last = state.last
            why = f": {state.last.why}" if state.last.why else ""
            out.append(f"{state.last.what} by {state.last.by}{why}")
        if document["judged_at"] is not None:
            out += self._verdicts(document)
        if document["rollback_at"] != self.countdown:
            if document["rollback_at"] is not None:
                left = max(0, math.ceil(document["rollback_at"] - now))
                out.append(f"automatic rollback in {span_text(left)}: "
                           f"{document['rollback_reason']} (`conn hold {panel.name}` stops it)")
            elif state.lifecycle == "active":
                out.append("automatic rollback countdown stopped")
            self.countdown = document["rollback_at"]
        for record in state.actions.values():
            said = _action(record.status, record.detail)
            if self.actions.get(record.id) != said:
                self.actions[record.id] = said
                out.append(f"action {record.description}: {said}")
        live = panel.live
        for notice in live.notices if live is not None and live.run == state.run else ():
            if notice not in self.notices:
                self.notices.add(notice)
                out.append(f"notice: {notice}")
        if snapshot.problem != self.problem:
            if snapshot.problem is not None:
                out.append(f"note: {snapshot.problem}")
            elif self.problem is not None:
                out.append("note: the store answers again")
            self.problem = snapshot.problem
        return out

    def _verdicts(self, document: dict[str, Any]) -> list[str]:
        out = []
        for role in ("gate", "abort"):
            for row in document[role]:
                key, outcome = (role, row["text"]), row["outcome"]
                before = self.verdicts.get(key)
                self.verdicts[key] = outcome
                if before == outcome or (before is None and outcome == "pass"):
                    continue
                said = row["evidence"] or row["reason"]
                change = outcome.replace("_", " ") if before is None else (
                    f"{before.replace('_', ' ')} → {outcome.replace('_', ' ')}")
                out.append(f"{role} {row['text']}: {change} — {said}")
        return out


def _action(status: str, detail: str) -> str:
    return f"{status}: {detail}" if detail else status


def _head(document: dict[str, Any]) -> str:
    """Run, phase and stage: "run 2 baking, stage 2/4 10% (10%)" (nothing that ticks by itself)."""
    phase = PHASE_WORDS[document["phase"]]
    if not document["run"]:
        return f"{phase} (no run yet; `conn advance` starts one)"
    head = f"run {document['run']} {phase}"
    if document["stage_index"] is not None and document["phase"] in ("rolling_back", "rolled_back"):
        head += f" from stage {stage_text(document)}"
    elif document["stage_index"] is not None and document["phase"] != "complete":
        head += f", stage {stage_text(document)}"
    if document["held_by"]:
        until = f" until {when(document['held_until'])}" if document["held_until"] else ""
        head += f" (held by {document['held_by']}{until}: {document['held_reason']})"
    return head
