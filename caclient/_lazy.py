"""numpy, imported when it is first used rather than when caclient is imported.

Importing numpy costs about as much as the whole rest of a one-shot ``caget``
process, and a scalar read or write never needs it: :mod:`caclient._dbr`
decodes and encodes single numbers with :mod:`struct`.  Modules that need
numpy only on a cold path (a large array arriving, a ``bytes()`` of a
response) use :data:`numpy` from here as if it were the module (about 1 us
per attribute).  Array code imports numpy inside the function; the one hot
path, a scalar's ``.data``, takes it from ``sys.modules`` (about 0.1 us more
per decode than a module-level name, against about 0.2 us for an import
statement).

The stand-in holds no state of its own: every attribute access looks numpy up
in ``sys.modules`` (importing it the first time), so it is safe from any
thread and after ``fork``.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__all__ = ["LazyModule", "numpy"]


class LazyModule:
    """A stand-in for the module *name* that imports it on first attribute access.

    Parameters
    ----------
    name : str
        The module's full name, e.g. ``"numpy"``.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> Any:
        name: str = object.__getattribute__(self, "_name")
        module = sys.modules.get(name)
        if module is None:
            module = importlib.import_module(name)
        return getattr(module, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"{self!r} is read-only")

    def __repr__(self) -> str:
        return f"<lazy module {object.__getattribute__(self, '_name')!r}>"


if TYPE_CHECKING:
    import numpy
else:
    numpy = LazyModule("numpy")
