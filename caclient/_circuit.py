"""One TCP virtual circuit to a CA server, and the thread that serves it.

Theory of operation
-------------------
A :class:`Circuit` exists per (server address, priority).  Its thread
``caclient-circuit[host:port,prio]`` connects, does the handshake and then
loops in ``select`` over the socket and a wakeup socketpair.  It owns the
receive side: the framing buffer and the parsing.  For every message it looks
up who is waiting (a :class:`~caclient._sync.Pending`, a channel, a
subscription) and completes it; anything that should reach user code becomes a
job for the dispatcher.  It never runs user code and never blocks on anything
but ``select``.

Sending: any thread may call :meth:`send`.  Under ``_send_lock`` it appends to
the outbox, or — when the outbox is empty — tries one non-blocking
``socket.send``; what does not fit stays in the outbox and the circuit thread
flushes it when the socket is writable.  So callers never block on the
network, and messages keep the order in which ``send`` was called.  Threads
registered with ``Context._add_queue_only_thread`` (caclient.asyncio's event
loops) never write the socket: their sends always go to the outbox, and only
the one that finds it empty wakes the circuit thread.

Locks (leaf locks; take ``_lock`` before ``_send_lock`` if both are needed)
  ``_lock`` guards ``_state``, ``_channels`` (cid → PV), ``_ioids``
  (ioid → Pending), ``_subs`` (subid → Subscription) and ``_queued_creates``.
  ``_send_lock`` guards ``_outbox`` and writes to the socket.

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _proto
from ._config import Address
from ._dbr import payload_size
from ._errors import DisconnectedError, ProtocolError, RemoteError, eca_message
from ._response import ReadResponse
from ._subscription import Subscription
from ._sync import IOThread, Pending, Wakeup

if TYPE_CHECKING:
    from ._context import Context
    from ._pv import PV

_deliver = Subscription._deliver  # (a plain function: no bound method made per update)

log = logging.getLogger("caclient.circuit")

CONNECTING = "connecting"
READY = "ready"
CLOSED = "closed"

_BUFSIZE = 1 << 18
_MAX_PAYLOAD = 1 << 31


class Circuit:
    """A TCP circuit to one server at one priority (see module docstring)."""

    def __init__(self, context: Context, address: Address, priority: int) -> None:
        self.address = address
        self.priority = priority
        self.minor_version = _proto.MINOR_VERSION
        self.last_heard = time.monotonic()
        self._context = context
        self._dispatcher = context._dispatcher
        self._encoding = context.encoding
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._state = CONNECTING
        self._channels: dict[int, PV] = {}
        self._ioids: dict[int, Pending] = {}
        self._subs: dict[int, Subscription] = {}
        self._queued_creates: list[bytes] = []
        self._outbox: deque[bytes | memoryview] = deque()
        self._sock: socket.socket | None = None
        self._wakeup = Wakeup()
        self._closing = False
        self._cids = itertools.count(1)
        self._events_off = False
        self.ever_connected = False  # set by the circuit thread once the TCP connection is up
        self._connected_some = False  # channels connected in the chunk being parsed
        config = context.config
        # A claimed payload beyond this is a protocol error, never an allocation.
        self._max_payload = _MAX_PAYLOAD if config.auto_array_bytes else min(_MAX_PAYLOAD, config.max_array_bytes + 64)
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

    # -- requests from other threads ---------------------------------------------------
    def create_channels(self, pvs: list[PV]) -> list[int]:
        """Register *pvs* and send CREATE_CHAN for each (batched); return their cids."""
        msgs = []
        cids = []
        with self._lock:
            if self._state == CLOSED:
                raise DisconnectedError(
                    f"circuit to {self.address[0]}:{self.address[1]} is closed", address=self.address
                )
            for pv in pvs:
                cid = next(self._cids)
                self._channels[cid] = pv
                pv._cid = cid  # written once here, before CREATE_CHAN is sent
                cids.append(cid)
                msgs.append(_proto.create_chan(pv.name.encode(self._encoding), cid))
            if self._state == CONNECTING:
                self._queued_creates.extend(msgs)
                msgs = []
        if msgs:
            self.send(b"".join(msgs))
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

    def cancel_io(self, ioid: int) -> None:
        """Forget a pending operation (its late reply will be dropped)."""
        with self._lock:
            self._ioids.pop(ioid, None)

    def add_subscription(self, subid: int, sub: Subscription) -> None:
        with self._lock:
            self._subs[subid] = sub

    def remove_subscription(self, subid: int) -> None:
        with self._lock:
            self._subs.pop(subid, None)

    def send(self, *chunks: bytes | memoryview) -> None:
        """Queue *chunks* (one message, or several in order) without blocking.

        See the module docstring.  Large payloads are passed as their own
        chunk so they are never copied into a joined buffer.
        """
        wake = False
        with self._send_lock:
            if self._closing or self._state == CLOSED:
                raise DisconnectedError(
                    f"circuit to {self.address[0]}:{self.address[1]} is closed", address=self.address
                )
            sock = self._sock
            if self._outbox or sock is None:
                self._outbox.extend(chunks)
                # (a non-empty outbox gets flushed anyway: an event loop's
                # thread does not wake the circuit thread again)
                wake = sock is not None and threading.get_ident() not in self._context._queue_only_threads
            elif threading.get_ident() in self._context._queue_only_threads:
                # An event loop's thread: never touch the socket there (the
                # circuit thread flushes); one wake-up while the outbox fills.
                self._outbox.extend(chunks)
                wake = True
            else:
                try:
                    sent = sock.send(chunks[0]) if len(chunks) == 1 else sock.sendmsg(chunks)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    sent = 0  # the circuit thread will see the failure on its next recv
                    wake = True
                for chunk in chunks:
                    if sent >= len(chunk):
                        sent -= len(chunk)
                        continue
                    self._outbox.append(memoryview(chunk)[sent:] if sent else chunk)
                    sent = 0
                    wake = True
        if wake:
            self._wakeup.wake()

    def events_off(self) -> None:
        """Ask the server to stop sending monitor updates (EVENTS_OFF)."""
        self.send(_proto.events_off())

    def events_on(self) -> None:
        """Ask the server to resume monitor updates (EVENTS_ON)."""
        self.send(_proto.events_on())

    def _forget_after_fork(self) -> None:
        """In a forked child: close this process's copy of the socket, never shut it down."""
        self._lock = threading.Lock()
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
            self._outbox.appendleft(hello + b"".join(creates))
            self._sock = sock
        self.last_heard = time.monotonic()

    def _flush(self) -> None:
        sock = self._sock
        assert sock is not None
        with self._send_lock:
            out = self._outbox
            while out:
                chunk = out[0]
                if len(chunk) < 65536 and len(out) > 1:
                    parts = [out.popleft()]
                    size = len(chunk)
                    while out and size < 65536:
                        nxt = out.popleft()
                        parts.append(nxt)
                        size += len(nxt)
                    chunk = b"".join(parts)
                    out.appendleft(chunk)
                try:
                    sent = sock.send(chunk)
                except (BlockingIOError, InterruptedError):
                    return
                if sent < len(chunk):
                    out[0] = memoryview(chunk)[sent:]
                    return
                out.popleft()

    def _loop(self) -> None:
        sock = self._sock
        assert sock is not None
        wakeup = self._wakeup
        buf = bytearray(_BUFSIZE)
        view = memoryview(buf)
        start = end = 0
        big: memoryview | None = None  # a message larger than the buffer, being filled
        big_filled = 0
        big_header: tuple[int, int, int, int, int, int] | None = None
        discard = 0  # bytes of an unwanted large message still to skip
        rlist = [sock, wakeup.rsock]
        conn_tmo = self._context.config.conn_tmo
        echo_timeout = self._context.config.echo_timeout
        echo_sent: float | None = None  # when the unanswered ECHO went out
        while True:
            wlist = [sock] if self._outbox else []
            # Heartbeat: after conn_tmo s of silence send ECHO; no answer
            # within echo_timeout s means the server is unresponsive.
            due = (echo_sent + echo_timeout) if echo_sent is not None else (self.last_heard + conn_tmo)
            readable, writable, _ = select.select(rlist, wlist, [], max(0.0, due - time.monotonic()))
            if self._closing:
                return
            if not readable and not writable and time.monotonic() >= due:
                if echo_sent is not None:
                    raise CircuitUnresponsive(
                        f"no reply from {self.address[0]}:{self.address[1]} within {echo_timeout:g} s of an echo"
                    )
                echo_sent = time.monotonic()
                log.debug("%s:%d quiet for %g s: ECHO", self.address[0], self.address[1], conn_tmo)
                self.send(_proto.echo())
                continue
            if wakeup.rsock in readable:
                wakeup.drain()
            if writable:
                self._flush()
            if sock not in readable:
                continue
            if discard:
                n = sock.recv_into(view, min(discard, _BUFSIZE))
                if n == 0:
                    raise ConnectionResetError("server closed the connection")
                discard -= n
                self.last_heard = time.monotonic()
                continue
            if big is not None:
                # Fill the large message's own buffer with as many recv calls
                # as the socket has data for, without going back to select.
                target = big
                while big_filled < len(big):
                    try:
                        n = sock.recv_into(target[big_filled:])
                    except (BlockingIOError, InterruptedError):
                        break
                    if n == 0:
                        raise ConnectionResetError("server closed the connection")
                    big_filled += n
                self.last_heard = time.monotonic()
                echo_sent = None
                if big_filled < len(big):
                    continue
                assert big_header is not None
                # The buffer goes to its response as is: no copy, and it
                # may be byte-swapped in place when decoded.
                self._after_chunk(self._handle(big_header, big))
                big = None
                big_header = None
                continue
            try:
                n = sock.recv_into(view[end:])
            except (BlockingIOError, InterruptedError):
                continue
            if n == 0:
                raise ConnectionResetError("server closed the connection")
            end += n
            self.last_heard = time.monotonic()
            echo_sent = None
            start, jobs, pending = self._parse(buf, start, end)
            if pending is not None:
                big_header, size, have = pending
                if self._big_payload_wanted(big_header):
                    # It does not fit in the buffer: receive it straight into its own.
                    # np.empty: a bytearray would be zero-filled first (40 ms for 80 MB).
                    big = np.empty(size, dtype=np.uint8).data
                    big[:have] = buf[end - have : end]
                    big_filled = have
                else:
                    discard = size - have  # a late reply nobody waits for: skip it, allocate nothing
                start = end = 0
            elif start == end:
                start = end = 0
            elif _BUFSIZE - end < 65536:
                remaining = end - start
                buf[:remaining] = buf[start:end]
                start, end = 0, remaining
            self._after_chunk(jobs)

    def _big_payload_wanted(self, hdr: tuple[int, int, int, int, int, int]) -> bool:
        """Check a large message before allocating for it.

        True: a subscription or read waits for it and the size fits the
        channel's element count.  False: nobody waits (a late reply): skip it.
        Raises ProtocolError for a size that the channel cannot produce.
        """
        cmd, size, dtype, _count, _p1, p2 = hdr
        pv: Any = None
        if cmd == _proto.EVENT_ADD:
            sub = self._subs.get(p2)
            pv = sub.pv if sub is not None else None
        elif cmd == _proto.READ_NOTIFY:
            waiting = self._ioids.get(p2)
            pv = waiting.key if waiting is not None else None
        if pv is None:
            return False
        native = getattr(pv, "native_data_count", None)
        if native is not None and size > payload_size(dtype, native) + 16:
            raise ProtocolError(
                f"{size} bytes for {pv.name}, more than its {native} elements of data type {dtype} can take"
            )
        return True

    def _after_chunk(self, jobs: list[tuple[Any, Callable[..., Any], tuple[Any, ...]]]) -> None:
        """After a received chunk: wake state waiters if channels connected, queue the jobs."""
        if self._connected_some:
            self._connected_some = False
            self._context._notify_waiters()
        if not jobs:
            return
        backlog = self._dispatcher.submit_many(jobs)
        high = self._context._backlog_high
        if backlog > high and not self._events_off:
            self._events_off = True
            log.debug("callback backlog %d: EVENTS_OFF to %s:%d", backlog, *self.address)
            self.events_off()
            self._dispatcher.watch_drain(high // 4, self._resume_events)

    def _resume_events(self) -> None:
        # Runs on a dispatcher worker when the backlog has drained.
        self._events_off = False
        try:
            self.events_on()
        except DisconnectedError:
            pass

    def _parse(
        self, buf: bytearray, start: int, end: int
    ) -> tuple[int, list[Any], tuple[tuple[int, int, int, int, int, int], int, int] | None]:
        """Handle every whole message in ``buf[start:end]``.

        Returns the new start, the dispatcher jobs, and — when the next message
        is larger than the buffer — ``(header, payload size, bytes of it held)``.
        """
        unpack = _proto.HEADER.unpack_from
        jobs: list[Any] = []
        subs = self._subs  # read without _lock: dict.get is atomic, writers hold _lock
        while end - start >= 16:
            cmd, size, dtype, count, p1, p2 = unpack(buf, start)
            body = start + 16
            if size == 0xFFFF:
                if end - start < 24:
                    break
                size, count = _unpack_ext(buf, body)
                body += 8
            if size > self._max_payload:
                raise ProtocolError(
                    f"message (command {cmd}) claims a payload of {size} bytes, over the limit of "
                    f"{self._max_payload} (EPICS_CA_MAX_ARRAY_BYTES with EPICS_CA_AUTO_ARRAY_BYTES=NO)"
                )
            if size > 16384 or cmd not in _SMALL_OK:
                _check_size(cmd, size, dtype, count)  # before waiting for (or allocating) a payload
            stop = body + size
            if stop > end:
                if stop - start > _BUFSIZE // 2:
                    # Too large for the shared buffer: it gets a buffer of its own.
                    return start, jobs, ((cmd, size, dtype, count, p1, p2), size, end - body)
                break
            if cmd == 1:  # EVENT_ADD: the hot path, inlined (the same as in _handle)
                sub = subs.get(p2)
                if sub is not None and size:  # size 0: the server acknowledged EVENT_CANCEL
                    update = (dtype, count, p1, bytes(buf[body:stop]))  # (see _subscription.Update)
                    if sub.all_updates:
                        sub._recent = update
                        jobs.append((sub.pv, sub._deliver_fn, update))
                    else:
                        job = sub._on_update_latest(update)
                        if job is not None:
                            jobs.append(job)
            else:
                more = self._handle((cmd, size, dtype, count, p1, p2), bytes(buf[body:stop]))
                if more:
                    jobs.extend(more)
            start = stop
        return start, jobs, None

    def _handle(self, hdr: tuple[int, int, int, int, int, int], payload: bytes | memoryview) -> list[Any]:
        """Handle one message other than a monitor update; return dispatcher jobs."""
        cmd, size, dtype, count, p1, p2 = hdr
        if cmd == _proto.READ_NOTIFY or cmd == _proto.WRITE_NOTIFY:
            with self._lock:
                pending = self._ioids.pop(p2, None)
            if pending is None:
                log.debug("dropping late reply (command %d, ioid %d)", cmd, p2)
                return []
            pending.complete((dtype, count, p1, payload))
            if pending.callback is not None:
                return [(pending.key, pending.callback, (pending,))]
            return []
        if cmd == _proto.EVENT_ADD:
            sub = self._subs.get(p2)
            if sub is not None and size:
                update: Any = (dtype, count, p1, payload)
                if type(payload) is memoryview:  # (a large payload of its own: decoded in place, once)
                    update = ReadResponse(dtype, count, p1, payload, self._encoding)
                if sub.all_updates:
                    sub._recent = update
                    return [(sub.pv, _deliver, (sub, update))]
                job = sub._on_update_latest(update)
                return [job] if job is not None else []
            return []
        if cmd == _proto.CREATE_CHAN:
            pv = self._channels.get(p1)
            if pv is None:
                return []
            self._connected_some = True
            return pv._on_connected(self, p1, p2, dtype, count)
        if cmd == _proto.ACCESS_RIGHTS:
            pv = self._channels.get(p1)
            return pv._on_access_rights(p2) if pv is not None else []
        if cmd == _proto.VERSION:
            self.minor_version = count
            return []
        if cmd == _proto.ECHO:
            return []
        if cmd == _proto.ERROR:
            return self._on_error(p1, p2, payload)
        if cmd in (_proto.CREATE_CH_FAIL, _proto.SERVER_DISCONN):
            with self._lock:
                pv = self._channels.pop(p1, None)
            if pv is None:
                return []
            if cmd == _proto.CREATE_CH_FAIL:  # search again, but not at once
                return pv._on_channel_lost(self, "the server refused to create the channel", True, 1.0)
            return pv._on_channel_lost(self, "the server dropped the channel", research=True)
        if cmd == _proto.CLEAR_CHANNEL:
            return []
        if cmd in _proto.COMMAND_NAMES:
            log.debug("ignoring %s from %s:%d", _proto.COMMAND_NAMES[cmd], *self.address)
            return []
        raise ProtocolError(f"unknown command {cmd} from {self.address[0]}:{self.address[1]}")

    def _on_error(self, cid: int, status: int, payload: bytes | memoryview) -> list[Any]:
        """CA_PROTO_ERROR: fail the operation it answers, now."""
        if len(payload) < 16:
            log.warning("malformed error message from %s:%d", *self.address)
            return []
        ocmd, _, _, _, op1, op2 = _proto.HEADER.unpack_from(payload, 0)
        text = bytes(payload[16:]).split(b"\0", 1)[0].decode("latin-1", "replace")
        message = eca_message(status) + (f" ({text})" if text else "")
        if ocmd in (_proto.READ_NOTIFY, _proto.WRITE_NOTIFY):
            with self._lock:
                pending = self._ioids.pop(op2, None)
            if pending is not None:
                name = pending.info
                pending.fail(RemoteError(f"{name}: {message}", status=status, pv=name, address=self.address))
                if pending.callback is not None:
                    return [(pending.key, pending.callback, (pending,))]
            return []
        if ocmd == _proto.EVENT_ADD:
            sub = self._subs.get(op2)
            if sub is not None:
                log.warning("subscription on %s refused by the server: %s", sub.pv.name, message)
                return sub._on_error(status, message)
            return []
        if ocmd == _proto.CREATE_CHAN:
            with self._lock:
                pv = self._channels.pop(op1, None)
            if pv is not None:
                return pv._on_channel_lost(self, message, research=True)
            return []
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
        return []

    def _shutdown(self, reason: BaseException | None) -> None:
        with self._lock:
            self._state = CLOSED
            channels = list(self._channels.values())
            pendings = list(self._ioids.values())
            self._channels.clear()
            self._ioids.clear()
            self._subs.clear()
        with self._send_lock:
            self._closing = True
            self._outbox.clear()
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self._wakeup.close()
        where = f"{self.address[0]}:{self.address[1]}"
        jobs: list[Any] = []
        for pending in pendings:
            pending.fail(
                DisconnectedError(f"{pending.info}: circuit to {where} closed", pv=pending.info, address=self.address)
            )
            if pending.callback is not None:
                jobs.append((pending.key, pending.callback, (pending,)))
        for pv in channels:
            jobs.extend(pv._on_channel_lost(self, f"circuit to {where} closed", research=False))
        if jobs:
            self._dispatcher.submit_many(jobs)
        self._context._on_circuit_closed(self, channels)


# Commands whose payload is small or absent, accepted below 16 KiB unchecked
# (the hot EVENT_ADD and READ_NOTIFY replies are checked only when large).
_SMALL_OK = frozenset(
    {
        _proto.VERSION,
        _proto.EVENT_ADD,
        _proto.READ_NOTIFY,
        _proto.WRITE_NOTIFY,
        _proto.CREATE_CHAN,
        _proto.ACCESS_RIGHTS,
        _proto.CREATE_CH_FAIL,
        _proto.SERVER_DISCONN,
        _proto.CLEAR_CHANNEL,
        _proto.ECHO,
        _proto.ERROR,
        _proto.EVENTS_OFF,
        _proto.EVENTS_ON,
        _proto.SEARCH,
        _proto.NOT_FOUND,
    }
)


def _check_size(cmd: int, size: int, dtype: int, count: int) -> None:
    """Refuse a header whose payload size cannot be right (a desynchronised stream)."""
    if cmd in (_proto.EVENT_ADD, _proto.READ_NOTIFY):
        if dtype > 38:
            raise ProtocolError(f"command {cmd} with unknown data type {dtype}")
        expected = payload_size(dtype, count)
        # Padding, and caproto's 8 extra metadata bytes for DBR_CTRL_STRING.
        if not expected <= size <= expected + 16:
            raise ProtocolError(f"command {cmd}: {size} bytes for {count} elements of data type {dtype}")
    elif cmd not in _SMALL_OK:
        raise ProtocolError(f"unknown command {cmd}")
    elif size > 16384:
        raise ProtocolError(f"command {cmd} with an implausible payload of {size} bytes")


class CircuitUnresponsive(Exception):
    """The server stopped answering (heartbeat failed); the circuit is dropped."""


def _unpack_ext(buf: bytearray, offset: int) -> tuple[int, int]:
    return int.from_bytes(buf[offset : offset + 4], "big"), int.from_bytes(buf[offset + 4 : offset + 8], "big")
