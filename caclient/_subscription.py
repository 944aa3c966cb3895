"""Subscriptions (monitors) of one PV.

Theory of operation
-------------------
A :class:`Subscription` is *wanted* while it has callbacks.  A wanted
subscription is *active* on a circuit when EVENT_ADD was sent there; it is
re-activated by the PV whenever the channel (re)connects, so subscribers get a
fresh value after a reconnection with nothing to do.

Threads: users call add/remove; the PV's connection handler (circuit thread)
calls :meth:`_activate_locked` / :meth:`_deactivated_locked`; the circuit
thread hands each update to :meth:`_on_update` (an :data:`Update`, stored
without a lock: one attribute store), which returns the dispatcher job for
it, keyed by the PV, so one PV's callbacks run in order and never
concurrently; the worker makes the ReadResponse right before the callbacks.
With ``all_updates=False`` it keeps only the newest undelivered update
instead.  A refused subscription (:meth:`_on_refused`) calls each callback
once with an empty response carrying the ECA status.

Sinks (:meth:`_add_sink`, engine code only: caclient.asyncio's
subscriptions): a sink is called on the circuit thread with each update as
it arrives (the raw :data:`Update`, or a ReadResponse for a refusal), before
any job is made.  It must be quick and must not block or run user code: it
queues the update for an event loop and wakes the loop once per burst.  A
subscription with sinks and no callbacks makes no dispatcher job at all (its
handler returns :data:`~caclient._dispatch.DELIVERED`), so updates bound for
an event loop cross one thread, not two.  A sink keeps the subscription
wanted, like a callback; :meth:`clear` leaves sinks alone (they belong to
the asyncio layer, which removes its own).  :meth:`hold` is a sink that
does nothing: it keeps the subscription active for a reader that polls
:attr:`most_recent_response` (compat's PVs without value callbacks), at the
cost of one store per update on the circuit thread.

Locks: ``_lock`` is the PV's own lock (shared, so that a subscribed PV costs
one lock, not three); it guards the callbacks, ``_subid``, ``_circuit``,
``_latest`` and ``dropped``.  Lock order is PV._lock → Circuit locks.
``Circuit.send`` is called with ``_lock`` held on purpose — it never blocks —
so that EVENT_ADD and EVENT_CANCEL for one subscription go out in the order
the user asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeAlias

from . import _proto
from ._callbacks import Registry
from ._dbr import native_type
from ._dispatch import DELIVERED, Job, JobTuple
from ._errors import DisconnectedError, RemoteError
from ._requests import resolve_type
from ._response import ReadResponse

if TYPE_CHECKING:
    from ._circuit import Circuit
    from ._pv import PV

DataType = "str | int | _dbr.ChannelType | None"

#: A monitor update as the circuit stores and queues it: ``(data_type, count,
#: status, payload)`` for a small payload — a tuple of plain values, which the
#: garbage collector stops tracking, so the updates waiting in the dispatcher
#: and the one kept per subscription do not make the cyclic collector work
#: (with 10,000 monitored PVs that cost several µs per update) — or a
#: ReadResponse for a large one (decoded in place, so it must stay one object).
Update: TypeAlias = "tuple[int, int, int, bytes] | ReadResponse"


class Subscription(Registry):
    """A monitor on a PV, fanned out to any number of callbacks.

    Created by :meth:`PV.subscribe`; nothing is sent to the server until the
    first callback is added, and removing the last one cancels it.

    Callbacks are called as ``func(sub, response)`` (or ``func(response)``
    for a one-argument callable) on a callback worker thread.  They are held
    strongly unless added with ``weak=True``.

    Attributes
    ----------
    pv : PV
    data_type, data_count, mask
        What the subscription asks the server for.
    all_updates : bool
        True (default): every update is delivered, in order.  False: updates
        that arrive while a delivery is still waiting replace it, so a slow
        callback always gets the newest value and never falls behind.
    dropped : int
        With ``all_updates=False``, how many updates were replaced unseen.
    error : RemoteError or None
        Set when the server refused the subscription (CA_PROTO_ERROR for its
        EVENT_ADD).  Each callback is then called once with a response
        whose ``status`` is the ECA code and which holds no data (as libca
        does); the subscription is asked for again when the channel
        reconnects.
    """

    __slots__ = (
        "pv",
        "data_type",
        "data_count",
        "mask",
        "_recent",
        "_lock",
        "_subid",
        "_circuit",
        "_sent_type",
        "_sent_count",
        "_deliver_fn",
        "all_updates",
        "dropped",
        "error",
        "_latest",
        "_sinks",
        "__weakref__",
    )

    def __init__(self, pv: PV, data_type: Any, data_count: int | None, mask: int, all_updates: bool = True) -> None:
        super().__init__()
        self.pv = pv
        self.data_type = data_type
        self.data_count = data_count
        self.mask = mask
        self.all_updates = all_updates
        self.dropped = 0
        self.error: RemoteError | None = None  # set when the server refused the subscription
        self._latest: Update | None = None  # all_updates=False: the update not yet delivered
        self._recent: Update | None = None  # (see most_recent_response)
        # Bound once: the circuit queues ``(pv, sub._deliver_fn, update)``, the
        # update tuple being the arguments, so a waiting update is one job
        # tuple and nothing else the garbage collector must look at.
        self._deliver_fn = self._deliver_raw
        self._lock = pv._lock
        self._subid: int | None = None
        self._circuit: Circuit | None = None
        self._sent_type = 0
        self._sent_count = 0
        self._sinks: tuple[Callable[[Update], None], ...] = ()  # copy-on-write, read without the lock

    def __repr__(self) -> str:
        n = len(self._entries) + len(self._sinks)
        state = "active" if self._subid is not None else ("pending" if n else "idle")
        return f"<Subscription to {self.pv.name!r} data_type={self.data_type!r} mask={self.mask} {state} callbacks={n}>"

    @property
    def callbacks(self) -> dict[int, Callable[..., Any]]:
        """The live callbacks by token."""
        return {e.token: f for e in self._entries if (f := e.get()) is not None}

    def add_callback(self, func: Callable[..., Any], *, weak: bool = False, replay: bool = True) -> int:
        """Add a callback and return its token.

        The first callback starts the subscription; a later one is called
        once right away with the most recent update, if there was one
        (unless *replay* is False: then it gets only the updates that
        arrive from now on).
        """
        pv = self.pv
        with self._lock:
            token, first = self._register(func, weak)
            if self._sinks:
                first = False  # (running for an event loop already: replay like a later callback)
            circuit, sid = pv._link()
            if first and self._subid is None and circuit is not None and sid is not None:
                self._activate_locked(circuit, sid, pv.native_data_type, pv.native_data_count)
            recent = self._recent
        if first:
            pv._wake_if_idle()  # a PV left idle by go_idle() reconnects for its subscribers
        if replay and not first and recent is not None:
            pv.context._submit(pv, self._replay, token, recent)
        return token

    def hold(self) -> Callable[[], None]:
        """Keep the subscription running without a callback; return the function that lets it go.

        While held, the subscription stays active on the server and
        :attr:`most_recent_response` follows every update, but an update
        that no callback wants makes no work beyond storing it: no callback
        thread is woken.  This is for a reader that polls the newest value
        (``sub.most_recent_response``) instead of being called with each.
        Holds are counted: the subscription is cancelled when the last hold
        is released and no callback is left.  :meth:`clear` leaves holds
        alone.  Calling the returned function again does nothing.
        """

        def held(update: Update) -> None:  # (a sink of its own: released by identity)
            pass

        self._add_sink(held)
        return partial(self._remove_sink, held)

    def _replay(self, token: int, update: Update) -> None:
        # Worker thread: give a late callback the most recent update (looked up
        # by token, so a weak callback is not kept alive by the queued job).
        for entry in self._entries:
            if entry.token == token:
                func = entry.get()
                if func is not None:
                    resp = self._response(update)
                    func(*((self, resp) if entry.nargs >= 2 else (resp,)))
                return

    @property
    def most_recent_response(self) -> ReadResponse | None:
        """The last update received (None before the first); replayed to callbacks added later."""
        update = self._recent
        return None if update is None else self._response(update)

    def _response(self, update: Update) -> ReadResponse:
        if type(update) is tuple:
            return ReadResponse(update[0], update[1], update[2], update[3], self.pv.context.encoding)
        return update  # type: ignore[return-value]

    def remove_callback(self, token: int) -> None:
        """Remove a callback; removing the last one cancels the subscription."""
        with self._lock:
            if self._unregister(token) and not self._sinks:
                self._cancel_locked()

    def _add_sink(self, sink: Callable[[Update], None]) -> Update | None:
        """Engine code: call *sink* on the circuit thread with every update (see module docstring).

        Starts the subscription like a first callback does.  Returns the
        most recent update when the subscription was already running (the
        caller replays it: it may race with a newer one that *sink* is being
        given right now, which only the sink can sort out).  Remove it with
        :meth:`_remove_sink`, passing the same object.
        """
        pv = self.pv
        with self._lock:
            first = not self._entries and not self._sinks
            self._sinks = (*self._sinks, sink)
            circuit, sid = pv._link()
            if first and self._subid is None and circuit is not None and sid is not None:
                self._activate_locked(circuit, sid, pv.native_data_type, pv.native_data_count)
            recent = self._recent if self._subid is not None else None
        if first:
            pv._wake_if_idle()
        return recent

    def _remove_sink(self, sink: Callable[[Update], None]) -> None:
        """Engine code: stop calling *sink*; the subscription is cancelled if nothing else wants it."""
        with self._lock:
            if not any(s is sink for s in self._sinks):
                return
            self._sinks = tuple(s for s in self._sinks if s is not sink)
            if not self._sinks and not self._entries:
                self._cancel_locked()

    def _prune(self) -> None:
        # Worker thread, after a delivery found a dead weak callback.
        with self._lock:
            self._prune_dead()
            if not self._entries and not self._sinks:
                self._cancel_locked()

    def clear(self) -> None:
        """Remove every callback and cancel the subscription.

        (An asyncio subscription on the same PV and arguments shares this
        one; it keeps it running until its own consumers are gone.)
        """
        with self._lock:
            self._entries = ()
            if not self._sinks:
                self._cancel_locked()

    @property
    def wanted(self) -> bool:
        """True while the subscription has callbacks or sinks (and so should be active)."""
        return bool(self._entries or self._sinks)

    # -- engine side ---------------------------------------------------------------
    def _wire_type(self, native: int | None) -> tuple[int, str]:
        return resolve_type(self.data_type, native)

    def _activate_locked(self, circuit: Circuit, sid: int, native: int | None, count: int | None) -> None:
        """Send EVENT_ADD on *circuit* if wanted and not yet active (the PV's lock is held)."""
        if not (self._entries or self._sinks) or self._subid is not None:
            return
        dtype, _ = self._wire_type(native)
        if self.data_count is not None:
            n = self.data_count
        elif circuit.minor_version >= 13:
            n = 0
        else:
            n = count or 1
        subid = self.pv.context._next_id()
        circuit.add_subscription(subid, self)
        self._subid = subid
        self._circuit = circuit
        self._sent_type = dtype
        self._sent_count = n
        try:
            circuit.send(_proto.event_add(dtype, n, sid, subid, self.mask))
        except DisconnectedError:
            circuit.remove_subscription(subid)
            self._subid = None
            self._circuit = None

    def _cancel_locked(self) -> None:
        subid, circuit = self._subid, self._circuit
        self._subid = None
        self._circuit = None
        # Nothing arrives while cancelled: the last update would be stale for
        # whoever subscribes again (they get a fresh one from the server).
        self._recent = None
        if subid is None or circuit is None:
            return
        circuit.remove_subscription(subid)
        sid = self.pv._sid
        if sid is not None:
            try:
                circuit.send(_proto.event_cancel(self._sent_type, self._sent_count, sid, subid))
            except DisconnectedError:
                pass

    def _deactivated_locked(self) -> None:
        """The channel went away: forget the server-side subscription (the PV's lock is held)."""
        self._subid = None
        self._circuit = None

    def _on_update(self, update: tuple[int, int, int, bytes]) -> JobTuple | None:
        """Circuit thread, the hot path: a small update arrived; return the job that delivers it, if any.

        With ``all_updates`` every update is a job of its own, the update
        being the job's arguments: one plain tuple, which the garbage
        collector stops tracking.  Otherwise see :meth:`_keep_latest`.
        """
        self._recent = update  # (one attribute store: read without the lock)
        if self._sinks and self._to_sinks(update):
            return DELIVERED
        if self.all_updates:
            return (self.pv, self._deliver_fn, update)
        return self._keep_latest(update)

    def _on_response(self, update: ReadResponse) -> JobTuple | None:
        """Circuit thread: a large update, already a response (decoded in place, once)."""
        self._recent = update
        if self._sinks and self._to_sinks(update):
            return DELIVERED
        if self.all_updates:
            return Job(self.pv, Subscription._deliver, (self, update))
        return self._keep_latest(update)

    def _to_sinks(self, update: Update) -> bool:
        """Circuit thread: hand *update* to every sink; True when no callback wants it too."""
        for sink in self._sinks:
            sink(update)
        return not self._entries

    def _keep_latest(self, update: Update) -> JobTuple | None:
        # all_updates=False: keep only the newest undelivered update; queue a
        # delivery only when none is waiting.
        with self._lock:
            waiting = self._latest is not None
            if waiting:
                self.dropped += 1
            self._latest = update
        return None if waiting else Job(self.pv, self._deliver_latest, ())

    def _on_refused(self, circuit: Circuit, error: RemoteError, data_type: int) -> list[JobTuple]:
        """Circuit thread: the server refused EVENT_ADD; tell every callback once.

        As libca does, each callback gets a response with the ECA status and
        no data (``data_count`` 0); :attr:`error` holds the
        :class:`~caclient.RemoteError`.  The subscription stays wanted and is
        asked for again when the channel reconnects.
        """
        with self._lock:
            if self._circuit is circuit:
                self._subid = None
                self._circuit = None
            self.error = error
        status = error.status if error.status is not None else 0
        resp = ReadResponse(native_type(data_type), 0, status, b"", self.pv.context.encoding)
        for sink in self._sinks:
            sink(resp)
        return [Job(self.pv, self._call_all, (self, resp))] if self._entries else []

    def _deliver_latest(self) -> None:
        # Worker thread: deliver whatever is newest now.
        with self._lock:
            update, self._latest = self._latest, None
        if update is not None:
            self._deliver(update)

    def _deliver_raw(self, data_type: int, count: int, status: int, payload: bytes) -> None:
        # Worker thread: a small update (see _deliver_fn).
        resp = ReadResponse(data_type, count, status, payload, self.pv.context.encoding)
        if self._call_all(self, resp):
            self._prune()

    def _deliver(self, update: Update) -> None:
        # Worker thread: run the callbacks; forget weak ones that died.
        if self._call_all(self, self._response(update)):
            self._prune()
