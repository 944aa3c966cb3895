"""``camonitor``: print every update of PVs, as EPICS base's camonitor does.

It runs until interrupted.  A PV not connected after the timeout is
reported (``*** Not connected (PV not found)``) and still watched: when it
appears later, its updates are printed; a PV that disconnects is reported
(``*** disconnected``) and its updates resume when it comes back.

Threads: the engine's callback thread runs :meth:`Monitor.on_connection`
and :meth:`Monitor.on_update`; the main thread waits, then reports PVs not
found.  ``Monitor._lock`` serialises the printing and guards the channel
table, so lines never mix.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from . import _format as F
from ._common import (
    DEFAULT_TIMEOUT,
    PRIORITY_MAX,
    Common,
    apply_options,
    check_names,
    help_or_version,
    libca_report,
    text_arg,
)
from ._cparse import sscanf_int, sscanf_uint
from ._getopt import getopt
from ._wide import ECA_DISCONN, ECA_NORMAL, Channel, WideLine
from .cainfo import host_name

USAGE = f"""
Usage: camonitor [options] <PV name> ...

  -h:       Help: Print this message
  -V:       Version: Show EPICS and CA versions
Channel Access options:
  -w <sec>: Wait time, specifies CA timeout, default is {DEFAULT_TIMEOUT:f} second(s)
  -m <msk>: Specify CA event mask to use.  <msk> is any combination of
            'v' (value), 'a' (alarm), 'l' (log/archive), 'p' (property).
            Default event mask is 'va'
  -p <pri>: CA priority (0-{PRIORITY_MAX}, default 0=lowest)
Timestamps:
  Default:  Print absolute timestamps (as reported by CA server)
  -t <key>: Specify timestamp source(s) and type, with <key> containing
            's' = CA server (remote) timestamps
            'c' = CA client (local) timestamps (shown in '()'s)
            'n' = no timestamps
            'r' = relative timestamps (time elapsed since start of program)
            'i' = incremental timestamps (time elapsed since last update)
            'I' = incremental timestamps (time since last update, by channel)
            'r', 'i' or 'I' require 's' or 'c' to select the time source
Enum format:
  -n:       Print DBF_ENUM values as number (default is enum string)
Array values: Print number of elements, then list of values
  Default:  Request and print all elements (dynamic arrays supported)
  -# <num>: Request and print up to <num> elements
  -S:       Print arrays of char as a string (long string)
Floating point format:
  Default:  Use %g format
  -e <num>: Use %e format, with a precision of <num> digits
  -f <num>: Use %f format, with a precision of <num> digits
  -g <num>: Use %g format, with a precision of <num> digits
  -s:       Get value as string (honors server-side precision)
  -lx:      Round to long integer and print as hex number
  -lo:      Round to long integer and print as octal number
  -lb:      Round to long integer and print as binary number
Integer number format:
  Default:  Print as decimal number
  -0x:      Print as hex number
  -0o:      Print as octal number
  -0b:      Print as binary number
Alternate output field separator:
  -F <ofs>: Use <ofs> to separate fields in output

Example: camonitor -f8 my_channel another_channel
  (doubles are printed as %f with precision of 8)
