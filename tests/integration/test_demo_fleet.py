"""The demo fleet over real HTTP on loopback: endpoints, faults, config, canary, CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from console.config import parse_config
from console.demo.control import clear_faults, get_faults, inject_faults
from console.demo.faults import Faults, parse_faults
from console.demo.fleet import DemoFleet, FleetInfo
from console.errors import ActionError, CommandError, StateDirError
from tests.fixtures.fleet import (
    SHORT_WINDOW_S,
    demo_fleet_fixture,
    fast_fleet_fixture,
    flag_file_fixture,
    http_fixture,
    write_flagd,
)

Fleet = tuple[DemoFleet, FleetInfo]
SERVICES = ("checkout", "checkout-canary", "payments", "search")
REPO = Path(__file__).resolve().parents[2]
FIXTURES = (demo_fleet_fixture, fast_fleet_fixture, flag_file_fixture, http_fixture)
"""Imported for pytest to find; named here so the imports are visibly used."""


async def advanced(http: httpx.AsyncClient, url: str) -> tuple[int, dict[str, Any]]:
    response = await http.get(url + "/api/health/advanced")
    return response.status_code, response.json()


async def wait_window() -> None:
    """Let a short-window fleet replace its whole window with new traffic."""
    await asyncio.sleep(SHORT_WINDOW_S + 0.4)


# --- shapes ------------------------------------------------------------------


async def test_fleet_runs_four_services_on_distinct_loopback_ports(demo_fleet: Fleet) -> None:
    _, info = demo_fleet
    assert tuple(info.urls) == SERVICES
    ports = {url.rsplit(":", 1)[1] for url in info.urls.values()}
    assert len(ports) == 4
    assert all(url.startswith("http://127.0.0.1:") for url in info.urls.values())
    assert info.config_path.is_absolute()
    assert info.config_path.name == "conn-demo.toml"


async def test_basic_health_shape(demo_fleet: Fleet, http: httpx.AsyncClient) -> None:
    _, info = demo_fleet
    for name, url in info.urls.items():
        response = await http.get(url + "/api/health")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["status"] == "ok"
        assert body["service"] == name
        assert isinstance(body["version"], str)
        assert body["version"]
        assert body["uptime_s"] >= 0


async def test_advanced_health_reports_last_minute_of_simulated_traffic(
    demo_fleet: Fleet, http: httpx.AsyncClient
) -> None:
    _, info = demo_fleet
    medians = {"checkout": 60.0, "payments": 90.0, "search": 40.0}
    for name, median in medians.items():
        status, body = await advanced(http, info.urls[name])
        assert status == 200
        assert body["status"] == "healthy"
        assert body["service"] == name
        datetime.fromisoformat(body["timestamp"])
        assert body["checks"] == {
            "database": "ok",
            "cache": "ok",
            "memory": "ok",
            "circuit_breakers": "ok",
        }
        m = body["metrics"]
        assert 0.8 * median < m["p50_ms"] < 1.2 * median
        assert m["p50_ms"] < m["p95_ms"] < m["p99_ms"] < 500
        assert 0 <= m["error_rate"] < 0.005
        assert 0.8 < m["cache_hit_rate"] < 0.9
        assert 39 <= m["memory_pct"] <= 56
        assert isinstance(m["circuit_breaker_opens"], int)
        assert m["circuit_breaker_opens"] >= 0
        assert 50 <= m["requests_per_s"] <= 250
    # Only the checkout family reports the canary share; with no flag file it is 0.
    assert (await advanced(http, info.urls["checkout"]))[1]["metrics"]["canary_share"] == 0.0
    canary = (await advanced(http, info.urls["checkout-canary"]))[1]["metrics"]
    assert canary["canary_share"] == 0.0
    assert canary["requests_per_s"] == 0.0
    assert canary["p95_ms"] is None  # no traffic, no percentile: never a made-up number
    assert "canary_share" not in (await advanced(http, info.urls["payments"]))[1]["metrics"]


async def test_metrics_are_prometheus_exposition_per_service(
    demo_fleet: Fleet, http: httpx.AsyncClient
) -> None:
    _, info = demo_fleet
    await asyncio.sleep(0.5)  # a couple of simulated batches
    for name in ("checkout", "search"):
        response = await http.get(info.urls[name] + "/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        assert families["http_request_duration_seconds"].type == "histogram"
        assert families["http_requests"].type == "counter"
        assert families["cache_hit_ratio"].type == "gauge"
        assert families["memory_usage_percent"].type == "gauge"
        assert families["circuit_breaker_opens"].type == "counter"
        for family in families.values():
            assert {s.labels.get("service") for s in family.samples} == {name}
        buckets = {
            s.labels["le"]: s.value
            for s in families["http_request_duration_seconds"].samples
            if s.name.endswith("_bucket")
        }
        for le in ("0.05", "0.1", "0.5", "1.0", "+Inf"):
            assert le in buckets
        assert buckets["+Inf"] > 0
        ok = [
            s.value
            for s in families["http_requests"].samples
            if s.name == "http_requests_total" and s.labels["code"] == "200"
        ]
        assert ok
        assert ok[0] > 0
        memory = next(s.value for s in families["memory_usage_percent"].samples)
        assert 39 <= memory <= 56


async def test_unknown_paths_and_methods_answer_json(
    demo_fleet: Fleet, http: httpx.AsyncClient
) -> None:
    _, info = demo_fleet
    url = info.urls["payments"]
    missing = await http.get(url + "/nope")
    assert missing.status_code == 404
    assert "error" in missing.json()
    wrong = await http.post(url + "/api/health", json={})
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    assert (await http.put(url + "/_demo/faults", json={})).status_code == 405
    with_query = await http.get(url + "/api/health?verbose=1")
    assert with_query.status_code == 200


# --- faults over HTTP ----------------------------------------------------------


async def test_health_fault_down_then_degraded_then_cleared(
    demo_fleet: Fleet, http: httpx.AsyncClient
) -> None:
    _, info = demo_fleet
    url = info.urls["checkout"]
    assert (await http.post(url + "/_demo/faults", json={"health": "down"})).json() == {
        "health": "down"
    }
    basic = await http.get(url + "/api/health")
    assert basic.status_code == 503
    assert basic.json()["status"] == "down"
    status, body = await advanced(http, url)
    assert (status, body["status"], body["checks"]["database"]) == (503, "unhealthy", "down")

    await http.post(url + "/_demo/faults", json={"health": "degraded"})
    basic = await http.get(url + "/api/health")
    assert (basic.status_code, basic.json()["status"]) == (200, "degraded")
    status, body = await advanced(http, url)
    assert (status, body["status"]) == (200, "degraded")

    assert (await http.post(url + "/_demo/faults", json={})).json() == {}
    assert (await http.get(url + "/api/health")).json()["status"] == "ok"
    assert (await advanced(http, url))[1]["status"] == "healthy"
    # The other services never noticed.
    assert (await http.get(info.urls["search"] + "/api/health")).json()["status"] == "ok"


async def test_latency_fault_delays_the_real_health_answers(
    demo_fleet: Fleet, http: httpx.AsyncClient
) -> None:
    _, info = demo_fleet
    url = info.urls["payments"]
    await http.post(url + "/_demo/faults", json={"latency_ms": 600})
    for path in ("/api/health", "/api/health/advanced"):
        started = time.perf_counter()
        response = await http.get(url + path)
        assert response.status_code == 200
        assert time.perf_counter() - started >= 0.6
    # Fault control and metrics are not delayed: an operator can always clear.
    started = time.perf_counter()
    await http.post(url + "/_demo/faults", json={})
    await http.get(url + "/metrics")
    assert time.perf_counter() - started < 0.5
    started = time.perf_counter()
    await http.get(url + "/api/health")
    assert time.perf_counter() - started < 0.5


async def test_error_and_latency_faults_move_the_advanced_metrics(
    fast_fleet: Fleet, http: httpx.AsyncClient
) -> None:
    _, info = fast_fleet
    url = info.urls["search"]
    await http.post(url + "/_demo/faults", json={"error_rate": 0.2, "latency_ms": 800})
    await wait_window()
    m = (await advanced(http, url))[1]["metrics"]
    assert 0.08 < m["error_rate"] < 0.35
    assert m["p50_ms"] >= 800
    assert m["p95_ms"] >= 800
    await http.post(url + "/_demo/faults", json={})
    await wait_window()
    m = (await advanced(http, url))[1]["metrics"]
    assert m["error_rate"] < 0.02
    assert m["p95_ms"] < 500
    # The errors were counted with 5xx codes in /metrics too.
    text = (await http.get(url + "/metrics")).text
    failed = sum(
        s.value
        for f in text_string_to_metric_families(text)
        if f.name == "http_requests"
        for s in f.samples
        if s.name == "http_requests_total" and s.labels["code"] in ("500", "503")
    )
    assert failed > 10


async def test_cache_memory_and_breaker_faults(fast_fleet: Fleet, http: httpx.AsyncClient) -> None:
    _, info = fast_fleet
    url = info.urls["checkout"]
    await http.post(
        url + "/_demo/faults",
        json={"cache_hit_rate": 0.5, "memory_pct": 90, "circuit_breaker_opens": 7},
    )
    await wait_window()
    status, body = await advanced(http, url)
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"] == {
        "database": "ok",
        "cache": "degraded",
        "memory": "degraded",
        "circuit_breakers": "degraded",
    }
    m = body["metrics"]
    assert 0.35 < m["cache_hit_rate"] < 0.65
    assert m["memory_pct"] == 90
    assert m["circuit_breaker_opens"] == 7
    families = {
        f.name: f for f in text_string_to_metric_families((await http.get(url + "/metrics")).text)
    }
    assert families["memory_usage_percent"].samples[0].value == 90
    assert families["circuit_breaker_opens"].samples[0].value >= 7
    assert families["cache_hit_ratio"].samples[0].value < 0.65


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"down"', "JSON object"),
        (b'{"latency": 800}', "latency_ms"),
        (b'{"latency_ms": "fast"}', "latency_ms"),
        (b'{"latency_ms": true}', "latency_ms"),
        (b'{"latency_ms": -5}', "latency_ms"),
        (b'{"error_rate": 1.5}', "error_rate"),
        (b'{"error_rate": NaN}', "error_rate"),
        (b'{"health": "sideways"}', "health"),
        (b'{"circuit_breaker_opens": 2.5}', "circuit_breaker_opens"),
        (b'{"memory_pct": [90]}', "memory_pct"),
        (b"", "not valid JSON"),
        (b"[" * 50_000, "not valid JSON"),
        (b"[" * 100_000, "at most"),
    ],
)
async def test_malformed_fault_bodies_are_refused_and_the_service_keeps_serving(
    demo_fleet: Fleet, http: httpx.AsyncClient, body: bytes, mentions: str
) -> None:
    _, info = demo_fleet
    url = info.urls["search"]
    await http.post(url + "/_demo/faults", json={"memory_pct": 80})
    response = await http.post(
        url + "/_demo/faults", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 413)
    assert mentions in response.json()["error"]
    # Nothing was half-applied, and the server still answers.
    assert (await http.get(url + "/_demo/faults")).json() == {"memory_pct": 80}
    assert (await http.get(url + "/api/health")).status_code == 200


async def test_unknown_fault_key_suggests_the_near_one() -> None:
    with pytest.raises(CommandError, match="Did you mean 'latency_ms'"):
        parse_faults({"latency": 5})
    assert parse_faults({"health": "up"}) == Faults()
    assert parse_faults({"latency_ms": 5, "health": None}).as_dict() == {"latency_ms": 5.0}


# --- control: in-process and the async client ---------------------------------


async def test_in_process_control(demo_fleet: Fleet, http: httpx.AsyncClient) -> None:
    fleet, info = demo_fleet
    assert fleet.set_faults("payments", health="down", latency_ms=50) == {
        "latency_ms": 50.0,
        "health": "down",
    }
    assert (await http.get(info.urls["payments"] + "/api/health")).status_code == 503
    with pytest.raises(CommandError, match="Did you mean 'payments'"):
        fleet.set_faults("payment", health="down")
    with pytest.raises(CommandError, match="error_rate"):
        fleet.set_faults("payments", error_rate="lots")
    assert (await http.get(info.urls["payments"] + "/_demo/faults")).json()["health"] == "down"
    assert fleet.clear_faults("payments") == {}
    assert (await http.get(info.urls["payments"] + "/api/health")).status_code == 200


async def test_async_control_client(demo_fleet: Fleet, http: httpx.AsyncClient) -> None:
    _, info = demo_fleet
    url = info.urls["checkout-canary"]
    assert await inject_faults(url, {"error_rate": 0.3}) == {"error_rate": 0.3}
    assert await get_faults(url, client=http) == {"error_rate": 0.3}
    assert await clear_faults(url + "/", client=http) == {}
    with pytest.raises(ActionError, match="unknown fault"):
        await inject_faults(url, {"bogus": 1})
    with pytest.raises(ActionError, match="cannot reach"):
        await inject_faults(f"http://127.0.0.1:{_closed_port()}", {})


# --- lifecycle -----------------------------------------------------------------


async def test_taken_port_falls_back_to_a_free_one(tmp_path: Path, http: httpx.AsyncClient) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fleet = DemoFleet(tmp_path, ports={"checkout": port, "search": port})
        try:
            info = fleet.start()
            assert not info.urls["checkout"].endswith(f":{port}")
            assert (await http.get(info.urls["checkout"] + "/api/health")).status_code == 200
            assert (await http.get(info.urls["search"] + "/api/health")).status_code == 200
        finally:
            fleet.stop()


async def test_stop_is_idempotent_joins_threads_and_wakes_delayed_answers(tmp_path: Path) -> None:
    fleet = DemoFleet(tmp_path)
    info = fleet.start()
    assert fleet.start() is info  # idempotent while running
    fleet.set_faults("search", latency_ms=20_000)
    pending = asyncio.create_task(_get(info.urls["search"] + "/api/health"))
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    await asyncio.to_thread(fleet.stop)
    fleet.stop()
    assert time.perf_counter() - started < 2
    await asyncio.wait_for(pending, 3)  # answered (or cut) promptly, not after 20 s
    assert not [
        t for t in threading.enumerate() if t.name.startswith(("demo-http", "demo-traffic"))
    ]
    with pytest.raises(httpx.ConnectError):
        await _get(info.urls["checkout"] + "/api/health")


async def test_unwritable_state_dir_is_a_state_dir_error_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    fleet = DemoFleet(not_a_dir / "state")
    with pytest.raises(StateDirError, match="cannot write the demo config"):
        fleet.start()
    assert fleet.info is None
    assert not [
        t for t in threading.enumerate() if t.name.startswith(("demo-http", "demo-traffic"))
    ]


async def test_written_config_validates_and_watches_the_fleet(demo_fleet: Fleet) -> None:
    fleet, info = demo_fleet
    config = parse_config(info.config_path.read_bytes(), source=str(info.config_path))
    assert config.environment == "demo"
    assert config.store_path == fleet.state_dir / "conn.db"
    assert config.flags.export == fleet.state_dir / "flags.json"
    assert list(config.services) == list(SERVICES)
    for name, service in config.services.items():
        assert service.health_url == info.urls[name] + "/api/health/advanced"
        assert service.interval == 1.0
        assert set(service.signals) >= {"cache_hit_rate", "memory_pct", "circuit_breaker_opens"}
        # The table's latency and errors are the traffic's, from the health JSON.
        assert {k: (s.path, s.scale) for k, s in service.health_json.sources().items()} == {
            "p50": ("metrics.p50_ms", 1.0),
            "p95": ("metrics.p95_ms", 1.0),
            "p99": ("metrics.p99_ms", 1.0),
            "error_rate": ("metrics.error_rate", 100.0),
        }
        thresholds = config.thresholds_for(name)
        assert (thresholds["error_rate"].warning, thresholds["error_rate"].critical) == (1.0, 5.0)
        assert (thresholds["probe_errors"].warning, thresholds["probe_errors"].critical) == (1.0, 5.0)
        assert (thresholds["p95"].warning, thresholds["p95"].critical) == (500.0, 1000.0)
        assert thresholds["cache_hit_rate"].direction == "below"
        assert (thresholds["memory_pct"].warning, thresholds["memory_pct"].critical) == (70.0, 90.0)
        assert thresholds["circuit_breaker_opens"].critical == 5.0
    assert config.services["checkout-canary"].baseline == "checkout"
    assert config.services["checkout"].baseline is None
    assert config.services["checkout"].signals["cache_hit_rate"].scale == 100.0


# --- canary share from the flag file -------------------------------------------


async def test_flag_percentage_moves_the_canary_share(
    fast_fleet: Fleet, flag_file: Path, http: httpx.AsyncClient
) -> None:
    _, info = fast_fleet
    stable, canary = info.urls["checkout"], info.urls["checkout-canary"]

    write_flagd(flag_file, 0)
    await wait_window()
    assert (await advanced(http, stable))[1]["metrics"]["canary_share"] == 0.0
    assert (await advanced(http, canary))[1]["metrics"]["requests_per_s"] == 0.0

    write_flagd(flag_file, 50)
    await wait_window()
    s = (await advanced(http, stable))[1]["metrics"]
    c = (await advanced(http, canary))[1]["metrics"]
    assert 0.4 < s["canary_share"] < 0.6
    assert c["canary_share"] == s["canary_share"]
    assert c["requests_per_s"] > 30
    assert s["requests_per_s"] > 30
    assert c["p95_ms"] is not None

    write_flagd(flag_file, 100)
    await wait_window()
    assert (await advanced(http, canary))[1]["metrics"]["canary_share"] == 1.0
    assert (await advanced(http, stable))[1]["metrics"]["requests_per_s"] == 0.0

    write_flagd(flag_file, None)  # the flag is gone: everyone back on stable
    await asyncio.sleep(0.3)
    assert (await advanced(http, canary))[1]["metrics"]["canary_share"] == 0.0


async def test_broken_flag_file_means_no_canary_and_the_services_keep_serving(
    demo_fleet: Fleet, flag_file: Path, http: httpx.AsyncClient
) -> None:
    fleet, info = demo_fleet
    for broken in ("{not json", '["a list"]', '{"flags": {"checkout_v2": {"state": "MAYBE"}}}'):
        await asyncio.to_thread(flag_file.write_text, broken)
        status, body = await advanced(http, info.urls["checkout-canary"])
        assert status == 200
        assert body["metrics"]["canary_share"] == 0.0
        assert fleet.router.last_error
    write_flagd(flag_file, 100)
    assert (await advanced(http, info.urls["checkout"]))[1]["metrics"]["canary_share"] == 1.0
    assert fleet.router.last_error is None


# --- standalone ----------------------------------------------------------------


@pytest.mark.slow
def test_python_m_console_demo_prints_config_first_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.demo", "--state-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        config_path = Path(first)
        assert config_path.is_absolute()
        assert config_path == (tmp_path / "demo" / "conn-demo.toml").resolve()
        config = parse_config(config_path.read_bytes())
        urls = dict(proc.stdout.readline().split() for _ in SERVICES)
        assert list(urls) == list(SERVICES)
        assert urls["search"] + "/api/health/advanced" == config.services["search"].health_url
        assert httpx.get(urls["search"] + "/api/health", timeout=5).json()["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(urls["search"] + "/api/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


@pytest.mark.slow
def test_python_m_console_demo_survives_a_reader_that_went_away(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    state = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.demo", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.close()  # before the child prints anything: its prints hit a broken pipe
        config_path = state / "conn-demo.toml"
        deadline = time.monotonic() + 10
        while not config_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert proc.poll() is None
        health_url = parse_config(config_path.read_bytes()).services["payments"].health_url
        assert httpx.get(health_url, timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    errors = proc.stderr.read() if proc.stderr else ""
    assert "Traceback" not in errors
    assert "Exception ignored" not in errors


# --- helpers -------------------------------------------------------------------


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_percentiles_are_real_order_statistics() -> None:
    from console.demo.traffic import _percentile

    values = sorted(float(i) for i in range(1, 101))
    assert _percentile(values, 0.5) == 50.0
    assert _percentile(values, 0.95) == 95.0
    assert _percentile(values, 0.99) == 99.0
    assert _percentile([], 0.5) is None
    assert _percentile([3.0], 0.99) == 3.0
