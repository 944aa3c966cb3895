"""``caclient stats``: connect a list of PVs, read each once, print the engine's statistics.

A one-shot report (not a live view) for "what is going on with these PVs?":
which PVs connected and to which server, then per circuit the counters of
:meth:`caclient.Context.statistics` (messages, bytes, round-trip times,
reconnects ...), the search engine's (searches sent, unanswered names,
beacon anomalies) and the callback dispatcher's.  ``--debug`` also prints
the engine's DEBUG log (search sent, name found, circuit connected and
disconnected) to stderr.

:func:`circuit_detail` formats one circuit's record; :func:`pv_circuit_detail`
gives it for the circuit a PV is on, for a ``cainfo -s``-like detail.

Runs on the caller's thread only; the Context it makes is closed before
:func:`main` returns.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from ._context import Context
from ._errors import CAError
from ._pv import PV
from ._stats import CallbackStatistics, CircuitStatistics, SearchStatistics, Statistics

DEFAULT_TIMEOUT = 2.0


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g} ms"


def _rows(rows: list[tuple[str, object]], indent: str = "    ") -> list[str]:
    width = max(len(key) for key, _ in rows)
    return [f"{indent}{key:<{width}}  {value}" for key, value in rows]


def circuit_detail(c: CircuitStatistics, indent: str = "    ") -> str:
    """One circuit's statistics as text: a heading line, then one line per counter.

    Parameters
    ----------
    c : CircuitStatistics
    indent : str
        Put before each counter line.
    """
    head = f"Circuit to {c.server[0]}:{c.server[1]}, priority {c.priority} ({c.state})"
    rows: list[tuple[str, object]] = [
        ("channels", c.channels),
        ("subscriptions", c.subscriptions),
        ("messages out / in", f"{c.messages_out} / {c.messages_in}"),
        ("bytes out / in", f"{c.bytes_out} / {c.bytes_in}"),
        ("monitor updates", f"{c.updates_delivered} delivered, {c.updates_dropped} dropped"),
        ("EVENTS_OFF sent", f"{c.events_off}" + (" (paused now)" if c.events_paused else "")),
        ("round trip", f"p50 {_ms(c.latency_p50)}, p99 {_ms(c.latency_p99)} ({c.latency_samples} samples)"),
        ("reconnects", c.reconnects),
        ("last heard", f"{c.last_heard:.1f} s ago"),
    ]
    return "\n".join([head, *_rows(rows, indent)])


def search_detail(s: SearchStatistics, indent: str = "    ") -> str:
    """The search engine's statistics as text."""
    unanswered = str(s.unanswered)
    if s.unanswered_names:
        more = s.unanswered - len(s.unanswered_names)
        unanswered += ": " + " ".join(s.unanswered_names) + (f" (and {more} more)" if more > 0 else "")
    rows: list[tuple[str, object]] = [
        ("searches sent", f"{s.searches_sent} in {s.datagrams_sent} datagrams"),
        ("replies", f"{s.replies} (+{s.duplicate_replies} late or duplicate)"),
        ("unanswered names", unanswered),
        ("beacons", f"{s.beacons}, {s.beacon_anomalies} anomalies"),
        ("CA repeater", "registered" if s.repeater_registered else "not registered"),
    ]
    return "\n".join(["Search", *_rows(rows, indent)])


def callback_detail(cb: CallbackStatistics, indent: str = "    ") -> str:
    """The callback dispatcher's statistics as text."""
    rows: list[tuple[str, object]] = [
        ("workers", cb.workers),
        ("backlog", f"{cb.backlog} (high-water mark {cb.backlog_high_water})"),
        ("jobs run", f"{cb.jobs_run}, {cb.errors} raised"),
    ]
    return "\n".join(["Callbacks", *_rows(rows, indent)])


def format_statistics(stats: Statistics) -> str:
    """A whole :class:`~caclient.Statistics` snapshot as text (what ``caclient stats`` prints)."""
    parts = [circuit_detail(c) for c in stats.circuits] or ["No open circuits"]
    parts += [search_detail(stats.search), callback_detail(stats.callbacks)]
    return "\n\n".join(parts)


def pv_circuit_detail(context: Context, pv: PV) -> str:
    """The statistics of the circuit *pv* is on, as text (for a ``cainfo -s``-like detail).

    Returns a one-line note instead when the PV is not connected.
    """
    address = pv.server_address
    if address is None:
        return f"{pv.name}: not connected ({pv.state}), no circuit"
    record = context.statistics().circuit(address, pv.priority)
    if record is None:
        return f"{pv.name}: its circuit to {address[0]}:{address[1]} has closed"
    return circuit_detail(record)


def _pv_line(pv: PV, result: object, width: int) -> tuple[str, bool]:
    if isinstance(result, CAError):
        if pv.state == "searching":
            why = "not found (no server answered the search)"
        elif pv.connected:
            why = f"read failed: {result}"
        else:
            why = f"not connected ({pv.state}): {result}"
        return f"    {pv.name:<{width}}  *** {why}", False
    address = pv.server_address
    where = f"{address[0]}:{address[1]}" if address else "?"
    return f"    {pv.name:<{width}}  {where}  read ok", True


def _default_timeout() -> float:
    try:
        return float(os.environ.get("EPICS_CLI_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caclient stats",
        description="Connect the PVs, read each once, then print the client's statistics "
        "(circuits, search, callbacks).  Exit status 1 when a PV did not connect or read.",
    )
    parser.add_argument(
        "-w",
        dest="timeout",
        type=float,
        default=None,
        metavar="SEC",
        help=f"seconds to wait for connecting and reading (default $EPICS_CLI_TIMEOUT or {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("-p", dest="priority", type=int, default=0, metavar="PRIO", help="CA priority 0..99")
    parser.add_argument("-d", "--debug", action="store_true", help="print the engine's DEBUG log to stderr")
    parser.add_argument("pvs", nargs="+", metavar="pv", help="PV names")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``caclient stats``; returns the exit status (0: every PV connected and read)."""
    parser = _parser()
    args = parser.parse_args(argv)
    timeout = args.timeout if args.timeout is not None else _default_timeout()
    if timeout <= 0:
        parser.error("-w: the timeout must be positive")
    if not 0 <= args.priority <= 99:
        parser.error("-p: the priority must be in 0..99")
    ok, total = 0, len(args.pvs)
    handler: logging.Handler | None = None
    engine_log = logging.getLogger("caclient")
    old_level = engine_log.level
    if args.debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(name)s: %(message)s", "%H:%M:%S"))
        engine_log.addHandler(handler)
        engine_log.setLevel(logging.DEBUG)
    try:
        with Context(timeout=timeout) as ctx:
            pvs = ctx.get_pvs(*args.pvs, priority=args.priority)
            results = ctx.read_many(pvs, timeout=timeout, priority=args.priority)
            width = max(len(pv.name) for pv in pvs)
            lines = []
            for pv, result in zip(pvs, results, strict=True):
                line, good = _pv_line(pv, result, width)
                lines.append(line)
                ok += good
            print(f"PVs: {len(pvs)}, {ok} connected and read, {len(pvs) - ok} not")
            print("\n".join(lines))
            print()
            print(format_statistics(ctx.statistics()))
    except KeyboardInterrupt:
        return 130
    finally:
        if handler is not None:
            engine_log.removeHandler(handler)
            engine_log.setLevel(old_level)
    return 0 if ok == total else 1
