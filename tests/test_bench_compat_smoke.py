"""Smoke test of ``python -m tools.bench_compat --quick``: it runs end to end and prints a table.

Speed is not asserted here; only that each client produced a number.
"""

from __future__ import annotations

import pytest
from bench_support import assert_client_numbers, run_tool, table_rows

CLIENTS = ("compat", "pyepics")
SCENARIOS = ("seq_get", "caput_wait")


@pytest.mark.timeout(360)
def test_bench_compat_quick_runs() -> None:
    out = run_tool("tools.bench_compat", "--quick", "--only", *SCENARIOS, "--clients", *CLIENTS, timeout=300)
    header, rows = table_rows(out, CLIENTS, SCENARIOS)
    assert_client_numbers(out, header, rows, CLIENTS)


def test_bench_compat_lists_its_scenarios() -> None:
    out = run_tool("tools.bench_compat", "--list", timeout=60)
    assert "cold_caget_many_10k" in out and "reentrant_100" in out
