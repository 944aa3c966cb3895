"""Loopback-only EPICS environment for tests and local launches.

The rule
--------
Every test, benchmark and helper process of this project talks Channel
Access (and, should anything ever start it, PVAccess) **only over the
loopback interface**.  Nothing may search, beacon or broadcast on a real
network interface, and nothing may use the well-known ports (5064/5065 for
CA, 5075/5076 for PVA), where it could meet - or disturb - real IOCs and
CA repeaters on the machine.

:func:`loopback_env` builds an environment mapping that enforces this for
EPICS C code (libca, RSRV), for caproto and for pyepics:

* automatic address lists are switched off for clients (``EPICS_CA_AUTO_ADDR_LIST``)
  and for server beacons (``EPICS_CAS_AUTO_BEACON_ADDR_LIST``), and the explicit
  lists name only ``127.0.0.1``;
* servers bind only to ``127.0.0.1`` (``EPICS_CAS_INTF_ADDR_LIST``);
* the server and repeater ports are freshly chosen free ports, so that
  concurrent test sessions do not see each other; they lie outside the
  kernel's ephemeral port range (see :func:`free_port` for why);
* ``EPICS_CA_NAME_SERVERS`` is removed (no TCP name servers);
* ``EPICS_CA_MAX_ARRAY_BYTES`` is large enough for 10M-element double
  waveforms.

:func:`apply_loopback_env` copies such a mapping into :data:`os.environ`, so
that libraries that read the environment once (pyepics/libca) and all child
processes inherit it.

This module imports only the standard library.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Mapping

__all__ = [
    "DEFAULT_PORTS",
    "LOOPBACK",
    "apply_loopback_env",
    "free_port",
    "free_port_pair",
    "loopback_env",
]

#: The loopback address every helper binds to and talks to.
LOOPBACK = "127.0.0.1"

#: Well-known EPICS ports that :func:`free_port` never returns
#: (CA server, CA repeater, PVA server, PVA broadcast).
DEFAULT_PORTS = frozenset({5064, 5065, 5075, 5076})

#: Maximum array size given to the C IOC: enough for 10M doubles (80 MB).
MAX_ARRAY_BYTES = 200_000_000

_VALID_KINDS = ("both", "tcp", "udp")
_MAX_ATTEMPTS = 200
_POOL_SIZE = 16384
_MIN_POOL = 1024


def _can_bind(port: int, sock_type: socket.SocketKind) -> bool:
    """Return whether ``127.0.0.1:port`` can be bound with ``sock_type`` now."""
    sock = socket.socket(socket.AF_INET, sock_type)
    try:
        sock.bind((LOOPBACK, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _ephemeral_range() -> tuple[int, int]:
    """Return the kernel's ephemeral port range (Linux), or the IANA default."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh:
            low, high = (int(x) for x in fh.read().split())
        return low, high
    except (OSError, ValueError):
        return 49152, 65535


def _port_pool() -> range:
    """Ports to pick from: just outside the kernel's ephemeral range."""
    low, high = _ephemeral_range()
    if low - 1024 >= _MIN_POOL:
        return range(max(1024, low - _POOL_SIZE), low)
    if 65535 - high >= _MIN_POOL:
        return range(high + 1, min(65536, high + 1 + _POOL_SIZE))
    return range(0)  # no room: fall back to kernel-chosen ports


def _kernel_port(sock_type: socket.SocketKind) -> int:
    """Return a port the kernel picks from its ephemeral range."""
    sock = socket.socket(socket.AF_INET, sock_type)
    try:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def free_port(kind: str = "both", ephemeral: bool = False) -> int:
    """Return a port on 127.0.0.1 that is currently free.

    By default the port is drawn at random from a pool just *below* the
    kernel's ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``),
    not from the ephemeral range itself: a client UDP socket with
    ``SO_REUSEADDR`` that binds to port 0 (caproto's sync client does this)
    can be given a port that a server's ``SO_REUSEADDR`` UDP socket already
    holds (RSRV and caproto servers do this), and then the server's search
    replies never reach the client.  Ports outside the ephemeral range are
    never handed out that way.

    The candidate is checked by binding it (without reuse options) for TCP
    and/or UDP.  It is released again before returning, so it is only
    *likely* to stay free; callers that start servers on it should be ready
    to retry.

    Parameters
    ----------
    kind : {'both', 'tcp', 'udp'}, optional
        Which protocols the port must be free for.  The default, ``'both'``,
        checks TCP and UDP, as a CA server needs both on the same port.
    ephemeral : bool, optional
        If true, let the kernel choose from its ephemeral range (by binding
        to port 0) instead.

    Returns
    -------
    int
        The port number; never one of 5064, 5065, 5075 or 5076.

    Raises
    ------
    ValueError
        If `kind` is not one of the accepted values.
    RuntimeError
        If no suitable port was found after many attempts.
    """
    if kind not in _VALID_KINDS:
        raise ValueError(f"kind must be one of {_VALID_KINDS}, not {kind!r}")
    types = {
        "both": (socket.SOCK_STREAM, socket.SOCK_DGRAM),
        "tcp": (socket.SOCK_STREAM,),
        "udp": (socket.SOCK_DGRAM,),
    }[kind]
    pool = _port_pool()
    rng = random.SystemRandom()
    for _ in range(_MAX_ATTEMPTS):
        port = _kernel_port(types[0]) if ephemeral or not pool else rng.choice(pool)
        if port in DEFAULT_PORTS:
            continue
        if all(_can_bind(port, sock_type) for sock_type in types):
            return port
    raise RuntimeError("could not find a free port on 127.0.0.1")


