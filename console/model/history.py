"""Signal history: what one service looked like in each time slice, kept by retention.

Why it exists: windows and ``for`` timers must outlive a leader. A new leader
rebuilds every 1m / 5m window, threshold timer and breach count from these
slices before it judges anything, so a failover loses at most one interval.
The "why" view, backtests and postmortem graphs read the same rows.

A slice is one service over ``resolution`` seconds starting at ``start``:

- ``samples`` / ``errors``: probe outcomes counted in the slice (exact, so
  "health failures > 3 within 5m" is a sum of slices);
- ``sketch``: the slice's latency sketch in a compact encoding, kept as long as
  the longest window a rule reads (15 minutes by default), so windows are the
  exact merge of slices rather than percentiles of percentiles;
- ``data``: a JSON object with the slice's p50/p95/p99, each signal's value,
  state and threshold timer, and the service's health at the slice's end.

Resolutions: 10 s slices (kept 24 h by default) and 1-minute roll-ups (kept
14 days by default).

``data``, exactly (every number finite or null; times are clock seconds):

- ``p50``, ``p95``, ``p99``: this slice's own latency quantiles in ms (0.1 ms
  steps), not the 1m window's; null when the slice has no latency sample;
- ``as_of``: when the rest was judged (the leader's clock at its last write);
- ``health``, ``reason``, ``health_since``: as the live row showed them then;
- ``last_at``, ``last_health``, ``last_health_since``: the last probe's time,
  its own verdict and since when probes have given it (the row shows these
  while probes are fresh; once they stop, ``health`` turns "unknown" and
  these still tell what a new leader needs to carry on);
- ``observed_at``: the newest sample of any source;
- ``signals``: ``{name: {"value", "state", "at", "past", "past_since"}}`` as
  the live row showed each signal, plus ``"source"`` (``"probe"``,
  ``"health-json"``, ``"prometheus"``: a new leader carries over nothing of a
  signal whose source has changed, and views plot a fed p95 by its value),
  ``"timers"``
  (``{"warning": since, "critical": since}``) while a threshold timer runs —
  "past critical" alone would lose when the warning timer started — and
  ``"detail"`` when the state is no_data or source_down (the reason a new
  leader shows until the source answers again).

The model's side lives here: building ``data`` (:func:`judgement_data`),
reading slices back without trusting them (:func:`read_takeover`,
:func:`read_record`), roll-ups (:func:`merge_slices`), the sparkline a new
leader starts from (:func:`sparkline`) and the points a view plots
(:func:`signal_points`). :class:`~console.model.signals.ServiceSignals`
writes and restores slices with them.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from ddsketch.ddsketch import BaseDDSketch

from console.model.health import HEALTH_STATES, HealthState
from console.model.live import SignalSource, SignalState, SignalValue
from console.model.sketch import BUCKETS, QUANTILES, decode_sketch, encode_sketch, new_sketch

SLICE_SECONDS = 10
"""Resolution of the fine history: one row per service per 10 s."""

ROLLUP_SECONDS = 60
"""Resolution of the roll-ups kept after the fine slices are pruned."""

RESOLUTIONS = (SLICE_SECONDS, ROLLUP_SECONDS)

QUANTILE_KEYS = ("p50", "p95", "p99")
"""The slice's own quantiles in ``data``, in the order of :data:`~console.model.sketch.QUANTILES`."""

JUDGED_STATES: tuple[SignalState, ...] = ("ok", "warning", "critical")
"""States that carry a value judged against its threshold."""

_STATES = frozenset(get_args(SignalState))
_SOURCES = frozenset(get_args(SignalSource))
_LEVELS = ("warning", "critical")


@dataclass(frozen=True)
class HistorySlice:
    """One service over one slice of time, as the store keeps it.

    Attributes:
        service: the service's name.
        resolution: the slice's length in seconds (:data:`SLICE_SECONDS` or
            :data:`ROLLUP_SECONDS`).
        start: clock time of the slice's start, a multiple of ``resolution``.
        samples: probe outcomes in the slice (failed or not).
        errors: failed probe outcomes in the slice.
        sketch: the encoded latency sketch of the slice's successful probes;
            None once older than the sketch retention (or when there were none).
        data: JSON object: quantiles, signals and health (see the module docstring).
    """

    service: str
    resolution: int
    start: float
    samples: int = 0
    errors: int = 0
    sketch: bytes | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


