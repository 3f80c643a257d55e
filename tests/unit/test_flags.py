"""Flags: config errors name their key; state is a fold; flagd's own evaluator decides.

Every evaluation here goes through openfeature-flagd-core (via FlagEvaluator,
or FlagdCore directly on the exported document); nothing in these tests
computes a bucket itself.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from console.config import parse_config
from console.errors import ConfigError
from console.model.flagd import FlagEvaluator, flagd_document, render_document
from console.model.flags import (
    FLAG_CHANGED,
    FLAG_CREATED,
    GROUP_CREATED,
    TOTAL_WEIGHT,
    FlagSet,
    FlagState,
    flag_event,
    fold,
    group_event,
    percent_to_weight,
)
from tests.fixtures.flags import PLANS_CONFIG, EventLog, flagd_answer, flagd_schema_problems

KEYS = [f"user-{i}" for i in range(2000)]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="conn.toml")
    return caught.value.problems


def flag_set(*states: FlagState, groups: dict[str, list[str]] | None = None) -> FlagSet:
    """A FlagSet folded from real-looking events (the way the engine builds it)."""
    log = EventLog()
    for name, keys in (groups or {}).items():
        log.add(f"flag/@{name}", *group_event(name, sorted(keys), None))
    for state in states:
        log.add(f"flag/{state.name}", *flag_event(state, None, change="created", evaluator="2.0.0"))
    return fold(log.events)


def on_keys(flags: FlagSet, name: str, keys: list[str]) -> set[str]:
    evaluator = FlagEvaluator(flags)
    return {k for k in keys if evaluator.evaluate(name, k).variant == flags.flags[name].state.on_variant}


# --- config --------------------------------------------------------------------


def test_plan_flags_parse_into_states() -> None:
    config = parse_config(PLANS_CONFIG).flags
    assert set(config.groups) == {"internal", "beta-testers", "early-adopters"}
    states = {n: FlagState.from_definition(n, d) for n, d in config.define.items()}
    assert states["calendar_refactor"].on_weight == 0
    assert states["calendar_refactor"].groups == ("internal",)
    assert states["aiSummarization"].on_weight == 5000
    assert states["smartFolders"].on_weight == 2500
    assert states["checkout_v2"].on_weight == 50  # 0.5% exactly
    assert states["voiceMessages"].enabled is False
    ranker = states["search_ranker"]
    assert (ranker.on_variant, ranker.off_variant, ranker.value_of("neural")) == ("neural", "legacy", "dense-v3")


def test_export_path_defaults_to_the_state_dir(tmp_path: object) -> None:
    from pathlib import Path

    config = parse_config("").flags
    assert config.export_path(Path("/state")) == Path("/state/flags.json")
    home = Path("~").expanduser()
    assert parse_config('[flags]\nexport = "~/f.json"').flags.export_path(Path("/s")) == home / "f.json"


def test_percent_outside_range_names_the_key() -> None:
    assert problems("[flags.define.a]\npercent = 120") == ["flags.define.a.percent: 120 is outside 0–100%"]
    assert problems('[flags.define.a]\npercent = "-1%"') == ['flags.define.a.percent: "-1%" is outside 0–100%']


def test_weights_must_be_integers() -> None:
    (line,) = problems('[flags.define.a]\npercent = "0.005%"')
    assert line.startswith('flags.define.a.percent: "0.005%": 0.005% would need a non-integer flagd weight')
    assert percent_to_weight(0.5) == 50
    assert percent_to_weight(12.34) == 1234
    with pytest.raises(ValueError, match="non-integer"):
        percent_to_weight(33.333)


def test_unknown_group_names_suggest_the_near_one() -> None:
    text = '[flags.groups]\nbeta-testers = ["b1"]\n[flags.define.a]\ngroups = ["beta-tester"]'
    assert problems(text) == [
        "flags.define.a.groups[0]: \"beta-tester\": is not a group in [flags.groups]. "
        "Did you mean 'beta-testers'?"
    ]


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"Cannot declare \('flags', 'define', 'a'\) twice"):
        parse_config("[flags.define.a]\n[flags.define.a]\n")
    text = '[flags.groups]\ng = ["u1", "u2", "u1"]\n[flags.define.a]\ngroups = ["g", "g"]\nallow = ["k", "k"]'
    assert sorted(problems(text)) == [
        'flags.define.a.allow[1]: "k": is listed twice in allow (also at [0])',
        'flags.define.a.groups[1]: "g": is listed twice',
        'flags.groups.g[2]: "u1": is listed twice in group g (also at [0])',
    ]


def test_variants_must_match_default_variant() -> None:
    text = '[flags.define.a]\nvariants = { yes = true, no = false }\ndefault_variant = "off"\non_variant = "yes"'
    assert problems(text) == [
        'flags.define.a.default_variant: "off" is not one of the variants (yes, no).'
    ]
    same = '[flags.define.a]\ndefault_variant = "on"'
    assert problems(same) == [
        'flags.define.a.on_variant: "on": on_variant must differ from default_variant (the off variant)'
    ]
    mixed = '[flags.define.a]\nvariants = { on = true, off = "no" }'
    assert problems(mixed) == [
        "flags.define.a.variants: variant values must be all booleans or all strings (flagd types a flag)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = """
