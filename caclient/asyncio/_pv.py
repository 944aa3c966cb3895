"""asyncio PVs: awaitable connect, read and write on an engine PV.

Theory of operation
-------------------
An asyncio :class:`PV` wraps one engine :class:`caclient.PV`; the engine
owns the channel, its connection state machine and the circuit.  Nothing here
touches a socket: requests are queued with the circuit's non-blocking
``send`` and replies are matched by the circuit thread as for threaded
callers.

An awaited operation owns its engine :class:`~caclient._sync.Pending`.  The
circuit thread completes it and calls ``Pending.notify``, which posts the
settling of an ``asyncio.Future`` to the loop's bridge (one wake-up per
burst, see :mod:`caclient.asyncio._bridge`).  If the await is cancelled
(``task.cancel()``, ``asyncio.wait_for``) or times out, the operation is
removed from the circuit's table (``Circuit.cancel_io``): a late reply is
dropped, and the PV stays usable.

Waiting for a connection uses the engine PV's connection waiters: a waiter
whose ``put`` posts to the loop instead of storing (:class:`_LoopWaiter`).

Threads: every method here runs on the loop's thread; ``_settle`` and
``_LoopWaiter.put``'s effect are posted there from the circuit thread.

Engine surface this layer relies on (keep it when the engine changes):
``Pending.notify``; ``PV._circuit``, ``_sid``, ``_wake_if_idle``,
``_notify_when_connected``, ``_forget_waiter``; ``Context._next_id``;
``Circuit.add_io``, ``cancel_io``, ``send``, ``minor_version``;
``_requests.resolve_type`` / ``encode`` / ``read_result`` / ``write_result``; and
``Subscription._add_sink`` / ``_remove_sink`` (the circuit thread hands each
monitor update to the asyncio subscription, see ``_subscription``).
"""

from __future__ import annotations

import asyncio
import functools
import queue
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _proto
from .._circuit import Circuit
from .._dbr import AccessRights
from .._errors import AccessDeniedError, CAError, CATimeoutError, ContextClosedError, DisconnectedError
from .._pv import PV as EnginePV
from .._requests import encode, read_request, read_result, write_result
from .._response import ReadResponse, WriteResponse
from .._sync import Pending
from ._bridge import LoopBridge, call_user
from ._subscription import Subscription

if TYPE_CHECKING:
    from ._context import CircuitManager, Context


class _Default:
    """The type of :data:`PV_DEFAULT_TIMEOUT` (use the PV's, then the Context's, timeout)."""

    def __repr__(self) -> str:
        return "PV_DEFAULT_TIMEOUT"


#: Default of every ``timeout`` argument: the PV's timeout, which falls back
#: to the Context's.  ``timeout=None`` waits forever (as in caproto).
PV_DEFAULT_TIMEOUT: Any = _Default()


class _Expired(Exception):
    """A deadline set by this module passed (told apart from the user's cancellation)."""


class _LoopWaiter(queue.SimpleQueue):  # type: ignore[type-arg]
    """A connection waiter for the engine PV: ``put`` (circuit thread) settles a future on the loop."""

    def __init__(self, bridge: LoopBridge, future: asyncio.Future[None]) -> None:
        super().__init__()
        self._bridge = bridge
        self._future = future

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._bridge.post(_set_none, self._future)


