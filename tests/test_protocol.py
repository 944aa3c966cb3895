"""The circuit protocol without a socket: bytes in, events out."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import numpy as np
import pytest

from caclient import ProtocolError, _proto
from caclient._dbr import NATIVE_ORDER_FORMAT
from caclient._protocol import BUFSIZE, SPARE_MIN, CircuitProtocol, Reply
from caclient._response import ReadResponse

HDR = _proto.HEADER
EXT = struct.Struct(">HHHHIIII")


class Recorder:
    """A CircuitEvents sink that records every event as ``(name, args...)``."""

    def __init__(self, limits: dict[tuple[int, int], tuple[str, int | None]] | None = None) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.limits = limits or {}

    def handler(self, subid: int) -> Any:
        def on_update(reply: tuple[int, int, int, bytes]) -> None:
            self.events.append(("monitor", subid, reply[:3], bytes(reply[3])))

        return on_update

    def large_monitor_update(self, subid: int, reply: tuple[int, int, int, memoryview]) -> None:
        self.events.append(("monitor", subid, reply[:3], as_sent(reply)))

    def io_reply(self, ioid: int, reply: Reply) -> None:
        self.events.append(("io", ioid, reply[:3], as_sent(reply)))

    def channel_created(self, cid: int, sid: int, data_type: int, count: int) -> None:
        self.events.append(("created", cid, sid, data_type, count))

    def access_rights(self, cid: int, rights: int) -> None:
        self.events.append(("rights", cid, rights))

    def channel_lost(self, cid: int, refused: bool) -> None:
        self.events.append(("lost", cid, refused))

    def server_version(self, minor: int) -> None:
        self.events.append(("version", minor))

    def remote_error(self, request: tuple[int, int, int, int, int, int], status: int, text: str) -> None:
        self.events.append(("error", request, status, text))

    def large_message_limit(self, command: int, ident: int) -> tuple[str, int | None] | None:
        return self.limits.get((command, ident))


def as_sent(reply: Reply) -> bytes:
    """The payload in network byte order, as the consumer (a ReadResponse) sees it."""
    return bytes(ReadResponse(*reply, "latin-1"))


def double_update(subid: int, value: float) -> bytes:
    return HDR.pack(_proto.EVENT_ADD, 8, 6, 1, 1, subid) + struct.pack(">d", value)


STREAM = b"".join(
    [
        HDR.pack(_proto.VERSION, 0, 0, 13, 0, 0),
        HDR.pack(_proto.ACCESS_RIGHTS, 0, 0, 0, 7, 3),
        HDR.pack(_proto.CREATE_CHAN, 0, 6, 1, 7, 99),
        double_update(5, 1.5),
        HDR.pack(_proto.EVENT_ADD, 0, 6, 1, 1, 5),  # EVENT_CANCEL acknowledged: no event
        HDR.pack(_proto.ECHO, 0, 0, 0, 0, 0),
        HDR.pack(_proto.READ_NOTIFY, 8, 6, 1, 1, 42) + struct.pack(">d", 2.5),
        HDR.pack(_proto.WRITE_NOTIFY, 0, 6, 1, 1, 43),
        HDR.pack(_proto.ERROR, 24, 0, 0, 7, 114) + HDR.pack(15, 0, 6, 1, 99, 44) + b"bad\0\0\0\0\0",
        HDR.pack(_proto.SERVER_DISCONN, 0, 0, 0, 7, 0),
        HDR.pack(_proto.CREATE_CH_FAIL, 0, 0, 0, 8, 0),
    ]
)

EXPECTED = [
    ("version", 13),
    ("rights", 7, 3),
    ("created", 7, 99, 6, 1),
    ("monitor", 5, (6, 1, 1), struct.pack(">d", 1.5)),
    ("io", 42, (6, 1, 1), struct.pack(">d", 2.5)),
    ("io", 43, (6, 1, 1), b""),
    ("error", (15, 0, 6, 1, 99, 44), 114, "bad"),
    ("lost", 7, False),
    ("lost", 8, True),
]


def make(**kw: Any) -> tuple[CircuitProtocol, Recorder]:
    rec = Recorder(kw.pop("limits", None))
    proto = CircuitProtocol(rec, **kw)
    for subid in range(10):
        proto.monitors[subid] = rec.handler(subid)
    return proto, rec


def test_whole_buffer() -> None:
    proto, rec = make()
    proto.receive_data(STREAM)
    assert rec.events == EXPECTED


def test_byte_by_byte() -> None:
    proto, rec = make()
    for i in range(len(STREAM)):
        proto.receive_data(STREAM[i : i + 1])
    assert rec.events == EXPECTED


def test_trailing_partial_message_waits_for_the_rest() -> None:
    proto, rec = make()
    more = double_update(6, 3.5)
    proto.receive_data(STREAM + more[:20])
    assert rec.events == EXPECTED
    proto.receive_data(more[20:])
    assert rec.events[-1] == ("monitor", 6, (6, 1, 1), struct.pack(">d", 3.5))


def test_every_split_point_gives_the_same_events() -> None:
    for cut in range(1, len(STREAM)):
        proto, rec = make()
        proto.receive_data(STREAM[:cut])
        proto.receive_data(STREAM[cut:])
        assert rec.events == EXPECTED, cut


def test_extended_header_split_inside_its_extension() -> None:
    proto, rec = make()
    n = 3
    msg = EXT.pack(_proto.READ_NOTIFY, 0xFFFF, 6, 0, 1, 9, n * 8, n) + np.arange(n, dtype=">f8").tobytes()
    proto.receive_data(msg[:20])  # 16 bytes of header are not enough here
    assert rec.events == []
    proto.receive_data(msg[20:])
    assert rec.events == [("io", 9, (6, n, 1), np.arange(n, dtype=">f8").tobytes())]


def test_many_messages_wrap_around_the_buffer() -> None:
    proto, rec = make()
    one = double_update(1, 0.5)
    total = 3 * BUFSIZE // len(one)
    for _ in range(total // 100):
        proto.receive_data(one * 100)
    assert len(rec.events) == total // 100 * 100


def test_large_message_gets_its_own_buffer() -> None:
    n = 100_000
    data = np.arange(n, dtype=">f8").tobytes()
    proto, rec = make(limits={(_proto.EVENT_ADD, 3): ("BIG", n)})
    msg = EXT.pack(_proto.EVENT_ADD, 0xFFFF, 6, 0, 1, 3, n * 8, n) + data
    proto.receive_data(msg[:5000])
    assert proto.filling_large
    proto.receive_data(msg[5000:] + double_update(4, 1.0))
    assert [e[:3] for e in rec.events] == [("monitor", 3, (6, n, 1)), ("monitor", 4, (6, 1, 1))]
    assert rec.events[0][3] == data


class Keeper(Recorder):
    """Keeps the large replies themselves, as their consumer gets them."""

    def __init__(self, limits: dict[tuple[int, int], tuple[str, int | None]]) -> None:
        super().__init__(limits)
        self.replies: list[Reply] = []

    def io_reply(self, ioid: int, reply: Reply) -> None:
        self.replies.append(reply)


# (data type, numpy type of its values, metadata bytes before them)
LARGE_TYPES = [
    (1, ">i2", 0),  # DBR_SHORT
    (2, ">f4", 0),  # DBR_FLOAT
    (5, ">i4", 0),  # DBR_LONG
    (6, ">f8", 0),  # DBR_DOUBLE
    (20, ">f8", 16),  # DBR_TIME_DOUBLE: status, severity, stamp, pad
    (16, ">f4", 12),  # DBR_TIME_FLOAT
    (15, ">i2", 14),  # DBR_TIME_SHORT: status, severity, stamp, pad
    (4, "u1", 0),  # DBR_CHAR: no byte order
    (0, "S40", 0),  # DBR_STRING: none either
]


@pytest.mark.parametrize("chunk", [1, 3, 4093, 65536], ids=lambda c: f"chunks-of-{c}")
@pytest.mark.parametrize(("data_type", "vtype", "meta"), LARGE_TYPES, ids=lambda v: str(v))
def test_large_reply_values_in_native_order_however_split(data_type: int, vtype: str, meta: int, chunk: int) -> None:
    """A large reply swapped as it arrives decodes to the same values, bytes and list."""
    n = 100_000 if vtype != "S40" else 4_000  # (over half the shared buffer: a large message)
    if vtype == "S40":
        values = np.array([f"s{i}".encode() for i in range(n)], dtype="S40")
    else:
        values = (np.arange(n) * 3 - n).astype(vtype) if vtype[-2] == "i" else np.arange(n).astype(vtype)
    body = bytes(range(meta)) + values.tobytes()
    body += b"\0" * (-len(body) % 8)
    msg = EXT.pack(_proto.READ_NOTIFY, 0xFFFF, data_type, 0, 1, 9, len(body), n) + body
    rec = Keeper({(_proto.READ_NOTIFY, 9): ("BIG", n)})
    proto = CircuitProtocol(rec)
    if chunk == 1:
        proto.receive_data(msg[:30])  # byte by byte only across the start: 40 k calls would be slow
        for i in range(30, 70):
            proto.receive_data(msg[i : i + 1])
        proto.receive_data(msg[70:])
    else:
        for i in range(0, len(msg), chunk):
            proto.receive_data(msg[i : i + chunk])
    (reply,) = rec.replies
    if vtype not in ("u1", "S40"):  # swapped on arrival, marked so the decoder does not swap again
        assert reply[3].format == NATIVE_ORDER_FORMAT  # type: ignore[union-attr]
        native = np.frombuffer(reply[3], dtype=np.dtype(vtype).newbyteorder("="), count=n, offset=meta)
        assert np.array_equal(native, values)
    resp = ReadResponse(*reply, "latin-1")
    assert bytes(resp) == body  # network order, metadata included
    if vtype == "S40":
        assert resp.data == [v.decode() for v in values]
    else:
        assert resp.data.dtype.isnative and resp.data.dtype.kind == np.dtype(vtype).kind
        assert np.array_equal(resp.data, values) and resp.tolist() == values.tolist()
        assert bytes(resp) == body  # also once decoded


def test_large_message_nobody_waits_for_is_skipped() -> None:
    n = 100_000
    proto, rec = make()
    msg = EXT.pack(_proto.READ_NOTIFY, 0xFFFF, 6, 0, 1, 3, n * 8, n) + b"\1" * (n * 8)
    proto.receive_data(msg[:1000])
    assert proto.discarding == n * 8 - (1000 - 24)
    proto.receive_data(msg[1000:] + double_update(4, 1.0))
    assert rec.events == [("monitor", 4, (6, 1, 1), struct.pack(">d", 1.0))]


def test_large_message_over_the_channel_size_is_refused() -> None:
    n = 100_000
    proto, _ = make(limits={(_proto.EVENT_ADD, 3): ("SMALL", 10)})
    with pytest.raises(ProtocolError, match="SMALL"):
        proto.receive_data(EXT.pack(_proto.EVENT_ADD, 0xFFFF, 6, 0, 1, 3, n * 8, n))


def test_max_array_bytes() -> None:
    proto, _ = make(max_array_bytes=16384)
    with pytest.raises(ProtocolError, match="EPICS_CA_MAX_ARRAY_BYTES"):
        proto.receive_data(HDR.pack(_proto.READ_NOTIFY, 40000, 6, 5000, 1, 1))


@pytest.mark.parametrize(
    "header",
    [
        HDR.pack(0x7777, 0, 0, 0, 0, 0),  # unknown command
        # (small monitor updates and replies are checked only when decoded: the hot path)
        HDR.pack(_proto.EVENT_ADD, 20000, 6, 1, 1, 1),  # 20000 bytes for one double
        HDR.pack(_proto.EVENT_ADD, 20000, 99, 1, 1, 1),  # unknown data type
        HDR.pack(_proto.ACCESS_RIGHTS, 20000, 0, 0, 0, 0),  # implausibly large
    ],
    ids=["unknown-command", "size-mismatch", "bad-type", "huge-small-message"],
)
def test_bad_headers_are_refused_before_their_payload(header: bytes) -> None:
    proto, rec = make()
    with pytest.raises(ProtocolError):
        proto.receive_data(header)
    assert rec.events == []


def test_malformed_error_message_is_dropped() -> None:
    proto, rec = make()
    proto.receive_data(HDR.pack(_proto.ERROR, 8, 0, 0, 0, 1) + b"\0" * 8 + double_update(1, 2.0))
    assert [e[0] for e in rec.events] == ["monitor"]


def test_monitor_update_without_a_handler_is_dropped_and_jobs_are_collected() -> None:
    proto, rec = make()
    proto.monitors[11] = lambda reply: ("key", print, reply)
    proto.receive_data(double_update(12, 1.0) + double_update(11, 2.0))
    assert rec.events == []
    assert proto.jobs == [("key", print, (6, 1, 1, struct.pack(">d", 2.0)))]


def test_a_large_buffer_is_reused_only_once_nothing_refers_to_it() -> None:
    n = 1_000_000  # (8 MB: kept for reuse)
    assert n * 8 >= SPARE_MIN
    rec = Keeper({(_proto.READ_NOTIFY, 9): ("BIG", n)})
    proto = CircuitProtocol(rec)

    def message(value: float, count: int = n) -> bytes:
        body = np.full(count, value, dtype=">f8").tobytes()
        return EXT.pack(_proto.READ_NOTIFY, 0xFFFF, 6, 0, 1, 9, len(body), count) + body

    def receive(msg: bytes) -> tuple[ReadResponse, int]:
        """The response, and the most memory allocated meanwhile (numpy reports to tracemalloc)."""
        tracemalloc.start()
        try:
            proto.receive_data(msg)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return ReadResponse(*rec.replies.pop(), "latin-1"), peak

    msgs = [message(1.0), message(2.0), message(3.0), message(4.0, n // 2)]
    first, allocated = receive(msgs[0])
    assert allocated >= n * 8
    second, allocated = receive(msgs[1])  # the first is still held: a new buffer
    assert allocated >= n * 8
    a, b = first.data, second.data
    assert not np.shares_memory(a, b) and a[-1] == 1.0 and b[-1] == 2.0
    del second, b
    third, allocated = receive(msgs[2])  # nothing refers to the second any more: received into it again
    assert allocated < n  # (no new buffer)
    values = third.data
    assert values[0] == values[-1] == 3.0 and a[0] == a[-1] == 1.0
    fourth, allocated = receive(msgs[3])  # the third is held (by `third` and `values`): a new buffer
    assert allocated >= n * 4
    assert values[0] == values[-1] == 3.0 and fourth.data[-1] == 4.0
    del third, values
    _, allocated = receive(message(5.0, n // 8))  # the kept buffer is free but 8x too big: not used
    assert allocated >= n
    sixth, allocated = receive(message(6.0))  # ... and kept for the next one that fits
    assert allocated < n and sixth.data[-1] == 6.0

    # A reader that caches the last value (compat, like pyepics) holds one buffer until the
    # next value has arrived: the two kept buffers take turns, and nothing new is allocated.
    del first, a, sixth
    held, _ = receive(message(7.0))
    held_values = held.data
    for value in (8.0, 9.0, 10.0):
        nxt, allocated = receive(message(value))
        assert allocated < n
        assert nxt.data[-1] == value and held_values[0] == held_values[-1] == value - 1
        held, held_values = nxt, nxt.data
