"""Helpers shared by the caclient.asyncio tests: run a coroutine with a bound, wait for a condition on the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """``asyncio.run`` with an overall deadline (a hung test fails instead of waiting for pytest-timeout)."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def until(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    """Poll *predicate* on the loop every 10 ms until it holds; AssertionError after *timeout* s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
