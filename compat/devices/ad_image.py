"""``AD_ImagePlugin``: an areaDetector image (NDStdArrays) plugin, as pyepics' ``epics.devices.AD_ImagePlugin``."""

from __future__ import annotations

from ._common import DEVICE_OWN, EnsureValueMixin

__all__ = ["AD_ImagePlugin"]


class AD_ImagePlugin(EnsureValueMixin):
    """The image plugin's array data, unique id, dimensions, sizes and color mode (``{prefix}ArrayData`` ...).

    Parameters
    ----------
    prefix : str
        The plugin's prefix, e.g. ``'13SIM1:image1:'``.
    """

    attrs = ("ArrayData", "UniqueId", "UniqueId_RBV", "NDimensions", "NDimensions_RBV", "ArraySize0",
             "ArraySize0_RBV", "ArraySize1", "ArraySize1_RBV", "ArraySize2", "ArraySize2_RBV", "ColorMode",
             "ColorMode_RBV")  # fmt: skip
    _nonpvs = DEVICE_OWN

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix, delim="", mutable=False, attrs=self.attrs)
