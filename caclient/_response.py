"""Result objects handed to users: read, write and monitor responses.

Responses are immutable from the user's point of view and decode lazily: the
circuit thread stores the raw payload and whichever thread first reads
``.data`` or ``.metadata`` decodes it (once; a benign race may decode twice,
giving equal results).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _dbr
from ._dbr import ChannelType, Metadata

if TYPE_CHECKING:
    import numpy.typing as npt

_UNSET: Any = object()


def _ctrl_string_layout(count: int, size: int) -> _dbr.Layout:
    # caproto's server sends DBR_CTRL_STRING with a timestamp (12 bytes of
    # metadata) where db_access.h has 4.  Tell them apart by the payload size.
    if size - _dbr.MAX_STRING_SIZE * count >= 12:
        return _dbr.LAYOUTS[_dbr.ChannelType.TIME_STRING]
    return _dbr.LAYOUTS[_dbr.ChannelType.CTRL_STRING]


class ReadResponse:
    """The answer to a read, or one monitor update.

    Attributes
    ----------
    data : numpy.ndarray or list of str
        The value: a numpy array in native byte order for numeric types, a
        list of str for DBR_STRING types.
    data_type : ChannelType
        The DBR type the server sent.
    data_count : int
        Number of elements.
    status : int
        ECA status code sent with the data (1, ``ECA_NORMAL``, on success).
    metadata : Metadata
        status, severity, timestamp, units, limits ... as the DBR type carries.
    """

    __slots__ = ("_type", "data_count", "status", "_payload", "_encoding", "_data", "_metadata", "_guard")

    def __init__(
        self, data_type: int, data_count: int, status: int, payload: bytes | memoryview, encoding: str
    ) -> None:
        self._type = data_type
        self.data_count = data_count
        self.status = status
        self._payload = payload
        self._encoding = encoding
        self._data: Any = _UNSET
        self._metadata: Any = _UNSET
        # A large payload arrives as a writable memoryview of a buffer of its
        # own and is decoded in place (byte-swapped, no copy); the guard makes
        # that happen once.
        self._guard = threading.Lock() if type(payload) is memoryview else None

    @property
    def data_type(self) -> ChannelType:
        return ChannelType(self._type)

    def _layout(self) -> _dbr.Layout:
        if self._type == ChannelType.CTRL_STRING:
            return _ctrl_string_layout(self.data_count, len(self._payload))
        return _dbr.LAYOUTS[self._type]

    @property
    def data(self) -> npt.NDArray[Any] | list[str]:
        data = self._data
        if data is _UNSET:
            guard = self._guard
            if guard is None:
                data = self._data = _dbr.decode_value(self._layout(), self.data_count, self._payload, self._encoding)
            else:
                with guard:
                    if self._data is _UNSET:
                        self._data = _dbr.decode_value(
                            self._layout(), self.data_count, self._payload, self._encoding, inplace=True
                        )
                data = self._data
        return data  # type: ignore[no-any-return]

    def tolist(self) -> list[Any]:
        """The value as a list of Python ``int``, ``float`` or ``str``.

        Equal to ``data.tolist()`` (``list(data)`` for strings), but a value
        not yet decoded is decoded with :mod:`struct` alone: reading one
        number this way neither imports numpy nor builds an array.

        Returns
        -------
        list
            One element per value element (``data_count`` of them).
        """
        data = self._data
        if data is _UNSET and self._guard is not None:
            data = self.data  # a large payload is decoded in place, once
        if data is not _UNSET:
            return list(data) if isinstance(data, list) else data.tolist()
        return _dbr.decode_list(self._layout(), self.data_count, self._payload, self._encoding)

    @property
    def metadata(self) -> Metadata:
        md = self._metadata
        if md is _UNSET:
            md = _dbr.decode_metadata(self._layout(), self._payload, self._encoding)
            md.data_type = self.data_type
            self._metadata = md
        return md  # type: ignore[no-any-return]

    @property
    def header(self) -> ResponseHeader:
        """The header of the reply (data type, count, status and payload size)."""
        return ResponseHeader(self._type, self.data_count, self.status, len(self._payload))

    @property
    def buffers(self) -> tuple[bytes]:
        """The payload as received, as a one-element tuple (caproto's ``buffers``)."""
        return (bytes(self),)

    def __bytes__(self) -> bytes:
        """The payload as the server sent it (network byte order)."""
        if self._guard is not None:
            if self._data is _UNSET and self._payload.format == _dbr.NATIVE_ORDER_FORMAT:  # type: ignore[union-attr]
                _ = self.data  # swapped on arrival: swap back from the decoded values below
            with self._guard:
                if self._data is not _UNSET and not isinstance(self._data, list):  # a numpy array
                    offset = self._layout().meta_size
                    swapped: bytes = self._data.astype(self._data.dtype.newbyteorder(">")).tobytes()
                    end = offset + len(swapped)
                    return bytes(self._payload[:offset]) + swapped + bytes(self._payload[end:])
        return bytes(self._payload)

    def __repr__(self) -> str:
        data: Any = self.data
        shown = repr(data if len(data) <= 10 else data[:10])
        more = "..." if len(data) > 10 else ""
        return f"<ReadResponse {self.data_type.name} count={self.data_count} status={self.status} data={shown}{more}>"


class ResponseHeader(NamedTuple):
    """The fields of a read or monitor reply's header (see :attr:`ReadResponse.header`)."""

    data_type: int
    data_count: int
    status: int
    payload_size: int


class WriteResponse:
    """The answer to a write with notification.

    Attributes
    ----------
    status : int
        ECA status code (1 on success).
    data_type : ChannelType
        The DBR type written.
    data_count : int
        Number of elements written.
    """

    __slots__ = ("data_type", "data_count", "status")

    def __init__(self, data_type: int, data_count: int, status: int) -> None:
        self.data_type = ChannelType(data_type)
        self.data_count = data_count
        self.status = status

    def __repr__(self) -> str:
        return f"<WriteResponse {self.data_type.name} count={self.data_count} status={self.status}>"
