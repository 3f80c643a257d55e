"""Feature flags: config, state as a fold over events.

Conn's flags *are* flagd flag definitions: :mod:`console.model.flagd` turns
the state folded here into flagd's JSON and evaluates it with the official
evaluator. This module holds what Conn itself owns: the [flags] config
section, each flag's state (precedence: killed > disabled > allowlist and
groups > fractional > default), and the fold that rebuilds it from events.

Rollouts are integer weights out of ``TOTAL_WEIGHT`` (10000), so 0.01% steps
(and 0.5%) are exact. Events: ``FlagCreated``/``FlagChanged`` on ``flag/<name>``
and ``FlagGroupCreated``/``FlagGroupChanged`` on ``flag/@<group>``, each
with ``before`` and ``after``; state is ``after`` of the latest event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from console.model.events import Event
from console.model.text import suggest as suggest  # re-exported: console.engine.flags uses it
from console.model.units import Percent

TOTAL_WEIGHT = 10_000
"""Fractional weights sum to this, so a percentage is exact to 0.01%."""
FLAG_STREAM = "flag/"
GROUP_STREAM = "flag/@"
"""Groups share the ``flag/`` prefix ('@' cannot start a flag name), so one filter sees both."""
FLAG_CREATED, FLAG_CHANGED = "FlagCreated", "FlagChanged"
GROUP_CREATED, GROUP_CHANGED = "FlagGroupCreated", "FlagGroupChanged"
MAX_KEYS = 10_000
"""Most targeting keys in one allowlist or group (every buffer is bounded)."""
MAX_KEY_LENGTH = 200

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_NAME_RULE = "letters, digits, '_', '.', ':', '-', starting with a letter or digit, at most 100"


def check_name(name: str, what: str = "flag") -> str:
    """Return ``name`` if it can name a flag or group (and a stream); ValueError otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{name!r} is not a valid {what} name ({_NAME_RULE})")
    return name


