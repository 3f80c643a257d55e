"""Runbook steps run by a real shell: outcomes, timeouts and cancel that stop the whole group,
bounded output, redaction, escapes, and the shipped runbooks against a real demo fleet.

No mocks: every test starts real ``bash`` (or ``sh``) processes; the fleet tests
run the shipped runbooks' code blocks, as parsed, with the real ``conn`` CLI
and ``curl`` against the demo fleet's HTTP endpoints. Processes that should
be gone are looked up in /proc (a zombie counts as gone).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from console.actions.process import LINE_LIMIT, ProcessOutcome
from console.actions.runbook_files import demo_runbooks_folder, load_runbooks
from console.actions.shell import STEP_NAME, cancelled_outcome, run_step, step_argv, step_changes
from console.demo.fleet import DemoFleet, FleetInfo
from console.errors import ActionError
from console.model.events import Event
from console.model.runbook_runs import (
    Change,
    RunState,
    rollback_offer,
    run_stream,
    start_run,
    start_step,
)
from console.model.runbooks import Runbook, run_values
from tests.fixtures.fleet import demo_fleet_fixture, flag_file_fixture
from tests.fixtures.waiting import until

__all__ = ["demo_fleet_fixture", "flag_file_fixture"]

pytestmark = pytest.mark.slow


def need(program: str) -> None:
    """Fail (never skip) when a program the test runs is missing, saying how to get it."""
    if shutil.which(program) is None:
        pytest.fail(f"{program} is not installed: install it (e.g. `apt-get install {program}`) to run this test")


class Lines:
    """Collects on_output calls."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, stream: str, line: str) -> None:
        self.seen.append((stream, line))

    def of(self, stream: str) -> list[str]:
        return [line for name, line in self.seen if name == stream]

    def pids(self) -> list[int]:
        return [int(line.removeprefix("pid ")) for _, line in self.seen if line.startswith("pid ")]


class RunLog:
    """A run's events as the store would hand them back, folded as they are added."""

    def __init__(self, run_id: str) -> None:
        self.state = RunState(run_id)
        self.version = 0

    def add(self, changes: list[Change]) -> None:
        for kind, payload in changes:
            self.version += 1
            event = Event(
                position=self.version, id=f"e{self.version}", stream=run_stream(self.state.run_id),
                version=self.version, type=kind, time=1.0e9 + self.version, actor="oncall", reason="",
                payload=json.loads(json.dumps(payload)), prev_hash="", hash="",
            )
            self.state = self.state.apply(event)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


# --- outcomes ----------------------------------------------------------------------------------


async def test_a_step_that_succeeds_streams_both_outputs_as_they_come() -> None:
    need("bash")
    lines = Lines()
    outcome = await run_step("echo one\necho two >&2\necho three", timeout=10, on_output=lines)
    assert outcome.ok and outcome.exit_code == 0
    assert lines.of("stdout") == ["one", "three"] and lines.of("stderr") == ["two"]
    assert sorted(outcome.output_excerpt.split("\n")) == ["one", "three", "two"]  # pipes race each other
    assert outcome.argv == ("bash", "-c", "set -e -o pipefail; echo one\necho two >&2\necho three", STEP_NAME)


async def test_a_failing_step_reports_its_exit_code_and_strict_mode_stops_at_the_first_failure() -> None:
    need("bash")
    lines = Lines()
    outcome = await run_step("echo before\nexit 3", timeout=10, on_output=lines)
    assert (outcome.ok, outcome.exit_code) == (False, 3)
    assert outcome.summary().startswith("exit 3 in ")
    failed = await run_step("false\necho after-false", timeout=10, on_output=lines)
    piped = await run_step("false | true\necho after-pipe", timeout=10, on_output=lines)
    assert (failed.exit_code, piped.exit_code) == (1, 1)  # set -e, and pipefail
    assert lines.of("stdout") == ["before"]


