"""compat: pyepics 3.5.10's interface on top of caclient.

Use it as a drop-in for pyepics::

    import compat as epics

    epics.caput("IOC:ao", 1.5, wait=True)
    print(epics.caget("IOC:ai", as_string=True))
    pv = epics.PV("IOC:counter", callback=lambda **kw: print(kw["value"]))

or leave the program as it is and run it with ``python -m compat
program.py ARGS`` (or call :func:`install` first): ``import epics`` then
gives compat.  Calls, arguments, return values, value types, warnings and
callback keyword arguments follow pyepics; ``docs/migrating-from-pyepics.rst``
lists where compat deliberately differs.  All of compat shares one caclient Context,
created on first use from the ``EPICS_CA_*`` variables set at that moment.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from caclient import AccessDeniedError, CAError, RemoteError

from . import _convert, _runtime, ca, dbr, pv, utils
from ._install import install, uninstall
from .ca import poll
from .pv import PV, get_pv

if TYPE_CHECKING:
    from . import alarm, device, motor, multiproc
    from .alarm import Alarm
    from .device import Device
    from .motor import Motor
    from .multiproc import CAPool, CAProcess

__version__ = "3.5.10"

NO_ALARM = 0
MINOR_ALARM = 1
MAJOR_ALARM = 2
INVALID_ALARM = 3

#: The PVs :func:`camonitor` watches, by name.
_PVmonitors_ = _runtime.RUNTIME.monitors

__all__ = [
    "Alarm",
    "CAPool",
    "CAProcess",
    "INVALID_ALARM",
    "MAJOR_ALARM",
    "MINOR_ALARM",
    "Motor",
    "NO_ALARM",
    "PV",
    "Device",
    "alarm",
    "ca",
    "caget",
    "caget_many",
    "cainfo",
    "camonitor",
    "camonitor_clear",
    "caput",
    "caput_many",
    "dbr",
    "device",
    "get_pv",
    "install",
    "motor",
    "multiproc",
    "poll",
    "pv",
    "uninstall",
    "utils",
]


#: Names loaded on first use: a one-shot caget needs neither devices, motors nor
#: multiprocessing (whose import alone costs about 10 ms).
_LAZY = {
    "alarm": ("alarm", ""),
    "Alarm": ("alarm", "Alarm"),
    "motor": ("motor", ""),
    "Motor": ("motor", "Motor"),
    "device": ("device", ""),
    "Device": ("device", "Device"),
    "multiproc": ("multiproc", ""),
    "CAPool": ("multiproc", "CAPool"),
    "CAProcess": ("multiproc", "CAProcess"),
}


def __getattr__(name: str) -> Any:
    spec = _LAZY.get(name)
    if spec is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{spec[0]}")
    return getattr(module, spec[1]) if spec[1] else module


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def caput(
    pvname: str, value: Any, wait: bool = False, timeout: float = 60.0, connection_timeout: float = 5.0
) -> int | None:
    """Write *value* to a PV.

    Parameters
    ----------
    pvname : str
    value
        Number, string, sequence or numpy array (enum state names and text
        for CHAR arrays are converted).
    wait : bool
        Wait until the server reports the put complete.
    timeout : float
        Seconds to wait with *wait* (less the time spent connecting).
    connection_timeout : float
        Seconds to wait for the connection.

    Returns
    -------
    int or None
        1 on success, -1 if the wait timed out, None if the PV did not connect.
    """
    start = time.monotonic()
    thispv = get_pv(pvname, timeout=connection_timeout, connect=True)
    if not thispv.connected:
        return None
    return thispv.put(value, wait=wait, timeout=timeout - (time.monotonic() - start))


def caget(
    pvname: str,
    as_string: bool = False,
    count: int | None = None,
    as_numpy: bool = True,
    use_monitor: bool = True,
    timeout: float = 5.0,
    connection_timeout: float = 5.0,
) -> Any:
    """Return the value of a PV, or None if it does not connect or the read times out.

    Parameters
    ----------
    pvname : str
    as_string : bool
        Return the string form (PREC-formatted number, enum state, CHAR text).
    count : int, optional
        At most this many elements.
    as_numpy : bool
        Arrays as numpy arrays (else lists).
    use_monitor : bool
        Use the PV's monitor value when there is one.
    timeout : float
        Seconds for the read (less the time spent connecting).
    connection_timeout : float
        Seconds to wait for the connection.

    Raises
    ------
    compat.ca.ChannelAccessGetFailure
        The server refused the read.

    Notes
    -----
    Like pyepics, this caches a PV (with a monitor) for *pvname*: later calls
    return the monitor's value.  A timed-out read warns
    ``ca.get('NAME') timed out after T seconds.``
    """
    start = time.monotonic()
    thispv = get_pv(pvname, timeout=connection_timeout, connect=True)
    if not thispv.connected:
        return None
    if as_string:
        thispv.get_ctrlvars()
    return thispv.get(
        count=count,
        timeout=timeout - (time.monotonic() - start),
        use_monitor=use_monitor,
        as_string=as_string,
        as_numpy=as_numpy,
    )


def cainfo(pvname: str, print_out: bool = True, timeout: float = 5.0, connection_timeout: float = 5.0) -> str | None:
    """Print (or with ``print_out=False`` return) a report on a PV; None if it does not connect."""
    start = time.monotonic()
    thispv = get_pv(pvname, timeout=connection_timeout, connect=True)
    if not thispv.connected:
        return None
    thispv.get(timeout=timeout - (time.monotonic() - start))
    thispv.get_ctrlvars(timeout=timeout - (time.monotonic() - start))
    text = thispv.info
    if print_out:
        ca.write(text or "")
        return None
    return text


def camonitor_clear(pvname: str) -> None:
    """Stop the printing (or callback) that :func:`camonitor` set up for *pvname*."""
    thispv = _PVmonitors_.pop(pvname, None)
    if thispv is not None:
        thispv.remove_callback(index=-999)


def camonitor(
    pvname: str,
    writer: Callable[[str], Any] | None = None,
    callback: Callable[..., Any] | None = None,
    connection_timeout: float = 5.0,
    monitor_delta: float | None = None,
) -> None:
    """Print a line for each change of a PV (or call *callback*).

    The line is ``'NAME  YYYY-mm-dd HH:MM:SS.fffff  char_value'`` with the
    local time of the update; *writer* (default: print to stdout) gets it.
    Calling it again for the same PV replaces the earlier monitor.  Unlike
    pyepics, a PV with more than ``ca.AUTOMONITOR_MAXLENGTH`` elements is
    monitored too.
    """
    write = writer if writer is not None else ca.write
    if callback is None:

        def callback(pvname: str | None = None, value: Any = None, char_value: Any = None, **kws: Any) -> None:
            text = char_value if char_value is not None else repr(value)
            write(f"{pvname:.32s} {pv.fmt_time()} {text}")

    thispv = get_pv(pvname, timeout=connection_timeout, connect=True, monitor_delta=monitor_delta)
    if not thispv.connected:
        return
    if not thispv.auto_monitor:
        thispv.auto_monitor = True
    thispv.get()
    thispv.add_callback(callback, index=-999, with_ctrlvars=True)
    _PVmonitors_[pvname] = thispv


def caget_many(
    pvlist: Iterable[str],
    as_string: bool = False,
    as_numpy: bool = True,
    count: int | None = None,
    timeout: float = 1.0,
    connection_timeout: float = 5.0,
    conn_timeout: float | None = None,
) -> list[Any]:
    """Read many PVs at once; a list in input order with None for each failure.

    All names are searched and connected together and every read goes out as
    soon as its PV connects; *connection_timeout* plus *timeout* bound the
    whole call.  Values are read with the native type (no time stamps).
    *conn_timeout* is an old name of *connection_timeout*.  No PV objects
    are cached.

    Raises
    ------
    compat.ca.ChannelAccessGetFailure
        A server refused a read.
    """
    names = list(pvlist)
    if conn_timeout is not None:
        connection_timeout = conn_timeout
    if not names:
        return []
    ctx = _runtime.context()
    chans = ctx.get_pvs(*names)
    results: list[Any]
    if not count:
        results = ctx.read_many(chans, timeout=connection_timeout + timeout)
    else:
        # A count is clamped to each channel's size (asking for more is an
        # error): connect everything first, then read by clamped count.
        deadline = time.monotonic() + connection_timeout
        results = [None] * len(chans)
        groups: dict[int, list[int]] = {}
        for i, chan in enumerate(chans):
            try:
                chan.wait_for_connection(timeout=max(0.0, deadline - time.monotonic()))
            except CAError as exc:
                results[i] = exc
                continue
            groups.setdefault(min(count, chan.native_data_count or 1), []).append(i)
        for clamped, slots in groups.items():
            got = ctx.read_many([chans[i] for i in slots], data_count=clamped, timeout=timeout)
            for i, result in zip(slots, got, strict=True):
                results[i] = result
    out: list[Any] = []
    enum_slots: list[int] = []
    for i, (chan, result) in enumerate(zip(chans, results, strict=True)):
        if isinstance(result, RemoteError):
            raise ca.ChannelAccessGetFailure(
                f"Get failed; status code: {result.status}", chid=id(chan), status=result.status
            )
        if isinstance(result, CAError):
            out.append(None)
            continue
        ntype = int(result.data_type)
        nelm = chan.native_data_count or 1
        value = _convert.unpack_response(result, ntype, nelm, count, as_numpy)
        if as_string:
            if ntype == dbr.ENUM and nelm == 1:
                enum_slots.append(i)
            else:
                value = _convert.string_for_many(value, ntype, nelm, None)
        out.append(value)
    if enum_slots:
        ctrl = ctx.read_many([chans[i] for i in enum_slots], data_type="control", data_count=1, timeout=timeout)
        for i, result in zip(enum_slots, ctrl, strict=True):
            strs = None if isinstance(result, CAError) else result.metadata.enum_strings
            out[i] = _convert.string_for_many(out[i], dbr.ENUM, 1, strs)
    return out


def caput_many(
    pvlist: Sequence[str],
    values: Sequence[Any],
    wait: bool | str = False,
    connection_timeout: float = 5.0,
    put_timeout: float = 60,
) -> list[int]:
    """Write many PVs at once; a list of 1 (done) or -1 (failed or not connected).

    Parameters
    ----------
    pvlist : sequence of str
    values : sequence
        One value per PV.
    wait : {False, 'each', 'all'}
        False: do not wait; 'each': wait for each put in turn; 'all': send
        all puts, then wait for all of them together.
    connection_timeout : float
        One deadline for connecting all the PVs.
    put_timeout : float
        Seconds to wait for completion (per put with 'each', in all with 'all').

    Raises
    ------
    ValueError
        If the lists have different lengths.
    """
    if len(pvlist) != len(values):
        raise ValueError("List of PV names must be equal to list of values.")
    pvs = [get_pv(name, auto_monitor=False, timeout=connection_timeout) for name in pvlist]
    deadline = time.monotonic() + connection_timeout
    for thispv in pvs:
        thispv.wait_for_connection(timeout=max(0.0, deadline - time.monotonic()))
    if wait == "each":
        out = []
        for thispv, value in zip(pvs, values, strict=True):
            # (a PV that missed the one connection deadline is not waited for again)
            ret = thispv.put(value, wait=True, timeout=put_timeout) if thispv.connected else None
            out.append(1 if ret == 1 else -1)
        return out
    return _put_burst(pvs, values, wait == "all", put_timeout)


def _put_burst(pvs: list[PV], values: Sequence[Any], wait: bool, timeout: float) -> list[int]:
    """caput_many without 'each': one burst of puts per server (and one deadline for all completions)."""
    out = [-1] * len(pvs)
    todo: list[tuple[int, PV, Any, int]] = []
    for i, (thispv, value) in enumerate(zip(pvs, values, strict=True)):
        if not thispv.connected:
            continue
        ntype = thispv._ntype
        if ntype == dbr.ENUM and isinstance(value, str):
            if thispv._args["enum_strs"] is None:
                thispv.get_ctrlvars()
            strs = thispv._args["enum_strs"] or ()
            if value in strs:
                value = strs.index(value)
        data, count = _convert.encode_put(value, ntype, thispv.nelm or 1, utils.wire_encoding())
        todo.append((i, thispv, data, count))
    if not todo:
        return out
    for _, thispv, _, _ in todo:
        thispv._put_complete = False if wait else None
    results = _runtime.context().write_many(
        [thispv._chan() for _, thispv, _, _ in todo],
        [data for _, _, data, _ in todo],
        wait=wait,
        timeout=timeout,
        data_types=[thispv._ntype for _, thispv, _, _ in todo],
        data_counts=[count for _, _, _, count in todo],
    )
    denied = False
    for (i, thispv, _, _), result in zip(todo, results, strict=True):
        _runtime.RUNTIME.note_write(thispv._eng)
        if isinstance(result, AccessDeniedError):
            denied = True
        elif isinstance(result, CAError) and not isinstance(result, RemoteError):
            continue
        elif isinstance(result, Exception) and not isinstance(result, CAError):
            raise result  # a value that does not fit the channel (as pyepics' put raises)
        else:
            if wait:
                thispv._put_complete = True
            out[i] = 1
    if denied:
        raise ca.CASeverityException("put", ca.message(376))
    return out
