"""The ``caclient`` command line: get, put, monitor, info, stats and demo.

Output follows EPICS base's caget/caput/camonitor/cainfo where it can.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from ._context import Context
from ._errors import CAError
from ._response import ReadResponse


def _fmt_value(resp: ReadResponse) -> str:
    data = resp.data
    if isinstance(data, list):
        return data[0] if len(data) == 1 else f"{len(data)} " + " ".join(data)
    if len(data) == 1:
        return str(data[0].item())
    return f"{len(data)} " + " ".join(str(v) for v in data.tolist())


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")


def cmd_get(args: argparse.Namespace) -> int:
    rc = 0
    with Context(timeout=args.timeout) as ctx:
        family = {"native": None, "time": "time", "control": "control"}[args.type]
        pvs = ctx.get_pvs(*args.pvs)
        for pv in pvs:
            try:
                resp = pv.read(data_type=family, timeout=args.timeout)
            except CAError as exc:
                print(f"{pv.name}: {exc}", file=sys.stderr)
                rc = 1
                continue
            if args.type == "native":
                print(f"{pv.name:<30} {_fmt_value(resp)}")
                continue
            md = resp.metadata
            print(f"{pv.name}")
            print(f"    Native data type: DBR_{pv.native_data_type.name if pv.native_data_type else '?'}")
            print(f"    Value:            {_fmt_value(resp)}")
            if md.timestamp is not None:
                print(f"    Timestamp:        {_fmt_time(md.timestamp)}")
            print(f"    Status:           {md.status}")
            print(f"    Severity:         {md.severity}")
            for key, value in md.as_dict().items():
                if key not in ("status", "severity", "timestamp", "posixseconds", "nanoseconds"):
                    print(f"    {key + ':':<18}{value}")
    return rc


def cmd_put(args: argparse.Namespace) -> int:
    with Context(timeout=args.timeout) as ctx:
        (pv,) = ctx.get_pvs(args.pv)
        values: Any = args.values[0] if len(args.values) == 1 else args.values
        try:
            old = pv.read()
            pv.write(values, wait=not args.no_wait)
            new = pv.read()
        except (CAError, ValueError, TypeError) as exc:
            print(f"{args.pv}: {exc}", file=sys.stderr)
            return 1
        print(f"Old : {pv.name:<30} {_fmt_value(old)}")
        print(f"New : {pv.name:<30} {_fmt_value(new)}")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    done = threading.Event()
    lock = threading.Lock()
    count = [0]

    def show(sub: Any, resp: ReadResponse) -> None:
        print(f"{sub.pv.name:<30} {_fmt_time(resp.metadata.timestamp)} {_fmt_value(resp)}", flush=True)
        with lock:
            count[0] += 1
            if args.n and count[0] >= args.n:
                done.set()

    with Context(timeout=args.timeout) as ctx:
        for pv in ctx.get_pvs(*args.pvs):
            pv.subscribe(data_type="time").add_callback(show)
        try:
            done.wait(args.duration)
        except KeyboardInterrupt:
            pass
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    rc = 0
    with Context(timeout=args.timeout) as ctx:
        for pv in ctx.get_pvs(*args.pvs):
            try:
                pv.wait_for_connection(timeout=args.timeout)
            except CAError as exc:
                print(f"{pv.name}: {exc}", file=sys.stderr)
                rc = 1
                continue
            addr = pv.server_address
            print(pv.name)
            print("    State:            connected")
            print(f"    Host:             {addr[0]}:{addr[1]}" if addr else "    Host:             ?")
            print(f"    Access:           {pv.access_rights.name.lower().replace('_', ', ')}")
            print(f"    Native data type: DBR_{pv.native_data_type.name if pv.native_data_type else '?'}")
            print(f"    Element count:    {pv.native_data_count}")
    return rc


def cmd_repeater(args: argparse.Namespace) -> int:
    from ._repeater import cli_main

    return cli_main(list(args.rest))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(n_bulk=args.bulk)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="caclient", description="EPICS Channel Access client tools")
    parser.add_argument("-w", "--timeout", type=float, default=2.0, help="timeout in seconds (default 2)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("get", help="read PVs")
    p.add_argument("-t", "--type", choices=("native", "time", "control"), default="native")
    p.add_argument("pvs", nargs="+")
    p.set_defaults(func=cmd_get)
    p = sub.add_parser("put", help="write a PV (waits for completion)")
    p.add_argument("--no-wait", action="store_true", help="do not wait for completion")
    p.add_argument("pv")
    p.add_argument("values", nargs="+")
    p.set_defaults(func=cmd_put)
    p = sub.add_parser("monitor", help="print updates of PVs")
    p.add_argument("-n", type=int, default=0, help="stop after N updates")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("pvs", nargs="+")
    p.set_defaults(func=cmd_monitor)
    p = sub.add_parser("info", help="connection information")
    p.add_argument("pvs", nargs="+")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("repeater", help="run a CA repeater (127.0.0.1 unless --any)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_repeater)
    sub.add_parser("stats", help="connect and read PVs once, then print the client's statistics", add_help=False)
    p = sub.add_parser("demo", help="start a local loopback IOC and exercise the client")
    p.add_argument("--bulk", type=int, default=1000, help="PVs in the bulk read (default 1000)")
    p.set_defaults(func=cmd_demo)
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["repeater"]:  # its own options, parsed by the repeater
        return cmd_repeater(argparse.Namespace(rest=raw[1:]))
    if raw[:1] == ["stats"]:  # its own options: see caclient._stats_cli
        from ._stats_cli import main as stats_main

        return stats_main(raw[1:])
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    finally:
        del start