async def test_sh_gets_errexit_and_an_unknown_shell_its_script_untouched() -> None:
    need("sh")
    lines = Lines()
    outcome = await run_step("false\necho after", shell=("sh", "-c"), timeout=10, on_output=lines)
    assert outcome.exit_code == 1 and lines.of("stdout") == []
    assert step_argv("x", ("/usr/bin/env", "bash", "-c"))[3] == "set -e -o pipefail; x"
    assert step_argv("x", ("python3", "-c")) == ["python3", "-c", "x", STEP_NAME]


async def test_a_missing_command_exits_127_and_says_so_plainly() -> None:
    need("bash")
    lines = Lines()
    outcome = await run_step("echo start\nno-such-command-for-conn --flag", timeout=10, on_output=lines)
    assert outcome.exit_code == 127 and outcome.summary() == "exit 127: command not found"
    assert lines.of("stderr") == [f"{STEP_NAME}: line 2: no-such-command-for-conn: command not found"]


async def test_a_missing_shell_is_an_action_error() -> None:
    with pytest.raises(ActionError, match="cannot run 'no-such-shell-for-conn': command not found on the PATH"):
        await run_step("echo hi", shell=("no-such-shell-for-conn", "-c"), timeout=10)


async def test_a_step_that_reads_stdin_gets_end_of_file_at_once() -> None:
    need("bash")
    outcome = await run_step('read -r answer\necho "got $answer"', timeout=30)
    assert outcome.exit_code == 1 and not outcome.timed_out


# --- timeout and cancel stop the whole group -----------------------------------------------------


async def test_a_step_that_hangs_is_killed_at_its_timeout_with_its_children() -> None:
    need("bash")
    need("sleep")
    lines = Lines()
    script = (
        "sleep 1000 &\necho \"pid $!\"\n"
        "bash -c 'trap \"\" TERM; echo \"pid $$\"; sleep 1000' &\n"
        "wait"
    )
    outcome = await run_step(script, timeout=1.0, kill_grace=0.5, on_output=lines)
    assert outcome.timed_out and not outcome.ok
    assert outcome.summary() == "killed after the 1s timeout"
    pids = lines.pids()
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids), "a child outlived its step"


async def test_cancelling_a_step_stops_its_group_and_keeps_the_outcome() -> None:
    need("bash")
    need("sleep")
    lines = Lines()
    task = asyncio.create_task(run_step('sleep 1000 &\necho "pid $!"\nwait', timeout=600, on_output=lines))
    await until(lambda: bool(lines.pids()), within=10, what="the step printed its child's pid")
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as caught:
        await task
    outcome = cancelled_outcome(caught.value)
    assert outcome is not None and outcome.cancelled and not outcome.timed_out
    assert outcome.summary().startswith("cancelled after ")
    assert "pid " in outcome.output_excerpt
    assert not alive(lines.pids()[0])


# --- output: bounded, redacted, never obeyed -----------------------------------------------------


async def test_fifty_megabytes_of_output_stay_bounded_and_the_step_returns() -> None:
    need("bash")
    need("head")
    count = 0
    last = ""

    def counted(stream: str, line: str) -> None:
        nonlocal count, last
        count += 1
        last = line

    # Not ``yes | head``: under pipefail, yes killed by SIGPIPE would fail the step.
    script = 'line=$(printf "%0999d" 0)\nhead -c 50000000 < <(yes "$line")\necho the-end'
    outcome = await run_step(script, timeout=300, on_output=counted, max_capture=64 * 1024)
    assert outcome.ok
    assert count == 50_000 + 1 and last == "the-end"
    assert len(outcome.output_excerpt.encode()) <= 64 * 1024
    assert outcome.truncated and "bytes omitted" in outcome.output_excerpt
    assert outcome.output_excerpt.endswith("the-end")


async def test_one_endless_line_is_cut_and_the_step_returns() -> None:
    need("bash")
    lines = Lines()
    outcome = await run_step("head -c 20000000 /dev/zero | tr '\\0' x\necho\necho done", timeout=300, on_output=lines)
    assert outcome.ok
    first = lines.of("stdout")[0]
    assert len(first) == LINE_LIMIT and first.endswith("…")
    assert lines.of("stdout")[-1] == "done"


