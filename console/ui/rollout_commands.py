"""What ``a``, ``h`` and ``R`` do to a rollout: ask, then run the engine's command.

Each flow reads the rollout from the app's latest snapshot, asks the
operator in a dialog (a reason always; an override's reason when the gate
fails; the rollout's name to roll back), and runs one command with
``engine.execute``. What the state machine would refuse anyway (an advance
while baking or held, a hold of a finished run) is refused before the dialog
opens, by the same decider the engine runs (:mod:`console.model.rollouts`),
so the operator does not type a reason for nothing; the engine still
decides, and its refusals show as error toasts in its words.

Flows wait for dialogs (``push_screen_wait``), so they run in a worker: the
dashboard's keys and the command palette start them there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.engine.commands import Command
from console.engine.rollouts import (
    AdvanceRollout,
    HoldRollout,
    ResumeRollout,
    RetryRolloutAction,
    RollbackRollout,
)
from console.engine.snapshot import RolloutPanel
from console.errors import ConsoleError
from console.model import rollouts as machine
from console.model.gates import span_text
from console.model.rollout_config import RolloutConfig, stage_audience
from console.ui.modals.confirm import ConfirmModal
from console.ui.modals.hold import HoldModal
from console.ui.text import safe_markup
from console.ui.widgets.rollout_text import clock_text, seconds_left

if TYPE_CHECKING:
    from console.ui.app import ConnApp

_PROBE_REASON = "(checking)"
"""A reason for the dry runs of a decider: only its refusals are read."""


def audience_text(plan: RolloutConfig, index: int) -> str:
    """What a stage gives the flag: "checkout_v2 → 10% + group internal" (plain text)."""
    if plan.flag is None:
        return "no flag (this rollout sets none)"
    percent, groups, allow = stage_audience(plan, index)
    named = [f"group {g}" for g in groups]
    if allow:
        named.append(f"{len(allow)} allowed key{'s' if len(allow) != 1 else ''}")
    if not named:
        return f"flag {plan.flag} → {percent:g}% of everyone"
    return f"flag {plan.flag} → {' + '.join(named)}, and {percent:g}% of everyone else"


def stage_text(plan: RolloutConfig, index: int) -> str:
    """"stage 2 (10%): flag checkout_v2 → 10% of everyone, then kubectl …; bakes 5m"."""
    stage = plan.stages[index]
    actions = "".join(f", then {a.describe()}" for a in stage.actions)
    bake = f"; bakes {span_text(stage.bake)}" if stage.bake else ""
    return f"stage {index + 1} ({stage.name}): {audience_text(plan, index)}{actions}{bake}"


def _panel(app: ConnApp, name: str) -> RolloutPanel | None:
    snapshot = app.snapshot
    return snapshot.rollout(name) if snapshot is not None else None


def _refused(app: ConnApp, what: str, error: Exception) -> None:
    app.notify(safe_markup(str(error), limit=400), severity="error", title=what)


async def _run(app: ConnApp, command: Command, title: str) -> bool:
    """Execute ``command``; a refusal or a race shows as an error toast in the engine's words."""
    try:
        result = await app.engine.execute(command)
    except ConsoleError as e:  # CommandError, ConcurrencyError, ActionError
        _refused(app, title, e)
        return False
    app.notify(safe_markup(result.message, limit=300), title="rollout")
    return True


