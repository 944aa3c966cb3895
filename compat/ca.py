"""pyepics' low-level ``epics.ca`` module, on top of caclient.

Theory of operation
-------------------
pyepics' ``ca`` layer wraps libca: channels are ``chid`` handles, contexts
belong to threads, and the event loop must be polled.  Here there is one
caclient engine per process (the default Context of :mod:`compat._runtime`,
shared with :class:`compat.PV`), its own threads do all the I/O, and any
Python thread may call anything:

* a *channel* is the engine's PV for a name.  :func:`create_channel` gives
  one :class:`chid_t` per name and process (an ``int`` subclass whose value
  is the same number as :attr:`compat.PV.chid` for that name), so chids are
  hashable, comparable and good dict keys, and every function taking a chid
  also takes that int;
* *contexts* are bookkeeping only.  :func:`current_context`,
  :func:`create_context`, :func:`attach_context`, :func:`detach_context`,
  :func:`destroy_context` and :func:`use_initial_context` give the values a
  pyepics script sees (an int per context, ``None`` in a thread that has
  none), but all of them share the one engine, so no choice of calls can
  leave a thread without Channel Access or crash the process;
* :func:`poll`, :func:`pend_io`, :func:`pend_event` and :func:`flush_io`
  have nothing to pump: requests are sent when made.

Settings are plain module attributes read at the time of each call, so a
script may change them at any time, e.g.
``compat.ca.AUTOMONITOR_MAXLENGTH = 2**20``.

Locks: :data:`_lock` guards the channel and context tables; each channel
entry has its own ``lock`` for its get slots.  Both are leaves: nothing
waits, calls the engine or runs user code while holding them.

After ``fork()`` the child forgets the engine and every context (see
:func:`_after_fork_in_child`); chids the child inherited attach to the
child's own engine by name on first use.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from math import log10
from typing import Any, ParamSpec, TypeVar

import numpy as np

from caclient import AccessDeniedError, CAError, RemoteError

from . import _convert, _runtime, dbr

P = ParamSpec("P")
R = TypeVar("R")

#: pyepics' switch for libca's preemptive callbacks.  compat's callbacks
#: always run on worker threads; the value is kept for scripts that read it.
PREEMPTIVE_CALLBACK = True
#: With True (default) :func:`finalize_libca` runs at interpreter exit.
AUTO_CLEANUP = True
#: Kept for scripts that set it; compat prints no libca messages.
WITH_CA_MESSAGES = False
#: A PV with this many elements or more is not monitored unless asked for.
AUTOMONITOR_MAXLENGTH = 65536
#: Seconds to wait for a connection when no timeout is given.
DEFAULT_CONNECTION_TIMEOUT = 2.0
#: Event mask of automatic monitors: DBE_VALUE | DBE_ALARM.
DEFAULT_SUBSCRIPTION_MASK = dbr.DBE_VALUE | dbr.DBE_ALARM
#: numpy is always available to compat; set it False to get lists for arrays.
HAS_NUMPY = True

_MESSAGES = {
    dbr.ECA_NORMAL: "Normal successful completion",
    dbr.ECA_TIMEOUT: "User specified timeout on IO operation expired",
    186: "Invalid string",
    368: "Read access denied",
    376: "Write access denied",
}

#: libca's channel states (``ca_state``).
CS_NEVER_CONN = 0
CS_PREV_CONN = 1
CS_CONN = dbr.CS_CONN
CS_CLOSED = 3

_ECA_ISATTACHED = dbr.ECA_ISATTACHED
_ECA_BADCONTEXT = 504  # (no such context) what libca would answer instead of crashing
_ACCESS = ("no access", "read-only", "write-only", "read/write")


class ChannelAccessException(Exception):
    """A general Channel Access error (bad value for a put, ...)."""


class ChannelAccessGetFailure(Exception):
    """The server answered a read with a failure status.

    Parameters
    ----------
    message : str
    chid : int
        The channel identifier.
    status : int
        The ECA status code sent by the server.
    """

    def __init__(self, message: str, chid: object, status: int) -> None:
        super().__init__(message)
        self.chid = chid
        self.status = status


class CASeverityException(Exception):
    """A Channel Access call returned an unexpected status.

    ``str()`` gives ``" put returned 'Write access denied'"`` as in pyepics.
    """

    def __init__(self, fcn: str, msg: str) -> None:
        super().__init__()
        self.fcn = fcn
        self.msg = msg

    def __str__(self) -> str:
        return f" {self.fcn} returned '{self.msg}'"


class _GetPending:
    """The type of :data:`GET_PENDING`."""

    def __repr__(self) -> str:
        return "GET_PENDING"


#: What a get slot holds while its reply has not come (pyepics' sentinel).
GET_PENDING = _GetPending()
Empty = _GetPending


class chid_t(int):
    """A channel identifier: an ``int`` with pyepics' ``.value``.

    Equal to, and hashing like, the plain int of the same value (which is
    also :attr:`compat.PV.chid` for the same name).
    """

    __slots__ = ()

    @property
    def value(self) -> int:
        """The identifier as a plain int (as ``ctypes.c_long.value``)."""
        return int(self)

    def __repr__(self) -> str:
        return f"chid_t({int(self)})"


class _LibCA:
    """What :data:`libca` holds once Channel Access is initialized (there is no C library)."""

    def __repr__(self) -> str:
        return "<compat libca: caclient engine>"


_FINALIZED = object()
#: None before :func:`initialize_libca`, a :class:`_LibCA` after it, a sentinel after :func:`finalize_libca`.
libca: Any = None
#: The context made by :func:`initialize_libca` (an int), or None.
initial_context: int | None = None


# -- the tables (guarded by _lock) -------------------------------------------------------------
class _GetSlot:
    """One get request's reply: :data:`GET_PENDING` until it arrives."""

    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = GET_PENDING

    def complete(self, result: Any) -> None:
        self.result = result
        self.done.set()


