"""The leader's eyes: probe every service, run Prometheus rounds, keep each service's signals.

One :class:`Sampling` per leadership term. :meth:`Sampling.open` enters the
sources' clients on the term's exit stack first — a source that cannot start
(a bad CA bundle) fails the term before anything is probed or written — and
:meth:`Sampling.start` then starts the loops. Each sample is folded into the
service's :class:`~console.model.signals.ServiceSignals` and the service's
new live value is handed to ``on_live`` (the engine writes the live table).

Both loops follow one failure policy: the prober never raises (a failed probe
is a result), a Prometheus round that raises is reported and retried by
:func:`~console.engine.supervisor.keep_going`; neither ends the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from console.config import ConnConfig, ServiceConfig
from console.engine.supervisor import Reporter, Supervisor, keep_going
from console.errors import ConsoleError
from console.model.clock import Clock
from console.model.health import ProbeResult
from console.model.live import ServiceLive
from console.model.signals import ServiceSignals
from console.secrets import get_secret
from console.sources.probe import Prober, probe_forever
from console.sources.prometheus import PrometheusSource

log = logging.getLogger(__name__)

LiveHandler = Callable[[str, ServiceLive, float], Awaitable[None]]
"""``on_live(service, live, at)``: a service's new live value, as of ``at``."""


def accumulator(config: ConnConfig, name: str) -> ServiceSignals:
    """A fresh fold of one service's samples, with its thresholds and sources."""
    spec = config.services[name]
    prometheus = config.sources.prometheus
    return ServiceSignals(
        name,
        interval=spec.interval,
        timeout=spec.timeout,
        thresholds=config.thresholds_for(name),
        signals=spec.signals,
        baseline=spec.baseline,
        prometheus=[k for k, q in spec.queries.model_dump().items() if q] if prometheus else (),
        prometheus_interval=prometheus.interval if prometheus else 15.0,
        health_json=spec.health_json.sources(),
    )


class Sampling:
    """Sources and per-service signals for one leadership term."""

    def __init__(
        self,
        config: ConnConfig,
        *,
        clock: Clock,
        supervisor: Supervisor,
        on_live: LiveHandler,
        report: Reporter,
    ) -> None:
        self.config = config
        self.clock = clock
        self.signals: dict[str, ServiceSignals] = {
            name: accumulator(config, name) for name in config.services
        }
        self._supervisor = supervisor
        self._on_live = on_live
        self._report = report
        self._prober: Prober | None = None
        self._prometheus: PrometheusSource | None = None

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        """Enter the sources' clients on the term's stack (raises if one cannot start)."""
        self._prober = await stack.enter_async_context(Prober(clock=self.clock))
        prometheus = self.config.sources.prometheus
        if prometheus is not None:
            self._prometheus = await stack.enter_async_context(
                PrometheusSource(prometheus, secret_lookup=get_secret)
            )

    def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Start probing and querying; the term's stack cancels them when it ends."""
        tasks = [
            self._supervisor.spawn(self._probe_loop(name, spec), f"probe:{name}")
            for name, spec in self.config.services.items()
        ]
        prometheus = self.config.sources.prometheus
        if self._prometheus is not None and prometheus is not None:
            interval = prometheus.interval

            async def round_then_wait() -> float:
                await self._query_round()
                return interval

            tasks.append(self._supervisor.spawn(
                keep_going("Prometheus", round_then_wait, self._report,
                           retry=interval, retry_max=max(interval, 60.0)),
                "prometheus",
            ))
        stack.push_async_callback(self._supervisor.cancel, tasks)

    async def _probe_loop(self, name: str, spec: ServiceConfig) -> None:
        assert self._prober is not None

        async def record(result: ProbeResult) -> None:
            self.signals[name].record_probe(result)
            await self._publish(name)

        await probe_forever(self._prober, name, spec, record)

    async def _query_round(self) -> None:
        """Every service's PromQL signals at once: a round takes one query's time, not N."""
        assert self._prometheus is not None
        names = list(self.config.services)
        rounds = await asyncio.gather(
            *(self._prometheus.query_service(name, self.config.services[name]) for name in names),
            return_exceptions=True,
        )
        at = self.clock.now()
        unexpected: list[BaseException] = []
        for name, results in zip(names, rounds, strict=True):
            if isinstance(results, BaseException):
                if isinstance(results, asyncio.CancelledError):
                    raise results
                if not isinstance(results, ConsoleError):
                    unexpected.append(results)
                log.warning("Prometheus round for %s failed: %s", name, results)
                continue
            for signal, value in results.items():
                if isinstance(value, ConsoleError):
                    self.signals[name].record_query(signal, None, at, error=str(value))
                else:
                    self.signals[name].record_query(signal, value, at)
            if results:
                await self._publish(name)
        if unexpected:
            # The other services' answers are recorded; the policy reports this one.
            raise unexpected[0]

    async def _publish(self, name: str) -> None:
        now = self.clock.now()
        await self._on_live(name, self.signals[name].snapshot(now), now)


async def probe_once(config: ConnConfig, clock: Clock, names: Sequence[str]) -> dict[str, ServiceLive]:
    """Probe services once, without leading or writing anything (``conn status``)."""
    async with Prober(clock=clock) as prober:
        return await _probe_with(prober, config, clock, names)


async def _probe_with(
    prober: Prober, config: ConnConfig, clock: Clock, names: Sequence[str]
) -> dict[str, ServiceLive]:
    async def one(name: str) -> tuple[str, ServiceLive]:
        signals = accumulator(config, name)
        signals.record_probe(await prober.probe(name, config.services[name]))
        return name, signals.snapshot(clock.now())

    return dict(await asyncio.gather(*(one(name) for name in names)))
