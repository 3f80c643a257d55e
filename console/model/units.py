"""Durations and percentages as operators write them ("500ms", "5m", "10%"), and
signal values as operators read them ("74.4 ms", "1.20 s", "0.42%").

Config models use the ``Duration`` and ``Percent`` annotated types so a bad
value is reported with an example of a good one. :func:`format_value` is the
one spelling of a signal's value: the services table, the panels and
``conn status`` all call it, so the same number never reads two ways.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_EXAMPLES = '(examples: "500ms", "2s", "5m", "1h")'


def parse_duration(value: Any) -> float:
    """Seconds from ``"500ms"``, ``"2s"``, ``"5m"``, ``"1h"``, ``"1d"`` or a number of seconds.

    Raises:
        ValueError: with a message that shows good examples.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration {DURATION_EXAMPLES}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration {DURATION_EXAMPLES}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration {DURATION_EXAMPLES}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 0.5 -> "500ms", 300 -> "5m", 90 -> "90s"."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


UNTIL_EXAMPLES = "a duration from now (30m, 2h), a time of day (17:00) or an ISO-8601 time (2026-11-29T17:00Z)"


def parse_until(text: str, now: float) -> float:
    """When a hold ends: a duration from ``now`` ("30m"), an ISO-8601 date and time, or a
    time of day (the next one: "17:00" tonight, or tomorrow once it has passed); local
    time unless it says.

    Raises:
        ValueError: none of these (the message shows each form).
    """
    text = text.strip()
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            of_day = clock_time.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a time: give {UNTIL_EXAMPLES}") from None
        zone = of_day.tzinfo or datetime.fromtimestamp(now).astimezone().tzinfo
        today = datetime.fromtimestamp(now, zone).date()
        moment = datetime.combine(today, of_day.replace(tzinfo=None), zone)
        if moment.timestamp() <= now:
            moment += timedelta(days=1)
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def parse_percent(value: Any) -> float:
    """A percentage 0–100 from ``"10%"``, ``"0.5%"``, ``10`` or ``"10"``.

    Raises:
        ValueError: when the value is not a number or lies outside 0–100.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a percentage (examples: \"10%\", 0.5, 100)")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            number = float(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a percentage (examples: \"10%\", 0.5, 100)"
            ) from None
    else:
        raise ValueError(f"{value!r} is not a percentage (examples: \"10%\", 0.5, 100)")
    if not math.isfinite(number) or not 0 <= number <= 100:
        raise ValueError(f"{value!r} is outside 0–100%")
    return number


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""Seconds, written in config as "500ms", "2s", "5m"."""

NO_DATA = "no data"
"""What a missing value reads as: never "0", which would be a value."""


def format_value(value: float | None, unit: str) -> str:
    """A signal's value with its unit, as an on-call engineer reads it at a glance.

    * Milliseconds: one decimal below 100 ms ("74.4 ms"), whole below 1 s
      ("420 ms"), then seconds with three significant digits ("1.20 s",
      "12.5 s", "125 s"): a latency past a second reads in seconds.
    * Percent: two decimals below 10% ("0.04%", "4.15%"), one from 10%
      ("12.5%", "93.1%"). A value that is not zero never reads as zero
      ("<0.01%") and one just under 100 never reads as 100 (">99.9%"):
      "0.00%" errors and "100.0%" hits are exact.
    * Anything else (a count, "req/s", a configured unit): four significant
      digits ("0.4212", "12.35"), whole with thousands separators from 1,000
      ("123,456 req/s"); past 10^15 (only a broken source says that) in
      scientific notation ("1e+32 ms").

    Rounding decides the step, so 999.96 ms reads "1.00 s", not "1000.0 ms".

    Args:
        value: the value, or None when there is none.
        unit: "ms", "%", or the signal's configured unit ("" for none).

    Returns:
        The text, never cut; :data:`NO_DATA` for None.
    """
    if value is None:
        return NO_DATA
    if not math.isfinite(value):
        number = "NaN" if math.isnan(value) else "∞" if value > 0 else "-∞"
    elif abs(value) >= _HUGE:  # a broken source, not a reading: short beats exact
        number = f"{value:.3g}"
    elif unit == "ms":
        if round(abs(value)) < 1000:
            return _with_unit(_tiered(value, ((100, 1), (1000, 0))), "ms")
        return _with_unit(_tiered(value / 1000, ((10, 2), (100, 1))), "s")
    elif unit == "%":
        number = _percent(value)
    elif value == 0:
        number = "0"
    elif round(abs(value)) >= 1000:
        number = f"{value:,.0f}"
    else:
        number = f"{value:.4g}" if abs(value) >= 0.001 else f"{value:.3g}"
    return _with_unit(number, unit)


_HUGE = 1e15


def _percent(value: float) -> str:
    if 0 < value < 0.005:
        return "<0.01"
    if 99.95 <= value < 100:
        return ">99.9"
    return _tiered(value, ((10, 2), (1000, 1)))


def _tiered(value: float, tiers: tuple[tuple[float, int], ...]) -> str:
    """``value`` with the decimals of the first tier whose limit its rounded size is under.

    Past the last tier: whole, with thousands separators.
    """
    for limit, decimals in tiers:
        if round(abs(value), decimals) < limit:
            return f"{value:.{decimals}f}"
    return f"{value:,.0f}"


def _with_unit(number: str, unit: str) -> str:
    if not unit:
        return number
    return f"{number}{unit}" if unit == "%" else f"{number} {unit}"


Percent = Annotated[float, BeforeValidator(parse_percent)]
"""A percentage 0–100, written in config as "10%" or 10."""
