"""Reads, writes and subscriptions of :mod:`compat.ca` channels.

:func:`get_with_metadata` and friends send a read and keep its reply in the
channel's *get slot* for that DBR type (:class:`_GetSlot`, pyepics'
``GET_PENDING`` until it arrives), so that ``wait=False`` and
:func:`get_complete` work as in pyepics.  :func:`put` shares the write of
:meth:`compat.PV.put`.  :func:`create_subscription` wraps a caclient
subscription.

Threads: the functions run in the caller's thread and block there (up to
their timeout).  Get replies complete their slot on an engine thread;
subscription and put-completion callbacks run on engine callback threads.

Locks: a channel's ``lock`` guards its get slots (taken briefly, never while
waiting).  The settings (``HAS_NUMPY``, ``AUTOMONITOR_MAXLENGTH``,
``DEFAULT_SUBSCRIPTION_MASK``, ``DEFAULT_CONNECTION_TIMEOUT``) are read from
the runtime's settings (``compat._runtime.SETTINGS``, where ``compat.ca.NAME =
value`` stores them) at call time.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from math import log10
from typing import Any

from caclient import AccessDeniedError, CAError, RemoteError

from . import _convert, dbr
from ._ca_channels import (
    _entry,
    chid_t,
    connect_channel,
    element_count,
    field_type,
    isConnected,
    promote_fieldtype,
    promote_type,
    withCHID,
    withConnectedCHID,
    withMaybeConnectedCHID,
)
from ._ca_context import withCA
from ._ca_messages import CASeverityException, ChannelAccessException, ChannelAccessGetFailure, message
from ._runtime import SETTINGS


class _GetPending:
    """The type of :data:`GET_PENDING`."""

    def __repr__(self) -> str:
        return "GET_PENDING"


#: What a get slot holds while its reply has not come (pyepics' sentinel).
GET_PENDING = _GetPending()
Empty = _GetPending


class _GetSlot:
    """One get request's reply: :data:`GET_PENDING` until it arrives."""

    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = GET_PENDING

    def complete(self, result: Any) -> None:
        self.result = result
        self.done.set()


# -- get ------------------------------------------------------------------------------------------
@withMaybeConnectedCHID
def get_with_metadata(
    chid: chid_t,
    ftype: int | None = None,
    count: int | None = None,
    wait: bool = True,
    timeout: float | None = None,
    as_string: bool = False,
    as_numpy: bool = True,
) -> dict[str, Any] | None:
    """Ask for the value; with *wait*, return it and its metadata as a dict (key ``'value'``).

    Returns None when not connected, with ``wait=False`` (then
    :func:`get_complete_with_metadata` gives the result) or on timeout (with
    a warning).  A request still pending for the same type is not sent again.

    Raises
    ------
    ChannelAccessGetFailure
        The server refused the read.
    CASeverityException
        No read access.
    """
    entry = _entry(chid)
    if ftype is None:
        ftype = field_type(chid)
    if ftype is None or ftype == -1:
        return None
    nelm = element_count(chid) or 0
    req = 0 if count is None else min(count, nelm)
    eng = entry.engine()
    with entry.lock:
        slot = entry.gets.get(ftype)
        send = slot is None or slot.done.is_set()
        if send:
            slot = entry.gets[ftype] = _GetSlot()
    if send:
        assert slot is not None
        try:
            eng.read(wait=False, callback=slot.complete, data_type=ftype, data_count=req or None)
        except AccessDeniedError:
            slot.complete(None)
            raise CASeverityException("get", message(368)) from None
        except CAError as exc:
            slot.complete(exc)
    if wait:
        # (count 0 when not given, as in pyepics: as_string then gives str(value) for enums and arrays)
        return get_complete_with_metadata(
            chid, ftype=ftype, count=req, timeout=timeout, as_string=as_string, as_numpy=as_numpy
        )
    return None


@withMaybeConnectedCHID
def get(
    chid: chid_t,
    ftype: int | None = None,
    count: int | None = None,
    wait: bool = True,
    timeout: float | None = None,
    as_string: bool = False,
    as_numpy: bool = True,
) -> Any:
    """Return the value of a channel (None if not connected, with ``wait=False``, or on timeout).

    See :func:`get_with_metadata`; ``as_string`` gives the state name of an
    enum, the text of a CHAR array and ``'<array count=N, type=T>'`` for
    other arrays.
    """
    info = get_with_metadata(chid, ftype=ftype, count=count, wait=wait, timeout=timeout, as_string=as_string,
                             as_numpy=as_numpy)  # fmt: skip
    return info["value"] if info is not None else None


