"""FlagService on a real SQLite store: events, concurrency, and the exported flagd file.

The file is checked by what flagd itself (openfeature-flagd-core) answers
after loading it, and against the flagd schema's rules (structurally:
jsonschema is not installed; see tests/fixtures/flags.py).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from console.actions.files import (
    FileConflict,
    check_owned,
    checksum_path,
    read_file,
    write_atomic,
    write_owned,
)
from console.config import ConnConfig, parse_config
from console.errors import ActionError, CommandError, ConcurrencyError
from console.model.clock import FakeClock
from console.model.events import Actor, NewEvent
from console.model.flags import FlagState, flag_event
from console.store import EventStore, open_store
from tests.fixtures.consoles import OtherConsole as FlagService
from tests.fixtures.flags import PLANS_CONFIG, flagd_answer, flagd_schema_problems

ALICE, BOB = Actor("alice", "10.0.0.7"), Actor("bob")
KEYS = [f"user-{i}" for i in range(5000)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'conn.db'}")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def config() -> ConnConfig:
    return parse_config(PLANS_CONFIG)


def service(store: EventStore, config: ConnConfig, path: Path, actor: Actor = ALICE) -> FlagService:
    return FlagService(store=store, config=config, clock=FakeClock(), actor=actor, export_path=path)


async def test_load_seeds_config_once_and_exports(store: EventStore, config: ConnConfig, tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    flags = service(store, config, path)
    await flags.load()
    names = [view.name for view in flags.views()]
    assert names == sorted(config.flags.define)
    events = await store.read_all()
    assert [e.type for e in events].count("FlagCreated") == len(config.flags.define)
    assert [e.type for e in events].count("FlagGroupCreated") == 3
    created = next(e for e in events if e.stream == "flag/checkout_v2")
    assert created.actor == "conn-auto@test pid 1", "the config, not alice, created it"
    assert created.payload["before"] is None
    assert created.payload["after"]["on_weight"] == 50
    assert created.payload["evaluator"] == flags.evaluator_version != "unknown"
    assert created.reason == "[flags.define.checkout_v2] in config"
    # The file is there, valid, and recorded.
    document = json.loads(path.read_bytes())
    assert flagd_schema_problems(document) == []
    assert flags.export_status().state == "ok"
    assert check_owned(path).recorded == check_owned(path).current
    # A second engine on the same store seeds nothing more.
    again = service(store, config, path, BOB)
    await again.load()
    assert len(await store.read_all()) == len(events)
    assert again.views() == flags.views()


async def test_no_flags_leaves_no_empty_file_behind(store: EventStore, tmp_path: Path) -> None:
    flags = service(store, parse_config(""), tmp_path / "flags.json")
    await flags.load()
    assert flags.views() == ()
    assert not (tmp_path / "flags.json").exists()
    assert flags.export_status().message == "no flags yet; written on the first change"


async def test_config_never_overrides_a_logged_flag(store: EventStore, config: ConnConfig, tmp_path: Path) -> None:
    flags = service(store, config, tmp_path / "flags.json")
    await flags.load()
    await flags.set_percent("smartFolders", 40, reason="week 3")
    edited = parse_config(PLANS_CONFIG.replace('percent = "25%"', 'percent = "5%"').replace(
        'internal = ["user1", "user2", "user3"]', 'internal = ["user1", "user4"]'))
    later = service(store, edited, tmp_path / "flags.json")
    await later.load()
    assert later.view("smartFolders").percent == 40.0  # the log wins over the config
    # Group membership has no screen of its own: a config edit is recorded as an event.
    changed = (await store.read_stream("flag/@internal"))[-1]
    assert changed.type == "FlagGroupChanged"
    assert changed.payload["before"] == {"keys": ["user1", "user2", "user3"]}
    assert changed.payload["after"] == {"keys": ["user1", "user4"]}
    assert later.evaluate("calendar_refactor", "user4").reason == "allowlist"
    assert later.evaluate("calendar_refactor", "user2").reason == "default"


async def test_conn_and_flagd_agree_on_5000_keys(store: EventStore, config: ConnConfig, tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    flags = service(store, config, path)
    await flags.load()
    await flags.set_percent("checkout_v2", 10, reason="stage 2")
    await flags.allow("checkout_v2", ["user-7", "@beta-testers"], reason="qa")
    core = FlagdCore()
    core.set_flags(path.read_text())
    on = 0
    for key in KEYS:
        ours = flags.evaluate("checkout_v2", key)
        theirs = core.resolve_boolean_value("checkout_v2", False, EvaluationContext(key))
        assert (ours.variant, ours.value) == (theirs.variant, theirs.value), key
        on += ours.value is True
    assert 400 < on < 600  # ~10%, plus user-7
    assert flags.evaluate("checkout_v2", "beta-002").reason == "allowlist"
    # The same after a kill and after disabling: the file and Conn still agree.
    for change in (flags.kill, flags.disable, flags.enable):
        await change("checkout_v2", reason="check")
        text = path.read_text()
        for key in ("user-7", "beta-002", *KEYS[:300]):
            ours = flags.evaluate("checkout_v2", key)
            assert flagd_answer(text, "checkout_v2", key) == (ours.variant, ours.value)


async def test_every_change_is_an_event_with_before_and_after(store: EventStore, config: ConnConfig, tmp_path: Path) -> None:
    flags = service(store, config, tmp_path / "flags.json")
    await flags.load()
    view = await flags.set_percent("calendar_refactor", "10%", reason="stage 2: beta users")
    assert (view.percent, view.changed_by, view.reason, view.last_change) == (
        10.0, "alice@10.0.0.7", "stage 2: beta users", "percent")
    event = (await store.read_stream("flag/calendar_refactor"))[-1]
    assert event.type == "FlagChanged"
    assert event.payload["change"] == "percent"
    assert (event.payload["before"]["on_weight"], event.payload["after"]["on_weight"]) == (0, 1000)
    assert event.payload["evaluator"] == flags.evaluator_version
    # Repeating a command changes nothing and appends nothing (stages may repeat).
    before = len(await store.read_all())
    await flags.set_percent("calendar_refactor", 10, reason="again")
    assert len(await store.read_all()) == before
    killed = await flags.kill("calendar_refactor", reason="p95 over 100ms")
    assert (killed.state, killed.killed) == ("killed", True)
    revived = await flags.enable("calendar_refactor", reason="fixed")
    assert (revived.state, revived.percent) == ("enabled", 10.0)


async def test_commands_refuse_bad_input(store: EventStore, config: ConnConfig, tmp_path: Path) -> None:
    flags = service(store, config, tmp_path / "flags.json")
    await flags.load()
    with pytest.raises(CommandError, match="a reason is required"):
        await flags.kill("checkout_v2", reason="   ")
    with pytest.raises(CommandError, match=r"no flag named 'checkout_v3'\. Did you mean 'checkout_v2'"):
        await flags.enable("checkout_v3", reason="x")
    with pytest.raises(CommandError, match=r"outside 0–100"):
        await flags.set_percent("checkout_v2", 101, reason="x")
    with pytest.raises(CommandError, match="non-integer flagd weight"):
        await flags.set_percent("checkout_v2", "0.001%", reason="x")
    with pytest.raises(CommandError, match=r"no group named 'beta'\. Did you mean 'beta-testers'"):
        await flags.allow("checkout_v2", ["@beta"], reason="x")
    with pytest.raises(CommandError, match="not a targeting key"):
        await flags.allow("checkout_v2", ["bad\x1b[2Jkey"], reason="x")
    with pytest.raises(CommandError, match="not on its allowlist: nobody"):
        await flags.allow("checkout_v2", ["nobody"], reason="x", remove=True)
    with pytest.raises(CommandError, match="no flag named"):
        flags.evaluate("nope", "user-1")
    assert all(e.type in ("FlagCreated", "FlagGroupCreated") for e in await store.read_all())


async def test_the_second_writer_is_told_who_changed_it_first(store: EventStore, config: ConnConfig, tmp_path: Path) -> None:
    alice = service(store, config, tmp_path / "flags.json", ALICE)
    bob = service(store, config, tmp_path / "flags.json", BOB)
    await alice.load()
    await bob.load()
    await alice.set_percent("aiSummarization", 75, reason="week 4")
    with pytest.raises(ConcurrencyError, match=r"alice@10\.0\.0\.7") as caught:
        await bob.set_percent("aiSummarization", 60, reason="week 3")
    assert caught.value.stream == "flag/aiSummarization"
    # The loser now sees the winner's state and can decide again.
    assert bob.view("aiSummarization").percent == 75.0
    await bob.set_percent("aiSummarization", 60, reason="week 3, after all")
    assert (await store.read_stream("flag/aiSummarization"))[-1].actor == "bob"


async def test_followers_fold_events_from_subscribe(store: EventStore, config: ConnConfig, tmp_path: Path) -> None:
    leader = service(store, config, tmp_path / "flags.json")
    follower = service(store, config, tmp_path / "follower.json", BOB)
    await leader.load()
    await follower.load()
    position = (await store.read_all())[-1].position
    await leader.set_percent("smartFolders", 50, reason="week 3")
    new = await store.read_all(after=position)
    assert [follower.apply(event) for event in new] == [True]
    assert follower.apply(new[0]) is False  # already folded
    assert follower.view("smartFolders").percent == 50.0
    assert (await follower.check_export()).state == "pending"
    assert (await follower.sync_export()).state == "ok"
    assert json.loads((tmp_path / "follower.json").read_bytes()) == follower.document()
    # An event it cannot read (a newer Conn's shape) is skipped, never fatal to following.
    await store.append("flag/smartFolders", 2, [NewEvent("FlagChanged", {"after": {"x": 1}})],
                       actor=BOB, at=3.0)
    unreadable = (await store.read_all())[-1]
    assert follower.apply(unreadable) is False
    assert follower.view("smartFolders").percent == 50.0


async def test_hand_edited_file_is_detected_and_never_silently_overwritten(
    store: EventStore, config: ConnConfig, tmp_path: Path
) -> None:
    path = tmp_path / "flags.json"
    flags = service(store, config, path)
    await flags.load()
    path.write_text('{"flags": {}}\n')  # someone edits the file by hand
    assert (await flags.check_export()).state == "edited"
    assert flags.views()[0].export.state == "edited"
    with pytest.raises(ActionError, match=r"change recorded \(flag/checkout_v2 v2\).*edited outside Conn"):
        await flags.set_percent("checkout_v2", 1, reason="stage 1")
    assert (await store.read_stream("flag/checkout_v2"))[-1].payload["change"] == "percent"
    assert path.read_text() == '{"flags": {}}\n'
    with pytest.raises(FileConflict, match=r"flags\.json was edited outside Conn"):
        await flags.export()
    assert (await flags.export(force=True)).state == "ok"
    assert json.loads(path.read_bytes()) == flags.document()


async def test_a_file_conn_never_wrote_is_not_overwritten_at_start(
    store: EventStore, config: ConnConfig, tmp_path: Path
) -> None:
    path = tmp_path / "flags.json"
    path.write_text('{"flags": {"theirs": {}}}')
    flags = service(store, config, path)
    await flags.load()  # does not raise: nobody asked for a write
    status = flags.export_status()
    assert status.state == "edited"
    assert "not written by Conn" in status.message
    assert path.read_text() == '{"flags": {"theirs": {}}}'


async def test_unwritable_export_records_the_change_and_retries(
    store: EventStore, config: ConnConfig, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the export directory should be")
    path = blocker / "flags.json"
    flags = service(store, config, path)
    await flags.load()
    assert flags.export_status().state == "error"
    with pytest.raises(ActionError, match=rf"change recorded.*cannot .*{path}"):
        await flags.kill("voiceMessages", reason="bad audio")
    assert flags.view("voiceMessages").killed  # recorded regardless
    assert flags.view("voiceMessages").export.state == "error"
    blocker.unlink()  # the operator fixes the directory
    await flags.set_percent("smartFolders", 30, reason="next change retries the export")
    assert flags.export_status().state == "ok"
    assert json.loads(path.read_bytes())["flags"]["voiceMessages"]["metadata"] == {"killed": True}


async def test_evaluator_version_mismatch_is_shown(store: EventStore, config: ConnConfig, tmp_path: Path) -> None:
    state = FlagState("legacy_flag", on_weight=1000)
    kind, payload = flag_event(state, None, change="created", evaluator="0.1.0")
    await store.append("flag/legacy_flag", 0, [NewEvent(kind, payload, "old conn")], actor=BOB, at=1.0)
    flags = service(store, config, tmp_path / "flags.json")
    await flags.load()
    old = flags.view("legacy_flag")
    assert (old.evaluator_version, old.evaluator_mismatch) == ("0.1.0", True)
    assert flags.view("checkout_v2").evaluator_mismatch is False
    renewed = await flags.set_percent("legacy_flag", 20, reason="re-save with the new evaluator")
    assert renewed.evaluator_mismatch is False


async def test_unknown_event_types_do_not_break_appends(store: EventStore, config: ConnConfig, tmp_path: Path) -> None:
    flags = service(store, config, tmp_path / "flags.json")
    await flags.load()
    await store.append("flag/checkout_v2", 1, [NewEvent("FlagNoteAdded", {"note": "from a newer conn"})],
                       actor=BOB, at=2.0)
    flags2 = service(store, config, tmp_path / "flags.json")
    await flags2.load()
    view = await flags2.set_percent("checkout_v2", 1, reason="stage 1")
    assert view.version == 3


# --- atomic writes -------------------------------------------------------------------


def test_write_atomic_replaces_whole_files_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "flags.json"
    write_atomic(path, b"one")
    assert path.read_bytes() == b"one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~_umask()
    os.chmod(path, 0o640)
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in path.parent.iterdir()) == ["flags.json"]  # no temp files left


def test_write_errors_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ActionError, match=r"cannot create the directory for .*file/sub/flags.json"):
        write_atomic(tmp_path / "file" / "sub" / "flags.json", b"{}")
    (tmp_path / "dir").mkdir()
    with pytest.raises(ActionError, match=r"cannot write .*/dir"):
        write_atomic(tmp_path / "dir", b"{}")  # a directory cannot be replaced by a file
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == []
    assert read_file(tmp_path / "missing") is None


def test_owned_file_survives_a_crash_between_the_two_renames(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write_owned(path, b"v1")
    old = check_owned(path).current
    # Simulate a crash after the checksum got both hashes but before the file moved.
    checksum_path(path).write_text(f"{'0' * 64}  flags.json\n{old}  flags.json\n")
    assert check_owned(path).edited is False
    write_owned(path, b"v2")
    assert check_owned(path).edited is False
    assert checksum_path(path).read_text().count("\n") == 1  # back to sha256sum -c format


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


async def test_a_secret_pasted_into_a_reason_never_reaches_the_log(
    store: EventStore, config: ConnConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console.secrets import get_secret

    monkeypatch.setenv("CONN_SECRET_DEPLOY_TOKEN", "tok-4f9a2c77e1")
    get_secret("deploy_token")  # resolved once, so registered for redaction
    flags = service(store, config, tmp_path / "flags.json")
    await flags.load()
    await flags.set_percent("calendar_refactor", 10, reason="rolled with tok-4f9a2c77e1 by mistake")
    events = await store.read_stream("flag/calendar_refactor")
    assert events[-1].reason == "rolled with «secret:deploy_token» by mistake"
    assert all("tok-4f9a2c77e1" not in str(e.as_json()) for e in await store.read_all())
