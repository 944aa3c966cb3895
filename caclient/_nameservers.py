"""TCP name servers (``EPICS_CA_NAME_SERVERS``): searching over TCP.

Each configured ``host:port`` gets a :class:`NameServerLink`, a non-blocking
TCP connection owned by the UDP search thread (the same thread that owns the
search scheduler; nothing here is touched by any other thread).  The link
sends the same SEARCH messages as the UDP datagrams (without their leading
VERSION, which goes once at connection), parses the replies, and reconnects
with backoff when the server goes away.
"""

from __future__ import annotations

import errno
import logging
import socket
import time

from . import _proto
from ._config import Address

log = logging.getLogger("caclient.search")

_MAX_BACKLOG = 1 << 22  # bytes queued for a name server that does not read


class NameServerLink:
    """One TCP connection to a name server (owned by the UDP thread)."""

    def __init__(self, address: Address, host_name: str, client_name: str) -> None:
        self.address = address
        self._hello = _proto.version(0) + _proto.host_name(host_name) + _proto.client_name(client_name)
        self.sock: socket.socket | None = None
        self.connected = False
        self._out = bytearray()
        self._in = bytearray()
        self._retry_at = 0.0
        self._backoff = 0.5
        self.ip = address[0]

    def __repr__(self) -> str:
        state = "connected" if self.connected else ("connecting" if self.sock else "waiting")
        return f"<NameServerLink {self.address[0]}:{self.address[1]} {state}>"

    # -- connection ------------------------------------------------------------------
    def due(self, now: float) -> float | None:
        """When :meth:`maybe_connect` should next run, or None when a socket exists."""
        return None if self.sock is not None else self._retry_at

    def maybe_connect(self, now: float) -> None:
        if self.sock is not None or now < self._retry_at:
            return
        try:
            self.ip = socket.gethostbyname(self.address[0])
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            self._fail(f"cannot connect: {exc}", now)
            return
        sock.setblocking(False)
        err = sock.connect_ex((self.ip, self.address[1]))
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self._fail(f"cannot connect: {errno.errorcode.get(err, err)}", now)
            return
        self.sock = sock
        self.connected = False
        self._out = bytearray(self._hello)
        self._in = bytearray()

    def wants_write(self) -> bool:
        return self.sock is not None and (not self.connected or bool(self._out))

    def on_writable(self, now: float) -> bool:
        """Finish connecting and/or flush; return True when the link just connected."""
        sock = self.sock
        if sock is None:
            return False
        just_connected = False
        if not self.connected:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.close(f"cannot connect: {errno.errorcode.get(err, err)}", now)
                return False
            self.connected = True
            self._backoff = 0.5
            just_connected = True
            log.debug("name server %s:%d connected", *self.address)
        self._flush(now)
        return just_connected

    def _flush(self, now: float) -> None:
        if self.sock is None or not self.connected:
            return
        while self._out:
            try:
                n = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.close(f"send failed: {exc}", now)
                return
            del self._out[:n]

    def send(self, data: bytes, now: float) -> None:
        """Queue search messages (dropped while not connected: the scheduler retries)."""
        if self.sock is None or not self.connected:
            return
        if len(self._out) + len(data) > _MAX_BACKLOG:
            return  # the name server is not reading; the scheduler will retry
        self._out += data
        self._flush(now)

    def close(self, why: str | None = None, now: float | None = None) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if why is not None:
            self._fail(why, time.monotonic() if now is None else now)
        self.connected = False

    def _fail(self, why: str, now: float) -> None:
        log.debug("name server %s:%d: %s; retrying in %.1f s", self.address[0], self.address[1], why, self._backoff)
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, 10.0)

    # -- receiving -----------------------------------------------------------------------
    def on_readable(self, now: float) -> list[tuple[int, Address]]:
        """Read what arrived; return (search id, server address) for each search reply."""
        sock = self.sock
        if sock is None:
            return []
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as exc:
            self.close(f"receive failed: {exc}", now)
            return []
        if not data:
            self.close("closed by the server", now)
            return []
        self._in += data
        found: list[tuple[int, Address]] = []
        buf = self._in
        offset = 0
        while len(buf) - offset >= 16:
            cmd, size, dtype, _count, p1, p2 = _proto.HEADER.unpack_from(buf, offset)
            if size == 0xFFFF or size > 65536:
                self.close("unexpected large message", now)
                return found
            if len(buf) - offset < 16 + size:
                break
            offset += 16 + size
            if cmd == _proto.SEARCH:
                ip = self.ip if p1 in (0, 0xFFFFFFFF) else socket.inet_ntoa(p1.to_bytes(4, "big"))
                found.append((p2, (ip, dtype)))
        del buf[:offset]
        return found
