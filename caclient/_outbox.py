"""The send side of a circuit: the outbox, send combining and flushing (part of :class:`~caclient._circuit.Circuit`).

Any thread may call :meth:`Sender.send`.  Under ``_send_lock`` it appends to
the outbox, or, when the outbox is empty, tries one non-blocking
``socket.send``; what does not fit stays in the outbox and the circuit thread
flushes it (:meth:`Sender._flush`) when the socket is writable.  So callers
never block on the network, and messages keep the order in which ``send``
was called.

Combining: a thread that finds ``_send_lock`` taken does not sleep on it; it
appends its message to ``_handoff`` and the holder sends it with its own,
after or before releasing, in one system call.  Several threads' requests
thus coalesce into fewer sends.

Threads registered with ``Context._add_queue_only_thread`` (caclient.asyncio's
event loops) never write the socket: their sends always go to the outbox, and
only the one that finds it empty wakes the circuit thread.

Locks: ``_send_lock`` guards ``_outbox``, the socket's send side and the
``_messages_out`` / ``_bytes_out`` counters; it is a leaf lock (see the
circuit module for the order).  ``_handoff`` is a deque appended to without
the lock (atomic) and emptied only by the lock holder.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from typing import TYPE_CHECKING

from ._errors import DisconnectedError

if TYPE_CHECKING:
    from ._config import Address
    from ._context import Context
    from ._sync import Wakeup


class Sender:
    """The send side of a circuit (see the module docstring)."""

    if TYPE_CHECKING:  # provided by Circuit
        address: Address
        _context: Context
        _send_lock: threading.Lock
        _outbox: deque[bytes | memoryview]
        _handoff: deque[tuple[tuple[bytes | memoryview, ...], int]]
        _sock: socket.socket | None
        _wakeup: Wakeup
        _closing: bool
        _standby: bool
        _messages_out: int
        _bytes_out: int

        @property
        def closed(self) -> bool: ...
        def _sent_in_standby(self) -> None: ...

    def send(self, *chunks: bytes | memoryview, messages: int = 1) -> None:
        """Queue *chunks* (one message, or several in order) without blocking.

        See the module docstring.  Large payloads are passed as their own
        chunk so they are never copied into a joined buffer.  *messages* is
        how many CA messages the chunks hold (for the statistics).
        """
        self.send_then_lead(*chunks, messages=messages)
        if self._standby:
            self._sent_in_standby()

    def send_then_lead(self, *chunks: bytes | memoryview, messages: int = 1) -> None:
        """:meth:`send` for a caller that calls :meth:`lead` next (it sees to the reply itself).

        Combining: a thread that finds ``_send_lock`` taken does not wait
        for it; it hands its message over (``_handoff``) and the holder
        sends it with its own, in one system call, after or before releasing
        (see :meth:`_send_handed_off`).  Several threads' requests thus
        coalesce into fewer sends, and no sender sleeps on the lock.
        """
        if self._closing or self.closed:
            raise DisconnectedError(f"circuit to {self.address[0]}:{self.address[1]} is closed", address=self.address)
        lock = self._send_lock
        if not lock.acquire(blocking=False):
            self._handoff.append((chunks, messages))
            if not lock.acquire(blocking=False):
                return  # the holder sends it (it looks at _handoff after releasing)
            chunks, messages = (), 0  # ours is in _handoff now, in its place in the order
        try:
            wake = self._send_locked(chunks, messages)
        finally:
            lock.release()
        if self._handoff:
            wake = self._send_handed_off() or wake
        if wake:
            self._wakeup.wake()

    def _send_handed_off(self) -> bool:
        """After releasing ``_send_lock``: send what other threads handed over meanwhile."""
        wake = False
        lock = self._send_lock
        while self._handoff and lock.acquire(blocking=False):
            try:
                wake = self._send_locked((), 0) or wake
            finally:
                lock.release()
        return wake

    def _send_locked(self, chunks: tuple[bytes | memoryview, ...], messages: int) -> bool:
        """(holding ``_send_lock``) Send the handed-off messages, then *chunks*; True: wake the circuit thread.

        *messages* is how many CA messages *chunks* hold (for the statistics).
        """
        own = bool(chunks)
        handoff = self._handoff
        if handoff:
            parts: list[bytes | memoryview] = []
            while handoff:
                theirs, count = handoff.popleft()
                parts.extend(theirs)
                messages += count
            chunks = (*parts, *chunks)
        if not chunks:
            return False
        if self._closing or self.closed:
            # Requests handed over are dropped: the circuit fails their Pendings.
            if own:
                raise DisconnectedError(
                    f"circuit to {self.address[0]}:{self.address[1]} is closed", address=self.address
                )
            return False
        self._messages_out += messages
        self._bytes_out += len(chunks[0]) if len(chunks) == 1 else sum(map(len, chunks))
        sock = self._sock
        queue_only = threading.get_ident() in self._context._queue_only_threads
        if self._outbox or sock is None:
            self._outbox.extend(chunks)
            # (a non-empty outbox gets flushed anyway: an event loop's
            # thread does not wake the circuit thread again)
            return sock is not None and not queue_only
        if queue_only:
            # An event loop's thread: never touch the socket there (the
            # circuit thread flushes); one wake-up while the outbox fills.
            self._outbox.extend(chunks)
            return True
        wake = False
        try:
            if len(chunks) == 1:
                sent = sock.send(chunks[0])
            elif all(len(c) < 4096 for c in chunks):
                chunks = (b"".join(chunks),)  # several small requests: one plain send
                sent = sock.send(chunks[0])
            else:
                sent = sock.sendmsg(chunks)
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
        return wake

    def _flush(self) -> None:
        with self._send_lock:
            self._flush_locked()
        self._send_handed_off()

    def _flush_locked(self) -> None:
        sock = self._sock
        assert sock is not None
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
