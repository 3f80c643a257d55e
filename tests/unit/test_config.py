"""Config: the example validates; each class of error names its key and value."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from console.config import find_config, load_config, parse_config
from console.engine.sampling import accumulator
from console.errors import ConfigError, ConfigNotFound
from console.model.health import ProbeResult

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
[services.checkout]
health_url = "http://127.0.0.1:8081/api/health"
interval = "5s"
timeout = "2s"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="conn.toml")
    return caught.value.problems


def test_example_config_validates() -> None:
    config, _ = load_config(ROOT / "config.example.toml")
    assert set(config.services) == {
        "checkout", "checkout-canary", "payments", "search", "appointments", "appointments-canary",
        "pulse", "pulse-canary",
    }
    assert config.services["checkout-canary"].baseline == "checkout"
    assert config.thresholds_for("checkout")["p95"].critical == 375.0  # profile beats defaults
    assert config.thresholds_for("payments")["error_rate"].warning == 1.0
    assert config.thresholds_for("payments")["probe_errors"].critical == 5.0
    assert {k: (s.path, s.scale) for k, s in config.services["payments"].health_json.sources().items()} == {
        "p95": ("metrics.p95_ms", 1.0),
        "error_rate": ("metrics.error_rate", 100.0),
    }


def test_example_config_carries_the_plans_as_rollouts_that_pass_conn_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from console.cli.check import handle

    config, _ = load_config(ROOT / "config.example.toml")
    plans = {name: (r.flag, [s.percent for s in r.stages], r.max_detection) for name, r in config.rollouts.items()}
    assert plans == {
        "calendar-refactor": ("calendar_refactor", [0, 10, 50, 100], None),           # plan 000
        "checkout": ("checkout_v2", [10, 25, 50, 75, 100], 90.0),                     # plan 002
        "perf-circuit-breaker": ("circuit_breaker_v2", [10, 50, 100], 660.0),         # plan 001
        "perf-conditional-loading": ("conditional_loading", [10, 50, 100], 660.0),
        "pulse-voice": ("voiceMessages", [0, 25, 50, 100], 360.0),                    # plan 004
    }
    assert config.rollouts["checkout"].gate.criteria == [
        "p95 < 500ms", "error_rate < 0.1%", "cache_hit_rate > 70%", "memory_pct < 70%"]
    assert config.rollouts["pulse-voice"].abort.criteria == [
        "error_rate > 5% for 5m", "health_failures > 3 within 5m", "p95 > 1.5x baseline"]
    assert config.rollouts["perf-conditional-loading"].abort.criteria == [
        "p95 > 15s", "error_rate > 1.5x baseline", "circuit_breaker_opens increase > 5 within 10m"]
    assert handle(argparse.Namespace(config=str(ROOT / "config.example.toml"))) == 0  # budgets within limits
    printed = capsys.readouterr().out
    assert "abort.criteria[0]    error_rate > 5% for 5m         rollback  ≤ 5m 33s" in printed


def test_durations_and_defaults() -> None:
    config = parse_config(GOOD)
    service = config.services["checkout"]
    assert (service.interval, service.timeout, service.follow_redirects) == (5.0, 2.0, False)
    assert parse_config(GOOD.replace('"5s"', '"500ms"')).services["checkout"].interval == 0.5


def test_bad_duration_names_key_and_value() -> None:
    assert problems(GOOD.replace('"5s"', '"fast"')) == [
        'services.checkout.interval: "fast" is not a duration (examples: "500ms", "2s", "5m", "1h")'
    ]


def test_unknown_key_suggests_the_near_one() -> None:
    found = problems(GOOD.replace("timeout", "timout"))
    assert found == ["services.checkout.timout: unknown key. Did you mean 'timeout'?"]
    assert problems("enviroment = 'x'") == ["enviroment: unknown key. Did you mean 'environment'?"]


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = "storee = 1\n" + GOOD.replace('"5s"', '"fast"').replace('"2s"', "-1")
    found = problems(text)
    assert len(found) == 3
    assert any(p.startswith("services.checkout.timeout: -1") for p in found)
    assert any(p.startswith("storee: unknown key") for p in found)


def test_missing_required_key() -> None:
    assert problems("[services.checkout]\ninterval = '5s'\n") == [
        "services.checkout.health_url: required key is missing"
    ]


def test_wrong_type_and_bad_url() -> None:
    found = problems(GOOD.replace('"http://127.0.0.1:8081/api/health"', '"ftp://x"'))
    assert found == ["services.checkout.health_url: \"ftp://x\" is not an http:// or https:// URL"]
    found = problems(GOOD + "follow_redirects = 'maybe'\n")
    assert found[0].startswith('services.checkout.follow_redirects: "maybe"')


def test_threshold_order_and_references() -> None:
    found = problems(GOOD + "[services.checkout.thresholds.p95]\nwarning = 10\ncritical = 5\n")
    assert found == [
        "services.checkout.thresholds.p95: critical (5) must be ≥ warning (10) when direction is 'above'"
    ]
    found = problems(GOOD + "baseline = 'chekout'\n")
    assert "services.checkout.baseline: 'chekout' is not a service. Did you mean 'checkout'?" in found[0]


def test_promql_needs_prometheus() -> None:
    found = problems(GOOD + "[services.checkout.signals.hits]\npromql = 'up'\n")
    assert "uses PromQL but [sources.prometheus] is not configured" in found[0]


def test_signal_needs_exactly_one_source() -> None:
    found = problems(GOOD + "[services.checkout.signals.hits]\nunit = '%'\n")
    assert found == ["services.checkout.signals.hits: set exactly one of json_path or promql"]


# --- built-in signals from the health JSON ------------------------------------

PROMETHEUS = '[sources.prometheus]\nurl = "http://127.0.0.1:9090"\n'
FROM_JSON = GOOD + """
[services.checkout.json]
error_rate = { path = "metrics.error_rate", scale = 100.0 }   # the body says 0.077
p95 = "metrics.p95_ms"                                         # a plain string: path, scale 1
"""


def test_builtins_from_the_health_json_a_path_or_a_path_and_scale() -> None:
    service = parse_config(FROM_JSON).services["checkout"]
    assert {name: (s.path, s.scale) for name, s in service.health_json.sources().items()} == {
        "p95": ("metrics.p95_ms", 1.0),
        "error_rate": ("metrics.error_rate", 100.0),
    }
    assert parse_config(GOOD).services["checkout"].health_json.sources() == {}  # the prober's
    # The shape reaches the signals: the body's 0.077 is shown as 7.7 %, from the health JSON.
    config = parse_config(FROM_JSON + "[services.checkout.thresholds.probe_errors]\nwarning = 1\n")
    signals = accumulator(config, "checkout")
    signals.record_probe(ProbeResult(
        "checkout", 0.0, 30.0, "up", "HTTP 200", True, 200,
        {"metrics": {"error_rate": 0.077, "p95_ms": 412}},
    ))
    live = signals.snapshot(0.0)
    shown = {s.name: (s.value, s.source) for s in live.signals}
    assert shown == {
        "p50": (pytest.approx(30.0, rel=0.02), "probe"),
        "p95": (412.0, "health-json"),
        "p99": (pytest.approx(30.0, rel=0.02), "probe"),
        "error_rate": (7.7, "health-json"),
        "probe_errors": (0.0, "probe"),
    }
    assert config.thresholds_for("checkout")["probe_errors"].warning == 1.0


def test_a_builtin_with_a_query_and_a_json_path_names_both_keys() -> None:
    text = PROMETHEUS + FROM_JSON + "[services.checkout.queries]\np95 = 'histogram_quantile(0.95, x)'\n"
    assert problems(text) == [
        "services.checkout.json.p95 and services.checkout.queries.p95: p95 can have one source, "
        "a JSON path or a PromQL query; remove one"
    ]
    both = text.replace("p95 = 'hist", "error_rate = 'hist")
    assert problems(both)[0].startswith("services.checkout.json.error_rate and services.checkout.queries.error_rate:")


def test_unknown_keys_in_the_json_table_say_what_belongs_there() -> None:
    found = problems(GOOD + '[services.checkout.json]\neror_rate = "m.e"\nprobe_errors = "m.e"\n')
    assert found == [
        "services.checkout.json.eror_rate: unknown key. Did you mean 'error_rate'? Only p50, p95, p99, error_rate "
        "are read here (probe_errors is the prober's own); other values are named signals: "
        "[services.<name>.signals.<key>].",
        "services.checkout.json.probe_errors: unknown key. Only p50, p95, p99, error_rate are read "
        "here (probe_errors is the prober's own); other values are named signals: "
        "[services.<name>.signals.<key>].",
    ]
    found = problems(GOOD + '[services.checkout.json]\nerror_rate = { path = "m.e", scle = 100.0 }\n')
    assert found == ["services.checkout.json.error_rate.scle: unknown key. Did you mean 'scale'?"]


def test_json_paths_and_scales_that_cannot_work_are_refused() -> None:
    found = problems(GOOD + """[services.checkout.json]
