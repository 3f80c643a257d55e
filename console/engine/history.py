"""The signal history, as the leader keeps it: restore at the start of a term, record, prune.

At the start of a term the new leader reads the last slices of every service
and rebuilds each service's windows, threshold ``for`` timers and breach
counts from them (:meth:`History.restore`) before anything is judged — so a
change of leader loses at most one tick of data. During the term it writes
the changed 10 s slices of every service in ONE store write per tick, the
1-minute roll-up of each completed minute, and prunes by retention once a
minute. Views read it through :meth:`History.points`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from console.config import HistoryConfig
from console.engine.supervisor import Reporter, Supervisor, keep_going
from console.model.clock import Clock
from console.model.history import (
    RESOLUTIONS,
    ROLLUP_SECONDS,
    SLICE_SECONDS,
    HistorySlice,
    settle,
    signal_points,
)
from console.model.live import WINDOWS
from console.model.signals import ServiceSignals
from console.store.base import EventStore

log = logging.getLogger(__name__)

PRUNE_EVERY = 60.0
"""Seconds between prunes (and roll-ups) by the leader."""

RESTORE_SPAN = max(WINDOWS.values()) + 2 * SLICE_SECONDS
"""How far back a new leader reads: the longest window plus the slices at its edges."""

FINE_SPAN = 6 * 3600.0
"""Ranges up to this long are served from 10 s slices; longer ones from 1-minute roll-ups."""


@dataclass(frozen=True)
class HistoryPoint:
    """One point of a signal's history: the slice's start, value and state."""

    at: float
    value: float | None
    state: str | None


@dataclass
class WriteStats:
    """What the last ticks cost (for ``bench/history.py`` and the logs)."""

    writes: int = 0
    slices: int = 0
    seconds: float = 0.0


class History:
    """Signal history for one engine: the leader's recorder and everyone's reader."""

    def __init__(self, config: HistoryConfig, store: EventStore, clock: Clock, *, tick: float) -> None:
        self.config = config
        self._store = store
        self._clock = clock
        self.tick = tick
        self.stats = WriteStats()
        self._rolled: dict[str, float] = {}
        self._pruned_at = -math.inf

    @property
    def retention(self) -> dict[int, float]:
        return {SLICE_SECONDS: self.config.slices, ROLLUP_SECONDS: self.config.rollups}

    async def restore(self, signals: Mapping[str, ServiceSignals]) -> list[str]:
        """Rebuild every service's windows and timers from the store; return what was unreadable.

        Raises:
            StoreError: the history cannot be read (the term does not start).
        """
        now = self._clock.now()
        rows = await self._store.read_history(since=now - RESTORE_SPAN, services=list(signals))
        by_service: dict[str, list[HistorySlice]] = {}
        for row in rows:
            by_service.setdefault(row.service, []).append(row)
        problems: list[str] = []
        for name, accumulator in signals.items():
            problems += accumulator.restore(by_service.get(name, []), now)
            # Re-roll the minute in progress when the old leader fell: upserts are idempotent.
            self._rolled[name] = _minute(now) - 2 * ROLLUP_SECONDS
        for problem in problems:
            log.warning("history: %s", problem)
        restored = sum(1 for name in signals if by_service.get(name))
        log.info("restored %d of %d services from %d history slices", restored, len(signals), len(rows))
        return problems

    def start(
        self, stack: contextlib.AsyncExitStack, signals: Mapping[str, ServiceSignals],
        supervisor: Supervisor, report: Reporter,
    ) -> None:
        """Record every tick until the term's stack closes."""

        async def step() -> float:
            await self.record(signals)
            return self.tick

        task = supervisor.spawn(keep_going("history", step, report, retry=self.tick), "history")
        stack.push_async_callback(supervisor.cancel, [task])

    async def record(self, signals: Mapping[str, ServiceSignals]) -> int:
        """One tick: the changed slices and completed minutes of every service in one write."""
        now = self._clock.now()
        rows: list[HistorySlice] = []
        minute = _minute(now)
        for name, accumulator in signals.items():
            rows += accumulator.history_slices(now)
            start = self._rolled.setdefault(name, minute - ROLLUP_SECONDS) + ROLLUP_SECONDS
            while start < minute:  # every minute completed since the last roll-up
                if (rollup := accumulator.rollup(start)) is not None:
                    rows.append(rollup)
                self._rolled[name] = start
                start += ROLLUP_SECONDS
        if rows:
            began = time.perf_counter()
            await self._store.write_history(rows)
            self.stats.writes += 1
            self.stats.slices += len(rows)
            self.stats.seconds += time.perf_counter() - began
        if now - self._pruned_at >= PRUNE_EVERY:
            await self._settle(now)
            await self._store.prune_history(
                now=now, retention=self.retention, sketch_retention=self.config.sketches
            )
            self._pruned_at = now
        return len(rows)

    async def _settle(self, now: float) -> None:
        """Slim the slices that just left the sketch retention (see :func:`settle`).

        Runs with pruning, once a minute, over the slices that crossed the
        boundary since the last run (a few per service); after a change of
        leader it goes back one retention, so nothing is left unsettled.
        """
        until = now - self.config.sketches
        since = until - (self.config.sketches if math.isinf(self._pruned_at) else 3 * PRUNE_EVERY)
        rows = [
            settle(row)
            for resolution in RESOLUTIONS
            for row in await self._store.read_history(since=since, until=until, resolution=resolution)
            if row.sketch is not None or "as_of" in row.data
        ]
        if rows:
            await self._store.write_history(rows)

    async def points(
        self, service: str, signal: str, since: float, until: float | None = None
    ) -> list[HistoryPoint]:
        """A signal's recorded values between ``since`` and ``until`` (10 s or 1 min apart)."""
        end = self._clock.now() if until is None else until
        resolution = SLICE_SECONDS if end - since <= FINE_SPAN else ROLLUP_SECONDS
        rows = await self._store.read_history(
            since=since, until=until, services=[service], resolution=resolution
        )
        return [HistoryPoint(at, value, state) for at, value, state in signal_points(rows, signal)]


def _minute(at: float) -> float:
    return math.floor(at / ROLLUP_SECONDS) * ROLLUP_SECONDS

