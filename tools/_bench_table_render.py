"""The markdown of ``python -m tools.bench_table``: figures, advantage factors, fractions of the limit.

Pure functions of the collected :class:`~tools._bench_harness.RunResult`\\ s;
nothing here runs a benchmark.  A factor above 1 always means "better":
``ours/peer`` where higher is better, ``peer/ours`` where lower is better;
a fraction of the limit is ``figure/limit`` (or ``limit/figure``), so 1.0
would be a client as fast as the limit itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tools._bench_harness import RunResult, Scenario

OURS = ("caclient", "compat")
PEERS = ("pyepics", "caproto", "cothread")
LIMIT_NAMES = ("floor", "memcpy")
#: The limits each scenario is compared with (the pseudo-clients that measure them).
LIMIT_OF: dict[str, tuple[str, ...]] = {
    "seq_get": ("floor",),
    "put_wait": ("floor",),
    "threads_get": ("floor",),
    "waveform_1m": ("floor", "memcpy"),
    "waveform_10m": ("floor", "memcpy"),
}
_LIMIT_TEXT = {"floor": "raw socket", "memcpy": "memcpy"}

Results = dict[str, dict[str, RunResult]]


@dataclass(frozen=True)
class Row:
    """One line of the table: metric *key* of scenario *scenario*."""

    scenario: str
    key: str
    label: str
    unit: str
    higher_is_better: bool
    fmt: str = "{:,.0f}"


def _value(results: Results, row: Row, client: str) -> float | None:
    r = results.get(row.scenario, {}).get(client)
    if r is None or not r.ok:
        return None
    v = r.metrics.get(row.key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def factor(row: Row, ours: float | None, other: float | None) -> float | None:
    """How many times better *ours* is than *other* on this row (None when either is missing)."""
    if ours is None or other is None or ours <= 0 or other <= 0:
        return None
    return ours / other if row.higher_is_better else other / ours


def _fmt_factor(f: float | None) -> str:
    return "-" if f is None else f"{f:.2f}x"


def _cell(results: Results, row: Row, client: str, applies: bool) -> str:
    if not applies:
        return "-"
    r = results.get(row.scenario, {}).get(client)
    if r is None:
        return "(not run)"
    if not r.ok:
        return "FAIL"
    v = _value(results, row, client)
    return "?" if v is None else row.fmt.format(v)


def _table(header: list[str], lines: list[list[str]]) -> str:
    out = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|",
    ]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out)


def _applies(scenarios: dict[str, Scenario], row: Row, client: str) -> bool:
    sc = scenarios.get(row.scenario)
    return sc is None or not sc.clients or client in sc.clients


def figures_table(results: Results, rows: Sequence[Row], clients: Sequence[str], scenarios: dict[str, Scenario]) -> str:
    header = ["workload", "unit", *clients]
    lines = [
        [row.label, row.unit, *(_cell(results, row, c, _applies(scenarios, row, c)) for c in clients)]
        for row in rows
        if row.scenario in results
    ]
    return _table(header, lines)


def factors_table(results: Results, rows: Sequence[Row], clients: Sequence[str]) -> str:
    ours = [c for c in OURS if c in clients]
    peers = [c for c in PEERS if c in clients]
    header = ["workload", "best peer", *(f"{o} vs best" for o in ours)]
    header += [f"{o} vs {p}" for o in ours for p in peers]
    lines = []
    for row in rows:
        if row.scenario not in results:
            continue
        got = {p: _value(results, row, p) for p in peers}
        known = {p: v for p, v in got.items() if v is not None}
        best = None
        if known:
            best = (max if row.higher_is_better else min)(known, key=lambda p: known[p])
        cells = [row.label, f"{best} {row.fmt.format(known[best])}" if best else "-"]
        cells += [_fmt_factor(factor(row, _value(results, row, o), known.get(best or ""))) for o in ours]
        cells += [_fmt_factor(factor(row, _value(results, row, o), got[p])) for o in ours for p in peers]
        lines.append(cells)
    return _table(header, lines)


def limits_table(
    results: Results, rows: Sequence[Row], clients: Sequence[str], limit_of: Mapping[str, tuple[str, ...]]
) -> str:
    shown = [c for c in (*OURS, *PEERS) if c in clients]
    header = ["workload", "limit", *shown]
    lines = []
    for row in rows:
        for limit in limit_of.get(row.scenario, ()):
            lim = _value(results, row, limit)
            if row.scenario not in results or limit not in clients:
                continue
            text = f"{_LIMIT_TEXT[limit]} {row.fmt.format(lim)} {row.unit}" if lim is not None else f"{limit}: -"
            fractions = [factor(row, _value(results, row, c), lim) for c in shown]
            lines.append([row.label, text, *("-" if f is None else f"{f:.2f}" for f in fractions)])
    return _table(header, lines)


def failures(results: Results) -> list[str]:
    out = []
    for name, res in results.items():
        for client, r in res.items():
            if not r.ok:
                out.append(f"- {name} / {client}: FAIL: {r.error}")
            out.extend(f"- {name} / {client}: {note}" for note in r.notes)
    return out


def render_markdown(
    results: Results,
    rows: Sequence[Row],
    clients: Sequence[str],
    scenarios: Sequence[Scenario],
    limit_of: Mapping[str, tuple[str, ...]] = LIMIT_OF,
) -> str:
    """The three tables, the scenario descriptions and any failures, as markdown."""
    by_name = {sc.name: sc for sc in scenarios}
    parts = [
        "## Figures",
        "",
        figures_table(results, rows, clients, by_name),
        "",
        "## Advantage factors (above 1: better than the peer)",
        "",
        factors_table(results, rows, clients),
    ]
    if any(limit in clients for limit in LIMIT_NAMES):
        parts += [
            "",
            "## Fraction of the limit (1.00 = as fast as the limit)",
            "",
            limits_table(results, rows, clients, limit_of),
        ]
    parts += ["", "## What each row measures", ""]
    parts += [f"- `{sc.name}`: {sc.description}" for sc in scenarios if sc.name in results]
    parts += [
        "- limits: `floor` is a single-threaded Python loop on one blocking socket (send the request, "
        "receive the reply; arrays received into one buffer, not converted); `memcpy` is numpy copying "
        "the same number of bytes into a preallocated array."
    ]
    fails = failures(results)
    if fails:
        parts += ["", "## Failures and notes", "", *fails]
    return "\n".join(parts)