p50 = 50
p95 = "metrics..p95"
p99 = { scale = 1.0 }
error_rate = { path = "metrics.error_rate", scale = nan }
""")
    assert found == [
        'services.checkout.json.p50: 50: give a dotted path ("metrics.p95_ms") or a table '
        '{ path = "metrics.error_rate", scale = 100.0 }',
        'services.checkout.json.p95.path: "metrics..p95" is not a dotted path such as "metrics.p95_ms"',
        "services.checkout.json.p99.path: required key is missing",
        "services.checkout.json.error_rate.scale: nan: Input should be a finite number",
    ]
    assert problems(GOOD + "[services.checkout.signals.probe_errors]\njson_path = 'a'\n") == [
        "services.checkout.signals: probe_errors is built in (measured by the prober); "
        "give the custom signal another name"
    ]


def test_toml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[services.checkout\nhealth_url = 1\n", source="conn.toml")
    assert "conn.toml: not valid TOML" in str(caught.value)
    assert "line 1" in str(caught.value) and "column" in str(caught.value)


def test_missing_config_names_places_and_points_to_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CONN_CONFIG", str(tmp_path / "env.toml"))
    with pytest.raises(ConfigNotFound) as caught:
        find_config()
    message = str(caught.value)
    for place in (tmp_path / "env.toml", tmp_path / "conn.toml", tmp_path / "xdg/conn/conn.toml"):
        assert str(place) in message
    assert "conn demo" in message and "config.example.toml" in message


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CONN_CONFIG", raising=False)
    (tmp_path / "xdg/conn").mkdir(parents=True)
    (tmp_path / "xdg/conn/conn.toml").write_text(GOOD)
    assert find_config() == tmp_path / "xdg/conn/conn.toml"
    (tmp_path / "conn.toml").write_text(GOOD)
    assert find_config() == tmp_path / "conn.toml"
    monkeypatch.setenv("CONN_CONFIG", str(tmp_path / "env.toml"))
    (tmp_path / "env.toml").write_text(GOOD)
    assert find_config() == tmp_path / "env.toml"
    assert find_config(tmp_path / "xdg/conn/conn.toml") == tmp_path / "xdg/conn/conn.toml"


def test_conn_check_cli_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('"5s"', '"fast"'))
    run = subprocess.run(
        [sys.executable, "-m", "console", "check", "--config", str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 1
    assert 'services.checkout.interval: "fast" is not a duration' in run.stderr
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    run = subprocess.run(
        [sys.executable, "-m", "console", "check", "--config", str(good)],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "ok" in run.stdout and "1 service, 0 flags" in run.stdout


def test_config_option_before_or_after_the_command(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    for argv in (["--config", str(good), "check"], ["check", "--config", str(good)]):
        run = subprocess.run(
            [sys.executable, "-m", "console", *argv], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        assert str(good) in run.stdout


def test_keymap_names_unknown_binding_ids() -> None:
    found = problems('[keymap]\n"app-flgs" = "g"\n')
    assert found == [
        "keymap: 'app-flgs' is not a binding id. Did you mean 'app-flags'? "
        "(the README's keys table lists them)"
    ]
    assert parse_config('[keymap]\n"app-flags" = "g"\n').keymap == {"app-flags": "g"}


def test_a_password_in_the_store_url_is_refused() -> None:
    for url in ("postgresql://conn:hunter2@db/conn", "postgresql://conn@db/conn?password=hunter2"):
        found = problems(f'store = "{url}"\n')
        assert len(found) == 1
        assert found[0].startswith("store: ")
        assert "store_password_secret" in found[0]
    config = parse_config('store = "postgresql://conn@db/conn"\nstore_password_secret = "db_pw"\n')
    assert config.store_password_secret == "db_pw"


def test_thresholds_on_signals_that_do_not_exist_are_errors() -> None:
    found = problems(GOOD + "[services.checkout.thresholds.latency]\nwarning = 5\n")
    assert len(found) == 1
    assert found[0].startswith("services.checkout.thresholds.latency: checkout has no signal called 'latency'")
    found = problems("[defaults.thresholds.p59]\nwarning = 5\n" + GOOD)
    assert found == ["defaults.thresholds.p59: no service has a signal called 'p59'. Did you mean 'p99'?"]


def test_nan_and_infinity_are_refused() -> None:
    found = problems(GOOD + "[services.checkout.thresholds.p95]\nwarning = nan\n")
    assert len(found) == 1
    assert found[0].startswith("services.checkout.thresholds.p95.warning: nan")
    found = problems(GOOD + "[services.checkout.signals.hits]\njson_path = 'a'\nscale = inf\n")
    assert found[0].startswith("services.checkout.signals.hits.scale: inf")


def test_store_urls_that_cannot_work_are_refused_by_check() -> None:
    for url, expected in [
        ("sqlite:///", "a SQLite store URL is sqlite:/// and a file path"),
        ("sqlite:///x.db?mode=ro", "no ?options"),
        ("postgresql://conn@127.0.0.1:99999/conn", "out of range"),
        ("mysql://db/conn", "is not a store URL"),
    ]:
        found = problems(f'store = "{url}"\n')
        assert len(found) == 1, found
        assert found[0].startswith("store: ")
        assert expected in found[0]
    assert parse_config('store = "sqlite:///var/lib/conn/conn.db"\n').store_path == Path(
        "/var/lib/conn/conn.db"
    )


def test_unreadable_or_directory_config_is_a_clear_error(tmp_path: Path) -> None:
    from console.config import load_config

    with pytest.raises(ConfigNotFound, match="is a directory"):
        load_config(tmp_path)
    broken = tmp_path / "conn.toml"
    broken.symlink_to(broken)  # a loop: unreadable even for root
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(broken)


def test_incident_notify_and_alert_sections_name_their_bad_keys(tmp_path: Path) -> None:
    path = tmp_path / "conn.toml"
    path.write_text(
        '[services.checkout]\nhealth_url = "http://127.0.0.1:1/h"\n'
        '[incidents]\nauto_rollback_severity = "SEV9"\n'
        '[notify.chat]\nformat = "slack"\nurl = "https://hooks.slack.com/services/T/B/secret"\n'
        '[sources.alertmanager]\nurl = "http://127.0.0.1:9093"\n'
        '[[sources.alertmanager.rules]]\nmatchers = [\'alertname="X"\']\nservice = "chekout"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "incidents.auto_rollback_severity" in text and "SEV1" in text
    assert "url_secret" in text and "hooks.slack.com" not in text and "secret" in text
    path.write_text(
        '[services.checkout]\nhealth_url = "http://127.0.0.1:1/h"\n'
        '[sources.alertmanager]\nurl = "http://127.0.0.1:9093"\n'
        '[[sources.alertmanager.rules]]\nmatchers = [\'alertname="X"\']\nservice = "chekout"\n'
    )
    with pytest.raises(ConfigError, match=r"sources.alertmanager.rules\[0\].service: 'chekout' is not a service. Did you mean 'checkout'"):
        load_config(path)
