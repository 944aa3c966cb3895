"""Command-line tools: caget, caput, camonitor, cainfo and caRepeater.

Each tool is a module with a ``main(argv)`` that returns the exit status and
behaves as EPICS base's tool of the same name (see :doc:`/cli`).  The
functions here are the console-script entry points, and :func:`main` is
``python -m caclient <command> ...``.  Only the standard library is imported
until a tool has checked its command line.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main", "run_caget", "run_cainfo", "run_camonitor", "run_caput", "run_carepeater"]

#: ``python -m caclient <command>`` → the tool it runs.
COMMANDS = {"get": "caget", "put": "caput", "monitor": "camonitor", "info": "cainfo", "repeater": "repeater"}

_USAGE = """usage: python -m caclient <command> [options] ...

commands (options and output as EPICS base's tools; '<command> -h' for help):
  get       caget: read PVs
  put       caput: write a PV
  monitor   camonitor: print PV updates until interrupted
  info      cainfo: connection details of PVs
  repeater  caRepeater: the CA repeater (127.0.0.1 unless --any)
  stats     connect and read PVs once, then print the client's statistics
  demo      start a private loopback IOC and exercise the client [--bulk N]
"""


def _run(module: str, argv: Sequence[str] | None) -> int:
    """Run a tool; Ctrl-C ends the process by SIGINT, as it ends base's tools."""
    try:
        tool = importlib.import_module(f"caclient.cli.{module}")
        return int(tool.main(argv))
    except KeyboardInterrupt:
        sys.stdout.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130


def run_caget(argv: Sequence[str] | None = None) -> int:
    """The ``caget`` console script."""
    return _run("caget", argv)


def run_caput(argv: Sequence[str] | None = None) -> int:
    """The ``caput`` console script."""
    return _run("caput", argv)


def run_camonitor(argv: Sequence[str] | None = None) -> int:
    """The ``camonitor`` console script."""
    return _run("camonitor", argv)


def run_cainfo(argv: Sequence[str] | None = None) -> int:
    """The ``cainfo`` console script."""
    return _run("cainfo", argv)


def run_carepeater(argv: Sequence[str] | None = None) -> int:
    """The ``caRepeater`` console script."""
    return _run("repeater", argv)


def _demo(args: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m caclient demo", description="Exercise caclient on a private IOC.")
    parser.add_argument("--bulk", type=int, default=1000, help="PVs in the bulk read (default 1000)")
    from ..demo import run_demo

    return run_demo(n_bulk=parser.parse_args(args).bulk)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m caclient <command> ...``: run one of the tools, or the demo."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(_USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "demo":
        return _demo(rest)
    if command == "stats":
        from .._stats_cli import main as stats_main

        return stats_main(rest)
    module = COMMANDS.get(command)
    if module is None:
        sys.stderr.write(f"python -m caclient: unknown command {command!r}\n{_USAGE}")
        return 2
    if module == "repeater":
        from .repeater import main as repeater_main

        return repeater_main(rest, prog="caRepeater")
    return _run(module, rest)
