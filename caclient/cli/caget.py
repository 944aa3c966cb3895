"""``caget``: read PVs and print their values, as EPICS base's caget does.

Options, output, messages and exit status follow base 7's caget (see
:doc:`/cli`).  All PVs connect within one timeout; if any does not, nothing
is read (base's behaviour) and the exit status is 1.  Then all are read
within one more timeout, with one burst of requests per circuit.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from . import _format as F
from ._common import (
    DEFAULT_TIMEOUT,
    PRIORITY_MAX,
    Common,
    apply_options,
    check_names,
    connect,
    exception_block,
    help_or_version,
    text_arg,
    time_left,
    zero_response,
)
from ._cparse import sscanf_int
from ._getopt import getopt
from ._wide import ECA_DISCONN, ECA_NORDACCESS, ECA_NORMAL, Channel, WideLine

USAGE = f"""
Usage: caget [options] <PV name> ...

  -h: Help: Print this message
  -V: Version: Show EPICS and CA versions
Channel Access options:
  -w <sec>: Wait time, specifies CA timeout, default is {DEFAULT_TIMEOUT:f} second(s)
  -c: Asynchronous get (use ca_get_callback and wait for completion)
  -p <prio>: CA priority (0-{PRIORITY_MAX}, default 0=lowest)
Format options:
      Default output format is "name value"
  -t: Terse mode - print only value, without name
  -a: Wide mode "name timestamp value stat sevr" (read PVs as DBR_TIME_xxx)
  -d <type>: Request specific dbr type; use string (DBR_ prefix may be omitted)
      or number of one of the following types:
 DBR_STRING     0  DBR_STS_FLOAT    9  DBR_TIME_LONG   19  DBR_CTRL_SHORT    29
 DBR_INT        1  DBR_STS_ENUM    10  DBR_TIME_DOUBLE 20  DBR_CTRL_INT      29
 DBR_SHORT      1  DBR_STS_CHAR    11  DBR_GR_STRING   21  DBR_CTRL_FLOAT    30
 DBR_FLOAT      2  DBR_STS_LONG    12  DBR_GR_SHORT    22  DBR_CTRL_ENUM     31
 DBR_ENUM       3  DBR_STS_DOUBLE  13  DBR_GR_INT      22  DBR_CTRL_CHAR     32
 DBR_CHAR       4  DBR_TIME_STRING 14  DBR_GR_FLOAT    23  DBR_CTRL_LONG     33
 DBR_LONG       5  DBR_TIME_INT    15  DBR_GR_ENUM     24  DBR_CTRL_DOUBLE   34
 DBR_DOUBLE     6  DBR_TIME_SHORT  15  DBR_GR_CHAR     25  DBR_STSACK_STRING 37
 DBR_STS_STRING 7  DBR_TIME_FLOAT  16  DBR_GR_LONG     26  DBR_CLASS_NAME    38
 DBR_STS_SHORT  8  DBR_TIME_ENUM   17  DBR_GR_DOUBLE   27
 DBR_STS_INT    8  DBR_TIME_CHAR   18  DBR_CTRL_STRING 28
Enum format:
  -n: Print DBF_ENUM value as number (default is enum string)
Arrays: Value format: print number of requested values, then list of values
  Default:    Print all values
  -# <count>: Print first <count> elements of an array
  -S:         Print array of char as a string (long string)
Floating point type format:
  Default: Use %g format
  -e <nr>: Use %e format, with a precision of <nr> digits
  -f <nr>: Use %f format, with a precision of <nr> digits
  -g <nr>: Use %g format, with a precision of <nr> digits
  -s:      Get value as string (honors server-side precision)
  -lx:     Round to long integer and print as hex number
  -lo:     Round to long integer and print as octal number
  -lb:     Round to long integer and print as binary number
Integer number format:
  Default: Print as decimal number
  -0x: Print as hex number
  -0o: Print as octal number
  -0b: Print as binary number
Alternate output field separator:
  -F <ofs>: Use <ofs> as an alternate output field separator

Example: caget -a -f8 my_channel another_channel
  (uses wide output format, doubles are printed as %f with precision of 8)
