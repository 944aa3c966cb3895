"""Unit tests of Channel Access framing (caclient._proto), checked against caproto's commands.

Pure: no network, no threads.
"""

from __future__ import annotations

import re
import struct

import caproto
import caproto._commands as cacmd
import numpy as np
import pytest
from caproto._commands import read_from_bytestream

from caclient import _dbr, _proto
from caclient._proto import HEADER, HEADER_SIZE

WIRE = {1: ">i2", 2: ">f4", 3: ">u2", 4: "u1", 5: ">i4", 6: ">f8"}
NATIVE = {1: "i2", 2: "f4", 3: "u2", 4: "u1", 5: "i4", 6: "f8"}

#: counts around the extended-header switch (caproto agrees everywhere except 0xFFFF, see below)
COUNTS = [0, 1, 2, 1000, 0xFFFE, 0x10000, 100_000, 2**24 + 3]


def parse_header(msg: bytes) -> tuple[tuple[int, int, int, int, int, int], int]:
    """(command, size, type, count, p1, p2) and the header length, either form."""
    command, size, dtype, count, p1, p2 = HEADER.unpack_from(msg)
    if size == 0xFFFF and count == 0:
        size, count = struct.unpack_from(">II", msg, HEADER_SIZE)
        return (command, size, dtype, count, p1, p2), 24
    return (command, size, dtype, count, p1, p2), 16


def caproto_parse(msg: bytes) -> caproto._commands.Message:
    rest, cmd, _ = read_from_bytestream(bytearray(msg), caproto.CLIENT)
    assert not rest
    return cmd


# ---------------------------------------------------------------- basics
@pytest.mark.parametrize("n", range(34))
def test_pad8(n: int) -> None:
    p = _proto.pad8(n)
    assert p % 8 == 0 and n <= p < n + 8


@pytest.mark.parametrize("text", ["", "a", "abcdefg", "abcdefgh", "x" * 15, "x" * 16, b"raw\xff"], ids=repr)
def test_padded_string(text: str | bytes) -> None:
    raw = text.encode() if isinstance(text, str) else text
    out = _proto.padded_string(text)
    assert len(out) % 8 == 0
    assert out.startswith(raw + b"\0")
    assert len(out) == _proto.pad8(len(raw) + 1)
    assert out[len(raw) :] == b"\0" * (len(out) - len(raw))


def test_padded_string_encoding() -> None:
    assert _proto.padded_string("\u00e9", "utf-8") == b"\xc3\xa9\0".ljust(8, b"\0")
    assert _proto.padded_string("\u00e9") == b"\xe9\0".ljust(8, b"\0")


def test_header_sizes() -> None:
    assert _proto.HEADER_SIZE == 16
    assert _proto.EXTENDED_SIZE == 24
    assert _proto.EVENT_ADD_PAYLOAD.size == 16


@pytest.mark.parametrize(
    ("size", "count", "extended"),
    [
        (0, 0, False),
        (0xFFF8, 0xFFFE, False),
        (0xFFFE, 0, False),
        (0xFFFF, 0, True),
        (0x10000, 1, True),
        (0, 0xFFFF, True),
        (8, 0x10000, True),
        (2**32 - 8, 2**32 - 1, True),
    ],
)
def test_header_extended_switch(size: int, count: int, extended: bool) -> None:
    msg = _proto.header(15, size, 6, count, 0x01020304, 0xA0B0C0D0)
    assert len(msg) == (24 if extended else 16)
    fields, n = parse_header(msg)
    assert n == len(msg)
    assert fields == (15, size, 6, count, 0x01020304, 0xA0B0C0D0)
    if extended:
        assert msg[2:4] == b"\xff\xff" and msg[6:8] == b"\0\0"


def test_command_codes_match_caproto() -> None:
    def snake(name: str) -> str:
        name = re.sub(r"(Request|Response)$", "", name)
        return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()

    seen = 0
    for role in (caproto.CLIENT, caproto.SERVER):
        for code, cls in cacmd.Commands[role].items():
            name = "RSRV_IS_UP" if cls.__name__ == "Beacon" else snake(cls.__name__)
            if name == "READ_SYNC" or hasattr(_proto, name):
                assert getattr(_proto, name) == code, name
                assert _proto.COMMAND_NAMES[code] == name
                seen += 1
    assert seen >= 30
    assert all(isinstance(k, int) and v.isupper() for k, v in _proto.COMMAND_NAMES.items())
    assert len(set(_proto.COMMAND_NAMES.values())) == len(_proto.COMMAND_NAMES)


