"""`conn incident …` as an operator or a chat bot runs it: real processes, config and SQLite store.

One incident goes through its whole life from the command line — declared,
listed, acknowledged, noted and pinned, backdated, mitigated, resolved,
shown and exported — and the refusals name what is valid. `python -m
console` is used rather than `.venv/bin/conn` so the test runs the tree under
test whatever the editable install points at.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

HOSTILE = "checkout [bold]errors\x1b[2J <b>x</b> | y"
SHOWN = "checkout [bold]errors <b>x</b> | y"
"""The title as every line prints it: markup as text, the escape sequence gone."""


class Conn:
    """Runs `python -m console` against a temporary config, store and state dir."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = tmp_path / "conn.toml"
        self.config.write_text(
            f'store = "sqlite:///{tmp_path / "conn.db"}"\n'
            '[services.checkout]\nhealth_url = "http://127.0.0.1:9/health"\n'
            '[services.payments]\nhealth_url = "http://127.0.0.1:9/health"\n'
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CONN_", "XDG_", "SSH_"))},
            "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "USER": "alice", "LOGNAME": "alice", "NO_COLOR": "1",
        }

    def __call__(self, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "console", *args, "--config", str(self.config)],
            cwd=REPO, env={**self.env, "USER": user, "LOGNAME": user}, input="",
            capture_output=True, text=True, timeout=60, check=False,
        )

    def ok(self, *args: str, user: str = "alice") -> str:
        run = self(*args, user=user)
        assert run.returncode == 0, f"{args}: {run.returncode}\n{run.stdout}\n{run.stderr}"
        return run.stdout


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_incident_from_declaration_to_postmortem(tmp_path: Path) -> None:
    conn = Conn(tmp_path)
    start = float(int(time.time()))
    # Declared ten minutes after it started; the title is printed literally.
    out = conn.ok("incident", "open", "--sev", "2", "--service", "checkout", "--started", iso(start - 600),
                  HOSTILE)
    assert out.splitlines()[0] == f"INC-1 declared (SEV2): {SHOWN}"
    assert conn.ok("incident", "open", "--sev", "SEV4", "--service", "payments",
                   "payments slow").startswith("INC-2 declared (SEV4): payments slow")

    listing = conn.ok("incident", "list").splitlines()
    assert listing[0].split() == ["ID", "SEV", "STATUS", "AGE", "ACK", "COMMANDER", "SERVICES", "TITLE"]
    assert [line.split()[0] for line in listing[1:]] == ["INC-1", "INC-2"]  # most severe first
    assert listing[1].endswith(SHOWN) and "ack due in" in listing[1] and "alice" in listing[1]

    assert "ack: acknowledged by bob" in conn.ok("incident", "ack", "inc-1", user="bob")
    noted = conn.ok("incident", "note", "INC-1", "rolled back the canary by hand", "--pin")
    position = int(re.search(r"INC-1 #(\d+) note: rolled back the canary by hand", noted).group(1))  # type: ignore[union-attr]
    conn.ok("incident", "stamp", "INC-1", "detected", "--at", iso(start - 480))
    assert "status: investigating → mitigated" in conn.ok("incident", "status", "INC-1", "mitigated")

    # Resolving ends the response: without a terminal it needs --yes.
    refused = conn("incident", "status", "INC-1", "resolved")
    assert refused.returncode == 2
    assert f"refusing to mark INC-1 (SEV2: {SHOWN}) resolved: no terminal to confirm on; pass --yes" \
        in refused.stderr
    assert "status: mitigated → resolved" in conn.ok("incident", "status", "INC-1", "resolved", "--yes")

    assert [line.split()[0] for line in conn.ok("incident", "list").splitlines()[1:]] == ["INC-2"]
    assert [line.split()[0] for line in conn.ok("incident", "list", "--all").splitlines()[1:]] == ["INC-2", "INC-1"]
    listed = json.loads(conn.ok("incident", "list", "--json"))
    assert [i["id"] for i in listed["incidents"]] == ["INC-2"]
    assert listed["incidents"][0]["severity"] == "SEV4" and listed["incidents"][0]["open"] is True

    shown = json.loads(conn.ok("incident", "show", "INC-1", "--json"))
    assert (shown["status"], shown["title"], shown["commander"]) == ("resolved", SHOWN, "alice")
    assert shown["acknowledged_by"] == "bob"
    assert shown["durations"]["detect"] == 120.0
    assert all(shown["durations"][k] >= 0 for k in ("acknowledge", "mitigate", "resolve"))
    assert shown["durations"]["resolve"] >= 600.0
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds == ["milestone", "opened", "ack", "note", "status", "status"], kinds
    assert [e["position"] for e in shown["timeline"] if e["pinned"]] == [position]
    assert shown["clocks"]["ack_overdue"] is False and shown["next_update_due"] is None
    text = conn.ok("incident", "show", "INC-1")
    assert "\x1b" not in text and f"INC-1 SEV2 resolved: {SHOWN}" in text
    assert re.search(rf"#{position}\s+★ .* alice\s+note\s+rolled back the canary by hand", text), text

    # The postmortem, in Markdown on stdout and in JSON to a file.
    markdown = conn.ok("incident", "export", "INC-1")
    assert markdown.startswith("# Postmortem: INC-1 — checkout \\[bold\\]errors \\<b\\>x\\</b\\> \\| y\n")
    assert "\x1b" not in markdown
    assert "| detect | 2m | started " in markdown
    assert re.search(r"\| \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \| \d+ \| alice \| note \| ★ rolled back the canary", markdown)
    head = json.loads(conn.ok("audit", "--verify", "--json"))
    assert f"hash `{head['head_hash']}`" in markdown
    assert "## Root cause" in markdown and "## Follow-ups" in markdown
    target = tmp_path / "out" / "INC-1.json"
    said = conn.ok("incident", "export", "INC-1", "--format", "json", "-o", str(target))
    assert said.strip() == f"wrote the postmortem of INC-1 (json) to {target}"
    exported = json.loads(target.read_text())
    assert exported["summary"]["status"] == "resolved" and exported["summary"]["title"] == SHOWN
    assert exported["audit_head"]["hash"] == head["head_hash"]
    assert [e["kind"] for e in exported["timeline"]] == kinds
    assert set(exported["graphs"]["checkout"]) == {"p95", "error_rate"}


