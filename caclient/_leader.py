"""Leader/follower: who reads a circuit's socket (part of :class:`~caclient._circuit.Circuit`).

Theory of operation
-------------------
A blocking request (``transact`` with ``wait=True``) costs two thread
wake-ups when the circuit thread reads the reply: the circuit thread's
``select`` wakes, it completes the Pending, the caller's lock wakes.  On a
busy two-core machine each cross-thread wake-up is tens of microseconds,
more than the rest of a round trip.  So a caller that waits alone on a
circuit reads its own reply: it *leads*.

``_lead_lock`` is the receive-ownership token: its holder, and only it,
reads the socket and feeds the :class:`~caclient._protocol.CircuitProtocol`
(and its ``jobs``, ``_connected_some``, ``_echo_sent``).  The circuit
thread holds it while it reads (also while it sleeps in ``select``).  A
caller that wants to lead while the circuit thread reads sets
``_lead_wanted`` and waits as before; after that reply, with no other
request outstanding and nothing to flush, the circuit thread *stands by*
(``_stand_by``): it releases the token and sleeps in ``select`` on its
wakeup socket only, for ``STANDBY_LEASE`` at a time.  The next caller
(``send_then_lead`` + :meth:`lead`) takes the token without blocking,
waits in ``select`` on the socket and the wakeup socket, handles every
message it reads exactly as the circuit thread would (same ``_receive``,
same event methods; jobs go to the dispatcher, so a leader never runs
user code) until its own Pending is done.  Sequential reads then cost one
wake-up each: the caller's own ``select``.

The socket is never left unread while someone waits for a reply:
* a caller that cannot take the token (another leader holds it) has its
  ioid in ``_ioids`` first; every holder checks ``_ioids`` after releasing
  the token and wakes the circuit thread (or, being it, takes the token
  back) when replies are still awaited;
* any other send while standing by (``wait=False`` requests, subscribe,
  create, writes without notify) sets ``_sent_while_led`` and wakes the
  circuit thread unless a leader holds the token (which then sees the
  flag on release);
* a wake-up (close, an outbox to flush, a leader's error) makes the
  circuit thread take the token back; a leader sees the same readable
  wakeup socket in its ``select`` and steps down at once, then waits on
  its Pending like any follower;
* a lease with no leader ends the stand-by, so monitor updates on a
  circuit where nobody leads wait at most about two leases (~4 ms), only
  after a burst of blocking requests.  The price for a lone blocking
  request (a slow loop, one read every 10 ms) is one extra wake-up of the
  circuit thread, its lease tick.

Measured (in-process loop of 3000-5000 requests on the EPICS C IOC, two
shared cores, A = before, B = with leading; wall rates were too noisy on
the shared machine to compare, context switches per request are stable):
sequential reads 4.8-5.8 -> 1.1-1.2 context switches and 62-94 -> 51-75 µs
of process CPU per read; put(wait=True) 3.0-3.6 -> 1.6-1.9 switches;
compat ``PV.get(use_monitor=False)`` 3.1-4.4 -> 1.1-1.3 switches and
146-203 -> 104-122 µs CPU.  A raw blocking-socket loop on the same machine
took 15-22 µs of CPU and 40-60 µs per round trip: what remains is Python
on the request path (about 70 calls per read), not thread hand-offs.
A leader that hits an error on the socket or in the protocol does not
shut the circuit down itself: it stores the error in ``_lead_error`` and
wakes the circuit thread, which raises it and runs the usual shutdown.
The circuit thread closes the socket only while holding the token, so a
leader never selects on a closed descriptor.

Why this and not the alternatives: waking the waiter earlier, or a
cheaper one-shot completion, still leaves two wake-ups per round trip;
letting both threads ``select`` on the socket and race for the token
wakes both for every reply.  Stand-by is entered only on request and
left on any doubt, so the many-threads and monitor paths are unchanged.

Threads and locks: ``_stand_by`` runs on the circuit thread, :meth:`LeaderFollower.lead`
on caller threads, ``_sent_in_standby`` on any sending thread.  The token
``_lead_lock`` is not a guard of a critical section in the lock order: callers
only ever take it without blocking; the circuit thread takes it blocking only
after a wake-up that makes any leader step down at once.
"""

from __future__ import annotations

import select
import socket
import threading
from collections import deque
from typing import TYPE_CHECKING

from ._sync import Deadline, Pending, Wakeup

#: Seconds the standing-by circuit thread waits for a caller to lead before it reads again.
STANDBY_LEASE = 0.002


