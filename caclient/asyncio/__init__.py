"""caclient.asyncio: caproto's asyncio client API, on caclient's threaded engine.

A script written for ``caproto.asyncio.client`` ports by changing one import::

    from caclient.asyncio import Context

    async def main():
        async with Context() as ctx:
            x, = await ctx.get_pvs("IOC:x")
            print((await x.read(data_type="time")).data)

The engine's threads do all the I/O; coroutines await futures that the
engine settles with one loop wake-up per burst of replies.  See the
"asyncio" guide in the documentation.
"""

from .._errors import (
    AccessDeniedError,
    CAError,
    CATimeoutError,
    ContextClosedError,
    DisconnectedError,
    RemoteError,
)
from .._response import ReadResponse, WriteResponse
from ._context import CircuitManager, Context, SharedBroadcaster, VirtualCircuitManager
from ._pv import PV, PV_DEFAULT_TIMEOUT
from ._subscription import Subscription, SubscriptionIterator

__all__ = [
    "AccessDeniedError",
    "CAError",
    "CATimeoutError",
    "CircuitManager",
    "Context",
    "ContextClosedError",
    "DisconnectedError",
    "PV",
    "PV_DEFAULT_TIMEOUT",
    "ReadResponse",
    "RemoteError",
    "SharedBroadcaster",
    "Subscription",
    "SubscriptionIterator",
    "VirtualCircuitManager",
    "WriteResponse",
]
