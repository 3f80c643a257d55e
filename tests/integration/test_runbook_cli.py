"""`conn runbook list|show|run|check` as an operator, a pipeline and CI run them.

Real `conn` processes (``python -m console``, so the tree under test runs),
a real SQLite store, real shell steps. "High error rate" runs against the
demo fleet and stops where it really does (no rollout is under way, so
`conn rollback` fails); the run and the incident's timeline and postmortem
are read back. A console killed with SIGKILL in the middle of a step leaves
the step running in the log: it is shown as running while that console could
still be alive, as interrupted after, and never runs again without a reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.cli import build_parser
from console.cli.runbook import execute
from console.config import load_config
from console.demo.democonfig import render_config
from console.demo.fleet import BASELINES, DemoFleet, FleetInfo
from console.model.events import Event
from console.store import EventStore, open_store
from tests.fixtures.fleet import demo_fleet_fixture, flag_file_fixture
from tests.fixtures.waiting import until

__all__ = ["demo_fleet_fixture", "flag_file_fixture"]

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "console" / "demo" / "runbooks"
pytestmark = pytest.mark.slow

DRILL = """---
title: Drill for ${SERVICE}
service: checkout
vars:
  LIMIT: "5"
secrets: [drill_token]
---

# Drill

> [!WARNING]
> Only in the drill environment.

## Read first

Read the dashboard.

## Count

```sh {"name": "count"}
echo "checking ${SERVICE} under ${LIMIT}"
echo "token $DRILL_TOKEN"
echo "to stderr" >&2
printf '\\033[31mred\\033[0m [bold]markup[/bold]\\n'
```

## Look

- [ ] Looked at the graph
- [ ] Told the channel

## Break

```sh {"name": "break", "conn.rollback": "undo"}
exit 3
```

## Undo

```sh {"name": "undo"}
echo undone
```

## Restart

```sh {"name": "restart", "conn.dangerous": true}
echo "restarting ${SERVICE}"
```
"""

TOKEN = "drill-t0ken-9f8e7d"


def environment(tmp_path: Path, user: str = "alice") -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CONN_", "XDG_", "SSH_"))},
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"), "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", "CONN_SECRET_DRILL_TOKEN": TOKEN,
        "USER": user, "LOGNAME": user, "NO_COLOR": "1",
    }


def local_config(tmp_path: Path, runbooks: dict[str, str]) -> Path:
    """A config whose ``[runbooks] paths`` is relative (resolved against its folder)."""
    (tmp_path / "books").mkdir(exist_ok=True)
    for name, text in runbooks.items():
        (tmp_path / "books" / f"{name}.md").write_text(text)
    config = tmp_path / "conn.toml"
    config.write_text(
        f'store = "sqlite:///{tmp_path / "conn.db"}"\n'
        '[services.checkout]\nhealth_url = "http://127.0.0.1:9/health"\n'
        '[runbooks]\npaths = ["books"]\n'
    )
    return config


def conn(config: Path | None, *argv: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`conn ARGV [--config CONFIG]` with no terminal (stdin is empty)."""
    tail = ["--config", str(config)] if config is not None else []
    return subprocess.run(
        [sys.executable, "-m", "console", *argv, *tail], cwd=REPO, env=environment(tmp_path),
        input="", capture_output=True, text=True, timeout=timeout, check=False,
    )