# ---------------------------------------------------------------- requests vs caproto
@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("dtype", [0, 6, 20, 34, 37])
def test_read_notify(dtype: int, count: int) -> None:
    ours = _proto.read_notify(dtype, count, 0x11223344, 0x55667788)
    assert ours == bytes(caproto.ReadNotifyRequest(dtype, count, 0x11223344, 0x55667788))
    cmd = caproto_parse(ours)
    assert (cmd.data_type, cmd.data_count, cmd.sid, cmd.ioid) == (dtype, count, 0x11223344, 0x55667788)


def test_count_0xffff_uses_extended_header() -> None:
    """count == 0xFFFF must use the extended form: rsrv reads a plain header
    with m_count == 0xFFFF as extended.  caproto (1.3) writes a plain header
    there; this documents the difference (and notices if caproto changes)."""
    ours = _proto.read_notify(6, 0xFFFF, 1, 2)
    theirs = bytes(caproto.ReadNotifyRequest(6, 0xFFFF, 1, 2))
    assert len(ours) == 24 and len(theirs) == 16
    assert parse_header(ours)[0] == (15, 0, 6, 0xFFFF, 1, 2)
    assert caproto_parse(ours).data_count == 0xFFFF
    assert _proto.event_add(6, 0xFFFF, 1, 2, 1)[:24] == _proto.header(1, 16, 6, 0xFFFF, 1, 2)
    assert len(_proto.event_cancel(6, 0xFFFF, 1, 2)) == 24


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("mask", [1, 5, 15])
def test_event_add(count: int, mask: int) -> None:
    ours = _proto.event_add(20, count, 7, 9, mask)
    assert ours == bytes(caproto.EventAddRequest(20, count, 7, 9, 0.0, 0.0, 0.0, mask))
    cmd = caproto_parse(ours)
    assert (cmd.data_type, cmd.data_count, cmd.sid, cmd.subscriptionid, cmd.mask) == (20, count, 7, 9, mask)
    assert len(ours) % 8 == 0


def test_event_cancel() -> None:
    # caproto always sends count 0; libca sends the subscription's count (servers ignore it)
    assert _proto.event_cancel(13, 0, 7, 9) == bytes(caproto.EventCancelRequest(13, 7, 9))
    msg = _proto.event_cancel(13, 5, 7, 9)
    assert parse_header(msg) == ((2, 0, 13, 5, 7, 9), 16)
    cmd = caproto_parse(msg)
    assert (cmd.data_type, cmd.sid, cmd.subscriptionid) == (13, 7, 9)