class _CacheItem:
    """A channel: its name, chid, engine PV, connection callbacks and get slots.

    ``lock`` guards ``gets``; the engine binding is (re)made by :meth:`engine`.
    """

    def __init__(self, pvname: str, chid: int, context: int | None) -> None:
        self.pvname = pvname
        self.chid = chid_t(chid)
        self.context = context
        self.lock = threading.Lock()
        self.callbacks: list[Callable[..., Any]] = []
        self.access_event_callback: list[Callable[..., Any]] = []
        self.conn = False
        self.ever_connected = False
        self.ts = 0.0
        self.failures = 0
        self.gets: dict[int, _GetSlot] = {}
        self._eng: Any = None
        self._gen = -1
        self._tokens: tuple[int, int] | None = None

    def __repr__(self) -> str:
        state = "connected" if self.conn else "disconnected"
        return (
            f"<_CacheItem {self.pvname!r} {state} failures={self.failures} callbacks={len(self.callbacks)} "
            f"access_callbacks={len(self.access_event_callback)} chid={int(self.chid)}>"
        )

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    @property
    def chid_int(self) -> int:
        """The channel id as a plain int."""
        return int(self.chid)

    def engine(self) -> Any:
        """The engine's PV for this name in the current default Context."""
        eng = self._eng
        if eng is not None and self._gen == _runtime.generation:
            return eng
        ctx = _runtime.context()
        gen = _runtime.current_generation()
        (eng,) = ctx.get_pvs(self.pvname)
        with self.lock:
            if self._eng is not None and self._gen == gen:
                return self._eng
            self._eng, self._gen = eng, gen
            self.gets = {}
            self.conn = False
        conn = eng.connection_state_callback.add_callback(self._on_connection, run=True)
        access = eng.access_rights_callback.add_callback(self._on_access, run=True)
        self._tokens = (conn, access)
        return eng

    def unbind(self) -> None:
        eng, tokens, gen = self._eng, self._tokens, self._gen
        self._eng, self._tokens, self._gen = None, None, -1
        if eng is not None and tokens is not None and gen == _runtime.generation:
            eng.connection_state_callback.remove_callback(tokens[0])
            eng.access_rights_callback.remove_callback(tokens[1])

    def _on_connection(self, eng: Any, state: str) -> None:
        if eng is not self._eng:
            return
        conn = state == "connected"
        if conn == self.conn:
            return
        self.conn = conn
        self.ever_connected |= conn
        self.ts = time.time()
        self.failures = 0
        self.run_connection_callbacks(conn, self.ts)

    def run_connection_callbacks(self, conn: bool, timestamp: float) -> None:
        """Call every connection callback with ``pvname=, chid=, conn=``."""
        for func in list(self.callbacks):
            if callable(func):
                _call_safely(func, pvname=self.pvname, chid=int(self.chid), conn=conn)

    def _on_access(self, eng: Any, rights: Any) -> None:
        if eng is not self._eng:
            return
        rights = int(rights)
        self.run_access_event_callbacks(bool(rights & 1), bool(rights & 2))

    def run_access_event_callbacks(self, ra: bool, wa: bool) -> None:
        """Call every access callback with ``(read_access, write_access)``."""
        for func in list(self.access_event_callback):
            if callable(func):
                _call_safely(func, ra, wa)


_lock = threading.Lock()
_tls = threading.local()
_handles = itertools.count(0x7F3A_0000_1000, 0x1000)
#: Live context handles (ints), made by initialize_libca/create_context.
_contexts: set[int] = set()
#: ``{context: {pvname: entry}}`` as pyepics keeps it (here one table, under the initial context).
_cache: dict[int | None, dict[str, _CacheItem]] = {}
#: ``{chid: entry}``.
_chid_cache: dict[int, _CacheItem] = {}
_by_name: dict[str, _CacheItem] = {}
_clear_cache_callbacks: dict[int, Callable[[], None]] = {}


