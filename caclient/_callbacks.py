"""User callback registries (strong references by default).

A :class:`Registry` is copy-on-write: adding or removing swaps in a new tuple,
and delivery iterates over whichever tuple it read, with no lock.  So a
callback removed while a delivery is running may still get that one delivery,
but never a later one, and delivery never blocks registration.  Mutations must
be serialised by the owner's lock (the registry has none of its own, to keep
a subscribed PV small: the owners share their PV's lock).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from types import FunctionType as _FunctionType
from typing import Any

_CO_VARARGS = inspect.CO_VARARGS


def positional_arity(func: Callable[..., Any]) -> int:
    """How many positional arguments *func* accepts (2 if it takes *args).

    Plain functions and bound methods are read off their code object: a
    Device of a thousand signals registers thousands of callbacks, and
    ``inspect.signature`` costs tens of microseconds each.  Anything else (partials,
    builtins, callable objects) goes through ``inspect.signature``.
    """
    target = getattr(func, "__func__", func)
    code = getattr(target, "__code__", None)
    if (
        code is not None
        and type(target) is _FunctionType
        and not hasattr(target, "__wrapped__")
        and not hasattr(target, "__signature__")
    ):
        if code.co_flags & _CO_VARARGS:
            return 2
        return int(code.co_argcount) - (1 if target is not func else 0)
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return 2
    n = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


class _Entry:
    __slots__ = ("token", "strong", "ref", "nargs")

    def __init__(self, token: int, func: Callable[..., Any], weak: bool) -> None:
        self.token = token
        self.nargs = positional_arity(func)
        self.strong: Callable[..., Any] | None = None
        self.ref: Callable[[], Callable[..., Any] | None] | None = None
        if weak:
            self.ref = weakref.WeakMethod(func) if inspect.ismethod(func) else weakref.ref(func)
        else:
            self.strong = func

    def get(self) -> Callable[..., Any] | None:
        if self.strong is not None:
            return self.strong
        return self.ref() if self.ref is not None else None


class Registry:
    """Tokens → callbacks, copy-on-write (see module docstring).

    A base class rather than a member, so that each subscribed PV carries one
    object less; its methods are private so they do not add to the public
    API of the classes built on it.
    """

    __slots__ = ("_entries", "_next")

    def __init__(self) -> None:
        self._entries: tuple[_Entry, ...] = ()
        self._next = 0

    def _register(self, func: Callable[..., Any], weak: bool = False) -> tuple[int, bool]:
        """Add *func*; return its token and whether the registry was empty before."""
        if not callable(func):
            raise TypeError(f"callback must be callable, not {type(func).__name__}")
        entry = _Entry(self._next, func, weak)
        self._next += 1
        was_empty = not self._entries
        self._entries = (*self._entries, entry)
        return entry.token, was_empty

    def _unregister(self, token: int) -> bool:
        """Remove by token; return True when the registry is now empty."""
        self._entries = tuple(e for e in self._entries if e.token != token)
        return not self._entries

    def _call_all(self, *args: Any) -> int:
        """Call every live callback with *args* (the last ``nargs`` of them).

        Returns how many dead weak callbacks were skipped (the owner prunes
        them).  Exceptions propagate to the dispatcher's worker, which logs
        them, but only after every callback had its turn.
        """
        entries = self._entries
        nargs = len(args)
        if len(entries) == 1:  # the common case, kept short
            entry = entries[0]
            func = entry.strong
            if func is not None and entry.nargs >= nargs:
                func(*args)
                return 0
        error: BaseException | None = None
        dead = 0
        for entry in entries:
            func = entry.strong
            if func is None:
                func = entry.get()
                if func is None:
                    dead += 1
                    continue
            try:
                if entry.nargs >= nargs:
                    func(*args)
                else:
                    func(*args[nargs - entry.nargs :])
            except Exception as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error
        return dead

    def _prune_dead(self) -> None:
        """Drop weak callbacks whose target is gone."""
        self._entries = tuple(e for e in self._entries if e.get() is not None)


class CallbackHandler(Registry):
    """Connection-state or access-rights callbacks of one PV.

    Callbacks are called as ``func(pv, state)``; see :class:`caclient.PV`.
    Registration is serialised by the PV's lock (never held while
    callbacks run).
    """

    __slots__ = ("_pv", "_current")

    def __init__(self, pv: Any, current: Callable[[Any], Any | None]) -> None:
        super().__init__()
        self._pv = pv
        self._current = current  # (an unbound function of the PV: no bound method kept per PV)

    def add_callback(self, func: Callable[..., Any], run: bool = False, weak: bool = False) -> int:
        """Register *func*; with *run*, also call it now with the current state."""
        pv = self._pv
        with pv._lock:
            token, _ = self._register(func, weak)
        if run:
            state = self._current(pv)
            if state is not None:
                pv.context._submit(pv, _call_one, func, pv, state)
        return token

    def remove_callback(self, token: int) -> None:
        """Remove the callback registered under *token* (unknown tokens are ignored)."""
        with self._pv._lock:
            self._unregister(token)

    def clear(self) -> None:
        """Remove every callback."""
        with self._pv._lock:
            self._entries = ()

    def __len__(self) -> int:
        return len(self._entries)

    def _fire(self, state: Any) -> None:
        if self._call_all(self._pv, state):
            with self._pv._lock:
                self._prune_dead()


def _call_one(func: Callable[..., Any], pv: Any, state: Any) -> None:
    func(pv, state)
