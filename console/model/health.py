"""Health as the field reports it: one state, always with a one-line reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

HealthState = Literal["up", "degraded", "down", "unknown"]
"""``unknown`` means no answer has been judged yet, or the source is down."""

HEALTH_STATES: tuple[HealthState, ...] = ("up", "degraded", "down", "unknown")


@dataclass(frozen=True)
class ProbeResult:
    """One probe of one service's health endpoint: a sample, never persisted.

    Attributes:
        service: the service's name in the config.
        at: when the probe started (clock seconds).
        latency_ms: time to the end of the read body, or to the failure.
        health: the state the response means.
        reason: one line for people ("HTTP 503", "timeout after 2s",
            "checks.redis = down", "body is not JSON"); already safe to render
            only after escaping — it may quote the body.
        ok: True when the request itself succeeded with a 2xx/3xx and a body
            that could be judged; feeds the error rate.
        http_status: the HTTP status, when a response arrived.
        body: the parsed JSON body when there was one (for named signals).
    """

    service: str
    at: float
    latency_ms: float
    health: HealthState
    reason: str
    ok: bool
    http_status: int | None = None
    body: Any = None
