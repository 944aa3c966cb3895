"""Beacon tracking: notice servers that appear or restart.  Pure logic.

A server announces itself with RSRV_IS_UP beacons: quickly after it starts,
then at a slower steady period.  A :class:`BeaconTracker` keeps, per server,
the last beacon id, the arrival time and an average period, and reports an
*anomaly* when

* a server it has not heard from before beacons (a new or restarted IOC),
* the beacon id goes backwards (the server restarted and counts from 0 again),
* beacons arrive much faster than their average period (a restarted server
  beacons quickly again), or after a long silence (it was unreachable).

An anomaly is the cue to search again at once for every name still
unresolved, so a restarted IOC is found in about a second instead of at the
next step of the search backoff.  Not thread-safe: the UDP thread owns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Address = tuple[str, int]

#: Weight of a new interval in the running average period (libca uses 1/8).
WEIGHT = 0.125
#: An interval this much shorter than the average period counts as a restart.
FAST = 0.8
#: ... and this much longer as a server coming back after being unreachable.
SLOW = 3.0


@dataclass(slots=True)
class _Server:
    beacon_id: int
    seen: float
    period: float | None = None


@dataclass(slots=True)
class BeaconTracker:
    """Per-server beacon history (see module docstring)."""

    _servers: dict[Address, _Server] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._servers)

    def observe(self, server: Address, beacon_id: int, now: float) -> bool:
        """Record a beacon from *server*; return True for an anomaly."""
        entry = self._servers.get(server)
        if entry is None:
            self._servers[server] = _Server(beacon_id, now)
            return True
        interval = now - entry.seen
        anomaly = False
        if beacon_id < entry.beacon_id and beacon_id < 4:
            anomaly = True  # counting from zero again: a restart
        elif entry.period is not None and (interval < FAST * entry.period or interval > SLOW * entry.period):
            anomaly = True
        if beacon_id == entry.beacon_id:
            return False  # a duplicate (the same beacon through two paths)
        entry.period = interval if entry.period is None else entry.period + WEIGHT * (interval - entry.period)
        entry.beacon_id = beacon_id
        entry.seen = now
        if anomaly:
            entry.period = None  # learn the new rhythm from scratch
        return anomaly

    def forget(self, server: Address) -> None:
        """Drop a server's history (e.g. when its circuit closed)."""
        self._servers.pop(server, None)
