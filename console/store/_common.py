"""What both backends must do identically, so their logs hash the same way.

The chain only verifies if the bytes hashed at append time are the bytes read
back later, so payload normalisation, id and time handling live here once
instead of twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from console.model.events import Event, NewEvent, canonical_json, check_stream_name, event_hash

SCHEMA_VERSION = 1
"""The schema this code writes; a store with a higher one is refused (SchemaTooNew)."""

APP = "conn"
"""The ``app`` value in the meta table that marks a database as Conn's."""

READ_BATCH = 500
"""Most events a subscription fetches per query, so catching up stays bounded."""

MAX_NAME = 200
"""Longest service name, event type or actor the store accepts."""

MAX_REASON = 4000
"""Longest reason the store accepts; a reason is a sentence, not a log."""


def to_json(data: Mapping[str, Any], what: str) -> str:
    """Canonical JSON of ``data``, refusing what JSON cannot round-trip exactly.

    NaN and infinities are refused because PostgreSQL's ``json`` rejects them
    and because a payload that reads back differently would break the chain.

    Raises:
        ValueError: ``data`` is not a JSON object of plain values.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a mapping, not {type(data).__name__}")
    try:
        json.dumps(data, allow_nan=False)
        text = canonical_json(dict(data))
        text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as e:
        raise ValueError(f"{what} is not plain JSON: {e}") from e
    return text


def _check_text(value: str, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL; refuse it in both backends alike.
        raise ValueError(f"{what} contains a NUL character")
    return value


def check_service(service: str) -> str:
    """Return ``service`` if it can name a live row; raise ValueError otherwise."""
    _check_text(service, "service name", MAX_NAME)
    if not service:
        raise ValueError("service name is empty")
    return service


def check_append(stream: str, expected_version: int, events: Sequence[NewEvent]) -> None:
    """Refuse an append that can never be right, before touching the store.

    Raises:
        ValueError: a bad stream name, a negative version or no events.
    """
    check_stream_name(stream)
    if isinstance(expected_version, bool) or not isinstance(expected_version, int):
        raise ValueError(f"expected_version must be an int, not {expected_version!r}")
    if expected_version < 0:
        raise ValueError(f"expected_version must be >= 0, not {expected_version}")
    if not events:
        raise ValueError(f"nothing to append to {stream}")


def build_events(
    *,
    stream: str,
    expected_version: int,
    first_position: int,
    prev_hash: str,
    events: Sequence[NewEvent],
    actor: str,
    at: float,
) -> list[tuple[Event, str]]:
    """Stamp new events with ids, versions, positions and chained hashes.

    Returns each stored event with its payload's canonical JSON text, which is
    what the backend writes. The payload in the event is that text parsed
    back, so what is hashed now is exactly what a reader will see.

    Raises:
        ValueError: a payload, type, reason or actor that cannot be stored.
    """
    _check_text(actor, "actor", MAX_NAME)
    time = float(at)  # an int time would hash as "5" and read back as "5.0"
    built: list[tuple[Event, str]] = []
    for offset, new in enumerate(events):
        _check_text(new.type, "event type", MAX_NAME)
        if not new.type:
            raise ValueError("event type is empty")
        _check_text(new.reason, "reason", MAX_REASON)
        text = to_json(new.payload, f"payload of {new.type}")
        payload = json.loads(text)
        event_id = str(uuid.uuid4())
        version = expected_version + offset + 1
        digest = event_hash(
            id=event_id, stream=stream, version=version, type=new.type, time=time,
            actor=actor, reason=new.reason, payload=payload, prev_hash=prev_hash,
        )
        built.append(
            (
                Event(
                    position=first_position + offset, id=event_id, stream=stream,
                    version=version, type=new.type, time=time, actor=actor,
                    reason=new.reason, payload=payload, prev_hash=prev_hash, hash=digest,
                ),
                text,
            )
        )
        prev_hash = digest
    return built


def no_winner(stream: str) -> str:
    """The ConcurrencyError text when the stream has no event to blame."""
    return f"{stream} has no events yet"


def redact_url(url: str) -> str:
    """``url`` without its password (in the authority or a ``password=`` parameter).

    Never raises: a URL too broken to parse is shown only by its scheme.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.partition(":")[0][:20] + "://(unparseable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{hostport}" if user else hostport
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
