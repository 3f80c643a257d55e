"""One service's live signals: samples in, one frozen snapshot out.

The engine feeds a :class:`ServiceSignals` every probe result and every
Prometheus answer, then calls :meth:`ServiceSignals.snapshot` and writes the
resulting :class:`~console.model.live.ServiceLive` to the store's live table;
followers rebuild it with ``ServiceLive.model_validate`` and the panels render
it. The row's shape lives in :mod:`console.model.live`; this module computes
it. Snapshots are frozen and rounded, so "equal to the last one" means
"nothing to repaint".

Everything here is pure and bounded: latency lives in sketches over a fixed
ring of time slices (:mod:`console.model.sketch`), named signals keep only
their latest reading, history keeps ``HISTORY_POINTS`` points. Time comes only
from the arguments (each sample's ``at``, the snapshot's ``now``).

A leader also writes the signal history (:mod:`console.model.history`): once
per tick :meth:`ServiceSignals.history_slices` gives the 10 s slices that
changed and :meth:`ServiceSignals.rollup` each finished minute; a new leader
calls :meth:`ServiceSignals.restore` with the last slices before it judges
anything, so windows, ``for`` timers and health carry on across a failover.

Where a built-in comes from: p50/p95/p99 and error_rate are the prober's
(latency of successful probes, failed probes over 1m) unless the service
reads them from Prometheus or from a path in its health JSON; either way
``SignalValue.source`` says which. ``probe_errors`` is always the prober's
failure rate, and the 1m/5m latency and error windows always the prober's
own, so "the service's errors" and "Conn cannot reach it" never share a number.

Units, so thresholds mean one thing: latency in milliseconds, error rate in
percent, named signals in their spec's unit after ``scale``. Prometheus
answers in base units (seconds, ratios), so built-in PromQL results are
converted (× 1000 for p50/p95/p99, × 100 for error_rate) and named PromQL
signals are multiplied by their ``scale``; health-JSON values are multiplied
by their ``scale`` (built-in or named).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from console.model.health import HealthState, ProbeResult
from console.model.history import (
    JUDGED_STATES,
    ROLLUP_SECONDS,
    SLICE_SECONDS,
    HistorySlice,
    ServiceRecord,
    judgement_data,
    merge_slices,
    read_takeover,
    sketch_quantiles,
)
from console.model.json_path import extract_json_path
from console.model.live import (
    STALE_INTERVALS,
    WINDOWS,
    ErrorWindow,
    LatencyWindow,
    ServiceLive,
    SignalSource,
    SignalState,
    SignalValue,
    ThresholdView,
    WindowName,
    stale_after,
)
from console.model.sanitize import clean_text
from console.model.sketch import (
    SlidingWindows,
    WindowSummary,
    encode_sketch,
    new_sketch,
)
from console.model.thresholds import (
    BUILTIN_SIGNALS,
    FEEDABLE_SIGNALS,
    JsonSource,
    SignalSpec,
    Threshold,
    at_or_past,
)

HISTORY_POINTS = 60
"""Sparkline length: one point per probe interval, the oldest dropped first."""

_BUILTIN_LABELS = {
    "p50": "p50", "p95": "p95", "p99": "p99", "error_rate": "errors", "probe_errors": "probe errors",
}
_BUILTIN_UNITS = {"p50": "ms", "p95": "ms", "p99": "ms", "error_rate": "%", "probe_errors": "%"}
PROMETHEUS_SCALE = {"p50": 1000.0, "p95": 1000.0, "p99": 1000.0, "error_rate": 100.0}
"""Prometheus answers seconds and ratios; Conn shows milliseconds and percent."""


@dataclass(slots=True)
class _Reading:
    """The latest value of a signal fed one sample at a time (health JSON, PromQL)."""

    value: float | None
    at: float
    error: str | None = None
    """Set when the source failed: the signal is source_down."""
    why_none: str = "no data"


Timers = dict[str, dict[str, float]]
"""Threshold timers: signal → level → clock time since which the value has been past it."""


@dataclass(slots=True)
class _Judgement:
    """Everything one ``now`` shows, before it is committed (see :meth:`ServiceSignals.snapshot`)."""

    now: float
    short: WindowSummary
    long: WindowSummary
    values: list[SignalValue]
    timers: Timers


class ServiceSignals:
    """Folds one service's samples into windows and latest readings; see the module docstring.

    Args:
        name: the service's name.
        interval: probe interval in seconds; probe-fed values go stale after 3 of them
            plus one ``timeout`` (:func:`~console.model.live.stale_after`).
        timeout: the probe timeout in seconds.
        thresholds: per-signal thresholds, in the signal's displayed unit.
        signals: named signals (JSON path or PromQL).
        baseline: the service a canary is compared with.
        prometheus: the built-in signals ("p95", "error_rate", …) that have a
            PromQL query; those show Prometheus' value instead of the probe's.
        prometheus_interval: Prometheus query interval; its values go stale after 3.
        health_json: built-in signals read from a path in the health JSON,
            by name; those show that reading instead of the probe's.

    Raises:
        ValueError: a named signal has a built-in's name, or a built-in is fed
            by an unknown or a second source.
    """

    def __init__(
        self,
        name: str,
        *,
        interval: float,
        timeout: float = 0.0,
        thresholds: Mapping[str, Threshold],
        signals: Mapping[str, SignalSpec],
        baseline: str | None = None,
        prometheus: Collection[str] = (),
        prometheus_interval: float = 15.0,
        health_json: Mapping[str, JsonSource] | None = None,
    ) -> None:
        health_json = health_json or {}
        if clash := sorted(set(signals) & set(BUILTIN_SIGNALS)):
            raise ValueError(f"signal names {clash} are built in; name custom signals differently")
        if unknown := sorted((set(prometheus) | set(health_json)) - set(FEEDABLE_SIGNALS)):
            raise ValueError(f"{unknown} are not built-in signals another source can feed")
        if both := sorted(set(prometheus) & set(health_json)):
            raise ValueError(f"{both} cannot come from both Prometheus and the health JSON")
        self.name = name
        self.interval = interval
        self.timeout = timeout
        self._stale_after = stale_after(interval, timeout)
        self.baseline = baseline
        self._thresholds = dict(thresholds)
        self._specs = dict(signals)
        self._prometheus = frozenset(prometheus)
        self._prometheus_interval = prometheus_interval
        self._health_json = dict(health_json)
        self._json_paths: dict[str, tuple[str, float]] = {
            **{name: (source.path, source.scale) for name, source in health_json.items()},
            **{name: (spec.json_path, spec.scale)
               for name, spec in signals.items() if spec.json_path is not None},
        }
        """Every signal read from the health JSON (built-in or named): path and scale."""
        self._clear()

    def _clear(self) -> None:
        """Forget every sample: the state of a service nothing has been fed yet."""
        self._windows = SlidingWindows(bucket_seconds=SLICE_SECONDS)
        self._last_probe: ProbeResult | None = None
        self._health: HealthState = "unknown"
        self._health_since: float | None = None
        self._observed_at: float | None = None
        self._readings: dict[str, _Reading] = {}
        self._past_since: Timers = {}
        self._history: dict[str, deque[float | None]] = {
            key: deque(maxlen=HISTORY_POINTS) for key in ("p95", "error_rate")
        }
        self._history_index: int | None = None
        self._written: dict[int, HistorySlice] = {}
        """The last version of each 10 s slice in the ring given out (or restored)."""

    # --- feeding -------------------------------------------------------------

    def record_probe(self, result: ProbeResult) -> None:
        """Fold in one probe: latency (successful probes only), outcome, health, JSON readings.

        Failed probes count in the error rate but not in the latency sketch:
        a refused connection would drag p50 down and a timeout would pin p99
        at the timeout, hiding the service's real latency.
        """
        self._windows.add(result.at, ok=result.ok, latency=result.latency_ms if result.ok else None)
        last = self._last_probe
        if last is None or result.at >= last.at:
            # After a gap the panels showed "unknown", so the state changed even if equal.
            gap = last is not None and result.at - last.at > self._stale_after
            if result.health != self._health or self._health_since is None or gap:
                self._health_since = result.at
            self._health = result.health
            self._last_probe = result
            for key, (path, scale) in self._json_paths.items():
                if result.body is None:
                    reading = _Reading(None, result.at, why_none=f"no JSON body ({_clip(result.reason)})")
                else:
                    value, why = extract_json_path(result.body, path)
                    value, why = _scaled(value, scale, why, path)
                    reading = _Reading(value, result.at, why_none=why or "no data")
                self._readings[key] = reading
        self._seen(result.at)

    def record_query(self, signal: str, value: float | None, at: float, error: str | None = None) -> None:
        """Fold in one Prometheus answer for ``signal``, raw in Prometheus' units.

        Args:
            signal: "p50"/"p95"/"p99"/"error_rate" or a named PromQL signal.
            value: the query's value; None when it returned no data.
            at: when the query ran (clock seconds).
            error: the source's failure in words (``str(SourceError)``, which
                starts "Prometheus: …"); makes the signal source_down.

        Raises:
            ValueError: ``signal`` is not fed by Prometheus for this service.
        """
        if signal in self._prometheus:
            scale = PROMETHEUS_SCALE[signal]
        elif signal in self._specs and self._specs[signal].promql is not None:
            scale = self._specs[signal].scale
        else:
            raise ValueError(f"{self.name}: signal {signal!r} has no PromQL query")
        current = self._readings.get(signal)
        if current is not None and at < current.at:
            return  # a slow answer overtaken by a newer one
        scaled, why = _scaled(None if error is not None else value, scale, "no data from Prometheus", "the value")
        self._readings[signal] = _Reading(
            scaled,
            at,
            error=None if error is None else _clip(error),
            why_none=why or "no data from Prometheus",
        )
        self._seen(at)

    def _seen(self, at: float) -> None:
        if self._observed_at is None or at > self._observed_at:
            self._observed_at = at

    # --- reading -------------------------------------------------------------

    def snapshot(self, now: float) -> ServiceLive:
        """The service as of ``now``; also advances threshold timers and history.

        Call it with a non-decreasing ``now`` (the engine does, after every
        sample); two calls at the same ``now`` return equal snapshots.
        """
        judgement = self._judge(now)
        self._past_since = judgement.timers
        short, long, values = judgement.short, judgement.long, judgement.values
        latency: dict[WindowName, LatencyWindow] = {"1m": _latency(short), "5m": _latency(long)}
        errors: dict[WindowName, ErrorWindow] = {"1m": _errors(short), "5m": _errors(long)}
        self._record_history(now, values)
        health, reason, since = self._health_now(now)
        return ServiceLive(
            name=self.name,
            health=health,
            reason=reason,
            health_since=since,
            observed_at=self._observed_at,
            interval=self.interval,
            baseline=self.baseline,
            latency=latency,
            errors=errors,
            signals=tuple(values),
            history={key: tuple(points) for key, points in self._history.items()},
            history_step=self.interval,
        )

    def _judge(self, now: float) -> _Judgement:
        """Judge every signal at ``now`` on a copy of the timers; nothing here changes ``self``."""
        timers = {name: dict(levels) for name, levels in self._past_since.items()}
        short, long = self._windows.summaries(now, (WINDOWS["1m"], WINDOWS["5m"]))
        values = [self._builtin(name, short, now, timers) for name in BUILTIN_SIGNALS]
        values += [self._named(name, spec, now, timers) for name, spec in self._specs.items()]
        return _Judgement(now, short, long, values, timers)

    def _health_now(self, now: float) -> tuple[HealthState, str, float | None]:
        last = self._last_probe
        if last is None:
            return "unknown", "no probe yet", None
        limit = self._stale_after
        if now - last.at > limit:
            return (
                "unknown",
                f"no probe result for {_seconds(limit)} ({STALE_INTERVALS} intervals"
                f"{f' + {_seconds(self.timeout)} timeout' if self.timeout else ''}); last: {last.health}",
                last.at + limit,
            )
        return self._health, last.reason, self._health_since

    def _builtin(self, name: str, window: WindowSummary, now: float, timers: Timers) -> SignalValue:
        label, unit = _BUILTIN_LABELS[name], _BUILTIN_UNITS[name]
        if name in self._prometheus:
            return self._from_reading(name, label, unit, "prometheus", self._prometheus_interval, now, timers)
        if name in self._health_json:
            return self._from_reading(
                name, label, unit, "health-json", self.interval, now, timers,
                path=self._health_json[name].path, timeout=self.timeout,
            )
        base = {"name": name, "label": label, "unit": unit, "source": "probe"}
        last = self._last_probe
        if name in ("error_rate", "probe_errors"):  # error_rate fed by nothing else: the probes' own
            value = _rate(window)
            detail = f"{window.failed:,} of {window.total:,} failed in 1m"
            empty = "no probes in the last 1m"
        else:
            raw = window.quantiles[("p50", "p95", "p99").index(name)]
            value = None if raw is None else round(raw, 1)
            detail = f"1m window, {window.count:,} successful probes"
            empty = "no successful probe in the last 1m"
        if last is None:
            return self._judged(timers, base, None, None, "no_data", "no probe yet")
        limit = self._stale_after
        if now - last.at > limit:
            return self._judged(timers, base, value, last.at, "stale", _stale_detail(limit, self.interval, self.timeout))
        if value is None:
            return self._judged(timers, base, None, last.at, "no_data", empty)
        return self._judged(timers, base, value, last.at, None, detail, judged_at=now)

    def _named(self, name: str, spec: SignalSpec, now: float, timers: Timers) -> SignalValue:
        if spec.promql is not None:
            return self._from_reading(name, spec.label or name, spec.unit, "prometheus", self._prometheus_interval, now, timers)
        return self._from_reading(name, spec.label or name, spec.unit, "health-json", self.interval, now, timers, path=spec.json_path, timeout=self.timeout)

    def _from_reading(
        self, name: str, label: str, unit: str, source: SignalSource, interval: float, now: float,
        timers: Timers, path: str | None = None, timeout: float = 0.0,
    ) -> SignalValue:
        base = {"name": name, "label": label, "unit": unit, "source": source}
        reading = self._readings.get(name)
        if reading is None:
            waiting = "no probe yet" if source == "health-json" else "waiting for Prometheus"
            return self._judged(timers, base, None, None, "no_data", waiting)
        value = None if reading.value is None else _round(reading.value)
        limit = stale_after(interval, timeout)
        if now - reading.at > limit:
            return self._judged(timers, base, value, reading.at, "stale", _stale_detail(limit, interval, timeout))
        if reading.error is not None:
            return self._judged(timers, base, None, reading.at, "source_down", reading.error)
        if value is None:
            return self._judged(timers, base, None, reading.at, "no_data", reading.why_none)
        detail = f"{path} in the health JSON" if path else "from Prometheus"
        return self._judged(timers, base, value, reading.at, None, detail, judged_at=reading.at)

    def _judged(
        self, all_timers: Timers, base: dict[str, Any], value: float | None, at: float | None,
        state: SignalState | None, detail: str, judged_at: float | None = None,
    ) -> SignalValue:
        """Build the value; when ``state`` is None, judge it against its threshold.

        Threshold timers only run while there is a fresh value: no data,
        stale or source down resets them, since "continuously past" cannot be
        claimed across a gap. ``all_timers`` is updated in place.
        """
        name = base["name"]
        threshold = self._thresholds.get(name)
        if state is not None or value is None or judged_at is None:
            all_timers.pop(name, None)
            view = None if threshold is None else _view(threshold, None, None)
            return SignalValue(**base, value=value, at=at, state=state or "no_data", detail=detail, threshold=view)
        if threshold is None:
            return SignalValue(**base, value=value, at=at, state="ok", detail=detail)
        timers = all_timers.setdefault(name, {})
        for level in ("warning", "critical"):
            mark = getattr(threshold, level)
            if mark is not None and at_or_past(value, mark, threshold.direction):
                timers.setdefault(level, judged_at)
            else:
                timers.pop(level, None)
        judged: SignalState = "ok"
        for level in ("warning", "critical"):
            if level in timers and judged_at - timers[level] >= threshold.for_:
                judged = level  # type: ignore[assignment]
        past = "critical" if "critical" in timers else "warning" if "warning" in timers else None
        if past is not None and judged != past:
            detail = f"{detail}; past {past} for less than {_seconds(threshold.for_)}"
        view = _view(threshold, past, timers.get(past) if past else None)
        return SignalValue(**base, value=value, at=at, state=judged, detail=detail, threshold=view)

    def _record_history(self, now: float, values: list[SignalValue]) -> None:
        """One point per probe interval.

        A probe slower than its interval skips intervals; while the value is still
        fresh (fewer than STALE_INTERVALS skipped) the last point is carried
        forward, since it was still the current value. Longer gaps become None:
        a visible hole, as the value was stale there.
        """
        index = math.floor(now / self.interval)
        shown = {v.name: v.value if v.state in ("ok", "warning", "critical") else None for v in values}
        if self._history_index is not None and index < self._history_index:
            return
        if self._history_index is not None and index > self._history_index:
            skipped = min(index - self._history_index - 1, HISTORY_POINTS)
            for points in self._history.values():
                filler = points[-1] if points and skipped < STALE_INTERVALS else None
                points.extend([filler] * skipped)
        for key, points in self._history.items():
            if self._history_index == index and points:
                points[-1] = shown[key]
            else:
                points.append(shown[key])
        self._history_index = index

    # --- signal history ------------------------------------------------------

    def history_slices(self, now: float) -> list[HistorySlice]:
        """The 10 s slices whose contents changed since the last call, oldest first.

        Normally the slice holding ``now``, plus the one before right after a
        boundary (or any recent slice a late sample landed in). The current
        slice carries the judgement as of ``now`` — the one :meth:`snapshot`
        makes at ``now``, computed without advancing its timers, so calling
        this changes no snapshot. An earlier slice keeps the judgement it was
        last written with (the current one if it never was); only its counts,
        sketch and quantiles change. Call it with a non-decreasing ``now``, as
        :meth:`snapshot`.
        """
        judged = self._judgement_data(self._judge(now))
        current = self._windows.index_of(now)
        oldest = current - self._windows.buckets + 1
        late = [i for i in self._windows.take_changed(current) if oldest <= i < current]
        out: list[HistorySlice] = []
        for index in (*late, current):
            written = self._written.get(index)
            kept = written.data if written is not None and index != current else None  # an earlier slice's
            piece = self._slice(index, judged if kept is None else dict(kept))
            if piece != written:
                out.append(piece)
                self._written[index] = piece
        self._written = {i: piece for i, piece in self._written.items() if i >= oldest}
        return out

    def rollup(self, start: float) -> HistorySlice | None:
        """The 60 s roll-up of the minute starting at ``start``, merged from its six slices.

        Counts are summed and quantiles come from the merged sketch (exact, not
        percentiles of percentiles); health and signals are those of the
        minute's last judged slice. None once the ring no longer holds the
        minute (samples five minutes newer have reused its slots).

        Raises:
            ValueError: ``start`` is not a multiple of 60 s.
        """
        if start % ROLLUP_SECONDS:
            raise ValueError(f"a roll-up starts on a whole minute, not at {start!r}")
        first = self._windows.index_of(start)
        if not self._windows.holds(first):
            return None
        parts = []
        for index in range(first, first + ROLLUP_SECONDS // SLICE_SECONDS):
            written = self._written.get(index)
            parts.append(self._slice(index, {} if written is None else dict(written.data)))
        return merge_slices(parts, service=self.name, start=start)

    def _slice(self, index: int, base: dict[str, Any]) -> HistorySlice:
        """Slice ``index`` as the ring holds it, with ``base`` as its judgement."""
        counts = self._windows.slice(index)
        sketch = new_sketch() if counts is None else counts.sketch
        return HistorySlice(
            service=self.name,
            resolution=SLICE_SECONDS,
            start=float(index * SLICE_SECONDS),
            samples=0 if counts is None else counts.total,
            errors=0 if counts is None else counts.failed,
            sketch=encode_sketch(sketch) if sketch.count else None,
            data={**base, **sketch_quantiles(sketch)},
        )

    def _judgement_data(self, judgement: _Judgement) -> dict[str, Any]:
        health, reason, since = self._health_now(judgement.now)
        last = self._last_probe
        return judgement_data(
            as_of=judgement.now,
            health=health,
            reason=reason,
            health_since=since,
            last_at=None if last is None else last.at,
            last_health=None if last is None else last.health,
            last_health_since=self._health_since,
            observed_at=self._observed_at,
            signals=judgement.values,
            timers=judgement.timers,
        )

    def restore(self, slices: Sequence[HistorySlice], now: float) -> list[str]:
        """Take over from a previous leader: rebuild everything from its history slices.

        Replaces whatever this object held, from this service's 10 s slices
        (see :func:`console.model.history.read_takeover`): the ring of counts
        and sketches; health, its reason and since, the last probe's time and
        the Prometheus and health-JSON readings from the newest judgement; and
        the threshold timers of signals whose feed is still fresh at ``now``
        (a stale feed resets them, as it would have for the old leader). So
        ``snapshot(now)`` shows what the old leader's would have before any
        new sample, and the next sample carries its timers on. The sparkline
        comes back at 10 s resolution.

        Returns:
            One line per thing that could not be read and was skipped.
        """
        self._clear()
        taken = read_takeover(
            slices, service=self.name, now=now, interval=self.interval,
            keys=tuple(self._history), points=HISTORY_POINTS,
        )
        for ring in taken.ring:
            self._windows.restore(ring.index, total=ring.total, failed=ring.failed, sketch=ring.sketch)
            self._written[ring.index] = ring.piece
        if taken.record is not None:
            self._restore_judgement(taken.record, now)
        for key, points in taken.sparkline.items():
            self._history[key].extend(points)
        self._history_index = taken.last_index
        return taken.problems

    def _source_of(self, name: str) -> SignalSource:
        """Where the signal called ``name`` comes from (a name it does not know: the prober)."""
        if name in self._prometheus or (name in self._specs and self._specs[name].promql is not None):
            return "prometheus"
        return "health-json" if name in self._json_paths else "probe"

    def _restore_judgement(self, record: ServiceRecord, now: float) -> None:
        """Health, the last probe, readings and fresh timers, as the record shows them."""
        if record.last_at is not None:
            verdict = record.last_health or record.health
            self._last_probe = ProbeResult(
                self.name, record.last_at, 0.0, verdict, record.reason, ok=verdict != "down"
            )
            self._health = verdict
            self._health_since = record.last_at if record.last_health_since is None else record.last_health_since
        self._observed_at = record.observed_at
        for name, entry in record.signals.items():
            source = self._source_of(name)
            if entry.source is not None and entry.source != source:
                continue  # fed by another source then (the config changed): nothing carries over
            if source != "probe" and entry.at is not None:
                self._readings[name] = _Reading(
                    value=entry.value if entry.state not in ("no_data", "source_down") else None,
                    at=entry.at,
                    error=entry.detail if entry.state == "source_down" else None,
                    why_none=(entry.detail or "no data") if entry.state == "no_data" else "no data",
                )
            threshold = self._thresholds.get(name)
            if threshold is None or entry.state not in JUDGED_STATES or entry.at is None:
                continue
            limit = stale_after(self._prometheus_interval) if source == "prometheus" else self._stale_after
            if now - entry.at > limit:
                continue  # its feed went stale: "continuously past" cannot be claimed across it
            levels = {level: since for level, since in entry.timers.items() if getattr(threshold, level) is not None}
            if levels:
                self._past_since[name] = levels


def _latency(window: WindowSummary) -> LatencyWindow:
    p50, p95, p99 = (None if q is None else round(q, 1) for q in window.quantiles)
    return LatencyWindow(p50=p50, p95=p95, p99=p99, count=window.count)


def _errors(window: WindowSummary) -> ErrorWindow:
    return ErrorWindow(failed=window.failed, total=window.total, rate_pct=_rate(window))


def _rate(window: WindowSummary) -> float | None:
    return None if window.total == 0 else round(100.0 * window.failed / window.total, 2)


def _scaled(value: float | None, scale: float, why: str, what: str) -> tuple[float | None, str]:
    """``value × scale`` when that is a finite number, else None and why."""
    if value is None or not math.isfinite(value):
        return None, why
    scaled = value * scale
    if not math.isfinite(scaled):
        return None, f"{what} × {scale:g} is out of range"
    return scaled, ""


def _round(value: float) -> float:
    """Four significant digits (at most six decimals; integers kept): 93.12, 0.01234, 123457.0.

    Readings jitter in their last digits; rounding makes an unchanged value
    compare equal, so the panels do not repaint for noise.
    """
    if value == 0:
        return 0.0
    digits = max(0, min(6, 3 - math.floor(math.log10(abs(value)))))
    return round(value, digits)


def _view(threshold: Threshold, past: str | None, since: float | None) -> ThresholdView:
    return ThresholdView(
        warning=threshold.warning,
        critical=threshold.critical,
        direction=threshold.direction,
        for_seconds=threshold.for_,
        past=past,
        past_since=since,
    )


def _stale_detail(limit: float, interval: float, timeout: float = 0.0) -> str:
    return f"no new value for {_seconds(limit)} ({_limit_words(interval, timeout)})"


def _limit_words(interval: float, timeout: float) -> str:
    """How the staleness limit is made: "3 × 5s interval" or "3 × 1s interval + 2s timeout"."""
    words = f"{STALE_INTERVALS} × {_seconds(interval)} interval"
    return words + (f" + {_seconds(timeout)} timeout" if timeout else "")


def _seconds(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _clip(text: str) -> str:
    """One clean line of outside text (a probe's reason, a source's error) for a detail."""
    return clean_text(text, limit=160)
