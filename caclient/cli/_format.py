"""Value and metadata formatting shared by caget, caput and camonitor.

Everything here reproduces what EPICS base's command-line tools print
(``tool_lib.c`` there): ``%g``-style doubles and the ``-e/-f/-g`` variants,
``-0x/-0o/-0b`` and ``-lx/-lo/-lb`` integer styles, enum strings, escaped
strings, the wide "name timestamp value status severity" line and the
metadata block of ``caget -d``.

Text convention: byte strings from the wire (values, units, enum strings)
and PV names from the command line travel as ``str`` decoded as Latin-1, so
every byte maps to one character; the tools write their output encoded as
Latin-1 again (see :class:`Output`), which gives back the exact bytes base
would print.  Pure functions and small classes owned by one tool run; no
module state.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

EPICS_EPOCH = 631152000  # POSIX seconds at 1990-01-01 UTC

DEC, BIN, OCT, HEX = "dec", "bin", "oct", "hex"

ALARM_STATUS = (
    "NO_ALARM",
    "READ",
    "WRITE",
    "HIHI",
    "HIGH",
    "LOLO",
    "LOW",
    "STATE",
    "COS",
    "COMM",
    "TIMEOUT",
    "HWLIMIT",
    "CALC",
    "SCAN",
    "LINK",
    "SOFT",
    "BAD_SUB",
    "UDF",
    "DISABLE",
    "SIMM",
    "READ_ACCESS",
    "WRITE_ACCESS",
)
ALARM_SEVERITY = ("NO_ALARM", "MINOR", "MAJOR", "INVALID")

#: DBR type names by number, as libca's ``dbr_text`` (no ``DBR_INT`` aliases).
DBR_TEXT = (
    "DBR_STRING",
    "DBR_SHORT",
    "DBR_FLOAT",
    "DBR_ENUM",
    "DBR_CHAR",
    "DBR_LONG",
    "DBR_DOUBLE",
    "DBR_STS_STRING",
    "DBR_STS_SHORT",
    "DBR_STS_FLOAT",
    "DBR_STS_ENUM",
    "DBR_STS_CHAR",
    "DBR_STS_LONG",
    "DBR_STS_DOUBLE",
    "DBR_TIME_STRING",
    "DBR_TIME_SHORT",
    "DBR_TIME_FLOAT",
    "DBR_TIME_ENUM",
    "DBR_TIME_CHAR",
    "DBR_TIME_LONG",
    "DBR_TIME_DOUBLE",
    "DBR_GR_STRING",
    "DBR_GR_SHORT",
    "DBR_GR_FLOAT",
    "DBR_GR_ENUM",
    "DBR_GR_CHAR",
    "DBR_GR_LONG",
    "DBR_GR_DOUBLE",
    "DBR_CTRL_STRING",
    "DBR_CTRL_SHORT",
    "DBR_CTRL_FLOAT",
    "DBR_CTRL_ENUM",
    "DBR_CTRL_CHAR",
    "DBR_CTRL_LONG",
    "DBR_CTRL_DOUBLE",
    "DBR_PUT_ACKT",
    "DBR_PUT_ACKS",
    "DBR_STSACK_STRING",
    "DBR_CLASS_NAME",
)
DBF_TEXT = ("DBF_STRING", "DBF_SHORT", "DBF_FLOAT", "DBF_ENUM", "DBF_CHAR", "DBF_LONG", "DBF_DOUBLE")
STRING, SHORT, FLOAT, ENUM, CHAR, LONG, DOUBLE = range(7)
TIME_OFFSET = 14
STSACK_STRING, CLASS_NAME = 37, 38


def status_text(value: int | None) -> str:
    """Alarm status name, ``'??'`` when out of range."""
    return ALARM_STATUS[value] if value is not None and 0 <= value < len(ALARM_STATUS) else "??"


def severity_text(value: int | None) -> str:
    """Alarm severity name, ``'??'`` when out of range."""
    return ALARM_SEVERITY[value] if value is not None and 0 <= value < len(ALARM_SEVERITY) else "??"


def dbr_text(dbr: int) -> str:
    """``dbr_type_to_text``."""
    return DBR_TEXT[dbr] if 0 <= dbr < len(DBR_TEXT) else "DBR_invalid"


def dbf_text(dbf: int | None) -> str:
    """``dbf_type_to_text``; a disconnected channel has ``TYPENOTCONN``."""
    if dbf is None:
        return "TYPENOTCONN"
    return DBF_TEXT[dbf] if 0 <= dbf < len(DBF_TEXT) else "DBF_invalid"


def escape(raw: str) -> str:
    """Quote non-printable characters as ``epicsStrnEscapedFromRaw`` does (C locale)."""
    out = []
    for ch in raw:
        code = ord(ch)
        special = _ESCAPES.get(ch)
        if special is not None:
            out.append(special)
        elif 32 <= code < 127:
            out.append(ch)
        else:
            out.append(f"\\x{code & 0xFF:02x}")
    return "".join(out)


_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\0": "\\0",
}


def unescape(text: str, size: int) -> str:
    """``epicsStrnRawFromEscaped`` into a buffer of *size* bytes (at most ``size - 1`` kept)."""
    out: list[str] = []
    limit = size - 1
    i, n = 0, len(text)
    while i < n and len(out) < limit:
        ch = text[i]
        i += 1
        if ch == "\0":
            break
        if ch != "\\":
            out.append(ch)
            continue
        if i >= n:
            break
        ch = text[i]
        i += 1
        if ch == "\0":
            break
        if ch == "x":
            digits = ""
            while i < n and len(digits) < 2 and text[i] in "0123456789abcdefABCDEF":
                digits += text[i]
                i += 1
            if digits:
                out.append(chr(int(digits, 16)))
            continue
        out.append(_UNESCAPES.get(ch, ch))
    return "".join(out[:limit])


_UNESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "0": "\0"}


def c_float(fmt: str, value: float) -> str:
    """``sprintf(fmt, value)`` for a ``%e/%f/%g`` format, with C's ``nan``/``-nan``."""
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return fmt % value


