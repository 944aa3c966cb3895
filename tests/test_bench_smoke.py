"""Smoke test of the benchmark tool: ``python -m tools.bench --quick``.

The benchmark must run end to end for all three clients (caclient, caproto,
pyepics) and print a table with a number for each of them.  Speed is not
asserted here.
"""

from __future__ import annotations

import pytest
from bench_support import assert_client_numbers, run_tool, table_rows

CLIENTS = ("caclient", "caproto", "pyepics")
SCENARIOS = ("seq_read", "put_wait")


@pytest.mark.timeout(360)
def test_bench_quick_runs_all_clients() -> None:
    out = run_tool("tools.bench", "--quick", "--only", *SCENARIOS, timeout=300)
    header, rows = table_rows(out, CLIENTS, SCENARIOS)
    for row in rows.values():
        assert len(row) == len(header), f"cannot parse row {row!r} against header {header!r}"
    assert_client_numbers(out, header, rows, CLIENTS)
