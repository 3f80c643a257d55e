"""What each signal panel shows, as small frozen values built from a ``ServiceView``.

The panels repaint only when what they show changes. A ``ServiceLive``
changes on every probe (its ``at`` and ``observed_at`` move, the sample
counts grow) even when every rounded number on screen is the same, so the
panels do not hold it: they hold the projections below, which carry only the
text and state on screen. Times are left out on purpose — ages are drawn by
their own small widgets, fed by :func:`health_ages` and the ``at`` fields,
so the once-a-second tick repaints an age and nothing else.

Pure functions, no Textual: tested directly, and cheap enough to rebuild on
every tick (equality then decides whether anything is drawn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from console.engine.snapshot import ServiceView
from console.model import triage
from console.model.live import (
    STALE_INTERVALS,
    ServiceLive,
    SignalValue,
    ThresholdView,
    signal_ratio,
)
from console.model.thresholds import BUILTIN_SIGNALS
from console.model.units import NO_DATA, format_value
from console.ui.text import format_age
from console.ui.widgets.styles import HEALTH_STYLE, STALE_MARK, STATE_MARK

JUDGED = ("ok", "warning", "critical")
"""States that carry a fresh value; anything else has nothing to compare or trust."""

PERCENTILES = ("p50", "p95", "p99")

HEALTH_ROW = "@health"
"""The comparison's health row (a name no configured signal can clash with in the ages)."""

COMPARED_FIRST = (HEALTH_ROW, "p95", "error_rate")
"""The comparison's first rows; the canary's named signals follow."""


@dataclass(frozen=True)
class Shown:
    """One piece of text as shown, and the state that colours it ("" for plain)."""

    text: str
    state: str = ""


@dataclass(frozen=True)
class HealthData:
    """The health panel: service name, state with its symbol, reason."""

    name: str
    state: Shown
    reason: str


@dataclass(frozen=True)
class LatencyData:
    """p50/p95/p99 now (1m, judged) and over 5m, and the p95 history."""

    source: str
    now: tuple[Shown, ...]
    """p50, p95, p99 over 1m."""
    five: tuple[Shown, ...]
    """p50, p95, p99 over 5m."""
    history: tuple[float | None, ...]
    note: str = ""
    """Why the source is down ("Prometheus: timeout after 5s"), shown in place of the sparkline."""
    ceiling: float | None = None
    """The value drawn as a full bar: the threshold, so a calm 10 ms is a low line, not a wall."""
    five_label: str = "5m"
    """The 5m row's label: "probe 5m" when the 1m values come from elsewhere (the 5m
    window is always the prober's latency, another measurement)."""


@dataclass(frozen=True)
class ErrorsData:
    """Error rate with its counts, 1m (judged) and 5m, and the rate history."""

    source: str
    rate: Shown
    counts: str
    rate_five: Shown
    counts_five: str
    history: tuple[float | None, ...]
    note: str = ""
    """Why the source is down, shown in place of the sparkline."""
    ceiling: float | None = None
    """The value drawn as a full bar (the threshold); None scales to the largest point."""


@dataclass(frozen=True)
class SignalRow:
    """One named signal: label, value with its mark, source and, when it matters, why."""

    name: str
    label: str
    value: Shown
    source: str
    detail: str
    quiet: bool
    """The detail is routine ("metrics.x in the health JSON"): shown only where there is room."""


@dataclass(frozen=True)
class CompareRow:
    """One signal of a canary next to its baseline's, with canary ÷ baseline."""

    name: str
    label: str
    canary: Shown
    baseline: Shown
    ratio: str
    info: Shown


@dataclass(frozen=True)
class CompareData:
    """The canary-vs-baseline table."""

    canary: str
    baseline: str
    rows: tuple[CompareRow, ...]


# --- staleness and value text --------------------------------------------------------


def row_stale(view: ServiceView, now: float) -> bool:
    """The live row is not fresh (:func:`is_fresh`: nobody is writing it, or its time is
    from the future); False before any row exists (that is "no value yet")."""
    return view.updated_at is not None and not view.fresh(now)


