"""Helpers shared by the caclient.asyncio tests: run a coroutine with a bound, wait on the loop, restore IOC values."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from compat_support import restored

from caclient.testing import IOCHandle

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


#: The session IOCs' PVs the asyncio tests write (other tests expect their initial values).
WRITTEN = ("ao", "long", "str", "enum", "wf")


@pytest.fixture(autouse=True)
def _restore_written_values(request: pytest.FixtureRequest) -> Iterator[None]:
    """Put back the values a test using the session ``ioc`` fixture wrote (import it into the test module)."""
    if "ioc" not in request.fixturenames:
        yield
        return
    ioc: IOCHandle = request.getfixturevalue("ioc")
    with restored(ioc, WRITTEN):
        yield
