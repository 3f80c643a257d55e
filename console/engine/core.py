"""The headless engine: the coordinator of named parts.

One engine per process. Its parts, each in its own module:

- :mod:`~console.engine.commands` — every state change is a command run by
  :meth:`Engine.execute`: checked once, attributed to an actor;
- :mod:`~console.engine.projections` — each stream family folded by its
  projection, loaded with one scan of the log and fed by one subscription
  (flags: :mod:`~console.engine.flags`);
- :mod:`~console.engine.leadership` — the store's lock and the leader's
  duties, started and stopped together per term;
- :mod:`~console.engine.sampling` — the leader's probing and Prometheus rounds;
- :mod:`~console.engine.history` — the signal history the leader records and
  a new leader restores its windows and timers from;
- :mod:`~console.engine.supervisor` — task supervision and the one failure
  policy of every loop;
- :mod:`~console.engine.snapshot` — what views render.

Exactly one engine per store leads; every other engine follows (reads the
live table and the event log). Views (the Textual app, ``conn status``,
``conn watch``) iterate :meth:`Engine.snapshots`, call :meth:`Engine.execute`
and the query methods; they never touch the store, a source or a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from console.actions.flagd_file import FlagFile
from console.config import ConnConfig, criteria_of
from console.engine.commands import Command, CommandBus, CommandResult, Policy, automatic_actor
from console.engine.flags import (
    FlagCommands,
    FlagProjection,
    FlagView,
    SeedFlags,
)
from console.engine.health_events import HealthProjection, HealthRecorder
from console.engine.history import History, HistoryPoint
from console.engine.identity import current_actor, process_label
from console.engine.incident_duty import IncidentDuty
from console.engine.incidents import IncidentCommands, IncidentProjection, incident_labels
from console.engine.leadership import Leadership
from console.engine.outbox import OutboxDuty, OutboxProjection
from console.engine.projections import ProjectionSet
from console.engine.rollout_duty import RolloutDuty
from console.engine.rollouts import RolloutCommands, RolloutEvaluator, RolloutProjection
from console.engine.runbooks import RunbookCommands, RunbookLibrary, RunbookProjection
from console.engine.sampling import Sampling
from console.engine.snapshot import (
    FlagsView,
    IncidentPanel,
    Role,
    RolloutPanel,
    RunbooksView,
    ServiceView,
    Snapshot,
)
from console.engine.supervisor import Supervisor
from console.errors import ConsoleError, StoreError
from console.model.alerts import ALERTS_LIVE_ROW, AlertsLive
from console.model.backtest import Span, backtest, rules_of
from console.model.clock import Clock, SystemClock
from console.model.events import Actor
from console.model.flagd import Evaluation
from console.model.live import ServiceLive, current_writer
from console.model.rollout_live import LIVE_PREFIX, RolloutLive
from console.model.runbook_runs import RunState
from console.model.runbooks import Runbook
from console.paths import state_dir
from console.store.base import EventStore

log = logging.getLogger(__name__)

RECENT_EVENTS = 50
"""How many recent events a snapshot carries (for the activity panel)."""
RETRY_MIN, RETRY_MAX = 0.5, 10.0
"""Seconds between attempts to reach a store that stopped answering (doubling)."""

EngineState = Literal["created", "starting", "running", "stopping", "stopped"]
"""The engine's lifecycle: each state is entered once, in this order."""


