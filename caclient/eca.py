"""Channel Access status codes (``ECA_*``) and their texts.

A status code sent by a server (in a READ_NOTIFY or WRITE_NOTIFY reply, or
in CA_PROTO_ERROR) packs a message number and a severity:
``code = (number << 3) | severity``.  The texts are those libca's
``ca_message`` prints, so that messages read the same as in EPICS base's
tools.  Pure data and functions; importing this module costs nothing.
"""

from __future__ import annotations

__all__ = ["NORMAL", "by_name", "message", "name"]

# severities (the low three bits)
_WARNING, _SUCCESS, _ERROR, _INFO, _FATAL = 0, 1, 2, 3, 6

# (name, severity, text), indexed by message number.
_TABLE: tuple[tuple[str, int, str], ...] = (
    ("ECA_NORMAL", _SUCCESS, "Normal successful completion"),
    ("ECA_MAXIOC", _ERROR, "Maximum simultaneous IOC connections exceeded"),
    ("ECA_UKNHOST", _ERROR, "Unknown internet host"),
    ("ECA_UKNSERV", _ERROR, "Unknown internet service"),
    ("ECA_SOCK", _ERROR, "Unable to allocate a new socket"),
    ("ECA_CONN", _WARNING, "Unable to connect to internet host or service"),
    ("ECA_ALLOCMEM", _WARNING, "Unable to allocate additional dynamic memory"),
    ("ECA_UKNCHAN", _WARNING, "Unknown IO channel"),
    ("ECA_UKNFIELD", _WARNING, "Record field specified inappropriate for channel specified"),
    (
        "ECA_TOLARGE",
        _WARNING,
        "The requested data transfer is greater than available memory or EPICS_CA_MAX_ARRAY_BYTES",
    ),
    ("ECA_TIMEOUT", _WARNING, "User specified timeout on IO operation expired"),
    ("ECA_NOSUPPORT", _WARNING, "Sorry, that feature is planned but not supported at this time"),
    ("ECA_STRTOBIG", _WARNING, "The supplied string is unusually large"),
    ("ECA_DISCONNCHID", _ERROR, "The request was ignored because the specified channel is disconnected"),
    ("ECA_BADTYPE", _ERROR, "The data type specifed is invalid"),
    ("ECA_CHIDNOTFND", _INFO, "Remote Channel not found"),
    ("ECA_CHIDRETRY", _INFO, "Unable to locate all user specified channels"),
    ("ECA_INTERNAL", _FATAL, "Channel Access Internal Failure"),
    ("ECA_DBLCLFAIL", _WARNING, "The requested local DB operation failed"),
    ("ECA_GETFAIL", _WARNING, "Channel read request failed"),
    ("ECA_PUTFAIL", _WARNING, "Channel write request failed"),
    ("ECA_ADDFAIL", _WARNING, "Channel subscription request failed"),
    ("ECA_BADCOUNT", _WARNING, "Invalid element count requested"),
    ("ECA_BADSTR", _ERROR, "Invalid string"),
    ("ECA_DISCONN", _WARNING, "Virtual circuit disconnect"),
    ("ECA_DBLCHNL", _WARNING, "Identical process variable names on multiple servers"),
    ("ECA_EVDISALLOW", _ERROR, "Request inappropriate within subscription (monitor) update callback"),
    ("ECA_BUILDGET", _WARNING, "Database value get for that channel failed during channel search"),
    ("ECA_NEEDSFP", _WARNING, "Unable to initialize without the vxWorks VX_FP_TASK task option set"),
    ("ECA_OVEVFAIL", _WARNING, "Event queue overflow has prevented first pass event after event add"),
    ("ECA_BADMONID", _ERROR, "Bad event subscription (monitor) identifier"),
    ("ECA_NEWADDR", _WARNING, "Remote channel has new network address"),
    ("ECA_NEWCONN", _INFO, "New or resumed network connection"),
    ("ECA_NOCACTX", _WARNING, "Specified task isn't a member of a CA context"),
    ("ECA_DEFUNCT", _FATAL, "Attempt to use defunct CA feature failed"),
    ("ECA_EMPTYSTR", _WARNING, "The supplied string is empty"),
    ("ECA_NOREPEATER", _WARNING, "Unable to spawn the CA repeater thread- auto reconnect will fail"),
    ("ECA_NOCHANMSG", _WARNING, "No channel id match for search reply- search reply ignored"),
    ("ECA_DLCKREST", _WARNING, "Reseting dead connection- will try to reconnect"),
    ("ECA_SERVBEHIND", _WARNING, "Server (IOC) has fallen behind or is not responding- still waiting"),
    ("ECA_NOCAST", _WARNING, "No internet interface with broadcast available"),
    ("ECA_BADMASK", _ERROR, "Invalid event selection mask"),
    ("ECA_IODONE", _INFO, "IO operations have completed"),
    ("ECA_IOINPROGRESS", _INFO, "IO operations are in progress"),
    ("ECA_BADSYNCGRP", _ERROR, "Invalid synchronous group identifier"),
    ("ECA_PUTCBINPROG", _ERROR, "Put callback timed out"),
    ("ECA_NORDACCESS", _WARNING, "Read access denied"),
    ("ECA_NOWTACCESS", _WARNING, "Write access denied"),
    ("ECA_ANACHRONISM", _ERROR, "Requested feature is no longer supported"),
    ("ECA_NOSEARCHADDR", _WARNING, "Empty PV search address list"),
    ("ECA_NOCONVERT", _WARNING, "No reasonable data conversion between client and server types"),
    ("ECA_BADCHID", _ERROR, "Invalid channel identifier"),
    ("ECA_BADFUNCPTR", _ERROR, "Invalid function pointer"),
    ("ECA_ISATTACHED", _WARNING, "Thread is already attached to a client context"),
    ("ECA_UNAVAILINSERV", _WARNING, "Not supported by attached service"),
    ("ECA_CHANDESTROY", _WARNING, "User destroyed channel"),
    ("ECA_BADPRIORITY", _ERROR, "Invalid channel priority"),
    ("ECA_NOTTHREADED", _ERROR, "Preemptive callback not enabled - additional threads may not join context"),
    ("ECA_16KARRAYCLIENT", _WARNING, "Client's protocol revision does not support transfers exceeding 16k bytes"),
    ("ECA_CONNSEQTMO", _WARNING, "Virtual circuit connection sequence aborted"),
    ("ECA_UNRESPTMO", _WARNING, "Virtual circuit unresponsive"),
)

