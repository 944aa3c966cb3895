"""MCA devices: the mca record (:class:`MCA`), its regions of interest (:class:`ROI`), XIA DXP
parameters (:class:`DXP`) and the multi-element XIA xMAP (:class:`MultiXMAP`), as pyepics'
``epics.devices.mca``.

Threads: every method runs and blocks in the caller's thread; no locks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from configparser import ConfigParser
from typing import Any

import numpy as np

from .. import ca, utils
from ..device import Device
from ..pv import get_pv
from ._common import DEVICE_OWN
from ._filesaver import FileSaverMixin

__all__ = ["DXP", "MAX_ROIS", "MCA", "ROI", "MultiXMAP"]

#: Number of regions of interest of an mca record.
MAX_ROIS = 32


def _record(prefix: str) -> str:
    return prefix[:-1] if prefix.endswith(".") else prefix


class DXP(Device):
    """The DXP parameters of one element of an XIA detector: ``{prefix}dxp{mca}:NAME``."""

    _attrs = ("PreampGain", "MaxEnergy", "ADCPercentRule", "BaselineCutPercent", "BaselineThreshold",
              "BaselineFilterLength", "BaselineCutEnable", "InputCountRate", "OutputCountRate", "GapTime",
              "PeakingTime", "EnergyThreshold", "MaxWidth", "PresetMode", "TriggerPeakingTime", "TriggerGapTime",
              "TriggerThreshold")  # fmt: skip

    def __init__(self, prefix: str, mca: int = 1) -> None:
        self._prefix = f"{prefix}dxp{mca}"
        super().__init__(self._prefix, delim=":")
        ca.poll()


class ROI(Device):
    """Region of interest *roi* of an mca record: fields ``R{roi}NM/LO/HI`` (``name``/``left``/``right``).

    Parameters
    ----------
    prefix : str
        The mca record's name.
    roi : int
        The region, 0 .. 31.
    bgr_width : int
        Channels on each side averaged as background for :attr:`net`.
    data_pv : str or compat.PV, optional
        Where the spectrum is read from (default: the record ``prefix.R{roi}``,
        as in pyepics; an :class:`MCA` passes its own).

    Notes
    -----
    ROIs compare by their low channel (for sorting) and are equal when LO,
    HI and *bgr_width* are.
    """

    _nonpvs = (*DEVICE_OWN, "attrs", "width", "center", "bgr_width", "address", "net", "total", "_dat_", "_net_")
    _aliases = {"left": "LO", "right": "HI", "name": "NM"}  # noqa: RUF012 (pyepics' class attribute)

    def __init__(self, prefix: str, roi: int = 0, bgr_width: int = 3, data_pv: Any = None) -> None:
        self.address = self._prefix = f"{prefix}.R{roi}"
        self.bgr_width = bgr_width
        super().__init__(self._prefix, delim="", attrs=("NM", "LO", "HI"), aliases=self._aliases, with_poll=False)
        if data_pv is None:
            data_pv = self.address
        if isinstance(data_pv, str):
            data_pv = get_pv(data_pv)
        self._pvs["_dat_"] = data_pv
        self._pvs["_net_"] = get_pv(self.address + "N")

    def __eq__(self, other: object) -> bool:
        return bool(
            self.LO == getattr(other, "LO", None)
            and self.HI == getattr(other, "HI", None)
            and self.bgr_width == getattr(other, "bgr_width", None)
        )

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __lt__(self, other: Any) -> bool:
        lo: Any = self.LO
        return bool(lo < getattr(other, "LO", None))

    def __le__(self, other: Any) -> bool:
        lo: Any = self.LO
        return bool(lo <= getattr(other, "LO", None))

    def __gt__(self, other: Any) -> bool:
        lo: Any = self.LO
        return bool(lo > getattr(other, "LO", None))

    def __ge__(self, other: Any) -> bool:
        lo: Any = self.LO
        return bool(lo >= getattr(other, "LO", None))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<ROI '{_record(self._prefix)}', name='{self.NM}', range=[{self.LO}:{self.HI}]>"

    @property
    def total(self) -> Any:
        """Sum of the counts from LO to HI."""
        return self.get_counts(net=False)

    @property
    def sum(self) -> Any:
        """Same as :attr:`total`."""
        return self.get_counts(net=False)

    @property
    def net(self) -> Any:
        """:attr:`total` less the background (mean of *bgr_width* channels each side, times HI - LO)."""
        return self.get_counts(net=True)

    @property
    def center(self) -> int:
        """The middle channel."""
        return int(round(self.HI + self.LO) / 2.0)

    @property
    def width(self) -> int:
        """HI - LO."""
        return int(self.HI - self.LO)

    def clear(self) -> None:
        """Remove the region: empty name, LO = HI = -1."""
        self.NM = ""
        self.LO = -1
        self.HI = -1

    def get_counts(self, data: Any = None, net: bool = False) -> Any:
        """Total (or with *net* background-subtracted) counts in the region, of *data* or the spectrum read now.

        When the spectrum cannot be read as an array, the record's own sum
        (``R{roi}``, or ``R{roi}N`` for *net*) is returned instead.
        """
        if data is None and self._pvs["_dat_"] is not None:
            data = self._pvs["_dat_"].get()
            if net and not isinstance(data, np.ndarray):
                data = self._pvs["_net_"].get()
        if not isinstance(data, np.ndarray):
            return data
        lo, hi = self.LO, self.HI
        total = data[lo : hi + 1].sum()
        if not net:
            return total
        width = int(self.bgr_width)
        left = max(lo - width, 0)
        right = min(hi + width, len(data) - 1) + 1
        background = np.concatenate((data[left:lo], data[hi + 1 : right])).mean()
        return total - background * (hi - lo)


class MCA(Device):
    """An mca record: calibration, presets, elapsed times, the spectrum (VAL) and its ROIs.

    Parameters
    ----------
    prefix : str
        The record name, or with *mca* the prefix of ``{prefix}mca{mca}``.
    mca : int, optional
        Element number.
    nrois : int, optional
        Number of ROIs :meth:`get_rois` looks at (default ``MAX_ROIS``).
    data_pv : str, optional
        Another PV holding the spectrum, for the ROI sums.
    """

    _attrs = ("CALO", "CALS", "CALQ", "TTH", "EGU", "PRTM", "PLTM", "ACQG", "NUSE", "DWEL", "ERTM", "ELTM", "IDTIM")
    _nonpvs = (*DEVICE_OWN, "_npts", "rois", "_nrois")

    def __init__(self, prefix: str, mca: int | None = None, nrois: int | None = None, data_pv: str | None = None):
        self._prefix = prefix
        self._npts: int | None = None
        self._nrois = MAX_ROIS if nrois is None else nrois
        self.rois: list[ROI] = []
        if isinstance(mca, int):
            self._prefix = f"{prefix}mca{mca}"
        super().__init__(self._prefix, delim=".", attrs=self._attrs, with_poll=False)
        self._pvs["VAL"] = get_pv(f"{self._prefix}VAL", auto_monitor=False)
        self._pvs["_dat_"] = None  # type: ignore[assignment]
        if data_pv is not None:
            self._pvs["_dat_"] = get_pv(data_pv)
        ca.poll()

    def _roi(self, i: int) -> ROI:
        return ROI(prefix=_record(self._prefix), roi=i, data_pv=self._pvs["_dat_"])

    def get_rois(self, nrois: int | None = None) -> list[ROI]:
        """The ROIs in use: from ROI 0 up to the first without a name or with HI <= 0."""
        self.rois = []
        for i in range(self._nrois if nrois is None else nrois):
            roi = self._roi(i)
            name = roi.NM
            if name is None or len(name.strip()) <= 0 or roi.HI <= 0:
                break
            self.rois.append(roi)
        ca.poll()
        return self.rois

    def del_roi(self, roiname: str) -> None:
        """Remove the ROI(s) named *roiname* (case and spaces ignored) and close the gap."""
        self.get_rois()
        for roi in self.rois:
            if roi.NM.strip().lower() == roiname.strip().lower():
                roi.clear()
        ca.poll(0.010, 1.0)
        self.set_rois(self.rois)

    def add_roi(self, roiname: str, lo: int = -1, hi: int = -1, calib: Sequence[float] | None = None) -> None:
        """Add a ROI from channel *lo* to *hi*; with *calib* (offset, slope, ...) the channels are those of
        that calibration, converted to this MCA's.

        Raises
        ------
        ValueError
            All ``MAX_ROIS`` are in use.
        """
        if lo < 0 or hi < 0:
            return
        rois = self.get_rois()
        iroi = len(rois)
        if iroi >= MAX_ROIS:
            raise ValueError(f"too many ROIs - cannot add more {iroi}/{MAX_ROIS}")
        roi = self._roi(iroi)
        roi.NM = roiname.strip()
        offset, scale = self._conversion(calib)
        roi.LO = round(offset + scale * lo)
        roi.HI = round(offset + scale * hi)
        rois.append(roi)
        self.set_rois(rois)

    def _conversion(self, calib: Sequence[float] | None) -> tuple[float, float]:
        if calib is None:
            return 0.0, 1.0
        off, slope, _ = self.get_calib()
        return calib[0] - off, calib[1] / slope

    def set_rois(self, rois: Iterable[ROI], calib: Sequence[float] | None = None) -> None:
        """Write *rois* (sorted by LO, empty ones dropped) as ROIs 0, 1, ...; clear the ROIs after them.

        With *calib* the ROIs' channels are of that calibration, converted
        to this MCA's (to copy ROIs by energy from another MCA).
        """
        prefix = _record(self._prefix)
        offset, scale = self._conversion(calib)
        ca.poll(0.0050, 1.0)
        roidat = [(r.NM, r.LO, r.HI) for r in sorted(rois)]
        iroi = 0
        self.rois = []
        for name, lo, hi in roidat:
            if len(name) < 1 or lo < 0 or hi < 0:
                continue
            roi = self._roi(iroi)
            roi.NM = name.strip()
            roi.LO = round(offset + scale * lo)
            roi.HI = round(offset + scale * hi)
            self.rois.append(roi)
            iroi += 1
        for i in range(iroi, MAX_ROIS):
            lo_pv = get_pv(f"{prefix}.R{i}LO", connect=True)
            lo = lo_pv.get()
            if lo is None or lo < 0:
                break
            lo_pv.put(-1, wait=True)
            get_pv(f"{prefix}.R{i}HI", connect=True).put(-1, wait=True)
            get_pv(f"{prefix}.R{i}NM", connect=True).put("", wait=True)

    def clear_rois(self, nrois: int | None = None) -> None:
        """Clear every ROI in use."""
        for roi in self.get_rois(nrois=nrois):
            roi.clear()
        self.rois = []

    def get_calib(self) -> list[Any]:
        """The energy calibration [CALO, CALS, CALQ]."""
        return [self.get(name) for name in ("CALO", "CALS", "CALQ")]

    def get_energy(self) -> Any:
        """The energy of each channel from the calibration (a numpy array)."""
        if self._npts is None:
            self._npts = len(self.get("VAL"))
        en = np.arange(self._npts, dtype="f8")
        cal = self.get_calib()
        return cal[0] + en * (cal[1] + en * cal[2])


class MultiXMAP(FileSaverMixin):
    """A multi-element XIA xMAP: DXP parameters and MCAs per element, acquisition control and a file saver.

    Parameters
    ----------
    prefix : str
        The detector's prefix.
    filesaver : str
        The file plugin's prefix after *prefix*.
    nmca : int
        Number of elements.
    """

    attrs = [  # noqa: RUF012 (pyepics' class attribute)
        "PresetReal", "Dwell", "Acquiring", "EraseStart", "StopAll", "PresetMode", "PixelsPerBuffer_RBV",
        "NextPixel", "PixelsPerRun", "Apply", "AutoApply", "CollectMode", "SyncCount", "BufferSize_RBV",
    ]  # fmt: skip
    pathattrs = ("FilePath", "FileTemplate", "FileWriteMode", "FileName", "FileNumber", "FullFileName_RBV", "Capture",
                 "NumCapture", "WriteFile_RBV", "AutoSave", "EnableCallbacks", "ArraySize0_RBV", "FileTemplate_RBV",
                 "FileName_RBV", "AutoIncrement")  # fmt: skip
    _nonpvs = (*DEVICE_OWN, "filesaver", "pathattrs", "nmca", "dxps", "mcas")

    def __init__(self, prefix: str, filesaver: str = "netCDF1:", nmca: int = 4) -> None:
        self.filesaver = filesaver
        self._prefix = prefix
        self.nmca = nmca
        self.dxps = [DXP(prefix, mca=i + 1) for i in range(nmca)]
        self.mcas = [MCA(prefix, mca=i + 1) for i in range(nmca)]
        super().__init__(prefix, attrs=self.attrs, delim="", mutable=True)
        for name in self.pathattrs:
            self.add_pv(f"{prefix}{filesaver}{name}", attr=name)

    def get_calib(self) -> list[list[Any]]:
        """Each element's calibration."""
        return [m.get_calib() for m in self.mcas]

    def get_rois(self) -> list[list[ROI]]:
        """Each element's ROIs."""
        return [m.get_rois() for m in self.mcas]

    def roi_calib_info(self) -> list[str]:
        """Lines of an ini-style report: ``[rois]``, ``[calibration]`` and ``[dxp]`` sections."""
        out = ["[rois]"]
        rois = self.get_rois()
        for iroi in range(len(rois[0])):
            name = rois[0][iroi].NM
            lims = " ".join(f"{rois[m][iroi].LO} {rois[m][iroi].HI}" for m in range(self.nmca))
            out.append(f"ROI{iroi:02d} = {name} | {lims}")
        caldat = np.array(self.get_calib())
        out.append("[calibration]")
        for label, col in (("OFFSET", 0), ("SLOPE ", 1), ("QUAD  ", 2)):
            out.append(f"{label} = {' '.join(f'{v:.7g}' for v in caldat[:, col])} ")
        out.append("[dxp]")
        for attr in self.dxps[0]._attrs:
            vals = [str(dxp.get(attr, as_string=True)).replace(" ", "_") for dxp in self.dxps]
            out.append(f"{attr} = {' '.join(vals)}")
        return out

    def restore_rois(self, roifile: str) -> None:
        """Set every element's ROIs from the ``[rois]`` section of a file written by :meth:`Write_CurrentConfig`
        (by energy, with the first element's calibration)."""
        parser = ConfigParser()
        parser.read(roifile, encoding=utils.IOENCODING)
        self.mcas[0].clear_rois()
        prefix = _record(self.mcas[0]._prefix)
        rois = []
        for iroi, key in enumerate(k for k in parser.options("rois") if k.lower().startswith("roi")):
            name, dat = parser.get("rois", key).split("|")
            lims = [int(i) for i in dat.split()]
            roi = ROI(prefix=prefix, roi=iroi)
            roi.LO, roi.HI, roi.NM = lims[0], lims[1], name.strip()
            rois.append(roi)
        ca.poll(0.050, 1.0)
        self.mcas[0].set_rois(rois)
        cal0 = self.mcas[0].get_calib()
        for mca in self.mcas[1:]:
            mca.set_rois(rois, calib=cal0)

    def Write_CurrentConfig(self, filename: str | None = None) -> str:
        """The current settings (general, ROIs, calibration, DXP) as text; also written to *filename* if given."""
        lines = [
            f"#Multi-Element xMAP Settings saved: {time.ctime()}",
            "[general]",
            f"prefix= {self._prefix}",
            f"nmcas = {self.nmca}",
            f"filesaver= {self.filesaver}",
            *self.roi_calib_info(),
        ]
        text = "\n".join(lines)
        if filename is not None:
            with open(filename, "w", encoding=utils.IOENCODING) as out:
                out.write(text)
        return text

    def start(self) -> Any:
        """Erase and start acquiring (again if it did not start)."""
        self.EraseStart = 1
        if self.Acquiring == 0:
            ca.poll()
            self.EraseStart = 1
        return self.EraseStart

    def stop(self) -> Any:
        """Stop acquiring."""
        self.StopAll = 1
        return self.StopAll

    def next_pixel(self) -> Any:
        """Advance to the next pixel."""
        self.NextPixel = 1
        return self.NextPixel

    def finish_pixels(self, timeout: float = 2) -> tuple[bool, Any]:
        """Wait up to *timeout* s for CurrentPixel to reach PixelsPerRun, else advance the missing pixels.

        Returns (whether they were reached, how many were missing).
        """
        pprun = self.PixelsPerRun
        cur = self.dxps[0].get("CurrentPixel")
        deadline = time.monotonic() + timeout
        while cur < pprun and time.monotonic() < deadline:
            time.sleep(0.1)
            pprun = self.PixelsPerRun
            cur = self.dxps[0].get("CurrentPixel")
        ok = cur >= pprun
        if not ok:
            print("XMAP needs to finish pixels ", cur, " / ", pprun)
            for _ in range(pprun - cur):
                self.next_pixel()
                time.sleep(0.10)
            self.FileCaptureOff()
        return ok, pprun - cur

    def readmca(self, n: int = 1) -> Any:
        """The spectrum of element *n*."""
        return self.get(f"mca{n}")

    def SCAMode(self) -> None:
        """SCA mapping mode (CollectMode 2)."""
        self.CollectMode = 2

    def SpectraMode(self) -> None:
        """MCA spectra mode: stop, CollectMode 0, PresetMode 0; wait up to 5 s for the buffer size to follow."""
        self.stop()
        self.CollectMode = 0
        self.PresetMode = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.CollectMode = 0
            time.sleep(0.05)
            if self.BufferSize_RBV < 16384:
                break

    def MCAMode(self, filename: str | None = None, filenumber: int | None = None, npulses: int = 11) -> None:
        """MCA mapping mode for *npulses* pixels, with the file saver in stream mode (pyepics' sequence)."""
        self.AutoApply = 1
        self.stop()
        self.PresetMode = 0
        self.setFileWriteMode(2)
        npulses = max(npulses, 2)
        self.CollectMode = 1
        self.PixelsPerRun = npulses
        self.FileCaptureOff()
        self.start()
        f_size = -1
        deadline = time.monotonic() + 10
        while f_size < 16384 and time.monotonic() < deadline:
            for _ in range(5):
                time.sleep(0.1)
                self.NextPixel = 1
                f_size = self.fileGet("ArraySize0_RBV")
                if f_size > 16384:
                    break
        self.PixelsPerRun = npulses
        self.SyncCount = 1
        self.setFileNumber(filenumber)
        if filename is not None:
            self.setFileName(filename)
        self.Apply = 1
        self.CollectMode = 1
        self.PixelsPerRun = npulses
        time.sleep(0.50)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.25)
            if self.BufferSize_RBV > 16384:
                break
        ppbuff = self.PixelsPerBuffer_RBV
        time.sleep(0.25)
        if ppbuff is None:
            ppbuff = 124
        self.setFileNumCapture(1 + (npulses - 1) / ppbuff)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if self.BufferSize_RBV == self.fileGet("ArraySize0_RBV"):
                break
        time.sleep(0.5)

    # -- the file saver (its methods: FileSaverMixin) ------------------------------------------------
    def _file_field(self, attr: str) -> str:
        return f"{self.filesaver}{attr}"
