"""The tests' one polling helper: it returns when the condition holds and fails loudly when not."""

from __future__ import annotations

import pytest

from tests.fixtures.waiting import until


async def test_returns_at_once_when_the_condition_already_holds() -> None:
    assert await until(lambda: True, within=1, what="nothing") < 0.05


async def test_polls_a_plain_or_an_async_predicate() -> None:
    calls: list[int] = []

    def third_time() -> bool:
        calls.append(1)
        return len(calls) >= 3

    await until(third_time, within=2, what="the third call", step=0.01)
    assert len(calls) == 3

    async def ready() -> bool:
        return len(calls) >= 3

    await until(ready, within=1, what="an async check")


async def test_fails_naming_what_never_happened() -> None:
    with pytest.raises(AssertionError, match=r"^not within 0\.1s: the leader takes over$"):
        await until(lambda: False, within=0.1, what="the leader takes over", step=0.02)


async def test_pauses_with_the_given_function() -> None:
    slept: list[float] = []

    async def pause(seconds: float) -> None:
        slept.append(seconds)

    flips = iter([False, False, True])
    await until(lambda: next(flips), within=1, what="flip", step=0.25, pause=pause)
    assert slept == [0.25, 0.25]