async def test_a_secret_echoed_by_a_step_is_redacted_in_lines_and_excerpt() -> None:
    need("bash")
    need("rev")
    lines = Lines()
    token = "tok-7f3a9c2e5b"
    outcome = await run_step(
        'echo "token=${DEPLOY_TOKEN}"\necho "$DEPLOY_TOKEN" >&2\nprintf "%s" "$DEPLOY_TOKEN" | rev',
        secrets={"deploy_token": token}, env={"SERVICE": "checkout"}, timeout=10, on_output=lines,
    )
    assert outcome.ok
    assert lines.of("stdout")[0] == "token=«secret:DEPLOY_TOKEN»"
    assert lines.of("stderr") == ["«secret:DEPLOY_TOKEN»"]
    shown = "\n".join(line for _, line in lines.seen) + outcome.output_excerpt + " ".join(outcome.argv)
    assert token not in shown


async def test_escapes_are_stripped_and_markup_stays_text() -> None:
    need("bash")
    lines = Lines()
    script = (
        "printf '\\033[31mred\\033[0m \\033]8;;http://evil\\033\\\\link\\033]8;;\\033\\\\ [bold]markup[/bold]\\n'\n"
        "printf 'over\\rwritten\\n'"
    )
    outcome = await run_step(script, timeout=10, on_output=lines)
    assert outcome.ok
    assert lines.of("stdout") == ["red link [bold]markup[/bold]", "over written"]
    assert "\x1b" not in outcome.output_excerpt


async def test_variables_are_environment_never_shell_code(tmp_path: Path) -> None:
    need("bash")
    lines = Lines()
    marker = tmp_path / "pwned"
    value = f"checkout; touch {marker} $(touch {marker})"
    outcome = await run_step('echo "service=${SERVICE}"\necho ${SERVICE}', env={"SERVICE": value}, timeout=10,
                             on_output=lines)
    assert outcome.ok and lines.of("stdout") == [f"service={value}", value]
    assert not marker.exists()


async def test_a_variable_and_a_secret_cannot_share_a_name() -> None:
    with pytest.raises(ActionError, match="DEPLOY_TOKEN is both a variable and the secret 'deploy_token'"):
        await run_step("true", env={"DEPLOY_TOKEN": "x"}, secrets={"deploy_token": "y"}, timeout=10)


async def test_a_step_runs_the_consoles_own_conn_with_its_config(tmp_path: Path) -> None:
    need("bash")
    lines = Lines()
    config = tmp_path / "conn.toml"
    outcome = await run_step('command -v conn\necho "$CONN_CONFIG"', conn_config=config, timeout=10,
                             on_output=lines)
    assert outcome.ok
    assert lines.of("stdout") == [str(Path(sys.executable).parent / "conn"), str(config)]


# --- the shipped runbooks against the demo fleet ------------------------------------------------


def shipped() -> dict[str, Runbook]:
    runbooks, broken = load_runbooks([demo_runbooks_folder()])
    assert broken == []
    return {runbook.name: runbook for runbook in runbooks}


async def run_command_step(book: Runbook, name: str, values: dict[str, str], config: Path) -> tuple[ProcessOutcome, str]:
    """Run one step of ``book`` as the console would: the script as parsed, the run's variables."""
    step = book.step(name)
    assert step.command is not None
    lines = Lines()
    outcome = await run_step(step.command, env=values, conn_config=config, timeout=step.timeout, on_output=lines)
    return outcome, "\n".join(line for _, line in lines.seen)


def fleet_values(book: Runbook, info: FleetInfo, service: str) -> dict[str, str]:
    return run_values(
        book, service=service, incident="17",
        given={"HEALTH_URL": info.urls[service] + "/api/health/advanced", "ROLLOUT": "checkout"},
    )


