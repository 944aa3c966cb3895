"""What runs on engine callback threads for a :class:`compat.PV`: events and value callbacks (a mixin).

The engine calls a PV through its :class:`_Relay` (held by the engine; the
relay holds the PV weakly):

* connection and access-rights events (:meth:`PVEvents._on_connection_event`,
  :meth:`PVEvents._on_access_event`): connection fields, the automatic
  monitor, the user's connection and access callbacks;
* monitor updates (:meth:`PVEvents._on_monitor_event`, the hot path): the
  value and its metadata into ``_args``, then the user's value callbacks.

These run on caclient's callback threads, one PV's in order.  Reads in the
caller's thread catch up with updates a callback thread has not applied yet
(:meth:`PVEvents._refresh`).  A PV without value callbacks (or ``verbose``,
or a client-side ``monitor_delta``) is not given its updates at all: it
pulls the newest on read (see :meth:`_Relay.deliver`; its
:class:`CallbackTable` tells it when that changes).  The public callback methods (``add_callback``
...) run in the caller's thread.

Locks: ``_lock`` (see :mod:`compat._pv_channel`) is taken briefly to decide
which connection/access callbacks an event still owes (``_last_conn``,
``_last_rights``, ``_told_*``); it is never held while user code runs.
``_args`` and the kept callback dict are updated without a lock, like
pyepics: single dict operations are atomic.  The monitor path takes no lock.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from math import log10
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from . import _convert, dbr
from . import _fields as F
from ._ca_messages import write as _write
from ._callback_table import CallbackTable
from ._convert import fmt_time
from ._pv_base import ACCESS_STRINGS as _ACCESS_STRINGS
from ._pv_base import PVBase
from ._runtime import RUNTIME

if TYPE_CHECKING:
    pass

log = logging.getLogger("compat")

_FIRST = itemgetter(0)
_EPICS_EPOCH = float(dbr.EPICS2UNIX_EPOCH)
_SMALL_COUNT = 256  # (elements whose payload always fits the circuit's shared buffer: see _applied_mark)
_get = list.__getitem__  # (positional access to a PV's Fields, on the monitor path)
_set = list.__setitem__


class _Relay(weakref.ref):  # type: ignore[type-arg]
    """The engine callbacks of one PV: a weak reference to the PV that is also its callback.

    The engine holds the relay; the relay refers to its PV only weakly, so a
    PV nobody refers to is freed.  A relay whose PV is gone removes its engine
    callbacks the next time one runs (on a callback thread, where that is
    safe); and when the PV is freed, the relay is queued in
    ``RUNTIME.dead_relays``, which the next PV to bind empties (a PV whose
    monitor is only held, or whose value never changes, gets no call that
    would let it notice).  Being the weak reference itself, and the one callable the engine
    calls for both connection events and monitor updates, the relay is the
    only object a PV needs for them (no weak method, no bound method).
    """

    __slots__ = ("conn_token", "eng", "sub", "sub_release", "sub_token")

    def __new__(cls, pv: PVBase, eng: Any) -> _Relay:
        return super().__new__(cls, pv, _DEAD_RELAYS.append)  # (see Runtime.dead_relays)

    def __init__(self, pv: PVBase, eng: Any) -> None:  # (the reference itself is made by __new__)
        self.eng = eng
        self.conn_token: int | None = None
        self.sub: Any = None
        self.sub_token: int | None = None  # (pushed: the relay is a callback of ``sub``)
        self.sub_release: Callable[[], None] | None = None  # (pulled: ``sub`` is held)

    def __call__(self, source: Any, event: Any) -> None:  # type: ignore[override]
        """A monitor update ``(sub, response)`` or a connection event ``(channel, state)``."""
        pv = _deref(self)
        if pv is None:
            self.drop()
        elif event.__class__ is str:
            pv._on_connection_event(source, event)
        else:
            pv._on_monitor_event(source, event)

    def on_access(self, eng: Any, rights: Any) -> None:
        pv = _deref(self)
        if pv is not None:
            pv._on_access_event(eng, rights)

    def drop(self) -> None:
        """Remove the engine callbacks (the PV is gone or detached)."""
        token, self.conn_token = self.conn_token, None
        if token is not None:
            self.eng.connection_state_callback.remove_callback(token)
        self.drop_monitor()

    def watch(self, sub: Any, push: bool) -> None:
        """Follow the PV's automatic monitor *sub* (see :meth:`deliver`)."""
        self.sub = sub
        self.deliver(push, first=True)

    def deliver(self, push: bool, first: bool = False) -> None:
        """Have the monitor's updates pushed to the PV, or held for it to pull.

        *Pushed*: the relay is a callback of the subscription, so each update
        is applied (and the value callbacks run) on a callback thread.
        *Pulled*, for a PV without value callbacks: the subscription is only
        held; nothing runs per update, and a read applies the newest one
        (:meth:`PVEvents._refresh`).  That saves a callback-thread wake-up per
        update, which a put(wait=True) loop on a monitored PV pays for every
        put.  A switch adds the new way before dropping the old one, so the
        subscription never stops; a switch to pushing gives the PV only the
        updates from then on (pyepics calls a new callback on the next
        change, not with the current value).  The PV's ``_lock`` is held.
        """
        sub = self.sub
        if sub is None:
            return
        if push and self.sub_token is None:
            self.sub_token = sub.add_callback(self, replay=first)
            release, self.sub_release = self.sub_release, None
            if release is not None:
                release()
        elif not push and self.sub_release is None:
            self.sub_release = sub.hold()
            token, self.sub_token = self.sub_token, None
            if token is not None:
                sub.remove_callback(token)

    def drop_monitor(self) -> None:
        sub, token, release = self.sub, self.sub_token, self.sub_release
        self.sub = self.sub_token = self.sub_release = None
        if sub is not None and token is not None:
            sub.remove_callback(token)
        if release is not None:
            release()