@withMaybeConnectedCHID
def get_complete_with_metadata(
    chid: chid_t,
    ftype: int | None = None,
    count: int | None = None,
    timeout: float | None = None,
    as_string: bool = False,
    as_numpy: bool = True,
) -> dict[str, Any] | None:
    """Wait for the reply of an earlier get (``wait=False``, or one that timed out); a dict or None.

    Warns and returns None without an earlier get, or on timeout (default
    ``1 + log10(count)`` s).  The reply is kept: asking again gives it again.
    """
    entry = _entry(chid)
    if ftype is None:
        ftype = field_type(chid)
    nelm = element_count(chid) or 0
    count = nelm if count is None else min(count, nelm)
    with entry.lock:
        slot = entry.gets.get(ftype)  # type: ignore[arg-type]
    if slot is None:
        warnings.warn("get_complete without initial get() call", stacklevel=3)
        return None
    if timeout is None:
        timeout = 1.0 + log10(max(1, count))
    if not slot.done.wait(max(float(timeout), 0.0)):
        warnings.warn(f"ca.get('{entry.pvname}') timed out after {timeout:.2f} seconds.", stacklevel=3)
        return None
    result = slot.result
    if result is None:
        return None
    if isinstance(result, RemoteError):
        raise ChannelAccessGetFailure(f"Get failed; status code: {result.status}", chid=int(chid), status=result.status)
    if isinstance(result, BaseException):
        warnings.warn(f"ca.get('{entry.pvname}') timed out after {timeout:.2f} seconds.", stacklevel=3)
        return None
    ftype = int(ftype)  # type: ignore[arg-type]
    ntype = dbr.native_type(ftype)
    out = _convert.metadata(result.metadata, ftype) if ftype >= dbr.TIME_STRING else {}
    val = _convert.unpack_response(result, ntype, nelm, count, as_numpy and SETTINGS.HAS_NUMPY)
    if as_string:
        val = _as_string(val, chid, count, ftype)
    out["value"] = val
    return out


@withMaybeConnectedCHID
def get_complete(
    chid: chid_t,
    ftype: int | None = None,
    count: int | None = None,
    timeout: float | None = None,
    as_string: bool = False,
    as_numpy: bool = True,
) -> Any:
    """The value of :func:`get_complete_with_metadata`, or None."""
    info = get_complete_with_metadata(chid, ftype=ftype, count=count, timeout=timeout, as_string=as_string,
                                      as_numpy=as_numpy)  # fmt: skip
    return info["value"] if info is not None else None


def _as_string(val: Any, chid: Any, count: int, ftype: int) -> Any:
    """pyepics' ``ca``-level string form (simpler than PV.char_value)."""
    try:
        if ftype in (dbr.CHAR, dbr.TIME_CHAR, dbr.CTRL_CHAR):
            return (
                _convert.string_for_many(val, dbr.CHAR, count, None)
                if count < SETTINGS.AUTOMONITOR_MAXLENGTH
                else str(val)
            )
        if ftype == dbr.ENUM and count == 1:
            return _convert.string_for_many(val, dbr.ENUM, 1, get_enum_strings(chid))
        if count > 1:
            return f"<array count={count}, type={ftype}>"
        return str(val)
    except ValueError:
        return val


def _metadata_only(chid: chid_t, ftype: int | None, timeout: float) -> dict[str, Any] | None:
    """Read one element of type *ftype* and return its metadata without the value, or None."""
    md = get_with_metadata(chid, ftype=ftype, count=1, timeout=timeout, wait=True)
    if md is not None:
        md.pop("value", None)
    return md


@withMaybeConnectedCHID
def get_ctrlvars(chid: chid_t, timeout: float = 5.0, warn: bool = True) -> dict[str, Any] | None:
    """The control fields (limits, precision, units, enum_strs, status, severity), or None."""
    return _metadata_only(chid, promote_type(chid, use_ctrl=True), timeout)


@withCHID
def get_timevars(chid: chid_t, timeout: float = 5.0, warn: bool = True) -> dict[str, Any] | None:
    """status, severity and the time stamp fields, or None."""
    return _metadata_only(chid, promote_type(chid, use_time=True), timeout)


def get_timestamp(chid: Any) -> float:
    """The time stamp of the channel's value (0 if unknown)."""
    return float((get_timevars(chid) or {}).get("timestamp", 0))


def get_severity(chid: Any) -> int:
    """The alarm severity of the channel's value (0 if unknown)."""
    return int((get_timevars(chid) or {}).get("severity", 0))


def get_precision(chid: Any) -> int | None:
    """PREC of a FLOAT/DOUBLE channel; None for other types."""
    if field_type(chid) in (dbr.FLOAT, dbr.DOUBLE):
        return (get_ctrlvars(chid) or {}).get("precision", None)
    return None


