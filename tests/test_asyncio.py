"""caclient.asyncio against real IOCs: the caproto asyncio tutorial, callbacks, iteration, bad input."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import numpy as np
import pytest
from asyncio_support import _restore_written_values, run, until  # noqa: F401  (an autouse fixture)

from caclient import CATimeoutError, ChannelType, ContextClosedError
from caclient.asyncio import Context, ReadResponse, Subscription
from caclient.asyncio._bridge import LoopBridge
from caclient.testing import IOCHandle


# ---------------------------------------------------------------- the seed tutorial, verbatim
def test_tutorial_verbatim(ioc: IOCHandle) -> None:
    """Every call of caproto's asyncio tutorial, with random_walk:x → counter and random_walk:dt → ao."""
    env = ioc.env
    x_name, dt_name = ioc.pv("counter"), ioc.pv("ao")

    async def tutorial() -> None:
        from caclient.asyncio import Context  # the tutorial's one import, changed

        async def new_context() -> Any:
            return Context(env=env)

        ctx = await new_context()
        x, dt = await ctx.get_pvs(x_name, dt_name)
        assert repr(dt).startswith(f"<PV name={dt_name!r} priority=0")
        assert repr(ctx).startswith("<Context circuits=")

        res = await dt.read()
        assert isinstance(res, ReadResponse)
        assert isinstance(bytes(res), bytes) and len(bytes(res)) == 8
        assert res.data.shape == (1,)
        res.metadata  # noqa: B018
        richer_res = await dt.read(data_type="time")
        assert richer_res.metadata.timestamp > 1e9
        assert richer_res.metadata.stamp.as_datetime().year >= 2024
        assert res.header.data_count == 1
        assert len(res.buffers) >= 1

        await dt.write([1])
        assert (await dt.read()).data[0] == 1
        await dt.write([1], wait=False)

        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def f(response: Any) -> None:
            got.set_result(response)

        await dt.write([1], wait=False, callback=f)
        assert (await asyncio.wait_for(got, 5)).status == 1

        sub = x.subscribe()
        responses = []

        def f2(sub: Any, response: Any) -> None:
            responses.append(response)

        token = sub.add_callback(f2)
        values = []

        def g(sub: Any, response: Any) -> None:
            values.append(response.data[0])

        sub.add_callback(g)
        await until(lambda: len(values) >= 3, 10, "three counter updates")
        assert len(responses) >= 3
        assert values == sorted(values)  # the counter counts up, delivered in order

        async for value in sub:
            assert isinstance(value, ReadResponse)
            break

        await sub.remove_callback(token)
        await sub.clear()
        assert not sub._engine.wanted  # the server-side subscription was cancelled

        await x.go_idle()
        assert x.state == "idle"
        await x.read()
        assert x.connected

        ctx.broadcaster.cancel("some typo-ed PV name, for example")
        await x.circuit_manager.events_off()
        await x.circuit_manager.events_on()
        heard = ctx.broadcaster.time_since_last_heard()
        assert set(heard) == {x.server_address}
        assert 0 <= x.time_since_last_heard() < 60
        await ctx.disconnect()

    run(tutorial(), 60)


def test_context_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match=r"inside a coroutine.*asyncio.run"):
        Context()


def test_async_with_closes_and_refuses_more_work(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env) as ctx:
            (pv,) = await ctx.get_pvs(ioc.pv("ai"))
            await pv.wait_for_connection(timeout=10)
        assert not ctx.engine.circuits
        with pytest.raises(ContextClosedError):
            await ctx.get_pvs(ioc.pv("ao"))
        with pytest.raises(ContextClosedError):
            await pv.read()
        await ctx.disconnect()  # idempotent

    run(main())


# ---------------------------------------------------------------- values and types
@pytest.mark.parametrize(
    ("suffix", "value", "expected_type"),
    [
        ("ao", 2.5, ChannelType.DOUBLE),
        ("long", 42, ChannelType.LONG),
        ("str", "async!", ChannelType.STRING),
        ("enum", 1, ChannelType.ENUM),
        ("wf", np.arange(10.0), ChannelType.DOUBLE),
    ],
)
def test_write_then_read_each_type(ioc: IOCHandle, suffix: str, value: Any, expected_type: ChannelType) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            (pv,) = await ctx.get_pvs(ioc.pv(suffix))
            done = await pv.write(value, wait=True)
            assert done is not None and done.status == 1
            res = await pv.read(data_type="control")
            assert res.data_type == ChannelType(int(expected_type) + 28)
            if isinstance(value, str):
                assert res.data == [value]
            else:
                assert np.array_equal(np.asarray(res.data)[: np.size(value)], np.atleast_1d(value))

    run(main())


