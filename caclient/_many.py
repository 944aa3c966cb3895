"""Bursts of reads and writes: the bodies of Context.read_many and Context.write_many.

Runs in the caller's thread.  Requests go out as soon as their PV is
connected, one burst per circuit for all PVs that became ready together, and
one deadline covers connecting and the replies.  No lock is held here: each
step uses the PV's, circuit's and Pending's own methods.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import _proto
from ._circuit import Circuit
from ._dbr import AccessRights
from ._errors import AccessDeniedError, CAError, CATimeoutError, DisconnectedError
from ._pv import PV
from ._requests import encode, read_result, resolve_type, write_result
from ._response import ReadResponse, WriteResponse
from ._sync import Deadline, Pending

if TYPE_CHECKING:
    from ._context import Context


def read_many(
    ctx: Context, pvs: Iterable[PV | str], data_type: Any, data_count: int | None, timeout: float | None, priority: int
) -> list[ReadResponse | CAError]:
    """See :meth:`Context.read_many`."""
    items = list(pvs)
    names = [p for p in items if isinstance(p, str)]
    got = iter(ctx.get_pvs(*names, priority=priority)) if names else iter(())
    plist = [next(got) if isinstance(p, str) else p for p in items]
    deadline = Deadline(ctx.timeout if timeout is None else timeout)
    results: list[ReadResponse | CAError | None] = [None] * len(plist)
    sent: list[tuple[int, PV, Circuit, int, Pending]] = []
    slots: dict[PV, list[int]] = {}
    for i, pv in enumerate(plist):
        slots.setdefault(pv, []).append(i)
    # Reads go out as soon as their PV is connected, in one burst per
    # circuit for all that are ready together; one deadline covers all.
    for batch in _as_connected(slots, deadline):
        _send_reads(ctx, batch, slots, data_type, data_count, results, sent)
    for i, result in enumerate(results):
        if result is None and not plist[i].connected:
            results[i] = CATimeoutError(f"{plist[i].name}: not connected", pv=plist[i].name)
    encoding = ctx.encoding
    _collect(sent, results, deadline, "read timed out", lambda pv, r, c: read_result(pv.name, r, encoding, c))
    return [r if r is not None else CAError("internal: no result") for r in results]


def _as_connected(pvs: Iterable[PV], deadline: Deadline) -> Iterator[list[PV]]:
    """Yield the PVs in batches as they become connected, until all are or the deadline passes.

    Each batch holds every PV that connected since the last one, so the
    caller can send their requests in one burst per circuit.
    """
    ready: queue.SimpleQueue[PV] = queue.SimpleQueue()
    plist = list(pvs)
    for pv in plist:
        pv._wake_if_idle()
        pv._notify_when_connected(ready)
    waiting = len(plist)
    try:
        while waiting:
            try:
                batch = [ready.get(timeout=deadline.remaining())]
            except queue.Empty:
                return
            while True:
                try:
                    batch.append(ready.get_nowait())
                except queue.Empty:
                    break
            waiting -= len(batch)
            yield batch
    finally:
        for pv in plist:
            pv._forget_waiter(ready)


def _send_reads(
    ctx: Context,
    batch: list[PV],
    slots: dict[PV, list[int]],
    data_type: Any,
    data_count: int | None,
    results: list[ReadResponse | CAError | None],
    sent: list[tuple[int, PV, Circuit, int, Pending]],
) -> None:
    bursts: dict[Circuit, list[bytes]] = {}
    for pv in batch:
        circuit, sid = pv._link()
        for i in slots[pv]:
            if circuit is None or sid is None:
                results[i] = DisconnectedError(f"{pv.name}: disconnected", pv=pv.name)
                continue
            if not pv.access_rights & AccessRights.READ:
                results[i] = AccessDeniedError(f"{pv.name}: no read access", pv=pv.name)
                continue
            dtype, _ = resolve_type(data_type, pv.native_data_type)
            count = data_count or (0 if circuit.minor_version >= 13 else (pv.native_data_count or 1))
            ioid = ctx._next_id()
            pending = Pending(None, pv, pv.name)
            try:
                circuit.add_io(ioid, pending)
            except DisconnectedError as exc:
                results[i] = exc
                continue
            bursts.setdefault(circuit, []).append(_proto.read_notify(dtype, count, sid, ioid))
            sent.append((i, pv, circuit, ioid, pending))
    for circuit, msgs in bursts.items():
        try:
            circuit.send(b"".join(msgs), messages=len(msgs))
        except DisconnectedError:
            pass  # its pendings fail through the circuit's shutdown


def write_many(
    ctx: Context,
    pvs: Iterable[PV | str],
    values: Iterable[Any],
    wait: bool,
    timeout: float | None,
    data_types: Sequence[Any] | None,
    data_counts: Sequence[int | None] | None,
    priority: int,
) -> list[WriteResponse | Exception | None]:
    """See :meth:`Context.write_many`."""
    items = list(pvs)
    vals = list(values)
    n = len(items)
    types: list[Any] = list(data_types) if data_types is not None else [None] * n
    counts: list[int | None] = list(data_counts) if data_counts is not None else [None] * n
    if not len(vals) == len(types) == len(counts) == n:
        raise ValueError("pvs, values, data_types and data_counts must have the same length")
    names = [p for p in items if isinstance(p, str)]
    got = iter(ctx.get_pvs(*names, priority=priority)) if names else iter(())
    plist = [next(got) if isinstance(p, str) else p for p in items]
    deadline = Deadline(ctx.timeout if timeout is None else timeout)
    results: list[WriteResponse | Exception | None] = [None] * n
    handled = [False] * n
    sent: list[tuple[int, PV, Circuit, int, Pending]] = []
    slots: dict[PV, list[int]] = {}
    for i, pv in enumerate(plist):
        slots.setdefault(pv, []).append(i)
    for batch in _as_connected(slots, deadline):
        _send_writes(ctx, batch, slots, (vals, types, counts), wait, results, handled, sent)
    for i, done in enumerate(handled):
        if not done:
            results[i] = CATimeoutError(f"{plist[i].name}: not connected", pv=plist[i].name)
    _collect(sent, results, deadline, "write not confirmed in time", lambda pv, r, c: write_result(pv.name, r, c))
    return results


def _send_writes(
    ctx: Context,
    batch: list[PV],
    slots: dict[PV, list[int]],
    requests: tuple[list[Any], list[Any], list[int | None]],
    wait: bool,
    results: list[WriteResponse | Exception | None],
    handled: list[bool],
    sent: list[tuple[int, PV, Circuit, int, Pending]],
) -> None:
    vals, types, counts = requests
    command = _proto.WRITE_NOTIFY if wait else _proto.WRITE
    bursts: dict[Circuit, list[bytes | memoryview]] = {}
    unconfirmed: dict[Circuit, list[int]] = {}
    writes: dict[Circuit, int] = {}  # messages per circuit (for its statistics)
    for pv in batch:
        circuit, sid = pv._link()
        for i in slots[pv]:
            handled[i] = True
            if circuit is None or sid is None:
                results[i] = DisconnectedError(f"{pv.name}: disconnected", pv=pv.name)
                continue
            if not pv.access_rights & AccessRights.WRITE:
                results[i] = AccessDeniedError(f"{pv.name}: no write access", pv=pv.name, address=circuit.address)
                continue
            try:
                dtype, payload, count = encode(pv, vals[i], types[i], counts[i])
            except (ValueError, TypeError) as exc:
                results[i] = exc
                continue
            ioid = ctx._next_id()
            if wait:
                pending = Pending(None, pv, pv.name)
                try:
                    circuit.add_io(ioid, pending)
                except DisconnectedError as exc:
                    results[i] = exc
                    continue
                sent.append((i, pv, circuit, ioid, pending))
            else:
                unconfirmed.setdefault(circuit, []).append(i)
            bursts.setdefault(circuit, []).extend(_proto.write_chunks(command, dtype, count, sid, ioid, payload))
            writes[circuit] = writes.get(circuit, 0) + 1
    for circuit, chunks in bursts.items():
        # Small messages are joined; large payloads stay chunks of their own
        # (no copy), a bounded number per send.
        parts: list[bytes | memoryview] = []
        small = bytearray()
        for chunk in chunks:
            if len(chunk) >= 65536:
                if small:
                    parts.append(bytes(small))
                    small = bytearray()
                parts.append(chunk)
            else:
                small += chunk
        if small:
            parts.append(bytes(small))
        try:
            for start in range(0, len(parts), 256):
                circuit.send(*parts[start : start + 256], messages=writes[circuit] if start == 0 else 0)
        except DisconnectedError as exc:
            for i in unconfirmed.get(circuit, ()):
                results[i] = exc  # (waited writes fail through the circuit's shutdown)


def _collect(
    sent: list[tuple[int, PV, Circuit, int, Pending]],
    results: list[Any],
    deadline: Deadline,
    late: str,
    convert: Callable[[PV, Any, Circuit], Any],
) -> None:
    """Wait for the replies of a burst (read_many, write_many) and put each result in its place.

    A reply not in by *deadline* is cancelled and becomes ``CATimeoutError``
    ("<name>: *late*"); a failed operation gives its error; a reply is turned
    into a result by *convert*, whose CAError is kept as the result.
    """
    for i, pv, circuit, ioid, pending in sent:
        if not pending.wait(deadline.remaining()):
            circuit.cancel_io(ioid)
            if not pending.done():
                results[i] = CATimeoutError(f"{pv.name}: {late}", pv=pv.name)
                continue
        if pending.error is not None:
            results[i] = pending.error if isinstance(pending.error, CAError) else CAError(str(pending.error))
            continue
        try:
            results[i] = convert(pv, pending.result, circuit)
        except CAError as exc:
            results[i] = exc
