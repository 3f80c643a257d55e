"""The HTTP prober: one GET of a health endpoint becomes one ProbeResult.

Health endpoints are outside Conn's control and misbehave in every way a
server can: they hang, trickle bytes forever, answer 10 MB, reset the
connection, redirect in circles, answer HTML or markup-laden JSON. The
prober's contract is that none of that reaches the caller as an exception or
an unbounded cost:

* every probe ends within its ``timeout``, which covers connect, TLS, headers
  and body together (an ``asyncio.timeout`` deadline, not only httpx's
  per-read timeouts, which a slowloris body resets with every byte);
* at most ``BODY_LIMIT`` body bytes are kept; a longer body is not read
  (a declared Content-Length over the limit is not read at all, and a
  compressed body is inflated only up to the limit);
* failures become ``ProbeResult(health="down", ok=False)`` with a one-line
  reason ("timeout after 2s (reading body)", "connection refused",
  "DNS lookup failed for nosuch.invalid", "TLS: certificate verify failed
  (self-signed certificate)"); only cancellation propagates.

All probes share one ``httpx.AsyncClient`` (one per distinct CA bundle), so
connections are pooled and kept alive; under it, connections are striped over
small httpcore pools, whose bookkeeping grows with the square of their size
(see ``_StripedTransport``). A semaphore of ``max_connections`` admits probes
*before* their deadline starts, and a probe only goes to a pool with a free
connection: a probe never spends its timeout queueing for one of our own
connections, so 1,000 services on 100 connections are not reported down for
our own backlog.

Redirects: with ``follow_redirects = false`` a 3xx is **down** with reason
"redirect to <location> not followed (HTTP 302)": the endpoint did not say
the service is healthy, and a redirect on a health URL usually means a login
page or an http→https move the config should name directly. With
``follow_redirects = true`` at most ``max_redirects`` hops are followed, by
the prober itself: httpx would read each redirect's body whole.

Scheduling lives in :func:`probe_forever`: the next probe starts ``interval``
after the previous one *finished*, so slow endpoints never pile up probes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from time import perf_counter
from types import TracebackType
from typing import Any, NoReturn

import httpx

from console.config import ServiceConfig
from console.errors import SourceError
from console.model.clock import Clock, SystemClock
from console.model.health import (
    BODY_LIMIT,
    REASON_LIMIT,
    HealthState,
    ProbeResult,
    classify,
)
from console.model.sanitize import clean_text
from console.model.units import format_duration

__all__ = ["Prober", "probe_forever"]

log = logging.getLogger(__name__)

USER_AGENT = "conn-probe/0.1"
_ACCEPT = "application/health+json, application/json;q=0.9, */*;q=0.1"
# Raw bytes read for a compressed body before giving up on it (a stream of
# empty deflate blocks inflates to nothing, forever).
_RAW_LIMIT = 4 * BODY_LIMIT
KEEPALIVE_EXPIRY = 30.0
"""Seconds an idle connection is kept; longer than any sensible probe interval."""
_SSL_DETAIL = re.compile(r"\] (.+?)(?: \(_ssl\.c:\d+\))?$")


class Prober:
    """Probes health endpoints over shared, pooled httpx clients.

    Use as ``async with Prober(clock=clock) as prober:``; the clients are
    created on entry and closed on exit.

    Args:
        clock: stamps ``ProbeResult.at`` (latency uses ``perf_counter``).
        max_connections: probes in flight at once, and the most connections.
        max_keepalive: idle connections kept open for the next round. Probes
            recur every few seconds, so an idle connection is soon reused and
            closing it would cost a TCP (and TLS) handshake per probe.
        max_redirects: hops followed when a service allows redirects.
        trust_env: honour HTTP(S)_PROXY, NO_PROXY and SSL_CERT_FILE.
        stripe_size: connections per httpcore pool (see ``_StripedTransport``).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_connections: int = 100,
        max_keepalive: int = 100,
        max_redirects: int = 5,
        trust_env: bool = True,
        stripe_size: int = 5,
    ) -> None:
        if max_connections < 1 or max_keepalive < 0 or max_redirects < 0 or stripe_size < 1:
            raise ValueError("connections and stripe_size must be 1 or more, the rest 0 or more")
        self._clock: Clock = clock or SystemClock()
        stripes = -(-max_connections // stripe_size)
        self._sizes = _spread(max_connections, stripes)
        self._keepalives = _spread(min(max_keepalive, max_connections), stripes)
        self._busy = [0] * stripes
        self._max_redirects = max_redirects
        self._trust_env = trust_env
        self._slots = asyncio.Semaphore(max_connections)
        self._clients: dict[Path | None, httpx.AsyncClient] = {}
        self._open = False

    async def __aenter__(self) -> Prober:
        self._clients[None] = self._new_client(httpx.create_ssl_context(trust_env=self._trust_env))
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every client and its connections; the prober cannot be reused."""
        self._open = False
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def probe(self, name: str, spec: ServiceConfig) -> ProbeResult:
        """GET ``spec.health_url`` once and judge the answer.

        Never raises for network, TLS or protocol problems: they are a
        ``down`` result with a reason. Cancellation propagates.

        Raises:
            SourceError: when called outside ``async with`` (a programming error).
        """
        if not self._open:
            raise SourceError("the prober is not open (use `async with Prober()`)")
        async with self._slots:
            stripe = self._pick_stripe(name)
            self._busy[stripe] += 1
            try:
                return await self._probe(name, spec, stripe)
            finally:
                self._busy[stripe] -= 1

    def _pick_stripe(self, name: str) -> int:
        """The service's own stripe (so its kept-alive connection is found
        again) when it has room, else the next one with room: a few hung
        services must not hold up the others that hash next to them."""
        home = zlib.crc32(name.encode()) % len(self._busy)
        for step in range(len(self._busy)):
            stripe = (home + step) % len(self._busy)
            if self._busy[stripe] < self._sizes[stripe]:
                return stripe
        raise AssertionError("the semaphore admits no more probes than stripes hold")

    async def _probe(self, name: str, spec: ServiceConfig, stripe: int) -> ProbeResult:
        at = self._clock.now()
        started = perf_counter()
        phase = ["connecting"]
        try:
            client = self._client_for(spec.ca_bundle)
            async with asyncio.timeout(spec.timeout):
                result = await self._exchange(client, name, spec, stripe, at, started, phase)
        except (TimeoutError, httpx.TimeoutException):
            reason = f"timeout after {format_duration(spec.timeout)} ({phase[0]})"
            return _failure(name, at, started, reason)
        except SourceError as e:
            return _failure(name, at, started, str(e))
        except httpx.HTTPError as e:
            return _failure(name, at, started, self._describe(e, spec.health_url))
        except (OSError, ssl.SSLError) as e:  # raised outside httpx's mapping
            return _failure(name, at, started, self._describe(e, spec.health_url))
        except Exception as e:  # a bug here must not stop the probe loop
            log.exception("probe of %s failed unexpectedly", name)
            return _failure(name, at, started, f"probe failed: {type(e).__name__}")
        return result

    # --- one exchange --------------------------------------------------------

    async def _exchange(
        self,
        client: httpx.AsyncClient,
        name: str,
        spec: ServiceConfig,
        stripe: int,
        at: float,
        started: float,
        phase: list[str],
    ) -> ProbeResult:
        async def trace(event: str, info: dict[str, Any]) -> None:
            if event.endswith(".started"):
                step = _PHASES.get(event.removesuffix(".started"))
                if step:
                    phase[0] = step

        url = httpx.URL(spec.health_url)
        for _hop in range(self._max_redirects + 1):
            request = client.build_request(
                "GET",
                url,
                timeout=httpx.Timeout(spec.timeout),
                extensions={"trace": trace, _STRIPE: stripe},
            )
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                phase[0] = "reading body"
                status = response.status_code
                if response.is_redirect:
                    # Followed here rather than by httpx, which reads every
                    # redirect's body whole, however large.
                    location = response.headers["location"]
                    shown = clean_text(location, 80)
                    if not spec.follow_redirects:
                        reason = f"redirect to {shown} not followed (HTTP {status})"
                        return _result(name, at, started, "down", reason, status, None)
                    url = response.url.join(location)
                    if url.scheme not in ("http", "https"):
                        reason = f"redirect to {shown} not followed (not http or https)"
                        return _result(name, at, started, "down", reason, status, None)
                    phase[0] = "connecting"
                    continue
                body, truncated = await _read_bounded(response)
            except _BadBody as e:
                return _result(name, at, started, "down", f"HTTP {status}, {e}", status, None)
            finally:
                await response.aclose()
            health, reason, doc = classify(
                status, response.headers.get("content-type"), body, truncated=truncated
            )
            return _result(name, at, started, health, reason, status, doc)
        reason = f"too many redirects (more than {self._max_redirects}, last to {shown})"
        return _result(name, at, started, "down", reason, None, None)

    def _client_for(self, ca_bundle: Path | None) -> httpx.AsyncClient:
        """The shared client verifying against ``ca_bundle`` (None: the default CAs)."""
        client = self._clients.get(ca_bundle)
        if client is None:
            try:
                # Read once per distinct bundle; a few KB, so not worth a thread.
                context = ssl.create_default_context(cafile=str(ca_bundle))
            except (OSError, ssl.SSLError) as e:
                detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                where = _elide_middle(str(ca_bundle), 60)
                raise SourceError(f"TLS: cannot load CA bundle {where} ({detail})") from e
            client = self._clients[ca_bundle] = self._new_client(context)
        return client

    def _new_client(self, verify: ssl.SSLContext) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=_StripedTransport(verify, self._sizes, self._keepalives, self._trust_env),
            max_redirects=self._max_redirects,
            follow_redirects=False,
            trust_env=self._trust_env,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": _ACCEPT,
                # Ask for plain bytes: a compressed body could inflate far
                # past the limit before we see it.
                "Accept-Encoding": "identity",
            },
        )

    def _describe(self, error: BaseException, url: str) -> str:
        """One line, in an operator's words, for a failed exchange."""
        for cause in _causes(error):
            if isinstance(cause, ssl.SSLCertVerificationError):
                return f"TLS: certificate verify failed ({cause.verify_message})"
            if isinstance(cause, ssl.SSLError):
                match = _SSL_DETAIL.search(str(cause))
                return f"TLS: {match.group(1) if match else cause.reason or 'handshake failed'}"
            if isinstance(cause, socket.gaierror):
                return f"DNS lookup failed for {httpx.URL(url).host}"
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            if isinstance(cause, ConnectionResetError):
                return "connection reset"
            if isinstance(cause, BrokenPipeError):
                return "connection closed while sending the request"
            if isinstance(cause, OSError) and cause.strerror:
                return f"connection failed: {cause.strerror.lower()}"
        text = str(error)
        if isinstance(error, httpx.RemoteProtocolError):
            if "without sending a response" in text:
                return "connection closed without a response"
            if "complete message body" in text:
                return "connection closed before the body was complete"
            return f"protocol error: {clean_text(text, 80)}"
        if isinstance(error, httpx.UnsupportedProtocol):
            return f"unsupported URL: {clean_text(text, 80)}"
        return f"{type(error).__name__}: {clean_text(text, 80) or 'no detail'}"


