"""Races and failure paths a review found in the engine, each forced deterministically.

Every test here injects a hook at the point where the two threads meet (a
wrapped method, a scripted ``select``) instead of hoping that timing lines
them up; each one failed before its fix.
"""

from __future__ import annotations

import atexit
import os
import queue
import select as _select
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from engine_support import connected, connection_states
from fakeserver import FakeServer, msg

import caclient._circuit as circuit_module
import caclient._context as context_module
from caclient import Context, RemoteError, _proto
from caclient._circuit import Circuit
from caclient._pv import PV


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer({"RACE:a": 1.5, "RACE:b": 2.5}) as s:
        yield s


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Exceptions that escaped any thread (threading.excepthook)."""
    errors: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    return errors


# -- flow control ----------------------------------------------------------------------
def _flow_messages(outbox: Any) -> list[int]:
    cmds = []
    for chunk in outbox:
        data = bytes(chunk)
        for off in range(0, len(data) - 15, 16):
            cmd = _proto.HEADER.unpack_from(data, off)[0]
            if cmd in (_proto.EVENTS_OFF, _proto.EVENTS_ON):
                cmds.append(cmd)
    return cmds


def test_events_on_cannot_overtake_a_later_events_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's EVENTS_ON and the circuit thread's EVENTS_OFF reach the wire in flag order.

    The hook runs the circuit thread's backlog check at the worst moment: after
    the worker decided to resume and before its EVENTS_ON is queued.
    """
    with Context() as ctx:
        circuit = Circuit(ctx, ("127.0.0.1", 1), 0)  # never started: send() queues in the outbox
        ctx._backlog_high = 0
        monkeypatch.setattr(ctx._dispatcher, "submit_many", lambda jobs: 10)
        monkeypatch.setattr(ctx._dispatcher, "watch_drain", lambda low, fn: None)
        circuit._events_off = True  # paused earlier; now the backlog has drained
        real_send = circuit.send
        hooked: list[Any] = []

        def circuit_thread_step() -> None:  # what the circuit thread does after a received chunk
            circuit._jobs.append(("k", print, ()))
            circuit._after_chunk()

        def send(*chunks: Any) -> None:
            if not hooked and bytes(chunks[0])[:2] == struct.pack(">H", _proto.EVENTS_ON):
                hooked.append(True)
                other = threading.Thread(target=circuit_thread_step)
                other.start()
                other.join(0.5)  # (with the fix it waits for our lock: let it)
                real_send(*chunks)
                hooked.append(other)
                return
            real_send(*chunks)

        monkeypatch.setattr(circuit, "send", send)
        circuit._resume_events()
        hooked[1].join(5)
        circuit._wakeup.close()
        wire = _flow_messages(circuit._outbox)
        assert circuit._events_off
        assert wire[-1] == _proto.EVENTS_OFF, wire  # the server is told what the flag says


