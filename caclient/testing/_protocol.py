"""Tiny launch protocol shared by :mod:`caclient.testing.iocs` and its child servers.

A child server prints exactly one line ``READY_TOKEN port=<tcp port>`` on its
stdout once it accepts connections, and exits when its stdin is closed or it
receives SIGTERM.  Stdlib only: imported in both the parent and the children.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from types import FrameType

__all__ = ["READY_TOKEN", "hard_exit", "parse_ready_line", "print_ready", "wait_for_shutdown"]

#: First word of the line a child prints once it is ready.
READY_TOKEN = "CACLIENT-TESTING-READY"

_READY_RE = re.compile(rf"^{re.escape(READY_TOKEN)} port=(\d+)\s*$")


def parse_ready_line(line: str) -> int | None:
    """Return the port announced by a ready line, or None for any other line."""
    match = _READY_RE.match(line.strip())
    return int(match.group(1)) if match else None


def print_ready(port: int) -> None:
    """Print the ready line for `port` and flush stdout."""
    sys.stdout.write(f"{READY_TOKEN} port={port}\n")
    sys.stdout.flush()


def wait_for_shutdown() -> None:
    """Block until stdin reaches EOF or SIGTERM/SIGINT arrives (main thread only)."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    def _watch_stdin() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=_watch_stdin, name="stdin-watch", daemon=True).start()
    # A bounded wait keeps the main thread responsive to signals.
    while not stop.wait(0.2):
        pass


def hard_exit(code: int = 0) -> None:
    """Flush Python and C stdio, then leave without running atexit handlers."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
    os._exit(code)
