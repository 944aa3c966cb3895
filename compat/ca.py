"""pyepics' low-level ``epics.ca`` module, on top of caclient: a facade.

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
* *contexts* are bookkeeping only (see :mod:`compat._ca_context`): all of
  them share the one engine, so no choice of calls can leave a thread
  without Channel Access or crash the process;
* :func:`poll`, :func:`pend_io`, :func:`pend_event` and :func:`flush_io`
  have nothing to pump: requests are sent when made.

Settings are module attributes read at the time of each call, so a script
may change them at any time, e.g. ``compat.ca.AUTOMONITOR_MAXLENGTH =
2**20``.  They live in :data:`compat._runtime.SETTINGS`; this module's
class forwards reads and writes of their names there, and likewise of
``libca`` and ``initial_context`` (kept in :data:`compat._runtime.RUNTIME`).

Code map
--------
This module holds no state and no code of its own beyond that forwarding:
every name is bound from a private module, which take their state from
:data:`compat._runtime.RUNTIME` (locks, lock order, fork and exit handling
are described there):

* :mod:`compat._ca_messages`: exceptions, ECA messages, ``PySEVCHK``,
  output stand-ins;
* :mod:`compat._ca_context`: initialization, contexts, the event-loop
  stand-ins, :func:`clear_cache`, :class:`CAThread`;
* :mod:`compat._ca_channels`: chids, the channel tables, the ``with*``
  decorators, channel queries (``create_channel``, ``state`` ...);
* :mod:`compat._ca_io`: ``get`` and friends, ``put``, subscriptions;
* :mod:`compat._ca_sg`: synchronous groups.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from . import _runtime
from ._runtime import RUNTIME as _RUNTIME
from ._runtime import SETTINGS as _SETTINGS

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
from ._ca_context import (
    _ECA_BADCONTEXT as _ECA_BADCONTEXT,
    _ECA_ISATTACHED as _ECA_ISATTACHED,
    _reset as _reset,
    CAThread as CAThread,
    attach_context as attach_context,
    clear_cache as clear_cache,
    client_status as client_status,
    context_create as context_create,
    context_destroy as context_destroy,
    create_context as create_context,
    current_context as current_context,
    destroy_context as destroy_context,
    detach_context as detach_context,
    finalize_libca as finalize_libca,
    flush_io as flush_io,
    initialize_libca as initialize_libca,
    pend_event as pend_event,
    pend_io as pend_io,
    poll as poll,
    test_io as test_io,
    use_initial_context as use_initial_context,
    withCA as withCA,
)
from ._ca_channels import (
    _ACCESS as _ACCESS,
    CS_CLOSED as CS_CLOSED,
    CS_CONN as CS_CONN,
    CS_NEVER_CONN as CS_NEVER_CONN,
    CS_PREV_CONN as CS_PREV_CONN,
    _as_chid as _as_chid,
    _CacheItem as _CacheItem,
    _call_safely as _call_safely,
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

# The runtime's tables (mutated in place, never rebound), under pyepics' names:
_cache = _RUNTIME.ca_cache
_chid_cache = _RUNTIME.chid_cache
_by_name = _RUNTIME.by_name
_contexts = _RUNTIME.contexts
_clear_cache_callbacks = _RUNTIME.clear_cache_callbacks

_SETTING_NAMES = _runtime.Settings.__slots__

if TYPE_CHECKING:  # (at run time these names are the module class's properties, below)
    #: pyepics' switch for libca's preemptive callbacks.  compat's callbacks
    #: always run on worker threads; the value is kept for scripts that read it.
    PREEMPTIVE_CALLBACK: bool
    #: With True (default) :func:`finalize_libca` runs at interpreter exit.
    AUTO_CLEANUP: bool
    #: Kept for scripts that set it; compat prints no libca messages.
    WITH_CA_MESSAGES: bool
    #: A PV with this many elements or more is not monitored unless asked for.
    AUTOMONITOR_MAXLENGTH: int
    #: Seconds to wait for a connection when no timeout is given.
    DEFAULT_CONNECTION_TIMEOUT: float
    #: Event mask of automatic monitors: DBE_VALUE | DBE_ALARM.
    DEFAULT_SUBSCRIPTION_MASK: int
    #: numpy is always available to compat; set it False to get lists for arrays.
    HAS_NUMPY: bool
    #: None before :func:`initialize_libca`, a :class:`_LibCA` after it, a sentinel after :func:`finalize_libca`.
    libca: Any
    #: The context made by :func:`initialize_libca` (an int), or None.
    initial_context: int | None
    #: The runtime's lock (guards the channel and context tables).
    _lock: Any
    #: The per-thread context.
    _tls: Any


def _setting(name: str) -> property:
    def get(module: types.ModuleType) -> Any:
        return getattr(_SETTINGS, name)

    def put(module: types.ModuleType, value: Any) -> None:
        setattr(_SETTINGS, name, value)

    return property(get, put, doc=f"``compat._runtime.SETTINGS.{name}``")


def _state(name: str, writable: bool) -> property:
    def get(module: types.ModuleType) -> Any:
        return getattr(_RUNTIME, name)

    def put(module: types.ModuleType, value: Any) -> None:
        with _RUNTIME.lock:
            setattr(_RUNTIME, name, value)

    return property(get, put if writable else None, doc=f"``compat._runtime.RUNTIME.{name}``")


class _CAModule(types.ModuleType):
    """This module's class: its settings and state names read and write the runtime's."""

    PREEMPTIVE_CALLBACK = _setting("PREEMPTIVE_CALLBACK")
    AUTO_CLEANUP = _setting("AUTO_CLEANUP")
    WITH_CA_MESSAGES = _setting("WITH_CA_MESSAGES")
    AUTOMONITOR_MAXLENGTH = _setting("AUTOMONITOR_MAXLENGTH")
    DEFAULT_CONNECTION_TIMEOUT = _setting("DEFAULT_CONNECTION_TIMEOUT")
    DEFAULT_SUBSCRIPTION_MASK = _setting("DEFAULT_SUBSCRIPTION_MASK")
    HAS_NUMPY = _setting("HAS_NUMPY")
    libca = _state("libca", writable=True)
    initial_context = _state("initial_context", writable=True)
    _lock = _state("lock", writable=False)
    _tls = _state("tls", writable=False)


sys.modules[__name__].__class__ = _CAModule

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
