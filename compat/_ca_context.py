"""The library and contexts of :mod:`compat.ca`: initialization, contexts, the event-loop stand-ins.

pyepics' contexts belong to threads; here they are bookkeeping only.
:func:`current_context`, :func:`create_context`, :func:`attach_context`,
:func:`detach_context`, :func:`destroy_context` and
:func:`use_initial_context` give the values a pyepics script sees (an int
per context, ``None`` in a thread that has none), but all of them share the
process's one engine, so no choice of calls can leave a thread without
Channel Access or crash the process.  :func:`poll`, :func:`pend_io`,
:func:`pend_event` and :func:`flush_io` have nothing to pump: requests are
sent when made.

Threads: everything runs in the caller's thread.  State: all of it is the
runtime's (:data:`compat._runtime.RUNTIME`: ``libca``, ``initial_context``,
``contexts``, the per-thread ``tls``), read at call time; ``RUNTIME.lock``
guards the context set and is held only for table operations.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from . import _runtime, dbr
from ._runtime import FINALIZED, RUNTIME

P = ParamSpec("P")
R = TypeVar("R")

_ECA_ISATTACHED = dbr.ECA_ISATTACHED
_ECA_BADCONTEXT = 504  # (no such context) what libca would answer instead of crashing


def initialize_libca() -> Any:
    """Start Channel Access: make the engine and the initial context; return ``libca``.

    Called on first use by every ``ca`` function, so scripts need not call
    it.  The calling thread is attached to the initial context.  Calling it
    again (or after :func:`finalize_libca`) is safe.
    """
    RUNTIME.start_libca()
    return RUNTIME.libca


def finalize_libca(maxtime: float = 10.0) -> None:
    """Stop Channel Access: clear every channel and close the engine (within *maxtime* s).

    Later ``ca`` calls return None (as in pyepics, so that code running at
    interpreter exit cannot fail); :func:`initialize_libca` starts again.
    """
    lib = RUNTIME.libca
    if lib is None or lib is FINALIZED:
        return
    callbacks = dict(RUNTIME.clear_cache_callbacks)
    RUNTIME.reset(timeout=min(max(maxtime, 0.0), 5.0))
    with RUNTIME.lock:
        RUNTIME.libca = FINALIZED
        RUNTIME.clear_cache_callbacks.update(callbacks)


def withCA(fcn: Callable[P, R]) -> Callable[P, R | None]:
    """Initialize Channel Access before calling *fcn*; after :func:`finalize_libca` return None."""

    @functools.wraps(fcn)
    def wrapper(*args: P.args, **kwds: P.kwargs) -> R | None:
        lib = RUNTIME.libca
        if lib is None:
            RUNTIME.start_libca()
        elif lib is FINALIZED:
            return None
        return fcn(*args, **kwds)

    return wrapper


@withCA
def context_create(ctx: int | None = None) -> int:
    """Give this thread a context of its own unless it has one; returns ECA_NORMAL.

    The new context is only a name for the process's one engine: channels
    and callbacks are shared with every other context.
    """
    tls = RUNTIME.tls
    if getattr(tls, "context", None) is None:
        tls.context = RUNTIME.new_context_handle()
    return dbr.ECA_NORMAL


def create_context(ctx: int | None = None) -> None:
    """As :func:`context_create` (pyepics' preferred name); sets ``initial_context`` if unset."""
    context_create(ctx)


@withCA
def context_destroy() -> int:
    """Drop this thread's context; the engine and its channels stay (returns ECA_NORMAL)."""
    tls = RUNTIME.tls
    handle = getattr(tls, "context", None)
    tls.context = None
    if handle is not None and handle != RUNTIME.initial_context:
        with RUNTIME.lock:
            RUNTIME.contexts.discard(handle)
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
    with RUNTIME.lock:
        known = handle in RUNTIME.contexts
    if not known:
        return _ECA_BADCONTEXT
    tls = RUNTIME.tls
    current = getattr(tls, "context", None)
    if current is not None and current != handle:
        return _ECA_ISATTACHED
    tls.context = handle
    return dbr.ECA_NORMAL


@withCA
def detach_context() -> int:
    """Detach this thread from its context (it can still use CA); returns ECA_NORMAL."""
    RUNTIME.tls.context = None
    return dbr.ECA_NORMAL


@withCA
def use_initial_context() -> int:
    """Attach this thread to the initial context; returns ECA_NORMAL.

    Never needed here (every thread uses the one engine) and never fails:
    a thread attached to another context is moved to the initial one.
    """
    initial = RUNTIME.initial_context
    if initial is not None:
        with RUNTIME.lock:
            RUNTIME.contexts.add(initial)
        RUNTIME.tls.context = initial
    return dbr.ECA_NORMAL


@withCA
def current_context() -> int | None:
    """This thread's context (an int), or None if it has none (as in pyepics)."""
    handle: int | None = getattr(RUNTIME.tls, "context", None)
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
    reconnect on their next use.  The callbacks of
    :func:`compat.ca.register_clear_cache` are called first and stay registered.
    """
    callbacks = list(RUNTIME.clear_cache_callbacks.items())
    for _, callback in callbacks:
        callback()
    from . import pv  # (pv imports compat.ca, which imports this module)

    pv.clear_pvcache()
    RUNTIME.reset()
    with RUNTIME.lock:
        RUNTIME.clear_cache_callbacks.update(callbacks)
    create_context()


def _reset() -> None:
    """Forget every channel and context and close the engine (for tests): as before first use."""
    RUNTIME.reset()


class CAThread(threading.Thread):
    """A :class:`threading.Thread` that calls :func:`use_initial_context` before running.

    Kept for compatibility: every thread can use Channel Access here, so a
    plain Thread works the same.  Unlike pyepics, a CAThread started before
    the main thread made any CA call works too.
    """

    __module__ = "compat.ca"

    def run(self) -> None:
        use_initial_context()
        super().run()
