"""One contract, two backends: every EventStore behaves the same on SQLite and PostgreSQL.

The PostgreSQL case runs on a real throwaway server (tests/fixtures/postgres.py);
it fails — never skips — when the server binaries are missing.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from console.errors import (
    ConcurrencyError,
    CorruptRow,
    NotAConnDatabase,
    SchemaTooNew,
    StateDirError,
    StoreError,
)
from console.model.events import GENESIS_HASH, Actor, Event, NewEvent, verify_chain
from console.model.history import HistorySlice
from console.store import SCHEMA_VERSION, EventStore, open_store, sqlite_path
from tests.fixtures.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]
ALICE = Actor("alice", "10.0.0.7")
BOB = Actor("bob")


async def raw_execute(url: str, sql_sqlite: str, sql_postgres: str, *args: object) -> None:
    """Change the database behind the store's back, with the raw driver."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(sqlite_path(url))
        with conn:
            conn.execute(sql_sqlite, args)
        conn.close()
    else:
        pg = await asyncpg.connect(url)
        try:
            await pg.execute(sql_postgres, *args)
        finally:
            await pg.close()


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


# -- the contract ---------------------------------------------------------------


async def test_append_read_and_versions(store: EventStore) -> None:
    assert await store.stream_version("flag/checkout_v2") == 0
    assert await store.read_stream("flag/checkout_v2") == []
    v1 = await store.append(
        "flag/checkout_v2", 0,
        [NewEvent("flag.created", {"variants": {"on": True, "off": False}, "rate": 0.25},
                  reason="ticket 12")],
        actor=ALICE, at=1_700_000_000,
    )
    v2 = await store.append(
        "rollout/checkout", 0,
        [NewEvent("rollout.started", {"stage": 1}), NewEvent("stage.entered", {"n": [1, "é"]})],
        actor=BOB, at=1_700_000_001.5,
    )
    v3 = await store.append(
        "flag/checkout_v2", 1, [NewEvent("flag.toggled", {"on": False})], actor=BOB, at=1_700_000_002.25
    )
    assert (v1, v2, v3) == (1, 2, 2)
    assert await store.stream_version("rollout/checkout") == 2
    assert await store.stream_version("flag/checkout_v2") == 2

    flag = await store.read_stream("flag/checkout_v2")
    assert [(e.version, e.type, e.position) for e in flag] == [(1, "flag.created", 1), (2, "flag.toggled", 4)]
    first = flag[0]
    assert first.actor == "alice@10.0.0.7"
    assert first.reason == "ticket 12"
    assert first.time == 1_700_000_000.0
    assert first.payload == {"variants": {"on": True, "off": False}, "rate": 0.25}
    assert first.prev_hash == GENESIS_HASH
    assert len({e.id for e in await store.read_all()}) == 4

    everything = await store.read_all()
    assert [e.position for e in everything] == [1, 2, 3, 4]
    assert [e.prev_hash for e in everything[1:]] == [e.hash for e in everything[:-1]]
    assert verify_chain(everything) is None
    assert [e.position for e in await store.read_all(after=1, limit=2)] == [2, 3]
    assert await store.read_all(after=4) == []


async def test_stale_version_names_the_winner_and_writes_nothing(store: EventStore) -> None:
    await store.append("rollout/checkout", 0, [NewEvent("rollout.started")], actor=BOB, at=1.0)
    await store.append(
        "rollout/checkout", 1, [NewEvent("stage.advanced", reason="gates passed")], actor=ALICE, at=2.0
    )
    with pytest.raises(ConcurrencyError) as caught:
        await store.append("rollout/checkout", 1, [NewEvent("rollout.held")], actor=BOB, at=3.0)
    error = caught.value
    assert (error.stream, error.expected, error.actual) == ("rollout/checkout", 1, 2)
    assert "alice@10.0.0.7" in error.winner
    assert "stage.advanced" in error.winner
    assert "gates passed" in str(error)
    assert await store.stream_version("rollout/checkout") == 2
    assert len(await store.read_all()) == 2

    with pytest.raises(ConcurrencyError) as ahead:
        await store.append("flag/empty", 3, [NewEvent("flag.set")], actor=BOB, at=3.0)
    assert ahead.value.actual == 0


async def test_bad_input_is_refused_before_writing(store: EventStore) -> None:
    with pytest.raises(ValueError, match="stream name"):
        await store.append("no-slash", 0, [NewEvent("x")], actor=BOB, at=1.0)
    with pytest.raises(ValueError, match="plain JSON"):
        await store.append("flag/x", 0, [NewEvent("x", {"v": math.nan})], actor=BOB, at=1.0)
    with pytest.raises(ValueError, match="plain JSON"):
        await store.append("flag/x", 0, [NewEvent("x", {"v": object()})], actor=BOB, at=1.0)
    with pytest.raises(ValueError, match="NUL"):
        await store.append("flag/x", 0, [NewEvent("x", reason="a\x00b")], actor=BOB, at=1.0)
    with pytest.raises(ValueError, match="nothing to append"):
        await store.append("flag/x", 0, [], actor=BOB, at=1.0)
    with pytest.raises(ValueError, match="plain JSON"):
        await store.write_live("checkout", {"p95": math.inf}, at=1.0, writer="w")
    assert await store.read_all() == []
    assert await store.read_live() == {}


