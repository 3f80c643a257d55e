"""The faults an operator can inject into a demo service, and their validation.

A fault set arrives as untrusted JSON (``POST /_demo/faults``) or as keyword
arguments (``DemoFleet.set_faults``). Both go through :func:`parse_faults`, so
a typo or a wrong type is refused with a message naming the key, never half
applied and never a crash of the service.

A fault set *replaces* the previous one: ``{}`` clears everything, and
``{"latency_ms": 800}`` means "only 800 ms extra latency", whatever was set
before. That keeps every injection a complete statement of the service's state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from console.errors import CommandError
from console.model.text import suggest

HealthFault = Literal["up", "degraded", "down"]

MAX_LATENCY_MS = 30_000.0
"""An injected delay longer than this would only look like a hung test."""
MAX_BREAKER_OPENS = 1_000_000


@dataclass(frozen=True)
class Faults:
    """The faults in force on one service; ``None`` means "behave normally"."""

    latency_ms: float | None = None
    """Added to every simulated request and to the real health responses."""
    error_rate: float | None = None
    """Ratio 0–1 of simulated requests that fail; replaces the baseline."""
    health: HealthFault | None = None
    """"down" answers 503, "degraded" answers 200 with status degraded."""
    cache_hit_rate: float | None = None
    """Ratio 0–1 of simulated requests served from cache."""
    memory_pct: float | None = None
    """Reported memory use, 0–100."""
    circuit_breaker_opens: int | None = None
    """Reported circuit-breaker opens in the last 10 minutes."""

    def as_dict(self) -> dict[str, Any]:
        """Only the faults that are set, in the JSON shape they were given."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    @property
    def active(self) -> bool:
        """Whether any fault is set."""
        return bool(self.as_dict())


FAULT_KEYS = tuple(f.name for f in fields(Faults))


def parse_faults(raw: object) -> Faults:
    """Validate an untrusted fault set.

    Raises:
        CommandError: naming every bad key and value (unknown keys get the nearest known one).
    """
    if not isinstance(raw, Mapping):
        raise CommandError(
            f'faults must be a JSON object such as {{"latency_ms": 800}}, not {_kind(raw)}'
        )
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in FAULT_KEYS:
            hint = suggest(str(key), FAULT_KEYS)
            problems.append(
                f"{str(key)[:60]!r}: unknown fault.{hint} Known: {', '.join(FAULT_KEYS)}"
            )
            continue
        try:
            checked = _CHECKS[key](value)
        except ValueError as e:
            problems.append(f"{key}: {e}")
            continue
        if checked is not None:
            values[key] = checked
    if problems:
        raise CommandError("invalid faults: " + "; ".join(problems))
    return Faults(**values)


def _number(value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{_kind(value)} is not a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{value!r} is outside {low:g}–{high:g}")
    return number


def _latency(value: object) -> float | None:
    return None if value is None else _number(value, 0.0, MAX_LATENCY_MS)


def _ratio(value: object) -> float | None:
    return None if value is None else _number(value, 0.0, 1.0)


def _percent(value: object) -> float | None:
    return None if value is None else _number(value, 0.0, 100.0)


def _health(value: object) -> HealthFault | None:
    if value is None or value == "up":
        return None
    if value == "degraded":
        return "degraded"
    if value == "down":
        return "down"
    raise ValueError(f'{_kind(value)} is not one of "up", "degraded", "down"')


def _count(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{_kind(value)} is not a whole number")
    if not 0 <= value <= MAX_BREAKER_OPENS:
        raise ValueError(f"{value} is outside 0–{MAX_BREAKER_OPENS}")
    return value


_CHECKS: dict[str, Any] = {
    "latency_ms": _latency,
    "error_rate": _ratio,
    "health": _health,
    "cache_hit_rate": _ratio,
    "memory_pct": _percent,
    "circuit_breaker_opens": _count,
}


def _kind(value: object) -> str:
    """A short, safe description of an untrusted value for an error message."""
    if isinstance(value, str):
        return repr(value[:40] + ("…" if len(value) > 40 else ""))
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    return f"a JSON {'array' if isinstance(value, list) else type(value).__name__}"
