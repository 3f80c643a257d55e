"""Flags, the first projection: the fold of ``flag/``, its commands and its flagd file.

State comes only from the event log (``flag/<name>``, groups on
``flag/@<group>``); config seeds a flag or group once, when it has no stream.
Every change is a command (:class:`SetFlagPercent`, :class:`KillFlag`, …)
executed through the engine's command bus, which appends one event carrying
the expected stream version (so of two operators changing one flag, the
second is told who changed it first), then rewrites the whole flagd file
atomically. When that write fails the change stays recorded, the error is
raised after the append and shown in the export status, and the next change
(or ``export``) tries again. A file changed outside Conn is never
overwritten unless forced.

This module is the worked example of a feature: a projection class
(:class:`FlagProjection`), command types, and handlers (:class:`FlagCommands`)
registered on the bus; the engine adds one line for each.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from console.actions.flagd_file import ExportStatus, FlagFile
from console.engine.commands import Command, CommandResult, Handler
from console.engine.projections import ProjectionSet
from console.errors import ActionError, CommandError, ConcurrencyError
from console.model.clock import Clock
from console.model.events import Actor, Event, NewEvent
from console.model.flagd import Evaluation, FlagEvaluator, flagd_document
from console.model.flags import (
    FLAG_STREAM,
    GROUP_STREAM,
    MAX_KEYS,
    FlagsConfig,
    FlagSet,
    FlagState,
    check_key,
    flag_event,
    format_percent,
    group_event,
    percent_to_weight,
    suggest,
)
from console.model.units import parse_percent
from console.secrets import redact
from console.store.base import EventStore

log = logging.getLogger(__name__)

EVALUATOR_PACKAGE = "openfeature-flagd-core"

def evaluator_version() -> str:
    """The installed openfeature-flagd-core version, recorded on every flag change."""
    try:
        return importlib.metadata.version(EVALUATOR_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class FlagView:
    """One flag as views show it."""

    name: str
    description: str
    state: str
    """"enabled", "disabled" or "killed" (killed wins over disabled)."""
    enabled: bool
    killed: bool
    percent: float
    allowlist_size: int
    """Keys on the flag's own allowlist."""
    targeted_keys: int
    """Keys that always get the on variant: the allowlist plus its groups' members."""
    groups: tuple[str, ...]
    on_variant: str
    off_variant: str
    version: int
    last_change: str
    """created, percent, enable, disable, kill, allow or disallow."""
    changed_by: str
    changed_at: float
    reason: str
    evaluator_version: str
    """The openfeature-flagd-core version the latest change was written with."""
    evaluator_mismatch: bool
    """True when that differs from the installed one (bucketing may differ)."""
    export: ExportStatus

    @property
    def percent_text(self) -> str:
        return format_percent(round(self.percent * 100))

    @property
    def summary(self) -> str:
        """One line: "enabled, 10%, allowlist 2 +internal (v3 alice: stage 2)"."""
        groups = f" +{','.join(self.groups)}" if self.groups else ""
        return (
            f"{self.state}, {self.percent_text}, allowlist {self.allowlist_size}{groups} "
            f"(v{self.version} {self.changed_by}: {self.reason})"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "state": self.state,
            "enabled": self.enabled, "killed": self.killed, "percent": self.percent,
            "allowlist_size": self.allowlist_size, "targeted_keys": self.targeted_keys,
            "groups": list(self.groups), "on_variant": self.on_variant,
            "off_variant": self.off_variant, "version": self.version,
            "last_change": self.last_change, "changed_by": self.changed_by,
            "changed_at": self.changed_at, "reason": self.reason,
            "evaluator_version": self.evaluator_version,
            "evaluator_mismatch": self.evaluator_mismatch, "export": self.export.as_json(),
            "summary": self.summary,
        }


# --- the projection ---------------------------------------------------------------


