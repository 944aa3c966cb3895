"""compat's process state: one :class:`Runtime` object, :data:`RUNTIME`, holds all of it.

Every piece of compat that lives for the whole process is an attribute of
:data:`RUNTIME` (or of its :class:`Settings`), and nothing else in compat
keeps module-level mutable state:

* the default :class:`caclient.Context`, created on first use with the
  ``EPICS_CA_*`` settings of ``os.environ`` at that moment, and its
  ``generation`` (bumped whenever the Context is dropped, so that PV objects
  and channels made before notice and attach to the new one);
* for :class:`compat.PV`: ``pv_cache`` (:func:`compat.get_pv`'s PVs by
  ``(name, form, context)``), ``monitors`` (:func:`compat.camonitor`'s
  PVs), ``keepalive`` (PV objects with user callbacks: compat registers its
  engine callbacks weakly, so this is what keeps such a PV running after the
  script dropped it, as in pyepics), ``writes`` (puts per engine channel, so
  that a PV reads again after a put instead of trusting a monitor value that
  may predate it), ``hostnames`` (reverse lookups, one per server) and
  ``dead_relays`` (the engine-side relays of PV objects that were freed,
  queued by a weakref callback, which may run inside garbage collection on
  any thread and so only appends; :meth:`Runtime.reap` removes their engine
  callbacks and monitor holds, from a thread that holds no lock);
* for :mod:`compat.ca`: ``libca`` (None, :class:`LibCA` or :data:`FINALIZED`),
  ``initial_context``, the live context handles ``contexts``, the per-thread
  context ``tls``, the channel tables ``by_name``, ``chid_cache`` and
  pyepics' per-context ``ca_cache``, the :func:`compat.ca.register_clear_cache`
  callbacks and the synchronous groups ``groups``;
* ``parts``: other process-wide holders of engine state (a facade's own
  caches, e.g. one per event loop) attached with :meth:`Runtime.attach`, so
  that they follow the same reset, fork and exit paths instead of hooks of
  their own;
* :attr:`Runtime.settings`: the :class:`Settings` a script assigns as
  ``epics.ca.NAME = value`` (:mod:`compat.ca` forwards them), read at the
  time of each call.

The tables are mutated in place and never rebound, so a module may bind one
once (``_by_name = RUNTIME.by_name``); ``lock``, ``tls`` and the scalars are
read from :data:`RUNTIME` at call time.

Lock order
----------
There are two levels, always taken in this order:

1. object locks: a :class:`compat.PV`'s ``_lock``, a ``ca`` channel entry's
   ``lock``, a synchronous group's ``_lock``;
2. :attr:`Runtime.lock`, which guards every table above and the Context
   slot.

A thread holding an object lock may take :attr:`Runtime.lock`; a thread
holding :attr:`Runtime.lock` takes no object lock and no second level-1
lock.  Holding :attr:`Runtime.lock`, code only reads and writes the tables,
except :meth:`Runtime.context`, which builds the Context under it (the
engine's own locks nest below).  Nothing waits, does I/O or runs user code
under either level.

Lifecycle
---------
* :meth:`Runtime.reset` (one reset, used by :func:`compat.ca.clear_cache`,
  :func:`compat.ca.finalize_libca` and the tests) closes the Context and
  restores every table to its state before first use.  The settings are the
  script's choice and survive it.
* One ``fork()`` hook (:meth:`Runtime.after_fork_in_child`): the child
  forgets the inherited Context, never closing it (its sockets are the
  parent's too and its threads do not exist here), replaces every lock (one
  may have been held by a thread that does not exist in the child) and
  empties the tables; it keeps the ``ca`` channel names, so chids the child
  inherited bind to its own engine by name on first use.  The parent is
  untouched.
* One ``atexit`` hook (:meth:`Runtime.at_exit`) closes the Context; with
  ``ca.AUTO_CLEANUP`` (default) it also finalizes ``ca`` first, as pyepics'
  ``finalize_libca`` at exit.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from caclient import Context

from . import dbr, utils

__all__ = ["CALLBACK_WORKERS", "FINALIZED", "RUNTIME", "SETTINGS", "LibCA", "Part", "Runtime", "Settings", "context"]

#: Number of callback worker threads of the default Context.  One keeps each
#: PV's callbacks in order at the lowest cost; callbacks may still block.
CALLBACK_WORKERS = 1

#: What :attr:`Runtime.libca` holds after :func:`compat.ca.finalize_libca`.
FINALIZED: Any = object()


class LibCA:
    """What ``ca.libca`` holds once Channel Access is initialized (there is no C library)."""

    def __repr__(self) -> str:
        return "<compat libca: caclient engine>"


class Settings:
    """The module settings of :mod:`compat.ca`, read at the time of each call.

    A script changes them on the module (``epics.ca.AUTOMONITOR_MAXLENGTH =
    2**20``); :mod:`compat.ca` forwards reads and writes of these names here.
    """

    __slots__ = (
        "AUTOMONITOR_MAXLENGTH",
        "AUTO_CLEANUP",
        "DEFAULT_CONNECTION_TIMEOUT",
        "DEFAULT_SUBSCRIPTION_MASK",
        "HAS_NUMPY",
        "PREEMPTIVE_CALLBACK",
        "WITH_CA_MESSAGES",
    )

    def __init__(self) -> None:
        #: pyepics' switch for libca's preemptive callbacks.  compat's callbacks
        #: always run on worker threads; the value is kept for scripts that read it.
        self.PREEMPTIVE_CALLBACK: bool = True
        #: With True (default) ``finalize_libca`` runs at interpreter exit.
        self.AUTO_CLEANUP: bool = True
        #: Kept for scripts that set it; compat prints no libca messages.
        self.WITH_CA_MESSAGES: bool = False
        #: A PV with this many elements or more is not monitored unless asked for.
        self.AUTOMONITOR_MAXLENGTH: int = 65536
        #: Seconds to wait for a connection when no timeout is given.
        self.DEFAULT_CONNECTION_TIMEOUT: float = 2.0
        #: Event mask of automatic monitors: DBE_VALUE | DBE_ALARM.
        self.DEFAULT_SUBSCRIPTION_MASK: int = dbr.DBE_VALUE | dbr.DBE_ALARM
        #: numpy is always available to compat; set it False to get lists for arrays.
        self.HAS_NUMPY: bool = True


class _Channel(Protocol):
    """What the runtime needs of a ``ca`` channel entry (:class:`compat._ca_channels._CacheItem`)."""

    def unbind(self) -> None: ...

    def forget_engine(self) -> None: ...


class _Group(Protocol):
    """What the runtime needs of a synchronous group (:class:`compat._ca_sg._Group`)."""

    def reset(self) -> None: ...


class Part(Protocol):
    """A process-wide holder of engine state that follows the runtime's lifecycle (see :meth:`Runtime.attach`)."""

    def reset(self) -> None:
        """Close and forget everything (by :meth:`Runtime.reset`, no runtime lock held; idempotent)."""

    def after_fork_in_child(self) -> None:
        """Forget the inherited state without closing it, replacing any lock (in a forked child)."""

    def at_exit(self) -> None:
        """Close everything at interpreter exit (bounded in time, printing nothing)."""


