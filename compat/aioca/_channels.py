"""Channels of compat.aioca: one cache of named channels per event loop, over caclient.asyncio.

Theory of operation
-------------------
aioca keeps one channel per PV name and event loop, created on first use
and kept until :func:`purge_channel_caches`.  Here each loop's
:class:`ChannelCache` owns one :class:`caclient.asyncio.Context` (made on
that loop when its first channel is asked for) and a :class:`Channel` per
name.  A Channel wraps the engine's PV: it tracks the connection state that
``cainfo`` reports (never connected, connected, previously connected,
closed), wakes the coroutines waiting for it, and tells its subscriptions
about disconnections.

Threads: a cache and its channels are used only on their loop's thread.
Connection-state callbacks from the engine are handed to the loop if they
arrive on another thread.  :data:`REGISTRY` (the process's map loop → cache)
is guarded by its ``_lock`` because several loops in several threads may
use compat.aioca at once; no engine call or user code runs under it.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._runtime import RUNTIME
from ._constants import CS_CLOSED, CS_CONN, CS_NEVER_CONN, CS_PREV_CONN
from ._convert import ReadPlan, plan_read

if TYPE_CHECKING:
    from ._monitor import Subscription


def running_loop(what: str) -> asyncio.AbstractEventLoop:
    """The running event loop, or a RuntimeError that says how to get one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"compat.aioca.{what} needs a running asyncio event loop: call it from a coroutine, "
            f"e.g. one started with asyncio.run(main())"
        ) from None


