"""Durations and percentages as operators write them, and values as they read them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.model.units import (
    NO_DATA,
    format_duration,
    format_value,
    parse_duration,
    parse_percent,
)


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


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        # milliseconds: one decimal, then whole, then seconds from 1 s
        (74.44, "ms", "74.4 ms"),
        (0.42, "ms", "0.4 ms"),
        (99.96, "ms", "100 ms"),
        (420.4, "ms", "420 ms"),
        (999.96, "ms", "1.00 s"),
        (1200.0, "ms", "1.20 s"),
        (12_460.0, "ms", "12.5 s"),
        (125_000.0, "ms", "125 s"),
        (1_250_000.0, "ms", "1,250 s"),
        # percent: two decimals below 10%, one from 10%
        (0.0, "%", "0.00%"),
        (0.0415, "%", "0.04%"),
        (0.42, "%", "0.42%"),
        (4.149, "%", "4.15%"),
        (9.996, "%", "10.0%"),
        (12.46, "%", "12.5%"),
        (93.12, "%", "93.1%"),
        (100.0, "%", "100.0%"),
        (250.0, "%", "250.0%"),
        # never rounded to 0 or to 100 when it is not
        (0.001, "%", "<0.01%"),
        (99.97, "%", ">99.9%"),
        # other units, or none: four significant digits, whole from 1,000
        (0.0, "", "0"),
        (12.345, "", "12.35"),
        (0.4212, "", "0.4212"),
        (0.0001234, "", "0.000123"),
        (123_456.0, "req/s", "123,456 req/s"),
        (7.0, "opens", "7 opens"),
        # no value is never 0; odd values still read as something
        (None, "ms", NO_DATA),
        (None, "%", NO_DATA),
        (math.inf, "ms", "∞ ms"),
        (math.nan, "", "NaN"),
        (1e32, "ms", "1e+32 ms"),
    ],
)
def test_values_read_the_same_everywhere(value: float | None, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


@given(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["ms", "%", "", "req/s"]))
def test_any_value_formats_to_one_short_line(value: float, unit: str) -> None:
    text = format_value(value, unit)
    assert text and "\n" not in text
    assert len(text) <= 30
