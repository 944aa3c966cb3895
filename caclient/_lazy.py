"""numpy, imported when it is first used rather than when caclient is imported.

Importing numpy costs about as much as the whole rest of a one-shot ``caget``
process, and a scalar read or write never needs it: :mod:`caclient._dbr`
decodes and encodes single numbers with :mod:`struct`.  Modules that need
numpy only on a cold path (a large array arriving, a ``bytes()`` of a
response) use :data:`numpy` from here as if it were the module (about 1 us
per attribute).  Array code imports numpy inside the function; the one hot
path, a scalar's ``.data``, calls :func:`imported` (a ``sys.modules`` look-up
and one flag test once numpy is loaded).

A module is in ``sys.modules`` from the moment its import *starts*.  While one
thread is still running numpy's ``__init__``, another thread that takes
``sys.modules["numpy"]`` gets a half-built module (``numpy.array`` missing).
:func:`imported` therefore hands out a module only once its import has
finished; otherwise it goes through the import system, which waits for the
importing thread.  The stand-in holds no state of its own, so it is safe from
any thread and after ``fork``.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

__all__ = ["LazyModule", "imported", "numpy"]


def imported(name: str) -> ModuleType:
    """The module *name*, fully initialised.

    Imports it when nobody has, and waits for the importing thread when
    another thread is in the middle of importing it.

    Parameters
    ----------
    name : str
        The module's full name, e.g. ``"numpy"``.

    Returns
    -------
    types.ModuleType
    """
    module = sys.modules.get(name)
    if module is None or getattr(module.__spec__, "_initializing", False):
        # (importlib takes the module's import lock, so this returns only once
        # the thread that is executing the module has finished)
        module = importlib.import_module(name)
    return module


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
        return getattr(imported(name), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError(f"{self!r} is read-only")

    def __repr__(self) -> str:
        return f"<lazy module {object.__getattribute__(self, '_name')!r}>"


if TYPE_CHECKING:
    import numpy
else:
    numpy = LazyModule("numpy")
