"""One table of every performance figure: caclient, compat, pyepics, caproto and cothread side by side.

Usage::

    python -m tools.bench_table [--quick] [--only ROW ...] [--clients NAME ...]
                                [--json out.json] [--markdown out.md] [--timeout S]

Columns are the engine (``caclient``), ``compat`` through its pyepics API,
``pyepics``, caproto's threading client (``caproto``) and ``cothread.catools``,
plus two limits: ``floor``, a single-threaded Python loop on one blocking
socket (send the request, receive the reply; for arrays, receive into one
preallocated buffer and convert nothing) against the same IOC, and
``memcpy``, numpy copying the same number of bytes.  Rows are the
workloads of the performance issue (sequential reads and their CPU,
``put(wait=True)``, 8 threads, 1M/10M-double arrays, a cold ``caget``
process, import time) and the rows caclient already led (cold connect of
10k PVs, monitors at 1k/10k/100k updates/s offered, memory per PV,
``caget_many``, ``caput_many``).

The harness is :mod:`tools.bench`'s (:mod:`tools._bench_harness`): EPICS C
soft IOCs on loopback, a fresh child process per client and row
(:mod:`tools._bench_table_workers`, clients in :mod:`tools._bench_peers`,
limits in :mod:`tools._bench_floor`), each with a timeout and a memory
limit; a failure shows as ``FAIL`` and the run goes on.  The output is three
markdown tables: the figures, each client's advantage factor over each
peer (above 1 = better), and each figure as a fraction of its limit.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any

from tools._bench_harness import Metric, ParamsFn, RunResult, Scenario, _n, _numbered, cli, run_scenarios, warmup_s
from tools._bench_peers import CLIENTS as PEERS
from tools._bench_report import versions
from tools._bench_table_render import LIMIT_OF, Row, render_markdown

LIMITS = ("floor", "memcpy")
CLIENTS = (*PEERS, *LIMITS)
DEFAULT_TIMEOUT = 120.0
WF_FIRST = 1.0


def _seq(pv: str, full: int, small: int) -> Any:
    return lambda ioc, q: {
        "name": ioc.pv(pv),
        "n": _n(q, full, small),
        "warmup": _n(q, 100, 20),
        "warmup_s": warmup_s(q),
        "timeout": 10.0,
    }


def _wf(pv: str, nelm: int, full: int, small: int) -> Any:
    return lambda ioc, q: {
        "name": ioc.pv(pv),
        "nelm": nelm,
        "n": _n(q, full, small),
        "expected_last": (nelm - 1) * 0.5 + WF_FIRST,
        "warmup_s": warmup_s(q),
        "timeout": 60.0,
    }


def _cold(pv: str) -> Any:
    return lambda ioc, q: {"name": ioc.pv(pv), "runs": _n(q, 5, 2), "timeout": 30.0}


def _monitor(full: int, small: int) -> Any:
    return lambda ioc, q: {
        "names": _numbered(ioc, _n(q, full, small)),
        "hz": 10,
        "duration": _n(q, 5, 1),
        "settle": 1.0 if not q else 0.5,
        "timeout": 90.0,
    }


ROWS: tuple[Row, ...] = (
    Row("seq_get", "rate", "sequential `PV.get(use_monitor=False)`", "reads/s", True),
    Row("seq_get", "cpu_us", "client CPU per sequential get", "µs", False, "{:,.1f}"),
    Row("put_wait", "rate", "`put(wait=True)` sequential", "puts/s", True),
    Row("threads_get", "rate", "8 threads doing network gets", "gets/s", True),
    Row("waveform_1m", "mbps", "1M-double read", "MB/s", True, "{:,.1f}"),
    Row("waveform_10m", "mbps", "10M-double read", "MB/s", True, "{:,.1f}"),
    Row("cold_caget", "seconds", "cold process: import + one caget", "s", False, "{:,.3f}"),
    Row("cli_caget", "seconds", "cold process: command-line caget", "s", False, "{:,.3f}"),
    Row("import_time", "ms", "import time", "ms", False, "{:,.1f}"),
    Row("cold_connect_10k", "rate", "cold connect + read 10k PVs", "PVs/s", True),
    Row("monitor_1k", "us_per_update", "monitors, 1k/s offered: CPU", "µs/update", False, "{:,.1f}"),
    Row("monitor_10k", "us_per_update", "monitors, 10k/s offered: CPU", "µs/update", False, "{:,.1f}"),
    Row("monitor_100k", "us_per_update", "monitors, 100k/s offered: CPU", "µs/update", False, "{:,.1f}"),
    Row("monitor_100k", "updates_per_s", "monitors, 100k/s offered: delivered", "updates/s", True),
    Row("mem_per_pv", "bytes_per_pv", "memory per monitored PV", "bytes", False),
    Row("caget_many_1k", "later_ms", "caget_many of 1k PVs (repeated)", "ms/call", False, "{:,.1f}"),
    Row("caput_many_1k", "rate", "caput_many of 1k PVs, wait for all", "puts/s", True),
)


def _sc(
    name: str,
    ioc: str,
    worker: str,
    params: ParamsFn,
    description: str,
    clients: tuple[str, ...],
    timeout_factor: float = 1.0,
) -> Scenario:
    """A scenario whose metrics are its rows in ROWS (the first one decides "best of --repeat")."""
    metrics = tuple(Metric(r.key, r.label, r.higher_is_better, r.fmt) for r in ROWS if r.scenario == name)
    return Scenario(name, ioc, worker, metrics, params, description, timeout_factor, clients=clients)


ROUND_TRIP = (*PEERS, "floor")
ARRAYS = (*PEERS, "floor", "memcpy")

# Run order groups the scenarios by IOC; ROWS gives the display order.
SCENARIOS: tuple[Scenario, ...] = (
    _sc(
        "seq_get",
        "testdb",
        "seq_get",
        _seq("ai", 3000, 200),
        "sequential network gets of one PV "
        "(engine PV.read; compat/pyepics PV.get(use_monitor=False); caproto PV.read; cothread caget)",
        ROUND_TRIP,
    ),
    _sc(
        "put_wait",
        "testdb",
        "put_wait",
        _seq("ao", 1000, 100),
        "sequential put with completion (PV.put(wait=True) / write(wait=True) / caput(wait=True))",
        ROUND_TRIP,
    ),
    _sc(
        "waveform_1m",
        "testdb",
        "waveform",
        _wf("wf1m", 1_000_000, 40, 3),
        "network reads of a full 1,000,000-double waveform (MB/s of the median read)",
        ARRAYS,
    ),
    _sc(
        "waveform_10m",
        "testdb",
        "waveform",
        _wf("wf10m", 10_000_000, 15, 2),
        "network reads of a full 10,000,000-double waveform, 80 MB (MB/s of the median read)",
        ARRAYS,
        2.0,
    ),
    _sc(
        "cold_caget",
        "testdb",
        "cold_process",
        _cold("ai"),
        "a fresh `python -c` process: import the client, read one scalar PV, exit (median of runs)",
        PEERS,
    ),
    _sc(
        "cli_caget",
        "testdb",
        "cli_caget",
        _cold("ai"),
        "the command-line caget (console scripts `caclient get`, `caproto-get`), cold process",
        ("caclient", "caproto"),
    ),
    _sc(
        "import_time",
        "testdb",
        "import_time",
        lambda ioc, q: {"runs": _n(q, 5, 2), "timeout": 30.0},
        "`python -c 'import X'` less `python -c pass` (best of runs)",
        PEERS,
    ),
    _sc(
        "threads_get",
        "ai10k",
        "threads_get",
        lambda ioc, q: {"names": _numbered(ioc, 8), "reads": _n(q, 500, 50), "warmup_s": warmup_s(q), "timeout": 10.0},
        "8 threads (cothread: cothreads) each doing sequential network gets of its own PV",
        ROUND_TRIP,
    ),
    _sc(
        "cold_connect_10k",
        "ai10k",
        "cold_connect",
        lambda ioc, q: {"names": _numbered(ioc, _n(q, 10_000, 300)), "timeout": 60.0},
        "a fresh client connects to and reads N ai records at once (read_many / caget_many / Batch / caget(list))",
        PEERS,
    ),
    _sc(
        "caget_many_1k",
        "ai10k",
        "get_many",
        lambda ioc, q: {"names": _numbered(ioc, _n(q, 1000, 100)), "rounds": _n(q, 10, 3), "timeout": 30.0},
        "the same bulk read of 1000 PVs, repeated; time of the later calls",
        PEERS,
    ),
    _sc(
        "caput_many_1k",
        "ai10k",
        "put_many",
        lambda ioc, q: {"names": _numbered(ioc, _n(q, 1000, 100)), "rounds": _n(q, 5, 2), "timeout": 30.0},
        "bulk put of 1000 PVs waiting for every completion (caput_many wait='all' / write_many / "
        "Batch / caput(list, wait=True))",
        PEERS,
    ),
    _sc(
        "mem_per_pv",
        "ai10k",
        "mem_per_pv",
        lambda ioc, q: {
            "warmup_names": [ioc.pv("n0")],
            "names": _numbered(ioc, _n(q, 10_000, 300), start=1),
            "settle": 1.0,
            "timeout": 90.0,
        },
        "(RSS after monitoring N more PVs - RSS before) / N",
        PEERS,
    ),
    _sc(
        "monitor_1k",
        "calc100",
        "monitor",
        _monitor(100, 100),
        "100 calc records at 10 Hz: 1,000 updates/s offered",
        PEERS,
    ),
    _sc(
        "monitor_10k",
        "calc1k",
        "monitor",
        _monitor(1_000, 100),
        "1,000 calc records at 10 Hz: 10,000 updates/s offered",
        PEERS,
    ),
    _sc(
        "monitor_100k",
        "calc10k",
        "monitor",
        _monitor(10_000, 1_000),
        "10,000 calc records at 10 Hz: 100,000 updates/s offered",
        PEERS,
        1.5,
    ),
)


def header_text(args: argparse.Namespace, vers: dict[str, str]) -> str:
    cores = os.cpu_count() or 0
    lines = [
        "# caclient benchmark table (python -m tools.bench_table" + (" --quick" if args.quick else "") + ")",
        "",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        f"- machine: {platform.machine()} {platform.system()} {platform.release()}, {cores} CPU cores, "
        "shared by the IOC and the client",
        "- server: EPICS C soft IOC (RSRV, epicscorelibs) on 127.0.0.1, private ports",
        "- every figure: a fresh child process per client and row"
        + (f", best of {args.repeat} runs" if args.repeat > 1 else ", one run"),
    ]
    if args.quick:
        lines.append("- **--quick**: tiny counts and durations (a smoke run: the figures mean nothing)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    selected = [s for s in SCENARIOS if not args.only or s.name in args.only]
    clients = tuple(args.clients)
    vers = versions()
    started = time.monotonic()
    print(header_text(args, vers), flush=True)
    print(flush=True)
    results = run_scenarios(args, selected, module="tools._bench_table_workers", progress_widths=(17, 8))
    text = render_markdown(results, ROWS, clients, SCENARIOS)
    print()
    print(text)
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(header_text(args, vers) + "\n\n" + text + "\n")
    return {
        "versions": vers,
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
        "limits": LIMIT_OF,
        "scenarios": {name: {c: r.as_json() for c, r in res.items()} for name, res in results.items()},
    }


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables to this markdown file")


def main(argv: list[str] | None = None) -> int:
    return cli(
        argv,
        prog="python -m tools.bench_table",
        doc=__doc__ or "",
        scenarios=SCENARIOS,
        clients=CLIENTS,
        default_timeout=DEFAULT_TIMEOUT,
        run_all=run,
        add_arguments=_add_arguments,
    )


__all__ = ["CLIENTS", "ROWS", "SCENARIOS", "RunResult", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