async def test_payloads_read_back_exactly_so_the_chain_verifies(store: EventStore) -> None:
    payload = {"big": 1e100, "tiny": 5e-324, "int": 2**62, "nested": {"b": [None, True], "a": "\u2603\t"}}
    await store.append("flag/x", 0, [NewEvent("flag.set", payload)], actor=BOB, at=0.1 + 0.2)
    (event,) = await store.read_all()
    assert event.payload == payload
    assert event.time == 0.1 + 0.2
    assert verify_chain([event]) is None


async def test_subscribe_sees_events_appended_by_another_connection(
    store: EventStore, store_url: str
) -> None:
    await store.append("flag/a", 0, [NewEvent("flag.created")], actor=BOB, at=1.0)
    seen: list[Event] = []
    done = asyncio.Event()

    async def follow() -> None:
        async for event in store.subscribe(after=0):
            seen.append(event)
            if len(seen) == 3:
                done.set()
                return

    task = asyncio.create_task(follow())
    other = await open_store(store_url)
    try:
        await asyncio.sleep(0.1)
        await other.append("flag/a", 1, [NewEvent("flag.toggled")], actor=ALICE, at=2.0)
        await other.append("flag/b", 0, [NewEvent("flag.created")], actor=ALICE, at=3.0)
        await asyncio.wait_for(done.wait(), timeout=5)
    finally:
        await other.close()
        task.cancel()
    assert [(e.position, e.type) for e in seen] == [
        (1, "flag.created"), (2, "flag.toggled"), (3, "flag.created")
    ]
    late = store.subscribe(after=2)
    assert isinstance(late, AsyncGenerator)  # so callers can aclose() it
    assert (await anext(late)).position == 3
    await late.aclose()


async def test_live_rows_are_overwritten(store: EventStore) -> None:
    await store.write_live("checkout", {"p95_ms": 180, "state": "ok"}, at=10.0, writer="agent@h1")
    await store.write_live("search", {"p95_ms": 40}, at=10.5, writer="agent@h1")
    await store.write_live("checkout", {"p95_ms": 950, "state": "degraded"}, at=11.0, writer="agent@h2")
    live = await store.read_live()
    assert set(live) == {"checkout", "search"}
    assert live["checkout"].data == {"p95_ms": 950, "state": "degraded"}
    assert (live["checkout"].updated_at, live["checkout"].writer) == (11.0, "agent@h2")
    assert live["search"].data == {"p95_ms": 40}
    assert await store.read_all() == []  # live values are not events


async def test_reopening_keeps_everything(store_url: str) -> None:
    first = await open_store(store_url)
    await first.append("incident/42", 0, [NewEvent("incident.opened")], actor=ALICE, at=1.0)
    await first.close()
    await first.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await first.read_all()
    second = await open_store(store_url)
    try:
        assert [e.type for e in await second.read_stream("incident/42")] == ["incident.opened"]
        assert "secret" not in second.url
    finally:
        await second.close()


async def test_hand_edited_row_is_caught_at_its_position(store: EventStore, store_url: str) -> None:
    for n in range(4):
        await store.append(f"flag/f{n}", 0, [NewEvent("flag.set", {"n": n})], actor=BOB, at=float(n))
    assert verify_chain(await store.read_all()) is None
    await raw_execute(
        store_url,
        "UPDATE events SET payload = ? WHERE position = 3",
        "UPDATE conn_events SET payload = $1 WHERE position = 3",
        json.dumps({"n": 99}),
    )
    broken = verify_chain(await store.read_all())
    assert broken is not None
    assert (broken.position, broken.stream) == (3, "flag/f2")
    assert "edited" in broken.problem


