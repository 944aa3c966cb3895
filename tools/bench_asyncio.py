"""Benchmark caclient.asyncio against caproto's asyncio client and aioca.

Usage::

    python -m tools.bench_asyncio [--quick] [--only NAME ...] [--json out.json]
                                  [--clients caclient caproto aioca compat-aioca] [--timeout S]

Like :mod:`tools.bench` (whose harness it uses): the EPICS C soft IOC(s) run
on the loopback interface, every scenario runs once per client in a fresh
child process (:mod:`tools._bench_asyncio_workers`) with the IOC's
loopback-only environment, and the table shows each figure with
caclient.asyncio's advantage factor against caproto's asyncio client and
aioca (above 1 means caclient is better) and the target from the asyncio
issue.  The ``compat-aioca`` column runs this project's ``compat.aioca``
through the same calls as ``aioca``; it reads FAIL until that module exists.

Scenarios: gather_read_1k, seq_read, monitor_10k_callbacks, monitor_10k_iter,
waveform_1m (see ``--list``).  The monitor scenarios also report the event
loop's lag (p99 and max of a 10 ms ticker) while the updates flow.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tools import _bench_report, bench
from tools._bench_asyncio_workers import CLIENTS
from tools.bench import (
    Metric,
    RunResult,
    Scenario,
    _n,
    _numbered,
    latency_metric,
    monitor_params,
    sequential_params,
    versions,
    waveform_params,
)

OURS = "caclient"
OTHERS = ("caproto", "aioca", "compat-aioca")
DEFAULT_TIMEOUT = 180.0


def _beat_both(text: str = "beat both") -> dict[str, Any]:
    return {"target": 1.0, "target_vs": ("caproto", "aioca"), "target_text": text}


def _monitor_metrics() -> tuple[Metric, ...]:
    return (
        Metric("updates_per_s", "updates/s delivered", True, **_beat_both()),
        Metric("us_per_update", "CPU us/update", False, "{:,.1f}", 2.0, ("aioca",), "<=0.5x aioca"),
        Metric("lag_p99_ms", "loop lag p99 ms", False, "{:,.1f}", target_text="report"),
        Metric("lag_max_ms", "loop lag max ms", False, "{:,.1f}"),
        Metric("cpu_pct", "client CPU %", False, "{:,.1f}"),
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "gather_read_1k",
        "ai10k",
        "gather_read",
        (
            Metric("rate", "reads/s", True, **_beat_both()),
            Metric("round_ms", "ms per gather of 1000", False, "{:,.1f}"),
        ),
        lambda ioc, q: {"names": _numbered(ioc, 1_000), "rounds": _n(q, 20, 3), "timeout": 60.0},
        "asyncio.gather of 1000 reads of 1000 connected ai records, repeated",
    ),
    Scenario(
        "seq_read",
        "testdb",
        "seq_read",
        (Metric("rate", "reads/s", True, **_beat_both()), latency_metric("read")),
        sequential_params("ai", 2000, 200, 50),
        "sequential awaited reads of one connected PV",
    ),
    Scenario(
        "monitor_10k_callbacks",
        "calc10k",
        "monitor_callbacks",
        _monitor_metrics(),
        monitor_params(10_000, 1_000, 120.0),
        "N calc records at 10 Hz into plain (coroutine-free) callbacks; CPU time / updates, loop lag",
        timeout_factor=1.5,
    ),
    Scenario(
        "monitor_10k_iter",
        "calc10k",
        "monitor_iter",
        _monitor_metrics(),
        monitor_params(10_000, 1_000, 120.0),
        "N calc records at 10 Hz, one 'async for' consumer task per PV (aioca: callback -> asyncio.Queue -> task)",
        timeout_factor=1.5,
    ),
    Scenario(
        "waveform_1m",
        "testdb",
        "waveform",
        (Metric("mbps", "MB/s", True, "{:,.1f}", **_beat_both()), Metric("rate", "reads/s", True, "{:,.2f}")),
        waveform_params("wf1m", 1_000_000, 20, 3, 30.0),
        "awaited reads of a full 1,000,000-double waveform",
    ),
)
SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


# ----------------------------------------------------------------------------- reporting
def target_status(metric: Metric, results: dict[str, RunResult]) -> str:
    """MET / MISSED (or FAIL, n/a, '') for caclient.asyncio's `metric` against its target."""
    return bench.target_status(metric, results, OURS)


def render_table(all_results: dict[str, dict[str, RunResult]], clients: tuple[str, ...], fail_width: int = 30) -> str:
    """A row per metric, a column per client, caclient's advantage against each other client, the target."""
    others = [c for c in OTHERS if c in clients]
    header = ["scenario", "metric (better)", *clients, *(f"adv vs {o}" for o in others), "target", "status"]
    rows: list[list[str]] = []
    for sc in SCENARIOS:
        results = all_results.get(sc.name)
        if results is None:
            continue
        mine = results.get(OURS)
        for i, m in enumerate(sc.metrics):
            advs = []
            for other in others:
                r = results.get(other)
                if mine is None or r is None or not mine.ok or not r.ok:
                    advs.append("-")
                else:
                    advs.append(
                        _bench_report._fmt_adv(bench.advantage(m, mine.metrics.get(m.key), r.metrics.get(m.key)))
                    )
            rows.append(
                [
                    sc.name if i == 0 else "",
                    f"{m.label} ({'higher' if m.higher_is_better else 'lower'})",
                    *(_bench_report._cell(m, results.get(c), fail_width) for c in clients),
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
    vers = versions()
    for dist in ("aioca",):
        try:
            import importlib.metadata

            vers[dist] = importlib.metadata.version(dist)
        except Exception:
            vers[dist] = "missing"
    return bench.run_front_end(
        args,
        SCENARIOS,
        prog="tools.bench_asyncio",
        title="asyncio",
        vers=vers,
        ours="'adv vs X' = caclient.asyncio's advantage factor (> 1, marked +, means caclient is better)",
        render_table=render_table,
        module="tools._bench_asyncio_workers",
        waveform_worker="waveform",
        progress_widths=(22, 12),
    )


def main(argv: list[str] | None = None) -> int:
    return bench.cli(
        argv,
        prog="python -m tools.bench_asyncio",
        doc=__doc__ or "",
        scenarios=SCENARIOS,
        clients=CLIENTS,
        default_timeout=DEFAULT_TIMEOUT,
        run_all=run,
    )


if __name__ == "__main__":
    sys.exit(main())
