"""The Context: composition root of the engine, and the lock-order reference.

Theory of operation
-------------------
A :class:`Context` owns one UDP searcher (thread ``caclient-udp``), one
:class:`~caclient._circuit.Circuit` per (server, priority) (thread
``caclient-circuit[...]`` each), and one callback dispatcher (threads
``caclient-cb-N``).  PVs are cached by (name, priority).

Flow: :meth:`get_pvs` registers PVs and posts their names to the searcher.
When a reply arrives the searcher calls :meth:`_on_found` on its thread; the
Context picks or creates the circuit and asks it to create the channels (one
batched write per circuit).  The circuit thread connects the PVs.  When a
circuit closes, :meth:`_on_circuit_closed` forgets it and searches again for
the names of its channels.

Threads (who runs what; each row is kept true by the code it names)

==========================  ==============================  ============================  ==========================
thread                      owns                            may block on                  never
==========================  ==============================  ============================  ==========================
caller threads              their own Pending ops and       their own Pending (with a     run on an I/O thread a
                            waits (``Deadline``); while     deadline); the Context's      blocking call (they raise
                            *leading* (``_leader``) the     state condition; ``select``   ``BlockingCallError``);
                            circuit's receive side          on the circuit's socket       run user code while leading
                                                            while leading (bounded)
``caclient-udp``            UDP socket, search scheduler,   ``select`` with the next      run user code; wait on a
(``_udp.UdpSearcher``)      beacon table, repeater          timer deadline; a name        Pending; connect a socket
                            registration, name-server       server's host lookup          in blocking mode
                            links; runs ``_on_found``
``caclient-circuit[h:p,n]`` TCP socket (its receive side    ``select``; its own           run user code; complete
(``_circuit.Circuit``)      unless a caller leads), the     ``connect`` (bounded by the   anything but a Pending
                            ``CircuitProtocol``, flushing   Context timeout); the lead    (no Future callbacks);
                            the outbox; runs                token after waking a leader   wait on other threads
                            ``_on_circuit_closed``          (it steps down at once)
``caclient-cb-N``           the job it runs (user           whatever the user callback    hold an engine lock while
(``_dispatch.Dispatcher``)  callbacks, Pending callbacks,   does (blocking caclient       a job runs
                            the EVENTS_ON of flow control)  calls are allowed)
==========================  ==============================  ============================  ==========================

Rules (lock order, from outermost)
  1. ``Context._lock`` guards ``_pvs``, ``_circuits``, ``_closed``,
     ``_connect_backoff``, ``_circuits_lost``.
  2. ``PV._lock`` (see ``_pv``), which the PV's subscriptions and callback
     handlers use as theirs (``Subscription._lock`` is the same lock: one
     per PV keeps thousands of PVs small).
  3. Leaf locks: ``Circuit._flow_lock``, then ``Circuit._lock``, then
     ``Circuit._send_lock``; the dispatcher's lock; the searcher's inbox
     lock; ``_LiveContexts._lock``; the state condition's lock.
  Take locks only in this order.  Never wait, join, start a thread, connect a
  socket or run a user callback with one of them held.  The single exception
  is ``Circuit.send``, which never blocks and may be called under 2.

Threads never run user code except the dispatcher's workers.  Blocking calls
(read, write, wait_for_connection) refuse to run on the I/O threads.

The request path (one blocking read or put(wait=True))
  The caller sends under ``Circuit._send_lock`` (or hands its message to
  the thread holding it, which sends both in one call), then, if the circuit
  thread stands by, reads its own reply from the socket (leader/follower,
  ``_leader``): one thread wake-up per round trip instead of two.  See
  ``_leader``'s docstring for the token and the rules that keep the socket
  read while anybody waits.

The hot path (one monitor update, top to bottom)
  1. socket: the circuit thread's ``select`` wakes; ``recv_into`` writes
     into ``CircuitProtocol.recv_buffer()`` (``_circuit.Circuit._loop``).
  2. protocol event: ``CircuitProtocol.received`` frames the bytes; for a
     small EVENT_ADD it looks the subid up in its ``monitors`` table and
     calls the subscription's handler with the update ``(data_type, count,
     status, payload)``, an exact tuple (``_protocol.CircuitProtocol.received``).
  3. subscription, circuit side: ``Subscription._on_update`` stores it as the
     most recent update, hands it to the subscription's sinks if any (event
     loops: caclient.asyncio queues it for its loop and stops there when no
     threaded callback wants it, returning ``DELIVERED``) and returns the
     dispatcher job ``(pv, deliver, update)`` (or, coalescing, keeps only the
     newest).
  4. dispatcher: after the chunk the circuit submits all its jobs in one lock
     round (``Dispatcher.submit_many``), and sends EVENTS_OFF when the
     backlog passes the high-water mark (``Circuit._after_chunk``).
  5. subscription, worker side: a ``caclient-cb-N`` worker runs the job,
     in order per PV: ``Subscription._deliver_raw`` builds the
     ReadResponse.
  6. user callback: ``Registry._call_all`` calls each callback
     ``f(sub, response)``; an exception is logged and counted.

Lifecycle
  ``close()`` stops the UDP thread, asks every circuit to close and joins
  them, then shuts the dispatcher down, all within its timeout.  Open
  Contexts are closed by one ``atexit`` hook, and discarded in a forked
  child by one ``os.register_at_fork`` hook (:class:`_LiveContexts`: the
  engine's only process-wide state, because a fork hook cannot be removed).

  The threads are daemon threads, deliberately, against the "non-daemon"
  line of the starting layout: Python joins non-daemon threads *before* it
  runs ``atexit`` hooks, so a Context left open would hang interpreter exit
  (its threads wait for a close that only the ``atexit`` hook would make).
  The public hook that runs earlier does not exist (``threading._register_atexit``
  is private), and even with it a user callback that never returns would
  hang exit.  So the threads are daemons, and the ``atexit`` hook closes
  every open Context with a bounded ``close()``: at a normal exit the
  threads have stopped before the interpreter goes down, and a stuck
  callback cannot keep the process alive (``tests/test_lifecycle.py``).
"""

