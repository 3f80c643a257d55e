"""Flag commands for every caller: the screen, the CLI and (later) rollout stages.

State comes only from the event log (``flag/<name>``, groups on
``flag/@<group>``); config seeds a flag or group once, when it has no stream.
Every command appends one event carrying the expected stream version (so of
two operators changing one flag, the second is told who changed it first),
then rewrites the whole flagd file atomically. When that write fails the
change stays recorded, the error is raised after the append and shown in
:meth:`FlagService.views`, and the next change (or ``export``) tries again.
A file changed outside Conn is never overwritten unless forced.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from console.actions.files import FileConflict, check_owned, sha256, write_owned
from console.config import ConnConfig
from console.errors import ActionError, CommandError, ConcurrencyError, StoreError
from console.model.clock import Clock
from console.model.events import Actor, Event, NewEvent
from console.model.flagd import Evaluation, FlagEvaluator, flagd_document, render_document
from console.model.flags import (
    FLAG_STREAM,
    GROUP_STREAM,
    MAX_KEYS,
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
from console.paths import state_dir
from console.secrets import redact
from console.store.base import EventStore

log = logging.getLogger(__name__)

EVALUATOR_PACKAGE = "openfeature-flagd-core"
MAX_REASON = 4000
_READ_PAGE = 1000

ExportState = Literal["ok", "pending", "edited", "error"]


def evaluator_version() -> str:
    """The installed openfeature-flagd-core version, recorded on every flag change."""
    try:
        return importlib.metadata.version(EVALUATOR_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ExportStatus:
    """Whether the flagd file on disk says what the log says."""

    path: str
    state: ExportState
    """ok: up to date; pending: not written yet or stale; edited: changed outside
    Conn (not overwritten); error: the last write failed."""
    message: str = ""
    sha256: str | None = None
    """Hash of what Conn last wrote there (also in ``<path>.sha256``)."""

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "state": self.state, "message": self.message,
                "sha256": self.sha256}


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


class FlagService:
    """Flags for one engine: folded from the log, changed by commands, exported as flagd JSON.

    Args:
        store: the event store.
        config: the validated config (its ``[flags]`` section is read).
        clock: the time stamped on events.
        actor: who commands are attributed to.
        export_path: overrides the config's export path (tests, the demo).
    """

    def __init__(
        self,
        *,
        store: EventStore,
        config: ConnConfig,
        clock: Clock,
        actor: Actor,
        export_path: Path | None = None,
    ) -> None:
        self._store = store
        self._config = config.flags
        self._clock = clock
        self._actor = actor
        self.export_path = export_path or self._config.export_path(state_dir())
        self.evaluator_version = evaluator_version()
        self._flags = FlagSet()
        self._evaluator: FlagEvaluator | None = None
        self._status = ExportStatus(str(self.export_path), "pending", "not checked yet")

    # --- reading --------------------------------------------------------------

    async def load(self, *, export: bool = True, seed: bool = True) -> None:
        """Fold every flag stream, seed what config defines and the log lacks, sync the file.

        Args:
            export: also write the flagd file when it is missing or stale (never
                when edited outside Conn); False for read-only commands.
            seed: append what the config defines and the log lacks (see :meth:`seed`);
                False for readers — reading never writes to the audit log.
        """
        after, flags = 0, FlagSet()
        while True:
            page = await self._store.read_all(after=after, limit=_READ_PAGE)
            flags = self._fold(page, flags)
            if len(page) < _READ_PAGE:
                break
            after = page[-1].position
        self._set(flags)
        if seed:
            await self.seed()
        if export:
            await self.sync_export()
        else:
            await self.check_export()

    def apply(self, event: Event) -> bool:
        """Fold an event from ``store.subscribe`` (others' changes); True if state changed.

        Does no I/O: call :meth:`sync_export` afterwards to bring the file up to date.
        An event this Conn cannot read is logged and skipped, so following never stops.
        """
        try:
            flags = self._fold([event], self._flags)
        except StoreError as e:
            log.warning("skipping an unreadable flag event: %s", e)
            return False
        if flags is self._flags:
            return False
        self._set(flags)
        if self._status.state == "ok":
            self._status = replace(self._status, state="pending", message="flags changed elsewhere")
        return True

    def views(self) -> tuple[FlagView, ...]:
        """Every flag, by name."""
        return tuple(self.view(name) for name in sorted(self._flags.flags))

    def view(self, name: str) -> FlagView:
        """One flag. Raises CommandError (with a suggestion) for an unknown name."""
        record = self._flags.flags.get(name)
        if record is None:
            raise self._unknown(name)
        state = record.state
        targeted = set(state.allow)
        for group in state.groups:
            targeted.update(self._flags.group_keys(group))
        return FlagView(
            name=name, description=state.description, state=state.status,
            enabled=state.enabled, killed=state.killed, percent=state.percent,
            allowlist_size=len(state.allow), targeted_keys=len(targeted), groups=state.groups,
            on_variant=state.on_variant, off_variant=state.off_variant, version=self._flags.version_of(FLAG_STREAM + name),
            last_change=record.change, changed_by=record.changed_by,
            changed_at=record.changed_at, reason=record.reason,
            evaluator_version=record.evaluator,
            evaluator_mismatch=record.evaluator != self.evaluator_version,
            export=self._status,
        )

    def group_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._flags.groups))

    def document(self) -> dict[str, Any]:
        """The flagd document the log describes now (what ``export`` writes)."""
        return flagd_document(self._flags)

    def evaluate(self, name: str, key: str) -> Evaluation:
        """What flagd answers for ``key`` (openfeature-flagd-core on the exported document).

        Raises:
            CommandError: unknown flag or a key that cannot be a targeting key.
        """
        if name not in self._flags.flags:
            raise self._unknown(name)
        if self._evaluator is None:
            self._evaluator = FlagEvaluator(self._flags)
        try:
            return self._evaluator.evaluate(name, key)
        except ValueError as e:
            raise CommandError(str(e)) from e

    # --- commands -------------------------------------------------------------

    async def set_percent(self, name: str, percent: float | str, *, reason: str) -> FlagView:
        """Roll the on variant out to ``percent`` of keys ("10%", 0.5; steps of 0.01%)."""
        try:
            weight = percent_to_weight(parse_percent(percent))
        except ValueError as e:
            raise CommandError(f"{name}: {e}") from e
        return await self._change(name, reason, "percent", lambda s: replace(s, on_weight=weight))

    async def enable(self, name: str, *, reason: str) -> FlagView:
        """Turn the flag on (this also lifts a kill switch)."""
        return await self._change(
            name, reason, "enable", lambda s: replace(s, enabled=True, killed=False)
        )

    async def disable(self, name: str, *, reason: str) -> FlagView:
        """Turn the flag off: flagd treats it as absent (applications use their code default)."""
        return await self._change(name, reason, "disable", lambda s: replace(s, enabled=False))

    async def kill(self, name: str, *, reason: str) -> FlagView:
        """Serve the off variant to everyone, whatever the rollout, allowlist or code default."""
        return await self._change(name, reason, "kill", lambda s: replace(s, killed=True))

    async def allow(
        self, name: str, keys: Sequence[str], *, reason: str, remove: bool = False
    ) -> FlagView:
        """Add (or with ``remove``, take away) targeting keys; ``@group`` names a group."""
        if not keys:
            raise CommandError("name at least one key (or @group) to allow")
        plain, groups = [], []
        for key in keys:
            if key.startswith("@"):
                group = key[1:]
                if group not in self._flags.groups:
                    raise CommandError(
                        f"no group named {group!r}." + suggest(group, self._flags.groups)
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

        return await self._change(name, reason, "disallow" if remove else "allow", mutate)

    # --- export ---------------------------------------------------------------

    def export_status(self) -> ExportStatus:
        return self._status

    async def export(self, path: Path | None = None, *, force: bool = False) -> ExportStatus:
        """Write the flagd file (the configured one, or ``path``) now.

        Raises:
            FileConflict: the file was changed outside Conn and ``force`` is not set.
            ActionError: the file cannot be written (it names the path).
        """
        target = path or self.export_path
        data = render_document(self.document())
        try:
            check = await asyncio.to_thread(write_owned, target, data, force=force)
        except FileConflict as e:
            status = ExportStatus(str(target), "edited", str(e), e.recorded)
            self._record_status(target, status)
            raise
        except ActionError as e:
            status = ExportStatus(str(target), "error", f"{e}; retried on the next change")
            self._record_status(target, status)
            raise
        status = ExportStatus(str(target), "ok", "", check.current)
        self._record_status(target, status)
        return status

    async def check_export(self) -> ExportStatus:
        """Look at the configured file (no writing): ok, pending (stale), edited or unreadable."""
        target = self.export_path
        try:
            check = await asyncio.to_thread(check_owned, target)
        except ActionError as e:
            self._status = ExportStatus(str(target), "error", str(e))
            return self._status
        wanted = sha256(render_document(self.document()))
        if check.current == wanted:
            self._status = ExportStatus(str(target), "ok", "", check.current)
        elif check.current is None:
            self._status = ExportStatus(str(target), "pending", "not written yet", check.recorded)
        elif check.edited:
            who = "was not written by Conn" if check.recorded is None else "was edited outside Conn"
            self._status = ExportStatus(
                str(target), "edited",
                f"{target} {who}; not overwritten (export with force to replace it)",
                check.recorded,
            )
        else:
            self._status = ExportStatus(str(target), "pending", "older than the log", check.recorded)
        return self._status

    async def sync_export(self) -> ExportStatus:
        """Write the configured file if it is missing or stale; never when edited outside Conn.

        Errors are recorded in the status (shown by views), not raised: this
        runs at start-up and after others' changes, where nobody asked for it.
        """
        status = await self.check_export()
        if status.state == "pending" and not self._flags.flags and status.sha256 is None:
            # No flags and no file yet: a console without flags leaves no empty file behind.
            self._status = replace(status, message="no flags yet; written on the first change")
        elif status.state == "pending":
            with contextlib.suppress(ActionError):  # export() records it in the status
                await self.export()
        return self._status

    # --- internals ------------------------------------------------------------

    def _record_status(self, target: Path, status: ExportStatus) -> None:
        if target == self.export_path:
            self._status = status

    def _set(self, flags: FlagSet) -> None:
        self._flags = flags
        self._evaluator = None

    @staticmethod
    def _fold(events: Sequence[Event], flags: FlagSet) -> FlagSet:
        for event in events:
            try:
                flags = flags.apply(event)
            except ValueError as e:
                raise StoreError(f"event {event.position} ({event.stream}): {e}") from e
        return flags

    async def _refresh(self, stream: str) -> None:
        self._set(self._fold(await self._store.read_stream(stream), self._flags))

    async def _append(self, stream: str, kind: str, payload: dict[str, Any], reason: str) -> None:
        expected = self._flags.version_of(stream)
        try:
            await self._store.append(
                # An operator may paste a secret into a reason; the log never keeps it.
                stream, expected, [NewEvent(kind, payload, redact(reason))],
                actor=self._actor, at=self._clock.now(),
            )
        finally:
            # Success or a lost race: either way, fold what the stream now holds.
            await self._refresh(stream)

    def unseeded(self) -> tuple[str, ...]:
        """Flags the config defines that the log does not have yet (readers show them)."""
        return tuple(name for name in self._config.define if name not in self._flags.flags)

    async def seed(self) -> None:
        """Create groups and flags that config defines and the log lacks (once each).

        Only writers seed: the leader when it takes over, and change commands.
        Readers (status, list, eval, followers) never append.

        Groups are definitions with no screen of their own, so a group whose
        keys changed in config is updated too — by an event, never silently.
        Flags are operated live, so config never overrides a logged flag.
        """
        for name, keys in self._config.groups.items():
            wanted = sorted(set(keys))
            current = self._flags.groups.get(name)
            if current is not None and list(current) == wanted:
                continue
            kind, payload = group_event(name, wanted, current)
            why = f"[flags.groups] {name} in config " + ("added" if current is None else "changed")
            # Another console may seed it first; _append folds its version either way.
            with contextlib.suppress(ConcurrencyError):
                await self._append(GROUP_STREAM + name, kind, payload, why)
        for name, definition in self._config.define.items():
            if name in self._flags.flags:
                continue
            state = FlagState.from_definition(name, definition)
            kind, payload = flag_event(
                state, None, change="created", evaluator=self.evaluator_version, source="config"
            )
            with contextlib.suppress(ConcurrencyError):
                await self._append(
                    FLAG_STREAM + name, kind, payload, f"[flags.define.{name}] in config"
                )

    async def _change(
        self, name: str, reason: str, change: str, mutate: Callable[[FlagState], FlagState]
    ) -> FlagView:
        """Append ``mutate``'s result as a FlagChanged event, then export.

        A change that changes nothing appends nothing (rollout stages may
        repeat a command safely).

        Raises:
            CommandError: unknown flag, no reason, or a refused change.
            ConcurrencyError: someone changed the flag first (it says who).
            ActionError: recorded, but the flagd file could not be written.
        """
        reason = (reason or "").strip()
        if not reason:
            raise CommandError("a reason is required: say why (it goes in the audit log)")
        if len(reason) > MAX_REASON:
            raise CommandError(f"the reason is longer than {MAX_REASON} characters")
        record = self._flags.flags.get(name)
        if record is None:
            raise self._unknown(name)
        after = mutate(record.state)
        if after == record.state:
            return self.view(name)
        kind, payload = flag_event(
            after, record.state, change=change, evaluator=self.evaluator_version
        )
        await self._append(FLAG_STREAM + name, kind, payload, reason)
        try:
            await self.export()
        except ActionError as e:
            version = self._flags.version_of(FLAG_STREAM + name)
            raise ActionError(
                f"{name}: change recorded (flag/{name} v{version}) but the flag file was not "
                f"updated: {e}"
            ) from e
        return self.view(name)

    def _unknown(self, name: str) -> CommandError:
        if name in self._config.define:
            return CommandError(
                f"flag {name!r} is in the config but not in the log yet, so applications "
                "do not see it either; the leader (`conn agent` or a console) or any "
                "`conn flag` change creates it"
            )
        known = sorted(self._flags.flags)
        hint = suggest(name, known)
        if not hint and known:
            shown = ", ".join(known[:10]) + (", …" if len(known) > 10 else "")
            hint = f" Flags: {shown}."
        elif not known:
            hint = " No flags are defined ([flags.define.NAME] in the config)."
        return CommandError(f"no flag named {name!r}.{hint}")
