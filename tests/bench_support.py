"""Helpers shared by the benchmark smoke tests: run a tool, read the numbers of its results table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")

Rows = dict[str, list[str]]  # scenario -> the cells of its row


def run_tool(module: str, *args: str, timeout: float) -> str:
    """Run ``python -m <module> <args>`` from the repository root; its stdout, after checking it succeeded."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit code {proc.returncode}\n--- stdout ---\n{out}\n--- stderr ---\n{proc.stderr}"
    return out


def split_cells(line: str) -> list[str]:
    """Cells of a table line (columns are separated by two or more spaces)."""
    return re.split(r"\s{2,}", line.strip())


def table_rows(out: str, clients: tuple[str, ...], scenarios: tuple[str, ...]) -> tuple[list[str], Rows]:
    """The header cells of the results table in *out*, and the cells of each scenario's first row."""
    lines = out.splitlines()
    start = next(
        (i for i, ln in enumerate(lines) if ln.startswith("scenario") and all(c in ln for c in clients)),
        None,
    )
    assert start is not None, f"no table header with {clients} in:\n{out}"
    rows: Rows = {}
    for scenario in scenarios:
        row = next((ln for ln in lines[start:] if ln.startswith(scenario + " ")), None)
        assert row is not None, f"no table row for {scenario}:\n{out}"
        rows[scenario] = split_cells(row)
    return split_cells(lines[start]), rows


def assert_client_numbers(out: str, header: list[str], rows: Rows, clients: tuple[str, ...]) -> None:
    """Each scenario's row holds a positive number in each client's column."""
    for scenario, cells in rows.items():
        for client in clients:
            cell = cells[header.index(client)]
            assert NUMBER.match(cell), f"{scenario}/{client}: expected a number, got {cell!r}\n{out}"
            assert float(cell.replace(",", "")) > 0, f"{scenario}/{client}: {cell!r}\n{out}"