class Channel:
    """One PV name on one event loop: connection state and the subscriptions to notify.

    Attributes
    ----------
    name : str
    pv : caclient.asyncio PV or None
        The engine's PV, once the Context has handed it out.
    """

    def __init__(self, name: str, cache: ChannelCache) -> None:
        self.name = name
        self.pv: Any = None
        self._cache = cache
        self._loop = cache.loop
        self._loop_thread = threading.get_ident()
        self._state = CS_NEVER_CONN
        self._connected = asyncio.Event()
        self._subscriptions: set[Subscription] = set()
        self._host: str | None = None
        self._plans: dict[tuple[Any, ...], ReadPlan] = {}  # read plans for the current connection
        self._starter = self._loop.create_task(self._start())

    async def _start(self) -> None:
        pv = await _get_pv(self._cache.context(), self.name, self._on_state_any_thread)
        self.pv = pv
        if _is_connected(pv) and self._state != CS_CONN:
            self._on_state(pv, "connected")

    # -- connection state ----------------------------------------------------------------------
    def _on_state_any_thread(self, pv: Any, state: str) -> None:
        if threading.get_ident() == self._loop_thread:
            self._on_state(pv, state)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_state, pv, state)

    def _on_state(self, pv: Any, state: str) -> None:
        if self._state == CS_CLOSED:
            return
        self.pv = pv
        connected = state == "connected"
        if connected == (self._state == CS_CONN):
            return
        if connected:
            self._state = CS_CONN
            self._host = None
            self._plans.clear()  # (the native type may have changed)
            self._connected.set()
        else:
            self._state = CS_PREV_CONN
            self._connected.clear()
        for sub in list(self._subscriptions):
            sub._on_connect(connected)

    def connected(self) -> bool:
        """Whether the channel is connected now."""
        return self._state == CS_CONN

    @property
    def state(self) -> int:
        """libca's channel state: 0 never connected, 1 previously connected, 2 connected, 3 closed."""
        return self._state

    async def wait(self) -> None:
        """Wait until the channel is connected (forever, unless cancelled)."""
        await self._connected.wait()

    # -- properties of the connected channel ---------------------------------------------------
    def native(self) -> tuple[int, int]:
        """``(native DBR type, element count)`` of the connected channel."""
        return _native(self.pv)

    def read_plan(self, datatype: Any, format: int) -> ReadPlan:
        """The :class:`ReadPlan` for *datatype* and *format* on the connected channel (kept per connection)."""
        try:
            key = (type(datatype), datatype, format)
            plan = self._plans.get(key)
        except TypeError:  # (an unhashable datatype: plan_read rejects it)
            return plan_read(self.name, *self.native(), datatype, format)
        if plan is None:
            plan = self._plans[key] = plan_read(self.name, *self.native(), datatype, format)
        return plan

    def access(self) -> tuple[bool, bool]:
        """``(read, write)`` access of the channel (both False when not connected)."""
        if self._state != CS_CONN:
            return False, False
        return _access(self.pv)

    def host(self) -> str:
        """``'host:port'`` of the server as libca names it, or ``'<disconnected>'``."""
        if self._state != CS_CONN:
            return "<disconnected>"
        if self._host is not None:
            return self._host
        address = _address(self.pv)
        return "<disconnected>" if address is None else f"{address[0]}:{address[1]}"

    async def resolve_host(self) -> str:
        """:meth:`host`, with the server's address looked up by name (as libca shows it)."""
        if self._state == CS_CONN and self._host is None:
            address = _address(self.pv)
            if address is not None:
                try:
                    host, port = await self._loop.getnameinfo(address, socket.NI_NUMERICSERV)
                except OSError:
                    host, port = address[0], str(address[1])
                if self._state == CS_CONN:
                    self._host = f"{host}:{port}"
        return self.host()

    # -- subscriptions ---------------------------------------------------------------------------
    def add_subscription(self, sub: Subscription) -> None:
        self._subscriptions.add(sub)

    def remove_subscription(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def count_subscriptions(self) -> int:
        """Number of open subscriptions on this channel."""
        return len(self._subscriptions)

    def purge(self) -> None:
        """Close the channel's subscriptions and mark it closed (the cache closes the engine PV)."""
        for sub in list(self._subscriptions):
            sub.close()
        self._state = CS_CLOSED
        self._connected.clear()
        if not self._loop.is_closed():
            self._starter.cancel()


class ChannelCache:
    """The channels of one event loop, over one caclient.asyncio Context."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._channels: dict[str, Channel] = {}
        self._context: Any = None

    def context(self) -> Any:
        """This loop's caclient.asyncio Context (over an engine of its own), made on first use."""
        if self._context is None:
            self._context = _new_context()
        return self._context

    def get_channel(self, name: str) -> Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = Channel(name, self)
        return channel

    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    def purge(self) -> None:
        """Close every channel and subscription and this loop's Context."""
        for channel in self._channels.values():
            channel.purge()
        self._channels.clear()
        ctx, self._context = self._context, None
        if ctx is not None:
            _close_context(ctx)


class _Registry:
    """The process's channel caches, one per event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _caches
        self._caches: dict[asyncio.AbstractEventLoop, ChannelCache] = {}

    def cache(self, what: str) -> ChannelCache:
        """The running loop's cache (made on first use); caches of closed loops are purged."""
        loop = running_loop(what)
        dead: list[ChannelCache] = []
        with self._lock:
            cache = self._caches.get(loop)
            if cache is None:
                dead = [c for lp, c in self._caches.items() if lp.is_closed()]
                for c in dead:
                    del self._caches[c.loop]
                cache = self._caches[loop] = ChannelCache(loop)
        for c in dead:
            c.purge()
        return cache

    def after_fork_in_child(self) -> None:
        """In a forked child: drop the parent's caches without touching them (their engines discard themselves)."""
        self._lock = threading.Lock()
        self._caches = {}

    def reset(self) -> None:
        """compat's one reset (:meth:`compat._runtime.Runtime.reset`): close every loop's channels."""
        self.purge_all()

    def at_exit(self) -> None:
        """compat's one exit hook: close every loop's channels and Contexts."""
        self.purge_all()

    def purge_all(self) -> None:
        """Purge every loop's cache: all channels and subscriptions close."""
        with self._lock:
            caches = list(self._caches.values())
            self._caches.clear()
        for cache in caches:
            cache.purge()


REGISTRY = _Registry()
RUNTIME.attach(REGISTRY)  # compat's one reset, fork and exit hooks cover these caches too


def get_channel(name: str, what: str = "caget()") -> Channel:
    """The running loop's channel for *name*, created (and connecting) on first use."""
    if not isinstance(name, str):
        raise TypeError(f"a PV name must be a str, not {type(name).__name__}")
    return REGISTRY.cache(what).get_channel(name)


# -- the engine adapter: every use of caclient.asyncio's API is below --------------------------------
def _new_context() -> Any:
    # The engine is this cache's own, so that purging can close it at once, from sync code.
    from caclient import Context as Engine
    from caclient.asyncio import Context

    return Context(engine=Engine(), timeout=None)


async def _get_pv(ctx: Any, name: str, on_state: Callable[[Any, str], None]) -> Any:
    (pv,) = await ctx.get_pvs(name, connection_state_callback=on_state)
    return pv


def _is_connected(pv: Any) -> bool:
    return bool(pv.connected)


def _native(pv: Any) -> tuple[int, int]:
    return int(pv.native_data_type), int(pv.native_data_count)


def _access(pv: Any) -> tuple[bool, bool]:
    rights = int(pv.access_rights)
    return bool(rights & 1), bool(rights & 2)


def _address(pv: Any) -> tuple[str, int] | None:
    address = pv.server_address
    return None if address is None else (str(address[0]), int(address[1]))


def _close_context(ctx: Any) -> None:
    ctx.engine.close()


def _map_engine_error(name: str, exc: BaseException, denied: int, function: str) -> BaseException:
    """The aioca error for a caclient error: CANothing with the ECA code, or CAException."""
    from caclient import AccessDeniedError, CATimeoutError, ContextClosedError, DisconnectedError, RemoteError

    from ._constants import ECA_DISCONN, ECA_TIMEOUT
    from ._values import CAException, CANothing

    if isinstance(exc, AccessDeniedError):
        return CAException(denied, function)
    if isinstance(exc, RemoteError):
        return CANothing(name, exc.status)
    if isinstance(exc, CATimeoutError):
        return CANothing(name, ECA_TIMEOUT)
    if isinstance(exc, (DisconnectedError, ContextClosedError)):
        return CANothing(name, ECA_DISCONN)  # (closed: the channels were purged meanwhile)
    return exc


async def engine_read(channel: Channel, dbrcode: int, count: int) -> Any:
    """Read *count* elements (0: the server's choice) as *dbrcode*; caclient's response."""
    from caclient import CAError

    from ._constants import ECA_NORDACCESS

    try:
        return await channel.pv.read(data_type=dbrcode, data_count=count, timeout=None)
    except CAError as exc:
        raise _map_engine_error(channel.name, exc, ECA_NORDACCESS, "ca_array_get_callback") from exc


async def engine_write(channel: Channel, dbrcode: int, data: Any, wait: bool) -> None:
    """Write *data* (already converted) as *dbrcode*; with *wait*, until the server confirms it."""
    from caclient import CAError

    from ._constants import ECA_NOWTACCESS

    function = "ca_array_put_callback" if wait else "ca_array_put"
    try:
        await channel.pv.write(data, wait=wait, data_type=dbrcode, timeout=None)
    except CAError as exc:
        raise _map_engine_error(channel.name, exc, ECA_NOWTACCESS, function) from exc


def engine_subscribe(
    channel: Channel, dbrcode: int, count: int, mask: int, all_updates: bool, callback: Callable[[Any], None]
) -> Any:
    """Subscribe to updates as *dbrcode*; *callback(response)* runs on the loop for each one.

    With *all_updates* the asyncio subscription's inbox is unbounded, as
    aioca's queue is: no update is dropped however far the loop falls behind.
    """
    sub = channel.pv.subscribe(data_type=dbrcode, data_count=count, mask=mask)
    if all_updates:
        sub.queue_size = sys.maxsize
    token = sub.add_callback(lambda _sub, response: callback(response))
    return sub, token


def engine_unsubscribe(handle: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Stop the updates of an :func:`engine_subscribe` handle (in the background)."""
    sub, token = handle
    result = sub.remove_callback(token)
    if asyncio.iscoroutine(result):
        if loop.is_closed():
            result.close()
        else:
            loop.create_task(result)
