"""The notification outbox on a real store, delivering to real loopback receivers.

Every incident change reaches each configured sink once, in order, with the
event's id as idempotency key; a sink that fails is retried and shown, and
catches up when it recovers; a leader killed with SIGKILL leaves the work to
the next one, which sends what was pending and nothing twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from console.config import ConnConfig
from console.engine.core import Engine
from console.engine.incidents import (
    AcknowledgeIncident,
    NoteIncident,
    OpenIncident,
    SetIncidentStatus,
)
from console.model.events import Actor
from console.store import open_store
from tests.fixtures.receiver import Receiver
from tests.fixtures.waiting import until

ALICE = Actor("alice")


def config_text(tmp_path: Path, sinks: str) -> str:
    return f"""
store = "sqlite://{tmp_path / 'conn.db'}"
environment = "test"
[services.checkout]
health_url = "http://127.0.0.1:9/health"
interval = "1s"
{sinks}
"""


def load(text: str) -> ConnConfig:
    return ConnConfig.model_validate(tomllib.loads(text))


async def test_every_change_reaches_each_sink_once_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Receiver() as hook, Receiver() as slack:
        monkeypatch.setenv("CONN_SECRET_HOOK_URL", hook.url("/events"))
        monkeypatch.setenv("CONN_SECRET_SLACK_URL", slack.url("/services/T0/B0/x"))
        cfg = load(config_text(tmp_path, """
[notify.ops]
format = "json"
url_secret = "hook_url"
[notify.chat]
format = "slack"
url_secret = "slack_url"
events = ["incident.opened", "incident.status"]
"""))
        store = await open_store(cfg.store)
        try:
            async with Engine(cfg, store, actor=ALICE, retry_leadership=0.1) as engine:
                await until(lambda: engine.role == "leader", within=10, what="leading")
                await engine.execute(OpenIncident(title="checkout <!channel> errors", services=("checkout",),
                                                  severity="SEV2"))
                await engine.execute(AcknowledgeIncident(incident="INC-1"))
                await engine.execute(NoteIncident(incident="INC-1", text="canary only"))
                await engine.execute(SetIncidentStatus(incident="INC-1", status="mitigated"))
                got = await hook.wait_for(4, within=15)
                chat = await slack.wait_for(2, within=15)
                await until(lambda: [v.sent for v in engine.snapshot.notify] == [4, 2], within=10,
                            what="deliveries recorded")
        finally:
            await store.close()
    bodies = [r.json() for r in got]
    assert [b["type"] for b in bodies] == ["incident.opened", "incident.acknowledged", "incident.note",
                                          "incident.status"]
    assert all(r.headers["idempotency-key"] == b["idempotency_key"] for r, b in zip(got, bodies, strict=True))
    assert len({b["idempotency_key"] for b in bodies}) == 4
    assert bodies[0]["incident"]["id"] == "INC-1" and bodies[0]["incident"]["severity"] == "SEV2"
    assert bodies[3]["incident"]["status"] == "mitigated"
    assert chat[0].json()["text"].count("&lt;!channel&gt;") == 1  # never pings the channel
    assert "blocks" in chat[0].json()


async def test_a_failing_sink_is_retried_shown_and_catches_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Receiver() as hook:
        monkeypatch.setenv("CONN_SECRET_HOOK_URL", hook.url("/events"))
        hook.answer(404, "channel_not_found")
        cfg = load(config_text(tmp_path, '[notify.chat]\nformat = "slack"\nurl_secret = "hook_url"\n'))
        store = await open_store(cfg.store)
        try:
            async with Engine(cfg, store, actor=ALICE, retry_leadership=0.1) as engine:
                await until(lambda: engine.role == "leader", within=10, what="leading")
                await engine.execute(OpenIncident(title="one", services=("checkout",)))
                await engine.execute(NoteIncident(incident="INC-1", text="two"))
                await until(lambda: engine.snapshot.notify[0].failure is not None, within=10,
                            what="the failure shown")
                view = engine.snapshot.notify[0]
                assert "channel_not_found" in (view.failure or "") and view.needs_fixing
                assert view.pending == 2 and hook.url() not in (view.failure or "")
                assert "/events" not in (view.failure or "")
                hook.answer(200, "ok")
                await until(lambda: engine.snapshot.notify[0].sent == 2, within=20, what="caught up")
                assert engine.snapshot.notify[0].failure is None
        finally:
            await store.close()
    delivered = [r for r in hook.requests if r.json()]
    keys = [r.headers["idempotency-key"] for r in delivered]
    # Retries repeat the first notice (same key); the second waits behind it, so order holds.
    assert list(dict.fromkeys(keys)) == keys[:1] + [k for k in dict.fromkeys(keys) if k != keys[0]]
    assert len(set(keys)) == 2


def agent(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "console", "agent", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, **env}, start_new_session=True)


@pytest.mark.slow
async def test_nothing_lost_nor_sent_twice_when_the_leader_is_killed(tmp_path: Path) -> None:
    async with Receiver() as hook:
        env = {"CONN_SECRET_HOOK_URL": hook.url("/events")}
        text = config_text(tmp_path, '[notify.ops]\nformat = "json"\nurl_secret = "hook_url"\n')
        path = tmp_path / "conn.toml"
        path.write_text(text)
        cfg = load(text)
        store = await open_store(cfg.store)
        first = agent(path, env)
        try:
            async with Engine(cfg, store, actor=ALICE, lead=False, follow=False, sync_flag_file=False) as cli:
                await cli.execute(OpenIncident(title="one", services=("checkout",)))
            await hook.wait_for(1, within=20)
            hook.answer(503, "down for maintenance")  # the next notices stay pending
            async with Engine(cfg, store, actor=ALICE, lead=False, follow=False, sync_flag_file=False) as cli:
                await cli.execute(NoteIncident(incident="INC-1", text="two"))
                await cli.execute(SetIncidentStatus(incident="INC-1", status="resolved"))
            await hook.wait_for(2, within=20)  # tried, failed
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            failed_before_kill = len(hook.requests)
            hook.answer(200, "ok")
            second = agent(path, env)
            try:
                await until(lambda: len({r.headers["idempotency-key"] for r in hook.requests
                                         if r.json()}) == 3, within=30, what="the pending notices sent")
                await asyncio.sleep(2)  # give a duplicate the time to show up
            finally:
                os.killpg(second.pid, signal.SIGTERM)
                second.wait(timeout=15)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
            await store.close()
    types = [r.json()["type"] for r in hook.requests]
    assert set(types) == {"incident.opened", "incident.note", "incident.status"}
    # Every request the second leader made was answered 200: each notice exactly once, in order.
    after = [r.json()["type"] for r in hook.requests[failed_before_kill:]]
    assert after == ["incident.note", "incident.status"], after
    # The opening was answered 200 once and never sent again by the second leader.
    assert types.count("incident.opened") == 1
