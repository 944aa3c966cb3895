"""compat.aioca behaviour that needs no oracle, or that a differential run cannot show.

Against real IOCs: disconnection notices across an IOC restart, several
event loops at once, cancellation, values that fail before anything is
sent, the ``import aioca`` redirection and the clear error outside a loop.
What aioca itself does in these cases comes from its source (aioca 2.1):
the tests assert that behaviour.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aioca_support import aioca_ioc, point_at

import compat.aioca as aioca
from caclient.testing import EpicsIOC, IOCHandle

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ioc(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[IOCHandle]:
    """The aioca tests' C IOC, with compat.aioca pointed at it and purged afterwards."""
    handle = aioca_ioc(request.config)
    point_at(handle, monkeypatch)
    try:
        yield handle
    finally:
        aioca.purge_channel_caches()


def run(coro: Any) -> Any:
    """Run *coro* in a fresh loop; purge compat.aioca's channels before the loop ends."""

    async def main() -> Any:
        try:
            return await coro
        finally:
            aioca.purge_channel_caches()

    return asyncio.run(main())


# -- bad input ----------------------------------------------------------------------------------------
def test_calls_outside_a_running_loop_say_how_to_fix_it() -> None:
    with pytest.raises(RuntimeError, match=r"camonitor\(\) needs a running asyncio event loop.*asyncio\.run"):
        aioca.camonitor("X:ai", print)
    with pytest.raises(RuntimeError, match=r"get_channel_infos\(\) needs a running asyncio event loop"):
        aioca.get_channel_infos()


def test_pv_name_must_be_a_string(ioc: IOCHandle) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="must be a str, not int"):
            await aioca.caget(42)  # type: ignore[arg-type]

    run(main())


def test_unknown_pv_times_out_cleanly_and_bounded(ioc: IOCHandle) -> None:
    async def main() -> tuple[Any, float, Any]:
        start = time.monotonic()
        failed = await aioca.caget(ioc.pv("no:such:pv"), timeout=0.3, throw=False)
        elapsed = time.monotonic() - start
        # The channel stays usable for names that exist.
        good = await aioca.caget(ioc.pv("ai"))
        return failed, elapsed, good

    failed, elapsed, good = run(main())
    assert isinstance(failed, aioca.CANothing) and not failed and failed.errorcode == 80
    assert 0.25 <= elapsed < 10  # honours the timeout (upper bound only against a hang)
    assert good == 3.5 and good.ok


def test_values_that_cannot_be_converted_send_nothing(ioc: IOCHandle) -> None:
    name = ioc.pv("cb")

    async def main() -> list[float]:
        await aioca.caput(name, 1.0, wait=True)
        seen: list[float] = []
        first = asyncio.Event()

        def cb(value: Any) -> None:
            seen.append(float(value))
            first.set()

        sub = aioca.camonitor(name, cb, all_updates=True)
        await asyncio.wait_for(first.wait(), 5)
        for bad, error in (
            (object(), TypeError),
            ("abc", ValueError),
            ([[1.0], [2.0]], AssertionError),
        ):
            with pytest.raises(error):
                await aioca.caput(name, bad, datatype=float, wait=True)
        with pytest.raises(aioca.InvalidDatatype):
            await aioca.caput(name, 1, datatype=complex)
        await aioca.caput(name, 2.0, wait=True)
        await aioca.caget(name)  # a round trip: the update for 2.0 has been sent before the reply
        for _ in range(100):
            if seen[-1] == 2.0:
                break
            await asyncio.sleep(0.02)
        sub.close()
        return seen

    assert run(main()) == [1.0, 2.0]


