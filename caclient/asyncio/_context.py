"""The asyncio Context: caproto's asyncio client API over caclient's threaded engine.

Theory of operation
-------------------
An asyncio :class:`Context` belongs to the event loop it was created on and
wraps an engine :class:`caclient.Context` (the *engine*).  The engine's
threads do all the socket I/O, searching, reconnecting and resubscribing;
this layer only turns their completions into futures and loop callbacks,
through one :class:`~caclient.asyncio._bridge.LoopBridge` per Context.

Which engine: an engine is held by a :class:`SharedBroadcaster` (caproto's
name for what several Contexts share).  By default a Context makes its own
broadcaster, with a fresh engine, and closes it in :meth:`Context.disconnect`
(as caproto's asyncio Context makes a fresh broadcaster).
``Context(broadcaster=b)`` shares *b* (another Context's ``.broadcaster``, or
a ``SharedBroadcaster()``) and leaves it open.  ``Context(engine=ctx)`` wraps
an existing threaded ``caclient.Context`` — shared with threads and with
asyncio Contexts on other loops — which is never closed by this layer.

Threads: every public method runs on the Context's loop.  Closing an owned
engine joins its threads, so it runs on a short-lived helper thread
(``caclient-asyncio-close``) and is awaited, never blocking the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
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


class SharedBroadcaster:
    """An engine shared by asyncio Contexts: searching and server health, as caproto's ``SharedBroadcaster``.

    ``Context()`` makes one for itself (and closes it with the Context);
    ``Context(broadcaster=SharedBroadcaster())`` or
    ``Context(broadcaster=other.broadcaster)`` shares one between Contexts,
    on one loop or several.  It wraps a threaded :class:`caclient.Context`
    (the engine), made here unless *engine* is given.

    Parameters
    ----------
    registration_retry_time : float
        Accepted for caproto; the engine registers with the repeater itself.
    engine : caclient.Context, optional
        Use this threaded Context (never closed here) instead of making one.
    timeout, host_name, client_name, max_workers, env, encoding
        For the engine made here (see :class:`caclient.Context`).
    """

    def __init__(
        self,
        *,
        registration_retry_time: float = 10.0,
        engine: EngineContext | None = None,
        timeout: float | None = 2.0,
        host_name: str | None = None,
        client_name: str | None = None,
        max_workers: int = 1,
        env: Mapping[str, str] | None = None,
        encoding: str = "utf-8",
    ) -> None:
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
        self.engine = engine

    def __repr__(self) -> str:
        return f"<SharedBroadcaster engine={self.engine!r}>"

    @property
    def results(self) -> SharedBroadcaster:
        """The broadcaster itself (caproto's asyncio client has ``cancel`` at ``broadcaster.results.cancel``)."""
        return self

    def cancel(self, *names: str) -> None:
        """Stop searching for *names* (for every Context sharing this broadcaster)."""
        self.engine.broadcaster.cancel(*names)

    def time_since_last_heard(self) -> dict[tuple[str, int], float]:
        """Map each connected server's ``(host, port)`` to seconds since it last sent anything."""
        now = time.monotonic()
        return {c.address: now - c.last_heard for c in self.engine.circuits if c.ready}

    async def disconnect(self) -> None:
        """Close the engine if this broadcaster made it (idempotent; never blocks the loop).

        Closing joins the engine's threads, so it runs on a short-lived helper
        thread (``caclient-asyncio-close``) that this coroutine awaits.
        """
        if not self._owns_engine or self.engine._closed:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        engine = self.engine

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


#: caproto's name for the object behind ``pv.circuit_manager``.
VirtualCircuitManager = CircuitManager


class Context:
    """A Channel Access client for coroutines (caproto's asyncio ``Context`` API).

    Create it inside a coroutine: it belongs to the running event loop.

    Parameters
    ----------
    broadcaster : SharedBroadcaster, optional
        Share this engine (e.g. another Context's ``broadcaster``); by
        default the Context makes its own and closes it when it closes.
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
        broadcaster: SharedBroadcaster | None = None,
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
            if not isinstance(broadcaster, SharedBroadcaster):
                raise TypeError("broadcaster must be a caclient.asyncio SharedBroadcaster (or another Context's)")
            if engine is not None and engine is not broadcaster.engine:
                raise ValueError("pass either engine= or broadcaster=, not two different engines")
        self._owns_broadcaster = broadcaster is None
        if broadcaster is None:
            broadcaster = SharedBroadcaster(
                engine=engine,
                timeout=timeout,
                host_name=host_name,
                client_name=client_name,
                max_workers=max_workers,
                env=env,
                encoding=encoding,
            )
        self.broadcaster = broadcaster
        self._engine = broadcaster.engine
        # The loop never writes a socket: its sends are queued for the circuit threads.
        self._loop_thread = threading.get_ident()
        self._engine._add_queue_only_thread(self._loop_thread)
        self.timeout = timeout
        self._bridge = LoopBridge(loop)
        self._pvs: dict[tuple[str, int], PV] = {}
        self._circuit_managers: weakref.WeakKeyDictionary[Circuit, CircuitManager] = weakref.WeakKeyDictionary()
        self._closed = False
        # Futures of coroutines waiting for a connection: released at disconnect().
        self._connection_waits: set[asyncio.Future[None]] = set()

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

    def _check_loop(self) -> None:
        """Refuse use from another event loop (its futures would belong to the wrong loop)."""
        if asyncio.get_running_loop() is not self._bridge.loop:
            raise RuntimeError(
                "this caclient.asyncio Context belongs to another event loop; make one Context per loop "
                "(they can share an engine: Context(broadcaster=other.broadcaster) or Context(engine=...))"
            )

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
        self._check_loop()
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

    async def monitor(self, *pv_names: str, context: Any = None, data_type: Any = "time") -> AsyncIterator[Any]:
        """Monitor *pv_names*, yielding events as they happen (caproto's ``Context.monitor``).

        Yields ``('connection', pv, 'connected' | 'disconnected')`` and
        ``('subscription', sub, response)``.  Leaving the ``async for``
        removes the callbacks it added.

        Parameters
        ----------
        *pv_names : str
        context : None
            Accepted for caproto; unused.
        data_type : str
            The subscriptions' data type (default ``'time'``).
        """
        queue: asyncio.Queue[tuple[str, Any, Any]] = asyncio.Queue()

        def on_update(sub: Any, response: Any) -> None:
            queue.put_nowait(("subscription", sub, response))

        def on_state(pv: Any, state: str) -> None:
            queue.put_nowait(("connection", pv, state))

        pvs = await self.get_pvs(*pv_names, connection_state_callback=on_state)
        added = []
        for pv in pvs:
            sub = pv.subscribe(data_type=data_type)
            added.append((pv, sub, sub.add_callback(on_update)))
        try:
            while True:
                yield await queue.get()
        finally:
            for pv, sub, token in added:
                await sub.remove_callback(token)
                pv.connection_state_callback.remove_callback_func(on_state)

    # -- closing ---------------------------------------------------------------------------
    async def disconnect(self) -> None:
        """Stop every subscription and callback of this Context; close its broadcaster if it made it.

        Idempotent.  Awaiting it never blocks the loop (see
        :meth:`SharedBroadcaster.disconnect`).  A shared broadcaster (and
        an engine passed as ``engine=``) stays open.
        """
        if self._closed:
            return
        self._closed = True
        for future in list(self._connection_waits):
            if not future.done():
                future.set_result(None)  # the waiter wakes up, sees the Context closed and raises
        for pv in self._pvs.values():
            pv._detach()
        self._engine._remove_queue_only_thread(self._loop_thread)
        self._bridge.cancel_tasks()
        if self._owns_broadcaster:
            await self.broadcaster.disconnect()

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
