"""Devices for the common record types: the record's fields as attributes."""

from __future__ import annotations

from typing import Any

from ..device import Device


class _Record(Device):
    """A record as a Device: ``NAME.FIELD`` for each field in :attr:`attrs`."""

    attrs: tuple[str, ...] = ()

    def __init__(self, prefix: str, **kwargs: Any) -> None:
        if prefix.endswith("."):
            prefix = prefix[:-1]
        super().__init__(prefix, delim=".", attrs=self.attrs, **kwargs)


class ai(_Record):
    """An analog input record."""

    attrs = ("VAL", "EGU", "HOPR", "LOPR", "PREC", "NAME", "DESC", "DTYP", "INP", "LINR", "RVAL", "ROFF", "EGUF",
             "EGUL", "AOFF", "ASLO", "ESLO", "EOFF", "SMOO", "HIHI", "LOLO", "HIGH", "LOW", "HHSV", "LLSV", "HSV",
             "LSV", "HYST")  # fmt: skip


class ao(_Record):
    """An analog output record."""

    attrs = ("OUT", "LINR", "RVAL", "ROFF", "EGUF", "EGUL", "AOFF", "ASLO", "ESLO", "EOFF", "VAL", "EGU", "HOPR",
             "LOPR", "PREC", "NAME", "DESC", "DTYP", "HIHI", "LOLO", "HIGH", "LOW", "HHSV", "LLSV", "HSV", "LSV",
             "HYST", "OMSL", "DOL", "OIF", "DRVH", "DRVL", "OROC", "OVAL")  # fmt: skip


class bi(_Record):
    """A binary input record."""

    attrs = ("INP", "ZNAM", "ONAM", "RVAL", "VAL", "EGU", "HOPR", "LOPR", "PREC", "NAME", "DESC", "DTYP")


class bo(_Record):
    """A binary output record."""

    attrs = ("DOL", "OMSL", "RVAL", "HIGH", "ZNAM", "ONAM", "VAL", "EGU", "HOPR", "LOPR", "PREC", "NAME", "DESC",
             "DTYP")  # fmt: skip
