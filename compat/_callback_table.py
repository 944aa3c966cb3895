"""The value-callback table of :class:`compat.PV` (``pv.callbacks``).

Threads: changed by the caller's thread; read (without a lock) by the PV's
callback thread, like the plain dict it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CallbackTable(dict):  # type: ignore[type-arg]
    """A PV's value callbacks ``{index: (callback, kwargs)}``: a dict that tells its PV when it changes.

    pyepics's ``PV.callbacks`` is a plain dict that programs may change
    directly; here each change also lets the PV choose between having its
    monitor updates pushed (it has callbacks) or pulled on read (it has
    none; see ``_Relay.deliver``).  The PV is referred to weakly.
    """

    __slots__ = ("_owner",)

    def __init__(self, owner: Callable[[], Any] | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    def _changed(self) -> None:
        owner = self._owner
        pv = owner() if owner is not None else None
        if pv is not None:
            pv._callbacks_changed()

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._changed()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._changed()
        return value

    def popitem(self) -> Any:
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._changed()
        return value

    def __ior__(self, other: Any) -> CallbackTable:  # type: ignore[misc]
        super().__ior__(other)
        self._changed()
        return self

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))  # (a copy or pickle is a plain dict)
