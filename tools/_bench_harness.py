"""The parent side shared by the benchmark tools: scenarios, IOCs, child processes, the command line.

A *scenario* names a worker (a function in a child module such as
:mod:`tools._bench_workers`), the IOC it needs and the metrics it reports.
:func:`run_scenarios` starts each IOC once, runs every scenario for every
client in a fresh child process (:func:`run_child`: wall-clock timeout,
memory limit, never raises) and collects one :class:`RunResult` each.
:func:`cli` is the command line the tools share.  Rendering lives in
:mod:`tools._bench_report`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from caclient.testing import EpicsIOC, IOCHandle, make_numbered_db
from tools._bench_report import _fmt_value
from tools._bench_workers import CLOSE_MARK, RESULT_MARK, WARMUP_SECONDS

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30
DEFAULT_MEM_LIMIT_GIB = 6.0
CLOSE_GRACE = 30.0  # seconds a child may spend closing its client after its result
WF_FIRST = 1.0  # the waveforms hold arange(n) * 0.5 + 1.0

# ----------------------------------------------------------------------------- scenario table
ParamsFn = Callable[[IOCHandle, bool], dict[str, Any]]  # (ioc, quick) -> the child's parameters


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    fmt: str = "{:,.0f}"
    # Target: caclient's advantage factor (>1 = better) against these clients.
    target: float | None = None
    target_vs: tuple[str, ...] = ()
    target_text: str = ""
    # An absolute target on our own value (a flag, a count), checked instead of `target`.
    check: Callable[[Any], bool] | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    ioc: str  # key into IOC_SPECS
    worker: str  # scenario name in tools._bench_workers
    metrics: tuple[Metric, ...]
    params: ParamsFn
    description: str
    timeout_factor: float = 1.0
    notes: tuple[str, ...] = field(default=())
    # The clients this scenario applies to (empty: every client); others are left out, not failed.
    clients: tuple[str, ...] = ()


def _numbered(ioc: IOCHandle, n: int, start: int = 0) -> list[str]:
    return [ioc.pv(f"n{i}") for i in range(start, start + n)]


def _n(quick: bool, full: int, q: int) -> int:
    return q if quick else full


def warmup_s(quick: bool) -> float:
    """Seconds a timed loop warms up for at least (see tools._bench_workers.WARMUP_SECONDS; short with --quick)."""
    return 0.05 if quick else WARMUP_SECONDS


def sequential_params(pv: str, full: int, small: int, warmup: int) -> ParamsFn:
    """Parameters of a sequential scenario: `warmup` calls and `warmup_s`, then `full` (or `small`) round trips."""
    return lambda ioc, q: {
        "name": ioc.pv(pv),
        "n": _n(q, full, small),
        "warmup": warmup,
        "warmup_s": warmup_s(q),
        "timeout": 5.0,
    }


def latency_metric(what: str) -> Metric:
    """Microseconds per sequential `what` (lower is better)."""
    return Metric("latency_us", f"us/{what}", False, "{:,.1f}")


def monitor_params(full: int, small: int, timeout: float) -> ParamsFn:
    """Parameters of a monitor scenario: `full` (or `small` with --quick) calc records at 10 Hz."""
    return lambda ioc, q: {
        "names": _numbered(ioc, _n(q, full, small)),
        "hz": 10,
        "duration": 10.0 if not q else 2.0,
        "settle": 1.0 if not q else 0.5,
        "timeout": timeout,
    }


def waveform_params(pv: str, nelm: int, full: int, small: int, timeout: float) -> ParamsFn:
    """Parameters of a waveform scenario: `full` (or `small`) reads of the filled waveform `pv`."""
    return lambda ioc, q: {
        "name": ioc.pv(pv),
        "nelm": nelm,
        "n": _n(q, full, small),
        "expected_first": WF_FIRST,
        "expected_last": (nelm - 1) * 0.5 + WF_FIRST,
        "warmup_s": warmup_s(q),
        "timeout": timeout,
    }


def mem_per_pv_params(full: int, small: int) -> ParamsFn:
    """Parameters of a memory scenario: warm up on n0, then `full` (or `small`) PVs from n1 on."""
    return lambda ioc, q: {
        "warmup_names": [ioc.pv("n0")],
        "names": _numbered(ioc, _n(q, full, small), start=1),
        "settle": 1.0,
        "timeout": 90.0,
    }


# ----------------------------------------------------------------------------- IOCs
def _ioc_specs(quick: bool, workdir: str) -> dict[str, Callable[[], IOCHandle]]:
    def numbered(tag: str, n: int, kind: str, scan: str | None) -> Callable[[], IOCHandle]:
        def build() -> IOCHandle:
            path = make_numbered_db(os.path.join(workdir, f"{tag}.db"), n, kind=kind, scan=scan)
            return EpicsIOC(db_path=path)

        return build

    return {
        "testdb": lambda: EpicsIOC(),
        "calc100": numbered("calc100", 100, "calc", ".1 second"),
        "ai10k": numbered("ai10k", _n(quick, 10_001, 1_001), "ai", None),
        "calc1k": numbered("calc1k", _n(quick, 1_000, 100), "calc", ".1 second"),
        "calc10k": numbered("calc10k", _n(quick, 10_000, 1_000), "calc", ".1 second"),
    }


# ----------------------------------------------------------------------------- children
@dataclass
class RunResult:
    ok: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0
    peak_rss_parent_view_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "metrics": self.metrics,
            "info": self.info,
            "error": self.error,
            "wall_s": self.wall_s,
            "peak_rss_parent_view_mb": self.peak_rss_parent_view_mb,
            "notes": self.notes,
        }


def _child_env(ioc: IOCHandle) -> dict[str, str]:
    env = ioc.env  # loopback-only, with this IOC's private ports
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONSTARTUP", None)
    # A pip-installed package is byte-compiled at install time; a shell that sets
    # PYTHONDONTWRITEBYTECODE would make every cold process compile our modules
    # from source again (about half of caclient's import time) while the peers
    # read the .pyc files pip wrote for them.  Children write and reuse bytecode.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _parse_lines(text: str, mark: str) -> dict[str, Any] | None:
    found = None
    for line in text.splitlines():
        if line.startswith(mark):
            try:
                found = json.loads(line[len(mark) :])
            except ValueError:
                continue
    return found


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def run_child(
    worker: str,
    client: str,
    params: dict[str, Any],
    ioc: IOCHandle,
    timeout: float,
    mem_limit: int,
    module: str = "tools._bench_workers",
) -> RunResult:
    """Run one scenario for one client in a fresh process (``python -m module``); never raises."""
    import psutil

    params = dict(params, mem_limit=mem_limit)
    with (
        tempfile.NamedTemporaryFile("w", suffix=".json", prefix="caclient-bench-") as pfile,
        tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out,
        tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err,
    ):
        json.dump(params, pfile)  # 10k PV names do not fit in one argv string
        pfile.flush()
        argv = [sys.executable, "-m", module, worker, client, "@" + pfile.name]
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=str(ROOT),
                env=_child_env(ioc),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            return RunResult(False, error=f"could not start child: {exc}")
        descendants: set[int] = set()
        try:
            ps = psutil.Process(proc.pid)
        except psutil.Error:
            ps = None
        try:
            killed_for, peak = _watch(proc, ps, out, t0, timeout, mem_limit, descendants)
        except BaseException:
            _kill(proc)  # interrupted: never leave a child behind
            raise
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        _reap(descendants)
        wall = time.monotonic() - t0
        out.seek(0)
        stdout = out.read()
        err.seek(0)
        stderr = err.read()

    res = _parse_lines(stdout, RESULT_MARK)
    closing = _parse_lines(stdout, CLOSE_MARK)
    rr = RunResult(False, wall_s=wall, peak_rss_parent_view_mb=peak / 2**20)
    if res is not None and "metrics" in res:
        rr.ok = True
        rr.metrics = res["metrics"]
        rr.info = res.get("info", {})
        if closing is not None:
            rr.info["close_s"] = closing.get("close_s")
        if killed_for:
            rr.notes.append(f"{client}: result delivered, then killed: {killed_for}")
        elif closing is None:
            rr.notes.append(f"{client}: exited with code {proc.returncode} while closing: {_last_lines(stderr)}")
        return rr
    if res is not None and "error" in res:
        rr.error = res["error"]
    elif killed_for:
        rr.error = killed_for
    elif proc.returncode is not None and proc.returncode < 0:
        rr.error = f"killed by signal {-proc.returncode}: {_last_lines(stderr)}"
    else:
        rr.error = f"exit code {proc.returncode}: {_last_lines(stderr) or 'no output'}"
    if killed_for and killed_for not in rr.error:
        rr.error += f" ({killed_for})"
    tail = _last_lines(stderr, 6)
    if tail:
        rr.info["stderr_tail"] = tail
    return rr


def _watch(
    proc: subprocess.Popen[Any],
    ps: Any,
    out: IO[str],
    t0: float,
    timeout: float,
    mem_limit: int,
    descendants: set[int],
) -> tuple[str, int]:
    """Poll a running child; kill it on timeout, memory or a hung close.

    Returns why it was killed ('' when it exited by itself) and its peak RSS.
    """
    import psutil

    peak = 0
    result_at: float | None = None
    while proc.poll() is None:
        now = time.monotonic()
        if ps is not None:
            try:
                peak = max(peak, ps.memory_info().rss)
                descendants.update(c.pid for c in ps.children(recursive=True))
            except psutil.Error:
                pass
        if result_at is None:
            out.seek(0)
            if RESULT_MARK in out.read():
                result_at = now
        killed_for = ""
        if peak > mem_limit:
            killed_for = f"out of memory (RSS {peak / GIB:.1f} GiB > limit {mem_limit / GIB:.1f} GiB)"
        elif result_at is not None and now - result_at > CLOSE_GRACE:
            killed_for = f"client close() hung for more than {CLOSE_GRACE:.0f}s"
        elif now - t0 > timeout:
            killed_for = f"timeout after {timeout:g}s"
        if killed_for:
            _kill(proc)
            return killed_for, peak
        time.sleep(0.1)
    return "", peak


def _shown(sc: Any, r: RunResult) -> str:
    """A run's first two metrics, or its failure, for a progress line."""
    if not r.ok:
        return "FAIL: " + r.error[:120]
    return ", ".join(f"{m.key}={_fmt_value(m, r.metrics.get(m.key))}" for m in sc.metrics[:2])