async def advance(app: ConnApp, name: str) -> None:
    """``a``: start the next run, advance (confirm), over a failing gate (override), or retry."""
    panel = _panel(app, name)
    if panel is None:
        return
    state, plan, now = panel.state, panel.plan, app.clock.now()
    view = panel.view(now)
    if view.phase == "action_failed":
        await retry(app, name)
        return
    if state.lifecycle in ("pending", "complete", "rolled_back"):
        run = state.run + 1
        before = {"pending": "", "complete": f"Run {state.run} is complete. ",
                  "rolled_back": f"Run {state.run} was rolled back. "}[state.lifecycle]
        result = await app.push_screen_wait(ConfirmModal(
            f"Start run {run} of {name}?",
            f"{before}Run {run} starts in {stage_text(plan, 0)}.", confirm_label="Start"))
        if result is not None:
            await _run(app, AdvanceRollout(rollout=name, reason=result.reason), f"start {name}")
        return
    try:  # what would refuse whatever the gate says: baking, held, actions not done
        machine.advance(state, plan, now, gate_passing=True)
    except machine.RolloutRefused as e:
        _refused(app, f"advance {name}", e)
        return
    try:
        judgement = await app.engine.rollout_evaluator.judge(name, state)
    except ConsoleError as e:
        _refused(app, f"advance {name}", e)
        return
    index = state.stage.index if state.stage is not None else -1
    target = (f"Next: {stage_text(plan, index + 1)}." if index + 1 < len(plan.stages)
              else "This is the last stage: the run completes.")
    if judgement.gate_passing:
        result = await app.push_screen_wait(ConfirmModal(
            f"Advance {name}?", f"The gate passes. {target}", confirm_label="Advance"))
        if result is not None:
            await _run(app, AdvanceRollout(rollout=name, reason=result.reason), f"advance {name}")
        return
    result = await app.push_screen_wait(ConfirmModal(
        f"Advance {name} over a failing gate?",
        f"The gate fails: {judgement.gate_failure()}. Advancing anyway records an override with "
        f"your reason (`conn audit` shows who and why). {target}",
        confirm_label="Override"))
    if result is not None:
        await _run(app, AdvanceRollout(rollout=name, reason=result.reason, override=result.reason),
                   f"advance {name}")


async def hold_or_resume(app: ConnApp, name: str) -> None:
    """``h``: hold (a reason, optionally until when), or resume a held rollout."""
    panel = _panel(app, name)
    if panel is None:
        return
    state, now = panel.state, app.clock.now()
    if (held := state.held_at(now)) is not None:
        until = f" until {clock_text(held.until)} ({seconds_left(held.until - now)} left)" if held.until else ""
        result = await app.push_screen_wait(ConfirmModal(
            f"Resume {name}?",
            f"Held by {held.by}{until}: {held.reason}. Resuming allows advances again, and an "
            "abort criterion that fails starts the automatic rollback again.", confirm_label="Resume"))
        if result is not None:
            await _run(app, ResumeRollout(rollout=name, reason=result.reason), f"resume {name}")
        return
    try:
        machine.hold(state, now, _PROBE_REASON)
    except machine.RolloutRefused as e:
        _refused(app, f"hold {name}", e)
        return
    where = state.stage.label if state.stage is not None else "its first stage"
    held_with = await app.push_screen_wait(HoldModal(
        f"Hold {name} in {where}?",
        "No advances, by hand or automatic, and no automatic rollback (a person has taken "
        "over) until it is resumed; the criteria are still judged and shown, and R still "
        "rolls back.", clock=app.clock))
    if held_with is not None:
        await _run(app, HoldRollout(rollout=name, reason=held_with.reason, until=held_with.until),
                   f"hold {name}")


async def roll_back(app: ConnApp, name: str) -> None:
    """``R``: roll back after the rollout's name is typed (Cancel has the focus)."""
    panel = _panel(app, name)
    if panel is None:
        return
    state, plan = panel.state, panel.plan
    try:
        machine.rollback(state, _PROBE_REASON)
    except machine.RolloutRefused as e:
        _refused(app, f"roll back {name}", e)
        return
    steps = [f"flag {plan.flag} off for everyone"] if plan.flag else []
    steps += [a.describe() for a in plan.on_rollback.actions]
    where = state.stage.label if state.lifecycle == "active" and state.stage else state.lifecycle
    does = ", then ".join(steps) if steps else "nothing but recording it (no flag, no actions)"
    result = await app.push_screen_wait(ConfirmModal(
        f"Roll back {name}?",
        f"Run {state.run}, in {where}, ends rolled back: {does}. Later, a starts run {state.run + 1}.",
        type_to_confirm=name, confirm_label="Roll back", focus_cancel=True))
    if result is not None:
        await _run(app, RollbackRollout(rollout=name, reason=result.reason), f"roll back {name}")


async def retry(app: ConnApp, name: str) -> None:
    """``a`` after an action failed: run it again, with a reason."""
    panel = _panel(app, name)
    if panel is None:
        return
    failed = next((a for a in panel.view(app.clock.now()).actions if a.status == "failed"), None)
    if failed is None:
        return
    result = await app.push_screen_wait(ConfirmModal(
        f"Retry {failed.description}?",
        f"It failed: {failed.error}. This is attempt {failed.attempts + 1}; R rolls back instead.",
        confirm_label="Retry"))
    if result is not None:
        await _run(app, RetryRolloutAction(rollout=name, action=failed.id, reason=result.reason),
                   f"retry {name}")
