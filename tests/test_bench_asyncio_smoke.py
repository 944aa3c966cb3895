"""Smoke test of the asyncio benchmark: ``python -m tools.bench_asyncio --quick``.

It must run end to end for caclient.asyncio, caproto's asyncio client and
aioca and print a table with a number for each.  Speed is not asserted here.
"""

from __future__ import annotations

import pytest
from bench_support import assert_client_numbers, run_tool, table_rows

CLIENTS = ("caclient", "caproto", "aioca")
SCENARIOS = ("seq_read", "monitor_10k_iter")


@pytest.mark.timeout(360)
def test_bench_asyncio_quick_runs_all_clients() -> None:
    out = run_tool("tools.bench_asyncio", "--quick", "--only", *SCENARIOS, "--clients", *CLIENTS, timeout=300)
    header, rows = table_rows(out, CLIENTS, SCENARIOS)
    for row in rows.values():
        assert len(row) == len(header), f"cannot parse row {row!r} against header {header!r}"
    assert_client_numbers(out, header, rows, CLIENTS)
    assert "loop lag p99 ms" in out
