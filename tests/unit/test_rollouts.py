"""Rollouts: the config contract, and the state machine folded from events with explicit times.

Every state here is a fold of events the deciders produced (round-tripped
through JSON, as the store returns them), never a hand-built state.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from console.model.events import GENESIS_HASH, Event, event_hash
from console.model.rollout_config import CommandAction, RolloutsConfig, WebhookAction
from console.model.rollouts import (
    ACTION_STARTED,
    EVENT_TYPES,
    ROLLBACK_STARTED,
    ROLLOUT_ADVANCED,
    ROLLOUT_COMPLETED,
    ROLLOUT_STARTED,
    STAGE_ENTERED,
    Change,
    RolloutConfig,
    RolloutRefused,
    RolloutState,
    action_failed,
    action_finished,
    action_started,
    advance,
    auto_advance_due,
    complete,
    finish_rollback,
    fold,
    hold,
    hold_expired,
    pending_actions,
    planned_actions,
    resume,
    rollback,
    stage_audience,
    start,
    status,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

ISSUE_EXAMPLE = """
[rollouts.checkout]
canary = "checkout-canary"        # the service whose signals the criteria read
baseline = "checkout"             # optional: for "x baseline" criteria
flag = "checkout_v2"              # optional: stages set this flag's audience and percentage
grace = "0s"                      # countdown before an automatic rollback (hold or roll back now)
advance = "manual"                # or "auto"
max_detection = "90s"

[[rollouts.checkout.stages]]
name = "internal"
groups = ["internal"]
percent = 0
bake = "1m"

[[rollouts.checkout.stages]]
name = "10%"
percent = 10
bake = "5m"
gate = ["p95 < 500ms", "error_rate < 0.1%"]

[rollouts.checkout.gate]
criteria = ["p95 < 500ms", "error_rate < 0.1%", "cache_hit_rate > 70%", "p95 <= 1.2x baseline"]
on_fail = "hold"
on_no_data = "hold"
on_source_error = "hold"
min_samples = 20

[rollouts.checkout.abort]
criteria = ["error_rate > 5% for 5m", "health_failures > 3 within 5m", "p95 > 1.5x baseline for 1m"]
on_fail = "rollback"