def test_wrong_value_type_raises_before_sending(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            (pv,) = await ctx.get_pvs(ioc.pv("ao"))
            await pv.write(1.25)
            circuit = pv.engine_pv.circuit_manager
            with pytest.raises((TypeError, ValueError)):
                await pv.write("not a number")
            with pytest.raises((TypeError, ValueError)):
                await pv.write(object())
            assert not circuit._ioids  # nothing was registered, so nothing was sent
            assert (await pv.read()).data[0] == 1.25

    run(main())


def test_unknown_pv_times_out_cleanly(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=0.3) as ctx:
            (pv,) = await ctx.get_pvs("asyncio:no:such:pv")
            with pytest.raises(CATimeoutError, match="no:such:pv: not connected"):
                await pv.read()
            with pytest.raises(TimeoutError):
                await pv.wait_for_connection(timeout=0.2)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pv.write(1.0, timeout=None), 0.2)
            ctx.broadcaster.cancel(pv.name)

    run(main())


# ---------------------------------------------------------------- callbacks
def test_plain_callbacks_run_on_the_loop_and_coroutines_in_order(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            (pv,) = await ctx.get_pvs(ioc.pv("counter"))
            loop_thread = threading.get_ident()
            plain_threads: set[int] = set()
            seen: list[int] = []
            running = [0]
            overlap = [False]

            def plain(sub: Subscription, resp: ReadResponse) -> None:
                plain_threads.add(threading.get_ident())

            async def slow(sub: Subscription, resp: ReadResponse) -> None:
                running[0] += 1
                overlap[0] |= running[0] > 1
                await asyncio.sleep(0.03)  # slower than the updates: they queue up
                seen.append(int(resp.data[0]))
                running[0] -= 1

            sub = pv.subscribe()
            sub.add_callback(plain)
            sub.add_callback(slow)
            await until(lambda: len(seen) >= 8, 20, "eight coroutine callbacks")
            assert plain_threads == {loop_thread}
            assert not overlap[0]
            assert seen == sorted(seen) and len(set(seen)) == len(seen)
            await sub.clear()

    run(main())


def test_raising_callbacks_are_logged_with_the_pv_name_and_do_not_stop_the_subscription(
    ioc: IOCHandle, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            (pv,) = await ctx.get_pvs(ioc.pv("counter"))
            calls = {"plain": 0, "coro": 0}

            def bad_plain(resp: ReadResponse) -> None:
                calls["plain"] += 1
                raise ValueError("plain boom")

            async def bad_coro(sub: Subscription, resp: ReadResponse) -> None:
                calls["coro"] += 1
                raise ValueError("coro boom")

            sub = pv.subscribe()
            sub.add_callback(bad_plain)
            sub.add_callback(bad_coro)
            await until(lambda: min(calls.values()) >= 3, 20, "three calls of each")
            await sub.clear()

    with caplog.at_level(logging.ERROR, logger="caclient.asyncio"):
        run(main())
    text = caplog.text
    assert "plain boom" in text and "coro boom" in text
    assert ioc.pv("counter") in text


def test_read_and_write_callbacks_plain_and_async(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            (pv,) = await ctx.get_pvs(ioc.pv("ao"))
            loop = asyncio.get_running_loop()
            plain_got: asyncio.Future[Any] = loop.create_future()
            coro_got: asyncio.Future[Any] = loop.create_future()

            def plain(resp: Any) -> None:
                plain_got.set_result(resp)

            async def coro(resp: Any) -> None:
                coro_got.set_result(resp)

            assert await pv.write(3.0, wait=False, callback=plain) is None
            assert (await asyncio.wait_for(plain_got, 5)).status == 1
            assert await pv.read(wait=False, callback=coro) is None
            assert (await asyncio.wait_for(coro_got, 5)).data[0] == 3.0

    run(main())


def test_connection_callbacks_get_the_asyncio_pv_on_the_loop(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            states: asyncio.Queue[tuple[Any, str, int]] = asyncio.Queue()

            async def on_state(pv: Any, state: str) -> None:
                await states.put((pv, state, threading.get_ident()))

            (pv,) = await ctx.get_pvs(ioc.pv("long"), connection_state_callback=on_state)
            got, state, thread = await asyncio.wait_for(states.get(), 10)
            assert got is pv and state == "connected" and thread == threading.get_ident()

    run(main())


# ---------------------------------------------------------------- async for
def test_async_for_queue_is_bounded_and_keeps_the_newest(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            (pv,) = await ctx.get_pvs(ioc.pv("counter"))
            sub = pv.subscribe()
            sub.queue_size = 3
            latest: list[ReadResponse] = []
            sub.add_callback(lambda resp: latest.append(resp))
            it = sub.__aiter__()
            await until(lambda: len(latest) >= 10, 20, "ten updates")
            newest = latest[-1]
            assert it.dropped >= 1
            got = [await it.__anext__() for _ in range(3)]
            assert got[-1] is newest  # the newest is never dropped
            assert [int(r.data[0]) for r in got] == sorted(int(r.data[0]) for r in got)
            await it.aclose()
            with pytest.raises(StopAsyncIteration):
                await it.__anext__()
            await sub.clear()

    run(main())


def test_breaking_out_of_async_for_releases_the_subscription(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            (pv,) = await ctx.get_pvs(ioc.pv("counter"))
            sub = pv.subscribe()
            n = 0
            async for _resp in sub:
                n += 1
                if n == 2:
                    break
            await until(lambda: not sub._engine.wanted, 5, "the engine subscription to be cancelled")

            async def consume() -> None:
                async for _resp in sub:
                    pass

            task = asyncio.ensure_future(consume())
            await until(lambda: sub._engine.wanted, 5, "an active subscription")
            await sub.clear()  # ends the iteration
            await asyncio.wait_for(task, 5)

    run(main())


# ---------------------------------------------------------------- the loop bridge
def test_bridge_wakes_the_loop_once_per_burst() -> None:
    """A burst posted while the loop is busy costs one wake-up; a later burst one more."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        bridge = LoopBridge(loop)
        ran: list[int] = []
        posted = threading.Event()

        def producer() -> None:
            for i in range(1000):
                bridge.post(ran.append, i)
            posted.set()

        t = threading.Thread(target=producer)
        t.start()
        posted.wait(10)  # (blocks the loop on purpose: everything arrives while it is busy)
        t.join(10)
        await until(lambda: len(ran) == 1000, 5, "the drain")
        assert ran == list(range(1000))
        assert bridge.wakeups == 1
        bridge.post(ran.append, 1000)
        await until(lambda: len(ran) == 1001, 5, "the second burst")
        assert bridge.wakeups == 2

    run(main())


def test_bridge_after_the_loop_closed_drops_silently() -> None:
    loop = asyncio.new_event_loop()
    bridge = LoopBridge(loop)
    loop.close()
    bridge.post(print, "never")
    assert not bridge._inbox


def test_bridge_whose_loop_closed_with_a_drain_pending_does_not_pile_up() -> None:
    # The loop closes after a drain was scheduled but before it ran: later
    # posts (monitor updates from the engine's threads) must not accumulate.
    loop = asyncio.new_event_loop()
    bridge = LoopBridge(loop)
    bridge.post(print, "scheduled, never run")
    loop.close()
    for i in range(100):
        bridge.post(print, i)
    assert len(bridge._inbox) == 0


# ---------------------------------------------------------------- sharing a broadcaster, Context.monitor
def test_contexts_sharing_a_broadcaster_share_one_engine(ioc: IOCHandle) -> None:
    from caclient.asyncio import SharedBroadcaster

    async def main() -> None:
        shared = SharedBroadcaster(env=ioc.env)
        a = Context(broadcaster=shared)
        b = Context(broadcaster=a.broadcaster)
        (pa,) = await a.get_pvs(ioc.pv("ai"))
        (pb,) = await b.get_pvs(ioc.pv("ai"))
        assert pa is not pb and pa.engine_pv is pb.engine_pv
        await pa.read()
        await a.disconnect()
        assert (await pb.read()).data.shape == (1,)  # the shared engine stays open
        assert len(b.broadcaster.time_since_last_heard()) == 1
        await b.disconnect()
        assert not shared.engine._closed
        await shared.disconnect()
        assert shared.engine._closed
        await shared.disconnect()  # idempotent

    run(main())


def test_context_monitor_yields_connection_and_subscription_events(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            kinds: set[str] = set()
            updates = 0
            monitor = ctx.monitor(ioc.pv("counter"), ioc.pv("ai"))
            async for event, source, data in monitor:
                kinds.add(event)
                if event == "connection":
                    assert data == "connected" and source.name in (ioc.pv("counter"), ioc.pv("ai"))
                else:
                    assert isinstance(data, ReadResponse) and data.metadata.timestamp > 0
                    updates += 1
                if updates >= 4 and kinds == {"connection", "subscription"}:
                    break
            await monitor.aclose()
            (pv,) = await ctx.get_pvs(ioc.pv("counter"))
            assert not pv.subscribe(data_type="time")._callbacks
            assert not pv.connection_state_callback._tokens

    run(main())


def test_disconnect_releases_coroutines_waiting_for_a_connection(ioc: IOCHandle) -> None:
    async def main() -> None:
        ctx = Context(env=ioc.env)
        (pv,) = await ctx.get_pvs("asyncio:never:connects")
        task = asyncio.ensure_future(pv.read(timeout=None))
        await until(lambda: bool(ctx._connection_waits), 5, "the read to wait for its connection")
        await ctx.disconnect()
        with pytest.raises(ContextClosedError):
            await asyncio.wait_for(task, 5)

    run(main())


def test_the_loop_thread_is_queue_only_while_the_context_is_open(ioc: IOCHandle) -> None:
    """Sends made on the loop go through the circuit thread (the loop never writes a socket)."""
    import caclient

    async def main(engine: caclient.Context) -> None:
        me = threading.get_ident()
        a = Context(engine=engine)
        b = Context(engine=engine)
        assert me in engine._queue_only_threads
        (pv,) = await a.get_pvs(ioc.pv("ai"))
        assert (await asyncio.gather(*(pv.read() for _ in range(100))))[-1].data.shape == (1,)
        await a.disconnect()
        assert me in engine._queue_only_threads  # b still uses it
        await b.disconnect()
        assert me not in engine._queue_only_threads

    with caclient.Context(env=ioc.env) as engine:
        run(main(engine))
        (pv,) = engine.get_pvs(ioc.pv("ai"))
        assert pv.read().data.shape == (1,)  # threads still write directly


def test_a_context_refuses_another_loop(ioc: IOCHandle) -> None:
    async def make() -> Any:
        ctx = Context(env=ioc.env)
        (pv,) = await ctx.get_pvs(ioc.pv("ai"))
        return ctx, pv

    ctx, pv = run(make())

    async def elsewhere() -> None:
        with pytest.raises(RuntimeError, match="another event loop"):
            await pv.read()
        with pytest.raises(RuntimeError, match="one Context per loop"):
            await ctx.get_pvs(ioc.pv("ao"))
        await ctx.disconnect()

    run(elsewhere())


def test_write_to_a_read_only_pv_is_refused(ioc: IOCHandle) -> None:
    from caclient import AccessDeniedError, RemoteError

    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            (ro,) = await ctx.get_pvs(ioc.pv("ro"))
            with pytest.raises((AccessDeniedError, RemoteError)):
                await ro.write(2.0)
            assert (await ro.read()).data[0] == 1.25

    run(main())


def test_go_idle_is_declined_while_subscribed(ioc: IOCHandle) -> None:
    async def main() -> None:
        async with Context(env=ioc.env, timeout=10) as ctx:
            (pv,) = await ctx.get_pvs(ioc.pv("counter"))
            sub = pv.subscribe()
            got: asyncio.Queue[Any] = asyncio.Queue()
            sub.add_callback(got.put_nowait)
            await asyncio.wait_for(got.get(), 10)
            await pv.go_idle()
            assert pv.connected and pv.state == "connected"
            await asyncio.wait_for(got.get(), 10)  # updates keep coming
            await sub.clear()
            await pv.go_idle()
            assert pv.state == "idle"
            await pv.wait_for_connection()  # and it comes back on use

    run(main())
