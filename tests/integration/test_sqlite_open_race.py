"""Consoles started together on a new SQLite store all open it (none told "database is locked")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

OPEN = """
import asyncio, sys, time
from console.store import open_store
start = float(sys.argv[2])
while time.time() < start:
    pass
async def main():
    store = await open_store(sys.argv[1])
    await store.close()
asyncio.run(main())
print("opened")
"""


def test_processes_opening_a_new_store_at_once_all_open_it(tmp_path: Path) -> None:
    for attempt in range(5):
        url = f"sqlite://{tmp_path / f'new-{attempt}' / 'conn.db'}"
        start = time.time() + 1.0  # every process is started and spinning by then
        processes = [
            subprocess.Popen([sys.executable, "-c", OPEN, url, str(start)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        results = [p.communicate(timeout=60) for p in processes]
        failed = [err for (out, err), p in zip(results, processes, strict=True) if p.returncode != 0]
        assert not failed, failed
        assert all(out.strip() == "opened" for out, _ in results)
