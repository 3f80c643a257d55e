"""Inject and clear demo faults over HTTP, for scripts, the CLI and the UI.

The demo services take their faults at ``/_demo/faults``; this is the one
client for it, so every caller gets the same error translation: anything
httpx raises, and any refusal by the service, becomes an
:class:`~console.errors.ActionError` whose text says what happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from console.errors import ActionError

FAULTS_PATH = "/_demo/faults"
DEFAULT_TIMEOUT = 5.0
MAX_ERROR_CHARS = 300


async def inject_faults(
    base_url: str,
    faults: Mapping[str, Any],
    *,
    client: httpx.AsyncClient | None = None,
) -> dict[str, Any]:
    """Replace the faults of the service at ``base_url``; the faults now in force.

    Requests time out after ``DEFAULT_TIMEOUT`` seconds (wrap the call in
    ``asyncio.timeout`` for a shorter budget). Pass ``client`` to reuse a
    connection pool.

    ``{}`` clears every fault. Keys: latency_ms, error_rate, health,
    cache_hit_rate, memory_pct, circuit_breaker_opens.

    Raises:
        ActionError: the service is unreachable, refused the faults, or answered nonsense.
    """
    return await _call("POST", base_url, dict(faults), client=client)


async def clear_faults(base_url: str, *, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """Remove every fault from the service at ``base_url``; returns ``{}``."""
    return await _call("POST", base_url, {}, client=client)


async def get_faults(base_url: str, *, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """The faults in force on the service at ``base_url``."""
    return await _call("GET", base_url, None, client=client)


async def _call(
    method: str,
    base_url: str,
    body: dict[str, Any] | None,
    *,
    client: httpx.AsyncClient | None,
) -> dict[str, Any]:
    url = base_url.rstrip("/") + FAULTS_PATH
    try:
        if client is None:
            async with httpx.AsyncClient(timeout=DEFAULT_TIMEOUT) as own:
                response = await own.request(method, url, json=body)
        else:
            response = await client.request(method, url, json=body)
    except httpx.TimeoutException as e:
        raise ActionError(
            f"demo service at {base_url} did not answer within {DEFAULT_TIMEOUT:g}s"
        ) from e
    except httpx.HTTPError as e:
        raise ActionError(f"cannot reach demo service at {base_url}: {e}") from e
    try:
        document = response.json()
    except ValueError:
        document = None
    if response.status_code != 200:
        reason = document.get("error") if isinstance(document, dict) else None
        detail = str(reason) if reason else response.text
        raise ActionError(
            f"demo service at {base_url} refused: HTTP {response.status_code}: "
            f"{detail[:MAX_ERROR_CHARS]}"
        )
    if not isinstance(document, dict):
        raise ActionError(
            f"demo service at {base_url} answered with something other than a JSON object"
        )
    return document
