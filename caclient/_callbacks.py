"""User callback registries (strong references by default).

A registry is copy-on-write: adding or removing swaps in a new tuple under
``_lock``, and delivery iterates over whichever tuple it read, with no lock.
So a callback removed while a delivery is running may still get that one
delivery, but never a later one, and delivery never blocks registration.
"""

from __future__ import annotations

import inspect
import itertools
import threading
import weakref
from collections.abc import Callable
from typing import Any


def positional_arity(func: Callable[..., Any]) -> int:
    """How many positional arguments *func* accepts (2 if it takes *args)."""
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
    __slots__ = ("token", "ref", "strong", "nargs")

    def __init__(self, token: int, func: Callable[..., Any], weak: bool) -> None:
        self.token = token
        self.nargs = positional_arity(func)
        if weak:
            self.strong: Callable[..., Any] | None = None
            self.ref: Callable[[], Callable[..., Any] | None] = (
                weakref.WeakMethod(func) if inspect.ismethod(func) else weakref.ref(func)
            )
        else:
            self.strong = func
            self.ref = lambda: None

    def get(self) -> Callable[..., Any] | None:
        return self.strong if self.strong is not None else self.ref()


class Registry:
    """Tokens → callbacks, copy-on-write (see module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: tuple[_Entry, ...] = ()
        self._tokens = itertools.count()

    def add(self, func: Callable[..., Any], weak: bool = False) -> tuple[int, bool]:
        """Add *func*; return its token and whether the registry was empty before."""
        if not callable(func):
            raise TypeError(f"callback must be callable, not {type(func).__name__}")
        with self._lock:
            entry = _Entry(next(self._tokens), func, weak)
            was_empty = not self._entries
            self._entries = self._entries + (entry,)
        return entry.token, was_empty

    def remove(self, token: int) -> bool:
        """Remove by token; return True when the registry is now empty."""
        with self._lock:
            self._entries = tuple(e for e in self._entries if e.token != token)
            return not self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries = ()

    def entries(self) -> tuple[_Entry, ...]:
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def call(self, *args: Any) -> None:
        """Call every live callback with *args*; drop dead weak ones.

        Exceptions propagate to the dispatcher's worker, which logs them, but
        only after every callback had its turn.
        """
        errors: list[BaseException] = []
        dead = []
        for entry in self._entries:
            func = entry.get()
            if func is None:
                dead.append(entry.token)
                continue
            try:
                func(*args[len(args) - entry.nargs :] if entry.nargs < len(args) else args)
            except Exception as exc:
                errors.append(exc)
        for token in dead:
            self.remove(token)
        if errors:
            raise errors[0]


class CallbackHandler:
    """Connection-state or access-rights callbacks of one PV.

    Callbacks are called as ``func(pv, state)``; see :class:`caclient.PV`.
    """

    def __init__(self, pv: Any, current: Callable[[], Any | None]) -> None:
        self._pv = pv
        self._current = current
        self._registry = Registry()

    def add_callback(self, func: Callable[..., Any], run: bool = False, weak: bool = False) -> int:
        """Register *func*; with *run*, also call it now with the current state."""
        token, _ = self._registry.add(func, weak)
        if run:
            state = self._current()
            if state is not None:
                self._pv.context._dispatcher.submit(self._pv, _call_one, func, self._pv, state)
        return token

    def remove_callback(self, token: int) -> None:
        """Remove the callback registered under *token* (unknown tokens are ignored)."""
        self._registry.remove(token)

    def clear(self) -> None:
        """Remove every callback."""
        self._registry.clear()

    def __len__(self) -> int:
        return len(self._registry)

    def _fire(self, state: Any) -> None:
        self._registry.call(self._pv, state)


def _call_one(func: Callable[..., Any], pv: Any, state: Any) -> None:
    func(pv, state)
