"""The channels of :mod:`compat.ca`: chids, the channel tables, chid-checking decorators, channel queries.

A *channel* (:class:`_CacheItem`) is the engine's PV for a name;
:func:`create_channel` makes one per name and process and gives its
:class:`chid_t`.  The tables (``_by_name``, ``_chid_cache`` and pyepics'
per-context ``_cache``) map names and chids to channels.  The ``with*``
decorators initialize Channel Access and turn a chid argument into its
channel's :class:`chid_t` (or raise).

Threads: the public functions run in the caller's thread; a channel's
connection and access-rights callbacks run on engine callback threads
(:meth:`_CacheItem._on_connection`, :meth:`_CacheItem._on_access`).

State and locks: the tables are the runtime's
(:data:`compat._runtime.RUNTIME`, bound here once: they are never rebound),
guarded by ``RUNTIME.lock``; each channel's ``lock`` guards its get slots
and engine binding and comes before ``RUNTIME.lock`` in the lock order (see
:mod:`compat._runtime`).  Nothing waits, calls the engine or runs user code
while holding either.  ``RUNTIME.libca``, ``RUNTIME.tls`` and the settings
(``SETTINGS.DEFAULT_CONNECTION_TIMEOUT``) are read at call time, so that
scripts may change the settings at any time.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from caclient import CAError

from . import dbr
from ._ca_context import use_initial_context, withCA
from ._ca_messages import ChannelAccessException, write
from ._runtime import FINALIZED, RUNTIME, SETTINGS

if TYPE_CHECKING:
    from ._ca_io import _GetSlot

P = ParamSpec("P")
R = TypeVar("R")

#: libca's channel states (``ca_state``).
CS_NEVER_CONN = 0
CS_PREV_CONN = 1
CS_CONN = dbr.CS_CONN
CS_CLOSED = 3

_ACCESS = ("no access", "read-only", "write-only", "read/write")


class chid_t(int):
    """A channel identifier: an ``int`` with pyepics' ``.value``.

    Equal to, and hashing like, the plain int of the same value (which is
    also :attr:`compat.PV.chid` for the same name).
    """

    __slots__ = ()
    __module__ = "compat.ca"  # (where scripts find it, and where reprs and pickles name it)

    @property
    def value(self) -> int:
        """The identifier as a plain int (as ``ctypes.c_long.value``)."""
        return int(self)

    def __repr__(self) -> str:
        return f"chid_t({int(self)})"


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
        if eng is not None and self._gen == RUNTIME.generation:
            return eng
        ctx = RUNTIME.context()
        gen = RUNTIME.generation
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
        if eng is not None and tokens is not None and gen == RUNTIME.generation:
            eng.connection_state_callback.remove_callback(tokens[0])
            eng.access_rights_callback.remove_callback(tokens[1])

    def forget_engine(self) -> None:
        """In a forked child: drop the inherited engine binding and get slots, never touching the engine."""
        self.lock = threading.Lock()
        self._eng, self._tokens, self._gen = None, None, -1
        self.gets = {}
        self.conn = False

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


# -- the tables (the runtime's, guarded by RUNTIME.lock; mutated in place, never rebound)
#: ``{context: {pvname: entry}}`` as pyepics keeps it (here one table, under the initial context).
_cache: dict[int | None, dict[str, _CacheItem]] = RUNTIME.ca_cache  # type: ignore[assignment]
#: ``{chid: entry}``.
_chid_cache: dict[int, _CacheItem] = RUNTIME.chid_cache  # type: ignore[assignment]
_by_name: dict[str, _CacheItem] = RUNTIME.by_name  # type: ignore[assignment]
_clear_cache_callbacks: dict[int, Callable[[], None]] = RUNTIME.clear_cache_callbacks


def _call_safely(func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        func(*args, **kwargs)
    except Exception:
        import logging

        logging.getLogger("compat").exception("exception in callback %r", func)


# -- decorators ------------------------------------------------------------------------------------
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


def _chid_guard(fcn: Callable[P, R], connect: bool, required: bool) -> Callable[P, R | None]:
    """The wrapper of the ``with*CHID`` decorators.

    It returns None after :func:`finalize_libca`, turns the first argument
    into its channel's chid (or raises), and with *connect* waits for the
    connection up to the call's ``timeout`` (default
    ``SETTINGS.DEFAULT_CONNECTION_TIMEOUT``), raising ChannelAccessException when
    the connection is *required* and does not come.
    """

    @functools.wraps(fcn)
    def wrapper(*args: Any, **kwds: Any) -> R | None:
        if RUNTIME.libca is FINALIZED:
            return None
        args = _as_chid(fcn.__name__, args)
        if connect and args and not isConnected(args[0]):
            timeout = kwds.get("timeout", SETTINGS.DEFAULT_CONNECTION_TIMEOUT)
            if not connect_channel(args[0], timeout=timeout) and required:
                raise ChannelAccessException(
                    f"{fcn.__name__}() timed out waiting '{name(args[0])}' to connect ({timeout:.0f} seconds)"
                )
        return fcn(*args, **kwds)

    return wrapper


def withCHID(fcn: Callable[P, R]) -> Callable[P, R | None]:
    """Check that the first argument is a known chid (an int is accepted too)."""
    return _chid_guard(fcn, connect=False, required=False)


def withConnectedCHID(fcn: Callable[P, R]) -> Callable[P, R | None]:
    """As :func:`withCHID`, and wait for the connection (raise ChannelAccessException if none)."""
    return _chid_guard(fcn, connect=True, required=True)


def withMaybeConnectedCHID(fcn: Callable[P, R]) -> Callable[P, R | None]:
    """As :func:`withCHID`, and wait a while for the connection (going on without one)."""
    return _chid_guard(fcn, connect=True, required=False)


def withInitialContext(fcn: Callable[P, R]) -> Callable[P, R]:
    """Call :func:`use_initial_context` before *fcn* (harmless here: every thread works)."""

    @functools.wraps(fcn)
    def wrapper(*args: P.args, **kwds: P.kwargs) -> R:
        use_initial_context()
        return fcn(*args, **kwds)

    return wrapper


# -- the channel tables ----------------------------------------------------------------------------
def _lookup(chid: int) -> _CacheItem | None:
    entry = _chid_cache.get(chid)
    if entry is not None:
        return entry
    # A compat.PV's chid (the same number for the same name): adopt its channel.
    with RUNTIME.lock:
        candidates = list(RUNTIME.pv_cache.values()) + list(RUNTIME.keepalive.values())
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
    with RUNTIME.lock:
        if _by_name.get(entry.pvname) is entry:
            del _by_name[entry.pvname]
        _chid_cache.pop(int(entry.chid), None)
        for table in _cache.values():
            if table.get(entry.pvname) is entry:
                del table[entry.pvname]
    entry.unbind()


def _clear_channels() -> None:
    with RUNTIME.lock:
        entries = list(_by_name.values())
    for entry in entries:
        _drop(entry)


def show_cache(print_out: bool = True) -> str | None:
    """List the channels: name, chid/context and whether connected (printed, or returned)."""
    lines = ["#  PVName        ChannelID/Context Connected?", "#--------------------------------------------"]
    with RUNTIME.lock:
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
        Wait for the connection (up to :data:`~compat.ca.DEFAULT_CONNECTION_TIMEOUT`).
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
        ctx = RUNTIME.context()
        (eng,) = ctx.get_pvs(pvname)
        with RUNTIME.lock:
            entry = _by_name.get(pvname)
            if entry is None:
                entry = _CacheItem(pvname, id(eng), getattr(RUNTIME.tls, "context", None))
                if callable(callback):
                    entry.callbacks.append(callback)
                _by_name[pvname] = entry
                _chid_cache[int(entry.chid)] = entry
                initial = RUNTIME.initial_context
                if initial is not None:
                    _cache.setdefault(initial, {})[pvname] = entry
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
    """Wait up to *timeout* s (default :data:`~compat.ca.DEFAULT_CONNECTION_TIMEOUT`); return whether connected."""
    entry = _entry(chid)
    eng = entry.engine()
    if verbose:
        write(f" connect channel -> {chid!r} {state(chid)!r} {dbr.CS_CONN!r} ")
    if eng.connected:
        return True
    if timeout is None:
        timeout = SETTINGS.DEFAULT_CONNECTION_TIMEOUT
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
    return RUNTIME.host_name(eng.server_address) if eng.connected else "<disconnected>"  # type: ignore[return-value]


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
