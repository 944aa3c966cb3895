"""The asyncio Context: caproto's asyncio client API over caclient's threaded engine.

Theory of operation
-------------------
An asyncio :class:`Context` belongs to the event loop it was created on and
wraps an engine :class:`caclient.Context` (the *engine*).  The engine's
threads do all the socket I/O, searching, reconnecting and resubscribing;
this layer only turns their completions into futures and loop callbacks,
through one :class:`~caclient.asyncio._bridge.LoopBridge` per Context.

Which engine: by default a Context makes and owns a fresh engine, closed by
:meth:`Context.disconnect` (as caproto's asyncio Context makes a fresh
broadcaster).  ``Context(engine=ctx)`` uses an existing threaded
``caclient.Context`` instead — shared with threads and with asyncio Contexts
on other loops — and never closes it.  ``Context(broadcaster=other.broadcaster)``
shares another asyncio Context's engine the same way (caproto's "several
Contexts sharing one SharedBroadcaster").

Threads: every public method runs on the Context's loop.  Closing an owned
engine joins its threads, so it runs on a short-lived helper thread
(``caclient-asyncio-close``) and is awaited, never blocking the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from .._circuit import Circuit
from .._context import Context as EngineContext
from .._errors import ContextClosedError
from ._bridge import LoopBridge
from ._pv import PV, PV_DEFAULT_TIMEOUT

_NO_LOOP = (
    "caclient.asyncio.Context() must be created inside a coroutine running on an event loop, "
    "e.g. 'async def main(): ctx = Context(); ...' then 'asyncio.run(main())'; "
    "from plain threaded code use caclient.Context instead"
)


class Broadcaster:
    """Searching and server health, as caproto's ``SharedBroadcaster`` offers them.

    Obtained as :attr:`Context.broadcaster`.
    """

    def __init__(self, context: Context) -> None:
        self._context = context

    @property
    def engine(self) -> EngineContext:
        return self._context._engine

    @property
    def results(self) -> Broadcaster:
        """This object again: caproto's asyncio client has ``cancel`` at ``broadcaster.results.cancel``."""
        return self

    def cancel(self, *names: str) -> None:
        """Stop searching for *names* (for every Context sharing this engine)."""
        self.engine.broadcaster.cancel(*names)

    def time_since_last_heard(self) -> dict[tuple[str, int], float]:
        """Map each connected server's ``(host, port)`` to seconds since it last sent anything."""
        now = time.monotonic()
        return {c.address: now - c.last_heard for c in self.engine.circuits if c.ready}


class CircuitManager:
    """A circuit (one server, one priority), as ``pv.circuit_manager`` shows it."""

    def __init__(self, circuit: Circuit) -> None:
        self.circuit = circuit

    def __repr__(self) -> str:
        return f"<CircuitManager {self.circuit!r}>"

    @property
    def address(self) -> tuple[str, int]:
        return self.circuit.address

    @property
    def priority(self) -> int:
        return self.circuit.priority

    @property
    def connected(self) -> bool:
        return self.circuit.ready

    @property
    def server_protocol_version(self) -> int:
        return self.circuit.minor_version

    async def events_off(self) -> None:
        """Ask the server to suspend monitor updates on this circuit (EVENTS_OFF)."""
        self.circuit.events_off()

    async def events_on(self) -> None:
        """Ask the server to resume monitor updates (EVENTS_ON); it sends the latest values first."""
        self.circuit.events_on()


