"""Leadership: one holder per store, and a follower takes over when the holder dies.

The holder is killed with SIGKILL, the way an OOM kill or a lost host ends
it: no cleanup code runs, so only the OS (flock) or the database (advisory
lock on a dead session) can hand leadership over.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from console.store import EventStore, open_store, sqlite_path
from tests.fixtures.waiting import until

REPO = Path(__file__).resolve().parents[2]

CANDIDATE = """
import asyncio, sys
from console.store import open_store

async def main(url):
    store = await open_store(url)
    lock = store.leader_lock()
    told = False
    while not await lock.try_acquire():
        if not told:
            print("follower", flush=True)
            told = True
        await asyncio.sleep(0.05)
    print("leader", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1]))
"""


async def start_candidate(url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CANDIDATE, url,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def next_line(process: asyncio.subprocess.Process, within: float) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), within)).decode().strip()


async def test_one_holder_at_a_time_in_one_process(store: EventStore) -> None:
    first, second = store.leader_lock(), store.leader_lock()
    assert not first.held
    assert await first.try_acquire()
    assert await first.try_acquire()  # still ours
    assert first.held
    assert not await second.try_acquire()
    assert not second.held
    await first.release()
    await first.release()  # idempotent
    assert not first.held
    assert await second.try_acquire()
    assert not await first.try_acquire()
    await second.release()


async def test_a_deleted_lock_file_does_not_make_two_leaders(tmp_path: Path) -> None:
    store = await open_store(f"sqlite://{tmp_path / 'conn.db'}")
    try:
        old, new = store.leader_lock(), store.leader_lock()
        assert await old.try_acquire()
        await asyncio.to_thread((tmp_path / "conn.db.lock").unlink)
        assert await new.try_acquire()  # a fresh file at the same path
        assert not await old.try_acquire()  # the old holder notices and steps down
        assert not old.held
        assert new.held
        await new.release()
    finally:
        await store.close()


@pytest.mark.slow
async def test_follower_takes_over_when_the_leader_is_killed(store: EventStore, store_url: str) -> None:
    leader = await start_candidate(store_url)
    follower: asyncio.subprocess.Process | None = None
    killed: float | None = None
    try:
        assert await next_line(leader, 30) == "leader"
        if store_url.startswith("sqlite:"):
            note = await asyncio.to_thread(Path(sqlite_path(store_url) + ".lock").read_text)
            assert note.startswith(f"pid {leader.pid} on ")
        follower = await start_candidate(store_url)
        assert await next_line(follower, 30) == "follower"
        mine = store.leader_lock()
        assert not await mine.try_acquire()  # a third party cannot take it either
        with pytest.raises(TimeoutError):
            await next_line(follower, 0.5)  # still a follower while the leader lives

        leader.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        assert await next_line(follower, 10) == "leader"
        takeover = time.perf_counter() - killed
        assert takeover < 5
        assert not await mine.try_acquire()
        print(f"\n[{store_url.split(':')[0]}] takeover {takeover * 1000:.0f} ms after SIGKILL")
    finally:
        if follower is not None and follower.returncode is None:
            follower.kill()
            await follower.wait()
        # Never signal the killed leader again: Popen.send_signal() polls first,
        # and that poll can reap the child before asyncio's watcher does, which
        # then reports exit code 255.
        if killed is None and leader.returncode is None:
            leader.kill()
        await leader.wait()
    assert leader.returncode == -signal.SIGKILL


async def test_lock_is_free_again_after_the_holder_process_exits(store: EventStore, store_url: str) -> None:
    holder = await start_candidate(store_url)
    try:
        assert await next_line(holder, 30) == "leader"
        lock = store.leader_lock()
        assert not await lock.try_acquire()
        holder.terminate()
        await holder.wait()
        await until(lock.try_acquire, within=5, what="the lock released after its holder exited")
        assert lock.held
        await lock.release()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