[rollouts.checkout.on_rollback]
actions = [
  { run = ["kubectl", "rollout", "undo", "deployment/checkout"], timeout = "60s" },
  { webhook = "deploy_hook_url", body = { rollout = "{rollout}", reason = "{reason}" } },
]
"""

PLAN = RolloutConfig.model_validate({
    "canary": "checkout-canary", "baseline": "checkout", "flag": "checkout_v2",
    "stages": [
        {"name": "internal", "groups": ["internal"], "percent": 0, "bake": "1m"},
        {"name": "10%", "percent": 10, "bake": "5m",
         "actions": [{"run": ["kubectl", "scale", "deployment/checkout-canary", "--replicas=2"]}]},
        {"name": "50%", "percent": 50, "bake": "10m", "advance": "auto"},
        {"name": "100%", "percent": 100},
    ],
    "gate": {"criteria": ["p95 < 500ms"]},
    "on_rollback": {"actions": [
        {"run": ["kubectl", "rollout", "undo", "deployment/checkout"], "idempotent": True},
        {"webhook": "deploy_hook_url", "body": {"rollout": "{rollout}"}},
    ]},
})


def errors(data: Any) -> list[tuple[str, str]]:
    """(dotted location, message) of every problem in one rollout table."""
    with pytest.raises(ValidationError) as caught:
        RolloutConfig.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()]


def rollout(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"canary": "c", "stages": [{"name": "a", "percent": 10}, {"name": "b", "percent": 50}]}
    return {**base, **changes}


class Log:
    """The events of one rollout as the store would return them, and the state folded so far."""

    def __init__(self, name: str = "checkout") -> None:
        self.name = name
        self.events: list[Event] = []
        self.state = RolloutState(name)

    def add(self, changes: Iterable[Change], *, at: float, actor: str = "alice", reason: str = "test") -> RolloutState:
        for type, payload in changes:
            prev = self.events[-1].hash if self.events else GENESIS_HASH
            fields: dict[str, Any] = dict(
                id=f"e{len(self.events) + 1}", stream=f"rollout/{self.name}", version=len(self.events) + 1,
                type=type, time=at, actor=actor, reason=reason,
                payload=json.loads(json.dumps(payload)), prev_hash=prev,
            )
            event = Event(position=len(self.events) + 1, hash=event_hash(**fields), **fields)
            self.events.append(event)
            self.state = self.state.apply(event)
        return self.state

    def copy(self) -> Log:
        twin = Log(self.name)
        twin.events, twin.state = list(self.events), self.state
        return twin

    def run_actions(self, plan: RolloutConfig, *, at: float, fail: bool = False) -> None:
        """What a leader does after a step: run each pending action in order."""
        for planned in planned_actions(self.state, plan):
            if planned.id in self.state.actions:
                continue
            self.add([action_started(self.state, planned)], at=at, actor="conn-leader")
            if fail:
                self.add([action_failed(self.state, planned.id, error="exit 1")], at=at, actor="conn-leader")
                return
            self.add([action_finished(self.state, planned.id)], at=at, actor="conn-leader")


def started(plan: RolloutConfig = PLAN, at: float = T0) -> Log:
    log = Log()
    log.add(start(log.state, plan), at=at)
    log.run_actions(plan, at=at)
    return log


# --- config --------------------------------------------------------------------


def test_the_issue_example_parses() -> None:
    raw = tomllib.loads(ISSUE_EXAMPLE)
    rollouts = TypeAdapter(RolloutsConfig).validate_python(raw["rollouts"])
    plan = rollouts["checkout"]
    assert (plan.canary, plan.baseline, plan.flag, plan.grace, plan.advance, plan.max_detection) == (
        "checkout-canary", "checkout", "checkout_v2", 0.0, "manual", 90.0,
    )
    assert [(s.name, s.percent, s.bake) for s in plan.stages] == [("internal", 0.0, 60.0), ("10%", 10.0, 300.0)]
    assert stage_audience(plan, 0) == (0.0, ("internal",), ())
    assert plan.criteria_for(1) == ("p95 < 500ms", "error_rate < 0.1%", "cache_hit_rate > 70%", "p95 <= 1.2x baseline")
    assert (plan.gate.on_fail, plan.gate.min_samples, plan.gate.failure_limit, plan.gate.successes_to_pass) == ("hold", 20, 1, None)
    assert plan.abort.on_fail == "rollback" and len(plan.abort.criteria) == 3
    undo, hook = plan.on_rollback.actions
    assert isinstance(undo, CommandAction) and undo.run[-1] == "deployment/checkout" and undo.timeout == 60
    assert isinstance(hook, WebhookAction) and hook.webhook == "deploy_hook_url" and hook.timeout == 10
    assert not undo.idempotent and not hook.idempotent


def test_a_shell_string_is_refused_with_the_argv_to_write_instead() -> None:
    [(where, message)] = errors(rollout(on_rollback={"actions": [{"run": "kubectl rollout undo 'deploy/x'"}]}))
    assert where == "on_rollback.actions.0.action[run].run"
    assert "never a shell string" in message
    assert 'run = ["kubectl", "rollout", "undo", "deploy/x"]' in message


def test_every_stage_problem_is_reported_at_its_own_key() -> None:
    found = errors(rollout(stages=[
        {"name": "a", "percent": 50},
        {"name": "a", "percent": 10, "bake": "soon", "backe": "1m"},
        {"name": "c", "percent": 101},
    ]))
    where = dict(found)
    assert "unique" in where["stages.1.name"] and "stages[0]" in where["stages.1.name"]
    assert "never go down" in where["stages.1.percent"] and "(50%)" in where["stages.1.percent"]
    assert "not a duration" in where["stages.1.bake"]
    assert where["stages.1.backe"] == "Extra inputs are not permitted"
    assert "outside 0–100%" in where["stages.2.percent"]


@pytest.mark.parametrize(("data", "where", "words"), [
    (rollout(stages=[]), "stages", "at least one stage"),
    (rollout(stages=[{"name": "a", "bake": "-1s"}]), "stages.0.bake", "not a duration"),
    (rollout(stages=[{"name": "a", "groups": ["internal"]}]), "stages.0.groups", "no flag"),
    (rollout(stages=[{"name": "a", "percent": 0.001}], flag="f"), "stages.0.percent", "0.01%"),
    (rollout(gate={"criteria": ["  "]}), "gate.criteria.0", "cannot be empty"),
    (rollout(gate={"on_no_data": "rollback"}), "gate.on_no_data", "'hold' or 'notify'"),
    (rollout(gate={"failure_limit": 0}), "gate.failure_limit", "greater than or equal to 1"),
    (rollout(advance="automatic"), "advance", "'manual' or 'auto'"),
    (rollout(stages=[{"name": "a", "actions": ["echo hi"]}]), "stages.0.actions.0", "an action is a table"),
    (rollout(stages=[{"name": "a", "actions": [{"run": ["a"], "webhook": "b"}]}]), "stages.0.actions.0.action[run]", "split it into two"),
    (rollout(stages=[{"name": "a", "actions": [{"run": []}]}]), "stages.0.actions.0.action[run].run", "at least the program"),
    (rollout(stages=[{"name": "a", "actions": [{"run": ["x"], "secrets": ["db-pass"]}]}]), "stages.0.actions.0.action[run].secrets", "environment variable"),
    (rollout(stages=[{"name": "a", "actions": [{"webhook": "h", "timeout": "2h"}]}]), "stages.0.actions.0.action[webhook].timeout", "less than or equal"),
    (rollout(stages=[{"name": "a", "actions": [{"webhook": "h", "body": {"at": date(2026, 1, 1)}}]}]), "stages.0.actions.0.action[webhook].body", "JSON body"),
])
def test_bad_shapes_name_the_key_and_say_what_is_wrong(data: Any, where: str, words: str) -> None:
    found = dict(errors(data))
    assert where in found, found
    assert words in found[where]


def test_rollout_names_are_stream_safe() -> None:
    adapter = TypeAdapter(RolloutsConfig)
    assert set(adapter.validate_python({"checkout.v2-beta_1": rollout()})) == {"checkout.v2-beta_1"}
    with pytest.raises(ValidationError, match="not a valid rollout name"):
        adapter.validate_python({"check out": rollout()})


def test_a_stage_can_override_the_advance_mode() -> None:
    assert [PLAN.advance_mode(i) for i in range(4)] == ["manual", "manual", "auto", "manual"]


# --- the state machine -----------------------------------------------------------


def test_the_happy_path_to_complete() -> None:
    log = started()
    view = status(log.state, PLAN, T0 + 30)
    assert (view.run, view.phase, view.stage_index, view.stage_name, view.bake_remaining) == (1, "baking", 0, "internal", 30)
    assert view.last is not None and (view.last.what, view.last.by) == ("started run 1", "alice")
    assert status(log.state, PLAN, T0 + 60).phase == "ready"

    log.add(advance(log.state, PLAN, T0 + 60, gate_passing=True), at=T0 + 60, actor="bob", reason="internal looks fine")
    assert status(log.state, PLAN, T0 + 60).phase == "baking"
    assert [a.description for a in pending_actions(log.state, PLAN)] == [
        "flag checkout_v2 → 10%", "kubectl scale deployment/checkout-canary --replicas=2",
    ]
    log.run_actions(PLAN, at=T0 + 61)
    assert pending_actions(log.state, PLAN) == ()
    last = status(log.state, PLAN, T0 + 61).last
    assert last is not None and (last.what, last.by, last.at, last.why) == (
        "advanced from stage 1 (internal) to stage 2 (10%)", "bob", T0 + 60, "internal looks fine",
    )

    log.add(advance(log.state, PLAN, T0 + 400, gate_passing=True), at=T0 + 400)
    log.run_actions(PLAN, at=T0 + 400)
    assert not auto_advance_due(log.state, PLAN, T0 + 999)  # 50% bakes 10m
    assert auto_advance_due(log.state, PLAN, T0 + 1000)
    log.add(advance(log.state, PLAN, T0 + 1000, gate_passing=True, automatic=True), at=T0 + 1000, actor="conn-leader")
    assert log.events[-2].payload["automatic"] is True
    log.run_actions(PLAN, at=T0 + 1000)

    with pytest.raises(RolloutRefused, match="only the last stage completes"):
        complete(started().state, PLAN, T0 + 99, gate_passing=True)
    log.add(complete(log.state, PLAN, T0 + 1001, gate_passing=True), at=T0 + 1001)
    assert [e.type for e in log.events[-2:]] == [ROLLOUT_ADVANCED, ROLLOUT_COMPLETED]
    view = status(log.state, PLAN, T0 + 1001)
    assert (view.phase, view.stage_name, view.last and view.last.what) == ("complete", "100%", "completed run 1")
    with pytest.raises(RolloutRefused, match="run 1 is complete; nothing to advance"):
        advance(log.state, PLAN, T0 + 2000, gate_passing=True)


def test_advance_is_refused_while_baking_and_says_how_long() -> None:
    log = started()
    log.add(advance(log.state, PLAN, T0 + 60, gate_passing=True), at=T0 + 60)
    log.run_actions(PLAN, at=T0 + 60)
    log.add(advance(log.state, PLAN, T0 + 400, gate_passing=True), at=T0 + 400)
    log.run_actions(PLAN, at=T0 + 400)
    with pytest.raises(RolloutRefused) as refused:
        advance(log.state, PLAN, T0 + 400 + 600 - 192, gate_passing=True)
    assert str(refused.value) == "stage 3 (50%) is still baking: 3m 12s left"
    with pytest.raises(RolloutRefused, match="still baking: 1s left"):
        advance(log.state, PLAN, T0 + 999.5, gate_passing=True, override="urgent")  # an override is for the gate


def test_advance_waits_for_the_stage_actions() -> None:
    log = started()
    log.add(advance(log.state, PLAN, T0 + 60, gate_passing=True), at=T0 + 60)
    with pytest.raises(RolloutRefused, match=r"stage 2 \(10%\): actions have not finished: flag checkout_v2 → 10% \(not started\)"):
        advance(log.state, PLAN, T0 + 999, gate_passing=True)
    assert not auto_advance_due(log.state, PLAN, T0 + 999)


def test_a_failing_gate_needs_an_override_which_is_recorded() -> None:
    log = started()
    with pytest.raises(RolloutRefused) as refused:
        advance(log.state, PLAN, T0 + 60, gate_passing=False, gate_failure="error_rate 7.1% > 0.1%")
    assert str(refused.value) == "the gate fails: error_rate 7.1% > 0.1%; override with a typed reason"
    with pytest.raises(RolloutRefused, match="override with a typed reason"):
        advance(log.state, PLAN, T0 + 60, gate_passing=False, override="   ")
    changes = advance(
        log.state, PLAN, T0 + 60, gate_passing=False, gate_failure="error_rate 7.1% > 0.1%",
        override="known noisy query, ticket OPS-12",
    )
    log.add(changes, at=T0 + 60, actor="carol", reason="pushing on")
    advanced = log.events[-2]
    assert (advanced.type, advanced.payload["override"], advanced.payload["gate_failure"]) == (
        ROLLOUT_ADVANCED, "known noisy query, ticket OPS-12", "error_rate 7.1% > 0.1%",
    )
    [override] = status(log.state, PLAN, T0 + 60).overrides
    assert override.by == "carol" and override.what.endswith("over a failing gate: known noisy query, ticket OPS-12")
    log.run_actions(PLAN, at=T0 + 60)
    with pytest.raises(RolloutRefused, match="never overrides"):
        advance(log.state, PLAN, T0 + 999, gate_passing=False, override="x", automatic=True)
    with pytest.raises(RolloutRefused, match=r"stage 2 \(10%\) advances by hand"):
        advance(log.state, PLAN, T0 + 999, gate_passing=True, automatic=True)


def test_hold_and_resume_with_an_expiry() -> None:
    log = started()
    with pytest.raises(RolloutRefused, match="a hold needs a reason"):
        hold(log.state, T0 + 10, "  ")
    with pytest.raises(RolloutRefused, match="would end before it starts"):
        hold(log.state, T0 + 10, "x", until=T0 + 10)
    log.add(hold(log.state, T0 + 10, "tuning queries", until=T0 + 610), at=T0 + 10, actor="bob", reason="tuning queries")
    view = status(log.state, PLAN, T0 + 100)
    assert (view.phase, view.held_by, view.held_reason, view.held_until) == ("held", "bob", "tuning queries", T0 + 610)
    with pytest.raises(RolloutRefused) as refused:
        advance(log.state, PLAN, T0 + 100, gate_passing=True)
    assert str(refused.value) == "held by bob: tuning queries (ends in 8m 30s); resume first"
    with pytest.raises(RolloutRefused, match="already held by bob"):
        hold(log.state, T0 + 100, "again")
    assert not hold_expired(log.state, T0 + 609)

    # Expired: no longer in effect, and the leader records it.
    assert status(log.state, PLAN, T0 + 610).phase == "ready"
    assert hold_expired(log.state, T0 + 610)
    log.add(resume(log.state, T0 + 611), at=T0 + 611, actor="conn-leader", reason="hold expired")
    assert log.state.hold is None and log.state.last is not None and log.state.last.what == "hold expired"
    with pytest.raises(RolloutRefused, match="not held"):
        resume(log.state, T0 + 612)

    log.add(hold(log.state, T0 + 700, "lunch"), at=T0 + 700)
    log.add(resume(log.state, T0 + 800), at=T0 + 800, actor="bob", reason="back")
    assert log.state.last is not None and (log.state.last.what, log.state.last.by) == ("resumed", "bob")
    log.add(advance(log.state, PLAN, T0 + 800, gate_passing=True), at=T0 + 800)


def test_an_expired_hold_does_not_block_an_advance_and_is_cleared_by_it() -> None:
    log = started()
    log.add(hold(log.state, T0, "brief", until=T0 + 30), at=T0)
    log.add(advance(log.state, PLAN, T0 + 60, gate_passing=True), at=T0 + 60)
    assert log.state.hold is None


def rollback_states() -> dict[str, Log]:
    """A log in each non-terminal phase (and complete)."""
    logs: dict[str, Log] = {}
    prefix = Log()
    prefix.add(start(prefix.state, PLAN)[:1], at=T0)  # a log cut between starting and entering
    logs["pending"] = prefix
    logs["baking"] = started()
    logs["ready"] = started()
    held = started()
    held.add(hold(held.state, T0 + 1, "wait"), at=T0 + 1)
    logs["held"] = held
    failed_plan = PLAN.model_copy(update={"flag": None})  # so the stage action is the first
    failed = started(failed_plan)
    failed.add(advance(failed.state, failed_plan, T0 + 60, gate_passing=True), at=T0 + 60)
    failed.run_actions(failed_plan, at=T0 + 60, fail=True)
    logs["action_failed"] = failed
    done = started()
    for at in (T0 + 60, T0 + 400, T0 + 1000):
        done.add(advance(done.state, PLAN, at, gate_passing=True), at=at)
        done.run_actions(PLAN, at=at)
    done.add(advance(done.state, PLAN, T0 + 1001, gate_passing=True), at=T0 + 1001)
    logs["complete"] = done
    return logs


@pytest.mark.parametrize("phase", ["pending", "baking", "ready", "held", "action_failed", "complete"])
def test_rollback_is_reachable_from_every_phase(phase: str) -> None:
    log = rollback_states()[phase]
    plan = PLAN.model_copy(update={"flag": None}) if phase == "action_failed" else PLAN
    now = T0 + 2000 if phase in ("ready", "complete") else T0 + 30
    assert status(log.state, plan, now).phase == phase
    log.add(rollback(log.state, "p95 too high"), at=now, actor="dave", reason="p95 too high")
    view = status(log.state, plan, now)
    assert view.phase == "rolling_back" and view.held_reason is None
    assert view.last is not None and (view.last.what, view.last.by, view.last.why) == ("rollback started", "dave", "p95 too high")
    with pytest.raises(RolloutRefused, match=r"already rolling back \(run 1\), started by dave"):
        rollback(log.state, "again")
    with pytest.raises(RolloutRefused, match="rolling back; nothing to advance"):
        advance(log.state, plan, now, gate_passing=True)
    with pytest.raises(RolloutRefused, match="rolling back; nothing to hold"):
        hold(log.state, now, "x")


def test_an_automatic_rollback_records_the_criterion_and_evidence_then_finishes() -> None:
    log = started()
    evidence = {"value": 7.1, "threshold": 5.0, "window": "5m", "samples": 60}
    changes = rollback(log.state, "error_rate 7.1% > 5% for 5m", automatic=True,
                       criterion="error_rate > 5% for 5m", evidence=evidence)
    log.add(changes, at=T0 + 100, actor="conn-leader", reason="error_rate 7.1% > 5% for 5m")
    record = log.state.rollback
    assert record is not None and (record.automatic, record.criterion, dict(record.evidence or {})) == (
        True, "error_rate > 5% for 5m", evidence,
    )
    assert [a.description for a in pending_actions(log.state, PLAN)] == [
        "flag checkout_v2 → off for everyone", "kubectl rollout undo deployment/checkout", "webhook deploy_hook_url",
    ]
    with pytest.raises(RolloutRefused, match=r"still working: flag checkout_v2 → off for everyone \(not started\)"):
        finish_rollback(log.state, PLAN)
    flag, undo, hook = planned_actions(log.state, PLAN)
    log.add([action_started(log.state, flag)], at=T0 + 100)
    log.add([action_finished(log.state, flag.id)], at=T0 + 100)
    log.add([action_started(log.state, undo)], at=T0 + 101)
    log.add([action_finished(log.state, undo.id, detail="rolled back")], at=T0 + 102)
    log.add([action_started(log.state, hook)], at=T0 + 102)
    log.add([action_failed(log.state, hook.id, error="HTTP 502: bad gateway")], at=T0 + 103)
    assert status(log.state, PLAN, T0 + 103).phase == "action_failed"
    with pytest.raises(RolloutRefused, match=r"a rollback action failed: webhook deploy_hook_url \(failed: HTTP 502: bad gateway\); retry it"):
        finish_rollback(log.state, PLAN)
    log.add(finish_rollback(log.state, PLAN, accept_failed="hook is down; team told by phone"), at=T0 + 104)
    view = status(log.state, PLAN, T0 + 104)
    assert view.phase == "rolled_back" and view.rollback is not None
    assert view.rollback.accepted_failures == ("run1/rollback/action2",)
    json.dumps(view.as_json())  # what `conn status --json` prints
    with pytest.raises(RolloutRefused, match=r"already rolled back \(run 1\); start a new run"):
        rollback(log.state, "again")
    with pytest.raises(RolloutRefused, match=r"already rolled back \(run 1\); start a new run"):
        finish_rollback(log.state, PLAN)


def test_a_rolled_back_rollout_restarts_as_run_2() -> None:
    log = started()
    with pytest.raises(RolloutRefused, match=r"run 1 is still active \(stage 1 \(internal\)\)"):
        start(log.state, PLAN)
    log.add(rollback(log.state, "bad"), at=T0 + 5)
    with pytest.raises(RolloutRefused, match="still rolling back"):
        start(log.state, PLAN)
    log.run_actions(PLAN, at=T0 + 6)
    log.add(finish_rollback(log.state, PLAN), at=T0 + 7)
    log.add(start(log.state, PLAN), at=T0 + 100, actor="erin", reason="fixed, second try")
    view = status(log.state, PLAN, T0 + 100)
    assert (view.run, view.phase, view.stage_index, view.rollback, view.actions[0].id) == (
        2, "baking", 0, None, "run2/stage1/flag",
    )
    assert log.state.last is not None and (log.state.last.what, log.state.last.by) == ("started run 2", "erin")


def test_an_action_that_started_and_did_not_finish_is_visible_after_a_crash() -> None:
    log = started()
    log.add(rollback(log.state, "bad"), at=T0 + 5)
    flag, undo, hook = planned_actions(log.state, PLAN)
    log.add([action_started(log.state, flag)], at=T0 + 5)
    log.add([action_finished(log.state, flag.id)], at=T0 + 5)
    log.add([action_started(log.state, undo)], at=T0 + 6)
    log.add([action_finished(log.state, undo.id)], at=T0 + 6)
    log.add([action_started(log.state, hook)], at=T0 + 7)
    # The leader dies here; the next one folds the same log.
    after = fold("checkout", log.events)
    assert after == log.state
    [running] = pending_actions(after, PLAN)
    assert (running.id, running.status, running.idempotent, running.needs_confirmation, running.started_at) == (
        "run1/rollback/action2", "running", False, True, T0 + 7,
    )
    assert status(after, PLAN, T0 + 60).phase == "rolling_back"
    with pytest.raises(RolloutRefused, match="still working: webhook deploy_hook_url \\(running\\)"):
        finish_rollback(after, PLAN)
    with pytest.raises(RolloutRefused, match=r"it may have run\. It is not idempotent"):
        action_started(after, hook)
    retry = action_started(after, hook, retry_reason="checked the receiver: nothing arrived")
    assert retry[1]["attempt"] == 2 and retry[1]["retry_reason"] == "checked the receiver: nothing arrived"
    with pytest.raises(RolloutRefused, match="already finished; an action runs once"):
        action_started(after, undo)
    # Or the new leader reports it failed (interrupted), which a person can retry.
    log.add([action_failed(after, hook.id, error="interrupted: the leader stopped")], at=T0 + 30)
    assert status(log.state, PLAN, T0 + 30).phase == "action_failed"
    assert action_started(log.state, hook)[1]["attempt"] == 2


def test_an_idempotent_action_is_run_again_after_a_crash() -> None:
    log = started()
    log.add(rollback(log.state, "bad"), at=T0 + 5)
    _, undo, _ = planned_actions(log.state, PLAN)
    log.add([action_started(log.state, undo)], at=T0 + 6)
    [view] = [a for a in pending_actions(log.state, PLAN) if a.status == "running"]
    assert view.idempotent and not view.needs_confirmation
    assert action_started(log.state, undo)[1]["attempt"] == 2


def test_changed_stages_block_advancing_but_not_rolling_back() -> None:
    log = started()
    changed = PLAN.model_copy(update={"stages": PLAN.stages[1:]})
    with pytest.raises(RolloutRefused, match="the config's stages changed since run 1 started"):
        advance(log.state, changed, T0 + 999, gate_passing=True)
    assert status(log.state, changed, T0 + 999).stages_changed
    assert not auto_advance_due(log.state, changed, T0 + 999)
    rollback(log.state, "config moved on")


def test_the_fold_ignores_other_streams_seen_versions_and_older_runs() -> None:
    log = started()
    before = log.state
    other = Event(**{**log.events[0].__dict__, "stream": "rollout/other", "version": 99})
    assert before.apply(other) is before
    assert before.apply(log.events[0]) is before
    unknown = Event(**{**log.events[-1].__dict__, "version": before.version + 1, "type": "RolloutPainted"})
    assert before.apply(unknown).version == before.version + 1
    stale = Event(**{**log.events[-1].__dict__, "version": before.version + 1, "type": ACTION_STARTED,
                     "payload": {"run": 0, "action": "x"}})
    with pytest.raises(ValueError, match="runs count from 1"):
        before.apply(stale)


@pytest.mark.parametrize(("type", "payload", "words"), [
    (STAGE_ENTERED, {"run": 1, "index": 3, "name": "100%", "percent": 100, "groups": [], "allow": []}, "next is 1"),
    (STAGE_ENTERED, {"run": 1, "index": 1, "name": "10%", "percent": "lots", "groups": [], "allow": []}, "'percent'"),
    (ROLLOUT_STARTED, {"run": 2, "stages": ["a"]}, "still active"),
    (ROLLOUT_COMPLETED, {"run": 1}, "before the last stage"),
    (ROLLOUT_ADVANCED, {"run": 2}, "run 2, which has not started"),
    (ROLLBACK_STARTED, {"run": "one"}, "'run'"),
    ("ActionFinished", {"run": 1, "action": "nope", "detail": ""}, "not running"),
])
def test_the_fold_refuses_what_no_decider_writes(type: str, payload: dict[str, Any], words: str) -> None:
    log = started()
    event = Event(**{**log.events[-1].__dict__, "version": log.state.version + 1, "type": type, "payload": payload})
    with pytest.raises(ValueError, match=words):
        log.state.apply(event)


def test_the_event_type_names() -> None:
    assert {
        "RolloutStarted", "StageEntered", "RolloutAdvanced", "RolloutHeld", "RolloutResumed",
        "RollbackStarted", "RollbackFinished", "RolloutCompleted", "ActionStarted", "ActionFinished", "ActionFailed",
    } == EVENT_TYPES


# --- properties --------------------------------------------------------------------

SHORT = RolloutConfig.model_validate({
    "canary": "checkout-canary", "flag": "checkout_v2",
    "stages": [
        {"name": "internal", "groups": ["internal"], "bake": "0s"},
        {"name": "10%", "percent": 10, "bake": "30s", "actions": [{"run": ["true"]}]},
        {"name": "100%", "percent": 100, "bake": "1m", "advance": "auto"},
    ],
    "on_rollback": {"actions": [{"run": ["undo"], "idempotent": True}, {"webhook": "hook"}]},
})
"""Short bakes, so random runs get to the end."""

COMMANDS = [
    "start", "advance", "advance_auto", "complete", "hold", "hold_until", "resume", "rollback",
    "rollback_auto", "finish", "finish_accept", "action_ok", "action_fail", "action_crash",
    "action_retry", "leader",
]
WEIGHTS = {"advance": 6, "advance_auto": 6, "complete": 6, "leader": 4, "action_ok": 3, "resume": 3, "start": 3}
"""Progress is drawn more often than a rollback, so walks also reach complete."""
TROUBLE = {"rollback", "rollback_auto", "action_fail", "action_crash", "hold", "hold_until"}
"""Left out of calm walks, which then complete run after run."""
OVERRIDES = [None, None, "", "gate is wrong: OPS-1"]
ELAPSED = st.one_of(st.sampled_from([0, 1, 29, 30, 60]), st.integers(0, 200))


def _drive(log: Log, command: str, now: float, gate: bool, override: str | None) -> None:
    state = log.state
    if command == "start":
        changes = start(state, SHORT)
    elif command in ("advance", "advance_auto"):
        changes = advance(state, SHORT, now, gate_passing=gate, override=override, automatic=command == "advance_auto")
    elif command == "complete":
        changes = complete(state, SHORT, now, gate_passing=gate, override=override)
    elif command in ("hold", "hold_until"):
        changes = hold(state, now, "checking", until=now + 120 if command == "hold_until" else None)
    elif command == "resume":
        changes = resume(state, now)
    elif command in ("rollback", "rollback_auto"):
        auto = command == "rollback_auto"
        changes = rollback(state, "bad canary", automatic=auto, criterion="p95 > 1s" if auto else None,
                           evidence={"value": 1200} if auto else None)
    elif command in ("finish", "finish_accept"):
        changes = finish_rollback(state, SHORT, accept_failed="accepted" if command == "finish_accept" else None)
    elif command == "leader":  # a healthy leader catching up: every action, then the rollback's end
        while (pending := pending_actions(log.state, SHORT)) and pending[0].status != "failed":
            _act(log, "action_ok", now)
        if log.state.lifecycle == "rolling_back" and not pending:
            log.add(finish_rollback(log.state, SHORT), at=now, actor="conn-leader")
        return
    else:
        _act(log, command, now)
        return
    log.add(changes, at=now)


def _act(log: Log, command: str, now: float) -> None:
    """A leader's action runner: start the first pending action, and end it unless it "crashes"."""
    pending = pending_actions(log.state, SHORT)
    if not pending:
        return
    first = pending[0]
    planned = {p.id: p for p in planned_actions(log.state, SHORT)}.get(first.id)
    if first.status != "running" or command in ("action_crash", "action_retry"):
        if planned is None:
            return
        reason = "operator checked" if command == "action_retry" else None
        log.add([action_started(log.state, planned, retry_reason=reason)], at=now, actor="conn-leader")
    if command == "action_ok":
        log.add([action_finished(log.state, first.id)], at=now, actor="conn-leader")
    elif command == "action_fail":
        log.add([action_failed(log.state, first.id, error="exit 1")], at=now, actor="conn-leader")