# -- cancellation and timeouts ----------------------------------------------------------------------
def test_cancelled_and_timed_out_calls_leave_the_channel_usable(ioc: IOCHandle) -> None:
    async def main() -> tuple[Any, Any, Any]:
        task = asyncio.ensure_future(aioca.caget(ioc.pv("nope"), timeout=None))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        slow = await aioca.caput(ioc.pv("slow"), 3.0, wait=True, timeout=0.05, throw=False)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aioca.caput(ioc.pv("slow"), 4.0, wait=True), 0.05)
        again = await aioca.caput(ioc.pv("slow"), 5.0, wait=True, timeout=10)
        return slow, again, await aioca.caget(ioc.pv("slow"))

    slow, again, value = run(main())
    assert slow.errorcode == 80 and not slow
    assert again.ok and value == 5.0


def test_throw_false_in_lists_reports_each_pv(ioc: IOCHandle) -> None:
    async def main() -> list[Any]:
        result: list[Any] = await aioca.caput(
            [ioc.pv("ao"), ioc.pv("ro"), ioc.pv("nope")], 1.5, timeout=0.3, throw=False, wait=True
        )
        return result

    ok, denied, missing = run(main())
    assert (ok.ok, denied.errorcode, missing.errorcode) == (True, 376, 80)


# -- subscriptions --------------------------------------------------------------------------------------
def test_notify_disconnect_across_an_ioc_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    restarting = EpicsIOC()
    restarting.start()
    port = restarting.port
    point_at(restarting, monkeypatch)
    name = restarting.pv("ai")

    async def main() -> tuple[list[Any], list[Any], Any, Any]:
        told: asyncio.Queue[Any] = asyncio.Queue()
        quiet: list[Any] = []
        sub = aioca.camonitor(name, told.put_nowait, notify_disconnect=True, format=aioca.FORMAT_TIME)
        other = aioca.camonitor(name, quiet.append)
        events = [await asyncio.wait_for(told.get(), 10)]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, restarting.stop)
        events.append(await asyncio.wait_for(told.get(), 30))
        info = await aioca.cainfo(name, wait=False)
        during = await aioca.caget(name, timeout=0.2, throw=False)
        await loop.run_in_executor(None, lambda: restarting.start(port=port))
        events.append(await asyncio.wait_for(told.get(), 60))
        for _ in range(200):
            if len(quiet) >= 2:
                break
            await asyncio.sleep(0.05)
        sub.close()
        other.close()
        return events, quiet, info, during

    try:
        events, quiet, info, during = run(main())
    finally:
        restarting.stop()
    first, lost, back = events
    assert first == 3.5 and first.ok and first.severity == 0
    assert isinstance(lost, aioca.CANothing) and lost.errorcode == 192 and lost.name == name and not lost
    assert back == 3.5 and back.ok
    assert back.timestamp > first.timestamp  # the restarted IOC's value
    assert [float(v) for v in quiet] == [3.5, 3.5] and all(v.ok for v in quiet)  # no CANothing without the flag
    assert (
        info.state == 1 and info.host == "<disconnected>" and str(info).splitlines()[1].endswith("previously connected")
    )
    assert during.errorcode == 80


def test_purge_closes_subscriptions_and_the_engine(ioc: IOCHandle) -> None:
    before = {t.ident for t in threading.enumerate() if t.name.startswith("caclient")}

    async def main() -> tuple[Any, list[Any], list[Any]]:
        got: asyncio.Queue[Any] = asyncio.Queue()
        sub = aioca.camonitor(ioc.pv("counter"), got.put_nowait)
        await asyncio.wait_for(got.get(), 5)
        infos = [(c.name, c.connected, c.subscriber_count) for c in aioca.get_channel_infos()]
        aioca.purge_channel_caches()
        return sub, infos, aioca.get_channel_infos()

    sub, infos, after = asyncio.run(main())
    assert infos == [(ioc.pv("counter"), True, 1)]
    assert sub.state == sub.CLOSED and after == []
    left = {t.ident for t in threading.enumerate() if t.name.startswith("caclient")} - before
    assert not left


