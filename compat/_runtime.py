"""The only process-global state of compat.

* the default :class:`caclient.Context`, created on first use with the
  ``EPICS_CA_*`` settings of ``os.environ`` at that moment;
* ``pv_cache``: :func:`compat.get_pv`'s PVs by ``(name, form, context)``;
* ``monitors``: the PVs :func:`compat.camonitor` watches (``compat._PVmonitors_``);
* ``keepalive``: PV objects that have user callbacks.  compat registers its
  own engine callbacks weakly, so a PV nobody refers to is freed; a PV with
  callbacks must keep running even when the script dropped it (as in
  pyepics), and this is what holds it;
* ``writes``: puts made per channel, so that a PV reads again after a put
  instead of returning a monitor value that may predate it;
* ``generation``: bumped whenever the Context is dropped, so that PV objects
  made before notice and attach to the new one.

One lock, :data:`lock`, guards all of it.  It is a leaf lock: nothing blocks,
waits or calls into the engine while holding it, except creating the Context.

Lifecycle: the Context is closed at interpreter exit.  In a child made by
``fork()`` the inherited Context is forgotten, not closed: its sockets are
the parent's too and its threads do not exist here; the child builds a fresh
Context when it first needs one.  :func:`_reset` (for tests) closes the
Context and empties the caches.
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import weakref
from typing import Any

from caclient import Context

from . import utils

#: Number of callback worker threads of the default Context.  One keeps each
#: PV's callbacks in order at the lowest cost; callbacks may still block.
CALLBACK_WORKERS = 1

lock = threading.Lock()
generation = 0
pv_cache: dict[tuple[str, str, Any], Any] = {}
monitors: dict[str, Any] = {}
keepalive: dict[int, Any] = {}
hostnames: dict[str, str] = {}
#: Puts made per channel (caclient PV): a PV that read its channel before the
#: latest put reads it again instead of trusting its monitor, which may lag.
writes: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

_context: Context | None = None


def context() -> Context:
    """Return the default Context, creating it on first use."""
    global _context
    ctx = _context
    if ctx is not None:
        return ctx
    with lock:
        if _context is None:
            _context = Context(timeout=2.0, max_workers=CALLBACK_WORKERS, encoding=utils.wire_encoding())
        return _context


def current_generation() -> int:
    """The generation of the current default Context."""
    return generation


def hold(obj: Any) -> None:
    """Keep *obj* alive (it has user callbacks)."""
    with lock:
        keepalive[id(obj)] = obj


def release(obj: Any) -> None:
    """Stop keeping *obj* alive."""
    with lock:
        if keepalive.get(id(obj)) is obj:
            del keepalive[id(obj)]


def note_write(channel: Any) -> None:
    """Count a put to *channel* (see :data:`writes`)."""
    with lock:
        writes[channel] = writes.get(channel, 0) + 1


def host_name(address: tuple[str, int] | None) -> str | None:
    """``'name:port'`` for a server address, the name from a (cached) reverse lookup."""
    if address is None:
        return None
    key = f"{address[0]}:{address[1]}"
    text = hostnames.get(key)
    if text is None:  # (one string per server, shared by its PVs)
        try:  # (no lock held: the lookup may be slow)
            name = socket.gethostbyaddr(address[0])[0]
        except OSError:
            name = address[0]
        with lock:
            text = hostnames.get(key)
            if text is None:
                text = hostnames[key] = f"{name}:{address[1]}"
    return text


def _forget() -> Context | None:
    global _context, generation
    ctx, _context = _context, None
    generation += 1
    pv_cache.clear()
    monitors.clear()
    keepalive.clear()
    writes.clear()
    return ctx


def _reset(timeout: float = 2.0) -> None:
    """Close the default Context and empty every cache (for tests)."""
    with lock:
        ctx = _forget()
    if ctx is not None:
        ctx.close(timeout=timeout)


def _close_at_exit() -> None:
    ctx = _context
    if ctx is not None:
        try:
            ctx.close(timeout=1.0)
        except Exception:  # never print at interpreter exit
            pass


def _after_fork_in_child() -> None:
    # The lock may have been held by another thread at fork time: replace it.
    global lock
    lock = threading.Lock()
    _forget()  # the inherited Context is dropped, never closed (see module docstring)


atexit.register(_close_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
