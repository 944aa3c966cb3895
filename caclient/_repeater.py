"""The CA repeater: fans server beacons out to every CA client on this host.

Why a repeater
--------------
CA servers announce themselves with beacons (``CA_PROTO_RSRV_IS_UP``) sent
to one UDP port per host, ``EPICS_CA_REPEATER_PORT`` (5065 by default).  A
unicast datagram reaches only one of the sockets bound to a port, so every
client cannot bind that port itself; instead one repeater binds it and
forwards what arrives to each client that registered.  This module is a
pure-Python (standard library only) equivalent of EPICS base's ``caRepeater``.

Protocol (as libca's repeater behaves)
--------------------------------------
* A client registers by sending ``REPEATER_REGISTER`` (command 24; a
  zero-length datagram is accepted too) from the UDP socket on which it
  wants beacons.  Registrations are accepted from 127.0.0.1, or from an
  address of a local interface (checked by binding to it); clients are
  identified by their port.  The repeater answers ``REPEATER_CONFIRM``
  (command 17) whose parameter 2 is the client's IPv4 address as seen by the
  repeater, then sends an all-zero ``CA_PROTO_VERSION`` header (a no-op) to
  the other clients and, when the client is new, checks that the other
  clients still exist.
* Every other datagram (beacons, and anything else) is forwarded unchanged
  to every registered client except its sender.  A beacon whose parameter 2
  (the server address) is 0 gets the sender's IPv4 address filled in.  A
  datagram that starts with a registration is handled as one, and the rest
  of it is forwarded.
* A client is dropped when its port is no longer bound on this host: this
  is tested by binding the client's address and port (success means the
  client has gone).  The test runs when a send to the client fails (Linux
  reports the ICMP "port unreachable" of a previous send as ECONNREFUSED on
  the client's connected socket) and, for every client, whenever a new
  client registers.

Each client gets its own connected UDP socket, so that such errors are
reported per client.

Safety
------
The repeater binds ``127.0.0.1`` unless told otherwise (``host``, or
``--any`` on the command line for all interfaces): beacons that servers send
to a network address then do not reach it, which is the point - nothing on
the network is disturbed by tests or local tools.  Like ``caRepeater``, it
exits quietly when another repeater already holds the port (the socket is
bound without ``SO_REUSEADDR``, so two repeaters cannot share a port).

Threads
-------
:class:`Repeater` serves on one thread: either the caller's
(:meth:`Repeater.serve`, :func:`run_repeater`, :func:`cli_main`) or its own
``caclient-repeater[<port>]`` thread (:meth:`Repeater.start`).  Only that
thread touches the sockets; other threads read :attr:`Repeater.clients` and
call :meth:`Repeater.close`.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType

from ._closing import ClosingContext
from ._sync import Wakeup

__all__ = [
    "DEFAULT_REPEATER_PORT",
    "Repeater",
    "cli_main",
    "repeater_port_from_env",
    "run_repeater",
]

log = logging.getLogger("caclient.repeater")

#: libca's default ``EPICS_CA_REPEATER_PORT``.
DEFAULT_REPEATER_PORT = 5065

#: The interface the repeater binds by default.
LOOPBACK = "127.0.0.1"

CA_PROTO_VERSION = 0
RSRV_IS_UP = 13
REPEATER_CONFIRM = 17
REPEATER_REGISTER = 24

#: Most clients kept at once; past it, registrations are refused (and logged).
MAX_CLIENTS = 4096

_HEADER = struct.Struct(">HHHHII")
_HEADER_SIZE = _HEADER.size
_MAX_DATAGRAM = 65535
_BATCH = 64  # datagrams handled per wake-up before looking at the wake-up socket
_STOP_POLL = 0.2  # how often an external stop Event is looked at
_NOOP = _HEADER.pack(CA_PROTO_VERSION, 0, 0, 0, 0, 0)


def repeater_port_from_env(env: Mapping[str, str] | None = None) -> int:
    """Return ``EPICS_CA_REPEATER_PORT`` from `env`, or the default 5065.

    Parameters
    ----------
    env : mapping of str to str, optional
        Where to look; default :data:`os.environ`.

    Returns
    -------
    int
        The port.

    Raises
    ------
    ValueError
        If the variable is set to something that is not a port number.
    """
    raw = (os.environ if env is None else env).get("EPICS_CA_REPEATER_PORT", "").strip()
    if not raw:
        return DEFAULT_REPEATER_PORT
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"EPICS_CA_REPEATER_PORT={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"EPICS_CA_REPEATER_PORT={raw!r} is out of the port range 1..65535")
    return port


def _ip_to_int(ip: str) -> int:
    value: int = struct.unpack(">I", socket.inet_aton(ip))[0]
    return value


def _is_local_address(ip: str) -> bool:
    """Whether `ip` is an address of this host (it can be bound)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((ip, 0))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _port_still_bound(address: tuple[str, int]) -> bool:
    """Whether some socket still holds the UDP `address` (libca's bind test).

    A bind without ``SO_REUSEADDR`` to the client's address and port fails
    with EADDRINUSE while the client's socket exists, whether that socket is
    bound to this address or to all interfaces.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return True
        log.warning("repeater: bind test of client %s:%d failed: %s", address[0], address[1], exc)
        return True  # cannot tell: keep it
    finally:
        probe.close()
    return False


class _Client:
    """A registered client: its address and a UDP socket connected to it."""

    __slots__ = ("address", "sock")

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.connect(address)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise

    def send(self, data: bytes) -> bool:
        """Send `data`; False when the send failed (e.g. the client has gone)."""
        try:
            self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return True  # a full buffer is not a departed client; the datagram is lost
        except OSError as exc:
            log.debug("repeater: send to %s:%d failed: %s", self.address[0], self.address[1], exc)
            return False
        return True

    def close(self) -> None:
        self.sock.close()


class Repeater(ClosingContext):
    """A CA repeater on ``host:port`` (see the module docstring).

    Parameters
    ----------
    port : int, optional
        UDP port to bind; default 5065.  0 lets the kernel choose (see
        :attr:`port` after :meth:`bind`).
    host : str, optional
        Interface address to bind; default ``'127.0.0.1'``.  ``'0.0.0.0'``
        binds every interface.

    Examples
    --------
    >>> with Repeater(port=free_port()).start() as rep:   # doctest: +SKIP
    ...     print(rep.address, rep.clients)
    """

    def __init__(self, port: int = DEFAULT_REPEATER_PORT, host: str = LOOPBACK) -> None:
        if not 0 <= port < 65536:
            raise ValueError(f"port {port} is out of range")
        self.host = host
        self._port = port
        self._sock: socket.socket | None = None
        self._wakeup = Wakeup()
        # Written by the serving thread under _changed; read by anyone under it.
        self._changed = threading.Condition(threading.Lock())
        self._clients: dict[int, _Client] = {}  # client port -> client
        self._fanned_out = 0
        self._registrations = 0
        # A plain flag, so that a signal handler can set it without a lock.
        self._stopping = False
        self._closed = False
        self._serving: threading.Thread | None = None  # the thread in serve(), if any
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ info
    @property
    def port(self) -> int:
        """The UDP port (the bound one, once bound)."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return (self.host, self._port)

    @property
    def clients(self) -> list[tuple[str, int]]:
        """Addresses of the registered clients, in registration order."""
        with self._changed:
            return [client.address for client in self._clients.values()]

    @property
    def fanned_out(self) -> int:
        """Datagrams forwarded so far (each counted once, whatever the number of clients)."""
        with self._changed:
            return self._fanned_out

    @property
    def registrations(self) -> int:
        """Registration requests handled so far (including repeated ones)."""
        with self._changed:
            return self._registrations

    def wait_for_clients(self, predicate: Callable[[list[tuple[str, int]]], bool], timeout: float) -> bool:
        """Wait until ``predicate(clients)`` holds; the list is re-checked on every change.

        Parameters
        ----------
        predicate : callable
            Called with a list of client addresses.
        timeout : float
            Seconds to wait at most.

        Returns
        -------
        bool
            Whether the predicate held before the deadline.
        """
        with self._changed:
            return bool(self._changed.wait_for(lambda: predicate([c.address for c in self._clients.values()]), timeout))

    # ------------------------------------------------------------------ lifecycle
    def bind(self) -> None:
        """Bind the repeater's UDP socket (done by :meth:`start` and :meth:`serve` if needed).

        Raises
        ------
        OSError
            With ``errno.EADDRINUSE`` when the port is taken, usually by a
            repeater that is already running.
        """
        if self._closed:
            raise RuntimeError("the Repeater is closed")
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # No SO_REUSEADDR: a second repeater on the port must fail to bind.
            sock.bind((self.host, self._port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._port = int(sock.getsockname()[1])
        log.info("repeater bound to %s:%d", self.host, self._port)

    def start(self) -> Repeater:
        """Bind, and serve on a thread of its own (``caclient-repeater[<port>]``).

        Returns
        -------
        Repeater
            `self`, for chaining.
        """
        if self._closed:
            raise RuntimeError("the Repeater is closed")
        if self._thread is not None:
            return self
        self.bind()
        self._thread = threading.Thread(target=self.serve, name=f"caclient-repeater[{self._port}]", daemon=True)
        self._thread.start()
        return self

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve on the calling thread until :meth:`close` / :meth:`request_stop`, or `stop` is set.

        Parameters
        ----------
        stop : threading.Event, optional
            Also return once this is set (it is looked at every 0.2 s).
        """
        self.bind()
        sock = self._sock
        assert sock is not None
        with self._changed:
            if self._serving is not None:
                raise RuntimeError("the Repeater is already serving")
            self._serving = threading.current_thread()
        timeout = _STOP_POLL if stop is not None else None
        watched: list[socket.socket | Wakeup] = [sock, self._wakeup]
        try:
            while not self._stopping:
                readable, _, _ = select.select(watched, [], [], timeout)
                if self._stopping or (stop is not None and stop.is_set()):
                    break
                if self._wakeup in readable:
                    self._wakeup.drain()
                if sock in readable:
                    self._receive(sock)
        finally:
            self._release_clients()
            with self._changed:
                self._serving = None
                self._changed.notify_all()

    def request_stop(self) -> None:
        """Ask :meth:`serve` to return soon; does not wait.  Safe in a signal handler."""
        self._stopping = True
        self._wakeup.wake()

    def stop_on_signals(self) -> Callable[[], None]:
        """Make SIGTERM and SIGINT stop :meth:`serve`; return a function that undoes it.

        Main thread only (elsewhere it does nothing).  Besides a handler that
        calls :meth:`request_stop`, the signal is pointed at the wake-up socket
        (:func:`signal.set_wakeup_fd`): a Python-level handler runs only when the
        main thread runs Python code, so a signal that lands just before
        ``select()`` blocks, or on another thread, would otherwise leave
        :meth:`serve` waiting until a datagram comes.

        Returns
        -------
        callable
            Puts back the previous handlers and wake-up fd; call it before :meth:`close`.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def _handler(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous_fd = signal.set_wakeup_fd(self._wakeup.writer_fileno(), warn_on_full_buffer=False)

        def _restore() -> None:
            signal.set_wakeup_fd(previous_fd)
            for sig, old in previous.items():
                signal.signal(sig, old)

        return _restore

    def close(self, timeout: float = 2.0) -> None:
        """Stop serving and close every socket; idempotent.

        Waits for :meth:`serve` to return when it runs on another thread;
        called on the thread that runs :meth:`serve`, it only asks it to stop.
        In a signal handler use :meth:`request_stop` instead.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for the serving thread.
        """
        self.request_stop()
        me = threading.current_thread()
        if self._serving is me:
            return  # called from inside serve(): serve's caller closes
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._serving is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("repeater did not stop serving within %.1f s", timeout)
                    return
                self._changed.wait(remaining)
            if self._closed:
                return
            self._closed = True
        thread = self._thread
        if thread is not None and thread is not me:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._release_clients()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._wakeup.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("bound" if self._sock is not None else "unbound")
        return f"<Repeater {self.host}:{self._port} {state} clients={len(self._clients)}>"

    # ------------------------------------------------------------------ serving thread
    def _receive(self, sock: socket.socket) -> None:
        for _ in range(_BATCH):
            try:
                data, sender = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Linux may report an ICMP error for an earlier send here; ignore it.
                log.debug("repeater: recvfrom: %s", exc)
                return
            try:
                self._datagram(data, (str(sender[0]), int(sender[1])))
            except Exception:  # one bad datagram must not stop the repeater
                log.exception("repeater: error handling a datagram from %s:%d", sender[0], sender[1])

    def _datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        if not data:
            self._register(sender)
            return
        if len(data) >= _HEADER_SIZE:
            cmd, _size, _dtype, _count, _p1, p2 = _HEADER.unpack_from(data, 0)
            if cmd == REPEATER_REGISTER:
                self._register(sender)
                data = data[_HEADER_SIZE:]
                if not data:
                    return
            elif cmd == RSRV_IS_UP and p2 == 0:
                # The server did not say where it is: it is where the beacon came from.
                data = data[:12] + socket.inet_aton(sender[0]) + data[16:]
        self._fan_out(data, sender)
        with self._changed:
            self._fanned_out += 1

    def _register(self, sender: tuple[str, int]) -> None:
        ip, port = sender
        with self._changed:
            self._registrations += 1
        if ip != LOOPBACK and not _is_local_address(ip):
            log.debug("repeater: ignoring registration from non-local %s:%d", ip, port)
            return
        client = self._clients.get(port)
        new = client is None
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:
                self._verify_all()
            if len(self._clients) >= MAX_CLIENTS:
                log.warning("repeater: %d clients already, refusing %s:%d", MAX_CLIENTS, ip, port)
                return
            try:
                client = _Client(sender)
            except OSError as exc:
                log.warning("repeater: cannot reach new client %s:%d: %s", ip, port, exc)
                return
            self._add(client)
            log.debug("repeater: new client %s:%d", ip, port)
        if not client.send(_HEADER.pack(REPEATER_CONFIRM, 0, 0, 0, 0, _ip_to_int(ip))):
            self._remove(client)
        # A no-op to the others, so that clients that went away are noticed
        # even when no beacons arrive.
        self._fan_out(_NOOP, sender)
        if new:
            self._verify_all(skip=port)

    def _fan_out(self, data: bytes, sender: tuple[str, int]) -> None:
        for client in list(self._clients.values()):
            if client.address == sender:
                continue  # never reflect a datagram back to its sender
            if not client.send(data) and not _port_still_bound(client.address):
                self._remove(client)

    def _verify_all(self, skip: int | None = None) -> None:
        for port, client in list(self._clients.items()):
            if port != skip and not _port_still_bound(client.address):
                self._remove(client)

    def _add(self, client: _Client) -> None:
        with self._changed:
            self._clients[client.address[1]] = client
            self._changed.notify_all()

    def _remove(self, client: _Client) -> None:
        log.debug("repeater: dropping client %s:%d", *client.address)
        with self._changed:
            if self._clients.get(client.address[1]) is client:
                del self._clients[client.address[1]]
            self._changed.notify_all()
        client.close()

    def _release_clients(self) -> None:
        with self._changed:
            clients = list(self._clients.values())
            self._clients.clear()
            self._changed.notify_all()
        for client in clients:
            client.close()


def run_repeater(port: int, host: str = LOOPBACK, stop: threading.Event | None = None) -> None:
    """Run a repeater on the calling thread until `stop` is set.

    Parameters
    ----------
    port : int
        UDP port to bind (``EPICS_CA_REPEATER_PORT``).
    host : str, optional
        Interface address to bind; default ``'127.0.0.1'``.
    stop : threading.Event, optional
        Return once this is set; without it, run until the process ends.

    Raises
    ------
    OSError
        If the port cannot be bound (``errno.EADDRINUSE``: a repeater already
        runs there).
    """
    repeater = Repeater(port, host)
    try:
        repeater.serve(stop)
    finally:
        repeater.close()


def cli_main(argv: list[str] | None = None) -> int:
    """The ``repeater`` command: run a CA repeater in the foreground.

    Options: ``--port`` (default ``EPICS_CA_REPEATER_PORT`` or 5065),
    ``--host`` (default 127.0.0.1), ``--any`` (bind every interface),
    ``-v`` (log registrations).  Exits 0 on SIGTERM or SIGINT, and at once
    (quietly, like ``caRepeater``) when a repeater already holds the port.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the command name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="caclient repeater",
        description="Channel Access repeater: fans server beacons out to the CA clients on this host.",
    )
    parser.add_argument("--port", type=int, default=None, help="UDP port (default: $EPICS_CA_REPEATER_PORT, else 5065)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--host", default=LOOPBACK, help="interface address to bind (default 127.0.0.1)")
    where.add_argument("--any", action="store_true", help="bind every interface (0.0.0.0) instead of loopback")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the repeater does to stderr")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s: %(message)s")
    try:
        port = args.port if args.port is not None else repeater_port_from_env()
    except ValueError as exc:
        parser.error(str(exc))
    host = "0.0.0.0" if args.any else args.host
    repeater = Repeater(port, host)
    try:
        try:
            repeater.bind()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                log.info("a repeater is already running on %s:%d", host, port)
                return 0
            print(f"caclient repeater: cannot bind {host}:{port}: {exc}", file=sys.stderr)
            return 1
        restore = repeater.stop_on_signals()
        try:
            repeater.serve()
        finally:
            restore()
    finally:
        repeater.close()
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
