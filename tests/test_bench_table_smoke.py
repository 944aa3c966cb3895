"""Smoke test of ``python -m tools.bench_table``: a tiny run prints well-formed markdown tables.

Speed is not asserted; only the shape: every selected row has a cell per
client, a number where the client applies, and the ratio and limit tables
have their columns.  The rendering is also checked on made-up results, so
that the table logic (factors, best peer, fractions of the limit) is tested
without running anything.
"""

from __future__ import annotations

import re
import time

import pytest
from bench_support import NUMBER, run_tool

from tools._bench_harness import RunResult
from tools._bench_table_render import Row, factor, render_markdown
from tools._bench_workers import WARMUP_SECONDS, warm_up
from tools.bench_table import ROWS, SCENARIOS

CLIENTS = ("caclient", "compat", "pyepics", "cothread", "floor")
RUN_ROWS = ("seq_get", "put_wait", "cold_caget")


def _tables(text: str) -> dict[str, list[list[str]]]:
    """Markdown tables by the '## ' heading above them: header, then rows (rule line dropped)."""
    out: dict[str, list[list[str]]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("|") and not re.match(r"^\|[-:|]+\|$", line):
            out.setdefault(heading, []).append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


@pytest.mark.timeout(420)
def test_bench_table_quick_runs_and_prints_its_tables() -> None:
    out = run_tool(
        "tools.bench_table", "--quick", "--only", *RUN_ROWS, "--clients", *CLIENTS, "--repeat", "1", timeout=400
    )
    tables = _tables(out)
    figures = tables["Figures"]
    assert figures[0] == ["workload", "unit", *CLIENTS]
    labels = [r.label for r in ROWS if r.scenario in RUN_ROWS]
    assert [row[0] for row in figures[1:]] == labels
    for row in figures[1:]:
        assert len(row) == 2 + len(CLIENTS), row
        for client, cell in zip(CLIENTS, row[2:], strict=True):
            applies = client != "floor" or not row[0].startswith("cold")
            if applies:
                assert NUMBER.match(cell), f"{row[0]} / {client}: {cell!r}\n{out}"
            else:
                assert cell == "-", f"{row[0]} / {client}: {cell!r}"
    factors = tables["Advantage factors (above 1: better than the peer)"]
    assert factors[0][:4] == ["workload", "best peer", "caclient vs best", "compat vs best"]
    assert "compat vs cothread" in factors[0]
    assert all(re.match(r"^\d+\.\d\dx$", c) for row in factors[1:] for c in row[2:]), factors
    limits = tables["Fraction of the limit (1.00 = as fast as the limit)"]
    assert limits[0] == ["workload", "limit", "caclient", "compat", "pyepics", "cothread"]
    assert [row[1].split()[:2] for row in limits[1:]] == [["raw", "socket"]] * 3  # reads/s, CPU, puts/s


@pytest.mark.timeout(200)
def test_bench_table_repeat_runs_in_rounds_and_keeps_each_best() -> None:
    out = run_tool("tools.bench_table", "--quick", "--only", "seq_get", "--clients", "caclient", "floor",
                   "--repeat", "2", timeout=180)  # fmt: skip
    runs = re.findall(r"running seq_get +(\w+) +(\d)/2 \.\.\. +[\d.]+s +rate=([\d,]+)", out)
    assert [(c, r) for c, r, _ in runs] == [("caclient", "1"), ("floor", "1"), ("caclient", "2"), ("floor", "2")], out
    for client in ("caclient", "floor"):
        rates = [int(rate.replace(",", "")) for c, _, rate in runs if c == client]
        best = re.search(rf"best of 2: seq_get +{client} +rate=([\d,]+)", out)
        assert best is not None, out
        assert int(best.group(1).replace(",", "")) == max(rates), out


def test_warm_up_lasts_its_count_and_its_time() -> None:
    calls: list[int] = []
    warm_up(calls.append, 3, 0.0)
    assert calls == [0, 1, 2]
    calls.clear()
    t0 = time.perf_counter()
    warm_up(calls.append, 1, 0.05)
    assert time.perf_counter() - t0 >= 0.05
    assert calls == list(range(len(calls))) and len(calls) > 1


class _Names:
    """Enough of an IOC handle for the scenarios' parameter functions (names only)."""

    def pv(self, name: str) -> str:
        return "P:" + name


def test_timed_rows_warm_up_for_a_time_as_well_as_a_count() -> None:
    timed = [sc for sc in SCENARIOS if sc.worker in ("seq_get", "put_wait", "threads_get", "waveform")]
    assert {sc.name for sc in timed} == {"seq_get", "put_wait", "threads_get", "waveform_1m", "waveform_10m"}
    for sc in timed:
        assert sc.params(_Names(), False)["warmup_s"] == WARMUP_SECONDS, sc.name  # type: ignore[arg-type]
        assert 0 < sc.params(_Names(), True)["warmup_s"] < WARMUP_SECONDS, sc.name  # type: ignore[arg-type]


def test_bench_table_lists_every_row() -> None:
    out = run_tool("tools.bench_table", "--list", timeout=60)
    for sc in SCENARIOS:
        assert sc.name in out
    assert {r.scenario for r in ROWS} == {sc.name for sc in SCENARIOS}


def test_render_factors_and_fractions() -> None:
    rows = (
        Row("seq", "rate", "reads", "reads/s", True),
        Row("seq", "cpu", "cpu", "us", False, "{:,.1f}"),
    )
    ok = {
        "caclient": {"rate": 2000.0, "cpu": 50.0},
        "pyepics": {"rate": 1000.0, "cpu": 100.0},
        "caproto": {"rate": 500.0, "cpu": 25.0},
        "floor": {"rate": 4000.0, "cpu": 10.0},
    }
    results = {"seq": {c: RunResult(True, metrics=m) for c, m in ok.items()}}
    results["seq"]["compat"] = RunResult(False, error="boom")
    clients = ("caclient", "compat", "pyepics", "caproto", "floor")
    text = render_markdown(results, rows, clients, (), limit_of={"seq": ("floor",)})
    tables = _tables(text)
    assert tables["Figures"][1] == ["reads", "reads/s", "2,000", "FAIL", "1,000", "500", "4,000"]
    assert tables["Figures"][2] == ["cpu", "us", "50.0", "FAIL", "100.0", "25.0", "10.0"]
    factors = tables["Advantage factors (above 1: better than the peer)"]
    assert factors[1][:4] == ["reads", "pyepics 1,000", "2.00x", "-"]
    assert factors[2][:3] == ["cpu", "caproto 25.0", "0.50x"]  # lower is better: 25/50
    assert "- seq / compat: FAIL: boom" in text
    limits = tables["Fraction of the limit (1.00 = as fast as the limit)"]
    assert limits[1] == ["reads", "raw socket 4,000 reads/s", "0.50", "-", "0.25", "0.12"]
    assert limits[2] == ["cpu", "raw socket 10.0 us", "0.20", "-", "0.10", "0.40"]
    assert factor(rows[0], 1.0, None) is None and factor(rows[1], 10.0, 5.0) == 0.5


@pytest.mark.timeout(30)
def test_timed_run_returns_output_and_kills_on_timeout() -> None:
    """The cold-process timer: output and status come back; a child past its timeout is killed, not waited for."""
    import subprocess
    import sys

    from tools._bench_workers import timed_run

    elapsed, status, out, err = timed_run(
        [sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"],
        20,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert (status, out, err) == (3, "hi\n", "") and elapsed > 0
    with pytest.raises(subprocess.TimeoutExpired):
        timed_run([sys.executable, "-c", "import time; time.sleep(60)"], 0.5)