"""

OPTSTRING = ":taicnhsSVe:f:g:l:#:d:0:w:p:F:"
PLAIN, TERSE, WIDE, SPECIFIED = "plain", "terse", "wide", "specified"
MAX_DIGITS = 18
_STYLES = {"x": F.HEX, "b": F.BIN, "o": F.OCT}


def dbr_from_text(arg: str) -> int:
    """``-d`` argument: a number, or a DBR name with or without ``DBR_``; -1 if neither."""
    number = sscanf_int(arg)
    if number is not None:
        return number
    for text in (arg, "DBR_" + arg[:25]):
        if text in F.DBR_TEXT:
            return F.DBR_TEXT.index(text)
    return -1


class Request:
    """The parsed command line of one caget run."""

    def __init__(self) -> None:
        self.common = Common("caget")
        self.style = F.Style()
        self.format = PLAIN
        self.callback = False
        self.count = 0
        self.dbr = -1
        self.float_as_string = False

    def set_format(self, wanted: str) -> None:
        if self.format != PLAIN:
            F.err("Options t,d,a are mutually exclusive. ('caget -h' for help.)")
        self.format = wanted

    def apply(self, letter: str, arg: str | None) -> int | None:
        """Apply one option; return an exit status to stop with, or None to go on."""
        style = self.style
        status = help_or_version(letter, USAGE)
        if status is not None:
            return status
        if letter == "t":
            self.set_format(TERSE)
        elif letter == "a":
            self.set_format(WIDE)
        elif letter == "s":
            self.float_as_string = True
        elif letter == "c":
            self.callback = True
        elif letter == "n":
            style.enum_as_number = True
        elif letter == "S":
            style.char_as_string = True
        elif letter == "d":
            assert arg is not None
            self.set_format(SPECIFIED)
            self.dbr = dbr_from_text(arg)
            if not 0 <= self.dbr <= F.CLASS_NAME or self.dbr in (35, 36):
                F.err("Requested dbr type out of range or invalid - ignored. ('caget -h' for help.)")
                self.format = PLAIN
        elif letter == "w":
            assert arg is not None
            self.common.set_timeout(arg)
        elif letter == "p":
            assert arg is not None
            self.common.set_priority(arg)
        elif letter == "#":
            assert arg is not None
            count = sscanf_int(arg)
            if count is None:
                F.err(f"'{text_arg(arg)}' is not a valid array element count - ignored. ('caget -h' for help.)")
                count = 0
            self.count = count & 0xFFFFFFFFFFFFFFFF
        else:
            assert arg is not None
            self._apply_format(letter, arg)
        return None

    def _apply_format(self, letter: str, arg: str) -> None:
        style = self.style
        if letter in "efg":
            digits = sscanf_int(arg)
            if digits is None:
                F.err(f"Invalid precision argument '{text_arg(arg)}' for option '-{letter}' - ignored.")
            elif 0 <= digits <= MAX_DIGITS:
                style.set_precision(letter, digits)
            else:
                F.err(f"Precision {digits} for option '-{letter}' out of range - ignored.")
        elif letter in "l0":
            kind = _STYLES.get(arg[:1])
            if kind is None:
                F.err(f"Invalid argument '{text_arg(arg)}' for option '-{letter}' - ignored.")
            elif letter == "0":
                self.dbr = F.LONG
                style.int_style = kind
            else:
                style.float_style = kind
        elif letter == "F":
            style.separator = text_arg(arg)[:1] or "\0"


def main(argv: Sequence[str] | None = None) -> int:
    """Run caget with *argv* (default ``sys.argv[1:]``); return the exit status."""
    req = Request()
    options, operands = getopt(sys.argv[1:] if argv is None else argv, OPTSTRING)
    status = apply_options(req.common, options, req.apply)
    if status is not None:
        return status
    if not operands:
        return req.common.no_pv()
    names = [text_arg(name) for name in operands]
    if not check_names(req.common, names):
        return 1
    ctx = req.common.context()
    try:
        pvs = connect(req.common, ctx, names)
        if pvs is None:
            return 1
        return _read_and_print(req, ctx, pvs)
    finally:
        ctx.close()


def _plan(req: Request, pv: Any) -> tuple[int, int]:
    """The DBR type and element count to ask *pv* for."""
    native = int(pv.native_data_type)
    n_elems = pv.native_data_count or 1
    dbr = req.dbr
    if req.format != SPECIFIED:
        dbr = F.TIME_OFFSET + native
        if native == F.ENUM:
            dbr = F.TIME_OFFSET + (F.SHORT if req.style.enum_as_number else F.STRING)
        elif req.float_as_string and native in (F.FLOAT, F.DOUBLE):
            dbr = F.TIME_OFFSET + F.STRING
    if req.callback:
        return dbr, min(req.count, n_elems)
    return dbr, req.count if req.count and req.count < n_elems else n_elems


def _read_and_print(req: Request, ctx: Any, pvs: list[Any]) -> int:
    from .._errors import AccessDeniedError, CATimeoutError, DisconnectedError, RemoteError

    channels = [Channel(pv.name) for pv in pvs]
    plans = [_plan(req, pv) for pv in pvs]
    results: list[Any] = [None] * len(pvs)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, pv in enumerate(pvs):
        if pv.connected:
            channels[i].once_connected = True
            if not req.callback:
                channels[i].n_elems = plans[i][1]
            groups.setdefault(plans[i], []).append(i)
        else:
            channels[i].status = ECA_DISCONN
    if not groups:
        return 1
    timed_out = False
    deadline = time_left(req.common.wait_seconds())
    for (dbr, count), members in groups.items():
        got = ctx.read_many([pvs[i] for i in members], data_type=dbr, data_count=count, timeout=deadline())
        for i, result in zip(members, got, strict=True):
            ch = channels[i]
            if isinstance(result, CATimeoutError):
                timed_out = True
            elif isinstance(result, AccessDeniedError):
                ch.status = ECA_NORDACCESS
            elif isinstance(result, DisconnectedError):
                ch.status = ECA_DISCONN
            elif isinstance(result, RemoteError) and req.callback:
                ch.status = result.status
                timed_out = True  # base waits for the reply that never succeeded
            elif isinstance(result, RemoteError):
                # base reads into a zeroed buffer and libca reports the failure, with
                # the server's own words when it sent some (CA_PROTO_ERROR)
                said = re.search(r"\((.*)\)$", str(result))
                F.err(exception_block(result.status, 0, ch.name, dbr, count, said.group(1) if said else "read failed"))
                results[i] = zero_response(dbr, count)
                timed_out = True  # and its ca_pend_io never completes
            elif isinstance(result, Exception):
                ch.status = 19 << 3  # ECA_GETFAIL
            elif req.callback:
                results[i] = result
                ch.n_elems = result.data_count
            else:
                # base reads into a buffer of the count it asked for: a shorter reply
                # leaves zeros behind it
                results[i] = _padded(result, count)
    if timed_out:
        F.err("Read operation timed out: some PV data was not read.")
    out = F.Output()
    wide = WideLine(req.style) if req.format == WIDE else None
    for i, ch in enumerate(channels):
        if wide is not None:
            out.line(wide.format(ch, results[i], req.count))
        elif req.format == SPECIFIED:
            out.write(_specified(req, ch, int(pvs[i].native_data_type), plans[i][0], results[i]))
        else:
            out.line(_plain(req, ch, results[i]))
    out.flush()
    return 0


def _padded(resp: Any, count: int) -> Any:
    """*resp* with its data extended by zeros (empty strings) to *count* elements."""
    if resp.data_count >= count:
        return resp
    from .._response import ReadResponse

    payload = bytes(resp)
    return ReadResponse(
        int(resp.data_type), count, resp.status, payload + bytes(_element_size(resp) * count), "latin-1"
    )


def _element_size(resp: Any) -> int:
    from .._dbr import ELEMENT_SIZE

    dbr = int(resp.data_type)
    return ELEMENT_SIZE[0 if dbr in (F.STSACK_STRING, F.CLASS_NAME) else dbr % 7]


def _value_text(req: Request, ch: Channel, resp: Any, with_count: bool = True) -> str:
    style = req.style
    sep = style.separator
    dbr = int(resp.data_type)
    data = resp.tolist()  # (plain Python numbers: a scalar read never imports numpy)
    n = min(ch.n_elems, len(data))
    if style.char_as_string and dbr < 35 and dbr % 7 == F.CHAR and (req.count or ch.n_elems > 1):
        return style.char_string(data, n)
    head = f"{ch.n_elems}{sep}" if with_count and (req.count or ch.n_elems > 1) else ""
    return head + sep.join(style.values(data, n, dbr, resp.metadata))


def _problem(ch: Channel, resp: Any) -> str | None:
    if ch.status == ECA_DISCONN:
        return "*** not connected"
    if ch.status == ECA_NORDACCESS:
        return "*** no read access"
    if ch.status != ECA_NORMAL:
        from ..eca import message

        return f"*** CA error {message(ch.status)}"
    if resp is None:
        return "*** no data available (timeout)"
    return None


def _plain(req: Request, ch: Channel, resp: Any) -> str:
    head = ""
    sep = req.style.separator
    if req.format == PLAIN:
        head = (f"{ch.name:<30}" if ch.n_elems <= 1 and sep == " " else ch.name) + sep
    problem = _problem(ch, resp)
    return head + (problem if problem is not None else _value_text(req, ch, resp))


def _specified(req: Request, ch: Channel, native: int, dbr: int, resp: Any) -> str:
    problem = _problem(ch, resp)
    if problem is not None:
        return f"{ch.name}\n    {problem}\n"
    lines = [ch.name, f"    Native data type: {F.dbf_text(native)}", f"    Request type:     {F.dbr_text(dbr)}"]
    if dbr == F.CLASS_NAME:
        lines.append(f"    Class Name:       {resp.data[0]}")
    else:
        lines.append(f"    Element count:    {ch.n_elems}")
        lines.append(f"    Value:            {_value_text(req, ch, resp, with_count=False)}")
        if dbr > F.DOUBLE:
            lines.append(F.metadata_block(resp.metadata, dbr))
    return "\n".join(lines) + "\n"
