"""Reads and writes of a :class:`compat.PV`, made in the caller's thread (a mixin).

:meth:`PVReadWrite.get` and friends use the automatic monitor's latest value
when they can, else read the channel; the fields read go into ``_args``.
:meth:`PVReadWrite.put` converts and writes; :func:`_write_channel` is the
write shared with :func:`compat.ca.put`.

Threads and locks: all of it runs in the caller's thread and blocks there
(up to its timeout); no compat lock is held while waiting.  Put-completion
callbacks run on an engine callback thread.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from math import log10
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from caclient import (
    AccessDeniedError,
    CAError,
    CATimeoutError,
    RemoteError,
)

from . import _convert, dbr, utils
from ._ca_messages import CASeverityException, ChannelAccessGetFailure, message
from ._pv_base import PVBase
from ._runtime import RUNTIME

if TYPE_CHECKING:
    pass

log = logging.getLogger("compat")

_EPICS_EPOCH = float(dbr.EPICS2UNIX_EPOCH)
_TIME_ARGS = ("status", "severity", "timestamp", "posixseconds", "nanoseconds")


class PVReadWrite(PVBase):
    """PV methods that read and write the channel."""

    __slots__ = ()

    # -- reading ------------------------------------------------------------------------------
    def get(
        self,
        count: int | None = None,
        as_string: bool = False,
        as_numpy: bool = True,
        timeout: float | None = None,
        with_ctrlvars: bool = False,
        use_monitor: bool = True,
    ) -> Any:
        """Return the value; None when not connected or on timeout.

        Parameters
        ----------
        count : int, optional
            At most this many elements.
        as_string : bool
            Return :attr:`char_value` instead.
        as_numpy : bool
            Arrays as numpy arrays (else lists).
        timeout : float, optional
            Seconds to wait for connecting and for the reply (default for the
            reply: ``1 + log10(count)``).
        with_ctrlvars : bool
            Fetch the control fields too.
        use_monitor : bool
            Use the monitor's latest value when there is one (else read).

        Raises
        ------
        compat.ca.ChannelAccessGetFailure
            The server refused the read.
        """
        data = self.get_with_metadata(
            count=count,
            as_string=as_string,
            as_numpy=as_numpy,
            timeout=timeout,
            with_ctrlvars=with_ctrlvars,
            use_monitor=use_monitor,
        )
        return data["value"] if isinstance(data, dict) else None

    def get_with_metadata(
        self,
        count: int | None = None,
        as_string: bool = False,
        as_numpy: bool = True,
        timeout: float | None = None,
        with_ctrlvars: bool = False,
        form: str | None = None,
        use_monitor: bool = True,
        as_namespace: bool = False,
    ) -> dict[str, Any] | SimpleNamespace | None:
        """Return a dict of the value (key ``'value'``) and its metadata, or None.

        The keys are those of the read made ('time': status, severity,
        timestamp ...; 'ctrl': limits, precision, units ...), or every known
        field when the monitor's value is used.  *form* overrides the PV's
        form for this read; *as_namespace* returns a SimpleNamespace.
        """
        if not self.wait_for_connection(timeout=timeout):
            return None
        if form is None:
            form = self.form
            ftype = self.ftype
        else:
            ftype = _convert.promote(self._ntype, form)
        if with_ctrlvars and self.units is None and form == "ctrl":
            self.get_ctrlvars()
        self._refresh()
        stale = self._stale()
        args = self._args
        value = args["value"]
        if (
            not use_monitor
            or not self._auto_monitor
            or self._monref is None
            or ftype != self.ftype
            or value is None
            or stale
            or (count is not None and count > _length(value))
        ):
            if count is None and self._user_max_count:
                count = self._user_max_count
            writes = RUNTIME.writes.get(self._eng, 0)
            metad = self._read(ftype, count, timeout, as_numpy)
            if metad is None:
                return None
            if count is not None and count < self.nelm and self._monref is not None:
                # A cut read of a monitored PV is not its value: keeping it
                # would hand the next plain get() the first *count* elements.
                # The PV stays stale, so that get() reads the whole array.
                if with_ctrlvars and form != "ctrl":
                    metad = {**self._args_copy(), **metad}
            else:
                if ftype == self.ftype:
                    self._seen_writes = writes
                args.update(metad)
                self._charval_dirty = True
                if with_ctrlvars and form != "ctrl":
                    metad = self._args_copy()
            val = metad["value"]
        else:
            metad = self._args_copy()
            val = metad["value"]
        if as_string:
            metad["value"] = self._set_charval(val, force_long_string=as_string)
        elif self.nelm > 1 and val is not None:
            metad["value"] = _convert.shape_for_get(val, self.nelm, count, as_numpy)
        if as_namespace:
            return SimpleNamespace(**metad)
        return metad

    def _read(
        self, ftype: int | None, count: int | None, timeout: float | None, as_numpy: bool
    ) -> dict[str, Any] | None:
        """One read of type *ftype*: a metadata dict with ``'value'``, or None (with a warning)."""
        eng = self._chan()
        nelm = eng.native_data_count or 0
        req = 0 if count is None else min(count, nelm)
        if timeout is None:
            timeout = 1.0 + log10(max(1, req or nelm))
        resp = _read_reply(self, eng, ftype, req or None, timeout)
        if resp is None:
            return None
        fast = self._fast
        if fast is not None and ftype == self.ftype and resp.data_count == 1:
            # a TIME scalar of the PV's own type: one unpack gives everything
            # (what _convert.metadata and unpack_response make of it, in their order)
            status, severity, secs, nsec, value = fast.unpack_from(bytes(resp))
            secs += _EPICS_EPOCH
            return {
                "status": status,
                "severity": severity,
                "timestamp": secs + 1.0e-6 * int(1.0e-3 * nsec),
                "posixseconds": secs,
                "nanoseconds": nsec,
                "value": value,
            }
        ftype = int(resp.data_type) if ftype is None else ftype
        out = _convert.metadata(resp.metadata, ftype) if ftype >= dbr.TIME_STRING else {}
        out["value"] = _convert.unpack_response(resp, self._ntype, nelm, req, as_numpy)
        return out

    def _meta(self, form: str, timeout: float) -> dict[str, Any] | None:
        if not self.wait_for_connection():
            return None
        eng = self._chan()
        ftype = _convert.promote(self._ntype, form)
        resp = _read_reply(self, eng, ftype, 1, timeout)
        if resp is None:
            return None
        kwds = _convert.metadata(resp.metadata, ftype)
        self._args.update(kwds)
        return kwds

    def get_ctrlvars(self, timeout: float = 5, warn: bool = True) -> dict[str, Any] | None:
        """Read the control fields (limits, precision, units, enum strings); a dict or None."""
        kwds = self._meta("ctrl", timeout)
        if kwds is not None:
            self.force_read_access_rights()
        return kwds

    def get_timevars(self, timeout: float = 5, warn: bool = True) -> dict[str, Any] | None:
        """Read status, severity and time stamp; a dict or None."""
        return self._meta("time", timeout)

    def _args_copy(self) -> dict[str, Any]:
        self._refresh()
        self._sync_access()
        if self._charval_dirty:
            self._set_charval(self._args["value"], call_ca=False)
        return self._args.copy()

    # -- writing ------------------------------------------------------------------------------
    def put(
        self,
        value: Any,
        wait: bool = False,
        timeout: float = 30.0,
        use_complete: bool = False,
        callback: Callable[..., Any] | None = None,
        callback_data: Any = None,
    ) -> int | None:
        """Write a value.

        Parameters
        ----------
        value
            Number, string (an enum state name, or text for a CHAR array),
            sequence or numpy array.
        wait : bool
            Wait until the server reports the put (and its processing) done.
        timeout : float
            Seconds to wait with *wait*.
        use_complete : bool
            Track completion in :attr:`put_complete`.
        callback : callable, optional
            ``callback(pvname=, **callback_data)`` (or ``data=callback_data``
            when it is not a dict) once the put completes.
        callback_data : optional

        Returns
        -------
        int or None
            1 on success, -1 if *wait* timed out, None when not connected.

        Raises
        ------
        compat.ca.CASeverityException
            No write access, or a string the server cannot take.
        TypeError, ValueError
            The value cannot be converted to the PV's type.
        """
        if not self.wait_for_connection():
            return None
        if self._ntype == dbr.ENUM and isinstance(value, str):
            if self._args["enum_strs"] is None:
                self.get_ctrlvars()
            strs = self._args["enum_strs"] or ()
            if value in strs:
                value = strs.index(value)

        user_callback = callback
        self._put_complete = False if use_complete else None

        def on_complete(pvname: str | None = None, **kws: Any) -> None:
            self._put_complete = True
            if user_callback is not None:
                user_callback(pvname=pvname, **kws)

        done = on_complete if (use_complete or callback is not None) else None
        return _put(self, value, wait, timeout, done, callback_data)

    @property
    def put_complete(self) -> bool | None:
        """True once the last ``use_complete`` put finished (None if it did not use it)."""
        return self._put_complete

    # -- properties (pyepics reads missing ones from the server) ------------------------------
    def _getarg(self, arg: str) -> Any:
        self._refresh()
        self._sync_access()
        args = self._args
        if args["value"] is None or self._stale():
            self.get()
        if args.get(arg) is None:
            if arg in _TIME_ARGS:
                self.get_timevars(timeout=1, warn=False)
            else:
                self.get_ctrlvars(timeout=1, warn=False)
        if arg == "char_value" and self._charval_dirty:
            self._set_charval(args["value"], call_ca=False)
        return self._args.get(arg, None)


def _length(value: Any) -> int:
    """How many elements a cached value holds (1 for a scalar)."""
    try:
        return len(value)
    except TypeError:
        return 1


def _read_reply(pv: PVBase, eng: Any, ftype: int | None, count: int | None, timeout: float) -> Any:
    """Read *count* elements of type *ftype* from *eng*: the response, or None on timeout (with a warning).

    The one place that maps read failures to pyepics' exceptions, for
    :meth:`PVReadWrite._read` and :meth:`PVReadWrite._meta`.  (Its warning
    names the caller of their caller, as theirs did.)
    """
    try:
        return eng.read(data_type=ftype, data_count=count, timeout=max(timeout, 0.0))
    except RemoteError as exc:
        raise ChannelAccessGetFailure(
            f"Get failed; status code: {exc.status}", chid=pv.chid, status=exc.status
        ) from None
    except AccessDeniedError:
        raise CASeverityException("get", message(368)) from None
    except CAError:  # (CATimeoutError, DisconnectedError and the rest)
        warnings.warn(f"ca.get('{pv.pvname}') timed out after {timeout:.2f} seconds.", stacklevel=4)
        return None


def _put(pv: PVBase, value: Any, wait: bool, timeout: float, done: Callable[..., Any] | None, data: Any) -> int | None:
    """pyepics' ``ca.put``: convert, write, optionally wait; 1, -1 or None."""
    return _write_channel(pv._chan(), pv._ntype, pv.pvname, value, wait, timeout, done, data)


