"""`conn audit`: the log as people and scripts read it, and `--verify` on a tampered file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from console.model.events import Actor, NewEvent
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


def test_bad_stream_name_is_a_clear_error(config_path: Path) -> None:
    run = conn("audit", "--config", str(config_path), "--stream", "no slash")
    assert run.returncode == 1
    assert "is not a stream name" in run.stderr