class FlagProjection:
    """The fold of every ``flag/`` stream, and the views made from it (cached per change).

    Views are rebuilt only when a flag event changes the state, never per
    snapshot: the union of a 10k-key group with an allowlist is computed once.
    """

    prefix = FLAG_STREAM

    def __init__(self, config: FlagsConfig, *, evaluator: str | None = None) -> None:
        self.config = config
        self.evaluator_version = evaluator or evaluator_version()
        self.flags = FlagSet()
        self._views: dict[str, FlagView] | None = None
        self._views_export: ExportStatus | None = None
        self._evaluator: FlagEvaluator | None = None

    def apply(self, event: Event) -> bool:
        flags = self.flags.apply(event)
        if flags is self.flags:
            return False
        self.flags = flags
        self._views = None
        self._evaluator = None
        return True

    # --- reading ------------------------------------------------------------------

    def views(self, export: ExportStatus) -> tuple[FlagView, ...]:
        """Every flag, by name (the same tuple until a flag or the export status changes)."""
        return tuple(self._cached(export).values())

    def view(self, name: str, export: ExportStatus) -> FlagView:
        """One flag. Raises CommandError (with a suggestion) for an unknown name."""
        view = self._cached(export).get(name)
        if view is None:
            raise self.unknown(name)
        return view

    def _cached(self, export: ExportStatus) -> dict[str, FlagView]:
        if self._views is None:
            self._views = {name: self._build(name, export) for name in sorted(self.flags.flags)}
        elif self._views_export != export:
            self._views = {name: replace(v, export=export) for name, v in self._views.items()}
        self._views_export = export
        return self._views

    def _build(self, name: str, export: ExportStatus) -> FlagView:
        record = self.flags.flags[name]
        state = record.state
        targeted = set(state.allow)
        for group in state.groups:
            targeted.update(self.flags.group_keys(group))
        return FlagView(
            name=name, description=state.description, state=state.status,
            enabled=state.enabled, killed=state.killed, percent=state.percent,
            allowlist_size=len(state.allow), targeted_keys=len(targeted), groups=state.groups,
            on_variant=state.on_variant, off_variant=state.off_variant,
            version=self.flags.version_of(FLAG_STREAM + name),
            last_change=record.change, changed_by=record.changed_by,
            changed_at=record.changed_at, reason=record.reason,
            evaluator_version=record.evaluator,
            evaluator_mismatch=record.evaluator != self.evaluator_version,
            export=export,
        )

    def group_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.flags.groups))

    def document(self) -> dict[str, Any]:
        """The flagd document the log describes now (what the export writes)."""
        return flagd_document(self.flags)

    def evaluate(self, name: str, key: str) -> Evaluation:
        """What flagd answers for ``key`` (openfeature-flagd-core on the exported document).

        Raises:
            CommandError: unknown flag or a key that cannot be a targeting key.
        """
        if name not in self.flags.flags:
            raise self.unknown(name)
        if self._evaluator is None:
            self._evaluator = FlagEvaluator(self.flags)
        try:
            return self._evaluator.evaluate(name, key)
        except ValueError as e:
            raise CommandError(str(e)) from e

    def unseeded(self) -> tuple[str, ...]:
        """Flags the config defines that the log does not have yet (readers show them)."""
        return tuple(name for name in self.config.define if name not in self.flags.flags)

    def unknown(self, name: str) -> CommandError:
        """The error for a flag name the log does not know, with the best hint."""
        if name in self.config.define:
            return CommandError(
                f"flag {name!r} is in the config but not in the log yet, so applications "
                "do not see it either; the leader (`conn agent` or a console) or any "
                "`conn flag` change creates it"
            )
        known = sorted(self.flags.flags)
        hint = suggest(name, known)
        if not hint and known:
            shown = ", ".join(known[:10]) + (", …" if len(known) > 10 else "")
            hint = f" Flags: {shown}."
        elif not known:
            hint = " No flags are defined ([flags.define.NAME] in the config)."
        return CommandError(f"no flag named {name!r}.{hint}")


# --- commands ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SetFlagPercent(Command):
    """Roll the on variant out to ``percent`` of keys ("10%", 0.5; steps of 0.01%)."""

    flag: str
    percent: float | str

    @property
    def summary(self) -> str:
        return f"set {self.flag} to {self.percent}{'' if str(self.percent).endswith('%') else '%'}"


@dataclass(frozen=True, kw_only=True)
class EnableFlag(Command):
    """Turn the flag on (this also lifts a kill switch)."""

    flag: str

    @property
    def summary(self) -> str:
        return f"turn {self.flag} on"