async def test_read_tail_gives_the_newest_events_oldest_first(store: EventStore) -> None:
    assert await store.read_tail(50) == []
    for n in range(5):
        await store.append(f"flag/f{n % 2}", n // 2, [NewEvent("flag.set", {"n": n})], actor=BOB, at=float(n))
    everything = await store.read_all()
    assert [e.position for e in await store.read_tail(2)] == [4, 5]
    assert await store.read_tail(2) == everything[-2:]
    assert await store.read_tail(50) == everything
    assert await store.read_tail(0) == []
    for bad in (-1, True, 2.0):
        with pytest.raises(ValueError, match="limit"):
            await store.read_tail(bad)  # type: ignore[arg-type]


async def seeded(store: EventStore, count: int = 3) -> None:
    for n in range(count):
        await store.append(f"flag/f{n}", 0, [NewEvent("flag.set", {"n": n})], actor=BOB, at=float(n))


# (SQL for SQLite, SQL for PostgreSQL or None, what the error must say). SQLite keeps
# whatever a hand edit puts in a column; PostgreSQL's column types refuse most damage
# (invalid JSON, NaN in json, text in a number column), so those cases are SQLite-only.
DAMAGED_EVENTS = [
    ("UPDATE events SET payload = '[1,2]' WHERE position = 2",
     "UPDATE conn_events SET payload = '[1,2]' WHERE position = 2",
     "payload at position 2 is not a JSON object (found an array)"),
    ("UPDATE events SET payload = 'null' WHERE position = 2",
     "UPDATE conn_events SET payload = 'null' WHERE position = 2",
     "payload at position 2 is not a JSON object (found null)"),
    ("UPDATE events SET time = 1e300 WHERE position = 2",
     "UPDATE conn_events SET time = 'Infinity' WHERE position = 2",
     "time at position 2 is not a time between the years 1 and 9999"),
    ("UPDATE events SET payload = '{not json' WHERE position = 2", None,
     "payload at position 2 is not valid JSON"),
    ("UPDATE events SET payload = '{\"v\": NaN}' WHERE position = 2", None,
     "payload at position 2 is not valid JSON"),
    ("UPDATE events SET payload = x'00ff' WHERE position = 2", None,
     "payload at position 2 is not JSON text (found binary data)"),
    ("UPDATE events SET payload = '[' || replace(hex(zeroblob(100000)), '00', '[') || ']' "
     "WHERE position = 2", None, "payload at position 2 is JSON nested too deeply"),
    ("UPDATE events SET time = 'yesterday' WHERE position = 2", None,
     "time at position 2 is not a number (found a string)"),
    ("UPDATE events SET version = 'two' WHERE position = 2", None,
     "version at position 2 is not an integer (found a string)"),
    ("UPDATE events SET actor = x'07' WHERE position = 2", None,
     "actor at position 2 is not text (found binary data)"),
]


def damage_cases(cases: list[tuple[str, str | None, str]]) -> list[object]:
    """Each case on each backend whose column types can hold the damage.

    The backend goes to the ``store_url`` fixture (indirect), which ``store`` uses.
    """
    return [
        pytest.param(backend, sql_sqlite, sql_postgres, message, id=f"{backend}-{n}")
        for n, (sql_sqlite, sql_postgres, message) in enumerate(cases)
        for backend in (["sqlite", "postgres"] if sql_postgres else ["sqlite"])
    ]


@pytest.mark.parametrize(
    ("store_url", "sqlite_sql", "postgres_sql", "message"), damage_cases(DAMAGED_EVENTS),
    indirect=["store_url"],
)
async def test_a_damaged_event_row_is_a_store_error_naming_its_position(
    store: EventStore, store_url: str, sqlite_sql: str, postgres_sql: str | None, message: str
) -> None:
    await seeded(store)
    await raw_execute(store_url, sqlite_sql, postgres_sql or "")
    for read in (store.read_all(), store.read_stream("flag/f1"), store.read_tail(2)):
        with pytest.raises(CorruptRow, match=re.escape(message)):
            await read
    assert issubclass(CorruptRow, StoreError)
    # Rows around it still read, and an append to its stream still names a winner.
    assert [e.position for e in await store.read_all(after=2)] == [3]
    assert [e.position for e in await store.read_tail(1)] == [3]
    with pytest.raises(ConcurrencyError, match=re.escape(message)):
        await store.append("flag/f1", 0, [NewEvent("flag.set")], actor=BOB, at=5.0)


DAMAGED_LIVE = [
    ("UPDATE live SET data = '[1]' WHERE service = 'checkout'",
     "UPDATE conn_live SET data = '[1]' WHERE service = 'checkout'",
     "live data of service 'checkout' is not a JSON object (found an array)"),
    ("UPDATE live SET updated_at = 1e300 WHERE service = 'checkout'",
     "UPDATE conn_live SET updated_at = 'NaN' WHERE service = 'checkout'",
     "updated_at of service 'checkout' is not a time between the years 1 and 9999"),
    ("UPDATE live SET data = '{bad' WHERE service = 'checkout'", None,
     "live data of service 'checkout' is not valid JSON"),
    ("UPDATE live SET updated_at = 'now' WHERE service = 'checkout'", None,
     "updated_at of service 'checkout' is not a number (found a string)"),
    ("UPDATE live SET writer = x'01' WHERE service = 'checkout'", None,
     "writer of service 'checkout' is not text (found binary data)"),
]


@pytest.mark.parametrize(
    ("store_url", "sqlite_sql", "postgres_sql", "message"), damage_cases(DAMAGED_LIVE),
    indirect=["store_url"],
)
async def test_a_damaged_live_row_is_a_store_error_naming_its_service(
    store: EventStore, store_url: str, sqlite_sql: str, postgres_sql: str | None, message: str
) -> None:
    await store.write_live("checkout", {"p95_ms": 180}, at=10.0, writer="agent@h1")
    await store.write_live("search", {"p95_ms": 40}, at=10.0, writer="agent@h1")
    await raw_execute(store_url, sqlite_sql, postgres_sql or "")
    with pytest.raises(CorruptRow, match=re.escape(message)):
        await store.read_live()
    # Overwriting the row repairs it.
    await store.write_live("checkout", {"p95_ms": 190}, at=11.0, writer="agent@h1")
    assert (await store.read_live())["checkout"].data == {"p95_ms": 190}


async def test_what_could_not_be_read_back_is_refused_when_written(store: EventStore) -> None:
    for at in (math.inf, math.nan, 1e300, "5"):
        with pytest.raises(ValueError, match="time"):
            await store.append("flag/x", 0, [NewEvent("flag.set")], actor=BOB, at=at)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="time"):
            await store.write_live("checkout", {}, at=at, writer="w")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="writer"):
        await store.write_live("checkout", {}, at=1.0, writer=7)  # type: ignore[arg-type]
    assert await store.read_all() == []
    assert await store.read_live() == {}