def ok(config: Path, *argv: str, tmp_path: Path) -> str:
    done = conn(config, *argv, tmp_path=tmp_path)
    assert done.returncode == 0, f"{argv}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    """The store of :func:`local_config` (opened before any `conn` writes to it)."""
    opened = await open_store(f"sqlite:///{tmp_path / 'conn.db'}")
    yield opened
    await opened.close()


def types(events: list[Event], step: int | None = None) -> list[str]:
    return [e.type.removeprefix("runbook.") for e in events if step is None or e.payload.get("step") == step]


# --- reading: list, show, check ------------------------------------------------------------------


def test_list_show_and_check_the_shipped_runbooks(tmp_path: Path) -> None:
    urls = {"checkout": "http://127.0.0.1:9", "checkout-canary": "http://127.0.0.1:9"}
    config = tmp_path / "conn-demo.toml"
    config.write_text(render_config(tmp_path / "state", urls, BASELINES))

    listing = ok(config, "runbook", "list", tmp_path=tmp_path).splitlines()
    assert listing[0].split() == ["NAME", "TITLE", "SERVICE", "SEVERITY", "STEPS", "LAST", "RUN"]
    assert [line.split()[0] for line in listing[1:]] == ["high-error-rate", "service-outage", "slow-responses"]
    assert re.match(r"high-error-rate\s+High error rate\s+any\s+SEV2\s+6\s+never$", listing[1]), listing
    document = json.loads(ok(config, "runbook", "list", "--json", tmp_path=tmp_path))
    assert {r["name"]: r["steps"] for r in document["runbooks"]} == {
        "high-error-rate": 6, "service-outage": 4, "slow-responses": 6}
    assert document["broken"] == [] and document["runbooks"][0]["last_run"] is None

    shown = ok(config, "runbook", "show", "service-outage", tmp_path=tmp_path)
    assert "service-outage — Service outage" in shown
    assert "⚠ Users are affected now. Roll back before you debug." in shown
    assert re.search(r"ROLLOUT\s+the rollout of the service in the config \(declared without a default\)", shown)
    assert re.search(r"INCIDENT\s+the incident \(--incident ID\)", shown)
    assert "  2. ⚠ DANGEROUS Roll back  [command, rollback, timeout 1m]" in shown
    assert """     $ conn rollback "${ROLLOUT}" --yes \\""" in shown
    assert "     confirm: type 'roll back ${ROLLOUT}' to run it" in shown
    assert "     if it fails: offers step 2 (rollback) at once" in shown
    assert "     [ ] Updated the status page" in shown
    unknown = conn(config, "runbook", "show", "high-eror-rate", tmp_path=tmp_path)
    assert unknown.returncode == 1 and "Did you mean 'high-error-rate'?" in unknown.stderr

    checked = conn(None, "runbook", "check", str(SHIPPED), tmp_path=tmp_path)  # no config needed
    assert checked.returncode == 0, checked.stderr
    assert f"ok      {SHIPPED / 'high-error-rate.md'}  (6 steps)" in checked.stdout
    assert checked.stdout.rstrip().endswith("3 runbooks: 3 ok, 0 broken")


def test_check_and_list_name_the_line_of_each_broken_runbook(tmp_path: Path) -> None:
    config = local_config(tmp_path, {
        "drill": DRILL,
        "unclosed": "# Unclosed\n\n## Step\n\n```sh\necho never closed\n",
        "unknown-key": '## Step\n\ntext\n\n```sh {"name": "x", "conn.timout": "5s"}\necho\n```\n',
    })
    checked = conn(None, "runbook", "check", str(tmp_path / "books"), tmp_path=tmp_path)
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    assert lines[0] == f"ok      {tmp_path / 'books' / 'drill.md'}  (6 steps)"
    assert re.fullmatch(rf"BROKEN  {tmp_path / 'books' / 'unclosed.md'} line 5: .*never closed.*", lines[1]), lines
    assert re.fullmatch(rf"BROKEN  {tmp_path / 'books' / 'unknown-key.md'} line 5: unknown attribute "
                        r"'conn.timout'\. Did you mean 'conn.timeout'\?.*", lines[2]), lines
    assert lines[3] == "3 runbooks: 1 ok, 2 broken"
    one = conn(None, "runbook", "check", str(tmp_path / "books" / "drill.md"), tmp_path=tmp_path)
    assert one.returncode == 0 and "1 runbook: 1 ok, 0 broken" in one.stdout
    missing = conn(None, "runbook", "check", str(tmp_path / "nowhere"), tmp_path=tmp_path)
    assert missing.returncode == 2 and "nowhere: no such file or folder" in missing.stderr

    listing = ok(config, "runbook", "list", tmp_path=tmp_path)
    assert "unclosed: unclosed.md line 5:" in listing and "unknown-key: unknown-key.md line 5:" in listing
    shown = ok(config, "runbook", "show", "drill", tmp_path=tmp_path)
    assert "drill_token as $DRILL_TOKEN: set (environment)" in shown and TOKEN not in shown
    refused = conn(config, "runbook", "run", "unclosed", "--yes", tmp_path=tmp_path)
    assert refused.returncode == 1 and "runbook 'unclosed' cannot be read: unclosed.md line 5" in refused.stderr


# --- running without a terminal ----------------------------------------------------------------


async def test_yes_runs_every_step_and_records_what_it_did(tmp_path: Path, store: EventStore) -> None:
    config = local_config(tmp_path, {"drill": DRILL})
    refused = conn(config, "runbook", "run", "drill", tmp_path=tmp_path)
    assert refused.returncode == 2
    assert "refusing to run runbook drill: no terminal to confirm its steps on; pass --yes" in refused.stderr
    assert await store.read_all() == []  # nothing started

    run = conn(config, "runbook", "run", "drill", "--yes", tmp_path=tmp_path)
    assert run.returncode == 1, run.stderr  # step 4 exits 3: the run stops there
    out = run.stdout
    assert "drill-1 started by alice: Drill for checkout (6 steps, version " in out
    assert "⚠ Only in the drill environment." in out
    # The resolved command, then its output as it came: literal text, stderr marked, the secret never.
    assert '  $ echo "checking checkout under 5"\n' in out
    assert "  checking checkout under 5\n  token «secret:drill_token»\n" in out
    assert "! to stderr\n" in out and "  red [bold]markup[/bold]\n" in out
    assert "\x1b" not in out and TOKEN not in out + run.stderr
    assert re.search(r"✓ step 2 succeeded: exit 0 in \d+\.\ds", out)
    assert "  [x] Looked at the graph (ticked by --yes)" in out
    assert "✗ step 4 failed: exit 3 in" in out
    assert "drill-1 stopped by a failure at step 4 (Break); resume it:\n  conn runbook run drill --step 4\n" in out
    assert "its rollback, step 5 (undo), can run now: conn runbook run drill --step 5" in out
    assert "restart" not in out.split("✗ step 4")[1]  # nothing after the failure ran

    events = await store.read_stream("runbook/drill-1")
    assert types(events) == [
        "started", "step_finished",  # the note, acknowledged
        "step_previewed", "step_started", "step_finished",
        "check_ticked", "check_ticked", "step_finished",
        "step_previewed", "step_started", "step_failed",
    ]
    assert events[1].reason == "--yes"  # the note, read for the operator
    assert [e.reason for e in events if e.type == "runbook.check_ticked"] == ["--yes", "--yes"]
    assert all(e.actor == "alice" for e in events)
    assert events[3].payload["command"].startswith('echo "checking checkout under 5"')
    assert events[-1].payload["exit_code"] == 3 and events[-1].payload["outcome"] == "failed"
    assert TOKEN not in json.dumps([e.payload for e in events])

    # The rollback runs out of turn; the run then still waits on step 4.
    undo = conn(config, "runbook", "run", "drill", "--step", "5", "--yes", tmp_path=tmp_path)
    assert undo.returncode == 1 and "✓ step 5 succeeded" in undo.stdout, undo.stdout
    assert "drill-1: step 4 (Break) is failed; resume from it: conn runbook run drill --step 4" in undo.stderr
    assert (await store.read_stream("runbook/drill-1"))[-1].payload["step"] == 5
    done = conn(config, "runbook", "run", "drill", "--step", "4", "--yes", tmp_path=tmp_path)
    assert done.returncode == 1 and "✗ step 4 failed: exit 3" in done.stdout  # a retry: it fails again
    listed = json.loads(ok(config, "runbook", "list", "--json", tmp_path=tmp_path))
    assert listed["runbooks"][0]["last_run"] | {"started_at": 0} == {
        "id": "drill-1", "status": "failed", "step": 4, "incident": None, "started_at": 0, "ended_at": None}


def test_a_step_that_hangs_is_killed_at_its_timeout_and_a_missing_command_says_so(tmp_path: Path) -> None:
    config = local_config(tmp_path, {
        "hang": '## Hang\n\n```sh {"conn.timeout": "1s"}\necho waiting\nsleep 30\n```\n',
        "typo": "## Typo\n\n```sh\nkubectll get pods\n```\n",
    })
    started = time.monotonic()
    hung = conn(config, "runbook", "run", "hang", "--yes", tmp_path=tmp_path)
    assert hung.returncode == 1
    assert time.monotonic() - started < 25  # killed long before sleep 30 ends
    assert "  waiting\n✗ step 1 timed out: killed after the 1s timeout\n" in hung.stdout, hung.stdout
    typo = conn(config, "runbook", "run", "typo", "--yes", tmp_path=tmp_path)
    assert typo.returncode == 1
    assert "! conn-step: line 1: kubectll: command not found" in typo.stdout, typo.stdout
    assert "✗ step 1 failed: exit 127: command not found" in typo.stdout


def test_missing_variables_are_named_with_how_to_give_them(tmp_path: Path) -> None:
    urls = {"checkout": "http://127.0.0.1:9", "checkout-canary": "http://127.0.0.1:9"}
    config = tmp_path / "conn-demo.toml"
    config.write_text(render_config(tmp_path / "state", urls, BASELINES))
    missing = conn(config, "runbook", "run", "high-error-rate", "--yes", tmp_path=tmp_path)
    assert missing.returncode == 2
    assert ("conn: high-error-rate needs a value for INCIDENT, ROLLOUT, SERVICE: give --var INCIDENT=… "
            "--var ROLLOUT=… --var SERVICE=… (or --incident ID for SERVICE and INCIDENT)") in missing.stderr
    bad = conn(config, "runbook", "run", "high-error-rate", "--yes", "--var", "service=checkout", tmp_path=tmp_path)
    assert bad.returncode == 2 and "give NAME=VALUE, NAME in capitals" in bad.stderr
    unknown = conn(config, "runbook", "run", "high-error-rate", "--yes", "--incident", "INC-7", tmp_path=tmp_path)
    assert unknown.returncode == 1 and "INC-7" in unknown.stderr
    assert json.loads(ok(config, "runbook", "list", "--json", tmp_path=tmp_path))["runbooks"][0]["last_run"] is None


# --- high error rate on the demo fleet -------------------------------------------------------------


async def test_high_error_rate_on_the_demo_fleet_stops_at_the_rollback(
    demo_fleet: tuple[DemoFleet, FleetInfo], tmp_path: Path
) -> None:
    _, info = demo_fleet
    config = info.config_path
    ok(config, "incident", "open", "--sev", "2", "--service", "checkout", "checkout errors", tmp_path=tmp_path)
    run = conn(config, "runbook", "run", "high-error-rate", "--incident", "INC-1", "--yes", tmp_path=tmp_path)
    # No rollout is under way on a fresh demo, so `conn rollback` refuses and the run stops there.
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    assert "high-error-rate-1 started for INC-1 by alice: High error rate (6 steps" in out
    assert "⚠ Do not restart checkout to make the errors go away" in out
    assert "== step 1/6: Confirm the error rate [command]\n  $ conn status --no-fail\n" in out
    assert re.search(r"\n    checkout +up .* p95 .*\n", out), out  # conn status's own lines, streamed
    assert '  $ conn rollout list\n    conn audit --stream "rollout/checkout" --limit 10\n' in out
    assert "  [x] Checked for deploys of checkout outside Conn in the last hour" in out
    assert "== step 4/6: Roll back the rollout [command]  ⚠ DANGEROUS" in out
    assert '  $ conn rollback "checkout" --yes \\\n' in out and "  confirmed by --yes" in out
    assert "! conn: checkout: checkout has never been started; there is nothing to roll back" in out
    assert "✗ step 4 failed: exit 1 in" in out
    assert "conn runbook run high-error-rate --incident INC-1 --step 4" in out

    store = await open_store(load_config(config)[0].store)
    try:
        events = await store.read_stream("runbook/high-error-rate-1")
    finally:
        await store.close()
    assert events[0].payload["incident"] == "INC-1" and events[0].payload["vars"]["ROLLOUT"] == "checkout"
    assert types(events, 4) == ["step_previewed", "step_confirmed", "step_started", "step_failed"]
    confirmed = next(e for e in events if e.type == "runbook.step_confirmed")
    assert confirmed.reason == "--yes"
    assert [e.reason for e in events if e.type == "runbook.check_ticked"] == ["--yes", "--yes"]
    finished = [e.payload for e in events if e.type == "runbook.step_finished" and e.payload["exit_code"] == 0]
    assert [p["step"] for p in finished] == [1, 2] and all(p["duration"] > 0 for p in finished)

    shown = json.loads(ok(config, "incident", "show", "INC-1", "--json", tmp_path=tmp_path))
    steps = [e["text"] for e in shown["timeline"] if e["kind"] == "runbook"]
    assert steps[0] == "runbook high-error-rate started"
    assert any(re.fullmatch(r"runbook high-error-rate: step 1 \(Confirm the error rate\) finished: "
                            r"exit 0, in \d+\.\ds", t) for t in steps), steps
    assert any(re.fullmatch(r"runbook high-error-rate: step 4 \(Roll back the rollout\) failed: exit 1, "
                            r"in \d+\.\ds", t) for t in steps), steps
    export = ok(config, "incident", "export", "INC-1", tmp_path=tmp_path)
    actions = export.split("## Rollout actions and runbook steps")[1]
    assert "step 2 (Look for a recent change) finished: exit 0, in " in actions
    assert "step 4 (Roll back the rollout) failed: exit 1, in " in actions


# --- on a terminal -------------------------------------------------------------------------------


def on_terminal(config: Path, tmp_path: Path, *argv: str) -> tuple[subprocess.Popen[bytes], int]:
    """`conn ARGV` with a terminal for its questions (stderr apart); returns it and the terminal."""
    terminal, end = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "console", *argv, "--config", str(config)],
        cwd=REPO, env=environment(tmp_path), stdin=end, stdout=end, stderr=subprocess.PIPE,
    )
    os.close(end)
    return process, terminal


class Screen:
    """What a terminal showed, read up to each question."""

    def __init__(self, terminal: int) -> None:
        self.terminal = terminal
        self.seen = b""

    def until(self, text: str, within: float = 30) -> str:
        mark, deadline = text.encode(), time.monotonic() + within
        while mark not in self.seen:
            assert time.monotonic() < deadline, f"no {text!r} on the terminal:\n{self.seen.decode()}"
            if select.select([self.terminal], [], [], 0.1)[0]:
                self.seen += os.read(self.terminal, 4096)
        shown, _, self.seen = self.seen.partition(mark)
        return shown.decode().replace("\r\n", "\n") + text

    def answer(self, text: str) -> None:
        os.write(self.terminal, text.encode() + b"\n")


async def test_on_a_terminal_each_step_waits_for_the_operator(tmp_path: Path, store: EventStore) -> None:
    config = local_config(tmp_path, {"drill": DRILL})
    process, terminal = on_terminal(config, tmp_path, "runbook", "run", "drill")
    screen = Screen(terminal)
    try:
        assert "Read the dashboard." in screen.until("[Enter] read · s skip · q stop: ")
        screen.answer("")
        shown = screen.until("[Enter] run it · s skip · q stop: ")
        assert '  $ echo "checking checkout under 5"' in shown
        assert (await store.read_stream("runbook/drill-1"))[-1].type == "runbook.step_previewed"
        screen.answer("")
        assert "  token «secret:drill_token»" in screen.until("✓ step 2 succeeded")
        screen.until("[ ] Looked at the graph  [Enter] tick · s skip the step · q stop: ")
        screen.answer("")
        screen.until("[ ] Told the channel  [Enter] tick · s skip the step · q stop: ")
        screen.answer("")
        screen.until("[Enter] run it · s skip · q stop: ")
        screen.answer("")
        assert "✗ step 4 failed: exit 3" in screen.until("its rollback is step 5 (undo): b run it now · Enter go on: ")
        screen.answer("b")
        screen.until("[Enter] run it · s skip · q stop: ")  # the rollback's own question
        screen.answer("")
        assert "  undone" in screen.until("✓ step 5 succeeded")
        screen.until("[Enter] retry · s skip · q stop: ")  # back at the failed step
        screen.answer("s")
        screen.until("why skip it (on the timeline)? ")
        screen.answer("")
        screen.until("(it cannot be blank)")
        screen.answer("known to fail in the drill")
        shown = screen.until("[Enter] run it · s skip · q stop: ")
        assert "== step 6/6: Restart [command]  ⚠ DANGEROUS" in shown and "type 'restart' to run it" in shown
        screen.answer("")
        screen.until("type 'restart' to run it: ")
        screen.answer("restrat")
        screen.until("[Enter] run it · s skip · q stop: ")  # refused: asked again
        screen.answer("")
        screen.until("type 'restart' to run it: ")
        screen.answer("restart")
        assert "  restarting checkout" in screen.until("drill-1 finished: 5 steps succeeded, 1 skipped")
        _, stderr = process.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        os.close(terminal)
    assert process.returncode == 0, stderr
    assert "what was typed is not 'restart'; step 6 did not run" in stderr.decode()
    events = await store.read_stream("runbook/drill-1")
    skipped = next(e for e in events if e.type == "runbook.step_skipped")
    assert (skipped.payload["step"], skipped.payload["reason"]) == (4, "known to fail in the drill")
    assert next(e for e in events if e.type == "runbook.step_started" and e.payload["step"] == 5
                ).payload["rollback_of"] == 4
    assert types(events, 6) == ["step_previewed", "step_confirmed", "step_started", "step_finished"]
    assert events[-1].type == "runbook.finished"
    assert all(e.reason == "" for e in events if e.type == "runbook.check_ticked")  # ticked by hand


# --- Ctrl-C, and a console killed mid-step -------------------------------------------------------

SLOW = """---
vars:
  MARK: "{mark}"
  PIDS: "{pids}"
