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
  ``_lock`` guards ``_inbox`` and ``_closed`` only (a leaf lock).  The
  counters (``datagrams_sent``, ``replies``, ``duplicate_replies``,
  ``beacons``, ``beacon_anomalies``, the scheduler's ``searches_sent``) are
  plain ints written only by this thread; :meth:`statistics` reads them.

First reply wins: once a name is answered its later replies are compared with
the first, and a reply from a different server logs one warning per name.

Beacons: the thread registers with the CA repeater on 127.0.0.1
(REPEATER_REGISTER, retried with backoff until REPEATER_CONFIRM); when none
answers it starts one (``python -m caclient repeater``, loopback only,
detached, like libca starts caRepeater) unless ``CACLIENT_NO_REPEATER`` is
set.  The repeater forwards server beacons here; a beacon anomaly (see
:mod:`caclient._beacons`) brings every unresolved name back to the fastest
search interval.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from . import _proto
from ._beacons import BeaconTracker
from ._config import Address, Config
from ._nameservers import NameServerLink
from ._search import SearchScheduler
from ._stats import SearchStatistics
from ._sync import IOThread, Wakeup

log = logging.getLogger("caclient.search")

FoundCallback = Callable[[list[tuple[str, Address, int]]], None]

# Answers remembered to warn about a second server answering for a name:
# duplicates arrive within milliseconds of the first answer, so the recent
# ones are enough (and a Context with 100k PVs does not keep 100k of them).
_REMEMBER_ANSWERS = 4096
_RCVBUF = 4 * 1024 * 1024


class UdpSearcher:
    """Owns the search socket and its thread (see module docstring)."""

    def __init__(
        self,
        config: Config,
        on_found: FoundCallback,
        encoding: str = "latin-1",
        host_name: str = "localhost",
        client_name: str = "unknown",
    ) -> None:
        self._config = config
        self._links = [NameServerLink(addr, host_name, client_name) for addr in config.name_servers]
        self._on_found = on_found
        self._lock = threading.Lock()
        self._inbox: deque[tuple[str, list[str], float]] = deque()
        self._closed = False
        self._wakeup = Wakeup()
        self._scheduler = SearchScheduler(max_interval=config.max_search_period, encoding=encoding)
        self._answers: dict[int, tuple[str, Address]] = {}
        self._addresses: dict[Address, Address] = {}  # one tuple per server, shared by its answers
        self._warned: set[str] = set()
        self._targets: list[Address] = []
        self._beacons = BeaconTracker()
        self.beacon_anomalies = 0
        self.beacons = 0
        self.datagrams_sent = 0
        self.replies = 0
        self.duplicate_replies = 0
        self.repeater_registered = False
        self._register_tries = 0
        self._next_register = 0.0
        self._repeater_pid: int | None = None
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
    def search(self, names: list[str], delay: float = 0.0) -> None:
        """Search for *names* (the first time after *delay* s) until found or cancelled."""
        if names:
            self._post("search", names, delay)

    def cancel(self, *names: str) -> None:
        """Stop searching for *names*."""
        if names:
            self._post("cancel", list(names))

    def _post(self, what: str, names: list[str], delay: float = 0.0) -> None:
        with self._lock:
            if self._closed:
                return
            # The thread drains its wake-up socket before it takes the inbox,
            # so a non-empty inbox already has a wake-up on its way: only the
            # first of a burst of posts (get_pvs called a thousand times) wakes it.
            wake = not self._inbox
            self._inbox.append((what, names, delay))
        if wake:
            self._wakeup.wake()

    def statistics(self, unanswered_names: list[str]) -> SearchStatistics:
        """A snapshot of the search counters; *unanswered_names* come from the Context's PVs."""
        return SearchStatistics(
            searches_sent=self._scheduler.searches_sent,
            datagrams_sent=self.datagrams_sent,
            replies=self.replies,
            duplicate_replies=self.duplicate_replies,
            unanswered=len(unanswered_names),
            unanswered_names=tuple(sorted(unanswered_names)[:100]),
            beacons=self.beacons,
            beacon_anomalies=self.beacon_anomalies,
            repeater_registered=self.repeater_registered,
        )

    @property
    def unanswered(self) -> int:
        """Names still being searched for (approximate; read without a lock)."""
        return len(self._scheduler)

    def _forget_after_fork(self) -> None:
        """In a forked child: close this process's copies of the sockets (no thread runs)."""
        self._lock = threading.Lock()
        self._closed = True
        for link in self._links:
            if link.sock is not None:
                link.sock.close()
        self._sock.close()
        self._wakeup.close()

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
        if not self._targets and not self._links:
            log.warning("no search addresses: set EPICS_CA_ADDR_LIST or EPICS_CA_AUTO_ADDR_LIST")

    def _run(self) -> None:
        try:
            self._resolve_targets()
            self._loop()
        except Exception:
            log.exception("UDP search thread failed")
        finally:
            for link in self._links:
                link.close()
            self._sock.close()
            self._wakeup.close()
            if self._repeater_pid is not None:
                try:  # reap it if it already exited (it is meant to outlive us)
                    os.waitpid(self._repeater_pid, os.WNOHANG)
                except ChildProcessError:
                    pass

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
            for what, names, delay in intents:
                if what == "search":
                    try:
                        sched.request(names, now, delay)
                    except ValueError as exc:
                        log.error("%s", exc)
                else:
                    for name in names:
                        sched.cancel(name)
            for link in self._links:
                link.maybe_connect(now)
            sent: list[list[str]] | None = [] if log.isEnabledFor(logging.DEBUG) else None
            for i, datagram in enumerate(sched.datagrams(now, sent)):
                self.datagrams_sent += 1
                if sent is not None:
                    log.debug("search sent to %s for %d names: %s", self._where(), len(sent[i]), " ".join(sent[i]))
                for target in self._targets:
                    try:
                        sock.sendto(datagram, target)
                    except OSError as exc:
                        log.debug("search to %s failed: %s", target, exc)
                for link in self._links:
                    link.send(datagram[16:], now)  # the same searches, minus the datagram's VERSION
            deadline = sched.next_deadline()
            for link in self._links:
                due = link.due(now)
                if due is not None:
                    deadline = due if deadline is None else min(deadline, due)
            if not self.repeater_registered:
                if now >= self._next_register:
                    self._register(now)
                deadline = self._next_register if deadline is None else min(deadline, self._next_register)
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            rlist: list[socket.socket] = [sock, self._wakeup.rsock]
            wlist: list[socket.socket] = []
            for link in self._links:
                if link.sock is not None:
                    rlist.append(link.sock)
                    if link.wants_write():
                        wlist.append(link.sock)
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
            if self._wakeup.rsock in readable:
                self._wakeup.drain()
            if sock in readable:
                self._receive()
            if self._links:
                self._serve_links(readable, writable)

    def _where(self) -> str:
        """Where searches go, for a log line."""
        where = [f"{host}:{port}" for host, port in self._targets]
        where += [f"name server {link.address[0]}:{link.address[1]}" for link in self._links]
        return ", ".join(where) or "nowhere"

    def _serve_links(self, readable: list[socket.socket], writable: list[socket.socket]) -> None:
        now = time.monotonic()
        found: list[tuple[str, Address, int]] = []
        for link in self._links:
            if link.sock is not None and link.sock in writable and link.on_writable(now):
                self._scheduler.reset(now)  # a name server (re)connected: ask it everything soon
            if link.sock is not None and link.sock in readable:
                for search_id, address in link.on_readable(now):
                    self._found(search_id, address, _proto.MINOR_VERSION, found)
        if found:
            try:
                self._on_found(found)
            except Exception:
                log.exception("error handling %d search replies", len(found))

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
            cmd, size, dtype, count, p1, p2 = unpack(data, offset)
            body = offset + 16
            offset = body + size
            if offset > end:
                log.debug("truncated datagram from %s", addr)
                return
            if cmd == _proto.SEARCH:
                minor = int.from_bytes(data[body : body + 2], "big") if size >= 2 else 11
                ip = addr[0] if p1 == 0xFFFFFFFF else socket.inet_ntoa(p1.to_bytes(4, "big"))
                self._found(p2, (ip, dtype), minor, found)
            elif cmd == _proto.RSRV_IS_UP:
                ip = addr[0] if p2 in (0, 0xFFFFFFFF) else socket.inet_ntoa(p2.to_bytes(4, "big"))
                self.beacons += 1
                if self._beacons.observe((ip, count), p1, time.monotonic()):
                    self.beacon_anomalies += 1
                    log.debug("beacon anomaly from %s:%d: searching again", ip, count)
                    self._scheduler.reset(time.monotonic())
            elif cmd == _proto.REPEATER_CONFIRM:
                if not self.repeater_registered:
                    log.debug("registered with the CA repeater")
                self.repeater_registered = True
            # VERSION and NOT_FOUND need nothing.

    def _register(self, now: float) -> None:
        """Send REPEATER_REGISTER; start a repeater if none answered the first try."""
        port = self._config.repeater_port
        self._register_tries += 1
        self._next_register = now + min(0.25 * 2 ** min(self._register_tries, 6), 10.0)
        if self._register_tries == 2 and self._config.spawn_repeater and self._repeater_pid is None:
            self._spawn_repeater(port)
        try:
            self._sock.sendto(_proto.repeater_register(), ("127.0.0.1", port))
        except OSError as exc:
            log.debug("repeater registration: %s", exc)

    def _spawn_repeater(self, port: int) -> None:
        log.info("no CA repeater answered on 127.0.0.1:%d: starting one", port)
        # posix_spawn in a new session: detached, and meant to outlive us (a
        # Popen object would complain at garbage collection that it runs on).
        argv = [sys.executable, "-m", "caclient", "repeater", "--port", str(port)]
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
                self._repeater_pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=actions, setsid=True)
            finally:
                os.close(devnull)
        except (OSError, AttributeError) as exc:
            log.warning("could not start a CA repeater: %s", exc)

    def _found(self, search_id: int, address: Address, minor: int, found: list[tuple[str, Address, int]]) -> None:
        name = self._scheduler.answered(search_id)
        if name is None:
            self.duplicate_replies += 1
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
        address = self._addresses.setdefault(address, address)
        if len(self._addresses) > 1024:  # (a bound, for a network with very many servers)
            self._addresses = {address: address}
        self._answers[search_id] = (name, address)
        if len(self._answers) > _REMEMBER_ANSWERS:
            del self._answers[next(iter(self._answers))]
        found.append((name, address, minor))
        self.replies += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("found %s on %s:%d (protocol 4.%d)", name, address[0], address[1], minor)