def key_problem(key: object) -> str | None:
    """What is wrong with ``key`` as a targeting key, or None.

    A leading '@' is reserved for group references (``@beta-testers``).
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        return f"is not a targeting key (1–{MAX_KEY_LENGTH} characters)"
    if key.startswith("@") or any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "is not a targeting key (no leading '@', no control characters)"
    return None


def check_key(key: str) -> str:
    """Return ``key`` if it can be a targeting key; ValueError otherwise."""
    if problem := key_problem(key):
        raise ValueError(f"{key!r} {problem}")
    return key


def percent_to_weight(percent: float) -> int:
    """The on-weight out of ``TOTAL_WEIGHT`` for ``percent``; ValueError if not exact."""
    if not 0 <= percent <= 100:
        raise ValueError(f"{percent:g}% is outside 0–100%")
    weight = round(percent * TOTAL_WEIGHT / 100)
    if abs(percent * TOTAL_WEIGHT / 100 - weight) > 1e-6:
        raise ValueError(
            f"{percent:g}% would need a non-integer flagd weight (weights are integers "
            f"out of {TOTAL_WEIGHT}); use a multiple of 0.01%"
        )
    return weight


def format_percent(weight: int) -> str:
    """``1000`` -> ``"10%"``, ``50`` -> ``"0.5%"``."""
    return f"{weight * 100 / TOTAL_WEIGHT:g}%"


# --- config ------------------------------------------------------------------


_Problem = tuple[tuple[str | int, ...], Any, str]
"""(location, offending value, message)."""


def _fail(
    problems: Sequence[_Problem], *, also: Sequence[tuple[tuple[Any, ...], Any, str, str]] = ()
) -> None:
    """Raise every problem at its own location, so config errors name the exact key.

    ``also`` carries errors pydantic already found (location, value, message,
    type), re-raised together with ours; the type is kept so "unknown key"
    and "missing" are still recognised by ``console.config``.
    """
    details = [
        InitErrorDetails(
            type=PydanticCustomError(kind, "{message}", {"message": message}), loc=loc, input=value
        )
        for loc, value, message, kind in [*also, *((p[0], p[1], p[2], "flags") for p in problems)]
    ]
    if details:
        raise ValidationError.from_exception_data("flags", details)


def _check_key_list(keys: list[str], what: str) -> list[str]:
    problems: list[_Problem] = []
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if problem := key_problem(key):
            problems.append(((index,), key, problem))
            continue
        if key in seen:
            problems.append(((index,), key, f"is listed twice in {what} (also at [{seen[key]}])"))
        seen.setdefault(key, index)
    if len(keys) > MAX_KEYS:
        problems.append(((), f"{len(keys)} keys", f"more than {MAX_KEYS} keys in {what}"))
    _fail(problems)
    return keys


def _boolean_variants() -> dict[str, bool | str]:
    return {"on": True, "off": False}


class FlagDefinition(BaseModel):
    """One flag as first defined in config; the event log owns it afterwards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    """What the flag gates, for people (also in the exported file's metadata)."""
    enabled: bool = True
    """Initial state; a disabled flag is absent to flagd (applications use their code default)."""
    percent: Percent = 0.0
    """Initial share of targeting keys that get the on variant: "10%", 0.5 (steps of 0.01%)."""
    allow: list[str] = Field(default_factory=list)
    """Targeting keys that always get the on variant while enabled (internal team IDs)."""
    groups: list[str] = Field(default_factory=list)
    """Names from [flags.groups] whose keys always get the on variant while enabled."""
    variants: dict[str, StrictBool | StrictStr] = Field(default_factory=_boolean_variants)
    """flagd variants: name -> value, all booleans or all strings."""
    default_variant: str = Field(default="off", validate_default=True)
    """flagd's defaultVariant: served when killed, outside the rollout, and with no key."""
    on_variant: str = Field(default="on", validate_default=True)
    """The variant the allowlist, groups and percentage turn on."""

    @field_validator("percent")
    @classmethod
    def _exact_weight(cls, value: float) -> float:
        percent_to_weight(value)
        return value

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        return _check_key_list(value, "allow")

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        problems: list[_Problem] = []
        for index, name in enumerate(value):
            if value.index(name) != index:
                problems.append(((index,), name, "is listed twice"))
        _fail(problems)
        return value

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: dict[str, bool | str]) -> dict[str, bool | str]:
        if len(value) < 2:
            raise ValueError("a flag needs at least two variants (an on and an off)")
        for name in value:
            if not name or len(name) > 100:
                raise ValueError(f"{name!r} is not a variant name (1–100 characters)")
        if len({type(v) for v in value.values()}) > 1:
            raise ValueError("variant values must be all booleans or all strings (flagd types a flag)")
        return value

    @field_validator("default_variant", "on_variant")
    @classmethod
    def _known_variant(cls, value: str, info: ValidationInfo) -> str:
        variants = info.data.get("variants")
        if variants is None:
            return value  # variants already failed; that error names the problem
        if value not in variants:
            raise ValueError(
                f"{value!r} is not one of the variants ({', '.join(variants)})."
                + suggest(value, variants)
            )
        if info.field_name == "on_variant" and value == info.data.get("default_variant"):
            raise ValueError("on_variant must differ from default_variant (the off variant)")
        return value