[flags]
exprt = "x"
[flags.groups]
"bad group" = []
[flags.define."bad flag"]
percnt = 3
[flags.define.b]
percent = 200
groups = ["nope"]
allow = ["@team", ""]
"""
    lines = problems(text)
    assert "flags.exprt: unknown key. Did you mean 'export'?" in lines
    assert "flags.define.bad flag.percnt: unknown key. Did you mean 'percent'?" in lines
    assert any(line.startswith('flags.define.bad flag: "bad flag": is not a valid flag name') for line in lines)
    assert any(line.startswith('flags.groups.bad group: "bad group": is not a valid group name') for line in lines)
    assert "flags.define.b.percent: 200 is outside 0–100%" in lines
    assert 'flags.define.b.groups[0]: "nope": is not a group in [flags.groups].' in lines
    assert any(line.startswith('flags.define.b.allow[0]: "@team": is not a targeting key') for line in lines)
    assert any(line.startswith('flags.define.b.allow[1]: "": is not a targeting key') for line in lines)
    assert len(lines) == 8


# --- fold ------------------------------------------------------------------------


def test_state_is_the_fold_of_its_stream() -> None:
    log = EventLog()
    created = FlagState("checkout_v2", allow=("qa-1",))
    log.add("flag/checkout_v2", *flag_event(created, None, change="created", evaluator="2.0.0"))
    ten = replace(created, on_weight=1000)
    log.add("flag/checkout_v2", *flag_event(ten, created, change="percent", evaluator="2.0.0"),
            actor="bob", reason="stage 2")
    log.add("rollout/checkout", "RolloutStarted", {"x": 1})  # other streams are ignored
    log.add("flag/checkout_v2", "SomethingNewer", {"after": "?"})  # unknown types too
    flags = fold(log.events)
    record = flags.flags["checkout_v2"]
    assert record.state == ten
    assert record.version == 2
    assert flags.version_of("flag/checkout_v2") == 3  # the unknown event still counts for appends
    assert (record.changed_by, record.reason, record.change) == ("bob", "stage 2", "percent")
    assert fold(log.events, flags) == flags  # replaying seen events changes nothing
    assert log.events[1].type == FLAG_CHANGED
    assert log.events[0].type == FLAG_CREATED
    assert log.events[1].payload["before"]["on_weight"] == 0
    assert log.events[1].payload["after"]["on_weight"] == 1000


def test_fold_refuses_a_malformed_state() -> None:
    log = EventLog()
    log.add("flag/x", FLAG_CREATED, {"after": {"enabled": True}})
    with pytest.raises(ValueError, match="flag x: malformed state"):
        fold(log.events)
    log = EventLog()
    state = FlagState("x").to_payload() | {"on_weight": TOTAL_WEIGHT + 1}
    log.add("flag/x", FLAG_CREATED, {"after": state})
    with pytest.raises(ValueError, match="out of range"):
        fold(log.events)


def test_groups_fold_from_their_own_streams() -> None:
    log = EventLog()
    log.add("flag/@internal", *group_event("internal", ["u1"], None))
    log.add("flag/@internal", *group_event("internal", ["u1", "u2"], ["u1"]))
    flags = fold(log.events)
    assert flags.group_keys("internal") == ("u1", "u2")
    assert log.events[0].type == GROUP_CREATED
    assert "internal" not in flags.flags


# --- flagd JSON --------------------------------------------------------------------


def test_document_shapes_follow_the_precedence() -> None:
    base = FlagState("f", on_weight=1000, allow=("qa",), groups=("internal",))
    flags = flag_set(
        base, replace(base, name="killed", killed=True), replace(base, name="off", enabled=False),
        FlagState("zero"), FlagState("pct", on_weight=2500),
        groups={"internal": ["u1", "u2"]},
    )
    document = flagd_document(flags)
    f = document["flags"]
    assert f["f"]["targeting"] == {"if": [
        {"in": [{"var": "targetingKey"}, ["qa", "u1", "u2"]]}, "on",
        {"fractional": [["on", 1000], ["off", 9000]]},
    ]}
    assert f["killed"]["state"] == "ENABLED"
    assert "targeting" not in f["killed"]
    assert f["killed"]["defaultVariant"] == "off"
    assert f["killed"]["metadata"] == {"killed": True}
    assert f["off"]["state"] == "DISABLED"
    assert "targeting" not in f["zero"]
    assert f["pct"]["targeting"] == {"fractional": [["on", 2500], ["off", 7500]]}
    assert document["$schema"] == "https://flagd.dev/schema/v0/flags.json"


def test_export_is_valid_flagd() -> None:
    config = parse_config(PLANS_CONFIG).flags
    states = [FlagState.from_definition(n, d) for n, d in config.define.items()]
    states.append(replace(states[0], name="killed_one", killed=True))
    flags = flag_set(*states, groups=config.groups)
    document = flagd_document(flags)
    assert flagd_schema_problems(document) == []
    data = render_document(document)
    assert json.loads(data) == document
    assert render_document(flagd_document(flags)) == data  # stable bytes, stable hash
    core = FlagdCore()
    assert sorted(core.set_flags_and_get_changed_keys(data.decode())) == sorted(document["flags"])


def test_schema_check_catches_what_flagd_would_refuse() -> None:
    bad = {"flags": {"f": {"state": "ON", "variants": {"on": True, "off": "no"}, "defaultVariant": "x",
                           "targeting": {"fractional": [["on", 1.5]]}, "extra": 1}}, "nope": 1}
    assert flagd_schema_problems(bad) == [
        "unknown top-level keys ['nope']",
        "flags.f: unknown keys ['extra']",
        "flags.f.state is not ENABLED or DISABLED",
        "flags.f.variants mixes types ['boolean', 'string']",
        "flags.f.defaultVariant 'x' is not a variant",
        "flags.f.targeting.fractional[0]: not [variant, integer weight >= 0]",
        "flags.f.targeting.fractional: weights sum to 0",
    ]


# --- evaluation: precedence -------------------------------------------------------


def test_killed_beats_everything() -> None:
    state = FlagState("f", killed=True, enabled=False, on_weight=TOTAL_WEIGHT, allow=("qa",), groups=("g",))
    flags = flag_set(state, groups={"g": ["u1"]})
    evaluator = FlagEvaluator(flags)
    for key in ("qa", "u1", "user-7"):
        result = evaluator.evaluate("f", key)
        assert (result.variant, result.value, result.reason) == ("off", False, "killed")
    # flagd itself serves the off variant whatever default the application passes.
    assert flagd_answer(render_document(flagd_document(flags)), "f", "qa", default=True) == ("off", False)


def test_disabled_beats_allowlist_and_groups() -> None:
    flags = flag_set(FlagState("f", enabled=False, on_weight=TOTAL_WEIGHT, allow=("qa",), groups=("g",)),
                     groups={"g": ["u1"]})
    for key in ("qa", "u1", "user-7"):
        result = FlagEvaluator(flags).evaluate("f", key)
        assert (result.variant, result.value, result.reason) == (None, False, "disabled")


def test_allowlist_and_groups_beat_the_percentage() -> None:
    flags = flag_set(FlagState("f", on_weight=0, allow=("qa",), groups=("internal",)),
                     groups={"internal": ["u1"]})
    evaluator = FlagEvaluator(flags)
    assert evaluator.evaluate("f", "qa").reason == "allowlist"
    assert evaluator.evaluate("f", "qa").detail == "TARGETING_MATCH, allowlist"
    assert evaluator.evaluate("f", "u1").detail == "TARGETING_MATCH, group internal"
    assert evaluator.evaluate("f", "u1").variant == "on"
    outsider = evaluator.evaluate("f", "user-1")
    assert (outsider.variant, outsider.reason) == ("off", "default")


def test_fractional_then_default() -> None:
    flags = flag_set(FlagState("all", on_weight=TOTAL_WEIGHT), FlagState("none"))
    evaluator = FlagEvaluator(flags)
    assert {evaluator.evaluate("all", k).reason for k in KEYS[:50]} == {"fractional"}
    assert {evaluator.evaluate("all", k).variant for k in KEYS[:50]} == {"on"}
    assert {(evaluator.evaluate("none", k).variant, evaluator.evaluate("none", k).reason)
            for k in KEYS[:50]} == {("off", "default")}


def test_string_variants() -> None:
    state = FlagState("ranker", variants=(("legacy", "bm25"), ("neural", "dense")),
                      on_variant="neural", off_variant="legacy", on_weight=5000)
    flags = flag_set(state)
    evaluator = FlagEvaluator(flags)
    values = {evaluator.evaluate("ranker", k).value for k in KEYS[:200]}
    assert values == {"bm25", "dense"}
    document = render_document(flagd_document(flags))
    for key in KEYS[:200]:
        ours = evaluator.evaluate("ranker", key)
        assert flagd_answer(document, "ranker", key, default="bm25") == (ours.variant, ours.value)


def test_bad_keys_are_refused_before_flagd_sees_them() -> None:
    evaluator = FlagEvaluator(flag_set(FlagState("f")))
    for key in ("", "@group", "a\x1b[2J", "x" * 201):
        with pytest.raises(ValueError, match="not a targeting key"):
            evaluator.evaluate("f", key)


# --- properties, with the real evaluator ---------------------------------------------

flag_names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
targeting_keys = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda k: not k.startswith("@"))
weights = st.integers(min_value=0, max_value=TOTAL_WEIGHT)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=flag_names, low=weights, high=weights, keys=st.lists(targeting_keys, min_size=1, max_size=40))
def test_raising_the_percentage_never_turns_anyone_off(name: str, low: int, high: int, keys: list[str]) -> None:
    low, high = sorted((low, high))
    at_low = on_keys(flag_set(FlagState(name, on_weight=low)), name, keys)
    at_high = on_keys(flag_set(FlagState(name, on_weight=high)), name, keys)
    assert at_low <= at_high


def test_monotonic_because_the_on_bucket_never_moves() -> None:
    """flagd's buckets are ranges of one hash in list order, so the on range grows in place
    only while it stays at the same end. Conn always writes it first; switching sides
    between two stages would turn people off."""

    def on_at(weight: int, *, on_first: bool) -> set[str]:
        buckets = [["on", weight], ["off", TOTAL_WEIGHT - weight]]
        document = {"flags": {"f": {"state": "ENABLED", "variants": {"on": True, "off": False},
                                    "defaultVariant": "off",
                                    "targeting": {"fractional": buckets if on_first else buckets[::-1]}}}}
        core = FlagdCore()
        core.set_flags(json.dumps(document))
        return {k for k in KEYS[:1000]
                if core.resolve_boolean_value("f", False, EvaluationContext(k)).value}

    assert on_at(1000, on_first=True) <= on_at(5000, on_first=True)
    assert on_at(1000, on_first=False) <= on_at(5000, on_first=False)
    flapped = on_at(1000, on_first=True) - on_at(5000, on_first=False)
    assert len(flapped) > 50  # most of the first 10% would be turned off at 50%
    ours = flagd_document(flag_set(FlagState("f", on_weight=1234)))["flags"]["f"]["targeting"]
    assert ours["fractional"][0] == ["on", 1234]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=flag_names, b=flag_names, weight_a=weights, other_weight_a=weights, weight_b=weights)
def test_changing_one_flag_never_changes_another(
    a: str, b: str, weight_a: int, other_weight_a: int, weight_b: int
) -> None:
    if a == b:
        b = b + "_other"
    before = flag_set(FlagState(a, on_weight=weight_a), FlagState(b, on_weight=weight_b))
    after = flag_set(FlagState(a, on_weight=other_weight_a), FlagState(b, on_weight=weight_b))
    assert on_keys(before, b, KEYS[:300]) == on_keys(after, b, KEYS[:300])


@settings(max_examples=15, deadline=None, derandomize=True)
@given(a=flag_names, b=flag_names)
def test_buckets_of_two_flags_are_independent(a: str, b: str) -> None:
    """Two flags at 50% share about a quarter of users, not half: each flag hashes its own key.

    derandomize makes the examples fixed, so the bound below cannot flake.
    """
    if a == b:
        b = b + "_other"
    flags = flag_set(FlagState(a, on_weight=5000), FlagState(b, on_weight=5000))
    keys = KEYS[:2000]
    on_a, on_b = on_keys(flags, a, keys), on_keys(flags, b, keys)
    both = len(on_a & on_b) / len(keys)
    expected = (len(on_a) / len(keys)) * (len(on_b) / len(keys))
    assert abs(both - expected) < 0.06  # dependence (same bucket) would give ~0.25 more


# --- uniformity over 100,000 fixed keys ----------------------------------------------

CHI2_999 = {1: 10.828, 9: 27.877}
"""Chi-square critical values at 99.9% for 1 and 9 degrees of freedom."""


def _chi_square(counts: list[int], expected: list[float]) -> float:
    return sum((c - e) ** 2 / e for c, e in zip(counts, expected, strict=True))


@pytest.mark.slow
def test_buckets_are_uniform_over_100k_keys() -> None:
    """Keys user-0..99999 are fixed, so the statistic is deterministic (never flaky)."""
    keys = [f"user-{i}" for i in range(100_000)]
    # Ten equal buckets, on the same flagd document shape Conn writes (shorthand
    # fractional, bucketing by [flagKey, targetingKey]).
    variants = {f"b{i}": f"b{i}" for i in range(10)}
    document = {"flags": {"checkout_v2": {
        "state": "ENABLED", "variants": variants, "defaultVariant": "b0",
        "targeting": {"fractional": [[name, 1000] for name in variants]}}}}
    core = FlagdCore()
    core.set_flags(json.dumps(document))
    counts = dict.fromkeys(variants, 0)
    for key in keys:
        counts[core.resolve_string_value("checkout_v2", "", EvaluationContext(key)).value] += 1
    assert _chi_square(list(counts.values()), [10_000.0] * 10) < CHI2_999[9]
    # And Conn's own flag at 10%: the on share is 10% within chance.
    evaluator = FlagEvaluator(flag_set(FlagState("checkout_v2", on_weight=1000)))
    on = sum(evaluator.evaluate("checkout_v2", key).value is True for key in keys)
    assert _chi_square([on, len(keys) - on], [10_000.0, 90_000.0]) < CHI2_999[1]