from __future__ import annotations

import atexit
import getpass
import itertools
import logging
import os
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from . import _many
from ._circuit import Circuit
from ._config import Address, Config
from ._dispatch import Dispatcher
from ._errors import CAError, ContextClosedError, DisconnectedError
from ._pv import PV
from ._response import ReadResponse, WriteResponse
from ._stats import CallbackStatistics, Statistics
from ._sync import Deadline, ensure_not_io_thread
from ._udp import UdpSearcher

log = logging.getLogger("caclient.context")

#: Callback jobs queued before circuits ask servers to pause monitors.
DEFAULT_BACKLOG_HIGH = 20_000


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "unknown"


class Context:
    """A Channel Access client: searches, circuits, PVs and callback threads.

    Parameters
    ----------
    broadcaster : None
        Accepted for compatibility with caproto's signature; must be None.
    timeout : float
        Default timeout in seconds for connecting and for each operation.
    host_name, client_name : str, optional
        Identity sent to servers (default: this host's name and the user name).
    max_workers : int
        Number of callback worker threads.  One PV's callbacks always run in
        order and never concurrently, whatever this is.
    env : mapping, optional
        Where to read ``EPICS_CA_*`` from (default ``os.environ``), read now.
    encoding : str
        Text encoding of strings on the wire (default UTF-8).

    Notes
    -----
    Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        broadcaster: None = None,
        *,
        timeout: float = 2.0,
        host_name: str | None = None,
        client_name: str | None = None,
        max_workers: int = 1,
        env: Mapping[str, str] | None = None,
        encoding: str = "utf-8",
    ) -> None:
        if broadcaster is not None:
            raise TypeError("caclient's Context has its own searcher; pass broadcaster=None")
        self.config = Config.from_environ(env)
        self.timeout = timeout
        self.encoding = encoding
        self.host_name = host_name if host_name is not None else socket.gethostname()
        self.client_name = client_name if client_name is not None else _user_name()
        self._lock = threading.Lock()
        # A leaf condition shared by every PV of this Context: threads that wait
        # for a PV's state to change wait here (one per Context, not one Event
        # per PV, because a PV must stay small).
        self._state_changed = threading.Condition(threading.Lock())
        self._closed = False
        self._forked = False  # set in a child process that inherited this Context
        # name → its PV, or a tuple of its PVs when several priorities are in
        # use (rare): no key tuple or list per PV.
        self._pvs: dict[str, PV | tuple[PV, ...]] = {}
        self._circuits: dict[tuple[Address, int], Circuit] = {}
        self._ids = itertools.count(1)
        self._backlog_high = DEFAULT_BACKLOG_HIGH
        # Threads (event loops of caclient.asyncio) whose sends the circuits
        # queue for their own thread instead of writing the socket directly;
        # copy-on-write, read without a lock by Circuit.send.  Guarded by _lock.
        self._queue_only_threads: frozenset[int] = frozenset()
        self._queue_only_counts: dict[int, int] = {}
        self._connect_backoff: dict[Address, float] = {}  # guarded by _lock
        # (server, priority) → connected circuits that closed: the reconnect counts (guarded by _lock)
        self._circuits_lost: dict[tuple[Address, int], int] = {}
        self._dispatcher = Dispatcher(max_workers)
        try:
            self._udp = UdpSearcher(self.config, self._on_found, encoding, self.host_name, self.client_name)
        except BaseException:
            self._dispatcher.shutdown(wait=True, timeout=1.0)  # (its workers are already running)
            raise
        self._pid = os.getpid()
        _LIVE.add(self)

    # -- public API --------------------------------------------------------------------
    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        with self._lock:
            pvs = [pv for entry in self._pvs.values() for pv in _each(entry)]
            ncirc = len(self._circuits)
        idle = sum(1 for pv in pvs if pv.state == "idle")
        closed = " closed" if self._closed else ""
        return f"<Context circuits={ncirc} pvs={len(pvs)} idle={idle}{closed}>"

    @property
    def broadcaster(self) -> UdpSearcher:
        """The UDP searcher (``broadcaster.cancel(name)`` stops a search)."""
        return self._udp

    @property
    def circuits(self) -> list[Circuit]:
        """The open circuits (one per server and priority)."""
        with self._lock:
            return list(self._circuits.values())

    def statistics(self) -> Statistics:
        """A snapshot of the engine's counters: per circuit, search, callbacks.

        Cheap enough to call often (it copies counters; nothing on the data
        path is locked for it).  See :doc:`/statistics`.

        Returns
        -------
        Statistics
            Frozen records: ``Statistics.circuits`` (a
            :class:`CircuitStatistics` per open circuit: messages and bytes
            in and out, monitor updates delivered and dropped, EVENTS_OFF
            count, round-trip p50/p99, reconnects),
            ``Statistics.search`` (:class:`SearchStatistics`: searches
            sent, unanswered names, beacon anomalies) and
            ``Statistics.callbacks`` (:class:`CallbackStatistics`: the
            callback backlog and its high-water mark).
        """
        with self._lock:
            circuits = list(self._circuits.items())
            lost = dict(self._circuits_lost)
            pvs = [pv for entry in self._pvs.values() for pv in _each(entry)]
        searching = list({pv.name for pv in pvs if pv.state == "searching"})
        records = [circuit.statistics(lost.get(key, 0)) for key, circuit in circuits]
        records.sort(key=lambda r: (r.server, r.priority))
        d = self._dispatcher.statistics()
        return Statistics(
            circuits=tuple(records),
            search=self._udp.statistics(searching),
            callbacks=CallbackStatistics(d.workers, d.backlog, d.backlog_high_water, d.jobs_run, d.errors),
        )

    def get_pvs(
        self,
        *names: str,
        priority: int = 0,
        connection_state_callback: Callable[..., Any] | None = None,
        access_rights_callback: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> list[PV]:
        """Return a PV for each name at once; they connect in the background.

        Parameters
        ----------
        *names : str
        priority : int
            CA priority 0..99; each priority has its own circuit.
        connection_state_callback : callable, optional
            Added to every PV: ``f(pv, 'connected' | 'disconnected')``; run at
            once for PVs already connected.
        access_rights_callback : callable, optional
            ``f(pv, AccessRights)``; likewise.
        timeout : float, optional
            Accepted for compatibility; connection waits take their own timeout.

        Returns
        -------
        list of PV
        """
        if not 0 <= priority <= 99:
            raise ValueError("priority must be in 0..99")
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(f"PV names must be non-empty strings, not {name!r}")
        out: list[PV] = []
        new: list[PV] = []
        with self._lock:
            if self._closed:
                raise ContextClosedError(self._closed_why())
            table = self._pvs
            for name in names:
                entry = table.get(name)
                if isinstance(entry, PV) and entry.priority == priority:
                    out.append(entry)
                    continue
                found = next((p for p in _each(entry) if p.priority == priority), None)
                if found is None:
                    found = PV(name, priority, self)
                    table[name] = found if entry is None else (*_each(entry), found)
                    new.append(found)
                out.append(found)
        for pv in out:
            if connection_state_callback is not None:
                pv.connection_state_callback.add_callback(connection_state_callback, run=True)
            if access_rights_callback is not None:
                pv.access_rights_callback.add_callback(access_rights_callback, run=True)
        if new:
            self._search(new)
        return out

    def read_many(
        self,
        pvs: Iterable[PV | str],
        *,
        data_type: Any = None,
        data_count: int | None = None,
        timeout: float | None = None,
        priority: int = 0,
    ) -> list[ReadResponse | CAError]:
        """Read many PVs at once: one request burst per circuit, one deadline.

        Parameters
        ----------
        pvs : iterable of PV or str
        data_type, data_count : optional
            As for :meth:`PV.read`.
        timeout : float, optional
            Overall deadline for connecting and reading everything.

        Returns
        -------
        list
            In input order: a ReadResponse, or the error (an instance of
            :class:`CAError`, e.g. CATimeoutError) for each PV that failed.
        """
        ensure_not_io_thread("Context.read_many")
        return _many.read_many(self, pvs, data_type, data_count, timeout, priority)

    def write_many(
        self,
        pvs: Iterable[PV | str],
        values: Iterable[Any],
        *,
        wait: bool = True,
        timeout: float | None = None,
        data_types: Sequence[Any] | None = None,
        data_counts: Sequence[int | None] | None = None,
        priority: int = 0,
    ) -> list[WriteResponse | Exception | None]:
        """Write many PVs at once: one request burst per circuit, one deadline.

        Writes go out as soon as their PV is connected; writes to the same
        PV go out in input order.  Nothing here runs on the callback
        threads, so it may be called from a callback.

        Parameters
        ----------
        pvs : iterable of PV or str
        values : iterable
            One value per PV, as for :meth:`PV.write`.
        wait : bool
            Use WRITE_NOTIFY and wait for every completion (default), or
            send plain WRITEs and return once they are sent.
        timeout : float, optional
            Overall deadline for connecting, and with *wait* for completing,
            everything (default: the Context's timeout).
        data_types, data_counts : sequence, optional
            Per write, as ``data_type`` / ``data_count`` of :meth:`PV.write`.

        Returns
        -------
        list
            In input order: the WriteResponse of each write with *wait*,
            None for each write sent without; in place of a failed write
            its exception: a :class:`CAError` (CATimeoutError when the PV
            did not connect or confirm in time, AccessDeniedError,
            RemoteError ...), or the ValueError/TypeError of a value that
            does not fit the channel.
        """
        ensure_not_io_thread("Context.write_many")
        return _many.write_many(self, pvs, values, wait, timeout, data_types, data_counts, priority)

    def _raise_if_closed(self, pv_name: str) -> None:
        """Raise ContextClosedError for *pv_name* once the Context is closed."""
        if self._closed:
            raise ContextClosedError(f"{pv_name}: {self._closed_why()}", pv=pv_name)

    def _submit(self, key: object, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a callback worker, after the earlier jobs of *key*."""
        self._dispatcher.submit(key, fn, *args)

    def _closed_why(self) -> str:
        if self._forked:
            return "this Context was inherited from the parent process by fork(); create a new Context here"
        return "the Context is closed"

    def _after_fork_in_child(self) -> None:
        """In a forked child: mark this Context closed and drop its inherited sockets.

        Runs in the child right after ``fork()``, where only the forking thread
        exists and any lock may have been held by a parent thread at the time.
        So it re-creates the locks it needs and closes this process's copies
        of the sockets (``close``, never ``shutdown``: the parent's connections
        stay as they are).  Calls in the child then raise
        :class:`ContextClosedError`; make a new Context there.
        """
        self._lock = threading.Lock()
        self._state_changed = threading.Condition(threading.Lock())
        self._closed = True
        self._forked = True
        self._udp._forget_after_fork()
        for circuit in list(self._circuits.values()):
            circuit._forget_after_fork()

    def close(self, timeout: float = 1.0) -> None:
        """Disconnect everything and stop every thread (idempotent, bounded in time)."""
        if self._forked:
            return  # inherited across fork(): nothing of it runs in this process
        with self._lock:
            if self._closed:
                return
            self._closed = True
            circuits = list(self._circuits.values())
        _LIVE.discard(self)
        deadline = Deadline(timeout)
        self._udp.close(timeout=deadline.remaining() or 0.0)
        for circuit in circuits:
            circuit.close()
        me = threading.current_thread()
        for circuit in circuits:
            if circuit.thread is not me and circuit.thread.ident is not None:
                circuit.thread.join(deadline.remaining())
        self._notify_waiters()  # release waiters; they see the closed Context
        on_worker = self._dispatcher.on_worker_thread()
        self._dispatcher.shutdown(wait=not on_worker, timeout=max(0.2, deadline.remaining() or 0.0))

    # -- engine side -------------------------------------------------------------------
    def _add_queue_only_thread(self, ident: int) -> None:
        """From now on, sends made by thread *ident* are queued for the circuit threads (counted)."""
        with self._lock:
            self._queue_only_counts[ident] = self._queue_only_counts.get(ident, 0) + 1
            self._queue_only_threads = frozenset(self._queue_only_counts)

    def _remove_queue_only_thread(self, ident: int) -> None:
        """Undo one :meth:`_add_queue_only_thread`."""
        with self._lock:
            n = self._queue_only_counts.get(ident, 0) - 1
            if n > 0:
                self._queue_only_counts[ident] = n
            else:
                self._queue_only_counts.pop(ident, None)
            self._queue_only_threads = frozenset(self._queue_only_counts)

    def _wait_for(self, predicate: Callable[[], bool], deadline: Deadline) -> bool:
        """Wait until *predicate* holds or the Context closes; False on timeout."""
        cond = self._state_changed
        with cond:
            while not predicate():
                if self._closed:
                    return False
                remaining = deadline.remaining()
                if remaining == 0.0:
                    return False
                cond.wait(remaining)
            return True

    def _notify_waiters(self) -> None:
        """A PV changed state: wake whoever waits in :meth:`_wait_for`."""
        with self._state_changed:
            self._state_changed.notify_all()

    def _next_id(self) -> int:
        return next(self._ids) & 0xFFFFFFFF or next(self._ids)

    def _search(self, pvs: list[PV], delay: float = 0.0) -> None:
        if not self._closed:
            self._udp.search(sorted({pv.name for pv in pvs}), delay)

    def _cancel_search(self, name: str) -> None:
        """Stop searching for *name* (a PV went idle while searching)."""
        self._udp.cancel(name)

    def _on_found(self, found: list[tuple[str, Address, int]]) -> None:
        # UDP thread: pick or create the circuit(s) and create the channels.
        to_start: list[Circuit] = []
        groups: dict[Circuit, list[PV]] = {}
        with self._lock:
            if self._closed:
                return
            for name, address, _minor in found:
                for pv in _each(self._pvs.get(name)):
                    key = (address, pv.priority)
                    circuit = self._circuits.get(key)
                    if circuit is None or circuit.closed:
                        circuit = self._circuits[key] = Circuit(self, address, pv.priority)
                        to_start.append(circuit)
                    if pv._on_found(circuit):
                        groups.setdefault(circuit, []).append(pv)
        if groups:
            self._notify_waiters()
        for circuit in to_start:
            circuit.start()
        for circuit, pvs in groups.items():
            try:
                circuit.create_channels(pvs)
            except DisconnectedError:
                for pv in pvs:
                    self._dispatcher.submit_many(pv._on_channel_lost(circuit, "circuit closed", research=True))

    def _on_circuit_closed(self, circuit: Circuit, channels: list[PV]) -> None:
        # Circuit thread, at its end: forget it and search again for its names.
        with self._lock:
            key = (circuit.address, circuit.priority)
            if self._circuits.get(key) is circuit:
                del self._circuits[key]
            closed = self._closed
            # A server that answers searches but refuses connections is tried
            # again after a growing pause (0.5 s doubling to 30 s), not at once.
            if circuit.ever_connected:
                self._circuits_lost[key] = self._circuits_lost.get(key, 0) + 1
                self._connect_backoff.pop(circuit.address, None)
                delay = 0.0
            else:
                delay = min(self._connect_backoff.get(circuit.address, 0.25) * 2, 30.0)
                self._connect_backoff[circuit.address] = delay
        if not closed and channels and delay:
            log.info("cannot connect to %s:%d; searching again in %.1f s", *circuit.address, delay)
            self._search(channels, delay)
        elif not closed and channels:
            self._search(channels)


class _LiveContexts:
    """The open Contexts of this process, for its one atexit hook and its one fork hook.

    The only process-wide state of the engine, and there by necessity:
    ``os.register_at_fork`` cannot remove a hook, so a hook per Context would
    pile up.  Contexts are held weakly.  ``_lock`` guards ``_contexts`` and
    ``_installed``; it is a leaf lock (never held while closing a Context).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: weakref.WeakSet[Context] = weakref.WeakSet()
        self._installed = False

    def add(self, ctx: Context) -> None:
        with self._lock:
            self._contexts.add(ctx)
            install = not self._installed
            self._installed = True
        if install:
            atexit.register(self._close_all_at_exit)
            # A forked child inherits the Contexts without their threads: it
            # must not use them, and must never disturb the parent's connections.
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    def discard(self, ctx: Context) -> None:
        with self._lock:
            self._contexts.discard(ctx)

    def _close_all_at_exit(self) -> None:
        with self._lock:
            contexts = list(self._contexts)
        for ctx in contexts:
            try:
                ctx.close()
            except Exception:  # nothing prints at interpreter exit
                pass

    def _after_fork_in_child(self) -> None:
        # Only the forking thread exists here; the lock may have been held by another.
        self._lock = threading.Lock()
        contexts = list(self._contexts)
        self._contexts = weakref.WeakSet()
        for ctx in contexts:
            ctx._after_fork_in_child()


_LIVE = _LiveContexts()


def _each(entry: PV | tuple[PV, ...] | None) -> tuple[PV, ...]:
    """The PVs of one ``Context._pvs`` entry."""
    if entry is None:
        return ()
    return entry if isinstance(entry, tuple) else (entry,)
