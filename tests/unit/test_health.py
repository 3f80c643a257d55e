"""classify: what an HTTP answer from a health endpoint means, in one line."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from console.model.health import BODY_LIMIT, HEALTH_STATES, REASON_LIMIT, classify

J = "application/json"


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("status", "content_type", "body", "health", "reason"),
    [
        # JSON status words, any case
        (200, J, _json({"status": "ok"}), "up", "status = ok"),
        (200, J, _json({"status": "HEALTHY"}), "up", "status = HEALTHY"),
        (200, J, _json({"status": "Pass"}), "up", "status = Pass"),
        (200, J, _json({"status": "UP"}), "up", "status = UP"),
        (200, J, _json({"status": "degraded"}), "degraded", "status = degraded"),
        (200, J, _json({"status": "WARN"}), "degraded", "status = WARN"),
        (200, J, _json({"status": "down"}), "down", "status = down"),
        (200, J, _json({"status": "fail"}), "down", "status = fail"),
        (200, J, _json({"status": "Unhealthy"}), "down", "status = Unhealthy"),
        (200, J, _json({"status": "error"}), "down", "status = error"),
        (200, J, _json({"status": "critical"}), "down", "status = critical"),
        (200, J, _json({"Status": "ok"}), "up", "status = ok"),
        (200, J, _json({"status": True}), "up", "status = true"),
        (200, J, _json({"status": False}), "down", "status = false"),
        (200, J, _json({"status": "starting"}), "degraded", 'status = "starting" (not a known status)'),
        (200, J, _json({"status": 3}), "degraded", "status = 3 (not a known status)"),
        (200, J, _json({"status": "fail", "output": "disk full"}), "down", "status = fail: disk full"),
        # a plain checks map: the worst check wins and is named
        (200, J, _json({"status": "ok", "checks": {"database": "ok", "redis": "down"}}), "down", "checks.redis = down"),
        (200, J, _json({"checks": {"db": {"status": "ok"}, "cache": {"status": "degraded"}}}), "degraded", "checks.cache = degraded"),
        (200, J, _json({"checks": {"a": "down", "b": "fail", "c": "ok"}}), "down", "checks.a = down (+1 more)"),
        (200, J, _json({"status": "ok", "checks": {"a": "ok", "b": {"status": "pass"}}}), "up", "status = ok, 2 checks ok"),
        (200, J, _json({"checks": {"a": "ok"}}), "up", "1 check ok"),
        (200, J, _json({"status": "down", "checks": {"a": "ok"}}), "down", "status = down"),
        (200, J, _json({"checks": {"db": True, "queue": False}}), "down", "checks.queue = false"),
        (200, J, _json({"checks": {"db": "connected"}}), "degraded", 'checks.db = "connected" (not a known status)'),
        (200, J, _json({"checks": {"db": 12, "uptime": None}}), "up", "HTTP 200 (JSON has no status)"),
        # Spring Boot: components, nested, upper-case words
        (
            200, J,
            _json({"status": "UP", "components": {"db": {"status": "UP", "components": {"replica": {"status": "OUT_OF_SERVICE"}}}}}),
            "down", "components.db.components.replica = OUT_OF_SERVICE",
        ),
        # the application/health+json draft
        (
            200, "application/health+json",
            _json({"status": "pass", "checks": {"db:responseTime": [{"status": "pass"}, {"status": "fail", "output": "timed out"}]}}),
            "down", "checks.db:responseTime = fail: timed out",
        ),
        (
            200, "application/health+json",
            _json({"status": "warn", "checks": {"mem:utilization": [{"status": "pass"}]}}),
            "degraded", "status = warn",
        ),
        # JSend ({"status": "success" | "fail" | "error"}): Prometheus' own API, among others
        (200, J, _json({"status": "success", "data": {"version": "2.53.0", "branch": "HEAD"}}), "up", "status = success"),
        (200, J, _json({"status": "error", "message": "database unreachable"}), "down", "status = error: database unreachable"),
        (200, J, _json({"status": "fail", "data": {"db": "timeout"}, "message": "db timed out"}), "down", "status = fail: db timed out"),
        (200, J, _json({"status": "fail", "data": {"db": "timeout"}}), "down", "status = fail"),
        (200, J, _json({"status": "error", "message": 42}), "down", "status = error"),
        (200, J, _json({"status": "error", "message": "  "}), "down", "status = error"),
        (500, J, _json({"status": "error", "message": "out of memory", "code": 17}), "down", "HTTP 500, status = error: out of memory"),
        (200, J, _json({"status": "success", "message": "ignored when up"}), "up", "status = success"),
        (200, J, _json({"status": "ok", "checks": {"db": {"status": "down", "message": "refused"}}}), "down", "checks.db = down: refused"),
        # Elasticsearch colours
        (200, J, _json({"status": "yellow"}), "degraded", "status = yellow"),
        # HTTP status first
        (503, J, _json({"status": "down", "checks": {"db": "down"}}), "down", "HTTP 503, checks.db = down"),
        (503, J, _json({"status": "ok"}), "down", "HTTP 503"),
        (502, "text/html", b"<html>Bad Gateway</html>", "down", "HTTP 502"),
        (500, None, b"", "down", "HTTP 500"),
        (404, "text/plain", b"not found", "down", "HTTP 404"),
        (401, J, _json({"status": "down"}), "down", "HTTP 401, status = down"),
        (429, None, b"", "degraded", "HTTP 429 (rate limited)"),
        (302, None, b"", "down", "HTTP 302 (redirect not followed)"),
        (304, None, b"", "down", "HTTP 304"),
        (101, None, b"", "down", "HTTP 101 (not a final answer)"),
        (999, None, b"", "down", "HTTP 999 (not a valid status)"),
        # bodies that are not JSON
        (200, "text/html; charset=utf-8", b"<!doctype html><p>hi", "down", "HTTP 200, body is not JSON (text/html)"),
        (200, None, b"  <html><body>login</body></html>", "down", "HTTP 200, body is not JSON (HTML)"),
        (200, J, b'{"status": ok}', "down", "HTTP 200, body is not valid JSON (Expecting value at line 1 column 12)"),
        (200, "text/plain", b'{"status": "ok",', "down", "HTTP 200, body is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 17)"),
        (200, J, b"\xff\xfe\xfa", "down", "HTTP 200, body is not valid JSON (not UTF-8)"),
        (200, J, b"[" * 100_000, "down", "HTTP 200, body is not valid JSON (nested too deeply)"),
        (200, J, b"", "up", "HTTP 200 (no body)"),
        (204, None, b"", "up", "HTTP 204 (no body)"),
        (200, "text/plain", b"OK\n", "up", "HTTP 200, body = OK"),
        (200, "text/plain", b"unhealthy", "down", "HTTP 200, body = unhealthy"),
        (200, "text/plain", b"all good here", "up", "HTTP 200 (no JSON body)"),
        (200, J, b'"ok"', "up", "body = ok"),
        (200, J, b"[1, 2]", "up", "HTTP 200 (JSON has no status)"),
        (200, J, _json({"version": "1.2"}), "up", "HTTP 200 (JSON has no status)"),
    ],
)  # fmt: skip
def test_classify(
    status: int, content_type: str | None, body: bytes, health: str, reason: str
) -> None:
    got_health, got_reason, _ = classify(status, content_type, body, truncated=False)
    assert (got_health, got_reason) == (health, reason)


def test_a_body_over_the_limit_is_degraded_and_not_parsed() -> None:
    health, reason, doc = classify(200, J, b'{"status": "ok"', truncated=True)
    assert (health, reason, doc) == ("degraded", "HTTP 200, body over 64 KiB, not read", None)
    assert BODY_LIMIT == 64 * 1024


def test_a_large_failure_is_still_down_when_truncated() -> None:
    assert classify(503, J, b"", truncated=True)[:2] == ("down", "HTTP 503")


def test_the_parsed_json_is_returned_for_named_signals() -> None:
    doc = {"status": "ok", "metrics": {"cache_hit_rate": 0.97}}
    assert classify(200, J, _json(doc), truncated=False)[2] == doc
    assert classify(503, J, _json(doc), truncated=False)[2] == doc
    assert classify(200, "text/html", b"<p>", truncated=False)[2] is None


def test_hostile_keys_and_values_are_cleaned_in_the_reason() -> None:
    doc = {"checks": {"\x1b]8;;http://evil/\x07[bold]db[/]\x1b]8;;\x07": "down\r\x1b[2J"}}
    health, reason, _ = classify(200, J, _json(doc), truncated=False)
    assert (health, reason) == ("down", "checks.[bold]db[/] = down")


def test_a_jsend_message_is_cleaned_and_clipped_like_other_outside_text() -> None:
    doc = {"status": "error", "message": "\x1b]8;;http://evil/\x07[red]db[/] gone\r\x1b[2J" + "x" * 500}
    health, reason, _ = classify(200, J, _json(doc), truncated=False)
    assert health == "down"
    assert reason.startswith("status = error: [red]db[/] gone")
    assert reason.endswith("…")
    assert len(reason) <= len("status = error: ") + 60
    assert not _CONTROL.search(reason)


def test_jsend_reads_like_the_formats_beside_it() -> None:
    """The same outage told three ways reads the same, whichever convention the service uses."""
    bodies = [
        {"status": "error", "message": "redis down"},  # JSend
        {"status": "fail", "output": "redis down"},  # application/health+json
        {"status": "DOWN", "message": "redis down"},  # Spring-style word, with a message
    ]
    reasons = [classify(200, J, _json(b), truncated=False)[:2] for b in bodies]
    assert reasons == [
        ("down", "status = error: redis down"),
        ("down", "status = fail: redis down"),
        ("down", "status = DOWN: redis down"),
    ]
    assert classify(200, J, _json({"status": "success"}), truncated=False)[:2] == ("up", "status = success")
    assert classify(200, J, _json({"status": "pass"}), truncated=False)[:2] == ("up", "status = pass")


def test_long_reasons_are_cut_to_one_bounded_line() -> None:
    doc = {"status": "fail", "output": "x" * 500, "checks": {"k" * 500: "ok"}}
    _, reason, _ = classify(200, J, _json(doc), truncated=False)
    assert len(reason) <= REASON_LIMIT
    doc = {"checks": {"k" * 500 + "\n" + "j" * 500: "down"}}
    _, reason, _ = classify(200, J, _json(doc), truncated=False)
    assert len(reason) <= REASON_LIMIT
    assert reason.endswith("= down")


def test_gzip_bytes_are_not_json() -> None:
    health, reason, _ = classify(200, J, gzip.compress(b"{}"), truncated=False)
    assert (health, reason) == ("down", "HTTP 200, body is not valid JSON (not UTF-8)")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=30,
)
_health_docs = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["ok", "down", "WARN", "fail", "weird", "\x1b[2J", "success", "error"])
        | _json_values,
        "checks": st.dictionaries(st.text(max_size=30), _json_values, max_size=5),
        "output": st.text(max_size=200),
        "message": st.text(max_size=200) | _json_values,
    },
)


@given(
    st.integers(min_value=0, max_value=1000),
    st.sampled_from([None, J, "text/html", "text/plain", "application/health+json"]),
    st.binary(max_size=300) | _health_docs.map(_json),
    st.booleans(),
)
def test_any_answer_gets_a_state_and_one_clean_bounded_line(
    status: int, content_type: str | None, body: bytes, truncated: bool
) -> None:
    health, reason, _ = classify(status, content_type, body, truncated=truncated)
    assert health in HEALTH_STATES
    assert health != "unknown"
    assert reason
    assert len(reason) <= REASON_LIMIT
    assert not _CONTROL.search(reason)