"""

OPTSTRING = ":nhVm:sSe:f:g:l:#:0:w:t:p:F:"
DBE_VALUE, DBE_LOG, DBE_ALARM, DBE_PROPERTY = 1, 2, 4, 8
_MASK_BITS = {"v": DBE_VALUE, "a": DBE_ALARM, "l": DBE_LOG, "p": DBE_PROPERTY}
_STYLES = {"x": F.HEX, "b": F.BIN, "o": F.OCT}
_SIGNAL_POLL = 0.2  # seconds between looks at the stop flag while monitoring


class Monitor:
    """One camonitor run: options, channels and the printing."""

    def __init__(self) -> None:
        self.common = Common("camonitor")
        self.style = F.Style()
        self.wide = WideLine(self.style)
        self.mask = DBE_VALUE | DBE_ALARM
        self.req_elems = 0
        self.float_as_string = False
        self.out = F.Output(line_buffered=True)
        self._lock = threading.Lock()
        self._channels: dict[str, Channel] = {}  # by PV name
        self._types: dict[str, int] = {}  # the field type each PV's subscription was made for
        self._subs: dict[str, Any] = {}
        self._stopped = False
        self._servers: dict[str, str] = {}  # PV name -> "host:port" of its server, while connected
        self._lost: set[str] = set()  # servers whose loss was reported

    def apply(self, letter: str, arg: str | None) -> int | None:
        """Apply one option; return an exit status to stop with, or None to go on."""
        style = self.style
        status = help_or_version(letter, USAGE)
        if status is not None:
            return status
        if letter == "n":
            style.enum_as_number = True
        elif letter == "s":
            self.float_as_string = True
        elif letter == "S":
            style.char_as_string = True
        elif arg is None:
            return None
        elif letter == "t":
            for complaint in self.wide.set_timestamp_key(arg):
                F.err(complaint)
        elif letter == "w":
            self.common.set_timeout(arg)
        elif letter == "p":
            self.common.set_priority(arg)
        elif letter == "#":
            count = sscanf_uint(arg, 64)
            if count is None:
                F.err(f"'{text_arg(arg)}' is not a valid array element count - ignored. ('camonitor -h' for help.)")
                count = 0
            self.req_elems = count
        elif letter == "m":
            self.mask = 0
            for ch in arg:
                if ch not in _MASK_BITS:
                    F.err(f"Invalid argument '{text_arg(arg)}' for option '-m' - ignored.")
                    self.mask = DBE_VALUE | DBE_ALARM
                    break
                self.mask |= _MASK_BITS[ch]
        elif letter in "efg":
            digits = sscanf_int(arg)
            if digits is None:
                F.err(f"Invalid precision argument '{text_arg(arg)}' for option '-{letter}' - ignored.")
            elif 0 <= digits <= 18:
                style.set_precision(letter, digits)
            else:
                F.err(f"Precision {digits} for option '-{letter}' out of range - ignored.")
        elif letter in "l0":
            kind = _STYLES.get(arg[:1])
            if kind is None:
                F.err(f"Invalid argument '{text_arg(arg)}' for option '-{letter}' - ignored.")
            elif letter == "0":
                style.int_style = kind
            else:
                style.float_style = kind
        elif letter == "F":
            style.separator = text_arg(arg)[:1] or "\0"
        return None

    # -- engine callbacks (the callback thread) ---------------------------------------------
    def on_connection(self, pv: Any, state: str) -> None:
        """Subscribe on (re)connection, report a disconnection."""
        server = host_name(pv.server_address, 1.0) if state == "connected" else None
        with self._lock:
            ch = self._channels[pv.name]
            if state != "connected":
                if ch.once_connected:
                    ch.status = ECA_DISCONN
                    server = self._servers.pop(pv.name, None)
                    if server is not None and server not in self._lost and not self._stopped:
                        # libca reports each lost circuit once, then the channels
                        self._lost.add(server)
                        F.err(libca_report(ECA_DISCONN, server, "../cac.cpp line 1238"))
                    self._print(ch, None)
                return
            assert server is not None
            self._servers[pv.name] = server
            self._lost.discard(server)
            native = int(pv.native_data_type)
            old = self._subs.get(pv.name)
            if old is not None and self._types[pv.name] == native:
                ch.status = ECA_NORMAL
                return
            if old is not None:
                old.clear()  # the field type changed: subscribe again with the new one
            ch.once_connected = True
            ch.status = ECA_NORMAL
            dbr = F.TIME_OFFSET + native
            if native == F.ENUM:
                dbr = F.TIME_OFFSET + (F.SHORT if self.style.enum_as_number else F.STRING)
            elif self.float_as_string and native in (F.FLOAT, F.DOUBLE):
                dbr = F.TIME_OFFSET + F.STRING
            n_elems = pv.native_data_count or 1
            ch.n_elems = n_elems
            count = min(self.req_elems, n_elems)
            sub = pv.subscribe(data_type=dbr, data_count=count or None, mask=self.mask)
            self._subs[pv.name] = sub
            self._types[pv.name] = native
        sub.add_callback(self.on_update)

    def on_update(self, sub: Any, resp: Any) -> None:
        """Print one update."""
        with self._lock:
            ch = self._channels[sub.pv.name]
            if self._subs.get(sub.pv.name) is not sub:
                return
            ch.n_elems = resp.data_count
            self._print(ch, resp)

    def report_missing(self) -> None:
        """After the timeout: report the PVs that never connected."""
        with self._lock:
            for ch in self._channels.values():
                if not ch.once_connected:
                    self._print(ch, None)

    def stop_printing(self) -> None:
        """From now on print nothing (the Context is closing: its disconnections are ours)."""
        with self._lock:
            self._stopped = True

    def _print(self, ch: Channel, resp: Any) -> None:
        if self._stopped:
            return
        try:
            self.out.line(self.wide.format(ch, resp, self.req_elems))
        except BrokenPipeError:
            os._exit(1)  # nobody reads any more; the reader is gone, so exit as base would via SIGPIPE

    def add(self, name: str) -> None:
        """Register a PV to watch (before connecting)."""
        self._channels[name] = Channel(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run camonitor with *argv* (default ``sys.argv[1:]``) until interrupted."""
    mon = Monitor()
    options, operands = getopt(sys.argv[1:] if argv is None else argv, OPTSTRING)
    status = apply_options(mon.common, options, mon.apply)
    if status is not None:
        return status
    if not operands:
        return mon.common.no_pv()
    names = [text_arg(name) for name in operands]
    if not check_names(mon.common, names):
        return 1
    for name in names:
        mon.add(name)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        ctx = mon.common.context()
        try:
            ctx.get_pvs(*names, priority=mon.common.priority, connection_state_callback=mon.on_connection)
            if not stop.wait(mon.common.wait_seconds()):
                mon.report_missing()
            # Bounded waits: a SIGINT that lands just before the wait blocks runs
            # its Python handler only when the main thread next runs Python code.
            while not stop.wait(_SIGNAL_POLL):
                pass
        finally:
            mon.stop_printing()
            ctx.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    # End as base's camonitor does on Ctrl-C: killed by SIGINT.
    sys.stdout.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    return 130  # (not reached where SIGINT kills)
