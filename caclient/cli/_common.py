"""What every command-line tool shares: options, timeouts, contexts, connecting.

The options ``-w``, ``-p`` and ``-V`` mean the same in every tool, and the
timeout starts from ``EPICS_CLI_TIMEOUT`` as in EPICS base.  PV names and
values from the command line become Latin-1 text (see
:mod:`caclient.cli._format`), so any bytes a shell passes reach the server
unchanged.  The engine (numpy included) is imported only once the command
line has been checked: ``-h`` and usage errors stay fast.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import _format as F
from ._cparse import scan_double, sscanf_uint

if TYPE_CHECKING:
    from .._context import Context
    from .._pv import PV
    from ._getopt import Option

DEFAULT_TIMEOUT = 1.0
PRIORITY_MAX = 99
CA_PROTOCOL = "4.13"
#: A timeout of 0 means "wait for ever"; this many seconds stands for that.
FOREVER = 1e9


def version_line() -> str:
    """The ``-V`` text (base prints its EPICS version where this names caclient's)."""
    from .. import __version__

    return f"\nEPICS Version caclient {__version__}, CA Protocol version {CA_PROTOCOL}"


def text_arg(arg: str) -> str:
    """A command-line word as Latin-1 text: one character per byte the shell passed."""
    return os.fsencode(arg).decode("latin-1")


class Common:
    """The options every tool has, and their parsing.

    Attributes
    ----------
    tool : str
        The tool's name, used in messages (``'caget'``).
    timeout : float
        ``-w`` (or ``EPICS_CLI_TIMEOUT``), seconds; 0 means for ever.
    priority : int
        ``-p``, 0..99.
    """

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.timeout = DEFAULT_TIMEOUT
        self.priority = 0
        env = os.environ.get("EPICS_CLI_TIMEOUT")
        if env is not None:
            value = scan_double(env)
            if value is None:
                F.err(
                    f"'{text_arg(env)}' is not a valid timeout value "
                    "(from 'EPICS_CLI_TIMEOUT' in the environment) - ignored. (use '-h' for help.)"
                )
            else:
                self.timeout = value

    def hint(self) -> str:
        """The ``('caget -h' for help.)`` tail of usage messages."""
        return f"('{self.tool} -h' for help.)"

    def set_timeout(self, arg: str) -> None:
        """``-w <sec>``; a bad value keeps the current one, with base's message."""
        value = scan_double(arg)
        if value is None:
            F.err(
                f"'{text_arg(arg)}' is not a valid timeout value - ignored, using '{self.timeout:.1f}'. {self.hint()}"
            )
        else:
            self.timeout = value

    def set_priority(self, arg: str) -> None:
        """``-p <prio>``: clamped to 0..99; unparsable means 0."""
        value = sscanf_uint(arg)
        if value is None:
            F.err(f"'{text_arg(arg)}' is not a valid CA priority - ignored. {self.hint()}")
            value = 0
        self.priority = min(value, PRIORITY_MAX)

    def unknown_option(self, letter: str) -> int:
        """Report an unrecognized option; return the exit status."""
        F.err(f"Unrecognized option: '-{text_arg(letter)}'. {self.hint()}")
        return 1

    def missing_argument(self, letter: str) -> int:
        """Report an option without its argument; return the exit status."""
        F.err(f"Option '-{text_arg(letter)}' requires an argument. {self.hint()}")
        return 1

    def no_pv(self) -> int:
        """Report that no PV name was given; return the exit status."""
        F.err(f"No pv name specified. {self.hint()}")
        return 1

    def wait_seconds(self) -> float:
        """The timeout as seconds to wait: 0 means for ever, negative means not at all."""
        if self.timeout == 0:
            return FOREVER
        return max(self.timeout, 0.0)

    def context(self) -> Context:
        """A Context for this run (imports the engine)."""
        import logging

        from .._context import Context

        # The tools print base's messages; without this, Python's last-resort
        # handler would add the engine's warnings to stderr in its own words.
        engine_log = logging.getLogger("caclient")
        if not any(isinstance(h, logging.NullHandler) for h in engine_log.handlers):
            engine_log.addHandler(logging.NullHandler())
        return Context(timeout=self.wait_seconds(), encoding="latin-1")


def apply_options(
    common: Common, options: Sequence[Option], apply: Callable[[str, str | None], int | None]
) -> int | None:
    """Report a bad option, or *apply* each one in turn; return an exit status to stop with, or None to go on."""
    for opt in options:
        if opt.letter == "?":
            return common.unknown_option(opt.optopt)
        if opt.letter == ":":
            return common.missing_argument(opt.optopt)
        status = apply(opt.letter, opt.arg)
        if status is not None:
            return status
    return None


def help_or_version(letter: str, usage: str) -> int | None:
    """``-h`` (print *usage*) or ``-V`` (print the version): exit status 0; None for any other option."""
    if letter == "h":
        F.err(usage)
        return 0
    if letter == "V":
        F.Output().line(version_line())
        return 0
    return None


def exception_block(status: int, op: int, channel: str, dbr: int, count: int, context: str) -> str:
    """The report libca prints on stderr for an operation that failed later (no exception handler).

    *op* is 0 for a read, 1 for a write.
    """
    source = "../getCopy.cpp line 91" if op == 0 else "../oldChannelNotify.cpp line 159"
    text = f'op={op}, channel={channel}, type={F.dbr_text(dbr)}, count={count}, ctx="{context}"'
    return libca_report(status, text, source)


def libca_report(status: int, context: str, source: str) -> str:
    """libca's ``CA.Client.Exception`` report of *status*, as its default handler prints it."""
    from ..eca import message

    now = time.time_ns()
    stamp = time.strftime("%a %b %d %Y %H:%M:%S", time.localtime(now // 1_000_000_000))
    severity = ("Warning", "Success", "Error", "Info", "Fatal", "Fatal", "Fatal", "Fatal")[status & 7]
    return (
        "CA.Client.Exception...............................................\n"
        f'    {severity}: "{message(status)}"\n'
        f'    Context: "{context}"\n'
        f"    Source File: {source}\n"
        f"    Current Time: {stamp}.{now % 1_000_000_000:09d}\n"
        ".................................................................."
    )


def zero_response(dbr: int, count: int) -> Any:
    """A response of *count* zero elements of type *dbr*: what base prints from a buffer never filled."""
    from .._dbr import payload_size
    from .._response import ReadResponse

    return ReadResponse(dbr, count, 1, bytes(payload_size(dbr, count) + 8), "latin-1")


def time_left(seconds: float) -> Callable[[], float]:
    """A function giving the seconds left of *seconds* from now (never negative)."""
    deadline = time.monotonic() + seconds

    def remaining() -> float:
        return max(0.0, deadline - time.monotonic())

    return remaining


def check_names(tool: Common, names: Sequence[str]) -> bool:
    """Refuse empty PV names as libca does (``ECA_BADSTR``); True if all are fine."""
    ok = True
    for name in names:
        if not name:
            F.err(f"CA error Invalid string occurred while trying to create channel '{name}'.")
            ok = False
    return ok


def connect(tool: Common, ctx: Context, names: Sequence[str]) -> list[PV] | None:
    """Connect every PV within one timeout, as ``connect_pvs`` does.

    Returns the PVs, or None (after base's message) when any did not connect.
    """
    from .._errors import CAError

    pvs = ctx.get_pvs(*names, priority=tool.priority)
    deadline = time.monotonic() + tool.wait_seconds()
    missing = False
    for pv in pvs:
        try:
            pv.wait_for_connection(timeout=max(0.0, deadline - time.monotonic()))
        except CAError:
            missing = True
    if not missing:
        return pvs
    if len(names) > 1:
        F.err("Channel connect timed out: some PV(s) not found.")
    else:
        F.err(f"Channel connect timed out: '{names[0]}' not found.")
    return None
