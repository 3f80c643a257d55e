"""Durations and percentages as operators write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.model.units import format_duration, parse_duration, parse_percent


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0), (3, 3.0), ("1.5s", 1.5)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["fast", "5", "-1s", "5 minutes", True, None, [], -2])
def test_bad_durations_show_examples(bad: object) -> None:
    with pytest.raises(ValueError, match='examples: "500ms"'):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**7))
def test_duration_round_trip(milliseconds: int) -> None:
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "value"), [("10%", 10.0), ("0.5%", 0.5), (100, 100.0), ("25", 25.0)])
def test_percentages(text: str | int, value: float) -> None:
    assert parse_percent(text) == value


@pytest.mark.parametrize("bad", ["101%", -1, "ten", True, "nan"])
def test_bad_percentages(bad: object) -> None:
    with pytest.raises(ValueError, match=r"percentage|outside 0–100%"):
        parse_percent(bad)
