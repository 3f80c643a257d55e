"""PromQL instant queries against the team's Prometheus, one number per query.

At scale, signals come from Prometheus rather than from every console
probing every service. A query must reduce to one number: this module turns
Prometheus' answers into ``float`` (a value), ``None`` (no data: an empty
vector, NaN, ±Inf) or a :class:`~console.errors.SourceError` whose text an
operator can act on ("query returned 3 series; aggregate it (e.g. sum by
())"). httpx and JSON failures are translated here, never leaked.

Values come back in Prometheus' units (seconds, ratios);
:class:`console.model.signals.ServiceSignals` converts them for display.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import ssl
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import httpx

from console.errors import ConsoleError, SourceError
from console.model.sanitize import clean_text

if TYPE_CHECKING:
    from console.config import PrometheusConfig, ServiceConfig

MAX_RESPONSE_BYTES = 1 << 20
"""A one-number answer is tiny; anything over 1 MiB is a query that needs aggregating."""

_ERROR_TEXT_LIMIT = 300

SecretLookup = Callable[[str], str]
"""Returns the secret stored under a name (``console.secrets.get_secret``)."""


class PrometheusSource:
    """Runs instant queries over one shared ``httpx.AsyncClient``.

    Args:
        config: the ``[sources.prometheus]`` table.
        secret_lookup: reads the bearer token or basic-auth password by the
            secret's name; called once, on the first query, and again after
            a failed lookup (so setting the secret fixes a running console).

    Raises:
        SourceError: the configured CA bundle cannot be read.
    """

    def __init__(
        self,
        config: PrometheusConfig,
        *,
        secret_lookup: SecretLookup | None = None,
    ) -> None:
        self.config = config
        self._secret_lookup = secret_lookup
        self._auth: httpx.Auth | None = None
        self._base = config.url.rstrip("/")
        parsed = httpx.URL(self._base)
        self._shown = str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else self._base
        """The URL as shown in errors: never with credentials in it."""
        verify: ssl.SSLContext | bool = True
        if config.ca_bundle is not None:
            try:
                verify = ssl.create_default_context(cafile=str(config.ca_bundle))
            except (OSError, ssl.SSLError) as e:
                raise SourceError(
                    f"Prometheus: cannot use ca_bundle {config.ca_bundle}: {e.strerror or e}"
                ) from e
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout),
            verify=verify,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )

    async def __aenter__(self) -> PrometheusSource:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the shared client and its connections."""
        await self._client.aclose()

    async def query(self, promql: str, *, at: float | None = None) -> float | None:
        """The single value of an instant query.

        Args:
            promql: the query, already specialised for a service.
            at: evaluation time (seconds since the epoch); Prometheus' "now" if None.

        Returns:
            The value, or None when there is no data (empty result, NaN, ±Inf).

        Raises:
            SourceError: Prometheus is unreachable, slow, refused the query,
                or the query returned more than one series.
        """
        params = {"query": promql, "timeout": f"{self.config.timeout:g}s"}
        if at is not None:
            params["time"] = repr(float(at))
        body = await self._get("/api/v1/query", params)
        return _value_of(body)

    async def query_range(
        self, promql: str, *, start: float, end: float, step: float
    ) -> list[tuple[float, float | None]]:
        """The single series of a range query: ``(time, value)`` pairs, oldest first.

        For backtests over periods the signal history does not cover. NaN and
        ±Inf are None (no data), as for instant queries; an empty result is [].

        Raises:
            SourceError: as :meth:`query`, or the query returned more than one series.
        """
        params = {
            "query": promql, "start": repr(float(start)), "end": repr(float(end)),
            "step": f"{step:g}s", "timeout": f"{self.config.timeout:g}s",
        }
        body = await self._get("/api/v1/query_range", params)
        data = body.get("data") if isinstance(body, dict) else None
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(result, list):
            raise SourceError("Prometheus: the range query's answer is not a matrix")
        if not result:
            return []
        if len(result) > 1:
            raise SourceError(
                f"Prometheus: query returned {len(result)} series; aggregate it (e.g. sum by ())"
            )
        values = result[0].get("values") if isinstance(result[0], dict) else None
        if not isinstance(values, list):
            raise SourceError("Prometheus: the range query's series has no values")
        out: list[tuple[float, float | None]] = []
        for pair in values:
            value = _sample(pair)
            at = pair[0]
            if isinstance(at, bool) or not isinstance(at, int | float):
                raise SourceError("Prometheus: the answer has a malformed sample")
            out.append((float(at), value))
        return out

    async def query_service(
        self, name: str, spec: ServiceConfig, *, at: float | None = None
    ) -> dict[str, float | SourceError | None]:
        """Every PromQL-fed signal of one service, queried concurrently.

        "{service}" in each template becomes ``name`` (``str.replace``, since
        PromQL is full of braces); backslashes and double quotes in the name
        are escaped, as the template usually puts it in a label matcher.

        Returns:
            Signal name -> value, None (no data) or the SourceError for that
            query; one failed query does not hide the others.
        """
        templates = {key: query for key, query in spec.queries.model_dump().items() if query}
        templates |= {key: s.promql for key, s in spec.signals.items() if s.promql is not None}
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        keys = list(templates)
        answers = await asyncio.gather(
            *(self._query_or_error(templates[key].replace("{service}", quoted), at) for key in keys)
        )
        return dict(zip(keys, answers, strict=True))

    async def _query_or_error(self, promql: str, at: float | None) -> float | SourceError | None:
        try:
            return await self.query(promql, at=at)
        except SourceError as e:
            return e

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        """GET a Prometheus API path and return its parsed JSON, translating every failure."""
        auth = await self._resolve_auth()
        url = self._base + path
        timeout = self.config.timeout
        try:
            async with self._client.stream("GET", url, params=params, auth=auth) as response:
                raw = bytearray()
                async for chunk in response.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_RESPONSE_BYTES:
                        raise SourceError(
                            "Prometheus: the answer is over 1 MiB; the query returns too many series "
                            "(aggregate it, e.g. sum by ())"
                        )
        except httpx.TimeoutException as e:
            raise SourceError(f"Prometheus: timeout after {timeout:g}s") from e
        except httpx.ConnectError as e:
            raise SourceError(f"Prometheus: cannot connect to {self._shown}: {_reason(e)}") from e
        except httpx.HTTPError as e:
            raise SourceError(f"Prometheus: request to {self._shown} failed: {_reason(e)}") from e
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            kind = _clip(str(body.get("errorType", "error")))
            raise SourceError(f"Prometheus: {kind}: {_clip(str(body.get('error', '')))}")
        if response.status_code in (401, 403):
            raise SourceError(f"Prometheus: credentials refused (HTTP {response.status_code})")
        if response.status_code >= 300:
            raise SourceError(f"Prometheus: HTTP {response.status_code} from {self._shown}")
        if not isinstance(body, dict) or body.get("status") != "success":
            raise SourceError(
                f"Prometheus: {self._shown} did not answer like the Prometheus API (is the URL right?)"
            )
        return body

    async def _resolve_auth(self) -> httpx.Auth | None:
        """The request's credentials, looked up once; a failure is a SourceError each round."""
        config = self.config
        if config.auth == "none" or self._auth is not None:
            return self._auth
        secret_name = config.token_secret if config.auth == "bearer" else config.password_secret
        if self._secret_lookup is None or secret_name is None:
            raise SourceError(f"Prometheus: auth is {config.auth!r} but no secret lookup was given")
        try:
            # A keyring backend may block (D-Bus, a locked store): never on the loop.
            secret = await asyncio.to_thread(self._secret_lookup, secret_name)
        except ConsoleError as e:
            raise SourceError(f"Prometheus: cannot read secret {secret_name!r}: {e}") from e
        if config.auth == "bearer":
            self._auth = _Bearer(secret)
        else:
            self._auth = httpx.BasicAuth(config.username or "", secret)
        return self._auth


