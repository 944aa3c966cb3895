"""Run one scripted session with an asyncio client and print what it saw as JSON (a child process).

Usage: ``python tests/asyncio_oracle.py {caproto|caclient} '<spec json>'``.

The spec: ``{"reads": [[name, data_type], ...], "writes": [[name, value], ...],
"monitor": name, "monitor_writes": [v1, v2, ...]}``.  The same session runs
through ``caproto.asyncio.client`` (the reference) or ``caclient.asyncio``;
the differential tests compare the two outputs.  Values are normalised to
JSON (bytes decoded, arrays as lists); everything else is as the client gave it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np

META_FIELDS = (
    "status",
    "severity",
    "units",
    "precision",
    "enum_strings",
    "upper_disp_limit",
    "lower_disp_limit",
    "upper_alarm_limit",
    "lower_alarm_limit",
    "upper_warning_limit",
    "lower_warning_limit",
    "upper_ctrl_limit",
    "lower_ctrl_limit",
)


def plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if hasattr(value, "value") and hasattr(value, "name"):  # an enum member
        return int(value.value)
    if not isinstance(value, (str, dict)) and hasattr(value, "__iter__"):  # lists, caproto's DbrStringArray
        return [plain(v) for v in value]
    return value


def response(resp: Any) -> dict[str, Any]:
    md = resp.metadata
    meta: dict[str, Any] = {"has_timestamp": bool(getattr(md, "timestamp", None))}
    for field in META_FIELDS:
        v = getattr(md, field, None)
        if v is not None:
            meta[field] = plain(v)
    return {
        "data": plain(resp.data),
        "data_type": int(resp.data_type),
        "data_count": int(resp.data_count),
        "meta": meta,
    }


async def session(client: str, spec: dict[str, Any]) -> dict[str, Any]:
    if client == "caproto":
        from caproto.asyncio.client import Context
    else:
        from caclient.asyncio import Context  # type: ignore[assignment]
    ctx = Context()
    out: dict[str, Any] = {"reads": [], "writes": [], "monitor": []}
    try:
        for name, value in spec.get("writes", []):
            (pv,) = await ctx.get_pvs(name)
            res = await pv.write(value, wait=True, timeout=10)
            out["writes"].append(int(getattr(res.status, "code_with_severity", res.status)))
        for name, data_type in spec.get("reads", []):
            (pv,) = await ctx.get_pvs(name)
            out["reads"].append(response(await pv.read(data_type=data_type, timeout=10)))
        if spec.get("monitor"):
            (pv,) = await ctx.get_pvs(spec["monitor"])
            await pv.wait_for_connection(timeout=10)
            got: asyncio.Queue[Any] = asyncio.Queue()
            kinds: list[str] = []

            def callback(sub: Any, resp: Any) -> None:
                kinds.append(type(sub).__name__ + ":" + ("same-pv" if sub.pv is pv else "other-pv"))
                got.put_nowait(resp)

            sub = pv.subscribe(data_type="time")
            sub.add_callback(callback)
            responses = [await asyncio.wait_for(got.get(), 10)]
            for value in spec.get("monitor_writes", []):
                await pv.write(value, wait=True, timeout=10)
                responses.append(await asyncio.wait_for(got.get(), 10))
            out["monitor"] = [response(r) for r in responses]
            out["callback_args"] = sorted(set(kinds))
            await sub.clear()
    finally:
        await ctx.disconnect()
        if client == "caproto":
            await ctx.broadcaster.disconnect()
    return out


def main() -> None:
    client, spec = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(asyncio.run(asyncio.wait_for(session(client, spec), 60))))


if __name__ == "__main__":
    main()
