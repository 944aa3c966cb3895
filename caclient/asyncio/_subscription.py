"""asyncio subscriptions: callbacks on the loop and ``async for`` over updates.

Theory of operation
-------------------
An asyncio :class:`Subscription` sits on one engine
:class:`caclient.Subscription` (shared with anyone else who subscribes to the
same PV with the same arguments on the same engine).  While it has consumers
— callbacks or live iterators — it is a *sink* of the engine subscription
(``_add_sink``): :meth:`Subscription._on_raw` is called on the circuit thread
with each raw update (the engine's ``(data_type, count, status, payload)``
tuple, or a ReadResponse for a large payload or a refusal) as the update is
framed, one PV's in order.  It appends the update to a bounded
per-subscription inbox and, when the subscription is not already waiting
for the loop, posts one drain to the loop's
:class:`~caclient.asyncio._bridge.LoopBridge`.  So an update bound for the
loop crosses one thread (circuit → loop), not two: no engine dispatcher job,
no worker wake-up; the engine's own callbacks on the same subscription still
run on its workers.  The sink does no conversion and runs no user code.

On the loop, :meth:`Subscription._deliver` takes everything in the inbox and,
for each update in order, makes its ReadResponse (on the loop, and only for
updates that are delivered) and: calls every plain callback (``f(sub, response)``
or ``f(response)``), hands it to every live iterator, and queues it for the
coroutine callbacks, which one task per subscription awaits in order.

Bounds (the engine's coalescing rule: the newest value is never lost): the
inbox, each iterator's queue and the coroutine backlog each hold at most
``queue_size`` responses; past that the oldest is dropped and counted in
:attr:`Subscription.dropped` (inbox and coroutine backlog) or
:attr:`SubscriptionIterator.dropped`.  While the loop is behind (the bridge
is ``congested``) an inbox that already holds an update replaces it instead
of growing, and past the bridge's ``high_water`` the same holds for iterator
queues and coroutine backlogs; so memory stays bounded however many
subscriptions there are.

An iterator's ``__anext__`` is a plain method: with updates queued it
returns one at once; otherwise it returns a future that ``_put`` completes
with the next update (or ``_end`` with StopAsyncIteration), so a waiting
consumer costs one future and one task wake-up per update.

Activation: the sink is added (and EVENT_ADD sent) by a posted step, not
inside ``add_callback``, so that subscribing thousands of PVs at once is
spread over several loop passes instead of holding the loop.  When the engine
subscription was already running, its most recent update is queued at that
step unless the circuit thread queued one since (``_last``, which also keeps
the same update from being queued twice).

Threads and locks: ``_lock`` (a leaf lock of its own, so that the circuit
thread filling one subscription and the loop draining another never meet)
guards ``_inbox``, ``_queued``, ``_last`` and ``dropped``.  Everything else
is touched on the loop thread only.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._callbacks import positional_arity
from .._response import ReadResponse
from .._subscription import Subscription as EngineSubscription
from .._subscription import Update
from ._bridge import _await, call_user, is_coroutine_function

if TYPE_CHECKING:
    from ._pv import PV

log = logging.getLogger("caclient.asyncio")

#: Default bound of each per-subscription and per-iterator queue.
QUEUE_SIZE = 100


class _Callback:
    __slots__ = ("func", "nargs", "coro")

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.nargs = positional_arity(func)
        self.coro = is_coroutine_function(func)


class Subscription:
    """A monitor on a PV whose callbacks run on the event loop.

    Made by :meth:`PV.subscribe`, never directly.  Nothing is asked of the
    server until the first callback is added (or iteration starts); the last
    one removed cancels it.

    Callbacks are ``func(sub, response)`` (or ``func(response)``), plain
    functions or coroutine functions.  Plain callbacks run on the loop, in
    order.  Coroutine callbacks run on the loop as one task per
    subscription that awaits them one after the other, update after update,
    so they too see the updates in order.  An exception in either is logged
    (logger ``caclient.asyncio``, with the PV name) and the subscription
    carries on.  Callbacks are held strongly (caproto's asyncio client holds
    them weakly, so a lambda silently disappears there).

    Attributes
    ----------
    pv : PV
    queue_size : int
        Bound of the update queues (see ``dropped``).
    dropped : int
        Updates dropped because the loop or a coroutine callback fell more
        than *queue_size* updates behind (the newest is always kept).
    most_recent_response : caclient.ReadResponse or None
        The last update delivered on the loop; replayed to callbacks and
        iterators added later.
    """

    def __init__(self, pv: PV, engine: EngineSubscription) -> None:
        self.pv = pv
        self._engine = engine
        self._bridge = pv.context._bridge
        self._lock = threading.Lock()
        self._activation_pending = False
        self._callbacks: dict[int, _Callback] = {}
        # Rebuilt on every change (loop thread): what _deliver needs per update.
        self._plain: tuple[tuple[Callable[..., Any], bool], ...] = ()  # (func, takes sub too)
        self._has_coro = False
        self._next_token = 0
        # Weak references, so that an iterator left by ``break`` goes away (its
        # __del__ then tells us); a tuple, rebuilt on change, read per update.
        self._iterators: tuple[weakref.ref[SubscriptionIterator], ...] = ()
        self._attached = False  # (loop thread) our sink is on the engine subscription
        self._sink = self._on_raw  # (bound once: the engine removes it by identity)
        self._encoding = engine.pv.context.encoding
        self.queue_size = QUEUE_SIZE
        self._inbox: deque[Update] = deque()
        self._queued = False
        self._last: Update | None = None  # the last update queued since attaching (guarded by _lock)
        self.dropped = 0
        self.most_recent_response: ReadResponse | None = None
        self._coro_backlog: deque[tuple[ReadResponse, int | None]] = deque()
        self._runner: asyncio.Task[Any] | None = None

    def __repr__(self) -> str:
        state = "active" if self._attached else "idle"
        return (
            f"<Subscription to {self.pv.name!r} data_type={self.data_type!r} {state} "
            f"callbacks={len(self._callbacks)} iterators={len(self._live_iterators())}>"
        )

    @property
    def data_type(self) -> Any:
        return self._engine.data_type

    @property
    def data_count(self) -> int | None:
        return self._engine.data_count

    @property
    def mask(self) -> int:
        return self._engine.mask

    @property
    def callbacks(self) -> dict[int, Callable[..., Any]]:
        """The callbacks by token."""
        return {token: cb.func for token, cb in self._callbacks.items()}

    # -- user API (loop thread) -------------------------------------------------------
    def add_callback(self, func: Callable[..., Any]) -> int:
        """Add a callback and return its token.

        Parameters
        ----------
        func : callable or coroutine function
            ``func(sub, response)`` or ``func(response)``.

        Returns
        -------
        int
            Pass it to :meth:`remove_callback`.
        """
        if not callable(func):
            raise TypeError(f"callback must be callable, not {type(func).__name__}")
        token = self._next_token
        self._next_token += 1
        self._callbacks[token] = _Callback(func)
        self._callbacks_changed()
        if self._attached and self.most_recent_response is not None:
            self._bridge.loop.call_soon(self._replay, token)
        self._activate()
        return token

    async def remove_callback(self, token: int) -> None:
        """Remove a callback; with no callbacks and no iterators left the subscription is cancelled."""
        self._callbacks.pop(token, None)
        self._callbacks_changed()
        self._maybe_idle()

    async def clear(self) -> None:
        """Remove every callback, end every iterator and cancel the subscription."""
        self._callbacks.clear()
        self._callbacks_changed()
        for it in self._live_iterators():
            it._end()
        self._iterators = ()
        self._maybe_idle()

    def __aiter__(self) -> SubscriptionIterator:
        """Iterate over updates: ``async for response in sub``.

        Each iterator has its own queue of at most :attr:`queue_size`
        responses (oldest dropped first, counted in its ``dropped``).
        """
        it = SubscriptionIterator(self, self.queue_size)
        self._iterators = (*self._live_refs(), weakref.ref(it))
        if self._attached and self.most_recent_response is not None:
            it._put(self.most_recent_response)
        self._activate()
        return it

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.clear()

    # -- engine side ----------------------------------------------------------------------
    def _callbacks_changed(self) -> None:
        cbs = self._callbacks.values()
        self._plain = tuple((cb.func, cb.nargs >= 2) for cb in cbs if not cb.coro)
        self._has_coro = any(cb.coro for cb in cbs)

    def _activate(self) -> None:
        # Loop thread: have the engine callback added soon (see module docstring).
        if not self._attached and not self._activation_pending:
            self._activation_pending = True
            self._bridge.post(self._activate_now)

    def _activate_now(self) -> None:
        self._activation_pending = False
        wanted = self._callbacks or self._live_refs()
        if wanted and not self._attached and not self.pv.context._closed:
            self._attached = True
            recent = self._engine._add_sink(self._sink)
            if recent is not None:
                self._on_replayed(recent)

    def _maybe_idle(self) -> None:
        """Loop thread: drop the engine callback once nobody consumes updates."""
        self._iterators = self._live_refs()
        if self._callbacks or self._iterators or not self._attached:
            return
        self._attached = False
        self._engine._remove_sink(self._sink)
        self.most_recent_response = None
        with self._lock:
            self._inbox.clear()
            self._last = None
        self._bridge.held -= len(self._coro_backlog)
        self._coro_backlog.clear()

    def _detach(self) -> None:
        """Loop thread, at Context close: stop receiving; end the iterators."""
        self._callbacks.clear()
        self._callbacks_changed()
        for it in self._live_iterators():
            it._end()
        self._iterators = ()
        self._maybe_idle()

    def _live_refs(self) -> tuple[weakref.ref[SubscriptionIterator], ...]:
        return tuple(r for r in self._iterators if r() is not None)

    def _live_iterators(self) -> list[SubscriptionIterator]:
        return [it for r in self._iterators if (it := r()) is not None]

    def _forget_iterator(self, it: SubscriptionIterator) -> None:
        self._iterators = tuple(r for r in self._iterators if (x := r()) is not None and x is not it)
        self._maybe_idle()

    def _on_raw(self, update: Update) -> None:
        # The sink: the circuit thread, with each update as it arrives (one
        # PV's in order).  Nothing here but queueing: no conversion, no user code.
        bridge = self._bridge
        with self._lock:
            if update is self._last:
                return  # (the replay at attach time queued this one already)
            self._last = update
            inbox = self._inbox
            behind = False
            if inbox and (len(inbox) >= self.queue_size or bridge.congested):
                inbox.popleft()
                self.dropped += 1
                behind = bridge.congested
            inbox.append(update)
            post = not self._queued
            self._queued = True
        if post:
            bridge.post(self._deliver)
        elif behind:
            bridge.throttle(self._engine._circuit)  # (see the bridge's flow control)

    def _on_replayed(self, update: Update) -> None:
        # Loop thread, at attach time: the engine subscription was running
        # already; queue its most recent update unless the circuit thread
        # has queued one since (that one is newer, or the same).
        with self._lock:
            if self._last is not None:
                return
        self._on_raw(update)

    def _deliver(self) -> None:
        # Loop thread: convert what the inbox holds and hand it on.
        with self._lock:
            self._queued = False
            inbox = self._inbox
            if not inbox:
                return
            batch = [inbox.popleft()] if len(inbox) == 1 else list(inbox)
            inbox.clear()
        if not self._attached:
            return  # cancelled meanwhile
        plain = self._plain
        iterators = self._live_iterators() if self._iterators else ()
        encoding = self._encoding
        resp: ReadResponse
        for update in batch:
            if type(update) is tuple:
                resp = ReadResponse(update[0], update[1], update[2], update[3], encoding)
            else:
                resp = update  # type: ignore[assignment]  # (a large update or a refusal: a response already)
            self.most_recent_response = resp
            for func, two in plain:
                try:
                    result = func(self, resp) if two else func(resp)
                except Exception:
                    log.exception("exception in callback %r for %s", func, self.pv.name)
                    continue
                if result is not None and inspect.isawaitable(result):  # (a plain function returning a coroutine)
                    self._bridge.start(_await(result), self.pv.name)
            if self._has_coro:
                self._queue_coroutines(resp, None)
            for it in iterators:
                it._put(resp)
        if not self._callbacks and not iterators:
            self._maybe_idle()  # the last iterator was abandoned (``break``) meanwhile

    def _iterator_gone(self, held: int) -> None:
        # Loop thread: an iterator was dropped with *held* responses queued.
        self._bridge.held -= held
        self._maybe_idle()

    def _replay(self, token: int) -> None:
        # Loop thread: give a callback added to a running subscription the latest value.
        cb = self._callbacks.get(token)
        resp = self.most_recent_response
        if cb is None or resp is None:
            return
        if cb.coro:
            self._queue_coroutines(resp, token)
        else:
            call_user(cb.func, (self, resp) if cb.nargs >= 2 else (resp,), self.pv.name, self._bridge)

    def _queue_coroutines(self, resp: ReadResponse, only: int | None) -> None:
        backlog = self._coro_backlog
        bridge = self._bridge
        if backlog and (len(backlog) >= self.queue_size or bridge.held >= bridge.high_water):
            backlog.popleft()
            with self._lock:
                self.dropped += 1
        else:
            bridge.held += 1
        backlog.append((resp, only))
        if self._runner is None:
            self._runner = self._bridge.start(self._run_coroutines(), self.pv.name)

    async def _run_coroutines(self) -> None:
        # One task per subscription: coroutine callbacks, update after update, in order.
        backlog = self._coro_backlog
        name = self.pv.name
        try:
            while backlog:
                resp, only = backlog.popleft()
                self._bridge.held -= 1
                for token, cb in list(self._callbacks.items()):
                    if not cb.coro or (only is not None and token != only):
                        continue
                    try:
                        await cb.func(*((self, resp) if cb.nargs >= 2 else (resp,)))
                    except Exception:
                        log.exception("exception in coroutine callback %r for %s", cb.func, name)
        finally:
            self._runner = None


async def _ready(resp: ReadResponse) -> ReadResponse:
    """An awaitable of an update already queued (what ``__anext__`` returns then)."""
    return resp


class SubscriptionIterator:
    """What ``async for response in sub`` iterates over (see ``Subscription.__aiter__``).

    Attributes
    ----------
    dropped : int
        Responses dropped from this iterator's queue because the consumer
        fell more than ``queue_size`` behind (the newest is always kept).
    """

    def __init__(self, sub: Subscription, queue_size: int) -> None:
        self._sub = sub
        self._bridge = sub._bridge
        self._queue: deque[ReadResponse] = deque()
        self._size = max(1, queue_size)
        self._loop = sub._bridge.loop
        self._waiter: asyncio.Future[ReadResponse] | None = None
        self._ended = False
        self.dropped = 0

    def __aiter__(self) -> SubscriptionIterator:
        return self

    def __anext__(self) -> Awaitable[ReadResponse]:
        # Not a coroutine function: when the consumer must wait, the awaitable
        # is the future itself, which _put completes with the update (or _end
        # with StopAsyncIteration); no coroutine object per update.
        if self._queue:
            self._bridge.held -= 1
            return _ready(self._queue.popleft())
        if self._ended:
            raise StopAsyncIteration
        waiter = self._waiter = self._loop.create_future()
        return waiter

    async def aclose(self) -> None:
        """Stop iterating (also happens when the iterator is dropped)."""
        self._end()
        self._sub._forget_iterator(self)

    def _put(self, resp: ReadResponse) -> None:
        # Loop thread.
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # (done: the consumer's await was cancelled)
                waiter.set_result(resp)  # the consumer waits: hand it over (the queue is empty)
                return
        queue = self._queue
        bridge = self._bridge
        if queue and (len(queue) >= self._size or bridge.held >= bridge.high_water):
            queue.popleft()
            self.dropped += 1
        else:
            bridge.held += 1
        queue.append(resp)

    def _end(self) -> None:
        self._ended = True
        self._bridge.held -= len(self._queue)
        self._queue.clear()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(StopAsyncIteration())
            waiter.exception()  # (marks it retrieved: no "never retrieved" log if nobody awaits it now)

    def __del__(self) -> None:
        # Abandoned (``break`` out of ``async for``): give back what it held and
        # let the subscription go idle soon if nobody else consumes it.  Any
        # thread; post never blocks.
        if not self._ended:
            try:
                self._bridge.post(self._sub._iterator_gone, len(self._queue))
            except Exception:
                pass