def free_port_pair(kind: str = "both") -> tuple[int, int]:
    """Return two distinct free ports on 127.0.0.1.

    Parameters
    ----------
    kind : {'both', 'tcp', 'udp'}, optional
        Passed on to :func:`free_port`.

    Returns
    -------
    tuple of int
        Two different port numbers, e.g. for a server and a repeater.
    """
    first = free_port(kind)
    for _ in range(_MAX_ATTEMPTS):
        second = free_port(kind)
        if second != first:
            return first, second
    raise RuntimeError("could not find two distinct free ports on 127.0.0.1")


def _distinct_free_port(taken: set[int]) -> int:
    """Return a free port not in `taken`, and add it to `taken`."""
    for _ in range(_MAX_ATTEMPTS):
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("could not find a distinct free port on 127.0.0.1")


def loopback_env(
    server_port: int | None = None,
    repeater_port: int | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build an environment that confines EPICS CA/PVA to the loopback interface.

    Parameters
    ----------
    server_port : int, optional
        CA server port (``EPICS_CA_SERVER_PORT`` and ``EPICS_CAS_SERVER_PORT``).
        A free port is chosen when omitted.
    repeater_port : int, optional
        CA repeater port (``EPICS_CA_REPEATER_PORT``), which is also where
        servers send beacons (``EPICS_CAS_BEACON_PORT``).  A free port is
        chosen when omitted.
    base : mapping of str to str, optional
        Environment to start from; defaults to :data:`os.environ`.  It is
        copied, never modified.

    Returns
    -------
    dict of str to str
        A copy of `base` with the loopback settings applied and
        ``EPICS_CA_NAME_SERVERS`` removed.

    Examples
    --------
    >>> env = loopback_env(server_port=40000, repeater_port=40001, base={})
    >>> env["EPICS_CA_ADDR_LIST"], env["EPICS_CA_SERVER_PORT"]
    ('127.0.0.1', '40000')
    """
    env = dict(os.environ if base is None else base)
    taken = {p for p in (server_port, repeater_port) if p is not None}
    if server_port is None:
        server_port = _distinct_free_port(taken)
    if repeater_port is None:
        repeater_port = _distinct_free_port(taken)
    pva_server_port = _distinct_free_port(taken)
    pva_broadcast_port = _distinct_free_port(taken)

    env.pop("EPICS_CA_NAME_SERVERS", None)
    env.update(
        {
            # CA client
            "EPICS_CA_AUTO_ADDR_LIST": "NO",
            "EPICS_CA_ADDR_LIST": LOOPBACK,
            "EPICS_CA_SERVER_PORT": str(server_port),
            "EPICS_CA_REPEATER_PORT": str(repeater_port),
            "EPICS_CA_MAX_ARRAY_BYTES": str(MAX_ARRAY_BYTES),
            # CA server
            "EPICS_CAS_INTF_ADDR_LIST": LOOPBACK,
            "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
            "EPICS_CAS_BEACON_ADDR_LIST": LOOPBACK,
            "EPICS_CAS_SERVER_PORT": str(server_port),
            "EPICS_CAS_BEACON_PORT": str(repeater_port),
            # PVA client and server (nothing here starts one, but be safe)
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_ADDR_LIST": LOOPBACK,
            "EPICS_PVA_SERVER_PORT": str(pva_server_port),
            "EPICS_PVA_BROADCAST_PORT": str(pva_broadcast_port),
            "EPICS_PVAS_INTF_ADDR_LIST": LOOPBACK,
            "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
            "EPICS_PVAS_BEACON_ADDR_LIST": LOOPBACK,
            # Reserved for the caclient engine: never spawn a caRepeater.
            "CACLIENT_NO_REPEATER": "1",
        }
    )
    return env


def apply_loopback_env(env: Mapping[str, str]) -> None:
    """Install an environment built by :func:`loopback_env` into :data:`os.environ`.

    Only the EPICS-related keys (and ``CACLIENT_*``) are copied; other
    variables of `env` are left alone.  ``EPICS_CA_NAME_SERVERS`` is removed
    when `env` does not define it.

    Parameters
    ----------
    env : mapping of str to str
        Usually the result of :func:`loopback_env`.
    """
    for key, value in env.items():
        if key.startswith(("EPICS_", "CACLIENT_")):
            os.environ[key] = value
    if "EPICS_CA_NAME_SERVERS" not in env:
        os.environ.pop("EPICS_CA_NAME_SERVERS", None)
