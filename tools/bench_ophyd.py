"""Benchmark ophyd (and bluesky) on compat against ophyd on real pyepics.

Usage::

    python -m tools.bench_ophyd [--quick] [--only NAME ...] [--json out.json]
                                [--clients compat pyepics] [--timeout S]

ophyd runs on its pyepics control layer in both cases; with ``compat`` the
child calls ``compat.install()`` first, so ophyd's ``import epics`` gives
compat.  As in :mod:`tools.bench_compat`, the EPICS C soft IOC runs on the
loopback interface, every scenario runs once per client in a fresh child
process (:mod:`tools._bench_ophyd_workers`), and the table shows compat's
advantage factor (above 1 means compat is better) and the issue's target.

Scenarios (``--quick`` uses a tenth of the signals):

* ``device_1k_connect``: create a Device of 1000 EpicsSignals and
  ``wait_for_connection``;
* ``count_1k_x10``: bluesky ``count`` of that Device, 10 points;
* ``subs_100_10hz``: 100 EpicsSignal subscriptions to 10 Hz records, CPU
  time per update.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tools import bench
from tools._bench_harness import ParamsFn
from tools._bench_ophyd_workers import CLIENTS
from tools.bench import Metric, RunResult, Scenario, _n, _numbered, versions

OURS = "compat"
DEFAULT_TIMEOUT = 300.0


def _device_params(full: int, small: int, **extra: Any) -> ParamsFn:
    return lambda ioc, q: {"prefix": ioc.prefix, "n": _n(q, full, small), "timeout": 120.0, **extra}


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "device_1k_connect",
        "ai10k",
        "device_connect",
        (
            Metric("elapsed_s", "s to connect", False, "{:,.2f}", 2.0, ("pyepics",), ">=2x pyepics"),
            Metric("cpu_s", "CPU s", False, "{:,.2f}"),
        ),
        _device_params(1_000, 100),
        "a Device of N EpicsSignals (ai records): create it and wait_for_connection()",
    ),
    Scenario(
        "count_1k_x10",
        "ai10k",
        "count",
        (
            Metric("elapsed_s", "s for the count", False, "{:,.2f}", 1.0, ("pyepics",), ">=pyepics"),
            Metric("cpu_s", "CPU s", False, "{:,.2f}"),
        ),
        _device_params(1_000, 100, num=10),
        "RunEngine(count([device], num=10)) of that Device, once it is connected",
    ),
    Scenario(
        "subs_100_10hz",
        "calc1k",
        "subscriptions",
        (
            Metric("us_per_update", "CPU us/update", False, "{:,.1f}", 2.0, ("pyepics",), "<=0.5x pyepics"),
            Metric("updates_per_s", "updates/s", True),
            Metric("cpu_pct", "client CPU %", False, "{:,.1f}"),
        ),
        lambda ioc, q: {
            "names": _numbered(ioc, _n(q, 100, 20)),
            "hz": 10,
            "duration": 10.0 if not q else 2.0,
            "settle": 1.0 if not q else 0.5,
            "timeout": 60.0,
        },
        "N EpicsSignalRO subscriptions to calc records at 10 Hz: process CPU time / updates",
    ),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


def render_table(all_results: dict[str, dict[str, RunResult]], clients: tuple[str, ...], fail_width: int = 30) -> str:
    """tools.bench's table for the ophyd scenarios, with compat's advantage factors."""
    return bench.render_table(all_results, clients, fail_width, scenarios=SCENARIOS, ours=OURS)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected scenarios; print progress, the table and the details; return the report."""
    vers = versions()
    for name in ("ophyd", "bluesky"):
        try:
            vers[name] = __import__(name).__version__
        except ImportError:
            vers[name] = "not installed"
    return bench.run_front_end(
        args,
        SCENARIOS,
        prog="tools.bench_ophyd",
        title="ophyd",
        vers=vers,
        ours="'adv vs X' = compat's advantage factor (> 1, marked +, means compat is better)",
        render_table=render_table,
        module="tools._bench_ophyd_workers",
        progress_widths=(18, 8),
    )


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    return bench.cli(
        argv,
        prog="python -m tools.bench_ophyd",
        doc=__doc__ or "",
        scenarios=SCENARIOS,
        clients=CLIENTS,
        default_timeout=DEFAULT_TIMEOUT,
        run_all=run,
    )


if __name__ == "__main__":
    sys.exit(main())
