"""The shared wording rules: "did you mean" (one function for config, flags, demo faults) and counts."""

from __future__ import annotations

import pytest

from console.config import parse_config
from console.demo.faults import parse_faults
from console.errors import CommandError, ConfigError
from console.model.text import plural, suggest


@pytest.mark.parametrize(
    ("name", "among", "hint"),
    [
        ("percnt", ["percent", "allow"], " Did you mean 'percent'?"),
        ("beta", ["beta-testers", "internal"], " Did you mean 'beta-testers'?"),
        ("check", ["checkout_v2_with_a_long_name", "search"], " Did you mean 'checkout_v2_with_a_long_name'?"),
        ("CHECK", ["checkout_v2_with_a_long_name"], " Did you mean 'checkout_v2_with_a_long_name'?"),
        ("zzz", ["percent", "allow"], ""),
        ("", ["percent"], ""),
        ("anything", [], ""),
    ],
)  # fmt: skip
def test_suggest(name: str, among: list[str], hint: str) -> None:
    assert suggest(name, among) == hint


def test_suggest_takes_any_iterable_once() -> None:
    assert suggest("memroy_pct", (k for k in ["memory_pct", "latency_ms"])) == " Did you mean 'memory_pct'?"


def test_config_flags_and_faults_suggest_the_same_way() -> None:
    """The three places that used to spell their own "did you mean" now share one."""
    with pytest.raises(ConfigError) as config:
        parse_config('environment = "x"\n[flags]\nexprt = "f.json"\n')
    assert "flags.exprt: unknown key. Did you mean 'export'?" in str(config.value)
    with pytest.raises(ConfigError) as group:
        parse_config('[flags.groups]\nbeta-testers = ["a"]\n[flags.define.f]\ngroups = ["beta"]\n')
    assert "Did you mean 'beta-testers'?" in str(group.value)
    with pytest.raises(CommandError, match=r"'latency_mss': unknown fault\. Did you mean 'latency_ms'\?"):
        parse_faults({"latency_mss": 800})
    with pytest.raises(CommandError, match=r"Did you mean 'cache_hit_rate'\?"):
        parse_faults({"cache": 0.5})  # a prefix of a known key, too far for difflib alone


@pytest.mark.parametrize(
    ("count", "noun", "many", "text"),
    [
        (0, "service", None, "0 services"),
        (1, "service", None, "1 service"),
        (2, "service", None, "2 services"),
        (1, "key", None, "1 key"),
        (1204, "event", None, "1,204 events"),
        (2, "series", "series", "2 series"),
        (-1, "key", None, "-1 keys"),
    ],
)
def test_plural(count: int, noun: str, many: str | None, text: str) -> None:
    assert plural(count, noun, many) == text