def _call_safely(func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        func(*args, **kwargs)
    except Exception:
        import logging

        logging.getLogger("compat").exception("exception in callback %r", func)


# -- output and messages ---------------------------------------------------------------------------
def message(status: int) -> str:
    """Return the text of an ECA status code (libca's ``ca_message``)."""
    text = _MESSAGES.get(status)
    if text is not None:
        return text
    try:
        from caproto._status import eca_value_to_status  # error path only: keeps imports light

        return str(eca_value_to_status[status].description)
    except Exception:
        return f"ECA status {status}"


def write(msg: str, newline: bool = True, flush: bool = True) -> None:
    """Write *msg* to ``sys.stdout`` (looked up at each call)."""
    out = sys.stdout
    out.write(msg)
    if newline:
        out.write("\n")
    if flush:
        out.flush()


def version() -> str:
    """The Channel Access protocol version spoken, ``'4.13'``."""
    return "4.13"


def find_libca() -> None:
    """There is no libca: returns None."""
    return None


def find_libCom() -> None:
    """There is no libCom: returns None."""
    return None


def replace_printf_handler(writer: Callable[..., Any] | None = None) -> int:
    """Accepted for compatibility: compat prints no libca messages.  Returns ECA_NORMAL."""
    if writer is not None and not callable(writer):
        raise ChannelAccessException("argument to replace_printf_handler() must be callable")
    return dbr.ECA_NORMAL


def disable_ca_messages() -> None:
    """Accepted for compatibility (there are no libca messages)."""


def enable_ca_messages(writer: Any = "stderr") -> None:
    """Accepted for compatibility (there are no libca messages)."""


# -- decorators ------------------------------------------------------------------------------------
def withCA(fcn: Callable[P, R]) -> Callable[P, R | None]:
    """Initialize Channel Access before calling *fcn*; after :func:`finalize_libca` return None."""

    @functools.wraps(fcn)
    def wrapper(*args: P.args, **kwds: P.kwargs) -> R | None:
        lib = libca
        if lib is None:
            initialize_libca()
        elif lib is _FINALIZED:
            return None
        return fcn(*args, **kwds)

    return wrapper


def _as_chid(fname: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    if not args:
        return args
    chid = args[0]
    if not isinstance(chid, int):
        value = getattr(chid, "value", None)
        if not isinstance(value, int):
            raise ChannelAccessException(f"{fname}: not a valid chid {chid!r} {type(chid)}!")
        chid = value
    entry = _lookup(chid)
    if entry is None:
        raise ChannelAccessException("Unexpected channel ID")
    return (entry.chid, *args[1:])


def withCHID(fcn: Callable[P, R]) -> Callable[P, R | None]:
    """Check that the first argument is a known chid (an int is accepted too)."""

    @functools.wraps(fcn)
    def wrapper(*args: Any, **kwds: Any) -> R | None:
        if libca is _FINALIZED:
            return None
        return fcn(*_as_chid(fcn.__name__, args), **kwds)

    return wrapper


def withConnectedCHID(fcn: Callable[P, R]) -> Callable[P, R | None]:
    """As :func:`withCHID`, and wait for the connection (raise ChannelAccessException if none)."""

    @functools.wraps(fcn)
    def wrapper(*args: Any, **kwds: Any) -> R | None:
        if libca is _FINALIZED:
            return None
        args = _as_chid(fcn.__name__, args)
        if args and not isConnected(args[0]):
            timeout = kwds.get("timeout", DEFAULT_CONNECTION_TIMEOUT)
            if not connect_channel(args[0], timeout=timeout):
                raise ChannelAccessException(
                    f"{fcn.__name__}() timed out waiting '{name(args[0])}' to connect ({timeout:.0f} seconds)"
                )
        return fcn(*args, **kwds)

    return wrapper


def withMaybeConnectedCHID(fcn: Callable[P, R]) -> Callable[P, R | None]:
    """As :func:`withCHID`, and wait a while for the connection (going on without one)."""

    @functools.wraps(fcn)
    def wrapper(*args: Any, **kwds: Any) -> R | None:
        if libca is _FINALIZED:
            return None
        args = _as_chid(fcn.__name__, args)
        if args and not isConnected(args[0]):
            connect_channel(args[0], timeout=kwds.get("timeout", DEFAULT_CONNECTION_TIMEOUT))
        return fcn(*args, **kwds)

    return wrapper


def withInitialContext(fcn: Callable[P, R]) -> Callable[P, R]:
    """Call :func:`use_initial_context` before *fcn* (harmless here: every thread works)."""

    @functools.wraps(fcn)
    def wrapper(*args: P.args, **kwds: P.kwargs) -> R:
        use_initial_context()
        return fcn(*args, **kwds)

    return wrapper


def PySEVCHK(func_name: str, status: int, expected: int = dbr.ECA_NORMAL) -> int:
    """Return *status* if it is *expected*, else raise :class:`CASeverityException`."""
    if status == expected:
        return status
    raise CASeverityException(func_name, message(status))


def withSEVCHK(fcn: Callable[P, Any]) -> Callable[P, int]:
    """Raise :class:`CASeverityException` unless *fcn* returns ECA_NORMAL."""

    @functools.wraps(fcn)
    def wrapper(*args: P.args, **kwds: P.kwargs) -> int:
        return PySEVCHK(fcn.__name__, fcn(*args, **kwds))

    return wrapper


# -- library and contexts --------------------------------------------------------------------------
def initialize_libca() -> Any:
    """Start Channel Access: make the engine and the initial context; return :data:`libca`.

    Called on first use by every ``ca`` function, so scripts need not call
    it.  The calling thread is attached to the initial context.  Calling it
    again (or after :func:`finalize_libca`) is safe.
    """
    global libca, initial_context
    with _lock:
        if libca is None or libca is _FINALIZED:
            libca = _LibCA()
            handle = next(_handles)
            _contexts.add(handle)
            initial_context = handle
            _cache.setdefault(handle, {})
            _tls.context = handle
            first = True
        else:
            first = False
    if first and AUTO_CLEANUP:
        atexit.unregister(finalize_libca)
        atexit.register(finalize_libca)
    return libca


def finalize_libca(maxtime: float = 10.0) -> None:
    """Stop Channel Access: clear every channel and close the engine (within *maxtime* s).

    Later ``ca`` calls return None (as in pyepics, so that code running at
    interpreter exit cannot fail); :func:`initialize_libca` starts again.
    """
    global libca
    if libca is None or libca is _FINALIZED:
        return
    _clear_channels()
    _runtime._reset(timeout=min(max(maxtime, 0.0), 5.0))
    with _lock:
        libca = _FINALIZED
        _contexts.clear()


def _new_context() -> int:
    global initial_context
    with _lock:
        handle = next(_handles)
        _contexts.add(handle)
        if initial_context is None:
            initial_context = handle
            _cache.setdefault(handle, {}).update(_by_name)
        return handle


@withCA
def context_create(ctx: int | None = None) -> int:
    """Give this thread a context of its own unless it has one; returns ECA_NORMAL.

    The new context is only a name for the process's one engine: channels
    and callbacks are shared with every other context.
    """
    if getattr(_tls, "context", None) is None:
        _tls.context = _new_context()
    return dbr.ECA_NORMAL


def create_context(ctx: int | None = None) -> None:
    """As :func:`context_create` (pyepics' preferred name); sets :data:`initial_context` if unset."""
    context_create(ctx)


@withCA
def context_destroy() -> int:
    """Drop this thread's context; the engine and its channels stay (returns ECA_NORMAL)."""
    handle = getattr(_tls, "context", None)
    _tls.context = None
    if handle is not None and handle != initial_context:
        with _lock:
            _contexts.discard(handle)
    return dbr.ECA_NORMAL


def destroy_context() -> int | None:
    """As :func:`context_destroy`."""
    return context_destroy()


@withCA
def attach_context(context: int | None) -> int:
    """Attach this thread to *context*.

    Returns ECA_NORMAL; ECA_ISATTACHED if the thread is attached to another
    context already (it stays there, as in libca); an error status for an
    unknown context (libca would crash).
    """
    handle: Any
    if isinstance(context, int) and not isinstance(context, bool):
        handle = int(context)
    else:
        handle = getattr(context, "value", None)
    with _lock:
        known = handle in _contexts
    if not known:
        return _ECA_BADCONTEXT
    current = getattr(_tls, "context", None)
    if current is not None and current != handle:
        return _ECA_ISATTACHED
    _tls.context = handle
    return dbr.ECA_NORMAL


@withCA
def detach_context() -> int:
    """Detach this thread from its context (it can still use CA); returns ECA_NORMAL."""
    _tls.context = None
    return dbr.ECA_NORMAL


@withCA
def use_initial_context() -> int:
    """Attach this thread to the initial context; returns ECA_NORMAL.

    Never needed here (every thread uses the one engine) and never fails:
    a thread attached to another context is moved to the initial one.
    """
    if initial_context is not None:
        with _lock:
            _contexts.add(initial_context)
        _tls.context = initial_context
    return dbr.ECA_NORMAL


@withCA
def current_context() -> int | None:
    """This thread's context (an int), or None if it has none (as in pyepics)."""
    handle: int | None = getattr(_tls, "context", None)
    return handle


@withCA
def client_status(context: Any, level: int) -> int:
    """Print a short status of the engine to stderr; returns ECA_NORMAL."""
    ctx = _runtime.context()
    sys.stderr.write(f"{ctx!r}\n")
    if level > 0:
        for circuit in ctx.circuits:
            sys.stderr.write(f"  {circuit!r}\n")
    return dbr.ECA_NORMAL


# -- event loop (nothing to pump) ------------------------------------------------------------------
def pend_event(timeout: float = 1.0e-5) -> int:
    """Let other threads run for *timeout* seconds; returns ECA_TIMEOUT.

    Nothing needs pumping: compat's engine runs in its own threads.  The
    short sleep keeps ``while True: poll()`` loops from spinning a core.
    """
    if timeout > 0:
        time.sleep(timeout)
    return dbr.ECA_TIMEOUT


def pend_io(timeout: float = 1.0) -> int:
    """Return ECA_NORMAL at once: requests are sent as they are made."""
    return dbr.ECA_NORMAL


def poll(evt: float = 1.0e-5, iot: float = 1.0) -> int:
    """pyepics' event-loop call: :func:`pend_event` then :func:`pend_io`; returns 1."""
    pend_event(evt)
    return pend_io(iot)


def flush_io() -> int:
    """Return ECA_NORMAL: requests are sent as they are made."""
    return dbr.ECA_NORMAL


def test_io() -> bool:
    """True: there is never outstanding I/O to wait for with pend_io."""
    return True


# -- the channel tables ----------------------------------------------------------------------------
def _lookup(chid: int) -> _CacheItem | None:
    entry = _chid_cache.get(chid)
    if entry is not None:
        return entry
    # A compat.PV's chid (the same number for the same name): adopt its channel.
    with _runtime.lock:
        candidates = list(_runtime.pv_cache.values()) + list(_runtime.keepalive.values())
    for thispv in candidates:
        if getattr(thispv, "chid", None) == chid:
            made = create_channel(thispv.pvname)
            return _chid_cache.get(int(made)) if made is not None else None
    return None


def get_cache(pvname: str) -> _CacheItem | None:
    """The channel entry for *pvname*, or None."""
    return _by_name.get(pvname)


def _get_cache_by_chid(chid: int) -> _CacheItem:
    entry = _lookup(int(chid))
    if entry is None:
        raise KeyError(chid)
    return entry


def _entry(chid: Any) -> _CacheItem:
    entry = _lookup(int(chid))
    if entry is None:
        raise ChannelAccessException("Unexpected channel ID")
    return entry


def _drop(entry: _CacheItem) -> None:
    with _lock:
        if _by_name.get(entry.pvname) is entry:
            del _by_name[entry.pvname]
        _chid_cache.pop(int(entry.chid), None)
        for table in _cache.values():
            if table.get(entry.pvname) is entry:
                del table[entry.pvname]
    entry.unbind()


def _clear_channels() -> None:
    with _lock:
        entries = list(_by_name.values())
    for entry in entries:
        _drop(entry)


def show_cache(print_out: bool = True) -> str | None:
    """List the channels: name, chid/context and whether connected (printed, or returned)."""
    lines = ["#  PVName        ChannelID/Context Connected?", "#--------------------------------------------"]
    with _lock:
        entries = list(_by_name.values())
    for entry in entries:
        vname = (entry.pvname + " " * 15)[:15] if len(entry.pvname) < 15 else entry.pvname
        lines.append(f" {vname} {entry.chid!r}/{entry.context!r}  {isConnected(entry.chid)}")
    text = "\n".join(lines)
    if print_out:
        write(text)
        return None
    return text


def register_clear_cache(callback: Callable[[], None]) -> None:
    """Have :func:`clear_cache` call *callback* before it clears the channels."""
    _clear_cache_callbacks[id(callback)] = callback


def clear_cache() -> None:
    """Forget every channel and PV, close the engine and start a fresh context.

    As in pyepics (and as :class:`compat.CAProcess` does in its child): a
    full reset of Channel Access for this process.  PV objects made before
    reconnect on their next use.
    """
    global initial_context
    for callback in list(_clear_cache_callbacks.values()):
        callback()
    from . import pv  # (pv imports this module)

    pv.clear_pvcache()
    _clear_channels()
    _runtime._reset()
    with _lock:
        _cache.clear()
        _contexts.clear()
    initial_context = None
    _tls.context = None
    detach_context()
    create_context()


def _reset() -> None:
    """Forget every channel and context and close the engine (for tests): as before first use."""
    global libca, initial_context, _tls
    _clear_channels()
    _runtime._reset()
    with _lock:
        libca = None
        initial_context = None
        _contexts.clear()
        _cache.clear()
    _tls = threading.local()


# -- channels --------------------------------------------------------------------------------------
@withCA
def create_channel(
    pvname: str, connect: bool = False, auto_cb: bool = True, callback: Callable[..., Any] | None = None
) -> chid_t:
    """Return the channel for *pvname* (the same chid for the same name in this process).

    Parameters
    ----------
    pvname : str
    connect : bool
        Wait for the connection (up to :data:`DEFAULT_CONNECTION_TIMEOUT`).
    auto_cb : bool
        Accepted for compatibility (connection state is always tracked).
    callback : callable, optional
        ``callback(pvname=, chid=, conn=)`` on each connection change; run
        at once if the channel is connected already.

    Returns
    -------
    chid_t
    """
    pvname = pvname.strip()
    entry = _by_name.get(pvname)
    new = False
    if entry is None:
        ctx = _runtime.context()
        (eng,) = ctx.get_pvs(pvname)
        with _lock:
            entry = _by_name.get(pvname)
            if entry is None:
                entry = _CacheItem(pvname, id(eng), getattr(_tls, "context", None))
                if callable(callback):
                    entry.callbacks.append(callback)
                _by_name[pvname] = entry
                _chid_cache[int(entry.chid)] = entry
                if initial_context is not None:
                    _cache.setdefault(initial_context, {})[pvname] = entry
                new = True
    entry.engine()
    if not new and callable(callback) and callback not in entry.callbacks:
        entry.callbacks.append(callback)
        if entry.conn:
            callback(pvname=pvname, chid=int(entry.chid), conn=True)
    if connect:
        connect_channel(entry.chid)
    return entry.chid


@withCHID
def connect_channel(chid: chid_t, timeout: float | None = None, verbose: bool = False) -> bool:
    """Wait up to *timeout* s (default :data:`DEFAULT_CONNECTION_TIMEOUT`); return whether connected."""
    entry = _entry(chid)
    eng = entry.engine()
    if verbose:
        write(f" connect channel -> {chid!r} {state(chid)!r} {dbr.CS_CONN!r} ")
    if eng.connected:
        return True
    if timeout is None:
        timeout = DEFAULT_CONNECTION_TIMEOUT
    try:
        eng.wait_for_connection(timeout=max(float(timeout), 0.0))
    except CAError:
        entry.ts = time.time()
        entry.failures += 1
        return False
    return True


@withCHID
def clear_channel(chid: chid_t) -> int:
    """Forget the channel (its chid is no longer valid); returns ECA_NORMAL.

    The network channel stays open while :class:`compat.PV` objects use the
    same name.
    """
    entry = _chid_cache.get(int(chid))
    if entry is not None:
        _drop(entry)
    return dbr.ECA_NORMAL


@withCHID
def replace_access_rights_event(chid: chid_t, callback: Callable[..., Any] | None = None) -> None:
    """Add *callback* ``(read_access, write_access)`` for access-rights changes."""
    if callback is not None:
        _entry(chid).access_event_callback.append(callback)


@withCHID
def name(chid: chid_t) -> str:
    """The PV name of a channel."""
    return _entry(chid).pvname


@withCHID
def host_name(chid: chid_t) -> str:
    """``'host:port'`` of the server, or ``'<disconnected>'``."""
    eng = _entry(chid).engine()
    return _runtime.host_name(eng.server_address) if eng.connected else "<disconnected>"  # type: ignore[return-value]


@withCHID
def element_count(chid: chid_t) -> int:
    """The channel's element count (0 when not connected)."""
    eng = _entry(chid).engine()
    return int(eng.native_data_count or 0) if eng.connected else 0


@withCHID
def read_access(chid: chid_t) -> int:
    """1 with read access, else 0."""
    return int(_entry(chid).engine().access_rights) & 1


@withCHID
def write_access(chid: chid_t) -> int:
    """1 with write access, else 0."""
    return (int(_entry(chid).engine().access_rights) >> 1) & 1


@withCHID
def field_type(chid: chid_t) -> int:
    """The native DBR type (0..6), or -1 when not connected."""
    eng = _entry(chid).engine()
    native = eng.native_data_type
    if not eng.connected or native is None:
        return -1
    return int(native)


@withCHID
def state(chid: chid_t) -> int:
    """libca's channel state: 2 connected, 1 was connected, 0 never connected."""
    entry = _entry(chid)
    if entry.engine().connected:
        return CS_CONN
    return CS_PREV_CONN if entry.ever_connected else CS_NEVER_CONN


def isConnected(chid: Any) -> bool:
    """Whether the channel is connected."""
    return bool(state(chid) == CS_CONN)


def access(chid: Any) -> str:
    """``'no access'``, ``'read-only'``, ``'write-only'`` or ``'read/write'``."""
    return _ACCESS[(read_access(chid) or 0) + 2 * (write_access(chid) or 0)]


def promote_fieldtype(ftype: int, use_time: bool = False, use_ctrl: bool = False) -> int:
    """The TIME (or CTRL) variant of a native type (CTRL_STRING reads as TIME_STRING)."""
    if use_ctrl:
        ftype += dbr.CTRL_STRING
    elif use_time:
        ftype += dbr.TIME_STRING
    if ftype == dbr.CTRL_STRING:
        ftype = dbr.TIME_STRING
    return ftype


@withCHID
def promote_type(chid: chid_t, use_time: bool = False, use_ctrl: bool = False) -> int:
    """The TIME (or CTRL) variant of the channel's native type."""
    return promote_fieldtype(field_type(chid) or 0, use_time=use_time, use_ctrl=use_ctrl)


# -- get ------------------------------------------------------------------------------------------
@withMaybeConnectedCHID
def get_with_metadata(
    chid: chid_t,
    ftype: int | None = None,
    count: int | None = None,
    wait: bool = True,
    timeout: float | None = None,
    as_string: bool = False,
    as_numpy: bool = True,
) -> dict[str, Any] | None:
    """Ask for the value; with *wait*, return it and its metadata as a dict (key ``'value'``).

    Returns None when not connected, with ``wait=False`` (then
    :func:`get_complete_with_metadata` gives the result) or on timeout (with
    a warning).  A request still pending for the same type is not sent again.

    Raises
    ------
    ChannelAccessGetFailure
        The server refused the read.
    CASeverityException
        No read access.
    """
    entry = _entry(chid)
    if ftype is None:
        ftype = field_type(chid)
    if ftype is None or ftype == -1:
        return None
    nelm = element_count(chid) or 0
    req = 0 if count is None else min(count, nelm)
    eng = entry.engine()
    with entry.lock:
        slot = entry.gets.get(ftype)
        send = slot is None or slot.done.is_set()
        if send:
            slot = entry.gets[ftype] = _GetSlot()
    if send:
        assert slot is not None
        try:
            eng.read(wait=False, callback=slot.complete, data_type=ftype, data_count=req or None)
        except AccessDeniedError:
            slot.complete(None)
            raise CASeverityException("get", message(368)) from None
        except CAError as exc:
            slot.complete(exc)
    if wait:
        # (count 0 when not given, as in pyepics: as_string then gives str(value) for enums and arrays)
        return get_complete_with_metadata(
            chid, ftype=ftype, count=req, timeout=timeout, as_string=as_string, as_numpy=as_numpy
        )
    return None


@withMaybeConnectedCHID
def get(
    chid: chid_t,
    ftype: int | None = None,
    count: int | None = None,
    wait: bool = True,
    timeout: float | None = None,
    as_string: bool = False,
    as_numpy: bool = True,
) -> Any:
    """Return the value of a channel (None if not connected, with ``wait=False``, or on timeout).

    See :func:`get_with_metadata`; ``as_string`` gives the state name of an
    enum, the text of a CHAR array and ``'<array count=N, type=T>'`` for
    other arrays.
    """
    info = get_with_metadata(chid, ftype=ftype, count=count, wait=wait, timeout=timeout, as_string=as_string,
                             as_numpy=as_numpy)  # fmt: skip
    return info["value"] if info is not None else None


@withMaybeConnectedCHID
def get_complete_with_metadata(
    chid: chid_t,
    ftype: int | None = None,
    count: int | None = None,
    timeout: float | None = None,
    as_string: bool = False,
    as_numpy: bool = True,
) -> dict[str, Any] | None:
    """Wait for the reply of an earlier get (``wait=False``, or one that timed out); a dict or None.

    Warns and returns None without an earlier get, or on timeout (default
    ``1 + log10(count)`` s).  The reply is kept: asking again gives it again.
    """
    entry = _entry(chid)
    if ftype is None:
        ftype = field_type(chid)
    nelm = element_count(chid) or 0
    count = nelm if count is None else min(count, nelm)
    with entry.lock:
        slot = entry.gets.get(ftype)  # type: ignore[arg-type]
    if slot is None:
        warnings.warn("get_complete without initial get() call", stacklevel=3)
        return None
    if timeout is None:
        timeout = 1.0 + log10(max(1, count))
    if not slot.done.wait(max(float(timeout), 0.0)):
        warnings.warn(f"ca.get('{entry.pvname}') timed out after {timeout:.2f} seconds.", stacklevel=3)
        return None
    result = slot.result
    if result is None:
        return None
    if isinstance(result, RemoteError):
        raise ChannelAccessGetFailure(f"Get failed; status code: {result.status}", chid=int(chid), status=result.status)
    if isinstance(result, BaseException):
        warnings.warn(f"ca.get('{entry.pvname}') timed out after {timeout:.2f} seconds.", stacklevel=3)
        return None
    ftype = int(ftype)  # type: ignore[arg-type]
    ntype = dbr.native_type(ftype)
    out = _convert.metadata(result.metadata, ftype) if ftype >= dbr.TIME_STRING else {}
    val = _convert.unpack(result.data, ntype, nelm, count, as_numpy and HAS_NUMPY)
    if as_string:
        val = _as_string(val, chid, count, ftype)
    out["value"] = val
    return out


@withMaybeConnectedCHID
def get_complete(
    chid: chid_t,
    ftype: int | None = None,
    count: int | None = None,
    timeout: float | None = None,
    as_string: bool = False,
    as_numpy: bool = True,
) -> Any:
    """The value of :func:`get_complete_with_metadata`, or None."""
    info = get_complete_with_metadata(chid, ftype=ftype, count=count, timeout=timeout, as_string=as_string,
                                      as_numpy=as_numpy)  # fmt: skip
    return info["value"] if info is not None else None


def _as_string(val: Any, chid: Any, count: int, ftype: int) -> Any:
    """pyepics' ``ca``-level string form (simpler than PV.char_value)."""
    try:
        if ftype in (dbr.CHAR, dbr.TIME_CHAR, dbr.CTRL_CHAR):
            return _convert.string_for_many(val, dbr.CHAR, count, None) if count < AUTOMONITOR_MAXLENGTH else str(val)
        if ftype == dbr.ENUM and count == 1:
            return _convert.string_for_many(val, dbr.ENUM, 1, get_enum_strings(chid))
        if count > 1:
            return f"<array count={count}, type={ftype}>"
        return str(val)
    except ValueError:
        return val


@withMaybeConnectedCHID
def get_ctrlvars(chid: chid_t, timeout: float = 5.0, warn: bool = True) -> dict[str, Any] | None:
    """The control fields (limits, precision, units, enum_strs, status, severity), or None."""
    ftype = promote_type(chid, use_ctrl=True)
    md = get_with_metadata(chid, ftype=ftype, count=1, timeout=timeout, wait=True)
    if md is not None:
        md.pop("value", None)
    return md


@withCHID
def get_timevars(chid: chid_t, timeout: float = 5.0, warn: bool = True) -> dict[str, Any] | None:
    """status, severity and the time stamp fields, or None."""
    ftype = promote_type(chid, use_time=True)
    md = get_with_metadata(chid, ftype=ftype, count=1, timeout=timeout, wait=True)
    if md is not None:
        md.pop("value", None)
    return md


def get_timestamp(chid: Any) -> float:
    """The time stamp of the channel's value (0 if unknown)."""
    return float((get_timevars(chid) or {}).get("timestamp", 0))


def get_severity(chid: Any) -> int:
    """The alarm severity of the channel's value (0 if unknown)."""
    return int((get_timevars(chid) or {}).get("severity", 0))


def get_precision(chid: Any) -> int | None:
    """PREC of a FLOAT/DOUBLE channel; None for other types."""
    if field_type(chid) in (dbr.FLOAT, dbr.DOUBLE):
        return (get_ctrlvars(chid) or {}).get("precision", None)
    return None


def get_enum_strings(chid: Any) -> Any:
    """The state names of an ENUM channel; None for other types."""
    if field_type(chid) == dbr.ENUM:
        return (get_ctrlvars(chid) or {}).get("enum_strs", None)
    return None


# -- put ------------------------------------------------------------------------------------------
@withConnectedCHID
def put(
    chid: chid_t,
    value: Any,
    wait: bool = False,
    timeout: float = 30,
    callback: Callable[..., Any] | None = None,
    callback_data: Any = None,
    ftype: int | None = None,
) -> int | None:
    """Write *value*; returns 1, or -1 when *wait* timed out.

    *callback* is called as ``callback(pvname=, **callback_data)`` (or
    ``data=callback_data`` when it is not a dict) once the put completes.

    Raises
    ------
    ChannelAccessException
        The channel did not connect.
    CASeverityException
        No write access.
    """
    from .pv import _write_channel  # (pv imports this module)

    entry = _entry(chid)
    eng = entry.engine()
    ntype = dbr.native_type(ftype) if ftype is not None else (field_type(chid) or 0)
    done = None
    if callable(callback):
        user = callback

        def done(pvname: str | None = None, **kws: Any) -> None:
            user(pvname=pvname, **kws)

    return _write_channel(eng, ntype, entry.pvname, value, wait, timeout, done, callback_data)


# -- subscriptions --------------------------------------------------------------------------------
class _EventID:
    """A subscription made by :func:`create_subscription` (its ``event_id``)."""

    __slots__ = ("sub", "token", "value")

    def __init__(self, sub: Any, token: int) -> None:
        self.sub = sub
        self.token = token
        self.value = id(self)

    def __repr__(self) -> str:
        return f"<event_id {self.value:#x}>"


@withCHID
def create_subscription(
    chid: chid_t,
    use_time: bool = False,
    use_ctrl: bool = False,
    ftype: int | None = None,
    mask: int | None = None,
    callback: Callable[..., Any] | None = None,
    count: int = 0,
    timeout: float | None = None,
) -> tuple[Callable[..., Any], Any, _EventID]:
    """Call *callback* on each change of the channel; returns ``(callback_ref, user_arg_ref, event_id)``.

    The callback gets ``value=, ftype=, count=, chid=, pvname=`` and the
    metadata of the type (status, severity, timestamp ... for TIME).
    Nothing happens if the tuple is dropped (pyepics crashes); pass
    ``event_id`` to :func:`clear_subscription` to stop.

    Raises
    ------
    ChannelAccessException
        *ftype* is None and the channel does not connect within *timeout*.
    """
    entry = _entry(chid)
    mask = mask or DEFAULT_SUBSCRIPTION_MASK
    if ftype is None:
        if not isConnected(chid):
            wait = DEFAULT_CONNECTION_TIMEOUT if timeout is None else timeout
            if not connect_channel(chid, timeout=wait):
                raise ChannelAccessException(
                    f"create_subscription() timed out waiting '{int(chid)}' to connect ({wait:.0f} seconds)"
                )
        ftype = field_type(chid) or 0
    ftype = promote_fieldtype(ftype, use_time=use_time, use_ctrl=use_ctrl)
    pvname = entry.pvname
    chid_int = int(chid)
    user = callback
    numpy_ok = HAS_NUMPY

    def on_update(sub: Any, resp: Any) -> None:
        if resp.status != dbr.ECA_NORMAL or not callable(user):
            return
        n = resp.data_count
        nelm = entry.engine().native_data_count or n
        kwds: dict[str, Any] = {"ftype": ftype, "count": n, "chid": chid_int, "pvname": pvname}
        if ftype >= dbr.TIME_STRING:
            kwds.update(_convert.metadata(resp.metadata, ftype))
        value = _convert.unpack(resp.data, dbr.native_type(ftype), nelm, n, numpy_ok)
        if isinstance(value, np.ndarray):
            value = value.copy()  # (the response may be shared with other subscribers)
        user(value=value, **kwds)

    sub = entry.engine().subscribe(data_type=ftype, data_count=count or None, mask=mask)
    token = sub.add_callback(on_update)
    return (on_update, user, _EventID(sub, token))


@withCA
def clear_subscription(event_id: Any) -> int:
    """Stop a subscription (its ``event_id``, or the whole tuple); returns ECA_NORMAL.

    Clearing twice, or after :func:`clear_cache`, is harmless.
    """
    if isinstance(event_id, tuple) and event_id:
        event_id = event_id[-1]
    if isinstance(event_id, _EventID):
        event_id.sub.remove_callback(event_id.token)
    return dbr.ECA_NORMAL


# -- threads -------------------------------------------------------------------------------------
class CAThread(threading.Thread):
    """A :class:`threading.Thread` that calls :func:`use_initial_context` before running.

    Kept for compatibility: every thread can use Channel Access here, so a
    plain Thread works the same.  Unlike pyepics, a CAThread started before
    the main thread made any CA call works too.
    """

    def run(self) -> None:
        use_initial_context()
        super().run()


# -- fork ----------------------------------------------------------------------------------------
def _after_fork_in_child() -> None:
    """In a forked child: forget the engine and every context; keep the channel names.

    The inherited chids bind to the child's own engine by name when next
    used (their subscriptions and pending gets are not carried over).
    """
    global _lock, _tls, libca, initial_context
    _lock = threading.Lock()
    _tls = threading.local()
    libca = None
    initial_context = None
    _contexts.clear()
    _cache.clear()
    for entry in list(_by_name.values()):
        entry.lock = threading.Lock()
        entry._eng, entry._tokens, entry._gen = None, None, -1
        entry.gets = {}
        entry.conn = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = [
    "AUTOMONITOR_MAXLENGTH",
    "AUTO_CLEANUP",
    "CAThread",
    "CASeverityException",
    "ChannelAccessException",
    "ChannelAccessGetFailure",
    "DEFAULT_CONNECTION_TIMEOUT",
    "DEFAULT_SUBSCRIPTION_MASK",
    "HAS_NUMPY",
    "PREEMPTIVE_CALLBACK",
    "PySEVCHK",
    "WITH_CA_MESSAGES",
    "access",
    "attach_context",
    "clear_cache",
    "clear_channel",
    "clear_subscription",
    "client_status",
    "connect_channel",
    "context_create",
    "context_destroy",
    "create_channel",
    "create_context",
    "create_subscription",
    "current_context",
    "destroy_context",
    "detach_context",
    "element_count",
    "field_type",
    "finalize_libca",
    "flush_io",
    "get",
    "get_cache",
    "get_complete",
    "get_complete_with_metadata",
    "get_ctrlvars",
    "get_enum_strings",
    "get_precision",
    "get_severity",
    "get_timestamp",
    "get_timevars",
    "get_with_metadata",
    "host_name",
    "initialize_libca",
    "isConnected",
    "message",
    "name",
    "pend_event",
    "pend_io",
    "poll",
    "promote_fieldtype",
    "promote_type",
    "put",
    "read_access",
    "register_clear_cache",
    "replace_access_rights_event",
    "show_cache",
    "state",
    "test_io",
    "use_initial_context",
    "version",
    "withCA",
    "withCHID",
    "withConnectedCHID",
    "withInitialContext",
    "withMaybeConnectedCHID",
    "withSEVCHK",
    "write",
    "write_access",
]
