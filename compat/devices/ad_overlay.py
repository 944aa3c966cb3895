"""``AD_OverlayPlugin``: one overlay of an areaDetector overlay plugin, as pyepics' ``AD_OverlayPlugin``."""

from __future__ import annotations

from ._common import DEVICE_OWN, EnsureValueMixin

__all__ = ["AD_OverlayPlugin"]


class AD_OverlayPlugin(EnsureValueMixin):
    """An overlay's name, use, position, size, shape, draw mode and colour (``{prefix}PositionX`` ...).

    Parameters
    ----------
    prefix : str
        The overlay's prefix, e.g. ``'13SIM1:Over1:1:'``.
    """

    attrs = ("Name", "Name_RBV", "Use", "Use_RBV", "PositionX", "PositionX_RBV", "PositionY", "PositionY_RBV",
             "PositionXLink", "PositionYLink", "SizeXLink", "SizeYLink", "SizeX", "SizeX_RBV", "SizeY", "SizeY_RBV",
             "Shape", "Shape_RBV", "DrawMode", "DrawMode_RBV", "Red", "Red_RBV", "Green", "Green_RBV", "Blue",
             "Blue_RBV")  # fmt: skip
    _nonpvs = DEVICE_OWN

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix, delim="", mutable=False, attrs=self.attrs)
