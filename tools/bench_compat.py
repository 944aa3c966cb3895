"""Benchmark compat (``import compat as epics``) against pyepics and caproto's pyepics_compat.

Usage::

    python -m tools.bench_compat [--quick] [--only NAME ...] [--json out.json]
                                 [--clients compat pyepics caproto] [--timeout S]

Like :mod:`tools.bench`: the EPICS C soft IOC(s) run on the loopback
interface, every scenario runs once per client in a fresh child process
(:mod:`tools._bench_compat_workers`) with the IOC's loopback-only
environment, and the table shows each figure with compat's advantage factor
(above 1 means compat is better) and the target from the compat issue.

Scenarios: cold_caget_many_10k, caget_many_1k_x10, seq_get, monitor_cpu_1k,
monitor_cpu_10k, caget_1m, caput_wait, caput_many_nowait, caput_many_all,
mem_per_pv_10k, reentrant_100 (see ``--list``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tools import bench
from tools._bench_compat_workers import CLIENTS
from tools._bench_harness import (
    Metric,
    RunResult,
    Scenario,
    _n,
    _numbered,
    latency_metric,
    mem_per_pv_params,
    monitor_params,
    sequential_params,
    waveform_params,
)
from tools._bench_report import versions

OURS = "compat"
DEFAULT_TIMEOUT = 180.0


def _vs_all(target: float, text: str) -> dict[str, Any]:
    return {"target": target, "target_vs": ("pyepics", "caproto"), "target_text": text}


_CPU_PER_UPDATE = Metric("us_per_update", "CPU us/update", False, "{:,.1f}", 2.5, ("pyepics",), "<=0.4x pyepics")
_CPU_PCT = Metric("cpu_pct", "client CPU %", False, "{:,.1f}")
_PUT_MANY_METRICS = (
    Metric("rate", "puts/s", True, target=1.5, target_vs=("pyepics",), target_text=">=1.5x pyepics"),
    Metric("round_ms", "ms per call", False, "{:,.1f}"),
)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "cold_caget_many_10k",
        "ai10k",
        "cold_caget_many",
        (
            Metric("rate", "PVs/s", True, target=2.0, target_vs=("pyepics",), target_text=">=2x pyepics"),
            Metric("elapsed_s", "total s", False, "{:,.2f}"),
        ),
        lambda ioc, q: {"names": _numbered(ioc, _n(q, 10_000, 1_000)), "timeout": 60.0},
        "a fresh process calls caget_many() once for N passive ai records",
    ),
    Scenario(
        "caget_many_1k_x10",
        "ai10k",
        "caget_many_repeat",
        (
            Metric("total_s", "total s for 10 calls", False, "{:,.3f}", 2.0, ("pyepics",), "<=0.5x pyepics"),
            Metric("later_ms", "ms per later call", False, "{:,.1f}"),
        ),
        lambda ioc, q: {"names": _numbered(ioc, 1_000), "rounds": 10, "timeout": 30.0},
        "caget_many() of the same 1000 PVs ten times in one process",
    ),
    Scenario(
        "seq_get",
        "testdb",
        "seq_get",
        (
            Metric("rate", "gets/s", True, **_vs_all(1.0, ">=pyepics, >=caproto")),
            latency_metric("get"),
        ),
        sequential_params("ai", 2000, 200, 50),
        "sequential PV.get(use_monitor=False) of one connected PV",
    ),
    Scenario(
        "monitor_cpu_1k",
        "calc1k",
        "monitor_cpu",
        (_CPU_PER_UPDATE, Metric("updates_per_s", "updates/s", True), _CPU_PCT),
        monitor_params(1_000, 100, 60.0),
        "N PV objects with a callback, calc records at 10 Hz: process CPU time / updates",
    ),
    Scenario(
        "monitor_cpu_10k",
        "calc10k",
        "monitor_cpu",
        (
            _CPU_PER_UPDATE,
            Metric("updates_per_s", "updates/s", True, **_vs_all(1.0, ">=pyepics, >=caproto")),
            _CPU_PCT,
        ),
        monitor_params(10_000, 1_000, 120.0),
        "as monitor_cpu_1k with N = 10,000 (100,000 updates/s offered)",
    ),
    Scenario(
        "caget_1m",
        "testdb",
        "caget_big",
        (
            Metric("mbps", "MB/s", True, "{:,.1f}", **_vs_all(1.0, ">=pyepics, >=caproto")),
            Metric("rate", "cagets/s", True, "{:,.2f}"),
        ),
        waveform_params("wf1m", 1_000_000, 20, 3, 30.0),
        "caget() of a full 1,000,000-double waveform (not monitored: a read each time)",
    ),
    Scenario(
        "caput_wait",
        "testdb",
        "caput_wait",
        (
            Metric("rate", "puts/s", True, **_vs_all(1.0, ">=pyepics, >=caproto")),
            latency_metric("put"),
        ),
        sequential_params("ao", 1000, 100, 20),
        "sequential caput(wait=True) to an ao record",
    ),
    Scenario(
        "caput_many_nowait",
        "ai10k",
        "caput_many",
        _PUT_MANY_METRICS,
        lambda ioc, q: {"names": _numbered(ioc, 1_000), "wait": False, "rounds": 5, "timeout": 30.0},
        "caput_many() of 1000 PVs with wait=False (after one call that connects them)",
    ),
    Scenario(
        "caput_many_all",
        "ai10k",
        "caput_many",
        _PUT_MANY_METRICS,
        lambda ioc, q: {"names": _numbered(ioc, 1_000), "wait": "all", "rounds": 5, "timeout": 30.0},
        "caput_many() of 1000 PVs with wait='all' (after one call that connects them)",
    ),
    Scenario(
        "mem_per_pv_10k",
        "ai10k",
        "mem_per_pv",
        (
            Metric("bytes_per_pv", "RSS bytes/PV", False, target=1.0, target_vs=("pyepics",), target_text="<=pyepics"),
            Metric("rss_after_mb", "RSS after MiB", False, "{:,.1f}"),
        ),
        mem_per_pv_params(10_000, 1_000),
        "(RSS after N auto-monitored PV objects have their values - RSS before) / N",
    ),
    Scenario(
        "reentrant_100",
        "calc1k",
        "reentrant",
        (
            Metric(
                "rate",
                "nested cagets/s",
                True,
                target_text=">=1000/s, no error",
                check=lambda v: isinstance(v, (int, float)) and v >= 1000 * 0.98,
            ),
            Metric("errors", "failed nested cagets", False, target_text="0", check=lambda v: v == 0),
        ),
        lambda ioc, q: {
            "names": _numbered(ioc, 100),
            "others": _numbered(ioc, 100, start=100),
            "hz": 10,
            "nested_timeout": 2.0,
            "duration": 3.0 if q else 10.0,
            "settle": 1.0,
            "timeout": 60.0,
            "skip_close": True,  # pyepics may still be stuck in its callbacks
        },
        "100 PVs at 10 Hz whose callbacks each caget() another PV (1000 nested cagets/s offered)",
    ),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


# ----------------------------------------------------------------------------- reporting
def target_status(metric: Metric, results: dict[str, RunResult]) -> str:
    """MET / MISSED (or FAIL, n/a, '') for compat's `metric` against its target."""
    return bench.target_status(metric, results, OURS)


def render_table(all_results: dict[str, dict[str, RunResult]], clients: tuple[str, ...], fail_width: int = 30) -> str:
    """tools.bench's table for the compat scenarios, with compat's advantage factors."""
    return bench.render_table(all_results, clients, fail_width, scenarios=SCENARIOS, ours=OURS)


def run(args: argparse.Namespace) -> dict[str, Any]:
    return bench.run_front_end(
        args,
        SCENARIOS,
        prog="tools.bench_compat",
        title="compat",
        vers=versions(),
        ours="'adv vs X' = compat's advantage factor (> 1, marked +, means compat is better)",
        render_table=render_table,
        module="tools._bench_compat_workers",
        waveform_worker="caget_big",
        progress_widths=(20, 8),
    )


def main(argv: list[str] | None = None) -> int:
    return bench.cli(
        argv,
        prog="python -m tools.bench_compat",
        doc=__doc__ or "",
        scenarios=SCENARIOS,
        clients=CLIENTS,
        default_timeout=DEFAULT_TIMEOUT,
        run_all=run,
    )


if __name__ == "__main__":
    sys.exit(main())
