"""Launcher for a soft EPICS C IOC (RSRV Channel Access server only).

Usage::

    python -m caclient.testing._softioc [--acf FILE] DB MACROS [DB MACROS ...]

Loads the databases with :func:`epicscorelibs.ioc.start_ioc` (which, unlike
``python -m epicscorelibs.ioc``, starts no PVAccess server and no interactive
shell), prints the ready line of :mod:`caclient.testing._protocol` with the
TCP port RSRV listens on, then blocks until stdin closes or SIGTERM arrives
and exits with :func:`os._exit` (EPICS exit hooks are skipped on purpose).

The environment must already be loopback-only (see
:func:`caclient.testing.env.loopback_env`); the parent process passes it.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from caclient.testing._protocol import hard_exit, print_ready, wait_for_shutdown

_TCP_LISTEN = "0A"


def _own_socket_inodes() -> set[str]:
    """Return the inode numbers of the sockets this process has open."""
    inodes: set[str] = set()
    fd_dir = "/proc/self/fd"
    for name in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listening_tcp_ports() -> list[int]:
    """Return the TCP ports this process listens on (Linux ``/proc`` only).

    Returns an empty list where ``/proc`` is not available.
    """
    try:
        inodes = _own_socket_inodes()
        ports: list[int] = []
        for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
            if not os.path.exists(table):
                continue
            with open(table, encoding="ascii") as fh:
                next(fh, None)
                for row in fh:
                    fields = row.split()
                    if len(fields) > 9 and fields[3] == _TCP_LISTEN and fields[9] in inodes:
                        ports.append(int(fields[1].rsplit(":", 1)[1], 16))
        return ports
    except OSError:
        return []


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m caclient.testing._softioc")
    parser.add_argument("--acf", default=None, help="access security file")
    parser.add_argument("pairs", nargs="+", metavar="DB MACROS")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("arguments must be pairs of DB MACROS")
    return args


def main(argv: list[str] | None = None) -> None:
    """Start the IOC, announce readiness, and serve until told to stop."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    dbs = [(args.pairs[i], args.pairs[i + 1]) for i in range(0, len(args.pairs), 2)]
    try:
        from epicscorelibs import ioc

        if args.acf:
            # Must be set before iocInit, which then calls asInit.
            if ioc.dbCore.asSetFilename(os.fsencode(args.acf)):
                raise RuntimeError(f"asSetFilename({args.acf!r}) failed")
        ioc.start_ioc(dbs=dbs)
    except BaseException:
        traceback.print_exc()
        hard_exit(1)

    server_port = int(os.environ.get("EPICS_CAS_SERVER_PORT", "5064"))
    ports = listening_tcp_ports()
    print_ready(server_port if server_port in ports or not ports else ports[0])
    wait_for_shutdown()
    hard_exit(0)


if __name__ == "__main__":
    main()