def _to_long(value: float) -> int:
    """Round half away from zero into a C ``int`` (x86: out of range gives INT_MIN)."""
    rounded = value + 0.5 if value > 0.0 else value - 0.5
    if math.isnan(rounded) or not -2147483649.0 < rounded < 2147483648.0:
        return -(2**31)
    return int(rounded)


def sprint_long(value: int, style: str) -> str:
    """An integer in decimal, ``0x%X``, ``0o%o`` or base 2 (as 32-bit two's complement)."""
    if style == DEC:
        return str(value)
    unsigned = value & 0xFFFFFFFF
    if style == HEX:
        return f"0x{unsigned:X}"
    if style == OCT:
        return f"0o{unsigned:o}"
    return f"{unsigned:b}" if unsigned else "0"


class Style:
    """Formatting options set by the command line (one per tool run).

    Attributes
    ----------
    double_format : str
        printf format for floating point values (``%g`` or from ``-e/-f/-g``).
    int_style, float_style : str
        ``'dec'``, ``'hex'``, ``'oct'`` or ``'bin'`` (``-0x``... and ``-lx``...).
    enum_as_number, char_as_string : bool
        ``-n`` and ``-S``.
    separator : str
        The output field separator (``-F``).
    """

    def __init__(self) -> None:
        self.double_format = "%g"
        self.int_style = DEC
        self.float_style = DEC
        self.enum_as_number = False
        self.char_as_string = False
        self.separator = " "

    def set_precision(self, letter: str, digits: int) -> None:
        """``-e/-f/-g <digits>``."""
        self.double_format = f"%-.{digits}{letter}"

    def value(self, data: Any, index: int, dbr: int, md: Any) -> str:
        """One element as text (``val2str``)."""
        base = STRING if dbr in (STSACK_STRING, CLASS_NAME) else dbr % 7
        if base == STRING:
            return escape(data[index])[:499]
        item = data[index]
        if base in (FLOAT, DOUBLE):
            if self.float_style == DEC:
                return c_float(self.double_format, float(item))
            return sprint_long(_to_long(float(item)), self.float_style)
        if base == CHAR:
            v = int(item) & 0xFF
            return str(v - 256 if v > 127 else v)
        if base in (SHORT, LONG):
            return sprint_long(int(item), self.int_style)
        # ENUM
        v = int(item)
        if 21 <= dbr <= 34 and not self.enum_as_number:
            strings = md.enum_strings or ()
            if v >= 16:
                return f"Illegal Value ({v})"
            if v >= len(strings):
                return f"Enum Index Overflow ({v})"
            return str(strings[v])
        return str(v)

    def values(self, data: Any, count: int, dbr: int, md: Any) -> list[str]:
        """The first *count* elements as text."""
        return [self.value(data, i, dbr, md) for i in range(count)]

    def char_string(self, data: Any, count: int) -> str:
        """A char array shown as a string (``-S``): up to its first NUL, escaped."""
        chars = []
        for i in range(count):
            v = int(data[i]) & 0xFF
            if v == 0:
                break
            chars.append(chr(v))
        return escape("".join(chars))