def test_unknown_words_are_refused_with_the_valid_ones(tmp_path: Path) -> None:
    conn = Conn(tmp_path)
    conn.ok("incident", "open", "--sev", "3", "--service", "payments", "payments slow")

    severity = conn("incident", "open", "--sev", "5", "--service", "checkout", "x")
    assert severity.returncode == 1
    assert "unknown severity '5': use one of SEV1, SEV2, SEV3, SEV4" in severity.stderr
    status = conn("incident", "status", "INC-1", "fixed")
    assert status.returncode == 1
    assert ("unknown status 'fixed': use one of investigating, identified, mitigated, resolved, "
            "postmortem done") in status.stderr
    role = conn("incident", "assign", "INC-1", "boss", "bob")
    assert role.returncode == 1 and "unknown role 'boss': use one of commander, scribe, comms" in role.stderr
    missing = conn("incident", "show", "INC-9")
    assert missing.returncode == 1 and "no incident INC-9 (incidents: INC-1)" in missing.stderr
    service = conn("incident", "open", "--sev", "2", "--service", "chekout", "x")
    assert service.returncode == 1 and "no service named 'chekout'" in service.stderr
    assert "Did you mean 'checkout'?" in service.stderr
    no_reason = conn("incident", "severity", "INC-1", "SEV1")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    bad_entry = conn("incident", "pin", "INC-1", "first")
    assert bad_entry.returncode == 2 and "is not a timeline entry" in bad_entry.stderr
    future = conn("incident", "stamp", "INC-1", "mitigated", "--at", "tomorrow")
    assert future.returncode == 1 and "--at 'tomorrow' is not a time" in future.stderr
    assert all("Traceback" not in run.stderr for run in (severity, status, role, missing, service, future))
    # Nothing of that was written: the one incident is as it was declared.
    shown = json.loads(conn.ok("incident", "show", "INC-1", "--json"))
    assert [e["kind"] for e in shown["timeline"]] == ["opened"]
    assert conn.ok("incident", "list").count("INC-") == 1


def test_postmortem_done_is_a_status_of_two_words_and_a_severity_change_needs_its_reason(tmp_path: Path) -> None:
    conn = Conn(tmp_path)
    conn.ok("incident", "open", "--sev", "1", "--service", "checkout", "checkout down")
    changed = conn.ok("incident", "severity", "INC-1", "2", "--reason", "only some regions")
    assert "severity: SEV1 → SEV2 — only some regions" in changed
    assert "commander: alice → carol" in conn.ok("incident", "assign", "INC-1", "commander", "carol")
    conn.ok("incident", "status", "INC-1", "resolved", "--yes")
    assert "status: resolved → postmortem done" in conn.ok(
        "incident", "status", "INC-1", "postmortem", "done", "--yes")
    shown = json.loads(conn.ok("incident", "show", "INC-1", "--json"))
    assert shown["status"] == "postmortem_done" and shown["commander"] == "carol"
    assert [(r["user"], r["until"] is None) for r in shown["roles"]] == [("alice", False), ("carol", True)]


def test_past_times_read_as_operators_write_them() -> None:
    """``--started``/``--at``: a duration back, the latest past time of day, or ISO-8601."""
    from console.cli.incident import past_time
    from console.errors import CommandError

    now = 1_767_260_400.0  # 2026-01-01T09:40:00Z
    assert past_time("10m", now, "--at") == now - 600
    assert past_time("2026-01-01T09:00:00Z", now, "--at") == now - 2400
    assert past_time("09:30Z", now, "--at") == now - 600  # today's, it has passed
    assert past_time("09:50Z", now, "--at") == now - 86400 + 600  # yesterday's: today's is to come
    with pytest.raises(CommandError, match="--started 'soon' is not a time: give a duration back"):
        past_time("soon", now, "--started")
