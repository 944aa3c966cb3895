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

Code map
--------
This module owns the settings, the process-wide state (``libca``,
``initial_context``, the contexts, ``_lock``, the per-thread context) and
the functions that change it: initialization, contexts, the event-loop
stand-ins, :func:`clear_cache`, :class:`CAThread` and the fork handler.  The
rest of pyepics' ``epics.ca`` lives in private modules and is bound here
under the same names:

* :mod:`compat._ca_messages`: exceptions, ECA messages, ``PySEVCHK``,
  output stand-ins;
* :mod:`compat._ca_channels`: chids, the channel tables, the ``with*``
  decorators, channel queries (``create_channel``, ``state`` ...);
* :mod:`compat._ca_io`: ``get`` and friends, ``put``, subscriptions.

Those modules read the settings and the state from this module object at
call time (``ca.DEFAULT_CONNECTION_TIMEOUT``, ``ca._lock`` ...), never from
a copy.
"""

from __future__ import annotations

import atexit
import itertools
import os
import sys
import threading
import time
from typing import Any

from . import _runtime, dbr

# The functions, classes and constants of pyepics' ``epics.ca`` that live in the private modules
# (each name is bound here too, so that ``compat.ca.NAME`` keeps working):
# isort: off
from ._ca_messages import (
    _MESSAGES as _MESSAGES,
    CASeverityException as CASeverityException,
    ChannelAccessException as ChannelAccessException,
    ChannelAccessGetFailure as ChannelAccessGetFailure,
    PySEVCHK as PySEVCHK,
    disable_ca_messages as disable_ca_messages,
    enable_ca_messages as enable_ca_messages,
    find_libca as find_libca,
    find_libCom as find_libCom,
    message as message,
    replace_printf_handler as replace_printf_handler,
    version as version,
    withSEVCHK as withSEVCHK,
    write as write,
)
from ._ca_channels import (
    _ACCESS as _ACCESS,
    CS_CLOSED as CS_CLOSED,
    CS_CONN as CS_CONN,
    CS_NEVER_CONN as CS_NEVER_CONN,
    CS_PREV_CONN as CS_PREV_CONN,
    _as_chid as _as_chid,
    _by_name as _by_name,
    _cache as _cache,
    _CacheItem as _CacheItem,
    _call_safely as _call_safely,
    _chid_cache as _chid_cache,
    _clear_cache_callbacks as _clear_cache_callbacks,
    _clear_channels as _clear_channels,
    _drop as _drop,
    _entry as _entry,
    _get_cache_by_chid as _get_cache_by_chid,
    _lookup as _lookup,
    access as access,
    chid_t as chid_t,
    clear_channel as clear_channel,
    connect_channel as connect_channel,
    create_channel as create_channel,
    element_count as element_count,
    field_type as field_type,
    get_cache as get_cache,
    host_name as host_name,
    isConnected as isConnected,
    name as name,
    promote_fieldtype as promote_fieldtype,
    promote_type as promote_type,
    read_access as read_access,
    register_clear_cache as register_clear_cache,
    replace_access_rights_event as replace_access_rights_event,
    show_cache as show_cache,
    state as state,
    withCA as withCA,
    withCHID as withCHID,
    withConnectedCHID as withConnectedCHID,
    withInitialContext as withInitialContext,
    withMaybeConnectedCHID as withMaybeConnectedCHID,
    write_access as write_access,
)
from ._ca_io import (
    GET_PENDING as GET_PENDING,
    Empty as Empty,
    _as_string as _as_string,
    _EventID as _EventID,
    _GetPending as _GetPending,
    _GetSlot as _GetSlot,
    clear_subscription as clear_subscription,
    create_subscription as create_subscription,
    get as get,
    get_complete as get_complete,
    get_complete_with_metadata as get_complete_with_metadata,
    get_ctrlvars as get_ctrlvars,
    get_enum_strings as get_enum_strings,
    get_precision as get_precision,
    get_severity as get_severity,
    get_timestamp as get_timestamp,
    get_timevars as get_timevars,
    get_with_metadata as get_with_metadata,
    put as put,
)
from ._ca_sg import (
    _unpack as _unpack,
    sg_block as sg_block,
    sg_create as sg_create,
    sg_delete as sg_delete,
    sg_get as sg_get,
    sg_put as sg_put,
    sg_reset as sg_reset,
    sg_test as sg_test,
)
# isort: on

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

_ECA_ISATTACHED = dbr.ECA_ISATTACHED
_ECA_BADCONTEXT = 504  # (no such context) what libca would answer instead of crashing


class _LibCA:
    """What :data:`libca` holds once Channel Access is initialized (there is no C library)."""

    def __repr__(self) -> str:
        return "<compat libca: caclient engine>"


_FINALIZED = object()
#: None before :func:`initialize_libca`, a :class:`_LibCA` after it, a sentinel after :func:`finalize_libca`.
libca: Any = None
#: The context made by :func:`initialize_libca` (an int), or None.
initial_context: int | None = None

_lock = threading.Lock()
_tls = threading.local()
_handles = itertools.count(0x7F3A_0000_1000, 0x1000)
#: Live context handles (ints), made by initialize_libca/create_context.
_contexts: set[int] = set()


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
    "sg_block",
    "sg_create",
    "sg_delete",
    "sg_get",
    "sg_put",
    "sg_reset",
    "sg_test",
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
