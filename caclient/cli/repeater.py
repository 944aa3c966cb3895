"""``caRepeater``: the Channel Access repeater, with EPICS base's options.

``-h`` prints the usage; ``-v`` keeps stdin, stdout and stderr (without it
they are redirected to ``/dev/null``, as base does).  Unlike base's
caRepeater, which binds every interface, this one binds 127.0.0.1 unless
told otherwise: the long options of :func:`caclient._repeater.cli_main`
(``--port``, ``--host``, ``--any``, ``--verbose``) are accepted too, and
``caclient``'s engine starts it as ``python -m caclient repeater --port N``.
Where ``CACLIENT_NO_REPEATER`` is set (caclient's loopback test
environment), ``caRepeater`` without long options exits at once: libca
clients (pyepics, base's tools) spawn it from ``PATH``, and a test run must
leave no repeater behind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ._getopt import getopt


def usage(prog: str) -> str:
    """Base's usage text for *prog*."""
    return f"Usage: {prog} -hv\n\n -h - Print this message\n -v - Do not replace stdin/out/err with /dev/null\n"


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the repeater with *argv* (default ``sys.argv[1:]``) until stopped; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    prog = prog if prog is not None else sys.argv[0]
    from .._repeater import cli_main

    if any(arg.startswith("--") and arg != "--" for arg in args):
        return cli_main(args)
    options, _ = getopt(args, ":hv")
    detach = True
    for opt in options:
        if opt.letter == "h":
            sys.stderr.write(usage(prog))
            return 0
        if opt.letter == "v":
            detach = False
            continue
        sys.stderr.write(f"{prog}: invalid option -- '{opt.optopt}'\n{usage(prog)}\nUnknown argument '?'\n")
        return 1
    if os.environ.get("CACLIENT_NO_REPEATER"):
        # caclient's loopback test environments forbid repeaters; libca (pyepics,
        # base's tools) finds this script on PATH and would leave one running.
        return 0
    if detach:
        sys.stdout.flush()
        sys.stderr.flush()
        null_in = os.open(os.devnull, os.O_RDONLY)
        null_out = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null_in, 0)
        os.dup2(null_out, 1)
        os.dup2(null_out, 2)
        os.close(null_in)
        os.close(null_out)
    return cli_main([])