def _check(log: Log, now: float) -> None:
    state = log.state
    assert 0 <= state.run == sum(e.type == ROLLOUT_STARTED for e in log.events)
    if state.run == 0:
        assert state.lifecycle == "pending"
    if state.stage is not None:
        assert 0 <= state.stage.index < len(state.stage_names) == len(SHORT.stages)
        assert state.stage.name == SHORT.stages[state.stage.index].name
    if state.lifecycle != "active":
        assert state.hold is None
    if state.lifecycle == "complete":
        assert state.stage is not None and state.stage.index == len(SHORT.stages) - 1
    assert (state.rollback is not None) == (state.lifecycle in ("rolling_back", "rolled_back"))
    assert all(key.startswith(f"run{state.run}/") for key in state.actions)
    view = status(state, SHORT, now)
    if view.phase == "held":
        assert state.lifecycle == "active" and state.held_at(now) is not None
    if view.phase in ("complete", "rolled_back"):
        assert state.held_at(now) is None
    # Two runs are never active: each start follows the end of the run before it.
    ended = True
    for event in log.events:
        if event.type == ROLLOUT_STARTED:
            assert ended
            ended = False
        elif event.type in (ROLLOUT_COMPLETED, "RollbackFinished"):
            ended = True
    # Rollback is reachable from every state that is not rolling back or rolled back.
    if state.run > 0 and state.lifecycle in ("active", "complete"):
        [(kind, _)] = rollback(state, "always reachable")
        assert kind == ROLLBACK_STARTED
        assert log.copy().add([(kind, _)], at=now).lifecycle == "rolling_back"


