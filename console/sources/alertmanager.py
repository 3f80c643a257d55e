"""The alerts firing in the team's Alertmanager, polled over its API v2.

One ``GET /api/v2/alerts?active=true&silenced=false&inhibited=false`` per
poll: the alerts firing now that no silence or inhibition mutes, so a team's
silences in Alertmanager also keep Conn from opening incidents. Alerts that
are not yet routed (``unprocessed``) are included, which is the API's
default: a new alert should not wait for routing to reach an operator. A
resolved alert is simply no longer listed; there is no "resolved" answer to
wait for.

httpx and JSON failures, and answers that are not Alertmanager's, become a
:class:`~console.errors.SourceError` worded for the operator ("Alertmanager
at http://am:9093: connection refused"). The bearer token is never in one:
messages are passed through :func:`console.secrets.redact`, which also hides
a token that a misbehaving server echoes back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from console import secrets
from console.errors import ConsoleError, SourceError
from console.model.alerts import Alert, AlertmanagerConfig, parse_alerts
from console.model.sanitize import clean_text

# One definition of how a failed request reads and how a token is sent, shared
# with the Prometheus source.
from console.sources.prometheus import SecretLookup, _Bearer, _clip, _reason

ALERTS_PATH = "/api/v2/alerts"
ALERTS_FILTER = {"active": "true", "silenced": "false", "inhibited": "false"}
"""Firing and not muted; ``unprocessed`` keeps the API's default (true)."""
MAX_RESPONSE_BYTES = 16 << 20
"""About 16,000 alerts; past that, the answer is not one Conn should page through."""


class AlertmanagerSource:
    """Fetches the alerts firing in one Alertmanager.

    Args:
        config: the ``[sources.alertmanager]`` table.
        client: a shared ``httpx.AsyncClient`` to send through (the caller
            closes it); without one the source opens its own and
            :meth:`aclose` closes it.
        secret_lookup: reads the bearer token by the secret's name
            (``console.secrets.get_secret`` by default); called on the first
            fetch, and again after a failed lookup, so setting the secret
            fixes a running console.
    """

    def __init__(
        self,
        config: AlertmanagerConfig,
        *,
        client: httpx.AsyncClient | None = None,
        secret_lookup: SecretLookup = secrets.get_secret,
    ) -> None:
        self.config = config
        self._secret_lookup = secret_lookup
        self._auth: httpx.Auth | None = None
        self._url = config.url.rstrip("/") + ALERTS_PATH
        self._shown = clean_text(config.url.rstrip("/"), limit=120)
        """The URL as shown in errors (the config refuses credentials in it)."""
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._closed = False

    async def __aenter__(self) -> AlertmanagerSource:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop fetching; close the client if this source opened it. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    async def fetch(self) -> list[Alert]:
        """The alerts firing now that no silence or inhibition mutes.

        Raises:
            SourceError: Alertmanager is unreachable, slower than the
                configured timeout, refused the request or the credentials,
                or answered something that is not a list of alerts.
            RuntimeError: the source was closed.
        """
        if self._closed:
            raise RuntimeError("this AlertmanagerSource is closed")
        body = await self._get()
        try:
            return parse_alerts(body)
        except ValueError as e:
            raise self._error(f"unexpected answer (is the URL Alertmanager's?): {e}") from e

    async def _get(self) -> Any:
        """GET the alert list and decode it, translating every failure."""
        auth = await self._resolve_auth()
        timeout = self.config.timeout
        try:
            # httpx's timeouts bound each read; this bounds the whole answer.
            async with asyncio.timeout(timeout):
                async with self._client.stream(
                    "GET",
                    self._url,
                    params=ALERTS_FILTER,
                    auth=auth,
                    headers={"Accept": "application/json"},
                    timeout=timeout,
                ) as response:
                    raw = bytearray()
                    async for chunk in response.aiter_bytes():
                        raw += chunk
                        if len(raw) > MAX_RESPONSE_BYTES:
                            raise self._error(
                                f"the answer is over {MAX_RESPONSE_BYTES >> 20} MiB; "
                                "that many firing alerts is more than Conn reads"
                            )
        except (TimeoutError, httpx.TimeoutException) as e:
            raise self._error(f"no answer within {timeout:g}s") from e
        except httpx.ConnectError as e:
            raise self._error(_reason(e)) from e
        except httpx.HTTPError as e:
            raise self._error(f"request failed: {_reason(e)}") from e
        status = response.status_code
        if status in (401, 403):
            hint = "check the secret named by token_secret" if self.config.token_secret else "set token_secret"
            raise self._error(f"credentials refused (HTTP {status}); {hint}")
        if status == 404:
            raise self._error(
                f"HTTP 404 for {ALERTS_PATH}: is the URL Alertmanager's base, with its route prefix?"
            )
        if not 200 <= status < 300:
            raise self._error(f"HTTP {status}{_said(raw)}")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise self._error("the answer is not JSON (is the URL Alertmanager's?)") from e

    async def _resolve_auth(self) -> httpx.Auth | None:
        """The bearer token, looked up once; a failed lookup is a SourceError each poll."""
        name = self.config.token_secret
        if name is None or self._auth is not None:
            return self._auth
        try:
            # A keyring backend may block (D-Bus, a locked store): never on the loop.
            token = await asyncio.to_thread(self._secret_lookup, name)
        except ConsoleError as e:
            raise self._error(f"cannot read secret {name!r}: {e}") from e
        secrets.register(name, token)
        self._auth = _Bearer(token)
        return self._auth

    def _error(self, problem: str) -> SourceError:
        return SourceError(secrets.redact(f"Alertmanager at {self._shown}: {problem}"))


def _said(raw: bytes | bytearray) -> str:
    """What an error answer says, as ": text" (Alertmanager sends a JSON string or {message})."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = raw.decode("utf-8", "replace")
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or ""
    text = _clip(body) if isinstance(body, str) else ""
    return f": {text}" if text.strip() else ""
