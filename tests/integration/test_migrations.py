"""Schema migrations on real stores: a version-1 store full of decisions, upgraded in place.

Each test builds a store exactly as Conn's first schema made it (the frozen
version-1 DDL below, on a SQLite file and on a throwaway PostgreSQL database),
fills it with events across several streams and live rows, and then upgrades,
refuses or leaves it — through ``migrate_store`` and through ``conn db migrate``
run as a process. The PostgreSQL cases run on a real server; they are never skipped.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from console.errors import SchemaTooNew, SchemaTooOld, StoreError
from console.model.events import GENESIS_HASH, Actor, Event, NewEvent, verify_chain
from console.model.history import HistorySlice
from console.store import SCHEMA_VERSION, LiveRow, migrate_store, open_store, sqlite_path
from console.store._common import build_events
from console.store.migrations import (
    BASE_VERSION,
    MIGRATIONS,
    POSTGRES_V1,
    SQLITE_V1,
)

T0 = 1_767_225_600.0
ALICE = Actor("alice", "10.0.0.7")
BOB = Actor("bob")

# What the first Conn created, copied verbatim: stores in the field were made with it.
FROZEN_SQLITE_V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE events (
        position INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        stream TEXT NOT NULL,
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        time REAL NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        payload TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        UNIQUE (stream, version)
    )""",
    """CREATE TABLE live (
        service TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL,
        writer TEXT NOT NULL
    )""",
)
FROZEN_POSTGRES_V1 = (
    "CREATE TABLE conn_meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE conn_events (
        position bigint PRIMARY KEY,
        id text NOT NULL UNIQUE,
        stream text NOT NULL,
        version integer NOT NULL,
        type text NOT NULL,
        time double precision NOT NULL,
        actor text NOT NULL,
        reason text NOT NULL,
        payload json NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        UNIQUE (stream, version)
    )""",
    """CREATE TABLE conn_live (
        service text PRIMARY KEY,
        data json NOT NULL,
        updated_at double precision NOT NULL,
        writer text NOT NULL
    )""",
)

DECISIONS = [
    ("flag/calendar_refactor",
     [NewEvent("flag.created", {"variants": {"on": True, "off": False}}, "ticket 12")], ALICE, T0),
    ("rollout/checkout",
     [NewEvent("rollout.started", {"stage": 1}),
      NewEvent("stage.entered", {"n": [1, "é"], "big": 1e100, "tiny": 5e-324})], BOB, T0 + 1.5),
    ("flag/calendar_refactor",
     [NewEvent("flag.toggled", {"percent": 10}, "stage 2: 10%")], ALICE, T0 + 2.25),
    ("incident/1", [NewEvent("incident.opened", {"sev": 2})], BOB, T0 + 3),
    ("rollout/checkout", [NewEvent("stage.advanced", {"stage": 2}, "gates passed")], ALICE, T0 + 4),
]
LIVE = {
    "checkout": LiveRow("checkout", {"p95_ms": 180.5, "state": "ok"}, T0 + 5, "agent@h1"),
    "search": LiveRow("search", {"p95_ms": 40, "note": "☃"}, T0 + 5.5, "agent@h1"),
}


def v1_events() -> list[tuple[Event, str]]:
    """The DECISIONS as a version-1 Conn stored them: chained, each with its payload's JSON text."""
    built: list[tuple[Event, str]] = []
    versions: dict[str, int] = {}
    for stream, news, actor, at in DECISIONS:
        batch = build_events(
            stream=stream, expected_version=versions.get(stream, 0),
            first_position=len(built) + 1,
            prev_hash=built[-1][0].hash if built else GENESIS_HASH,
            events=news, actor=str(actor), at=at,
        )
        built += batch
        versions[stream] = batch[-1][0].version
    return built


def event_rows(built: list[tuple[Event, str]]) -> list[tuple[object, ...]]:
    return [(e.position, e.id, e.stream, e.version, e.type, e.time, e.actor, e.reason, text,
             e.prev_hash, e.hash) for e, text in built]


def live_rows() -> list[tuple[object, ...]]:
    return [(r.service, json.dumps(r.data), r.updated_at, r.writer) for r in LIVE.values()]


@dataclass(frozen=True)
class OldStore:
    """A version-1 store with data, and what it holds."""

    url: str
    events: list[Event]

    @property
    def backend(self) -> str:
        return "sqlite" if self.url.startswith("sqlite:") else "postgres"