class Context:
    """A Channel Access client for coroutines (caproto's asyncio ``Context`` API).

    Create it inside a coroutine: it belongs to the running event loop.

    Parameters
    ----------
    broadcaster : Broadcaster, optional
        Another asyncio Context's :attr:`broadcaster`: share its engine.
    timeout : float or None
        Default timeout of every operation, in seconds (None: never).
    host_name, client_name : str, optional
        Identity sent to servers (only when this Context makes its engine).
    max_workers : int
        Worker threads of a new engine; asyncio callbacks run on the loop
        whatever this is.
    engine : caclient.Context, optional
        A threaded Context to use (shared, not closed by this one).
    env : mapping, optional
        Where a new engine reads ``EPICS_CA_*`` from (default ``os.environ``).
    encoding : str
        Text encoding of a new engine.

    Raises
    ------
    RuntimeError
        When no event loop is running in this thread.
    """

    def __init__(
        self,
        broadcaster: Broadcaster | None = None,
        *,
        timeout: float | None = 2.0,
        host_name: str | None = None,
        client_name: str | None = None,
        max_workers: int = 1,
        engine: EngineContext | None = None,
        env: Mapping[str, str] | None = None,
        encoding: str = "utf-8",
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(_NO_LOOP) from None
        if broadcaster is not None:
            if not isinstance(broadcaster, Broadcaster):
                raise TypeError("broadcaster must be another caclient.asyncio Context's .broadcaster, or None")
            if engine is not None and engine is not broadcaster.engine:
                raise ValueError("pass either engine= or broadcaster=, not two different engines")
            engine = broadcaster.engine
        self._owns_engine = engine is None
        if engine is None:
            engine = EngineContext(
                timeout=2.0 if timeout is None else timeout,
                host_name=host_name,
                client_name=client_name,
                max_workers=max_workers,
                env=env,
                encoding=encoding,
            )
        self._engine = engine
        self.timeout = timeout
        self._bridge = LoopBridge(loop)
        self._pvs: dict[tuple[str, int], PV] = {}
        self._circuit_managers: weakref.WeakKeyDictionary[Circuit, CircuitManager] = weakref.WeakKeyDictionary()
        self._closed = False
        self.broadcaster = Broadcaster(self)

    # -- introspection -----------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this Context belongs to."""
        return self._bridge.loop

    @property
    def engine(self) -> EngineContext:
        """The threaded engine underneath (usable from threads too)."""
        return self._engine

    @property
    def encoding(self) -> str:
        return self._engine.encoding

    @property
    def host_name(self) -> str:
        return self._engine.host_name

    @property
    def client_name(self) -> str:
        return self._engine.client_name

    @property
    def circuit_managers(self) -> dict[tuple[tuple[str, int], int], CircuitManager]:
        """The open circuits by ``((host, port), priority)``."""
        return {(c.address, c.priority): self._circuit_manager(c) for c in self._engine.circuits}

    @property
    def pvs(self) -> dict[tuple[str, int], PV]:
        """This Context's PVs by ``(name, priority)``."""
        return dict(self._pvs)

    def __repr__(self) -> str:
        pvs = list(self._pvs.values())
        idle = sum(1 for pv in pvs if pv.state == "idle")
        closed = " closed" if self._closed else ""
        return f"<Context circuits={len(self._engine.circuits)} pvs={len(pvs)} idle={idle}{closed}>"

    def _circuit_manager(self, circuit: Circuit) -> CircuitManager:
        cm = self._circuit_managers.get(circuit)
        if cm is None:
            cm = self._circuit_managers[circuit] = CircuitManager(circuit)
        return cm

    def _next_id(self) -> int:
        return self._engine._next_id()

    # -- PVs -----------------------------------------------------------------------------
    async def get_pvs(
        self,
        *names: str,
        priority: int = 0,
        connection_state_callback: Callable[..., Any] | None = None,
        access_rights_callback: Callable[..., Any] | None = None,
        timeout: Any = PV_DEFAULT_TIMEOUT,
    ) -> list[PV]:
        """Return a :class:`PV` per name at once; they connect in the background.

        Parameters
        ----------
        *names : str
        priority : int
            0..99; each priority has its own circuit.
        connection_state_callback : callable or coroutine function, optional
            ``f(pv, 'connected' | 'disconnected')`` on the loop; called at once
            for PVs already connected.
        access_rights_callback : callable or coroutine function, optional
            ``f(pv, AccessRights)``; likewise.
        timeout : float or None, optional
            Default timeout of the new PVs' operations (default: the Context's).

        Returns
        -------
        list of PV
        """
        if self._closed:
            raise ContextClosedError("this caclient.asyncio Context is closed")
        engine_pvs = self._engine.get_pvs(*names, priority=priority)
        out = []
        for epv in engine_pvs:
            key = (epv.name, epv.priority)
            pv = self._pvs.get(key)
            if pv is None:
                pv = self._pvs[key] = PV(epv, self, timeout)
            if connection_state_callback is not None:
                pv.connection_state_callback.add_callback(connection_state_callback, run=True)
            if access_rights_callback is not None:
                pv.access_rights_callback.add_callback(access_rights_callback, run=True)
            out.append(pv)
        return out

    # -- closing ---------------------------------------------------------------------------
    async def disconnect(self) -> None:
        """Stop every subscription and callback of this Context; close its engine if it owns one.

        Idempotent.  Awaiting it never blocks the loop: the engine's threads
        are joined on a helper thread.
        """
        if self._closed:
            return
        self._closed = True
        for pv in self._pvs.values():
            pv._detach()
        self._bridge.cancel_tasks()
        if not self._owns_engine:
            return
        loop = self._bridge.loop
        done: asyncio.Future[None] = loop.create_future()
        engine = self._engine

        def close() -> None:
            try:
                engine.close()
            finally:
                try:
                    loop.call_soon_threadsafe(_set_done, done)
                except RuntimeError:
                    pass  # the loop is gone; nobody waits

        threading.Thread(target=close, name="caclient-asyncio-close", daemon=True).start()
        await asyncio.shield(done)

    async def close(self) -> None:
        """The same as :meth:`disconnect`."""
        await self.disconnect()

    async def __aenter__(self) -> Context:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
