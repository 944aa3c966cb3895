"""``cainfo``: connection details of PVs, as EPICS base's cainfo prints them.

``-s <level>`` prints a status report of the client instead.  Base prints
libca's internal tables there (``ca_client_status``); caclient prints its
own: the Context, and with a level above 0 its circuits and channels.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from . import _format as F
from ._common import DEFAULT_TIMEOUT, PRIORITY_MAX, Common, check_names, connect, text_arg, version_line
from ._cparse import sscanf_uint
from ._getopt import getopt

USAGE = f"""
Usage: cainfo [options] <PV name> ...

  -h: Help: Print this message
  -V: Version: Show EPICS and CA versions
Channel Access options:
  -w <sec>:   Wait time, specifies CA timeout, default is {DEFAULT_TIMEOUT:f} second(s)
  -s <level>: Call ca_client_status with the specified interest level
  -p <prio>:  CA priority (0-{PRIORITY_MAX}, default 0=lowest)

Example: cainfo my_channel another_channel
"""

OPTSTRING = ":nhVw:s:p:"
_STATES = {"connected": "connected", "disconnected": "previously connected"}


def host_name(address: tuple[str, int] | None, wait: float) -> str:
    """``host:port`` with the host's name where it resolves in time (as ``ca_host_name``)."""
    if address is None:
        return "<disconnected>"
    host, port = address
    found: list[str] = []

    def lookup() -> None:
        try:
            found.append(socket.gethostbyaddr(host)[0])
        except OSError:
            pass

    worker = threading.Thread(target=lookup, name="cainfo-hostname", daemon=True)
    worker.start()
    worker.join(wait)
    return f"{found[0] if found else host}:{port}"


def describe(pv: Any, wait: float) -> str:
    """The block cainfo prints for one PV."""
    native = int(pv.native_data_type) if pv.native_data_type is not None else None
    rights = int(pv.access_rights)
    state = _STATES.get(pv.state, "never connected")
    return (
        f"{pv.name}\n"
        f"    State:            {state}\n"
        f"    Host:             {host_name(pv.server_address, wait)}\n"
        f"    Access:           {'' if rights & 1 else 'no '}read, {'' if rights & 2 else 'no '}write\n"
        f"    Native data type: {F.dbf_text(native)}\n"
        f"    Request type:     {F.dbr_text(native) if native is not None else 'DBR_invalid'}\n"
        f"    Element count:    {pv.native_data_count or 0}\n"
    )


def client_status(ctx: Any, level: int) -> str:
    """caclient's own report for ``-s <level>``."""
    from .. import __version__

    lines = [f"caclient {__version__} Channel Access client, CA protocol version 4.13", f"    {ctx!r}"]
    if level > 0:
        from .._stats_cli import circuit_detail, search_detail

        stats = ctx.statistics()
        for circuit in stats.circuits:
            lines.append(circuit_detail(circuit, indent="        ").replace("Circuit to", "    circuit to", 1))
        if level > 1:
            lines.append("    " + search_detail(stats.search, indent="        "))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run cainfo with *argv* (default ``sys.argv[1:]``); return the exit status."""
    common = Common("cainfo")
    level = 0
    options, operands = getopt(sys.argv[1:] if argv is None else argv, OPTSTRING)
    for opt in options:
        if opt.letter == "?":
            return common.unknown_option(opt.optopt)
        if opt.letter == ":":
            return common.missing_argument(opt.optopt)
        if opt.letter == "h":
            F.err(USAGE + "\n" + version_line())
            return 0
        if opt.letter == "V":
            F.Output().line(version_line())
            return 0
        if opt.letter == "n":  # in base's option string, but not handled: usage and failure
            F.err(USAGE + "\n" + version_line())
            return 1
        if opt.letter == "w" and opt.arg is not None:
            common.set_timeout(opt.arg)
        elif opt.letter == "p" and opt.arg is not None:
            common.set_priority(opt.arg)
        elif opt.letter == "s" and opt.arg is not None:
            value = sscanf_uint(opt.arg)
            if value is None:
                F.err(f"'{text_arg(opt.arg)}' is not a valid interest level - ignored. ('cainfo -h' for help.)")
                value = 0
            level = value
    if not level and not operands:
        return common.no_pv()
    names = [text_arg(name) for name in operands]
    if not check_names(common, names):
        return 1
    ctx = common.context()
    try:
        pvs = connect(common, ctx, names) if names else []
        if pvs is None:
            return 1
        out = F.Output()
        if level:
            out.write(client_status(ctx, level))
        else:
            for pv in pvs:
                out.write(describe(pv, min(common.wait_seconds(), 1.0)))
        out.flush()
        return 0
    finally:
        ctx.close()