RACER = """
import asyncio, sys, time
from console.errors import ConcurrencyError
from console.model.events import Actor, NewEvent
from console.store import open_store

async def main(url, me):
    store = await open_store(url)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    started = time.perf_counter()
    try:
        await store.append("rollout/checkout", 1, [NewEvent("stage.advanced", {"by": me})],
                           actor=Actor(me), at=time.time())
        outcome = "won"
    except ConcurrencyError as e:
        outcome = "lost " + e.winner
    print(f"{time.perf_counter() - started:.4f} {outcome}", flush=True)
    await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.slow
async def test_twenty_processes_race_and_exactly_one_wins(store: EventStore, store_url: str) -> None:
    await store.append("rollout/checkout", 0, [NewEvent("rollout.started")], actor=BOB, at=1.0)
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", RACER, store_url, f"op{n}",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=child_env(),
        )
        for n in range(20)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None
            assert await asyncio.wait_for(racer.stdout.readline(), 30) == b"ready\n"
        started = time.perf_counter()
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write(b"go\n")
        await asyncio.gather(*(racer.stdin.drain() for racer in racers if racer.stdin))
        lines = [
            (await asyncio.wait_for(racer.stdout.readline(), 30)).decode().strip()
            for racer in racers if racer.stdout
        ]
        elapsed = time.perf_counter() - started
        assert all([await asyncio.wait_for(r.wait(), 10) == 0 for r in racers])
    finally:
        for racer in racers:
            if racer.returncode is None:
                racer.kill()
                await racer.wait()
    outcomes = [line.split(" ", 1)[1] for line in lines]
    winners = [n for n, outcome in enumerate(outcomes) if outcome == "won"]
    assert len(winners) == 1, lines
    winner = f"op{winners[0]}"
    losers = [outcome for outcome in outcomes if outcome != "won"]
    assert len(losers) == 19
    assert all(f"lost {winner} stage.advanced on rollout/checkout v2" in o for o in losers), losers
    assert await store.stream_version("rollout/checkout") == 2
    assert verify_chain(await store.read_all()) is None
    slowest = max(float(line.split(" ", 1)[0]) for line in lines)
    print(f"\n[{store.url.split(':')[0]}] 20-process race: all answered {elapsed * 1000:.0f} ms "
          f"after go; slowest append {slowest * 1000:.0f} ms")


async def test_postgres_url_hides_the_password(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.dsn().replace("conn@", "conn:s3cret@") + "?password=s3cret"
    opened = await open_store(dsn)
    try:
        assert "s3cret" not in opened.url
        assert opened.url.startswith("postgresql://conn@127.0.0.1:")
    finally:
        await opened.close()


async def next_event(events: AsyncIterator[Event], within: float) -> Event:
    return await asyncio.wait_for(anext(events), within)


async def test_postgres_subscribers_wake_on_notify_and_survive_losing_it(postgres_dsn: str) -> None:
    from console.store.postgres import PostgresEventStore

    # A 30 s poll: an event seen within 2 s can only have come through NOTIFY.
    notified = await PostgresEventStore.open(postgres_dsn, poll_interval=30)
    polling = await PostgresEventStore.open(postgres_dsn, poll_interval=0.2)
    writer = await open_store(postgres_dsn)
    fast, slow = notified.subscribe(), polling.subscribe()
    try:
        first = asyncio.ensure_future(next_event(fast, 5))
        await asyncio.sleep(0.3)  # let it read the empty log and start listening
        await writer.append("flag/a", 0, [NewEvent("flag.created")], actor=BOB, at=1.0)
        assert (await asyncio.wait_for(first, 2)).type == "flag.created"

        assert (await next_event(slow, 5)).position == 1
        admin = await asyncpg.connect(postgres_dsn)
        try:  # cut every LISTEN session: subscribers must fall back to polling
            cut = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
        finally:
            await admin.close()
        assert len(cut) == 2  # one listener per subscribing store
        await writer.append("flag/a", 1, [NewEvent("flag.toggled")], actor=BOB, at=2.0)
        assert (await next_event(slow, 5)).type == "flag.toggled"
    finally:
        for follower in (fast, slow):
            assert isinstance(follower, AsyncGenerator)
            await follower.aclose()
        for opened in (notified, polling, writer):
            await opened.close()


async def test_postgres_orders_history_by_code_point_whatever_the_locale(
    postgres_server: PostgresServer,
) -> None:
    # A database whose default collation is ICU's en-US sorts "école" before "Zeta";
    # the history must still come back in the order SQLite gives.
    name = f"t_icu_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        )
        assert [r[0] for r in await admin.fetch(
            "SELECT x FROM unnest(ARRAY['Zeta', 'école', 'alpha']) AS x "
            "ORDER BY x COLLATE \"en-US-x-icu\""
        )] == ["alpha", "école", "Zeta"]
    finally:
        await admin.close()
    store = await open_store(postgres_server.dsn(name))
    try:
        await store.write_history([HistorySlice(n, 10, T0) for n in ("école", "alpha", "Zeta")])
        assert [s.service for s in await store.read_history(since=0)] == ["Zeta", "alpha", "école"]
    finally:
        await store.close()


async def test_postgres_schema_too_new_is_refused(postgres_dsn: str) -> None:
    opened = await open_store(postgres_dsn)
    await opened.close()
    await raw_execute(postgres_dsn, "", "UPDATE conn_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaTooNew, match="99"):
        await open_store(postgres_dsn)


async def test_unknown_scheme_and_unreachable_server_are_store_errors() -> None:
    with pytest.raises(StoreError, match=r"sqlite:///.*postgresql://"):
        await open_store("mysql://db/conn")
    with pytest.raises(StoreError, match="sqlite:///"):
        await open_store("sqlite://relative/conn.db")
    with pytest.raises(StoreError, match=r"127\.0\.0\.1") as unreachable:
        await open_store("postgresql://conn:s3cret@127.0.0.1:1/conn")
    with pytest.raises(StoreError, match="not a usable PostgreSQL URL") as broken:
        await open_store("postgresql://conn:s3cret@[::1:5/conn")
    assert "s3cret" not in str(unreachable.value) + str(broken.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://conn:s3cret@127.0.0.1:99999/conn", "port 99999 is out of range"),
        ("postgresql://conn@127.0.0.1:0/conn", "port 0 is out of range"),
        ("postgresql://conn@127.0.0.1:-1/conn", "port '-1' is not a number"),
        ("postgresql://conn@127.0.0.1:http/conn", "port 'http' is not a number"),
        ("postgresql://conn@127.0.0.1:5432,127.0.0.2:70000/conn", "port 70000 is out of range"),
        ("postgresql://conn@[::1]:99999/conn", "port 99999 is out of range"),
        ("postgresql://conn@127.0.0.1/conn?port=99999", "port 99999 is out of range"),
        ("postgresql://conn@127.0.0.1/conn?sslmode=sometimes", "sslmode"),
    ],
)
async def test_a_postgres_url_asyncpg_cannot_use_is_a_store_error(url: str, problem: str) -> None:
    with pytest.raises(StoreError, match="is not a usable PostgreSQL URL: ") as caught:
        await open_store(url)
    assert problem in str(caught.value)
    assert "s3cret" not in str(caught.value)


async def test_a_password_with_colons_and_commas_is_not_taken_for_a_port(
    postgres_server: PostgresServer,
) -> None:
    # The fixture's server has no password: a wrong one is simply not checked.
    dsn = postgres_server.dsn().replace("conn@", "conn:a:1,b:99999@")
    opened = await open_store(dsn)
    await opened.close()


# -- signal history ------------------------------------------------------------------

T0 = 1_767_225_600.0
"""2026-01-01T00:00:00Z, a multiple of every resolution."""


async def test_history_round_trips_ordered_by_service_then_start(store: EventStore) -> None:
    slices = [
        HistorySlice("checkout", 10, T0 + 10, 6, 1, b"\x00\x01\xff",
                     {"p95": 181.5, "health": "ok",
                      "signals": {"error_rate": {"value": 16.7, "state": "warning", "timer": None}}}),
        HistorySlice("checkout", 10, T0, 6, 0, None, {}),
        HistorySlice("Zeta", 10, T0, 0, 0, b"", {"note": "é ☃\t"}),
        HistorySlice("alpha", 10, T0 + 20, 3, 3, b"\x00", {"big": 1e100, "tiny": 5e-324}),
        HistorySlice("alpha", 60, T0, 60, 2, b"rollup", {"p99": 400.0}),
        HistorySlice("école", 10, T0 + 0.5, 2**62, 0),
    ]
    await store.write_history(slices)
    fine = await store.read_history(since=0)
    # Code point order on both backends: upper case, then lower case, then accents.
    assert fine == sorted(
        (s for s in slices if s.resolution == 10), key=lambda s: (s.service, s.start)
    )
    assert [s.service for s in fine] == ["Zeta", "alpha", "checkout", "checkout", "école"]
    assert await store.read_history(since=0, resolution=60) == [slices[4]]
    assert await store.read_all() == []  # history is not events


async def test_history_reads_a_window_of_some_services(store: EventStore) -> None:
    await store.write_history(
        [HistorySlice(name, 10, T0 + 10 * n, 5, n % 2) for name in ("c", "b", "a") for n in range(6)]
    )
    window = await store.read_history(since=T0 + 10, until=T0 + 40, services=["c", "a"])
    assert [(s.service, s.start - T0) for s in window] == [
        ("a", 10), ("a", 20), ("a", 30), ("c", 10), ("c", 20), ("c", 30)
    ]
    assert [s.service for s in await store.read_history(since=T0 + 50)] == ["a", "b", "c"]
    assert len(await store.read_history(since=T0, services={"b"})) == 6
    assert len(await store.read_history(since=-1e9, until=T0 + 10)) == 3
    assert await store.read_history(since=T0, services=[]) == []
    assert await store.read_history(since=T0, services=("nobody",)) == []
    assert await store.read_history(since=T0, resolution=60) == []
    assert await store.read_history(since=T0 + 60) == []


async def test_history_upserts_by_service_resolution_and_start(store: EventStore) -> None:
    await store.write_history([HistorySlice("checkout", 10, T0, 5, 1, b"old", {"v": 1})])
    await store.write_history([
        HistorySlice("checkout", 10, T0, 6, 2, None, {"v": 2}),
        HistorySlice("checkout", 60, T0, 60, 0, b"rollup", {"v": 3}),  # another resolution: another row
        HistorySlice("checkout", 10, T0 + 10, 1, 0, None, {"v": 4}),
        HistorySlice("checkout", 10, T0 + 10, 2, 1, b"later", {"v": 5}),  # the later one in a batch wins
    ])
    await store.write_history([])  # nothing to write: no transaction, no error
    assert await store.read_history(since=0) == [
        HistorySlice("checkout", 10, T0, 6, 2, None, {"v": 2}),
        HistorySlice("checkout", 10, T0 + 10, 2, 1, b"later", {"v": 5}),
    ]
    assert await store.read_history(since=0, resolution=60) == [
        HistorySlice("checkout", 60, T0, 60, 0, b"rollup", {"v": 3})
    ]


async def test_history_takes_a_whole_fleet_per_call(store: EventStore) -> None:
    tick = [HistorySlice(f"svc-{n:03}", 10, T0, n, 0, bytes([n % 256]) * 64) for n in range(500)]
    await store.write_history(tick)
    await store.write_history([replace(s, start=T0 + 10) for s in tick])
    stored = await store.read_history(since=T0)
    assert len(stored) == 1000
    assert stored[:2] == [tick[0], replace(tick[0], start=T0 + 10)]


async def test_prune_history_applies_each_retention_and_drops_old_sketches(store: EventStore) -> None:
    now = T0 + 86400 * 3

    def at(resolution: int, age: float) -> HistorySlice:
        return HistorySlice("checkout", resolution, now - age, 1, 0, b"sketch", {"age": age})

    await store.write_history(
        [at(10, age) for age in (7200, 3600, 3599, 900, 899)]
        + [at(60, age) for age in (86400 * 2, 7200)]
        + [at(300, 10**6)]  # a resolution without a retention is kept
    )
    deleted = await store.prune_history(
        now=now, retention={10: 3600, 60: 86400}, sketch_retention=900
    )
    assert deleted == 2  # 10 s aged 7200 and 60 s aged two days: a row exactly at the cutoff stays
    kept = {
        (s.resolution, s.data["age"]): s.sketch
        for resolution in (10, 60, 300)
        for s in await store.read_history(since=0, resolution=resolution)
    }
    assert kept == {
        (10, 3600): None, (10, 3599): None, (10, 900): b"sketch", (10, 899): b"sketch",
        (60, 7200): None, (300, 10**6): None,
    }
    assert await store.prune_history(now=now, retention={10: 3600}, sketch_retention=900) == 0


BAD_SLICES: list[tuple[object, str]] = [
    (HistorySlice("", 10, T0), "service name is empty"),
    (HistorySlice("x" * 201, 10, T0), "longer than 200"),
    (HistorySlice("a\x00b", 10, T0), "NUL"),
    (HistorySlice("checkout", 0, T0), "resolution must be a whole number of seconds"),
    (HistorySlice("checkout", True, T0), "resolution must be"),  # type: ignore[arg-type]
    (HistorySlice("checkout", 2.5, T0), "resolution must be"),  # type: ignore[arg-type]
    (HistorySlice("checkout", 2**31, T0), "resolution must be"),
    (HistorySlice("checkout", 10, math.nan), "start nan of history slice of checkout"),
    (HistorySlice("checkout", 10, math.inf), "start inf"),
    (HistorySlice("checkout", 10, "5"), "start '5'"),  # type: ignore[arg-type]
    (HistorySlice("checkout", 10, T0, -1, 0), "samples of history slice of checkout at"),
    (HistorySlice("checkout", 10, T0, 1.5, 0), "samples"),  # type: ignore[arg-type]
    (HistorySlice("checkout", 10, T0, True, 0), "samples"),  # type: ignore[arg-type]
    (HistorySlice("checkout", 10, T0, 2**63, 0), "samples"),
    (HistorySlice("checkout", 10, T0, 1, -1), "errors"),
    (HistorySlice("checkout", 10, T0, 1, 2), "counts 2 errors in only 1 samples"),
    (HistorySlice("checkout", 10, T0, sketch="abc"), "sketch"),  # type: ignore[arg-type]
    (HistorySlice("checkout", 10, T0, sketch=bytearray(b"x")), "sketch"),  # type: ignore[arg-type]
    (HistorySlice("checkout", 10, T0, data={"p95": math.nan}), "plain JSON"),
    (HistorySlice("checkout", 10, T0, data={"p95": object()}), "plain JSON"),
    (HistorySlice("checkout", 10, T0, data=[1]), "must be a mapping"),  # type: ignore[arg-type]
    (("checkout", 10, T0), "must be a HistorySlice"),
]


async def test_history_that_could_not_be_read_back_is_refused_and_nothing_written(
    store: EventStore,
) -> None:
    good = HistorySlice("search", 10, T0, 3, 0)
    for bad, message in BAD_SLICES:
        with pytest.raises(ValueError, match=re.escape(message)):
            await store.write_history([good, bad])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="sequence of HistorySlice"):
        await store.write_history(good)  # type: ignore[arg-type]
    assert await store.read_history(since=0) == []

    for reading, message in [
        ({"since": math.nan}, "since must be a finite number"),
        ({"since": "0"}, "since must be"),
        ({"since": 0, "until": math.inf}, "until must be"),
        ({"since": 0, "resolution": 0}, "resolution must be"),
        ({"since": 0, "services": "checkout"}, "a collection of service names, not str"),
        ({"since": 0, "services": [""]}, "service name is empty"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            await store.read_history(**reading)  # type: ignore[arg-type]

    await store.write_history([good])
    for pruning, message in [
        ({"now": math.nan, "retention": {}, "sketch_retention": 1}, "now must be"),
        ({"now": T0, "retention": {10: -1}, "sketch_retention": 1}, "retention of resolution 10 must be >= 0"),
        ({"now": T0, "retention": {10: math.nan}, "sketch_retention": 1}, "retention of resolution 10"),
        ({"now": T0, "retention": {0: 5}, "sketch_retention": 1}, "resolution must be"),
        ({"now": T0, "retention": [(10, 5)], "sketch_retention": 1}, "retention must be a mapping"),
        ({"now": T0, "retention": {}, "sketch_retention": -1}, "sketch_retention must be >= 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            await store.prune_history(**pruning)  # type: ignore[arg-type]
    assert await store.read_history(since=0) == [good]


AT = "of the 10 s history row of service 'checkout' at start 1767225600.0"
DAMAGED_HISTORY = [
    ("UPDATE history SET data = '[1]' WHERE service = 'checkout' AND start = 1767225600",
     "UPDATE conn_history SET data = '[1]' WHERE service = 'checkout' AND start = 1767225600",
     f"data {AT} is not a JSON object (found an array)"),
    ("UPDATE history SET samples = -1, errors = -2 WHERE service = 'checkout' AND start = 1767225600",
     "UPDATE conn_history SET samples = -1, errors = -2 WHERE service = 'checkout' AND start = 1767225600",
     f"samples {AT} is negative (-1)"),
    ("UPDATE history SET errors = 99 WHERE service = 'checkout' AND start = 1767225600",
     "UPDATE conn_history SET errors = 99 WHERE service = 'checkout' AND start = 1767225600",
     f"errors {AT} (99) exceed its samples (6)"),
    ("UPDATE history SET start = 1e300 WHERE service = 'checkout' AND start = 1767225600",
     "UPDATE conn_history SET start = 'Infinity' WHERE service = 'checkout' AND start = 1767225600",
     "start of a 10 s history row of service 'checkout' is not a time between the years 1 and 9999"),
    ("UPDATE history SET data = '{bad' WHERE service = 'checkout' AND start = 1767225600", None,
     f"data {AT} is not valid JSON"),
    ("UPDATE history SET sketch = 'text' WHERE service = 'checkout' AND start = 1767225600", None,
     f"sketch {AT} is not binary data (found a string)"),
    ("UPDATE history SET samples = 'many' WHERE service = 'checkout' AND start = 1767225600", None,
     f"samples {AT} is not an integer (found a string)"),
    ("UPDATE history SET start = 'noon' WHERE service = 'checkout' AND start = 1767225600", None,
     "start of a 10 s history row of service 'checkout' is not a number (found a string)"),
    ("UPDATE history SET service = x'00' WHERE service = 'checkout' AND start = 1767225600", None,
     "a history row has a service name that is not text (binary data)"),
]


@pytest.mark.parametrize(
    ("store_url", "sqlite_sql", "postgres_sql", "message"), damage_cases(DAMAGED_HISTORY),
    indirect=["store_url"],
)
async def test_a_damaged_history_row_is_a_store_error_naming_service_start_and_field(
    store: EventStore, store_url: str, sqlite_sql: str, postgres_sql: str | None, message: str
) -> None:
    await store.write_history([
        HistorySlice("checkout", 10, T0, 6, 1, b"sk", {"p95": 180}),
        HistorySlice("checkout", 10, T0 + 10, 6, 0, b"sk", {"p95": 190}),
        HistorySlice("search", 10, T0, 2, 0, None, {"p95": 40}),
    ])
    await raw_execute(store_url, sqlite_sql, postgres_sql or "")
    with pytest.raises(CorruptRow, match=re.escape(message)):
        await store.read_history(since=0)
    # The rows around it still read.
    assert [s.service for s in await store.read_history(since=0, services=["search"])] == ["search"]
    assert [s.start for s in await store.read_history(
        since=T0 + 10, until=T0 + 20, services=["checkout"]
    )] == [T0 + 10]
    if message.startswith(("data", "samples", "errors", "sketch")):  # the row's key is intact
        # Writing the slice again overwrites the damage, as the leader's next tick would.
        repaired = HistorySlice("checkout", 10, T0, 6, 1, b"sk", {"p95": 180})
        await store.write_history([repaired])
        assert (await store.read_history(since=0))[0] == repaired


# -- SQLite: opening files that are not ours ----------------------------------------


def snapshot(path: Path) -> bytes:
    return path.read_bytes()


async def test_sqlite_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = snapshot(path)
    with pytest.raises(NotAConnDatabase, match=re.escape(str(path))):
        await open_store(f"sqlite://{path}")
    assert snapshot(path) == before


@pytest.mark.parametrize(
    "setup",
    [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'x');",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('app', 'other');",
        "CREATE TABLE meta (a, b, c);",
        "PRAGMA user_version = 3;",
    ],
)
async def test_sqlite_refuses_someone_elses_database(tmp_path: Path, setup: str) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.executescript(setup)
    conn.close()
    before = snapshot(path)
    with pytest.raises(NotAConnDatabase, match=re.escape(str(path))):
        await open_store(f"sqlite://{path}")
    assert snapshot(path) == before


async def test_sqlite_refuses_a_newer_schema_untouched(tmp_path: Path) -> None:
    path = tmp_path / "conn.db"
    created = await open_store(f"sqlite://{path}")
    await created.append("flag/x", 0, [NewEvent("flag.set")], actor=BOB, at=1.0)
    await created.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    conn.close()
    before = snapshot(path)
    with pytest.raises(SchemaTooNew, match="schema version 7"):
        await open_store(f"sqlite://{path}")
    assert snapshot(path) == before


async def test_sqlite_state_dir_that_cannot_exist(tmp_path: Path) -> None:
    # Root ignores permission bits, so use a directory path that runs through a
    # regular file: mkdir fails with ENOTDIR for every user.
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file")
    target = blocker / "sub" / "conn.db"
    with pytest.raises(StateDirError, match=re.escape(str(blocker / "sub"))):
        await open_store(f"sqlite://{target}")
    assert blocker.read_text() == "I am a file"


async def test_sqlite_creates_missing_dirs_and_fills_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "conn.db"
    made = await open_store(f"sqlite://{path}")
    assert made.url == f"sqlite://{path}"
    await made.close()
    empty = tmp_path / "empty.db"
    empty.touch()
    filled = await open_store(f"sqlite:///{empty}")  # four slashes mean the same file
    await filled.append("flag/x", 0, [NewEvent("flag.set")], actor=BOB, at=1.0)
    await filled.close()
    conn = sqlite3.connect(empty)
    assert dict(conn.execute("SELECT key, value FROM meta")) == {
        "app": "conn", "schema_version": str(SCHEMA_VERSION)
    }
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


OPENER = """
import asyncio, sys
from console.store import open_store
async def main(url):
    store = await open_store(url)
    await store.close()
