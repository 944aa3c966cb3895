"""Statistics records: what :meth:`Context.statistics` returns, and the latency ring.

Theory of operation
-------------------
The counters themselves live with the thread that writes them, as plain
ints: a circuit's receive counters on its :class:`~caclient._protocol.CircuitProtocol`
(circuit thread, counted once per received chunk), its send counters on the
:class:`~caclient._circuit.Circuit` (under the send lock that every send
already takes), the search counters on the UDP thread's searcher, the
callback backlog's high-water mark on the dispatcher (under its lock, once
per batch).  Nothing on the hot path takes a lock to count.

A snapshot reads them without stopping anyone, so the numbers of one record
are each exact but not taken at one instant (a message may be counted in
``messages_in`` and not yet in ``updates_delivered``).  The records are
frozen, slotted dataclasses: safe to keep, compare and pass between threads.

:class:`LatencyRing` keeps the last :data:`LATENCY_SAMPLES` round-trip times
of a circuit; only the circuit thread adds to it, and a snapshot copies it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._config import Address

if TYPE_CHECKING:
    from ._pv import PV

#: Round-trip samples kept per circuit for the percentiles.
LATENCY_SAMPLES = 256


class LatencyRing:
    """The most recent round-trip times of one circuit (seconds).

    Written by one thread (the circuit's); :meth:`percentiles` may run on
    any thread: it copies the ring first, and a sample written meanwhile is
    either in the copy or not.
    """

    __slots__ = ("_samples", "count")

    def __init__(self) -> None:
        self._samples = [0.0] * LATENCY_SAMPLES
        #: Samples ever added (the ring holds the last LATENCY_SAMPLES of them).
        self.count = 0

    def add(self, seconds: float) -> None:
        """Record one round trip (owner thread only)."""
        n = self.count
        self._samples[n % LATENCY_SAMPLES] = seconds
        self.count = n + 1

    def percentiles(self) -> tuple[float | None, float | None]:
        """``(p50, p99)`` of the kept samples (nearest rank), or ``(None, None)`` before any."""
        n = min(self.count, LATENCY_SAMPLES)
        if n == 0:
            return None, None
        kept = sorted(self._samples[:n])
        return kept[(n - 1) * 50 // 100], kept[(n - 1) * 99 // 100]


@dataclass(frozen=True, slots=True)
class CircuitStatistics:
    """Counters of one open circuit (one server at one priority).

    The counters start at zero when the circuit is created; a circuit that
    closes and is made again (a reconnect) starts afresh, and
    ``reconnects`` says how often that happened.

    Attributes
    ----------
    server : tuple of (str, int)
        The server's address.
    priority : int
        The CA priority of the circuit.
    state : str
        ``'connecting'``, ``'ready'`` or ``'closed'``.
    channels : int
        Channels on the circuit (connected or being created).
    subscriptions : int
        Active subscriptions (EVENT_ADD sent) on the circuit.
    messages_out : int
        CA messages sent (queued for the socket), handshake included.
    bytes_out : int
        Bytes of those messages.
    messages_in : int
        CA messages received.
    bytes_in : int
        Bytes of those messages.
    updates_delivered : int
        Monitor updates handed on to a subscription's callbacks (queued for a
        callback worker; the callbacks may not have run yet).
    updates_dropped : int
        Monitor updates not delivered: replaced by a newer one before
        delivery (subscriptions with ``all_updates=False``), or arriving for
        a subscription already cancelled.
    events_off : int
        How many times the circuit asked the server to pause monitors
        (EVENTS_OFF) because the callback backlog passed its high-water mark.
    events_paused : bool
        True while the server is asked to pause (EVENTS_OFF sent, EVENTS_ON
        not yet).
    latency_samples : int
        Round trips measured so far (READ_NOTIFY replies and ECHO heartbeats).
    latency_p50 : float or None
        Median round trip, in seconds, over the last 256 samples; None
        before the first.  One read in flight at a time is timed, so a
        burst of reads is sampled by its first.
    latency_p99 : float or None
        99th percentile round trip over the same samples.
    reconnects : int
        Earlier circuits to the same server and priority, in this Context,
        that were connected and closed (an IOC restart, a network cut ...).
    last_heard : float
        Seconds since the server last sent anything.
    """

    server: Address
    priority: int
    state: str
    channels: int
    subscriptions: int
    messages_out: int
    bytes_out: int
    messages_in: int
    bytes_in: int
    updates_delivered: int
    updates_dropped: int
    events_off: int
    events_paused: bool
    latency_samples: int
    latency_p50: float | None
    latency_p99: float | None
    reconnects: int
    last_heard: float


@dataclass(frozen=True, slots=True)
class SearchStatistics:
    """Counters of the search engine (the UDP searcher and name servers).

    Attributes
    ----------
    searches_sent : int
        Name searches sent, each retry counted (one name in one datagram
        is one search).
    datagrams_sent : int
        Search datagrams sent (each to every address of the search list).
    replies : int
        Search replies received that resolved a name.
    duplicate_replies : int
        Replies for names already resolved (a second server, or a late
        copy of the first answer).
    unanswered : int
        PVs of this Context still searching (no server answered yet).
    unanswered_names : tuple of str
        Their names, sorted; at most the first 100.
    beacons : int
        Server beacons received (through the CA repeater).
    beacon_anomalies : int
        Beacons that showed a new or restarted server, each of which made
        every unanswered name be searched again at once.
    repeater_registered : bool
        Whether the CA repeater confirmed our registration.
    """

    searches_sent: int
    datagrams_sent: int
    replies: int
    duplicate_replies: int
    unanswered: int
    unanswered_names: tuple[str, ...]
    beacons: int
    beacon_anomalies: int
    repeater_registered: bool


@dataclass(frozen=True, slots=True)
class CallbackStatistics:
    """The callback dispatcher, shared by every circuit of the Context.

    Attributes
    ----------
    workers : int
        Callback worker threads.
    backlog : int
        Callback jobs (monitor updates, completions ...) queued or running.
    backlog_high_water : int
        The largest backlog seen.  Past the Context's mark (20,000 jobs by
        default) circuits send EVENTS_OFF.
    jobs_run : int
        Callback jobs run.
    errors : int
        Jobs that raised (each is logged on ``caclient.dispatch``).
    """

    workers: int
    backlog: int
    backlog_high_water: int
    jobs_run: int
    errors: int


@dataclass(frozen=True, slots=True)
class Statistics:
    """A snapshot of a Context's engine: what :meth:`Context.statistics` returns.

    Attributes
    ----------
    circuits : tuple of CircuitStatistics
        One per open circuit, sorted by server and priority.
    search : SearchStatistics
    callbacks : CallbackStatistics
    """

    circuits: tuple[CircuitStatistics, ...]
    search: SearchStatistics
    callbacks: CallbackStatistics

    def circuit(self, server: Address, priority: int = 0) -> CircuitStatistics | None:
        """The record of the circuit to *server* at *priority*, or None."""
        for c in self.circuits:
            if c.server == server and c.priority == priority:
                return c
        return None


def names_for_log(pvs: Iterable[PV], limit: int = 10) -> str:
    """PV names for a DEBUG log line: the first *limit*, then how many more."""
    names = [pv.name for pv in pvs]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
