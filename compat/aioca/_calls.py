"""caget, caput, connect and cainfo: aioca's one-shot calls, for one PV or a list of PVs.

Every call takes ``timeout`` (seconds, ``(deadline,)`` in ``time.time()``
terms, or None for never) and ``throw``.  A list of PVs runs all of them
at once; with ``throw=True`` one deadline covers the whole list and a
timeout is reported as ``CANothing('Multiple PVs', ECA_TIMEOUT)``; with
``throw=False`` each PV has the full timeout and its own result.

Runs on the caller's event loop only (see :mod:`._channels`).
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ClassVar, TypeVar

from ._channels import REGISTRY, Channel, engine_read, engine_write, get_channel
from ._constants import (
    CS_CONN,
    DBF_NO_ACCESS,
    DBR_STRING,
    ECA_BADCOUNT,
    ECA_BADSTR,
    ECA_DISCONN,
    ECA_NORDACCESS,
    ECA_NOWTACCESS,
    ECA_TIMEOUT,
    FORMAT_RAW,
    MAX_STRING_SIZE,
)
from ._convert import plan_write
from ._values import CAException, CANothing

T = TypeVar("T")

_timeout_scope: Any = getattr(asyncio, "timeout", None)

#: The timeout of every call that is not given one (seconds).
DEFAULT_TIMEOUT = 5.0
_MULTIPLE = "Multiple PVs"


def _seconds(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        return float(timeout[0]) - time.time()
    return float(timeout)


async def ca_timeout(awaitable: Awaitable[T], name: str, timeout: Any) -> T:
    """Await *awaitable* within *timeout*; a timeout becomes ``CANothing(name, ECA_TIMEOUT)``."""
    seconds = _seconds(timeout)
    if seconds is None:
        return await awaitable
    try:
        if _timeout_scope is None:  # Python 3.10
            return await asyncio.wait_for(awaitable, seconds)
        async with _timeout_scope(seconds):  # (no extra task per call, unlike wait_for)
            return await awaitable
    except asyncio.TimeoutError as exc:
        raise CANothing(name, ECA_TIMEOUT) from exc


async def _one(name: str, body: Callable[[], Coroutine[Any, Any, T]], timeout: Any, throw: bool) -> T | CANothing:
    """Run one PV's call with aioca's timeout and ``throw`` rules."""
    if throw:
        return await ca_timeout(body(), name, timeout)
    try:
        return await ca_timeout(body(), name, timeout)
    except CANothing as failure:
        return failure
    except CAException as error:
        return CANothing(name, error.status)


async def _many(
    names: Sequence[str], call: Callable[..., Coroutine[Any, Any, Any]], timeout: Any, throw: bool
) -> list[Any]:
    """Run *call(name, timeout=..., throw=...)* for every name at once, in order."""
    if throw:
        gathered = asyncio.gather(*(call(n, timeout=None, throw=True) for n in names))
        return list(await ca_timeout(gathered, _MULTIPLE, timeout))
    return list(await asyncio.gather(*(call(n, timeout=timeout, throw=False) for n in names)))


def _is_list(pv: Any) -> bool:
    return isinstance(pv, (list, tuple))


async def _each(pv: Any, body: Callable[[str], Coroutine[Any, Any, Any]], timeout: Any, throw: bool) -> Any:
    """*body* for one PV (:func:`_one`), or for each PV of a list (recursively) at once (:func:`_many`)."""
    if _is_list(pv):

        async def one(name: Any, **more: Any) -> Any:
            return await _each(name, body, **more)

        return await _many(pv, one, timeout, throw)
    return await _one(pv, lambda: body(pv), timeout, throw)


# -- caget ---------------------------------------------------------------------------------------------
async def caget(
    pv: Any,
    datatype: Any = None,
    format: int = FORMAT_RAW,
    count: int = 0,
    *,
    timeout: Any = DEFAULT_TIMEOUT,
    throw: bool = True,
) -> Any:
    """Read one PV, or a list of PVs at once.

    Parameters
    ----------
    pv : str or list of str
        A PV name, or a list (or tuple) of names.
    datatype : optional
        A ``DBR_*`` code, ``DBR_CHAR_STR``/``DBR_CHAR_BYTES``/``DBR_CHAR_UNICODE``,
        ``DBR_ENUM_STR``, a Python type (``int``, ``float``, ``str``, ``bytes``)
        or a numpy dtype; default the channel's own type.
    format : int
        ``FORMAT_RAW``, ``FORMAT_TIME`` (adds alarm and time stamp) or
        ``FORMAT_CTRL`` (adds alarm, units, limits, precision or enums).
    count : int
        Elements to read: 0 the server's current length, -1 the channel's full
        length, n at most n.
    timeout : float, tuple or None
        Seconds, ``(deadline,)`` in ``time.time()`` terms, or None for never.
    throw : bool
        False returns a failure as a ``CANothing`` instead of raising it.

    Returns
    -------
    augmented value, or a list of them
        A ``ca_float``, ``ca_int``, ``ca_str``, ``ca_bytes`` or ``ca_array``
        with attributes ``name``, ``ok``, ``datatype``, ``element_count`` and
        those of the format.

    Raises
    ------
    CANothing
        Timeout (``errorcode`` 80) or a failure reported by the server.
    CAException
        No read access.
    """
    if _is_list(pv):
        if datatype is not None or format != FORMAT_RAW or count != 0:
            kw = {"datatype": datatype, "format": format, "count": count}
        else:
            kw = {}

        async def one(name: str, **more: Any) -> Any:
            return await caget(name, **kw, **more)

        return await _many(pv, one, timeout, throw)
    return await _one(pv, lambda: _caget(pv, datatype, format, count), timeout, throw)


async def _caget(name: str, datatype: Any, format: int, count: int) -> Any:
    channel = get_channel(name, "caget()")
    await channel.wait()
    element_count = channel.native()[1]
    if count < 0:
        count = element_count
    elif count > 0:
        count = min(count, element_count)
    plan = channel.read_plan(datatype, format)
    if not channel.access()[0]:
        raise CAException(ECA_NORDACCESS, "ca_array_get_callback")
    response = await engine_read(channel, plan.dbrcode, count)
    return plan.convert(response)


# -- caput ---------------------------------------------------------------------------------------------
async def caput(
    pv: Any,
    value: Any,
    datatype: Any = None,
    wait: bool = False,
    *,
    repeat_value: bool = False,
    timeout: Any = DEFAULT_TIMEOUT,
    throw: bool = True,
) -> Any:
    """Write one PV, or a list of PVs at once.

    Parameters
    ----------
    pv : str or list of str
    value
        The value; for a list of PVs, a list of values of the same length, or
        one value for all (a str, a non-iterable, or with ``repeat_value``).
    datatype : optional
        Type to send instead of the channel's own (as for :func:`caget`;
        ``DBR_PUT_ACKT``/``DBR_PUT_ACKS`` acknowledge alarms).  A str or
        bytes value without datatype is sent as DBR_STRING for the server
        to convert.
    wait : bool
        Wait until the server reports the write (and the processing it
        started) complete.
    repeat_value : bool
        For a list of PVs: write the same *value* to each.
    timeout, throw
        As for :func:`caget`.

    Returns
    -------
    CANothing or list of CANothing
        ``ok`` true on success.

    Raises
    ------
    CANothing
        Timeout, or a failure the server reported (with ``wait``).
    CAException
        No write access, or more elements than the channel holds.
    TypeError, ValueError, OverflowError, AssertionError
        The value cannot be converted: nothing was sent.
    """
    if _is_list(pv):
        values: list[Any]
        if repeat_value or isinstance(value, str):
            values = [value] * len(pv)
        else:
            try:
                values = list(value)
            except TypeError:
                values = [value] * len(pv)
        if len(pv) != len(values):
            raise AssertionError("PV and value lists must match in length")
        pairs = dict(enumerate(values))
        names = list(pv)

        async def one(index: int, **more: Any) -> Any:
            return await caput(names[index], pairs[index], datatype, wait, **more)

        return await _many(list(range(len(names))), one, timeout, throw)  # type: ignore[arg-type]
    return await _one(pv, lambda: _caput(pv, value, datatype, wait), timeout, throw)


async def _caput(name: str, value: Any, datatype: Any, wait: bool) -> CANothing:
    channel = get_channel(name, "caput()")
    await channel.wait()
    native, element_count = channel.native()
    dbrcode, data, count = plan_write(name, native, datatype, value)
    function = "ca_array_put_callback" if wait else "ca_array_put"
    if not channel.access()[1]:
        raise CAException(ECA_NOWTACCESS, function)
    if count > element_count:
        raise CAException(ECA_BADCOUNT, function)
    if dbrcode == DBR_STRING and any(len(s) >= MAX_STRING_SIZE for s in data):
        raise CAException(ECA_BADSTR, function)  # (no room for the terminating NUL)
    await engine_write(channel, dbrcode, data, wait)
    return CANothing(name)


# -- connect and cainfo ------------------------------------------------------------------------------
async def connect(pv: Any, wait: bool = True, *, timeout: Any = DEFAULT_TIMEOUT, throw: bool = True) -> Any:
    """Connect to one PV or a list of PVs (other calls connect by themselves).

    Parameters
    ----------
    pv : str or list of str
    wait : bool
        False starts connecting and returns at once.
    timeout, throw
        As for :func:`caget`.

    Returns
    -------
    CANothing or list of CANothing
        ``ok`` true once connected (or at once without *wait*).
    """
    return await _each(pv, lambda name: _connect(name, wait), timeout, throw)


async def _connect(name: str, wait: bool) -> CANothing:
    channel = get_channel(name, "connect()")
    if wait:
        await channel.wait()
    return CANothing(name)


class CAInfo:
    """What :func:`cainfo` reports about a channel.

    Attributes
    ----------
    ok : bool
        Always True.
    name : str
    state : int
        Index into :attr:`state_strings`.
    host : str
        ``'host:port'`` of the server, or ``'<disconnected>'``.
    read, write : bool
        Access rights.
    count : int
        Native element count (0 when not connected).
    datatype : int
        Native DBR type, an index into :attr:`datatype_strings` (7 when not connected).
    """

    #: Text for each ``state``.
    state_strings: ClassVar[list[str]] = ["never connected", "previously connected", "connected", "closed"]
    #: Text for each ``datatype``.
    datatype_strings: ClassVar[list[str]] = ["string", "short", "float", "enum", "char", "long", "double", "no access"]

    def __init__(self, pv: str, channel: Channel) -> None:
        self.ok = True
        self.name = pv
        self.state = channel.state
        self.host = channel.host()
        self.read, self.write = channel.access()
        if self.state == CS_CONN:
            self.datatype, self.count = channel.native()
        else:
            self.count = 0
            self.datatype = DBF_NO_ACCESS

    def __str__(self) -> str:
        return (
            f"{self.name}:\n"
            f"    State: {self.state_strings[self.state]}\n"
            f"    Host: {self.host}\n"
            f"    Access: {self.read}, {self.write}\n"
            f"    Data type: {self.datatype_strings[self.datatype]}\n"
            f"    Count: {self.count}"
        )


async def cainfo(pv: Any, wait: bool = True, *, timeout: Any = DEFAULT_TIMEOUT, throw: bool = True) -> Any:
    """Describe one PV or a list of PVs: connection state, server, access, type and count.

    Parameters are those of :func:`connect`.

    Returns
    -------
    CAInfo or list of CAInfo
    """
    return await _each(pv, lambda name: _cainfo(name, wait), timeout, throw)


async def _cainfo(name: str, wait: bool) -> CAInfo:
    channel = get_channel(name, "cainfo()")
    if wait:
        await channel.wait()
    await channel.resolve_host()
    return CAInfo(name, channel)


# -- introspection and lifetime ------------------------------------------------------------------------
class ChannelInfo:
    """One channel of the running loop, as :func:`get_channel_infos` lists it.

    Attributes
    ----------
    name : str
    connected : bool
    subscriber_count : int
        Open subscriptions on the channel.
    """

    name: str
    connected: bool
    subscriber_count: int

    def __init__(self, name: str, connected: bool, subscriber_count: int) -> None:
        self.name = name
        self.connected = connected
        self.subscriber_count = subscriber_count


def get_channel_infos() -> list[ChannelInfo]:
    """Every channel the running loop has opened, in the order they were first used."""
    return [
        ChannelInfo(c.name, c.connected(), c.count_subscriptions())
        for c in REGISTRY.cache("get_channel_infos()").channels()
    ]


def purge_channel_caches() -> None:
    """Close every channel and subscription of every event loop, and their caclient Contexts.

    Later calls connect afresh.  Call it before your loop ends to release
    the engine's threads and sockets at once (it also runs at exit).
    """
    REGISTRY.purge_all()


def run(coro: Coroutine[Any, Any, T], forever: bool = False) -> T | None:
    """Run *coro* in a new event loop (deprecated by aioca: use :func:`asyncio.run`).

    Parameters
    ----------
    coro : coroutine
    forever : bool
        Keep the loop running after *coro* is started, until it is stopped.
    """
    warnings.warn("aioca.run is deprecated, please use asyncio.run instead", DeprecationWarning, stacklevel=2)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = None
    try:
        if forever:
            task = loop.create_task(coro)
            loop.run_forever()
            return None
        return loop.run_until_complete(coro)
    finally:
        if task is not None:
            task.cancel()
        loop.stop()
        loop.close()


__all__ = [
    "DEFAULT_TIMEOUT",
    "CAInfo",
    "ChannelInfo",
    "ECA_DISCONN",
    "ca_timeout",
    "caget",
    "cainfo",
    "caput",
    "connect",
    "get_channel_infos",
    "purge_channel_caches",
    "run",
]
