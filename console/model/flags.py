"""Feature flags (placeholder: the flags issue replaces this module)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class FlagsConfig(BaseModel):
    """The [flags] section of conn.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    export: Path | None = None
    groups: dict[str, list[str]] = Field(default_factory=dict)