class LeaderFollower:
    """The receive-ownership part of a circuit (see the module docstring)."""

    if TYPE_CHECKING:  # provided by Circuit
        _lead_lock: threading.Lock
        _standby: bool
        _lead_wanted: bool
        _sent_while_led: bool
        _leads: int
        _lead_error: BaseException | None
        _ioids: dict[int, Pending]
        _outbox: deque[bytes | memoryview]
        _sock: socket.socket | None
        _wakeup: Wakeup
        _closing: bool
        _lead_select_cap: float

        def _receive(self, sock: socket.socket, until: float | None = None) -> None: ...
        def _flush(self) -> None: ...

    def _sent_in_standby(self) -> None:
        # A request went out while the circuit thread stands by: its reply
        # must not go unread.  Flag first, then look: either the leader
        # (releasing after this) sees the flag, or we see no leader and wake
        # the circuit thread.
        self._sent_while_led = True
        if not self._lead_lock.locked():
            self._wakeup.wake()

    def _stand_by(self, sock: socket.socket) -> None:
        """(circuit thread, holding ``_lead_lock``) Let callers read their own replies.

        Returns holding ``_lead_lock`` again, when woken (a send that needs
        the circuit thread, close, a leader's failure) or when a whole lease
        passed without a caller leading.
        """
        self._lead_wanted = False
        self._standby = True
        self._lead_lock.release()
        lease_leads = self._leads  # a lease in which nobody leads ends the stand-by
        wakeup = self._wakeup
        rlist = [wakeup.rsock]
        # A request that came in while we decided to stand by waits for a
        # reply that no leader may read: take the socket back unless a leader
        # holds it (it checks on release).  Later ones wake us, or the leader
        # holding the token sees them when it releases it.
        check = self._ioids or self._sent_while_led
        while True:
            if check and self._lead_lock.acquire(blocking=False):
                break
            check = False
            readable, writable, _ = select.select(rlist, [sock] if self._outbox else [], [], STANDBY_LEASE)
            if writable:
                self._flush()
            if readable or self._closing:
                # A leader sees the same wake-up in its select and steps down.
                self._lead_lock.acquire()
                break
            if self._leads != lease_leads:
                lease_leads = self._leads  # callers are leading: stay standing by
                continue
            if self._lead_lock.acquire(blocking=False):
                break
        self._standby = False
        self._sent_while_led = False
        error, self._lead_error = self._lead_error, None
        if error is not None:
            raise error

    def lead(self, pending: Pending, deadline: Deadline) -> None:
        """(caller thread, after :meth:`send_then_lead`) Read the socket until *pending* is done.

        Leads only when the circuit thread stands by and no other caller
        leads; otherwise returns at once and *pending* is completed by
        whoever reads.  Returns when *pending* is done, at the deadline, or
        when the circuit thread wants the socket back.  Everything read is
        handled exactly as the circuit thread would (same protocol object,
        same event methods); user callbacks still go to the dispatcher.
        """
        if not self._standby:
            self._lead_wanted = True  # the circuit thread stands by after this reply
            return
        lock = self._lead_lock
        if not lock.acquire(blocking=False):
            self._lead_wanted = True
            return  # a leader (or the circuit thread taking the socket back) reads for us
        try:
            sock = self._sock
            if not self._standby or sock is None or self._closing:
                return
            self._leads += 1
            rlist = [sock, self._wakeup.rsock]
            cap = self._lead_select_cap
            while not pending.done():
                timeout = deadline.remaining()
                if timeout == 0.0:
                    return  # timed out; the reply, if it comes, is late (dropped)
                if timeout is None or timeout > cap:
                    timeout = cap  # a long silence is the circuit thread's (heartbeat)
                readable = select.select(rlist, [], [], timeout)[0]
                if not readable or self._wakeup.rsock in readable:
                    return  # the deadline, silence, or the circuit thread wants the socket back
                try:
                    self._receive(sock, deadline.at)
                except Exception as exc:  # the circuit is broken: the circuit thread ends it
                    self._lead_error = exc
                    self._wakeup.wake()
                    return
                except BaseException:
                    # Interrupted (KeyboardInterrupt) part-way through a message:
                    # the stream position is lost, so the circuit is ended too.
                    self._lead_error = ConnectionAbortedError("interrupted while reading from the circuit")
                    self._wakeup.wake()
                    raise
        finally:
            lock.release()
            if self._ioids or self._sent_while_led:
                self._wakeup.wake()  # others wait for replies: the circuit thread reads again
