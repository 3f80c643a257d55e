"""The incident issue's "done when", end to end on the demo fleet with `conn agent` leading.

An injected canary fault triggers an automatic rollback, which opens a SEV2
incident whose first entry is the criterion and its evidence; the commander
acknowledges it, adds a note, marks it mitigated and resolved; the demo's
Slack-shaped chat got one message per change; `conn incident export INC-1`
prints a postmortem whose timeline shows the fault's detection, the
rollback, the health recovery and each note in order, with the durations.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from console.config import load_config
from console.demo.fleet import DemoFleet, FleetInfo
from console.engine.core import Engine
from console.engine.incidents import AcknowledgeIncident, NoteIncident, SetIncidentStatus
from console.engine.rollouts import AdvanceRollout
from console.model.events import Actor
from console.store import open_store
from tests.fixtures.fleet import fast_fleet_fixture, flag_file_fixture
from tests.fixtures.waiting import until
from tests.integration.test_rollout_e2e import Agent, advance_when_ready, conn, fault, quick_config

__all__ = ["fast_fleet_fixture", "flag_file_fixture"]

pytestmark = pytest.mark.slow

COMMANDER = Actor("alice")


def chat_messages(info: FleetInfo) -> list[dict[str, Any]]:
    base = info.chat_url.split("/services/")[0]
    with urllib.request.urlopen(f"{base}/_demo/chat", timeout=5) as answer:
        messages: list[dict[str, Any]] = json.loads(answer.read())
    return messages


async def test_an_automatic_rollback_opens_a_sev2_incident_that_is_run_to_a_postmortem(
    fast_fleet: tuple[DemoFleet, FleetInfo], tmp_path: Path
) -> None:
    _, info = fast_fleet
    path = quick_config(info, tmp_path)
    config = load_config(path)[0]
    store = await open_store(config.store)
    agent = Agent(path)
    try:
        await until(lambda: agent.saw("role: leader"), within=20, what="the agent leads")
        async with Engine(config, store, actor=COMMANDER, lead=False, follow=False) as captain:
            await captain.execute(AdvanceRollout(rollout="checkout", reason="release 1.43"))
        await advance_when_ready(path)
        await until(lambda: agent.saw("set checkout_v2 to 10"), within=15, what="10 % on the canary")
        await fault(info, "checkout-canary", {"error_rate": 0.3})
        await until(lambda: agent.saw("INC-1 declared (SEV2)"), within=60, what="the automatic incident")

        async def incident() -> Any:
            async with Engine(config, store, actor=COMMANDER, lead=False, follow=False,
                              sync_flag_file=False) as reader:
                return reader.incident("INC-1").state

        state = await incident()
        assert state.severity == "SEV2" and state.automatic and state.declared_by.startswith("conn-auto@")
        assert state.services == ("checkout", "checkout-canary")
        async with Engine(config, store, lead=False, follow=False, sync_flag_file=False) as reader:
            offered = [r.name for r in reader.offered_runbooks("INC-1")]
        assert offered == ["high-error-rate"], offered  # the criterion's signal picks the runbook
        first = next(e.text for e in state.entries if e.kind == "opened")
        assert first.startswith("automatic rollback of checkout") and ("error_rate" in first or "health" in first)

        async with Engine(config, store, actor=COMMANDER, lead=False, follow=False,
                          sync_flag_file=False) as commander:
            await commander.execute(AcknowledgeIncident(incident="INC-1"))
            await commander.execute(NoteIncident(incident="INC-1", text="canary errors at 30%; flag killed"))
            await commander.execute(SetIncidentStatus(incident="INC-1", status="mitigated"))
        await fault(info, "checkout-canary", {})

        opened_at = next(e.position for e in state.entries if e.kind == "opened")

        async def recovered() -> bool:
            return any(e.kind == "health" and e.position > opened_at and "checkout-canary: critical → up"
                       in e.text for e in (await incident()).entries)

        deadline = asyncio.get_running_loop().time() + 60
        while not await recovered():
            assert asyncio.get_running_loop().time() < deadline, [e.text for e in (await incident()).entries]
            await asyncio.sleep(1)
        async with Engine(config, store, actor=COMMANDER, lead=False, follow=False,
                          sync_flag_file=False) as commander:
            await commander.execute(NoteIncident(incident="INC-1", text="error rate back under 1%"))
            await commander.execute(SetIncidentStatus(incident="INC-1", status="resolved"))

        def incident_messages() -> list[str]:
            return [m["text"] for m in chat_messages(info) if "INC-1" in m["text"]]

        await until(lambda: len(incident_messages()) >= 6, within=30, what="the chat told of each change")
        await asyncio.sleep(2)
        texts = incident_messages()
        for words in ("declared SEV2", "acknowledged", "canary errors at 30%", "now mitigated",
                      "error rate back under 1%", "now resolved"):
            assert sum(words in t for t in texts) == 1, (words, texts)
        assert any("rollback" in m["text"].lower() for m in chat_messages(info))
    finally:
        agent.stop()
        await store.close()

    export = await asyncio.to_thread(conn, path, "incident", "export", "INC-1")
    assert export.returncode == 0, export.stderr
    text = export.stdout
    order = [
        text.find("automatic rollback of checkout"),
        text.find("→ critical") if "→ critical" in text else text.find("→ down"),
        text.find("rollback started"),
        text.find("canary errors at 30%"),
        text.find("checkout-canary: critical → up", text.find("canary errors at 30%")),
        text.find("error rate back under 1%"),
    ]
    assert all(i >= 0 for i in order), (order, text)
    assert order[3] < order[4] < order[5], text
    for name in ("detect", "acknowledge", "mitigate", "resolve"):
        line = next((x for x in text.splitlines() if x.startswith(f"| {name} |")), "")
        assert line and "not yet" not in line, (name, text)