def effective_state(signal: SignalValue | None, stale: bool) -> str:
    """The signal's state, or "stale" when the whole row is stale and the value was fresh."""
    if signal is None:
        return "no_data"
    if stale and signal.state in JUDGED:
        return "stale"
    return signal.state


def value_text(value: float | None, unit: str, state: str) -> str:
    """What a value cell says: the number (:func:`format_value`) with its mark, or why there is none."""
    if state == "source_down":
        return "source down" + STATE_MARK["source_down"]
    if value is None:
        return "stale" + STATE_MARK["stale"] if state == "stale" else NO_DATA
    return format_value(value, unit) + STATE_MARK.get(state, "")


def shown_signal(signal: SignalValue | None, stale: bool) -> Shown:
    """A signal's value cell; past a level, with the level ("907 ms ▲ > 500 ms")."""
    state = effective_state(signal, stale)
    if signal is None:
        return Shown(NO_DATA, "no_data")
    return Shown(judged_text(signal.value, signal.unit, state, signal.threshold), state)


def judged_text(value: float | None, unit: str, state: str, threshold: ThresholdView | None) -> str:
    """:func:`value_text`, and for a warning or critical value the level it is past
    (:func:`~console.model.triage.level_text`): every breached value shows its threshold."""
    text = value_text(value, unit, state)
    if state in ("warning", "critical") and (level := triage.level_text(threshold, state, unit)):
        return f"{text} {level}"
    return text


def window_shown(value: float | None, unit: str, signal: SignalValue | None, stale: bool) -> Shown:
    """A value of another window (5m) of ``signal``, judged by the signal's levels at once.

    ``signal`` is None when the window is not the judged signal's (the 1m
    value comes from the health JSON or Prometheus, the 5m one from probes):
    then the value is shown plain, since those levels are not its own.
    """
    if value is None:
        return Shown(NO_DATA, "no_data")
    if stale:
        return Shown(value_text(value, unit, "stale"), "stale")
    threshold = signal.threshold if signal is not None else None
    state = triage.level_past(value, threshold) or ""
    return Shown(judged_text(value, unit, state, threshold), state)


def format_ratio(ratio: float | None) -> str:
    """Canary ÷ baseline as "×1.8", "×1.0", "×12", "×0.98"; "—" when there is no ratio to show.

    :func:`compare_data` passes None whenever either side is missing, not
    fresh, or zero, so "×∞" and "×0" never reach the screen.
    """
    if ratio is None or math.isinf(ratio) or math.isnan(ratio) or ratio <= 0:
        return "—"
    if ratio >= 10:
        return f"×{ratio:,.0f}"
    if ratio >= 1:
        return f"×{ratio:.1f}"  # "×1.0": the same, not a rounded-away difference
    return f"×{ratio:.2g}"


# --- panels ----------------------------------------------------------------------------


def health_data(view: ServiceView, now: float) -> HealthData:
    """State with symbol (⌛ stale when nobody wrote the row for three intervals) and reason."""
    live = view.live
    if live is None:
        state = Shown(HEALTH_STYLE["unknown"][0], "unknown")
        reason = view.problem or "waiting for the first probe"
        return HealthData(view.name, state, reason)
    label = HEALTH_STYLE.get(live.health, HEALTH_STYLE["unknown"])[0]
    if row_stale(view, now):
        state = Shown(f"{STALE_MARK} stale · last {label}", "stale")
    else:
        state = Shown(label, live.health)
    reason = f"⚠ {view.problem}" if view.problem else live.reason
    return HealthData(view.name, state, reason)


def health_ages(view: ServiceView, now: float) -> Shown:
    """How long the state has held and how old the value is: "for 4m · updated 2s ago"."""
    live = view.live
    updated = view.updated_at if view.updated_at is not None else live.observed_at if live else None
    if live is None or updated is None:
        return Shown("no value yet", "muted")
    parts = []
    if live.health_since is not None:
        parts.append(f"for {format_age(now - live.health_since)}")
    parts.append(f"updated {format_age(now - updated)} ago")
    return Shown(" · ".join(parts), "stale" if row_stale(view, now) else "muted")


