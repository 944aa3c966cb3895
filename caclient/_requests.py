"""What a PV sends, and how it waits for a reply and turns it into a result (caller threads)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from . import _dbr, _proto
from ._dbr import AccessRights, ChannelType
from ._errors import AccessDeniedError, CAError, CATimeoutError, DisconnectedError, RemoteError, eca_message
from ._response import ReadResponse, WriteResponse
from ._sync import Deadline, Pending

if TYPE_CHECKING:
    from ._circuit import Circuit
    from ._pv import PV


#: Every DBR type number (a read or write given one skips the enum lookup).
_KNOWN_TYPES: Final = frozenset(int(t) for t in ChannelType)


def resolve_type(data_type: Any, native: int | None) -> tuple[int, str]:
    """The wire DBR type for a user's *data_type* (None, a family name, a ChannelType or int) and its kind."""
    if native is None:
        native = 0
    if data_type is None:
        return native, "native"
    if isinstance(data_type, str):
        try:
            return _dbr.FAMILY_OFFSETS[data_type] + native, data_type
        except KeyError:
            raise ValueError(
                f"data_type must be one of {sorted(_dbr.FAMILY_OFFSETS)}, a ChannelType or an int, not {data_type!r}"
            ) from None
    if isinstance(data_type, int) and data_type in _KNOWN_TYPES:
        return int(data_type), "explicit"  # (the common case, without an enum lookup)
    try:
        return int(ChannelType(operator.index(data_type))), "explicit"
    except (ValueError, TypeError):
        raise ValueError(f"unknown data_type {data_type!r}") from None


def read_request(pv: PV, circuit: Circuit, data_type: Any, data_count: int | None) -> tuple[int, int]:
    """Check read access and resolve a read's DBR type and element count (0: the server's dynamic count).

    Shared by the threaded and the asyncio ``PV.read``.
    """
    if not pv.access_rights & AccessRights.READ:
        raise AccessDeniedError(f"{pv.name}: no read access", pv=pv.name, address=circuit.address)
    dtype, _ = resolve_type(data_type, pv.native_data_type)
    if data_count is None or data_count == 0:
        return dtype, 0 if circuit.minor_version >= 13 else (pv.native_data_count or 1)
    count = int(data_count)
    if count < 0:
        raise ValueError("data_count must be >= 0")
    return dtype, count


def encode(pv: PV, data: Any, data_type: Any, data_count: int | None) -> tuple[int, bytes | memoryview, int]:
    """``(data_type, payload, count)`` of a write of *data* to *pv*; ValueError/TypeError if it does not fit."""
    native = pv.native_data_type
    if data_type is None:
        dtype = int(native) if native is not None else 0
        if dtype == ChannelType.ENUM and (
            isinstance(data, (str, bytes)) or (isinstance(data, (list, tuple)) and data and isinstance(data[0], str))
        ):
            dtype = int(ChannelType.STRING)  # the server maps the state string
    else:
        dtype, _ = resolve_type(data_type, native)
        if dtype > 6 and dtype not in (ChannelType.PUT_ACKT, ChannelType.PUT_ACKS):
            raise ValueError(f"cannot write with data_type {ChannelType(dtype).name}: use a plain type")
    field = 3 if dtype in (ChannelType.PUT_ACKT, ChannelType.PUT_ACKS) else dtype
    payload, count = _dbr.encode_values(field, data, pv.context.encoding)
    limit = pv.native_data_count
    if data_count is not None:
        if data_count > count:
            raise ValueError(f"{pv.name}: data_count={data_count} but only {count} elements given")
        payload = payload[: data_count * _dbr.ELEMENT_SIZE[field]]
        count = data_count
    if limit is not None and count > limit:
        if field == ChannelType.CHAR and count == limit + 1 and payload[-1:] == b"\0":
            payload, count = payload[:-1], limit  # a full-length string without its NUL still fits
        else:
            raise ValueError(f"{pv.name}: {count} elements given, the channel holds at most {limit}")
    return dtype, payload, count


def read_result(name: str, result: tuple[int, int, int, bytes], encoding: str, circuit: Circuit) -> ReadResponse:
    dtype, count, status, payload = result
    if status != _proto.ECA_NORMAL:
        raise RemoteError(
            f"{name}: read failed: {eca_message(status)}", status=status, pv=name, address=circuit.address
        )
    return ReadResponse(dtype, count, status, payload, encoding)


def write_result(name: str, result: tuple[int, int, int, bytes], circuit: Circuit) -> WriteResponse:
    dtype, count, status, _ = result
    if status != _proto.ECA_NORMAL:
        raise RemoteError(
            f"{name}: write failed: {eca_message(status)}", status=status, pv=name, address=circuit.address
        )
    return WriteResponse(dtype, count, status)


def transact(
    pv: PV,
    circuit: Circuit,
    request: Callable[[int], tuple[bytes | memoryview, ...]],
    convert: Callable[[Any], Any],
    wait: bool,
    callback: Callable[[Any], None] | None,
    deadline: Deadline,
    timeout_message: str,
) -> Any:
    """Send one request that gets a reply (READ_NOTIFY or WRITE_NOTIFY) and wait for it.

    *request* builds the message for an IO id; *convert* turns the raw
    reply into the user's result (raising CAError for a failure status).
    Without *wait*, returns None and *callback* gets the result, or the
    error, on a callback thread.  A timed-out request is forgotten: its
    late reply is dropped.
    """
    user_cb = None
    if callback is not None:

        def user_cb(pending: Pending) -> None:
            try:
                if pending.error is not None:
                    raise pending.error
                result: Any = convert(pending.result)
            except CAError as exc:
                result = exc
            callback(result)

    ioid = pv.context._next_id()
    pending = Pending(user_cb, pv, pv.name)
    circuit.add_io(ioid, pending)
    try:
        if wait:
            circuit.send_then_lead(*request(ioid))
        else:
            circuit.send(*request(ioid))
    except DisconnectedError:
        circuit.cancel_io(ioid)
        raise
    if not wait:
        return None
    circuit.lead(pending, deadline)  # read the reply ourselves when the circuit thread stands by
    if not pending.wait(deadline.remaining()):
        circuit.cancel_io(ioid)
        if not pending.done():
            raise CATimeoutError(f"{pv.name}: {timeout_message}", pv=pv.name, address=circuit.address)
    if pending.error is not None:
        raise pending.error
    return convert(pending.result)
