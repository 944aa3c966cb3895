"""``AD_PerkinElmer``: a Perkin-Elmer flat panel (areaDetector) with its file saver, as pyepics'
``epics.devices.AD_PerkinElmer``.

The methods keep pyepics' sequences and pauses (they wait on the detector
with ``time.sleep``, as the original does).
"""

from __future__ import annotations

import time

from ._common import DEVICE_OWN
from ._filesaver import FileSaverMixin

__all__ = ["AD_PerkinElmer"]


class AD_PerkinElmer(FileSaverMixin):
    """A Perkin-Elmer detector: ``{prefix}cam1:NAME`` fields, and the file saver's as ``File_NAME``.

    Parameters
    ----------
    prefix : str
        The detector's prefix, e.g. ``'13PE1:'``.
    filesaver : str
        The file plugin's prefix after *prefix*.
    """

    camattrs = ("PEAcquireOffset", "PENumOffsetFrames", "ImageMode", "TriggerMode", "Acquire", "AcquireTime",
                "Model_RBV", "NumImages", "ShutterControl", "ShutterMode")  # fmt: skip
    pathattrs = ("FilePath", "FileTemplate", "FileWriteMode", "FileName", "FileNumber", "FullFileName_RBV", "Capture",
                 "Capture_RBV", "NumCapture", "WriteFile_RBV", "AutoSave", "EnableCallbacks", "ArraySize0_RBV",
                 "FileTemplate_RBV", "FileName_RBV", "AutoIncrement")  # fmt: skip
    _nonpvs = (*DEVICE_OWN, "filesaver", "camattrs", "pathattrs")

    def __init__(self, prefix: str, filesaver: str = "netCDF1:") -> None:
        super().__init__(prefix + "cam1:", delim="", mutable=False, attrs=self.camattrs)
        self.filesaver = f"{prefix}{filesaver}"
        for name in self.pathattrs:
            self.add_pv(f"{prefix}{filesaver}{name}", attr="File_" + name)

    def AcquireOffset(self, timeout: float = 10, open_shutter: bool = True) -> None:
        """Acquire the offset correction: close the shutter, single image with internal trigger, start the
        offset acquisition and wait for it (at most *timeout* s more than its frames take), restore the
        modes, and open the shutter again unless told not to."""
        self.ShutterMode = 1
        self.ShutterControl = 0
        image_mode, trigger_mode = self.get("ImageMode"), self.get("TriggerMode")
        self.ImageMode = 0
        self.TriggerMode = 0
        offtime = self.PENumOffsetFrames * self.AcquireTime
        time.sleep(0.50)
        self.PEAcquireOffset = 1
        start = time.monotonic()
        time.sleep(offtime / 3.0)
        while self.PEAcquireOffset > 0 and time.monotonic() - start < timeout + offtime:
            time.sleep(0.1)
        time.sleep(1.00)
        self.ImageMode = image_mode
        self.TriggerMode = trigger_mode
        time.sleep(1.00)
        if open_shutter:
            self.ShutterControl = 1
        self.ShutterMode = 0
        time.sleep(1.00)

    def SetExposureTime(self, t: float, open_shutter: bool = True) -> None:
        """Set the exposure time and acquire a new offset correction."""
        self.AcquireTime = t
        self.AcquireOffset(open_shutter=open_shutter)

    def SetMultiFrames(self, n: int, trigger: str = "external") -> None:
        """*n* images per acquisition (Multiple mode) and *n* captured by the file saver; *trigger* is
        'internal', 'external', 'free' (running) or 'soft'."""
        self.ImageMode = 1
        trig = trigger.lower()
        mode = 0
        if trig.startswith("ext"):
            mode = 1
        elif trig.startswith("free"):
            mode = 2
        elif trig.startswith("soft"):
            mode = 3
        time.sleep(0.1)
        self.TriggerMode = mode
        self.NumImages = n
        self.filePut("NumCapture", n)
        self.filePut("EnableCallbacks", 1)
        self.filePut("FileNumber", 1)
        self.filePut("AutoIncrement", 1)
        time.sleep(2.0)

    def StartStreaming(self) -> None:
        """Stream to the file saver (AutoSave, stream mode, capture on) and start acquiring."""
        self.ShutterMode = 0
        self.filePut("AutoSave", 1)
        self.filePut("FileWriteMode", 2)
        time.sleep(0.05)
        self.filePut("Capture", 1)
        self.Acquire = 1
        time.sleep(0.25)

    def FinishStreaming(self, timeout: float = 5.0) -> None:
        """Wait up to *timeout* s for the capture to end, then stop it if it has not."""
        deadline = time.monotonic() + timeout
        capture_on = self.fileGet("Capture_RBV")
        while capture_on == 1 and time.monotonic() < deadline:
            time.sleep(0.05)
            capture_on = self.fileGet("Capture_RBV")
        if capture_on != 0:
            print("Forcing XRD Streaming to stop")
            self.filePut("Capture", 0)
            deadline = time.monotonic() + timeout
            while capture_on == 1 and time.monotonic() < deadline:
                time.sleep(0.05)
                capture_on = self.fileGet("Capture_RBV")
        time.sleep(0.50)

    def _file_field(self, attr: str) -> str:
        return f"File_{attr}"
