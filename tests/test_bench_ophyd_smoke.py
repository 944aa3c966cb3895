"""Smoke test of ``python -m tools.bench_ophyd --quick``: it runs end to end and prints a table.

Speed is not asserted here; only that ophyd on each client produced a number.
"""

from __future__ import annotations

import pytest
from bench_support import assert_client_numbers, run_tool, table_rows

pytest.importorskip("ophyd")
pytest.importorskip("bluesky")

CLIENTS = ("compat", "pyepics")
SCENARIOS = ("device_1k_connect", "count_1k_x10", "subs_100_10hz")


@pytest.mark.timeout(400)
def test_bench_ophyd_quick_runs() -> None:
    out = run_tool("tools.bench_ophyd", "--quick", "--clients", *CLIENTS, timeout=360)
    header, rows = table_rows(out, CLIENTS, SCENARIOS)
    assert_client_numbers(out, header, rows, CLIENTS)


def test_bench_ophyd_lists_its_scenarios() -> None:
    out = run_tool("tools.bench_ophyd", "--list", timeout=60)
    assert all(name in out for name in SCENARIOS)
