"""The areaDetector file-saver methods that pyepics' ``AD_PerkinElmer`` and ``MultiXMAP`` both have."""

from __future__ import annotations

from typing import Any

from ..device import Device


class FileSaverMixin(Device):
    """pyepics' file-saver methods (``setFilePath``, ``getLastFileName``, ...), on a device that names
    the saver's fields through :meth:`_file_field`."""

    def _file_field(self, attr: str) -> str:
        """The device attribute of the file saver's *attr*."""
        raise NotImplementedError

    def filePut(self, attr: str, value: Any, **kw: Any) -> Any:
        """Write the file saver's *attr*."""
        return self.put(self._file_field(attr), value, **kw)

    def fileGet(self, attr: str, **kw: Any) -> Any:
        """Read the file saver's *attr*."""
        return self.get(self._file_field(attr), **kw)

    def setFilePath(self, pathname: str) -> Any:
        return self.filePut("FilePath", pathname)

    def setFileTemplate(self, fmt: str) -> Any:
        return self.filePut("FileTemplate", fmt)

    def setFileWriteMode(self, mode: int) -> Any:
        return self.filePut("FileWriteMode", mode)

    def setFileName(self, fname: str) -> Any:
        return self.filePut("FileName", fname)

    def nextFileNumber(self) -> None:
        self.setFileNumber(1 + self.fileGet("FileNumber"))

    def setFileNumber(self, fnum: int | None = None) -> Any:
        """Set the file number (AutoIncrement off); with None, switch AutoIncrement on instead."""
        if fnum is None:
            self.filePut("AutoIncrement", 1)
            return None
        self.filePut("AutoIncrement", 0)
        return self.filePut("FileNumber", fnum)

    def getLastFileName(self) -> Any:
        return self.fileGet("FullFileName_RBV", as_string=True)

    def FileCaptureOn(self) -> Any:
        return self.filePut("Capture", 1)

    def FileCaptureOff(self) -> Any:
        return self.filePut("Capture", 0)

    def setFileNumCapture(self, n: float) -> Any:
        return self.filePut("NumCapture", n)

    def FileWriteComplete(self) -> bool:
        return bool(self.fileGet("WriteFile_RBV") == 0)

    def getFileTemplate(self) -> Any:
        return self.fileGet("FileTemplate_RBV", as_string=True)

    def getFileName(self) -> Any:
        return self.fileGet("FileName_RBV", as_string=True)

    def getFileNumber(self) -> Any:
        return self.fileGet("FileNumber_RBV")

    def getFilePath(self) -> Any:
        return self.fileGet("FilePath_RBV", as_string=True)

    def getFileNameByIndex(self, index: int) -> Any:
        return self.getFileTemplate() % (self.getFilePath(), self.getFileName(), index)
