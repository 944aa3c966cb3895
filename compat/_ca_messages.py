"""Status codes, messages and errors of :mod:`compat.ca` (pyepics' ``epics.ca``).

The exceptions compat raises for Channel Access failures, the text of ECA
status codes, :func:`PySEVCHK`/:func:`withSEVCHK`, and the stand-ins for
libca's output functions (compat prints no libca messages).  Stateless:
safe on any thread.  Every public name here is also an attribute of
:mod:`compat.ca`, where scripts find it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, ParamSpec

from . import dbr

P = ParamSpec("P")

_MESSAGES = {
    dbr.ECA_NORMAL: "Normal successful completion",
    dbr.ECA_TIMEOUT: "User specified timeout on IO operation expired",
    186: "Invalid string",
    368: "Read access denied",
    376: "Write access denied",
}


class ChannelAccessException(Exception):
    """A general Channel Access error (bad value for a put, ...)."""

    __module__ = "compat.ca"  # (where scripts find it, and where tracebacks and pickles name it)


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

    __module__ = "compat.ca"

    def __init__(self, message: str, chid: object, status: int) -> None:
        super().__init__(message)
        self.chid = chid
        self.status = status


class CASeverityException(Exception):
    """A Channel Access call returned an unexpected status.

    ``str()`` gives ``" put returned 'Write access denied'"`` as in pyepics.
    """

    __module__ = "compat.ca"

    def __init__(self, fcn: str, msg: str) -> None:
        super().__init__()
        self.fcn = fcn
        self.msg = msg

    def __str__(self) -> str:
        return f" {self.fcn} returned '{self.msg}'"


# -- output and messages ---------------------------------------------------------------------------
def message(status: int) -> str:
    """Return the text of an ECA status code (libca's ``ca_message``)."""
    text = _MESSAGES.get(status)
    if text is not None:
        return text
    from caclient.eca import message as eca_text  # error path only

    return eca_text(status)


def write(msg: str, newline: bool = True, flush: bool = True) -> None:
    """Write *msg* to ``sys.stdout`` (looked up at each call)."""
    out = sys.stdout
    out.write(msg)
    if newline:
        out.write("\n")
    if flush:
        out.flush()


def version() -> str:
    """The Channel Access protocol version spoken, ``'4.13'``."""
    return "4.13"


def find_libca() -> None:
    """There is no libca: returns None."""
    return None


def find_libCom() -> None:
    """There is no libCom: returns None."""
    return None


def replace_printf_handler(writer: Callable[..., Any] | None = None) -> int:
    """Accepted for compatibility: compat prints no libca messages.  Returns ECA_NORMAL."""
    if writer is not None and not callable(writer):
        raise ChannelAccessException("argument to replace_printf_handler() must be callable")
    return dbr.ECA_NORMAL


def disable_ca_messages() -> None:
    """Accepted for compatibility (there are no libca messages)."""


def enable_ca_messages(writer: Any = "stderr") -> None:
    """Accepted for compatibility (there are no libca messages)."""


def PySEVCHK(func_name: str, status: int, expected: int = dbr.ECA_NORMAL) -> int:
    """Return *status* if it is *expected*, else raise :class:`CASeverityException`."""
    if status == expected:
        return status
    raise CASeverityException(func_name, message(status))


def withSEVCHK(fcn: Callable[P, Any]) -> Callable[P, int]:
    """Raise :class:`CASeverityException` unless *fcn* returns ECA_NORMAL."""

    @functools.wraps(fcn)
    def wrapper(*args: P.args, **kwds: P.kwargs) -> int:
        return PySEVCHK(fcn.__name__, fcn(*args, **kwds))

    return wrapper
