"""Actions against the real world: subprocesses, and a webhook receiver on loopback.

No mocks: the runner starts real processes (bash, python, sleep) and the
webhook tests POST to a real HTTP receiver on 127.0.0.1. Processes that
should be gone are looked up in /proc, zombies counted as dead (an orphan
stays a zombie until PID 1 reaps it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from console.actions.process import LINE_LIMIT, ProcessOutcome, cancelled_outcome, run_process
from console.actions.webhooks import WebhookError, call_webhook, render_body
from console.errors import ActionError
from console.secrets import register
from tests.fixtures.misbehaving import closed_port
from tests.fixtures.receiver import Receiver
from tests.fixtures.waiting import until

PY = sys.executable


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


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def group_members(pgid: int) -> list[int]:
    """Live processes in the process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                members.append(int(entry))
    return members


# A shell that reports its own pid and a grandchild's, then waits; with
# ``trap '' TERM`` both ignore SIGTERM (an ignored signal survives exec).
def family(trap_term: bool) -> list[str]:
    trap = "trap '' TERM; " if trap_term else ""
    return ["bash", "-c", f"{trap}echo pid $$; sleep 30 & echo pid $!; wait"]


# --- the process runner ------------------------------------------------------------


async def test_output_streams_line_by_line_in_order_from_both_streams() -> None:
    script = (
        "import sys, time\n"
        "for i in range(5):\n"
        "    print(f'out {i}', flush=True)\n"
        "    time.sleep(0.02)\n"
        "    print(f'err {i}', file=sys.stderr, flush=True)\n"
        "    time.sleep(0.02)\n"
    )
    lines = Lines()
    outcome = await run_process([PY, "-c", script], timeout=10, on_output=lines)
    assert outcome.ok and outcome.exit_code == 0 and outcome.signal is None
    assert lines.of("stdout") == [f"out {i}" for i in range(5)]
    assert lines.of("stderr") == [f"err {i}" for i in range(5)]
    # Paced writes arrive as they are made, so the streams interleave in order.
    assert [line for _, line in lines.seen] == [f"{s} {i}" for i in range(5) for s in ("out", "err")]
    assert outcome.output_excerpt.splitlines()[:2] == ["out 0", "err 0"]
    assert not outcome.truncated
    assert outcome.summary().startswith("exit 0 in ")


async def test_output_shows_while_the_command_still_runs() -> None:
    lines = Lines()
    task = asyncio.create_task(
        run_process(["bash", "-c", "echo first; sleep 0.5; echo second"], timeout=10, on_output=lines)
    )
    await until(lambda: lines.of("stdout") == ["first"], within=2, what="the first line, live")
    assert not task.done()
    outcome = await task
    assert lines.of("stdout") == ["first", "second"] and outcome.ok


async def test_exit_codes_and_summaries() -> None:
    failed = await run_process(["bash", "-c", "echo nope >&2; exit 3"], timeout=10)
    assert (failed.exit_code, failed.ok, failed.output_excerpt) == (3, False, "nope")
    assert failed.summary().startswith("exit 3 in ")
    missing = await run_process(["bash", "-c", "no-such-command-xyz"], timeout=10)
    assert missing.exit_code == 127 and missing.summary() == "exit 127: command not found"
    assert "no-such-command-xyz" in missing.output_excerpt
    unterminated = await run_process(["printf", "no newline at the end"], timeout=10)
    assert unterminated.output_excerpt == "no newline at the end"


async def test_a_hanging_command_is_terminated_at_its_timeout() -> None:
    started = time.monotonic()
    outcome = await run_process(["sleep", "30"], timeout=0.5, kill_grace=5)
    assert outcome.timed_out and not outcome.ok
    assert outcome.signal == signal.SIGTERM and outcome.exit_code is None
    assert time.monotonic() - started < 2.5  # it died at SIGTERM, no grace needed
    assert outcome.summary() == "killed after the 500ms timeout"


