"""The verdicts of a rollout's criteria, as the leader last judged them: the rollout's live row.

The leader evaluates every active rollout each second and writes one
:class:`RolloutLive` per rollout to the store's live table (key
``rollout/NAME``), as it writes each service's :class:`~console.model.live.ServiceLive`;
followers and ``conn status`` read it from there, so every console shows
the same verdicts, evidence and countdown without evaluating anything.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from console.model.gates import Verdict

LIVE_PREFIX = "rollout/"
"""Live-table keys of rollouts: ``rollout/checkout`` (services never contain '/')."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class CriterionLive(_Frozen):
    """One criterion's latest verdict, with its evidence and worst-case detection time."""

    text: str
    """The criterion as configured ("error_rate > 5% for 5m")."""
    role: Literal["gate", "abort"]
    outcome: Literal["pass", "fail", "no_data", "source_error"]
    value: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    since: float | None = None
    """Since when the condition has held (sustained criteria)."""
    evidence: str = ""
    """One line in the console's words: "error_rate 7.10% > 5.00% for 5m (since …)"."""
    reason: str = ""
    """Why there is no verdict, for no_data and source_error."""
    budget: float | None = None
    """Worst-case seconds from a bad canary to the rollback starting by this criterion."""
    budget_text: str = ""

    @classmethod
    def of(cls, verdict: Verdict, text: str, budget: float | None, budget_text: str) -> CriterionLive:
        return cls(
            text=text, role=verdict.role, outcome=verdict.outcome, value=verdict.value,
            baseline=verdict.baseline, threshold=verdict.threshold, since=verdict.since,
            evidence=verdict.evidence, reason=verdict.reason, budget=budget, budget_text=budget_text,
        )


class RolloutLive(_Frozen):
    """A rollout's criteria as the leader last judged them."""

    name: str
    run: int
    at: float
    """When they were judged (the leader's clock)."""
    gate: tuple[CriterionLive, ...] = ()
    """The current stage's gate: must all pass before an advance."""
    abort: tuple[CriterionLive, ...] = ()
    """Evaluated continuously: any that fails starts the rollback (by its policy)."""
    gate_passing: bool = False
    blocked: str = ""
    """Why the gate holds the rollout (a failing criterion, no data, a source down); empty when not."""
    rollback_at: float | None = None
    """An automatic rollback is counting down: it starts at this time unless held."""
    rollback_reason: str = ""
    notices: tuple[str, ...] = ()
    """What a "notify" policy reported (recorded and shown, nothing done)."""

    def failing(self) -> tuple[CriterionLive, ...]:
        return tuple(c for c in (*self.gate, *self.abort) if c.outcome == "fail")
