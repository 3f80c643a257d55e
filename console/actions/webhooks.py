"""Call a webhook (Slack, a deploy hook) with a JSON body, and say plainly how it went.

A webhook URL is a credential — anyone holding a Slack incoming-webhook URL
can post to the channel — so it comes from a secret and never appears in a
message: errors name the webhook as ``webhook «secret:NAME»`` (through the
redaction registry) or by the ``name`` the caller gives, and the URL and its
path are scrubbed from anything the server sends back.

Bodies are rendered from the config's templates by :func:`render_body`,
which substitutes known placeholders and nothing else: a reason typed by an
operator is data, never a format string.

A 2xx answer is a :class:`WebhookOutcome`; anything else — a 4xx/5xx (its
body kept as an excerpt: Slack answers ``400 invalid_payload`` or
``404 channel_not_found`` as plain text), a timeout, a refused connection —
is a :class:`WebhookError`. Retrying is the caller's decision, not this
module's.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from console.errors import ActionError
from console.model.sanitize import clean_text
from console.model.units import format_duration
from console.secrets import redact

__all__ = ["WebhookError", "WebhookOutcome", "call_webhook", "render_body"]

USER_AGENT = "conn-webhook/0.1"
BODY_LIMIT = 16 * 1024
"""Bytes of a response body read; the rest is not."""
EXCERPT_LIMIT = 300
"""Characters of a response body kept in an outcome or error."""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_SECRET = re.compile(r"«secret:[^»]+»")
_PHASES = {
    "connection.connect_tcp": "connecting",
    "connection.start_tls": "TLS handshake",
    "http11.send_request_headers": "sending the request",
    "http11.send_request_body": "sending the request",
    "http11.receive_response_headers": "waiting for the answer",
    "http11.receive_response_body": "reading the answer",
}


@dataclass(frozen=True)
class WebhookOutcome:
    """A webhook answered 2xx."""

    status: int
    body_excerpt: str
    """The start of the answer, redacted and cleaned (Slack answers "ok")."""
    duration: float
    """Seconds from sending to the end of the answer."""

    def summary(self) -> str:
        """One line: "HTTP 200 in 85ms"."""
        return f"HTTP {self.status} in {format_duration(round(self.duration, 3))}"


class WebhookError(ActionError):
    """A webhook call failed: an error status, a timeout, or no connection.

    Attributes:
        status: the HTTP status, when the server answered.
        body_excerpt: the start of its answer, redacted and cleaned ("" when none).
        timed_out: no complete answer came within the timeout.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body_excerpt: str = "",
        timed_out: bool = False,
    ) -> None:
        self.status = status
        self.body_excerpt = body_excerpt
        self.timed_out = timed_out
        super().__init__(message)


def render_body(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """The template with ``{name}`` placeholders in its strings replaced by ``values[name]``.

    Only string values are rendered (keys are not), recursively through
    mappings and lists; an unknown placeholder stays as written. Substituted
    text is never looked at again, so a reason such as ``"{0} {__class__}
    {rollout}"`` arrives literally — this is not ``str.format``.
    """
    return {key: _render(value, values) for key, value in template.items()}


def _render(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), value)
    if isinstance(value, Mapping):
        return {key: _render(item, values) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_render(item, values) for item in value]
    return value


async def call_webhook(
    url: str,
    body: Mapping[str, Any],
    *,
    # Also httpx's per-phase timeout, so the error can say which phase hung.
    timeout: float = 10.0,  # noqa: ASYNC109
    client: httpx.AsyncClient | None = None,
    headers: Mapping[str, str] | None = None,
    name: str | None = None,
) -> WebhookOutcome:
    """POST ``body`` as JSON to ``url``; the whole call ends within ``timeout``.

    Args:
        url: the webhook's URL (a secret: it never appears in a message).
        body: the JSON body, usually from :func:`render_body`.
        timeout: seconds for connecting, sending and the whole answer together.
        client: a shared client (the engine's); a new one for this call otherwise.
        headers: extra request headers (an ``Authorization`` value is never shown).
        name: how messages name the webhook; by default ``«secret:NAME»`` when the
            URL is a registered secret, else its host.

    Returns:
        The status and the start of the answer, for a 2xx.

    Raises:
        WebhookError: a non-2xx status (with its body excerpt), a timeout, a
            connection failure, or a body that is not JSON.
    """
    label = _label(url, name)
    try:
        payload = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise WebhookError(f"{label}: the body cannot be sent as JSON ({e})") from e
    if client is None:
        async with httpx.AsyncClient(follow_redirects=False) as own:
            return await _post(own, url, payload, headers or {}, timeout, label)
    return await _post(client, url, payload, headers or {}, timeout, label)


