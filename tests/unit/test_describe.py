"""describe_change: what an event changed, from its payload, in the words every view uses."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.model.describe import describe_change
from console.model.events import GENESIS_HASH, Event
from console.model.flags import FlagState, flag_event, group_event

BASE = FlagState(name="checkout_v2", on_weight=1000)
"""Enabled, 10%, no allowlist."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def event(kind: str, payload: Mapping[str, Any], stream: str = "flag/checkout_v2") -> Event:
    return Event(
        position=7, id="e7", stream=stream, version=3, type=kind, time=1_767_225_600.0,
        actor="alice", reason="because", payload=payload, prev_hash=GENESIS_HASH, hash="f" * 64,
    )  # fmt: skip


def change(before: FlagState, **after: Any) -> str:
    """The description of the flag event that takes ``before`` to ``before`` with ``after``."""
    kind, payload = flag_event(
        dataclasses.replace(before, **after), before, change="test", evaluator="2.0"
    )
    return describe_change(event(kind, payload))


@pytest.mark.parametrize(
    ("before", "after", "text"),
    [
        (BASE, {"killed": True}, "kill"),
        (dataclasses.replace(BASE, killed=True), {"killed": False}, "kill lifted"),
        (dataclasses.replace(BASE, enabled=False), {"enabled": True}, "off → on"),
        (BASE, {"enabled": False}, "on → off"),
        (dataclasses.replace(BASE, on_weight=0), {"on_weight": 1000}, "0% → 10%"),
        (BASE, {"on_weight": 50}, "10% → 0.5%"),
        (BASE, {"allow": ("qa-1",)}, "allowlist +qa-1"),
        (BASE, {"allow": ("qa-1", "qa-2")}, "allowlist +qa-1, +qa-2"),
        (dataclasses.replace(BASE, allow=("qa-1", "qa-2", "qa-3")), {"allow": ()},
         "allowlist −qa-1, −qa-2, +1 more"),
        (dataclasses.replace(BASE, allow=("qa-1", "qa-2", "qa-3", "qa-4")), {"allow": ("qa-4",)},
         "allowlist −qa-1, −qa-2, +1 more"),
        (dataclasses.replace(BASE, allow=("a",)), {"allow": ("b",)}, "allowlist +b, −a"),
        (BASE, {"groups": ("internal",)}, "groups +internal"),
        (dataclasses.replace(BASE, groups=("internal", "beta")), {"groups": ("beta",)}, "groups −internal"),
        # `conn flag on` on a killed, disabled flag: both at once, kill first
        (dataclasses.replace(BASE, killed=True, enabled=False), {"killed": False, "enabled": True},
         "kill lifted, off → on"),
        (BASE, {"description": "new words"}, "description changed"),
        (BASE, {"on_variant": "off", "off_variant": "on"}, "on variant changed, off variant changed"),
    ],
)  # fmt: skip
def test_every_kind_of_flag_change_says_what_changed(
    before: FlagState, after: dict[str, Any], text: str
) -> None:
    assert change(before, **after) == text


def test_a_created_flag_says_its_rollout_and_switch() -> None:
    kind, payload = flag_event(BASE, None, change="created", evaluator="2.0")
    assert describe_change(event(kind, payload)) == "created (10%, on)"
    off = dataclasses.replace(BASE, enabled=False)
    assert describe_change(event(*flag_event(off, None, change="created", evaluator="2"))) == (
        "created (10%, off)"
    )
    killed = dataclasses.replace(BASE, killed=True, allow=("a", "b"), groups=("internal",))
    assert describe_change(event(*flag_event(killed, None, change="created", evaluator="2"))) == (
        "created (10%, killed, 2 keys allowed, 1 group)"
    )


def test_a_change_that_changed_nothing_says_so() -> None:
    kind, payload = flag_event(BASE, BASE, change="percent", evaluator="2.0")
    assert describe_change(event(kind, payload)) == "percent"
    payload.pop("change")
    assert describe_change(event(kind, payload)) == "no change"


def test_groups_say_how_many_keys_and_what_moved() -> None:
    created = event(*group_event("internal", ["a", "b", "c"], None), stream="flag/@internal")
    assert describe_change(created) == "group internal created: 3 keys"
    changed = event(*group_event("internal", ["a", "b", "d"], ["a", "b"]), stream="flag/@internal")
    assert describe_change(changed) == "group internal: 3 keys (+1 −0)"
    shrunk = event(*group_event("internal", ["a"], ["a", "b", "c"]), stream="flag/@internal")
    assert describe_change(shrunk) == "group internal: 1 key (+0 −2)"
    kind, payload = group_event("internal", ["a"], None)
    payload.pop("group")
    assert describe_change(event(kind, payload, "flag/@internal")) == "group internal created: 1 key"


@pytest.mark.parametrize(
    ("kind", "payload", "text"),
    [
        ("ReleaseStarted", {"stage": 1}, "ReleaseStarted"),
        ("IncidentFiled", {"change": "sev2"}, "IncidentFiled (sev2)"),
        ("FlagChanged", {"percent": 10}, "FlagChanged"),  # an old or foreign shape
        ("FlagChanged", {"change": "kill", "before": None, "after": None}, "FlagChanged (kill)"),
        ("FlagCreated", {"after": "on"}, "FlagCreated"),
        ("FlagGroupChanged", {"after": {"keys": "a,b"}}, "FlagGroupChanged"),
        ("", {}, "event"),
    ],
)
def test_unknown_types_and_odd_payloads_fall_back_to_the_type(
    kind: str, payload: dict[str, Any], text: str
) -> None:
    assert describe_change(event(kind, payload)) == text


