"""Signal definitions and thresholds: what a value means (ok, warning, critical).

Used by the config (``[services.X.thresholds]``, ``[services.X.signals]``,
``[services.X.json]``), by the panels to colour values, and later by rollout gates.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from console.model.units import Duration

SignalName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
"""Lower-case identifier: "p95", "cache_hit_rate"."""

BUILTIN_SIGNALS = ("p50", "p95", "p99", "error_rate", "probe_errors")
"""Signals every service has. The prober measures them unless another source feeds them
(see :data:`FEEDABLE_SIGNALS`); ``probe_errors`` is always the prober's failure rate."""

FEEDABLE_SIGNALS = ("p50", "p95", "p99", "error_rate")
"""Built-in signals a PromQL query (``[services.X.queries]``) or a path in the health
JSON (``[services.X.json]``) can feed instead of the prober: latency in ms, error rate
in percent."""


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class Threshold(_Strict):
    """Warning and critical levels for one signal; the panels colour by them."""

    warning: float | None = None
    """Level at which the value is marked as a warning."""
    critical: float | None = None
    """Level at which the value is marked critical."""
    direction: Literal["above", "below"] = "above"
    """Which side is bad: "above" for latency and errors, "below" for cache hit rate."""
    for_: Duration = Field(0.0, alias="for")
    """How long the value must stay past a level before it counts (e.g. "5m")."""

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warning is not None and self.critical is not None:
            worse = self.critical >= self.warning if self.direction == "above" else (
                self.critical <= self.warning
            )
            if not worse:
                raise ValueError(
                    f"critical ({self.critical:g}) must be {'≥' if self.direction == 'above' else '≤'}"
                    f" warning ({self.warning:g}) when direction is {self.direction!r}"
                )
        return self


class JsonSource(_Strict):
    """Where a built-in signal is read in the health JSON, and how to scale it."""

    path: str
    """Dotted path into the health body, e.g. "metrics.p95_ms" (see :mod:`console.model.json_path`)."""
    scale: float = 1.0
    """Multiply the raw value by this: 100 turns an error ratio 0.077 into 7.7 (%)."""

    @field_validator("path")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not value or any(not part for part in value.split(".")):
            raise ValueError(f'{value!r} is not a dotted path such as "metrics.p95_ms"')
        return value


class SignalSpec(_Strict):
    """A named custom signal: read from a JSON path in the health body, or from PromQL."""

    json_path: str | None = None
    """Dotted path into the health endpoint's JSON body, e.g. "metrics.cache_hit_rate"."""
    promql: str | None = None
    """PromQL instant query; "{service}" is replaced by the service name."""
    unit: str = ""
    """Unit shown after the value: "ms", "%", "" (a count)."""
    label: str = ""
    """Short name on the panels (defaults to the signal's key)."""
    scale: float = 1.0
    """Multiply the raw value by this (0.0–1.0 ratios shown as % use 100)."""

    @model_validator(mode="after")
    def _one_source(self) -> SignalSpec:
        if (self.json_path is None) == (self.promql is None):
            raise ValueError("set exactly one of json_path or promql")
        return self




def at_or_past(value: float, level: float | None, direction: str) -> bool:
    """The one comparison of a value with a threshold level: at the level counts as past.

    The engine's judgement, the panels' 5m marks and the words ("≥ 5.00%")
    all use it, so they never disagree about a value sitting on a level.
    """
    return level is not None and (value >= level if direction == "above" else value <= level)
