"""The parts of ``epics.ca`` that compat's own code uses.

Only the exceptions, the module settings that pyepics scripts set and
:func:`poll`/:func:`write` live here for now; the rest of the low-level
``ca`` layer (channels, contexts, ``CAThread``) belongs to its own module
work and will be added next to these names.

Settings are plain module attributes read at the time of each call, so a
script may change them at any time, e.g.
``compat.ca.AUTOMONITOR_MAXLENGTH = 2**20``.
"""

from __future__ import annotations

import sys
import time

from . import dbr

#: pyepics' switch for libca's preemptive callbacks.  compat's callbacks
#: always run on worker threads; the value is kept for scripts that read it.
PREEMPTIVE_CALLBACK = True
#: Kept for scripts that set it; compat always cleans up at exit.
AUTO_CLEANUP = True
#: Kept for scripts that set it; compat prints no libca messages.
WITH_CA_MESSAGES = False
#: A PV with this many elements or more is not monitored unless asked for.
AUTOMONITOR_MAXLENGTH = 65536
#: Seconds a :class:`compat.PV` waits to connect when no timeout is given.
DEFAULT_CONNECTION_TIMEOUT = 2.0
#: Event mask of automatic monitors: DBE_VALUE | DBE_ALARM.
DEFAULT_SUBSCRIPTION_MASK = dbr.DBE_VALUE | dbr.DBE_ALARM
#: numpy is always available to compat.
HAS_NUMPY = True

_MESSAGES = {
    dbr.ECA_NORMAL: "Normal successful completion",
    dbr.ECA_TIMEOUT: "User specified timeout on IO operation expired",
    186: "Invalid string",
    368: "Read access denied",
    376: "Write access denied",
}


class ChannelAccessException(Exception):
    """A general Channel Access error (bad value for a put, ...)."""


class ChannelAccessGetFailure(Exception):
    """The server answered a read with a failure status.

    Parameters
    ----------
    message : str
    chid : int
        The channel identifier.
    status : int
        The ECA status code sent by the server.
    """

    def __init__(self, message: str, chid: object, status: int) -> None:
        super().__init__(message)
        self.chid = chid
        self.status = status


class CASeverityException(Exception):
    """A Channel Access call returned an unexpected status.

    ``str()`` gives ``" put returned 'Write access denied'"`` as in pyepics.
    """

    def __init__(self, fcn: str, msg: str) -> None:
        super().__init__()
        self.fcn = fcn
        self.msg = msg

    def __str__(self) -> str:
        return f" {self.fcn} returned '{self.msg}'"


def message(status: int) -> str:
    """Return the text of an ECA status code (libca's ``ca_message``)."""
    text = _MESSAGES.get(status)
    if text is not None:
        return text
    try:
        from caproto._status import eca_value_to_status  # error path only: keeps imports light

        return str(eca_value_to_status[status].description)
    except Exception:
        return f"ECA status {status}"


def write(msg: str, newline: bool = True, flush: bool = True) -> None:
    """Write *msg* to ``sys.stdout`` (looked up at each call)."""
    out = sys.stdout
    out.write(msg)
    if newline:
        out.write("\n")
    if flush:
        out.flush()


def pend_event(timeout: float = 1.0e-5) -> int:
    """Let other threads run for *timeout* seconds; returns ECA_TIMEOUT.

    Nothing needs pumping: compat's engine runs in its own threads.  The
    short sleep keeps ``while True: poll()`` loops from spinning a core.
    """
    if timeout > 0:
        time.sleep(timeout)
    return dbr.ECA_TIMEOUT


def pend_io(timeout: float = 1.0) -> int:
    """Return ECA_NORMAL at once: requests are sent as they are made."""
    return dbr.ECA_NORMAL


def poll(evt: float = 1.0e-5, iot: float = 1.0) -> int:
    """pyepics' event-loop call: :func:`pend_event` then :func:`pend_io`; returns 1."""
    pend_event(evt)
    return pend_io(iot)
