"""Triage: how bad each service is, which signal says so, and in what words.

One rule for every view: the services table orders rows by :func:`rank`,
the header counts :func:`summary`, the worst-signal column, ``conn status``
and the agent's log name the signal with :func:`breach_text`
("5xx rate 7.7% > 5%"). Later, rollout gates reuse the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from console.model.live import ServiceLive, SignalValue, ThresholdView
from console.model.thresholds import at_or_past
from console.model.units import format_value

Trouble = Literal["down", "critical", "warning", "stale", "ok"]
"""How bad a service is, worst first."""

TROUBLE_ORDER: tuple[Trouble, ...] = ("down", "critical", "warning", "stale", "ok")
"""The order of the services table (worst first) and of the header's summary."""

_SIGNAL_RANK = {"critical": 0, "warning": 1}


def breaches(live: ServiceLive | None) -> tuple[SignalValue, ...]:
    """Every signal past a level, worst first: critical ones, then warnings.

    Within a state the row's order holds (p50, p95, p99, error_rate, then
    named signals). The first is :func:`worst_signal`; the rest are what the
    services table counts as "+N".
    """
    if live is None:
        return ()
    judged = [s for s in live.signals if s.state in _SIGNAL_RANK]
    return tuple(sorted(judged, key=lambda s: _SIGNAL_RANK[s.state]))


def worst_signal(live: ServiceLive | None) -> SignalValue | None:
    """The signal in the worst judged state (critical before warning), None when all are fine.

    Ties keep the row's order (p50, p95, p99, error_rate, then named signals).
    """
    found = breaches(live)
    return found[0] if found else None


def trouble(live: ServiceLive | None, *, stale: bool) -> Trouble:
    """The service's trouble: down, then a critical signal, a warning (or degraded), stale, ok.

    A stale row is judged "stale" whatever it said last: its values are not current.
    """
    if stale or live is None:
        return "stale"
    if live.health == "down":
        return "down"
    worst = worst_signal(live)
    if worst is not None and worst.state == "critical":
        return "critical"
    if (worst is not None and worst.state == "warning") or live.health == "degraded":
        return "warning"
    if live.health == "unknown":
        return "stale"
    return "ok"


def rank(trouble_: Trouble) -> int:
    """Sort key: 0 for down … 4 for ok."""
    return TROUBLE_ORDER.index(trouble_)


def threshold_text(signal: SignalValue) -> str:
    """The level the value is judged against, as people write it: "> 5.00%", "< 70.0%", "".

    The critical level for a critical value, else the warning level (the next
    one to trip); empty when the signal has no threshold.
    """
    return level_text(signal.threshold, signal.state, signal.unit)


def level_text(view: ThresholdView | None, state: str, unit: str) -> str:
    """:func:`threshold_text` for a value in ``state`` judged by ``view`` (a 5m window's, say)."""
    if view is None:
        return ""
    if state == "critical" and view.critical is not None:
        level: float | None = view.critical
    else:
        level = view.warning if view.warning is not None else view.critical
    if level is None:
        return ""
    return f"{'>' if view.direction == 'above' else '<'} {format_value(level, unit)}"


def level_past(value: float | None, view: ThresholdView | None) -> Literal["warning", "critical"] | None:
    """The worst level ``value`` is at or past, judged at once (no ``for`` timer); None when none.

    For a value the engine does not judge itself, such as a signal's 5m
    window next to its judged 1m value: the same comparison as the engine's
    (at or past a level counts), so the two rows never disagree about a level.
    """
    if value is None or view is None:
        return None
    if at_or_past(value, view.critical, view.direction):
        return "critical"
    return "warning" if at_or_past(value, view.warning, view.direction) else None


def breach_text(signal: SignalValue) -> str:
    """The signal, its value and the threshold it is past: "5xx rate 7.7% > 5.00%"."""
    value = format_value(signal.value, signal.unit)
    limit = threshold_text(signal)
    return f"{signal.label} {value}{' ' + limit if limit else ''}"


@dataclass(frozen=True)
class Summary:
    """Counts by trouble, for the header: "1 down · 2 critical · 1 warning"."""

    counts: tuple[tuple[Trouble, int], ...]

    def text(self) -> str:
        """"1 down · 2 critical · 1 warning" (ok left out); "all ok" when nothing else."""
        shown = [f"{n} {t}" for t, n in self.counts if n and t != "ok"]
        return " · ".join(shown) if shown else "all ok"

    def count(self, trouble_: Trouble) -> int:
        """How many services are in ``trouble_``."""
        return dict(self.counts).get(trouble_, 0)


def summary(troubles: Iterable[Trouble]) -> Summary:
    """Count each trouble, in :data:`TROUBLE_ORDER` (every one, zero counts included)."""
    seen = list(troubles)
    return Summary(tuple((t, seen.count(t)) for t in TROUBLE_ORDER))


def order(names: Sequence[str], troubles: Sequence[Trouble]) -> list[str]:
    """``names`` worst first; services in the same trouble keep their given order."""
    position = {name: i for i, name in enumerate(names)}
    return sorted(names, key=lambda n: (rank(troubles[position[n]]), position[n]))
