"""Search scheduling: which names to search for, and when.  Pure logic.

:class:`SearchScheduler` has no sockets and no threads; the UDP thread owns one
and calls it with the current monotonic time (tests inject their own clock
values).  It is not thread-safe: only its owner touches it.

Policy (libca-like)
-------------------
* A newly requested name goes out in the next datagram.
* An unanswered name is searched again after an interval that starts at
  ``min_interval`` and doubles with each try, up to ``max_interval``.
* When new names are requested, older unanswered names have their interval
  reset to the start, but are sent no earlier than ``min_interval`` from now,
  so a loop that requests one name at a time does not flood the network.
* A beacon anomaly (a new or restarted server) resets every unanswered name
  the same way (:meth:`reset`).
* Datagrams carry many names, each led by a VERSION message, and are at most
  ``MAX_UDP_PAYLOAD`` bytes.  At most ``burst`` datagrams go out per call; the
  rest are deferred by ``pace`` seconds so the server's and our receive
  buffers are not overrun when thousands of names are searched at once.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from . import _proto


@dataclass(slots=True)
class _Entry:
    name: str
    message: bytes  # the SEARCH request, built once
    search_id: int
    interval: float
    due: float
    tries: int = 0
    generation: int = 0


@dataclass(slots=True)
class SearchScheduler:
    """Decide which search datagrams to send and when (see module docstring)."""

    min_interval: float = 0.032
    max_interval: float = 300.0
    burst: int = 32
    pace: float = 0.004
    max_payload: int = _proto.MAX_UDP_PAYLOAD
    encoding: str = "latin-1"
    _by_name: dict[str, _Entry] = field(default_factory=dict)
    _by_id: dict[int, _Entry] = field(default_factory=dict)
    _heap: list[tuple[float, int, int]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _resume: float = float("-inf")  # after a full burst, nothing goes out before this
    #: Name searches put in datagrams so far, each retry counted.
    searches_sent: int = 0

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def request(self, names: list[str], now: float, delay: float = 0.0) -> None:
        """Start searching for *names* (already-searched names are restarted).

        With *delay*, the first search goes out that many seconds from now
        and other names are left alone: used to back off from a server that
        answers searches but refuses the channel or the connection.

        Raises ValueError for names that are empty, too long, hold a NUL or
        cannot be encoded, after requesting the valid ones.
        """
        fresh = False
        invalid: list[str] = []
        for name in names:
            entry = self._by_name.get(name)
            if entry is None:
                try:
                    encoded = name.encode(self.encoding)
                except UnicodeEncodeError:
                    encoded = b""
                if not encoded or b"\0" in encoded or len(encoded) > self.max_payload - 64:
                    invalid.append(name)
                    continue
                search_id = next(self._ids)
                entry = _Entry(name, _proto.search(encoded, search_id), search_id, self.min_interval, now + delay)
                self._by_name[name] = entry
                self._by_id[entry.search_id] = entry
                self._push(entry)
                fresh = True
            elif delay:
                entry.interval = self.min_interval
                entry.due = now + delay
                self._push(entry)
            else:
                self._restart(entry, now, immediately=True)
        if fresh and not delay:
            self.reset(now, skip_new=True)
        if invalid:
            raise ValueError("invalid PV name" + (f" {invalid[0]!r}" if len(invalid) == 1 else f"s {invalid!r}"))

    def reset(self, now: float, skip_new: bool = False) -> None:
        """Bring every unanswered name back to the fastest interval."""
        for entry in self._by_name.values():
            if skip_new and entry.tries == 0:
                continue
            if entry.interval > self.min_interval:
                self._restart(entry, now, immediately=False)

    def _restart(self, entry: _Entry, now: float, immediately: bool) -> None:
        entry.interval = self.min_interval
        due = now if immediately else now + self.min_interval
        if due < entry.due:
            entry.due = due
            self._push(entry)

    def _push(self, entry: _Entry) -> None:
        entry.generation += 1
        heapq.heappush(self._heap, (entry.due, entry.generation, entry.search_id))

    def cancel(self, name: str) -> None:
        """Stop searching for *name*."""
        entry = self._by_name.pop(name, None)
        if entry is not None:
            del self._by_id[entry.search_id]
            self._shrink_if_done()

    def answered(self, search_id: int) -> str | None:
        """Mark the search with this id answered; return its name or None if unknown."""
        entry = self._by_id.pop(search_id, None)
        if entry is None:
            return None
        del self._by_name[entry.name]
        self._shrink_if_done()
        return entry.name

    def _shrink_if_done(self) -> None:
        # Dicts never shrink: once every name is found, start afresh rather
        # than keep tables sized for the largest burst of names ever searched.
        if not self._by_name:
            self._by_name = {}
            self._by_id = {}
            self._heap = []

    def name_of(self, search_id: int) -> str | None:
        entry = self._by_id.get(search_id)
        return None if entry is None else entry.name

    def next_deadline(self) -> float | None:
        """Monotonic time when :meth:`datagrams` next has something to send."""
        heap = self._heap
        while heap:
            due, gen, sid = heap[0]
            entry = self._by_id.get(sid)
            if entry is None or entry.generation != gen:
                heapq.heappop(heap)
                continue
            return max(due, self._resume)
        return None

    def datagrams(self, now: float, names: list[list[str]] | None = None) -> list[bytes]:
        """Build the datagrams due at *now* (at most ``burst``), advancing backoff.

        With *names*, the names in each datagram are appended to it as one
        list per datagram (for a log line).
        """
        out: list[bytes] = []
        if now < self._resume:
            return out
        head = _proto.version(0)
        current = [head]
        size = len(head)
        heap = self._heap
        while heap and heap[0][0] <= now:
            _due, gen, sid = heap[0]
            entry = self._by_id.get(sid)
            if entry is None or entry.generation != gen:
                heapq.heappop(heap)
                continue
            msg = entry.message
            if size + len(msg) > self.max_payload:
                out.append(b"".join(current))
                current, size = [head], len(head)
                if len(out) >= self.burst:
                    # Pause a little: pacing, not dropping.  What is left keeps
                    # its place in the queue, ahead of names that fall due later.
                    self._resume = now + self.pace
                    return out
            heapq.heappop(heap)
            current.append(msg)
            size += len(msg)
            if names is not None:
                if len(names) <= len(out):
                    names.append([])
                names[len(out)].append(entry.name)
            entry.tries += 1
            self.searches_sent += 1
            entry.due = now + entry.interval
            entry.interval = min(entry.interval * 2, self.max_interval)
            self._push(entry)
        if len(current) > 1:
            out.append(b"".join(current))
        return out