_STRIPE = "conn.stripe"
"""Request extension naming the pool a request goes to (httpcore ignores it)."""


class _StripedTransport(httpx.AsyncBaseTransport):
    """Several small httpcore pools behind one httpx client.

    httpcore 1.0's pool, on every request start and end, checks each of its
    connections (a ``getpeername`` and a ``poll`` per idle one) and counts
    connections once per idle connection: O(n) system calls and O(n²) Python
    per event. At 100 connections that made a probe cost ~2.4 ms of CPU,
    against ~0.9 ms with twenty pools of five (bench/probe.py). The prober
    picks the pool per request (``_STRIPE``) and never sends a pool more
    requests than it has connections, so nothing queues inside httpcore.
    """

    def __init__(
        self, verify: ssl.SSLContext, sizes: list[int], keepalives: list[int], trust_env: bool
    ) -> None:
        self._pools = [
            httpx.AsyncHTTPTransport(
                verify=verify,
                trust_env=trust_env,
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=keepalive,
                    keepalive_expiry=KEEPALIVE_EXPIRY,
                ),
            )
            for size, keepalive in zip(sizes, keepalives, strict=True)
        ]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        stripe: int = request.extensions.get(_STRIPE, 0)
        response: httpx.Response = await self._pools[stripe].handle_async_request(request)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def _spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal whole shares."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


