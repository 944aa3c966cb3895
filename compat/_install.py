"""Make ``import epics`` (and every ``epics.*`` submodule) give compat, in this process.

:func:`install` puts an import hook at the front of :data:`sys.meta_path`.
The hook answers only for the name ``epics`` and names below it: ``epics``
becomes the :mod:`compat` package itself and ``epics.NAME`` the module
``compat.NAME`` (the same module objects, so ``epics.pv.default_pv_class =
X`` is ``compat.pv.default_pv_class = X``).  Submodules are imported only
when a program imports them, as with pyepics.  Nothing else is touched, and
nothing happens unless :func:`install` is called: importing compat leaves a
real pyepics alone.

Rules
-----
* Calling :func:`install` again is a no-op.
* Calling it after real pyepics was imported raises :class:`RuntimeError`
  (its PVs and libca context would live on next to compat's, and names
  already bound to it could not be redirected).
* :func:`uninstall` removes the hook and the ``epics*`` entries it made.

Thread safety: the hook itself holds no state but the mapping; Python's
import lock serialises imports.  :func:`install`/:func:`uninstall` are meant
to be called once, at start-up, from the main thread.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

#: pyepics's package name, and the package that replaces it.
ALIAS = "epics"
TARGET = "compat"

#: pyepics's submodules and the compat module each one resolves to.
SUBMODULES = {
    "ca": "compat.ca",
    "pv": "compat.pv",
    "dbr": "compat.dbr",
    "utils": "compat.utils",
    "device": "compat.device",
    "devices": "compat.devices",
    "motor": "compat.motor",
    "alarm": "compat.alarm",
    "multiproc": "compat.multiproc",
}


def target_name(fullname: str) -> str | None:
    """The compat module that stands for *fullname* (``'epics'`` or ``'epics.X...'``), else None."""
    if fullname == ALIAS:
        return TARGET
    if not fullname.startswith(ALIAS + "."):
        return None
    rest = fullname[len(ALIAS) + 1 :]
    head, _, tail = rest.partition(".")
    base = SUBMODULES.get(head, f"{TARGET}.{head}")
    return f"{base}.{tail}" if tail else base


class _AliasLoader(importlib.abc.Loader):
    """Loads an ``epics*`` name by importing its compat module and handing that over."""

    def __init__(self, alias: str, target: str) -> None:
        self.alias = alias
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        try:
            return importlib.import_module(self.target)
        except ModuleNotFoundError as exc:
            if exc.name != self.target:
                raise  # (something the compat module imports is missing: show that)
            raise ImportError(
                f"{self.alias!r} is not provided by compat (there is no module {self.target!r}); "
                "compat.install() maps pyepics's modules to compat's, and this one does not exist yet",
                name=self.alias,
            ) from None

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the compat module was executed when it was imported."""


class AliasFinder(importlib.abc.MetaPathFinder):
    """The import hook :func:`install` adds (one per process)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        name = target_name(fullname)
        if name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, name))

    def __repr__(self) -> str:
        return f"<compat import hook: {ALIAS} -> {TARGET}>"


def _finder() -> AliasFinder | None:
    for entry in sys.meta_path:
        if isinstance(entry, AliasFinder):
            return entry
    return None


def installed() -> bool:
    """True if :func:`install` is in effect in this process."""
    return _finder() is not None


def install() -> None:
    """Make ``import epics`` and ``import epics.X`` give compat in this process.

    After it, a program written for pyepics runs on compat unchanged:
    ``import epics``, ``from epics import PV``, ``import epics.ca``,
    ``from epics.pv import get_pv`` and ``epics.pv.default_pv_class = C``
    all reach compat's modules (``epics.motor`` is ``compat.motor``, and so
    on).  Submodules are imported when first asked for.

    Calling it again is a no-op.

    Raises
    ------
    RuntimeError
        If real pyepics (or one of its submodules) was imported already in
        this process: call install() before anything imports ``epics``.
    """
    if installed():
        return
    loaded = sorted(
        name
        for name, module in list(sys.modules.items())
        if target_name(name) is not None and module is not None and not _is_compat(module)
    )
    if loaded:
        raise RuntimeError(
            "compat.install(): pyepics is already imported in this process "
            f"({', '.join(loaded)}); call compat.install() before anything imports epics"
        )
    sys.meta_path.insert(0, AliasFinder())


def uninstall() -> None:
    """Undo :func:`install`: remove the hook and forget the ``epics*`` names it made."""
    finder = _finder()
    if finder is not None:
        sys.meta_path.remove(finder)
    for name, module in list(sys.modules.items()):
        if target_name(name) is not None and _is_compat(module):
            del sys.modules[name]


def _is_compat(module: Any) -> bool:
    name = getattr(module, "__name__", "")
    return isinstance(name, str) and (name == TARGET or name.startswith(TARGET + "."))
