"""Number parsing with the C library's rules, as EPICS base's tools use them.

The tools read option arguments with ``sscanf("%d")``, ``sscanf("%u")``,
``epicsScanDouble`` (a whole-word ``strtod``) and enum indexes with a
prefix ``strtod``.  These functions reproduce what those accept, so the same
command line gives the same result (``-w 0x1p-1`` is half a second,
``-p -3`` wraps around, ``-# 5x`` is 5).  Pure functions.
"""

from __future__ import annotations

import math
import re

__all__ = ["scan_double", "sscanf_int", "sscanf_uint", "strtod"]

_WS = " \t\n\v\f\r"
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_DEC = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL = re.compile(r"([+-]?)(infinity|inf|nan(?:\([0-9A-Za-z_]*\))?)", re.IGNORECASE)
_INT = re.compile(r"[+-]?[0-9]+")


def strtod(text: str) -> tuple[float, int, bool]:
    """Parse a number at the start of *text* like C's ``strtod``.

    Returns
    -------
    value : float
    end : int
        Index just after the number; 0 if there is none.
    out_of_range : bool
        True where C would set ``errno = ERANGE`` (overflow or underflow).
    """
    start = len(text) - len(text.lstrip(_WS))
    m = _HEX.match(text, start)
    if m:
        raw = m.group()
        sign = -1.0 if raw.startswith("-") else 1.0
        body = raw.lstrip("+-")
        if "p" not in body.lower():
            body += "p0"
        try:
            value = sign * float.fromhex(body)
        except OverflowError:
            return sign * math.inf, m.end(), True
        return value, m.end(), False
    m = _SPECIAL.match(text, start)
    if m:
        sign = -1.0 if m.group(1) == "-" else 1.0
        word = m.group(2).lower()
        return (sign * math.inf if word.startswith("inf") else math.copysign(math.nan, sign)), m.end(), False
    m = _DEC.match(text, start)
    if not m:
        return 0.0, 0, False
    raw = m.group()
    value = float(raw)
    mantissa = raw.lower().split("e")[0]
    if math.isinf(value):
        return value, m.end(), True
    if value == 0.0 and any(c in "123456789" for c in mantissa):
        return value, m.end(), True
    return value, m.end(), False


def scan_double(text: str) -> float | None:
    """``epicsScanDouble``: the whole word must be one number (surrounding blanks allowed).

    Returns None where base reports the value as invalid.
    """
    value, end, out_of_range = strtod(text)
    if end == 0 or out_of_range or text[end:].strip(_WS):
        return None
    return value


def _scan_int(text: str) -> int | None:
    stripped = text.lstrip(_WS)
    m = _INT.match(stripped)
    return int(m.group()) if m else None


def sscanf_int(text: str, bits: int = 32) -> int | None:
    """``sscanf(text, "%d")`` into a signed integer of *bits*; None if nothing matched."""
    value = _scan_int(text)
    if value is None:
        return None
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def sscanf_uint(text: str, bits: int = 32) -> int | None:
    """``sscanf(text, "%u")`` (or ``"%lu"`` with ``bits=64``); a minus sign wraps around."""
    value = _scan_int(text)
    if value is None:
        return None
    return value & ((1 << bits) - 1)
