"""A scripted Channel Access server for fault injection (tests only).

Real servers (the EPICS C IOC, caproto's server) are used for everything that
they can show; this one exists only to send what they never send on demand:
CREATE_CH_FAIL, SERVER_DISCONN, access-rights changes, CA_PROTO_ERROR for a
read, and malformed frames.  It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import select
import socket
import struct
import threading

from caclient.testing import free_port, loopback_env

HDR = struct.Struct(">HHHHII")
EPICS_EPOCH = 631152000


def msg(cmd: int, payload: bytes = b"", dtype: int = 0, count: int = 0, p1: int = 0, p2: int = 0) -> bytes:
    pad = (-len(payload)) % 8
    return HDR.pack(cmd, len(payload) + pad, dtype, count, p1, p2) + payload + b"\0" * pad


class FakeServer:
    """Serve DOUBLE scalars named in *values*; see the module docstring.

    ``create_fail`` counts how many CREATE_CHAN requests per name are refused
    before one succeeds; ``read_error`` names PVs whose reads get CA_PROTO_ERROR.
    """

    def __init__(self, values: dict[str, float]) -> None:
        self.values = dict(values)
        self.create_fail: dict[str, int] = {}
        self.read_error: set[str] = set()
        self.rights = 3
        self._stalled: set[socket.socket] | None = None  # connections whose requests are read and ignored
        self.port = free_port()
        self.received: list[tuple[int, int, int, int, int, int]] = []
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._channels: dict[int, tuple[socket.socket, int, str]] = {}  # sid -> (conn, cid, name)
        self._next_sid = 100
        self._stop = threading.Event()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", self.port))
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind(("127.0.0.1", self.port))
        self._tcp.listen(8)
        self._rpipe, self._wpipe = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="fake-ca-server", daemon=True)
        self._thread.start()

    @property
    def stalled(self) -> bool:
        """Whether the connections open when it was set are read and ignored.

        Setting it stalls the circuits open at that moment, as a hung IOC
        would; connections made afterwards (the client reconnecting after
        it dropped a stalled circuit) are served, so a test does not race
        the client's reconnect against clearing the flag.
        """
        return self._stalled is not None

    @stalled.setter
    def stalled(self, value: bool) -> None:
        with self._lock:
            self._stalled = set(self._clients) if value else None

    @property
    def env(self) -> dict[str, str]:
        """The loopback-only client environment that finds this server."""
        return loopback_env(server_port=self.port)

    def close(self) -> None:
        self._stop.set()
        self._wpipe.send(b"x")
        self._thread.join(5)
        for s in [self._udp, self._tcp, self._rpipe, self._wpipe, *self._clients]:
            s.close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- injection -------------------------------------------------------------------
    def channel(self, name: str) -> tuple[socket.socket, int, int]:
        """(connection, cid, sid) of the newest channel for *name*."""
        with self._lock:
            for sid, (conn, cid, n) in sorted(self._channels.items(), reverse=True):
                if n == name:
                    return conn, cid, sid
        raise KeyError(name)

    def inject(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)

    def drop_channel(self, name: str) -> None:
        """Send SERVER_DISCONN for the channel of *name*."""
        conn, cid, sid = self.channel(name)
        with self._lock:
            del self._channels[sid]
        self.inject(conn, msg(27, p1=cid))

    def drop_clients(self) -> None:
        """Close every client connection (the server goes on listening)."""
        with self._lock:
            clients = list(self._clients)
        for conn in clients:
            conn.shutdown(socket.SHUT_RDWR)

    def set_rights(self, name: str, rights: int) -> None:
        conn, cid, _ = self.channel(name)
        self.inject(conn, msg(22, p1=cid, p2=rights))

    # -- serving ---------------------------------------------------------------------
    def _run(self) -> None:
        buffers: dict[socket.socket, bytes] = {}
        while not self._stop.is_set():
            socks = [self._udp, self._tcp, self._rpipe, *self._clients]
            readable, _, _ = select.select(socks, [], [])
            for s in readable:
                if s is self._rpipe:
                    return
                if s is self._udp:
                    data, addr = s.recvfrom(65536)
                    self._search(data, addr)
                elif s is self._tcp:
                    conn, _ = s.accept()
                    self._clients.append(conn)
                    buffers[conn] = b""
                    conn.sendall(msg(0, dtype=0, count=13))
                else:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        self._clients.remove(s)
                        s.close()
                        continue
                    buf = buffers[s] + data
                    while len(buf) >= 16:
                        hdr = HDR.unpack_from(buf, 0)
                        if len(buf) < 16 + hdr[1]:
                            break
                        payload, buf = buf[16 : 16 + hdr[1]], buf[16 + hdr[1] :]
                        self._tcp_message(s, hdr, payload)
                    buffers[s] = buf

    def _search(self, data: bytes, addr: tuple[str, int]) -> None:
        off, out = 0, []
        while off + 16 <= len(data):
            cmd, size, _dt, _count, p1, _p2 = HDR.unpack_from(data, off)
            name = data[off + 16 : off + 16 + size].split(b"\0")[0].decode()
            off += 16 + size
            if cmd == 6 and name in self.values:
                out.append(msg(6, struct.pack(">H", 13), dtype=self.port, p1=0xFFFFFFFF, p2=p1))
        if out:
            self._udp.sendto(msg(0, count=13) + b"".join(out), addr)

    def _tcp_message(self, conn: socket.socket, hdr: tuple[int, int, int, int, int, int], payload: bytes) -> None:
        cmd, _size, dtype, count, p1, p2 = hdr
        with self._lock:
            self.received.append(hdr)
        stalled = self._stalled
        if stalled is not None and conn in stalled:
            return
        if cmd == 23:  # ECHO
            conn.sendall(msg(23))
        elif cmd == 6:  # SEARCH over TCP (name server)
            name = payload.split(b"\0")[0].decode()
            if name in self.values:
                conn.sendall(msg(6, dtype=self.port, p1=0xFFFFFFFF, p2=p1))
        elif cmd == 18:  # CREATE_CHAN
            name = payload.split(b"\0")[0].decode()
            left = self.create_fail.get(name, 0)
            if left:
                self.create_fail[name] = left - 1
                conn.sendall(msg(26, p1=p1))
                return
            with self._lock:
                sid = self._next_sid
                self._next_sid += 1
                self._channels[sid] = (conn, p1, name)
            conn.sendall(msg(22, p1=p1, p2=self.rights) + msg(18, dtype=6, count=1, p1=p1, p2=sid))
        elif cmd == 15:  # READ_NOTIFY
            with self._lock:
                entry = self._channels.get(p1)
            if entry is None:
                return
            name = entry[2]
            if name in self.read_error:
                text = b"no reads today\0"
                conn.sendall(msg(11, HDR.pack(*hdr) + text, p1=entry[1], p2=114))  # ECA_BADTYPE
                return
            conn.sendall(msg(15, struct.pack(">d", self.values[name]), dtype=6, count=1, p1=1, p2=p2))
        elif cmd == 19:  # WRITE_NOTIFY
            conn.sendall(msg(19, dtype=dtype, count=count, p1=1, p2=p2))