def get_enum_strings(chid: Any) -> Any:
    """The state names of an ENUM channel; None for other types."""
    if field_type(chid) == dbr.ENUM:
        return (get_ctrlvars(chid) or {}).get("enum_strs", None)
    return None


# -- put ------------------------------------------------------------------------------------------
@withConnectedCHID
def put(
    chid: chid_t,
    value: Any,
    wait: bool = False,
    timeout: float = 30,
    callback: Callable[..., Any] | None = None,
    callback_data: Any = None,
    ftype: int | None = None,
) -> int | None:
    """Write *value*; returns 1, or -1 when *wait* timed out.

    *callback* is called as ``callback(pvname=, **callback_data)`` (or
    ``data=callback_data`` when it is not a dict) once the put completes.

    Raises
    ------
    ChannelAccessException
        The channel did not connect.
    CASeverityException
        No write access.
    """
    from ._pv_io import _write_channel  # (it imports compat.ca)

    entry = _entry(chid)
    eng = entry.engine()
    ntype = dbr.native_type(ftype) if ftype is not None else (field_type(chid) or 0)
    done = None
    if callable(callback):
        user = callback

        def done(pvname: str | None = None, **kws: Any) -> None:
            user(pvname=pvname, **kws)

    return _write_channel(eng, ntype, entry.pvname, value, wait, timeout, done, callback_data)


# -- subscriptions --------------------------------------------------------------------------------
class _EventID:
    """A subscription made by :func:`create_subscription` (its ``event_id``)."""

    __slots__ = ("sub", "token", "value")

    def __init__(self, sub: Any, token: int) -> None:
        self.sub = sub
        self.token = token
        self.value = id(self)

    def __repr__(self) -> str:
        return f"<event_id {self.value:#x}>"


@withCHID
def create_subscription(
    chid: chid_t,
    use_time: bool = False,
    use_ctrl: bool = False,
    ftype: int | None = None,
    mask: int | None = None,
    callback: Callable[..., Any] | None = None,
    count: int = 0,
    timeout: float | None = None,
) -> tuple[Callable[..., Any], Any, _EventID]:
    """Call *callback* on each change of the channel; returns ``(callback_ref, user_arg_ref, event_id)``.

    The callback gets ``value=, ftype=, count=, chid=, pvname=`` and the
    metadata of the type (status, severity, timestamp ... for TIME).
    Nothing happens if the tuple is dropped (pyepics crashes); pass
    ``event_id`` to :func:`clear_subscription` to stop.

    Raises
    ------
    ChannelAccessException
        *ftype* is None and the channel does not connect within *timeout*.
    """
    entry = _entry(chid)
    mask = mask or SETTINGS.DEFAULT_SUBSCRIPTION_MASK
    if ftype is None:
        if not isConnected(chid):
            wait = SETTINGS.DEFAULT_CONNECTION_TIMEOUT if timeout is None else timeout
            if not connect_channel(chid, timeout=wait):
                raise ChannelAccessException(
                    f"create_subscription() timed out waiting '{int(chid)}' to connect ({wait:.0f} seconds)"
                )
        ftype = field_type(chid) or 0
    ftype = promote_fieldtype(ftype, use_time=use_time, use_ctrl=use_ctrl)
    pvname = entry.pvname
    chid_int = int(chid)
    user = callback
    numpy_ok = SETTINGS.HAS_NUMPY

    def on_update(sub: Any, resp: Any) -> None:
        if resp.status != dbr.ECA_NORMAL or not callable(user):
            return
        n = resp.data_count
        nelm = entry.engine().native_data_count or n
        kwds: dict[str, Any] = {"ftype": ftype, "count": n, "chid": chid_int, "pvname": pvname}
        if ftype >= dbr.TIME_STRING:
            kwds.update(_convert.metadata(resp.metadata, ftype))
        value = _convert.unpack_response(resp, dbr.native_type(ftype), nelm, n, numpy_ok)
        if _convert.is_ndarray(value):
            value = value.copy()  # (the response may be shared with other subscribers)
        user(value=value, **kwds)

    sub = entry.engine().subscribe(data_type=ftype, data_count=count or None, mask=mask)
    token = sub.add_callback(on_update)
    return (on_update, user, _EventID(sub, token))


@withCA
def clear_subscription(event_id: Any) -> int:
    """Stop a subscription (its ``event_id``, or the whole tuple); returns ECA_NORMAL.

    Clearing twice, or after :func:`clear_cache`, is harmless.
    """
    if isinstance(event_id, tuple) and event_id:
        event_id = event_id[-1]
    if isinstance(event_id, _EventID):
        event_id.sub.remove_callback(event_id.token)
    return dbr.ECA_NORMAL