def latency_data(view: ServiceView, now: float) -> LatencyData:
    """The three percentiles judged over 1m, over 5m marked by the same levels (probe latency), p95 history."""
    live = view.live
    stale = row_stale(view, now)
    if live is None:
        empty = tuple(Shown(f"{p} no data", "no_data") for p in PERCENTILES)
        return LatencyData("probe", empty, empty, ())
    signals = [live.signal(p) for p in PERCENTILES]
    current = tuple(
        _labelled(p, shown_signal(s, stale)) for p, s in zip(PERCENTILES, signals, strict=True)
    )
    window = live.latency.get("5m")
    five = []
    for p, signal in zip(PERCENTILES, signals, strict=True):
        value = None if window is None else getattr(window, p)
        probed = signal if signal is not None and signal.source == "probe" else None
        five.append(_labelled(p, window_shown(value, "ms", probed, stale)))
    source = signals[1].source if signals[1] is not None else "probe"
    note = next((s.detail for s in signals if s is not None and s.state == "source_down"), "")
    history = live.history.get("p95", ())
    return LatencyData(
        source, current, tuple(five), history, note, ceiling(signals[1], history),
        five_label="5m" if source == "probe" else "probe 5m",
    )


def errors_data(view: ServiceView, now: float) -> ErrorsData:
    """Error rate judged over 1m with the probe counts; 5m marked by the same levels; "no data" when 0 of 0."""
    live = view.live
    if live is None:
        nothing = Shown("no data", "no_data")
        return ErrorsData("probe", nothing, "· no probes yet", nothing, "", ())
    stale = row_stale(view, now)
    signal = live.signal("error_rate")
    rate = shown_signal(signal, stale)
    source = signal.source if signal is not None else "probe"
    # The counts are the probes': judged by the probes' own levels (error_rate's when it
    # is the probes' rate, probe_errors' when error_rate comes from elsewhere).
    probed = signal if source == "probe" else live.signal("probe_errors")
    texts: list[tuple[Shown, str]] = []
    for window in ("1m", "5m"):
        counts = live.errors.get(window)
        if counts is None or counts.total == 0:
            texts.append((Shown("no data", "no_data"), f"· 0 probes in {window}"))
            continue
        shown = window_shown(counts.rate_pct, "%", probed, stale)
        prefix = "· probes: " if source != "probe" else "· "
        texts.append((shown, f"{prefix}{counts.failed:,} of {counts.total:,} in {window}"))
    if source == "probe" and texts[0][0].state == "no_data":
        rate = texts[0][0]  # 0 of 0 is "no data", whatever else the signal says
    note = signal.detail if signal is not None and signal.state == "source_down" else ""
    return ErrorsData(
        source,
        rate,
        texts[0][1],
        texts[1][0],
        texts[1][1],
        live.history.get("error_rate", ()),
        note,
        ceiling(signal, live.history.get("error_rate", ())),
    )


def detail_for(signal: SignalValue, state: str) -> str:
    """The signal's own detail, unless the row went stale under a value that was fresh."""
    if state == "stale" and signal.state != "stale":
        return f"no update for over {STALE_INTERVALS} intervals"
    return signal.detail


def named_signals(live: ServiceLive | None) -> tuple[SignalValue, ...]:
    """The configured signals, without the built-in p50/p95/p99/error_rate."""
    if live is None:
        return ()
    return tuple(s for s in live.signals if s.name not in BUILTIN_SIGNALS or s.name == "probe_errors")


def signal_rows(view: ServiceView, now: float) -> tuple[SignalRow, ...]:
    """One row per named signal, in configuration order."""
    stale = row_stale(view, now)
    rows = []
    for signal in named_signals(view.live):
        state = effective_state(signal, stale)
        detail = detail_for(signal, state)
        rows.append(
            SignalRow(
                name=signal.name,
                label=signal.label or signal.name,
                value=Shown(judged_text(signal.value, signal.unit, state, signal.threshold), state),
                source=signal.source,
                detail=detail,
                quiet=state in JUDGED and "past" not in detail,
            )
        )
    return tuple(rows)