def _succeeds(log: Log, command: str, now: float, gate: bool, override: str | None) -> bool:
    """Whether ``command`` writes anything now (tried on a copy of the log)."""
    trial = log.copy()
    refusal = None
    try:
        _drive(trial, command, now, gate, override)
    except RolloutRefused as refused:
        refusal = str(refused)
    assert refusal is None or refusal.strip()  # a refusal always says why
    return refusal is None and len(trial.events) > len(log.events)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_sequence_of_commands_reaches_an_illegal_state(data: st.DataObject) -> None:
    """A random walk: mostly commands that the state accepts (so walks go deep: complete,
    rolled back, run 2 and on), sometimes any command (refusals must leave no trace)."""
    log = Log()
    now = T0
    calm = data.draw(st.booleans(), label="calm")
    for _ in range(data.draw(st.integers(1, 40), label="steps")):
        now += data.draw(ELAPSED, label="elapsed")
        gate = data.draw(st.booleans(), label="gate passes")
        override = data.draw(st.sampled_from(OVERRIDES), label="override")
        kinds = list(dict.fromkeys(COMMANDS))
        legal = [
            c for c in kinds if not (calm and c in TROUBLE) and _succeeds(log, c, now, gate, override)
            for _ in range(WEIGHTS.get(c, 1))
        ]
        anything = data.draw(st.integers(0, 4), label="any command") == 0
        command = data.draw(st.sampled_from(kinds if anything or not legal else legal), label="command")
        before = len(log.events)
        try:
            _drive(log, command, now, gate, override)
        except RolloutRefused:
            assert len(log.events) == before
        _check(log, now)
    # Every prefix of what the deciders wrote folds (a crash can stop the log anywhere):
    # folding event by event from nothing visits each prefix's state once.
    state = RolloutState("checkout")
    for event in log.events:
        if event.type in (ROLLOUT_ADVANCED, ROLLOUT_COMPLETED):  # never while held or baking
            assert state.stage is not None and state.held_at(event.time) is None
            assert event.time - state.stage.entered_at >= SHORT.stages[state.stage.index].bake
        state = state.apply(event)
        status(state, SHORT, now)
    assert state == log.state == fold("checkout", log.events)
