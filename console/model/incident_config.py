"""The ``[incidents]`` config: severities with their definitions and clocks.

A contract (docs and scripts rely on it). The defaults are the production
readiness plan's: SEV1 complete outage / data loss / security breach,
respond within 5 minutes; SEV2 degradation over 50 % or several features
broken, 15 minutes; SEV3 one feature broken or slow, an hour; SEV4 minor,
8 hours. Each has an update cadence: how often the commander owes the
channel an update while the incident is open.

    [incidents]
    auto_rollback_severity = "SEV2"

    [incidents.severities.SEV3]
    respond = "30m"             # a table overrides only the keys it sets
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from console.model.units import Duration

Severity = Literal["SEV1", "SEV2", "SEV3", "SEV4"]
SEVERITIES: tuple[Severity, ...] = ("SEV1", "SEV2", "SEV3", "SEV4")


class SeverityConfig(BaseModel):
    """One severity's definition (shown when declaring) and its clocks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    respond: Duration
    """Acknowledge within this long of the declaration."""
    update_every: Duration
    """The commander owes an update this often while the incident is open."""


DEFAULT_SEVERITIES: dict[Severity, SeverityConfig] = {
    "SEV1": SeverityConfig(description="Complete outage, data loss or a security breach",
                           respond=300.0, update_every=900.0),
    "SEV2": SeverityConfig(description="Degradation over 50% of users, or several features broken",
                           respond=900.0, update_every=1800.0),
    "SEV3": SeverityConfig(description="One feature broken or slow",
                           respond=3600.0, update_every=7200.0),
    "SEV4": SeverityConfig(description="Minor issue: cosmetic, or a workaround exists",
                           respond=8 * 3600.0, update_every=24 * 3600.0),
}


def severity_of(value: object) -> Severity:
    """``SEV2``, ``sev2``, ``2`` → ``"SEV2"``; anything else is a ValueError listing the valid ones."""
    text = str(value).strip().upper()
    if text.isdigit():
        text = "SEV" + text
    if text not in SEVERITIES:
        raise ValueError(f"unknown severity {value!r}: use one of {', '.join(SEVERITIES)} (or 1–4)")
    return text


class IncidentsConfig(BaseModel):
    """``[incidents]``: severities and what automatic incidents are opened with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severities: dict[Severity, SeverityConfig] = Field(default_factory=lambda: dict(DEFAULT_SEVERITIES))
    auto_rollback_severity: Severity = "SEV2"
    """The severity of the incident an automatic rollback opens."""

    @field_validator("severities", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        # A table overrides only the keys it sets; the other severities keep the defaults.
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {k: v.model_dump() for k, v in DEFAULT_SEVERITIES.items()}
        for key, table in value.items():
            if key in merged and isinstance(table, dict):
                merged[key] = {**merged[key], **table}
            else:
                merged[key] = table
        return merged

    def severity(self, name: Severity) -> SeverityConfig:
        return self.severities.get(name) or DEFAULT_SEVERITIES[name]
