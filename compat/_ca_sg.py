"""Synchronous groups of :mod:`compat.ca` (pyepics' ``ca.sg_*``, libca's ``ca_sg_*``).

A group collects reads (:func:`sg_get`) and completion-confirmed writes
(:func:`sg_put`); :func:`sg_block` waits until all of them are done and
:func:`sg_test` tells whether they are.  Requests go out when made.

:func:`sg_get` waits for its reply and returns the value.  pyepics'
``sg_get`` instead unpacks a buffer that libca may not have written yet
(and writes later, after the buffer is freed), so its result is the value
only when the reply happens to come in time; see the migration guide.

Threads: the functions run in the caller's thread; replies complete their
operation on an engine callback thread.  State and locks: the group table
and the id counter are the runtime's (``RUNTIME.groups``, guarded by
``RUNTIME.lock``); each group's ``_lock`` guards its list of operations and
is never held together with ``RUNTIME.lock``.  Waits happen on the
operations' events, outside every lock.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from caclient import AccessDeniedError, CAError

from . import _convert, dbr, utils
from ._ca_channels import _entry, chid_t, element_count, field_type, isConnected
from ._ca_io import get
from ._ca_messages import CASeverityException, ChannelAccessException, message
from ._runtime import RUNTIME

__all__ = ["_unpack", "sg_block", "sg_create", "sg_delete", "sg_get", "sg_put", "sg_reset", "sg_test"]

ECA_IOINPROGRESS = 347
ECA_BADSYNCGRP = 354
ECA_DISCONN = 192


class _GroupId(int):
    """A synchronous group's id: an int that also has ``.value`` (as pyepics' ``ctypes.c_ulong``)."""

    __slots__ = ()

    @property
    def value(self) -> int:
        """The id as a plain int."""
        return int(self)

    def __repr__(self) -> str:
        return f"c_ulong({int(self)})"


class _Op:
    """One outstanding request of a group; ``done`` is set by its reply (or failure)."""

    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None

    def complete(self, result: Any) -> None:
        self.result = result
        self.done.set()


class _Group:
    """A synchronous group: its outstanding operations (``_lock`` guards ``ops``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ops: list[_Op] = []

    def add(self) -> _Op:
        op = _Op()
        with self._lock:
            self.ops.append(op)
        return op

    def pending(self) -> list[_Op]:
        with self._lock:
            return [op for op in self.ops if not op.done.is_set()]

    def reset(self) -> None:
        with self._lock:
            self.ops = []


_groups: dict[int, _Group] = RUNTIME.groups  # type: ignore[assignment]  # (never rebound)


def _group(fname: str, gid: Any) -> _Group:
    try:
        key = int(getattr(gid, "value", gid))
    except (TypeError, ValueError):
        key = -1
    with RUNTIME.lock:
        group = _groups.get(key)
    if group is None:
        raise CASeverityException(fname, message(ECA_BADSYNCGRP))
    return group


def _channel(fname: str, chid: Any) -> Any:
    if not isinstance(chid, chid_t):
        raise ChannelAccessException("not a valid chid!")
    if not isConnected(chid):
        raise CASeverityException(fname, message(ECA_DISCONN))
    return _entry(chid).engine()


def sg_create() -> _GroupId:
    """Create a synchronous group; returns its id (an int with ``.value``)."""
    gid = _GroupId(RUNTIME.new_group_id())
    with RUNTIME.lock:
        _groups[int(gid)] = _Group()
    return gid


def sg_delete(gid: Any) -> int:
    """Delete a group; returns ECA_NORMAL.

    Raises
    ------
    CASeverityException
        No such group.
    """
    _group("sg_delete", gid)
    with RUNTIME.lock:
        _groups.pop(int(getattr(gid, "value", gid)), None)
    return dbr.ECA_NORMAL


def sg_reset(gid: Any) -> int:
    """Forget the group's outstanding requests (their replies are ignored); returns ECA_NORMAL."""
    _group("sg_reset", gid).reset()
    return dbr.ECA_NORMAL


def sg_test(gid: Any) -> int:
    """Return ECA_IODONE if every request of the group is done.

    Raises
    ------
    CASeverityException
        Requests are still outstanding ('IO operations are in progress', as
        pyepics raises), or no such group.
    """
    if _group("sg_test", gid).pending():
        raise CASeverityException("sg_test", message(ECA_IOINPROGRESS))
    return dbr.ECA_IODONE


def sg_block(gid: Any, timeout: float = 10.0) -> int:
    """Wait up to *timeout* seconds for every request of the group; returns ECA_NORMAL.

    Raises
    ------
    CASeverityException
        Timed out (with libca's timeout message), or no such group.
    """
    group = _group("sg_block", gid)
    deadline = time.monotonic() + max(float(timeout), 0.0)
    for op in group.pending():
        if not op.done.wait(max(0.0, deadline - time.monotonic())):
            raise CASeverityException("sg_block", message(dbr.ECA_TIMEOUT))
    group.reset()
    return dbr.ECA_NORMAL


def sg_get(gid: Any, chid: chid_t, ftype: int | None = None, as_numpy: bool = True, as_string: bool = True) -> Any:
    """Read a channel's value as part of group *gid*, and return the value.

    The value is that of :func:`compat.ca.get` with the full element count,
    in string form unless ``as_string=False`` (pyepics' default).  Unlike
    pyepics this waits for the reply (see the migration guide), so the value
    returned is the one the server sent; None if it does not come in time.

    Raises
    ------
    ChannelAccessException
        *chid* is not a chid.
    CASeverityException
        Not connected, no read access, or no such group.
    """
    group = _group("sg_get", gid)
    _channel("sg_get", chid)
    op = group.add()
    try:
        value = get(chid, ftype=ftype, count=element_count(chid) or 1, as_string=as_string, as_numpy=as_numpy)
    finally:
        op.complete(None)
    return value


def sg_put(gid: Any, chid: chid_t, value: Any) -> int:
    """Write *value* as part of group *gid* (:func:`sg_block` waits for its completion); returns ECA_NORMAL.

    Raises
    ------
    ChannelAccessException
        *chid* is not a chid, or *value* does not fit the channel.
    CASeverityException
        Not connected, no write access, or no such group.
    """
    group = _group("sg_put", gid)
    eng = _channel("sg_put", chid)
    ntype = int(field_type(chid) or 0)
    tname = str(dbr.Name(ntype)).lower()
    nelm = element_count(chid) or 1
    try:
        data, count = _convert.encode_put(value, ntype, nelm, utils.wire_encoding())
    except (TypeError, ValueError) as exc:
        raise ChannelAccessException(f"Cannot put value {value!r} to PV of type '{tname}'") from exc
    data, count = _padded(data, count, nelm)
    op = group.add()
    try:
        eng.write(data, wait=False, callback=op.complete, data_type=ntype, data_count=count)
    except AccessDeniedError:
        op.complete(None)
        raise CASeverityException("sg_put", message(376)) from None
    except CAError as exc:
        op.complete(exc)
    except (TypeError, ValueError) as exc:
        op.complete(exc)
        raise ChannelAccessException(f"Cannot put value {value!r} to PV of type '{tname}'") from exc
    return dbr.ECA_NORMAL


def _padded(data: Any, count: int, nelm: int) -> tuple[Any, int]:
    """*data* filled up to the channel's full element count, as libca's group put sends it (pyepics' sg_put)."""
    if count >= nelm:
        return data, count
    if _convert.is_ndarray(data):
        import numpy as np

        return np.concatenate([data[:count], np.zeros(nelm - count, dtype=data.dtype)]), nelm
    if isinstance(data, list):
        return list(data[:count]) + [b""] * (nelm - count), nelm
    return data, count


def _unpack(chid: Any, data: Any, count: int | None = None, ftype: int | None = None, as_numpy: bool = True) -> Any:
    """pyepics' way to read an :func:`sg_get` result after :func:`sg_block`: here *data* is the value already.

    It is returned as it is (cut to *count* elements for an array).
    """
    if count is not None and (isinstance(data, list) or _convert.is_ndarray(data)) and len(data) > count:
        return data[:count]
    return data
