"""String helpers and the text encoding used on the wire, as ``epics.utils``.

``IOENCODING`` is read once, when this module is imported, from
``PYEPICS_ENCODING``, else ``PYTHONIOENCODING``, else ``'utf-8'`` (the same
rule as pyepics).  The default Context of :mod:`compat` is created with it.
"""

from __future__ import annotations

import os

IOENCODING: str = os.environ.get("PYEPICS_ENCODING", os.environ.get("PYTHONIOENCODING", "utf-8"))


def wire_encoding() -> str:
    """The codec name in :data:`IOENCODING`, without an ``:errors`` suffix."""
    return IOENCODING.split(":", 1)[0] or "utf-8"


def str2bytes(text: str | bytes) -> bytes:
    """Encode *text* with :data:`IOENCODING` (bytes pass through)."""
    if isinstance(text, bytes):
        return text
    return text.encode(wire_encoding())


def bytes2str(raw: object) -> str:
    """Decode bytes with :data:`IOENCODING`; anything else goes through ``str``."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bytes):
        return raw.decode(wire_encoding())
    return str(raw)


def strjoin(sep: str | bytes, seq: list[str] | list[bytes]) -> str:
    """Join strings (or bytes, stopping at the first NUL byte) with *sep*."""
    sep_text = bytes2str(sep) if isinstance(sep, bytes) else sep
    if not seq:
        return ""
    parts: list[str] = []
    if isinstance(seq[0], bytes):
        for item in seq:
            if item == b"\x00":
                break
            parts.append(bytes2str(item))
        return sep_text.join(parts)
    return sep_text.join(str(item) for item in seq)
