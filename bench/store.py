"""How fast the event store is where it matters: appends, catch-up reads, and a race.

    .venv/bin/python bench/store.py                      # a temporary SQLite file
    .venv/bin/python bench/store.py postgresql://u@h/db  # an existing (empty) database

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

from console.errors import ConcurrencyError
from console.model.events import Actor, NewEvent, verify_chain
from console.store import open_store

REPO = Path(__file__).resolve().parents[1]
APPENDS = 300
RACERS = 20
ROUNDS = 5

RACER = """
import asyncio, sys, time
from console.errors import ConcurrencyError
from console.model.events import Actor, NewEvent
from console.store import open_store

async def main(url, me, expected):
    store = await open_store(url)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    try:
        await store.append("rollout/race", int(expected), [NewEvent("stage.advanced")],
                           actor=Actor(me), at=time.time())
        print("won", flush=True)
    except ConcurrencyError:
        print("lost", flush=True)
    await store.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def race(url: str, expected: int) -> tuple[float, int]:
    """Start RACERS processes, release them at once; (seconds until all answered, winners)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    racers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", RACER, url, f"op{n}", str(expected),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )
        for n in range(RACERS)
    ]
    for racer in racers:
        assert racer.stdout is not None
        await racer.stdout.readline()
    started = time.perf_counter()
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write(b"go\n")
    answers = [await r.stdout.readline() for r in racers if r.stdout]
    elapsed = time.perf_counter() - started
    for racer in racers:
        await racer.wait()
    return elapsed, answers.count(b"won\n")


async def main(url: str) -> None:
    store = await open_store(url)
    print(f"store: {store.url}")
    latencies: list[float] = []
    actor = Actor("bench")
    for n in range(APPENDS):
        started = time.perf_counter()
        await store.append(f"flag/f{n % 10}", n // 10, [NewEvent("flag.set", {"n": n})],
                           actor=actor, at=time.time())
        latencies.append(time.perf_counter() - started)
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"append: {APPENDS} sequential, p50 {quantiles[49] * 1000:.2f} ms, "
          f"p99 {quantiles[98] * 1000:.2f} ms")
    started = time.perf_counter()
    log = await store.read_all()
    print(f"read_all: {len(log)} events in {(time.perf_counter() - started) * 1000:.1f} ms; "
          f"chain {'intact' if verify_chain(log) is None else 'BROKEN'}")
    await store.append("rollout/race", 0, [NewEvent("rollout.started")], actor=actor, at=time.time())
    rounds = []
    for expected in range(1, ROUNDS + 1):
        elapsed, winners = await race(url, expected)
        rounds.append(elapsed)
        if winners != 1:
            print(f"race round {expected}: {winners} winners (expected exactly 1)")
    print(f"race: {RACERS} processes, same expected version, {ROUNDS} rounds: "
          f"median {statistics.median(rounds) * 1000:.0f} ms, max {max(rounds) * 1000:.0f} ms "
          "from release to the last answer")
    try:
        await store.append("rollout/race", 0, [NewEvent("late")], actor=actor, at=time.time())
    except ConcurrencyError as e:
        print(f"a loser is told: {e}")
    await store.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            asyncio.run(main(f"sqlite://{scratch}/conn.db"))
