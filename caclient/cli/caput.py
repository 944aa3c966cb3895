"""``caput``: write a PV and print its old and new values, as EPICS base's caput does.

Options stop at the PV name (base sets ``POSIXLY_CORRECT``), and the words
after it are the value: joined with spaces into one string, or with ``-a`` a
count (ignored, as base does) and one element per word.  Values go to the
server as strings, as base sends them, so the server converts them exactly
as it does for base; enums are matched against their state strings first.
Without ``-c`` the write is a plain WRITE and a failure the server reports
later is printed as libca prints it, with exit status 0, as in base.
"""

from __future__ import annotations

import logging
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
)
from ._cparse import sscanf_int, strtod
from ._getopt import getopt
from ._wide import ECA_DISCONN, ECA_NORDACCESS, ECA_NORMAL, Channel, WideLine

USAGE = f"""
Usage: caput [options] <PV name> <PV value> ...
       caput -a [options] <PV name> <no of values> <PV value> ...

  -h: Help: Print this message
  -V: Version: Show EPICS and CA versions
Channel Access options:
  -w <sec>:  Wait time, specifies CA timeout, default is {DEFAULT_TIMEOUT:f} second(s)
  -c: Asynchronous put (use ca_put_callback and wait for completion)
  -p <prio>: CA priority (0-{PRIORITY_MAX}, default 0=lowest)
Format options:
  -t: Terse mode - print only sucessfully written value, without name
  -l: Long mode "name timestamp value stat sevr" (read PVs as DBR_TIME_xxx)
Enum format:
  Default: Auto - try value as ENUM string, then as index number
  -n: Force interpretation of values as numbers
  -s: Force interpretation of values as strings
Arrays:
  Default: Put scalar
      Value format: all value arguments concatenated with spaces
  -S: Put string as an array of chars (long string)
  -a: Put array
      Value format: number of values, then list of values
Alternate output field separator:
  -F <ofs>: Use <ofs> as an alternate output field separator

Example: caput my_channel 1.2
  (puts 1.2 to my_channel)
"""

OPTSTRING = ":cnlhatsVS#:w:p:F:"
PLAIN, TERSE, WIDE = "plain", "terse", "wide"
ERROR = "\033[31;1mERROR\033[0m"
STRING_SIZE = 40


