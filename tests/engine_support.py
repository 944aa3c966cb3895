"""Helpers shared by the engine tests: a Context for a fixture, connected PVs, connection-state queues, waiting."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from caclient import Context


def open_context(env: Mapping[str, str], timeout: float) -> Iterator[Context]:
    """A fixture's body: ``yield from open_context(ioc.env, 5.0)`` gives a Context closed after the test."""
    with Context(env=env, timeout=timeout) as ctx:
        yield ctx


def connected(ctx: Context, name: str) -> Any:
    """The PV *name* of *ctx*, once connected (within the Context's timeout)."""
    (pv,) = ctx.get_pvs(name)
    pv.wait_for_connection()
    return pv


def connection_states(pv: Any) -> queue.Queue[str]:
    """A queue that receives each connection state *pv* reports from now on."""
    states: queue.Queue[str] = queue.Queue()
    pv.connection_state_callback.add_callback(lambda _pv, state: states.put(state))
    return states


def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait until *predicate* holds, polling every 5 ms; AssertionError naming *what* after *timeout* s."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.005)
