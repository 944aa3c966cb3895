"""caclient: a threaded EPICS Channel Access client in pure Python.

Quick start::

    from caclient import Context
    with Context() as ctx:
        x, = ctx.get_pvs("XF:31IDA-OP{Tbl-Ax:X1}Mtr")
        print(x.read(data_type="time").data)
"""

from ._config import Config
from ._context import Context
from ._dbr import AccessRights, ChannelType, Metadata
from ._errors import (
    AccessDeniedError,
    BlockingCallError,
    CAError,
    CATimeoutError,
    ContextClosedError,
    DisconnectedError,
    ProtocolError,
    RemoteError,
)
from ._proto import DBE_ALARM, DBE_LOG, DBE_PROPERTY, DBE_VALUE
from ._pv import PV
from ._response import ReadResponse, WriteResponse
from ._stats import CallbackStatistics, CircuitStatistics, SearchStatistics, Statistics
from ._subscription import Subscription

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AccessRights",
    "BlockingCallError",
    "CAError",
    "CATimeoutError",
    "CallbackStatistics",
    "ChannelType",
    "CircuitStatistics",
    "Config",
    "Context",
    "ContextClosedError",
    "DBE_ALARM",
    "DBE_LOG",
    "DBE_PROPERTY",
    "DBE_VALUE",
    "DisconnectedError",
    "Metadata",
    "PV",
    "ProtocolError",
    "ReadResponse",
    "RemoteError",
    "SearchStatistics",
    "Statistics",
    "Subscription",
    "WriteResponse",
]
