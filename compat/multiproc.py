"""``CAProcess`` and ``CAPool``: multiprocessing that uses Channel Access in the children.

compat needs no special process class: a child made by ``fork`` drops the
engine it inherited (an at-fork hook in :mod:`compat._runtime`, and the
engine refuses an inherited Context), a ``spawn`` or ``forkserver`` child
starts without one, and either builds its own on first use, while the
parent's connections carry on untouched.  So a plain
:class:`multiprocessing.Process` or :class:`multiprocessing.pool.Pool`
works too.  These classes are kept for pyepics scripts:

* :class:`CAProcess` resets Channel Access in the child before running the
  target (as pyepics does), under any start method;
* :class:`CAPool` is a :class:`multiprocessing.pool.Pool` of CAProcesses
  that also works on Python 3.8 and later (pyepics 3.5.10's raises
  ``TypeError`` there).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.pool
from typing import Any

from . import ca
from .ca import clear_cache

__all__ = ["CAPool", "CAProcess", "clear_ca_cache", "clear_cache"]

#: pyepics' ``__all__`` names this (and never defines it); here it exists.
clear_ca_cache = clear_cache


class CAProcess(multiprocessing.Process):
    """A :class:`multiprocessing.Process` whose child starts with a fresh Channel Access.

    Parameters
    ----------
    mp_context : multiprocessing context or str, optional
        The start method ('fork', 'forkserver', 'spawn') or a context from
        :func:`multiprocessing.get_context` (default: the current default
        start method).  compat only; pyepics has no such argument.
    **kws
        As for :class:`multiprocessing.Process` (``target``, ``args``,
        ``kwargs``, ``name``, ``daemon``).
    """

    def __init__(self, *args: Any, mp_context: Any = None, **kws: Any) -> None:
        super().__init__(*args, **kws)
        if isinstance(mp_context, str):
            mp_context = multiprocessing.get_context(mp_context)
        self._ca_start_method: str | None = mp_context.get_start_method() if mp_context is not None else None

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        method = getattr(process_obj, "_ca_start_method", None)
        ctx = multiprocessing.get_context(method)
        return ctx.Process._Popen(process_obj)

    def run(self) -> None:
        """Reset Channel Access in this (child) process, then run the target."""
        ca.initial_context = None
        clear_cache()
        super().run()


class CAPool(multiprocessing.pool.Pool):
    """A :class:`multiprocessing.pool.Pool` of :class:`CAProcess` workers.

    Takes :class:`~multiprocessing.pool.Pool`'s arguments (``processes``,
    ``initializer``, ``initargs``, ``maxtasksperchild``, ``context``); the
    workers use the start method of *context* (default: the current one).
    """

    @staticmethod
    def Process(ctx: Any, *args: Any, **kwds: Any) -> CAProcess:
        """Make one worker (called by Pool with its context)."""
        return CAProcess(*args, mp_context=ctx, **kwds)