_PHASES = {
    "connection.connect_tcp": "connecting",
    "connection.start_tls": "TLS handshake",
    "http11.send_request_headers": "sending request",
    "http11.receive_response_headers": "waiting for response",
}


async def _read_bounded(response: httpx.Response) -> tuple[bytes, bool]:
    """At most BODY_LIMIT bytes of the body, and whether there was more.

    A declared Content-Length over the limit is not read at all. A gzip or
    deflate body (sent despite ``Accept-Encoding: identity``) is inflated
    with an output bound, so a compression bomb costs BODY_LIMIT, not its
    inflated size.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > BODY_LIMIT:
        return b"", True
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding in ("gzip", "deflate") else None
    body = bytearray()
    raw = 0
    async for chunk in response.aiter_raw():
        raw += len(chunk)
        if inflater is None:
            body += chunk
        else:
            try:
                body += inflater.decompress(chunk, BODY_LIMIT + 1 - len(body))
            except zlib.error as e:
                raise _BadBody(f"body does not inflate ({encoding})") from e
            if inflater.eof:
                break
            if inflater.unconsumed_tail or raw > _RAW_LIMIT:
                return bytes(body[:BODY_LIMIT]), True
        if len(body) > BODY_LIMIT:
            return bytes(body[:BODY_LIMIT]), True
    return bytes(body), False


def _elide_middle(text: str, limit: int) -> str:
    """Keep both ends of a long path: the root says where, the name says what."""
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return text[:half] + "…" + text[len(text) - (limit - 1 - half) :]


class _BadBody(Exception):
    """A body that cannot even be decoded; its text is the reason's tail."""


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and what caused it, outermost first (httpx wraps httpcore wraps OSError)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _result(
    name: str,
    at: float,
    started: float,
    health: HealthState,
    reason: str,
    status: int | None,
    doc: Any,
) -> ProbeResult:
    return ProbeResult(
        service=name,
        at=at,
        latency_ms=(perf_counter() - started) * 1000,
        health=health,
        reason=clean_text(reason, REASON_LIMIT),
        ok=health != "down",
        http_status=status,
        body=doc,
    )


def _failure(name: str, at: float, started: float, reason: str) -> ProbeResult:
    return _result(name, at, started, "down", reason, None, None)


async def probe_forever(
    prober: Prober,
    name: str,
    spec: ServiceConfig,
    on_result: Callable[[ProbeResult], Awaitable[None]],
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    first_delay: float = 0.0,
) -> NoReturn:
    """Probe one service until cancelled, ``spec.interval`` after each probe ends.

    Waiting after the probe *finishes* (not on a fixed beat) means a slow
    endpoint is probed less often instead of accumulating overlapping probes.
    An ``on_result`` that raises is logged and the loop goes on: a broken
    consumer must not silently stop a service's health from being watched.

    Args:
        first_delay: wait before the first probe, to spread many services'
            first probes over an interval instead of one burst.
    """
    if first_delay > 0:
        await sleep(first_delay)
    while True:
        result = await prober.probe(name, spec)
        try:
            await on_result(result)
        except Exception:
            log.exception("handling the probe result of %s failed", name)
        await sleep(spec.interval)