#: ``ECA_NORMAL``: success.
NORMAL = 1

_BY_NAME = {entry[0]: (number << 3) | entry[1] for number, entry in enumerate(_TABLE)}


def message(status: int) -> str:
    """Return the text of a status code, as libca's ``ca_message`` does.

    Parameters
    ----------
    status : int
        An ECA status code, e.g. 160 (``ECA_PUTFAIL``).

    Returns
    -------
    str
        ``'Channel write request failed'`` for 160; for a message number
        this table does not know, libca's text for unknown codes.
    """
    number = (status & 0xFFFF) >> 3
    if number < len(_TABLE):
        return _TABLE[number][2]
    return "new CA message number known only by server - see caerr.h"


def name(status: int) -> str:
    """Return the ``ECA_*`` name of a status code (``'ECA_PUTFAIL'`` for 160).

    An unknown code gives ``'ECA_<code>'``.
    """
    number = (status & 0xFFFF) >> 3
    if number < len(_TABLE):
        return _TABLE[number][0]
    return f"ECA_{status}"


def by_name(ecaname: str) -> int:
    """Return the status code of an ``ECA_*`` name (``160`` for ``'ECA_PUTFAIL'``).

    Raises
    ------
    KeyError
        If the name is not an ECA code.
    """
    return _BY_NAME[ecaname]
