"""What both backends check when the signal history goes in and comes out.

The leader writes a slice per service every tick and a new leader rebuilds its
windows from them, so a slice that could not be read back, or reads back
different, would silently skew every window after a failover. Both backends
refuse the same inputs with the same messages, and decode rows with the same
checks, here.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from console.errors import CorruptRow
from console.model.history import HistorySlice
from console.store._common import check_service, decode_object, kind, time_problem, to_json

HISTORY_COLUMNS = "service, resolution, start, samples, errors, sketch, data"
"""The history columns in the order :func:`history_from_row` reads them."""

MAX_COUNT = 2**63 - 1
"""Most samples or errors one slice can count (both backends store a signed 64-bit integer)."""

MAX_RESOLUTION = 2**31 - 1
"""Longest slice in seconds (PostgreSQL stores the resolution as a 32-bit integer)."""

HistoryRow = tuple[str, int, float, int, int, bytes | None, str]
"""A slice as the backends write it: the columns of :data:`HISTORY_COLUMNS`."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_resolution(resolution: int) -> int:
    """Return ``resolution`` if it can be a slice length in seconds; raise ValueError otherwise."""
    if not _is_int(resolution) or not 1 <= resolution <= MAX_RESOLUTION:
        raise ValueError(
            f"resolution must be a whole number of seconds from 1 to {MAX_RESOLUTION}, "
            f"not {resolution!r}"
        )
    return resolution


def check_number(value: float, what: str) -> float:
    """``value`` as a float if it is a finite number; ValueError naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return float(value)


def _check_count(value: int, what: str) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{what} must be a whole number >= 0, not {value!r}")
    return value


def history_rows(slices: Sequence[HistorySlice]) -> list[HistoryRow]:
    """The rows to upsert for ``slices``, refusing the whole batch if one slice is bad.

    A batch may name one (service, resolution, start) twice; the later slice
    wins, as it would have had they been written one after the other (and
    PostgreSQL refuses one upsert that touches a row twice).

    Raises:
        ValueError: naming the slice and the field that cannot be stored.
    """
    if not isinstance(slices, Sequence):
        raise ValueError(f"slices must be a sequence of HistorySlice, not {type(slices).__name__}")
    rows: dict[tuple[str, int, float], HistoryRow] = {}
    for item in slices:
        if not isinstance(item, HistorySlice):
            raise ValueError(f"a history slice must be a HistorySlice, not {type(item).__name__}")
        service = check_service(item.service)
        where = f"history slice of {service}"
        resolution = check_resolution(item.resolution)
        problem = time_problem(item.start)
        if problem is not None:
            raise ValueError(f"start {item.start!r} of {where} {problem}")
        start = float(item.start)
        where = f"{where} at {start}"
        samples = _check_count(item.samples, f"samples of {where}")
        errors = _check_count(item.errors, f"errors of {where}")
        if errors > samples:
            raise ValueError(f"{where} counts {errors} errors in only {samples} samples")
        if item.sketch is not None and not isinstance(item.sketch, bytes):
            raise ValueError(f"sketch of {where} must be bytes or None, not {type(item.sketch).__name__}")
        data = to_json(item.data, f"data of {where}")
        rows[(service, resolution, start)] = (
            service, resolution, start, samples, errors, item.sketch, data
        )
    return list(rows.values())


def check_services(services: Collection[str] | None) -> list[str] | None:
    """The service names to read, checked; None means every service.

    Raises:
        ValueError: one string instead of a collection of them (it would read
            as its letters), or a name that no service can have.
    """
    if services is None:
        return None
    if isinstance(services, str | bytes) or not isinstance(services, Iterable):
        raise ValueError(
            f"services must be a collection of service names, not {type(services).__name__}"
        )
    return sorted({check_service(name) for name in services})


def check_window(since: float, until: float | None) -> tuple[float, float | None]:
    """``since`` and ``until`` as floats, each a finite number (``until`` may be None)."""
    first = check_number(since, "since")
    return first, None if until is None else check_number(until, "until")


def check_retention(
    now: float, retention: Mapping[int, float], sketch_retention: float
) -> tuple[list[tuple[int, float]], float]:
    """The (resolution, cutoff) pairs and the sketch cutoff of a prune.

    Rows of a resolution start before its cutoff are deleted; sketches of rows
    starting before the sketch cutoff are dropped.

    Raises:
        ValueError: a time that is not a finite number, a retention that is
            negative, or a key that is not a resolution.
    """
    at = check_number(now, "now")
    if not isinstance(retention, Mapping):
        raise ValueError(f"retention must be a mapping of resolution to seconds, not {retention!r}")
    cutoffs = []
    for resolution, keep in retention.items():
        check_resolution(resolution)
        seconds = check_number(keep, f"retention of resolution {resolution}")
        if seconds < 0:
            raise ValueError(f"retention of resolution {resolution} must be >= 0, not {keep!r}")
        cutoffs.append((resolution, at - seconds))
    sketch_seconds = check_number(sketch_retention, "sketch_retention")
    if sketch_seconds < 0:
        raise ValueError(f"sketch_retention must be >= 0, not {sketch_retention!r}")
    return cutoffs, at - sketch_seconds


def history_from_row(row: Sequence[Any]) -> HistorySlice:
    """The slice in a row of :data:`HISTORY_COLUMNS`, checked field by field.

    SQLite keeps whatever a hand edit puts in a column, and PostgreSQL's
    columns still take a negative count or an infinite start, so a row is
    checked before it becomes a slice that a new leader would trust.

    Raises:
        CorruptRow: naming the service, the slice's start and the field.
    """
    service, resolution, start = row[0], row[1], row[2]
    if not isinstance(service, str):
        raise CorruptRow(f"a history row has a service name that is not text ({kind(service)})")
    name = repr(service) if len(service) <= 80 else repr(service[:80]) + "…"
    if not _is_int(resolution):
        raise CorruptRow(
            f"resolution of a history row of service {name} is not an integer "
            f"(found {kind(resolution)})"
        )
    problem = time_problem(start)
    if problem is not None:
        raise CorruptRow(f"start of a {resolution} s history row of service {name} {problem}")
    where = f"of the {resolution} s history row of service {name} at start {float(start)}"
    counts = []
    for field, value in (("samples", row[3]), ("errors", row[4])):
        if not _is_int(value):
            raise CorruptRow(f"{field} {where} is not an integer (found {kind(value)})")
        if value < 0:
            raise CorruptRow(f"{field} {where} is negative ({value})")
        counts.append(value)
    samples, errors = counts
    if errors > samples:
        raise CorruptRow(f"errors {where} ({errors}) exceed its samples ({samples})")
    sketch = row[5]
    if sketch is not None and not isinstance(sketch, bytes):
        raise CorruptRow(f"sketch {where} is not binary data (found {kind(sketch)})")
    data = decode_object(row[6], f"data {where}")
    return HistorySlice(service, resolution, float(start), samples, errors, sketch, data)
