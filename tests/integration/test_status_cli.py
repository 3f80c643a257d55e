"""`conn status` as a monitoring check: the real CLI against the demo fleet, and its exit codes.

0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the Nagios/Icinga/Sensu plugin
convention); ``--no-fail`` keeps the old always-0. The fleet runs in this
process; the CLI in its own, probing the fleet directly (no leader writes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from console.cli.status import CRITICAL, OK, UNKNOWN, WARNING, signal_text, verdict
from console.demo.fleet import DemoFleet, FleetInfo
from console.ui.widgets.panel_data import shown_signal
from console.ui.widgets.service_table import signal_cell
from tests.fixtures.fleet import demo_fleet_fixture, flag_file_fixture
from tests.fixtures.panels import live, signal

__all__ = ["demo_fleet_fixture", "flag_file_fixture"]


def status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console", "status", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"},
    )


# --- the real CLI -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_healthy_fleet_exits_0_and_says_ok(demo_fleet: tuple[DemoFleet, FleetInfo]) -> None:
    run = status(demo_fleet[1].config_path)
    assert run.returncode == OK, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "overall: OK"


@pytest.mark.slow
def test_a_service_made_down_exits_2_and_no_fail_exits_0(
    demo_fleet: tuple[DemoFleet, FleetInfo],
) -> None:
    fleet, info = demo_fleet
    fleet.set_faults("payments", health="down")
    run = status(info.config_path)
    assert run.returncode == CRITICAL, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1].startswith("overall: CRITICAL — payments down")
    as_json = status(info.config_path, "--json")
    assert as_json.returncode == CRITICAL
    by_name = {s["name"]: s for s in json.loads(as_json.stdout)["services"]}
    assert by_name["payments"]["health"] == "down"
    quiet = status(info.config_path, "--no-fail")
    assert quiet.returncode == 0, quiet.stderr
    assert "payments" in quiet.stdout and "overall: CRITICAL" in quiet.stdout


@pytest.mark.slow
def test_a_degraded_service_exits_1(demo_fleet: tuple[DemoFleet, FleetInfo]) -> None:
    fleet, info = demo_fleet
    fleet.set_faults("search", health="degraded")
    run = status(info.config_path)
    assert run.returncode == WARNING, run.stdout + run.stderr
    assert "search degraded" in run.stdout.splitlines()[-1]


def test_no_current_value_anywhere_exits_3(demo_fleet: tuple[DemoFleet, FleetInfo]) -> None:
    """No leader has written and --no-probe: nothing can be told about any service."""
    run = status(demo_fleet[1].config_path, "--no-probe")
    assert run.returncode == UNKNOWN, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "overall: UNKNOWN — no current value for any of 4 services"
    assert status(demo_fleet[1].config_path, "--no-probe", "--no-fail").returncode == 0


def test_an_unreadable_store_exits_3(tmp_path: Path) -> None:
    junk = tmp_path / "conn.db"
    junk.write_text("not a database at all, just some text\n" * 100)
    config = tmp_path / "conn.toml"
    config.write_text(f'store = "sqlite://{junk}"\n')
    run = status(config)
    assert run.returncode == UNKNOWN, run.stdout + run.stderr
    assert run.stderr.startswith("conn: ") and "Traceback" not in run.stderr
    assert status(config, "--no-fail").returncode == 1  # an error, as before --no-fail existed


def test_the_exit_codes_are_in_the_help() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "console", "status", "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0
    for line in ("0  OK", "1  WARNING", "2  CRITICAL", "3  UNKNOWN", "--no-fail"):
        assert line in run.stdout


# --- the verdict, on documents ------------------------------------------------------------------


def service(name: str, health: str = "up", *, stale: bool = False, **states: str) -> dict[str, Any]:
    signals = [
        {"name": n, "label": n, "value": 1.0, "unit": "", "state": s, "stale": stale}
        for n, s in states.items()
    ]
    return {"name": name, "health": health, "stale": stale, "signals": signals}


@pytest.mark.parametrize(
    ("services", "code", "findings"),
    [
        ([service("a"), service("b", p95="ok")], OK, ()),
        ([service("a", p95="warning")], WARNING, ("a p95 warning",)),
        ([service("a", "degraded")], WARNING, ("a degraded",)),
        ([service("a"), service("b", "unknown", stale=True)], WARNING, ("b stale",)),
        ([service("a"), service("b", "unknown")], WARNING, ("b has no value",)),
        ([service("a", "down")], CRITICAL, ("a down",)),
        ([service("a", error_rate="critical"), service("b", p95="warning")], CRITICAL,
         ("a error_rate critical", "b p95 warning")),
        # critical wins over unknown: a service known to be down is news, whatever else is dark
        ([service("a", "down"), service("b", "unknown")], CRITICAL, ("a down", "b has no value")),
        ([service("a", "unknown", stale=True), service("b", "unknown", stale=True)], UNKNOWN,
         ("no current value for any of 2 services",)),
        ([], UNKNOWN, ("no services in the config",)),
        # a stale critical value says nothing about now
        ([service("a", p95="critical", stale=True), service("b")], OK, ()),
        ([service("a", cache="no_data", memory="source_down")], OK, ()),
    ],
)  # fmt: skip
def test_verdict(services: list[dict[str, Any]], code: int, findings: tuple[str, ...]) -> None:
    judged = verdict({"services": services})
    assert (judged.code, judged.findings) == (code, findings)


# --- one value, one spelling --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "state", "text"),
    [
        (74.44, "ms", "ok", "74.4 ms"),
        (1480.0, "ms", "critical", "1.48 s ✖"),
        (0.0, "%", "ok", "0.00%"),
        (0.0415, "%", "warning", "0.04% ▲"),
        (12.46, "%", "ok", "12.5%"),
        (None, "ms", "no_data", "no data"),
    ],
)
def test_the_table_the_panels_and_status_show_a_value_alike(
    value: float | None, unit: str, state: str, text: str
) -> None:
    """Before: the TUI said "0.00%" where `conn status` said "0%"; all three call format_value now."""
    shown = signal("error_rate" if unit == "%" else "p95", value, unit=unit, state=state)
    row = live(extra=()).model_copy(update={"signals": (shown,)})
    assert signal_cell(row, shown.name).plain == text
    assert shown_signal(shown, stale=False).text == text
    assert signal_text({"value": value, "unit": unit, "state": state}) == text


# --- incidents and notifications in the JSON -----------------------------------------------------


@pytest.mark.slow
async def test_the_json_lists_open_and_recently_resolved_incidents_and_each_outbox(tmp_path: Path) -> None:
    """Open incidents and those resolved in the last 24 h (``open`` tells them apart); older ones
    are left to `conn incident list --all`. Each chat webhook's outbox is under ``notify``."""
    import time

    from console.config import load_config
    from console.engine.core import Engine
    from console.engine.incidents import AcknowledgeIncident, OpenIncident, SetIncidentStatus
    from console.model.clock import FakeClock
    from console.model.events import Actor
    from console.store import open_store

    config = tmp_path / "conn.toml"
    config.write_text(
        f'store = "sqlite:///{tmp_path / "conn.db"}"\n'
        '[services.checkout]\nhealth_url = "http://127.0.0.1:9/health"\n'
        '[services.payments]\nhealth_url = "http://127.0.0.1:9/health"\n'
        '[notify.ops]\nformat = "json"\nurl_secret = "ops_hook"\n'
    )
    now = time.time()
    clock = FakeClock(now - 3 * 86400)
    cfg, _ = load_config(str(config))
    store = await open_store(cfg.store)
    try:
        async with Engine(cfg, store, clock=clock, actor=Actor("alice"), lead=False, follow=False,
                          sync_flag_file=False) as engine:
            await engine.execute(OpenIncident(title="old one", services=("checkout",), severity="SEV3"))
            clock.advance(3600)
            await engine.execute(SetIncidentStatus(incident="INC-1", status="resolved"))
            clock.set(now - 7200)
            await engine.execute(OpenIncident(title="last night", services=("payments",), severity="SEV2"))
            await engine.execute(AcknowledgeIncident(incident="INC-2"))
            clock.set(now - 3600)
            await engine.execute(SetIncidentStatus(incident="INC-2", status="resolved"))
            clock.set(now - 1800)  # SEV1 answers within 5 minutes: half an hour unacknowledged is overdue
            await engine.execute(OpenIncident(title="checkout [bold]down\x1b[2J", services=("checkout",),
                                              severity="SEV1"))
    finally:
        await store.close()
    run = status(config, "--json", "--no-probe")
    assert run.returncode == UNKNOWN, run.stderr  # nobody probes these services; the JSON is still whole
    document = json.loads(run.stdout)
    incidents = {i["id"]: i for i in document["incidents"]}
    assert list(incidents) == ["INC-3", "INC-2"]  # open first; INC-1 ended two days ago
    live, ended = incidents["INC-3"], incidents["INC-2"]
    assert (live["open"], live["severity"], live["status"], live["title"]) == (
        True, "SEV1", "investigating", "checkout [bold]down")
    assert live["services"] == ["checkout"] and live["commander"] == "alice"
    assert live["acknowledged_at"] is None and live["ack_overdue"] is True
    assert live["ack_due_at"] == pytest.approx(now - 1800 + 300)
    assert live["next_update_due"] == pytest.approx(now - 1800 + 900)  # SEV1: an update every 15 minutes
    assert (ended["open"], ended["status"], ended["ack_overdue"], ended["next_update_due"]) == (
        False, "resolved", False, None)
    assert ended["acknowledged_at"] == pytest.approx(now - 7200)
    assert ended["resolved_at"] == pytest.approx(now - 3600)
    assert document["notify"] == [{"name": "ops", "format": "json", "pending": 0, "sent": 0,
                                   "failure": None, "needs_fixing": False}]
    assert {"environment", "services", "flags", "rollouts", "notes"} <= set(document)
    text = status(config, "--no-probe")
    lines = text.stdout.splitlines()
    # The text output names each open incident (never the ended ones), literally.
    assert "  incident INC-3 SEV1 investigating — checkout [bold]down (ack OVERDUE; checkout)" in lines, lines
    assert not any("INC-2" in line or "INC-1" in line for line in lines)
