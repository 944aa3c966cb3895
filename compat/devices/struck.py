"""``Struck``: the Struck/SIS multichannel scaler (synApps mca records), as pyepics' ``epics.devices.Struck``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import utils
from ..device import Device
from ._common import DEVICE_OWN
from .mca import MCA
from .scaler import Scaler

__all__ = ["Struck"]

_HEADER = """# Struck MCA data: {prefix}
# Nchannels, Nmca = {npts}, {nmca}
# Time in microseconds
#----------------------
# {addrs}
# {names}
"""


class Struck(Device):
    """A SIS multichannel scaler: acquisition fields ``{prefix}NAME``, MCAs ``{prefix}mca1`` .. and an optional scaler.

    Parameters
    ----------
    prefix : str
        The SIS prefix (a ':' is added if missing).
    scaler : str, optional
        Name of an associated scaler record (for channel names and one-shot mode).
    nchan : int
        Number of channels (MCAs).
    clockrate : float
        Clock rate in MHz (channel 1 counts the clock; :meth:`saveMCAdata` divides it by this).
    """

    attrs = ("ChannelAdvance", "Prescale", "EraseStart", "EraseAll", "StartAll", "StopAll", "PresetReal",
             "ElapsedReal", "Dwell", "Acquiring", "NuseAll", "CurrentChannel", "CountOnStart",
             "SoftwareChannelAdvance", "Channel1Source", "ReadAll", "DoReadAll", "Model", "Firmware")  # fmt: skip
    _nonpvs = (*DEVICE_OWN, "_nchan", "clockrate", "scaler", "mcas")

    def __init__(self, prefix: str, scaler: str | None = None, nchan: int = 8, clockrate: float = 50.0) -> None:
        if not prefix.endswith(":"):
            prefix = f"{prefix}:"
        self._nchan = nchan
        self.clockrate = clockrate
        self.scaler = Scaler(scaler, nchan=nchan) if scaler is not None else None
        self.mcas = [MCA(prefix, mca=i + 1, nrois=2) for i in range(nchan)]
        super().__init__(prefix, delim="", attrs=self.attrs, mutable=False)

    def ExternalMode(
        self,
        countonstart: int | None = 0,
        initialadvance: int | None = None,
        realtime: float | None = 0,
        prescale: int | None = 1,
    ) -> Any:
        """Channel advance from the external input (ChannelAdvance = 1), and the options that are not None.

        *initialadvance* sets ``InitialChannelAdvance`` (pyepics writes a
        misspelt field name there).  Returns the ChannelAdvance put's result.
        """
        out = self.put("ChannelAdvance", 1)
        if self.scaler is not None:
            self.scaler.OneShotMode()
        if realtime is not None:
            self.put("PresetReal", realtime)
        if prescale is not None:
            self.put("Prescale", prescale)
        if countonstart is not None:
            self.put("CountOnStart", countonstart)
        if initialadvance is not None:
            self.put("InitialChannelAdvance", initialadvance)
        return out

    def InternalMode(self, prescale: int | None = None) -> Any:
        """Channel advance from the internal dwell timer (ChannelAdvance = 0)."""
        out = self.put("ChannelAdvance", 0)
        if self.scaler is not None:
            self.scaler.OneShotMode()
        if prescale is not None:
            self.put("Prescale", prescale)
        return out

    def setPresetReal(self, val: float) -> Any:
        """Set the preset real time."""
        return self.put("PresetReal", val)

    def setDwell(self, val: float) -> Any:
        """Set the dwell time."""
        return self.put("Dwell", val)

    def AutoCountMode(self) -> None:
        """Put the associated scaler in auto-count mode."""
        if self.scaler is not None:
            self.scaler.AutoCountMode()

    def start(self) -> Any:
        """Erase and start (EraseStart = 1)."""
        if self.scaler is not None:
            self.scaler.OneShotMode()
        return self.put("EraseStart", 1)

    def stop(self) -> Any:
        """Stop (StopAll = 1)."""
        return self.put("StopAll", 1)

    def erase(self) -> Any:
        """Erase (EraseAll = 1)."""
        return self.put("EraseAll", 1)

    def mcaNread(self, nmca: int = 1) -> Any:
        """Number of channels read into MCA *nmca* (its NORD)."""
        return self.get(f"mca{nmca}.NORD")

    def readmca(self, nmca: int = 1, count: int | None = None) -> Any:
        """The data of MCA *nmca*."""
        return self.get(f"mca{nmca}", count=count)

    def read_all_mcas(self) -> list[Any]:
        """The data of every MCA."""
        return [self.readmca(nmca=i + 1) for i in range(self._nchan)]

    def saveMCAdata(
        self, fname: str = "Struck.dat", mcas: Any = None, ignore_prefix: Any = None, npts: Any = None
    ) -> tuple[int, int]:
        """Write the MCAs' data as columns to a text file; returns (number of MCAs, number of points).

        MCAs without a name and without counts are left out; channel 1 (the
        clock) is divided by the clock rate.  *mcas*, *ignore_prefix* and
        *npts* are accepted and ignored, as in pyepics.
        """
        data, names, addrs = [], [], []
        length = None
        for i in range(self._nchan):
            nmca = i + 1
            name = f"MCA{nmca}"
            addr = f"{self._prefix}.MCA{nmca}"
            if self.scaler is not None:
                scaler_name = self.scaler.get(f"NM{nmca}")
                if scaler_name is not None:
                    name = scaler_name.replace(" ", "_")
                    addr = f"{self.scaler._prefix}S{nmca}"
            values = self.readmca(nmca=nmca)
            length = len(values) if length is None else min(length, len(values))
            if len(name) > 0 or sum(values) > 0:
                names.append(name)
                addrs.append(addr)
                data.append(values)
        table = np.array([d[:length] for d in data]).transpose()
        table[:, 0] = table[:, 0] / self.clockrate
        nrows, ncols = table.shape
        with open(fname, "w", encoding=utils.IOENCODING) as out:
            out.write(
                _HEADER.format(
                    prefix=self._prefix, npts=nrows, nmca=ncols, addrs=" | ".join(addrs), names=" | ".join(names)
                )
            )
            line = "%9i " * ncols + "\n"
            for row in table:
                out.write(line % tuple(row))
        return (ncols, nrows)