def stamp_text(secs: int, nsec: int) -> str:
    """An EPICS time stamp as ``%Y-%m-%d %H:%M:%S.%06f`` in local time (``<undefined>`` for 0)."""
    if secs == 0 and nsec == 0:
        return "<undefined>"
    tm = time.localtime(secs + EPICS_EPOCH)
    head = time.strftime("%Y-%m-%d %H:%M:%S.", tm)
    if nsec >= 1_000_000_000:
        return head + "************"
    frac = min(nsec + 500, 999_999_999) // 1000
    return head + f"{frac:06d}"


def now_stamp() -> tuple[int, int]:
    """The current time as an EPICS ``(seconds, nanoseconds)`` pair."""
    ns = time.time_ns()
    return ns // 1_000_000_000 - EPICS_EPOCH, ns % 1_000_000_000


def md_stamp(md: Any) -> tuple[int, int]:
    """The EPICS ``(seconds, nanoseconds)`` of a response's metadata."""
    posix = md.posixseconds if md.posixseconds is not None else EPICS_EPOCH
    return posix - EPICS_EPOCH, md.nanoseconds or 0


_GR_LABELS = (
    ("    Lo disp limit:    ", "lower_disp_limit"),
    ("    Hi disp limit:    ", "upper_disp_limit"),
    ("    Lo alarm limit:   ", "lower_alarm_limit"),
    ("    Lo warn limit:    ", "lower_warning_limit"),
    ("    Hi warn limit:    ", "upper_warning_limit"),
    ("    Hi alarm limit:   ", "upper_alarm_limit"),
)
_CTRL_LABELS = (("    Lo ctrl limit:    ", "lower_ctrl_limit"), ("    Hi ctrl limit:    ", "upper_ctrl_limit"))


def _signed_char(value: Any) -> int:
    v = int(value) & 0xFF
    return v - 256 if v > 127 else v


def metadata_block(md: Any, dbr: int) -> str:
    """The lines ``caget -d`` prints after the value for a type above DBR_DOUBLE (``dbr2str``)."""
    sts = f"    Status:           {status_text(md.status)}\n    Severity:         {severity_text(md.severity)}"
    if 7 <= dbr <= 13 or dbr in (21, 28):
        return sts
    if 14 <= dbr <= 20:
        secs, nsec = md_stamp(md)
        return f"    Timestamp:        {stamp_text(secs, nsec)}\n{sts}"
    if dbr in (24, 31):
        strings = md.enum_strings or ()
        lines = [sts, f"    Enums:            ({len(strings):2d})"]
        lines += [f"                      [{i:2d}] {s}" for i, s in enumerate(strings)]
        return "\n".join(lines)
    if dbr == STSACK_STRING:
        return (
            f"{sts}\n    Ack transient?:   {'YES' if md.ackt else 'NO'}\n    Ack severity:     {severity_text(md.acks)}"
        )
    if 21 <= dbr <= 34:
        base = dbr % 7
        lines = [sts, f"    Units:            {md.units or ''}"]
        labels = _GR_LABELS + (_CTRL_LABELS if dbr >= 28 else ())
        if base in (FLOAT, DOUBLE):
            lines.append(f"    Precision:        {md.precision}")
            lines += [label + c_float("%g", float(getattr(md, name))) for label, name in labels]
        else:
            conv = _signed_char if base == CHAR else int
            lines += [f"{label}{conv(getattr(md, name)):8d}" for label, name in labels]
        return "\n".join(lines)
    return "can't print data type"


class Output:
    """Text output to a binary stream: Latin-1, so each character is one byte.

    Parameters
    ----------
    stream : binary file, optional
        Default ``sys.stdout.buffer``.
    line_buffered : bool
        Flush after each :meth:`line` (camonitor); else only on :meth:`flush`.
    """

    def __init__(self, stream: IO[bytes] | None = None, line_buffered: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._line_buffered = line_buffered

    def write(self, text: str) -> None:
        """Write *text* as it is."""
        self._stream.write(text.encode("latin-1", "replace"))
        if self._line_buffered:
            self._stream.flush()

    def line(self, text: str) -> None:
        """Write *text* and a newline."""
        self.write(text + "\n")

    def flush(self) -> None:
        """Flush the stream."""
        self._stream.flush()


def err(text: str) -> None:
    """Write one line to stderr (Latin-1 bytes, unbuffered as C's stderr)."""
    sys.stderr.flush()
    stream = getattr(sys.stderr, "buffer", None)
    if stream is None:
        sys.stderr.write(text + "\n")
    else:
        stream.write((text + "\n").encode("latin-1", "replace"))
        stream.flush()
