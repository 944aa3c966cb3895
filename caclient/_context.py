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

Rules (lock order, from outermost)
  1. ``Context._lock`` guards ``_pvs``, ``_circuits``, ``_closed``.
  2. ``PV._lock`` (see ``_pv``), which the PV's subscriptions and callback
     handlers use as theirs (``Subscription._lock`` is the same lock: one
     per PV keeps thousands of PVs small).
  3. Leaf locks: ``Circuit._lock`` then ``Circuit._send_lock``; the
     dispatcher's lock; the searcher's inbox lock.
  Take locks only in this order.  Never wait, join, start a thread, connect a
  socket or run a user callback with one of them held.  The single exception
  is ``Circuit.send``, which never blocks and may be called under 2.

Threads never run user code except the dispatcher's workers.  Blocking calls
(read, write, wait_for_connection) refuse to run on the I/O threads.
"""

from __future__ import annotations

import atexit
import getpass
import itertools
import logging
import os
import queue
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from . import _proto
from ._circuit import Circuit
from ._config import Address, Config
from ._dbr import AccessRights
from ._dispatch import Dispatcher
from ._errors import AccessDeniedError, CAError, CATimeoutError, ContextClosedError, DisconnectedError
from ._pv import PV, _read_result, _write_result
from ._response import ReadResponse, WriteResponse
from ._sync import Deadline, Pending, ensure_not_io_thread
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
        self._dispatcher = Dispatcher(max_workers)
        self._udp = UdpSearcher(self.config, self._on_found, encoding, self.host_name, self.client_name)
        self_ref = weakref.ref(self)

        def _close_at_exit() -> None:
            ctx = self_ref()
            if ctx is not None:
                ctx.close()

        def _forget_in_child() -> None:
            ctx = self_ref()
            if ctx is not None:
                ctx._after_fork_in_child()

        self._atexit = _close_at_exit
        self._pid = os.getpid()
        atexit.register(_close_at_exit)
        # A forked child inherits this Context without its threads: it must
        # not use it, and must never disturb the parent's connections.
        os.register_at_fork(after_in_child=_forget_in_child)

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
        items = list(pvs)
        names = [p for p in items if isinstance(p, str)]
        got = iter(self.get_pvs(*names, priority=priority)) if names else iter(())
        plist = [next(got) if isinstance(p, str) else p for p in items]
        deadline = Deadline(self.timeout if timeout is None else timeout)
        results: list[ReadResponse | CAError | None] = [None] * len(plist)
        sent: list[tuple[int, PV, Circuit, int, Pending]] = []
        slots: dict[PV, list[int]] = {}
        for i, pv in enumerate(plist):
            slots.setdefault(pv, []).append(i)
        # Reads go out as soon as their PV is connected, in one burst per
        # circuit for all that are ready together; one deadline covers all.
        for batch in self._as_connected(slots, deadline):
            self._send_reads(batch, slots, data_type, data_count, results, sent)
        for i, result in enumerate(results):
            if result is None and not plist[i].connected:
                results[i] = CATimeoutError(f"{plist[i].name}: not connected", pv=plist[i].name)
        encoding = self.encoding
        _collect(sent, results, deadline, "read timed out", lambda pv, r, c: _read_result(pv.name, r, encoding, c))
        return [r if r is not None else CAError("internal: no result") for r in results]

    @staticmethod
    def _as_connected(pvs: Iterable[PV], deadline: Deadline) -> Iterator[list[PV]]:
        """Yield the PVs in batches as they become connected, until all are or the deadline passes.

        Each batch holds every PV that connected since the last one, so the
        caller can send their requests in one burst per circuit.
        """
        ready: queue.SimpleQueue[PV] = queue.SimpleQueue()
        plist = list(pvs)
        for pv in plist:
            pv._wake_if_idle()
            pv._notify_when_connected(ready)
        waiting = len(plist)
        try:
            while waiting:
                try:
                    batch = [ready.get(timeout=deadline.remaining())]
                except queue.Empty:
                    return
                while True:
                    try:
                        batch.append(ready.get_nowait())
                    except queue.Empty:
                        break
                waiting -= len(batch)
                yield batch
        finally:
            for pv in plist:
                pv._forget_waiter(ready)

    def _send_reads(
        self,
        batch: list[PV],
        slots: dict[PV, list[int]],
        data_type: Any,
        data_count: int | None,
        results: list[ReadResponse | CAError | None],
        sent: list[tuple[int, PV, Circuit, int, Pending]],
    ) -> None:
        bursts: dict[Circuit, list[bytes]] = {}
        for pv in batch:
            circuit, sid = pv._circuit, pv._sid
            for i in slots[pv]:
                if circuit is None or sid is None:
                    results[i] = DisconnectedError(f"{pv.name}: disconnected", pv=pv.name)
                    continue
                if not pv.access_rights & AccessRights.READ:
                    results[i] = AccessDeniedError(f"{pv.name}: no read access", pv=pv.name)
                    continue
                dtype, _ = pv._resolve_type(data_type, pv.native_data_type)
                count = data_count or (0 if circuit.minor_version >= 13 else (pv.native_data_count or 1))
                ioid = self._next_id()
                pending = Pending(None, pv, pv.name)
                try:
                    circuit.add_io(ioid, pending)
                except DisconnectedError as exc:
                    results[i] = exc
                    continue
                bursts.setdefault(circuit, []).append(_proto.read_notify(dtype, count, sid, ioid))
                sent.append((i, pv, circuit, ioid, pending))
        for circuit, msgs in bursts.items():
            try:
                circuit.send(b"".join(msgs))
            except DisconnectedError:
                pass  # its pendings fail through the circuit's shutdown

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
        items = list(pvs)
        vals = list(values)
        n = len(items)
        types: list[Any] = list(data_types) if data_types is not None else [None] * n
        counts: list[int | None] = list(data_counts) if data_counts is not None else [None] * n
        if not len(vals) == len(types) == len(counts) == n:
            raise ValueError("pvs, values, data_types and data_counts must have the same length")
        names = [p for p in items if isinstance(p, str)]
        got = iter(self.get_pvs(*names, priority=priority)) if names else iter(())
        plist = [next(got) if isinstance(p, str) else p for p in items]
        deadline = Deadline(self.timeout if timeout is None else timeout)
        results: list[WriteResponse | Exception | None] = [None] * n
        handled = [False] * n
        sent: list[tuple[int, PV, Circuit, int, Pending]] = []
        slots: dict[PV, list[int]] = {}
        for i, pv in enumerate(plist):
            slots.setdefault(pv, []).append(i)
        for batch in self._as_connected(slots, deadline):
            self._send_writes(batch, slots, (vals, types, counts), wait, results, handled, sent)
        for i, done in enumerate(handled):
            if not done:
                results[i] = CATimeoutError(f"{plist[i].name}: not connected", pv=plist[i].name)
        _collect(sent, results, deadline, "write not confirmed in time", lambda pv, r, c: _write_result(pv.name, r, c))
        return results

    def _send_writes(
        self,
        batch: list[PV],
        slots: dict[PV, list[int]],
        requests: tuple[list[Any], list[Any], list[int | None]],
        wait: bool,
        results: list[WriteResponse | Exception | None],
        handled: list[bool],
        sent: list[tuple[int, PV, Circuit, int, Pending]],
    ) -> None:
        vals, types, counts = requests
        command = _proto.WRITE_NOTIFY if wait else _proto.WRITE
        bursts: dict[Circuit, list[bytes | memoryview]] = {}
        unconfirmed: dict[Circuit, list[int]] = {}
        for pv in batch:
            circuit, sid = pv._circuit, pv._sid
            for i in slots[pv]:
                handled[i] = True
                if circuit is None or sid is None:
                    results[i] = DisconnectedError(f"{pv.name}: disconnected", pv=pv.name)
                    continue
                if not pv.access_rights & AccessRights.WRITE:
                    results[i] = AccessDeniedError(f"{pv.name}: no write access", pv=pv.name, address=circuit.address)
                    continue
                try:
                    dtype, payload, count = pv._encode(vals[i], types[i], counts[i])
                except (ValueError, TypeError) as exc:
                    results[i] = exc
                    continue
                ioid = self._next_id()
                if wait:
                    pending = Pending(None, pv, pv.name)
                    try:
                        circuit.add_io(ioid, pending)
                    except DisconnectedError as exc:
                        results[i] = exc
                        continue
                    sent.append((i, pv, circuit, ioid, pending))
                else:
                    unconfirmed.setdefault(circuit, []).append(i)
                bursts.setdefault(circuit, []).extend(_proto.write_chunks(command, dtype, count, sid, ioid, payload))
        for circuit, chunks in bursts.items():
            # Small messages are joined; large payloads stay chunks of their own
            # (no copy), a bounded number per send.
            parts: list[bytes | memoryview] = []
            small = bytearray()
            for chunk in chunks:
                if len(chunk) >= 65536:
                    if small:
                        parts.append(bytes(small))
                        small = bytearray()
                    parts.append(chunk)
                else:
                    small += chunk
            if small:
                parts.append(bytes(small))
            try:
                for start in range(0, len(parts), 256):
                    circuit.send(*parts[start : start + 256])
            except DisconnectedError as exc:
                for i in unconfirmed.get(circuit, ()):
                    results[i] = exc  # (waited writes fail through the circuit's shutdown)

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
        atexit.unregister(self._atexit)
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
        atexit.unregister(self._atexit)
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


def _collect(
    sent: list[tuple[int, PV, Circuit, int, Pending]],
    results: list[Any],
    deadline: Deadline,
    late: str,
    convert: Callable[[PV, Any, Circuit], Any],
) -> None:
    """Wait for the replies of a burst (read_many, write_many) and put each result in its place.

    A reply not in by *deadline* is cancelled and becomes ``CATimeoutError``
    ("<name>: *late*"); a failed operation gives its error; a reply is turned
    into a result by *convert*, whose CAError is kept as the result.
    """
    for i, pv, circuit, ioid, pending in sent:
        if not pending.wait(deadline.remaining()):
            circuit.cancel_io(ioid)
            if not pending.done():
                results[i] = CATimeoutError(f"{pv.name}: {late}", pv=pv.name)
                continue
        if pending.error is not None:
            results[i] = pending.error if isinstance(pending.error, CAError) else CAError(str(pending.error))
            continue
        try:
            results[i] = convert(pv, pending.result, circuit)
        except CAError as exc:
            results[i] = exc


def _each(entry: PV | tuple[PV, ...] | None) -> tuple[PV, ...]:
    """The PVs of one ``Context._pvs`` entry."""
    if entry is None:
        return ()
    return entry if isinstance(entry, tuple) else (entry,)