---

## First

```sh
echo one
```

## Slow

```sh {{"name": "slow", "conn.timeout": "40s"}}
if [ -e "${{MARK}}" ]; then echo "ran again"; exit 0; fi
touch "${{MARK}}"
echo $$ > "${{PIDS}}"
sleep 30
```
"""


def slow_config(tmp_path: Path) -> Path:
    return local_config(tmp_path, {"slow": SLOW.format(mark=tmp_path / "mark", pids=tmp_path / "step.pid")})


def started_in_background(config: Path, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "console", "runbook", "run", "slow", "--yes", "--config", str(config)],
        cwd=REPO, env=environment(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


async def step_two_started(store: EventStore, tmp_path: Path) -> None:
    async def started() -> bool:
        events = await store.read_stream("runbook/slow-1")
        return "step_started" in types(events, 2) and (tmp_path / "step.pid").exists()

    await until(started, within=30, what="step 2 started")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "kill"])
async def test_ctrl_c_or_kill_cancels_the_running_step_and_records_it(
    tmp_path: Path, store: EventStore, stop: signal.Signals, code: int
) -> None:
    config = slow_config(tmp_path)
    process = started_in_background(config, tmp_path)
    try:
        await step_two_started(store, tmp_path)
        step = int((tmp_path / "step.pid").read_text())
        process.send_signal(stop)  # to `conn` alone: the step has its own process group
        out, _ = process.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == code
    assert "✗ step 2 cancelled: its processes were stopped" in out
    await until(lambda: not alive(step), within=10, what="the step's shell is gone")
    failed = (await store.read_stream("runbook/slow-1"))[-1]
    assert (failed.type, failed.payload["outcome"], failed.reason) == (
        "runbook.step_failed", "cancelled", "cancelled by the operator")


class Later:
    """The real clock moved past the time a killed console's step could still be running."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def now(self) -> float:
        return time.time() + self.seconds


