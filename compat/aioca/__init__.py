"""compat.aioca: aioca 2.1's interface on caclient's engine (no libca).

Code written for aioca runs unchanged::

    import compat.aioca as aioca

    async def main():
        print(await aioca.caget("IOC:ai", format=aioca.FORMAT_TIME))
        await aioca.caput("IOC:ao", 1.5, wait=True)
        sub = aioca.camonitor("IOC:counter", print)

or, for a program that says ``import aioca``, call :func:`install` first
or run it as ``python -m compat.aioca program.py [args]``.

Values, augmented attributes, ``CANothing`` results, timeouts and
``throw=False`` follow aioca; ``docs/aioca.rst`` lists where compat.aioca
deliberately differs.  Each event loop gets its own channels over its own
:class:`caclient.asyncio.Context`, made from the ``EPICS_CA_*`` variables
when the loop first uses compat.aioca.
"""

from __future__ import annotations

import sys

from . import types
from ._calls import (
    CAInfo,
    ChannelInfo,
    caget,
    cainfo,
    caput,
    connect,
    get_channel_infos,
    purge_channel_caches,
    run,
)
from ._constants import (
    DBE_ALARM,
    DBE_LOG,
    DBE_PROPERTY,
    DBE_VALUE,
    DBR_CHAR,
    DBR_CHAR_BYTES,
    DBR_CHAR_STR,
    DBR_CHAR_UNICODE,
    DBR_CLASS_NAME,
    DBR_DOUBLE,
    DBR_ENUM,
    DBR_ENUM_STR,
    DBR_FLOAT,
    DBR_LONG,
    DBR_PUT_ACKS,
    DBR_PUT_ACKT,
    DBR_SHORT,
    DBR_STRING,
    DBR_STSACK_STRING,
    FORMAT_CTRL,
    FORMAT_RAW,
    FORMAT_TIME,
    ca_extra_fields,
)
from ._monitor import Subscription, camonitor

# CAException, InvalidDatatype and the ca_* classes are public but not in aioca's __all__ (aioca has them
# in epicscorelibs.ca).
from ._values import CAException, CANothing, InvalidDatatype, ca_array, ca_bytes, ca_float, ca_int, ca_str  # noqa: F401

#: The aioca release whose interface this module follows.
__version__ = "2.1"


def install() -> None:
    """Make ``import aioca`` (and ``import aioca.types``) give this module.

    Call it before the program imports aioca.  Raises RuntimeError if the
    real aioca has already been imported in this process.
    """
    current = sys.modules.get("aioca")
    if current is not None and current is not sys.modules[__name__]:
        raise RuntimeError(
            "the real aioca is already imported in this process: call compat.aioca.install() before "
            "anything imports aioca"
        )
    sys.modules["aioca"] = sys.modules[__name__]
    sys.modules["aioca.types"] = types


__all__ = [
    "Subscription",
    "caput",
    "caget",
    "camonitor",
    "connect",
    "cainfo",
    "CAInfo",
    "CANothing",
    "ChannelInfo",
    "get_channel_infos",
    "purge_channel_caches",
    "run",
    "__version__",
    "DBE_VALUE",
    "DBE_LOG",
    "DBE_ALARM",
    "DBE_PROPERTY",
    "DBR_STRING",
    "DBR_SHORT",
    "DBR_FLOAT",
    "DBR_ENUM",
    "DBR_CHAR",
    "DBR_LONG",
    "DBR_DOUBLE",
    "DBR_CHAR_STR",
    "DBR_CHAR_UNICODE",
    "DBR_ENUM_STR",
    "DBR_CHAR_BYTES",
    "DBR_PUT_ACKT",
    "DBR_PUT_ACKS",
    "DBR_STSACK_STRING",
    "DBR_CLASS_NAME",
    "FORMAT_RAW",
    "FORMAT_TIME",
    "FORMAT_CTRL",
    "ca_extra_fields",
]