async def _post(
    client: httpx.AsyncClient,
    url: str,
    payload: bytes,
    extra: Mapping[str, str],
    within: float,
    label: str,
) -> WebhookOutcome:
    phase = ["connecting"]

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith(".started"):
            phase[0] = _PHASES.get(event.removesuffix(".started"), phase[0])

    started = time.perf_counter()
    try:
        async with asyncio.timeout(within):
            request = client.build_request(
                "POST",
                url,
                content=payload,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    # A compressed answer could inflate far past BODY_LIMIT.
                    "Accept-Encoding": "identity",
                    **extra,
                },
                timeout=httpx.Timeout(within),
                extensions={"trace": trace},
            )
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                raw = await _read_bounded(response)
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException) as e:
        raise WebhookError(
            f"{label} timed out after {format_duration(within)} ({phase[0]})", timed_out=True
        ) from e
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
        raise WebhookError(f"{label}: not a valid http(s) URL") from e
    except httpx.HTTPError as e:
        raise WebhookError(f"{label}: {_describe(e, url, label)}") from e
    except (OSError, ssl.SSLError) as e:  # raised outside httpx's mapping
        raise WebhookError(f"{label}: {_describe(e, url, label)}") from e
    duration = time.perf_counter() - started
    excerpt = _excerpt(raw, response, url, label)
    status = response.status_code
    if 200 <= status < 300:
        return WebhookOutcome(status, excerpt, duration)
    reason = clean_text(_scrub(response.reason_phrase, url, label), 40)
    said = f": {excerpt}" if excerpt else " (empty answer)"
    redirect = " (redirect not followed)" if response.is_redirect else ""
    raise WebhookError(
        f"{label} answered HTTP {status} {reason}{redirect}".rstrip() + said,
        status=status,
        body_excerpt=excerpt,
    )


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= BODY_LIMIT:
            break
    return b"".join(chunks)[:BODY_LIMIT]


def _excerpt(raw: bytes, response: httpx.Response, url: str, label: str) -> str:
    try:
        text = raw.decode(response.charset_encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", "replace")
    # Scrubbed before and after cleaning: an escape sequence inside a
    # secret would otherwise hide it from the first pass.
    return _scrub(clean_text(_scrub(text, url, label), EXCERPT_LIMIT), url, label)


def _label(url: str, name: str | None) -> str:
    if name:
        return f"webhook {clean_text(redact(name), 60)}"
    shown = redact(url)
    if _WHOLE_SECRET.fullmatch(shown):  # the URL is a registered secret, not merely contains one
        return f"webhook {clean_text(shown, 80)}"
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        host = ""
    return f"webhook at {clean_text(host, 60)}" if host else "webhook (URL not shown)"


def _scrub(text: str, url: str, label: str) -> str:
    """``text`` without registered secrets, the URL, or the URL's path and query."""
    text = redact(text)
    if url and url in text:
        text = text.replace(url, label)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return text
    for part in (parsed.raw_path.decode("ascii", "replace"), parsed.path):
        if len(part) > 1 and part in text:
            text = text.replace(part, "«webhook path»")
    return text


def _describe(error: BaseException, url: str, label: str) -> str:
    """One line, in an operator's words, for a call that got no answer."""
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: certificate verify failed ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or 'handshake failed'}"
        if isinstance(cause, socket.gaierror):
            return "DNS lookup failed for the webhook's host"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, OSError) and cause.strerror:
            return f"connection failed: {cause.strerror.lower()}"
    if isinstance(error, httpx.RemoteProtocolError):
        return "connection closed without a complete answer"
    text = clean_text(_scrub(str(error), url, label), 80)
    return f"{type(error).__name__}: {text or 'no detail'}"


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
