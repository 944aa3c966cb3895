"""caproto test server for caclient (run in a child process by :class:`CaprotoIOC`).

Usage::

    python -m caclient.testing._caproto_ioc --prefix T1234: \\
        --interfaces 127.0.0.1 [--n-numbered N]

The port is taken from ``EPICS_CA_SERVER_PORT``; the parent passes a
loopback-only environment.  Served PVs, all prefixed:

=========  ===================================================================
``ai``     float 3.5, precision 3, units 'mm', display/alarm/control limits
``ao``     float 0.0, precision 2, units 'V', limits
``long``   int 0
``str``    string 'hello'
``enum``   enum 'zero' of ['zero', 'one', 'two']
``wf``     float array, 1000 elements (zeros)
``chwf``   char array (byte string), at most 256 elements, initially empty
``slow``   float; a put completes only after 0.5 s (put-with-wait tests)
``counter`` int incremented every 0.1 s (monitor tests)
``ro``     read-only float 1.25
``n{i}``   ``--n-numbered N`` extra floats, i = 0 .. N-1 (bulk tests)
=========  ===================================================================

This module and caproto are imported only in the child process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from caproto import ChannelDouble, ChannelType
from caproto.asyncio.server import Context
from caproto.server import PVGroup, pvproperty

from caclient.testing._protocol import hard_exit, print_ready

__all__ = ["TestGroup", "main", "serve"]

SLOW_PUT_SECONDS = 0.5
COUNTER_PERIOD = 0.1

_AI_LIMITS: dict[str, float] = {
    "upper_disp_limit": 10.0,
    "lower_disp_limit": -10.0,
    "upper_alarm_limit": 8.0,
    "upper_warning_limit": 6.0,
    "lower_warning_limit": -6.0,
    "lower_alarm_limit": -8.0,
    "upper_ctrl_limit": 10.0,
    "lower_ctrl_limit": -10.0,
}

_AO_LIMITS: dict[str, float] = {
    "upper_disp_limit": 100.0,
    "lower_disp_limit": -100.0,
    "upper_alarm_limit": 80.0,
    "upper_warning_limit": 60.0,
    "lower_warning_limit": -60.0,
    "lower_alarm_limit": -80.0,
    "upper_ctrl_limit": 90.0,
    "lower_ctrl_limit": -90.0,
}


class TestGroup(PVGroup):  # type: ignore[misc]
    """The PVs of the caproto test IOC (see the module docstring)."""

    ai = pvproperty(value=3.5, dtype=float, precision=3, units="mm", doc="Analog input", **_AI_LIMITS)
    ao = pvproperty(value=0.0, dtype=float, precision=2, units="V", doc="Analog output", **_AO_LIMITS)
    long = pvproperty(value=0, dtype=int, doc="Integer")
    str = pvproperty(value="hello", dtype=ChannelType.STRING, doc="String")
    enum = pvproperty(
        value="zero",
        dtype=ChannelType.ENUM,
        enum_strings=["zero", "one", "two"],
        doc="Enum",
    )
    wf = pvproperty(value=[0.0] * 1000, dtype=float, max_length=1000, precision=3, units="mm", doc="Array")
    chwf = pvproperty(value="", dtype=ChannelType.CHAR, max_length=256, doc="Char array")
    slow = pvproperty(value=0.0, dtype=float, precision=3, doc="Put takes 0.5 s")
    counter = pvproperty(value=0, dtype=int, doc="Counts up at 10 Hz")
    ro = pvproperty(value=1.25, dtype=float, precision=3, read_only=True, doc="Read-only")

    @slow.putter  # type: ignore[no-redef, untyped-decorator]
    async def slow(self, instance: Any, value: float) -> float:
        await asyncio.sleep(SLOW_PUT_SECONDS)
        return value

    @counter.scan(period=COUNTER_PERIOD)  # type: ignore[no-redef, untyped-decorator]
    async def counter(self, instance: Any, async_lib: Any) -> None:
        await instance.write(instance.value + 1)


def build_pvdb(prefix: str, n_numbered: int = 0) -> dict[str, Any]:
    """Return the PV database: :class:`TestGroup` plus `n_numbered` floats."""
    pvdb: dict[str, Any] = dict(TestGroup(prefix=prefix).pvdb)
    for i in range(n_numbered):
        pvdb[f"{prefix}n{i}"] = ChannelDouble(value=float(i), precision=3)
    return pvdb


async def _serve(pvdb: Mapping[str, Any], interfaces: Sequence[str]) -> None:
    ctx = Context(dict(pvdb), list(interfaces))
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    async def announce(async_lib: Any) -> None:
        # Runs once the TCP and UDP sockets are bound.
        print_ready(int(ctx.port))

    def on_stdin_eof() -> None:
        try:
            while os.read(0, 4096):
                pass
        except (OSError, ValueError):
            pass
        loop.call_soon_threadsafe(task.cancel)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    threading.Thread(target=on_stdin_eof, name="stdin-watch", daemon=True).start()
    try:
        await ctx.run(startup_hook=announce)
    except asyncio.CancelledError:
        pass


def serve(pvdb: Mapping[str, Any], interfaces: Sequence[str] = ("127.0.0.1",)) -> None:
    """Serve `pvdb` until stdin closes or SIGTERM, printing the ready line.

    Server modules other than this one, run through
    :class:`caclient.testing.CaprotoIOC`, can call this as their main loop.

    Parameters
    ----------
    pvdb : mapping of str to caproto ChannelData
        The PVs to serve.
    interfaces : sequence of str, optional
        Addresses to bind; only loopback addresses are allowed here.
    """
    if any(not intf.startswith("127.") for intf in interfaces):
        raise SystemExit(f"refusing to serve on non-loopback interfaces {list(interfaces)}")
    asyncio.run(_serve(pvdb, interfaces))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve the test PVs."""
    parser = argparse.ArgumentParser(prog="python -m caclient.testing._caproto_ioc")
    parser.add_argument("--prefix", default="caproto:")
    parser.add_argument("--interfaces", nargs="+", default=["127.0.0.1"])
    parser.add_argument("--n-numbered", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        serve(build_pvdb(args.prefix, args.n_numbered), args.interfaces)
    except BaseException:
        logging.getLogger(__name__).exception("caproto test IOC failed")
        hard_exit(1)
    hard_exit(0)


if __name__ == "__main__":
    main()