# --- writing -------------------------------------------------------------------


def judgement_data(
    *,
    as_of: float,
    health: HealthState,
    reason: str,
    health_since: float | None,
    last_at: float | None,
    last_health: HealthState | None,
    last_health_since: float | None,
    observed_at: float | None,
    signals: Sequence[SignalValue],
    timers: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:
    """``data`` without the quantiles: the service as judged at ``as_of`` (see the module docstring).

    Args:
        timers: running threshold timers by signal and level, as the judgement left them.
    """
    entries: dict[str, Any] = {}
    for value in signals:
        view = value.threshold
        entry: dict[str, Any] = {
            "value": _finite(value.value),
            "state": value.state,
            "at": _finite(value.at),
            "past": None if view is None else view.past,
            "past_since": None if view is None else _finite(view.past_since),
        }
        running = {level: since for level, since in timers.get(value.name, {}).items() if math.isfinite(since)}
        if running:
            entry["timers"] = running
        if value.state in ("no_data", "source_down"):
            entry["detail"] = value.detail
        entry["source"] = value.source
        entries[value.name] = entry
    return {
        "as_of": _finite(as_of),
        "health": health,
        "reason": reason,
        "health_since": _finite(health_since),
        "last_at": _finite(last_at),
        "last_health": last_health,
        "last_health_since": _finite(last_health_since),
        "observed_at": _finite(observed_at),
        "signals": entries,
    }


def merge_slices(
    slices: Sequence[HistorySlice], *, service: str, start: float, resolution: int = ROLLUP_SECONDS
) -> HistorySlice:
    """One roll-up of ``slices``: summed counts, the merged sketch and its exact quantiles.

    ``data`` is the newest slice's judgement (health, signals) with the merged
    quantiles in place of that slice's own.

    Raises:
        ValueError: a slice's sketch cannot be decoded.
    """
    merged = new_sketch()
    for part in slices:
        if part.sketch is not None:
            merged.merge(decode_sketch(part.sketch))
    judged = [part for part in sorted(slices, key=lambda part: part.start) if "health" in part.data]
    data = dict(judged[-1].data) if judged else {}
    data.update(sketch_quantiles(merged))
    return HistorySlice(
        service=service,
        resolution=resolution,
        start=start,
        samples=sum(part.samples for part in slices),
        errors=sum(part.errors for part in slices),
        sketch=encode_sketch(merged) if merged.count else None,
        data=data,
    )


SETTLED_KEYS = (*QUANTILE_KEYS, "health", "health_since", "reason", "last_at")
"""What a settled slice keeps of ``data`` besides each signal's value and state."""


def settle(piece: HistorySlice) -> HistorySlice:
    """The slice as kept once no new leader can need it: no sketch, no takeover details.

    A new leader reads only the last minutes (the sketches' retention); older
    slices serve views, backtests and postmortems, which need each signal's
    value and state, the quantiles, the health, and a signal's source when it
    is not the prober (so a fed p95 plots by its value). Dropping the rest (the
    timers, per-signal times, details) shrinks a slice about threefold, and a
    settled slice still reads back through :func:`read_record` and
    :func:`signal_points`.
    """
    data = piece.data
    kept: dict[str, Any] = {key: data[key] for key in SETTLED_KEYS if key in data}
    entries = data.get("signals")
    if isinstance(entries, Mapping):
        signals: dict[str, Any] = {}
        for name, entry in entries.items():
            if not isinstance(entry, Mapping):
                continue
            slim = {"value": entry.get("value"), "state": entry.get("state")}
            if entry.get("source", "probe") != "probe":  # a fed p95 is plotted by its value
                slim["source"] = entry["source"]
            if entry.get("past") is not None:
                slim["past"], slim["past_since"] = entry["past"], entry.get("past_since")
            signals[str(name)] = slim
        kept["signals"] = signals
    return HistorySlice(piece.service, piece.resolution, piece.start, piece.samples,
                        piece.errors, None, kept)


def sketch_quantiles(sketch: BaseDDSketch) -> dict[str, float | None]:
    """``{"p50", "p95", "p99"}`` of one sketch in ms, rounded as the live row rounds latency.

    All None when the sketch is empty.
    """
    out: dict[str, float | None] = {}
    for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
        value = sketch.get_quantile_value(q) if sketch.count else None
        out[key] = None if value is None or not math.isfinite(value) else round(float(value), 1)
    return out


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity, and the store refuses them: such a number is written as null."""
    return None if value is None or not math.isfinite(value) else value


# --- reading -------------------------------------------------------------------


@dataclass(frozen=True)
class SignalRecord:
    """One signal as a slice recorded it (see the module docstring for the keys)."""

    value: float | None
    state: SignalState
    at: float | None
    past: Literal["warning", "critical"] | None
    past_since: float | None
    timers: dict[str, float]
    """Running threshold timers by level; built from ``past``/``past_since`` when absent."""
    detail: str
    source: SignalSource | None = None
    """Where the value came from; None when the slice does not say (written before
    sources were recorded)."""


@dataclass(frozen=True)
class ServiceRecord:
    """The judgement a slice recorded: health, the last probe, every readable signal."""

    as_of: float | None
    health: HealthState
    reason: str
    health_since: float | None
    last_at: float | None
    last_health: HealthState | None
    """The last probe's own verdict (None before any probe); ``health`` when not recorded."""
    last_health_since: float | None
    """Since when probes have given ``last_health``; ``health_since`` when not recorded."""
    observed_at: float | None
    signals: dict[str, SignalRecord]


class _Unreadable(Exception):
    """A key of ``data`` that is missing or of the wrong type; the message says which."""


def read_record(piece: HistorySlice) -> tuple[ServiceRecord | None, list[str]]:
    """The judgement in a slice's ``data``, checked key by key: nothing in it is trusted.

    Returns:
        (record, problems). The record is None when the slice carries no
        readable health (a roll-up written before any judgement, or damaged
        data); a signal whose entry cannot be read is left out and named in
        ``problems``.
    """
    where = f"{piece.service} slice at {piece.start!r}"
    data = piece.data
    if not isinstance(data, Mapping) or "health" not in data:
        return None, [f"{where}: data has no judgement (no 'health')"]
    problems: list[str] = []
    try:
        health = _health(data, "health", optional=False)
        assert health is not None
        last_at = _number(data, "last_at")
        record_health = _health(data, "last_health", optional=True) if "last_health" in data else health
        health_since = _number(data, "health_since")
        last_since = _number(data, "last_health_since") if "last_health_since" in data else health_since
        as_of = _number(data, "as_of") if "as_of" in data else last_at
        observed_at = _number(data, "observed_at") if "observed_at" in data else last_at
        record = ServiceRecord(
            as_of=as_of,
            health=health,
            reason=_text(data, "reason"),
            health_since=health_since,
            last_at=last_at,
            last_health=record_health,
            last_health_since=last_since,
            observed_at=observed_at,
            signals={},
        )
    except _Unreadable as e:
        return None, [f"{where}: {e}"]
    entries = data.get("signals", {})
    if not isinstance(entries, Mapping):
        return record, [f"{where}: 'signals' is {type(entries).__name__}, not an object"]
    for name, entry in entries.items():
        try:
            record.signals[str(name)] = _signal(entry)
        except _Unreadable as e:
            problems.append(f"{where}: signal {name!r}: {e}")
    return record, problems


def _signal(entry: Any) -> SignalRecord:
    if not isinstance(entry, Mapping):
        raise _Unreadable(f"is {type(entry).__name__}, not an object")
    state = entry.get("state")
    if state not in _STATES:
        raise _Unreadable(f"state {state!r} is not a signal state")
    past = entry.get("past")
    if past is not None and past not in _LEVELS:
        raise _Unreadable(f"past {past!r} is not a level")
    past_since = _number(entry, "past_since") if "past_since" in entry else None
    raw_timers = entry.get("timers")
    if raw_timers is None:
        timers = {} if past is None or past_since is None else {past: past_since}
    elif isinstance(raw_timers, Mapping):
        timers = {}
        for level in _LEVELS:
            since = _number(raw_timers, level) if level in raw_timers else None
            if since is not None:
                timers[level] = since
    else:
        raise _Unreadable(f"timers is {type(raw_timers).__name__}, not an object")
    detail = entry.get("detail", "")
    source = entry.get("source")
    if source is not None and source not in _SOURCES:
        raise _Unreadable(f"source {source!r} is not a signal source")
    return SignalRecord(
        value=_number(entry, "value"),
        state=cast(SignalState, state),
        at=_number(entry, "at") if "at" in entry else None,
        past=cast(Literal["warning", "critical"] | None, past),
        past_since=past_since,
        timers=timers,
        detail=detail if isinstance(detail, str) else "",
        source=cast(SignalSource | None, source),
    )


def _number(data: Mapping[str, Any], key: str) -> float | None:
    """``data[key]`` as a finite float or None; a missing key is an error, null is not."""
    if key not in data:
        raise _Unreadable(f"no {key!r}")
    value = data[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Unreadable(f"{key} is {type(value).__name__}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _Unreadable(f"{key} is {value!r}, not a finite number")
    return number


def _health(data: Mapping[str, Any], key: str, *, optional: bool) -> HealthState | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if value not in HEALTH_STATES:
        raise _Unreadable(f"{key} {value!r} is not a health state")
    return cast(HealthState, value)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _Unreadable(f"{key} is {type(value).__name__}, not text")
    return value


# --- taking over ----------------------------------------------------------------


@dataclass(frozen=True)
class RingSlice:
    """A stored slice, checked and decoded, ready for the ring."""

    index: int
    """The slice's number: ``start / SLICE_SECONDS``."""
    total: int
    failed: int
    sketch: BaseDDSketch
    piece: HistorySlice
    """The slice as stored, to tell later whether it changed."""


@dataclass(frozen=True)
class Takeover:
    """What a new leader reads from one service's slices (see :func:`read_takeover`)."""

    ring: list[RingSlice]
    """Readable 10 s slices within the ring at ``now``, oldest first."""
    record: ServiceRecord | None
    """The newest readable judgement, or None."""
    sparkline: dict[str, list[float | None]]
    """Sparkline points up to ``last_index`` (see :func:`sparkline`)."""
    last_index: int | None
    """Interval number of the last sparkline point: that of the record's ``as_of``."""
    problems: list[str]
    """One line per thing skipped, and why."""


def read_takeover(
    slices: Sequence[HistorySlice],
    *,
    service: str,
    now: float,
    interval: float,
    keys: Sequence[str],
    points: int,
) -> Takeover:
    """Check and decode what a new leader needs from ``service``'s slices.

    Only 10 s slices of ``service`` count (roll-ups are ignored; another
    service's slices are reported). The ring gets the slices of the
    :data:`~console.model.sketch.BUCKETS` slices up to ``now`` whose counts
    read (a slice with an unreadable sketch keeps its counts, without its
    latencies); the judgement comes from the newest slice whose ``data`` reads.
    Nothing is trusted and nothing raises: what cannot be read is skipped and
    named in ``problems``.
    """
    problems: list[str] = []
    mine: list[HistorySlice] = []
    for piece in slices:
        if piece.service != service:
            problems.append(f"{piece.service!r} slice at {piece.start!r} given to {service!r}: skipped")
        elif piece.resolution != SLICE_SECONDS:
            continue
        elif isinstance(piece.start, int | float) and math.isfinite(piece.start):
            mine.append(piece)
        else:
            problems.append(f"{service} slice starting at {piece.start!r}: skipped")
    mine.sort(key=lambda piece: piece.start)
    current = math.floor(now / SLICE_SECONDS)
    ring: list[RingSlice] = []
    for piece in mine:
        index = math.floor(piece.start / SLICE_SECONDS)
        if current - BUCKETS < index <= current:
            restored, unread = _ring_slice(index, piece)
            problems += unread
            if restored is not None:
                ring.append(restored)
    record: ServiceRecord | None = None
    for piece in reversed(mine):
        record, unread = read_record(piece)
        problems += unread
        if record is not None:
            break
    if record is None or record.as_of is None:
        return Takeover(ring, record, {key: [] for key in keys}, None, problems)
    last_index = math.floor(record.as_of / interval)
    shown = sparkline(mine, keys, interval=interval, last_index=last_index, points=points)
    return Takeover(ring, record, shown, last_index, problems)


def _ring_slice(index: int, piece: HistorySlice) -> tuple[RingSlice | None, list[str]]:
    where = f"{piece.service} slice at {piece.start!r}"
    total, failed = piece.samples, piece.errors
    counts = all(isinstance(n, int) and not isinstance(n, bool) for n in (total, failed))
    if not counts or not 0 <= failed <= total:
        return None, [f"{where}: {failed!r} errors of {total!r} samples are not counts; skipped"]
    sketch, problems = new_sketch(), []
    if piece.sketch is not None:
        try:
            sketch = decode_sketch(piece.sketch)
        except (ValueError, TypeError) as e:  # TypeError: not bytes at all
            problems.append(f"{where}: sketch unreadable ({e}); its latencies are left out")
    return RingSlice(index, total, failed, sketch, piece), problems


# --- views -----------------------------------------------------------------------


def signal_points(
    slices: Sequence[HistorySlice], signal: str
) -> list[tuple[float, float | None, SignalState | None]]:
    """``(slice start, value, state)`` per slice, oldest first, for a history view.

    "p50", "p95" and "p99" measured by the prober plot each slice's own
    quantile (exact for the slice, from its sketch); other signals, and those
    read from the health JSON or Prometheus (their entry's ``source``), plot
    the value the live row showed at the slice's end. ``state`` is the signal's state then. Whatever a slice
    cannot say (no sample, an unreadable entry) is None: a gap, never a raise.
    """
    points: list[tuple[float, float | None, SignalState | None]] = []
    for piece in sorted(slices, key=lambda piece: piece.start):
        data = piece.data if isinstance(piece.data, Mapping) else {}
        entries = data.get("signals")
        entry = entries.get(signal) if isinstance(entries, Mapping) else None
        entry = entry if isinstance(entry, Mapping) else {}
        state = entry.get("state")
        sketched = signal in QUANTILE_KEYS and entry.get("source", "probe") == "probe"
        try:
            value = _number(data, signal) if sketched else _number(entry, "value")
        except _Unreadable:
            value = None
        points.append((piece.start, value, cast(SignalState, state) if state in _STATES else None))
    return points


def sparkline(
    slices: Sequence[HistorySlice],
    keys: Sequence[str],
    *,
    interval: float,
    last_index: int,
    points: int,
) -> dict[str, list[float | None]]:
    """Sparkline points (one per probe interval) rebuilt from slices, for a new leader.

    Point ``k`` covers ``[k × interval, (k + 1) × interval)`` and shows the
    value the newest slice overlapping it recorded (the live row's value at
    that slice's last write), or None where no slice overlaps. Slices are
    10 s wide, so with a 5 s interval both points of a slice show its last
    value: the shape is kept, the detail within 10 s is not. Points before the
    first covered one are dropped, as a fresh service has no points yet.

    Args:
        keys: the signals to plot ("p95", "error_rate").
        last_index: the interval number of the last point (``floor(as_of / interval)``).
        points: how many points at most.
    """
    ordered = sorted(slices, key=lambda piece: piece.start)
    starts = [piece.start for piece in ordered]
    out: dict[str, list[float | None]] = {key: [] for key in keys}
    started = False
    for index in range(last_index - points + 1, last_index + 1):
        low, high = index * interval, (index + 1) * interval
        at = bisect_left(starts, high) - 1
        piece = ordered[at] if at >= 0 else None
        if piece is None or piece.start + piece.resolution <= low:
            if started:
                for key in keys:
                    out[key].append(None)
            continue
        started = True
        entries = piece.data.get("signals") if isinstance(piece.data, Mapping) else None
        for key in keys:
            entry = entries.get(key) if isinstance(entries, Mapping) else None
            try:
                judged = isinstance(entry, Mapping) and entry.get("state") in JUDGED_STATES
                out[key].append(_number(entry, "value") if judged else None)  # type: ignore[arg-type]
            except _Unreadable:
                out[key].append(None)
    return out
