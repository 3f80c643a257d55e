"""Events: the single source of truth for everything that changes by decision.

An event is immutable. It belongs to a stream (``flag/checkout_v2``,
``rollout/checkout``, ``incident/42``) at a version (1, 2, 3, … within the
stream) and to the whole log at a position (1, 2, 3, … across streams). Every
event carries the hash of the event before it in the whole log, so the log is
one chain: editing, deleting or reordering any row breaks it, and
``conn audit --verify`` names the first broken event.

The hash is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8)
of the event's fields other than ``position`` and ``hash``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first event in a log."""

_STREAM = re.compile(r"^[a-z][a-z0-9_-]*/[A-Za-z0-9_.:@-]+$")


def check_stream_name(stream: str) -> str:
    """Return ``stream`` if it reads ``kind/name``; raise ValueError otherwise."""
    if not _STREAM.match(stream):
        raise ValueError(f"{stream!r} is not a stream name (expected kind/name, e.g. flag/checkout_v2)")
    return stream


@dataclass(frozen=True)
class Actor:
    """Who did something: the OS user, and the SSH client address when there is one."""

    user: str
    ssh_client: str | None = None

    def __str__(self) -> str:
        return f"{self.user}@{self.ssh_client}" if self.ssh_client else self.user


@dataclass(frozen=True)
class NewEvent:
    """An event to append; the store assigns id, version, position, time and hashes."""

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class Event:
    """An event as stored."""

    position: int
    id: str
    stream: str
    version: int
    type: str
    time: float
    actor: str
    reason: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str

    def describe(self) -> str:
        """One line for people: who did what to which stream, and when.

        "what" is :func:`console.model.describe.describe_change` ("alice 0% → 75%
        on flag/x v2 …"; an unknown type reads as its type).
        """
        from datetime import UTC, datetime

        # Imported here: console.model.describe reads flag payloads, and flags import events.
        from console.model.describe import describe_change

        when = datetime.fromtimestamp(self.time, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        because = f" ({self.reason})" if self.reason else ""
        what = describe_change(self)
        return f"{self.actor} {what} on {self.stream} v{self.version} at {when}{because}"

    def as_json(self) -> dict[str, Any]:
        """The event as plain JSON-able data (what ``conn audit --json`` prints)."""
        return {
            "position": self.position,
            "id": self.id,
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "time": self.time,
            "actor": self.actor,
            "reason": self.reason,
            "payload": dict(self.payload),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def payload_error(event: Event, problem: str) -> ValueError:
    """What a fold raises for an event it cannot read: "rollout/x v3: StageEntered has no valid 'index'"."""
    return ValueError(f"{event.stream} v{event.version}: {event.type} {problem}")


def payload_value(event: Event, key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    """``event.payload[key]`` checked to be ``kind`` (a bool is never a number); None when
    ``optional`` and missing. Raises the fold's ValueError otherwise."""
    value = event.payload.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise payload_error(event, f"has no valid {key!r} ({value!r})")
    if not isinstance(value, kind):
        raise payload_error(event, f"has no valid {key!r} ({value!r})")
    return value


def payload_strings(event: Event, key: str) -> tuple[str, ...]:
    """A list of text in the payload, as a tuple; the fold's ValueError when anything else."""
    value = payload_value(event, key, list)
    if not all(isinstance(item, str) for item in value):
        raise payload_error(event, f"has a non-text entry in {key!r}")
    return tuple(value)


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: the same bytes for the same data."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(
    *,
    id: str,
    stream: str,
    version: int,
    type: str,
    time: float,
    actor: str,
    reason: str,
    payload: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """The SHA-256 hex digest that chains an event to the one before it."""
    body = canonical_json(
        {
            "id": id,
            "stream": stream,
            "version": version,
            "type": type,
            "time": time,
            "actor": actor,
            "reason": reason,
            "payload": dict(payload),
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """The first event whose hash or link does not match: what ``--verify`` reports."""

    position: int
    stream: str
    version: int
    problem: str


def verify_chain(events: list[Event]) -> ChainBreak | None:
    """Recompute the whole log's chain; return the first break, or None when intact.

    ``events`` must be the whole log in position order.
    """
    previous = GENESIS_HASH
    expected_position = 1
    versions: dict[str, int] = {}
    for event in events:
        if event.position != expected_position:
            return ChainBreak(
                event.position, event.stream, event.version,
                f"position {expected_position} is missing (found {event.position})",
            )
        expected_position += 1
        if event.prev_hash != previous:
            return ChainBreak(
                event.position, event.stream, event.version,
                "prev_hash does not match the hash of the event before it",
            )
        expected_version = versions.get(event.stream, 0) + 1
        if event.version != expected_version:
            return ChainBreak(
                event.position, event.stream, event.version,
                f"version {event.version} where {expected_version} was expected",
            )
        versions[event.stream] = event.version
        recomputed = event_hash(
            id=event.id, stream=event.stream, version=event.version, type=event.type,
            time=event.time, actor=event.actor, reason=event.reason,
            payload=event.payload, prev_hash=event.prev_hash,
        )
        if recomputed != event.hash:
            return ChainBreak(
                event.position, event.stream, event.version,
                "contents do not match the stored hash (edited after it was written)",
            )
        previous = event.hash
    return None
