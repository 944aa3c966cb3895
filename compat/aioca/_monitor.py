"""camonitor and its Subscription: aioca's monitors over caclient.asyncio subscriptions.

Theory of operation
-------------------
A :class:`Subscription` is created on the caller's loop and starts a task
that waits for the channel, then subscribes through the engine.  Each
update (delivered by caclient.asyncio on the loop) is converted to an
augmented value and queued in ``pending_values``: a deque of one value
(``all_updates=False``: a newer value replaces one not yet handed to the
callback, counted in ``dropped_callbacks``) or unbounded
(``all_updates=True``).  A plain callback is called at once for every
queued value; a coroutine callback is awaited by the subscription's task,
one value at a time, in order.  Which kind the callback is, is learnt from
what its first call returns, as aioca does.

A callback that raises closes its subscription after printing the
traceback to stderr (aioca's behaviour: it stops a storm of repeated
errors).  ``notify_disconnect=True`` queues ``CANothing(name, ECA_DISCONN)``
when the channel disconnects; ``connect_timeout`` reports
``CANothing(name, ECA_TIMEOUT)`` once if the first connection takes longer.

Threads: everything here runs on the subscription's loop; an update that
arrives on another thread is handed to the loop first.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from ._calls import ca_timeout
from ._channels import engine_subscribe, engine_unsubscribe, get_channel, running_loop
from ._constants import DEFAULT_EVENTS, ECA_DISCONN, FORMAT_RAW
from ._convert import plan_read
from ._values import CANothing

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class Subscription:
    """One PV's monitor, as returned by :func:`camonitor`.

    Attributes
    ----------
    name : str
    callback : callable
    state : int
        ``OPENING`` (0) until subscribed, ``OPEN`` (1), ``CLOSED`` (2).
    dropped_callbacks : int
        Updates replaced by a newer one before the callback saw them
        (``all_updates=False`` only).
    all_updates, notify_disconnect : bool
    pending_values : collections.deque
        Updates waiting for the callback.
    channel
        The channel the subscription is on.
    """

    OPENING = 0
    OPEN = 1
    CLOSED = 2

    def __init__(
        self,
        name: str,
        callback: Callable[[Any], Any],
        events: int | None,
        datatype: Any,
        format: int,
        count: int,
        all_updates: bool,
        notify_disconnect: bool,
        connect_timeout: Any,
    ) -> None:
        self._loop = running_loop("camonitor()")
        self._loop_thread = threading.get_ident()
        self.name = name
        self.callback = callback
        self.all_updates = all_updates
        self.notify_disconnect = notify_disconnect
        self.dropped_callbacks = 0
        self.pending_values: deque[Any] = deque(maxlen=None if all_updates else 1)
        self._is_sync: bool | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._engine: Any = None
        if events is None:
            events = DEFAULT_EVENTS[format]
        self.channel = get_channel(name, "camonitor()")
        self.state = self.OPENING
        self._task = self._loop.create_task(self._run(events, datatype, format, count, connect_timeout))

    def __repr__(self) -> str:
        states = {self.OPENING: "opening", self.OPEN: "open", self.CLOSED: "closed"}
        return f"<compat.aioca Subscription {self.name!r} {states[self.state]}>"

    # -- updates ---------------------------------------------------------------------------------------
    def _queue(self, value: Any) -> None:
        if self.pending_values.maxlen and self.pending_values:
            self.dropped_callbacks += 1
        self.pending_values.append(value)

    def _on_response(self, convert: Callable[[Any], Any], response: Any) -> None:
        if threading.get_ident() != self._loop_thread:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._on_response, convert, response)
            return
        if self.state == self.CLOSED:
            return
        try:
            value = convert(response)
        except Exception:
            self.close(sys.exc_info())  # type: ignore[arg-type]
            return
        self._queue(value)
        self._signal()

    def _signal(self) -> None:
        if self.state == self.CLOSED:
            return
        try:
            if self._is_sync:
                while self.pending_values and self.state != self.CLOSED:
                    self.callback(self.pending_values.popleft())
            elif self._wakeup is not None:
                wakeup, self._wakeup = self._wakeup, None
                if not wakeup.done():
                    wakeup.set_result(None)
        except Exception:
            self.close(sys.exc_info())  # type: ignore[arg-type]

    def _on_connect(self, connected: bool) -> None:
        """Called by the channel when its connection comes or goes."""
        if not connected and self.notify_disconnect:
            self._queue(CANothing(self.name, ECA_DISCONN))
            self._signal()

    # -- lifetime ----------------------------------------------------------------------------------------
    def close(self, exc_info: ExcInfo | None = None) -> None:
        """Stop the subscription: no callback runs after this, not even for updates already queued.

        Parameters
        ----------
        exc_info : tuple, optional
            ``sys.exc_info()`` of the error that closes it, printed to stderr.
        """
        if exc_info:
            print(f"Subscription {self.name} callback raised exception", file=sys.stderr)
            traceback.print_exception(*exc_info)
            print(f"Subscription {self.name} closed", file=sys.stderr)
        if self.state == self.OPEN:
            self.channel.remove_subscription(self)
        engine, self._engine = self._engine, None
        if engine is not None:
            engine_unsubscribe(engine, self._loop)
        if not self._loop.is_closed() and self._task is not asyncio.current_task(self._loop):
            self._task.cancel()
        self.state = self.CLOSED

    async def _first_call(self, value: Any) -> None:
        result = self.callback(value)
        self._is_sync = not inspect.isawaitable(result)
        if not self._is_sync:
            await result

    async def _wait_for_channel(self, connect_timeout: Any) -> None:
        try:
            await ca_timeout(self.channel.wait(), self.name, connect_timeout)
        except CANothing as timeout:
            # Reported even without notify_disconnect; the monitor keeps waiting.
            await self._first_call(timeout)
            await self.channel.wait()

    async def _run(self, events: int, datatype: Any, format: int, count: int, connect_timeout: Any) -> None:
        try:
            await self._wait_for_channel(connect_timeout)
            self.state = self.OPEN
            native, element_count = self.channel.native()
            if count < 0:
                count = element_count
            self.channel.add_subscription(self)
            plan = plan_read(self.name, native, element_count, datatype, format)
            convert = plan.convert
            self._engine = engine_subscribe(
                self.channel,
                plan.dbrcode,
                count,
                events,
                self.all_updates,
                lambda response: self._on_response(convert, response),
            )
            while not self._is_sync:
                if not self.pending_values:
                    self._wakeup = self._loop.create_future()
                    await self._wakeup
                    continue
                values = list(self.pending_values)
                self.pending_values.clear()
                for value in values:
                    if self._is_sync is None:
                        await self._first_call(value)
                    else:
                        result = self.callback(value)
                        if not self._is_sync:
                            await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.close(sys.exc_info())  # type: ignore[arg-type]


def camonitor(
    pv: Any,
    callback: Callable[..., Awaitable[None] | None],
    events: int | None = None,
    datatype: Any = None,
    format: int = FORMAT_RAW,
    count: int = 0,
    all_updates: bool = False,
    notify_disconnect: bool = False,
    connect_timeout: Any = None,
) -> Any:
    """Monitor one PV, or a list of PVs; call *callback* with each new value.

    Must be called with an event loop running (it is not a coroutine).

    Parameters
    ----------
    pv : str or list of str
    callback : callable
        ``callback(value)`` for one PV, ``callback(value, index)`` for a
        list; a plain function or a coroutine function.
    events : int, optional
        ``DBE_*`` mask; default DBE_VALUE, plus DBE_ALARM for FORMAT_TIME,
        plus DBE_PROPERTY for FORMAT_CTRL.
    datatype, format, count
        As for :func:`caget`.
    all_updates : bool
        Deliver every update; by default updates arriving while the callback
        is busy are merged into the newest (see ``dropped_callbacks``).
    notify_disconnect : bool
        Call *callback* with ``CANothing(name, ECA_DISCONN)`` on disconnection.
    connect_timeout : float, tuple or None
        Report ``CANothing(name, ECA_TIMEOUT)`` once if the PV has not
        connected by then (even without *notify_disconnect*).

    Returns
    -------
    Subscription or list of Subscription
    """
    args = (events, datatype, format, count, all_updates, notify_disconnect, connect_timeout)
    if isinstance(pv, str):
        return Subscription(pv, callback, *args)
    return [Subscription(name, _indexed(callback, i), *args) for i, name in enumerate(pv)]


def _indexed(callback: Callable[..., Any], index: int) -> Callable[[Any], Any]:
    return lambda value: callback(value, index)