class _WriteFailures(logging.Handler):
    """Collects the ECA codes servers report for plain WRITEs (logged by the engine)."""

    _PATTERN = re.compile(r"\(command WRITE\): (ECA_\w+)[^(]*(?:\((.*)\))?$")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.failures: list[tuple[int, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        from ..eca import by_name

        match = self._PATTERN.search(record.getMessage())
        if match:
            try:
                self.failures.append((by_name(match.group(1)), match.group(2)))
            except KeyError:
                pass


class Request:
    """The parsed command line of one caput run."""

    def __init__(self) -> None:
        self.common = Common("caput")
        self.style = F.Style()
        self.format = PLAIN
        self.callback = False
        self.is_array = False
        self.enum_as_string = False

    def apply(self, letter: str, arg: str | None) -> int | None:
        """Apply one option; return an exit status to stop with, or None to go on."""
        style = self.style
        status = help_or_version(letter, USAGE)
        if status is not None:
            return status
        if letter == "n":
            style.enum_as_number, self.enum_as_string = True, False
        elif letter == "s":
            style.enum_as_number, self.enum_as_string = False, True
        elif letter == "S":
            style.char_as_string, self.is_array = True, False
        elif letter == "a":
            style.char_as_string, self.is_array = False, True
        elif letter in "tl":
            self.format = TERSE if letter == "t" else WIDE
        elif letter == "c":
            self.callback = True
        elif letter == "w":
            assert arg is not None
            self.common.set_timeout(arg)
        elif letter == "#":
            assert arg is not None
            if sscanf_int(arg) is None:
                F.err(f"'{text_arg(arg)}' is not a valid array element count - ignored. ('caput -h' for help.)")
        elif letter == "p":
            assert arg is not None
            self.common.set_priority(arg)
        elif letter == "F":
            assert arg is not None
            style.separator = text_arg(arg)[:1] or "\0"
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run caput with *argv* (default ``sys.argv[1:]``); return the exit status."""
    req = Request()
    options, operands = getopt(sys.argv[1:] if argv is None else argv, OPTSTRING, posixly_correct=True)
    status = apply_options(req.common, options, req.apply)
    if status is not None:
        return status
    if not operands:
        return req.common.no_pv()
    if len(operands) == 1:
        F.err("No value specified. ('caput -h' for help.)")
        return 1
    words = [text_arg(word) for word in operands]
    name = words[0]
    if not check_names(req.common, [name]):
        return 1
    values = words[2:] if req.is_array else [" ".join(words[1:])]
    capture = _WriteFailures()
    engine_log = logging.getLogger("caclient")
    engine_log.addHandler(capture)
    ctx = req.common.context()
    try:
        pvs = connect(req.common, ctx, [name])
        if pvs is None:
            return 1
        return _put(req, pvs[0], values, capture)
    finally:
        ctx.close()
        engine_log.removeHandler(capture)


def _encode(req: Request, pv: Any, values: list[str]) -> tuple[int, Any] | int:
    """The DBR type and data to write, or an exit status after base's message.

    The data is plain Python (a list, or bytes for ``-S``): a one-shot caput of
    a scalar or a string never imports numpy.
    """
    if int(pv.native_data_type) == F.ENUM:
        from .._errors import CAError

        try:
            strings = pv.read(data_type=24, data_count=1, timeout=req.common.wait_seconds()).metadata.enum_strings
        except CAError:
            F.err("Read operation timed out: ENUM data was not read.")
            return 1
        strings = strings or ()
        numbers = [0.0] * len(values)
        texts = []
        dbr = F.STRING
        for i, word in enumerate(values):
            if req.style.enum_as_number:
                number, end, _ = strtod(word)
                if end == 0:
                    F.err(f"Enum index value '{word}' is not a number.")
                    return 1
                if number >= len(strings):
                    F.err(f"Warning: enum index value '{word}' may be too large.")
                numbers[i] = number
                dbr = F.DOUBLE
                continue
            text = F.unescape(word, STRING_SIZE)
            texts.append(text)
            dbr = F.STRING
            if text not in strings:
                number, end, _ = strtod(text)
                if end == 0 or req.enum_as_string:
                    F.err(f"Enum string value '{text}' invalid.")
                    return 1
                if number >= len(strings):
                    F.err(f"Warning: enum index value '{text}' may be too large.")
                numbers[i] = number
                dbr = F.DOUBLE
        if dbr == F.DOUBLE:
            return dbr, numbers
        return dbr, texts
    if req.style.char_as_string:
        joined = values[0]
        raw = F.unescape(joined, len(joined.encode("latin-1")) + 1)
        return F.CHAR, raw.encode("latin-1") + b"\0"
    return F.STRING, [F.unescape(word, STRING_SIZE) for word in values]


def _put(req: Request, pv: Any, values: list[str], capture: _WriteFailures) -> int:
    from .._errors import AccessDeniedError, CAError, CATimeoutError, DisconnectedError, RemoteError

    encoded = _encode(req, pv, values)
    if isinstance(encoded, int):
        return encoded
    dbr, data = encoded
    count = len(data)
    out = F.Output()
    if req.format != TERSE:
        out.write("Old : ")
        _show(req, pv, out)
    if not pv.access_rights & 2:
        F.err(f"{ERROR} from put operation: Write access denied")
        return 1
    if count > (pv.native_data_count or 1):
        F.err(f"{ERROR} from put operation: Invalid element count requested")
        return 1
    status = ECA_NORMAL
    try:
        if req.callback:
            pv.write(data, wait=True, data_type=dbr, timeout=req.common.wait_seconds())
        else:
            pv.write(data, wait=False, notify=False, data_type=dbr)
    except CATimeoutError:
        if req.callback:
            F.err("Write callback operation timed out")
    except AccessDeniedError:
        F.err(f"{ERROR} from put operation: Write access denied")
        return 1
    except RemoteError as exc:
        status = exc.status
    except DisconnectedError:
        status = ECA_DISCONN
    except (CAError, ValueError, TypeError) as exc:
        F.err(f"{ERROR} from put operation: {exc}")
        return 1
    if status != ECA_NORMAL:
        from ..eca import message

        F.err(f"{ERROR} occured writing data: {message(status)}")
        return 1
    if req.format != TERSE:
        out.write("New : ")
    result = _show(req, pv, out)
    for failure, context in capture.failures:
        F.err(exception_block(failure, 1, pv.name, dbr, count, context or pv.name))
    return result


def _show(req: Request, pv: Any, out: F.Output) -> int:
    """Read *pv* as caput's built-in caget does and print one line; return its status."""
    from .._errors import AccessDeniedError, CAError, CATimeoutError

    ch = Channel(pv.name)
    native = int(pv.native_data_type) if pv.native_data_type is not None else 0
    n_elems = pv.native_data_count or 1
    ch.n_elems = n_elems
    dbr = F.TIME_OFFSET + native
    if native == F.ENUM:
        dbr = F.TIME_OFFSET + (F.SHORT if req.style.enum_as_number else F.STRING)
    resp = None
    if not pv.connected:
        ch.status = ECA_DISCONN
    else:
        ch.once_connected = True
        try:
            resp = pv.read(data_type=dbr, data_count=n_elems, timeout=time_left(req.common.wait_seconds())())
        except CATimeoutError:
            F.err("Read operation timed out: PV data was not read.")
        except AccessDeniedError:
            ch.status = ECA_NORDACCESS
        except CAError:
            ch.status = 19 << 3  # ECA_GETFAIL
    if req.format == WIDE:
        out.line(WideLine(req.style).format(ch, resp, 0))
        out.flush()
        return 0 if ch.once_connected else 1
    sep = req.style.separator
    head = ""
    if req.format == PLAIN:
        head = (f"{ch.name:<30}" if n_elems <= 1 and sep == " " else ch.name) + sep
    out.line(head + _value(req, ch, resp))
    out.flush()
    return 0 if ch.once_connected else 1


def _value(req: Request, ch: Channel, resp: Any) -> str:
    if ch.status == ECA_DISCONN:
        return "*** not connected"
    if ch.status == ECA_NORDACCESS:
        return "*** no read access"
    if ch.status != ECA_NORMAL:
        from ..eca import message

        return f"*** CA error {message(ch.status)}"
    if resp is None:
        return "*** no data available (timeout)"
    style = req.style
    sep = style.separator
    data = resp.tolist()
    dbr = int(resp.data_type)
    n = min(ch.n_elems, len(data))
    if style.char_as_string and dbr % 7 == F.CHAR and ch.n_elems > 1:
        return style.char_string(data, n)
    head = f"{ch.n_elems}{sep}" if ch.n_elems > 1 else ""
    return head + sep.join(style.values(data, n, dbr, resp.metadata))
