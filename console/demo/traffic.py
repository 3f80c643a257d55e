"""Simulated request traffic for one demo service, and the numbers it yields.

A demo service has no real users, so it invents them: a background thread
draws batches of requests several times a second (lognormal latency around the
service's median, a small error ratio, cache hits), with the injected faults
applied. The last minute of samples answers ``/api/health/advanced`` with real
percentiles; every sample also feeds the service's own Prometheus registry, so
``/metrics`` and the health JSON tell the same story.

Memory is bounded: the window keeps at most one batch per tick for
``window_s`` seconds, and a batch holds at most ``MAX_BATCH`` samples.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from console.demo.canary import CanaryRouter
from console.demo.faults import Faults

TICK_S = 0.2
"""Time between simulated batches."""
MAX_BATCH = 2_000
"""Upper bound on the samples drawn in one tick, whatever the elapsed time."""
BREAKER_WINDOW_S = 600.0
"""Circuit-breaker opens are counted over the last 10 minutes."""
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
)

Role = Literal["stable", "canary"]


@dataclass(frozen=True)
class ServiceProfile:
    """How a healthy service behaves: the baseline the faults bend."""

    name: str
    version: str
    median_ms: float
    """Median simulated latency; p95 is about 2× this with the default spread."""
    sigma: float = 0.45
    """Spread of the lognormal latency (shape parameter)."""
    requests_per_s: float = 120.0
    """Mean simulated request rate (for a canary pair: of the whole family)."""
    error_ratio: float = 0.0005
    cache_hit_rate: float = 0.85
    memory_pct: float = 47.5
    """Centre of the slowly wandering memory use."""


@dataclass(frozen=True)
class TrafficMetrics:
    """The last window of simulated traffic, as ``/api/health/advanced`` reports it."""

    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    error_rate: float
    cache_hit_rate: float
    memory_pct: float
    circuit_breaker_opens: int
    requests_per_s: float
    canary_share: float | None

    def as_json(self) -> dict[str, Any]:
        """The ``metrics`` object of the advanced health body."""
        body: dict[str, Any] = {
            "p50_ms": _round(self.p50_ms),
            "p95_ms": _round(self.p95_ms),
            "p99_ms": _round(self.p99_ms),
            "error_rate": round(self.error_rate, 6),
            "cache_hit_rate": round(self.cache_hit_rate, 4),
            "memory_pct": round(self.memory_pct, 2),
            "circuit_breaker_opens": self.circuit_breaker_opens,
            "requests_per_s": round(self.requests_per_s, 1),
        }
        if self.canary_share is not None:
            body["canary_share"] = round(self.canary_share, 4)
        return body


@dataclass
class _Batch:
    at: float
    span: float
    latencies_ms: list[float]
    errors: int
    hits: int


class TrafficSimulator:
    """Generates one service's traffic; all state is guarded by one lock.

    Args:
        profile: the healthy baseline.
        router: for the checkout pair, who serves which user; ``None`` serves everyone.
        role: which side of the router this service is.
        window_s: how far back ``metrics()`` looks.
        seed: for reproducible draws in tests.
    """

    def __init__(
        self,
        profile: ServiceProfile,
        *,
        router: CanaryRouter | None = None,
        role: Role = "stable",
        window_s: float = 60.0,
        seed: int | None = None,
    ) -> None:
        self.profile = profile
        self.router = router
        self.role = role
        self.window_s = window_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults = Faults()
        self._batches: deque[_Batch] = deque(maxlen=math.ceil(window_s / TICK_S) + 8)
        self._opens: deque[float] = deque(maxlen=10_000)
        self._memory = profile.memory_pct
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        """This service's own registry: two services never share metrics."""
        labels = {"service": profile.name}
        self._duration = Histogram(
            "http_request_duration_seconds",
            "Simulated request latency.",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        requests = Counter(
            "http_requests_total",
            "Simulated requests by status code.",
            ["service", "code"],
            registry=self.registry,
        )
        self._requests = {
            code: requests.labels(service=profile.name, code=code) for code in ("200", "500", "503")
        }
        self._cache_gauge = Gauge(
            "cache_hit_ratio",
            "Cache hit ratio over the last window.",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self._memory_gauge = Gauge(
            "memory_usage_percent",
            "Memory in use, percent.",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self._breaker_counter = Counter(
            "circuit_breaker_opens_total",
            "Circuit-breaker opens.",
            ["service"],
            registry=self.registry,
        ).labels(**labels)
        self._memory_gauge.set(self._memory)
        self._cache_gauge.set(profile.cache_hit_rate)

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Backfill one window of history, then simulate in a daemon thread."""
        if self._thread is not None:
            return
        now = time.monotonic()
        steps = max(1, math.ceil(self.window_s))
        for i in range(steps):
            self._simulate(
                1.0 * self.window_s / steps,
                now - self.window_s + (i + 1) * self.window_s / steps,
                record=False,
            )
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"demo-traffic-{self.profile.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(TICK_S):
            now = time.monotonic()
            self._simulate(now - last, now, record=True)
            last = now

    # --- faults ----------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults; an injected breaker count also moves the counter."""
        with self._lock:
            self._faults = faults
            if faults.circuit_breaker_opens is not None:
                natural = self._natural_opens(time.monotonic())
                extra = faults.circuit_breaker_opens - natural
                if extra > 0:
                    self._breaker_counter.inc(extra)
            if faults.memory_pct is not None:
                self._memory_gauge.set(faults.memory_pct)

    # --- simulation ------------------------------------------------------------

    def _simulate(self, span: float, now: float, *, record: bool) -> None:
        """Draw one batch of requests covering ``span`` seconds ending at ``now``."""
        span = max(0.0, min(span, 5.0))
        rng = self._rng
        p = self.profile
        expected = p.requests_per_s * span
        drawn = max(
            0, min(MAX_BATCH, round(rng.gauss(expected, math.sqrt(expected) if expected else 0)))
        )
        mine = self._my_share_of(drawn)
        with self._lock:
            faults = self._faults
            error_ratio = p.error_ratio if faults.error_rate is None else faults.error_rate
            hit_ratio = p.cache_hit_rate if faults.cache_hit_rate is None else faults.cache_hit_rate
            extra_ms = faults.latency_ms or 0.0
            mu = math.log(p.median_ms)
            latencies: list[float] = []
            errors = hits = 0
            for _ in range(mine):
                latency = rng.lognormvariate(mu, p.sigma) + extra_ms
                failed = rng.random() < error_ratio
                hit = rng.random() < hit_ratio
                latencies.append(latency)
                errors += failed
                hits += hit
                if record:
                    self._duration.observe(latency / 1000.0)
                    code = ("503" if rng.random() < 0.3 else "500") if failed else "200"
                    self._requests[code].inc()
            self._batches.append(_Batch(now, span, latencies, errors, hits))
            self._trim(now)
            # Breakers open now and then, and more often when requests fail.
            open_rate = 1 / 480 + max(0.0, error_ratio - 0.01) * 0.2
            if rng.random() < open_rate * span:
                self._opens.append(now)
                if record:
                    self._breaker_counter.inc()
            self._memory += (
                rng.gauss(0, 0.4 * math.sqrt(span)) + (p.memory_pct - self._memory) * 0.05 * span
            )
            self._memory = min(max(self._memory, p.memory_pct - 7.5), p.memory_pct + 7.5)
            if record:
                total = sum(len(b.latencies_ms) for b in self._batches)
                all_hits = sum(b.hits for b in self._batches)
                self._cache_gauge.set(all_hits / total if total else hit_ratio)
                self._memory_gauge.set(
                    faults.memory_pct if faults.memory_pct is not None else self._memory
                )

    def _my_share_of(self, drawn: int) -> int:
        """How many of ``drawn`` family requests come from users this service serves."""
        if self.router is None:
            return drawn
        canary = self.router.canary_users()
        users = self.router.users
        if not canary:
            return drawn if self.role == "stable" else 0
        want_canary = self.role == "canary"
        return sum(1 for _ in range(drawn) if (self._rng.randrange(users) in canary) == want_canary)

    def _trim(self, now: float) -> None:
        while self._batches and self._batches[0].at <= now - self.window_s:
            self._batches.popleft()
        while self._opens and self._opens[0] <= now - BREAKER_WINDOW_S:
            self._opens.popleft()

    def _natural_opens(self, now: float) -> int:
        return sum(1 for at in self._opens if at > now - BREAKER_WINDOW_S)

    # --- reading ---------------------------------------------------------------

    def metrics(self) -> TrafficMetrics:
        """Percentiles, ratios and counts over the last window."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            faults = self._faults
            latencies = sorted(x for b in self._batches for x in b.latencies_ms)
            errors = sum(b.errors for b in self._batches)
            hits = sum(b.hits for b in self._batches)
            covered = sum(b.span for b in self._batches)
            opens = self._natural_opens(now)
            memory = self._memory
        total = len(latencies)
        baseline_hits = (
            self.profile.cache_hit_rate if faults.cache_hit_rate is None else faults.cache_hit_rate
        )
        return TrafficMetrics(
            p50_ms=_percentile(latencies, 0.50),
            p95_ms=_percentile(latencies, 0.95),
            p99_ms=_percentile(latencies, 0.99),
            error_rate=errors / total if total else 0.0,
            cache_hit_rate=hits / total if total else baseline_hits,
            memory_pct=faults.memory_pct if faults.memory_pct is not None else memory,
            circuit_breaker_opens=(
                faults.circuit_breaker_opens if faults.circuit_breaker_opens is not None else opens
            ),
            requests_per_s=total / covered if covered else 0.0,
            canary_share=self.router.share() if self.router is not None else None,
        )


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; ``None`` when there is no traffic at all."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
