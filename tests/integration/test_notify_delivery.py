"""Delivering notices to a real loopback receiver: JSON and Slack, headers, Slack's errors.

The transport itself (bounded bodies, redirects, TLS, phases) is covered by
test_actions.py's webhook tests; these cover what notifications add: the
rendered bodies and headers as they arrive, and each failure's code,
permanence and wording, with the URL never shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from console.actions.notify import SLACK_ERRORS, DeliveryError, deliver
from console.actions.webhooks import WebhookError
from console.model.notify import Notice, render_json, render_slack
from console.secrets import register
from tests.fixtures.misbehaving import closed_port
from tests.fixtures.receiver import Receiver

WHEN = 1773480413.589


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: loopback stays direct on machines with proxy variables.
    async with httpx.AsyncClient(trust_env=False) as shared:
        yield shared


def notice(**changes: object) -> Notice:
    fields: dict[str, object] = {
        "key": "evt-4711",
        "type": "incident.opened",
        "summary": "INC-3 opened by alice: <!channel> checkout errors",
        "time": WHEN,
        "incident": "INC-3",
        "title": "Checkout errors & timeouts",
        "severity": "SEV2",
        "status": "investigating",
        "services": ("checkout",),
        "actor": "alice",
        "environment": "production",
    }
    fields.update(changes)
    return Notice(**fields)  # type: ignore[arg-type]


def secret_url(receiver: Receiver, name: str) -> str:
    url = receiver.url(f"/services/T0/B0/{name}-s3cr3tpath")
    register(name, url)
    return url


def assert_no_url(error: BaseException, url: str) -> None:
    message = str(error)
    assert url not in message and "s3cr3tpath" not in message and "/services/" not in message


async def test_a_json_delivery_arrives_with_its_headers_and_body(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    url = secret_url(receiver, "pager_hook")
    sent = notice()
    outcome = await deliver("json", url, sent, timeout=5, client=client)
    assert (outcome.status, outcome.body_excerpt) == (200, "ok")
    (request,) = await receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/services/T0/B0/pager_hook-s3cr3tpath"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "evt-4711"
    assert request.headers["x-conn-event"] == "incident.opened"
    body = request.json()
    assert body == render_json(sent)
    assert body["idempotency_key"] == "evt-4711" and body["time"] == "2026-03-14T09:26:53.589Z"
    assert body["incident"]["title"] == "Checkout errors & timeouts"  # JSON is not Slack: not escaped


async def test_a_slack_delivery_arrives_escaped(receiver: Receiver, client: httpx.AsyncClient) -> None:
    url = secret_url(receiver, "slack_oncall")
    sent = notice()
    await deliver("slack", url, sent, timeout=5, client=client)
    (request,) = await receiver.wait_for(1)
    assert request.headers["idempotency-key"] == "evt-4711"
    body = request.json()
    assert body == render_slack(sent)
    assert body["blocks"][0]["text"]["text"] == "🟠 SEV2 · INC-3 · Checkout errors &amp; timeouts"
    assert "&lt;!channel&gt;" in body["text"] and "<!channel>" not in request.body.decode()


async def test_secrets_in_the_notice_are_redacted_before_sending(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    register("db_password", "hunter2-very-secret")
    url = secret_url(receiver, "pager_hook")
    await deliver(
        "json", url,
        notice(detail="psql failed: password hunter2-very-secret rejected", title="leak hunter2-very-secret"),
        timeout=5, client=client,
    )
    (request,) = await receiver.wait_for(1)
    assert b"hunter2" not in request.body
    assert request.json()["detail"] == "psql failed: password «secret:db_password» rejected"


async def test_each_attempt_carries_the_same_idempotency_key(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.fail(2, status=503, body="unavailable")
    url = secret_url(receiver, "pager_hook")
    for _ in range(2):
        with pytest.raises(DeliveryError) as raised:
            await deliver("json", url, notice(), timeout=5, client=client)
        assert (raised.value.code, raised.value.permanent) == ("http_503", False)
    await deliver("json", url, notice(), timeout=5, client=client)
    requests = await receiver.wait_for(3)
    assert {r.headers["idempotency-key"] for r in requests} == {"evt-4711"}
    assert len({r.body for r in requests}) == 1  # byte-identical retries


@pytest.mark.parametrize(
    ("status", "code", "permanent"),
    [
        (400, "invalid_payload", True),
        (403, "invalid_token", True),
        (403, "action_prohibited", True),
        (404, "channel_not_found", True),
        (404, "no_service", True),
        (410, "channel_is_archived", True),
        (500, "rollup_error", False),
    ],
)
async def test_slack_error_codes_become_delivery_errors(
    receiver: Receiver, client: httpx.AsyncClient, status: int, code: str, permanent: bool
) -> None:
    receiver.answer(status, code)
    url = secret_url(receiver, "slack_oncall")
    with pytest.raises(DeliveryError) as raised:
        await deliver("slack", url, notice(), timeout=5, client=client)
    error = raised.value
    assert (error.code, error.permanent, error.status) == (code, permanent, status)
    assert str(error) == f"slack «secret:slack_oncall»: {status} {code} — {SLACK_ERRORS[code][1]}"
    assert isinstance(error, WebhookError)
    assert_no_url(error, url)


async def test_channel_not_found_reads_in_operator_words(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.answer(404, "channel_not_found")
    url = secret_url(receiver, "slack_oncall")
    with pytest.raises(DeliveryError) as raised:
        await deliver("slack", url, notice(), timeout=5, client=client)
    assert str(raised.value) == (
        "slack «secret:slack_oncall»: 404 channel_not_found — "
        "the channel was deleted or the webhook's app was removed from it"
    )


async def test_an_unknown_slack_code_keeps_its_name_and_the_status_decides(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    url = secret_url(receiver, "slack_oncall")
    receiver.answer(400, "brand_new_error")
    with pytest.raises(DeliveryError) as raised:
        await deliver("slack", url, notice(), timeout=5, client=client)
    assert (raised.value.code, raised.value.permanent) == ("brand_new_error", True)
    assert str(raised.value) == "slack «secret:slack_oncall»: 400 brand_new_error"
    receiver.answer(429, "rate_limited")
    with pytest.raises(DeliveryError) as raised:
        await deliver("slack", url, notice(), timeout=5, client=client)
    assert (raised.value.code, raised.value.permanent) == ("rate_limited", False)
    assert str(raised.value) == (
        "slack «secret:slack_oncall»: 429 rate_limited — rate limited; Conn will retry later"
    )
    receiver.answer(503, f"<html>upstream {url} down</html>")
    with pytest.raises(DeliveryError) as raised:
        await deliver("slack", url, notice(), timeout=5, client=client)
    assert (raised.value.code, raised.value.permanent) == ("http_503", False)
    assert str(raised.value).startswith("slack «secret:slack_oncall»: HTTP 503 Service Unavailable: <html>upstream ")
    assert_no_url(raised.value, url)


@pytest.mark.parametrize(
    ("status", "permanent"), [(400, True), (404, True), (410, True), (408, False), (429, False), (502, False)]
)
async def test_json_receiver_statuses_decide_permanence(
    receiver: Receiver, client: httpx.AsyncClient, status: int, permanent: bool
) -> None:
    receiver.answer(status, "nope")
    url = secret_url(receiver, "pager_hook")
    with pytest.raises(DeliveryError) as raised:
        await deliver("json", url, notice(), timeout=5, client=client)
    error = raised.value
    assert (error.code, error.permanent, error.body_excerpt) == (f"http_{status}", permanent, "nope")
    assert str(error).startswith(f"webhook «secret:pager_hook»: HTTP {status} ")
    assert_no_url(error, url)


async def test_a_redirect_is_not_followed_and_needs_fixing(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.answer(301, "")
    url = secret_url(receiver, "pager_hook")
    with pytest.raises(DeliveryError) as raised:
        await deliver("json", url, notice(), timeout=5, client=client)
    assert (raised.value.code, raised.value.permanent) == ("http_301", True)
    assert "(redirect not followed)" in str(raised.value)


async def test_a_hanging_receiver_times_out_within_the_timeout(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    receiver.hang()
    url = secret_url(receiver, "slack_oncall")
    # The guard only stops a broken timeout from hanging the suite; it is not a measurement.
    async with asyncio.timeout(30):
        with pytest.raises(DeliveryError) as raised:
            await deliver("slack", url, notice(), timeout=0.5, client=client)
    error = raised.value
    assert (error.code, error.permanent, error.timed_out, error.status) == ("timeout", False, True, None)
    assert str(error) == "slack «secret:slack_oncall» timed out after 500ms (waiting for the answer)"
    assert len(receiver.requests) == 1
    assert_no_url(error, url)


async def test_a_refused_connection_is_unreachable_and_worth_retrying(client: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{closed_port()}/services/T0/B0/refused-s3cr3tpath"
    with pytest.raises(DeliveryError) as raised:
        await deliver("slack", url, notice(), timeout=2, client=client)
    error = raised.value
    assert (error.code, error.permanent, error.status) == ("unreachable", False, None)
    assert str(error) == "slack at 127.0.0.1: connection refused"
    register("refused_hook", url)
    with pytest.raises(DeliveryError, match=r"^webhook «secret:refused_hook»: connection refused$"):
        await deliver("json", url, notice(), timeout=2, client=client)
    with pytest.raises(DeliveryError, match=r"^slack oncall: connection refused$"):
        await deliver("slack", url, notice(), timeout=2, client=client, name="oncall")


async def test_a_url_that_is_not_http_needs_fixing(client: httpx.AsyncClient) -> None:
    url = "ftp://127.0.0.1/services/T0/B0/ftp-s3cr3tpath"
    register("ftp_hook", url)
    with pytest.raises(DeliveryError) as raised:
        await deliver("json", url, notice(), timeout=2, client=client)
    error = raised.value
    assert (error.code, error.permanent) == ("invalid_url", True)
    assert str(error) == (
        "webhook «secret:ftp_hook»: not a valid http(s) URL (fix the URL stored in the secret)"
    )


async def test_without_a_client_of_its_own_it_still_delivers(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    await deliver("json", receiver.url("/hook"), notice(), timeout=5)
    (request,) = await receiver.wait_for(1)
    assert request.headers["x-conn-event"] == "incident.opened"


async def test_an_unknown_format_is_refused_before_anything_is_sent(
    receiver: Receiver, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match=r"'teams' is not a notification format \(slack or json\)"):
        await deliver("teams", receiver.url(), notice(), timeout=5, client=client)  # type: ignore[arg-type]
    assert receiver.requests == []
