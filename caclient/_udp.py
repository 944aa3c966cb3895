"""The UDP search thread.

Theory of operation
-------------------
One :class:`UdpSearcher` per Context owns one UDP socket and one
:class:`~caclient._search.SearchScheduler`.  Its thread ``caclient-udp`` is the
only code that touches either: other threads post *intents* (search these
names, cancel those) into ``_inbox`` and wake it through a socketpair.

The thread blocks only in ``select`` with the scheduler's next deadline.  A
batch of search replies is reported to the Context through
``on_found([(name, address, minor_version), ...])``, called on this thread;
the Context must not block in it.

Locks
  ``_lock`` guards ``_inbox`` and ``_closed`` only (a leaf lock).

First reply wins: once a name is answered its later replies are compared with
the first, and a reply from a different server logs one warning per name.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from . import _proto
from ._config import Address, Config
from ._search import SearchScheduler
from ._sync import IOThread, Wakeup

log = logging.getLogger("caclient.search")

FoundCallback = Callable[[list[tuple[str, Address, int]]], None]

_REMEMBER_ANSWERS = 100_000
_RCVBUF = 4 * 1024 * 1024


class UdpSearcher:
    """Owns the search socket and its thread (see module docstring)."""

    def __init__(self, config: Config, on_found: FoundCallback, encoding: str = "latin-1") -> None:
        self._config = config
        self._on_found = on_found
        self._lock = threading.Lock()
        self._inbox: deque[tuple[str, list[str]]] = deque()
        self._closed = False
        self._wakeup = Wakeup()
        self._scheduler = SearchScheduler(max_interval=config.max_search_period, encoding=encoding)
        self._answers: dict[int, tuple[str, Address]] = {}
        self._warned: set[str] = set()
        self._targets: list[Address] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        except OSError:
            pass
        self._sock.bind(("", 0))
        self._sock.setblocking(False)
        self._thread = IOThread(target=self._run, name="caclient-udp", daemon=True)
        self._thread.start()

    # -- API for other threads -------------------------------------------------------
    def search(self, names: list[str]) -> None:
        """Search for *names* until they are found or cancelled."""
        if names:
            self._post("search", names)

    def cancel(self, *names: str) -> None:
        """Stop searching for *names*."""
        if names:
            self._post("cancel", list(names))

    def _post(self, what: str, names: list[str]) -> None:
        with self._lock:
            if self._closed:
                return
            self._inbox.append((what, names))
        self._wakeup.wake()

    @property
    def unanswered(self) -> int:
        """Names still being searched for (approximate; read without a lock)."""
        return len(self._scheduler)

    def close(self, timeout: float = 1.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wakeup.wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the thread ------------------------------------------------------------------
    def _resolve_targets(self) -> None:
        for host, port in self._config.search_addresses():
            try:
                ip = socket.gethostbyname(host)
            except OSError as exc:
                log.warning("cannot resolve search address %s: %s", host, exc)
                continue
            if ip.endswith(".255"):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            self._targets.append((ip, port))
        if not self._targets:
            log.warning("no search addresses: set EPICS_CA_ADDR_LIST or EPICS_CA_AUTO_ADDR_LIST")

    def _run(self) -> None:
        try:
            self._resolve_targets()
            self._loop()
        except Exception:
            log.exception("UDP search thread failed")
        finally:
            self._sock.close()
            self._wakeup.close()

    def _loop(self) -> None:
        sched = self._scheduler
        sock = self._sock
        while True:
            with self._lock:
                if self._closed:
                    return
                intents = list(self._inbox)
                self._inbox.clear()
            now = time.monotonic()
            for what, names in intents:
                if what == "search":
                    try:
                        sched.request(names, now)
                    except ValueError as exc:
                        log.error("%s", exc)
                else:
                    for name in names:
                        sched.cancel(name)
            for datagram in sched.datagrams(now):
                for target in self._targets:
                    try:
                        sock.sendto(datagram, target)
                    except OSError as exc:
                        log.debug("search to %s failed: %s", target, exc)
            deadline = sched.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([sock, self._wakeup.rsock], [], [], timeout)
            if self._wakeup.rsock in readable:
                self._wakeup.drain()
            if sock in readable:
                self._receive()

    def _receive(self) -> None:
        found: list[tuple[str, Address, int]] = []
        for _ in range(256):  # a bounded batch per pass
            try:
                data, addr = self._sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP port unreachable on Linux
                log.debug("recvfrom: %s", exc)
                break
            self._datagram(data, addr, found)
        if found:
            try:
                self._on_found(found)
            except Exception:
                log.exception("error handling %d search replies", len(found))

    def _datagram(self, data: bytes, addr: Address, found: list[tuple[str, Address, int]]) -> None:
        offset = 0
        end = len(data)
        unpack = _proto.HEADER.unpack_from
        while offset + 16 <= end:
            cmd, size, dtype, _count, p1, p2 = unpack(data, offset)
            body = offset + 16
            offset = body + size
            if offset > end:
                log.debug("truncated datagram from %s", addr)
                return
            if cmd == _proto.SEARCH:
                minor = int.from_bytes(data[body : body + 2], "big") if size >= 2 else 11
                ip = addr[0] if p1 == 0xFFFFFFFF else socket.inet_ntoa(p1.to_bytes(4, "big"))
                self._found(p2, (ip, dtype), minor, found)
            # VERSION, NOT_FOUND, RSRV_IS_UP (beacons) and REPEATER_CONFIRM are ignored here.

    def _found(self, search_id: int, address: Address, minor: int, found: list[tuple[str, Address, int]]) -> None:
        name = self._scheduler.answered(search_id)
        if name is None:
            first = self._answers.get(search_id)
            if first is not None and first[1] != address and first[0] not in self._warned:
                self._warned.add(first[0])
                log.warning(
                    "PV %s found on multiple servers: using %s:%d, ignoring %s:%d",
                    first[0],
                    *first[1],
                    *address,
                )
            return
        self._answers[search_id] = (name, address)
        if len(self._answers) > _REMEMBER_ANSWERS:
            del self._answers[next(iter(self._answers))]
        found.append((name, address, minor))
