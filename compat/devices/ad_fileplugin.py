"""``AD_FilePlugin``: an areaDetector file-saving plugin, as pyepics' ``epics.devices.AD_FilePlugin``."""

from __future__ import annotations

from typing import Any

from ._common import DEVICE_OWN, EnsureValueMixin

__all__ = ["AD_FilePlugin"]


class AD_FilePlugin(EnsureValueMixin):
    """A file plugin (netCDF, TIFF, HDF5 ...): path, name, number, template, write mode, capture.

    Parameters
    ----------
    prefix : str
        The plugin's prefix, e.g. ``'13SIM1:TIFF1:'``.
    """

    attrs = ("AutoIncrement", "AutoIncrement_RBV", "AutoSave", "AutoSave_RBV", "Capture", "Capture_RBV",
             "EnableCallbacks", "EnableCallbacks_RBV", "FileName", "FileName_RBV", "FileNumber", "FileNumber_RBV",
             "FilePath", "FilePath_RBV", "FilePathExists_RBV", "FileTemplate", "FileTemplate_RBV", "FileWriteMode",
             "FileWriteMode_RBV", "FullFileName_RBV", "NDArrayPort", "NDArrayPort_RBV", "NumCapture",
             "NumCapture_RBV", "NumCaptured_RBV", "ReadFile", "ReadFile_RBV", "WriteFile", "WriteFile_RBV",
             "WriteMessage", "WriteStatus")  # fmt: skip
    _nonpvs = DEVICE_OWN

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix, delim="", mutable=False, attrs=self.attrs)

    def setFileName(self, fname: str) -> Any:
        return self.put("FileName", fname)

    def nextFileNumber(self) -> None:
        """Set the file number to one more than now."""
        self.setFileNumber(1 + self.get("FileNumber"))

    def setFileNumber(self, fnum: int | None = None) -> Any:
        """Set the file number (AutoIncrement off); with None, switch AutoIncrement on instead."""
        if fnum is None:
            self.put("AutoIncrement", 1)
            return None
        self.put("AutoIncrement", 0)
        return self.put("FileNumber", fnum)

    def setPath(self, pathname: str) -> Any:
        return self.put("FilePath", pathname)

    def setTemplate(self, fmt: str) -> Any:
        return self.put("FileTemplate", fmt)

    def setWriteMode(self, mode: int) -> Any:
        return self.put("FileWriteMode", mode)

    def getLastFileName(self) -> Any:
        return self.get("FullFileName_RBV", as_string=True)

    def CaptureOn(self) -> Any:
        return self.put("Capture", 1)

    def CaptureOff(self) -> Any:
        return self.put("Capture", 0)

    def setNumCapture(self, n: int) -> Any:
        return self.put("NumCapture", n)

    def WriteComplete(self) -> bool:
        """Whether the last write has finished (WriteFile_RBV is 0)."""
        return bool(self.get("WriteFile_RBV") == 0)

    def getTemplate(self) -> Any:
        return self.get("FileTemplate_RBV", as_string=True)

    def getName(self) -> Any:
        return self.get("FileName_RBV", as_string=True)

    def getNumber(self) -> Any:
        return self.get("FileNumber_RBV")

    def getPath(self) -> Any:
        return self.get("FilePath_RBV", as_string=True)

    def getFileNameByIndex(self, index: int) -> Any:
        """The file name the template gives for file number *index*."""
        return self.getTemplate() % (self.getPath(), self.getName(), index)
