"""Smoke test of the benchmark tool: ``python -m tools.bench --quick``.

The benchmark must run end to end for all three clients (caclient, caproto,
pyepics) and print a table with a number for each of them.  Speed is not
asserted here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("caclient", "caproto", "pyepics")
SCENARIOS = ("seq_read", "put_wait")
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def _split(line: str) -> list[str]:
    """Cells of a table line (columns are separated by two or more spaces)."""
    return re.split(r"\s{2,}", line.strip())


@pytest.mark.timeout(360)
def test_bench_quick_runs_all_clients() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--quick", "--only", *SCENARIOS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit code {proc.returncode}\n--- stdout ---\n{out}\n--- stderr ---\n{proc.stderr}"

    lines = out.splitlines()
    header_idx = next(
        (i for i, ln in enumerate(lines) if ln.startswith("scenario") and all(c in ln for c in CLIENTS)),
        None,
    )
    assert header_idx is not None, f"no table header with {CLIENTS} in:\n{out}"
    header = _split(lines[header_idx])
    columns = {c: header.index(c) for c in CLIENTS}

    for scenario in SCENARIOS:
        row = next((ln for ln in lines[header_idx:] if ln.startswith(scenario + " ")), None)
        assert row is not None, f"no table row for {scenario}:\n{out}"
        cells = _split(row)
        assert len(cells) == len(header), f"cannot parse row {row!r} against header {header!r}"
        for client, col in columns.items():
            cell = cells[col]
            assert NUMBER.match(cell), f"{scenario}/{client}: expected a number, got {cell!r}\n{out}"
            assert float(cell.replace(",", "")) > 0, f"{scenario}/{client}: {cell!r}"
