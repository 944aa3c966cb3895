"""Benchmark caclient against caproto's threading client and pyepics.

Usage::

    python -m tools.bench [--quick] [--only NAME ...] [--json out.json]
                          [--clients caclient caproto pyepics] [--timeout S]

One invocation starts the EPICS C soft IOC(s) from ``epicscorelibs`` on the
loopback interface (:mod:`caclient.testing`), then runs every selected
scenario once for each client, each run in its own fresh child process
(:mod:`tools._bench_workers`) with the IOC's loopback-only environment.  The
same IOC process serves all three clients of a scenario.  The parent never
talks Channel Access itself; it collects one JSON line from each child's
stdout, and prints a table.

Every child has a hard wall-clock timeout and a memory limit (``RLIMIT_AS``
inside the child, and an RSS watchdog in the parent); a failure, timeout or
out-of-memory shows up in the table as ``FAIL: reason`` - the tool itself
does not crash.

Ratios are *advantage* factors: ``ours/other`` for metrics where higher is
better and ``other/ours`` where lower is better, so a value above 1 always
means caclient is better.

Scenarios: cold_connect_10k, seq_read, monitor_cpu_1k, monitor_rate_10k,
mem_per_pv, waveform_1m, waveform_10m, put_wait (see ``--list``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from tools import _bench_report
from tools._bench_harness import (
    DEFAULT_MEM_LIMIT_GIB,
    GIB,
    ROOT,
    WF_FIRST,
    Metric,
    RunResult,
    Scenario,
    _n,
    _numbered,
    best_of,
    cli,
    ioc_manager,
    latency_metric,
    mem_per_pv_params,
    monitor_params,
    run_child,
    run_front_end,
    run_scenarios,
    sequential_params,
    waveform_params,
)
from tools._bench_report import advantage, render_failures, target_status, versions
from tools._bench_workers import CLIENTS

__all__ = [
    "DEFAULT_MEM_LIMIT_GIB",
    "GIB",
    "ROOT",
    "SCENARIOS",
    "WF_FIRST",
    "Metric",
    "RunResult",
    "Scenario",
    "advantage",
    "best_of",
    "cli",
    "ioc_manager",
    "latency_metric",
    "main",
    "mem_per_pv_params",
    "monitor_params",
    "render_failures",
    "render_table",
    "run",
    "run_child",
    "run_front_end",
    "run_scenarios",
    "sequential_params",
    "target_status",
    "versions",
    "waveform_params",
]

DEFAULT_TIMEOUT = 120.0

_WAVEFORM_METRICS = (
    Metric("mbps", "MB/s", True, "{:,.1f}", 1.5, ("pyepics", "caproto"), ">=1.5x best other"),
    Metric("rate", "reads/s", True, "{:,.2f}"),
    Metric("peak_rss_mb", "peak RSS MiB (ru_maxrss)", False, "{:,.1f}"),
)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "cold_connect_10k",
        "ai10k",
        "cold_connect",
        (
            Metric(
                "rate", "PVs/s connected+read", True, target=2.0, target_vs=("pyepics",), target_text=">=2x pyepics"
            ),
            Metric("elapsed_s", "total s", False, "{:,.2f}"),
        ),
        lambda ioc, q: {"names": _numbered(ioc, _n(q, 10_000, 1_000)), "timeout": 60.0},
        "fresh client connects to and reads N passive ai records "
        "(caclient read_many; caproto get_pvs+Batch reads; pyepics caget_many)",
    ),
    Scenario(
        "seq_read",
        "testdb",
        "seq_read",
        (
            Metric("rate", "reads/s", True, target=4.0, target_vs=("pyepics",), target_text=">=4x pyepics"),
            latency_metric("read"),
        ),
        sequential_params("ai", 2000, 200, 50),
        "sequential round-trip reads of one connected PV, no monitor (pyepics: ca.get on a chid)",
    ),
    Scenario(
        "monitor_cpu_1k",
        "calc1k",
        "monitor_cpu",
        (
            Metric(
                "us_per_update",
                "CPU us/update",
                False,
                "{:,.1f}",
                target=2.5,
                target_vs=("pyepics",),
                target_text="<=0.4x pyepics",
            ),
            Metric("updates_per_s", "updates/s", True),
            Metric("cpu_pct", "client CPU %", False, "{:,.1f}"),
        ),
        monitor_params(1_000, 100, 60.0),
        "N calc records at 10 Hz, trivial callback touching the value; process CPU time / updates",
    ),
    Scenario(
        "monitor_rate_10k",
        "calc10k",
        "monitor_rate",
        (
            Metric(
                "updates_per_s",
                "updates/s delivered",
                True,
                target=2.0,
                target_vs=("pyepics",),
                target_text=">=2x pyepics",
            ),
            Metric("peak_rss_mb", "peak RSS MiB", False, "{:,.1f}", target_text="bounded"),
            Metric("rss_start_mb", "RSS start MiB", False, "{:,.1f}"),
            Metric("rss_mid_mb", "RSS middle MiB", False, "{:,.1f}"),
            Metric("rss_end_mb", "RSS end MiB", False, "{:,.1f}"),
            Metric("rss_bounded", "RSS bounded (end-mid <= max(10%,32MiB))", True, "{}", target_text="yes", check=bool),
            Metric("cpu_pct", "client CPU %", False, "{:,.1f}"),
        ),
        monitor_params(10_000, 1_000, 90.0),
        "N calc records at 10 Hz (N*10 updates/s offered); delivered rate and memory",
        timeout_factor=1.5,
    ),
    Scenario(
        "mem_per_pv",
        "ai10k",
        "mem_per_pv",
        (
            Metric(
                "bytes_per_pv",
                "RSS bytes/subscribed PV",
                False,
                target=1.0,
                target_vs=("pyepics",),
                target_text="<=pyepics",
            ),
            Metric("rss_after_mb", "RSS after MiB", False, "{:,.1f}"),
        ),
        mem_per_pv_params(10_000, 1_000),
        "(RSS after subscribing N more PVs - RSS before) / N, after warming up on one PV",
    ),
    Scenario(
        "waveform_1m",
        "testdb",
        "waveform",
        _WAVEFORM_METRICS,
        waveform_params("wf1m", 1_000_000, 20, 3, 30.0),
        "reads of a full 1,000,000-double waveform",
    ),
    Scenario(
        "waveform_10m",
        "testdb",
        "waveform",
        _WAVEFORM_METRICS,
        waveform_params("wf10m", 10_000_000, 5, 2, 60.0),
        "reads of a full 10,000,000-double waveform (80 MB)",
    ),
    Scenario(
        "put_wait",
        "testdb",
        "put_wait",
        (
            Metric("rate", "puts/s", True, target=1.2, target_vs=("pyepics",), target_text=">=1.2x pyepics"),
            latency_metric("put"),
        ),
        sequential_params("ao", 1000, 100, 20),
        "sequential put with completion wait on an ao (pyepics: PV(auto_monitor=False).put(wait=True))",
    ),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


def render_table(
    all_results: dict[str, dict[str, RunResult]],
    clients: tuple[str, ...],
    fail_width: int = 34,
    *,
    scenarios: Sequence[Scenario] = SCENARIOS,
    ours: str = "caclient",
) -> str:
    """The results table of these scenarios (see :func:`tools._bench_report.render_table`)."""
    return _bench_report.render_table(all_results, clients, fail_width, scenarios=scenarios, ours=ours)


def header_text(args: argparse.Namespace, vers: dict[str, str]) -> str:
    cores = os.cpu_count() or 0
    lines = [
        "caclient benchmark (python -m tools.bench" + (" --quick" if args.quick else "") + ")",
        "versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, {cores} CPU cores"
        + (
            f" - NOTE: only {cores} cores, shared by the IOC and the client; CPU-bound figures are pessimistic"
            if cores <= 4
            else ""
        ),
        "server: EPICS C soft IOC (RSRV, epicscorelibs), loopback 127.0.0.1 only, private ports; "
        "one IOC per scenario group, shared by the three clients",
        "each client runs in its own fresh child process per scenario; "
        f"child limits: {args.timeout:.0f}s wall, RLIMIT_AS and RSS {args.mem_limit:.1f} GiB"
        + (f"; best of {args.repeat} runs per figure" if args.repeat > 1 else "; one run per figure"),
        "'adv vs X' = caclient's advantage factor: ours/X where higher is better, X/ours where lower is better;",
        "             > 1 (marked +) means caclient is better, < 1 (marked -) worse.",
        "target status: MET / MISSED against the target column (a failing competitor counts as beaten).",
    ]
    if args.quick:
        lines.append("--quick: counts and durations ~10x smaller than the real benchmark (smoke run only).")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    selected = [s for s in SCENARIOS if not args.only or s.name in args.only]
    clients = tuple(args.clients)
    vers = versions()
    print(header_text(args, vers), flush=True)
    print(flush=True)
    all_results = run_scenarios(args, selected)
    print()
    print(render_table(all_results, clients))
    fails = render_failures(all_results)
    if fails:
        print()
        print("failures and notes:")
        print(fails)
    print()
    print("scenario details:")
    for sc in selected:
        print(f"  {sc.name}: {sc.description}")
    report = {
        "versions": vers,
        "cpu_count": os.cpu_count(),
        "quick": args.quick,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "scenarios": {
            name: {
                "results": {c: r.as_json() for c, r in res.items()},
                "targets": {
                    m.key: {"target": m.target_text, "status": target_status(m, res)}
                    for m in next(s for s in SCENARIOS if s.name == name).metrics
                    if m.target_text
                },
            }
            for name, res in all_results.items()
        },
    }
    return report


def main(argv: list[str] | None = None) -> int:
    return cli(
        argv,
        prog="python -m tools.bench",
        doc=__doc__ or "",
        scenarios=SCENARIOS,
        clients=CLIENTS,
        default_timeout=DEFAULT_TIMEOUT,
        run_all=run,
    )


if __name__ == "__main__":
    sys.exit(main())
