"""Rendering benchmark results: value formats, advantage factors, target status, the text table.

Ratios are *advantage* factors: ``ours/other`` for metrics where higher is
better and ``other/ours`` where lower is better, so a value above 1 always
means ours is better.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools._bench_harness import Metric, RunResult, Scenario


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("caproto", "pyepics", "cothread", "epicscorelibs", "numpy", "psutil"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "missing"
    try:
        import caclient

        out["caclient"] = caclient.__version__
    except Exception as exc:  # pragma: no cover - reported, not fatal
        out["caclient"] = f"import failed: {exc}"
    return out


def _fmt_value(metric: Metric, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return metric.fmt.format(value)
    return str(value)


def advantage(metric: Metric, ours: Any, other: Any) -> float | None:
    """caclient's advantage factor (>1 = caclient better), or None."""
    if isinstance(ours, bool) or isinstance(other, bool):
        return None
    if not isinstance(ours, (int, float)) or not isinstance(other, (int, float)):
        return None
    if metric.higher_is_better:
        return ours / other if other > 0 else None
    if ours <= 0:
        return math.inf if other > 0 else None
    return other / ours


def _fmt_adv(adv: float | None) -> str:
    if adv is None:
        return "-"
    if math.isinf(adv):
        return "inf"
    mark = "+" if adv > 1.0 else ("=" if adv == 1.0 else "-")
    return f"{adv:.2f}x{mark}"


def target_status(metric: Metric, results: dict[str, RunResult], ours: str = "caclient") -> str:
    """MET / MISSED (or FAIL, n/a, '') for `metric` of client `ours` against its target."""
    mine = results.get(ours)
    if not metric.target_text:
        return ""
    if mine is None:
        return "n/a"
    if not mine.ok:
        return "FAIL"
    value = mine.metrics.get(metric.key)
    if metric.check is not None:
        return "MET" if metric.check(value) else "MISSED"
    if metric.target is None:
        return ""
    advs = []
    for other in metric.target_vs:
        r = results.get(other)
        if r is None:
            continue
        if not r.ok:
            advs.append(math.inf)  # the other client failed where we did not
            continue
        a = advantage(metric, value, r.metrics.get(metric.key))
        if a is None:
            return "n/a"
        advs.append(a)
    if not advs:
        return "n/a"
    return "MET" if min(advs) >= metric.target else "MISSED"


def _cell(metric: Metric, r: RunResult | None, width: int) -> str:
    if r is None:
        return "(not run)"
    if not r.ok:
        text = "FAIL: " + r.error
        return text if len(text) <= width else text[: width - 3] + "..."
    return _fmt_value(metric, r.metrics.get(metric.key, "-"))


def render_table(
    all_results: dict[str, dict[str, RunResult]],
    clients: tuple[str, ...],
    fail_width: int = 34,
    *,
    scenarios: Sequence[Scenario],
    ours: str = "caclient",
) -> str:
    """The results table: a row per metric, a column per client, `ours`'s advantage and target."""
    header = [
        "scenario",
        "metric (better)",
        *clients,
        "adv vs pyepics",
        "adv vs caproto",
        "target",
        "status",
    ]
    rows: list[list[str]] = []
    for sc in scenarios:
        if sc.name not in all_results:
            continue
        results = all_results[sc.name]
        for i, m in enumerate(sc.metrics):
            direction = "higher" if m.higher_is_better else "lower"
            mine = results.get(ours)
            advs = []
            for other in ("pyepics", "caproto"):
                r = results.get(other)
                if mine is None or r is None or not mine.ok or not r.ok:
                    advs.append("-")
                else:
                    advs.append(_fmt_adv(advantage(m, mine.metrics.get(m.key), r.metrics.get(m.key))))
            rows.append(
                [
                    sc.name if i == 0 else "",
                    f"{m.label} ({direction})" if m.key != "rss_bounded" else m.label,
                    *(_cell(m, results.get(c), fail_width) for c in clients),
                    *advs,
                    m.target_text,
                    target_status(m, results, ours),
                ]
            )
    widths = [max(len(header[j]), *(len(r[j]) for r in rows)) if rows else len(header[j]) for j in range(len(header))]
    numeric_cols = set(range(2, len(header) - 2))

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(widths[j]) if j in numeric_cols else c.ljust(widths[j]) for j, c in enumerate(cells))

    sep = "  ".join("-" * w for w in widths)
    out = [line(header), sep]
    for k, row in enumerate(rows):
        if row[0] and k > 0:
            out.append("")
        out.append(line(row))
    return "\n".join(out)


def render_failures(all_results: dict[str, dict[str, RunResult]]) -> str:
    lines = []
    for sc_name, results in all_results.items():
        for client, r in results.items():
            if not r.ok:
                lines.append(f"  {sc_name} / {client}: FAIL: {r.error}")
                if r.info.get("stderr_tail"):
                    lines.append(f"      stderr: {r.info['stderr_tail'][:600]}")
            for note in r.notes:
                lines.append(f"  {sc_name} / note: {note}")
    return "\n".join(lines)
