"""The engine's extension points on real stores: projections, commands, leader terms.

Each bug a review found in the old engine has a test here that failed before
its fix (named after the bug).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from console.config import ConnConfig, parse_config
from console.engine.commands import CommandBus, Policy, is_automatic
from console.engine.core import Engine
from console.engine.flags import KillFlag, SeedFlags, SetFlagPercent
from console.engine.projections import ProjectionSet
from console.errors import CommandError
from console.model.clock import FakeClock
from console.model.events import Actor, Event, NewEvent
from console.model.live import current_writer
from console.store import EventStore, open_store
from tests.fixtures.waiting import until

FLAGS = """
[flags.groups]
internal = ["user-1", "user-2"]

[flags.define.checkout_v2]
percent = 0
groups = ["internal"]
"""

ALICE = Actor("alice", "10.0.0.7")


@pytest.fixture
def config(tmp_path: Path) -> ConnConfig:
    return parse_config(
        f'store = "sqlite:///{tmp_path / "conn.db"}"\n[flags]\nexport = "{tmp_path / "flags.json"}"\n'
        + FLAGS
    )


@pytest.fixture
async def store(config: ConnConfig) -> AsyncIterator[EventStore]:
    opened = await open_store(config.store)
    try:
        yield opened
    finally:
        await opened.close()


def reader(config: ConnConfig, store: EventStore, **kw: Any) -> Engine:
    """A one-shot engine: loads, executes, never follows or leads."""
    return Engine(config, store, clock=FakeClock(start=time.time()), lead=False, follow=False, **kw)


# --- projections -----------------------------------------------------------------------


@dataclass
class Notes:
    """A toy projection: counts notes per stream, refuses payloads without text."""

    prefix: str = "note/"
    seen: dict[str, list[str]] = field(default_factory=dict)

    def apply(self, event: Event) -> bool:
        text = event.payload["text"]  # KeyError: unreadable, skipped by the set
        self.seen.setdefault(event.stream, []).append(text)
        return True


async def test_a_projection_folds_its_streams_only_and_skips_what_it_cannot_read(
    store: EventStore,
) -> None:
    at = time.time()
    await store.append("note/a", 0, [NewEvent("Note", {"text": "one"})], actor=ALICE, at=at)
    await store.append("other/x", 0, [NewEvent("Other", {"text": "not mine"})], actor=ALICE, at=at)
    await store.append("note/a", 1, [NewEvent("Note", {"bad": 1})], actor=ALICE, at=at)
    await store.append("note/a", 2, [NewEvent("Note", {"text": "three"})], actor=ALICE, at=at)
    notes = Notes()
    projections = ProjectionSet([notes])
    assert await projections.load(store) == 4
    assert notes.seen == {"note/a": ["one", "three"]}
    # The unreadable event is shown, and its version still counts: the next append works.
    assert [s.version for s in projections.skipped] == [2]
    assert "note/a v2" in str(projections.skipped[0])
    assert projections.version_of("note/a") == 3
    assert projections.version_of("other/x") == 0, "streams nobody owns are not tracked"
    assert projections.position == 4
    await store.append("note/a", projections.version_of("note/a"),
                       [NewEvent("Note", {"text": "four"})], actor=ALICE, at=at)
    new = await projections.refresh(store, "note/a")
    assert [e.version for e in new] == [4]
    assert notes.seen["note/a"][-1] == "four"
    assert projections.position == 4, "an out-of-order read does not move the subscription"
    assert not projections.apply(new[0]), "an event is folded once"


def test_overlapping_prefixes_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ProjectionSet([Notes(prefix="note/"), Notes(prefix="note/x")])


class CountingStore:
    """The real store, with its reads counted."""

    def __init__(self, inner: EventStore) -> None:
        self._inner = inner
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("read_"):
            async def counted(*args: Any, **kw: Any) -> Any:
                self.reads.append(name)
                return await attribute(*args, **kw)
            return counted
        return attribute


async def test_start_reads_the_log_once(config: ConnConfig, store: EventStore) -> None:
    async with reader(config, store) as seeding:
        await seeding.execute(SeedFlags(), actor=seeding.auto_actor)
    counting = CountingStore(store)
    engine = reader(config, counting)  # type: ignore[arg-type]
    async with engine:
        assert counting.reads.count("read_all") == 1, counting.reads
        assert "read_tail" not in counting.reads and "read_stream" not in counting.reads
        assert engine.snapshot.flags[0].name == "checkout_v2"
        assert len(engine.snapshot.recent_events) == 2  # the group and the flag


async def test_events_appended_during_start_are_applied(config: ConnConfig, store: EventStore) -> None:
    """Bug: flag events appended between the start-up fold and read_tail were never applied."""

    class RacingStore(CountingStore):
        """Another console changes the flag right after the start-up scan has read the log."""

        raced = False

        def __getattr__(self, name: str) -> Any:
            attribute = super().__getattr__(name)
            if name != "read_all":
                return attribute

            async def then_race(*args: Any, **kw: Any) -> Any:
                page = await attribute(*args, **kw)
                if not RacingStore.raced:
                    RacingStore.raced = True
                    async with reader(config, store, actor=Actor("bob")) as other:
                        await other.execute(KillFlag(flag="checkout_v2", reason="race"))
                return page
            return then_race

    async with reader(config, store) as seeding:
        await seeding.execute(SeedFlags(), actor=seeding.auto_actor)
    racing = RacingStore(store)
    engine = Engine(config, racing, lead=False, follow_interval=0.1)  # type: ignore[arg-type]
    async with engine:
        await until(lambda: engine.snapshot.flags[0].killed, within=5,
                    what="the follower applies the change made during its start")
        assert engine.snapshot.flags[0].changed_by == "bob"


async def test_a_malformed_flag_event_is_shown_skipped_and_the_flag_stays_changeable(
    config: ConnConfig, store: EventStore
) -> None:
    """Bug: one malformed event made the flag unchangeable, then stopped start-up."""
    async with reader(config, store) as seeding:
        await seeding.execute(SeedFlags(), actor=seeding.auto_actor)
    version = await store.stream_version("flag/checkout_v2")
    await store.append("flag/checkout_v2", version, [NewEvent("FlagChanged", {"after": "garbage"})],
                       actor=Actor("mallory"), at=time.time())
    async with reader(config, store) as engine:  # start-up does not stop
        assert engine.snapshot.problem is not None
        assert "flag/checkout_v2 v2" in engine.snapshot.problem
        result = await engine.execute(KillFlag(flag="checkout_v2", reason="still works"))
        assert [e.version for e in result.events] == [3]
        assert engine.flag("checkout_v2").killed
    # While following: the same event shape is shown and skipped the same way.
    follower = Engine(config, store, lead=False, follow_interval=0.1)
    async with follower:
        version = await store.stream_version("flag/checkout_v2")
        await store.append("flag/checkout_v2", version, [NewEvent("FlagChanged", {"after": 7})],
                           actor=Actor("mallory"), at=time.time())
        await until(lambda: "v4" in (follower.snapshot.problem or ""), within=5,
                    what="the follower shows the unreadable event")
        assert follower.failure is None


# --- commands --------------------------------------------------------------------------


async def test_commands_from_keys_cli_and_leader_are_the_same_events_with_their_actors(
    config: ConnConfig, store: EventStore, tmp_path: Path
) -> None:
    import subprocess
    import sys

    config_path = tmp_path / "conn.toml"
    config_path.write_text(
        f'store = "{config.store}"\n[flags]\nexport = "{tmp_path / "flags.json"}"\n' + FLAGS
    )
    leader = Engine(config, store, retry_leadership=0.1)
    async with leader:
        await until(lambda: leader.role == "leader", within=5, what="leads")
        await until(lambda: len(leader.snapshot.flags) == 1, within=5, what="the leader seeds")
        # The key on the flags screen runs exactly this.
        await leader.execute(SetFlagPercent(flag="checkout_v2", percent="10%", reason="stage 2"),
                             actor=ALICE)
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "console", "flag", "set", "checkout_v2", "--percent", "25",
         "--reason", "stage 3", "--yes", "--config", str(config_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    events = await store.read_stream("flag/checkout_v2")
    created, by_key, by_cli = events
    assert is_automatic(Actor(created.actor)) and created.actor.startswith("conn-auto@")
    assert by_key.actor == "alice@10.0.0.7"
    assert by_cli.actor != created.actor and not by_cli.actor.startswith("conn-auto")
    assert by_key.type == by_cli.type == "FlagChanged"
    assert by_key.payload.keys() == by_cli.payload.keys()
    assert (by_key.payload["change"], by_cli.payload["change"]) == ("percent", "percent")
    assert by_key.payload["after"]["on_weight"] == 1000
    assert by_cli.payload["after"]["on_weight"] == 2500
    audit = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "console", "audit", "--config", str(config_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert "conn-auto@" in audit.stdout, "automatic actions are visible in conn audit"


async def test_the_bus_checks_every_command_once(config: ConnConfig, store: EventStore) -> None:
    async with reader(config, store, read_only=True) as engine:
        with pytest.raises(CommandError, match="read-only"):
            await engine.execute(KillFlag(flag="checkout_v2", reason="x"))
        assert await store.read_all() == [], "nothing appended"
        # The leader's own actions are not the operator's: they still run.
        seeded = await engine.execute(SeedFlags(), actor=engine.auto_actor)
        assert seeded.changed
    async with reader(config, store) as engine:
        await engine.execute(SeedFlags(), actor=engine.auto_actor)
        with pytest.raises(CommandError, match="reason is required"):
            await engine.execute(KillFlag(flag="checkout_v2", reason="  "))
        with pytest.raises(CommandError, match="no flag named 'checkout_v3'"):
            await engine.execute(KillFlag(flag="checkout_v3", reason="typo"))
        unchanged = await engine.execute(SetFlagPercent(flag="checkout_v2", percent=0, reason="same"))
        assert not unchanged.changed, "a change that changes nothing appends nothing"
    bus = CommandBus(policy=Policy())
    with pytest.raises(CommandError, match="no handler"):
        await bus.execute(KillFlag(flag="x", reason="y"), ALICE)


async def test_an_engine_starts_once(config: ConnConfig, store: EventStore) -> None:
    engine = reader(config, store)
    assert engine.state == "created"
    await engine.start()
    assert engine.state == "running"
    with pytest.raises(RuntimeError, match="starts once"):
        await engine.start()
    await engine.stop()
    await engine.stop()
    assert engine.state == "stopped"


# --- who leads ---------------------------------------------------------------------------


def test_one_who_leads_rule_names_the_newest_fresh_writer() -> None:
    now = 1000.0
    rows: Sequence[tuple[str | None, float | None, float, float]] = [
        ("old@a pid 1", 996.0, 1.0, 2.0),       # fresh, but older (config order first)
        ("new@b pid 2", 999.5, 1.0, 2.0),       # fresh and newest: leads
        ("fast@c pid 3", 1100.0, 1.0, 2.0),     # from the future: not trusted
        ("dead@d pid 4", 990.0, 1.0, 2.0),      # stale: 10 s > 3 × 1 s + 2 s
    ]
    assert current_writer(rows, now) == "new@b pid 2"
    assert current_writer([("x", 996.0, 1.0, 2.0)], now) == "x", "a slow probe is late, not gone"
    assert current_writer([("x", 996.0, 1.0, 0.0)], now) is None


async def test_status_and_the_engine_name_the_same_leader(config: ConnConfig, tmp_path: Path) -> None:
    """Bug: `conn status` named the first fresh writer in config order, the engine the newest."""
    from console.engine.status import status_document

    with_services = parse_config(
        f'store = "{config.store}"\n'
        '[services.a]\nhealth_url = "http://127.0.0.1:9/a"\ninterval = "5s"\n'
        '[services.b]\nhealth_url = "http://127.0.0.1:9/b"\ninterval = "5s"\n'
    )
    store = await open_store(with_services.store)
    try:
        clock = FakeClock(start=time.time())
        await store.write_live("a", {"x": 1}, at=clock.now() - 4, writer="old@a pid 1")
        await store.write_live("b", {"x": 1}, at=clock.now() - 1, writer="new@b pid 2")
        engine = Engine(with_services, store, clock=clock, lead=False, follow_interval=0.05)
        async with engine:
            document = await status_document(engine, probe=False)
            assert document["leader"] == engine.snapshot.leader == "new@b pid 2"
    finally:
        await store.close()