async def test_a_group_that_traps_sigterm_is_killed_grandchild_and_all() -> None:
    lines = Lines()
    started = time.monotonic()
    outcome = await run_process(family(trap_term=True), timeout=0.5, kill_grace=0.5, on_output=lines)
    elapsed = time.monotonic() - started
    shell, grandchild = lines.pids()
    assert outcome.timed_out and outcome.signal == signal.SIGKILL
    assert 1.0 <= elapsed < 3.5  # timeout, then the grace, then SIGKILL
    assert not alive(shell) and not alive(grandchild)
    assert group_members(shell) == []


async def test_leftovers_holding_the_output_are_stopped_after_the_command_exits() -> None:
    lines = Lines()
    outcome = await run_process(
        ["bash", "-c", "echo pid $$; sleep 30 & echo pid $!; exit 0"], timeout=10, on_output=lines
    )
    shell, leftover = lines.pids()
    assert outcome.ok and not outcome.timed_out and outcome.duration < 4
    assert not alive(leftover) and group_members(shell) == []


async def test_cancelling_the_caller_kills_the_group_and_reraises() -> None:
    lines = Lines()
    task = asyncio.create_task(
        run_process(family(trap_term=True), timeout=30, kill_grace=0.3, on_output=lines)
    )
    await until(lambda: len(lines.pids()) == 2, within=5, what="both pids printed")
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as raised:
        await task
    shell, grandchild = lines.pids()
    assert not alive(shell) and not alive(grandchild) and group_members(shell) == []
    outcome = cancelled_outcome(raised.value)
    assert isinstance(outcome, ProcessOutcome)
    assert outcome.cancelled and not outcome.ok and not outcome.timed_out
    assert outcome.summary().startswith("cancelled after ")
    assert f"pid {grandchild}" in outcome.output_excerpt


async def test_twenty_megabytes_of_output_stay_cheap_and_bounded() -> None:
    lines = Lines()
    script = "import sys; sys.stdout.write(('x' * 99 + '\\n') * 200_000); print('the end')"
    started = time.monotonic()
    outcome = await run_process([PY, "-c", script], timeout=20, on_output=lines, max_capture=8192)
    assert time.monotonic() - started < 5
    assert outcome.ok and len(lines.seen) == 200_001 and lines.seen[-1] == ("stdout", "the end")
    assert outcome.truncated and len(outcome.output_excerpt.encode()) <= 8192
    excerpt = outcome.output_excerpt.splitlines()
    assert excerpt[0] == "x" * 99 and excerpt[-1] == "the end"
    marker = [line for line in excerpt if "bytes omitted" in line]
    assert len(marker) == 1 and marker[0].startswith("… 19,")


async def test_one_endless_line_is_cut_and_skipped_not_buffered() -> None:
    lines = Lines()
    started = time.monotonic()
    outcome = await run_process(
        ["bash", "-c", "head -c 20000000 /dev/zero | tr '\\0' x; echo; echo after"],
        timeout=20,
        on_output=lines,
    )
    assert time.monotonic() - started < 5
    assert [len(line) for line in lines.of("stdout")] == [LINE_LIMIT, 5]
    first, after = lines.of("stdout")
    assert first.endswith("…") and after == "after"
    assert outcome.truncated and len(outcome.output_excerpt) < 2 * LINE_LIMIT


async def test_a_missing_or_unrunnable_program_is_a_clear_action_error(tmp_path: Path) -> None:
    with pytest.raises(ActionError, match="cannot run 'no-such-binary-xyz': command not found"):
        await run_process(["no-such-binary-xyz", "--flag"], timeout=5)
    script = tmp_path / "rollback.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(ActionError, match=r"rollback\.sh'?: permission denied"):
        await run_process([str(script)], timeout=5)
    with pytest.raises(ActionError, match=r"working directory .*nowhere"):
        await run_process(["true"], timeout=5, cwd=tmp_path / "nowhere")
    with pytest.raises(ActionError, match="empty"):
        await run_process([], timeout=5)


