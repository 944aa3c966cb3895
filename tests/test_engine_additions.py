"""Engine API added for compat.

:meth:`caclient.Context.write_many`, :meth:`caclient.Subscription.hold` and
``Subscription.add_callback(..., replay=False)``.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from compat_support import compat_ioc, restored
from engine_support import connected, open_context, until

from caclient import AccessDeniedError, CATimeoutError, Context, WriteResponse
from caclient.testing import IOCHandle


@pytest.fixture(params=["epics", "caproto"])
def ioc(request: pytest.FixtureRequest) -> Iterator[IOCHandle]:
    """The compat tests' private C IOC, or the session's caproto IOC with its values restored after."""
    if request.param == "epics":
        yield compat_ioc(request.config)
        return
    handle: IOCHandle = request.getfixturevalue("caproto_ioc")
    with restored(handle):
        yield handle


@pytest.fixture
def ctx(ioc: IOCHandle) -> Iterator[Context]:
    yield from open_context(ioc.env, 5.0)


def test_write_many_waits_for_every_completion(ctx: Context, ioc: IOCHandle) -> None:
    names = [ioc.pv("ao"), ioc.pv("long"), ioc.pv("str"), ioc.pv("wf")]
    results = ctx.write_many(names, [1.5, 7, "many", np.arange(4.0)], timeout=5.0)
    assert all(isinstance(r, WriteResponse) and r.status == 1 for r in results)
    got = ctx.read_many(names)
    assert [g.data[0] for g in got[:3]] == [1.5, 7, "many"]  # type: ignore[union-attr]
    assert list(got[3].data) == [0.0, 1.0, 2.0, 3.0]  # type: ignore[union-attr]


def test_write_many_in_input_order_for_one_pv(ctx: Context, ioc: IOCHandle) -> None:
    name = ioc.pv("long")
    results = ctx.write_many([name] * 5, [1, 2, 3, 4, 5])
    assert all(isinstance(r, WriteResponse) for r in results)
    (pv,) = ctx.get_pvs(name)
    assert pv.read().data[0] == 5


def test_write_many_without_wait_returns_none_per_write(ctx: Context, ioc: IOCHandle) -> None:
    name = ioc.pv("ao")
    assert ctx.write_many([name, name], [2.0, 2.25], wait=False) == [None, None]
    (pv,) = ctx.get_pvs(name)
    assert pv.read().data[0] == 2.25  # the read follows the writes on the same circuit


def test_write_many_reports_failures_in_place(ctx: Context, ioc: IOCHandle) -> None:
    start = time.monotonic()
    results = ctx.write_many(
        [ioc.pv("ao"), ioc.pv("no-such-pv"), ioc.pv("ro"), ioc.pv("ao")],
        [1.0, 2.0, 3.0, "not a number"],
        timeout=0.5,
    )
    assert time.monotonic() - start < 3.0
    assert isinstance(results[0], WriteResponse)
    assert isinstance(results[1], CATimeoutError)
    if ioc.kind == "epics":  # access security makes 'ro' read-only
        assert isinstance(results[2], AccessDeniedError)
    assert isinstance(results[3], ValueError)


def test_write_many_per_write_type_and_count(ctx: Context, ioc: IOCHandle) -> None:
    name = ioc.pv("wf")
    results = ctx.write_many([name], [np.arange(10.0)], data_types=["native"], data_counts=[3])
    assert isinstance(results[0], WriteResponse) and results[0].data_count == 3
    with pytest.raises(ValueError, match="same length"):
        ctx.write_many([name], [1.0, 2.0])


def test_write_many_times_out_on_slow_completion(ctx: Context, ioc: IOCHandle) -> None:
    # Both servers' 'slow' complete a put after 0.5 s.
    (slow,) = ctx.get_pvs(ioc.pv("slow"))
    if ioc.kind == "epics":
        busy = ctx.get_pvs(ioc.pv("slow:delay.PACT"))[0]
        deadline = time.monotonic() + 5
        while busy.read().data[0] and time.monotonic() < deadline:
            pass  # an earlier test's put may still be running (the C IOC completes puts made then at once)
    results = ctx.write_many([slow, ioc.pv("ao")], [1.0, 4.0], timeout=0.2)
    assert isinstance(results[0], CATimeoutError)
    assert isinstance(results[1], WriteResponse)


def test_write_many_from_a_callback(ctx: Context, ioc: IOCHandle) -> None:
    # Nothing in write_many waits for the callback threads, so a callback may call it.
    out: queue.Queue[object] = queue.Queue()
    (pv,) = ctx.get_pvs(ioc.pv("ai"))

    def on_update(sub: object, resp: object) -> None:
        out.put(ctx.write_many([ioc.pv("ao")], [5.5]))

    sub = pv.subscribe()
    sub.add_callback(on_update)
    try:
        results = out.get(timeout=5)
    finally:
        sub.clear()
    assert isinstance(results, list) and isinstance(results[0], WriteResponse)


# -- Subscription.hold and add_callback(replay=False) ----------------------------------------------------
def _newest(sub: Any) -> Any:
    resp = sub.most_recent_response
    return None if resp is None else resp.data[0]


def test_a_held_subscription_follows_updates_and_runs_nothing(ctx: Context, ioc: IOCHandle) -> None:
    pv = connected(ctx, ioc.pv("ao"))
    pv.write(1.5, wait=True)
    sub = pv.subscribe()
    release = sub.hold()
    assert sub.wanted and sub.callbacks == {}
    until(lambda: _newest(sub) == 1.5, "the first update")
    circuit = ctx.statistics().circuits[0]
    assert circuit.subscriptions == 1
    jobs = ctx.statistics().callbacks.jobs_run
    pv.write(2.5, wait=True)
    until(lambda: _newest(sub) == 2.5, "the written value")
    assert ctx.statistics().callbacks.jobs_run == jobs  # no callback thread was woken
    sub.clear()  # (leaves holds alone)
    assert sub.wanted and ctx.statistics().circuits[0].subscriptions == 1
    release_too = sub.hold()
    release()
    release()  # (a second call does nothing)
    assert sub.wanted
    release_too()
    assert not sub.wanted
    assert ctx.statistics().circuits[0].subscriptions == 0  # cancelled with the last hold


def test_a_late_callback_is_replayed_the_newest_update_unless_told_not_to(ctx: Context, ioc: IOCHandle) -> None:
    pv = connected(ctx, ioc.pv("ao"))
    pv.write(1.5, wait=True)
    sub = pv.subscribe()
    first: queue.Queue[float] = queue.Queue()
    replayed: queue.Queue[float] = queue.Queue()
    fresh: queue.Queue[float] = queue.Queue()
    sub.add_callback(lambda r: first.put(r.data[0]))
    assert first.get(timeout=5) == 1.5
    sub.add_callback(lambda r: replayed.put(r.data[0]))
    assert replayed.get(timeout=5) == 1.5
    sub.add_callback(lambda r: fresh.put(r.data[0]), replay=False)
    pv.write(2.5, wait=True)
    assert fresh.get(timeout=5) == 2.5  # the first it was given: the next update
    assert replayed.get(timeout=5) == 2.5
    sub.clear()
