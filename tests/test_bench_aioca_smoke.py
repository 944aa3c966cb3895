"""Smoke test of the aioca columns of the asyncio benchmark.

``python -m tools.bench_asyncio --quick`` must run end to end for real aioca
and for compat.aioca (driven by the same calls) on every scenario, and print
a number for each.  Speed is not asserted here.
"""

from __future__ import annotations

import pytest
from bench_support import assert_client_numbers, run_tool, table_rows

CLIENTS = ("aioca", "compat-aioca")
SCENARIOS = ("gather_read_1k", "seq_read", "monitor_10k_callbacks", "waveform_1m")


@pytest.mark.timeout(600)
def test_bench_asyncio_quick_runs_the_aioca_columns() -> None:
    out = run_tool("tools.bench_asyncio", "--quick", "--only", *SCENARIOS, "--clients", *CLIENTS, timeout=540)
    header, rows = table_rows(out, CLIENTS, SCENARIOS)
    for row in rows.values():
        assert len(row) == len(header), f"cannot parse row {row!r} against header {header!r}"
    assert_client_numbers(out, header, rows, CLIENTS)
    assert "FAIL" not in out
