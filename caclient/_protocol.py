"""The receive side of a CA client circuit, sans I/O: bytes in, typed events out.

Theory of operation
-------------------
:class:`CircuitProtocol` owns the receive buffer of one circuit.  The socket
loop asks it where to put the next bytes (:meth:`~CircuitProtocol.recv_buffer`,
a writable memoryview for ``recv_into``) and tells it how many arrived
(:meth:`~CircuitProtocol.received`); tests hand it bytes with
:meth:`~CircuitProtocol.receive_data`, whole, byte by byte or with trailing
data.  It frames messages (16-byte headers, 24-byte extended ones), refuses
headers that cannot be right (unknown commands, payload sizes that do not
match the element count, sizes over ``EPICS_CA_MAX_ARRAY_BYTES`` when
``EPICS_CA_AUTO_ARRAY_BYTES=NO``, more data than the channel's element count
can produce) with :class:`~caclient.ProtocolError`, and reports each message
as one call on its :class:`CircuitEvents` sink, in stream order.  Events are
method calls rather than event objects: a call costs less than an object
per message.  The monitor update, the hot path, goes one step shorter: the
protocol holds the subid → handler table (:attr:`CircuitProtocol.monitors`,
each handler a subscription's ``_on_update``), calls the handler and keeps
the dispatcher job it returns in :attr:`CircuitProtocol.jobs`, where the
circuit's other events put theirs too.

A message larger than half the buffer is received into a buffer of its own,
allocated once its size was checked and only if someone waits for it (the
sink's :meth:`~CircuitEvents.large_message_limit`); a large reply nobody
waits for is skipped without allocating.  The buffer goes to the reader as
is (its values are the array it gets), so it is not reused while anything
refers to it; but the last two of :data:`SPARE_MIN` bytes or more are kept
(per circuit: a reader that caches the last value, as compat does, holds
one until the next has arrived) and received into again once nothing else
refers to them (and they are not more than twice the size needed):
fresh memory costs a page fault and the zeroing of each page (on an 80 MB
array, a third of the client's time, and now and then a stall while the
kernel compacts memory for huge pages), which a loop reading the same big
waveform then no longer pays.

Sending needs no state: the requests are built by the pure functions of
:mod:`caclient._proto` (requests in, bytes out).  The other id tables (cid →
PV, ioid → Pending, subid → Subscription) stay with the circuit, because
other threads change them under the circuit's lock together with its state;
this object is touched only by the circuit thread (``monitors`` is written
by others under the circuit's lock) and has no lock.

One decode path per message kind: :meth:`CircuitProtocol._message`, except
for the small EVENT_ADD, the hot path, which :meth:`CircuitProtocol.received`
hands to its subscription's handler inline.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, Protocol

from . import _proto
from ._dbr import NATIVE_ORDER_FORMAT, payload_size, swap_plan
from ._dispatch import DELIVERED, JobTuple
from ._errors import ProtocolError
from ._lazy import numpy as np

log = logging.getLogger("caclient.circuit")

BUFSIZE = 1 << 18  # the shared receive buffer
SPARE_MIN = 1 << 22  # large buffers of this size or more are kept for reuse (see module docstring)
MAX_PAYLOAD = 1 << 31

#: A small monitor update or I/O reply: ``(data_type, count, status, payload)``.
Reply = tuple[int, int, int, "bytes | memoryview"]

#: Takes a small monitor update (an exact tuple: see caclient._subscription.Update)
#: and returns the dispatcher job that delivers it, :data:`~caclient._dispatch.DELIVERED`
#: (handed on without a job), or None (dropped: coalesced).
MonitorHandler = Callable[[tuple[int, int, int, bytes]], "JobTuple | None"]


class CircuitEvents(Protocol):
    """What a :class:`CircuitProtocol` reports; implemented by the circuit (and by tests)."""

    def large_monitor_update(self, subid: int, reply: tuple[int, int, int, memoryview]) -> None:
        """EVENT_ADD whose payload was received into a buffer of its own."""

    def io_reply(self, ioid: int, reply: Reply) -> None:
        """READ_NOTIFY or WRITE_NOTIFY reply for *ioid* (payload empty for a write)."""

    def channel_created(self, cid: int, sid: int, data_type: int, count: int) -> None:
        """CREATE_CHAN reply: channel *cid* is *sid* on the server."""

    def access_rights(self, cid: int, rights: int) -> None:
        """ACCESS_RIGHTS for channel *cid*."""

    def channel_lost(self, cid: int, refused: bool) -> None:
        """CREATE_CH_FAIL (*refused*) or SERVER_DISCONN for channel *cid*."""

    def server_version(self, minor: int) -> None:
        """The server's VERSION message."""

    def remote_error(self, request: tuple[int, int, int, int, int, int], status: int, text: str) -> None:
        """CA_PROTO_ERROR: the header of the failed *request*, its ECA *status* and message."""

    def large_message_limit(self, command: int, ident: int) -> tuple[str, int | None] | None:
        """Whether a large EVENT_ADD/READ_NOTIFY for *ident* (subid/ioid) is wanted.

        None: nobody waits for it (it is skipped).  Otherwise ``(name, native
        element count or None)`` of its channel, to check the size against.
        """


