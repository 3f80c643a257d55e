"""`conn agent`: the engine with no UI, for systemd — it leads when it holds the lock."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from console.cli.common import add_config_option, command_context
from console.engine.core import Engine
from console.engine.journal import Journal

log = logging.getLogger("conn.agent")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "agent", help="the engine headless, for systemd (stops on SIGTERM)"
    )
    add_config_option(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_agent(args))


async def _agent(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with command_context(args) as ctx:
        engine = Engine(ctx.config, ctx.store, clock=ctx.clock, actor=ctx.actor)
        engine.on_role_change(lambda role: log.info("role: %s", role))
        log.info(
            "conn agent on %s (%s): %d services",
            ctx.config_path, ctx.store.url, len(ctx.config.services),
        )
        async with engine:
            watcher = asyncio.ensure_future(_log_changes(engine))
            stopped = asyncio.ensure_future(stop.wait())
            failed = asyncio.ensure_future(engine.failed.wait())
            await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
            for task in (watcher, stopped, failed):
                task.cancel()
            await asyncio.gather(watcher, stopped, failed, return_exceptions=True)
        if engine.failure is not None:
            # Exit non-zero so the service manager restarts a healthy agent.
            log.error("stopping: %s", engine.failure)
            return 1
        log.info("stopped cleanly")
    return 0


async def _log_changes(engine: Engine) -> None:
    """Log health changes, threshold breaches and recoveries (a journal of what the agent saw)."""
    journal = Journal()
    async for snapshot in engine.snapshots():
        for level, line in journal.lines(snapshot, engine.clock.now()):
            log.log(logging.getLevelName(level), "%s", line)
