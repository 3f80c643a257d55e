"""Failure limits and early passes: a small fold over one criterion's verdicts.

The engine keeps one :class:`GateTracker` per criterion per stage, so "act on
the third failure in a row" and "pass early after ten passes in a row" are a
rule in the model, not a counter in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.model.gates import Verdict


@dataclass(frozen=True)
class GateTracker:
    """Failure limits and early passes over successive verdicts of one criterion (a fold).

    A pass resets the consecutive failures; a fail resets the consecutive
    passes. no_data and source_error reset the consecutive passes (an early
    pass needs unbroken evidence) and leave the failures as they are: they are
    neither a recovery nor a failure, so "fail, no data, fail" still reaches a
    limit of 2, and a source outage never counts towards one.

    Attributes:
        failure_limit: consecutive fails that trip (1: the first fail).
        total_failure_limit: fails in all that trip; None for no such limit.
        successes_to_pass: consecutive passes that make an early pass; None for none.
        tripped_by: the verdict with which a limit was reached; once set it stays
            (the engine acts once) until :meth:`reset`.
    """

    failure_limit: int = 1
    total_failure_limit: int | None = None
    successes_to_pass: int | None = None
    consecutive_failures: int = 0
    total_failures: int = 0
    consecutive_successes: int = 0
    tripped_by: Verdict | None = None

    def __post_init__(self) -> None:
        limits = (self.failure_limit, self.total_failure_limit, self.successes_to_pass)
        if any(limit is not None and limit < 1 for limit in limits):
            raise ValueError("limits are at least 1")

    def observe(self, verdict: Verdict) -> GateTracker:
        """The tracker after ``verdict``."""
        if verdict.outcome == "pass":
            return replace(self, consecutive_failures=0,
                           consecutive_successes=self.consecutive_successes + 1)
        if verdict.outcome != "fail":
            return replace(self, consecutive_successes=0)
        after = replace(self, consecutive_failures=self.consecutive_failures + 1,
                        total_failures=self.total_failures + 1, consecutive_successes=0)
        reached = after.consecutive_failures >= self.failure_limit or (
            self.total_failure_limit is not None and after.total_failures >= self.total_failure_limit
        )
        if reached and self.tripped_by is None:
            return replace(after, tripped_by=verdict)
        return after

    @property
    def tripped(self) -> bool:
        """A failure limit has been reached."""
        return self.tripped_by is not None

    @property
    def passed_early(self) -> bool:
        """The last ``successes_to_pass`` verdicts all passed."""
        return self.successes_to_pass is not None and self.consecutive_successes >= self.successes_to_pass

    def reset(self) -> GateTracker:
        """A fresh count with the same limits (a new stage, a resume)."""
        return GateTracker(self.failure_limit, self.total_failure_limit, self.successes_to_pass)