def test_several_event_loops_in_threads_at_once(ioc: IOCHandle) -> None:
    results: dict[int, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def worker(i: int) -> None:
        async def main() -> Any:
            got: asyncio.Queue[Any] = asyncio.Queue()
            sub = aioca.camonitor(ioc.pv("longin"), got.put_nowait)
            value = await aioca.caget([ioc.pv("ai"), ioc.pv("stringin")])
            first = await asyncio.wait_for(got.get(), 5)
            sub.close()
            return value, first, len(aioca.get_channel_infos())

        try:
            barrier.wait(10)
            results[i] = asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert all(results[i] == ([3.5, "hello"], 42, 3) for i in range(3))


# -- running programs written for aioca ----------------------------------------------------------------
def _child(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_install_makes_import_aioca_give_compat_without_libca() -> None:
    code = """
import sys, compat.aioca
compat.aioca.install()
import aioca, aioca.types
from aioca import caget, FORMAT_TIME, CANothing
from aioca.types import AugmentedValue, Dbr
assert aioca is compat.aioca and aioca.types is compat.aioca.types
assert not [m for m in sys.modules if m.startswith('epicscorelibs')], 'libca was loaded'
print('ok')
"""
    proc = _child(["-c", code], dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_install_refuses_once_the_real_aioca_is_loaded() -> None:
    code = "import aioca, compat.aioca\ntry:\n    compat.aioca.install()\nexcept RuntimeError as e:\n    print(e)\n"
    proc = _child(["-c", code], dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert "the real aioca is already imported" in proc.stdout


def test_python_m_compat_aioca_runs_an_aioca_program(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    handle = aioca_ioc(request.config)
    program = tmp_path / "prog.py"
    program.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            import aioca

            async def main(prefix):
                value = await aioca.caget(prefix + 'ai', format=aioca.FORMAT_CTRL)
                got = asyncio.Queue()
                sub = aioca.camonitor(prefix + 'stringin', got.put_nowait)
                text = await asyncio.wait_for(got.get(), 5)
                sub.close()
                print(type(value).__name__, value, value.units, text, sys.argv[1:], aioca.__name__)
                aioca.purge_channel_caches()

            asyncio.run(main(sys.argv[1]))
            """
        )
    )
    proc = _child(["-m", "compat.aioca", str(program), handle.prefix], handle.env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ca_float", "3.5", "mm", "hello", f"['{handle.prefix}']", "compat.aioca"]
    usage = _child(["-m", "compat.aioca"], handle.env)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    module = tmp_path / "aioca_prog_module.py"
    module.write_text(program.read_text())
    as_module = _child(["-m", "compat.aioca", "-m", "aioca_prog_module", handle.prefix], handle.env, cwd=tmp_path)
    assert as_module.returncode == 0, as_module.stderr
    assert as_module.stdout == proc.stdout


def test_run_is_deprecated_but_works(ioc: IOCHandle) -> None:
    async def main() -> Any:
        try:
            return await aioca.caget(ioc.pv("longin"))
        finally:
            aioca.purge_channel_caches()

    with pytest.warns(DeprecationWarning, match="use asyncio.run instead"):
        value = aioca.run(main())
    asyncio.set_event_loop(None)
    assert value == 42 and type(value).__name__ == "ca_int"


def _forked_child(prefix: str, out: Any) -> None:
    async def main() -> float:
        try:
            return float(await aioca.caget(prefix + "ai", timeout=10))
        finally:
            aioca.purge_channel_caches()

    out.put(asyncio.run(main()))


def test_a_forked_child_makes_its_own_channels(ioc: IOCHandle) -> None:
    import multiprocessing

    fork = multiprocessing.get_context("fork")

    async def main() -> tuple[Any, Any, Any, int | None]:
        before = await aioca.caget(ioc.pv("ai"))
        results = fork.Queue()
        child = fork.Process(target=_forked_child, args=(ioc.prefix, results))
        child.start()
        got = await asyncio.get_running_loop().run_in_executor(None, results.get, True, 30)
        await asyncio.get_running_loop().run_in_executor(None, child.join, 10)
        return before, got, await aioca.caget(ioc.pv("ai")), child.exitcode

    before, got, after, code = run(main())
    assert (before, got, after, code) == (3.5, 3.5, 3.5, 0)
