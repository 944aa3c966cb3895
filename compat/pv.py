"""The pyepics ``PV`` class and ``get_pv``, on top of caclient.

Theory of operation
-------------------
A :class:`PV` holds a caclient PV (the *channel*) from the default Context;
PV objects for the same name share one channel.  The PV keeps pyepics'
``_args`` dict of everything it knows (value, alarm, time stamp, control
fields ...) and updates it from three sources:

* the channel's connection and access-rights events (engine callback
  threads): connection fields, the automatic monitor, user connection and
  access callbacks;
* monitor updates (engine callback threads): the value and its metadata,
  then the user's value callbacks;
* reads made by :meth:`PV.get` and friends in the caller's thread.

Nothing in compat waits for an engine callback to run: connection state is
read from the channel itself, so a blocking call made inside a callback
(``caget``, ``caput``, a new ``PV``) cannot deadlock.

Engine callbacks are registered weakly: a PV that nobody refers to is freed
and its monitor cancelled.  A PV with user callbacks is held by
:mod:`compat._runtime` so that it keeps running, as in pyepics.

``_lock`` guards the channel binding and the monitor subscription (it is
taken before any caclient lock and never held while user code runs).
``_args`` is updated without a lock, like pyepics: single dict operations
are atomic.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from math import log10
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

from caclient import (
    AccessDeniedError,
    CAError,
    CATimeoutError,
    DisconnectedError,
    RemoteError,
)

from . import _convert, _info, _runtime, ca, dbr, utils
from . import _fields as F
from ._attrs import PVAttributes
from ._fields import Fields

log = logging.getLogger("compat")

_ACCESS_STRINGS = ("no access", "read-only", "write-only", "read/write")
_TIME_ARGS = ("status", "severity", "timestamp", "posixseconds", "nanoseconds")
_FIRST = itemgetter(0)
_EPICS_EPOCH = float(dbr.EPICS2UNIX_EPOCH)
_get = list.__getitem__  # (positional access to a PV's Fields, on the monitor path)
_set = list.__setitem__


def fmt_time(tstamp: float | None = None) -> str:
    """Format a POSIX time (default: now) as local ``'YYYY-mm-dd HH:MM:SS.fffff'``."""
    if tstamp is None:
        tstamp = time.time()
    whole, frac = divmod(tstamp, 1)
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(whole))}.{round(1.0e5 * frac):05d}"


class _Relay:
    """The engine callbacks of one PV, holding the PV only weakly.

    The engine holds the relay; the relay holds a weak reference to its PV,
    so a PV nobody refers to is freed.  A relay whose PV is gone removes its
    engine callbacks the next time one runs (on a callback thread, where that
    is safe).  One small relay per PV costs far less than a weak method per
    callback.
    """

    __slots__ = ("conn_token", "eng", "ref", "sub", "sub_token")

    def __init__(self, pv: PV, eng: Any) -> None:
        self.ref = weakref.ref(pv)
        self.eng = eng
        self.conn_token: int | None = None
        self.sub: Any = None
        self.sub_token: int | None = None

    def on_connection(self, eng: Any, state: str) -> None:
        pv = self.ref()
        if pv is None:
            self.drop()
        else:
            pv._on_connection_event(eng, state)

    def on_access(self, eng: Any, rights: Any) -> None:
        pv = self.ref()
        if pv is not None:
            pv._on_access_event(eng, rights)

    def __call__(self, sub: Any, resp: Any) -> None:
        """A monitor update (the relay itself is the subscription's callback: no bound method to keep)."""
        pv = self.ref()
        if pv is None:
            self.drop()
        else:
            pv._on_monitor_event(sub, resp)

    def drop(self) -> None:
        """Remove the engine callbacks (the PV is gone or detached)."""
        token, self.conn_token = self.conn_token, None
        if token is not None:
            self.eng.connection_state_callback.remove_callback(token)
        self.drop_monitor()

    def drop_monitor(self) -> None:
        sub, token = self.sub, self.sub_token
        self.sub = self.sub_token = None
        if sub is not None and token is not None:
            sub.remove_callback(token)


def _call_safely(func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        func(*args, **kwargs)
    except Exception:
        log.exception("exception in callback %r", func)


class PV(PVAttributes):
    """A Channel Access process variable, as ``epics.PV``.

    Parameters
    ----------
    pvname : str
        The PV name.
    callback : callable or list of callable, optional
        Value callback(s), stored at index 0 (0..n-1 for a list).
    form : {'time', 'ctrl', 'native'}
        Which DBR family values are read and monitored with.
    verbose : bool
        Print each monitor update.
    auto_monitor : None, bool or int
        None: monitor if the element count is below
        ``ca.AUTOMONITOR_MAXLENGTH``; True: monitor with
        ``ca.DEFAULT_SUBSCRIPTION_MASK``; an int: monitor with that DBE
        mask; False: never monitor.
    count : int, optional
        Element count for reads and the monitor (default: all).
    connection_callback : callable, optional
        ``f(pvname=, conn=, pv=)`` on each connection change.
    connection_timeout : float, optional
        Seconds to wait for a connection (default
        ``ca.DEFAULT_CONNECTION_TIMEOUT``).
    access_callback : callable, optional
        ``f(read_access, write_access, pv=)`` on each access-rights change.
    monitor_delta : float, optional
        Smallest change that is reported.  compat writes it to the record's
        ``MDEL`` field (when the PV is a scalar FLOAT/DOUBLE and the field
        is writable), else filters updates in the client.  (pyepics 3.5.10
        accepts it and ignores it.)

    Notes
    -----
    The constructor returns at once; the PV connects in the background.
    Callbacks run on caclient's callback threads, one PV's in order, and may
    call any compat function.
    """

    __slots__ = (
        "__dict__",  # (so that scripts and subclasses can still add attributes)
        "__weakref__",
        "_access_token",
        "_applied",
        "_args",
        "_auto_monitor",
        "_charval_dirty",
        "_detached",
        "_eng",
        "_fast",
        "_float_fmt",
        "_kept",
        "_kept_stamp",
        "_gen",
        "_last_conn",
        "_last_rights",
        "_lock",
        "_mdel_done",
        "_monitor_delta_local",
        "_monitor_last_value",
        "_monref",
        "_monref_key",
        "_monref_mask",
        "_ntype",
        "_put_complete",
        "_ready",
        "_relay",
        "_seen_writes",
        "_told_access",
        "_told_conn",
        "_user_max_count",
        "access_callbacks",
        "callbacks",
        "chid",
        "connection_callbacks",
        "connection_timeout",
        "form",
        "ftype",
        "pvname",
        "verbose",
    )

    _fmtsca = "<PV '%(pvname)s', count=%(count)i, type=%(typefull)s, access=%(access)s>"
    _fmtarr = "<PV '%(pvname)s', count=%(count)i/%(nelm)i, type=%(typefull)s, access=%(access)s>"
    _fields = F.KEYS[:-3]  # pyepics's PV._fields: every field but nelm, type, typefull

    def __init__(
        self,
        pvname: str,
        callback: Callable[..., Any] | list[Callable[..., Any]] | tuple[Callable[..., Any], ...] | None = None,
        form: str = "time",
        verbose: bool = False,
        auto_monitor: bool | int | None = None,
        count: int | None = None,
        connection_callback: Callable[..., Any] | None = None,
        connection_timeout: float | None = None,
        access_callback: Callable[..., Any] | None = None,
        monitor_delta: float | None = None,
    ) -> None:
        self.pvname: str = pvname.strip()
        self.form: str = form.lower()
        self.verbose = verbose
        self._auto_monitor = auto_monitor
        self.ftype: int | None = None
        self.connection_timeout: float = (
            connection_timeout if connection_timeout is not None else ca.DEFAULT_CONNECTION_TIMEOUT
        )
        self._user_max_count = count
        self._args = self._initial_args(monitor_delta)
        self.connection_callbacks: list[Callable[..., Any]] = (
            [connection_callback] if connection_callback is not None else []
        )
        self.access_callbacks: list[Callable[..., Any]] = [access_callback] if access_callback is not None else []
        self.callbacks: dict[Any, tuple[Callable[..., Any], dict[str, Any]]] = {}
        if isinstance(callback, (list, tuple)):
            for i, func in enumerate(callback):
                if callable(func):
                    self.callbacks[i] = (func, {})
        elif callable(callback):
            self.callbacks[0] = (callback, {})
        self._put_complete: bool | None = None
        self._monref: Any = None  # the caclient Subscription while monitored
        self._monref_mask: int | None = None
        self._monref_key: int | None = None  # (the DBR type it was made with)
        self._monitor_delta_local = False
        self._monitor_last_value: Any = None
        self._mdel_done = False
        self._lock = threading.Lock()
        self._eng: Any = None
        self._gen = -1
        self._relay: _Relay | None = None
        self._access_token: int | None = None
        self._detached = False
        self._ready = False
        self._last_conn: bool | None = None
        self._last_rights: int | None = None
        self._told_conn: list[Callable[..., Any]] | None = None
        self._told_access: list[Callable[..., Any]] | None = None
        self._ntype = 0
        self._charval_dirty = False
        self._fast: Any = None
        self._kept: dict[str, Any] | None = None  # (see _callback_args)
        self._kept_stamp = -1
        self._float_fmt: tuple[Any, str, str] | None = None
        self._applied: Any = None
        self._seen_writes = 0
        self.chid: int | None = None
        self._update_hold()
        self._chan()

    def _initial_args(self, monitor_delta: float | None) -> Fields:
        args = Fields()
        args.update(
            pvname=self.pvname,
            count=self._user_max_count,
            nelm=-1,
            type="unknown",
            typefull="unknown",
            access="unknown",
            monitor_delta=monitor_delta,
        )
        return args

    # -- binding to the engine ------------------------------------------------------------
    def _chan(self) -> Any:
        """The caclient PV, (re)attached to the current default Context."""
        eng = self._eng
        if eng is not None and self._gen == _runtime.generation and not self._detached:
            return eng
        ctx = _runtime.context()
        gen = _runtime.current_generation()
        if self._gen != gen and self._gen != -1:
            # A new Context (after fork() or a reset): the old lock may have been
            # held by a thread that does not exist here.
            self._lock = threading.Lock()
        with self._lock:
            if self._eng is not None and self._gen == gen and not self._detached:
                return self._eng
            (eng,) = ctx.get_pvs(self.pvname)
            self._eng, self._gen, self._detached = eng, gen, False
            self._ready = False
            self._seen_writes = _runtime.writes.get(eng, 0)
            self._applied = None
            self._last_conn = self._last_rights = None
            self._monref = self._monref_key = self._monref_mask = None
            self.chid = id(eng)
            self._args["chid"] = self.chid
            relay = self._relay = _Relay(self, eng)
            relay.conn_token = eng.connection_state_callback.add_callback(relay.on_connection, run=True)
            if self.access_callbacks:
                self._watch_access()
        return eng

    def _unbind(self) -> None:
        with self._lock:
            relay, self._relay = self._relay, None
            self._detached = True
            self._ready = False
            self._clear_monitor_locked()
            token, self._access_token = self._access_token, None
        if relay is not None and self._gen == _runtime.generation:
            relay.drop()
            if token is not None:
                relay.eng.access_rights_callback.remove_callback(token)

    def _watch_access(self) -> None:
        """Have the engine report access-rights changes (only PVs with access callbacks need it).

        Without, the access fields are read from the channel when needed.
        """
        relay = self._relay
        if relay is not None and self._access_token is None:
            self._access_token = relay.eng.access_rights_callback.add_callback(relay.on_access, run=True)

    def _sync_access(self) -> None:
        eng = self._eng
        if eng is not None and self._access_token is None and self._ready:
            rights = eng.access_rights & 3
            if rights != self._last_rights:
                self._last_rights = rights
                args = self._args
                args["read_access"], args["write_access"] = bool(rights & 1), bool(rights & 2)
                args["access"] = _ACCESS_STRINGS[rights]

    def _update_hold(self) -> None:
        if self.callbacks or self.connection_callbacks or self.access_callbacks:
            _runtime.hold(self)
        else:
            _runtime.release(self)

    def _setup_connected(self) -> bool:
        """Record the connection's fields and start the monitor; False if not connected."""
        with self._lock:
            eng = self._eng
            if eng is None or self._detached or not eng.connected:
                return False
            native = eng.native_data_type
            ntype = int(native) if native is not None and native <= dbr.DOUBLE else dbr.STRING
            nelm = eng.native_data_count or 0
            ftype = _convert.promote(ntype, self.form)
            name = _convert.type_name(ftype)
            rights = int(eng.access_rights)
            args = self._args
            args["nelm"] = nelm
            args["count"] = min(nelm, self._user_max_count or nelm)
            args["host"] = _runtime.host_name(eng.server_address)
            args["type"] = args["typefull"] = name
            args["ftype"] = ftype
            args["chid"] = self.chid
            args["read_access"] = bool(rights & 1)
            args["write_access"] = bool(rights & 2)
            args["access"] = _ACCESS_STRINGS[rights & 3]
            if self._access_token is None:
                self._last_rights = rights & 3
            self.ftype = ftype
            self._ntype = ntype
            self._fast = _convert.TIME_SCALARS.get(ftype) if nelm == 1 else None
            if nelm == 1 and ntype in (dbr.FLOAT, dbr.DOUBLE):
                if self._float_fmt is None:
                    self._float_fmt = (None, "", "")  # (filled in once the precision is known)
            else:
                self._float_fmt = None
            self._ready = True
            self._check_monitor_locked()
        if args["monitor_delta"] is not None and not self._mdel_done:
            self._mdel_done = True
            self._apply_monitor_delta()
        return True

    def _apply_monitor_delta(self) -> None:
        # pyepics' documented (and in 3.5.10 inert) rule: write MDEL, else filter here.
        if self._args["count"] != 1 or self._ntype not in (dbr.FLOAT, dbr.DOUBLE):
            return
        record = self.pvname.split(".", 1)[0]
        try:
            (mdel,) = _runtime.context().get_pvs(f"{record}.MDEL")
            mdel.wait_for_connection(timeout=self.connection_timeout)
            if not mdel.access_rights & 2:
                raise AccessDeniedError(f"{record}.MDEL: no write access")
            mdel.write(float(self._args["monitor_delta"]), wait=False, notify=False)
        except (CAError, ValueError, TypeError):
            self._monitor_delta_local = True

    # -- the automatic monitor -----------------------------------------------------------------
    def _check_monitor_locked(self) -> None:
        if not self._ready:
            return
        count = self._args["count"]
        if count is None:
            return
        if self._auto_monitor is None:
            self._auto_monitor = count < ca.AUTOMONITOR_MAXLENGTH
        if not self._auto_monitor:
            self._clear_monitor_locked()
            return
        mask = ca.DEFAULT_SUBSCRIPTION_MASK if self._auto_monitor is True else int(self._auto_monitor)
        if self._monref is not None and self._monref_key == self.ftype and self._monref_mask == mask:
            return
        self._clear_monitor_locked()
        sub = self._eng.subscribe(data_type=self.ftype, data_count=self._user_max_count or None, mask=mask)
        relay = self._relay
        assert relay is not None  # (bound: _ready is set)
        token = sub.add_callback(relay)
        relay.sub, relay.sub_token = sub, token
        self._monref = sub
        self._monref_key = self.ftype
        self._monref_mask = mask

    def _clear_monitor_locked(self) -> None:
        self._monref = self._monref_key = self._monref_mask = None
        relay = self._relay
        if relay is not None:
            relay.drop_monitor()

    def _check_auto_monitor(self) -> None:
        with self._lock:
            self._check_monitor_locked()

    def _clear_auto_monitor_subscription(self) -> None:
        with self._lock:
            self._clear_monitor_locked()

    @property
    def auto_monitor(self) -> bool | int | None:
        """Whether (or with which DBE mask) the PV monitors itself; setting it applies it."""
        return self._auto_monitor

    @auto_monitor.setter
    def auto_monitor(self, value: bool | int | None) -> None:
        self._auto_monitor = value
        self._check_auto_monitor()

    @property
    def auto_monitor_mask(self) -> int | None:
        """The DBE mask of the running monitor, or None."""
        return self._monref_mask

    def clear_auto_monitor(self) -> None:
        """Stop the automatic monitor."""
        self.auto_monitor = False

    # -- engine events (callback threads) ----------------------------------------------------
    def _on_connection_event(self, eng: Any, state: str) -> None:
        if eng is not self._eng or self._detached:
            return
        conn = state == "connected"
        with self._lock:
            if conn == self._last_conn:
                return  # the same event seen twice (registration raced the connection)
            self._last_conn = conn
            told, self._told_conn = self._told_conn or (), None
        if conn:
            self._setup_connected()
        else:
            self._ready = False
            self._last_rights = None
            self._args.update(read_access=False, write_access=False, access="no access")
        for func in list(self.connection_callbacks):
            if callable(func) and not any(func is f for f in told):
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
        read, write = bool(rights & 1), bool(rights & 2)
        self._args.update(read_access=read, write_access=write, access=_ACCESS_STRINGS[rights])
        for func in list(self.access_callbacks):
            if callable(func) and not any(func is f for f in told):
                _call_safely(func, read, write, pv=self)

    def _add_connection_callback(self, func: Callable[..., Any]) -> None:
        """Append a connection callback and call it now if connected (get_pv on a cached PV)."""
        if self.connected:
            with self._lock:
                if self._last_conn is not True:  # the pending event must not call it again
                    self._told_conn = [*(self._told_conn or ()), func]
            func(pvname=self.pvname, conn=True, pv=self)
        self.connection_callbacks.append(func)
        self._update_hold()

    def _add_access_callback(self, func: Callable[..., Any]) -> None:
        """Append an access callback and call it now if connected (get_pv on a cached PV)."""
        if self.connected:
            with self._lock:
                if self._last_rights is None and self._access_token is not None:
                    self._told_access = [*(self._told_access or ()), func]
            func(self.read_access, self.write_access, pv=self)
        self.access_callbacks.append(func)
        self._update_hold()
        with self._lock:
            self._watch_access()

    def _on_monitor_event(self, sub: Any, resp: Any) -> None:
        # The hot path: keep it short.  char_value is only computed when a
        # callback needs it (or someone reads it later).
        if resp.status != 1:
            return  # pyepics drops updates with a failure status
        if self._monitor_delta_local and self._filtered(resp):
            return
        value = self._apply(resp)
        if self.callbacks or self.verbose:
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
            if self.verbose:
                ca.write(f"{self.pvname}: {args['char_value']} ({fmt_time(args['timestamp'])})")
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
            data = resp.data
            ntype = self._ntype
            if ntype == dbr.STRING:
                value = _convert.unpack(data, ntype, args["nelm"], None, True)
            elif n == 1 and args["nelm"] == 1:
                value = data.item()
            else:
                value = data.copy()  # the response may be shared with other PV objects
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
        self._applied = resp
        return value

    def _filtered(self, resp: Any) -> bool:
        # Client-side monitor_delta (when MDEL could not be written).
        try:
            value = resp.data.item() if resp.data_count == 1 else None
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
            if resp is not None and resp is not self._applied and resp.status == 1:
                self._apply(resp)

    def _stale(self) -> bool:
        """True when a put to this channel was made since this PV last read it."""
        eng = self._eng
        return eng is not None and _runtime.writes.get(eng, 0) != self._seen_writes

    # -- connection ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while the channel is connected."""
        if self._detached:
            return False
        eng = self._chan()
        if not eng.connected:
            return False
        if not self._ready:
            self._setup_connected()
        return True

    def wait_for_connection(self, timeout: float | None = None) -> bool:
        """Wait up to *timeout* seconds (default: the PV's connection timeout); return connected."""
        eng = self._chan()
        if not eng.connected:
            try:
                eng.wait_for_connection(timeout=self.connection_timeout if timeout is None else timeout)
            except CAError:
                return False
        if not self._ready:
            if not self._setup_connected():
                return False
            if self._monref is not None and self._args["value"] is None:
                # Read once now, so that value, count and time stamp are known
                # when this returns (the monitor's first update may lag).
                with contextlib.suppress(CAError, ca.ChannelAccessGetFailure, ca.CASeverityException):
                    self._initial_read()
        return True

    def _initial_read(self) -> None:
        eng = self._eng
        resp = eng.read(data_type=self.ftype, data_count=self._user_max_count or None, timeout=self.connection_timeout)
        if self._args["value"] is None and resp.status == 1:
            self._apply(resp)
            self._applied = None  # (not a monitor update: keep no reference to it)

    def connect(self, timeout: float | None = None) -> bool:
        """Wait for the connection; True when connected and its type is known."""
        self.wait_for_connection(timeout=timeout)
        return self.connected and self.ftype is not None

    def reconnect(self) -> bool:
        """Restart the monitor and report the connection again; return connected."""
        self._clear_auto_monitor_subscription()
        self._ready = False
        self.force_connect()
        return self.wait_for_connection()

    def force_connect(self, pvname: str | None = None, chid: Any = None, conn: bool = True, **kws: Any) -> None:
        """Handle a connection event now, in this thread (runs the connection callbacks)."""
        if conn:
            self._setup_connected()
        for func in list(self.connection_callbacks):
            if callable(func):
                func(pvname=self.pvname, conn=conn, pv=self)

    def force_read_access_rights(self) -> None:
        """Read the access rights from the channel now."""
        rights = int(self._chan().access_rights) & 3
        self._args.update(read_access=bool(rights & 1), write_access=bool(rights & 2), access=_ACCESS_STRINGS[rights])

    def disconnect(self, deepclean: bool = True) -> None:
        """Forget callbacks and the monitor and drop the PV from ``get_pv``'s cache.

        The PV object stays usable: the next get/put attaches it again.
        """
        with _runtime.lock:
            for key, cached in list(_runtime.pv_cache.items()):
                if cached is self:
                    del _runtime.pv_cache[key]
        self._unbind()
        self.clear_callbacks(True, True)
        self._args = self._initial_args(self._args.get("monitor_delta"))
        self._args["chid"] = self.chid

    def poll(self, evt: float = 1.0e-4, iot: float = 1.0) -> None:
        """Give other threads a moment (pyepics' event pump; nothing to pump here)."""
        ca.poll(evt=evt, iot=iot)

    # -- reading ------------------------------------------------------------------------------
    def get(
        self,
        count: int | None = None,
        as_string: bool = False,
        as_numpy: bool = True,
        timeout: float | None = None,
        with_ctrlvars: bool = False,
        use_monitor: bool = True,
    ) -> Any:
        """Return the value; None when not connected or on timeout.

        Parameters
        ----------
        count : int, optional
            At most this many elements.
        as_string : bool
            Return :attr:`char_value` instead.
        as_numpy : bool
            Arrays as numpy arrays (else lists).
        timeout : float, optional
            Seconds to wait for connecting and for the reply (default for the
            reply: ``1 + log10(count)``).
        with_ctrlvars : bool
            Fetch the control fields too.
        use_monitor : bool
            Use the monitor's latest value when there is one (else read).

        Raises
        ------
        compat.ca.ChannelAccessGetFailure
            The server refused the read.
        """
        data = self.get_with_metadata(
            count=count,
            as_string=as_string,
            as_numpy=as_numpy,
            timeout=timeout,
            with_ctrlvars=with_ctrlvars,
            use_monitor=use_monitor,
        )
        return data["value"] if isinstance(data, dict) else None

    def get_with_metadata(
        self,
        count: int | None = None,
        as_string: bool = False,
        as_numpy: bool = True,
        timeout: float | None = None,
        with_ctrlvars: bool = False,
        form: str | None = None,
        use_monitor: bool = True,
        as_namespace: bool = False,
    ) -> dict[str, Any] | SimpleNamespace | None:
        """Return a dict of the value (key ``'value'``) and its metadata, or None.

        The keys are those of the read made ('time': status, severity,
        timestamp ...; 'ctrl': limits, precision, units ...), or every known
        field when the monitor's value is used.  *form* overrides the PV's
        form for this read; *as_namespace* returns a SimpleNamespace.
        """
        if not self.wait_for_connection(timeout=timeout):
            return None
        if form is None:
            form = self.form
            ftype = self.ftype
        else:
            ftype = _convert.promote(self._ntype, form)
        if with_ctrlvars and self.units is None and form == "ctrl":
            self.get_ctrlvars()
        self._refresh()
        stale = self._stale()
        args = self._args
        value = args["value"]
        try:
            cached_length = len(value)
        except TypeError:
            cached_length = 1
        if (
            not use_monitor
            or not self._auto_monitor
            or self._monref is None
            or ftype != self.ftype
            or value is None
            or stale
            or (count is not None and count > cached_length)
        ):
            if count is None and self._user_max_count:
                count = self._user_max_count
            writes = _runtime.writes.get(self._eng, 0)
            metad = self._read(ftype, count, timeout, as_numpy)
            if metad is None:
                return None
            if ftype == self.ftype:
                self._seen_writes = writes
            args.update(metad)
            self._charval_dirty = True
            if with_ctrlvars and form != "ctrl":
                metad = self._args_copy()
            val = metad["value"]
        else:
            metad = self._args_copy()
            val = metad["value"]
        if as_string:
            metad["value"] = self._set_charval(val, force_long_string=as_string)
        elif self.nelm > 1 and val is not None:
            metad["value"] = _convert.shape_for_get(val, self.nelm, count, as_numpy)
        if as_namespace:
            return SimpleNamespace(**metad)
        return metad

    def _read(
        self, ftype: int | None, count: int | None, timeout: float | None, as_numpy: bool
    ) -> dict[str, Any] | None:
        """One read of type *ftype*: a metadata dict with ``'value'``, or None (with a warning)."""
        eng = self._chan()
        nelm = eng.native_data_count or 0
        req = 0 if count is None else min(count, nelm)
        if timeout is None:
            timeout = 1.0 + log10(max(1, req or nelm))
        try:
            resp = eng.read(data_type=ftype, data_count=req or None, timeout=max(timeout, 0.0))
        except RemoteError as exc:
            raise ca.ChannelAccessGetFailure(
                f"Get failed; status code: {exc.status}", chid=self.chid, status=exc.status
            ) from None
        except AccessDeniedError:
            raise ca.CASeverityException("get", ca.message(368)) from None
        except (CATimeoutError, DisconnectedError, CAError):
            warnings.warn(f"ca.get('{self.pvname}') timed out after {timeout:.2f} seconds.", stacklevel=3)
            return None
        ftype = int(resp.data_type) if ftype is None else ftype
        out = _convert.metadata(resp.metadata, ftype) if ftype >= dbr.TIME_STRING else {}
        out["value"] = _convert.unpack(resp.data, self._ntype, nelm, req, as_numpy)
        return out

    def _meta(self, form: str, timeout: float) -> dict[str, Any] | None:
        if not self.wait_for_connection():
            return None
        eng = self._chan()
        ftype = _convert.promote(self._ntype, form)
        try:
            resp = eng.read(data_type=ftype, data_count=1, timeout=max(timeout, 0.0))
        except RemoteError as exc:
            raise ca.ChannelAccessGetFailure(
                f"Get failed; status code: {exc.status}", chid=self.chid, status=exc.status
            ) from None
        except AccessDeniedError:
            raise ca.CASeverityException("get", ca.message(368)) from None
        except CAError:
            warnings.warn(f"ca.get('{self.pvname}') timed out after {timeout:.2f} seconds.", stacklevel=3)
            return None
        kwds = _convert.metadata(resp.metadata, ftype)
        self._args.update(kwds)
        return kwds

    def get_ctrlvars(self, timeout: float = 5, warn: bool = True) -> dict[str, Any] | None:
        """Read the control fields (limits, precision, units, enum strings); a dict or None."""
        kwds = self._meta("ctrl", timeout)
        if kwds is not None:
            self.force_read_access_rights()
        return kwds

    def get_timevars(self, timeout: float = 5, warn: bool = True) -> dict[str, Any] | None:
        """Read status, severity and time stamp; a dict or None."""
        return self._meta("time", timeout)

    def _args_copy(self) -> dict[str, Any]:
        self._refresh()
        self._sync_access()
        if self._charval_dirty:
            self._set_charval(self._args["value"], call_ca=False)
        return self._args.copy()

    def _set_charval(self, val: Any, call_ca: bool = True, force_long_string: bool = False) -> Any:
        """Compute, store and return the string form of *val* (see ``_convert.char_value``)."""
        args = self._args
        self._charval_dirty = False
        if val is None:
            args["char_value"] = "None"
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
        args["char_value"] = cval
        if type(precision) is int and ntype in (dbr.FLOAT, dbr.DOUBLE) and args["nelm"] == 1:
            self._float_fmt = (precision, f"%.{precision}f", f"%.{precision}g")  # (for the monitor path)
        return cval

    # -- writing ------------------------------------------------------------------------------
    def put(
        self,
        value: Any,
        wait: bool = False,
        timeout: float = 30.0,
        use_complete: bool = False,
        callback: Callable[..., Any] | None = None,
        callback_data: Any = None,
    ) -> int | None:
        """Write a value.

        Parameters
        ----------
        value
            Number, string (an enum state name, or text for a CHAR array),
            sequence or numpy array.
        wait : bool
            Wait until the server reports the put (and its processing) done.
        timeout : float
            Seconds to wait with *wait*.
        use_complete : bool
            Track completion in :attr:`put_complete`.
        callback : callable, optional
            ``callback(pvname=, **callback_data)`` (or ``data=callback_data``
            when it is not a dict) once the put completes.
        callback_data : optional

        Returns
        -------
        int or None
            1 on success, -1 if *wait* timed out, None when not connected.

        Raises
        ------
        compat.ca.CASeverityException
            No write access, or a string the server cannot take.
        TypeError, ValueError
            The value cannot be converted to the PV's type.
        """
        if not self.wait_for_connection():
            return None
        if self._ntype == dbr.ENUM and isinstance(value, str):
            if self._args["enum_strs"] is None:
                self.get_ctrlvars()
            strs = self._args["enum_strs"] or ()
            if value in strs:
                value = strs.index(value)

        user_callback = callback
        self._put_complete = False if use_complete else None

        def on_complete(pvname: str | None = None, **kws: Any) -> None:
            self._put_complete = True
            if user_callback is not None:
                user_callback(pvname=pvname, **kws)

        done = on_complete if (use_complete or callback is not None) else None
        return _put(self, value, wait, timeout, done, callback_data)

    @property
    def put_complete(self) -> bool | None:
        """True once the last ``use_complete`` put finished (None if it did not use it)."""
        return self._put_complete

    # -- callbacks ----------------------------------------------------------------------------
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
            self.callbacks[index] = (callback, kw)
            self._update_hold()
        if run_now:
            self.get(as_string=True)
            if self.connected:
                self.run_callback(index)
        return index

    def remove_callback(self, index: Any = None) -> None:
        """Remove the value callback at *index* (unknown indexes are ignored)."""
        if index in self.callbacks:
            self.callbacks.pop(index, None)
            self._update_hold()

    def clear_callbacks(self, with_access_callback: bool = False, with_connect_callback: bool = False) -> None:
        """Remove all value callbacks (and optionally access and connection callbacks)."""
        self.callbacks.clear()
        if with_access_callback:
            self.access_callbacks = []
        if with_connect_callback:
            self.connection_callbacks = []
        self._update_hold()

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
        callbacks = self.callbacks
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

    # -- properties (pyepics reads missing ones from the server) ------------------------------
    def _getarg(self, arg: str) -> Any:
        self._refresh()
        self._sync_access()
        args = self._args
        if args["value"] is None or self._stale():
            self.get()
        if args.get(arg) is None:
            if arg in _TIME_ARGS:
                self.get_timevars(timeout=1, warn=False)
            else:
                self.get_ctrlvars(timeout=1, warn=False)
        if arg == "char_value" and self._charval_dirty:
            self._set_charval(args["value"], call_ca=False)
        return self._args.get(arg, None)

    @property
    def info(self) -> str | None:
        """A multi-line report of the PV (what :func:`compat.cainfo` prints)."""
        return _info.info_text(self)

    def __repr__(self) -> str:
        if not self.connected:
            return f"<PV '{self.pvname}': not connected>"
        fmt = self._fmtsca if self.count == 1 else self._fmtarr
        return fmt % self._args

    def __eq__(self, other: object) -> bool:
        try:
            return self.chid == other.chid  # type: ignore[attr-defined, no-any-return]
        except AttributeError:
            return False

    __hash__ = None  # type: ignore[assignment]  # as pyepics: PVs compare by channel and are unhashable


def _put(pv: PV, value: Any, wait: bool, timeout: float, done: Callable[..., Any] | None, data: Any) -> int | None:
    """pyepics' ``ca.put``: convert, write, optionally wait; 1, -1 or None."""
    return _write_channel(pv._chan(), pv._ntype, pv.pvname, value, wait, timeout, done, data)


def _write_channel(
    eng: Any,
    ntype: int,
    name: str,
    value: Any,
    wait: bool,
    timeout: float,
    done: Callable[..., Any] | None,
    data: Any,
) -> int | None:
    """Convert *value* for native type *ntype*, write it to the engine PV *eng*; 1, -1 or None.

    Shared by :meth:`PV.put` and :func:`compat.ca.put`.  *done* is called as
    ``done(pvname=name, **data)`` (``data=data`` when it is not a dict) once
    the put completes.
    """
    nelm = eng.native_data_count or 1
    payload, count = _convert.encode_put(value, ntype, nelm, utils.wire_encoding())
    callback = None
    if done is not None:
        kwargs = data if isinstance(data, dict) else {"data": data}

        def callback(result: Any) -> None:
            if isinstance(result, RemoteError):
                log.warning("put to %s failed on the server: %s", name, result)
            done(pvname=name, **kwargs)

    try:
        if not wait and callback is None:
            eng.write(payload, wait=False, notify=False, data_type=ntype, data_count=count)
        else:
            eng.write(
                payload, wait=wait, callback=callback, timeout=max(timeout, 0.0), data_type=ntype, data_count=count
            )
        _runtime.note_write(eng)
    except AccessDeniedError:
        raise ca.CASeverityException("put", ca.message(376)) from None
    except CATimeoutError:
        _runtime.note_write(eng)
        return -1
    except RemoteError as exc:
        # pyepics does not look at the completion status of a put
        _runtime.note_write(eng)
        log.warning("put to %s failed on the server: %s", name, exc)
        return 1
    except CAError:
        return -1 if wait else None
    return 1


def get_pv(
    pvname: str,
    form: str = "time",
    connect: bool = False,
    context: Any = None,
    timeout: float = 5.0,
    connection_callback: Callable[..., Any] | None = None,
    access_callback: Callable[..., Any] | None = None,
    callback: Callable[..., Any] | None = None,
    verbose: bool = False,
    count: int | None = None,
    auto_monitor: bool | int | None = None,
    monitor_delta: float | None = None,
) -> PV:
    """Return the cached PV for ``(pvname, form)``, creating it if needed.

    On a cache hit the given callbacks are added to the cached PV (and run
    at once if it is connected), and *auto_monitor* can switch a monitor on.
    With *connect* it waits up to *timeout* seconds and prints
    ``cannot connect to NAME`` on failure; the PV is returned either way.
    An unknown *form* means 'time'.  *context* is deprecated and only warns.
    """
    if form not in ("native", "time", "ctrl"):
        form = "time"
    if context is not None:
        warnings.warn(
            "The `context` kwarg for epics.get_pv() is deprecated. New PVs "
            "will _not_ be created in the requested context.",
            stacklevel=2,
        )
    if isinstance(pvname, PV):
        pvname = pvname.pvname
    key = (pvname, form)
    with _runtime.lock:
        thispv = _runtime.pv_cache.get(key)
    if thispv is None:
        created = default_pv_class(
            pvname,
            form=form,
            callback=callback,
            connection_callback=connection_callback,
            access_callback=access_callback,
            connection_timeout=timeout,
            count=count,
            verbose=verbose,
            auto_monitor=auto_monitor,
            monitor_delta=monitor_delta,
        )
        with _runtime.lock:
            thispv = _runtime.pv_cache.setdefault(key, created)
        if thispv is not created:
            created.disconnect()
    else:
        if connection_callback is not None:
            thispv._add_connection_callback(connection_callback)
        if access_callback is not None:
            thispv._add_access_callback(access_callback)
        if callback is not None:
            idx = thispv.add_callback(callback)
            thispv.run_callback(idx)
        if auto_monitor and not thispv.auto_monitor:
            thispv.auto_monitor = auto_monitor
    if connect and not thispv.wait_for_connection(timeout=timeout):
        ca.write(f"cannot connect to {pvname}")
    return thispv


def clear_pvcache() -> None:
    """Disconnect and forget every PV cached by :func:`get_pv`."""
    with _runtime.lock:
        cached = list(_runtime.pv_cache.values())
        _runtime.pv_cache.clear()
    for thispv in cached:
        thispv.disconnect()


#: The class :func:`get_pv` creates; scripts may replace it with a subclass.
default_pv_class = PV
#: :func:`get_pv`'s cache, ``{(name, form): PV}`` (the same dict as compat's runtime uses).
_PVcache_ = _runtime.pv_cache