async def test_secrets_are_redacted_from_streamed_lines_and_the_excerpt() -> None:
    token = "tok-3f9a1c77e2"
    registered = "reg-88d1b0c4aa"
    register("deploy_hook_url", registered)
    lines = Lines()
    script = (
        'echo "token=$DEPLOY_TOKEN"; echo "$DEPLOY_TOKEN" >&2; '
        f"echo 'registered {registered}'; "
        # The secret split by an escape sequence: shown whole once cleaned.
        "printf 'tok-3f9a\\033[0m1c77e2\\n'"
    )
    outcome = await run_process(
        ["bash", "-c", script], timeout=10, env={"DEPLOY_TOKEN": token}, secrets=[token], on_output=lines
    )
    assert lines.of("stdout") == [
        "token=«secret:DEPLOY_TOKEN»",
        "registered «secret:deploy_hook_url»",
        "«secret:DEPLOY_TOKEN»",
    ]
    assert lines.of("stderr") == ["«secret:DEPLOY_TOKEN»"]
    assert token not in outcome.output_excerpt and registered not in outcome.output_excerpt
    # argv is kept redacted too, so the outcome is safe to record.
    leaky = await run_process(["echo", token], timeout=5, secrets=[token])
    assert leaky.argv == ("echo", "«secret»") and leaky.output_excerpt == "«secret»"


async def test_the_parent_environment_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONN_SECRET_DB_PASSWORD", "parent-only-value")
    monkeypatch.setenv("LANG", "C.UTF-8")
    lines = Lines()
    outcome = await run_process(["env"], timeout=5, env={"STEP_VAR": "given"}, on_output=lines)
    seen = dict(line.split("=", 1) for line in lines.of("stdout"))
    assert outcome.ok
    assert "CONN_SECRET_DB_PASSWORD" not in seen and "parent-only-value" not in outcome.output_excerpt
    assert seen["STEP_VAR"] == "given" and seen["LANG"] == "C.UTF-8"
    assert seen["PATH"] == os.environ["PATH"]
    assert set(seen) <= {"PATH", "HOME", "LANG", "STEP_VAR", "PWD", "SHLVL", "_"}


async def test_terminal_control_sequences_are_stripped() -> None:
    lines = Lines()
    script = (
        "printf '\\033[2J\\033]8;;http://evil.example/\\007link\\033]8;;\\007 "
        "\\033[31mred\\033[0m [bold]markup[/bold]\\r\\n'; "
        "printf 'a\\tb\\n'; printf 'over\\rwrite\\n'; printf '\\342\\200\\256reversed\\n'"
    )
    outcome = await run_process(["bash", "-c", script], timeout=5, on_output=lines)
    assert lines.of("stdout") == ["link red [bold]markup[/bold]", "a       b", "over write", "reversed"]
    assert "\x1b" not in outcome.output_excerpt and "\r" not in outcome.output_excerpt


async def test_an_asyncio_timeout_around_the_run_still_stops_the_group() -> None:
    lines = Lines()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await run_process(family(trap_term=False), timeout=30, on_output=lines)
    shell, grandchild = lines.pids()
    assert not alive(shell) and not alive(grandchild) and group_members(shell) == []


async def test_a_failing_output_callback_does_not_stop_the_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def broken(stream: str, line: str) -> None:
        calls.append(line)
        raise RuntimeError("widget gone")

    outcome = await run_process(["bash", "-c", "echo one; echo two; exit 4"], timeout=5, on_output=broken)
    assert calls == ["one"] and outcome.exit_code == 4
    assert outcome.output_excerpt == "one\ntwo"
    assert "on_output failed" in caplog.text


# --- webhooks ----------------------------------------------------------------------


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    # Calls made without a client of their own use httpx's default, which
    # honours proxy variables: keep loopback direct on machines that set them.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with Receiver() as running:
        yield running


TEMPLATE = {
    "text": "Rolling back {rollout}: {reason}",
    "blocks": [{"type": "section", "fields": ["{rollout}", "stage {stage}", 3, True, None]}],
    "meta": {"unknown": "{not_a_value}", "count": 2},
}


async def test_a_webhook_posts_the_rendered_json(receiver: Receiver) -> None:
    values = {"rollout": "checkout", "reason": "error_rate 7.1% > 5% for 5m", "stage": "10%"}
    body = render_body(TEMPLATE, values)
    outcome = await call_webhook(
        receiver.url("/services/T0/B0/xyz"), body, timeout=5, headers={"X-Conn-Event": "rollback"}
    )
    assert (outcome.status, outcome.body_excerpt) == (200, "ok")
    assert outcome.summary().startswith("HTTP 200 in ")
    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/services/T0/B0/xyz"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-conn-event"] == "rollback"
    assert request.json() == body
    assert body["text"] == "Rolling back checkout: error_rate 7.1% > 5% for 5m"
    assert body["blocks"][0]["fields"] == ["checkout", "stage 10%", 3, True, None]


