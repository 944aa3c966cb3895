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
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from caclient.testing import IOCHandle
from tools import bench
from tools._bench_compat_workers import CLIENTS
from tools.bench import (
    GIB,
    WF_FIRST,
    Metric,
    RunResult,
    _fmt_adv,
    _fmt_value,
    _prepare_waveforms,
    advantage,
    best_of,
    ioc_manager,
    versions,
)

OURS = "compat"
DEFAULT_TIMEOUT = 180.0
DEFAULT_MEM_LIMIT_GIB = 6.0


@dataclass(frozen=True)
class Scenario:
    name: str
    ioc: str  # key of tools.bench's IOC specs: testdb, ai10k, calc1k, calc10k
    worker: str
    metrics: tuple[Metric, ...]
    params: Callable[[IOCHandle, bool], dict[str, Any]]
    description: str


def _names(ioc: IOCHandle, n: int, start: int = 0) -> list[str]:
    return [ioc.pv(f"n{i}") for i in range(start, start + n)]


def _n(quick: bool, full: int, small: int) -> int:
    return small if quick else full


def _vs_all(target: float, text: str) -> dict[str, Any]:
    return {"target": target, "target_vs": ("pyepics", "caproto"), "target_text": text}


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "cold_caget_many_10k",
        "ai10k",
        "cold_caget_many",
        (
            Metric("rate", "PVs/s", True, target=2.0, target_vs=("pyepics",), target_text=">=2x pyepics"),
            Metric("elapsed_s", "total s", False, "{:,.2f}"),
        ),
        lambda ioc, q: {"names": _names(ioc, _n(q, 10_000, 1_000)), "timeout": 60.0},
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
        lambda ioc, q: {"names": _names(ioc, 1_000), "rounds": 10, "timeout": 30.0},
        "caget_many() of the same 1000 PVs ten times in one process",
    ),
    Scenario(
        "seq_get",
        "testdb",
        "seq_get",
        (
            Metric("rate", "gets/s", True, **_vs_all(1.0, ">=pyepics, >=caproto")),
            Metric("latency_us", "us/get", False, "{:,.1f}"),
        ),
        lambda ioc, q: {"name": ioc.pv("ai"), "n": _n(q, 2000, 200), "warmup": 50, "timeout": 5.0},
        "sequential PV.get(use_monitor=False) of one connected PV",
    ),
    Scenario(
        "monitor_cpu_1k",
        "calc1k",
        "monitor_cpu",
        (
            Metric("us_per_update", "CPU us/update", False, "{:,.1f}", 2.5, ("pyepics",), "<=0.4x pyepics"),
            Metric("updates_per_s", "updates/s", True),
            Metric("cpu_pct", "client CPU %", False, "{:,.1f}"),
        ),
        lambda ioc, q: {
            "names": _names(ioc, _n(q, 1_000, 100)),
            "hz": 10,
            "duration": 2.0 if q else 10.0,
            "settle": 0.5 if q else 1.0,
            "timeout": 60.0,
        },
        "N PV objects with a callback, calc records at 10 Hz: process CPU time / updates",
    ),
    Scenario(
        "monitor_cpu_10k",
        "calc10k",
        "monitor_cpu",
        (
            Metric("us_per_update", "CPU us/update", False, "{:,.1f}", 2.5, ("pyepics",), "<=0.4x pyepics"),
            Metric("updates_per_s", "updates/s", True, **_vs_all(1.0, ">=pyepics, >=caproto")),
            Metric("cpu_pct", "client CPU %", False, "{:,.1f}"),
        ),
        lambda ioc, q: {
            "names": _names(ioc, _n(q, 10_000, 1_000)),
            "hz": 10,
            "duration": 2.0 if q else 10.0,
            "settle": 0.5 if q else 1.0,
            "timeout": 120.0,
        },
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
        lambda ioc, q: {
            "name": ioc.pv("wf1m"),
            "nelm": 1_000_000,
            "n": _n(q, 20, 3),
            "expected_last": (1_000_000 - 1) * 0.5 + WF_FIRST,
            "timeout": 30.0,
        },
        "caget() of a full 1,000,000-double waveform (not monitored: a read each time)",
    ),
    Scenario(
        "caput_wait",
        "testdb",
        "caput_wait",
        (
            Metric("rate", "puts/s", True, **_vs_all(1.0, ">=pyepics, >=caproto")),
            Metric("latency_us", "us/put", False, "{:,.1f}"),
        ),
        lambda ioc, q: {"name": ioc.pv("ao"), "n": _n(q, 1000, 100), "warmup": 20, "timeout": 5.0},
        "sequential caput(wait=True) to an ao record",
    ),
    Scenario(
        "caput_many_nowait",
        "ai10k",
        "caput_many",
        (
            Metric("rate", "puts/s", True, target=1.5, target_vs=("pyepics",), target_text=">=1.5x pyepics"),
            Metric("round_ms", "ms per call", False, "{:,.1f}"),
        ),
        lambda ioc, q: {"names": _names(ioc, 1_000), "wait": False, "rounds": 5, "timeout": 30.0},
        "caput_many() of 1000 PVs with wait=False (after one call that connects them)",
    ),
    Scenario(
        "caput_many_all",
        "ai10k",
        "caput_many",
        (
            Metric("rate", "puts/s", True, target=1.5, target_vs=("pyepics",), target_text=">=1.5x pyepics"),
            Metric("round_ms", "ms per call", False, "{:,.1f}"),
        ),
        lambda ioc, q: {"names": _names(ioc, 1_000), "wait": "all", "rounds": 5, "timeout": 30.0},
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
        lambda ioc, q: {
            "warmup_names": [ioc.pv("n0")],
            "names": _names(ioc, _n(q, 10_000, 1_000), start=1),
            "settle": 1.0,
            "timeout": 90.0,
        },
        "(RSS after N auto-monitored PV objects have their values - RSS before) / N",
    ),
    Scenario(
        "reentrant_100",
        "calc1k",
        "reentrant",
        (
            Metric("rate", "nested cagets/s", True, target_text=">=1000/s, no error"),
            Metric("errors", "failed nested cagets", False, target_text="0"),
        ),
        lambda ioc, q: {
            "names": _names(ioc, 100),
            "others": _names(ioc, 100, start=100),
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


# ----------------------------------------------------------------------------- children
def run_child(worker: str, client: str, params: dict[str, Any], ioc: IOCHandle, timeout: float, mem: int) -> RunResult:
    """Run one compat scenario for one client in a fresh process; never raises."""
    return bench.run_child(worker, client, params, ioc, timeout, mem, module="tools._bench_compat_workers")


# ----------------------------------------------------------------------------- reporting
def target_status(metric: Metric, results: dict[str, RunResult]) -> str:
    ours = results.get(OURS)
    if not metric.target_text:
        return ""
    if ours is None or not ours.ok:
        return "FAIL" if ours is not None else "n/a"
    value = ours.metrics.get(metric.key)
    if metric.key == "errors":
        return "MET" if value == 0 else "MISSED"
    if metric.target is None:
        if metric.key == "rate" and "nested" in metric.label:
            return "MET" if isinstance(value, (int, float)) and value >= 1000 * 0.98 else "MISSED"
        return ""
    advs = []
    for other in metric.target_vs:
        r = results.get(other)
        if r is None:
            continue
        if not r.ok:
            advs.append(math.inf)
            continue
        a = advantage(metric, value, r.metrics.get(metric.key))
        if a is None:
            return "n/a"
        advs.append(a)
    if not advs:
        return "n/a"
    return "MET" if min(advs) >= metric.target else "MISSED"


def render_table(all_results: dict[str, dict[str, RunResult]], clients: tuple[str, ...], fail_width: int = 30) -> str:
    header = ["scenario", "metric (better)", *clients, "adv vs pyepics", "adv vs caproto", "target", "status"]
    rows: list[list[str]] = []
    for sc in SCENARIOS:
        results = all_results.get(sc.name)
        if results is None:
            continue
        for i, m in enumerate(sc.metrics):
            ours = results.get(OURS)
            advs = []
            for other in ("pyepics", "caproto"):
                r = results.get(other)
                if ours is None or r is None or not ours.ok or not r.ok:
                    advs.append("-")
                else:
                    advs.append(_fmt_adv(advantage(m, ours.metrics.get(m.key), r.metrics.get(m.key))))
            cells = []
            for c in clients:
                r = results.get(c)
                if r is None:
                    cells.append("(not run)")
                elif not r.ok:
                    text = "FAIL: " + r.error
                    cells.append(text if len(text) <= fail_width else text[: fail_width - 3] + "...")
                else:
                    cells.append(_fmt_value(m, r.metrics.get(m.key, "-")))
            direction = "higher" if m.higher_is_better else "lower"
            rows.append(
                [
                    sc.name if i == 0 else "",
                    f"{m.label} ({direction})",
                    *cells,
                    *advs,
                    m.target_text,
                    target_status(m, results),
                ]
            )
    widths = [max(len(header[j]), *(len(r[j]) for r in rows)) if rows else len(header[j]) for j in range(len(header))]
    numeric = set(range(2, len(header) - 2))

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(widths[j]) if j in numeric else c.ljust(widths[j]) for j, c in enumerate(cells))

    out = [line(header), "  ".join("-" * w for w in widths)]
    for k, row in enumerate(rows):
        if row[0] and k > 0:
            out.append("")
        out.append(line(row))
    return "\n".join(out)


def run(args: argparse.Namespace) -> dict[str, Any]:
    selected = [s for s in SCENARIOS if not args.only or s.name in args.only]
    clients = tuple(args.clients)
    vers = versions()
    cores = os.cpu_count() or 0
    print("compat benchmark (python -m tools.bench_compat" + (" --quick" if args.quick else "") + ")")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    print(f"{cores} CPU cores shared by the IOC and the client; loopback only; one fresh process per figure")
    print("'adv vs X' = compat's advantage factor (> 1, marked +, means compat is better)")
    print(flush=True)
    mem = int(args.mem_limit * GIB)
    all_results: dict[str, dict[str, RunResult]] = {}
    with ioc_manager(args.quick) as get_ioc:
        for sc in selected:
            results: dict[str, RunResult] = {}
            all_results[sc.name] = results
            try:
                ioc = get_ioc(sc.ioc)
            except Exception as exc:
                for c in clients:
                    results[c] = RunResult(False, error=f"IOC did not start: {exc}"[:300])
                continue
            setup_error = None
            if sc.worker == "caget_big":
                setup_error = _prepare_waveforms(ioc, get_ioc.state, args)  # type: ignore[attr-defined]
            params = sc.params(ioc, args.quick)
            for c in clients:
                if setup_error:
                    results[c] = RunResult(False, error=setup_error)
                    continue
                print(f"  running {sc.name:<20} {c:<8} ...", end="", flush=True)
                runs = [run_child(sc.worker, c, params, ioc, args.timeout, mem) for _ in range(args.repeat)]
                r = results[c] = best_of(runs, sc.metrics[0])
                shown = (
                    ", ".join(f"{m.key}={_fmt_value(m, r.metrics.get(m.key))}" for m in sc.metrics[:2])
                    if r.ok
                    else "FAIL: " + r.error[:120]
                )
                print(f" {r.wall_s:6.1f}s  {shown}", flush=True)
    print()
    print(render_table(all_results, clients))
    notes = [
        f"  {name} / {client}: " + ("; ".join(r.notes) if r.ok else f"FAIL: {r.error} {r.info.get('stderr_tail', '')}")
        for name, res in all_results.items()
        for client, r in res.items()
        if r.notes or not r.ok
    ]
    if notes:
        print("\nfailures and notes:")
        print("\n".join(notes))
    print("\nscenario details:")
    for sc in selected:
        print(f"  {sc.name}: {sc.description}")
    return {
        "versions": vers,
        "cpu_count": cores,
        "quick": args.quick,
        "scenarios": {name: {c: r.as_json() for c, r in res.items()} for name, res in all_results.items()},
    }


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
