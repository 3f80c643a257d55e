"""Health as the field reports it: one state, always with a one-line reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from console.model.sanitize import clean_text
from console.model.text import plural

HealthState = Literal["up", "degraded", "down", "unknown"]
"""``unknown`` means no answer has been judged yet, or the source is down."""

HEALTH_STATES: tuple[HealthState, ...] = ("up", "degraded", "down", "unknown")


@dataclass(frozen=True)
class ProbeResult:
    """One probe of one service's health endpoint: a sample, never persisted.

    Attributes:
        service: the service's name in the config.
        at: when the probe started (clock seconds).
        latency_ms: time to the end of the read body, or to the failure.
        health: the state the response means.
        reason: one line for people ("HTTP 503", "timeout after 2s",
            "checks.redis = down", "body is not JSON"); already safe to render
            only after escaping — it may quote the body.
        ok: True when the probe did not find the service down (the health is
            up, degraded or unknown); a failed probe counts in the error rate.
        http_status: the HTTP status, when a response arrived.
        body: the parsed JSON body when there was one (for named signals).
    """

    service: str
    at: float
    latency_ms: float
    health: HealthState
    reason: str
    ok: bool
    http_status: int | None = None
    body: Any = None


# --- classification ----------------------------------------------------------

BODY_LIMIT = 64 * 1024
"""The most body bytes a probe reads; a longer body is "over 64 KiB, not read"."""

REASON_LIMIT = 120
"""The longest reason, in characters; reasons are one line."""

_WORDS: dict[str, HealthState] = {
    # the conventions most health endpoints use
    "ok": "up", "healthy": "up", "pass": "up", "up": "up",
    "degraded": "degraded", "warn": "degraded",
    "down": "down", "fail": "down", "unhealthy": "down", "error": "down", "critical": "down",
    # Consul, Elasticsearch and Spring Boot spellings
    "passing": "up", "warning": "degraded", "green": "up", "yellow": "degraded", "red": "down",
    "out_of_service": "down",
    # JSend ({"status": "success" | "fail" | "error"}; Prometheus' own API answers so)
    "success": "up",
}  # fmt: skip
_RANK: dict[HealthState, int] = {"up": 0, "degraded": 1, "down": 2, "unknown": 1}
_CHECK_KEYS = ("checks", "components")
_WHY_KEYS = ("output", "message")
"""Where a status that is not up says why: health+json's ``output``, JSend's ``message``."""
_MAX_DEPTH = 4
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class _Finding:
    """One judged status in a body: where it was, what it said, what it means."""

    state: HealthState
    label: str


def classify(
    status: int, content_type: str | None, body: bytes, *, truncated: bool
) -> tuple[HealthState, str, Any]:
    """Judge one HTTP answer from a health endpoint.

    Args:
        status: the HTTP status code.
        content_type: the Content-Type header, if any.
        body: the body bytes read (at most BODY_LIMIT).
        truncated: the body was longer than BODY_LIMIT and was not read whole.

    Returns:
        ``(health, reason, parsed_json)``. ``reason`` is one line of at most
        REASON_LIMIT characters without control characters ("HTTP 503",
        "checks.redis = down", "HTTP 200, body is not JSON (text/html)");
        it may quote the body, so the UI still escapes markup.
        ``parsed_json`` is the decoded body, or None when it is not JSON.

    The conventions, in the order they apply:

    * The HTTP status first. 5xx and 4xx are down ("HTTP 503", with the
      body's own reason when it gives one: "HTTP 503, checks.db = down").
      429 is degraded: the service answers but sheds load (Consul's reading).
      A 3xx that reaches here was not followed and is down.
    * A 2xx is judged by its body. JSON ``status`` words, any case:
      ok/healthy/pass/up/passing/green are up, degraded/warn/warning/yellow
      are degraded, down/fail/unhealthy/error/critical/red/out_of_service
      are down; true/false are up/down. JSend's ``success`` is up and its
      ``fail``/``error`` down, with the body's ``message`` as the reason
      ("status = error: database unreachable"), as health+json's
      ``output`` is. ``checks`` and ``components`` maps
      (string, boolean, ``{"status": …}`` or, per the application/health+json
      draft, lists of ``{"status": …}``; nested components too) are judged
      the same way, and the worst finding wins and is named:
      "checks.redis = down". An unknown word is degraded and quoted, so a
      typo or a new state is seen rather than trusted.
    * A 2xx body that cannot speak for the service is down: HTML (almost
      always a fallback page, a login page or a proxy answering instead of
      the app) and invalid JSON ("body is not valid JSON (…)"). An empty
      body or plain text is up (Kubernetes-style "ok"); a plain-text status
      word is judged like a JSON one.
    * A body over BODY_LIMIT is not read and is degraded: the service
      answered, but what it said could not be judged.
    """
    health, reason, doc = _classify(status, content_type, body, truncated)
    return health, clean_text(reason, REASON_LIMIT), doc


def _classify(
    status: int, content_type: str | None, body: bytes, truncated: bool
) -> tuple[HealthState, str, Any]:
    http = f"HTTP {status}"
    if not 100 <= status <= 599:
        return "down", f"{http} (not a valid status)", None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    kind, doc, problem = _read_body(media, body, truncated)
    if status >= 500 or (400 <= status < 500 and status != 429):
        detail = _judge(doc) if kind == "json" else None
        if detail is not None and detail[0] != "up":
            return "down", f"{http}, {detail[1]}", doc
        return "down", http, doc
    if status == 429:
        return "degraded", f"{http} (rate limited)", doc
    if status >= 300:
        suffix = " (redirect not followed)" if status in _REDIRECTS else ""
        return "down", http + suffix, doc
    if status < 200:
        return "down", f"{http} (not a final answer)", doc
    if kind == "truncated":
        return "degraded", f"{http}, body over {BODY_LIMIT // 1024} KiB, not read", None
    if kind == "empty":
        return "up", f"{http} (no body)", None
    if kind == "invalid":
        return "down", f"{http}, body is not valid JSON ({problem})", None
    if kind == "html":
        return "down", f"{http}, body is not JSON ({media or 'HTML'})", None
    if kind == "text":
        word = body.strip()[:32].decode("utf-8", "replace")
        state = _WORDS.get(_normal(word))
        if state is not None:
            return state, f"{http}, body = {word}", None
        return "up", f"{http} (no JSON body)", None
    judged = _judge(doc)
    if judged is None:
        return "up", f"{http} (JSON has no status)", doc
    return judged[0], judged[1], doc


def _read_body(media: str, body: bytes, truncated: bool) -> tuple[str, Any, str]:
    """Sort a body into truncated, empty, json, invalid, html or text."""
    if truncated:
        return "truncated", None, ""
    head = body.lstrip()[:1]
    if not head:
        return "empty", None, ""
    claims_json = media.endswith(("/json", "+json"))
    if claims_json or head in (b"{", b"["):
        try:
            return "json", json.loads(body), ""
        except json.JSONDecodeError as e:
            return (
                "invalid",
                None,
                f"{e.msg.removesuffix(' at')} at line {e.lineno} column {e.colno}",
            )
        except UnicodeDecodeError:
            return "invalid", None, "not UTF-8"
        except ValueError as e:  # e.g. an integer past the digit limit
            return "invalid", None, str(e).splitlines()[0][:60]
        except RecursionError:
            return "invalid", None, "nested too deeply"
    if media in ("text/html", "application/xhtml+xml") or head == b"<":
        return "html", None, ""
    return "text", None, ""


def _judge(doc: Any) -> tuple[HealthState, str] | None:
    """What a JSON body says about health, or None when it says nothing."""
    if isinstance(doc, str):
        finding = _word(doc, "body")
        return finding.state, finding.label
    if not isinstance(doc, dict):
        return None
    top = _status_of(doc, "status")
    checks: list[_Finding] = []
    _collect_checks(doc, "", checks, depth=0)
    if top is None and not checks:
        return None
    worst = max([f.state for f in checks] + ([top.state] if top else []), key=_RANK.__getitem__)
    if worst == "up":
        parts = [top.label] if top else []
        if checks:
            parts.append(f"{plural(len(checks), 'check')} ok")
        return "up", ", ".join(parts)
    bad = [f for f in checks if f.state == worst]
    if bad:
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        return worst, bad[0].label + more
    assert top is not None  # the worst state came from the top-level status
    return worst, top.label


def _collect_checks(node: dict[str, Any], prefix: str, out: list[_Finding], depth: int) -> None:
    """Findings from ``checks``/``components`` maps, recursing into nested components."""
    if depth >= _MAX_DEPTH:
        return
    for key in _CHECK_KEYS:
        checks = node.get(key)
        if not isinstance(checks, dict):
            continue
        for name, value in checks.items():
            where = f"{prefix}{key}.{clean_text(str(name), 40)}"
            if isinstance(value, str | bool):
                out.append(_word(value, where))
            elif isinstance(value, dict):
                finding = _status_of(value, where)
                if finding is not None:
                    out.append(finding)
                _collect_checks(value, where + ".", out, depth + 1)
            elif isinstance(value, list):  # application/health+json: a list of measurements
                for item in value:
                    if isinstance(item, dict) and (finding := _status_of(item, where)):
                        out.append(finding)


def _status_of(node: dict[str, Any], where: str) -> _Finding | None:
    """The ``status`` of an object (any key case), with its ``output`` or ``message`` when not up."""
    if "status" in node:
        value = node["status"]
    else:
        keys = [k for k in node if isinstance(k, str) and k.lower() == "status"]
        if not keys:
            return None
        value = node[keys[0]]
    finding = _word(value, where)
    if finding.state == "up":
        return finding
    for key in _WHY_KEYS:
        why = node.get(key)
        if isinstance(why, str) and why.strip():
            return _Finding(finding.state, f"{finding.label}: {clean_text(why, 60).strip()}")
    return finding


def _word(value: Any, where: str) -> _Finding:
    """Judge one status value; an unknown word is degraded, saying so."""
    if isinstance(value, bool):
        return _Finding("up" if value else "down", f"{where} = {str(value).lower()}")
    if isinstance(value, str):
        # Judged as shown: control characters cannot make a word unrecognised.
        shown = clean_text(value, 30).strip()
        state = _WORDS.get(_normal(shown))
        if state is not None:
            return _Finding(state, f"{where} = {shown}")
        return _Finding("degraded", f'{where} = "{shown}" (not a known status)')
    shown = clean_text(json.dumps(value)[:40], 30)
    return _Finding("degraded", f"{where} = {shown} (not a known status)")


def _normal(word: str) -> str:
    return word.strip().lower().replace("-", "_").replace(" ", "_")