class _Bearer(httpx.Auth):
    """``Authorization: Bearer …``; the token never appears in errors or reprs."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "_Bearer(<redacted>)"


def _value_of(body: dict[str, Any]) -> float | None:
    """One number from a successful query response; see the module docstring."""
    data = body.get("data")
    if not isinstance(data, dict):
        raise SourceError("Prometheus: the answer has no data field")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _sample(result)
    if kind == "vector" and isinstance(result, list):
        if not result:
            return None
        if len(result) > 1:
            raise SourceError(
                f"Prometheus: query returned {len(result)} series; aggregate it (e.g. sum by ())"
            )
        series = result[0]
        return _sample(series.get("value") if isinstance(series, dict) else None)
    if kind == "matrix":
        raise SourceError(
            "Prometheus: query returned a range vector; use an instant query (drop the [range])"
        )
    raise SourceError(f"Prometheus: query returned a {_clip(str(kind))}, not a number")


def _sample(pair: Any) -> float | None:
    """``[time, "value"]`` -> float; NaN and ±Inf mean no data."""
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
        raise SourceError("Prometheus: the answer has a malformed sample")
    try:
        value = float(pair[1])
    except ValueError as e:
        raise SourceError(f"Prometheus: sample {_clip(pair[1])!r} is not a number") from e
    return value if math.isfinite(value) else None


def _reason(error: httpx.HTTPError) -> str:
    """The root cause in words: httpx says "All connection attempts failed", the OS says why."""
    cause: BaseException | None = error
    for _ in range(8):  # bounded walk down the exception chain
        if cause is None:
            break
        if isinstance(cause, OSError) and (cause.errno or cause.strerror):
            # asyncio's strerror is "Connect call failed (addr)"; the errno says why.
            return _clip(os.strerror(cause.errno) if cause.errno else str(cause.strerror)).lower()
        if isinstance(cause, ExceptionGroup) and cause.exceptions:
            cause = cause.exceptions[0]
        else:
            cause = cause.__cause__ or cause.__context__
    return _clip(str(error) or type(error).__name__)


def _clip(text: str) -> str:
    """One clean, bounded line: Prometheus' error text is outside input."""
    return clean_text(text, limit=_ERROR_TEXT_LIMIT)
