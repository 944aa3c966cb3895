"""``Device``: a group of PVs named prefix + delimiter + attribute, as ``epics.Device``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import ca, utils
from . import pv as _pv
from .pv import get_pv

# Names that live in the instance's __dict__ and are never PVs.
_OWN = ("_prefix", "_pvs", "_delim", "_init", "_aliases", "_mutable", "_nonpvs")


class Device:
    """PVs sharing a prefix, reached as attributes: ``dev.VAL`` reads, ``dev.VAL = 1`` writes.

    Parameters
    ----------
    prefix : str
        Common start of the PV names.
    attrs : iterable of str, optional
        Attributes whose PVs are created now (without waiting to connect).
    nonpvs : iterable of str, optional
        Attribute names that are plain Python attributes, never PVs.
    delim : str
        Put between prefix and attribute (e.g. ``'.'`` for record fields).
    timeout : float, optional
        Connection timeout of the PVs created for *attrs*.
    mutable : bool
        Whether unknown attribute names create PVs on first use (else they
        raise AttributeError without any network traffic).
    aliases : mapping, optional
        ``{alias: attribute}``.
    with_poll : bool
        Call :func:`compat.poll` at the end (kept for pyepics compatibility).

    Examples
    --------
    >>> m1 = Device("IOC:m1", delim=".", attrs=("VAL", "RBV"))  # doctest: +SKIP
    >>> m1.VAL = 2.5                                            # doctest: +SKIP
    >>> m1.get("RBV", as_string=True)                           # doctest: +SKIP
    """

    _prefix: str = ""
    _delim: str = ""
    _pvs: dict[str, _pv.PV] = {}  # noqa: RUF012 (replaced per instance)
    _init = False
    _aliases: dict[str, str] = {}  # noqa: RUF012
    _mutable = True
    _nonpvs: Any = _OWN

    def __init__(
        self,
        prefix: str = "",
        attrs: Iterable[str] | None = None,
        nonpvs: Iterable[str] | None = None,
        delim: str = "",
        timeout: float | None = None,
        mutable: bool = True,
        aliases: Mapping[str, str] | None = None,
        with_poll: bool = True,
    ) -> None:
        self._nonpvs = list(self._nonpvs)
        for name in nonpvs or ():
            if name not in self._nonpvs:
                self._nonpvs.append(name)
        self._delim = delim
        self._prefix = prefix + delim
        self._pvs = {}
        self._mutable = mutable
        self._aliases = dict(aliases or {})
        attrs = list(attrs) if attrs is not None else None
        for attr in attrs or ():
            self.PV(attr, connect=False, timeout=timeout)
        for attr in self._aliases.values():
            if attrs is None or attr not in attrs:
                self.PV(attr, connect=False, timeout=timeout)
        if with_poll:
            ca.poll()
        self._init = True

    def PV(self, attr: str, connect: bool = True, **kw: Any) -> _pv.PV:
        """The PV of *attr* (created through :func:`compat.get_pv` on first use)."""
        attr = self._aliases.get(attr, attr)
        thispv = self._pvs.get(attr)
        if thispv is None:
            thispv = self._pvs[attr] = get_pv(f"{self._prefix}{attr}", **kw)
        if connect and not thispv.connected:
            thispv.wait_for_connection()
        return thispv

    def add_pv(self, pvname: str, attr: str | None = None, **kw: Any) -> _pv.PV:
        """Add a PV whose name does not follow prefix + delim + attr, under *attr* (default: its name)."""
        if attr is None:
            attr = pvname
        thispv = self._pvs[attr] = get_pv(pvname, **kw)
        return thispv

    def put(self, attr: str, value: Any, wait: bool = False, use_complete: bool = False, timeout: float = 10) -> Any:
        """Write *value* to *attr*'s PV (see :meth:`compat.PV.put`)."""
        thispv = self.PV(attr)
        thispv.wait_for_connection()
        return thispv.put(value, wait=wait, use_complete=use_complete, timeout=timeout)

    def get(self, attr: str, as_string: bool = False, count: int | None = None, timeout: float | None = None) -> Any:
        """Read *attr*'s PV (see :meth:`compat.PV.get`)."""
        return self.PV(attr).get(as_string=as_string, count=count, timeout=timeout)

    def save_state(self) -> dict[str, Any]:
        """The values of all attributes created so far (CHAR arrays as text)."""
        state = {}
        for attr, thispv in self._pvs.items():
            state[attr] = thispv.get()
            if thispv.count > 1 and thispv.type == "char":
                state[attr] = thispv.get(as_string=True)
        return state

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Write back a :meth:`save_state` dict (writable PVs only)."""
        for attr, value in state.items():
            thispv = self._pvs.get(attr)
            if thispv is not None and "write" in thispv.access:
                thispv.put(value)

    def write_state(self, fname: str, state: Mapping[str, Any] | None = None) -> None:
        """Save *state* (default: the current one) to a text file, one ``attr value`` per line."""
        if state is None:
            state = self.save_state()
        header = f"{type(self).__name__},prefix='{self._prefix}',time={time.ctime()}"
        lines = [f"#Device Saved State for {header}"]
        for attr in sorted(state):
            thispv = self._pvs.get(attr)
            if thispv is not None and "write" in thispv.access and (thispv.count == 1 or thispv.type == "char"):
                lines.append(f"{attr} {state[attr]}")
        lines.append("")
        with open(fname, "w", encoding=utils.IOENCODING) as out:
            out.write("\n".join(lines))

    def read_state(self, fname: str, restore: bool = False) -> dict[str, Any]:
        """Read a :meth:`write_state` file; with *restore*, write the values back."""
        state: dict[str, Any] = {}
        with open(fname, encoding=utils.IOENCODING) as inp:
            for line in inp:
                if line.startswith("#"):
                    continue
                attr, text = line[:-1].split(" ", 1)
                thispv = self._pvs.get(attr)
                if thispv is None:
                    continue
                value: Any = text
                if thispv.type in ("double", "float"):
                    value = float(text)
                elif thispv.type in ("int", "long", "short", "enum"):
                    value = int(text)
                state[attr] = value
        if restore:
            self.restore_state(state)
        return state

    def get_all(self) -> dict[str, Any]:
        """Same as :meth:`save_state`."""
        return self.save_state()

    def add_callback(self, attr: str, callback: Callable[..., Any], **kws: Any) -> Any:
        """Add a value callback to *attr*'s PV; returns its index."""
        self.PV(attr).get()
        return self.PV(attr).add_callback(callback, **kws)

    def remove_callbacks(self, attr: str, index: Any = None) -> None:
        """Remove the callback at *index* from *attr*'s PV."""
        self.PV(attr).remove_callback(index=index)

    def __getattr__(self, attr: str) -> Any:
        # Only called for names not found the normal way.
        if attr.startswith("__") or attr in _OWN:
            raise AttributeError(attr)
        attr = self._aliases.get(attr, attr)
        if attr in self._pvs:
            return self.get(attr)
        if self._init and self._mutable:
            thispv = self.PV(attr, connect=True)
            if thispv.connected:
                return thispv.get()
        raise AttributeError(f"{type(self).__name__} has no attribute {attr}")

    def __setattr__(self, attr: str, value: Any) -> None:
        attr = self._aliases.get(attr, attr) if attr not in _OWN else attr
        if attr in self._nonpvs:
            self.__dict__[attr] = value
        elif attr in self._pvs:
            self.put(attr, value)
        elif self._init and self._mutable and not attr.startswith("__"):
            try:
                self.PV(attr)
                self.put(attr, value)
            except Exception:
                raise AttributeError(f"{type(self).__name__} has no attribute {attr}") from None
        elif attr in self.__dict__ or not self._init:
            self.__dict__[attr] = value
        else:
            raise AttributeError(f"{type(self).__name__} has no attribute {attr}")

    def __dir__(self) -> list[str]:
        names = set(self._aliases) | set(self._pvs) | set(self._nonpvs) | set(self.__dict__) | set(dir(Device))
        return sorted(names)

    def __repr__(self) -> str:
        prefix = self._prefix[:-1] if self._prefix.endswith(".") else self._prefix
        return f"<Device '{prefix}', {len(self._pvs)} attributes>"

    @staticmethod
    def pv_property(attr: str, as_string: bool = False, wait: bool = False, timeout: float = 10.0) -> property:
        """A class-level property that gets/puts *attr*: ``VAL = Device.pv_property('VAL')``."""
        return property(
            lambda self: self.get(attr, as_string=as_string),
            lambda self, value: self.put(attr, value, wait=wait, timeout=timeout),
        )
