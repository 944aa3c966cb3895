"""``Scaler``: the synApps scaler record, as pyepics' ``epics.devices.Scaler``."""

from __future__ import annotations

from typing import Any

from .. import ca
from ..device import Device
from ._common import DEVICE_OWN

__all__ = ["Scaler"]


class Scaler(Device):
    """A synApps scaler record: count control (CNT, CONT, TP, T), channel names NMi and counts Si.

    Parameters
    ----------
    prefix : str
        The record name.
    nchan : int
        Number of channels used (1 .. nchan).

    Notes
    -----
    Besides the record's fields it reaches the userCalc records
    ``prefix_calcI`` (attributes ``calcI`` and ``exprI``) and
    ``prefix_calcEnable`` (``calc_enable``) that synApps builds next to it.
    """

    attrs = ("CNT", "CONT", "TP", "T", "VAL")
    attr_kws = {"calc_enable": "%s_calcEnable.VAL"}  # noqa: RUF012 (pyepics' class attributes)
    chan_attrs = ("NM%i", "S%i")
    calc_attrs = {"calc%i": "%s_calc%i.VAL", "expr%i": "%s_calc%i.CALC"}  # noqa: RUF012
    _nonpvs = (*DEVICE_OWN, "_nchan", "_chans")

    def __init__(self, prefix: str, nchan: int = 8) -> None:
        self._nchan = nchan
        self._chans = range(1, nchan + 1)
        attrs = list(self.attrs)
        for i in self._chans:
            attrs.extend(fmt % i for fmt in self.chan_attrs)
        super().__init__(prefix, delim=".", attrs=attrs)
        for key, fmt in self.attr_kws.items():
            self.add_pv(fmt % prefix, attr=key)
        for i in self._chans:
            for key, fmt in self.calc_attrs.items():
                self.add_pv(fmt % (prefix, i), attr=key % i)
        self._mutable = False

    def AutoCountMode(self) -> None:
        """Count continuously (CONT = 1)."""
        self.put("CONT", 1)

    def OneShotMode(self) -> None:
        """Count once per start (CONT = 0)."""
        self.put("CONT", 0)

    def CountTime(self, ctime: float) -> None:
        """Set the preset count time TP (seconds)."""
        self.put("TP", ctime)

    def Count(self, ctime: float | None = None, wait: bool = False) -> None:
        """Start counting (CNT = 1), first setting the count time if given; *wait* for the count to end."""
        if ctime is not None:
            self.CountTime(ctime)
        self.put("CNT", 1, wait=wait)
        ca.poll()

    def EnableCalcs(self) -> None:
        """Switch the channels' calculations on."""
        self.put("calc_enable", 1)

    def setCalc(self, i: int, calc: str) -> None:
        """Set the expression of channel *i*'s calculation."""
        self.put(f"expr{i}", calc)

    def getNames(self) -> list[Any]:
        """The channels' names NM1 .. NMn."""
        return [self.get(f"NM{i}") for i in self._chans]

    def Read(self, use_calc: bool = False) -> list[Any]:
        """The channels' counts S1 .. Sn (or their calculated values with *use_calc*)."""
        fmt = "calc%i" if use_calc else "S%i"
        return [self.get(fmt % i) for i in self._chans]
