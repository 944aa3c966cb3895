"""A Context inherited across fork() is refused in the child and untouched in the parent."""

from __future__ import annotations

import multiprocessing
import queue
from typing import Any

import pytest

from caclient import Context, ContextClosedError
from caclient.testing import IOCHandle


def _child(ctx: Context, name: str, env: dict[str, str], out: Any) -> None:
    try:
        ctx.get_pvs(name)[0].read(timeout=2)
        out.put("inherited context worked")
    except ContextClosedError as exc:
        out.put("refused: " + str(exc))
    except BaseException as exc:  # anything else is a failure to report
        out.put(f"unexpected {type(exc).__name__}: {exc}")
    with Context(env=env, timeout=5) as mine:  # a fresh Context in the child works
        (pv,) = mine.get_pvs(name)
        out.put(float(pv.read().data[0]))


@pytest.mark.timeout(60)
def test_fork_child_refuses_inherited_context(epics_ioc: IOCHandle) -> None:
    mp = multiprocessing.get_context("fork")
    with Context(env=epics_ioc.env, timeout=5) as ctx:
        (pv,) = ctx.get_pvs(epics_ioc.pv("ai"))
        got: queue.Queue[Any] = queue.Queue()
        sub = pv.subscribe()
        sub.add_callback(lambda s, r: got.put(r.data[0]))
        got.get(timeout=5)
        out = mp.Queue()
        child = mp.Process(target=_child, args=(ctx, pv.name, epics_ioc.env, out))
        child.start()
        first = out.get(timeout=30)
        value = out.get(timeout=30)
        child.join(30)
        assert child.exitcode == 0
        assert first.startswith("refused: ") and "fork" in first
        assert value == 3.5
        # the parent's circuit and subscription are untouched
        assert pv.read().data[0] == 3.5
        pv.write(3.5)
        assert pv.connected
        out.close()
        out.join_thread()
        sub.clear()