class Runtime:
    """All of compat's process state (see the module docstring for the pieces and the lock order).

    ``lock`` guards every table and the Context slot.
    """

    def __init__(self) -> None:
        self.settings = Settings()
        self.lock = threading.Lock()
        # -- the engine
        self.engine_context: Context | None = None
        self.generation = 0
        # -- compat.PV
        self.pv_cache: dict[tuple[str, str, Any], Any] = {}
        self.monitors: dict[str, Any] = {}
        self.keepalive: dict[int, Any] = {}
        self.hostnames: dict[str, str] = {}
        self.writes: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self.dead_relays: collections.deque[Any] = collections.deque()
        # -- compat.ca
        self.libca: Any = None
        self.initial_context: int | None = None
        self.contexts: set[int] = set()
        self.tls = threading.local()
        self.by_name: dict[str, _Channel] = {}
        self.chid_cache: dict[int, _Channel] = {}
        self.ca_cache: dict[int | None, dict[str, _Channel]] = {}
        self.clear_cache_callbacks: dict[int, Callable[[], None]] = {}
        self.groups: dict[int, _Group] = {}
        self.parts: list[Part] = []
        self._handles = itertools.count(0x7F3A_0000_1000, 0x1000)
        self._group_ids = itertools.count(1)

    # -- the engine ---------------------------------------------------------------------------------
    def context(self) -> Context:
        """Return the default Context, creating it on first use."""
        ctx = self.engine_context
        if ctx is not None:
            return ctx
        with self.lock:
            if self.engine_context is None:
                self.engine_context = Context(timeout=2.0, max_workers=CALLBACK_WORKERS, encoding=utils.wire_encoding())
            return self.engine_context

    # -- compat.PV ----------------------------------------------------------------------------------
    def hold(self, obj: Any) -> None:
        """Keep *obj* alive (it has user callbacks)."""
        with self.lock:
            self.keepalive[id(obj)] = obj

    def release(self, obj: Any) -> None:
        """Stop keeping *obj* alive."""
        with self.lock:
            if self.keepalive.get(id(obj)) is obj:
                del self.keepalive[id(obj)]

    def reap(self) -> None:
        """Drop the engine callbacks of freed PV objects (see ``dead_relays``); no lock may be held."""
        dead = self.dead_relays
        while dead:
            try:
                relay = dead.popleft()
            except IndexError:  # (another thread took the last one)
                return
            if relay.eng.context is self.engine_context:  # (not one inherited through fork())
                relay.drop()

    def note_write(self, channel: Any) -> None:
        """Count a put to *channel* (see ``writes``)."""
        with self.lock:
            self.writes[channel] = self.writes.get(channel, 0) + 1

    def host_name(self, address: tuple[str, int] | None) -> str | None:
        """``'name:port'`` for a server address, the name from a (cached) reverse lookup."""
        if address is None:
            return None
        key = f"{address[0]}:{address[1]}"
        text = self.hostnames.get(key)
        if text is None:  # (one string per server, shared by its PVs)
            try:  # (no lock held: the lookup may be slow)
                name = socket.gethostbyaddr(address[0])[0]
            except OSError:
                name = address[0]
            with self.lock:
                text = self.hostnames.get(key)
                if text is None:
                    text = self.hostnames[key] = f"{name}:{address[1]}"
        return text

    # -- compat.ca ----------------------------------------------------------------------------------
    def new_context_handle(self) -> int:
        """A new ``ca`` context handle, registered live; the first becomes ``initial_context``."""
        with self.lock:
            handle = next(self._handles)
            self.contexts.add(handle)
            if self.initial_context is None:
                self.initial_context = handle
                self.ca_cache.setdefault(handle, {}).update(self.by_name)
            return handle

    def start_libca(self) -> bool:
        """Mark ``ca`` initialized (from unset or finalized) with an initial context; True if it was not."""
        with self.lock:
            if self.libca is not None and self.libca is not FINALIZED:
                return False
            self.libca = LibCA()
            handle = next(self._handles)
            self.contexts.add(handle)
            self.initial_context = handle
            self.ca_cache.setdefault(handle, {})
        self.tls.context = handle
        return True

    def new_group_id(self) -> int:
        """The id for a new synchronous group."""
        with self.lock:
            return next(self._group_ids)

    def attach(self, part: Part) -> None:
        """Have *part* follow the runtime's reset, fork and exit paths (once; it stays attached)."""
        with self.lock:
            if not any(p is part for p in self.parts):
                self.parts.append(part)

    # -- reset, fork, exit --------------------------------------------------------------------------
    def _forget(self) -> tuple[Context | None, list[_Channel]]:
        """Empty every table and drop the Context (caller holds ``lock``); return what to close."""
        ctx, self.engine_context = self.engine_context, None
        self.generation += 1
        channels = list(self.by_name.values())
        self.pv_cache.clear()
        self.monitors.clear()
        self.keepalive.clear()
        self.hostnames.clear()
        self.writes.clear()
        self.dead_relays.clear()
        self.by_name.clear()
        self.chid_cache.clear()
        self.ca_cache.clear()
        self.clear_cache_callbacks.clear()
        self.groups.clear()
        self.contexts.clear()
        self.libca = None
        self.initial_context = None
        return ctx, channels

    def reset(self, timeout: float = 2.0) -> None:
        """Close the Context and restore every table to its state before first use (settings stay)."""
        with self.lock:
            ctx, channels = self._forget()
            self.tls = threading.local()
        for channel in channels:
            channel.unbind()
        for part in list(self.parts):
            part.reset()
        if ctx is not None:
            ctx.close(timeout=timeout)

    def after_fork_in_child(self) -> None:
        """The one fork hook: forget the inherited engine and state; keep the ``ca`` channel names."""
        # Any lock may have been held by a thread that does not exist here: replace them all.
        self.lock = threading.Lock()
        self.tls = threading.local()
        names = dict(self.by_name)
        chids = dict(self.chid_cache)
        callbacks = dict(self.clear_cache_callbacks)
        self._forget()  # (the inherited Context is dropped, never closed: see the module docstring)
        self.by_name.update(names)
        self.chid_cache.update(chids)
        self.clear_cache_callbacks.update(callbacks)
        for channel in names.values():
            channel.forget_engine()
        for part in self.parts:
            part.after_fork_in_child()

    def at_exit(self) -> None:
        """The one atexit hook: finalize ``ca`` (with ``AUTO_CLEANUP``) and close the Context."""
        for part in list(self.parts):
            try:
                part.at_exit()
            except Exception:  # never print at interpreter exit
                pass
        try:
            if self.settings.AUTO_CLEANUP and self.libca is not None and self.libca is not FINALIZED:
                self.reset(timeout=1.0)
                self.libca = FINALIZED
            else:
                with self.lock:
                    ctx, self.engine_context = self.engine_context, None
                    self.generation += 1
                if ctx is not None:
                    ctx.close(timeout=1.0)
        except Exception:  # never print at interpreter exit
            pass


#: The process's one runtime.
RUNTIME = Runtime()
#: Its settings (the object :mod:`compat.ca` forwards ``ca.NAME`` to).
SETTINGS = RUNTIME.settings


def context() -> Context:
    """The default Context, created on first use (:meth:`Runtime.context`)."""
    return RUNTIME.context()


def _reset(timeout: float = 2.0) -> None:
    """Reset the whole runtime (:meth:`Runtime.reset`; for tests)."""
    RUNTIME.reset(timeout)


atexit.register(RUNTIME.at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=RUNTIME.after_fork_in_child)
