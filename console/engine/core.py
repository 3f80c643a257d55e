"""The headless engine: leadership, probing, the live table, and snapshots for views.

One engine per process. Exactly one engine per store leads (it holds the
store's leader lock): it probes, queries Prometheus, folds samples into
signals and writes the live table. Every other engine follows: it reads the
live table and the event log. Operator commands from any engine are appended
as events with the expected stream version.

Views (the Textual app, ``conn status``, ``conn watch``) iterate
:meth:`Engine.snapshots` and call the command methods; they never touch the
store, the prober or a lock themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

from pydantic import ValidationError

from console.config import ConnConfig, ServiceConfig
from console.engine.flags import FlagService
from console.engine.identity import current_actor, process_label
from console.engine.snapshot import Role, ServiceView, Snapshot, is_fresh
from console.errors import ConsoleError, StoreError
from console.model.clock import Clock, SystemClock
from console.model.events import Actor, Event
from console.model.health import ProbeResult
from console.model.live import ServiceLive
from console.model.signals import ServiceSignals
from console.secrets import get_secret
from console.sources.probe import Prober, probe_forever
from console.sources.prometheus import PrometheusSource
from console.store.base import EventStore, LeaderLock

log = logging.getLogger(__name__)

RECENT_EVENTS = 50
"""How many recent events a snapshot carries (for the activity panel)."""
RETRY_MIN, RETRY_MAX = 0.5, 10.0
"""Seconds between attempts to reach a store that stopped answering (doubling)."""


class Engine:
    """The headless core. Use as ``async with Engine(config, store) as engine:``.

    Args:
        config: the validated config.
        store: an open event store; the engine does not close it.
        clock: the time source for samples, events and windows.
        actor: who operator commands are attributed to (default: the OS user).
        lead: whether this engine competes for leadership (False: always a follower).
        retry_leadership: seconds between attempts to take the leader lock.
        follow_interval: seconds between reads of the live table as a follower.
    """

    def __init__(
        self,
        config: ConnConfig,
        store: EventStore,
        *,
        clock: Clock | None = None,
        actor: Actor | None = None,
        lead: bool = True,
        retry_leadership: float = 1.0,
        follow_interval: float = 0.5,
    ) -> None:
        self.config = config
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.actor = actor or current_actor()
        self.label = process_label()
        self.flags = FlagService(store=store, config=config, clock=self.clock, actor=self.actor)
        self._lead = lead
        self._retry_leadership = retry_leadership
        self._follow_interval = follow_interval
        self._lock: LeaderLock | None = None
        self._role: Role = "starting"
        self._signals: dict[str, ServiceSignals] = {}
        self._views: dict[str, ServiceView] = {
            name: ServiceView(name=name, interval=spec.interval)
            for name, spec in config.services.items()
        }
        self._recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self._problems: dict[str, str] = {}
        self._stopping = False
        self._giving_up: asyncio.Future[None] | None = None
        self.failed = asyncio.Event()
        """Set when an engine task died: the engine no longer does its job."""
        self.failure: str | None = None
        """Why :attr:`failed` is set."""
        self._position = 0
        self._snapshot = self._build()
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._leader_tasks: list[asyncio.Task[None]] = []
        self._prober: Prober | None = None
        self._prometheus: PrometheusSource | None = None
        self._role_listeners: list[Callable[[Role], None]] = []

    # --- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Load state from the log, then start following (and competing to lead)."""
        # Followers only read; the leader seeds the config's flags when it takes over.
        await self.flags.load(seed=False)
        # Only the tail: the activity panel shows the last few, following starts after them.
        tail = await self.store.read_tail(RECENT_EVENTS)
        self._recent.extend(tail)
        self._position = tail[-1].position if tail else 0
        await self._read_live()
        self._role = "follower"
        self._spawn(self._follow_events(), "follow-events")
        self._spawn(self._follow_live(), "follow-live")
        if self._lead:
            self._lock = self.store.leader_lock()
            self._spawn(self._compete(), "leadership")
        await self._publish()

    async def stop(self) -> None:
        """Stop every task, give up leadership and close sources (idempotent)."""
        self._stopping = True
        tasks = self._tasks + self._leader_tasks
        self._tasks, self._leader_tasks = [], []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_sources()
        if self._lock is not None:
            await self._lock.release()
        self._role = "starting"

    def _spawn(self, coro: Awaitable[None], name: str, *, leader: bool = False) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"engine:{name}")
        task.add_done_callback(self._task_ended)
        (self._leader_tasks if leader else self._tasks).append(task)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        # Engine tasks run forever; one that ends on its own is a bug to see, not to
        # hide. The engine stops trusting itself: the view says so, `failed` is set
        # (conn agent exits non-zero so systemd restarts it) and leadership is given
        # up so a healthy process can take over.
        if task.cancelled() or self._stopping:
            return
        error = task.exception()
        name = task.get_name().removeprefix("engine:")
        if error is not None:
            log.error("engine task %s failed", name, exc_info=error)
            why = f"{type(error).__name__}: {error}"
        else:
            log.error("engine task %s ended unexpectedly", name)
            why = "ended unexpectedly"
        self.failure = f"engine task {name} failed ({why}); restart conn"
        self._problems["engine"] = self.failure
        self.failed.set()
        self._giving_up = asyncio.ensure_future(self._give_up_leadership())

    async def _give_up_leadership(self) -> None:
        if self._lock is not None:
            await self._lock.release()
        for task in self._tasks:
            if task.get_name() == "engine:leadership":
                task.cancel()
        if self._role == "leader":
            await self._become_follower()
        await self._publish()

    # --- state for views ----------------------------------------------------------

    @property
    def role(self) -> Role:
        """``leader``, ``follower`` or ``starting``."""
        return self._role

    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot."""
        return self._snapshot

    async def snapshots(self) -> AsyncGenerator[Snapshot, None]:
        """The current snapshot, then each different one, forever."""
        last: Snapshot | None = None
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda seen=last: self._snapshot is not seen)  # type: ignore[misc]
                last = self._snapshot
            yield last

    def on_role_change(self, listener: Callable[[Role], None]) -> None:
        """Call ``listener(role)`` whenever this engine becomes leader or follower."""
        self._role_listeners.append(listener)

    def _build(self) -> Snapshot:
        holder = self.label if self._role == "leader" else self._leader_from_rows()
        return Snapshot(
            environment=self.config.environment,
            store_url=self.store.url,
            role=self._role,
            leader=holder,
            services=tuple(self._views[name] for name in self.config.services),
            flags=self.flags.views(),
            recent_events=tuple(self._recent),
            problem="; ".join(self._problems.values()) or None,
        )

    def _leader_from_rows(self) -> str | None:
        now = self.clock.now()
        fresh = [v for v in self._views.values() if v.writer and is_fresh(v.updated_at, v.interval, now)]
        if not fresh:
            return None
        return max(fresh, key=lambda v: v.updated_at or 0.0).writer

    async def _publish(self) -> None:
        snapshot = self._build()
        if snapshot != self._snapshot:
            async with self._changed:
                self._snapshot = snapshot
                self._changed.notify_all()

    # --- following ------------------------------------------------------------------

    async def _follow_events(self) -> None:
        backoff = RETRY_MIN
        while True:
            try:
                async for event in self.store.subscribe(after=self._position):
                    backoff = RETRY_MIN
                    await self._store_ok("events")
                    self._position = event.position
                    self._recent.append(event)
                    if event.stream.startswith("flag/") and self.flags.apply(event):
                        # Keep this machine's flag file in step with changes made
                        # elsewhere; never overwrites a hand-edited file.
                        await self.flags.sync_export()
                    await self._publish()
            except StoreError as e:
                # Resubscribe from the last event seen: nothing is skipped or repeated.
                await self._store_failed("events", f"cannot read the event log: {e}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)

    async def _follow_live(self) -> None:
        while True:
            await asyncio.sleep(self._follow_interval)
            if self._role != "leader":
                try:
                    await self._read_live()
                    await self._store_ok("live")
                except StoreError as e:
                    await self._store_failed("live", f"cannot read the live table: {e}")
                await self._publish()

    async def _store_failed(self, part: str, problem: str) -> None:
        if self._problems.get(part) != problem:
            log.warning("%s", problem)
        self._problems[part] = problem
        await self._publish()

    async def _store_ok(self, part: str) -> None:
        if self._problems.pop(part, None) is not None:
            log.info("the store answers again (%s)", part)
            await self._publish()

    async def _read_live(self) -> None:
        rows = await self.store.read_live()
        for name, view in self._views.items():
            row = rows.get(name)
            if row is None:
                continue
            try:
                live: ServiceLive | None = ServiceLive.model_validate(row.data)
                problem = None
            except ValidationError:
                live, problem = None, "live row unreadable (written by another Conn version?)"
            self._views[name] = ServiceView(
                name=name, interval=view.interval, live=live,
                updated_at=row.updated_at, writer=row.writer, problem=problem,
            )

    # --- leading ----------------------------------------------------------------------

    async def _compete(self) -> None:
        assert self._lock is not None
        while True:
            try:
                acquired = await self._lock.try_acquire()
            except StoreError as e:
                log.warning("leadership check failed: %s", e)
                acquired = False
            if acquired and self._role != "leader":
                try:
                    await self._become_leader()
                except ConsoleError as e:
                    # A source that cannot start (a bad CA bundle, …): stay a follower
                    # and let another process lead rather than lead half-blind.
                    log.error("cannot lead: %s", e)
                    await self._store_failed("lead", f"cannot lead: {e}")
                    await self._become_follower()
                    await self._lock.release()
                else:
                    await self._store_ok("lead")
            elif not acquired and self._role == "leader":
                await self._become_follower()
            await asyncio.sleep(self._retry_leadership)

    async def _become_leader(self) -> None:
        log.info("this process (%s) is now the leader of %s", self.label, self.store.url)
        self._role = "leader"
        try:
            await self.flags.seed()
            await self.flags.sync_export()
        except ConsoleError as e:
            log.warning("could not create the config's flags: %s", e)
        self._prober = Prober(clock=self.clock)
        await self._prober.__aenter__()
        for name, spec in self.config.services.items():
            self._signals[name] = self._accumulator(name, spec)
            self._spawn(self._probe_loop(name, spec), f"probe:{name}", leader=True)
        prometheus = self.config.sources.prometheus
        if prometheus is not None:
            self._prometheus = PrometheusSource(prometheus, secret_lookup=get_secret)
            await self._prometheus.__aenter__()
            self._spawn(self._query_loop(), "prometheus", leader=True)
        self._notify_role()
        await self._publish()

    async def _become_follower(self) -> None:
        log.warning("this process (%s) lost leadership of %s", self.label, self.store.url)
        self._role = "follower"
        tasks, self._leader_tasks = self._leader_tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_sources()
        self._notify_role()
        await self._publish()

    def _notify_role(self) -> None:
        for listener in self._role_listeners:
            listener(self._role)

    async def _close_sources(self) -> None:
        if self._prober is not None:
            prober, self._prober = self._prober, None
            await prober.__aexit__(None, None, None)
        if self._prometheus is not None:
            prometheus, self._prometheus = self._prometheus, None
            await prometheus.__aexit__(None, None, None)

    def _accumulator(self, name: str, spec: ServiceConfig) -> ServiceSignals:
        prometheus = self.config.sources.prometheus
        return ServiceSignals(
            name,
            interval=spec.interval,
            thresholds=self.config.thresholds_for(name),
            signals=spec.signals,
            baseline=spec.baseline,
            prometheus=[k for k, q in spec.queries.model_dump().items() if q] if prometheus else (),
            prometheus_interval=prometheus.interval if prometheus else 15.0,
        )

    async def _probe_loop(self, name: str, spec: ServiceConfig) -> None:
        assert self._prober is not None

        async def record(result: ProbeResult) -> None:
            self._signals[name].record_probe(result)
            await self._write_live(name)

        await probe_forever(self._prober, name, spec, record)

    async def _query_loop(self) -> None:
        prometheus_config = self.config.sources.prometheus
        assert self._prometheus is not None
        assert prometheus_config is not None
        source = self._prometheus
        while True:
            # All services at once, so a round takes one query's time, not N of them.
            names = list(self.config.services)
            rounds = await asyncio.gather(
                *(source.query_service(name, self.config.services[name]) for name in names),
                return_exceptions=True,
            )
            at = self.clock.now()
            for name, results in zip(names, rounds, strict=True):
                if isinstance(results, BaseException):
                    if not isinstance(results, ConsoleError):
                        raise results
                    log.warning("Prometheus round for %s failed: %s", name, results)
                    continue
                for signal, value in results.items():
                    if isinstance(value, ConsoleError):
                        self._signals[name].record_query(signal, None, at, error=str(value))
                    else:
                        self._signals[name].record_query(signal, value, at)
                if results:
                    await self._write_live(name)
            await asyncio.sleep(prometheus_config.interval)

    async def _write_live(self, name: str) -> None:
        now = self.clock.now()
        live = self._signals[name].snapshot(now)
        view = self._views[name]
        self._views[name] = ServiceView(
            name=name, interval=view.interval, live=live, updated_at=now, writer=self.label
        )
        try:
            await self.store.write_live(
                name, live.model_dump(mode="json"), at=now, writer=self.label
            )
            await self._store_ok("write")
        except StoreError as e:
            # Probing goes on and this console still shows the values; followers cannot.
            await self._store_failed("write", f"cannot write the live table: {e}")
        await self._publish()

    # --- one-shot use (conn status) -----------------------------------------------------

    async def probe_once(self, names: Sequence[str] | None = None) -> dict[str, ServiceLive]:
        """Probe services once (all by default), without leading or writing anything."""
        wanted = list(self.config.services) if names is None else list(names)
        async with Prober(clock=self.clock) as prober:
            async def one(name: str, spec: ServiceConfig) -> tuple[str, ServiceLive]:
                signals = self._accumulator(name, spec)
                signals.record_probe(await prober.probe(name, spec))
                return name, signals.snapshot(self.clock.now())

            pairs = await asyncio.gather(
                *(one(name, self.config.services[name]) for name in wanted)
            )
        return dict(pairs)

