"""AlertmanagerSource against a real Alertmanager, and against servers that are not one.

The real server (Debian's prometheus-alertmanager, one per test) is fed
alerts and silences through its own API, the way Prometheus and amtool do,
and the source's answer is compared with what the server itself lists.
What Alertmanager will not do on request (answer garbage, hang, echo a
token) comes from a small raw HTTP server on loopback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from console.errors import SecretError, SourceError
from console.model.alerts import Alert, AlertmanagerConfig, AlertRule, match_rule, parse_time
from console.sources.alertmanager import AlertmanagerSource
from tests.fixtures.alertmanager import (
    OUTAGE,
    RECEIVER,
    AlertmanagerServer,
    alertmanager_server_fixture,
    alerts_directly,
    post_alerts,
    resolve_alert,
    rfc3339,
    run_alertmanager,
    silence,
)
from tests.fixtures.prometheus import free_port
from tests.fixtures.waiting import until

__all__ = ["alertmanager_server_fixture"]  # a fixture, used by name

pytestmark = pytest.mark.slow

CHECKOUT = {"alertname": "HighErrorRate", "service": "checkout", "env": "prod"}
SEARCH = {"alertname": "SlowResponses", "service": "search", "env": "prod"}


@pytest.fixture
async def source(alertmanager_server: AlertmanagerServer) -> AsyncIterator[AlertmanagerSource]:
    async with AlertmanagerSource(AlertmanagerConfig(url=alertmanager_server.url)) as src:
        yield src


def _by_name(alerts: list[Alert]) -> dict[str, Alert]:
    return {alert.name: alert for alert in alerts}


# --- against the real Alertmanager ---------------------------------------------------


async def test_fetch_returns_posted_alerts_as_alertmanager_lists_them(
    alertmanager_server: AlertmanagerServer, source: AlertmanagerSource
) -> None:
    started = round(time.time() - 120)  # a whole second: exact after the millisecond round trip
    post_alerts(alertmanager_server.url, [
        {"labels": CHECKOUT, "annotations": {"summary": "Checkout 5xx above 2%"},
         "startsAt": rfc3339(started), "generatorURL": "http://prometheus:9090/graph?g0.expr=x"},
        {"labels": SEARCH},
    ])
    alerts = _by_name(await source.fetch())
    direct = {a["labels"]["alertname"]: a for a in alerts_directly(alertmanager_server.url)}

    assert set(alerts) == {"HighErrorRate", "SlowResponses"}
    checkout = alerts["HighErrorRate"]
    assert checkout.fingerprint == direct["HighErrorRate"]["fingerprint"]
    assert checkout.starts_at == started
    assert checkout.labels == CHECKOUT
    assert checkout.annotations == {"summary": "Checkout 5xx above 2%"}
    assert checkout.generator_url == "http://prometheus:9090/graph?g0.expr=x"
    assert checkout.state == "active" and checkout.receivers == (RECEIVER,)
    assert checkout.ends_at is not None and checkout.ends_at > time.time()  # resolve_timeout ahead
    search = alerts["SlowResponses"]
    assert search.fingerprint == direct["SlowResponses"]["fingerprint"] != checkout.fingerprint
    assert search.starts_at == parse_time(direct["SlowResponses"]["startsAt"])
    assert search.annotations == {} and search.generator_url is None


async def test_a_rule_picks_the_alert_fetched(
    alertmanager_server: AlertmanagerServer, source: AlertmanagerSource
) -> None:
    post_alerts(alertmanager_server.url, [{"labels": CHECKOUT}, {"labels": {**SEARCH, "env": "dev"}}])
    rules = [AlertRule(matchers=['service=~"check.*"', 'env!="dev"'], severity="SEV2")]
    matched = [alert.name for alert in await source.fetch() if match_rule(rules, alert)]
    assert matched == ["HighErrorRate"]


async def test_resending_keeps_the_occurrence(
    alertmanager_server: AlertmanagerServer, source: AlertmanagerSource
) -> None:
    post_alerts(alertmanager_server.url, [{"labels": CHECKOUT}])
    (first,) = await source.fetch()
    post_alerts(alertmanager_server.url, [{"labels": CHECKOUT}])  # Prometheus re-sends while firing
    (again,) = await source.fetch()
    assert again.occurrence == first.occurrence
    assert again.updated_at is not None and first.updated_at is not None
    assert again.updated_at >= first.updated_at


async def test_silenced_alert_is_not_returned(
    alertmanager_server: AlertmanagerServer, source: AlertmanagerSource
) -> None:
    post_alerts(alertmanager_server.url, [{"labels": CHECKOUT}, {"labels": SEARCH}])
    silence_id = silence(alertmanager_server.url, {"service": "search"})

    assert [alert.name for alert in await source.fetch()] == ["HighErrorRate"]
    # Still there, muted: the filter hides it, not a lost alert.
    everything = {a["labels"]["alertname"]: a for a in alerts_directly(alertmanager_server.url)}
    assert everything["SlowResponses"]["status"]["state"] == "suppressed"
    assert everything["SlowResponses"]["status"]["silencedBy"] == [silence_id]


async def test_inhibited_alert_is_not_returned(
    alertmanager_server: AlertmanagerServer, source: AlertmanagerSource
) -> None:
    down = {"alertname": OUTAGE, "service": "checkout"}
    warning = {**CHECKOUT, "severity": "warning"}
    post_alerts(alertmanager_server.url, [{"labels": down}, {"labels": warning}, {"labels": SEARCH}])

    def inhibited() -> bool:
        listed = alerts_directly(alertmanager_server.url)
        return any(a["labels"] == warning and a["status"]["inhibitedBy"] for a in listed)

    # The inhibitor learns of the outage alert asynchronously, just after the post.
    await until(inhibited, within=10, what="Alertmanager inhibits the checkout warning")
    assert set(_by_name(await source.fetch())) == {OUTAGE, "SlowResponses"}


async def test_resolved_alert_disappears_and_a_refire_is_a_new_occurrence(
    alertmanager_server: AlertmanagerServer, source: AlertmanagerSource
) -> None:
    post_alerts(alertmanager_server.url, [{"labels": CHECKOUT, "startsAt": rfc3339(time.time() - 60)},
                                          {"labels": SEARCH}])
    before = _by_name(await source.fetch())
    assert set(before) == {"HighErrorRate", "SlowResponses"}

    resolve_alert(alertmanager_server.url, CHECKOUT)
    assert set(_by_name(await source.fetch())) == {"SlowResponses"}

    post_alerts(alertmanager_server.url, [{"labels": CHECKOUT}])
    refired = _by_name(await source.fetch())["HighErrorRate"]
    assert refired.fingerprint == before["HighErrorRate"].fingerprint
    assert refired.starts_at > before["HighErrorRate"].starts_at
    assert refired.occurrence != before["HighErrorRate"].occurrence


async def test_no_alerts_is_an_empty_list(source: AlertmanagerSource) -> None:
    assert await source.fetch() == []


async def test_stopped_alertmanager_is_connection_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    with run_alertmanager(tmp_path_factory.mktemp("stopped")) as server:
        config = AlertmanagerConfig(url=server.url)
        async with AlertmanagerSource(config) as src:
            assert await src.fetch() == []
    async with AlertmanagerSource(config) as src:
        with pytest.raises(SourceError) as caught:
            await src.fetch()
    assert str(caught.value) == f"Alertmanager at {server.url}: connection refused"


async def test_wrong_port_is_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with AlertmanagerSource(AlertmanagerConfig(url=url)) as src:
        with pytest.raises(SourceError, match=rf"^Alertmanager at {url}: connection refused$"):
            await src.fetch()


async def test_wrong_path_is_named(alertmanager_server: AlertmanagerServer) -> None:
    config = AlertmanagerConfig(url=alertmanager_server.url + "/prefix")
    async with AlertmanagerSource(config) as src:
        with pytest.raises(SourceError, match="HTTP 404 for /api/v2/alerts: is the URL Alertmanager's base"):
            await src.fetch()


# --- against servers that are not Alertmanager -----------------------------------------


@dataclass
class FakeServer:
    """A raw HTTP/1.1 server on loopback that answers every GET one way.

    (``tests/fixtures/receiver.py``'s Receiver answers 411 to a request
    without Content-Length, which a GET has none of.)
    """

    status: int = 200
    body: bytes = b"[]"
    hang: bool = False
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in head[1:] if ln)}
            self.requests.append((head[0].split(" ")[1], headers))
            if self.hang:
                await asyncio.sleep(60)
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n".encode() + self.body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.handlers.discard(task)
            writer.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    listening = await asyncio.start_server(server.on_client, "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    try:
        yield server
    finally:
        listening.close()
        for task in list(server.handlers):  # a hanging answer ends with the test
            task.cancel()
        await asyncio.gather(*server.handlers, return_exceptions=True)
        await listening.wait_closed()


async def _fetch(url: str, **config: object) -> list[Alert]:
    async with AlertmanagerSource(AlertmanagerConfig.model_validate({"url": url, **config})) as src:
        return await src.fetch()


async def test_asks_for_active_unmuted_alerts(fake: FakeServer) -> None:
    assert await _fetch(fake.url + "/") == []
    ((target, headers),) = fake.requests
    assert target == "/api/v2/alerts?active=true&silenced=false&inhibited=false"
    assert headers["accept"] == "application/json"
    assert "authorization" not in headers


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (200, b"<html>not an alertmanager</html>", "the answer is not JSON (is the URL Alertmanager's?)"),
        (200, b'{"status": "success", "data": {}}', "unexpected answer (is the URL Alertmanager's?): "
                                                   "expected a list of alerts, got an object"),
        (200, b'[{"labels": {"a": "b"}}]', "unexpected answer (is the URL Alertmanager's?): alert 0 has no fingerprint"),
        (200, json.dumps([{"fingerprint": "ab", "labels": {}, "startsAt": "noon", "status": {"state": "active"}}]).encode(),
         "alert 0 (ab): startsAt: 'noon' is not an RFC 3339 time"),
        (400, b'"bad matcher format: {foo"', "HTTP 400: bad matcher format: {foo"),
        (500, b'{"code": 500, "message": "\\u001b[2Jboom"}', "HTTP 500: boom"),
        (502, b"", "HTTP 502"),
        (401, b"", "credentials refused (HTTP 401); set token_secret"),
    ],
)
async def test_garbage_is_a_source_error(fake: FakeServer, status: int, body: bytes, words: str) -> None:
    fake.status, fake.body = status, body
    with pytest.raises(SourceError) as caught:
        await _fetch(fake.url)
    message = str(caught.value)
    assert message.startswith(f"Alertmanager at {fake.url}: ")
    assert words in message
    assert "\x1b" not in message


async def test_timeout_is_a_source_error(fake: FakeServer) -> None:
    fake.hang = True
    with pytest.raises(SourceError, match=rf"^Alertmanager at {fake.url}: no answer within 0\.3s$"):
        await _fetch(fake.url, timeout="300ms")


async def test_too_big_an_answer_is_refused(fake: FakeServer) -> None:
    fake.body = b"[" + b" " * (17 << 20) + b"]"
    with pytest.raises(SourceError, match="over 16 MiB"):
        await _fetch(fake.url)


async def test_bearer_token_is_sent_and_never_shown(fake: FakeServer) -> None:
    token = "am-t0ken-9f8e7d"
    asked: list[str] = []

    def lookup(name: str) -> str:
        asked.append(name)
        return token

    config = AlertmanagerConfig(url=fake.url, token_secret="am_token")
    async with AlertmanagerSource(config, secret_lookup=lookup) as src:
        assert await src.fetch() == []
        fake.status, fake.body = 403, json.dumps({"message": f"token {token} is revoked"}).encode()
        with pytest.raises(SourceError) as caught:
            await src.fetch()
    assert asked == ["am_token"]  # looked up once
    assert [headers["authorization"] for _, headers in fake.requests] == [f"Bearer {token}"] * 2
    assert str(caught.value) == (
        f"Alertmanager at {fake.url}: credentials refused (HTTP 403); check the secret named by token_secret"
    )
    fake.status = 500  # an error body that echoes the token is shown redacted
    async with AlertmanagerSource(config, secret_lookup=lookup) as src:
        with pytest.raises(SourceError) as caught:
            await src.fetch()
    assert token not in str(caught.value)
    assert "«secret:am_token»" in str(caught.value)


async def test_missing_secret_is_a_source_error_then_recovers(fake: FakeServer) -> None:
    stored: dict[str, str] = {}

    def lookup(name: str) -> str:
        if name not in stored:
            raise SecretError(f"secret {name!r} is not set")
        return stored[name]

    config = AlertmanagerConfig(url=fake.url, token_secret="am_token")
    async with AlertmanagerSource(config, secret_lookup=lookup) as src:
        with pytest.raises(SourceError, match="cannot read secret 'am_token': secret 'am_token' is not set"):
            await src.fetch()
        assert fake.requests == []  # nothing sent without the credentials
        stored["am_token"] = "late-token"
        assert await src.fetch() == []
    assert fake.requests[0][1]["authorization"] == "Bearer late-token"


async def test_default_lookup_reads_the_environment(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    previous = keyring.get_keyring()
    keyring.set_keyring(FailKeyring())  # type: ignore[no-untyped-call]  # no keyring: secrets come from CONN_SECRET_<NAME>
    monkeypatch.setenv("CONN_SECRET_AM_TOKEN", "env-token")
    try:
        assert await _fetch(fake.url, token_secret="am_token") == []
    finally:
        keyring.set_keyring(previous)
    assert fake.requests[0][1]["authorization"] == "Bearer env-token"


async def test_a_shared_client_stays_open(fake: FakeServer) -> None:
    async with httpx.AsyncClient() as client:
        async with AlertmanagerSource(AlertmanagerConfig(url=fake.url), client=client) as src:
            assert await src.fetch() == []
        assert not client.is_closed
        with pytest.raises(RuntimeError, match="closed"):
            await src.fetch()
    owned = AlertmanagerSource(AlertmanagerConfig(url=fake.url))
    await owned.aclose()
    await owned.aclose()  # twice is harmless
