"""Pieces shared by the device classes of :mod:`compat.devices`."""

from __future__ import annotations

from typing import Any

from ..device import Device

#: Attribute names compat's Device keeps as plain attributes; every device's ``_nonpvs`` starts with them.
DEVICE_OWN: tuple[str, ...] = ("_prefix", "_pvs", "_delim", "_init", "_aliases", "_mutable", "_nonpvs")


class EnsureValueMixin(Device):
    """``ensure_value``, for the areaDetector devices whose settings have a ``_RBV`` readback."""

    def ensure_value(self, attr: str, value: Any, wait: bool = False) -> Any:
        """Write *value* to *attr* unless its ``_RBV`` readback (as text) already shows it.

        Without a readback the value is written and the put's result
        returned; with one, None is returned (as in pyepics).
        """
        rbv = f"{attr}_RBV"
        if rbv not in self._pvs:
            return self._pvs[attr].put(value, wait=wait)
        if self._pvs[rbv].get(as_string=True) != value:
            self._pvs[attr].put(value, wait=wait)
        return None
