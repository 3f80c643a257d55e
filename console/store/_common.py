"""What both backends must do identically, so their logs hash the same way.

The chain only verifies if the bytes hashed at append time are the bytes read
back later, so payload normalisation, id and time handling live here once
instead of twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from console.errors import CorruptRow
from console.model.events import Event, NewEvent, canonical_json, check_stream_name, event_hash
from console.store.base import LiveRow

APP = "conn"
"""The ``app`` value in the meta table that marks a database as Conn's."""

READ_BATCH = 500
"""Most events a subscription fetches per query, so catching up stays bounded."""

MAX_NAME = 200
"""Longest service name, event type or actor the store accepts."""

MAX_REASON = 4000
"""Longest reason the store accepts; a reason is a sentence, not a log."""

COLUMNS = "position, id, stream, version, type, time, actor, reason, payload, prev_hash, hash"
"""The event columns in the order :func:`event_from_row` reads them."""

LIVE_COLUMNS = "service, data, updated_at, writer"
"""The live-table columns in the order :func:`live_from_row` reads them."""


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


def kind(value: object) -> str:
    """What a stored value is, for messages: a type name, never the (untrusted) value."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null",
            bytes: "binary data"}.get(type(value), type(value).__name__)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def time_problem(value: object) -> str | None:
    """Why ``value`` cannot be an event or live-row time, or None when it can.

    A time must turn into a date (years 1 to 9999): ``conn audit`` and every
    event description format it, so a time that cannot would crash them.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is not a number (found {kind(value)})"
    try:
        datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        return "is not a time between the years 1 and 9999"
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_object(text: object, what: str) -> dict[str, Any]:
    """The JSON object stored as ``text``.

    Raises:
        CorruptRow: ``text`` is not JSON text of an object (the store never
            writes anything else, so the row was edited or damaged).
    """
    if not isinstance(text, str):
        raise CorruptRow(f"{what} is not JSON text (found {kind(text)})")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as e:  # JSONDecodeError, NaN, an int too long to convert
        raise CorruptRow(f"{what} is not valid JSON ({e})") from e
    except RecursionError as e:
        raise CorruptRow(f"{what} is JSON nested too deeply to read") from e
    if not isinstance(data, dict):
        raise CorruptRow(f"{what} is not a JSON object (found {kind(data)})")
    return data


_EVENT_TEXT = ((1, "id"), (2, "stream"), (4, "type"), (6, "actor"), (7, "reason"),
               (9, "prev_hash"), (10, "hash"))


def event_from_row(row: Sequence[Any]) -> Event:
    """The event in a row of :data:`COLUMNS`, checked field by field.

    SQLite keeps whatever a hand edit puts in a column and PostgreSQL's
    ``json`` takes any JSON value, so a row is checked before it becomes an
    Event: a damaged row is a CorruptRow naming its position and what is
    wrong, never a TypeError deep in a caller.

    Raises:
        CorruptRow: a field has the wrong type or cannot be decoded.
    """
    position = row[0]
    if not _is_int(position):
        raise CorruptRow(f"an event row has a position that is not an integer ({kind(position)})")
    where = f"at position {position}"
    for index, name in _EVENT_TEXT:
        if not isinstance(row[index], str):
            raise CorruptRow(f"{name} {where} is not text (found {kind(row[index])})")
    if not _is_int(row[3]):
        raise CorruptRow(f"version {where} is not an integer (found {kind(row[3])})")
    problem = time_problem(row[5])
    if problem is not None:
        raise CorruptRow(f"time {where} {problem}")
    return Event(
        position=position, id=row[1], stream=row[2], version=row[3], type=row[4],
        time=float(row[5]), actor=row[6], reason=row[7],
        payload=decode_object(row[8], f"payload {where}"), prev_hash=row[9], hash=row[10],
    )


def describe_row(row: Sequence[Any]) -> str:
    """One line about the event in ``row`` for a ConcurrencyError, even when it is damaged."""
    try:
        return event_from_row(row).describe()
    except CorruptRow as e:
        return f"an unreadable event ({e})"


def live_from_row(row: Sequence[Any]) -> LiveRow:
    """The live row in a row of :data:`LIVE_COLUMNS`, checked like :func:`event_from_row`.

    Raises:
        CorruptRow: names the service and what is wrong.
    """
    service = row[0]
    if not isinstance(service, str):
        raise CorruptRow(f"a live row has a service name that is not text ({kind(service)})")
    name = repr(service) if len(service) <= 80 else repr(service[:80]) + "…"
    data = decode_object(row[1], f"live data of service {name}")
    problem = time_problem(row[2])
    if problem is not None:
        raise CorruptRow(f"updated_at of service {name} {problem}")
    if not isinstance(row[3], str):
        raise CorruptRow(f"writer of service {name} is not text (found {kind(row[3])})")
    return LiveRow(service, data, float(row[2]), row[3])


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


def check_live(
    service: str, data: Mapping[str, Any], at: float, writer: str
) -> tuple[str, float]:
    """The JSON text and time to store for a live row, refusing what could not be read back.

    Raises:
        ValueError: a bad service name, writer or time, or data that is not plain JSON.
    """
    check_service(service)
    _check_text(writer, "writer", MAX_REASON)
    problem = time_problem(at)
    if problem is not None:
        raise ValueError(f"live time {at!r} of {service} {problem}")
    return to_json(data, f"live data of {service}"), float(at)


def check_limit(limit: int) -> int:
    """Return ``limit`` if it can bound a read (an int >= 0); raise ValueError otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be an int, not {limit!r}")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    return limit


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
    problem = time_problem(at)
    if problem is not None:
        raise ValueError(f"event time {at!r} {problem}")
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
