"""Channel Access message framing: command codes, headers and request builders.

Pure functions over bytes; safe from any thread.  Requests are built with
:mod:`struct` directly (no caproto command objects on the hot path).
"""

from __future__ import annotations

import struct

from ._dbr import ELEMENT_SIZE, native_type, payload_size

# Command codes (ca_protocol spec)
VERSION = 0
EVENT_ADD = 1
EVENT_CANCEL = 2
READ = 3
WRITE = 4
SEARCH = 6
EVENTS_OFF = 8
EVENTS_ON = 9
READ_SYNC = 10
ERROR = 11
CLEAR_CHANNEL = 12
RSRV_IS_UP = 13
NOT_FOUND = 14
READ_NOTIFY = 15
REPEATER_CONFIRM = 17
CREATE_CHAN = 18
WRITE_NOTIFY = 19
CLIENT_NAME = 20
HOST_NAME = 21
ACCESS_RIGHTS = 22
ECHO = 23
REPEATER_REGISTER = 24
CREATE_CH_FAIL = 26
SERVER_DISCONN = 27

COMMAND_NAMES = {
    v: k
    for k, v in dict(globals()).items()
    if isinstance(v, int) and k.isupper() and not k.startswith(("MINOR", "DONT", "DO_", "MAX", "ECA"))
}

MINOR_VERSION = 13
DONT_REPLY = 5
DO_REPLY = 10
ECA_NORMAL = 1
MAX_UDP_PAYLOAD = 1472

HEADER = struct.Struct(">HHHHII")
EXTENDED = struct.Struct(">HHHHIIII")
HEADER_SIZE = HEADER.size  # 16
EXTENDED_SIZE = EXTENDED.size  # 24
EVENT_ADD_PAYLOAD = struct.Struct(">fffH2x")

# DBE mask bits
DBE_VALUE = 1
DBE_LOG = 2
DBE_ALARM = 4
DBE_PROPERTY = 8


def pad8(n: int) -> int:
    """*n* rounded up to a multiple of 8."""
    return (n + 7) & ~7


def header(command: int, size: int, data_type: int, count: int, p1: int, p2: int) -> bytes:
    """Pack a header, switching to the extended form when size or count need it."""
    if size >= 0xFFFF or count >= 0xFFFF:
        return EXTENDED.pack(command, 0xFFFF, data_type, 0, p1, p2, size, count)
    return HEADER.pack(command, size, data_type, count, p1, p2)


def padded_string(text: str | bytes, encoding: str = "latin-1") -> bytes:
    """A NUL-terminated string padded to a multiple of 8 bytes."""
    raw = text.encode(encoding) if isinstance(text, str) else text
    raw += b"\0"
    return raw.ljust(pad8(len(raw)), b"\0")


def version(priority: int = 0) -> bytes:
    return HEADER.pack(VERSION, 0, priority, MINOR_VERSION, 0, 0)


def host_name(name: str) -> bytes:
    payload = padded_string(name)
    return HEADER.pack(HOST_NAME, len(payload), 0, 0, 0, 0) + payload


def client_name(name: str) -> bytes:
    payload = padded_string(name)
    return HEADER.pack(CLIENT_NAME, len(payload), 0, 0, 0, 0) + payload


def search(name: bytes, search_id: int) -> bytes:
    """One SEARCH request (DONT_REPLY) for an already-encoded name."""
    payload = name + b"\0"
    payload = payload.ljust(pad8(len(payload)), b"\0")
    return HEADER.pack(SEARCH, len(payload), DONT_REPLY, MINOR_VERSION, search_id, search_id) + payload


def create_chan(name: bytes, cid: int) -> bytes:
    payload = name + b"\0"
    payload = payload.ljust(pad8(len(payload)), b"\0")
    return HEADER.pack(CREATE_CHAN, len(payload), 0, 0, cid, MINOR_VERSION) + payload


def clear_channel(sid: int, cid: int) -> bytes:
    return HEADER.pack(CLEAR_CHANNEL, 0, 0, 0, sid, cid)


def read_notify(data_type: int, count: int, sid: int, ioid: int) -> bytes:
    return header(READ_NOTIFY, 0, data_type, count, sid, ioid)


def write_chunks(
    command: int, data_type: int, count: int, sid: int, ioid: int, payload: bytes | memoryview
) -> tuple[bytes | memoryview, ...]:
    """A WRITE or WRITE_NOTIFY request as (header, payload[, padding]): no copy of the payload."""
    size = len(payload)
    padded = pad8(size)
    head = header(command, padded, data_type, count, sid, ioid)
    if size < 4096:  # one buffer: a plain send costs less than a sendmsg of two
        return (b"".join((head, payload, b"\0" * (padded - size))),)
    if padded == size:
        return (head, payload)
    return (head, payload, b"\0" * (padded - size))


def write(command: int, data_type: int, count: int, sid: int, ioid: int, payload: bytes | memoryview) -> bytes:
    """A WRITE or WRITE_NOTIFY request; *payload* is padded here."""
    return b"".join(write_chunks(command, data_type, count, sid, ioid, payload))


def event_add(data_type: int, count: int, sid: int, subid: int, mask: int) -> bytes:
    return header(EVENT_ADD, 16, data_type, count, sid, subid) + EVENT_ADD_PAYLOAD.pack(0.0, 0.0, 0.0, mask)


def event_cancel(data_type: int, count: int, sid: int, subid: int) -> bytes:
    return header(EVENT_CANCEL, 0, data_type, count, sid, subid)


def repeater_register() -> bytes:
    """REPEATER_REGISTER from a client on 127.0.0.1."""
    return HEADER.pack(REPEATER_REGISTER, 0, 0, 0, 0, 0x7F000001)


def echo() -> bytes:
    return HEADER.pack(ECHO, 0, 0, 0, 0, 0)


def events_off() -> bytes:
    return HEADER.pack(EVENTS_OFF, 0, 0, 0, 0, 0)


def events_on() -> bytes:
    return HEADER.pack(EVENTS_ON, 0, 0, 0, 0, 0)


def max_count_for(data_type: int, max_bytes: int) -> int:
    """Largest element count of *data_type* whose payload fits *max_bytes*."""
    per = ELEMENT_SIZE[native_type(data_type)]
    return max(0, (max_bytes - payload_size(data_type, 0)) // per)
