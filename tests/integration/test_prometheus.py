"""PrometheusSource against a real Prometheus scraping the real demo fleet.

Plus small real HTTP servers on loopback for what Prometheus will not do on
request: hang (timeout), check a bearer token, answer something huge.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from console.config import PrometheusConfig, ServiceConfig
from console.demo.fleet import FleetInfo
from console.errors import SecretError, SourceError
from console.model.signals import ServiceSignals
from console.sources.prometheus import PrometheusSource
from tests.fixtures.prometheus import (
    PrometheusServer,
    free_port,
    prometheus_server_fixture,
    query_directly,
    scraped_fleet_fixture,
    wait_for_value,
)

__all__ = ["prometheus_server_fixture", "scraped_fleet_fixture"]  # fixtures, used by name

pytestmark = pytest.mark.slow

P95 = 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="checkout"}[1m])))'
P95_TEMPLATE = 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="{service}"}[1m])))'
ERRORS_TEMPLATE = (
    'sum(rate(http_requests_total{service="{service}",code=~"5.."}[1m]))'
    ' / sum(rate(http_requests_total{service="{service}"}[1m]))'
)


@pytest.fixture
async def source(prometheus_server: PrometheusServer) -> AsyncIterator[PrometheusSource]:
    async with PrometheusSource(PrometheusConfig(url=prometheus_server.url)) as src:
        yield src


@pytest.fixture(scope="module")
def scraped(prometheus_server: PrometheusServer) -> PrometheusServer:
    """Prometheus once the scrapes have produced a p95 for checkout."""
    wait_for_value(prometheus_server, P95)
    return prometheus_server


async def test_p95_equals_prometheus_own_answer(
    scraped: PrometheusServer, source: PrometheusSource
) -> None:
    at = time.time() - 2.0
    ours = await source.query(P95, at=at)
    theirs = query_directly(scraped, P95, at=at)
    result = theirs["data"]["result"]  # type: ignore[index]
    assert len(result) == 1
    assert ours == float(result[0]["value"][1])
    # The demo checkout has a ~60 ms median; its p95 is a plausible latency.
    assert ours is not None
    assert 0.02 < ours < 1.0


async def test_scalar_and_no_data_answers(scraped: PrometheusServer, source: PrometheusSource) -> None:
    assert await source.query("1 + 2") == 3.0
    assert await source.query('http_requests_total{service="no-such-service"}') is None
    assert await source.query("vector(0) / 0") is None  # NaN
    assert await source.query("vector(1) / 0") is None  # +Inf
    assert await source.query("vector(-1) / 0") is None  # -Inf


async def test_several_series_is_an_error_that_says_aggregate(
    scraped: PrometheusServer, source: PrometheusSource
) -> None:
    with pytest.raises(SourceError, match=r"query returned 4 series; aggregate it \(e\.g\. sum by \(\)\)"):
        await source.query('up{job="demo"}')
    assert await source.query('sum by () (up{job="demo"})') == 4.0


async def test_prometheus_error_keeps_its_type_and_text(
    scraped: PrometheusServer, source: PrometheusSource
) -> None:
    with pytest.raises(SourceError, match=r"^Prometheus: bad_data: .*parse error"):
        await source.query("sum(")
    with pytest.raises(SourceError, match="range vector"):
        await source.query("up[1m]")


async def test_closed_port_is_source_error() -> None:
    port = free_port()  # bound then released: nothing listens there
    async with PrometheusSource(PrometheusConfig(url=f"http://127.0.0.1:{port}")) as src:
        with pytest.raises(SourceError, match=rf"cannot connect to http://127\.0\.0\.1:{port}: connection refused"):
            await src.query("up")


async def test_not_prometheus_is_named(scraped_fleet: FleetInfo) -> None:
    # A demo service answers JSON 404 on /api/v1/query: an honest "wrong URL".
    async with PrometheusSource(PrometheusConfig(url=scraped_fleet.urls["search"])) as src:
        with pytest.raises(SourceError, match="HTTP 404"):
            await src.query("up")


Handler = Callable[[dict[str, str], str], Awaitable[tuple[int, bytes]]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    """A minimal HTTP/1.0 server on loopback: handler(headers, target) -> (status, body)."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            lines = request.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            status, body = await handler(headers, target)
            writer.write(
                f"HTTP/1.0 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


_ONE = json.dumps(
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.25"]}]}}
).encode()


async def test_timeout_is_source_error_in_words() -> None:
    async def hang(headers: dict[str, str], target: str) -> tuple[int, bytes]:
        await asyncio.sleep(30)
        return 200, _ONE

    server, url = await _serve(hang)
    try:
        async with PrometheusSource(PrometheusConfig(url=url, timeout="300ms")) as src:
            started = time.monotonic()
            with pytest.raises(SourceError, match=r"^Prometheus: timeout after 0\.3s$"):
                await src.query("up")
            assert time.monotonic() - started < 3
    finally:
        server.close()


async def test_bearer_token_comes_from_the_secret_lookup() -> None:
    seen: list[str | None] = []

    async def check(headers: dict[str, str], target: str) -> tuple[int, bytes]:
        seen.append(headers.get("authorization"))
        if headers.get("authorization") != "Bearer s3cret":
            return 401, b"unauthorized"
        return 200, _ONE

    asked: list[str] = []
    secrets = {"prom-token": "s3cret"}

    def lookup(name: str) -> str:
        asked.append(name)
        if name not in secrets:
            raise SecretError(f"no secret named {name!r}")
        return secrets[name]

    server, url = await _serve(check)
    try:
        config = PrometheusConfig(url=url, auth="bearer", token_secret="prom-token")
        async with PrometheusSource(config, secret_lookup=lookup) as src:
            assert await src.query("up") == 0.25
            assert await src.query("up") == 0.25
        assert seen == ["Bearer s3cret", "Bearer s3cret"]
        assert asked == ["prom-token"]  # looked up once

        wrong = PrometheusConfig(url=url, auth="bearer", token_secret="missing")
        async with PrometheusSource(wrong, secret_lookup=lookup) as src:
            with pytest.raises(SourceError, match="cannot read secret 'missing'"):
                await src.query("up")
            secrets["missing"] = "nope"  # set later: the next round retries
            with pytest.raises(SourceError, match=r"credentials refused \(HTTP 401\)"):
                await src.query("up")
    finally:
        server.close()


async def test_basic_auth_and_credentials_never_in_errors() -> None:
    async def check(headers: dict[str, str], target: str) -> tuple[int, bytes]:
        expected = "Basic " + base64.b64encode(b"conn:pw").decode()
        return (200, _ONE) if headers.get("authorization") == expected else (401, b"")

    server, url = await _serve(check)
    try:
        config = PrometheusConfig(url=url, auth="basic", username="conn", password_secret="pw")
        async with PrometheusSource(config, secret_lookup=lambda name: name) as src:
            assert await src.query("up") == 0.25
    finally:
        server.close()
    port = free_port()
    async with PrometheusSource(PrometheusConfig(url=f"http://user:hunter2@127.0.0.1:{port}")) as src:
        with pytest.raises(SourceError) as caught:
            await src.query("up")
    assert "hunter2" not in str(caught.value)


async def test_huge_answer_is_bounded() -> None:
    async def huge(headers: dict[str, str], target: str) -> tuple[int, bytes]:
        return 200, b'{"status": "success", "data": {"x": "' + b"a" * (2 << 20) + b'"}}'

    server, url = await _serve(huge)
    try:
        async with PrometheusSource(PrometheusConfig(url=url)) as src:
            with pytest.raises(SourceError, match="over 1 MiB"):
                await src.query("up")
    finally:
        server.close()


async def test_query_service_feeds_the_snapshot(
    scraped: PrometheusServer, source: PrometheusSource
) -> None:
    spec = ServiceConfig.model_validate(
        {
            "health_url": "http://127.0.0.1:1/api/health",
            "queries": {"p95": P95_TEMPLATE, "error_rate": ERRORS_TEMPLATE},
            "signals": {
                "memory": {"promql": 'memory_usage_percent{service="{service}"}', "unit": "%"},
                "broken": {"promql": "sum("},
                "many": {"promql": 'up{job="demo"}'},
            },
        }
    )
    at = time.time() - 2.0
    answers = await source.query_service("checkout", spec, at=at)
    assert set(answers) == {"p95", "error_rate", "memory", "broken", "many"}
    p95 = answers["p95"]
    assert isinstance(p95, float)
    assert p95 == await source.query(P95, at=at)  # the template became checkout's query
    assert isinstance(answers["memory"], float)
    assert 0 <= answers["memory"] <= 100
    assert isinstance(answers["broken"], SourceError)
    assert isinstance(answers["many"], SourceError)
    error_rate = answers["error_rate"]
    assert error_rate is None or (isinstance(error_rate, float) and 0 <= error_rate <= 1)

    signals = ServiceSignals(
        "checkout",
        interval=1.0,
        thresholds={},
        signals=spec.signals,
        prometheus={"p95", "error_rate"},
        prometheus_interval=1.0,
    )
    for name, answer in answers.items():
        if isinstance(answer, SourceError):
            signals.record_query(name, None, at, error=str(answer))
        else:
            signals.record_query(name, answer, at)
    live = signals.snapshot(at + 0.5)
    shown = {s.name: s for s in live.signals}
    assert shown["p95"].source == "prometheus"
    assert shown["p95"].state == "ok"
    assert shown["p95"].unit == "ms"
    assert shown["p95"].value is not None
    assert math.isclose(shown["p95"].value, p95 * 1000, rel_tol=1e-3)
    assert shown["memory"].source == "prometheus"
    assert shown["memory"].value == pytest.approx(answers["memory"], rel=1e-3)
    assert shown["broken"].state == "source_down"
    assert shown["broken"].detail.startswith("Prometheus: bad_data")
    assert shown["many"].state == "source_down"
    assert "aggregate it" in shown["many"].detail
    assert shown["p50"].source == "probe"  # no query: still Conn's own prober
    assert shown["p50"].state == "no_data"


def test_unreadable_ca_bundle_is_source_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(SourceError, match=r"^Prometheus: cannot use ca_bundle .*no-such-ca\.pem"):
        PrometheusSource(PrometheusConfig(url="https://127.0.0.1:1", ca_bundle=missing))


async def test_engine_leader_shows_prometheus_values_on_the_panels(
    scraped: PrometheusServer, scraped_fleet: FleetInfo, tmp_path: Path
) -> None:
    """End to end: config -> engine query loop -> live table -> the value a panel renders."""
    from console.config import parse_config
    from console.engine.core import Engine
    from console.model.live import SignalValue
    from console.store import open_store
    from tests.fixtures.waiting import until

    text = scraped_fleet.config_path.read_text().replace(
        'store = "', f'store = "sqlite:///{tmp_path}/conn.db" # was "', 1
    )
    # The demo reads checkout's built-ins from its health JSON; one source each, so
    # the queries replace that table (keeping both is a config error).
    text, dropped = re.subn(r"\[services\.checkout\.json\]\n(?:.+\n)+", "", text)
    assert dropped == 1
    text += (
        f'\n[sources.prometheus]\nurl = "{scraped.url}"\ninterval = "1s"\n'
        f"\n[services.checkout.queries]\np95 = '{P95_TEMPLATE}'\nerror_rate = '{ERRORS_TEMPLATE}'\n"
    )
    config = parse_config(text)
    store = await open_store(config.store)
    try:
        async with Engine(config, store) as engine:

            def checkout(name: str) -> SignalValue | None:
                view = engine.snapshot.service("checkout")
                return view.live.signal(name) if view and view.live else None

            def from_prometheus() -> bool:
                p95 = checkout("p95")
                return p95 is not None and p95.source == "prometheus" and p95.value is not None

            await until(from_prometheus, within=15, what="a Prometheus p95 on the panel", step=0.2)
            p95 = checkout("p95")
            assert p95 is not None and p95.value is not None
            assert 1 < p95.value < 2000, "a plausible latency in ms"
            errors = checkout("error_rate")
            assert errors is not None and errors.source == "prometheus"
            search = engine.snapshot.service("search")
            assert search and search.live and search.live.signal("p95").source == "health-json"  # type: ignore[union-attr]
    finally:
        await store.close()