def best_of(runs: list[RunResult], metric: Metric) -> RunResult:
    """The run with the best `metric`; failures count only when every run failed."""
    good = [r for r in runs if r.ok and isinstance(r.metrics.get(metric.key), (int, float))]
    if not good:
        return runs[0]
    pick = max if metric.higher_is_better else min
    best = pick(good, key=lambda r: r.metrics[metric.key])
    if len(runs) > 1:
        values = ", ".join(_fmt_value(metric, r.metrics.get(metric.key)) if r.ok else "FAIL" for r in runs)
        best.info["runs"] = values
        failed = [r.error for r in runs if not r.ok]
        if failed:
            best.notes.append(f"{len(failed)} of {len(runs)} runs failed, e.g. {failed[0]}")
    return best


def _kill(proc: subprocess.Popen[Any]) -> None:
    """Kill the child we started (and its process group, which is its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 9)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _reap(pids: set[int]) -> None:
    """Kill descendants of a child that outlived it (we started them; by pid)."""
    import psutil

    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            p.kill()


# ----------------------------------------------------------------------------- main
@contextlib.contextmanager
def ioc_manager(quick: bool) -> Iterator[Callable[[str], IOCHandle]]:
    """Yield ``get(key)``: start the IOC `key` (stopping the previous one) or reuse it."""
    with tempfile.TemporaryDirectory(prefix="caclient-bench-") as workdir:
        specs = _ioc_specs(quick, workdir)
        current: dict[str, Any] = {"key": None, "ioc": None}

        def get(key: str) -> IOCHandle:
            if current["key"] == key and current["ioc"] is not None and current["ioc"].running:
                return current["ioc"]  # type: ignore[no-any-return]
            if current["ioc"] is not None:
                current["ioc"].stop()
                current["ioc"] = None
            ioc = specs[key]()
            ioc.start(timeout=60.0)
            current["key"], current["ioc"] = key, ioc
            current["wf_ready"] = False
            return ioc

        get.state = current  # type: ignore[attr-defined]
        try:
            yield get
        finally:
            if current["ioc"] is not None:
                current["ioc"].stop()


def _prepare_waveforms(ioc: IOCHandle, state: dict[str, Any], args: argparse.Namespace) -> str | None:
    """Write full arrays into wf1m and wf10m (once per IOC); return an error text or None."""
    if state.get("wf_ready"):
        return None
    params = {"waveforms": [[ioc.pv("wf1m"), 1_000_000], [ioc.pv("wf10m"), 10_000_000]], "timeout": 60.0}
    r = run_child("setup_waveforms", "pyepics", params, ioc, args.timeout, int(args.mem_limit * GIB))
    if not r.ok:
        return f"waveform setup failed: {r.error}"
    state["wf_ready"] = True
    return None


def run_scenarios(
    args: argparse.Namespace,
    selected: Sequence[Scenario],
    *,
    module: str = "tools._bench_workers",
    waveform_worker: str = "waveform",
    progress_widths: tuple[int, int] = (18, 9),
    warn_dead_ioc: bool = True,
) -> dict[str, dict[str, RunResult]]:
    """Run every selected scenario for every client of ``args.clients``; print progress lines.

    Scenarios whose worker is `waveform_worker` get the big waveforms filled first.
    """
    clients = tuple(args.clients)
    all_results: dict[str, dict[str, RunResult]] = {}
    mem_limit = int(args.mem_limit * GIB)
    name_width, client_width = progress_widths
    with ioc_manager(args.quick) as get_ioc:
        for sc in selected:
            results: dict[str, RunResult] = {}
            all_results[sc.name] = results
            runnable = [c for c in clients if not sc.clients or c in sc.clients]
            try:
                ioc = get_ioc(sc.ioc)
            except Exception as exc:
                for c in runnable:
                    results[c] = RunResult(False, error=f"IOC did not start: {exc}"[:300])
                continue
            setup_error = None
            if sc.worker == waveform_worker:
                setup_error = _prepare_waveforms(ioc, get_ioc.state, args)  # type: ignore[attr-defined]
            params = sc.params(ioc, args.quick)
            if setup_error:
                for c in runnable:
                    results[c] = RunResult(False, error=setup_error)
                continue
            # With --repeat, the runs go in rounds (every client once, then
            # again): a slow spell of the shared machine then hits every
            # client alike instead of all the runs of one.
            runs: dict[str, list[RunResult]] = {c: [] for c in runnable}
            timeout = args.timeout * sc.timeout_factor
            for round_no in range(1, args.repeat + 1):
                for c in runnable:
                    label = f"{sc.name:<{name_width}} {c:<{client_width}}"
                    if args.repeat > 1:
                        label += f" {round_no}/{args.repeat}"
                    print(f"  running {label} ...", end="", flush=True)
                    r = run_child(sc.worker, c, params, ioc, timeout, mem_limit, module=module)
                    runs[c].append(r)
                    print(f" {r.wall_s:6.1f}s  {_shown(sc, r)}", flush=True)
                    if warn_dead_ioc and not ioc.running:
                        print(f"  WARNING: the IOC died during {sc.name}/{c}", flush=True)
            for c in runnable:
                r = results[c] = best_of(runs[c], sc.metrics[0])
                if args.repeat > 1:
                    print(f"  best of {args.repeat}: {sc.name:<{name_width}} {c:<{client_width}} {_shown(sc, r)}")
    return all_results


def cli(
    argv: list[str] | None,
    *,
    prog: str,
    doc: str,
    scenarios: Sequence[Any],
    clients: Sequence[str],
    default_timeout: float,
    run_all: Callable[[argparse.Namespace], dict[str, Any]],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """The command line shared by the benchmark tools: parse, run, print, write JSON."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    names = [sc.name for sc in scenarios]
    parser.add_argument("--quick", action="store_true", help="~10x smaller counts and durations (smoke run)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=names, help="run only these scenarios")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--clients", nargs="+", choices=clients, default=list(clients), help="clients to run")
    parser.add_argument("--timeout", type=float, default=default_timeout, help="hard wall-clock limit per child (s)")
    parser.add_argument("--mem-limit", type=float, default=DEFAULT_MEM_LIMIT_GIB, help="memory limit per child (GiB)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every client N times, in rounds (each client once, then again), and keep each one's best (default 1)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: running children are killed, the IOC stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.list:
        for sc in scenarios:
            print(f"{sc.name:<20} {sc.description}")
        return 0
    report = run_all(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, default=str)
        print(f"\nJSON written to {args.json}")
    return 0


def run_front_end(
    args: argparse.Namespace,
    scenarios: Sequence[Scenario],
    *,
    prog: str,
    title: str,
    vers: dict[str, str],
    ours: str,
    render_table: Callable[[dict[str, dict[str, RunResult]], tuple[str, ...]], str],
    module: str,
    waveform_worker: str = "waveform",
    progress_widths: tuple[int, int] = (18, 9),
) -> dict[str, Any]:
    """The ``run`` of the front ends that compare one facade (asyncio, compat, ophyd) with its peers.

    Prints the header (`title`, `vers`, whose advantage factor the table shows: `ours`),
    the progress lines, the table from `render_table`, the failures and notes and the
    scenario details; returns the JSON report.
    """
    selected = [s for s in scenarios if not args.only or s.name in args.only]
    clients = tuple(args.clients)
    cores = os.cpu_count() or 0
    print(f"{title} benchmark (python -m {prog}" + (" --quick" if args.quick else "") + ")")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    print(f"{cores} CPU cores shared by the IOC and the client; loopback only; one fresh process per figure")
    print(ours)
    print(flush=True)
    all_results = run_scenarios(
        args,
        selected,
        module=module,
        waveform_worker=waveform_worker,
        progress_widths=progress_widths,
        warn_dead_ioc=False,
    )
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
