"""The hash chain: an intact log verifies; any edit, gap, reorder or bad link is named."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.errors import CorruptRow
from console.model.events import GENESIS_HASH, Event, canonical_json, event_hash, verify_chain
from console.store._common import describe_row, event_from_row, live_from_row

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=4,
)
PAYLOADS = st.dictionaries(st.text(max_size=6), JSON, max_size=4)
STREAMS = st.sampled_from(["flag/a", "flag/b", "rollout/checkout", "incident/42"])


def chain(specs: list[tuple[str, dict[str, Any]]]) -> list[Event]:
    """A correctly chained log from (stream, payload) pairs."""
    events: list[Event] = []
    previous = GENESIS_HASH
    versions: dict[str, int] = {}
    for position, (stream, payload) in enumerate(specs, start=1):
        version = versions.get(stream, 0) + 1
        versions[stream] = version
        fields: dict[str, Any] = {
            "id": f"id-{position}", "stream": stream, "version": version, "type": "thing.happened",
            "time": 1_700_000_000.0 + position / 3, "actor": "alice", "reason": "", "payload": payload,
            "prev_hash": previous,
        }
        digest = event_hash(**fields)
        events.append(Event(position=position, hash=digest, **fields))
        previous = digest
    return events


def rehash(event: Event) -> Event:
    """``event`` with its hash recomputed, as a forger would."""
    fields = {k: v for k, v in dataclasses.asdict(event).items() if k not in ("position", "hash")}
    return dataclasses.replace(event, hash=event_hash(**fields))


LOGS = st.lists(st.tuples(STREAMS, PAYLOADS), min_size=2, max_size=8).map(chain)

QUICK = settings(max_examples=40)
"""Enough to hit every position kind (first, middle, last) without slowing the suite."""


@QUICK
@given(LOGS)
def test_an_intact_chain_verifies(log: list[Event]) -> None:
    assert verify_chain(log) is None
    assert verify_chain([]) is None


@QUICK
@given(LOGS, st.data())
def test_an_edited_payload_is_named(log: list[Event], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(log) - 1))
    victim = log[index]
    edited = {**victim.payload, "tampered": data.draw(JSON)}
    log[index] = dataclasses.replace(victim, payload=edited)
    broken = verify_chain(log)
    assert broken is not None
    assert (broken.position, broken.stream) == (victim.position, victim.stream)
    assert "edited" in broken.problem


@QUICK
@given(LOGS, st.data())
def test_an_edit_with_a_forged_hash_breaks_the_next_link(log: list[Event], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(log) - 2))
    log[index] = rehash(dataclasses.replace(log[index], actor="mallory"))
    broken = verify_chain(log)
    assert broken is not None
    assert broken.position == index + 2
    assert "prev_hash" in broken.problem


@QUICK
@given(LOGS, st.data())
def test_a_missing_position_is_named(log: list[Event], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(log) - 2))
    del log[index]
    broken = verify_chain(log)
    assert broken is not None
    assert broken.position == index + 2
    assert f"position {index + 1} is missing" in broken.problem


@QUICK
@given(LOGS, st.data())
def test_reordering_is_detected(log: list[Event], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(log) - 2))
    log[index], log[index + 1] = log[index + 1], log[index]
    assert verify_chain(log) is not None
    # Renumbering the positions to hide the swap still breaks the links.
    renumbered = [dataclasses.replace(e, position=n) for n, e in enumerate(log, start=1)]
    broken = verify_chain(renumbered)
    assert broken is not None
    assert broken.position == index + 1


@QUICK
@given(LOGS, st.data())
def test_a_wrong_prev_hash_is_named(log: list[Event], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(log) - 1))
    wrong = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    if wrong == log[index].prev_hash:
        wrong = "f" * 64 if wrong != "f" * 64 else "e" * 64
    log[index] = rehash(dataclasses.replace(log[index], prev_hash=wrong))
    broken = verify_chain(log)
    assert broken is not None
    assert broken.position == index + 1
    assert "prev_hash" in broken.problem


def test_a_version_gap_in_one_stream_is_named() -> None:
    log = chain([("flag/a", {}), ("flag/a", {}), ("flag/a", {})])
    log[2] = rehash(dataclasses.replace(log[2], version=4))
    broken = verify_chain(log)
    assert broken is not None
    assert (broken.position, broken.version) == (3, 4)
    assert "version 4 where 3 was expected" in broken.problem


def test_a_log_that_does_not_start_at_genesis_is_caught() -> None:
    log = chain([("flag/a", {}), ("flag/a", {})])
    assert verify_chain(log[1:]) is not None


@QUICK
@given(PAYLOADS)
def test_hash_ignores_key_order_but_not_content(payload: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "id": "x", "stream": "flag/a", "version": 1, "type": "t", "time": 1.5, "actor": "a",
        "reason": "r", "prev_hash": GENESIS_HASH,
    }
    reordered = dict(reversed(list(payload.items())))
    assert event_hash(payload=payload, **fields) == event_hash(payload=reordered, **fields)
    assert canonical_json(payload) == canonical_json(reordered)
    digest = event_hash(payload=payload, **fields)
    for name, other in [("actor", "b"), ("reason", "s"), ("time", 1.25), ("version", 2)]:
        assert event_hash(payload=payload, **{**fields, name: other}) != digest
    assert event_hash(payload={**payload, "extra!": 1}, **fields) != digest


# -- reading stored rows back (console.store._common, pure) ---------------------------


def as_row(event: Event, payload_text: str) -> list[Any]:
    """``event`` as a stored row (the columns in COLUMNS order)."""
    return [event.position, event.id, event.stream, event.version, event.type, event.time,
            event.actor, event.reason, payload_text, event.prev_hash, event.hash]


@QUICK
@given(LOGS)
def test_a_stored_row_reads_back_as_the_same_event(log: list[Event]) -> None:
    for event in log:
        assert event_from_row(as_row(event, canonical_json(dict(event.payload)))) == event


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (0, "2", "an event row has a position that is not an integer (a string)"),
        (0, True, "an event row has a position that is not an integer (a boolean)"),
        (3, 1.0, "version at position 1 is not an integer (found a number)"),
        (5, True, "time at position 1 is not a number (found a boolean)"),
        (5, float("nan"), "time at position 1 is not a time between the years 1 and 9999"),
        (5, -1e12, "time at position 1 is not a time between the years 1 and 9999"),
        (8, "9" * 5000, "payload at position 1 is not valid JSON"),
        (8, '"text"', "payload at position 1 is not a JSON object (found a string)"),
        (8, "Infinity", "payload at position 1 is not valid JSON (Infinity is not a JSON number)"),
        (9, None, "prev_hash at position 1 is not text (found null)"),
    ],
)
def test_a_damaged_row_is_named_by_position_and_field(column: int, value: Any, message: str) -> None:
    row = as_row(chain([("flag/a", {})])[0], "{}")
    row[column] = value
    with pytest.raises(CorruptRow) as caught:
        event_from_row(row)
    assert str(caught.value).startswith(message)
    assert describe_row(row) == f"an unreadable event ({caught.value})"


def test_a_damaged_live_row_is_named_by_service() -> None:
    assert live_from_row(["checkout", '{"p95": 1}', 5, "w"]).updated_at == 5.0
    long_name = "s" * 500
    with pytest.raises(CorruptRow) as caught:
        live_from_row([long_name, "[]", 5.0, "w"])
    assert str(caught.value) == f"live data of service {'s' * 80!r}… is not a JSON object (found an array)"
    with pytest.raises(CorruptRow, match="a live row has a service name that is not text"):
        live_from_row([b"checkout", "{}", 5.0, "w"])
