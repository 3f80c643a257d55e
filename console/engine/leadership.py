"""Leadership terms: take the store's lock, run the leader's duties, give them all up together.

What only the leader does — probing, Prometheus rounds, seeding the config's
flags, recording the signal history, and later gate evaluation and automatic
actions — starts when this process takes the lock and stops when it loses
it. Each term enters its resources and tasks on one
:class:`contextlib.AsyncExitStack`; ending the term closes that stack, so
nothing of a term outlives it.

A term that cannot start (a Prometheus ``ca_bundle`` that does not exist, a
store that refuses the history read) gives the lock back and waits, doubling
from :data:`RETRY_MIN` up to :data:`RETRY_MAX` before it tries again: no
once-a-second flapping that probes and writes a burst each time, while
another healthy process may take the lock meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from console.errors import ConsoleError, StoreError
from console.store.base import LeaderLock

log = logging.getLogger(__name__)

RETRY_MIN, RETRY_MAX = 5.0, 300.0
"""Seconds to wait after a term failed to start (doubling while it keeps failing)."""

TermStarter = Callable[[contextlib.AsyncExitStack], Awaitable[None]]
"""Enters a term's resources and tasks on the stack; raising means the term cannot start."""


class Leadership:
    """Competes for one store's lock and runs a term of duties while it holds it.

    Args:
        lock: the store's leader lock.
        start_term: enters the term's duties on a fresh exit stack.
        on_change: awaited with True when a term has started, False when it ended.
        report: a problem in words (None: resolved), shown by views.
        retry: seconds between attempts to take a free lock.
    """

    def __init__(
        self,
        lock: LeaderLock,
        *,
        start_term: TermStarter,
        on_change: Callable[[bool], Awaitable[None]],
        report: Callable[[str | None], None],
        retry: float = 1.0,
        retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.lock = lock
        self._start_term = start_term
        self._on_change = on_change
        self._report = report
        self._retry = retry
        self._retry_min, self._retry_max = retry_min, retry_max
        self._term: contextlib.AsyncExitStack | None = None
        self.failed_starts = 0
        """Terms that could not start in a row (0 once one starts)."""

    @property
    def leading(self) -> bool:
        return self._term is not None

    async def run(self) -> None:
        """Compete forever (cancel to stop; :meth:`end` then releases what is held)."""
        while True:
            try:
                acquired = await self.lock.try_acquire()
            except StoreError as e:
                log.warning("leadership check failed: %s", e)
                acquired = False
            if acquired and self._term is None:
                if not await self._begin():
                    await self.lock.release()
                    pause = min(self._retry_min * 2 ** (self.failed_starts - 1), self._retry_max)
                    log.info("trying to lead again in %.0fs", pause)
                    await asyncio.sleep(pause)
                    continue
            elif not acquired and self._term is not None:
                await self._end_term()
            await asyncio.sleep(self._retry)

    async def _begin(self) -> bool:
        stack = contextlib.AsyncExitStack()
        try:
            await self._start_term(stack)
        except asyncio.CancelledError:
            await stack.aclose()
            raise
        except Exception as e:
            # Whatever stopped it, nothing of the half-started term stays running.
            await stack.aclose()
            self.failed_starts += 1
            log.error("cannot lead: %s", e, exc_info=not isinstance(e, ConsoleError))
            self._report(f"cannot lead: {e}")
            return False
        self._term = stack
        self.failed_starts = 0
        self._report(None)
        await self._on_change(True)
        return True

    async def _end_term(self) -> None:
        term, self._term = self._term, None
        if term is not None:
            await term.aclose()
            await self._on_change(False)

    async def end(self) -> None:
        """End the term (if any), then release the lock. Call after cancelling :meth:`run`.

        Cancel before release: the term's tasks are stopped first, so nothing
        of this process can re-take the lock after it is given up.
        """
        await self._end_term()
        await self.lock.release()

