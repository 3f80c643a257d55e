"""`conn audit`: the log as people and scripts read it, and `--verify` on a tampered file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from console.model.events import Actor, NewEvent
from console.model.flags import FlagState, flag_event, group_event
from console.store import open_store


@pytest.fixture
async def config_path(tmp_path: Path) -> Path:
    db = tmp_path / "conn.db"
    store = await open_store(f"sqlite://{db}")
    try:
        for n, reason in enumerate(["stage 1: internal", "stage 2: 10%", "stage 3: 50%"]):
            await store.append(
                "flag/calendar_refactor", n, [NewEvent("FlagChanged", {"percent": n * 10}, reason)],
                actor=Actor("alice", "10.0.0.7"), at=1_767_225_600.0 + n,
            )
        await store.append("incident/1", 0, [NewEvent("IncidentOpened", {"sev": 2})], actor=Actor("bob"), at=1_767_225_700.0)
    finally:
        await store.close()
    path = tmp_path / "conn.toml"
    path.write_text(f'store = "sqlite://{db}"\n')
    return path


def conn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console", *args], capture_output=True, text=True, timeout=60
    )


def test_audit_lists_who_did_what_and_why(config_path: Path) -> None:
    run = conn("audit", "--config", str(config_path))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 4
    assert "flag/calendar_refactor v2 FlagChanged by alice@10.0.0.7 — stage 2: 10%" in lines[1]
    only = conn("audit", "--config", str(config_path), "--stream", "incident/1", "--json")
    rows = [json.loads(line) for line in only.stdout.splitlines()]
    assert [(r["stream"], r["version"], r["actor"]) for r in rows] == [("incident/1", 1, "bob")]
    assert all(len(r["hash"]) == 64 for r in rows)


def test_verify_passes_then_names_the_first_edited_event(config_path: Path) -> None:
    good = conn("audit", "--config", str(config_path), "--verify")
    assert good.returncode == 0, good.stderr
    assert "audit chain ok: 4 events verified" in good.stdout
    db = config_path.parent / "conn.db"
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE events SET reason = 'stage 2: 100%' WHERE position = 2")
    bad = conn("audit", "--config", str(config_path), "--verify")
    assert bad.returncode == 1
    assert "audit chain BROKEN at position 2 (flag/calendar_refactor v2)" in bad.stderr
    assert "edited after it was written" in bad.stderr


async def head_of(db: Path) -> tuple[int, str]:
    store = await open_store(f"sqlite://{db}")
    try:
        (newest,) = await store.read_tail(1)
    finally:
        await store.close()
    return newest.position, newest.hash


async def test_verify_prints_the_head_so_a_lost_tail_can_be_noticed(config_path: Path) -> None:
    db = config_path.parent / "conn.db"
    _, digest = await head_of(db)
    good = conn("audit", "--config", str(config_path), "--verify")
    assert good.returncode == 0, good.stderr
    assert f"audit chain ok: 4 events verified; head position 4 hash {digest[:16]} (" in good.stdout
    as_json = conn("audit", "--config", str(config_path), "--verify", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "ok": True, "events": 4, "head_position": 4, "head_hash": digest
    }
    # Deleting the newest event leaves a valid chain: only the head shows it.
    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM events WHERE position = 4")
    shorter = conn("audit", "--config", str(config_path), "--verify", "--json")
    assert shorter.returncode == 0, shorter.stderr
    head = json.loads(shorter.stdout)
    assert (head["events"], head["head_position"]) == (3, 3)
    assert head["head_hash"] != digest


def test_verify_of_an_empty_log_names_the_genesis_head(tmp_path: Path) -> None:
    path = tmp_path / "conn.toml"
    path.write_text(f'store = "sqlite://{tmp_path / "conn.db"}"\n')
    run = conn("audit", "--config", str(path), "--verify")
    assert run.returncode == 0, run.stderr
    assert "audit chain ok: 0 events verified; head position 0 hash 0000000000000000" in run.stdout


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("{not json", "payload at position 2 is not valid JSON"),
        ("[1,2]", "payload at position 2 is not a JSON object (found an array)"),
    ],
)
def test_verify_reports_an_unreadable_row_as_a_broken_chain(
    config_path: Path, payload: str, problem: str
) -> None:
    with sqlite3.connect(config_path.parent / "conn.db") as raw:
        raw.execute("UPDATE events SET payload = ? WHERE position = 2", (payload,))
    bad = conn("audit", "--config", str(config_path), "--verify")
    assert bad.returncode == 1
    assert f"conn: audit chain BROKEN: {problem}" in bad.stderr
    assert "Traceback" not in bad.stderr
    as_json = conn("audit", "--config", str(config_path), "--verify", "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and problem in report["problem"]
    listing = conn("audit", "--config", str(config_path))  # not --verify: still an error, not a crash
    assert listing.returncode == 1
    assert problem in listing.stderr and "Traceback" not in listing.stderr


def test_verify_json_names_the_broken_position(config_path: Path) -> None:
    with sqlite3.connect(config_path.parent / "conn.db") as raw:
        raw.execute("UPDATE events SET reason = 'edited' WHERE position = 3")
    run = conn("audit", "--config", str(config_path), "--verify", "--json")
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert (report["ok"], report["position"], report["stream"], report["version"]) == (
        False, 3, "flag/calendar_refactor", 3
    )


def test_limit_prints_the_newest_events(config_path: Path) -> None:
    run = conn("audit", "--config", str(config_path), "--limit", "2", "--json")
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["position"] for line in run.stdout.splitlines()] == [3, 4]
    none = conn("audit", "--config", str(config_path), "--limit", "0")
    assert none.stdout.strip() == "(no events)"
    in_stream = conn("audit", "--config", str(config_path), "--stream", "flag/calendar_refactor",
                     "--limit", "1", "--json")
    assert [json.loads(line)["version"] for line in in_stream.stdout.splitlines()] == [3]


def test_bad_stream_name_is_a_clear_error(config_path: Path) -> None:
    run = conn("audit", "--config", str(config_path), "--stream", "no slash")
    assert run.returncode == 1
    assert "is not a stream name" in run.stderr


@pytest.fixture
async def flag_log(tmp_path: Path) -> Path:
    """A log a console would write: a flag created, rolled out, turned off and on, keys, a kill."""
    db = tmp_path / "conn.db"
    store = await open_store(f"sqlite://{db}")
    base = FlagState(name="checkout_v2", enabled=False)
    steps = [
        (base, None, "[flags.define.checkout_v2] in config"),
        (replace(base, enabled=True), base, "turn it on"),
        (replace(base, enabled=True, on_weight=1000), replace(base, enabled=True), "widen"),
        (replace(base, enabled=True, on_weight=1000, allow=("qa-1",)),
         replace(base, enabled=True, on_weight=1000), "qa"),
        (replace(base, enabled=True, on_weight=1000, allow=("qa-1",), killed=True),
         replace(base, enabled=True, on_weight=1000, allow=("qa-1",)), "5xx spike"),
    ]  # fmt: skip
    try:
        for version, (after, before, reason) in enumerate(steps):
            kind, payload = flag_event(after, before, change="x", evaluator="2.0")
            await store.append("flag/checkout_v2", version, [NewEvent(kind, payload, reason)],
                               actor=Actor("alice"), at=1_767_225_600.0 + version)
        kind, payload = group_event("internal", ["a", "b", "c"], ["a", "b"])
        await store.append("flag/@internal", 0, [NewEvent(kind, payload, "config changed")],
                           actor=Actor("bob"), at=1_767_225_700.0)
    finally:
        await store.close()
    path = tmp_path / "conn.toml"
    path.write_text(f'store = "sqlite://{db}"\n')
    return path


def test_audit_lines_say_what_each_flag_event_changed(flag_log: Path) -> None:
    run = conn("audit", "--config", str(flag_log))
    assert run.returncode == 0, run.stderr
    tails = [line.split("Z ", 1)[1] for line in run.stdout.splitlines()]
    assert tails == [
        "flag/checkout_v2 v1 created (0%, off) by alice — [flags.define.checkout_v2] in config",
        "flag/checkout_v2 v2 off → on by alice — turn it on",
        "flag/checkout_v2 v3 0% → 10% by alice — widen",
        "flag/checkout_v2 v4 allowlist +qa-1 by alice — qa",
        "flag/checkout_v2 v5 kill by alice — 5xx spike",
        "flag/@internal v1 group internal: 3 keys (+1 −0) by bob — config changed",
    ]


def test_audit_json_keeps_the_stored_event_and_adds_a_summary(flag_log: Path) -> None:
    run = conn("audit", "--config", str(flag_log), "--json", "--stream", "flag/checkout_v2")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["summary"] for r in rows] == [
        "created (0%, off)", "off → on", "0% → 10%", "allowlist +qa-1", "kill"
    ]
    assert set(rows[-1]) == {
        "position", "id", "stream", "version", "type", "time", "actor", "reason", "payload",
        "prev_hash", "hash", "summary",
    }
    assert rows[-1]["type"] == "FlagChanged"
    assert rows[-1]["payload"]["after"]["killed"] is True
