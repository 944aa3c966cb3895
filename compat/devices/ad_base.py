"""``AD_Camera``: an areaDetector camera (its ``cam1:`` records), as pyepics' ``epics.devices.AD_Camera``."""

from __future__ import annotations

from ._common import DEVICE_OWN, EnsureValueMixin

__all__ = ["AD_Camera"]


class AD_Camera(EnsureValueMixin):
    """The common fields of an areaDetector driver (``{prefix}Acquire``, ``{prefix}AcquireTime_RBV``, ...).

    Parameters
    ----------
    prefix : str
        The driver's prefix, e.g. ``'13SIM1:cam1:'``.
    """

    attrs = ("Acquire", "AcquirePeriod", "AcquirePeriod_RBV", "AcquireTime", "AcquireTime_RBV", "ArrayCallbacks",
             "ArrayCallbacks_RBV", "ArrayCounter", "ArrayCounter_RBV", "ArrayRate_RBV", "ArraySizeX_RBV",
             "ArraySizeY_RBV", "ArraySize_RBV", "BinX", "BinX_RBV", "BinY", "BinY_RBV", "ColorMode", "ColorMode_RBV",
             "DataType", "DataType_RBV", "DetectorState_RBV", "Gain", "Gain_RBV", "ImageMode", "ImageMode_RBV",
             "MaxSizeX_RBV", "MaxSizeY_RBV", "MinX", "MinX_RBV", "MinY", "MinY_RBV", "NumImages",
             "NumImagesCounter_RBV", "NumImages_RBV", "SizeX", "SizeX_RBV", "SizeY", "SizeY_RBV", "TimeRemaining_RBV",
             "TriggerMode", "TriggerMode_RBV", "TriggerSoftware")  # fmt: skip
    _nonpvs = DEVICE_OWN

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix, delim="", mutable=False, attrs=self.attrs)
