"""Devices for common records and detectors (pyepics' ``epics.devices``), built on :class:`compat.Device`.

Record types: :class:`ai`, :class:`ao`, :class:`bi`, :class:`bo`,
:class:`Scaler`, :class:`MCA` (also ``Mca``) with :class:`ROI`,
:class:`Transform`, :class:`Scan` (sscan); hardware: :class:`Struck`,
:class:`SRS570`, :class:`DXP`, :class:`MultiXMAP`; areaDetector:
:class:`AD_Camera`, :class:`AD_ImagePlugin`, :class:`AD_OverlayPlugin`,
:class:`AD_FilePlugin`, :class:`AD_PerkinElmer`.
"""

from ._records import ai, ao, bi, bo
from .ad_base import AD_Camera
from .ad_fileplugin import AD_FilePlugin
from .ad_image import AD_ImagePlugin
from .ad_overlay import AD_OverlayPlugin
from .ad_perkinelmer import AD_PerkinElmer
from .mca import DXP, MCA, ROI, MultiXMAP
from .scaler import Scaler
from .scan import Scan
from .srs570 import SRS570
from .struck import Struck
from .transform import Transform

Mca = MCA

__all__ = [
    "DXP",
    "MCA",
    "ROI",
    "SRS570",
    "AD_Camera",
    "AD_FilePlugin",
    "AD_ImagePlugin",
    "AD_OverlayPlugin",
    "AD_PerkinElmer",
    "Mca",
    "MultiXMAP",
    "Scaler",
    "Scan",
    "Struck",
    "Transform",
    "ai",
    "ao",
    "bi",
    "bo",
]
