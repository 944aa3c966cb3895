"""The PV: a user's handle on one channel, with its connection state machine.

Theory of operation
-------------------
States: ``idle`` → ``searching`` → ``connecting`` → ``connected``; a lost
channel goes back to ``searching`` (or ``disconnected`` when the Context is
closed).  The UDP thread moves a PV from searching to connecting (via the
Context); its circuit thread moves it to connected and back.  User threads
read and write, waiting on the Context's shared condition with a deadline.

Locks: ``_lock`` guards ``_state``, ``_circuit``, ``_cid``, ``_sid``,
``native_data_type``, ``native_data_count``, ``access_rights`` and
``_subscriptions``; the PV's subscriptions and callback handlers share it
(one lock per PV, not one per object).  Order: Context._lock → PV._lock →
Circuit locks.  Callbacks never run under it: state changes return dispatcher
jobs, and the circuit thread submits them after the lock is released.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

from . import _proto
from ._callbacks import CallbackHandler
from ._dbr import AccessRights, ChannelType
from ._dispatch import Job
from ._errors import (
    AccessDeniedError,
    CATimeoutError,
    DisconnectedError,
)
from ._requests import encode, read_request, read_result, resolve_type, transact, write_result
from ._response import ReadResponse, WriteResponse
from ._subscription import Subscription
from ._sync import Deadline, ensure_not_io_thread

if TYPE_CHECKING:
    from ._circuit import Circuit
    from ._context import Context

IDLE = "idle"
SEARCHING = "searching"
CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"

_DEFAULT_MASK = _proto.DBE_VALUE | _proto.DBE_ALARM


class PV:
    """A process variable: connect, read, write and subscribe.

    Obtained from :meth:`Context.get_pvs`; connects in the background.

    Attributes
    ----------
    name : str
    priority : int
    context : Context
    connected : bool
    access_rights : AccessRights
    native_data_type : ChannelType or None
    native_data_count : int or None
    """

    # Slots and lazily made parts keep a PV small: thousands are common.
    __slots__ = (
        "name",
        "priority",
        "context",
        "_lock",
        "_state",
        "_circuit",
        "_cid",
        "_sid",
        "native_data_type",
        "native_data_count",
        "access_rights",
        "_subscriptions",
        "_waiters",
        "_conn_cbs",
        "_access_cbs",
        "__weakref__",
    )

    def __init__(self, name: str, priority: int, context: Context) -> None:
        self.name = name
        self.priority = priority
        self.context = context
        self._lock = threading.Lock()
        self._state = SEARCHING
        self._circuit: Circuit | None = None
        self._cid: int | None = None
        self._sid: int | None = None
        self.native_data_type: ChannelType | None = None
        self.native_data_count: int | None = None
        self.access_rights = AccessRights.NO_ACCESS
        self._subscriptions: tuple[Subscription, ...] = ()  # (few per PV: a tuple is smaller than a dict)
        self._waiters: list[queue.SimpleQueue[PV]] | None = None
        self._conn_cbs: CallbackHandler | None = None
        self._access_cbs: CallbackHandler | None = None

    @property
    def connection_state_callback(self) -> CallbackHandler:
        """Callbacks ``f(pv, state)``, state ``'connected'`` or ``'disconnected'``."""
        handler = self._conn_cbs
        if handler is None:
            with self._lock:
                if self._conn_cbs is None:
                    self._conn_cbs = CallbackHandler(self, PV._connection_state)
                handler = self._conn_cbs
        return handler

    @property
    def access_rights_callback(self) -> CallbackHandler:
        """Callbacks ``f(pv, access_rights)``."""
        handler = self._access_cbs
        if handler is None:
            with self._lock:
                if self._access_cbs is None:
                    self._access_cbs = CallbackHandler(self, PV._access_state)
                handler = self._access_cbs
        return handler

    # -- introspection -----------------------------------------------------------------
    def __repr__(self) -> str:
        state = self._state
        shown = "searching...." if state == SEARCHING else state
        if state == CONNECTED and self._circuit is not None:
            shown += f" to {self._circuit.address[0]}:{self._circuit.address[1]}"
        return f"<PV name={self.name!r} priority={self.priority} ({shown})>"

    @property
    def connected(self) -> bool:
        """True while the channel is connected."""
        return self._state == CONNECTED

    @property
    def state(self) -> str:
        """One of ``'idle'``, ``'searching'``, ``'connecting'``, ``'connected'``, ``'disconnected'``."""
        return self._state

    @property
    def server_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the server the channel is on, or None."""
        circuit = self._circuit
        return circuit.address if circuit is not None and self.connected else None

    @property
    def circuit_manager(self) -> Circuit | None:
        """The circuit the channel is on (``events_off``/``events_on`` live there)."""
        return self._circuit

    def time_since_last_heard(self) -> float | None:
        """Seconds since the channel's server last sent anything, or None when not connected."""
        circuit = self._circuit
        if circuit is None or not self.connected:
            return None
        return time.monotonic() - circuit.last_heard

    def _link(self) -> tuple[Circuit | None, int | None]:
        """``(circuit, server id)`` of the channel (both None unless connected); read without the lock."""
        if self._state != CONNECTED:
            return None, None
        return self._circuit, self._sid

    def _connection_state(self) -> str | None:
        return CONNECTED if self.connected else None

    def _access_state(self) -> AccessRights | None:
        return self.access_rights if self.connected else None

    # -- waiting ---------------------------------------------------------------------
    def wait_for_search(self, *, timeout: float | None = None) -> None:
        """Block until the PV's server is known (or it is connected)."""
        deadline = Deadline(self._timeout(timeout))
        self._wake_if_idle()
        if not self.context._wait_for(lambda: self._state not in (SEARCHING, IDLE), deadline):
            raise CATimeoutError(f"{self.name}: no server answered the search", pv=self.name)

    def wait_for_connection(self, *, timeout: float | None = None) -> None:
        """Block until connected.

        Raises
        ------
        CATimeoutError
            If the PV is not connected within *timeout* seconds (default: the
            Context's timeout).
        """
        ensure_not_io_thread("PV.wait_for_connection")
        self._wait_connected(Deadline(self._timeout(timeout)))

    def _timeout(self, timeout: float | None) -> float | None:
        return self.context.timeout if timeout is None else timeout

    def _wake_if_idle(self) -> None:
        with self._lock:
            if self._state != IDLE:
                return
            self._state = SEARCHING
        self.context._search([self])

    def _wait_connected(self, deadline: Deadline) -> tuple[Circuit, int]:
        self.context._raise_if_closed(self.name)
        if self._state != CONNECTED:
            self._wake_if_idle()
            if not self.context._wait_for(lambda: self._state == CONNECTED, deadline):
                self.context._raise_if_closed(self.name)
                state = self._state
                where = "no server answered the search" if state == SEARCHING else f"still {state}"
                raise CATimeoutError(f"{self.name}: not connected ({where})", pv=self.name)
        circuit, sid = self._circuit, self._sid
        if circuit is None or sid is None:
            raise DisconnectedError(f"{self.name}: disconnected", pv=self.name)
        return circuit, sid

    # -- read --------------------------------------------------------------------------
    @overload
    def read(
        self,
        *,
        wait: Literal[True] = ...,
        callback: Callable[[Any], None] | None = ...,
        timeout: float | None = ...,
        data_type: Any = ...,
        data_count: int | None = ...,
        notify: bool = ...,
    ) -> ReadResponse: ...

    @overload
    def read(
        self,
        *,
        wait: bool,
        callback: Callable[[Any], None] | None = ...,
        timeout: float | None = ...,
        data_type: Any = ...,
        data_count: int | None = ...,
        notify: bool = ...,
    ) -> ReadResponse | None: ...

    def read(
        self,
        *,
        wait: bool = True,
        callback: Callable[[Any], None] | None = None,
        timeout: float | None = None,
        data_type: Any = None,
        data_count: int | None = None,
        notify: bool = True,
    ) -> ReadResponse | None:
        """Read the value.

        Parameters
        ----------
        wait : bool
            Block until the reply arrives (default).  With ``wait=False`` the
            call returns None at once and *callback* gets the response.
        callback : callable, optional
            ``callback(response)``, run on a callback thread; it gets the
            exception instead if the read fails.
        timeout : float, optional
            Seconds for connecting plus the round trip (default: the
            Context's timeout).
        data_type : {'native', 'status', 'time', 'graphic', 'control'}, ChannelType or int
            What to ask the server for (default native).
        data_count : int, optional
            Number of elements; None or 0 asks for the current length.
        notify : bool
            Kept for caproto compatibility; reads always use READ_NOTIFY.

        Returns
        -------
        ReadResponse or None

        Raises
        ------
        CATimeoutError
            Not connected, or no reply, within *timeout*.
        DisconnectedError
            The channel or its circuit went away meanwhile.
        AccessDeniedError
            No read access.
        RemoteError
            The server refused the read (the ECA code is in ``.status``).
        """
        ensure_not_io_thread("PV.read")
        deadline = Deadline(self._timeout(timeout))
        circuit, sid = self._wait_connected(deadline)
        dtype, count = read_request(self, circuit, data_type, data_count)
        encoding = self.context.encoding
        result = transact(
            self,
            circuit,
            lambda ioid: (_proto.read_notify(dtype, count, sid, ioid),),
            lambda raw: read_result(self.name, raw, encoding, circuit),
            wait,
            callback,
            deadline,
            f"read timed out after {self._timeout(timeout)}s",
        )
        return result  # type: ignore[no-any-return]

    # -- write -------------------------------------------------------------------------
    @overload
    def write(
        self,
        data: Any,
        *,
        wait: Literal[True] = ...,
        callback: Callable[[Any], None] | None = ...,
        timeout: float | None = ...,
        notify: bool | None = ...,
        data_type: Any = ...,
        data_count: int | None = ...,
    ) -> WriteResponse: ...

    @overload
    def write(
        self,
        data: Any,
        *,
        wait: bool,
        callback: Callable[[Any], None] | None = ...,
        timeout: float | None = ...,
        notify: bool | None = ...,
        data_type: Any = ...,
        data_count: int | None = ...,
    ) -> WriteResponse | None: ...

    def write(
        self,
        data: Any,
        *,
        wait: bool = True,
        callback: Callable[[Any], None] | None = None,
        timeout: float | None = None,
        notify: bool | None = None,
        data_type: Any = None,
        data_count: int | None = None,
    ) -> WriteResponse | None:
        """Write a value.

        Parameters
        ----------
        data : number, str, bytes, sequence or numpy array
            The value; a str written to an enum channel selects the state by
            name; a str written to a char array is sent as text.
        wait : bool
            Block until the server reports the write (and any processing it
            started) complete.  Implies ``notify``.
        callback : callable, optional
            ``callback(response)`` when the write completes (or the exception
            if it fails), on a callback thread.  Implies ``notify``.
        timeout : float, optional
            Seconds for connecting plus completion (default: Context timeout).
        notify : bool, optional
            Use WRITE_NOTIFY; default ``wait or callback is not None``.
        data_type : optional
            Plain DBR type to send (default the channel's native type).
        data_count : int, optional
            Send only the first *data_count* elements.

        Returns
        -------
        WriteResponse or None
            The response when *wait* is true, else None.

        Raises
        ------
        CATimeoutError
            Not connected, or not confirmed, within *timeout*.
        DisconnectedError
            The channel or its circuit went away meanwhile.
        AccessDeniedError
            No write access.
        RemoteError
            The server refused the write (the ECA code is in ``.status``).
        TypeError
            The data cannot be converted to the channel's type.
        ValueError
            The data does not fit the channel (too long, too many elements,
            not a number for a numeric channel).
        """
        ensure_not_io_thread("PV.write")
        deadline = Deadline(self._timeout(timeout))
        circuit, sid = self._wait_connected(deadline)
        if not self.access_rights & AccessRights.WRITE:
            raise AccessDeniedError(f"{self.name}: no write access", pv=self.name, address=circuit.address)
        dtype, payload, count = encode(self, data, data_type, data_count)
        if notify is None:
            notify = wait or callback is not None
        elif not notify and (wait or callback is not None):
            raise ValueError("wait=True or a callback needs notify=True (WRITE_NOTIFY)")
        if not notify:
            ioid = self.context._next_id()
            circuit.send(*_proto.write_chunks(_proto.WRITE, dtype, count, sid, ioid, payload))
            return None
        result = transact(
            self,
            circuit,
            lambda ioid: _proto.write_chunks(_proto.WRITE_NOTIFY, dtype, count, sid, ioid, payload),
            lambda raw: write_result(self.name, raw, circuit),
            wait,
            callback,
            deadline,
            f"write not confirmed within {self._timeout(timeout)}s",
        )
        return result  # type: ignore[no-any-return]

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(
        self,
        data_type: Any = None,
        data_count: int | None = None,
        mask: int | None = None,
        *,
        all_updates: bool = True,
    ) -> Subscription:
        """Return a :class:`Subscription` (the same one for the same arguments).

        Parameters
        ----------
        data_type : optional
            As for :meth:`read` (default native).
        data_count : int, optional
            Elements per update; None for the current length.
        mask : int, optional
            DBE bits (default DBE_VALUE | DBE_ALARM).
        all_updates : bool
            Deliver every update (default).  With False, a slow callback is
            given the newest value and the updates it missed are counted in
            :attr:`Subscription.dropped`.
        """
        if mask is None:
            mask = _DEFAULT_MASK
        if isinstance(data_type, str):
            resolve_type(data_type, 0)  # validate now, not at connection time
        with self._lock:
            for sub in self._subscriptions:
                if (
                    sub.data_type == data_type
                    and sub.data_count == data_count
                    and sub.mask == mask
                    and sub.all_updates == all_updates
                ):
                    return sub
            sub = Subscription(self, data_type, data_count, mask, all_updates)
            self._subscriptions = (*self._subscriptions, sub)
        return sub

    def unsubscribe_all(self) -> None:
        """Clear every subscription's callbacks."""
        with self._lock:
            subs = self._subscriptions
        for sub in subs:
            sub.clear()

    def go_idle(self) -> None:
        """Release the channel until next use (declined while subscriptions have callbacks)."""
        with self._lock:
            if any(sub.wanted for sub in self._subscriptions):
                return
            state, circuit, cid, sid = self._state, self._circuit, self._cid, self._sid
            if state == IDLE:
                return
            self._state = IDLE
            self._circuit = self._cid = self._sid = None
            self.access_rights = AccessRights.NO_ACCESS
        if state == SEARCHING:
            self.context._cancel_search(self.name)
        if circuit is not None and cid is not None:
            circuit.forget_channel(cid, sid)

    def _notify_when_connected(self, waiter: queue.SimpleQueue[PV]) -> None:
        """Put this PV into *waiter* once it is connected (now, if it is)."""
        with self._lock:
            if self._state != CONNECTED:
                if self._waiters is None:
                    self._waiters = []
                self._waiters.append(waiter)
                return
        waiter.put(self)

    def _forget_waiter(self, waiter: queue.SimpleQueue[PV]) -> None:
        with self._lock:
            if self._waiters and waiter in self._waiters:
                self._waiters.remove(waiter)

    # -- engine side (circuit and UDP threads) -------------------------------------------
    def _on_found(self, circuit: Circuit) -> bool:
        """Searching → connecting on *circuit*; the caller must then wake waiters."""
        with self._lock:
            if self._state != SEARCHING:
                return False
            self._state = CONNECTING
            self._circuit = circuit
        return True  # the caller wakes waiters once for its whole batch

    def _on_create_sent(self, circuit: Circuit, cid: int) -> bool:
        """The circuit is about to send CREATE_CHAN as *cid*: False if this PV no longer wants it."""
        with self._lock:
            if self._circuit is not circuit or self._state != CONNECTING:
                return False
            self._cid = cid
        return True

    def _on_connected(self, circuit: Circuit, cid: int, sid: int, dtype: int, count: int) -> list[Job] | None:
        """Connecting → connected; the caller (the circuit) must then wake waiters.

        Returns None when the PV no longer wants this channel (the circuit
        then clears it on the server).
        """
        with self._lock:
            if self._circuit is not circuit or self._cid != cid or self._state != CONNECTING:
                # (a repeated reply for the channel it has is ignored, not cleared)
                return [] if self._circuit is circuit and self._cid == cid else None
            self._sid = sid
            self._state = CONNECTED
            try:
                self.native_data_type = ChannelType(dtype)
            except ValueError:
                self.native_data_type = None
            self.native_data_count = count
            for sub in self._subscriptions:
                sub._activate_locked(circuit, sid, dtype, count)
            rights = self.access_rights
            waiters, self._waiters = self._waiters, None
            conn_cbs, access_cbs = self._conn_cbs, self._access_cbs
        # (the circuit wakes state waiters once per received chunk)
        if waiters:
            for waiter in waiters:
                waiter.put(self)  # SimpleQueue.put never blocks
        jobs: list[Job] = []
        if conn_cbs is not None and len(conn_cbs):
            jobs.append(Job(self, conn_cbs._fire, (CONNECTED,)))
        if access_cbs is not None and len(access_cbs):
            jobs.append(Job(self, access_cbs._fire, (rights,)))
        return jobs

    def _on_access_rights(self, rights: int) -> list[Job]:
        with self._lock:
            old = self.access_rights
            self.access_rights = AccessRights(rights & 3)
            fire = self._state == CONNECTED and old != self.access_rights
            handler = self._access_cbs
        if fire and handler is not None and len(handler):
            return [Job(self, handler._fire, (self.access_rights,))]
        return []

    def _on_channel_lost(self, circuit: Circuit, why: str, research: bool, delay: float = 0.0) -> list[Job]:
        with self._lock:
            if self._circuit is not circuit:
                return []
            was_connected = self._state == CONNECTED
            self._circuit = self._cid = self._sid = None
            self.access_rights = AccessRights.NO_ACCESS
            closed = self.context._closed
            self._state = DISCONNECTED if closed else SEARCHING
            for sub in self._subscriptions:
                sub._deactivated_locked()
            handler = self._conn_cbs
        if research and not closed:
            self.context._search([self], delay)
        jobs: list[Job] = []
        if was_connected and handler is not None and len(handler):
            jobs.append(Job(self, handler._fire, ("disconnected",)))
        return jobs
