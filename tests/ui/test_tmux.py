"""`conn demo` in a real terminal: tmux at 80x24, read with capture-pane, as a person would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SERVICES = ("checkout", "checkout-canary", "payments", "search")


class Terminal:
    """A detached tmux session on a private socket."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        run = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20
        )
        return run.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "conn")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "conn", *keys)

    def wait_for(self, predicate: object, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if callable(predicate) and predicate(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}\n--- screen ---\n{shown}")
            time.sleep(0.2)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: `make test` installs it (apt-get install tmux)")
    term = Terminal(f"conn-test-{uuid.uuid4().hex[:8]}")
    conn = Path(sys.executable).with_name("conn")
    command = f"{conn} demo --state-dir {tmp_path / 'demo'}; echo EXITED $?; sleep 30"
    term.tmux(
        "new-session", "-d", "-s", "conn", "-x", "80", "-y", "24",
        "env", f"PATH={os.environ['PATH']}", "TERM=xterm-256color", "sh", "-c", command,
    )
    yield term
    term.tmux("kill-server")


def test_demo_in_a_real_terminal_at_80x24(terminal: Terminal) -> None:
    shown = terminal.wait_for(
        lambda s: all(f"{name} " in s for name in SERVICES) and s.count("● up") >= 4,
        20, "four demo services up on screen",
    )
    lines = shown.splitlines()
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines)
    assert "LEADER" in lines[0]
    assert "q Quit" in shown
    terminal.keys("?")
    terminal.wait_for(lambda s: "Conn keys" in s, 5, "the help screen")
    terminal.keys("Escape")
    # A terminal sends Esc alone; a key right after it would read as alt+key.
    terminal.wait_for(lambda s: "Conn keys" not in s, 5, "help closed")
    terminal.keys("f")
    terminal.wait_for(lambda s: "Feature flags" in s and "checkout_v2" in s, 5, "the flags screen")
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "Feature flags" not in s, 5, "flags closed")
    terminal.keys("q")
    terminal.wait_for(lambda s: "EXITED 0" in s, 10, "a clean exit on q")


def test_a_shipped_runbook_runs_a_step_in_a_real_terminal(terminal: Terminal) -> None:
    """`b`, high-error-rate, its variables typed in, step 1 (`conn status`) run: its output on screen."""
    terminal.wait_for(lambda s: s.count("● up") >= 4, 20, "four demo services up on screen")
    terminal.keys("b")
    terminal.wait_for(lambda s: "Runbooks" in s and "high-error-rate" in s, 5, "the runbooks list")
    terminal.keys("Enter")  # the first row: high-error-rate
    answers = {"INCIDENT": "INC-0", "ROLLOUT": "checkout", "SERVICE": "checkout"}
    asked: list[str] = []
    while True:
        shown = terminal.wait_for(lambda s: " needs " in s or "RUNBOOK" in s, 10, "a variable asked, or the runner")
        if "RUNBOOK" in shown:
            break
        name = next(n for n in answers if f"needs {n} " in shown and n not in asked)
        asked.append(name)
        terminal.keys("-l", answers[name])
        terminal.keys("Enter")
        terminal.wait_for(lambda s, n=name: f"needs {n} " not in s, 5, f"{name} accepted")
    assert asked == sorted(asked) and "SERVICE" in asked, asked  # from the dashboard: no incident
    shown = terminal.wait_for(lambda s: "High error rate" in s and "$ conn status --no-fail" in s, 5,
                              "the runner, step 1 previewed")
    assert "⚠ WARNING Do not restart checkout" in shown
    terminal.keys("r")
    shown = terminal.wait_for(lambda s: "✓ succeeded" in s and "── ✓ succeeded: exit 0" in s, 30,
                              "step 1 ran to success")
    output = shown.split("─output─", 1)[1]
    assert "overall:" in output, "the end of conn status's report, streamed into the log"
    lines = shown.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "Runbooks" in s and "step 2/6" in s, 5, "the list, with the run's progress")
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "Runbooks" not in s, 5, "back on the dashboard")
    terminal.keys("q")
    terminal.wait_for(lambda s: "EXITED 0" in s, 10, "a clean exit on q")