class CircuitProtocol:
    """Framing and decoding for one circuit's receive side (see module docstring).

    Parameters
    ----------
    events : CircuitEvents
        Where each decoded message goes.
    max_array_bytes : int or None
        The largest payload accepted, or None for no limit but the 2 GiB of
        the protocol (``EPICS_CA_AUTO_ARRAY_BYTES=YES``).
    """

    def __init__(self, events: CircuitEvents, max_array_bytes: int | None = None) -> None:
        self._events = events
        #: subid → handler of its small monitor updates: the hot path's id table.
        #: Written by the circuit under its lock, read here without (dict.get is atomic).
        self.monitors: dict[int, MonitorHandler] = {}
        #: The jobs the handlers returned, for the circuit to submit and clear.
        self.jobs: list[JobTuple] = []
        self.max_payload = MAX_PAYLOAD if max_array_bytes is None else min(MAX_PAYLOAD, max_array_bytes + 64)
        self._buf = bytearray(BUFSIZE)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._big: memoryview | None = None  # a large message's own buffer, being filled
        self._big_filled = 0
        self._big_header: tuple[int, int, int, int, int, int] | None = None
        # A large numeric message's values, as big-endian unsigned ints of their
        # item size and as native ones over the same bytes, byte-swapped in place
        # chunk by chunk as they arrive: see _swap_received.
        self._swap: Any = None
        self._swap_native: Any = None
        self._swap_at = 0  # where the values start in the large buffer
        self._swap_item = 0  # their item size
        self._swapped = 0  # how many are in native order already
        self._spare: Any = None  # the last large buffer of SPARE_MIN bytes or more (see _large_buffer)
        self._spare2: Any = None  # the one before it
        self._alone = object()  # (referred to by this attribute only: see _large_buffer)
        self.discarding = 0  # bytes of an unwanted large message still to skip
        self._special = False  # a large message is being filled or skipped
        # Counters (written by the circuit thread once per chunk, read by anyone;
        # a dropped large update is counted by the sink): see caclient._stats.
        self.bytes_in = 0
        self.messages_in = 0
        self.updates = 0  # EVENT_ADD messages with data
        self.updates_dropped = 0

    def __repr__(self) -> str:
        state = "large" if self._big is not None else ("skipping" if self.discarding else "framing")
        return f"<CircuitProtocol {state} buffered={self._end - self._start}>"

    @property
    def filling_large(self) -> bool:
        """True while a large message's own buffer is being filled (worth reading on at once)."""
        return self._big is not None

    # -- bytes in -------------------------------------------------------------------------
    # (recv_buffer and received run once per received chunk: their common
    # case, framing, comes first and costs as few calls as possible.)
    def recv_buffer(self) -> memoryview:
        """The writable memory the next received bytes go to (for ``socket.recv_into``)."""
        if not self._special:
            return self._view[self._end :]
        if self.discarding:
            return self._view[: min(self.discarding, BUFSIZE)]
        assert self._big is not None
        return self._big[self._big_filled :]

    def received(self, n: int) -> bool:
        """*n* bytes were written to :meth:`recv_buffer`: report every message they complete.

        Returns True while a large message's own buffer is being filled, when
        reading on at once (without waiting for ``select``) saves a round.
        """
        self.bytes_in += n
        if self._special:
            return self._received_special(n)
        # Framing: every whole message in the buffer (inlined: this runs per chunk).
        buf, start = self._buf, self._start
        end = self._end = self._end + n
        unpack = _proto.HEADER.unpack_from
        monitors = self.monitors
        jobs = self.jobs
        add_job = jobs.append
        max_payload = self.max_payload
        # Counted once per chunk, nothing per delivered update: those are the
        # jobs added here less the jobs of other messages; the other messages
        # and the dropped updates are counted as they come (colder paths).
        njobs = len(jobs)
        nother = ndrop = other_jobs = ndirect = 0
        while end - start >= 16:
            cmd, size, dtype, count, p1, p2 = unpack(buf, start)
            body = start + 16
            if size == 0xFFFF:
                if end - start < 24:
                    break
                size = int.from_bytes(buf[body : body + 4], "big")
                count = int.from_bytes(buf[body + 4 : body + 8], "big")
                body += 8
            if size > max_payload:
                raise ProtocolError(
                    f"message (command {cmd}) claims a payload of {size} bytes, over the limit of "
                    f"{max_payload} (EPICS_CA_MAX_ARRAY_BYTES with EPICS_CA_AUTO_ARRAY_BYTES=NO)"
                )
            if size > 16384 or cmd not in _SMALL_OK:
                check_size(cmd, size, dtype, count)  # before waiting for (or allocating) a payload
            stop = body + size
            if stop > end:
                if stop - start > BUFSIZE // 2:
                    self._count(len(jobs) - njobs - other_jobs + ndirect, nother, ndrop)
                    return self._start_large((cmd, size, dtype, count, p1, p2), end - body, body)
                break
            if cmd == 1:  # EVENT_ADD, the hot path; size 0 acknowledges EVENT_CANCEL
                handler = monitors.get(p2)
                if handler is not None and size:
                    job = handler((dtype, count, p1, bytes(buf[body:stop])))
                    if job is not None:
                        if job is not DELIVERED:
                            add_job(job)
                        else:
                            ndirect += 1  # (handed to an event loop's sink)
                    else:
                        ndrop += 1  # coalesced: replaced a waiting update
                elif size:
                    ndrop += 1  # for a subscription already cancelled
                else:
                    nother += 1  # (the acknowledgement is a message, not an update)
            else:
                nother += 1
                before = len(jobs)
                self._message((cmd, size, dtype, count, p1, p2), bytes(buf[body:stop]))
                other_jobs += len(jobs) - before
            start = stop
        self._count(len(jobs) - njobs - other_jobs + ndirect, nother, ndrop)
        if start == end:
            self._start = self._end = 0
        elif BUFSIZE - end < 65536:
            remaining = end - start
            buf[:remaining] = buf[start:end]
            self._start, self._end = 0, remaining
        else:
            self._start = start
        return False

    def _count(self, delivered: int, others: int, dropped: int) -> None:
        """Add one chunk's counts to the counters."""
        self.messages_in += delivered + dropped + others
        self.updates += delivered + dropped
        if dropped:
            self.updates_dropped += dropped

    def _received_special(self, n: int) -> bool:
        if n <= 0:
            return False
        if self.discarding:
            self.discarding -= n
            self._special = self.discarding > 0
            return False
        big = self._big
        assert big is not None
        filled = self._big_filled = self._big_filled + n
        if self._swap is not None:
            self._swap_received(filled)
        if filled < len(big):
            return True
        header = self._big_header
        assert header is not None
        self._big = self._big_header = None
        self._special = False
        self.messages_in += 1
        # The buffer goes to its reader as is: no copy.  Values swapped on
        # arrival are marked by the view's format; others are byte-swapped in
        # place when decoded.
        if self._swap is not None:
            self._swap = self._swap_native = None
            self._message(header, big.cast(NATIVE_ORDER_FORMAT))
        else:
            self._message(header, big)
        return False

    def _swap_received(self, filled: int) -> None:
        """Byte-swap, in place, the values whose bytes are all in the large buffer now.

        Done per received chunk rather than once at the end: the chunk is
        still in the CPU's cache, and the swapping happens while the server
        is still sending the rest instead of after the last byte.
        """
        done = (filled - self._swap_at) // self._swap_item
        if done > self._swapped:
            # An assignment from the big-endian view to the native one over the
            # same bytes: numpy's casting loop swaps each element where it is
            # (same start, same stride, so each is read before it is written),
            # three times faster than ndarray.byteswap(inplace=True).
            start = self._swapped
            self._swap_native[start:done] = self._swap[start:done]
            self._swapped = done

    def receive_data(self, data: bytes) -> None:
        """Feed *data* as if received from the socket (tests; any split is fine)."""
        view = memoryview(data)
        while view:
            target = self.recv_buffer()
            n = min(len(target), len(view))
            target[:n] = view[:n]
            view = view[n:]
            self.received(n)

    # -- framing ---------------------------------------------------------------------------
    def _start_large(self, header: tuple[int, int, int, int, int, int], have: int, body: int) -> bool:
        """A message too large for the shared buffer: give it its own, or skip it."""
        cmd, size, dtype, count, _p1, p2 = header
        limit = self._events.large_message_limit(cmd, p2) if cmd in (_proto.EVENT_ADD, _proto.READ_NOTIFY) else None
        if limit is not None:
            name, native = limit
            if native is not None and size > payload_size(dtype, native) + 16:
                raise ProtocolError(
                    f"{size} bytes for {name}, more than its {native} elements of data type {dtype} can take"
                )
            array = self._large_buffer(size)
            big = array.data
            big[:have] = self._buf[body : body + have]
            self._big, self._big_filled, self._big_header = big, have, header
            plan = swap_plan(dtype, count, size)
            if plan is not None:
                at, item = plan
                values = array[at : at + item * count]
                self._swap, self._swap_native = values.view(f">u{item}"), values.view(f"<u{item}")
                self._swap_at, self._swap_item, self._swapped = at, item, 0
                self._swap_received(have)
        else:
            self.discarding = size - have  # a late reply nobody waits for: skip it, allocate nothing
            self.messages_in += 1  # (counted now, skipped as it arrives)
            if cmd == _proto.EVENT_ADD:
                self.updates += 1
                self.updates_dropped += 1
        self._special = True
        self._start = self._end = 0
        return self._big is not None

    def _large_buffer(self, size: int) -> Any:
        """A uint8 array of *size* bytes for a large message: a spare one when free, else a new one.

        A spare is free when this object's reference is the only one: every
        view of it (the response's payload, arrays made from it, a copy kept
        by a subscription) refers to it, as the buffer protocol requires.  Two
        are kept, because a reader that caches the last value (compat, as
        pyepics does) holds one until the next value has arrived.  A spare more
        than twice the size wanted is not used, and a new buffer pushes out the
        older spare, so that one huge array does not stay allocated for small ones.
        """
        alone = sys.getrefcount(self._alone)  # (an object only an attribute refers to, counted the same way)
        if self._spare is not None and size <= self._spare.size <= 2 * size and sys.getrefcount(self._spare) == alone:
            return self._spare[:size]
        if (
            self._spare2 is not None
            and size <= self._spare2.size <= 2 * size
            and sys.getrefcount(self._spare2) == alone
        ):
            self._spare, self._spare2 = self._spare2, self._spare  # (the newest first)
            return self._spare[:size]
        # np.empty: a bytearray would be zero-filled first (40 ms for 80 MB).
        array = np.empty(size, dtype=np.uint8)
        if size >= SPARE_MIN:
            self._spare2 = self._spare
            self._spare = array
        return array

    def _message(self, header: tuple[int, int, int, int, int, int], payload: bytes | memoryview[Any]) -> None:
        """Decode one message and report it (every kind but the small EVENT_ADD comes here)."""
        cmd, size, dtype, count, p1, p2 = header
        events = self._events
        if cmd == _proto.EVENT_ADD:
            if size:
                self.updates += 1
            if type(payload) is memoryview:
                events.large_monitor_update(p2, (dtype, count, p1, payload))  # (counts its drops)
            elif size:
                handler = self.monitors.get(p2)
                if handler is not None:
                    job = handler((dtype, count, p1, bytes(payload)))
                    if job is not None and job is not DELIVERED:
                        self.jobs.append(job)
        elif cmd == _proto.READ_NOTIFY or cmd == _proto.WRITE_NOTIFY:
            events.io_reply(p2, (dtype, count, p1, payload))
        elif cmd == _proto.CREATE_CHAN:
            events.channel_created(p1, p2, dtype, count)
        elif cmd == _proto.ACCESS_RIGHTS:
            events.access_rights(p1, p2)
        elif cmd == _proto.VERSION:
            events.server_version(count)
        elif cmd == _proto.CREATE_CH_FAIL or cmd == _proto.SERVER_DISCONN:
            events.channel_lost(p1, cmd == _proto.CREATE_CH_FAIL)
        elif cmd == _proto.ERROR:
            if len(payload) < 16:
                log.warning("malformed error message (%d bytes)", len(payload))
                return
            request = _proto.HEADER.unpack_from(payload, 0)
            text = bytes(payload[16:]).split(b"\0", 1)[0].decode("latin-1", "replace")
            events.remote_error(request, p2, text)
        elif cmd in _proto.COMMAND_NAMES:
            if cmd not in (_proto.ECHO, _proto.CLEAR_CHANNEL):
                log.debug("ignoring %s", _proto.COMMAND_NAMES[cmd])
        else:
            raise ProtocolError(f"unknown command {cmd}")


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


def check_size(cmd: int, size: int, dtype: int, count: int) -> None:
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
