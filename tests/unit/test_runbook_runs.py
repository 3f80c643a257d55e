"""Runbook runs: the fold of ``runbook/<run-id>`` and the deciders, with explicit times.

Every state here is a fold of events the deciders produced (round-tripped
through JSON, as the store returns them), never a hand-built state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.model.events import GENESIS_HASH, Event, event_hash
from console.model.runbook_runs import (
    MAX_EXCERPT,
    RUN_STARTED,
    STEP_CONFIRMED,
    STEP_FAILED,
    STEP_FINISHED,
    STEP_STARTED,
    Change,
    RunbookRefused,
    RunState,
    abandon_run,
    acknowledge_step,
    fail_step,
    finish_run,
    finish_step,
    fold,
    preview_step,
    record_output,
    retry_step,
    rollback_offer,
    run_stream,
    skip_step,
    start_run,
    start_step,
    step_command,
    tick_check,
)
from console.model.runbooks import Runbook, parse_runbook

T0 = 1_767_225_600.0
FENCE = "```"

RUNBOOK = f"""---
title: Checkout errors
vars:
  ROLLOUT: checkout
secrets: [deploy_token]
---

## Look

{FENCE}sh {{"name": "look"}}
conn status --no-fail
{FENCE}

## Decide

- [ ] compared the times
- [ ] asked the team

## Read this

Nothing runs here.

## Canary check

{FENCE}sh {{"name": "canary", "conn.rollback": "undo"}}
curl -fsS "${{HEALTH_URL}}"
{FENCE}

## Undo

{FENCE}sh {{"name": "undo", "conn.dangerous": true}}
conn rollback "${{ROLLOUT}}" --yes --reason "incident ${{INCIDENT}}"
{FENCE}

## Deploy

