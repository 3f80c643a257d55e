"""One demo service: a real HTTP server on loopback with simulated traffic.

The server is stdlib ``ThreadingHTTPServer`` in a daemon thread, so it runs
beside a Textual app without touching its event loop, and standalone just the
same. Each request gets its own short-lived thread (HTTP/1.0, one request per
connection), which is what lets an injected latency delay the health answers
without stalling anything else.

Endpoints::

    GET  /api/health            basic health (503 when the health fault is "down")
    GET  /api/health/advanced   status, checks and last-minute metrics
    GET  /metrics               Prometheus exposition from the service's own registry
    GET  /_demo/faults          the faults in force
    POST /_demo/faults          replace the faults ({} clears); 400 on anything invalid

Anything else is a JSON 404 (405 for a known path with the wrong method).
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from console.demo.canary import CanaryRouter
from console.demo.faults import Faults, parse_faults
from console.demo.traffic import Role, ServiceProfile, TrafficMetrics, TrafficSimulator
from console.errors import CommandError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_DRAIN_BYTES = 4 * 1024 * 1024
HEALTH_PATHS = ("/api/health", "/api/health/advanced")
ROUTES = {
    "/api/health": ("GET",),
    "/api/health/advanced": ("GET",),
    "/metrics": ("GET",),
    "/_demo/faults": ("GET", "POST"),
}


class DemoService:
    """A simulated service listening on 127.0.0.1.

    Args:
        profile: name, version and healthy behaviour.
        port: the port to try first; 0 (default) or a taken port means "any free port".
        router, role, window_s, seed: passed to :class:`TrafficSimulator`.
    """

    def __init__(
        self,
        profile: ServiceProfile,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        router: CanaryRouter | None = None,
        role: Role = "stable",
        window_s: float = 60.0,
        seed: int | None = None,
    ) -> None:
        self.profile = profile
        self.host = host
        self.requested_port = port
        self.simulator = TrafficSimulator(
            profile, router=router, role=role, window_s=window_s, seed=seed
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._started_at = time.monotonic()

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def port(self) -> int:
        """The bound port (only meaningful after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError(f"demo service {self.name} is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Bind, start serving and simulating; returns the base URL. Idempotent.

        Raises:
            OSError: only when no port at all can be bound on the host.
        """
        if self._server is not None:
            return self.url
        self._closing.clear()
        self._started_at = time.monotonic()
        self._server = self._bind()
        self.simulator.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"demo-http-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def _bind(self) -> _Server:
        if self.requested_port:
            try:
                return _Server((self.host, self.requested_port), self)
            except OSError as e:
                if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                log.info("port %d is taken; %s takes a free port", self.requested_port, self.name)
        return _Server((self.host, 0), self)

    def stop(self) -> None:
        """Stop serving and simulating, joining both threads. Idempotent."""
        self._closing.set()  # wakes handlers sleeping on an injected latency
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self.simulator.stop()

    @property
    def faults(self) -> Faults:
        return self.simulator.faults

    def set_faults(self, faults: Faults) -> None:
        self.simulator.set_faults(faults)

    # --- bodies ----------------------------------------------------------------

    def uptime_s(self) -> float:
        return round(time.monotonic() - self._started_at, 1)

    def basic_health(self) -> tuple[int, dict[str, Any]]:
        health = self.faults.health
        status = "down" if health == "down" else "degraded" if health == "degraded" else "ok"
        body = {
            "status": status,
            "service": self.name,
            "version": self.profile.version,
            "uptime_s": self.uptime_s(),
        }
        return (503 if status == "down" else 200), body

    def advanced_health(self) -> tuple[int, dict[str, Any]]:
        faults = self.faults
        metrics = self.simulator.metrics()
        checks = _checks(faults, metrics)
        if faults.health == "down":
            status = "unhealthy"
        elif faults.health == "degraded" or any(v != "ok" for v in checks.values()):
            status = "degraded"
        else:
            status = "healthy"
        body = {
            "status": status,
            "service": self.name,
            "version": self.profile.version,
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "uptime_s": self.uptime_s(),
            "checks": checks,
            "metrics": metrics.as_json(),
        }
        return (503 if status == "unhealthy" else 200), body

    def injected_delay(self) -> None:
        """Hold a health answer for the injected latency (cut short by :meth:`stop`)."""
        latency_ms = self.faults.latency_ms
        if latency_ms:
            self._closing.wait(latency_ms / 1000.0)


def _checks(faults: Faults, metrics: TrafficMetrics) -> dict[str, str]:
    """Dependency checks as the plan's advanced health shows them."""
    return {
        "database": "down" if faults.health == "down" else "ok",
        "cache": "degraded" if metrics.cache_hit_rate < 0.7 else "ok",
        "memory": "degraded" if metrics.memory_pct >= 90 else "ok",
        "circuit_breakers": "degraded" if metrics.circuit_breaker_opens > 5 else "ok",
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: DemoService) -> None:
        self.service = service
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr, which would scribble over
        # a Textual screen; a client hanging up mid-answer is not news.
        log.debug(
            "demo %s: request from %s failed", self.service.name, client_address, exc_info=True
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "conn-demo/1"
    timeout = 10  # a client that never sends its request cannot hold a thread forever

    def do_GET(self) -> None:
        path = self._route("GET")
        if path is None:
            return
        service = self.server.service
        if path in HEALTH_PATHS:
            service.injected_delay()
            status, body = (
                service.basic_health() if path == "/api/health" else service.advanced_health()
            )
            self._json(status, body)
        elif path == "/metrics":
            payload = generate_latest(service.simulator.registry)
            self._send(200, payload, CONTENT_TYPE_LATEST)
        else:
            self._json(200, service.faults.as_dict())

    def do_POST(self) -> None:
        if self._route("POST") is None:
            return
        raw = self._read_body()
        if raw is None:
            return
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            self._error(
                400,
                'body is not valid JSON; send an object such as {"latency_ms": 800} ({} clears)',
            )
            return
        try:
            faults = parse_faults(document)
        except CommandError as e:
            self._error(400, str(e))
            return
        self.server.service.set_faults(faults)
        self._json(200, faults.as_dict())

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def _route(self, method: str) -> str | None:
        """The path when it takes ``method``; otherwise answer 404/405 and return None."""
        path = urlsplit(self.path).path
        allowed = ROUTES.get(path)
        if allowed is None:
            self._error(404, f"no such endpoint; try one of {', '.join(ROUTES)}")
            return None
        if method not in allowed:
            self._error(405, f"{path} takes {' or '.join(allowed)}", allow=", ".join(allowed))
            return None
        return path

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self._error(411, "send the body with a Content-Length")
            return None
        length_header = self.headers.get("Content-Length", "0")
        try:
            length = int(length_header)
        except ValueError:
            self._error(400, "Content-Length is not a number")
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            # Read (a bounded amount of) what the client is sending, so the
            # refusal reaches it instead of a connection reset.
            remaining = min(max(length, 0), MAX_DRAIN_BYTES)
            while remaining > 0 and (chunk := self.rfile.read(min(remaining, 65536))):
                remaining -= len(chunk)
            self._error(413, f"body must be at most {MAX_BODY_BYTES} bytes")
            return None
        return self.rfile.read(length)

    def _error(self, status: int, message: str, *, allow: str | None = None) -> None:
        self._json(status, {"error": message, "status": status}, allow=allow)

    def _json(self, status: int, body: Any, *, allow: str | None = None) -> None:
        payload = json.dumps(body).encode()
        self._send(status, payload, "application/json", allow=allow)

    def _send(
        self, status: int, payload: bytes, content_type: str, *, allow: str | None = None
    ) -> None:
        self.send_response(HTTPStatus(status))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