def _write_channel(
    eng: Any,
    ntype: int,
    name: str,
    value: Any,
    wait: bool,
    timeout: float,
    done: Callable[..., Any] | None,
    data: Any,
) -> int | None:
    """Convert *value* for native type *ntype*, write it to the engine PV *eng*; 1, -1 or None.

    Shared by :meth:`PV.put` and :func:`compat.ca.put`.  *done* is called as
    ``done(pvname=name, **data)`` (``data=data`` when it is not a dict) once
    the put completes.
    """
    nelm = eng.native_data_count or 1
    payload, count = _convert.encode_put(value, ntype, nelm, utils.wire_encoding())
    callback = None
    if done is not None:
        kwargs = data if isinstance(data, dict) else {"data": data}

        def callback(result: Any) -> None:
            if isinstance(result, RemoteError):
                log.warning("put to %s failed on the server: %s", name, result)
            done(pvname=name, **kwargs)

    try:
        if not wait and callback is None:
            eng.write(payload, wait=False, notify=False, data_type=ntype, data_count=count)
        elif wait and callback is not None:
            return _write_and_wait(eng, name, payload, ntype, count, timeout, callback)
        else:
            eng.write(
                payload, wait=wait, callback=callback, timeout=max(timeout, 0.0), data_type=ntype, data_count=count
            )
        RUNTIME.note_write(eng)
    except AccessDeniedError:
        raise CASeverityException("put", message(376)) from None
    except CATimeoutError:
        RUNTIME.note_write(eng)
        return -1
    except RemoteError as exc:
        # pyepics does not look at the completion status of a put
        RUNTIME.note_write(eng)
        log.warning("put to %s failed on the server: %s", name, exc)
        return 1
    except CAError:
        return -1 if wait else None
    return 1


def _write_and_wait(
    eng: Any, name: str, payload: Any, ntype: int, count: int, timeout: float, callback: Callable[[Any], None]
) -> int:
    """A put with ``wait=True`` and a completion callback: 1, or -1 if it did not complete in *timeout*.

    As in pyepics, the callback still runs when the completion comes after
    the wait gave up (so ``put_complete`` becomes True then).
    """
    finished = threading.Event()
    outcome: list[Any] = []

    def on_done(result: Any) -> None:
        outcome.append(result)
        finished.set()
        callback(result)

    eng.write(payload, wait=False, callback=on_done, timeout=max(timeout, 0.0), data_type=ntype, data_count=count)
    RUNTIME.note_write(eng)
    if not finished.wait(max(timeout, 0.0)):
        return -1
    result = outcome[0]
    if isinstance(result, CAError) and not isinstance(result, RemoteError):
        return -1
    return 1  # (a refused put: pyepics does not look at the completion status; the callback logged it)