def build_v1_sqlite(path: Path, built: list[tuple[Event, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in FROZEN_SQLITE_V1:
            conn.execute(statement)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                         [("app", "conn"), ("schema_version", "1")])
        conn.execute("PRAGMA user_version = 1")
        conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)", event_rows(built))
        conn.executemany("INSERT INTO live VALUES (?,?,?,?)", live_rows())
        conn.execute("COMMIT")
    finally:
        conn.close()


async def build_v1_postgres(dsn: str, built: list[tuple[Event, str]]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for statement in FROZEN_POSTGRES_V1:
                await conn.execute(statement)
            await conn.executemany("INSERT INTO conn_meta (key, value) VALUES ($1, $2)",
                                   [("app", "conn"), ("schema_version", "1")])
            await conn.executemany(
                "INSERT INTO conn_events VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
                event_rows(built),
            )
            await conn.executemany("INSERT INTO conn_live VALUES ($1,$2,$3,$4)", live_rows())
    finally:
        await conn.close()


@pytest.fixture
async def old(store_url: str) -> OldStore:
    """A version-1 store with events on three streams and two live rows, on each backend."""
    built = v1_events()
    if store_url.startswith("sqlite:"):
        build_v1_sqlite(Path(sqlite_path(store_url)), built)
    else:
        await build_v1_postgres(store_url, built)
    return OldStore(store_url, [event for event, _ in built])


async def raw(url: str, sqlite_sql: str, postgres_sql: str) -> list[tuple[object, ...]]:
    """Rows of a query run behind the store's back."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(sqlite_path(url))
        try:
            with conn:
                return [tuple(row) for row in conn.execute(sqlite_sql)]
        finally:
            conn.close()
    pg = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await pg.fetch(postgres_sql)]
    finally:
        await pg.close()


async def schema_of(url: str) -> dict[str, object]:
    """Everything a migration may change: versions, tables and indexes (by name), and the data."""
    found: dict[str, object] = {}
    found["meta"] = dict(await raw(url, "SELECT key, value FROM meta", "SELECT key, value FROM conn_meta"))  # type: ignore[arg-type]
    found["objects"] = sorted(await raw(
        url,
        "SELECT type, name FROM sqlite_master",
        "SELECT CASE WHEN relkind = 'r' THEN 'table' ELSE 'index' END, relname FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'i')",
    ))
    found["events"] = await raw(url, "SELECT * FROM events ORDER BY position",
                                "SELECT * FROM conn_events ORDER BY position")
    found["live"] = await raw(url, "SELECT * FROM live ORDER BY service",
                              "SELECT service, data::text, updated_at, writer FROM conn_live ORDER BY service")
    if url.startswith("sqlite:"):
        found["user_version"] = (await raw(url, "PRAGMA user_version", ""))[0][0]
    return found


def file_bytes(url: str) -> bytes | None:
    """The SQLite file's bytes (None for PostgreSQL), for "not changed" to mean byte for byte."""
    return Path(sqlite_path(url)).read_bytes() if url.startswith("sqlite:") else None


async def assert_intact_and_current(old: OldStore) -> None:
    """Every event and live row reads back as written, the chain verifies, and the store works."""
    store = await open_store(old.url)
    try:
        events = await store.read_all()
        assert events == old.events
        assert verify_chain(events) is None
        assert [e.version for e in await store.read_stream("rollout/checkout")] == [1, 2, 3]
        assert await store.stream_version("flag/calendar_refactor") == 2
        assert await store.read_live() == LIVE
        # The log goes on from where it was, chained to the old head.
        assert await store.append(
            "incident/1", 1, [NewEvent("incident.resolved")], actor=BOB, at=T0 + 60
        ) == 2
        assert verify_chain(await store.read_all()) is None
        # And the new table takes history.
        slice_ = HistorySlice("checkout", 10, T0, 6, 1, b"sketch", {"p95": 180.5})
        await store.write_history([slice_])
        assert await store.read_history(since=T0) == [slice_]
    finally:
        await store.close()
    schema = await schema_of(old.url)
    assert schema["meta"] == {"app": "conn", "schema_version": str(SCHEMA_VERSION)}
    if old.backend == "sqlite":
        assert schema["user_version"] == SCHEMA_VERSION


# -- the plan itself ------------------------------------------------------------------


def test_the_migrations_are_consecutive_and_version_1_is_frozen() -> None:
    assert [m.version for m in MIGRATIONS] == list(
        range(BASE_VERSION + 1, BASE_VERSION + 1 + len(MIGRATIONS))
    )
    assert SCHEMA_VERSION == MIGRATIONS[-1].version == 2
    assert all(m.description and m.sqlite and m.postgres for m in MIGRATIONS)

    def words(statements: tuple[str, ...]) -> list[list[str]]:
        return [s.split() for s in statements]

    assert words(SQLITE_V1) == words(FROZEN_SQLITE_V1)
    assert words(POSTGRES_V1) == words(FROZEN_POSTGRES_V1)


# -- migrate_store ----------------------------------------------------------------------


async def test_migrate_store_upgrades_a_v1_store_keeping_every_event_and_live_row(
    old: OldStore,
) -> None:
    report = await migrate_store(old.url)
    assert (report.from_version, report.to_version, report.applied) == (1, 2, True)
    assert [(s.version, s.description) for s in report.steps] == [(2, "add the signal-history table")]
    expected_sql = MIGRATIONS[0].sqlite if old.backend == "sqlite" else MIGRATIONS[0].postgres
    assert report.steps[0].sql == expected_sql
    await assert_intact_and_current(old)


async def test_a_migrated_store_has_the_schema_of_a_new_one(old: OldStore, tmp_path: Path) -> None:
    await migrate_store(old.url)
    if old.backend == "sqlite":
        fresh_url = f"sqlite://{tmp_path / 'fresh.db'}"
    else:
        admin = await asyncpg.connect(old.url)
        try:
            await admin.execute('CREATE DATABASE "fresh_' + old.url.rpartition("/")[2] + '"')
        finally:
            await admin.close()
        fresh_url = old.url.rpartition("/")[0] + "/fresh_" + old.url.rpartition("/")[2]
    fresh = await open_store(fresh_url)
    await fresh.close()
    migrated, made = await schema_of(old.url), await schema_of(fresh_url)
    assert migrated["objects"] == made["objects"]
    assert migrated["meta"] == made["meta"]
    assert migrated.get("user_version") == made.get("user_version")


async def test_a_dry_run_plans_the_steps_and_changes_nothing(old: OldStore) -> None:
    before, before_bytes = await schema_of(old.url), file_bytes(old.url)
    report = await migrate_store(old.url, dry_run=True)
    assert (report.from_version, report.to_version, report.applied) == (1, 2, False)
    assert [s.version for s in report.steps] == [2]
    assert any("CREATE TABLE" in sql for sql in report.steps[0].sql)
    assert await schema_of(old.url) == before
    assert file_bytes(old.url) == before_bytes
    with pytest.raises(SchemaTooOld):
        await open_store(old.url)


async def test_opening_an_old_store_is_refused_and_leaves_it_at_version_1(old: OldStore) -> None:
    before, before_bytes = await schema_of(old.url), file_bytes(old.url)
    with pytest.raises(SchemaTooOld) as refused:
        await open_store(old.url)
    message = str(refused.value)
    where = sqlite_path(old.url) if old.backend == "sqlite" else old.url
    assert where in message
    assert "schema version 1; this Conn writes version 2" in message
    assert "`conn db migrate`" in message
    assert isinstance(refused.value, StoreError)
    assert await schema_of(old.url) == before
    assert file_bytes(old.url) == before_bytes


async def test_open_store_with_migrate_upgrades_on_open(old: OldStore) -> None:
    store = await open_store(old.url, migrate=True)
    await store.close()
    await assert_intact_and_current(old)


async def test_a_newer_store_is_refused_and_untouched(old: OldStore) -> None:
    await raw(
        old.url,
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        "UPDATE conn_meta SET value = '99' WHERE key = 'schema_version'",
    )
    before, before_bytes = await schema_of(old.url), file_bytes(old.url)
    for attempt in (migrate_store(old.url), migrate_store(old.url, dry_run=True),
                    open_store(old.url), open_store(old.url, migrate=True)):
        with pytest.raises(SchemaTooNew, match="newer Conn \\(schema version 99, this Conn knows up to 2\\)"):
            await attempt
    assert await schema_of(old.url) == before
    assert file_bytes(old.url) == before_bytes


async def test_migrating_twice_is_a_no_op(old: OldStore) -> None:
    await migrate_store(old.url)
    after_first = await schema_of(old.url)
    again = await migrate_store(old.url)
    assert (again.from_version, again.to_version, again.steps, again.applied) == (2, 2, (), False)
    assert again.up_to_date
    assert (await migrate_store(old.url, dry_run=True)).up_to_date
    assert await schema_of(old.url) == after_first
    await assert_intact_and_current(old)


async def test_two_migrations_at_once_apply_the_step_once(old: OldStore) -> None:
    reports = await asyncio.gather(migrate_store(old.url), migrate_store(old.url))
    assert sorted(len(r.steps) for r in reports) == [0, 1]
    await assert_intact_and_current(old)


async def test_a_failed_step_leaves_the_store_at_the_version_before(old: OldStore) -> None:
    # An index already named like the step's last one: the table and the first
    # index are created, then the step fails, and all of it must roll back.
    await raw(
        old.url,
        "CREATE INDEX history_with_sketch ON live (writer)",
        "CREATE INDEX conn_history_with_sketch ON conn_live (writer)",
    )
    before = await schema_of(old.url)
    with pytest.raises(StoreError, match="history_with_sketch") as failed:
        await migrate_store(old.url)
    assert not isinstance(failed.value, SchemaTooOld | SchemaTooNew)
    assert await schema_of(old.url) == before  # no history table, no index, still version 1
    with pytest.raises(SchemaTooOld):
        await open_store(old.url)


async def test_there_is_nothing_to_migrate_where_there_is_no_store(store_url: str) -> None:
    with pytest.raises(StoreError, match="nothing to migrate"):
        await migrate_store(store_url)
    if store_url.startswith("sqlite:"):
        assert not await asyncio.to_thread(Path(sqlite_path(store_url)).exists)
    else:
        assert await raw(store_url, "", "SELECT to_regclass('conn_meta')") == [(None,)]


async def test_a_postgres_report_never_shows_the_password(postgres_dsn: str) -> None:
    await build_v1_postgres(postgres_dsn, v1_events())
    # The test server trusts every login, so a password is accepted unchecked.
    report = await migrate_store(postgres_dsn.replace("conn@", "conn:s3cret@"), dry_run=True)
    assert "s3cret" not in report.url
    assert report.url == postgres_dsn


# -- conn db migrate ------------------------------------------------------------------


def conn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def config(old: OldStore, tmp_path: Path) -> Path:
    path = tmp_path / "conn.toml"
    path.write_text(f'store = "{old.url}"\n')
    return path


async def test_conn_db_migrate_dry_run_then_for_real_then_again(old: OldStore, config: Path) -> None:
    shown = old.url if old.backend == "postgres" else f"sqlite://{sqlite_path(old.url)}"
    before, before_bytes = await schema_of(old.url), file_bytes(old.url)

    refused = await asyncio.to_thread(conn, "audit", "--config", str(config))
    assert refused.returncode == 1
    assert "`conn db migrate`" in refused.stderr

    dry = await asyncio.to_thread(conn, "db", "migrate", "--dry-run", "--config", str(config))
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0] == f"store {shown} is at schema version 1; this Conn writes version 2"
    assert lines[1] == "  v2: add the signal-history table"
    table = "history" if old.backend == "sqlite" else "conn_history"
    assert f"      CREATE TABLE {table} (" in lines
    assert lines[-1] == "(dry run: nothing changed)"
    assert await schema_of(old.url) == before
    assert file_bytes(old.url) == before_bytes

    real = await asyncio.to_thread(conn, "db", "migrate", "--config", str(config))
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines() == [
        f"store {shown} is at schema version 1; this Conn writes version 2",
        "  v2: add the signal-history table",
        "migrated to version 2",
    ]
    verified = await asyncio.to_thread(conn, "audit", "--verify", "--config", str(config))
    assert verified.returncode == 0, verified.stderr
    assert f"audit chain ok: {len(old.events)} events verified" in verified.stdout

    again = await asyncio.to_thread(conn, "db", "migrate", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"store {shown} is already at version 2; nothing to do"
    await assert_intact_and_current(old)


async def test_conn_db_migrate_refuses_a_newer_store(old: OldStore, config: Path) -> None:
    await raw(
        old.url,
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        "UPDATE conn_meta SET value = '99' WHERE key = 'schema_version'",
    )
    before, before_bytes = await schema_of(old.url), file_bytes(old.url)
    for args in (("db", "migrate"), ("db", "migrate", "--dry-run")):
        run = await asyncio.to_thread(conn, *args, "--config", str(config))
        assert run.returncode == 1
        assert run.stdout == ""
        assert "written by a newer Conn (schema version 99" in run.stderr
        assert "upgrade Conn" in run.stderr
    assert await schema_of(old.url) == before
    assert file_bytes(old.url) == before_bytes
