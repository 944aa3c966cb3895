"""The limits a client is measured against: a raw-socket Channel Access loop, and memcpy.

:class:`RawChannel` is the least a Python client can do per round trip: one
blocking TCP socket, one thread, no framing buffer beyond the reply, no
locks, no other thread to wake.  It sends the request bytes and receives the
reply (``READ_NOTIFY`` of one ``DBR_DOUBLE``: 16 + 8 bytes back;
``WRITE_NOTIFY``: 16 bytes back) with :mod:`struct` and ``recv_into``.  A
large array is received straight into one preallocated buffer and not
converted at all, so the array figure is the network's limit, not a
client's.  :func:`memcpy_mbps` is the memory's: numpy copying an array of the
same size into a preallocated one.

Everything here talks only to the IOC named by the environment (loopback,
private port; the parent checks that).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any

HEADER = struct.Struct(">HHHHII")
EXTENDED = struct.Struct(">II")
_VERSION, _READ_NOTIFY, _CREATE_CHAN, _WRITE_NOTIFY = 0, 15, 18, 19
_CLIENT_NAME, _HOST_NAME, _ACCESS_RIGHTS, _CREATE_CH_FAIL = 20, 21, 22, 26
_DBR_DOUBLE = 6
_MINOR = 13


def _padded(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return raw + b"\0" * (-len(raw) % 8)


def _message(cmd: int, payload: bytes, dtype: int, count: int, p1: int, p2: int) -> bytes:
    if len(payload) >= 0xFFFF or count >= 0xFFFF:
        return HEADER.pack(cmd, 0xFFFF, dtype, 0, p1, p2) + EXTENDED.pack(len(payload), count) + payload
    return HEADER.pack(cmd, len(payload), dtype, count, p1, p2) + payload


class RawChannel:
    """One channel on its own TCP circuit, driven by a plain blocking loop.

    Parameters
    ----------
    name : str
        The PV.
    timeout : float
        Socket timeout (connect and every receive).
    """

    def __init__(self, name: str, timeout: float = 5.0) -> None:
        port = int(os.environ["EPICS_CA_SERVER_PORT"])
        self.name = name
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray(64)
        self._view = memoryview(self._buf)
        self.ioid = 0
        self.sock.sendall(
            _message(_VERSION, b"", 0, _MINOR, 0, 0)
            + _message(_HOST_NAME, _padded("localhost"), 0, 0, 0, 0)
            + _message(_CLIENT_NAME, _padded("bench-floor"), 0, 0, 0, 0)
            + _message(_CREATE_CHAN, _padded(name), 0, 0, 1, _MINOR)
        )
        while True:
            cmd, dtype, count, _, p2, _ = self._read_message()
            if cmd == _CREATE_CHAN:
                self.native_type, self.count, self.sid = dtype, count, p2
                return
            if cmd == _CREATE_CH_FAIL:
                raise RuntimeError(f"{name}: the server refused the channel")

    def _recv_exact(self, view: memoryview) -> None:
        got = 0
        while got < len(view):
            n = self.sock.recv_into(view[got:])
            if n == 0:
                raise ConnectionResetError("the IOC closed the connection")
            got += n

    def _read_message(self) -> tuple[int, int, int, int, int, bytes]:
        head = self._view[:16]
        self._recv_exact(head)
        cmd, size, dtype, count, p1, p2 = HEADER.unpack_from(self._buf)
        if size == 0xFFFF and count == 0:
            self._recv_exact(self._view[:8])
            size, count = EXTENDED.unpack_from(self._buf)
        payload = bytearray(size)
        self._recv_exact(memoryview(payload))
        return cmd, dtype, count, p1, p2, bytes(payload)

    def read(self) -> float:
        """One READ_NOTIFY round trip of a DBR_DOUBLE; the value."""
        self.ioid += 1
        sock = self.sock
        sock.sendall(HEADER.pack(_READ_NOTIFY, 0, _DBR_DOUBLE, 1, self.sid, self.ioid))
        view = self._view[:24]
        got = sock.recv_into(view)
        while got < 24:
            n = sock.recv_into(view[got:])
            if n == 0:
                raise ConnectionResetError("the IOC closed the connection")
            got += n
        cmd, _, _, _, _, ioid = HEADER.unpack_from(self._buf)
        if cmd != _READ_NOTIFY or ioid != self.ioid:
            raise RuntimeError(f"unexpected reply: command {cmd}, ioid {ioid}")
        return float(struct.unpack_from(">d", self._buf, 16)[0])

    def write_wait(self, value: float) -> None:
        """One WRITE_NOTIFY round trip of a DBR_DOUBLE."""
        self.ioid += 1
        self.sock.sendall(HEADER.pack(_WRITE_NOTIFY, 8, _DBR_DOUBLE, 1, self.sid, self.ioid) + struct.pack(">d", value))
        self._recv_exact(self._view[:16])
        cmd, _, _, _, status, ioid = HEADER.unpack_from(self._buf)
        if cmd != _WRITE_NOTIFY or ioid != self.ioid or status != 1:
            raise RuntimeError(f"unexpected reply: command {cmd}, ioid {ioid}, status {status}")

    def read_array(self, count: int, into: memoryview) -> int:
        """READ_NOTIFY of *count* doubles, the payload received into *into* (no conversion); bytes."""
        self.ioid += 1
        self.sock.sendall(_message(_READ_NOTIFY, b"", _DBR_DOUBLE, count, self.sid, self.ioid))
        self._recv_exact(self._view[:16])
        cmd, size, _, n, _, ioid = HEADER.unpack_from(self._buf)
        if size == 0xFFFF and n == 0:
            self._recv_exact(self._view[:8])
            size, n = EXTENDED.unpack_from(self._buf)
        if cmd != _READ_NOTIFY or ioid != self.ioid or size > len(into):
            raise RuntimeError(f"unexpected reply: command {cmd}, ioid {ioid}, {size} bytes")
        self._recv_exact(into[:size])
        return int(size)

    def close(self) -> None:
        self.sock.close()


def memcpy_mbps(nelm: int, repeats: int) -> dict[str, Any]:
    """MB/s of numpy copying *nelm* doubles into a preallocated array (best of *repeats*)."""
    import numpy as np

    src = np.arange(nelm, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # (touch the pages once)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return {"mbps": src.nbytes / best / 1e6}
