"""The live row's shape: what the store's live table holds and the views render.

A service's live state travels as one frozen :class:`ServiceLive`: the
engine's accumulator (:class:`console.model.signals.ServiceSignals`) builds
it, the engine writes it to the store's live table, followers rebuild it with
``ServiceLive.model_validate`` and the panels render it. Keeping the shape
here, apart from the code that computes it, lets the store, engine and UI
depend on the row without depending on windows, sketches and timers.

Rows are frozen and rounded, so "equal to the last one" means "nothing to
repaint". Units: latency in milliseconds, error rate in percent, named
signals in their spec's unit after ``scale``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from console.model.health import HealthState

SignalState = Literal["ok", "warning", "critical", "no_data", "stale", "source_down"]
"""How to read a value: judged against its threshold, or why there is none to judge."""

SignalSource = Literal["probe", "health-json", "prometheus"]
"""Where a value came from: Conn's prober, a path in the health JSON, or PromQL."""

STALE_INTERVALS = 3
"""A value or live row older than this many of its feed's intervals is stale."""

CLOCK_SKEW = 5.0
"""Seconds a value may seem to come from the future (another machine's clock) and still count."""

WindowName = Literal["1m", "5m"]
WINDOWS: dict[WindowName, float] = {"1m": 60.0, "5m": 300.0}
"""The sliding windows every service reports; the 1m one feeds the built-in signals."""


class _Frozen(BaseModel):
    """Immutable, compared by value. Unknown fields are ignored, not refused: in
    team mode a follower may read a live row written by a newer leader."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class ThresholdView(_Frozen):
    """The threshold a value was judged against, and how close it is to tripping."""

    warning: float | None
    """Warning level, in the value's unit."""
    critical: float | None
    """Critical level, in the value's unit."""
    direction: Literal["above", "below"]
    """Which side of a level is bad."""
    for_seconds: float
    """How long the value must stay past a level before the state says so (0: at once)."""
    past: Literal["warning", "critical"] | None = None
    """The worst level the value is past right now, even if ``for_seconds`` has not run out."""
    past_since: float | None = None
    """Clock time since which the value has been continuously past ``past``."""


class SignalValue(_Frozen):
    """One signal's current value, where it came from, and what it means."""

    name: str
    """Key: "p50", "p95", "p99", "error_rate", "probe_errors" or a configured signal name."""
    label: str
    """Short name for the panels ("p95", "errors", "cache hit")."""
    value: float | None
    """Rounded value in ``unit``; None when there is none (no data, source down)."""
    unit: str
    """"ms", "%", or the signal's configured unit."""
    source: SignalSource
    """Where the value came from."""
    at: float | None
    """Clock time of the sample behind the value (last probe, or the query); None before any."""
    state: SignalState
    """ok/warning/critical judged against ``threshold``; otherwise why there is nothing to judge."""
    detail: str
    """One line for people: "3 of 1,204 failed in 1m", "no data", "Prometheus: timeout after 5s"."""
    threshold: ThresholdView | None = None
    """The threshold in force, or None when the signal has none."""


class LatencyWindow(_Frozen):
    """Latency percentiles of successful probes over one window, in ms (0.1 ms steps)."""

    p50: float | None
    p95: float | None
    p99: float | None
    count: int
    """Successful probes in the window; the percentiles are None when it is 0."""


class ErrorWindow(_Frozen):
    """Failed probes over one window."""

    failed: int
    total: int
    rate_pct: float | None
    """failed / total in percent (0.01 steps); None when total is 0 — never a fake 0%."""


