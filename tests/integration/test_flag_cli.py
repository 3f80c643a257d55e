"""`conn flag …` as an operator or a script runs it: a real process, config and SQLite store.

`python -m console` is used rather than `.venv/bin/conn` so the test runs the
tree under test whatever the editable install points at.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli.flag import confirm
from tests.fixtures.flags import PLANS_CONFIG, flagd_answer, flagd_schema_problems

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Conn:
    """Runs `python -m console` against a temporary config, store and state dir."""

    def __init__(self, tmp_path: Path, flags_toml: str = PLANS_CONFIG) -> None:
        self.dir = tmp_path
        self.export = tmp_path / "export" / "flags.json"
        self.config = tmp_path / "conn.toml"
        self.config.write_text(
            f'store = "sqlite:///{tmp_path / "conn.db"}"\n[flags]\nexport = "{self.export}"\n'
            + flags_toml.replace("[flags.groups]", "[flags.groups]", 1)
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CONN_", "XDG_"))},
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        }

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "console", *args, "--config", str(self.config)],
            cwd=REPO, env=self.env, input=stdin if stdin is not None else "",
            capture_output=True, text=True, timeout=60, check=False,
        )


@pytest.fixture
def conn(tmp_path: Path) -> Conn:
    """`conn` on a store where a writer has already created the config's flags.

    (Readers — list, eval — never create them; the leader or any change does.)
    """
    runner = Conn(tmp_path)
    seeded = runner("flag", "export")
    assert seeded.returncode == 0, seeded.stderr
    return runner


def test_list_shows_every_flag_and_the_file(conn: Conn) -> None:
    result = conn("flag", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PERCENT", "ALLOW", "LAST", "CHANGE"]
    row = next(line for line in lines if line.startswith("checkout_v2 "))
    assert row.split()[1:4] == ["enabled", "0.5%", "2"]
    assert next(line for line in lines if line.startswith("voiceMessages ")).split()[1] == "disabled"
    assert lines[-1] == f"flag file {conn.export}: ok"
    document = json.loads(conn("flag", "list", "--json").stdout)
    assert {f["name"] for f in document["flags"]} >= {"calendar_refactor", "aiSummarization"}
    assert document["export"]["state"] == "ok"
    assert flagd_schema_problems(json.loads(conn.export.read_bytes())) == []


def test_a_change_without_a_terminal_needs_yes(conn: Conn) -> None:
    refused = conn("flag", "set", "checkout_v2", "--percent", "10", "--reason", "stage 2")
    assert refused.returncode == 2
    assert "refusing to set checkout_v2 to 10% (now 0.5%): no terminal to confirm on; pass --yes" in refused.stderr
    before = conn.export.read_bytes()
    done = conn("flag", "set", "checkout_v2", "--percent", "10", "--reason", "stage 2", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("checkout_v2: enabled, 10%, allowlist 2")
    assert conn.export.read_bytes() != before
    flag = json.loads(conn.export.read_bytes())["flags"]["checkout_v2"]
    assert flag["targeting"]["if"][2] == {"fractional": [["on", 1000], ["off", 9000]]}
    audit = conn("audit", "--stream", "flag/checkout_v2", "--json").stdout.splitlines()
    last = json.loads(audit[-1])
    assert (last["reason"], last["payload"]["change"]) == ("stage 2", "percent")


def test_usage_errors_exit_2_and_refusals_exit_1(conn: Conn) -> None:
    no_reason = conn("flag", "kill", "checkout_v2", "--yes")
    assert no_reason.returncode == 2
    assert "the following arguments are required: --reason" in no_reason.stderr
    unknown = conn("flag", "on", "checkout_v3", "--reason", "x", "--yes")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "conn: no flag named 'checkout_v3'. Did you mean 'checkout_v2'?"
    bad = conn("flag", "set", "checkout_v2", "--percent", "150", "--reason", "x", "--yes")
    assert (bad.returncode, bad.stderr.strip()) == (1, "conn: checkout_v2: '150' is outside 0–100%")
    blank = conn("flag", "off", "checkout_v2", "--reason", " ", "--yes")
    assert (blank.returncode, blank.stderr.strip()) == (
        1, "conn: a reason is required: say why (it goes in the audit log)")


def test_eval_agrees_with_flagd_reading_the_exported_file(conn: Conn) -> None:
    assert conn("flag", "set", "checkout_v2", "--percent", "10", "--reason", "stage 2", "--yes").returncode == 0
    assert conn("flag", "allow", "checkout_v2", "@internal", "user-7", "--reason", "team", "--yes").returncode == 0
    keys = [f"user-{i}" for i in range(5000)]
    result = conn("flag", "eval", "checkout_v2", *keys, "--json")
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["key"] for a in answers] == keys
    document = conn.export.read_text()
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    core = FlagdCore()
    core.set_flags(document)
    for answer in answers:
        theirs = core.resolve_boolean_value("checkout_v2", False, EvaluationContext(answer["key"]))
        assert (answer["variant"], answer["value"]) == (theirs.variant, theirs.value), answer
    reasons = {a["reason"] for a in answers}
    assert reasons == {"fractional", "allowlist"}
    assert next(a for a in answers if a["key"] == "user-7")["reason"] == "allowlist"
    text = conn("flag", "eval", "checkout_v2", "user1", "user-42").stdout.splitlines()
    assert text[0] == "checkout_v2 user1: on (true) — allowlist [TARGETING_MATCH, group internal]"
    variant = flagd_answer(document, "checkout_v2", "user-42")[0]
    assert text[1].startswith(f"checkout_v2 user-42: {variant} (")


def test_kill_and_off_are_reported_as_such(conn: Conn) -> None:
    assert conn("flag", "kill", "calendar_refactor", "--reason", "p95 > 100ms", "--yes").returncode == 0
    killed = json.loads(conn("flag", "eval", "calendar_refactor", "user1", "--json").stdout)
    assert (killed["variant"], killed["value"], killed["reason"]) == ("off", False, "killed")
    disabled = conn("flag", "eval", "voiceMessages", "user1").stdout.strip()
    assert disabled == "voiceMessages user1: (code default) (false) — disabled [DISABLED]"


def test_export_on_demand_and_a_hand_edited_file(conn: Conn) -> None:
    other = conn.dir / "elsewhere.json"
    result = conn("flag", "export", str(other))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {other} (sha256 ")
    assert other.read_bytes() == conn.export.read_bytes()
    conn.export.write_text("{}\n")  # edited by hand
    listed = conn("flag", "list")
    assert listed.returncode == 0
    assert f"flag file {conn.export}: edited" in listed.stderr
    change = conn("flag", "set", "smartFolders", "--percent", "30", "--reason", "week 2", "--yes")
    assert change.returncode == 1
    assert change.stdout.startswith("smartFolders: enabled, 30%")  # recorded anyway
    assert "was edited outside Conn" in change.stderr
    assert str(conn.export) in change.stderr
    assert conn.export.read_text() == "{}\n"
    refused = conn("flag", "export")
    assert refused.returncode == 1
    assert "not overwritten" in refused.stderr
    forced = conn("flag", "export", "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(conn.export.read_bytes())["flags"]["smartFolders"]["targeting"]["if"][2] == {
        "fractional": [["on", 3000], ["off", 7000]]}


def test_list_notes_an_evaluator_version_change(conn: Conn) -> None:
    import asyncio

    from console.model.events import Actor, NewEvent
    from console.model.flags import FlagState, flag_event
    from console.store import open_store

    async def write_old_flag() -> None:
        store = await open_store(f"sqlite:///{conn.dir / 'conn.db'}")
        try:
            kind, payload = flag_event(FlagState("legacy", on_weight=1000), None,
                                       change="created", evaluator="0.1.0")
            await store.append("flag/legacy", 0, [NewEvent(kind, payload, "old")],
                               actor=Actor("bob"), at=1.0)
        finally:
            await store.close()

    asyncio.run(write_old_flag())
    result = conn("flag", "list")
    assert result.returncode == 0, result.stderr
    note = next(line for line in result.stdout.splitlines() if line.startswith("note: legacy"))
    assert "openfeature-flagd-core 0.1.0" in note
    assert "bucketing may differ" in note
    assert "note: checkout_v2" not in result.stdout
    document = json.loads(conn("flag", "list", "--json").stdout)
    legacy = next(f for f in document["flags"] if f["name"] == "legacy")
    assert (legacy["evaluator_version"], legacy["evaluator_mismatch"]) == ("0.1.0", True)


def test_conn_check_reports_bad_flags_with_their_keys(tmp_path: Path) -> None:
    bad = Conn(tmp_path, '[flags.groups]\nbeta-testers = []\n[flags.define.a]\npercent = 101\n'
                         'groups = ["beta"]\nvariants = { on = true, off = false }\ndefault_variant = "of"\n')
    result = bad("check")
    assert result.returncode == 1
    assert "flags.define.a.percent: 101 is outside 0–100%" in result.stderr
    assert "flags.define.a.groups[0]: \"beta\": is not a group in [flags.groups]. Did you mean 'beta-testers'?" in result.stderr
    assert "flags.define.a.default_variant: \"of\" is not one of the variants (on, off). Did you mean 'off'?" in result.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_confirmation_prompts() -> None:
    out = io.StringIO()
    assert confirm("set x to 10%", stdin=_Terminal("y\n"), stdout=out) is True
    assert out.getvalue() == "set x to 10%? [y/N] "
    assert confirm("set x to 10%", stdin=_Terminal("\n"), stdout=io.StringIO()) is False
    assert confirm("KILL x", type_name="x", stdin=_Terminal("x\n"), stdout=io.StringIO()) is True
    assert confirm("KILL x", type_name="x", stdin=_Terminal("y\n"), stdout=io.StringIO()) is False
    assert confirm("set x", stdin=io.StringIO("y\n"), stdout=io.StringIO()) is None  # no terminal
