"""Connecting to PostgreSQL, and creating, checking and migrating Conn's tables there.

Every schema change runs in a transaction that first takes the same
transaction-level advisory lock as appends, so consoles starting at once
create the tables once, a migration never runs beside an append, and two
``conn db migrate`` runs apply each step once between them. PostgreSQL's DDL
is transactional, so a failed step leaves the database at the version before.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

from console.errors import NotAConnDatabase, StoreError
from console.store._common import APP, redact_url
from console.store.migrations import (
    BASE_VERSION,
    MIGRATIONS,
    POSTGRES_V1,
    SCHEMA_VERSION,
    Migration,
    MigrationReport,
    MigrationStep,
    check_version,
    pending,
)

APPEND_LOCK_KEY = 0x636F_6E6E_0001
"""Advisory lock (transaction-level) that serialises appends and schema changes."""

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)
"""What asyncpg raises when the server, the network or the session fails."""

URL_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ClientConfigurationError,
    ValueError,
    OverflowError,
    TypeError,
    UnicodeError,
)
"""What asyncpg raises, besides driver errors, for a DSN it cannot use (port 99999 → OverflowError)."""

_UNCHANGED = "Nothing was changed."


def _port_problem(port: str) -> str | None:
    if not port:
        return None
    shown = port if len(port) <= 20 else port[:20] + "…"
    if not port.isascii() or not port.isdigit():
        return f"port {shown!r} is not a number"
    if not 1 <= int(port) <= 65535:
        return f"port {shown} is out of range (1-65535)"
    return None


def url_problem(dsn: str) -> str | None:
    """What is wrong with the ports of ``dsn``, or None.

    Checked before asyncpg sees the URL, because asyncpg reports a bad port
    as a bare OverflowError from deep in its connect code.
    """
    try:
        parts = urlsplit(dsn)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as e:
        return str(e)
    hosts = parts.netloc.rpartition("@")[2]  # the password may hold ':' or ','
    ports = []
    for host in hosts.split(","):
        if host.startswith("["):  # [::1]:5432
            ports.append(host.partition("]")[2].removeprefix(":"))
        else:
            ports.append(host.partition(":")[2])
    ports += [p for k, v in query if k == "port" for p in v.split(",")]
    for port in ports:
        problem = _port_problem(port)
        if problem is not None:
            return problem
    return None


def check_url(dsn: str) -> str:
    """The URL without its password, for messages, once ``dsn`` is known to be usable.

    Raises:
        StoreError: a port asyncpg could not use.
    """
    url = redact_url(dsn)
    problem = url_problem(dsn)
    if problem is not None:
        raise StoreError(f"{url} is not a usable PostgreSQL URL: {problem}")
    return url


async def _inspect(conn: asyncpg.Connection, url: str, *, allow_older: bool) -> int | None:
    """The database's Conn schema version, or None when it has no Conn tables yet.

    Runs inside the caller's transaction, after the advisory lock.

    Raises:
        NotAConnDatabase: conn_* tables that are not Conn's.
        SchemaTooNew, SchemaTooOld: see :func:`~console.store.migrations.check_version`.
    """
    found = await conn.fetchrow(
        "SELECT to_regclass('conn_meta') IS NOT NULL AS meta, "
        "to_regclass('conn_events') IS NOT NULL AS events, "
        "to_regclass('conn_live') IS NOT NULL AS live"
    )
    if found is None or not found["meta"]:
        if found is not None and (found["events"] or found["live"]):
            raise NotAConnDatabase(
                f"{url} has conn_events/conn_live tables but no conn_meta; not changed"
            )
        return None
    meta = {r["key"]: r["value"] for r in await conn.fetch("SELECT key, value FROM conn_meta")}
    if meta.get("app") != APP:
        raise NotAConnDatabase(f"{url}: conn_meta does not belong to Conn; not changed")
    try:
        version = int(meta["schema_version"])
    except (KeyError, ValueError) as e:
        raise NotAConnDatabase(f"{url}: conn_meta has no valid schema_version") from e
    check_version(url, version, allow_older=allow_older, unchanged=_UNCHANGED)
    return version


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    for statement in migration.postgres:
        await conn.execute(statement)
    await conn.execute(
        "UPDATE conn_meta SET value = $1 WHERE key = 'schema_version'", str(migration.version)
    )


async def _create(conn: asyncpg.Connection) -> None:
    """Version 1, then every migration, in the caller's transaction (see the SQLite twin)."""
    for statement in POSTGRES_V1:
        await conn.execute(statement)
    await conn.executemany(
        "INSERT INTO conn_meta (key, value) VALUES ($1, $2)",
        [("app", APP), ("schema_version", str(BASE_VERSION))],
    )
    for migration in MIGRATIONS:
        await _apply(conn, migration)


async def _migrate(conn: asyncpg.Connection, url: str) -> tuple[int, list[MigrationStep]]:
    """Apply pending migrations, one transaction each; return (from-version, steps applied)."""
    first: int | None = None
    applied: list[MigrationStep] = []
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
            version = await _inspect(conn, url, allow_older=True)
            if version is None:
                raise StoreError(f"{url} lost its Conn tables while it was being migrated")
            first = version if first is None else first
            todo = pending(version)
            if not todo:
                return first, applied
            await _apply(conn, todo[0])
        applied.append(MigrationStep(todo[0].version, todo[0].description, todo[0].postgres))


async def initialize(conn: asyncpg.Connection, url: str, *, migrate: bool) -> None:
    """Create the schema in an empty database, or check an existing one is ours and current.

    With ``migrate``, an older schema is brought up to date instead of refused.

    Raises:
        NotAConnDatabase, SchemaTooNew, SchemaTooOld: refused; nothing changed.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK_KEY)
        version = await _inspect(conn, url, allow_older=migrate)
        if version is None:
            await _create(conn)
            return
    if version < SCHEMA_VERSION:
        await _migrate(conn, url)


async def migrate(
    dsn: str, *, password: str | None = None, dry_run: bool = False, connect_timeout: float = 10.0
) -> MigrationReport:
    """Bring the Conn tables in ``dsn`` to :data:`SCHEMA_VERSION` (or only plan it: ``dry_run``).

    Raises:
        StoreError: no Conn tables there, the server cannot be reached, or a
            step failed (the database stays at the version before it).
        NotAConnDatabase, SchemaTooNew: refused; nothing changed.
    """
    url = check_url(dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout, password=password)
    except URL_ERRORS as e:  # asyncpg's DSN parsing; before DRIVER_ERRORS on purpose
        raise StoreError(f"{url} is not a usable PostgreSQL URL: {e}") from e
    except DRIVER_ERRORS as e:
        raise StoreError(f"cannot connect to {url}: {e}") from e
    try:
        async with conn.transaction(readonly=True):
            version = await _inspect(conn, url, allow_older=True)
        if version is None:
            raise StoreError(f"{url} has no Conn tables yet; nothing to migrate "
                             "(Conn creates them at the current version when it first opens it)")
        if dry_run:
            steps = tuple(
                MigrationStep(m.version, m.description, m.postgres) for m in pending(version)
            )
            return MigrationReport(url, version, SCHEMA_VERSION, steps, applied=False)
        first, applied = await _migrate(conn, url)
    except DRIVER_ERRORS as e:
        raise StoreError(f"cannot migrate {url}: {e}") from e
    finally:
        await _close(conn)
    return MigrationReport(url, first, SCHEMA_VERSION, tuple(applied), applied=bool(applied))


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=5)
    except DRIVER_ERRORS:
        conn.terminate()  # already broken: nothing is left to say goodbye to