NAMES = ["a", "abc", "abcdefg", "abcdefgh", "XF:31IDA-OP{Tbl-Ax:X1}Mtr.RBV", "x" * 59 + ".DESC"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cid", [0, 1, 2**32 - 1])
def test_search(name: str, cid: int) -> None:
    ours = _proto.search(name.encode(), cid)
    assert ours == bytes(caproto.SearchRequest(name, cid, _proto.MINOR_VERSION))
    assert len(ours) % 8 == 0
    cmd = caproto_parse(ours)
    assert (cmd.name, cmd.cid, cmd.version, cmd.reply) == (name, cid, 13, caproto.NO_REPLY)


@pytest.mark.parametrize("name", ["a", "abcdefg", "abcdefgh", "XF:31IDA-OP{Tbl-Ax:X1}Mtr.RBV", "y" * 100])
def test_create_chan(name: str) -> None:
    ours = _proto.create_chan(name.encode(), 42)
    assert ours == bytes(caproto.CreateChanRequest(name, 42, _proto.MINOR_VERSION))
    cmd = caproto_parse(ours)
    assert (cmd.name, cmd.cid, cmd.version) == (name, 42, 13)


@pytest.mark.parametrize("priority", [0, 1, 99])
def test_version(priority: int) -> None:
    ours = _proto.version(priority)
    assert ours == bytes(caproto.VersionRequest(priority, _proto.MINOR_VERSION))
    assert caproto_parse(ours).priority == priority


@pytest.mark.parametrize("name", ["h", "host1234", "a-much-longer.host.name.example.org"])
def test_host_and_client_name(name: str) -> None:
    assert _proto.host_name(name) == bytes(caproto.HostNameRequest(name))
    assert _proto.client_name(name) == bytes(caproto.ClientNameRequest(name))
    assert caproto_parse(_proto.host_name(name)).name == name
    assert caproto_parse(_proto.client_name(name)).name == name


def test_clear_channel() -> None:
    assert _proto.clear_channel(3, 4) == bytes(caproto.ClearChannelRequest(3, 4))
    cmd = caproto_parse(_proto.clear_channel(3, 4))
    assert (cmd.sid, cmd.cid) == (3, 4)


def test_argless_requests() -> None:
    assert _proto.echo() == bytes(caproto.EchoRequest())
    assert _proto.events_off() == bytes(caproto.EventsOffRequest())
    assert _proto.events_on() == bytes(caproto.EventsOnRequest())


# ---------------------------------------------------------------- write
@pytest.mark.parametrize("n", range(18))
def test_write_pads_payload(n: int) -> None:
    payload = bytes(range(1, n + 1))
    msg = _proto.write(_proto.WRITE_NOTIFY, 4, n, 5, 6, payload)
    (command, size, dtype, count, p1, p2), hlen = parse_header(msg)
    assert (command, dtype, count, p1, p2) == (19, 4, n, 5, 6)
    assert size == _proto.pad8(n) == len(msg) - hlen
    assert msg[hlen : hlen + n] == payload
    assert msg[hlen + n :] == b"\0" * (size - n)


@pytest.mark.parametrize("field", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("count", [1, 3, 5, 0x7FFF, 0x10000, 70_001])
@pytest.mark.parametrize("command", [_proto.WRITE, _proto.WRITE_NOTIFY])
def test_write_matches_caproto(field: int, count: int, command: int) -> None:
    data = (np.arange(count) % 100).astype(NATIVE[field])
    raw, n = _dbr.encode_values(field, data, "latin-1")
    assert n == count
    ours = _proto.write(command, field, count, 11, 12, raw)
    cls = caproto.WriteRequest if command == _proto.WRITE else caproto.WriteNotifyRequest
    theirs = bytes(cls(data, field, count, 11, 12))
    assert ours == theirs
    (_, size, _, hcount, _, _), hlen = parse_header(ours)
    assert hcount == count and size == _proto.pad8(len(raw))
    assert hlen == (24 if size >= 0xFFFF or count >= 0xFFFF else 16)


@pytest.mark.parametrize("count", [1, 3, 1700])
def test_write_strings_matches_caproto(count: int) -> None:
    values = [f"s{i}" for i in range(count)]
    raw, n = _dbr.encode_values(0, values, "latin-1")
    ours = _proto.write(_proto.WRITE_NOTIFY, 0, n, 1, 2, raw)
    assert ours == bytes(caproto.WriteNotifyRequest([v.encode() for v in values], 0, n, 1, 2))
    assert len(ours) == (24 if 40 * count >= 0xFFFF else 16) + 40 * count


def test_write_extended_by_size_only() -> None:
    # 0xFFF8 bytes fit the plain header; 0x10000 do not, whatever the count
    assert len(_proto.write(4, 4, 10, 1, 2, b"\0" * 0xFFF8)) == 16 + 0xFFF8
    assert len(_proto.write(4, 4, 10, 1, 2, b"\0" * 0xFFF9)) == 24 + 0x10000
    assert parse_header(_proto.write(4, 4, 10, 1, 2, b"\0" * 0xFFF9))[0][1] == 0x10000


# ---------------------------------------------------------------- max_count_for
@pytest.mark.parametrize("t", range(39), ids=lambda t: _dbr.ChannelType(t).name)
@pytest.mark.parametrize("max_bytes", [0, 40, 16384, 100_000])
def test_max_count_for(t: int, max_bytes: int) -> None:
    n = _proto.max_count_for(t, max_bytes)
    assert n >= 0
    if n:
        assert _dbr.payload_size(t, n) <= max_bytes
    if _dbr.payload_size(t, 0) <= max_bytes:
        assert _dbr.payload_size(t, n + 1) > max_bytes


def test_max_count_for_string_types() -> None:
    for t in (_dbr.ChannelType.STSACK_STRING, _dbr.ChannelType.CLASS_NAME, _dbr.ChannelType.TIME_STRING):
        assert _proto.max_count_for(t, 16384) <= 16384 // 40
