"""Helpers shared by the tests that watch raw sockets (the fault proxy, the repeater)."""

from __future__ import annotations

import socket

import pytest

QUIET = 0.3  # how long "nothing arrives" is watched for


def assert_quiet(sock: socket.socket, quiet: float = QUIET) -> None:
    """Nothing arrives on *sock* for *quiet* seconds; its own timeout is put back after."""
    before = sock.gettimeout()
    sock.settimeout(quiet)
    try:
        with pytest.raises(TimeoutError):
            sock.recv(1024)
    finally:
        sock.settimeout(before)
