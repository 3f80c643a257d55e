"""The prober against real misbehaving servers on loopback."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.config import ServiceConfig
from console.errors import SourceError
from console.model.clock import FakeClock
from console.model.health import BODY_LIMIT, ProbeResult
from console.sources.probe import Prober, probe_forever
from tests.fixtures.misbehaving import (
    MisbehavingServer,
    closed_port,
    self_signed_cert,
    tls_context,
)


@pytest.fixture
async def server() -> AsyncIterator[MisbehavingServer]:
    async with MisbehavingServer() as running:
        yield running


@pytest.fixture
async def prober() -> AsyncIterator[Prober]:
    async with Prober(clock=FakeClock(1000.0), trust_env=False) as opened:
        yield opened


def _spec(url: str, timeout: float = 0.5, **extra: object) -> ServiceConfig:
    return ServiceConfig.model_validate({"health_url": url, "timeout": timeout, **extra})


@pytest.mark.parametrize(
    ("path", "health", "reason", "http_status"),
    [
        ("/ok", "up", "status = ok", 200),
        ("/text", "up", "HTTP 200, body = OK", 200),
        ("/empty", "up", "HTTP 200 (no body)", 200),
        ("/html", "down", "HTTP 200, body is not JSON (text/html)", 200),
        ("/invalid-json", "down", "HTTP 200, body is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 17)", 200),
        ("/checks-down", "down", "checks.redis = down", 200),
        ("/health-json", "degraded", "checks.db:connections = warn: 90 of 100 in use", 200),
        ("/markup", "down", "checks.[bold red]x[/]db = down", 200),
        ("/503", "down", "HTTP 503, checks.db = down: no route to host", 503),
        ("/nowhere", "down", "HTTP 404", 404),
        ("/big", "degraded", "HTTP 200, body over 64 KiB, not read", 200),
        ("/big-chunked", "degraded", "HTTP 200, body over 64 KiB, not read", 200),
        ("/gzip-bomb", "degraded", "HTTP 200, body over 64 KiB, not read", 200),
        ("/slow", "down", "timeout after 500ms (waiting for response)", None),
        ("/slowloris", "down", "timeout after 500ms (reading body)", None),
        ("/reset", "down", "connection reset", None),
        ("/cut", "down", "connection closed before the body was complete", None),
        ("/close", "down", "connection closed without a response", None),
        ("/garbage", "down", "protocol error: illegal status line: bytearray(b'SSH-2.0-OpenSSH_9.2')", None),
        ("/redirect", "down", "redirect to /ok not followed (HTTP 302)", 302),
        ("/loop/a", "down", "redirect to /loop/b not followed (HTTP 302)", 302),
    ],
)  # fmt: skip
async def test_each_misbehaviour_has_its_state_and_reason(
    server: MisbehavingServer,
    prober: Prober,
    path: str,
    health: str,
    reason: str,
    http_status: int | None,
) -> None:
    result = await prober.probe("svc", _spec(server.url(path)))
    assert (result.health, result.reason, result.http_status) == (health, reason, http_status)
    assert result.ok == (health != "down")
    assert result.service == "svc"
    assert result.at == 1000.0
    assert 0 < result.latency_ms < 1500


async def test_redirects_are_followed_when_allowed(
    server: MisbehavingServer, prober: Prober
) -> None:
    result = await prober.probe("svc", _spec(server.url("/redirect"), follow_redirects=True))
    assert (result.health, result.reason, result.http_status) == ("up", "status = ok", 200)
    assert result.body == {"status": "ok"}


async def test_a_redirect_loop_stops_after_max_redirects(server: MisbehavingServer) -> None:
    async with Prober(max_redirects=3, trust_env=False) as prober:
        result = await prober.probe("svc", _spec(server.url("/loop/a"), follow_redirects=True))
    assert (result.health, result.ok) == ("down", False)
    assert result.reason == "too many redirects (more than 3, last to /loop/a)"
    assert server.hits["/loop/a"] + server.hits["/loop/b"] == 4


async def test_connection_refused(prober: Prober) -> None:
    result = await prober.probe("svc", _spec(f"http://127.0.0.1:{closed_port()}/health"))
    assert (result.health, result.ok, result.reason) == ("down", False, "connection refused")


async def test_dns_failure_names_the_host(prober: Prober) -> None:
    result = await prober.probe("svc", _spec("http://nosuch.invalid/health", timeout=2.0))
    assert (result.health, result.reason) == ("down", "DNS lookup failed for nosuch.invalid")


async def test_the_json_body_is_kept_for_named_signals(
    server: MisbehavingServer, prober: Prober
) -> None:
    result = await prober.probe("svc", _spec(server.url("/checks-down")))
    assert result.body == {"status": "ok", "checks": {"database": "ok", "redis": "down"}}


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_a_10_mb_body_is_not_read_past_the_bound(
    server: MisbehavingServer, prober: Prober, path: str
) -> None:
    result = await prober.probe("svc", _spec(server.url(path), timeout=5.0))
    assert result.reason == "HTTP 200, body over 64 KiB, not read"
    await server.finished(path)
    # What the server got into the kernel: our read (<= limit + one chunk)
    # plus socket buffers; nowhere near the 10 MB it tried to send.
    assert server.sent[path] < 1024 * 1024
    assert result.latency_ms < 1000


async def test_the_slowloris_body_is_cut_at_the_timeout(
    server: MisbehavingServer, prober: Prober
) -> None:
    started = time.perf_counter()
    result = await prober.probe("svc", _spec(server.url("/slowloris"), timeout=0.5))
    elapsed = time.perf_counter() - started
    assert result.reason == "timeout after 500ms (reading body)"
    assert 0.5 <= elapsed < 1.0
    # it was trickling, and each byte reset httpx's per-read timer
    assert server.sent["/slowloris"] >= 3


async def test_one_slow_endpoint_does_not_delay_the_others(
    server: MisbehavingServer, prober: Prober
) -> None:
    started = time.perf_counter()
    finished: dict[str, float] = {}

    async def timed(name: str, path: str, limit: float) -> ProbeResult:
        result = await prober.probe(name, _spec(server.url(path), timeout=limit))
        finished[name] = time.perf_counter() - started
        return result

    results = await asyncio.gather(
        timed("slow", "/slow", 1.5),
        timed("loris", "/slowloris", 1.5),
        *(timed(f"ok{i}", "/ok", 1.5) for i in range(20)),
    )
    assert [r.health for r in results] == ["down", "down"] + ["up"] * 20
    assert max(finished[f"ok{i}"] for i in range(20)) < 0.5
    assert finished["slow"] >= 1.5


async def test_waiting_for_a_free_slot_does_not_eat_the_timeout(server: MisbehavingServer) -> None:
    async with Prober(max_connections=2, trust_env=False) as prober:
        results = await asyncio.gather(
            prober.probe("slow1", _spec(server.url("/slow"), timeout=0.5)),
            prober.probe("slow2", _spec(server.url("/slow"), timeout=0.5)),
            prober.probe("fast", _spec(server.url("/ok"), timeout=0.3)),
        )
    # "fast" queued ~0.5 s behind the two slow probes, longer than its own
    # timeout, yet its deadline only started when it got a connection.
    assert [r.health for r in results] == ["down", "down", "up"]
    assert results[2].latency_ms < 300


async def test_hung_services_do_not_hold_up_their_pool_neighbours(
    server: MisbehavingServer,
) -> None:
    # four pools of one connection: three hang, whichever pool the fourth
    # service hashes to, it must be sent to the free one
    async with Prober(max_connections=4, stripe_size=1, trust_env=False) as prober:
        started = time.perf_counter()
        fast = asyncio.create_task(asyncio.sleep(0.1))
        hung = [
            asyncio.create_task(prober.probe(f"hung{i}", _spec(server.url("/slow"), timeout=1.0)))
            for i in range(3)
        ]
        await fast
        for name in ("a", "b", "c", "d", "e"):
            result = await prober.probe(name, _spec(server.url("/ok")))
            assert result.health == "up"
        assert time.perf_counter() - started < 0.8
        assert [r.health for r in await asyncio.gather(*hung)] == ["down"] * 3


async def test_connections_are_kept_alive_across_probes(
    server: MisbehavingServer, prober: Prober
) -> None:
    for _ in range(5):
        assert (await prober.probe("svc", _spec(server.url("/ok")))).health == "up"
    assert server.hits["/ok"] == 5
    assert len(server._tasks) == 1  # one connection served all five


async def test_tls_verification_is_always_on(tmp_path: Path, prober: Prober) -> None:
    cert, key = self_signed_cert(tmp_path)
    async with MisbehavingServer(tls=tls_context(cert, key)) as server:
        result = await prober.probe("svc", _spec(server.url("/ok")))
        assert (result.health, result.reason) == (
            "down",
            "TLS: certificate verify failed (self-signed certificate)",
        )
        trusted = await prober.probe("svc", _spec(server.url("/ok"), ca_bundle=str(cert)))
        assert (trusted.health, trusted.reason) == ("up", "status = ok")
        wrong_name = await prober.probe(
            "svc", _spec(f"https://localhost:{server.port}/ok", ca_bundle=str(cert))
        )
        assert wrong_name.health == "down"
        assert wrong_name.reason.startswith("TLS: certificate verify failed (Hostname mismatch")


async def test_plain_http_answering_a_tls_probe(server: MisbehavingServer, prober: Prober) -> None:
    result = await prober.probe("svc", _spec(f"https://127.0.0.1:{server.port}/ok", timeout=0.3))
    assert (result.health, result.reason) == ("down", "timeout after 300ms (TLS handshake)")


async def test_an_unreadable_ca_bundle_is_a_down_probe(tmp_path: Path, prober: Prober) -> None:
    short = await prober.probe("svc", _spec("https://127.0.0.1:1/", ca_bundle="nope.pem"))
    assert (short.health, short.ok) == ("down", False)
    assert short.reason == "TLS: cannot load CA bundle nope.pem (No such file or directory)"
    deep = tmp_path / ("d" * 80) / "bundle.pem"
    long = await prober.probe("svc", _spec("https://127.0.0.1:1/", ca_bundle=str(deep)))
    assert long.reason.startswith("TLS: cannot load CA bundle /")
    assert long.reason.endswith("/bundle.pem (No such file or directory)")
    assert "…" in long.reason
    assert len(long.reason) <= 120


async def test_probing_a_closed_prober_is_a_programming_error() -> None:
    prober = Prober()
    with pytest.raises(SourceError, match="not open"):
        await prober.probe("svc", _spec("http://127.0.0.1:1/"))


async def test_cancellation_propagates(server: MisbehavingServer, prober: Prober) -> None:
    task = asyncio.create_task(prober.probe("svc", _spec(server.url("/slow"), timeout=5.0)))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_body_limit_is_64_kib() -> None:
    assert BODY_LIMIT == 65536


# --- probe_forever ------------------------------------------------------------


async def test_probe_forever_waits_the_interval_after_each_probe_finishes(
    server: MisbehavingServer, prober: Prober, caplog: pytest.LogCaptureFixture
) -> None:
    timeline: list[tuple[str, float]] = []
    started = time.perf_counter()
    seen = 0
    enough = asyncio.Event()

    async def on_result(result: ProbeResult) -> None:
        nonlocal seen
        seen += 1
        timeline.append(("result", time.perf_counter() - started))
        if seen == 1:
            raise RuntimeError("consumer bug")
        if seen == 3:
            enough.set()

    async def sleep(seconds: float) -> None:
        timeline.append((f"sleep {seconds:g}", time.perf_counter() - started))
        await asyncio.sleep(0)

    spec = _spec(server.url("/slowloris"), timeout=0.2, interval=7)
    with caplog.at_level(logging.ERROR, logger="console.sources.probe"):
        loop = asyncio.create_task(
            probe_forever(prober, "svc", spec, on_result, sleep=sleep, first_delay=1.5)
        )
        await asyncio.wait_for(enough.wait(), 5)
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop

    kinds = [kind for kind, _ in timeline]
    assert kinds[:6] == ["sleep 1.5", "result", "sleep 7", "result", "sleep 7", "result"]
    # each probe took its full 0.2 s timeout, and the next one started only after it
    results = [at for kind, at in timeline if kind == "result"]
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(results))
    assert "handling the probe result of svc failed" in caplog.text
    assert "consumer bug" in caplog.text