class FlagsConfig(BaseModel):
    """The [flags] section of conn.toml: where the flagd file goes, groups, initial flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    export: Path | None = None
    """The flagd JSON file Conn rewrites on every change (default: flags.json in the state dir)."""
    groups: dict[str, list[str]] = Field(default_factory=dict)
    """Named sets of targeting keys (internal, beta-testers, …) a flag can turn on."""
    define: dict[str, FlagDefinition] = Field(default_factory=dict)
    """Flags by name. Each seeds flag/<name> once; later changes go through Conn, not config."""

    @field_validator("export")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("groups")
    @classmethod
    def _group_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        problems: list[_Problem] = []
        for name, keys in value.items():
            try:
                _check_key_list(keys, f"group {name}")
            except ValidationError as e:
                problems.extend(((name, *err["loc"]), err["input"], err["msg"]) for err in e.errors())
        _fail(problems)
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _names_and_references(
        cls, data: Any, handler: ModelWrapValidatorHandler[FlagsConfig]
    ) -> FlagsConfig:
        """Check names and group references on the raw table, alongside every other problem.

        A plain "after" validator would only run once everything else is valid,
        so a typo'd group would surface one `conn check` later than the rest.
        """
        problems = _raw_problems(data) if isinstance(data, Mapping) else []
        try:
            validated = handler(data)
        except ValidationError as e:
            merged = [((*err["loc"],), err.get("input"), err["msg"], err["type"]) for err in e.errors()]
            _fail([*((p[0], p[1], p[2]) for p in problems)], also=merged)
            raise
        _fail(problems)
        return validated

    def export_path(self, state_dir: Path) -> Path:
        """The flagd file: ``export`` if set, else ``flags.json`` in ``state_dir``."""
        return self.export if self.export is not None else state_dir / "flags.json"


def _raw_problems(data: Mapping[str, Any]) -> list[_Problem]:
    """Bad flag and group names, and groups a flag names that [flags.groups] lacks."""
    problems: list[_Problem] = []
    groups = data.get("groups")
    groups = groups if isinstance(groups, Mapping) else {}
    for name in groups:
        if not _NAME.match(str(name)):
            problems.append((("groups", name), name, f"is not a valid group name ({_NAME_RULE})"))
    define = data.get("define")
    for name, definition in (define.items() if isinstance(define, Mapping) else ()):
        if not _NAME.match(str(name)):
            problems.append((("define", name), name, f"is not a valid flag name ({_NAME_RULE})"))
        wanted = definition.get("groups") if isinstance(definition, Mapping) else None
        for index, group in enumerate(wanted if isinstance(wanted, list) else ()):
            if isinstance(group, str) and group not in groups:
                problems.append((
                    ("define", name, "groups", index), group,
                    "is not a group in [flags.groups]." + suggest(group, groups),
                ))
    return problems


# --- state and fold ----------------------------------------------------------


@dataclass(frozen=True)
class FlagState:
    """What a flag is now; the ``before``/``after`` of every flag event."""

    name: str
    description: str = ""
    enabled: bool = True
    killed: bool = False
    on_weight: int = 0
    allow: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    variants: tuple[tuple[str, bool | str], ...] = (("off", False), ("on", True))
    """Sorted by name, so states compare equal whatever order they were written in."""
    on_variant: str = "on"
    off_variant: str = "off"

    @property
    def percent(self) -> float:
        return self.on_weight * 100 / TOTAL_WEIGHT

    @property
    def status(self) -> str:
        """"killed", "disabled" or "enabled" (precedence order)."""
        return "killed" if self.killed else "enabled" if self.enabled else "disabled"

    def value_of(self, variant: str) -> bool | str:
        return dict(self.variants)[variant]

    def to_payload(self) -> dict[str, Any]:
        return {
            "description": self.description, "enabled": self.enabled, "killed": self.killed,
            "on_weight": self.on_weight, "allow": list(self.allow), "groups": list(self.groups),
            "variants": dict(self.variants), "on_variant": self.on_variant,
            "off_variant": self.off_variant,
        }

    @classmethod
    def from_payload(cls, name: str, data: Mapping[str, Any]) -> FlagState:
        """Parse an event's state; ValueError (naming the field) when it is malformed."""
        try:
            state = cls(
                name=name, description=str(data.get("description", "")),
                enabled=bool(data["enabled"]), killed=bool(data["killed"]),
                on_weight=int(data["on_weight"]), allow=tuple(data["allow"]),
                groups=tuple(data["groups"]), variants=tuple(sorted(dict(data["variants"]).items())),
                on_variant=str(data["on_variant"]), off_variant=str(data["off_variant"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"flag {name}: malformed state in event ({e!r})") from e
        names = {v for v, _ in state.variants}
        if not 0 <= state.on_weight <= TOTAL_WEIGHT or not {state.on_variant, state.off_variant} <= names:
            raise ValueError(f"flag {name}: state in event is out of range")
        return state

    @classmethod
    def from_definition(cls, name: str, definition: FlagDefinition) -> FlagState:
        return cls(
            name=name, description=definition.description, enabled=definition.enabled,
            on_weight=percent_to_weight(definition.percent),
            allow=tuple(sorted(set(definition.allow))), groups=tuple(definition.groups),
            variants=tuple(sorted(definition.variants.items())), on_variant=definition.on_variant,
            off_variant=definition.default_variant,
        )


@dataclass(frozen=True)
class FlagRecord:
    """A flag's state plus who last changed it: the fold of ``flag/<name>``."""

    state: FlagState
    version: int
    change: str
    changed_by: str
    changed_at: float
    reason: str
    evaluator: str
    """The openfeature-flagd-core version that wrote the latest change."""


@dataclass(frozen=True)
class FlagSet:
    """Every flag and group, folded from their streams; ``apply`` returns a new set."""

    flags: Mapping[str, FlagRecord] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Group name -> its targeting keys."""
    versions: Mapping[str, int] = field(default_factory=dict)
    """Stream -> version, counting every event on it (even types this Conn does not know),
    so the next append expects the right version."""

    def version_of(self, stream: str) -> int:
        return self.versions.get(stream, 0)

    def apply(self, event: Event) -> FlagSet:
        """Fold one event; other streams, unknown types and events already seen change no state.

        Raises:
            ValueError: the event's payload is not a flag or group state.
        """
        if not event.stream.startswith(FLAG_STREAM) or event.version <= self.version_of(event.stream):
            return self
        versions = {**self.versions, event.stream: event.version}
        is_group = event.stream.startswith(GROUP_STREAM)
        name = event.stream.removeprefix(GROUP_STREAM if is_group else FLAG_STREAM)
        after = event.payload.get("after")
        if event.type in (FLAG_CREATED, FLAG_CHANGED) and not is_group:
            if not isinstance(after, Mapping):
                raise ValueError(f"{event.stream} v{event.version}: {event.type} has no 'after' state")
            record = FlagRecord(
                state=FlagState.from_payload(name, after), version=event.version,
                change=str(event.payload.get("change", "created")), changed_by=event.actor,
                changed_at=event.time, reason=event.reason,
                evaluator=str(event.payload.get("evaluator", "unknown")),
            )
            return replace(self, flags={**self.flags, name: record}, versions=versions)
        if event.type in (GROUP_CREATED, GROUP_CHANGED) and is_group:
            keys = after.get("keys") if isinstance(after, Mapping) else None
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise ValueError(f"{event.stream} v{event.version}: {event.type} has no key list")
            return replace(self, groups={**self.groups, name: tuple(keys)}, versions=versions)
        return replace(self, versions=versions)

    def group_keys(self, name: str) -> tuple[str, ...]:
        return self.groups.get(name, ())


def fold(events: Iterable[Event], start: FlagSet | None = None) -> FlagSet:
    """The flag set after ``events`` (any streams, in log order)."""
    flags = start or FlagSet()
    for event in events:
        flags = flags.apply(event)
    return flags


def flag_event(
    state: FlagState, before: FlagState | None, *, change: str, evaluator: str, source: str = "command"
) -> tuple[str, dict[str, Any]]:
    """The type and payload of the event that records ``before`` -> ``state``."""
    payload = {
        "flag": state.name, "change": change, "before": before.to_payload() if before else None,
        "after": state.to_payload(), "evaluator": evaluator, "source": source,
    }
    return (FLAG_CREATED if before is None else FLAG_CHANGED), payload


def group_event(
    name: str, keys: Sequence[str], before: Sequence[str] | None
) -> tuple[str, dict[str, Any]]:
    """The type and payload of the event that records a group's keys (from config)."""
    payload = {
        "group": name, "before": None if before is None else {"keys": list(before)},
        "after": {"keys": list(keys)}, "source": "config",
    }
    return (GROUP_CREATED if before is None else GROUP_CHANGED), payload
