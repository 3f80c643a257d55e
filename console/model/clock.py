"""One injectable clock, so windows, bake times and ages are tested without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch."""

    def now(self) -> float:
        """The current time, seconds since the epoch."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to; for tests and frozen snapshots."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += seconds

    def set(self, when: float) -> None:
        """Jump to ``when`` (never backwards)."""
        if when < self._now:
            raise ValueError("time does not go backwards")
        self._now = when
