"""The store's schema versions: what version 1 was, and each step since.

Both backends follow this one list, so a SQLite file and a PostgreSQL
database at the same version hold the same tables. The rules:

- Version 1's DDL is frozen: stores in the field were made with it. A
  change is a new :class:`Migration`, never an edit of an old one.
- A new store is made by applying version 1 and then every migration in
  order, so the path an upgraded store takes is the one every test run takes.
- Each migration runs in its own transaction with the recorded version bump
  (``meta.schema_version``, and SQLite's ``user_version``): a store is at one
  version or the next, never between.
- A store at an older version is refused on open (:class:`SchemaTooOld`)
  until ``conn db migrate`` upgrades it; opening it never changes it.
  A newer one is refused as before (:class:`SchemaTooNew`).

This module holds no driver code; ``_sqlite_schema`` and ``_postgres_schema``
apply it.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.errors import SchemaTooNew, SchemaTooOld

BASE_VERSION = 1
"""The version a store starts at, before any migration."""


@dataclass(frozen=True)
class Migration:
    """One step from ``version - 1`` to ``version``, in each backend's SQL.

    Attributes:
        version: the version the store is at after this step.
        description: what the step does, for people (``conn db migrate`` prints it).
        sqlite: statements for SQLite, in order.
        postgres: statements for PostgreSQL, in order.
    """

    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


SQLITE_V1 = (
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
"""Version 1 in SQLite (frozen)."""

POSTGRES_V1 = (
    "CREATE TABLE conn_meta (key text PRIMARY KEY, value text NOT NULL)",
    # payload is `json`, not `jsonb`: json keeps the text verbatim, so what was
    # hashed is what reads back (jsonb would rewrite 1e100 and re-hash wrong).
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
"""Version 1 in PostgreSQL (frozen)."""

# The history is read by time range (a new leader's last 15 minutes) and pruned
# by age, so besides the primary key it is indexed by (resolution, start); the
# partial index finds the few rows whose sketch is still to be dropped without
# scanning the days of rows that no longer have one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=2,
        description="add the signal-history table",
        sqlite=(
            """CREATE TABLE history (
        service TEXT NOT NULL,
        resolution INTEGER NOT NULL,
        start REAL NOT NULL,
        samples INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        sketch BLOB,
        data TEXT NOT NULL,
        PRIMARY KEY (service, resolution, start)
    )""",
            "CREATE INDEX history_by_time ON history (resolution, start)",
            "CREATE INDEX history_with_sketch ON history (start) WHERE sketch IS NOT NULL",
        ),
        postgres=(
            # COLLATE "C": rows come back ordered by service name byte by byte,
            # as SQLite orders them, whatever the database's locale.
            """CREATE TABLE conn_history (
        service text COLLATE "C" NOT NULL,
        resolution integer NOT NULL,
        start double precision NOT NULL,
        samples bigint NOT NULL,
        errors bigint NOT NULL,
        sketch bytea,
        data json NOT NULL,
        PRIMARY KEY (service, resolution, start)
    )""",
            "CREATE INDEX conn_history_by_time ON conn_history (resolution, start)",
            "CREATE INDEX conn_history_with_sketch ON conn_history (start) "
            "WHERE sketch IS NOT NULL",
        ),
    ),
)
"""Every step after version 1, oldest first; append, never edit."""

SCHEMA_VERSION = MIGRATIONS[-1].version if MIGRATIONS else BASE_VERSION
"""The schema this code writes: older stores must be migrated, newer ones are refused."""


def pending(version: int) -> tuple[Migration, ...]:
    """The migrations a store at ``version`` still needs, oldest first."""
    return tuple(step for step in MIGRATIONS if step.version > version)


@dataclass(frozen=True)
class MigrationStep:
    """One migration as planned or applied on one store.

    Attributes:
        version: the version the store is at after the step.
        description: what the step does, for people.
        sql: the statements it runs on this store's backend.
    """

    version: int
    description: str
    sql: tuple[str, ...]


@dataclass(frozen=True)
class MigrationReport:
    """What ``migrate_store`` found and did.

    Attributes:
        url: the store, for people (no password).
        from_version: the version the store was at.
        to_version: the version this Conn writes (the store's version afterwards,
            unless this was a dry run).
        steps: the migrations planned (dry run) or applied, oldest first;
            empty when the store was already current.
        applied: True when ``steps`` were run; False for a dry run or no steps.
    """

    url: str
    from_version: int
    to_version: int
    steps: tuple[MigrationStep, ...]
    applied: bool

    @property
    def up_to_date(self) -> bool:
        """True when the store needed nothing."""
        return not self.steps


def check_version(where: str, version: int, *, allow_older: bool, unchanged: str) -> None:
    """Refuse a store whose recorded ``version`` this Conn cannot use as it is.

    Args:
        where: the store, for the message (a path or a URL without password).
        version: the store's recorded schema version.
        allow_older: True when the caller is about to migrate.
        unchanged: the sentence that says nothing was written, in the backend's words.

    Raises:
        SchemaTooNew: written by a newer Conn.
        SchemaTooOld: older than this Conn writes, and not ``allow_older``.
    """
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{where} was written by a newer Conn (schema version {version}, this Conn "
            f"knows up to {SCHEMA_VERSION}); upgrade Conn. {unchanged}"
        )
    if version < SCHEMA_VERSION and not allow_older:
        raise SchemaTooOld(
            f"{where} is at schema version {version}; this Conn writes version "
            f"{SCHEMA_VERSION}. Run `conn db migrate` to upgrade it "
            f"(`conn db migrate --dry-run` shows the steps first). {unchanged}"
        )
