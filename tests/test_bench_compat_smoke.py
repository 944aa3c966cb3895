"""Smoke test of ``python -m tools.bench_compat --quick``: it runs end to end and prints a table.

Speed is not asserted here; only that each client produced a number.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("compat", "pyepics")
SCENARIOS = ("seq_get", "caput_wait")
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


@pytest.mark.timeout(360)
def test_bench_compat_quick_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench_compat", "--quick", "--only", *SCENARIOS, "--clients", *CLIENTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{out}\n{proc.stderr}"
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("scenario") and all(c in ln for c in CLIENTS))
    header = re.split(r"\s{2,}", lines[start].strip())
    for scenario in SCENARIOS:
        row = next(ln for ln in lines[start:] if ln.startswith(scenario + " "))
        cells = re.split(r"\s{2,}", row.strip())
        for client in CLIENTS:
            cell = cells[header.index(client)]
            assert NUMBER.match(cell) and float(cell.replace(",", "")) > 0, f"{scenario}/{client}: {cell!r}\n{out}"


def test_bench_compat_lists_its_scenarios() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench_compat", "--list"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "cold_caget_many_10k" in proc.stdout and "reentrant_100" in proc.stdout