async def in_process(argv: list[str], clock: Later) -> int:
    """The CLI's own code with a moved clock (a subprocess cannot be given one)."""
    return await execute(build_parser().parse_args(argv), clock=clock)


async def test_a_step_of_a_killed_console_is_interrupted_and_runs_again_only_with_a_reason(
    tmp_path: Path, store: EventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    config = slow_config(tmp_path)
    process = started_in_background(config, tmp_path)
    try:
        await step_two_started(store, tmp_path)
        os.killpg(process.pid, signal.SIGKILL)  # the console and its terminal go; the step is its own group
        process.wait(timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        step = int((tmp_path / "step.pid").read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(step, signal.SIGKILL)  # the orphaned step (nobody else would stop it)
    before = await store.read_stream("runbook/slow-1")
    assert types(before)[-1] == "step_started"

    # On this machine the console's process is gone, so the step is interrupted at once:
    # never run again by itself, and retried only with a reason.
    listed = json.loads(ok(config, "runbook", "list", "--json", tmp_path=tmp_path))
    assert listed["runbooks"][0]["last_run"]["status"] == "interrupted"
    refused = conn(config, "runbook", "run", "slow", "--step", "2", "--yes", tmp_path=tmp_path)
    assert refused.returncode == 1
    assert "step 2 (Slow) was interrupted: it may have run. It runs again only with a typed reason: pass --reason" \
        in refused.stderr, refused.stderr
    assert "conn runbook run slow --step 2 --reason WHY" in refused.stdout
    assert await store.read_stream("runbook/slow-1") == before
    later = Later(0)
    assert await in_process(["runbook", "run", "slow", "--step", "2", "--yes", "--reason", "console killed",
                             "--config", str(config)], later) == 0
    out = capsys.readouterr().out
    assert "resuming slow-1 at step 2" in out and "  ran again\n✓ step 2 succeeded" in out, out
    after = (await store.read_stream("runbook/slow-1"))[len(before):]
    assert types(after) == ["step_failed", "step_started", "step_finished", "finished"]
    assert after[0].payload["outcome"] == "interrupted"
    assert (after[1].payload["attempt"], after[1].payload["retry_reason"]) == (2, "console killed")