def test_fields_of_the_wrong_type_read_as_a_question_mark_not_a_crash() -> None:
    before = {"enabled": True, "killed": False, "on_weight": "10%", "allow": "qa-1", "groups": None}
    after = {"enabled": "yes", "killed": 0, "on_weight": 10**9, "allow": [1, None], "groups": {}}
    text = describe_change(event("FlagChanged", {"before": before, "after": after}))
    assert text == "? → ?, allowlist +1, +None"


def test_hostile_keys_and_types_are_cleaned_and_clipped() -> None:
    """Markup stays literal text (views escape it); escapes and controls are gone."""
    hostile = "[bold red]qa[/]\x1b]8;;http://evil/\x07x\x1b]8;;\x07\r\x1b[2J\u202e" + "k" * 200
    text = change(BASE, allow=(hostile,))
    assert text.startswith("allowlist +[bold red]qa[/]x")
    assert not _CONTROL.search(text)
    assert len(text) <= len("allowlist +") + 40
    odd = describe_change(event("Evil\x1b[31mType\n" + "t" * 100, {"change": "\x07kill\x9b2J"}))
    assert odd.startswith("EvilType ")
    assert not _CONTROL.search(odd)
    group = event(*group_event("x\x1b[2Jy", ["a"], None), stream="flag/@x")
    assert describe_change(group) == "group xy created: 1 key"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)
_states = st.fixed_dictionaries(
    {},
    optional={
        k: _json | st.just([]) | st.integers(0, 10_000)
        for k in ("enabled", "killed", "on_weight", "allow", "groups", "keys", "description")
    },
)


@given(
    st.sampled_from(["FlagCreated", "FlagChanged", "FlagGroupCreated", "FlagGroupChanged", "X"]),
    st.fixed_dictionaries({}, optional={"before": _states | _json, "after": _states | _json,
                                        "change": _json, "group": _json}),
)  # fmt: skip
def test_any_payload_gets_one_clean_line(kind: str, payload: dict[str, Any]) -> None:
    text = describe_change(event(kind, payload, "flag/@g" if "Group" in kind else "flag/f"))
    assert text
    assert not _CONTROL.search(text)
    assert "\n" not in text


def test_the_line_a_concurrency_error_shows_says_what_the_winner_changed() -> None:
    kind, payload = flag_event(dataclasses.replace(BASE, on_weight=7500), BASE, change="percent", evaluator="2")
    line = event(kind, payload).describe()
    assert line == "alice 10% → 75% on flag/checkout_v2 v3 at 2026-01-01 00:00:00Z (because)"
    assert event("stage.advanced", {}).describe().startswith("alice stage.advanced on ")


def test_rollout_events_read_as_what_happened() -> None:
    from console.model.describe import describe_change
    from console.model.events import Event

    def event(kind: str, payload: dict[str, object]) -> Event:
        return Event(1, "id", "rollout/checkout", 1, kind, 0.0, "alice", "", payload, "0" * 64, "0" * 64)

    assert describe_change(event("RolloutStarted", {"run": 2, "stages": ["internal", "10%"]})) == (
        "run 2 started (internal → 10%)")
    assert describe_change(event("StageEntered", {"run": 1, "index": 1, "name": "10%"})) == "stage 2 (10%) entered"
    assert describe_change(event("RolloutAdvanced", {"override": "hotfix", "automatic": False})) == (
        "advanced over a failing gate: hotfix")
    assert describe_change(event("RollbackStarted", {"automatic": True, "criterion": "error_rate > 5% for 5m"})) == (
        "rollback started (automatic: error_rate > 5% for 5m)")
    assert describe_change(event("RollbackFinished", {"run": 1})) == "run 1 rolled back"
    assert describe_change(event("ActionFailed", {"action": "run1/rollback/action1",
                                                  "error": "exit 1\x1b[31m: boom"})) == (
        "run1/rollback/action1 FAILED: exit 1: boom")
    assert describe_change(event("ActionStarted", {"action": 7})) == "an action started"


@pytest.mark.parametrize(("kind", "payload", "words"), [
    ("IncidentOpened", {"severity": "SEV2", "title": "checkout \x1b[2Jerrors"}, "SEV2 declared: checkout errors"),
    ("IncidentStatusChanged", {"from": "identified", "status": "postmortem_done"},
     "status: identified → postmortem done"),
    ("IncidentSeverityChanged", {"from": "SEV3", "severity": "SEV1"}, "severity: SEV3 → SEV1"),
    ("IncidentNoted", {"text": "canary only"}, "note: canary only"),
    ("HealthChanged", {"from": "ok", "to": "critical", "why": "errors 12% > 5.00%"},
     "ok → critical (errors 12% > 5.00%)"),
    ("runbook.step_finished", {"step": 2, "title": "restart", "exit_code": 0, "duration": 1.25},
     "step 2 (restart) finished: exit 0, in 1.2s"),
    ("runbook.step_skipped", {"step": 3, "reason": "not needed"}, "step 3 skipped: not needed"),
    ("runbook.step_failed", {"step": 4, "outcome": "failed", "exit_code": 1, "duration": 0.6,
                             "error": "exit 1 in 0.6s"}, "step 4 failed: exit 1, in 0.6s"),
    ("runbook.step_failed", {"step": 4, "outcome": "timed_out", "exit_code": None, "duration": 30.0,
                             "error": "timed out after 30s"}, "step 4 timed out: in 30.0s"),
    ("runbook.step_failed", {"step": 2, "outcome": "failed", "exit_code": None, "duration": 0.0,
                             "error": "bash: not found"}, "step 2 failed: in 0.0s, bash: not found"),
])
def test_incident_health_and_runbook_events_in_words(kind: str, payload: dict[str, Any], words: str) -> None:
    assert describe_change(event(kind, payload)) == words