async def test_slack_invalid_payload_is_an_error_with_status_and_text(receiver: Receiver) -> None:
    receiver.answer(400, "invalid_payload")
    url = receiver.url("/services/T0/B0/s3cr3tpath")
    register("slack_url", url)
    with pytest.raises(WebhookError) as raised:
        await call_webhook(url, {"text": "hi"}, timeout=5)
    error = raised.value
    assert (error.status, error.body_excerpt, error.timed_out) == (400, "invalid_payload", False)
    assert str(error) == "webhook «secret:slack_url» answered HTTP 400 Bad Request: invalid_payload"
    assert isinstance(error, ActionError)


async def test_error_bodies_are_cleaned_and_the_url_never_shows(receiver: Receiver) -> None:
    url = receiver.url("/services/T0/B0/unregistered")
    receiver.answer(404, f"channel_not_found \x1b[2J(for {url} and /services/T0/B0/unregistered)")
    with pytest.raises(WebhookError) as raised:
        await call_webhook(url, {"text": "hi"}, timeout=5)
    message = str(raised.value)
    assert raised.value.status == 404
    assert "unregistered" not in message and "unregistered" not in raised.value.body_excerpt
    assert message.startswith("webhook at 127.0.0.1 answered HTTP 404 Not Found: channel_not_found ")
    assert "\x1b" not in message
    with pytest.raises(WebhookError, match=r"^webhook deploy_hook answered HTTP 404"):
        await call_webhook(url, {"text": "hi"}, timeout=5, name="deploy_hook")


async def test_a_hanging_receiver_is_a_timeout(receiver: Receiver) -> None:
    receiver.hang()
    url = receiver.url("/services/T0/B0/hang")
    started = time.monotonic()
    with pytest.raises(WebhookError) as raised:
        await call_webhook(url, {"text": "hi"}, timeout=0.5)
    assert time.monotonic() - started < 2
    error = raised.value
    assert error.timed_out and error.status is None
    assert "timed out after 500ms (waiting for the answer)" in str(error)
    assert url not in str(error) and "/hang" not in str(error)


async def test_a_refused_connection_says_so() -> None:
    url = f"http://127.0.0.1:{closed_port()}/services/T0/B0/refused"
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(WebhookError) as raised:
            await call_webhook(url, {"text": "hi"}, timeout=2, client=client)
    assert str(raised.value) == "webhook at 127.0.0.1: connection refused"
    assert raised.value.status is None and not raised.value.timed_out


async def test_failures_then_success_each_call_is_one_attempt(receiver: Receiver) -> None:
    receiver.fail(2, status=503, body="try later")
    async with httpx.AsyncClient(trust_env=False) as client:
        for _ in range(2):
            with pytest.raises(WebhookError, match="HTTP 503 Service Unavailable: try later"):
                await call_webhook(receiver.url(), {"n": 1}, client=client, timeout=5)
        outcome = await call_webhook(receiver.url(), {"n": 1}, client=client, timeout=5)
    assert outcome.status == 200 and len(await receiver.wait_for(3)) == 3


def test_render_body_never_formats_hostile_reasons() -> None:
    hostile = "{0} {__class__} {rollout} {reason} %s %(x)s ${HOME} {{x}} {"
    template = {"text": "{rollout}: {reason}", "attrs": ["{__class__}", {"deep": ["{reason}"]}]}
    body = render_body(template, {"rollout": "checkout", "reason": hostile})
    assert body == {
        "text": f"checkout: {hostile}",
        "attrs": ["{__class__}", {"deep": [hostile]}],
    }
    assert template["text"] == "{rollout}: {reason}"  # not mutated
    assert render_body({"{rollout}": 1}, {"rollout": "x"}) == {"{rollout}": 1}  # keys untouched