# -- go_idle while the channel is being created --------------------------------------------
def test_go_idle_between_found_and_create_leaves_no_channel_behind(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Circuit.create_channels

    def create_channels(self: Circuit, pvs: list[PV]) -> Any:
        for pv in pvs:
            if pv.name == "RACE:a":
                pv.go_idle()  # the user releases the PV right now
        return real(self, pvs)

    monkeypatch.setattr(Circuit, "create_channels", create_channels)
    with Context(env=server.env, timeout=5) as ctx:
        a, b = ctx.get_pvs("RACE:a", "RACE:b")
        b.wait_for_connection()
        assert b.read().data[0] == 2.5  # every earlier reply has been handled
        circuit = b.circuit_manager
        assert a.state == "idle"
        assert [pv.name for pv in circuit._channels.values()] == ["RACE:b"]
        created = [h for h in server.received if h[0] == 18]
        cleared = [h for h in server.received if h[0] == 12]
        # Either RACE:a was never created, or the server was told to clear it.
        assert len(created) - len(cleared) == 1, (created, cleared)


# -- Context.__init__ failing half way -------------------------------------------------------
def test_context_init_failure_stops_the_threads_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no UDP socket for you")

    monkeypatch.setattr(context_module, "UdpSearcher", broken)
    before = {t for t in threading.enumerate() if t.name.startswith("caclient")}
    with pytest.raises(OSError, match="no UDP socket"):
        Context()
    left = [t for t in threading.enumerate() if t.name.startswith("caclient") and t not in before]
    for t in left:
        t.join(2)
    assert [t.name for t in left if t.is_alive()] == []


# -- a spurious wake-up while skipping a large late reply -------------------------------------
def test_spurious_readable_while_skipping_a_late_reply(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with Context(env=server.env, timeout=5) as ctx:
        pv = connected(ctx, "RACE:a")
        states = connection_states(pv)
        circuit = pv.circuit_manager
        conn, _, _ = server.channel("RACE:a")
        armed = threading.Event()
        fired = threading.Event()
        survived = threading.Event()
        real_select = _select.select

        class Shim:
            @staticmethod
            def select(r: Any, w: Any, x: Any, timeout: float | None = None) -> Any:
                if armed.is_set() and threading.current_thread() is circuit.thread:
                    if fired.is_set():
                        survived.set()  # back in select after the spurious wake-up
                    elif circuit.last_heard != heard_before and not real_select([r[0]], [], [], 0)[0]:
                        # the sent bytes were received and none are left: now skipping the rest
                        fired.set()
                        return [r[0]], [], []  # readable, but nothing to read
                return real_select(r, w, x, timeout)

        monkeypatch.setattr(circuit_module, "select", Shim)
        n = 100_000  # 800 kB: larger than the receive buffer, for an ioid nobody waits for
        heard_before = circuit.last_heard
        head = struct.pack(">HHHHIIII", 15, 0xFFFF, 6, 0, 1, 987654, n * 8, n)
        conn.sendall(head + b"\0" * 1000)
        armed.set()
        circuit._wakeup.wake()
        assert fired.wait(5)
        assert survived.wait(5), "the circuit did not come back to select"
        conn.sendall(b"\0" * (n * 8 - 1000))
        assert pv.read().data[0] == 1.5
        assert pv.circuit_manager is circuit and not circuit.closed
        assert states.empty()


# -- a failure while the circuit shuts down ----------------------------------------------------
def test_circuit_shutdown_failure_still_tells_the_context(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, thread_errors: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    real = PV._on_channel_lost

    def on_channel_lost(self: PV, *args: Any, **kwargs: Any) -> Any:
        if self.name == "RACE:a":
            raise RuntimeError("injected failure")
        return real(self, *args, **kwargs)

    with Context(env=server.env, timeout=5) as ctx:
        a = connected(ctx, "RACE:a")
        b = connected(ctx, "RACE:b")
        old = b.circuit_manager
        states = connection_states(b)
        monkeypatch.setattr(PV, "_on_channel_lost", on_channel_lost)
        server.drop_clients()
        assert states.get(timeout=5) == "disconnected"
        assert states.get(timeout=5) == "connected"  # searched again: the Context was told
        assert old not in ctx.circuits
        monkeypatch.setattr(PV, "_on_channel_lost", real)
    assert a.state == "disconnected" or a.state == "connected"
    assert thread_errors == []
    assert "injected failure" in caplog.text


# -- a subscription the server refuses ---------------------------------------------------------
def test_refused_subscription_tells_its_callbacks(server: FakeServer) -> None:
    with Context(env=server.env, timeout=5) as ctx:
        pv = connected(ctx, "RACE:a")
        got: queue.Queue[Any] = queue.Queue()
        sub = pv.subscribe()
        sub.add_callback(lambda s, r: got.put(r))
        subid = next(iter(pv.circuit_manager._subs))
        conn, cid, _ = server.channel("RACE:a")
        request = _proto.HEADER.pack(1, 16, 6, 1, 100, subid)
        conn.sendall(msg(11, request + b"no monitors here\0", p1=cid, p2=114))  # ECA_BADTYPE
        resp = got.get(timeout=5)
        assert resp.status == 114 and resp.data_count == 0
        assert isinstance(sub.error, RemoteError) and sub.error.status == 114
        assert "RACE:a" in str(sub.error) and "no monitors here" in str(sub.error)


# -- process hooks -----------------------------------------------------------------------------
def test_contexts_do_not_pile_up_process_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    fork_hooks: list[Any] = []
    exit_hooks: list[Any] = []
    real_fork, real_exit = os.register_at_fork, atexit.register
    monkeypatch.setattr(os, "register_at_fork", lambda **kw: (fork_hooks.append(kw), real_fork(**kw)))
    monkeypatch.setattr(atexit, "register", lambda fn, *a, **k: (exit_hooks.append(fn), real_exit(fn, *a, **k))[1])
    for _ in range(3):
        Context().close()
    assert len(fork_hooks) <= 1 and len(exit_hooks) <= 1, (fork_hooks, exit_hooks)


# -- close ---------------------------------------------------------------------------
def test_close_is_not_lost_when_its_wake_up_is_drained_with_another(server: FakeServer) -> None:
    """The circuit thread ends at once when close() comes between its select and its drain.

    The hook closes the circuit inside the circuit thread's drain of an
    unrelated wake-up: the close's own wake-up byte is drained with it, so a
    thread that looked at ``_closing`` before draining would sleep until its
    heartbeat (30 s here) with the Context closed.
    """
    with Context(env={**server.env, "EPICS_CA_CONN_TMO": "30"}, timeout=5) as ctx:
        pv = connected(ctx, "RACE:a")
        circuit = pv.circuit_manager
        wakeup = circuit._wakeup
        real_drain = wakeup.drain
        closed_in_drain = threading.Event()

        def drain() -> None:
            if not closed_in_drain.is_set():
                closed_in_drain.set()
                circuit.close()  # sets _closing, then writes its own wake-up byte
            real_drain()

        wakeup.drain = drain  # type: ignore[method-assign]
        wakeup.wake()  # an unrelated wake-up (as a send that needs a flush makes)
        assert closed_in_drain.wait(5.0)
        circuit.thread.join(5.0)
        assert not circuit.thread.is_alive()
