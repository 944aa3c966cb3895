"""One TCP virtual circuit to a CA server, and the thread that serves it.

Theory of operation
-------------------
A :class:`Circuit` exists per (server address, priority).  Its thread
``caclient-circuit[host:port,prio]`` connects, does the handshake and then
loops in ``select`` over the socket and a wakeup socketpair.  It owns the
socket's receive side and the circuit's :class:`~caclient._protocol.CircuitProtocol`
(framing, header checks and decoding, sans I/O).  The protocol reports each
message as a call on this class's event methods (``io_reply``,
``channel_created`` ...) or, for a monitor update, on the subscription's
handler in the protocol's ``monitors`` table, which look up who is waiting (a
:class:`~caclient._sync.Pending`, a PV, a subscription) and tell it through
a method named for the transition; anything that should reach user code
comes back as a :class:`~caclient._dispatch.Job`, and the jobs of one
received chunk go to the dispatcher together.  It never runs user code and
never blocks on anything but ``select``.

Leader/follower: a caller that waits alone on a circuit may read its own
reply (see :mod:`caclient._leader`, which holds that part of this class).

Flow control: past the Context's backlog mark the circuit thread sends
EVENTS_OFF; a dispatcher worker sends EVENTS_ON once the backlog drained.
Both change ``_events_off`` and queue their message under ``_flow_lock``, so
the server always ends up told what the flag says.

Sending: any thread may call :meth:`send`; it never blocks on the network,
and messages keep the order in which ``send`` was called (see
:mod:`caclient._outbox`, which holds that part of this class: the outbox,
combining several threads' sends, and the event-loop threads' queue-only rule).

Locks (leaf locks, in this order: ``_flow_lock``, ``_lock``, ``_send_lock``;
``_lead_lock`` is a token, not a guard of a critical section: it is only
ever taken without blocking by callers, and taken blocking only by the
circuit thread when a leader has been told to step down)
  ``_flow_lock`` guards ``_events_off`` and ``_events_off_count``; ``send``
  is called under it.
  ``_lock`` guards ``_state``, ``_channels`` (cid → PV), ``_ioids``
  (ioid → Pending), ``_subs`` (subid → Subscription), ``_queued_creates``
  and the timed read ``_probe_ioid``/``_probe_sent``.
  ``_send_lock`` guards ``_outbox``, writes to the socket and the send
  counters ``_messages_out``/``_bytes_out``.

Statistics (:meth:`statistics`): the receive counters are the protocol's,
written by the circuit thread once per chunk; the send counters are counted
under ``_send_lock``, which every send takes anyway; round trips go to a
:class:`~caclient._stats.LatencyRing` written only by the circuit thread
(one read in flight at a time is timed, and the ECHO heartbeat).

Shutdown: :meth:`close` marks the circuit closing and wakes the thread, which
fails what is pending with :class:`DisconnectedError`, tells its channels and
the Context, and closes the socket.  The same path runs when the server goes
away or sends bytes that break the protocol.
"""

from __future__ import annotations

import itertools
import logging
import select
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from . import _proto
from ._config import Address
from ._dispatch import DELIVERED, Job, JobTuple
from ._errors import DisconnectedError, ProtocolError, RemoteError, eca_message
from ._leader import LeaderFollower
from ._outbox import Sender
from ._protocol import CircuitProtocol, Reply
from ._pv import PV
from ._response import ReadResponse
from ._stats import CircuitStatistics, LatencyRing, names_for_log
from ._subscription import Subscription
from ._sync import IOThread, Pending, Wakeup

if TYPE_CHECKING:
    from ._context import Context

log = logging.getLogger("caclient.circuit")

CONNECTING = "connecting"
READY = "ready"
CLOSED = "closed"