class ServiceLive(_Frozen):
    """A service's live row: everything the panels show, as of ``observed_at``."""

    name: str
    health: HealthState
    """The last probe's verdict; "unknown" before any probe or when probes stopped."""
    reason: str
    """One line explaining ``health`` ("HTTP 503", "no probe result for 15s")."""
    health_since: float | None
    """Clock time at which ``health`` last changed; None before any probe."""
    observed_at: float | None
    """Clock time of the newest sample of any source; None before any."""
    interval: float
    """Probe interval in seconds (staleness is judged against it)."""
    baseline: str | None
    """The service this one is compared with, for a canary."""
    latency: dict[WindowName, LatencyWindow]
    """Conn's own probe latency per window ("1m", "5m")."""
    errors: dict[WindowName, ErrorWindow]
    """Conn's own probe failures per window."""
    signals: tuple[SignalValue, ...]
    """p50, p95, p99, error_rate (the prober's 1m window, or the health JSON or Prometheus
    when configured), probe_errors (always the prober's), then named signals."""
    history: dict[str, tuple[float | None, ...]]
    """"p95" and "error_rate" as shown, oldest first, one point per ``history_step``; None = no data."""
    history_step: float
    """Seconds between history points (the probe interval)."""

    def signal(self, name: str) -> SignalValue | None:
        """The signal called ``name``, if the service has it."""
        return next((s for s in self.signals if s.name == name), None)


def signal_ratio(canary: SignalValue | None, baseline: SignalValue | None) -> float | None:
    """Canary ÷ baseline for one signal; None when the comparison means nothing.

    None when either side has no fresh value (no data, stale, source down) or
    either side is 0: "×∞" and "×0" against a zero baseline mislead more than
    they tell, and 0 ÷ 0 is not evidence that the two agree.
    """
    mine, theirs = _fresh(canary), _fresh(baseline)
    if mine is None or theirs is None or mine == 0 or theirs == 0:
        return None
    return mine / theirs


def compare_to_baseline(canary: ServiceLive, baseline: ServiceLive) -> dict[str, float | None]:
    """Canary ÷ baseline for every signal both have (see :func:`signal_ratio`)."""
    names = [s.name for s in canary.signals if baseline.signal(s.name) is not None]
    return {name: signal_ratio(canary.signal(name), baseline.signal(name)) for name in names}


def _fresh(value: SignalValue | None) -> float | None:
    """The value when it was judged (ok/warning/critical), else None."""
    if value is None or value.state not in ("ok", "warning", "critical"):
        return None
    return value.value


def stale_after(interval: float, timeout: float = 0.0) -> float:
    """Seconds without a new value after which a probe-fed value is stale.

    :data:`STALE_INTERVALS` intervals plus one probe timeout: the next probe
    starts ``interval`` after the previous one *ends*, so a slow service (a
    1.5 s response with a 1 s interval) delivers a value only every 2.5 s —
    late, but not missing. Without the timeout, such a service would flicker
    stale between probes and every ``for`` timer on it would restart.
    """
    return STALE_INTERVALS * interval + timeout


def is_fresh(
    updated_at: float | None, interval: float, now: float, *, timeout: float = 0.0
) -> bool:
    """The one staleness rule: written within :func:`stale_after` seconds, and not from the future.

    A row stamped ahead of this clock by more than :data:`CLOCK_SKEW` is not
    trusted: a leader with a fast clock must not hide its own death for as
    long as its clock is ahead. The panels, the header, ``conn status`` and
    the engine's "who leads" all judge rows with this function.
    """
    if updated_at is None:
        return False
    age = now - updated_at
    return -CLOCK_SKEW <= age <= stale_after(interval, timeout)


def current_writer(
    rows: Iterable[tuple[str | None, float | None, float, float]], now: float
) -> str | None:
    """The one "who leads" rule: the writer of the newest fresh live row, or None.

    Args:
        rows: ``(writer, updated_at, interval, timeout)`` of each live row.
        now: this process's clock.

    A leader that just took over has written only some rows; an old leader
    may still have fresh rows for a few intervals. The newest fresh row names
    whoever writes now.
    """
    fresh = [(at, writer) for writer, at, interval, timeout in rows
             if writer and at is not None and is_fresh(at, interval, now, timeout=timeout)]
    return max(fresh)[1] if fresh else None
