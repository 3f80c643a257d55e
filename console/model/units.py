"""Durations and percentages as operators write them ("500ms", "5m", "10%").

Config models use the ``Duration`` and ``Percent`` annotated types so a bad
value is reported with an example of a good one.
"""

from __future__ import annotations

import math
import re
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

Percent = Annotated[float, BeforeValidator(parse_percent)]
"""A percentage 0–100, written in config as "10%" or 10."""
