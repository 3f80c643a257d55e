"""Task supervision in one place, and one failure policy for every loop.

Engine tasks run until cancelled. A task that ends by itself is a bug to see,
not to hide: the supervisor reports it (the engine then stops trusting itself,
shows why, and gives up leadership). Loops that talk to the outside world
(the prober, Prometheus rounds, history writes) run under
:func:`keep_going`, the one policy for what they raise: an expected failure
(a :class:`~console.errors.ConsoleError`) is reported in words, anything else
is logged with its traceback and reported too — and the loop goes on after a
pause, whichever source it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from console.errors import ConsoleError

log = logging.getLogger(__name__)

Reporter = Callable[[str | None], None]
"""``report(problem)``: a problem in words, or None when the loop works again."""


class Supervisor:
    """Starts named tasks, cancels them together, and reports any that ends on its own.

    Args:
        on_failure: called with the task's name and why, once per task that
            ended without being cancelled.
    """

    def __init__(self, on_failure: Callable[[str, str], None]) -> None:
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=f"engine:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    async def cancel(self, tasks: set[asyncio.Task[None]] | list[asyncio.Task[None]]) -> None:
        """Cancel ``tasks`` and wait until they have stopped (their ends are not failures)."""
        for task in tasks:
            self._tasks.discard(task)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel every task (idempotent)."""
        self._stopping = True
        await self.cancel(list(self._tasks))

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task not in self._tasks or task.cancelled() or self._stopping:
            return
        self._tasks.discard(task)
        name = task.get_name().removeprefix("engine:")
        error = task.exception()
        if error is not None:
            log.error("engine task %s failed", name, exc_info=error)
            why = f"{type(error).__name__}: {error}"
        else:
            log.error("engine task %s ended unexpectedly", name)
            why = "ended unexpectedly"
        self._on_failure(name, why)


async def keep_going(
    name: str,
    step: Callable[[], Awaitable[float]],
    report: Reporter,
    *,
    retry: float = 1.0,
    retry_max: float = 30.0,
) -> None:
    """Run ``step`` forever; it returns the seconds to wait before the next run.

    What ``step`` raises does not end the loop: a ConsoleError is reported in
    its own words; anything else is logged with its traceback (a bug) and
    reported. After a failure the loop waits ``retry`` seconds, doubling up
    to ``retry_max`` while failures continue.
    """
    backoff = retry
    while True:
        try:
            pause = await step()
        except ConsoleError as e:
            report(f"{name}: {e}")
            pause, backoff = backoff, min(backoff * 2, retry_max)
        except Exception as e:  # one policy for every source: shown, logged, retried
            log.exception("%s failed unexpectedly; retrying", name)
            report(f"{name}: internal error ({type(e).__name__}: {e}); retrying")
            pause, backoff = backoff, min(backoff * 2, retry_max)
        else:
            report(None)
            backoff = retry
        await asyncio.sleep(pause)
