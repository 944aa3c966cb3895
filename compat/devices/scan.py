"""``Scan``: the synApps sscan record, as pyepics' ``epics.devices.Scan``."""

from __future__ import annotations

import threading
from typing import Any

from .. import ca
from ..device import Device

__all__ = ["NUM_DETECTORS", "NUM_POSITIONERS", "NUM_TRIGGERS", "Scan", "ScanException"]

NUM_POSITIONERS = 4
NUM_TRIGGERS = 4
NUM_DETECTORS = 70


class ScanException(Exception):
    """A problem with a scan: not an sscan record, no free positioner/trigger/detector slot."""

    def __init__(self, msg: str, *args: Any) -> None:
        super().__init__(*args)
        self.msg = msg

    def __str__(self) -> str:
        return str(self.msg)


def _mode_number(mode: str) -> int:
    mode = mode.lower()
    if mode.startswith("table"):
        return 1
    if mode.startswith("fly"):
        return 2
    return 0


class Scan(Device):
    """An sscan record: positioners P1..P4, triggers T1..T4, detectors D01..D70.

    Parameters
    ----------
    name : str
        The record name.
    **kwargs
        Passed on to :class:`compat.Device`.

    Raises
    ------
    ScanException
        The record is not an sscan record, or does not connect (its RTYP
        cannot be read).

    Notes
    -----
    Construction clears the record's message (SMSG), as pyepics does.  The
    long names of :data:`_alias` (``start``, ``end``, ``npts``, ...) reach
    positioner 1's and trigger 1's fields.
    """

    attrs = ("VAL", "SMSG", "CMND", "NPTS", "EXSC", "NAME", "PDLY", "PAUS", "CPT", "DDLY")
    pos_attrs = ("PV", "SP", "EP", "SI", "CP", "WD", "PA", "AR", "SM")
    trig_attrs = ("PV", "NV")
    _alias = {  # noqa: RUF012 (pyepics' class attribute)
        "device": "P1PV",
        "start": "P1SP",
        "end": "P1EP",
        "step": "P1SI",
        "table": "P1PA",
        "absrel": "P1AR",
        "mode": "P1SM",
        "npts": "NPTS",
        "execute": "EXSC",
        "trigger": "T1PV",
        "pause": "PAUS",
        "current_point": "CPT",
    }

    def __init__(self, name: str, **kwargs: Any) -> None:
        attrs = list(self.attrs)
        for i in range(1, NUM_POSITIONERS + 1):
            attrs.extend(f"P{i}{a}" for a in self.pos_attrs)
        for i in range(1, NUM_TRIGGERS + 1):
            attrs.extend(f"T{i}{a}" for a in self.trig_attrs)
        attrs.extend(f"D{i:02d}PV" for i in range(1, NUM_DETECTORS + 1))
        self.waitSemaphore = threading.Semaphore(0)
        super().__init__(name, delim=".", attrs=attrs, **kwargs)
        for attr, field in self._alias.items():
            self.add_pv(f"{name}.{field}", attr)
        if self.get("RTYP") != "sscan":
            raise ScanException(f"{name} is not an Epics Scan")
        self.put("SMSG", "")

    def run(self, wait: bool = False, timeout: float = 86400) -> None:
        """Start the scan (EXSC = 1); with *wait*, until it is done (at most *timeout* s)."""
        self.put("EXSC", 1, wait=wait, timeout=timeout)

    def _onDone(self, **kwargs: Any) -> None:
        if kwargs["value"] == 0:
            self.waitSemaphore.release()

    def reset(self) -> None:
        """Clear everything: NPTS 0, every trigger, positioner and detector."""
        self.put("NPTS", 0)
        for i in range(1, NUM_TRIGGERS + 1):
            self.clear_trigger(i)
        for i in range(1, NUM_POSITIONERS + 1):
            self.clear_positioner(i)
        for i in range(1, NUM_DETECTORS + 1):
            self.clear_detector(i)
        ca.poll(1.0e-3, 1.0)

    def _print(self) -> None:
        for label, attr in (("PV", "P1PV"), ("SP", "P1SP"), ("EP", "P1EP"), ("NPTS", "NPTS"), ("T ", "T1PV")):
            print(f"{label} = {self.get(attr)}")

    def _free_slot(self, fmt: str, count: int, what: str) -> int:
        for i in range(1, count + 1):
            ca.poll(1.0e-3, 1.0)
            value = self.get(fmt % i)
            if value is None or len(value) < 2:
                return i
        raise ScanException(f"{count} {what} already defined.")

    def clear_detector(self, idet: int = 1) -> None:
        """Clear detector *idet* (1 .. 70)."""
        self.put(f"D{idet:02d}PV", "")
        ca.poll(1.0e-3, 1.0)

    def add_detector(self, detector: str) -> int:
        """Set *detector* (a PV name) in the first free detector slot; returns its number.

        Raises
        ------
        ScanException
            All 70 are in use.
        """
        idet = self._free_slot("D%2.2iPV", NUM_DETECTORS, "Detectors")
        self.put(f"D{idet:02d}PV", detector, wait=True)
        return idet

    def clear_trigger(self, itrig: int = 1) -> None:
        """Clear trigger *itrig* (1 .. 4)."""
        self.put(f"T{itrig}PV", "")
        ca.poll(1.0e-3, 1.0)

    def add_trigger(self, trigger: str, value: float = 1.0) -> int:
        """Set *trigger* (a PV name, written *value*) in the first free trigger slot; returns its number.

        Raises
        ------
        ScanException
            All 4 are in use.
        """
        itrig = self._free_slot("T%iPV", NUM_TRIGGERS, "Triggers")
        self.put(f"T{itrig}PV", trigger, wait=True)
        self.put(f"T{itrig}CD", value, wait=True)
        return itrig

    def clear_positioner(self, ipos: int = 1) -> None:
        """Clear positioner *ipos* (1 .. 4): its PV names, and every setting 0."""
        for attr in self.pos_attrs:
            empty: Any = 0
            if attr == "PV":
                empty = ""
            elif attr == "PA":
                empty = [0]
            self.put(f"P{ipos}{attr}", empty)
        self.put(f"R{ipos}PV", "")
        ca.poll(1.0e-3, 1.0)

    def add_positioner(
        self,
        drive: str,
        readback: str | None = None,
        start: float | None = None,
        stop: float | None = None,
        step: float | None = None,
        center: float | None = None,
        width: float | None = None,
        mode: str = "linear",
        absolute: bool = True,
        array: Any = None,
    ) -> int:
        """Set up the first free positioner; returns its number.

        Parameters
        ----------
        drive : str
            Drive PV name.
        readback : str, optional
            Readback PV name (default: ``.RBV`` for a drive ending in ``.VAL``).
        start, stop, step, center, width : float, optional
        mode : {'linear', 'table', 'fly'}
        absolute : bool
            Absolute (else relative) positions.
        array : sequence, optional
            The positions, for table and fly modes.

        Raises
        ------
        ScanException
            All 4 are in use.
        """
        ipos = self._free_slot("P%iPV", NUM_POSITIONERS, "Positioners")
        self.put(f"P{ipos}PV", drive, wait=True)
        if readback is None and drive.endswith(".VAL"):
            readback = drive[:-4] + ".RBV"
        if readback is not None:
            self.put(f"R{ipos}PV", readback)
        self.put(f"P{ipos}AR", 0 if absolute else 1)
        smode = _mode_number(mode)
        self.put(f"P{ipos}SM", smode)
        self._set_range(ipos, start, stop, step, center, width)
        if smode in (1, 2) and array is not None:
            self.put(f"P{ipos}PA", array)
        ca.poll(1.0e-3, 1.0)
        return ipos

    def _set_range(self, ipos: int, *values: float | None) -> None:
        for field, value in zip(("SP", "EP", "SI", "CP", "WD"), values, strict=True):
            if value is not None:
                self.put(f"P{ipos}{field}", value)

    def set_positioner(
        self,
        ipos: int,
        drive: str | None = None,
        readback: str | None = None,
        start: float | None = None,
        stop: float | None = None,
        step: float | None = None,
        center: float | None = None,
        width: float | None = None,
        mode: str | None = None,
        absolute: bool | None = None,
        array: Any = None,
    ) -> None:
        """Change the settings of positioner *ipos* that are not None (see :meth:`add_positioner`).

        Raises
        ------
        ScanException
            *ipos* is None.
        """
        if ipos is None:
            raise ScanException("must give positioner index")
        if drive is not None:
            self.put(f"P{ipos}PV", drive)
        if readback is not None:
            self.put(f"R{ipos}PV", readback)
        self._set_range(ipos, start, stop, step, center, width)
        if array is not None:
            self.put(f"P{ipos}PA", array)
        if absolute is not None:
            self.put(f"P{ipos}AR", 0 if absolute else 1)
        if mode is not None:
            self.put(f"P{ipos}SM", _mode_number(mode))
        ca.poll(1.0e-3, 1.0)

    def after_scan(self, mode: int) -> None:
        """Set the after-scan mode (PASM)."""
        self.put("PASM", mode, wait=True)

    def positioner_delay(self, pdelay: float) -> None:
        """Set the positioner settling delay (PDLY, seconds)."""
        self.put("PDLY", pdelay, wait=True)

    def detector_delay(self, pdelay: float) -> None:
        """Set the detector settling delay (DDLY, seconds)."""
        self.put("DDLY", pdelay, wait=True)