class Circuit(LeaderFollower, Sender):
    """A TCP circuit to one server at one priority (see module docstring)."""

    def __init__(self, context: Context, address: Address, priority: int) -> None:
        self.address = address
        self.priority = priority
        self.minor_version = _proto.MINOR_VERSION
        self.last_heard = time.monotonic()
        self._context = context
        self._dispatcher = context._dispatcher
        self._encoding = context.encoding
        self._flow_lock = threading.Lock()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._state = CONNECTING
        self._channels: dict[int, PV] = {}
        self._ioids: dict[int, Pending] = {}
        self._subs: dict[int, Subscription] = {}
        self._queued_creates: list[bytes] = []
        self._outbox: deque[bytes | memoryview] = deque()
        # messages (and how many CA messages each holds) left for the send-lock holder
        self._handoff: deque[tuple[tuple[bytes | memoryview, ...], int]] = deque()
        self._sock: socket.socket | None = None
        self._wakeup = Wakeup()
        self._closing = False
        self._cids = itertools.count(1)
        self._events_off = False
        self._events_off_count = 0  # guarded by _flow_lock
        self._messages_out = 0  # guarded by _send_lock
        self._bytes_out = 0  # guarded by _send_lock
        self._probe_ioid = 0  # the read being timed (guarded by _lock; 0: none)
        self._probe_sent = 0.0
        self._latency = LatencyRing()  # (circuit thread writes)
        self.ever_connected = False  # set by the circuit thread once the TCP connection is up
        self._connected_some = False  # (reader) channels connected in the chunk being handled
        # Leader/follower (see the module docstring): who reads the socket.
        self._lead_lock = threading.Lock()  # held by the reader: the circuit thread, or a leading caller
        self._standby = False  # (circuit thread, under _lead_lock) it has handed the socket to callers
        self._lead_wanted = False  # a caller would have led: stand by after the current reply
        self._sent_while_led = False  # something was sent while a leader read (it must wake us)
        self._leads = 0  # callers that led, to tell an idle stand-by from a busy one
        self._lead_error: BaseException | None = None  # what broke the circuit under a leader
        self._echo_sent: float | None = None  # (reader) when the unanswered ECHO went out
        self._lead_select_cap = context.config.conn_tmo  # a leader's longest wait in select
        config = context.config
        # A claimed payload beyond the limit is a protocol error, never an allocation.
        self._protocol = CircuitProtocol(self, None if config.auto_array_bytes else config.max_array_bytes)
        self._monitors = self._protocol.monitors  # subid → handler (guarded by _lock for writes)
        self._jobs = self._protocol.jobs  # (circuit thread) what the chunk being handled produced
        host, port = address
        self.thread = IOThread(target=self._run, name=f"caclient-circuit[{host}:{port},{priority}]", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def __repr__(self) -> str:
        host, port = self.address
        return f"<Circuit {host}:{port} priority={self.priority} {self._state} channels={len(self._channels)}>"

    @property
    def ready(self) -> bool:
        return self._state == READY

    @property
    def closed(self) -> bool:
        return self._state == CLOSED

    def statistics(self, reconnects: int = 0) -> CircuitStatistics:
        """A snapshot of this circuit's counters (see :class:`~caclient._stats.CircuitStatistics`)."""
        protocol = self._protocol
        with self._lock:
            channels = len(self._channels)
            subscriptions = len(self._subs)
            state = self._state
        with self._send_lock:
            messages_out, bytes_out = self._messages_out, self._bytes_out
        p50, p99 = self._latency.percentiles()
        updates, dropped = protocol.updates, protocol.updates_dropped
        # (positional, in the field order of CircuitStatistics)
        return CircuitStatistics(
            self.address, self.priority, state, channels, subscriptions, messages_out, bytes_out,
            protocol.messages_in, protocol.bytes_in, max(0, updates - dropped), dropped,
            self._events_off_count, self._events_off, self._latency.count, p50, p99, reconnects,
            max(0.0, time.monotonic() - self.last_heard),
        )  # fmt: skip

    # -- requests from other threads ---------------------------------------------------
    def create_channels(self, pvs: list[PV]) -> list[int]:
        """Register *pvs* and send CREATE_CHAN for each (batched); return their cids.

        A PV that left the connecting state meanwhile (``go_idle``) is not
        created: each PV takes its cid under its own lock, and the cid is in
        the table before, so ``forget_channel`` always finds it.
        """
        with self._lock:
            if self._state == CLOSED:
                raise DisconnectedError(
                    f"circuit to {self.address[0]}:{self.address[1]} is closed", address=self.address
                )
            planned = [(next(self._cids), pv) for pv in pvs]
            for cid, pv in planned:
                self._channels[cid] = pv
        msgs = []
        cids = []
        dropped = []
        for cid, pv in planned:
            if pv._on_create_sent(self, cid):
                cids.append(cid)
                msgs.append(_proto.create_chan(pv.name.encode(self._encoding), cid))
            else:
                dropped.append(cid)
        with self._lock:
            for cid in dropped:
                self._channels.pop(cid, None)
            if self._state == CONNECTING:
                self._queued_creates.extend(msgs)
                msgs = []
        if msgs:
            self.send(b"".join(msgs), messages=len(msgs))
        return cids

    def forget_channel(self, cid: int, sid: int | None) -> None:
        """Drop a channel; send CLEAR_CHANNEL when it was connected."""
        with self._lock:
            self._channels.pop(cid, None)
        if sid is not None:
            try:
                self.send(_proto.clear_channel(sid, cid))
            except DisconnectedError:
                pass

    def add_io(self, ioid: int, pending: Pending) -> None:
        with self._lock:
            if self._state == CLOSED:
                raise DisconnectedError(
                    f"circuit to {self.address[0]}:{self.address[1]} is closed", address=self.address
                )
            self._ioids[ioid] = pending
            if self._probe_ioid not in self._ioids:  # none in flight: time this one
                self._probe_ioid = ioid
                self._probe_sent = time.monotonic()

    def cancel_io(self, ioid: int) -> None:
        """Forget a pending operation (its late reply will be dropped)."""
        with self._lock:
            self._ioids.pop(ioid, None)

    def add_subscription(self, subid: int, sub: Subscription) -> None:
        with self._lock:
            self._subs[subid] = sub
            self._monitors[subid] = sub._on_update

    def remove_subscription(self, subid: int) -> None:
        with self._lock:
            self._subs.pop(subid, None)
            self._monitors.pop(subid, None)

    def events_off(self) -> None:
        """Ask the server to stop sending monitor updates (EVENTS_OFF)."""
        with self._flow_lock:
            self._events_off = True
            self._events_off_count += 1
            self.send(_proto.events_off())

    def events_on(self) -> None:
        """Ask the server to resume monitor updates (EVENTS_ON)."""
        with self._flow_lock:
            self._events_off = False
            self.send(_proto.events_on())

    def _forget_after_fork(self) -> None:
        """In a forked child: close this process's copy of the socket, never shut it down."""
        self._flow_lock = threading.Lock()
        self._lock = threading.Lock()
        self._lead_lock = threading.Lock()
        self._standby = False
        self._send_lock = threading.Lock()
        self._closing = True
        self._state = CLOSED
        if self._sock is not None:
            self._sock.close()
        self._wakeup.close()

    def close(self) -> None:
        """Ask the circuit thread to shut down; does not wait."""
        with self._send_lock:
            self._closing = True
        self._send_handed_off()  # (drops what was handed over meanwhile)
        self._wakeup.wake()

    # -- the circuit thread ------------------------------------------------------------
    def _run(self) -> None:
        reason: BaseException | None = None
        try:
            self._connect()
            self._loop()
        except ProtocolError as exc:
            log.error("protocol error from %s:%d: %s", self.address[0], self.address[1], exc)
            reason = exc
        except CircuitUnresponsive as exc:
            log.warning("circuit unresponsive: %s", exc)
            reason = exc
        except OSError as exc:
            log.debug("circuit %s:%d: %s", self.address[0], self.address[1], exc)
            reason = exc
        except Exception as exc:
            log.exception("circuit thread %s failed", self.thread.name)
            reason = exc
        finally:
            self._shutdown(reason)

    def _connect(self) -> None:
        ctx = self._context
        sock = socket.create_connection(self.address, timeout=ctx.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setblocking(False)
        self.ever_connected = True
        hello = _proto.version(self.priority) + _proto.host_name(ctx.host_name) + _proto.client_name(ctx.client_name)
        with self._lock:
            creates = self._queued_creates
            self._queued_creates = []
            if self._state == CONNECTING:
                self._state = READY
        with self._send_lock:
            first = hello + b"".join(creates)
            self._outbox.appendleft(first)
            self._messages_out += 3 + len(creates)
            self._bytes_out += len(first)
            self._sock = sock
        self._send_handed_off()
        self.last_heard = time.monotonic()
        if log.isEnabledFor(logging.DEBUG):
            with self._lock:
                names = names_for_log(self._channels.values())
            log.debug(
                "circuit connected to %s:%d priority %d (%d channels waiting: %s)",
                *self.address,
                self.priority,
                len(creates),
                names,
            )

    def _loop(self) -> None:
        sock = self._sock
        assert sock is not None
        wakeup = self._wakeup
        rlist = [sock, wakeup.rsock]
        conn_tmo = self._context.config.conn_tmo
        echo_timeout = self._context.config.echo_timeout
        self._lead_lock.acquire()  # the circuit thread reads; released only to stand by
        while True:
            wlist = [sock] if self._outbox else []
            # Heartbeat: after conn_tmo s of silence send ECHO; no answer
            # within echo_timeout s means the server is unresponsive.
            echo_sent = self._echo_sent
            due = (echo_sent + echo_timeout) if echo_sent is not None else (self.last_heard + conn_tmo)
            readable, writable, _ = select.select(rlist, wlist, [], max(0.0, due - time.monotonic()))
            if wakeup.rsock in readable:
                # Drain before looking at the flags: close() sets _closing and
                # then wakes, so a wake-up consumed here is never one whose
                # flag we have not seen (checking first could swallow close's
                # wake-up and sleep until the heartbeat is due).
                wakeup.drain()
            if self._closing:
                return
            if not readable and not writable and time.monotonic() >= due:
                if echo_sent is not None:
                    raise CircuitUnresponsive(
                        f"no reply from {self.address[0]}:{self.address[1]} within {echo_timeout:g} s of an echo"
                    )
                self._echo_sent = time.monotonic()
                log.debug("%s:%d quiet for %g s: ECHO", self.address[0], self.address[1], conn_tmo)
                self.send(_proto.echo())
                continue
            if writable:
                self._flush()
            if sock in readable:
                self._receive(sock)
            if self._lead_wanted and not self._ioids and not self._outbox:
                self._stand_by(sock)
                if self._closing:
                    return

    def _receive(self, sock: socket.socket, until: float | None = None) -> None:
        """Read what the socket has and report it (the reader: circuit thread or leader).

        One receive path for every state of the protocol (framing, a large
        message's own buffer, skipping); a large message is read on without
        going back to select while the socket has data, unless *until* (a
        leader's deadline on the monotonic clock) has passed.  Only the
        reader (the holder of ``_lead_lock``) runs it, so the counters and
        the round-trip samples it writes have one writer at a time.
        """
        protocol = self._protocol
        while True:
            try:
                n = sock.recv_into(protocol.recv_buffer())
            except (BlockingIOError, InterruptedError):
                return  # (a spurious wake-up, or the socket is drained)
            if n == 0:
                raise ConnectionResetError("server closed the connection")
            self.last_heard = now = time.monotonic()
            echo_sent = self._echo_sent
            if echo_sent is not None:
                self._latency.add(now - echo_sent)
                self._echo_sent = None
            more = protocol.received(n)
            self._after_chunk()
            if not more:
                return
            if until is not None and now >= until:
                return  # a leader's deadline passed in a large message: the circuit thread reads on

    def _after_chunk(self) -> None:
        """After a received chunk: wake state waiters if channels connected, queue the jobs."""
        if self._connected_some:
            self._connected_some = False
            self._context._notify_waiters()
        jobs = self._jobs
        if not jobs:
            return
        backlog = self._dispatcher.submit_many(jobs)
        jobs.clear()
        high = self._context._backlog_high
        if backlog > high:
            with self._flow_lock:
                if self._events_off:
                    return
                self._events_off = True
                self._events_off_count += 1
                log.debug("callback backlog %d: EVENTS_OFF to %s:%d", backlog, *self.address)
                try:
                    self.send(_proto.events_off())
                except DisconnectedError:
                    return
            self._dispatcher.watch_drain(high // 4, self._resume_events)

    def _resume_events(self) -> None:
        # Runs on a dispatcher worker when the backlog has drained.
        try:
            self.events_on()
        except DisconnectedError:
            pass

    # -- protocol events (circuit thread; see CircuitEvents) -----------------------------
    def large_monitor_update(self, subid: int, reply: tuple[int, int, int, memoryview]) -> None:
        sub = self._subs.get(subid)
        job = None
        if sub is not None:
            # A payload of its own: decoded in place, once, by one response.
            job = sub._on_response(ReadResponse(reply[0], reply[1], reply[2], reply[3], self._encoding))
        if job is None:
            self._protocol.updates_dropped += 1
        elif job is not DELIVERED:
            self._jobs.append(job)

    def io_reply(self, ioid: int, reply: Reply) -> None:
        with self._lock:
            pending = self._ioids.pop(ioid, None)
            sent = self._probe_sent if ioid == self._probe_ioid else 0.0
        if sent and pending is not None and reply[3]:  # (a read: a write's reply has no payload)
            self._latency.add(time.monotonic() - sent)
        if pending is None:
            log.debug("dropping late reply (ioid %d)", ioid)
            return
        pending.complete(reply)
        if pending.callback is not None:
            self._jobs.append(Job(pending.key, pending.callback, (pending,)))

    def channel_created(self, cid: int, sid: int, data_type: int, count: int) -> None:
        pv = self._channels.get(cid)
        jobs = pv._on_connected(self, cid, sid, data_type, count) if pv is not None else None
        if jobs is None:
            # Nobody wants the channel any more (go_idle raced its creation):
            # forget it here and on the server.
            with self._lock:
                self._channels.pop(cid, None)
            self.send(_proto.clear_channel(sid, cid))
            return
        self._connected_some = True
        self._jobs.extend(jobs)
        if pv is not None and log.isEnabledFor(logging.DEBUG):
            log.debug("channel %s connected on %s:%d (sid %d)", pv.name, *self.address, sid)

    def access_rights(self, cid: int, rights: int) -> None:
        pv = self._channels.get(cid)
        if pv is not None:
            self._jobs.extend(pv._on_access_rights(rights))

    def channel_lost(self, cid: int, refused: bool) -> None:
        with self._lock:
            pv = self._channels.pop(cid, None)
        if pv is None:
            return
        if refused:  # CREATE_CH_FAIL: search again, but not at once
            self._jobs.extend(pv._on_channel_lost(self, "the server refused to create the channel", True, 1.0))
        else:
            self._jobs.extend(pv._on_channel_lost(self, "the server dropped the channel", research=True))

    def server_version(self, minor: int) -> None:
        self.minor_version = minor

    def large_message_limit(self, command: int, ident: int) -> tuple[str, int | None] | None:
        if command == _proto.EVENT_ADD:
            sub = self._subs.get(ident)
            pv = sub.pv if sub is not None else None
        else:
            waiting = self._ioids.get(ident)
            pv = waiting.key if waiting is not None and isinstance(waiting.key, PV) else None
        if pv is None:
            return None
        return pv.name, pv.native_data_count

    def remote_error(self, request: tuple[int, int, int, int, int, int], status: int, text: str) -> None:
        """CA_PROTO_ERROR: fail the operation it answers, now."""
        ocmd, _, _, _, op1, op2 = request
        message = eca_message(status) + (f" ({text})" if text else "")
        if ocmd in (_proto.READ_NOTIFY, _proto.WRITE_NOTIFY):
            with self._lock:
                pending = self._ioids.pop(op2, None)
            if pending is not None:
                name = pending.info
                pending.fail(RemoteError(f"{name}: {message}", status=status, pv=name, address=self.address))
                if pending.callback is not None:
                    self._jobs.append(Job(pending.key, pending.callback, (pending,)))
            return
        if ocmd == _proto.EVENT_ADD:
            with self._lock:
                sub = self._subs.pop(op2, None)
                self._monitors.pop(op2, None)
            if sub is not None:
                log.warning("subscription on %s refused by the server: %s", sub.pv.name, message)
                name = sub.pv.name
                error = RemoteError(
                    f"{name}: subscription refused: {message}", status=status, pv=name, address=self.address
                )
                self._jobs.extend(sub._on_refused(self, error, request[2]))
            return
        if ocmd == _proto.CREATE_CHAN:
            with self._lock:
                pv = self._channels.pop(op1, None)
            if pv is not None:
                self._jobs.extend(pv._on_channel_lost(self, message, research=True))
            return
        with self._lock:
            channels = list(self._channels.values())
        pv_name = next((pv.name for pv in channels if pv._sid == op1), "?")
        log.warning(
            "server %s:%d reported an error for %s (command %s): %s",
            self.address[0],
            self.address[1],
            pv_name,
            _proto.COMMAND_NAMES.get(ocmd, ocmd),
            message,
        )

    # -- the end -------------------------------------------------------------------------
    def _shutdown(self, reason: BaseException | None) -> None:
        with self._lock:
            self._state = CLOSED
            channels = list(self._channels.values())
            pendings = list(self._ioids.values())
            self._channels.clear()
            self._ioids.clear()
            self._subs.clear()
            self._monitors.clear()
        if log.isEnabledFor(logging.DEBUG):
            why = "closed by the client" if reason is None else (str(reason) or type(reason).__name__)
            log.debug(
                "circuit disconnected from %s:%d priority %d: %s (%d channels: %s)",
                *self.address,
                self.priority,
                why,
                len(channels),
                names_for_log(channels),
            )
        with self._send_lock:
            self._closing = True
            self._outbox.clear()
            self._handoff.clear()
            sock, self._sock = self._sock, None
        try:
            if sock is not None:
                sock.close()
            self._wakeup.close()
            where = f"{self.address[0]}:{self.address[1]}"
            jobs: list[JobTuple] = []
            for pending in pendings:
                pending.fail(
                    DisconnectedError(
                        f"{pending.info}: circuit to {where} closed", pv=pending.info, address=self.address
                    )
                )
                if pending.callback is not None:
                    jobs.append(Job(pending.key, pending.callback, (pending,)))
            for pv in channels:
                try:
                    jobs.extend(pv._on_channel_lost(self, f"circuit to {where} closed", research=False))
                except Exception:  # one PV's failure must not strand the others
                    log.exception("telling %s that its circuit closed", pv.name)
            if jobs:
                self._dispatcher.submit_many(jobs)
        finally:
            # Whatever failed above, the Context must forget this circuit and
            # search again for its channels.
            self._context._on_circuit_closed(self, channels)


class CircuitUnresponsive(Exception):
    """The server stopped answering (heartbeat failed); the circuit is dropped."""