@dataclass(frozen=True, kw_only=True)
class DisableFlag(Command):
    """Turn the flag off: flagd treats it as absent (applications use their code default)."""

    flag: str

    @property
    def summary(self) -> str:
        return f"turn {self.flag} off"


@dataclass(frozen=True, kw_only=True)
class KillFlag(Command):
    """Serve the off variant to everyone, whatever the rollout, allowlist or code default."""

    flag: str

    @property
    def summary(self) -> str:
        return f"kill {self.flag}"


@dataclass(frozen=True, kw_only=True)
class AllowFlagKeys(Command):
    """Add (or with ``remove``, take away) targeting keys; ``@group`` names a group."""

    flag: str
    keys: tuple[str, ...]
    remove: bool = False

    @property
    def summary(self) -> str:
        verb = "remove from" if self.remove else "add to"
        return f"{verb} {self.flag}'s allowlist: {', '.join(self.keys[:5])}"


@dataclass(frozen=True, kw_only=True)
class SeedFlags(Command):
    """Create the groups and flags the config defines and the log lacks (once each).

    Run by the leader when it takes over and before a CLI change, always as
    the automatic actor: the config, not a person, decides what is seeded.
    """

    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return "create the config's flags"


@dataclass(frozen=True, kw_only=True)
class ExportFlags(Command):
    """Write the flagd file now (``path``: elsewhere; ``force``: over a file edited by hand)."""

    path: Path | None = None
    force: bool = False

    changes_state: ClassVar[bool] = False
    needs_reason: ClassVar[bool] = False

    @property
    def summary(self) -> str:
        return f"write the flag file{f' {self.path}' if self.path else ''}"


