"""`conn rollout backtest` fills PromQL-fed signals from a real Prometheus where no history was recorded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.demo.fleet import FleetInfo
from tests.fixtures.prometheus import (
    PrometheusServer,
    prometheus_server_fixture,
    scraped_fleet_fixture,
    wait_for_value,
)

__all__ = ["prometheus_server_fixture", "scraped_fleet_fixture"]  # fixtures, used by name

pytestmark = pytest.mark.slow

UP = 'sum by () (up{job="demo"})'


def test_backtest_reads_promql_signals_from_prometheus_when_nothing_was_recorded(
    prometheus_server: PrometheusServer, scraped_fleet: FleetInfo, tmp_path: Path
) -> None:
    wait_for_value(prometheus_server, UP)
    time.sleep(21)  # two evaluation steps of Prometheus' own data, before any is recorded
    config = tmp_path / "conn.toml"
    config.write_text(f"""
store = "sqlite:///{tmp_path / 'conn.db'}"

[sources.prometheus]
url = "{prometheus_server.url}"
interval = "1s"

[services.checkout]
health_url = "{scraped_fleet.urls['checkout']}/api/health"

[services.checkout-canary]
health_url = "{scraped_fleet.urls['checkout-canary']}/api/health"

[services.checkout-canary.signals.targets_up]
promql = '{UP}'

[flags.define.checkout_v2]
percent = 0

[rollouts.checkout]
canary = "checkout-canary"
baseline = "checkout"
flag = "checkout_v2"

[[rollouts.checkout.stages]]
name = "10%"
percent = 10

[rollouts.checkout.abort]
criteria = ["targets_up > 3"]
""")
    run = subprocess.run(
        [sys.executable, "-m", "console", "rollout", "backtest", "checkout", "--since", "20s",
         "--json", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    rule = next(r for r in report["criteria"] if r["criterion"] == "targets_up > 3")
    counts = rule["counts"]
    # No history was ever recorded: every verdict comes from Prometheus' own answers
    # (four demo targets up, so the abort rule would have fired).
    assert counts.get("fail", 0) > 0, (rule["spans"], rule["changes"], run.stderr)
    assert report["first_rollback"] is not None
    text = subprocess.run(
        [sys.executable, "-m", "console", "rollout", "backtest", "checkout", "--since", "20s",
         "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert "came from Prometheus range queries" in text.stdout
    assert "would have rolled back" in text.stdout