asyncio.run(main(sys.argv[1]))
"""


async def test_sqlite_processes_creating_one_new_file_at_once(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'new' / 'conn.db'}"
    openers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", OPENER, url, env=child_env(), stderr=asyncio.subprocess.PIPE
        )
        for _ in range(6)
    ]
    results = [await asyncio.wait_for(p.communicate(), 30) for p in openers]
    assert [p.returncode for p in openers] == [0] * 6, [err for _, err in results]
    reopened = await open_store(url)
    assert await reopened.read_all() == []
    await reopened.close()


async def test_sqlite_a_failed_commit_rolls_back_and_the_store_stays_usable(tmp_path: Path) -> None:
    from console.store.sqlite import SQLiteEventStore

    path = tmp_path / "conn.db"
    store = await SQLiteEventStore.open(path)
    other = await SQLiteEventStore.open(path, busy_timeout=2)
    try:
        await store.append("flag/a", 0, [NewEvent("flag.created")], actor=BOB, at=1.0)
        refused: list[str] = []

        def refuse_one_commit(action: int, what: str | None, *_: object) -> int:
            if action == sqlite3.SQLITE_TRANSACTION and what == "COMMIT" and not refused:
                refused.append(what)
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK

        # SQLite itself fails the COMMIT (as a full disk or an I/O error would), on
        # the store's own connection, set from the one thread allowed to touch it.
        await store._run(lambda conn: conn.set_authorizer(refuse_one_commit))
        with pytest.raises(StoreError, match="not authorized"):
            await store.append("flag/a", 1, [NewEvent("flag.toggled")], actor=BOB, at=2.0)
        assert refused == ["COMMIT"]

        # The failed append left nothing behind and released the write lock:
        # this connection and another process's both write again.
        assert await store.append("flag/a", 1, [NewEvent("flag.toggled")], actor=ALICE, at=3.0) == 2
        assert await other.append("flag/b", 0, [NewEvent("flag.created")], actor=BOB, at=4.0) == 1
        events = await other.read_all()
        assert [(e.position, e.stream, e.actor) for e in events] == [
            (1, "flag/a", "bob"), (2, "flag/a", "alice@10.0.0.7"), (3, "flag/b", "bob")
        ]
        assert verify_chain(events) is None
    finally:
        await store.close()
        await other.close()