def _set_none(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _settle(future: asyncio.Future[Pending], pending: Pending) -> None:
    # The notify partial holds the future, which is about to hold the
    # pending: drop the partial, or the cycle future -> pending -> notify ->
    # future keeps the reply (8 MB for a 1M-double read) alive until the
    # cyclic collector runs, and every read then faults in fresh memory.
    pending.notify = None
    if not future.done():
        future.set_result(pending)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(_Expired())


async def _until(future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop, deadline: float | None) -> Any:
    """Await *future*, failing it with _Expired at *deadline* (loop time); None: no limit."""
    if deadline is None:
        return await future
    handle = loop.call_at(deadline, _expire, future)
    try:
        return await future
    finally:
        handle.cancel()


class PV:
    """A process variable, for coroutines.

    Made by :meth:`Context.get_pvs`, never directly; connects in the
    background.  Every method that talks to the server is a coroutine.

    Attributes
    ----------
    name : str
    priority : int
    context : Context
    """

    def __init__(self, engine: EnginePV, context: Context, timeout: Any) -> None:
        self._engine = engine
        self.context = context
        self._bridge = context._bridge
        self._timeout = timeout
        self._subscriptions: dict[tuple[Any, ...], Subscription] = {}
        self.connection_state_callback = _LoopCallbacks(self, engine.connection_state_callback)
        self.access_rights_callback = _LoopCallbacks(self, engine.access_rights_callback)

    # -- introspection ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def priority(self) -> int:
        return self._engine.priority

    @property
    def engine_pv(self) -> EnginePV:
        """The threaded engine's PV underneath (usable from threads)."""
        return self._engine

    def __repr__(self) -> str:
        return repr(self._engine)

    @property
    def timeout(self) -> float | None:
        """The default timeout of this PV's operations (its own if set, else the Context's)."""
        return self.context.timeout if self._timeout is PV_DEFAULT_TIMEOUT else self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._timeout = value

    @property
    def connected(self) -> bool:
        return self._engine.connected

    @property
    def state(self) -> str:
        return self._engine.state

    @property
    def access_rights(self) -> AccessRights:
        return self._engine.access_rights

    @property
    def native_data_type(self) -> Any:
        return self._engine.native_data_type

    @property
    def native_data_count(self) -> int | None:
        return self._engine.native_data_count

    @property
    def server_address(self) -> tuple[str, int] | None:
        return self._engine.server_address

    @property
    def circuit_manager(self) -> CircuitManager | None:
        """The circuit the channel is on (``await pv.circuit_manager.events_off()``), or None."""
        circuit = self._engine.circuit_manager
        if circuit is None:
            return None
        return self.context._circuit_manager(circuit)

    def time_since_last_heard(self, timeout: Any = PV_DEFAULT_TIMEOUT) -> float | None:
        """Seconds since the channel's server last sent anything (None when not connected)."""
        return self._engine.time_since_last_heard()

    # -- connection --------------------------------------------------------------------
    def _resolve(self, timeout: Any) -> float | None:
        if timeout is PV_DEFAULT_TIMEOUT:
            return self.timeout
        return None if timeout is None else float(timeout)

    def _deadline(self, timeout: float | None) -> float | None:
        return None if timeout is None else self._bridge.loop.time() + timeout

    async def wait_for_connection(self, *, timeout: Any = PV_DEFAULT_TIMEOUT) -> None:
        """Wait until connected.

        Parameters
        ----------
        timeout : float or None
            Seconds (default: the PV's timeout); None waits forever.

        Raises
        ------
        CATimeoutError
        """
        t = self._resolve(timeout)
        await self._connected(self._deadline(t), t)

    async def wait_for_search(self, *, timeout: Any = PV_DEFAULT_TIMEOUT) -> None:
        """Wait until a server answered the search (kept for caproto; waits for the connection)."""
        await self.wait_for_connection(timeout=timeout)

    async def _connected(self, deadline: float | None, timeout: float | None) -> tuple[Circuit, int]:
        pv = self._engine
        self.context._check_loop()
        while True:
            if self.context._closed or self.context._engine._closed:
                raise ContextClosedError(f"{pv.name}: the Context (or its engine) is closed", pv=pv.name)
            if pv.connected:
                circuit, sid = pv._circuit, pv._sid
                if circuit is not None and sid is not None:
                    return circuit, sid
            loop = self._bridge.loop
            future: asyncio.Future[None] = loop.create_future()
            waiter = _LoopWaiter(self._bridge, future)
            pv._wake_if_idle()
            pv._notify_when_connected(waiter)
            waiting = self.context._connection_waits
            waiting.add(future)
            try:
                await _until(future, loop, deadline)
            except _Expired:
                state = pv.state
                where = "no server answered the search" if state == "searching" else f"still {state}"
                raise CATimeoutError(f"{pv.name}: not connected within {timeout}s ({where})", pv=pv.name) from None
            finally:
                waiting.discard(future)
                pv._forget_waiter(waiter)

    async def go_idle(self) -> None:
        """Release the channel until next use (declined while subscriptions have consumers)."""
        self._engine.go_idle()

    # -- read and write --------------------------------------------------------------------
    async def read(
        self,
        *,
        wait: bool = True,
        callback: Callable[[Any], Any] | None = None,
        timeout: Any = PV_DEFAULT_TIMEOUT,
        data_type: Any = None,
        data_count: int | None = None,
        notify: bool = True,
    ) -> ReadResponse | None:
        """Read the value.

        Parameters
        ----------
        wait : bool
            Await the reply and return it (default).  With False, return None
            once the request is sent; *callback* gets the response.
        callback : callable or coroutine function, optional
            ``callback(response)``, run on the loop (the exception instead if
            the read fails or times out).
        timeout : float or None
            Seconds for connecting plus the round trip (default: the PV's
            timeout); None waits forever.
        data_type : {'native', 'status', 'time', 'graphic', 'control'}, caclient.ChannelType or int
        data_count : int, optional
        notify : bool
            Kept for caproto; reads always use READ_NOTIFY.

        Returns
        -------
        caclient.ReadResponse or None

        Raises
        ------
        CATimeoutError, DisconnectedError, AccessDeniedError, RemoteError
        """
        t = self._resolve(timeout)
        deadline = self._deadline(t)
        circuit, sid = await self._connected(deadline, t)
        pv = self._engine
        dtype, count = read_request(pv, circuit, data_type, data_count)
        encoding = self.context.encoding
        name = pv.name
        result = await self._transact(
            circuit,
            (lambda ioid: (_proto.read_notify(dtype, count, sid, ioid),)),
            (lambda raw: read_result(name, raw, encoding, circuit)),
            wait,
            callback,
            deadline,
            f"read timed out after {t}s",
        )
        return result  # type: ignore[no-any-return]

    async def write(
        self,
        data: Any,
        *,
        wait: bool = True,
        callback: Callable[[Any], Any] | None = None,
        timeout: Any = PV_DEFAULT_TIMEOUT,
        notify: bool | None = None,
        data_type: Any = None,
        data_count: int | None = None,
    ) -> WriteResponse | None:
        """Write a value.

        Parameters
        ----------
        data : number, str, bytes, sequence or numpy array
        wait : bool
            Await the server's confirmation (WRITE_NOTIFY) and return it.
        callback : callable or coroutine function, optional
            ``callback(response)`` on the loop when the write completes (the
            exception instead if it fails).
        timeout : float or None
            Seconds for connecting plus completion (default: the PV's
            timeout); None waits forever.
        notify : bool, optional
            Use WRITE_NOTIFY; default ``wait or callback is not None``.
        data_type, data_count : optional
            As for :meth:`caclient.PV.write`.

        Returns
        -------
        caclient.WriteResponse or None

        Raises
        ------
        TypeError, ValueError
            The value does not fit the channel (raised before anything is sent).
        CATimeoutError, DisconnectedError, AccessDeniedError, RemoteError
        """
        if notify is None:
            notify = wait or callback is not None
        elif not notify and (wait or callback is not None):
            raise ValueError("wait=True or a callback needs notify=True (WRITE_NOTIFY)")
        t = self._resolve(timeout)
        deadline = self._deadline(t)
        circuit, sid = await self._connected(deadline, t)
        pv = self._engine
        if not pv.access_rights & AccessRights.WRITE:
            raise AccessDeniedError(f"{pv.name}: no write access", pv=pv.name, address=circuit.address)
        dtype, payload, count = encode(pv, data, data_type, data_count)
        if not notify:
            circuit.send(*_proto.write_chunks(_proto.WRITE, dtype, count, sid, self.context._next_id(), payload))
            return None
        name = pv.name
        result = await self._transact(
            circuit,
            (lambda ioid: _proto.write_chunks(_proto.WRITE_NOTIFY, dtype, count, sid, ioid, payload)),
            (lambda raw: write_result(name, raw, circuit)),
            wait,
            callback,
            deadline,
            f"write not confirmed within {t}s",
        )
        return result  # type: ignore[no-any-return]

    async def _transact(
        self,
        circuit: Circuit,
        request: Callable[[int], tuple[bytes | memoryview, ...]],
        convert: Callable[[Any], Any],
        wait: bool,
        callback: Callable[[Any], Any] | None,
        deadline: float | None,
        late: str,
    ) -> Any:
        """Send one request that gets a reply and await it (see module docstring)."""
        pv = self._engine
        bridge = self._bridge
        loop = bridge.loop
        future: asyncio.Future[Pending] = loop.create_future()
        pending = Pending(None, pv, pv.name)
        pending.notify = functools.partial(bridge.post, _settle, future)
        ioid = self.context._next_id()
        circuit.add_io(ioid, pending)
        try:
            circuit.send(*request(ioid))
        except DisconnectedError:
            circuit.cancel_io(ioid)
            raise
        if not wait:
            handle = loop.call_at(deadline, _expire, future) if deadline is not None else None
            future.add_done_callback(lambda f: self._completed_later(f, circuit, ioid, convert, callback, handle, late))
            return None
        try:
            done = await _until(future, loop, deadline)
        except _Expired:
            circuit.cancel_io(ioid)
            raise CATimeoutError(f"{pv.name}: {late}", pv=pv.name, address=circuit.address) from None
        except asyncio.CancelledError:
            circuit.cancel_io(ioid)  # the late reply will be dropped
            raise
        try:
            result = _outcome(done, convert)
        except CAError as exc:
            if callback is not None:
                call_user(callback, (exc,), pv.name, bridge)
            raise
        if callback is not None:
            call_user(callback, (result,), pv.name, bridge)
        return result

    def _completed_later(
        self,
        future: asyncio.Future[Pending],
        circuit: Circuit,
        ioid: int,
        convert: Callable[[Any], Any],
        callback: Callable[[Any], Any] | None,
        handle: asyncio.TimerHandle | None,
        late: str,
    ) -> None:
        # Loop thread: a wait=False operation finished, failed or timed out.
        if handle is not None:
            handle.cancel()
        name = self._engine.name
        result: Any
        if future.cancelled():
            circuit.cancel_io(ioid)
            return
        exc = future.exception()
        if isinstance(exc, _Expired):
            circuit.cancel_io(ioid)
            result = CATimeoutError(f"{name}: {late}", pv=name, address=circuit.address)
        else:
            try:
                result = _outcome(future.result(), convert)
            except CAError as err:
                result = err
        if callback is not None:
            call_user(callback, (result,), name, self._bridge)

    # -- subscriptions --------------------------------------------------------------------
    def subscribe(
        self,
        data_type: Any = None,
        data_count: int | None = None,
        low: float = 0.0,
        high: float = 0.0,
        to: float = 0.0,
        mask: int | None = None,
    ) -> Subscription:
        """Return a :class:`Subscription` (the same one for the same arguments).

        Parameters
        ----------
        data_type : optional
            As for :meth:`read` (default native).
        data_count : int, optional
            Elements per update; None for the current length.
        low, high, to : float
            Accepted for caproto; Channel Access deprecated them and they are not sent.
        mask : int, optional
            DBE bits (default DBE_VALUE | DBE_ALARM).
        """
        key = (data_type, data_count, mask)
        sub = self._subscriptions.get(key)
        if sub is None:
            sub = self._subscriptions[key] = Subscription(self, self._engine.subscribe(data_type, data_count, mask))
        return sub

    async def unsubscribe_all(self) -> None:
        """Clear every subscription of this PV."""
        for sub in list(self._subscriptions.values()):
            await sub.clear()

    def _detach(self) -> None:
        for sub in self._subscriptions.values():
            sub._detach()
        self.connection_state_callback._detach()
        self.access_rights_callback._detach()


def _outcome(pending: Pending, convert: Callable[[Any], Any]) -> Any:
    if pending.error is not None:
        raise pending.error
    return convert(pending.result)


class _LoopCallbacks:
    """Connection-state or access-rights callbacks of an asyncio PV, run on the loop.

    ``func(pv, state)`` gets the asyncio :class:`PV`; it may be a coroutine
    function.  Each is registered on the engine PV's handler, which runs on a
    dispatcher worker and posts the call to the loop.
    """

    def __init__(self, pv: PV, engine: Any) -> None:
        self._pv = pv
        self._engine = engine
        self._tokens: dict[int, Callable[..., Any]] = {}

    def add_callback(self, func: Callable[..., Any], run: bool = False) -> int:
        """Register *func*; with *run*, also call it now with the current state."""
        pv = self._pv
        bridge = pv._bridge

        def relay(_engine_pv: Any, state: Any) -> None:
            bridge.post(call_user, func, (pv, state), pv.name, bridge)

        token: int = self._engine.add_callback(relay, run=run)
        self._tokens[token] = func
        return token

    def remove_callback(self, token: int) -> None:
        """Remove the callback registered under *token* (unknown tokens are ignored)."""
        self._tokens.pop(token, None)
        self._engine.remove_callback(token)

    def remove_callback_func(self, func: Callable[..., Any]) -> None:
        """Remove every registration of *func*."""
        for token, f in list(self._tokens.items()):
            if f is func:
                self.remove_callback(token)

    def _detach(self) -> None:
        for token in self._tokens:
            self._engine.remove_callback(token)
        self._tokens.clear()
