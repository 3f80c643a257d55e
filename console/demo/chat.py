"""The demo's chat: a Slack-shaped incoming webhook on loopback that keeps what it is sent.

The demo config's ``[notify.demo-chat]`` points at it (through the secret
``demo_chat_webhook``, which the fleet provides as ``CONN_SECRET_DEMO_CHAT_WEBHOOK``
to its own process and prints for others), so declaring an incident or an
automatic rollback in ``conn demo`` delivers real Slack messages — text and
blocks — through the leader's outbox, and anyone can read them back::

    curl -s http://127.0.0.1:PORT/_demo/chat      # every message received, oldest first

It answers like Slack: ``200 ok`` for a JSON object with ``text`` or
``blocks``, ``400 invalid_payload`` for anything else.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

SECRET_NAME = "demo_chat_webhook"
WEBHOOK_PATH = "/services/DEMO/CHAT/webhook"
MAX_BODY = 1 << 20
KEPT = 500


class DemoChat:
    """``start()`` → the webhook URL; ``messages`` → what it was sent; ``stop()``."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None, "the chat is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    def start(self) -> str:
        if self._server is None:
            try:
                self._server = _Server(("127.0.0.1", self._port), self)
            except OSError:
                self._server = _Server(("127.0.0.1", 0), self)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                            name="demo-chat", daemon=True)
            self._thread.start()
        return self.webhook_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def keep(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.messages.append(message)
            del self.messages[:-KEPT]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], chat: DemoChat) -> None:
        self.chat = chat
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("demo chat: request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "conn-demo-chat/1"
    timeout = 10

    def do_GET(self) -> None:
        if self.path != "/_demo/chat":
            self._send(404, "no_service")
            return
        with self.server.chat.lock:
            body = json.dumps(self.server.chat.messages).encode()
        self._send(200, body, "application/json")

    def do_POST(self) -> None:
        if self.path != WEBHOOK_PATH:
            self._send(404, "no_service")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, "request_too_large")
            return
        try:
            message = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            message = None
        if not isinstance(message, dict) or not (message.get("text") or message.get("blocks")):
            self._send(400, "invalid_payload")
            return
        self.server.chat.keep(message)
        self._send(200, "ok")

    def _send(self, status: int, body: str | bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