async def conn(info: FleetInfo, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", *args, "--config", str(info.config_path),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()


async def test_the_shipped_runbooks_run_against_a_healthy_demo_fleet(demo_fleet: tuple[DemoFleet, FleetInfo]) -> None:
    need("curl")
    need("python3")
    _, info = demo_fleet
    books = shipped()
    config = info.config_path

    errors = books["high-error-rate"]
    values = fleet_values(errors, info, "checkout")
    for name in ("error-rates", "recent-changes", "verify-error-rate"):
        outcome, text = await run_command_step(errors, name, values, config)
        assert outcome.ok, f"{name}: {outcome.summary()}\n{text}"
    outcome, text = await run_command_step(errors, "error-rates", values, config)
    assert "checkout" in text and "overall:" in text
    outcome, text = await run_command_step(errors, "verify-error-rate", values, config)
    assert text.startswith("error rate of checkout = ")

    slow = books["slow-responses"]
    values = fleet_values(slow, info, "checkout-canary")
    assert values["BASELINE"] == "checkout"
    outcome, text = await run_command_step(slow, "compare-baseline", values, config)
    assert outcome.ok, text
    rows = text.split("\n")
    assert rows[0].split() == ["service", "p95", "p99", "cache", "hit", "errors"]
    assert [row.split()[0] for row in rows[1:]] == ["checkout-canary", "checkout"]
    assert rows[1].split()[1] == "-"  # the canary serves no traffic until its flag is on
    values = fleet_values(slow, info, "checkout")
    for name in ("service-health", "verify-p95"):
        outcome, text = await run_command_step(slow, name, values, config)
        assert outcome.ok, f"{name}: {outcome.summary()}\n{text}"
    assert text.startswith("p95 of checkout = ")

    outage = books["service-outage"]
    values = fleet_values(outage, info, "payments")
    for name in ("health-check", "verify-health"):
        outcome, text = await run_command_step(outage, name, values, config)
        assert outcome.ok, f"{name}: {outcome.summary()}\n{text}"
    assert '"service": "payments"' in text or "payments answers its health check" in text


async def test_rollout_steps_fail_plainly_without_a_run_and_act_on_a_running_one(
    demo_fleet: tuple[DemoFleet, FleetInfo],
) -> None:
    need("python3")
    _, info = demo_fleet
    books = shipped()
    config = info.config_path
    slow = books["slow-responses"]
    values = fleet_values(slow, info, "checkout")
    outcome, text = await run_command_step(slow, "hold-rollout", values, config)
    assert outcome.exit_code == 1 and "checkout has not started" in text

    await conn(info, "advance", "checkout", "--reason", "start run 1", "--yes")
    outcome, text = await run_command_step(slow, "hold-rollout", values, config)
    assert outcome.ok, text
    assert "checkout: held" in text
    outage = books["service-outage"]
    outcome, text = await run_command_step(outage, "rollback", fleet_values(outage, info, "checkout"), config)
    assert outcome.ok, text
    assert "checkout: rolling back" in text
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", "audit", "--stream", "rollout/checkout", "--config", str(config),
        stdout=asyncio.subprocess.PIPE,
    )
    audit = (await process.communicate())[0].decode()
    assert "runbook service-outage, incident 17: checkout is down" in audit
    assert "runbook slow-responses, incident 17: p95 of checkout above 300 ms" in audit


async def test_a_service_that_is_down_fails_the_health_step_and_the_run_offers_the_rollback(
    demo_fleet: tuple[DemoFleet, FleetInfo],
) -> None:
    need("curl")
    fleet, info = demo_fleet
    outage = shipped()["service-outage"]
    values = fleet_values(outage, info, "payments")
    fleet.set_faults("payments", health="down")
    state = RunState("outage-1")
    run = start_run(state, outage, incident="17", values=values)
    assert run[0][1]["vars"]["SERVICE"] == "payments"
    # Fold what the deciders say, as the engine would: start, run, record how it ended.
    log = RunLog("outage-1")
    log.add(run)
    log.add(start_step(log.state, outage, 1))
    outcome, text = await run_command_step(outage, "health-check", dict(log.state.vars), info.config_path)
    assert outcome.exit_code == 22, text  # curl -f: the server answered with an error status
    log.add(step_changes(log.state, 1, outcome))
    assert log.state.record(1).status == "failed" and log.state.record(1).error == outcome.summary()
    assert rollback_offer(log.state, outage) == 2


def test_the_test_environment_has_a_conn_next_to_python() -> None:
    assert (Path(sys.executable).parent / "conn").exists(), "install Conn into the venv: pip install -e ."
    assert os.access(Path(sys.executable).parent / "conn", os.X_OK)