def compare_data(view: ServiceView, baseline: ServiceView, now: float) -> CompareData:
    """Health, p95, error rate and every named signal of the canary, next to the baseline's.

    A ratio is shown only between two fresh (judged, not stale) values that
    are both above zero: against a zero baseline "×∞" says nothing a reader
    can use, a zero canary gives "×0", and 0 ÷ 0 is not "the same" — so those
    read "—", and the two values beside it say what there is.
    """
    canary_live, base_live = view.live, baseline.live
    canary_stale, base_stale = row_stale(view, now), row_stale(baseline, now)
    rows = [_health_row(view, baseline, now)]
    names = list(COMPARED_FIRST[1:]) + [s.name for s in named_signals(canary_live)]
    for name in names:
        mine = canary_live.signal(name) if canary_live else None
        theirs = base_live.signal(name) if base_live else None
        mine_state, their_state = (
            effective_state(mine, canary_stale),
            effective_state(theirs, base_stale),
        )
        fresh = mine_state in JUDGED and their_state in JUDGED
        label = mine.label if mine is not None else name
        rows.append(
            CompareRow(
                name=name,
                label=label or name,
                canary=shown_signal(mine, canary_stale),
                baseline=shown_signal(theirs, base_stale)
                if base_live
                else Shown("—", "muted"),
                ratio=format_ratio(signal_ratio(mine, theirs) if fresh else None),
                info=_compare_info(mine, mine_state, theirs, their_state, base_live is None),
            )
        )
    return CompareData(view.name, baseline.name, tuple(rows))


def _health_shown(view: ServiceView, now: float) -> Shown:
    if view.live is None:
        return Shown("no data", "no_data")
    if row_stale(view, now):
        return Shown(f"{STALE_MARK} stale", "stale")
    return Shown(HEALTH_STYLE.get(view.live.health, HEALTH_STYLE["unknown"])[0], view.live.health)


def _health_row(view: ServiceView, baseline: ServiceView, now: float) -> CompareRow:
    """Canary's health next to the baseline's; when they differ, the canary's reason says why."""
    canary, base = _health_shown(view, now), _health_shown(baseline, now)
    if view.live is None:
        info = Shown(view.problem or "waiting for the first probe", "muted")
    elif canary.state != base.state and canary.state in ("down", "degraded"):
        info = Shown(view.problem or view.live.reason, canary.state)
    else:
        info = Shown("probe", "muted")
    return CompareRow(HEALTH_ROW, "health", canary, base, "", info)


def _compare_info(
    mine: SignalValue | None,
    mine_state: str,
    theirs: SignalValue | None,
    their_state: str,
    no_baseline: bool,
) -> Shown:
    """Why a ratio is missing, or where the canary's value came from."""
    if mine is not None and mine_state not in JUDGED:
        return Shown(detail_for(mine, mine_state), mine_state)
    if no_baseline:
        return Shown("baseline: waiting for its first value", "muted")
    if theirs is None:
        return Shown("baseline has none", "muted")
    if their_state not in JUDGED:
        return Shown(f"baseline: {detail_for(theirs, their_state)}", their_state)
    return Shown(mine.source if mine is not None else "", "muted")


def _labelled(label: str, shown: Shown) -> Shown:
    return Shown(f"{label} {shown.text}", shown.state)


def ceiling(signal: SignalValue | None, history: tuple[float | None, ...]) -> float | None:
    """Scale a sparkline to the signal's threshold (critical, else warning) or its peak.

    Every service's line then reads against the same mark: a steady 10 ms under
    a 1,000 ms critical level stays near the floor instead of filling the box.
    """
    threshold = signal.threshold if signal is not None else None
    level = None
    if threshold is not None and threshold.direction == "above":
        level = threshold.critical if threshold.critical is not None else threshold.warning
    if level is None:
        return None
    peak = max((v for v in history if v is not None), default=0.0)
    return max(level, peak)
