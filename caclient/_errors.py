"""The exception hierarchy of caclient.

Every error raised by the engine derives from :class:`CAError`.  Where a builtin
exception has the same meaning, the subclass also inherits it, so that
``except TimeoutError`` or ``except ConnectionError`` keeps working in scripts
that do not know about caclient.  Errors carry the PV name and server address
where there is one, and pickle (they cross process boundaries in pools).
"""

from __future__ import annotations

from typing import Any


class CAError(Exception):
    """Root of every caclient error.

    Parameters
    ----------
    message : str
        Human-readable description.
    pv : str, optional
        Name of the PV the failed operation was about.
    address : tuple of (str, int), optional
        The server address involved, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        pv: str | None = None,
        address: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.pv = pv
        self.address = address

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[CAError], args: tuple[Any, ...], state: dict[str, Any]) -> CAError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class CATimeoutError(CAError, TimeoutError):
    """An operation did not complete before its deadline."""


class DisconnectedError(CAError, ConnectionError):
    """The channel or its circuit went away while the operation was pending."""


class AccessDeniedError(CAError, PermissionError):
    """The server does not grant the access right the operation needs."""


class RemoteError(CAError):
    """The server answered with a failure status (an ECA code).

    Attributes
    ----------
    status : int
        The ECA status code sent by the server.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        pv: str | None = None,
        address: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(message, pv=pv, address=address)
        self.status = status


class ProtocolError(CAError):
    """The server sent bytes that break the Channel Access protocol."""


class ContextClosedError(CAError, RuntimeError):
    """The Context was closed; no new operations are accepted."""


class BlockingCallError(CAError, RuntimeError):
    """A blocking call was made from one of the engine's I/O threads."""


def eca_message(status: int) -> str:
    """Return ``'ECA_NAME: description'`` for an ECA status code (see :mod:`caclient.eca`)."""
    from . import eca

    return f"{eca.name(status)}: {eca.message(status)}"