{FENCE}sh {{"name": "deploy", "conn.confirm": "deploy ${{SERVICE}}"}}
curl -H "Authorization: ${{DEPLOY_TOKEN}}" -X POST "${{HEALTH_URL}}/deploy"
{FENCE}
"""
BOOK = parse_runbook("checkout-errors", RUNBOOK)
VALUES = {"SERVICE": "checkout", "INCIDENT": "42", "HEALTH_URL": "http://h"}


class Log:
    """The events of one run as the store would return them, and the state folded so far."""

    def __init__(self, run_id: str = "r1") -> None:
        self.run_id = run_id
        self.events: list[Event] = []
        self.state = RunState(run_id)

    def add(self, changes: Iterable[Change], *, at: float = T0, actor: str = "alice") -> RunState:
        for type, payload in changes:
            prev = self.events[-1].hash if self.events else GENESIS_HASH
            fields: dict[str, Any] = dict(
                id=f"e{len(self.events) + 1}", stream=run_stream(self.run_id), version=len(self.events) + 1,
                type=type, time=at, actor=actor, reason="",
                payload=json.loads(json.dumps(payload)), prev_hash=prev,
            )
            event = Event(position=len(self.events) + 1, hash=event_hash(**fields), **fields)
            self.events.append(event)
            self.state = self.state.apply(event)
        return self.state


def started(book: Runbook = BOOK) -> Log:
    log = Log()
    log.add(start_run(log.state, book, incident="42", values=VALUES))
    return log


def through_step_3(log: Log) -> None:
    """Run step 1, tick both checks of step 2, acknowledge step 3."""
    log.add(start_step(log.state, BOOK, 1), at=T0 + 1)
    log.add(finish_step(log.state, 1, duration=0.5, excerpt="ok"), at=T0 + 2)
    log.add(tick_check(log.state, BOOK, 2, 1), at=T0 + 3)
    log.add(tick_check(log.state, BOOK, 2, "asked the team"), at=T0 + 10)
    log.add(acknowledge_step(log.state, BOOK, 3), at=T0 + 11)


# --- the happy path and the views --------------------------------------------------------------


def test_a_run_records_its_runbook_values_and_steps() -> None:
    log = started()
    state = log.state
    assert (state.lifecycle, state.runbook, state.runbook_version, state.incident) == (
        "active", "checkout-errors", BOOK.version, "42"
    )
    assert state.vars == {"HEALTH_URL": "http://h", "INCIDENT": "42", "ROLLOUT": "checkout", "SERVICE": "checkout"}
    assert [(s.number, s.name, s.kind, s.status) for s in state.steps] == [
        (1, "look", "command", "pending"), (2, "decide", "check", "pending"), (3, "read-this", "note", "pending"),
        (4, "canary", "command", "pending"), (5, "undo", "command", "pending"), (6, "deploy", "command", "pending"),
    ]
    assert (state.current_step, state.next_step, state.failed_step, state.started_by) == (1, 1, None, "alice")


def test_steps_go_in_order_checks_finish_on_the_last_tick_and_notes_on_reading() -> None:
    log = started()
    with pytest.raises(RunbookRefused, match=r"step 1 \(Look\) is pending: do it first, or skip it with a reason"):
        start_step(log.state, BOOK, 4)
    log.add(preview_step(log.state, BOOK, 1))
    assert (log.state.record(1).status, log.state.record(1).command) == ("previewed", "conn status --no-fail")
    changes = start_step(log.state, BOOK, 1)
    assert changes == [(STEP_STARTED, {
        "step": 1, "command": "conn status --no-fail", "attempt": 1, "retry_reason": None, "rollback_of": None,
    })]
    log.add(changes, at=T0 + 1)
    assert (log.state.step_status(1, live=True), log.state.next_step, log.state.running_step) == ("running", None, 1)
    log.add(record_output(log.state, 1, "line 1"))
    assert log.state.record(1).excerpt == "line 1"
    log.add(finish_step(log.state, 1, duration=0.5, excerpt="line 1\nline 2"), at=T0 + 2)
    one = log.state.record(1)
    assert (one.status, one.exit_code, one.duration, one.excerpt, one.attempts) == (
        "succeeded", 0, 0.5, "line 1\nline 2", 1
    )
    with pytest.raises(RunbookRefused, match="has no command: tick its checks"):
        start_step(log.state, BOOK, 2)
    first = tick_check(log.state, BOOK, 2, 1)
    assert first == [("runbook.check_ticked", {"step": 2, "item": "compared the times"})]
    log.add(first, at=T0 + 3)
    with pytest.raises(RunbookRefused, match="'compared the times' is already ticked"):
        tick_check(log.state, BOOK, 2, "compared the times")
    with pytest.raises(RunbookRefused, match="step 2 has no check 'nope'"):
        tick_check(log.state, BOOK, 2, "nope")
    last = tick_check(log.state, BOOK, 2, 2)
    assert last[-1] == (STEP_FINISHED, {"step": 2, "exit_code": None, "duration": None, "excerpt": ""})
    log.add(last, at=T0 + 10)
    assert (log.state.record(2).status, log.state.record(2).duration) == ("succeeded", 7.0)
    with pytest.raises(RunbookRefused, match=r"step 4 \(Canary check\) is a command step, not a note"):
        acknowledge_step(log.state, BOOK, 4)
    log.add(acknowledge_step(log.state, BOOK, 3), at=T0 + 11)
    assert (log.state.current_step, log.state.next_step) == (4, 4)


def test_a_failed_step_stops_the_run_and_offers_its_rollback_out_of_turn() -> None:
    log = started()
    through_step_3(log)
    log.add(start_step(log.state, BOOK, 4), at=T0 + 20)
    log.add(fail_step(log.state, 4, outcome="failed", duration=1.25, error="exit 22 in 1.2s",
                      excerpt="curl: (22) 503", exit_code=22), at=T0 + 21)
    four = log.state.record(4)
    assert (four.status, four.exit_code, four.error, four.duration) == ("failed", 22, "exit 22 in 1.2s", 1.25)
    assert (log.state.failed_step, log.state.current_step, log.state.next_step) == (4, 4, None)
    with pytest.raises(RunbookRefused, match=r"step 4 \(Canary check\) is failed: retry it or skip it with a reason"):
        start_step(log.state, BOOK, 6, typed="deploy checkout")
    with pytest.raises(RunbookRefused, match=r"already ran \(failed\); retry it or skip it"):
        start_step(log.state, BOOK, 4)
    assert rollback_offer(log.state, BOOK) == 5
    with pytest.raises(RunbookRefused, match=r"step 5 \(Undo\) is dangerous: type 'undo' to run it"):
        start_step(log.state, BOOK, 5)
    with pytest.raises(RunbookRefused, match="what was typed is not 'undo'; step 5 did not run"):
        start_step(log.state, BOOK, 5, typed="Undo ")
    changes = start_step(log.state, BOOK, 5, typed="undo")
    assert changes == [
        (STEP_CONFIRMED, {"step": 5}),
        (STEP_STARTED, {"step": 5, "command": 'conn rollback "checkout" --yes --reason "incident 42"',
                        "attempt": 1, "retry_reason": None, "rollback_of": 4}),
    ]
    log.add(changes, at=T0 + 30)
    assert (log.state.record(5).confirmed, log.state.record(5).rollback_of) == (True, 4)
    log.add(finish_step(log.state, 5, duration=2.0), at=T0 + 32)
    assert rollback_offer(log.state, BOOK) is None
    with pytest.raises(RunbookRefused, match="skipping a step needs a reason"):
        skip_step(log.state, 4, "  ")
    log.add(skip_step(log.state, 4, "rolled back instead"), at=T0 + 33)
    assert (log.state.record(4).status, log.state.record(4).reason) == ("skipped", "rolled back instead")
    assert log.state.current_step == 6  # step 5 already ran as the rollback
    with pytest.raises(RunbookRefused, match=r"step 6 \(Deploy\) needs a confirmation: type 'deploy checkout' to run it"):
        start_step(log.state, BOOK, 6)
    started_6 = start_step(log.state, BOOK, 6, typed="deploy checkout")
    assert started_6[1][1]["command"] == 'curl -H "Authorization: ${DEPLOY_TOKEN}" -X POST "http://h/deploy"'
    log.add(started_6, at=T0 + 40)
    with pytest.raises(RunbookRefused, match=r"step 6 \(Deploy\) is running; 1 step left"):
        finish_run(log.state)
    log.add(finish_step(log.state, 6, duration=0.1), at=T0 + 41)
    log.add(finish_run(log.state), at=T0 + 42, actor="bob")
    assert (log.state.lifecycle, log.state.done, log.state.duration, log.state.ended_by) == (
        "finished", True, 42.0, "bob"
    )
    with pytest.raises(RunbookRefused, match="run r1 is finished"):
        skip_step(log.state, 6, "late")
    assert log.state == fold("r1", log.events)


def test_a_retried_step_is_confirmed_again_and_counts_its_attempts() -> None:
    log = started()
    through_step_3(log)
    log.add(start_step(log.state, BOOK, 4))
    log.add(fail_step(log.state, 4, outcome="timed_out", duration=60.0, error="killed after the 1m timeout"))
    assert log.state.step_status(4) == "timed_out"
    log.add(retry_step(log.state, BOOK, 4))
    assert (log.state.record(4).status, log.state.record(4).attempts) == ("running", 2)
    log.add(fail_step(log.state, 4, outcome="cancelled", duration=3.0, error="cancelled after 3.0s"))
    log.add(start_step(log.state, BOOK, 5, typed="undo"))
    log.add(fail_step(log.state, 5, outcome="failed", duration=1.0, error="exit 1", exit_code=1))
    assert log.state.record(5).confirmed is False
    with pytest.raises(RunbookRefused, match="type 'undo' to run it"):
        retry_step(log.state, BOOK, 5)
    log.add(retry_step(log.state, BOOK, 5, typed="undo"))
    assert (log.state.record(5).attempts, log.state.record(5).rollback_of) == (2, 4)


# --- interrupted: started, and no runner alive ---------------------------------------------------


def test_a_step_without_a_runner_reads_interrupted_and_runs_again_only_with_a_reason() -> None:
    log = started()
    log.add(start_step(log.state, BOOK, 1), at=T0 + 1)
    log.add(record_output(log.state, 1, "half way"), at=T0 + 2)
    state = log.state
    assert (state.step_status(1), state.step_status(1, live=True)) == ("interrupted", "running")
    assert (state.interrupted_step(), state.interrupted_step(live=True)) == (1, None)
    with pytest.raises(RunbookRefused, match="still running; cancel it first"):
        retry_step(state, BOOK, 1, reason="again", live=True)
    with pytest.raises(RunbookRefused, match=r"was interrupted: it may have run\. It runs again only with a typed reason"):
        retry_step(state, BOOK, 1)
    changes = retry_step(state, BOOK, 1, reason="the SSH session dropped")
    assert [kind for kind, _ in changes] == [STEP_FAILED, STEP_STARTED]
    assert changes[0][1]["outcome"] == "interrupted" and changes[0][1]["excerpt"] == "half way"
    assert changes[1][1]["retry_reason"] == "the SSH session dropped"
    log.add(changes, at=T0 + 100)
    one = log.state.record(1)
    assert (one.status, one.attempts, one.reason, one.started_at) == ("running", 2, "the SSH session dropped", T0 + 100)


def test_an_interrupted_step_can_be_recorded_skipped_or_abandoned() -> None:
    log = started()
    log.add(start_step(log.state, BOOK, 1))
    with pytest.raises(RunbookRefused, match=r"step 1 \(Look\) is running; cancel it first"):
        skip_step(log.state, 1, "gone", live=True)
    with pytest.raises(RunbookRefused, match="step 1 is running; cancel it first"):
        abandon_run(log.state, "gone", live=True)
    recorded = Log()
    recorded.add([(e.type, dict(e.payload)) for e in log.events])
    recorded.add(fail_step(recorded.state, 1, outcome="interrupted", duration=None, error="no runner"))
    assert recorded.state.record(1).status == "interrupted" and recorded.state.failed_step == 1
    log.add(skip_step(log.state, 1, "ran it by hand"))
    assert log.state.record(1).status == "skipped" and log.state.running_step is None
    other = started()
    other.add(start_step(other.state, BOOK, 1))
    other.add(abandon_run(other.state, "wrong runbook"))
    assert (other.state.lifecycle, other.state.record(1).status, other.state.abandon_reason) == (
        "abandoned", "interrupted", "wrong runbook"
    )


# --- refusals ----------------------------------------------------------------------------------


def test_starting_a_run_needs_every_value_and_never_a_secret() -> None:
    state = RunState("r1")
    with pytest.raises(RunbookRefused, match="checkout-errors needs a value for HEALTH_URL, INCIDENT, SERVICE"):
        start_run(state, BOOK, incident=None, values={})
    with pytest.raises(RunbookRefused, match="needs a value for HEALTH_URL"):
        start_run(state, BOOK, incident=None, values={**VALUES, "HEALTH_URL": ""})
    with pytest.raises(RunbookRefused, match="DEPLOY_TOKEN is a secret: steps get it from the secret store"):
        start_run(state, BOOK, incident=None, values={**VALUES, "DEPLOY_TOKEN": "s3cret"})
    with pytest.raises(RunbookRefused, match="lower: variables are capitals"):
        start_run(state, BOOK, incident=None, values={**VALUES, "lower": "x"})
    with pytest.raises(RunbookRefused, match="NEWLINE: variables are capitals, digits and '_', with one line of text"):
        start_run(state, BOOK, incident=None, values={**VALUES, "NEWLINE": "a\nb"})
    log = started()
    with pytest.raises(RunbookRefused, match="run r1 has already started"):
        start_run(log.state, BOOK, incident=None, values=VALUES)
    with pytest.raises(RunbookRefused, match="has no steps to run"):
        start_run(state, parse_runbook("empty", "# Nothing\n"), incident=None, values={})


def test_a_changed_runbook_is_refused_rather_than_guessed() -> None:
    log = started()
    edited = parse_runbook("checkout-errors", RUNBOOK.replace("conn status --no-fail", "conn status"))
    with pytest.raises(RunbookRefused, match=r"checkout-errors changed since run r1 started \(version [0-9a-f]{12}, now [0-9a-f]{12}\); start a new run"):
        start_step(log.state, edited, 1)


def test_commands_before_the_run_and_on_missing_steps_are_refused() -> None:
    with pytest.raises(RunbookRefused, match="run r1 has not started"):
        start_step(RunState("r1"), BOOK, 1)
    log = started()
    with pytest.raises(RunbookRefused, match="run r1 has no step 9"):
        start_step(log.state, BOOK, 9)
    with pytest.raises(RunbookRefused, match=r"step 1 \(Look\) is not running \(pending\)"):
        finish_step(log.state, 1, duration=1.0)
    log.add(start_step(log.state, BOOK, 1))
    with pytest.raises(RunbookRefused, match=r"a duration of -1\.0 seconds is not possible"):
        finish_step(log.state, 1, duration=-1.0)
    with pytest.raises(RunbookRefused, match="'exploded' is not a way a step fails"):
        fail_step(log.state, 1, outcome="exploded", duration=1.0, error="?")  # type: ignore[arg-type]


def test_an_excerpt_is_bounded_keeping_head_and_tail() -> None:
    log = started()
    log.add(start_step(log.state, BOOK, 1))
    text = "h" * MAX_EXCERPT + "t" * MAX_EXCERPT
    excerpt = finish_step(log.state, 1, duration=1.0, excerpt=text)[0][1]["excerpt"]
    assert excerpt.startswith("h" * 1000) and excerpt.endswith("t" * 1000)
    assert "65,536 characters omitted" in excerpt and len(excerpt) < MAX_EXCERPT + 100


def test_previews_fill_values_and_never_secrets() -> None:
    log = started()
    assert step_command(log.state, BOOK, BOOK.step("deploy")) == (
        'curl -H "Authorization: ${DEPLOY_TOKEN}" -X POST "http://h/deploy"'
    )
    assert step_command(log.state, BOOK, BOOK.step("decide")) == ""


# --- the fold refuses logs no decider wrote ------------------------------------------------------


def raw(log: Log, type: str, payload: dict[str, Any]) -> None:
    log.add([(type, payload)])


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ([("runbook.step_started", {"step": 4, "command": "x"})], "for step 4 while step 1 is pending"),
        ([("runbook.step_started", {"step": 1, "command": "x"}),
          ("runbook.step_finished", {"step": 1, "exit_code": 3, "duration": 1})],
         "with a non-zero exit code"),
        ([("runbook.step_started", {"step": 1, "command": "x"}),
          ("runbook.step_finished", {"step": 1, "exit_code": 0, "duration": -2})],
         "has a negative or endless duration"),
        ([("runbook.step_finished", {"step": 1, "exit_code": 0, "duration": 1})], "for step 1, which is pending"),
        ([("runbook.check_ticked", {"step": 1, "item": "x"})], "a command step that is pending"),
        ([("runbook.step_skipped", {"step": 1, "reason": " "})], "without a reason"),
        ([("runbook.finished", {})], "before every step succeeded or was skipped"),
        ([("runbook.step_started", {"step": 5, "command": "x", "rollback_of": 4})],
         "runs step 5 as the rollback of step 4, which did not stop the run"),
        ([("runbook.step_output", {"step": 7, "excerpt": ""})], "names step 7; the run has 6"),
        ([("runbook.started", {})], "but the run has already started"),
        ([("runbook.abandoned", {"reason": "x"}), ("runbook.step_skipped", {"step": 1, "reason": "x"})],
         "but the run is abandoned"),
    ],
)
def test_the_fold_refuses_what_no_decider_writes(changes: list[Change], problem: str) -> None:
    log = started()
    with pytest.raises(ValueError, match=problem):
        log.add(changes)


def test_the_fold_ignores_other_streams_unknown_types_and_seen_versions() -> None:
    log = started()
    state = log.state
    event = log.events[0]
    assert state.apply(event) is state
    other = Event(**{**event.__dict__, "stream": "runbook/other", "version": 2})
    assert state.apply(other) is state
    log.add([("runbook.something_new", {"x": 1})])
    assert log.state.version == 2 and log.state.steps == state.steps
    assert fold("r1", log.events) == log.state
    assert RunState("r1").stream == "runbook/r1"
    with pytest.raises(ValueError, match="is not a stream name"):
        run_stream("bad id")
    assert event.type == RUN_STARTED


# --- no sequence of deciders reaches an impossible state --------------------------------------


Action = tuple[str, int, Any, bool]
"""(command, step, argument, live): one decider call the walk can make."""


def _actions() -> list[Action]:
    right = {step.number: step.confirmation and step.confirmation.replace("${SERVICE}", "checkout")
             for step in BOOK.steps}
    actions: list[Action] = []
    for number in range(1, 8):
        actions += [("preview", number, None, False), ("output", number, None, False),
                    ("finish", number, 1.5, False), ("ack", number, None, False)]
        actions += [("start", number, typed, False) for typed in {None, "wrong", right.get(number)}]
        actions += [("retry", number, (typed, reason), live) for typed in {None, right.get(number)}
                    for reason in (None, "because") for live in (False, True)]
        actions += [("fail", number, outcome, False) for outcome in ("failed", "timed_out", "cancelled", "interrupted")]
        actions += [("tick", number, item, False) for item in (1, 2, 3)]
        actions += [("skip", number, reason, live) for reason in ("", "because") for live in (False, True)]
    return [*actions, ("finish_run", 0, None, False), ("abandon", 0, "", False), ("abandon", 0, "stop", True),
            ("abandon", 0, "stop", False)]


ACTIONS = _actions()


def _decide(state: RunState, action: Action) -> list[Change]:
    command, number, argument, live = action
    if command == "preview":
        return preview_step(state, BOOK, number)
    if command == "start":
        return start_step(state, BOOK, number, typed=argument)
    if command == "retry":
        typed, reason = argument
        return retry_step(state, BOOK, number, typed=typed, reason=reason, live=live)
    if command == "output":
        return record_output(state, number, "out")
    if command == "finish":
        return finish_step(state, number, duration=argument)
    if command == "fail":
        return fail_step(state, number, outcome=argument, duration=None if argument == "interrupted" else 1.0,
                         error="e", exit_code=1 if argument == "failed" else None)
    if command == "tick":
        return tick_check(state, BOOK, number, argument)
    if command == "ack":
        return acknowledge_step(state, BOOK, number)
    if command == "skip":
        return skip_step(state, number, argument, live=live)
    if command == "finish_run":
        return finish_run(state)
    return abandon_run(state, argument, live=live)


def _legal(state: RunState) -> list[Action]:
    legal = []
    for action in ACTIONS:
        try:
            _decide(state, action)
        except RunbookRefused:
            continue
        legal.append(action)
    return legal


def _check(state: RunState) -> None:
    assert sum(step.status == "running" for step in state.steps) <= 1
    for step in state.steps:
        if step.status == "succeeded" or step.attempts:
            for earlier in state.steps[: step.number - 1]:
                if earlier.status not in ("succeeded", "skipped"):
                    # only a conn.rollback runs out of turn, past the step that failed
                    assert step.rollback_of is not None and earlier.number >= step.rollback_of, (step, earlier)
        if step.duration is not None:
            assert step.duration >= 0
        if step.status in ("running", "failed", "timed_out", "cancelled"):
            assert step.attempts >= 1
        if step.kind == "check":
            assert set(step.ticked) <= set(BOOK.step(step.number).checks)
            if step.status == "succeeded":
                assert set(step.ticked) == set(BOOK.step(step.number).checks)
        if step.kind != "command":
            assert step.attempts == 0 and step.rollback_of is None
    if state.lifecycle == "finished":
        assert all(step.status in ("succeeded", "skipped") for step in state.steps)
    if state.done:
        assert state.running_step is None and state.next_step is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_sequence_of_deciders_reaches_an_impossible_state(data: st.DataObject) -> None:
    """A random walk: mostly commands the state accepts (so walks go deep: failures, rollbacks
    out of turn, retries, finished and abandoned runs), sometimes any command (a refusal
    must leave no trace)."""
    log = started()
    now = T0
    for _ in range(data.draw(st.integers(1, 40), label="commands")):
        now += data.draw(st.floats(0, 30), label="elapsed")
        anything = data.draw(st.integers(0, 4), label="any command") == 0
        legal = [] if anything else _legal(log.state)
        if data.draw(st.integers(0, 9), label="may abandon") > 0:  # else walks rarely go deep
            legal = [action for action in legal if action[0] != "abandon"]
        offered = rollback_offer(log.state, BOOK)
        if offered is not None and data.draw(st.booleans(), label="take the rollback"):
            legal = [action for action in legal if action[:2] == ("start", offered)] or legal
        action = data.draw(st.sampled_from(legal or ACTIONS), label="action")
        before = len(log.events)
        try:
            log.add(_decide(log.state, action), at=now)
        except RunbookRefused:
            assert len(log.events) == before
        _check(log.state)
    # Every prefix folds (a crash can stop the log anywhere), to the same state.
    state = RunState("r1")
    for event in log.events:
        state = state.apply(event)
        _check(state)
    assert state == log.state == fold("r1", log.events)
