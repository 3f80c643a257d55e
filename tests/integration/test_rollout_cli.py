"""The rollout CLI twins as an operator or a pipeline runs them: real processes, a real SQLite store.

`conn advance|hold|resume|rollback` execute the commands the keys do, checked
by the same bus; `conn watch --until-done` waits on a run; `conn check`
prints detection budgets and holds rollouts to ``max_detection``; `conn
rollout backtest` replays the criteria over a recorded history. Verdicts come
from the demo fleet judged by a leader running in this process.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.cli.rollout import parse_until
from console.config import load_config
from console.demo.democonfig import render_config
from console.demo.fleet import BASELINES, DemoFleet, FleetInfo
from console.engine.core import Engine
from console.errors import CommandError
from console.model.history import SLICE_SECONDS, HistorySlice, judgement_data
from console.model.live import SignalValue
from console.model.rollouts import pending_actions
from console.store import EventStore, open_store
from tests.fixtures.fleet import fast_fleet_fixture, flag_file_fixture
from tests.fixtures.waiting import until

__all__ = ["fast_fleet_fixture", "flag_file_fixture"]

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

QUICK = """
# One stage, no flag, no criteria: starts and completes at once.
[rollouts.quick]
canary = "checkout-canary"

[[rollouts.quick.stages]]
name = "all"
percent = 100
"""


def cli_config(text: str, path: Path) -> Path:
    """The demo config with a short first bake, a gate on stage 2 that always fails, and `quick`."""
    text = text.replace('bake = "15s"', 'bake = "5s"')
    text = text.replace('bake = "20s"', 'bake = "0s"\ngate = ["p95 < 1ms"]', 1)
    text = text.replace('bake = "20s"', 'bake = "0s"')
    path.write_text(text + QUICK)
    return path


def offline_config(tmp_path: Path) -> Path:
    """The same config for services nobody runs (for what needs no verdicts)."""
    urls = {"checkout": "http://127.0.0.1:9", "checkout-canary": "http://127.0.0.1:9"}
    return cli_config(render_config(tmp_path / "state", urls, BASELINES), tmp_path / "conn.toml")


def environment(user: str = "alice") -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CONN_")},
            "USER": user, "LOGNAME": user, "NO_COLOR": "1"}


def conn(config: Path, *argv: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    """`conn ARGV --config CONFIG`, with no terminal (stdin is empty)."""
    return subprocess.run(
        [sys.executable, "-m", "console", *argv, "--config", str(config)],
        cwd=REPO, env=environment(user), input="", capture_output=True, text=True, timeout=60,
    )


async def run(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(conn, config, *argv)


async def rollouts(config: Path) -> dict[str, dict[str, object]]:
    listed = await run(config, "rollout", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {r["name"]: r for r in json.loads(listed.stdout)["rollouts"]}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    opened = await open_store(load_config(offline_config(tmp_path))[0].store)
    yield opened
    await opened.close()


# --- changes, refusals and the watch, with a leader judging the demo fleet ----------------------


async def test_changes_refusals_override_and_rollback(
    fast_fleet: tuple[DemoFleet, FleetInfo], tmp_path: Path
) -> None:
    _, info = fast_fleet
    path = cli_config(info.config_path.read_text(), tmp_path / "cli.toml")
    config = load_config(path)[0]
    store = await open_store(config.store)
    try:
        async with Engine(config, store, retry_leadership=0.1) as leader:
            await until(lambda: leader.role == "leader", within=10, what="the in-process engine leads")
            listed = await rollouts(path)
            assert set(listed) == {"checkout", "quick"}
            assert (listed["checkout"]["run"], listed["checkout"]["phase"]) == (0, "pending")
            assert {"stage_index", "bake_remaining", "held_by", "last", "gate", "abort", "gate_passing",
                    "rollback_at", "judged_at"} <= set(listed["checkout"])

            refused = await run(path, "advance", "checkout", "--reason", "release 1.43")
            assert refused.returncode == 2
            assert ("refusing to start run 1 of checkout: stage 1 of 4 (internal: checkout_v2 at 0% "
                    "+internal): no terminal to confirm on; pass --yes") in refused.stderr
            started = await run(path, "advance", "checkout", "--reason", "release 1.43", "--yes")
            assert started.returncode == 0, started.stderr
            assert "checkout: run 1 started" in started.stdout
            # The leader sets the stage's flag audience first (refusals come in order: actions, then bake).
            def stage_one_done() -> bool:
                panel = leader.snapshot.rollout("checkout")
                return panel is not None and panel.state.run == 1 and not pending_actions(
                    panel.state, config.rollouts["checkout"])

            await until(stage_one_done, within=10, what="the leader saw run 1 and set stage 1's flag")
            baking = await run(path, "advance", "checkout", "--reason", "too soon", "--yes")
            assert baking.returncode == 1
            assert "checkout: stage 1 (internal) is still baking" in baking.stderr

            held = await run(path, "hold", "checkout", "--reason", "QA on it", "--until", "30m", "--yes")
            assert held.returncode == 0, held.stderr
            text = (await run(path, "rollout", "list")).stdout
            assert "held by alice" in text and ": QA on it" in text, text
            blocked = await run(path, "advance", "checkout", "--reason", "go", "--yes")
            assert blocked.returncode == 1 and "held by alice: QA on it" in blocked.stderr
            assert "resume first" in blocked.stderr
            resumed = await run(path, "resume", "checkout", "--reason", "QA done", "--yes")
            assert resumed.returncode == 0, resumed.stderr

            # Baked, the stage's flag set by the leader, ten probes judged: the gate passes.
            async def advanced() -> bool:
                result = await run(path, "advance", "checkout", "--reason", "stage 1 good", "--yes")
                return result.returncode == 0
            await until(advanced, within=40, step=1, what="an advance to stage 2 is accepted")

            # Stage 2's own gate always fails: refused with the reason, then overridden.
            async def gate_refuses() -> bool:
                result = await run(path, "advance", "checkout", "--reason", "go on", "--yes")
                assert result.returncode == 1, result.stdout
                return "the gate fails: " in result.stderr and "p95 < 1ms" in result.stderr
            await until(gate_refuses, within=20, step=0.5, what="the failing gate refuses the advance")
            override = await run(path, "advance", "checkout", "--reason", "cache warms after 50%",
                                 "--override", "--yes")
            assert override.returncode == 0, override.stderr
            events = await store.read_stream("rollout/checkout")
            overridden = next(e for e in events if e.type == "RolloutAdvanced" and e.payload["override"])
            assert overridden.payload["override"] == "cache warms after 50%"
            assert "p95 < 1ms" in overridden.payload["gate_failure"]
            assert overridden.actor.startswith("alice")
            text = (await run(path, "rollout", "list")).stdout
            assert "over a failing gate: cache warms after 50%" in text, text
            status = await run(path, "status", "--no-fail")
            assert "rollout checkout:" in status.stdout and "stage 3/4 50%" in status.stdout, status.stdout

            refused = await run(path, "rollback", "checkout", "--reason", "bad canary")
            assert refused.returncode == 2
            assert ("refusing to ROLL BACK checkout run 1 at stage 3 (50%): checkout_v2 off for everyone, "
                    "then 0 rollback actions") in refused.stderr
            rolled = await run(path, "rollback", "checkout", "--reason", "bad canary", "--yes")
            assert rolled.returncode == 0, rolled.stderr
            watched = await run(path, "watch", "checkout", "--until-done")
            assert watched.returncode == 1, watched.stdout + watched.stderr
            assert "rolled back by" in watched.stdout, watched.stdout
            kill = (await store.read_stream("flag/checkout_v2"))[-1]
            assert kill.payload["change"] == "kill" and kill.actor.startswith("conn-auto@")
    finally:
        await store.close()


# --- two operators at once, and the watch's exit codes ------------------------------------------


def on_terminal(config: Path, user: str, *argv: str) -> tuple[subprocess.Popen[bytes], int]:
    """`conn ARGV` with a terminal for its prompt (stderr apart); returns it and the terminal."""
    terminal, end = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "console", *argv, "--config", str(config)],
        cwd=REPO, env=environment(user), stdin=end, stdout=end, stderr=subprocess.PIPE,
    )
    os.close(end)
    return process, terminal


def read_until(terminal: int, text: bytes, within: float = 30) -> bytes:
    seen, deadline = b"", time.monotonic() + within
    while text not in seen:
        assert time.monotonic() < deadline, f"no {text!r} on the terminal: {seen!r}"
        if select.select([terminal], [], [], 0.1)[0]:
            seen += os.read(terminal, 4096)
    return seen


def test_two_operators_advance_at_once_one_wins_the_other_is_told_who(tmp_path: Path) -> None:
    path = offline_config(tmp_path)
    prompts = [on_terminal(path, user, "advance", "quick", "--reason", f"{user} ships")
               for user in ("alice", "bob")]
    for _, terminal in prompts:  # both have read the log before either answers
        assert b"start run 1 of quick: stage 1 of 1 (all)? [y/N]" in read_until(terminal, b"[y/N]")
    for _, terminal in prompts:
        os.write(terminal, b"y\n")
    outcomes = {}
    for (process, terminal), user in zip(prompts, ("alice", "bob"), strict=True):
        _, stderr = process.communicate(timeout=60)
        os.close(terminal)
        outcomes[user] = (process.returncode, stderr.decode())
    assert sorted(code for code, _ in outcomes.values()) == [0, 1], outcomes
    winner = next(user for user, (code, _) in outcomes.items() if code == 0)
    loser = next(user for user in outcomes if user != winner)
    told = outcomes[loser][1]
    assert "quick: not done — someone else changed it first: " in told, told
    assert f"first: {winner} " in told and f"({winner} ships)" in told, told  # who, and why
    assert "on rollout/quick v2 at 20" in told, told  # and when


def test_watch_until_done_exits_0_on_completion_and_2_on_errors(tmp_path: Path) -> None:
    path = offline_config(tmp_path)
    assert conn(path, "advance", "quick", "--reason", "go", "--yes").returncode == 0
    watching = subprocess.Popen(
        [sys.executable, "-m", "console", "watch", "quick", "--until-done", "--config", str(path)],
        cwd=REPO, env=environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(2)  # it is following
        assert watching.poll() is None, watching.communicate()
        done = conn(path, "advance", "quick", "--reason", "all good", "--yes")
        assert done.returncode == 0, done.stderr
        stdout, stderr = watching.communicate(timeout=30)
    finally:
        watching.kill()
    assert watching.returncode == 0, stdout + stderr
    lines = stdout.splitlines()
    assert "quick: run 1 ready, stage 1/1 all (100%)" in lines[0], lines
    assert any("quick: run 1 complete" in line for line in lines), lines
    assert any("completed run 1 by alice: all good" in line for line in lines), lines
    again = conn(path, "watch", "quick", "--until-done")
    assert again.returncode == 0 and "run 1 complete" in again.stdout  # at once

    unknown = conn(path, "watch", "quik", "--until-done")
    assert unknown.returncode == 2 and "no rollout named 'quik'. Did you mean 'quick'?" in unknown.stderr
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database at all" * 100)
    elsewhere = tmp_path / "broken.toml"
    elsewhere.write_text("\n".join(
        f'store = "sqlite:///{broken}"' if line.startswith("store = ") else line
        for line in path.read_text().splitlines()))
    unreachable = conn(elsewhere, "watch", "quick", "--until-done")
    assert unreachable.returncode == 2, unreachable.stdout + unreachable.stderr
    assert unreachable.stderr.startswith("conn: ")


def test_hold_until_reads_a_duration_an_iso_time_or_the_next_time_of_day() -> None:
    now = 1_767_268_800.0  # 2026-01-01 12:00:00 UTC
    assert parse_until("30m", now) == now + 1800
    assert parse_until("2026-01-01T17:00:00Z", now) == now + 5 * 3600
    assert parse_until("17:00Z", now) == now + 5 * 3600
    assert parse_until("11:00Z", now) == now + 23 * 3600  # passed today: tomorrow's
    with pytest.raises(CommandError, match="--until 'soon' is not a time: give a duration from now"):
        parse_until("soon", now)


# --- conn check ------------------------------------------------------------------------------------


def test_check_prints_budgets_and_holds_rollouts_to_max_detection(tmp_path: Path) -> None:
    path = offline_config(tmp_path)
    ok = conn(path, "check")
    assert ok.returncode == 0, ok.stderr
    assert "rollout checkout: checkout-canary (baseline checkout), max detection 1m 30s" in ok.stdout
    row = next(line for line in ok.stdout.splitlines() if "error_rate > 5% for 10s" in line)
    assert row.split() == ["abort.criteria[0]", "error_rate", ">", "5%", "for", "10s", "rollback", "≤",
                           "17s", "(10s", "for", "+", "1s", "probe", "+", "1s", "evaluation", "+", "5s",
                           "grace)"]
    assert "stages[1].gate[0]" in ok.stdout and "p95 < 1ms" in ok.stdout

    path.write_text(path.read_text().replace('max_detection = "90s"', 'max_detection = "20s"'))
    late = conn(path, "check")
    assert late.returncode == 1
    assert ("rollouts.checkout.abort.criteria[1]: 'health_failures > 3 within 30s' can take ≤ 37s "
            "(30s within + 1s probe + 1s evaluation + 5s grace) to start a rollback, longer than "
            "max_detection (20s)") in late.stderr
    assert "abort.criteria[0]" not in late.stderr  # 17s is within 20s
    assert "error_rate > 5% for 10s" in late.stdout  # the budgets are still printed


# --- backtest ------------------------------------------------------------------------------------


def history(service: str, start: float, *, error_rate: float, failures: int = 0) -> HistorySlice:
    """One 10 s slice as the leader writes it: ten probes, the signals the live row showed."""
    at = start + SLICE_SECONDS - 1
    values = [
        SignalValue(name="error_rate", label="errors", value=error_rate, unit="%", source="health-json",
                    at=at, state="critical" if error_rate > 5 else "ok", detail=""),
        SignalValue(name="p95", label="p95", value=80.0, unit="ms", source="health-json", at=at,
                    state="ok", detail=""),
        SignalValue(name="cache_hit_rate", label="cache hit", value=85.0, unit="%", source="health-json",
                    at=at, state="ok", detail=""),
    ]
    data = judgement_data(as_of=at, health="up", reason="HTTP 200", health_since=start, last_at=at,
                          last_health="up", last_health_since=start, observed_at=at, signals=values,
                          timers={})
    return HistorySlice(service, SLICE_SECONDS, start, 10, failures, None, data)


async def test_backtest_finds_the_breach_in_a_recorded_history(tmp_path: Path, store: EventStore) -> None:
    path = offline_config(tmp_path)  # the store's config (the fixture opened its store)
    now = time.time()
    first = math.floor(now / SLICE_SECONDS) * SLICE_SECONDS - 600
    breach = (first + 240, first + 360)  # two minutes of 7% errors on the canary
    slices = []
    for start in range(int(first), int(now), SLICE_SECONDS):
        bad = breach[0] <= start < breach[1]
        slices.append(history("checkout-canary", start, error_rate=7.0 if bad else 0.05))
        slices.append(history("checkout", start, error_rate=0.05))
    await store.write_history(slices)

    result = await run(path, "rollout", "backtest", "checkout", "--since", "10m")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("backtest of checkout: 7 criteria over checkout-canary (baseline checkout)")
    assert lines[1].startswith("would have rolled back at ")
    assert "abort error_rate > 5% for 10s: error_rate 7.00% > 5.00% for 10s" in lines[1], lines
    assert "abort error_rate > 5% for 10s  (abort.criteria[0]; fail: rollback)" in lines
    report = json.loads((await run(path, "rollout", "backtest", "checkout", "--since", "10m", "--json")).stdout)
    assert report["first_rollback"]["criterion"] == "error_rate > 5% for 10s"
    # The first breached slice ends at breach[0] + 10; "for 10s" holds one slice later; then the 5s grace.
    assert report["first_rollback"]["at"] == breach[0] + 20 + 5
    by_text = {c["criterion"]: c for c in report["criteria"]}
    gate = by_text["error_rate < 1%"]
    assert gate["counts"]["fail"] == 12 and gate["triggers"][0]["action"] == "hold"
    assert by_text["p95 < 1ms"]["role"] == "gate"  # stage 2's own gate, replayed too
    assert by_text["health_failures > 3 within 30s"]["triggers"] == []

    unknown = await run(path, "rollout", "backtest", "checkot")
    assert unknown.returncode == 1 and "Did you mean 'checkout'?" in unknown.stderr
