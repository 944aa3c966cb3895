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

Code map
--------
:class:`PV` is one class assembled from mixins, each in a private module
with the part of the story it owns:

* :mod:`compat._pv_channel` (:class:`~compat._pv_channel.PVChannel`):
  binding to the engine, connection, the automatic monitor, ``_lock``;
* :mod:`compat._pv_events` (:class:`~compat._pv_events.PVEvents`): what
  runs on engine callback threads (the relay, connection/access events, the
  monitor-update hot path) and the value-callback methods;
* :mod:`compat._pv_io` (:class:`~compat._pv_io.PVReadWrite`): ``get``,
  ``put`` and the other reads and writes, in the caller's thread;
* :mod:`compat._attrs` (:class:`~compat._attrs.PVAttributes`): the
  read-only properties;
* :mod:`compat._pv_base` (:class:`~compat._pv_base.PVBase`): the typed
  declaration of the state they share.

This module holds the class itself (its slots and constructor), its
``repr``/``info``, and :func:`get_pv` with its cache.
"""

from __future__ import annotations

import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

from . import _fields as F
from . import _info, _runtime, ca
from ._callback_table import CallbackTable
from ._convert import fmt_time as fmt_time
from ._fields import Fields
from ._pv_channel import PVChannel
from ._pv_events import PVEvents
from ._pv_events import _call_safely as _call_safely  # (re-exported: these used to live here)
from ._pv_events import _Relay as _Relay
from ._pv_io import PVReadWrite
from ._pv_io import _put as _put
from ._pv_io import _write_channel as _write_channel


class PV(PVChannel, PVEvents, PVReadWrite):
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
        "_callbacks",
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
        "_verbose",
        "access_callbacks",
        "chid",
        "connection_callbacks",
        "connection_timeout",
        "context",
        "form",
        "ftype",
        "pvname",
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
        self.form: str = sys.intern(form.lower())  # (one string for every PV, not one each)
        self._verbose = verbose
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
        initial: dict[Any, tuple[Callable[..., Any], dict[str, Any]]] = {}
        if isinstance(callback, (list, tuple)):
            for i, func in enumerate(callback):
                if callable(func):
                    initial[i] = (func, {})
        elif callable(callback):
            initial[0] = (callback, {})
        self._callbacks = CallbackTable(weakref.ref(self), initial)
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
        #: The ``ca`` context the PV was made in (``ca.current_context()``, as pyepics).
        self.context: int | None = _current_context()
        self._callbacks_changed()
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

    @property
    def info(self) -> str | None:
        """A multi-line report of the PV (what :func:`compat.cainfo` prints)."""
        return self._getinfo()

    def _getinfo(self) -> str | None:
        """The text of :attr:`info` (pyepics's name; subclasses override it)."""
        return _info.info_text(self)

    def __getval__(self) -> Any:
        """The value (pyepics's getter behind :attr:`value`)."""
        return self._getarg("value")

    def __setval__(self, val: Any) -> Any:
        """Put *val* (pyepics's setter behind :attr:`value`)."""
        return self.put(val)

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

    The cache is keyed ``(pvname, form, context)``, *context* being this
    thread's :func:`compat.ca.current_context` (as in pyepics).  On a cache
    hit the given callbacks are added to the cached PV (and run at once if
    it is connected), and *auto_monitor* can switch a monitor on.  With
    *connect* it waits up to *timeout* seconds and prints ``cannot connect
    to NAME`` on failure; the PV is returned either way.  An unknown *form*
    means 'time'.  The class made is ``pv.default_pv_class``.

    Raises
    ------
    RuntimeError
        *context* (deprecated: it warns) is not this thread's context and no
        PV is cached for it, as in pyepics.
    """
    if form not in ("native", "time", "ctrl"):
        form = "time"
    if context is not None:
        warnings.warn(
            "The `context` kwarg for epics.get_pv() is deprecated. New PVs "
            "will _not_ be created in the requested context.",
            stacklevel=2,
        )
    else:
        context = _current_context()
    if isinstance(pvname, PV):
        pvname = pvname.pvname
    key = (pvname, form, context)
    with _runtime.RUNTIME.lock:
        thispv = _runtime.RUNTIME.pv_cache.get(key)
    if thispv is None:
        if context != ca.current_context():
            raise RuntimeError("PV is not in cache for user-requested context")
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
        with _runtime.RUNTIME.lock:
            thispv = _runtime.RUNTIME.pv_cache.setdefault(key, created)
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


def _current_context() -> int | None:
    """This thread's ``ca`` context, attaching it to the initial one first if it has none (as pyepics)."""
    context = ca.current_context()
    if context is None:
        ca.use_initial_context()
        context = ca.current_context()
    return context


def clear_pvcache() -> None:
    """Disconnect and forget every PV cached by :func:`get_pv`."""
    with _runtime.RUNTIME.lock:
        cached = list(_runtime.RUNTIME.pv_cache.values())
        _runtime.RUNTIME.pv_cache.clear()
    for thispv in cached:
        thispv.disconnect()


#: The class :func:`get_pv` creates; scripts may replace it with a subclass.
default_pv_class = PV
#: :func:`get_pv`'s cache, ``{(name, form, context): PV}`` as in pyepics (the dict compat's runtime uses).
_PVcache_ = _runtime.RUNTIME.pv_cache
