"""How fast incidents move: declaring one, a change reaching chat, an automatic incident after a rollback.

    .venv/bin/python bench/incidents.py

A leader (an engine that leads, as `conn agent` does) on a SQLite store, a
real loopback webhook receiver answering like Slack, and changes made by
another engine in the same process (as the CLI does from another machine):

* declare: `OpenIncident` from the command to the event appended;
* chat: from a change's command returning to the receiver having its message
  (the leader's outbox follows the log);
* auto-incident: from an automatic `RollbackStarted` appended to the
  incident opened by the leader.

Prints figures; asserts nothing. Not part of the test run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.config import parse_config
from console.engine.commands import automatic_actor
from console.engine.core import Engine
from console.engine.incidents import NoteIncident, OpenIncident, SetIncidentStatus
from console.model.events import Actor, NewEvent
from console.store import open_store
from tests.fixtures.receiver import Receiver
from tests.fixtures.waiting import until

CHANGES = 50
ROLLBACKS = 10


def config_text(tmp: str) -> str:
    return f"""
store = "sqlite:///{tmp}/bench.db"
[services.checkout]
health_url = "http://127.0.0.1:9/health"
interval = "5s"
[services.checkout-canary]
health_url = "http://127.0.0.1:9/health"
interval = "5s"
[flags.define.checkout_v2]
[rollouts.checkout]
canary = "checkout-canary"
baseline = "checkout"
flag = "checkout_v2"
[[rollouts.checkout.stages]]
name = "10%"
percent = 10
[rollouts.checkout.gate]
criteria = ["error_rate < 1%"]
[notify.chat]
format = "slack"
url_secret = "bench_chat"
"""


async def _opened(engine: Engine) -> list[str]:
    await asyncio.sleep(0.3)  # the leader has followed every change
    return [i.id for i in engine.snapshot.open_incidents]


def figures(name: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    print(f"{name:<28} n={len(ms):<3} p50 {statistics.median(ms):7.1f} ms   "
          f"p95 {ms[int(len(ms) * 0.95) - 1]:7.1f} ms   max {ms[-1]:7.1f} ms")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with Receiver() as chat:
            os.environ["CONN_SECRET_BENCH_CHAT"] = chat.url("/services/T/B/x")
            config = parse_config(config_text(tmp))
            store = await open_store(config.store)
            try:
                async with Engine(config, store, actor=Actor("leader"), retry_leadership=0.1) as leader, \
                        Engine(config, store, actor=Actor("alice"), lead=False, follow=False,
                               sync_flag_file=False) as cli:
                    await until(lambda: leader.role == "leader", within=30, what="leading")
                    declare: list[float] = []
                    start = time.perf_counter()
                    await cli.execute(OpenIncident(title="bench", services=("checkout",), severity="SEV3"))
                    declare.append(time.perf_counter() - start)
                    await chat.wait_for(1, within=10)
                    delivered: list[float] = []
                    for i in range(CHANGES):
                        seen = len(chat.requests)
                        start = time.perf_counter()
                        await cli.execute(NoteIncident(incident="INC-1", text=f"note {i}"))
                        await chat.wait_for(seen + 1, within=10)
                        delivered.append(time.perf_counter() - start)
                    for i in range(CHANGES // 5):
                        start = time.perf_counter()
                        await cli.execute(OpenIncident(title=f"bench {i}", services=("checkout",)))
                        declare.append(time.perf_counter() - start)
                    for incident in (await _opened(leader)):
                        await leader.execute(SetIncidentStatus(incident=incident, status="resolved"))
                    auto: list[float] = []
                    auto_actor = automatic_actor()
                    for run in range(1, ROLLBACKS + 1):
                        known = len(leader.snapshot.incidents)
                        stream = "rollout/checkout"
                        version = await store.stream_version(stream)
                        start = time.perf_counter()
                        await store.append(stream, version, [
                            NewEvent("RolloutStarted", {"rollout": "checkout", "run": run, "stages": ["10%"]}),
                            NewEvent("StageEntered", {"rollout": "checkout", "run": run, "index": 0,
                                                      "name": "10%", "percent": 10.0}),
                            NewEvent("RollbackStarted", {"rollout": "checkout", "run": run, "automatic": True,
                                                         "criterion": "error_rate > 5% for 10s",
                                                         "evidence": {"evidence": "bench"}, "from_index": 0}),
                        ], actor=auto_actor, at=time.time())
                        await until(lambda known=known: len(leader.snapshot.incidents) != known,  # type: ignore[misc]
                                    within=30, what="the incident", step=0.005)
                        auto.append(time.perf_counter() - start)
                        # The next rollback opens its own incident only if this one is closed.
                        for incident in (await _opened(leader)):
                            await leader.execute(SetIncidentStatus(incident=incident, status="resolved"))
            finally:
                await store.close()
    print(f"incidents on SQLite, a leader following its own log, chat on loopback ({os.cpu_count()} cores)")
    figures("declare (command → event)", declare)
    figures("change → chat message", delivered)
    figures("auto rollback → incident", auto)


if __name__ == "__main__":
    asyncio.run(main())