class FlagCommands:
    """The handlers of the flag commands, registered on the engine's bus."""

    def __init__(
        self, *, store: EventStore, projections: ProjectionSet, flags: FlagProjection,
        export: FlagFile, clock: Clock,
    ) -> None:
        self._store = store
        self._projections = projections
        self._flags = flags
        self._export = export
        self._clock = clock

    def handlers(self) -> dict[type[Command], Handler]:
        return {
            SetFlagPercent: self._set_percent,
            EnableFlag: self._enable,
            DisableFlag: self._disable,
            KillFlag: self._kill,
            AllowFlagKeys: self._allow,
            SeedFlags: self._seed,
            ExportFlags: self._write,
        }

    async def _set_percent(self, command: SetFlagPercent, actor: Actor) -> CommandResult:
        try:
            weight = percent_to_weight(parse_percent(command.percent))
        except ValueError as e:
            raise CommandError(f"{command.flag}: {e}") from e
        return await self._change(command, actor, "percent", lambda s: replace(s, on_weight=weight))

    async def _enable(self, command: EnableFlag, actor: Actor) -> CommandResult:
        return await self._change(
            command, actor, "enable", lambda s: replace(s, enabled=True, killed=False))

    async def _disable(self, command: DisableFlag, actor: Actor) -> CommandResult:
        return await self._change(command, actor, "disable", lambda s: replace(s, enabled=False))

    async def _kill(self, command: KillFlag, actor: Actor) -> CommandResult:
        return await self._change(command, actor, "kill", lambda s: replace(s, killed=True))

    async def _allow(self, command: AllowFlagKeys, actor: Actor) -> CommandResult:
        name, remove = command.flag, command.remove
        if not command.keys:
            raise CommandError("name at least one key (or @group) to allow")
        plain, groups = [], []
        for key in command.keys:
            if key.startswith("@"):
                group = key[1:]
                if group not in self._flags.flags.groups:
                    raise CommandError(
                        f"no group named {group!r}." + suggest(group, self._flags.flags.groups)
                    )
                groups.append(group)
            else:
                try:
                    plain.append(check_key(key))
                except ValueError as e:
                    raise CommandError(str(e)) from e

        def mutate(state: FlagState) -> FlagState:
            if remove:
                missing = [k for k in plain if k not in state.allow] + [
                    f"@{g}" for g in groups if g not in state.groups
                ]
                if missing:
                    raise CommandError(f"{name}: not on its allowlist: {', '.join(missing[:10])}")
                allow = tuple(k for k in state.allow if k not in plain)
                return replace(state, allow=allow, groups=tuple(g for g in state.groups if g not in groups))
            allow = tuple(sorted(set(state.allow) | set(plain)))
            if len(allow) > MAX_KEYS:
                raise CommandError(f"{name}: an allowlist holds at most {MAX_KEYS} keys")
            more = tuple(g for g in dict.fromkeys(groups) if g not in state.groups)
            return replace(state, allow=allow, groups=state.groups + more)

        return await self._change(command, actor, "disallow" if remove else "allow", mutate)

    async def _seed(self, command: SeedFlags, actor: Actor) -> CommandResult:
        """Groups are definitions with no screen of their own, so a group whose
        keys changed in config is updated too — by an event, never silently.
        Flags are operated live, so config never overrides a logged flag.
        """
        config = self._flags.config
        appended: list[Event] = []
        for name, keys in config.groups.items():
            wanted = sorted(set(keys))
            current = self._flags.flags.groups.get(name)
            if current is not None and list(current) == wanted:
                continue
            kind, payload = group_event(name, wanted, current)
            why = f"[flags.groups] {name} in config " + ("added" if current is None else "changed")
            # Another console may seed it first; _append folds its version either way.
            with contextlib.suppress(ConcurrencyError):
                appended += await self._append(GROUP_STREAM + name, kind, payload, why, actor)
        for name, definition in config.define.items():
            if name in self._flags.flags.flags:
                continue
            state = FlagState.from_definition(name, definition)
            kind, payload = flag_event(
                state, None, change="created", evaluator=self._flags.evaluator_version,
                source="config",
            )
            with contextlib.suppress(ConcurrencyError):
                appended += await self._append(
                    FLAG_STREAM + name, kind, payload, f"[flags.define.{name}] in config", actor
                )
        if appended:
            with contextlib.suppress(ActionError):  # recorded in the export status
                await self._export.write()
        return CommandResult(command, actor, tuple(appended),
                             f"{len(appended)} flag/group definition(s) created from the config")

    async def _write(self, command: ExportFlags, actor: Actor) -> CommandResult:
        status = await self._export.write(command.path, force=command.force)
        return CommandResult(command, actor, (), f"wrote {status.path} (sha256 {status.sha256})",
                             detail=status)

    async def _append(
        self, stream: str, kind: str, payload: dict[str, Any], reason: str, actor: Actor
    ) -> list[Event]:
        expected = self._projections.version_of(stream)
        try:
            await self._store.append(
                # An operator may paste a secret into a reason; the log never keeps it.
                stream, expected, [NewEvent(kind, payload, redact(reason))],
                actor=actor, at=self._clock.now(),
            )
        finally:
            # Success or a lost race: either way, fold what the stream now holds.
            appended = await self._projections.refresh(self._store, stream)
        return [e for e in appended if e.version == expected + 1]

    async def _change(
        self, command: SetFlagPercent | EnableFlag | DisableFlag | KillFlag | AllowFlagKeys,
        actor: Actor, change: str, mutate: Callable[[FlagState], FlagState],
    ) -> CommandResult:
        """Append ``mutate``'s result as a FlagChanged event, then export.

        A change that changes nothing appends nothing (rollout stages may
        repeat a command safely).

        Raises:
            CommandError: unknown flag or a refused change.
            ConcurrencyError: someone changed the flag first (it says who).
            ActionError: recorded, but the flagd file could not be written.
        """
        name = command.flag
        record = self._flags.flags.flags.get(name)
        if record is None:
            raise self._flags.unknown(name)
        after = mutate(record.state)
        if after == record.state:
            view = self._flags.view(name, self._export.status)
            return CommandResult(command, actor, (), f"{name}: unchanged", detail=view)
        kind, payload = flag_event(
            after, record.state, change=change, evaluator=self._flags.evaluator_version
        )
        events = await self._append(FLAG_STREAM + name, kind, payload, command.reason.strip(), actor)
        try:
            await self._export.write()
        except ActionError as e:
            version = self._projections.version_of(FLAG_STREAM + name)
            raise ActionError(
                f"{name}: change recorded (flag/{name} v{version}) but the flag file was not "
                f"updated: {e}"
            ) from e
        view = self._flags.view(name, self._export.status)
        return CommandResult(command, actor, tuple(events), f"{name}: {change}", detail=view)
