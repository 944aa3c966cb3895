"""A TCP fault-injection proxy for Channel Access tests (loopback only).

:class:`FaultProxy` listens on ``127.0.0.1`` and forwards every accepted
connection to a target server, in both directions, on one I/O thread
(``faultproxy-loop[<port>]``).  The test thread can put a fault between the
client and the server at any moment:

=====================  ====================================================
``stall()``            stop forwarding both ways; bytes are held (sockets
                       stay open) and ``resume()`` delivers them in order
``delay(seconds)``     add latency to server → client data
``cut()``              close every current connection (the client sees EOF)
``reset()``            close every current connection with RST
``inject_to_client``   send raw bytes to every current client connection
``refuse(True)``       refuse new connections (the listener is closed)
=====================  ====================================================

Every control is applied by the I/O thread before the call returns, so when
``stall()`` returns nothing more is forwarded.

Search relay
------------
A CA client finds a server by UDP search, and the search reply carries the
server's own TCP port, so a client would connect around the proxy.  With
``relay_search=True`` the proxy also binds UDP on its own port number,
forwards every datagram it receives there to the server's UDP port
(``search_target``, default: the target address), and rewrites the
``CA_PROTO_SEARCH`` replies that come back (command 6: data type = TCP port,
parameter 1 = server IPv4 address) so they name the proxy,
``127.0.0.1:<proxy port>``.  A client whose ``EPICS_CA_ADDR_LIST`` is
``127.0.0.1:<proxy port>`` then searches, and connects, through the proxy.

Command line (manual use)::

    python -m tools.faultproxy --target 127.0.0.1:5064 [--port N] [--relay-search]

reads commands from stdin: ``stall``, ``resume``, ``delay S``, ``cut``,
``reset``, ``refuse on|off``, ``inject HEX``, ``stats``, ``quit``.

Limits: the proxy does not parse the TCP stream, so bytes injected while
server data is in flight may land inside a message (they are queued behind
everything already received from the server, which keeps them on a message
boundary when the connection is idle).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import itertools
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from caclient._closing import ClosingContext
from caclient._sync import Wakeup

__all__ = ["FaultProxy", "rewrite_search_replies", "main"]

LOOPBACK = "127.0.0.1"

#: Bytes held per direction of one connection before the proxy stops reading.
HOLD_LIMIT = 8 * 1024 * 1024

_CONTROL_TIMEOUT = 2.0
_CLOSE_TIMEOUT = 2.0
_RECV_SIZE = 65536
_UDP_PEER_IDLE = 120.0
_UDP_MAX_PEERS = 256
_HEADER = struct.Struct(">HHHHII")
_CA_PROTO_SEARCH = 6
_BIND_ATTEMPTS = 5
_LISTEN_BACKLOG = 64

_V = TypeVar("_V")


def rewrite_search_replies(data: bytes, port: int, host: str = LOOPBACK) -> bytes:
    """Make every ``CA_PROTO_SEARCH`` reply in a datagram point at ``host:port``.

    Parameters
    ----------
    data : bytes
        A datagram from a CA server (any mix of messages).
    port : int
        TCP port to advertise (the header's data type field).
    host : str, optional
        IPv4 address to advertise (the header's parameter 1).

    Returns
    -------
    bytes
        The datagram with the search replies rewritten; other messages, and
        any truncated tail, are left as they were.
    """
    out = bytearray(data)
    ip = struct.unpack(">I", socket.inet_aton(host))[0]
    offset = 0
    while offset + _HEADER.size <= len(out):
        cmd, size, _dtype, count, _p1, p2 = _HEADER.unpack_from(out, offset)
        if cmd == _CA_PROTO_SEARCH:
            _HEADER.pack_into(out, offset, cmd, size, port, count, ip, p2)
        offset += _HEADER.size + size
    return bytes(out)


class _Conn:
    """One proxied connection: the client's socket and ours to the server."""

    __slots__ = (
        "ident",
        "client",
        "upstream",
        "connecting",
        "to_client",
        "to_server",
        "held_client",
        "held_server",
        "client_rd_done",
        "upstream_rd_done",
        "client_wr_done",
        "upstream_wr_done",
    )

    def __init__(self, ident: int, client: socket.socket, upstream: socket.socket) -> None:
        self.ident = ident
        self.client = client
        self.upstream = upstream
        self.connecting = True
        # Server -> client chunks: (monotonic time due, bytes or None for EOF,
        # whether they count as forwarded - injected bytes do not).
        self.to_client: deque[tuple[float, bytes | None, bool]] = deque()
        self.to_server: deque[bytes | None] = deque()
        self.held_client = 0
        self.held_server = 0
        self.client_rd_done = False
        self.upstream_rd_done = False
        self.client_wr_done = False
        self.upstream_wr_done = False

    def finished(self) -> bool:
        return self.client_wr_done and self.upstream_wr_done


class _Command:
    __slots__ = ("fn", "done", "result", "error")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _Locked(Generic[_V]):
    """A read-only attribute of the proxy: ``read(proxy)``, evaluated under the proxy's lock."""

    def __init__(self, doc: str, read: Callable[[FaultProxy], _V]) -> None:
        self.__doc__ = doc
        self._read = read

    @overload
    def __get__(self, proxy: None, owner: type[FaultProxy]) -> _Locked[_V]: ...

    @overload
    def __get__(self, proxy: FaultProxy, owner: type[FaultProxy]) -> _V: ...

    def __get__(self, proxy: FaultProxy | None, owner: type[FaultProxy]) -> _V | _Locked[_V]:
        if proxy is None:
            return self
        with proxy._cond:
            return self._read(proxy)


class FaultProxy(ClosingContext):
    """Forward TCP connections from ``127.0.0.1:port`` to `target`, with faults on demand.

    The proxy starts serving when constructed; use it as a context manager
    or call :meth:`close`.

    Parameters
    ----------
    target : tuple of (str, int)
        The server to forward to, e.g. an IOC's ``('127.0.0.1', port)``.
    listen_port : int, optional
        Port to listen on (TCP, and UDP with `relay_search`); a free port by
        default.
    relay_search : bool, optional
        Also relay CA UDP searches to `search_target`, rewriting the replies
        so that they name the proxy (see the module docstring).
    search_target : tuple of (str, int), optional
        Where relayed searches go; default `target` (a CA server listens for
        searches on the UDP port with its TCP port's number).

    Attributes
    ----------
    target : tuple of (str, int)
    search_target : tuple of (str, int) or None
    """

    def __init__(
        self,
        target: tuple[str, int],
        listen_port: int | None = None,
        *,
        relay_search: bool = False,
        search_target: tuple[str, int] | None = None,
    ) -> None:
        self.target = (str(target[0]), int(target[1]))
        self.search_target = None if not relay_search else (self.target if search_target is None else search_target)
        self._cond = threading.Condition(threading.Lock())
        self._commands: deque[_Command] = deque()
        self._stopping = False
        # State below is owned by the loop thread (counters are also read
        # under _cond by other threads).
        self._conns: dict[int, _Conn] = {}
        self._ids = itertools.count(1)
        self._stalled = False
        self._delay = 0.0
        self._drop_searches = False
        self._accepted = 0
        self._to_server = 0
        self._to_client = 0
        self._searches = 0
        self._search_replies = 0
        self._udp_peers: dict[tuple[str, int], tuple[socket.socket, float]] = {}
        self._udp_peer_of: dict[socket.socket, tuple[str, int]] = {}
        self._listener: socket.socket | None = None
        self._udp: socket.socket | None = None
        self._wakeup = Wakeup()
        try:
            self._port = self._bind(listen_port)
        except BaseException:
            self._close_all_sockets()
            raise
        self._thread = threading.Thread(target=self._run, name=f"faultproxy-loop[{self._port}]", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ setup
    def _bind(self, listen_port: int | None) -> int:
        attempts = 1 if listen_port is not None else _BIND_ATTEMPTS
        last: OSError | None = None
        for _ in range(attempts):
            port = listen_port if listen_port is not None else _pick_port(self.search_target is not None)
            try:
                self._listener = self._make_listener(port)
                if self.search_target is not None:
                    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    try:
                        udp.bind((LOOPBACK, port))
                    except OSError:
                        udp.close()
                        raise
                    udp.setblocking(False)
                    self._udp = udp
                return port
            except OSError as exc:
                last = exc
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None
        assert last is not None
        raise last

    @staticmethod
    def _make_listener(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, port))
            sock.listen(_LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    # ------------------------------------------------------------------ info
    @property
    def port(self) -> int:
        """The port the proxy listens on (TCP, and UDP when relaying searches)."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``('127.0.0.1', port)``."""
        return (LOOPBACK, self._port)

    connections = _Locked[int]("Number of client connections open now.", lambda p: len(p._conns))
    accepted = _Locked[int]("Number of client connections accepted since the proxy started.", lambda p: p._accepted)
    bytes_forwarded = _Locked[int](
        "Bytes delivered so far, both directions (injected bytes not counted).", lambda p: p._to_server + p._to_client
    )
    bytes_to_server = _Locked[int]("Bytes delivered from clients to the server so far.", lambda p: p._to_server)
    bytes_to_client = _Locked[int](
        "Bytes delivered from the server to clients so far (injected bytes not counted).", lambda p: p._to_client
    )
    searches_relayed = _Locked[int](
        "UDP datagrams relayed from clients to the server (with `relay_search`).", lambda p: p._searches
    )
    search_replies_relayed = _Locked[int](
        "UDP datagrams relayed (rewritten) from the server back to clients.", lambda p: p._search_replies
    )
    stalled = _Locked[bool]("Whether forwarding is stalled.", lambda p: p._stalled)

    def wait_until(self, predicate: Callable[[FaultProxy], bool], timeout: float) -> bool:
        """Wait until ``predicate(proxy)`` holds (checked on every proxy event).

        Parameters
        ----------
        predicate : callable
            Called with the proxy; must not call controls of the proxy.
        timeout : float
            Seconds to wait at most.

        Returns
        -------
        bool
            Whether the predicate held before the deadline.
        """
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._cond:
                self._cond.wait(min(remaining, 0.5))
        return True

    # ------------------------------------------------------------------ controls
    def stall(self) -> None:
        """Stop forwarding in both directions; hold the bytes, keep the sockets open."""
        self._call(lambda: setattr(self, "_stalled", True))

    def resume(self) -> None:
        """End a :meth:`stall`: deliver what was held, then forward as usual."""
        self._call(lambda: setattr(self, "_stalled", False))

    def delay(self, seconds: float) -> None:
        """Delay server → client data by `seconds` (0 turns the delay off).

        Applies to data received from the server after the call.
        """
        if seconds < 0:
            raise ValueError("delay must not be negative")
        self._call(lambda: setattr(self, "_delay", float(seconds)))

    def cut(self) -> int:
        """Close every current connection; clients see EOF.  Returns how many."""
        result: int = self._call(lambda: self._close_conns(rst=False))
        return result

    def reset(self) -> int:
        """Close every current connection with RST (``SO_LINGER`` 0).  Returns how many."""
        result: int = self._call(lambda: self._close_conns(rst=True))
        return result

    def inject_to_client(self, data: bytes) -> int:
        """Send `data` to every current client, as if the server had sent it.

        The bytes are queued behind everything already received from the
        server for that client (so they follow a whole message when the
        connection is idle); like server data they are held while stalled.

        Returns
        -------
        int
            The number of connections the bytes were queued on.
        """
        payload = bytes(data)
        result: int = self._call(lambda: self._inject(payload))
        return result

    def refuse(self, on: bool = True) -> None:
        """Refuse new connections (close the listener) or accept them again.

        Current connections are not affected; see :meth:`cut`.
        """
        self._call(lambda: self._set_refuse(bool(on)))

    def drop_searches(self, on: bool = True) -> None:
        """Drop (True) or relay (False) UDP search datagrams (with `relay_search`)."""
        self._call(lambda: setattr(self, "_drop_searches", bool(on)))

    def close(self) -> None:
        """Close every connection and socket and stop the thread (within 2 s); idempotent."""
        with self._cond:
            already = self._stopping
            self._stopping = True
        if not already:
            self._wakeup.wake()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(_CLOSE_TIMEOUT)
        if not self._thread.is_alive():
            self._close_all_sockets()

    def __repr__(self) -> str:
        return (
            f"<FaultProxy 127.0.0.1:{self._port} -> {self.target[0]}:{self.target[1]}"
            f" connections={len(self._conns)}{' stalled' if self._stalled else ''}>"
        )

    # ------------------------------------------------------------------ loop side
    def _call(self, fn: Callable[[], Any]) -> Any:
        cmd = _Command(fn)
        with self._cond:
            if self._stopping or not self._thread.is_alive():
                raise RuntimeError("the FaultProxy is closed")
            self._commands.append(cmd)
        self._wakeup.wake()
        if not cmd.done.wait(_CONTROL_TIMEOUT):
            raise RuntimeError("the FaultProxy thread did not apply the command in time")
        if cmd.error is not None:
            raise cmd.error
        return cmd.result

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._stopping:
                        break
                    commands = list(self._commands)
                    self._commands.clear()
                for cmd in commands:
                    try:
                        cmd.result = cmd.fn()
                    except BaseException as exc:  # handed to the caller
                        cmd.error = exc
                    cmd.done.set()
                if commands:
                    self._notify()
                self._step()
        finally:
            with self._cond:
                self._stopping = True
                leftover = list(self._commands)
                self._commands.clear()
            for cmd in leftover:
                cmd.error = RuntimeError("the FaultProxy is closed")
                cmd.done.set()
            self._close_conns(rst=False)
            self._close_udp_peers()
            self._notify()

    def _step(self) -> None:
        now = time.monotonic()
        rlist: list[socket.socket] = [self._wakeup.rsock]
        wlist: list[socket.socket] = []
        timeout: float | None = None
        if self._listener is not None:
            rlist.append(self._listener)
        if self._udp is not None:
            rlist.append(self._udp)
            rlist.extend(self._udp_peer_of)
            if self._udp_peers:
                timeout = _UDP_PEER_IDLE
        for conn in self._conns.values():
            if conn.connecting:
                wlist.append(conn.upstream)
                continue
            if not conn.client_rd_done and conn.held_server < HOLD_LIMIT:
                rlist.append(conn.client)
            if not conn.upstream_rd_done and conn.held_client < HOLD_LIMIT:
                rlist.append(conn.upstream)
            if self._stalled:
                continue
            if conn.to_server:
                wlist.append(conn.upstream)
            if conn.to_client:
                due = conn.to_client[0][0]
                if due <= now:
                    wlist.append(conn.client)
                else:
                    timeout = due - now if timeout is None else min(timeout, due - now)
        readable, writable, _ = select.select(rlist, wlist, [], timeout)
        if self._wakeup.rsock in readable:
            self._wakeup.drain()
        if self._listener is not None and self._listener in readable:
            self._accept()
        if self._udp is not None:
            self._relay(readable)
        changed = False
        for conn in list(self._conns.values()):
            try:
                changed |= self._service(conn, readable, writable)
            except OSError as exc:
                self._drop(conn, rst=exc.errno in (errno.ECONNRESET, errno.EPIPE))
                changed = True
                continue
            if conn.finished():
                self._drop(conn, rst=False)
                changed = True
        if changed:
            self._notify()

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(_LISTEN_BACKLOG):
            try:
                client, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setblocking(False)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rc = upstream.connect_ex(self.target)
            if rc not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                upstream.close()
                _abort(client)
                continue
            conn = _Conn(next(self._ids), client, upstream)
            with self._cond:
                self._conns[conn.ident] = conn
                self._accepted += 1
                self._cond.notify_all()

    def _service(self, conn: _Conn, readable: list[socket.socket], writable: list[socket.socket]) -> bool:
        """Move bytes for one connection; return whether anything happened."""
        changed = False
        if conn.connecting:
            if conn.upstream not in writable:
                return False
            err = conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise ConnectionRefusedError(err, f"connect to {self.target}: {errno.errorcode.get(err, err)}")
            conn.connecting = False
            return True
        if conn.client in readable:
            data = _recv(conn.client)
            if data is None:
                conn.client_rd_done = True
                conn.to_server.append(None)
            elif data:
                conn.to_server.append(data)
                conn.held_server += len(data)
            changed = True
        if conn.upstream in readable:
            data = _recv(conn.upstream)
            due = time.monotonic() + self._delay
            if data is None:
                conn.upstream_rd_done = True
                conn.to_client.append((due, None, False))
            elif data:
                conn.to_client.append((due, data, True))
                conn.held_client += len(data)
            changed = True
        if self._stalled:
            return changed
        if conn.upstream in writable:
            changed |= self._flush_to_server(conn)
        if conn.client in writable:
            changed |= self._flush_to_client(conn)
        return changed

    def _flush_to_server(self, conn: _Conn) -> bool:
        sent_any = False
        while conn.to_server:
            chunk = conn.to_server[0]
            if chunk is None:
                conn.to_server.popleft()
                with contextlib.suppress(OSError):
                    conn.upstream.shutdown(socket.SHUT_WR)
                conn.upstream_wr_done = True
                return True
            try:
                n = conn.upstream.send(chunk)
            except (BlockingIOError, InterruptedError):
                return sent_any
            sent_any = True
            conn.held_server -= n
            with self._cond:
                self._to_server += n
            if n < len(chunk):
                conn.to_server[0] = chunk[n:]
                return True
            conn.to_server.popleft()
        return sent_any

    def _flush_to_client(self, conn: _Conn) -> bool:
        sent_any = False
        now = time.monotonic()
        while conn.to_client:
            due, chunk, counted = conn.to_client[0]
            if due > now:
                return sent_any
            if chunk is None:
                conn.to_client.popleft()
                with contextlib.suppress(OSError):
                    conn.client.shutdown(socket.SHUT_WR)
                conn.client_wr_done = True
                return True
            try:
                n = conn.client.send(chunk)
            except (BlockingIOError, InterruptedError):
                return sent_any
            sent_any = True
            conn.held_client -= n
            if counted:
                with self._cond:
                    self._to_client += n
            if n < len(chunk):
                conn.to_client[0] = (due, chunk[n:], counted)
                return True
            conn.to_client.popleft()
        return sent_any

    def _inject(self, data: bytes) -> int:
        now = time.monotonic()
        count = 0
        for conn in self._conns.values():
            if conn.client_wr_done or any(chunk is None for _, chunk, _ in conn.to_client):
                continue  # the server's EOF is already queued for this client
            conn.to_client.append((now, data, False))
            conn.held_client += len(data)
            count += 1
        return count

    def _set_refuse(self, on: bool) -> None:
        if on:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        elif self._listener is None:
            self._listener = self._make_listener(self._port)

    def _drop(self, conn: _Conn, rst: bool) -> None:
        with self._cond:
            self._conns.pop(conn.ident, None)
        for sock in (conn.client, conn.upstream):
            if rst:
                _abort(sock)
            else:
                sock.close()

    def _close_conns(self, rst: bool) -> int:
        conns = list(self._conns.values())
        for conn in conns:
            if not rst and not conn.connecting:
                # Make sure the peer sees FIN at once, even if a duplicate
                # of the descriptor were alive somewhere.
                for sock in (conn.client, conn.upstream):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            self._drop(conn, rst)
        if conns:
            self._notify()
        return len(conns)

    # ------------------------------------------------------------------ UDP search relay
    def _relay(self, readable: list[socket.socket]) -> None:
        assert self._udp is not None and self.search_target is not None
        now = time.monotonic()
        if self._udp in readable:
            for _ in range(64):
                try:
                    data, peer = self._udp.recvfrom(_RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break  # e.g. ECONNREFUSED left over from an earlier send
                if self._drop_searches:
                    continue
                upstream = self._udp_upstream(peer, now)
                with contextlib.suppress(OSError):
                    upstream.sendto(data, self.search_target)
                with self._cond:
                    self._searches += 1
        for sock, peer in list(self._udp_peer_of.items()):
            if sock not in readable:
                continue
            for _ in range(64):
                try:
                    data = sock.recv(_RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if self._drop_searches:
                    continue
                with contextlib.suppress(OSError):
                    self._udp.sendto(rewrite_search_replies(data, self._port), peer)
                with self._cond:
                    self._search_replies += 1
        self._expire_udp_peers(now)
        if self._udp in readable or any(sock in readable for sock in self._udp_peer_of):
            self._notify()

    def _udp_upstream(self, peer: tuple[str, int], now: float) -> socket.socket:
        entry = self._udp_peers.get(peer)
        if entry is not None:
            self._udp_peers[peer] = (entry[0], now)
            return entry[0]
        if len(self._udp_peers) >= _UDP_MAX_PEERS:
            oldest = min(self._udp_peers, key=lambda p: self._udp_peers[p][1])
            self._forget_udp_peer(oldest)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        sock.setblocking(False)
        self._udp_peers[peer] = (sock, now)
        self._udp_peer_of[sock] = peer
        return sock

    def _expire_udp_peers(self, now: float) -> None:
        for peer, (_sock, last) in list(self._udp_peers.items()):
            if now - last > _UDP_PEER_IDLE:
                self._forget_udp_peer(peer)

    def _forget_udp_peer(self, peer: tuple[str, int]) -> None:
        entry = self._udp_peers.pop(peer, None)
        if entry is not None:
            self._udp_peer_of.pop(entry[0], None)
            entry[0].close()

    def _close_udp_peers(self) -> None:
        for peer in list(self._udp_peers):
            self._forget_udp_peer(peer)

    def _close_all_sockets(self) -> None:
        for conn in list(self._conns.values()):
            self._drop(conn, rst=False)
        self._close_udp_peers()
        for sock in (self._listener, self._udp):
            if sock is not None:
                sock.close()
        self._wakeup.close()
        self._listener = None
        self._udp = None


def _recv(sock: socket.socket) -> bytes | None:
    """Receive what is there: bytes, b'' if nothing after all, None at EOF."""
    try:
        data = sock.recv(_RECV_SIZE)
    except (BlockingIOError, InterruptedError):
        return b""
    return data if data else None


def _abort(sock: socket.socket) -> None:
    """Close `sock` with RST instead of FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _pick_port(udp_too: bool) -> int:
    """A free port on 127.0.0.1 (for TCP, and UDP when `udp_too`)."""
    from caclient.testing import free_port

    return free_port("both" if udp_too else "tcp")


# ---------------------------------------------------------------------- command line
def _parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, not {text!r}")
    return host, int(port)


_HELP = "commands: stall | resume | delay S | cut | reset | refuse on|off | inject HEX | stats | quit"


def _command(proxy: FaultProxy, line: str) -> bool:
    """Run one stdin command; return False to quit."""
    words = line.split()
    if not words:
        return True
    cmd, args = words[0].lower(), words[1:]
    if cmd in ("quit", "exit"):
        return False
    if cmd == "stall":
        proxy.stall()
    elif cmd == "resume":
        proxy.resume()
    elif cmd == "delay" and len(args) == 1:
        proxy.delay(float(args[0]))
    elif cmd == "cut":
        print(f"cut {proxy.cut()} connection(s)")
    elif cmd == "reset":
        print(f"reset {proxy.reset()} connection(s)")
    elif cmd == "refuse" and len(args) == 1 and args[0] in ("on", "off"):
        proxy.refuse(args[0] == "on")
    elif cmd == "inject" and len(args) == 1:
        print(f"injected into {proxy.inject_to_client(bytes.fromhex(args[0]))} connection(s)")
    elif cmd == "stats":
        print(
            f"connections={proxy.connections} accepted={proxy.accepted} "
            f"to_server={proxy.bytes_to_server} to_client={proxy.bytes_to_client} "
            f"searches={proxy.searches_relayed} replies={proxy.search_replies_relayed} stalled={proxy.stalled}"
        )
    else:
        print(_HELP)
    return True


def main(argv: list[str] | None = None) -> int:
    """Run a proxy until stdin closes, ``quit`` or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m tools.faultproxy", description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=_parse_address, required=True, help="server host:port")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    parser.add_argument("--relay-search", action="store_true", help="also relay CA UDP searches (see docs)")
    args = parser.parse_args(argv)
    with FaultProxy(args.target, args.port, relay_search=args.relay_search) as proxy:
        print(f"faultproxy listening on 127.0.0.1:{proxy.port} -> {args.target[0]}:{args.target[1]}")
        if args.relay_search:
            print(f"set EPICS_CA_ADDR_LIST=127.0.0.1:{proxy.port} to search through the proxy")
        print(_HELP, flush=True)
        try:
            for line in sys.stdin:
                try:
                    if not _command(proxy, line):
                        break
                except (ValueError, RuntimeError) as exc:
                    print(f"error: {exc}")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
