"""``SRS570``: the Stanford Research Systems SR570 current amplifier (synApps ip), as pyepics'
``epics.devices.SRS570``."""

from __future__ import annotations

from typing import Any

from ..device import Device
from ._common import DEVICE_OWN

__all__ = ["SRS570", "VALID_STEPS", "VALID_UNITS"]

#: Sensitivity numbers, in the order of the ``sens_num`` menu.
VALID_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500]
#: Sensitivity units, in the order of the ``sens_unit`` menu.
VALID_UNITS = ["pA/V", "nA/V", "uA/V", "mA/V"]


class SRS570(Device):
    """An SR570 current amplifier: PVs ``{prefix}sens_num``, ``{prefix}sens_unit``, ...

    Parameters
    ----------
    prefix : str
        The amplifier's prefix (e.g. ``'IOC:A1'``).

    Notes
    -----
    Construction calls :meth:`initialize` (low-noise gain, no filter, not
    inverted, bias 0), as pyepics does.
    """

    attrs = ("sens_num", "sens_unit", "offset_num", "offset_unit", "offset_sign", "offset_on", "off_u_put",
             "bias_put", "gain_mode", "filter_type", "invert_on", "init.PROC")  # fmt: skip
    _nonpvs = (*DEVICE_OWN, "_nchan", "_chans")

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix, delim="", attrs=self.attrs, mutable=False)
        self.initialize()

    def initialize(self, bias: float = 0, gain_mode: int = 0, filter_type: int = 0, invert: bool = False) -> None:
        """Set the gain mode, filter type, inversion and bias."""
        self.put("gain_mode", gain_mode)
        self.put("filter_type", filter_type)
        self.put("invert_on", 1 if invert else 0)
        self.put("bias_put", bias)

    def set_sensitivity(self, value: int, units: str, offset: Any = None, scale_offset: bool = True) -> None:
        """Set the sensitivity to *value* *units* (e.g. ``200, 'nA/V'``); with *scale_offset* the input
        offset follows at a tenth of it.  Prints ``invalid input`` and does nothing for a value or unit
        not in ``VALID_STEPS`` / ``VALID_UNITS``."""
        if value not in VALID_STEPS or units not in VALID_UNITS:
            print("invalid input")
            return
        ival = VALID_STEPS.index(value)
        uval = VALID_UNITS.index(units)
        self.put("sens_num", ival)
        self.put("sens_unit", uval)
        if scale_offset:
            ioff, uoff = ival - 3, uval
            if ioff < 0:
                ioff, uoff = ival + 6, uval - 1
            self.put("offset_num", ioff)
            self.put("offset_unit", uoff)
        if offset is not None:
            self.set_offset(offset)
        self.put("init.PROC", 1)

    def set_offset(self, value: Any) -> None:
        """Set the input offset current (``off_u_put``)."""
        self.put("off_u_put", value)

    def increase_sensitivity(self) -> None:
        """One step more sensitive (a smaller A/V); stays at the most sensitive setting."""
        snum, sunit = self.get("sens_num"), self.get("sens_unit")
        if snum == 0:
            snum, sunit = 9, sunit - 1
            if sunit < 0:
                snum, sunit = 1, 0
        snum -= 1
        self.set_sensitivity(VALID_STEPS[snum], VALID_UNITS[sunit])

    def decrease_sensitivity(self) -> None:
        """One step less sensitive; stays at the least sensitive setting."""
        snum, sunit = self.get("sens_num"), self.get("sens_unit")
        if snum == 8:
            snum, sunit = -1, sunit + 1
            if sunit > 3:
                snum, sunit = 7, 3
        snum += 1
        self.set_sensitivity(VALID_STEPS[snum], VALID_UNITS[sunit])