_WRITES = RUNTIME.writes  # (the runtime's, never rebound)
_DEAD_RELAYS = RUNTIME.dead_relays
_deref = weakref.ref.__call__  # (the relay's own __call__ is the callback)


def _applied_mark(resp: Any) -> Any:
    """What identifies a monitor update once applied: its payload bytes (the
    engine makes a new response object each time one is asked for, from the
    same bytes), or for a large array, whose payload is a buffer of its own,
    the response itself (then the engine hands out that one object)."""
    return bytes(resp) if resp.data_count <= _SMALL_COUNT else resp


def _call_then_keep(
    func: Callable[..., Any], kept: list[Callable[..., Any]], lock: Any, *args: Any, **kwargs: Any
) -> None:
    """Call a callback just added to *kept*; if it raises, take it out again (pyepics adds it only after the call)."""
    try:
        func(*args, **kwargs)
    except BaseException:
        with lock:
            for i in range(len(kept) - 1, -1, -1):
                if kept[i] is func:
                    del kept[i]
                    break
        raise


def _call_safely(func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        func(*args, **kwargs)
    except Exception:
        log.exception("exception in callback %r", func)


class PVEvents(PVBase):
    """PV methods for engine events (callback threads) and the user's value callbacks."""

    __slots__ = ()

    # -- connection and access events -------------------------------------------------------
    def _on_connection_event(self, eng: Any, state: str) -> None:
        if eng is not self._eng or self._detached:
            return
        conn = state == "connected"
        with self._lock:
            if conn == self._last_conn:
                return  # the same event seen twice (registration raced the connection)
            self._last_conn = conn
            told, self._told_conn = self._told_conn or (), None
            # Decided with the state change: a callback added after this point
            # is called by whoever adds it (_add_connection_callback).
            owed = [f for f in self.connection_callbacks if not any(f is t for t in told)]
        if conn:
            self._setup_connected()
        else:
            self._ready = False
            self._last_rights = None
            self._args.update(read_access=False, write_access=False, access="no access")
        for func in owed:
            if callable(func):
                _call_safely(func, pvname=self.pvname, conn=conn, pv=self)

    def _on_access_event(self, eng: Any, rights: Any) -> None:
        if eng is not self._eng or self._detached:
            return
        rights = int(rights) & 3
        with self._lock:
            if rights == self._last_rights:
                return
            self._last_rights = rights
            told, self._told_access = self._told_access or (), None
            owed = [f for f in self.access_callbacks if not any(f is t for t in told)]  # (as for connections)
        read, write = bool(rights & 1), bool(rights & 2)
        self._args.update(read_access=read, write_access=write, access=_ACCESS_STRINGS[rights])
        for func in owed:
            if callable(func):
                _call_safely(func, read, write, pv=self)

    # get_pv() adding callbacks to a cached PV calls them at once if it is
    # connected, as pyepics does, and a connection or access event may be
    # under way on a callback thread meanwhile.  Each callback is called once:
    # it is appended under _lock, where the event takes the list of callbacks
    # it owes, and either the event has taken that list already (the adder
    # calls it) or the adder marks it told (the event skips it).
    def _add_connection_callback(self, func: Callable[..., Any]) -> None:
        """Append a connection callback and call it now if connected (get_pv on a cached PV)."""
        now = self.connected  # (outside the lock: it may take it)
        with self._lock:
            self.connection_callbacks.append(func)
            if not now and self._last_conn is True and self._eng is not None and self._eng.connected:
                now = True  # connected since we looked: its event has run without this callback
            elif now and self._last_conn is not True:  # the pending event must not call it again
                self._told_conn = [*(self._told_conn or ()), func]
        if now:
            _call_then_keep(func, self.connection_callbacks, self._lock, pvname=self.pvname, conn=True, pv=self)
        self._callbacks_changed()

    def _add_access_callback(self, func: Callable[..., Any]) -> None:
        """Append an access callback and call it now if connected (get_pv on a cached PV)."""
        now = self.connected
        with self._lock:
            self.access_callbacks.append(func)
            if not now and self._last_rights is not None and self._eng is not None and self._eng.connected:
                now = True  # connected since we looked, and its rights are known: no event will tell these
            elif now and self._last_rights is None and self._access_token is not None:
                self._told_access = [*(self._told_access or ()), func]  # (the pending event must not call it)
        if now:
            _call_then_keep(func, self.access_callbacks, self._lock, self.read_access, self.write_access, pv=self)
        self._callbacks_changed()
        with self._lock:
            self._watch_access()

    # -- monitor updates (the hot path) ------------------------------------------------------
    def _on_monitor_event(self, sub: Any, resp: Any) -> None:
        # The hot path, for the common case in one function: a TIME scalar
        # (one struct unpack gives everything) with at most one plain value
        # callback.  Everything else goes the general way.
        fast = self._fast
        if fast is None or resp.data_count != 1 or self._verbose or self._monitor_delta_local:
            self._on_monitor_event_general(sub, resp)
            return
        if resp.status != 1:
            return  # pyepics drops updates with a failure status
        payload = bytes(resp)
        status, severity, secs, nsec, value = fast.unpack_from(payload)
        secs += _EPICS_EPOCH
        stamp = secs + 1.0e-6 * int(1.0e-3 * nsec)
        args = self._args
        ftype = self.ftype
        _set(args, F.STAMP, (severity, stamp, secs, nsec))
        _set(args, F.COUNT, 1)
        self._applied = payload  # (see _refresh)
        callbacks = self._callbacks
        if not callbacks:
            _set(args, F.HEAD, (value, _get(args, F.CHAR_VALUE), status, ftype))
            self._charval_dirty = True  # (made when someone reads it)
            return
        fmt = self._float_fmt
        if fmt is None:
            _set(args, F.HEAD, (value, None, status, ftype))
            cval = self._set_charval(value, call_ca=False)
        else:  # a FLOAT/DOUBLE scalar: _convert.char_value's rule, inlined
            precision = _get(args, F.PRECISION)
            if precision is None:
                cval = str(value)
            elif precision == fmt[0]:
                try:
                    cval = (fmt[2] if 4 < abs(int(log10(abs(value + 1.0e-9)))) else fmt[1]) % value
                except (ValueError, TypeError, ArithmeticError):
                    cval = None
            else:
                cval = None
            _set(args, F.HEAD, (value, cval, status, ftype))
            if cval is None:
                cval = self._set_charval(value, call_ca=False)
        self._charval_dirty = False
        if self._access_token is None:
            eng = self._eng
            if eng is not None and eng.access_rights != self._last_rights:
                self._sync_access()
        if len(callbacks) == 1:
            try:
                ((index, (func, kw)),) = callbacks.items()
            except ValueError:  # changed meanwhile by another thread
                pass
            else:
                if not kw:
                    kept = self._kept
                    if kept is None or self._kept_stamp != args.stamp:
                        kept = self._callback_args(fresh=False)
                    else:
                        kept["value"] = value
                        kept["char_value"] = cval
                        kept["status"] = status
                        kept["ftype"] = ftype
                        kept["count"] = 1
                        kept["severity"] = severity
                        kept["timestamp"] = stamp
                        kept["posixseconds"] = secs
                        kept["nanoseconds"] = nsec
                    info = kept.get("cb_info")
                    if info is None or info[0] != index:
                        # (kept from one update to the next: a new tuple each time would
                        # live long enough to be garbage-collector work)
                        kept["cb_info"] = (index, self)
                    try:
                        func(**kept)  # (the callee gets its own copy)
                    except Exception:
                        log.exception("exception in callback %r", func)
                    return
        self._run_all(on_worker=True)

    def _on_monitor_event_general(self, sub: Any, resp: Any) -> None:
        if resp.status != 1:
            return  # pyepics drops updates with a failure status
        if self._monitor_delta_local and self._filtered(resp):
            return
        value = self._apply(resp)
        if self._callbacks or self._verbose:
            args = self._args
            fmt = self._float_fmt
            if fmt is not None:  # a FLOAT/DOUBLE scalar: _convert.char_value's rule, inlined
                precision = _get(args, F.PRECISION)
                if precision is None:
                    _set(args, F.CHAR_VALUE, str(value))
                    self._charval_dirty = False
                elif precision == fmt[0]:
                    try:
                        big = 4 < abs(int(log10(abs(value + 1.0e-9))))
                        _set(args, F.CHAR_VALUE, (fmt[2] if big else fmt[1]) % value)
                        self._charval_dirty = False
                    except (ValueError, TypeError, ArithmeticError):
                        self._set_charval(value, call_ca=False)
                else:
                    self._set_charval(value, call_ca=False)
            else:
                self._set_charval(value, call_ca=False)
            if self._verbose:
                _write(f"{self.pvname}: {args['char_value']} ({fmt_time(args['timestamp'])})")
            self._run_all(on_worker=True)

    def _apply(self, resp: Any) -> Any:
        """Put a monitor update into ``_args``; return its value."""
        args = self._args
        n = resp.data_count
        fast = self._fast
        if fast is not None and n == 1:
            # a TIME scalar: one unpack of the raw payload gives everything
            status, severity, secs, nsec, value = fast.unpack_from(bytes(resp))
            secs += _EPICS_EPOCH
            _set(args, F.STATUS, status)
            _set(args, F.SEVERITY, severity)
            _set(args, F.TIMESTAMP, secs + 1.0e-6 * int(1.0e-3 * nsec))
            _set(args, F.POSIXSECONDS, secs)
            _set(args, F.NANOSECONDS, nsec)
        else:
            ntype = self._ntype
            if ntype == dbr.STRING:
                value = _convert.unpack(resp.data, ntype, args["nelm"], None, True)
            elif n == 1 and args["nelm"] == 1:
                value = resp.tolist()[0]
            else:
                value = resp.data.copy()  # the response may be shared with other PV objects
            ftype = self.ftype
            if ftype is not None and dbr.TIME_STRING <= ftype < dbr.CTRL_STRING:
                md = resp.metadata
                secs = float(md.posixseconds)
                nsec = md.nanoseconds
                args["status"] = md.status
                args["severity"] = md.severity
                args["timestamp"] = secs + 1.0e-6 * int(1.0e-3 * nsec)
                args["posixseconds"] = secs
                args["nanoseconds"] = nsec
            else:
                if ftype is not None and ftype > dbr.CTRL_STRING:
                    args.update(_convert.metadata(resp.metadata, ftype))
                args["timestamp"] = time.time()
                args["posixseconds"] = 0
                args["nanoseconds"] = 0
        _set(args, F.VALUE, value)
        _set(args, F.COUNT, n)
        _set(args, F.FTYPE, self.ftype)
        self._charval_dirty = True
        self._applied = _applied_mark(resp)
        return value

    def _filtered(self, resp: Any) -> bool:
        # Client-side monitor_delta (when MDEL could not be written).
        try:
            value = resp.tolist()[0] if resp.data_count == 1 else None
            if value is None:
                return False
            last = self._monitor_last_value
            if last is not None and abs(value - last) < self._args["monitor_delta"]:
                return True
            self._monitor_last_value = value
        except (TypeError, ValueError):
            pass
        return False

    def _refresh(self) -> None:
        """Bring ``_args`` up to the newest monitor update received (callback threads may lag)."""
        monref = self._monref
        if monref is not None:
            resp = monref.most_recent_response
            if resp is not None and resp.status == 1 and _applied_mark(resp) is not self._applied:
                self._apply(resp)

    def _stale(self) -> bool:
        """True when a put to this channel was made since this PV last read it."""
        eng = self._eng
        return eng is not None and _WRITES.get(eng, 0) != self._seen_writes

    def _sync_access(self) -> None:
        eng = self._eng
        if eng is not None and self._access_token is None and self._ready:
            rights = int(eng.access_rights) & 3  # (int first: IntFlag arithmetic is slow)
            if rights != self._last_rights:
                self._last_rights = rights
                args = self._args
                args["read_access"], args["write_access"] = bool(rights & 1), bool(rights & 2)
                args["access"] = _ACCESS_STRINGS[rights]

    def _set_charval(self, val: Any, call_ca: bool = True, force_long_string: bool = False) -> Any:
        """Compute, store and return the string form of *val* (see ``_convert.char_value``)."""
        args = self._args
        self._charval_dirty = False
        if val is None:
            _set(args, F.CHAR_VALUE, "None")
            return "None"
        ftype = args["ftype"]
        ntype = dbr.native_type(ftype) if ftype is not None else self._ntype
        count = self.count if args["count"] is None else args["count"]
        if call_ca and count is not None and count <= 1:
            if ntype in (dbr.FLOAT, dbr.DOUBLE) and args["precision"] is None:
                self.get_ctrlvars()
            elif ntype == dbr.ENUM and args["enum_strs"] in ([], None):
                self.get_ctrlvars()
        precision = args["precision"]
        cval = _convert.char_value(
            val, ntype, ftype, count, precision, args["enum_strs"], force_long_string=force_long_string
        )
        _set(args, F.CHAR_VALUE, cval)  # (by position: a kept callback dict refreshes it anyway)
        if type(precision) is int and ntype in (dbr.FLOAT, dbr.DOUBLE) and args["nelm"] == 1:
            self._float_fmt = (precision, f"%.{precision}f", f"%.{precision}g")  # (for the monitor path)
        return cval

    # -- callbacks ----------------------------------------------------------------------------
    @property
    def callbacks(self) -> CallbackTable:
        """The value callbacks: ``{index: (callback, kwargs)}`` (changing it directly works too)."""
        return self._callbacks

    @callbacks.setter
    def callbacks(self, table: dict[Any, tuple[Callable[..., Any], dict[str, Any]]]) -> None:
        self._callbacks = CallbackTable(weakref.ref(self), table)
        self._callbacks_changed()

    @property
    def verbose(self) -> bool:
        """Print each monitor update (pyepics's ``verbose``); may be changed at any time."""
        return self._verbose

    @verbose.setter
    def verbose(self, value: bool) -> None:
        self._verbose = value
        self._callbacks_changed()

    def add_callback(
        self,
        callback: Callable[..., Any] | None = None,
        index: Any = None,
        run_now: bool = False,
        with_ctrlvars: bool = True,
        **kw: Any,
    ) -> Any:
        """Add a value callback and return its index.

        The callback is called as ``callback(**kw)`` with every field of the
        PV (pvname, value, char_value, status, severity, timestamp, count,
        type, units, enum_strs, the limits ...), the keyword arguments given
        here, and ``cb_info=(index, pv)``.  *index* defaults to one more than
        the largest in use (1 for the first); an existing index is replaced.
        *with_ctrlvars* reads the control fields now; *run_now* runs the
        callback now with the current value.
        """
        if with_ctrlvars and self.connected:
            self.get_ctrlvars()  # (before the callback can run, so that it sees them)
        if callable(callback):
            if index is None:
                index = 1 + max(self.callbacks) if self.callbacks else 1
            self.callbacks[index] = (callback, kw)  # (the table calls _callbacks_changed)
        if run_now:
            self.get(as_string=True)
            if self.connected:
                self.run_callback(index)
        return index

    def remove_callback(self, index: Any = None) -> None:
        """Remove the value callback at *index* (unknown indexes are ignored)."""
        if index in self.callbacks:
            self.callbacks.pop(index, None)

    def clear_callbacks(self, with_access_callback: bool = False, with_connect_callback: bool = False) -> None:
        """Remove all value callbacks (and optionally access and connection callbacks)."""
        self.callbacks.clear()
        if with_access_callback:
            self.access_callbacks = []
        if with_connect_callback:
            self.connection_callbacks = []
        self._callbacks_changed()

    def run_callbacks(self) -> None:
        """Run every value callback now, in this thread, with the current data."""
        self._refresh()
        if self._charval_dirty:
            self._set_charval(self._args["value"], call_ca=False)
        self._run_all()

    def run_callback(self, index: Any) -> None:
        """Run the value callback at *index* now, in this thread."""
        entry = self.callbacks.get(index)
        if entry is None:
            return
        self._refresh()
        if self._charval_dirty:
            self._set_charval(self._args["value"], call_ca=False)
        func, kw = entry
        kwds = self._args.copy()
        kwds.update(kw)
        kwds["cb_info"] = (index, self)
        if callable(func):
            func(**kwds)

    def _callback_args(self, fresh: bool = True) -> dict[str, Any]:
        """The dict of every field given to value callbacks.

        A copy is kept per PV: after a monitor update only the fields it
        changed are refreshed (a full rebuild costs eight times more).  With
        ``fresh=False`` that kept dict itself is returned, for a caller that
        passes it as ``**kwargs`` (the callee always gets its own copy).
        """
        args = self._args
        kept = self._kept
        if kept is None or self._kept_stamp != args.stamp:
            kept = self._kept = args.copy()
            self._kept_stamp = args.stamp
        else:
            for i, key in F.MONITORED:
                kept[key] = _get(args, i)
        return kept.copy() if fresh else kept

    def _run_all(self, on_worker: bool = False) -> None:
        if self._access_token is None:
            self._sync_access()
        callbacks = self._callbacks
        if len(callbacks) == 1:  # the common case, without sorting
            try:
                ((index, (func, kw)),) = callbacks.items()
            except ValueError:  # changed meanwhile by another thread
                pass
            else:
                # On the callback thread (the only one that uses the kept dict
                # this way) the kept dict is passed as is: func(**kwds) copies it.
                kwds = self._callback_args(fresh=bool(kw) or not on_worker)
                if kw:
                    kwds.update(kw)
                kwds["cb_info"] = (index, self)
                try:
                    func(**kwds)
                except Exception:
                    log.exception("exception in callback %r", func)
                return
        for index, (func, kw) in sorted(list(callbacks.items()), key=_FIRST):
            if callbacks.get(index) is None:
                continue  # removed by an earlier callback of this round
            kwds = self._callback_args()
            if kw:
                kwds.update(kw)
            kwds["cb_info"] = (index, self)
            _call_safely(func, **kwds)