class Engine:
    """The headless core. Use as ``async with Engine(config, store) as engine:``.

    Args:
        config: the validated config.
        store: an open event store; the engine does not close it.
        clock: the time source for samples, events and windows.
        actor: who this console's operator commands are attributed to (default: the OS user).
        lead: whether this engine competes for leadership (False: always a follower).
        follow: whether it follows the log and the live table after loading
            (False for one-shot CLI commands: load, act, exit).
        sync_flag_file: write this machine's flagd file when it is missing or
            stale (False for readers, which only check it).
        read_only: refuse every command that changes state.
        retry_leadership: seconds between attempts to take the leader lock.
        follow_interval: seconds between reads of the live table as a follower.
        flag_file: overrides the config's flag export path (tests, the demo).
    """

    def __init__(
        self,
        config: ConnConfig,
        store: EventStore,
        *,
        clock: Clock | None = None,
        actor: Actor | None = None,
        lead: bool = True,
        follow: bool = True,
        sync_flag_file: bool = True,
        read_only: bool = False,
        retry_leadership: float = 1.0,
        follow_interval: float = 0.5,
        flag_file: Path | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.actor = actor or current_actor()
        """Who this console's operator commands are attributed to."""
        self.auto_actor = automatic_actor()
        """Who the leader's own decisions are attributed to (``conn-auto@host pid N``)."""
        self.label = process_label()
        self.state: EngineState = "created"
        self._lead, self._follow, self._sync_flag_file = lead, follow, sync_flag_file
        self._retry_leadership = retry_leadership
        self._follow_interval = follow_interval
        self._supervisor = Supervisor(self._task_failed)

        # Features: a projection and its command handlers, one line each.
        self._flags = FlagProjection(config.flags)
        self._rollouts = RolloutProjection(config)
        self._incidents = IncidentProjection(config)
        self._health = HealthProjection()
        self._outbox = OutboxProjection(config, self._incidents)
        self._runs = RunbookProjection()
        self.projections = ProjectionSet(
            [self._flags, self._rollouts, self._incidents, self._health, self._outbox, self._runs],
            recent=RECENT_EVENTS,
        )
        self.flag_file = FlagFile(  # this machine's flagd file (its status is in snapshots)
            flag_file or config.flags.export_path(state_dir()),
            document=self._flags.document, has_flags=lambda: bool(self._flags.flags.flags),
        )
        self._bus = CommandBus(policy=Policy(read_only=read_only))
        self._bus.register(FlagCommands(
            store=store, projections=self.projections, flags=self._flags,
            export=self.flag_file, clock=self.clock,
        ).handlers())
        self._rollout_live: dict[str, RolloutLive] = {}
        self._rollout_input = asyncio.Event()
        """Set when a canary's or a baseline's live value is written: the rollout duty wakes."""
        self._rollout_services = {
            name for plan in config.rollouts.values() for name in (plan.canary, plan.baseline) if name
        }
        self.rollout_evaluator = RolloutEvaluator(config, store, self.clock, self._live_of)
        self._bus.register(RolloutCommands(
            store=store, projections=self.projections, rollouts=self._rollouts,
            evaluator=self.rollout_evaluator, clock=self.clock,
            execute=lambda command, actor: self.execute(command, actor=actor),
        ).handlers())

        self._bus.register(IncidentCommands(
            store=store, projections=self.projections, incidents=self._incidents, clock=self.clock,
        ).handlers())
        self.runbooks = RunbookLibrary(config.runbooks.paths)
        """The runbooks under ``[runbooks] paths`` (read at start; :meth:`reload_runbooks`)."""
        self.runbook_commands = RunbookCommands(
            config=config, store=store, projections=self.projections, runs=self._runs,
            library=self.runbooks, clock=self.clock, incident=self._incident_context,
            conn_config=config.source,
        )
        self._bus.register(self.runbook_commands.handlers())
        self._health_recorder = HealthRecorder(
            store, self.projections, self._health, self.clock, self.auto_actor)
        self._outbox_wake = asyncio.Event()
        self._incident_wake = asyncio.Event()

        tick = min((spec.interval for spec in config.services.values()), default=5.0)
        self.recorder = History(config.history, store, self.clock, tick=min(tick, 5.0))
        """The signal history's recorder (the leader's) and reader."""
        self._leadership: Leadership | None = None
        self._leadership_task: asyncio.Task[None] | None = None
        self._sampling: Sampling | None = None
        self._role: Role = "starting"
        self._views: dict[str, ServiceView] = {
            name: ServiceView(name=name, interval=spec.interval, timeout=spec.timeout)
            for name, spec in config.services.items()
        }
        self._problems: dict[str, str] = {}
        self._role_listeners: list[Callable[[Role], None]] = []
        self.failed = asyncio.Event()
        """Set when an engine task died: the engine no longer does its job."""
        self.failure: str | None = None
        """Why :attr:`failed` is set."""
        self._giving_up: asyncio.Task[None] | None = None
        self._flags_view: tuple[int, FlagsView] | None = None
        self._incident_cache: tuple[int, tuple[IncidentPanel, ...]] | None = None
        self._alerts_live: AlertsLive | None = None
        self._snapshot = self._build()
        self._changed = asyncio.Condition()

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Load every projection with one scan, then follow (and compete to lead).

        Raises:
            RuntimeError: the engine was started before (an engine starts once).
            StoreError: the log cannot be read.
        """
        if self.state != "created":
            raise RuntimeError(f"the engine is {self.state}; an engine starts once")
        self.state = "starting"
        try:
            await asyncio.to_thread(self.runbooks.reload)
            await self.projections.load(self.store)
            if self._sync_flag_file:
                await self.flag_file.sync()
            else:
                await self.flag_file.check()
            await self._read_live()  # one-shot commands too: an advance judges the gate with it
        except BaseException:
            self.state = "stopped"
            raise
        self._role = "follower"
        if self._follow:
            self._supervisor.spawn(self._follow_events(), "follow-events")
            self._supervisor.spawn(self._follow_live(), "follow-live")
        if self._lead:
            self._leadership = Leadership(
                self.store.leader_lock(), start_term=self._start_term,
                on_change=self._leading_changed,
                report=lambda problem: self._set_problem("lead", problem),
                retry=self._retry_leadership,
            )
            self._leadership_task = self._supervisor.spawn(self._leadership.run(), "leadership")
        self.state = "running"
        await self._publish()

    async def stop(self) -> None:
        """Stop every task, end the leadership term, give up the lock (idempotent)."""
        if self.state in ("stopping", "stopped"):
            return
        if self.state == "created":
            self.state = "stopped"
            return
        self.state = "stopping"
        await self._stop_leading()
        await self._supervisor.stop()
        if self._giving_up is not None:
            await asyncio.gather(self._giving_up, return_exceptions=True)
        self._role = "starting"
        self.state = "stopped"

    async def _stop_leading(self) -> None:
        """Cancel before release: the competing task, then the term's duties, then the lock."""
        task, self._leadership_task = self._leadership_task, None
        if task is not None:
            await self._supervisor.cancel([task])
        if self._leadership is not None:
            await self._leadership.end()

    def _task_failed(self, name: str, why: str) -> None:
        # An engine task that ends by itself is a bug: the engine stops trusting itself,
        # the view says so, `failed` is set (conn agent exits non-zero so systemd
        # restarts it) and leadership is given up so a healthy process can take over.
        self.failure = f"engine task {name} failed ({why}); restart conn"
        self._problems["engine"] = self.failure
        self.failed.set()
        if self.state == "running" and self._giving_up is None:
            self._giving_up = asyncio.get_running_loop().create_task(self._give_up())

    async def _give_up(self) -> None:
        await self._stop_leading()
        await self._publish()

    # --- leading ---------------------------------------------------------------------

    async def _start_term(self, stack: contextlib.AsyncExitStack) -> None:
        """The leader's duties, in order; anything raising leaves nothing running."""
        sampling = Sampling(
            self.config, clock=self.clock, supervisor=self._supervisor,
            on_live=self._write_live,
            report=lambda problem: self._set_problem("prometheus", problem),
        )
        await sampling.open(stack)  # a source that cannot start fails here, before any probe
        await self.recorder.restore(sampling.signals)
        try:
            await self.execute(SeedFlags(), actor=self.auto_actor)
        except ConsoleError as e:
            log.warning("could not create the config's flags: %s", e)
        with contextlib.suppress(ConsoleError):
            await self.flag_file.sync()
        self._sampling = sampling
        stack.callback(setattr, self, "_sampling", None)
        stack.callback(self._set_problem, "prometheus", None)
        sampling.start(stack)
        self.recorder.start(
            stack, sampling.signals, self._supervisor,
            report=lambda problem: self._set_problem("history", problem),
        )
        RolloutDuty(
            self.config, rollouts=self._rollouts, evaluator=self.rollout_evaluator,
            execute=lambda command, actor: self.execute(command, actor=actor),
            actor=self.auto_actor, clock=self.clock, write_live=self._write_rollout_live,
            wake=self._rollout_input,
        ).start(stack, self._supervisor, report=lambda problem: self._set_problem("rollouts", problem))
        IncidentDuty(
            self.config, incidents=self._incidents, recent=lambda: list(self._incidents.rollbacks),
            execute=lambda command, actor: self.execute(command, actor=actor),
            actor=self.auto_actor, clock=self.clock,
            report=lambda problem: self._set_problem("incidents", problem),
            wake=self._incident_wake, write_alerts=self._write_alerts_live,
        ).start(stack, self._supervisor)
        stack.callback(self._set_problem, "incidents", None)
        OutboxDuty(
            self.config, store=self.store, projections=self.projections, outbox=self._outbox,
            clock=self.clock, actor=self.auto_actor, wake=self._outbox_wake,
            published=self._publish_soon,
        ).start(stack, self._supervisor)

    async def _leading_changed(self, leading: bool) -> None:
        if leading:
            log.info("this process (%s) is now the leader of %s", self.label, self.store.url)
        elif self.state == "stopping":
            log.info("this process (%s) gave up leadership of %s (stopping)", self.label, self.store.url)
        else:
            log.warning("this process (%s) lost leadership of %s", self.label, self.store.url)
        self._role = "leader" if leading else "follower"
        for listener in self._role_listeners:
            listener(self._role)
        await self._publish()

    async def _write_live(self, name: str, live: ServiceLive, at: float) -> None:
        self._views[name] = replace(
            self._views[name], live=live, updated_at=at, writer=self.label, problem=None
        )
        if name in self._rollout_services:
            self._rollout_input.set()
        try:
            await self.store.write_live(name, live.model_dump(mode="json"), at=at, writer=self.label)
            self._set_problem("write", None)
        except StoreError as e:
            # Probing goes on and this console still shows the values; followers cannot.
            self._set_problem("write", f"cannot write the live table: {e}")
        await self._health_recorder.seen(name, live)
        await self._publish()

    async def _write_rollout_live(self, name: str, live: RolloutLive) -> None:
        self._rollout_live[name] = live
        try:
            await self.store.write_live(
                LIVE_PREFIX + name, live.model_dump(mode="json"), at=live.at, writer=self.label
            )
        except StoreError as e:
            self._set_problem("write", f"cannot write the live table: {e}")
        await self._publish()

    async def _write_alerts_live(self, live: AlertsLive) -> None:
        self._alerts_live = live
        try:
            await self.store.write_live(ALERTS_LIVE_ROW, live.model_dump(mode="json"), at=live.at,
                                        writer=self.label)
        except StoreError as e:
            self._set_problem("write", f"cannot write the live table: {e}")
        await self._publish()

    def _live_of(self, service: str) -> ServiceLive | None:
        view = self._views.get(service)
        return view.live if view is not None and view.fresh(self.clock.now()) else None

    # --- commands and queries ----------------------------------------------------------

    async def execute(self, command: Command, *, actor: Actor | None = None) -> CommandResult:
        """Run ``command`` as ``actor`` (default: this console's operator); see :mod:`commands`.

        Raises:
            CommandError, ConcurrencyError, ActionError: as the command's handler says.
        """
        result = await self._bus.execute(command, actor or self.actor)
        await self._publish()
        return result

    def flag(self, name: str) -> FlagView:
        """One flag as it is now (a query).

        Raises:
            CommandError: no such flag; the message suggests a near name.
        """
        return self._flags.view(name, self.flag_file.status)

    def rollout(self, name: str) -> RolloutPanel:
        """One rollout as it is now (a query): its state, plan and the leader's latest verdicts.

        Raises:
            CommandError: no such rollout; the message suggests a near name.
        """
        state = self._rollouts.state(name)
        return RolloutPanel(name, state, self.config.rollouts[name], self._rollout_live.get(name))

    def incident(self, incident_id: str) -> IncidentPanel:
        """One incident as it is now (a query), with its severity's clocks.

        Raises:
            CommandError: no such incident (the message lists some).
        """
        state = self._incidents.get(incident_id)
        return IncidentPanel(state, self.config.incidents.severity(state.severity))

    def _incident_context(self, incident_id: str) -> tuple[str, tuple[str, ...], tuple[dict[str, str], ...]]:
        state = self._incidents.get(incident_id)
        return state.id, state.services, tuple(dict(a.labels) for a in state.alerts.values())

    def offered_runbooks(self, incident_id: str) -> list[Runbook]:
        """The runbooks an incident offers: front matter naming one of its services, or
        alert matchers matching its alerts' labels — or the labels of the automatic
        rollback that opened it (``alertname="ConnAutoRollback"``, ``rollout``,
        ``signal``, ``service``), so ``signal="error_rate"`` offers a runbook for it."""
        state = self._incidents.get(incident_id)
        return self.runbooks.offered(state.services, incident_labels(state, self.config))

    def run(self, run_id: str) -> RunState:
        """One runbook run as it is now (a query). Raises CommandError when there is none."""
        return self._runs.get(run_id)

    def runs(self) -> list[RunState]:
        """Every runbook run, oldest first."""
        return sorted((r for r in self._runs.runs.values() if r.lifecycle != "pending"),
                      key=lambda r: r.started_at or 0.0)

    async def reload_runbooks(self) -> None:
        """Read the runbook files again (edited while the console runs)."""
        await asyncio.to_thread(self.runbooks.reload)
        await self._publish()

    async def check_flag_file(self) -> None:
        """Look at this machine's flagd file again (edited by hand?) and show what is found."""
        await self.flag_file.check()
        await self._publish()

    def evaluate_flag(self, name: str, key: str) -> Evaluation:
        """What flagd answers for ``key`` on flag ``name`` now (a query: nothing is recorded)."""
        return self._flags.evaluate(name, key)

    async def evaluation_history(
        self, rollout: str, role: str, text: str, since: float
    ) -> tuple[Span, ...]:
        """How one criterion of ``rollout`` was judged since ``since``: its outcome spans.

        Replayed from the signal history with the leader's own evaluation (the
        backtest), so every console can show it and nothing extra is recorded.
        """
        plan = self.config.rollouts[rollout]
        keyed = [(key, t) for key, t in criteria_of(plan)
                 if t == text and key.startswith("abort.") == (role == "abort")][:1]
        if not keyed:
            return ()
        canary = self.config.services[plan.canary]
        rules = rules_of(plan, keyed, {k: spec.unit for k, spec in canary.signals.items()})
        now = self.clock.now()
        services = [plan.canary] + ([plan.baseline] if plan.baseline else [])
        slices = await self.store.read_history(since=since - 600, services=services)
        report = backtest(
            rollout, rules, slices, canary=plan.canary, baseline=plan.baseline, since=since,
            until=now, probe_interval=canary.interval, failure_limit=plan.gate.failure_limit,
            grace=plan.grace,
        )
        return report.rules[0].spans if report.rules else ()

    async def history(
        self, service: str, signal: str, since: float, until: float | None = None
    ) -> list[HistoryPoint]:
        """A signal's recorded values (10 s slices, or 1-minute roll-ups for long ranges).

        For views (the "why" view, postmortem graphs): long and growing, so a
        query rather than part of every snapshot.
        """
        return await self.recorder.points(service, signal, since, until)

    # --- state for views -----------------------------------------------------------------

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

    def _flag_state(self) -> FlagsView:
        """The flags part of the snapshot, rebuilt only when a flag or the file changed."""
        key = hash((self.projections.revision, self.flag_file.status))
        if self._flags_view is None or self._flags_view[0] != key:
            self._flags_view = (key, FlagsView(
                flags=self._flags.views(self.flag_file.status),
                export=self.flag_file.status,
                evaluator_version=self._flags.evaluator_version,
                unseeded=self._flags.unseeded(),
                groups=self._flags.group_names(),
            ))
        return self._flags_view[1]

    def _build(self) -> Snapshot:
        holder = self.label if self._role == "leader" else current_writer(
            ((v.writer, v.updated_at, v.interval, v.timeout) for v in self._views.values()),
            self.clock.now(),
        )
        problems = list(self._problems.values())
        problems += [str(skipped) for skipped in self.projections.skipped]
        flags = self._flag_state()
        return Snapshot(
            environment=self.config.environment,
            store_url=self.store.url,
            role=self._role,
            leader=holder,
            services=tuple(self._views[name] for name in self.config.services),
            flags=flags.flags,
            flag_state=flags,
            rollouts=tuple(
                RolloutPanel(name, self._rollouts.state(name), plan, self._rollout_live.get(name))
                for name, plan in self.config.rollouts.items()
            ),
            # Deliveries are bookkeeping, not changes an on-call engineer made or must see
            # (`conn audit --stream notify/NAME` has them; failures show on the strip).
            recent_events=tuple(e for e in self.projections.recent if not e.stream.startswith("notify/")),
            incidents=self._incident_panels(),
            runbooks=RunbooksView(
                runbooks=tuple(self.runbooks.runbooks.values()), broken=self.runbooks.broken,
                runs=tuple(self.runs()), revision=self.runbooks.revision,
            ),
            notify=self._outbox.views(),
            alerts=self._alerts_live,
            problem="; ".join(problems) or None,
        )

    def _incident_panels(self) -> tuple[IncidentPanel, ...]:
        """Every incident, open ones first; rebuilt only when some projection changed."""
        key = self.projections.revision
        if self._incident_cache is None or self._incident_cache[0] != key:
            self._incident_cache = (key, tuple(
                IncidentPanel(state, self.config.incidents.severity(state.severity))
                for state in self._incidents.ordered()
            ))
        return self._incident_cache[1]

    async def _publish(self) -> None:
        snapshot = self._build()
        if snapshot != self._snapshot:
            async with self._changed:
                self._snapshot = snapshot
                self._changed.notify_all()

    def _set_problem(self, part: str, problem: str | None) -> None:
        """Record (or with None, clear) why what is shown may not be current."""
        before = self._problems.get(part)
        if problem is None:
            if self._problems.pop(part, None) is not None:
                log.info("%s works again", part)
        elif before != problem:
            log.warning("%s", problem)
            self._problems[part] = problem
        if before != self._problems.get(part):
            self._publish_soon()

    def _publish_soon(self) -> None:
        with contextlib.suppress(RuntimeError):  # no loop: the next publish carries it
            asyncio.get_running_loop().create_task(self._publish())

    # --- following -------------------------------------------------------------------------

    async def _follow_events(self) -> None:
        backoff = RETRY_MIN
        while True:
            try:
                async for event in self.store.subscribe(after=self.projections.position):
                    backoff = RETRY_MIN
                    self._outbox_wake.set()
                    self._incident_wake.set()
                    self._set_problem("events", None)
                    if self.projections.apply(event) and self.projections.owner(event.stream) is self._flags:
                        # Keep this machine's flag file in step with changes made
                        # elsewhere; never overwrites a hand-edited file.
                        await self.flag_file.sync()
                    await self._publish()
            except StoreError as e:
                # Resubscribe from the last event seen: nothing is skipped or repeated.
                self._set_problem("events", f"cannot read the event log: {e}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX)

    async def _follow_live(self) -> None:
        while True:
            await asyncio.sleep(self._follow_interval)
            if self._role != "leader":
                try:
                    await self._read_live()
                    self._set_problem("live", None)
                except StoreError as e:
                    self._set_problem("live", f"cannot read the live table: {e}")
                await self._publish()

    async def _read_live(self) -> None:
        rows = await self.store.read_live()
        alerts = rows.get(ALERTS_LIVE_ROW)
        if alerts is not None and self.config.sources.alertmanager is not None:
            try:
                self._alerts_live = AlertsLive.model_validate(alerts.data)
            except ValidationError:
                self._alerts_live = None
        for name in self.config.rollouts:
            row = rows.get(LIVE_PREFIX + name)
            if row is not None:
                try:
                    self._rollout_live[name] = RolloutLive.model_validate(row.data)
                except ValidationError:
                    self._rollout_live.pop(name, None)
        for name, view in self._views.items():
            row = rows.get(name)
            if row is None:
                continue
            try:
                live: ServiceLive | None = ServiceLive.model_validate(row.data)
                problem = None
            except ValidationError:
                live, problem = None, "live row unreadable (written by another Conn version?)"
            self._views[name] = replace(
                view, live=live, updated_at=row.updated_at, writer=row.writer, problem=problem
            )
