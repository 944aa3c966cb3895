"""The wide output line: ``name timestamp value status severity``.

``caget -a``, ``caput -l`` and every line of ``camonitor`` use it, with
camonitor's ``-t`` choices of time source (server, client) and style
(absolute, relative to the start, incremental overall or per channel), as
``print_time_val_sts`` does in EPICS base.

A :class:`WideLine` belongs to one tool run; camonitor calls it from one
callback thread at a time (the caller holds its print lock), so it needs no
lock of its own.
"""

from __future__ import annotations

from typing import Any

from . import _format as F

ABSOLUTE, RELATIVE, INCREMENTAL, BY_CHANNEL = "absolute", "relative", "incremental", "by-channel"

#: Status codes that the line reports in words.
ECA_NORMAL, ECA_DISCONN, ECA_NORDACCESS = 1, 192, 368


class Channel:
    """What a tool knows about one PV it prints (libca tools' ``pv`` struct).

    Attributes
    ----------
    name : str
        The name as given on the command line (Latin-1 text).
    n_elems : int
        Elements in the last value (or the channel's count).
    once_connected : bool
        Whether the channel ever connected.
    status : int
        ECA code of the last operation.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.n_elems = 0
        self.once_connected = False
        self.status = ECA_NORMAL
        self.first_stamp_printed = False
        self.prev_client = (0, 0)
        self.prev_server = (0, 0)


def _diff(a: tuple[int, int], b: tuple[int, int]) -> float:
    return float(a[0] - b[0]) + (a[1] - b[1]) / 1e9


class WideLine:
    """Formats wide lines, keeping the time references between them.

    Parameters
    ----------
    style : Style
        Value formatting options.
    """

    def __init__(self, style: F.Style) -> None:
        self.style = style
        self.server_stamps = True
        self.client_stamps = False
        self.kind = ABSOLUTE
        self.start = F.now_stamp()
        self._first: tuple[int, int] | None = None
        self._prev_client = (0, 0)
        self._prev_server = (0, 0)

    def set_timestamp_key(self, key: str) -> list[str]:
        """Apply camonitor's ``-t <key>``; return the complaints about unknown letters."""
        self.server_stamps = False
        self.client_stamps = False
        complaints = []
        for ch in key:
            if ch == "s":
                self.server_stamps = True
            elif ch == "c":
                self.client_stamps = True
            elif ch == "n":
                pass
            elif ch == "r":
                self.kind = RELATIVE
            elif ch == "i":
                self.kind = INCREMENTAL
            elif ch == "I":
                self.kind = BY_CHANNEL
            else:
                complaints.append(f"Invalid argument '{ch}' for option '-t' - ignored.")
        return complaints

    def format(self, ch: Channel, resp: Any, req_elems: int) -> str:
        """The line for *ch*: its value in *resp* (None if there is none), or its state."""
        sep = self.style.separator
        now = F.now_stamp()
        now_text = F.stamp_text(*now)
        head = (f"{ch.name:<30}" if ch.n_elems <= 1 and sep == " " else ch.name) + sep
        if not ch.once_connected:
            return head + "*** Not connected (PV not found)"
        if ch.status == ECA_DISCONN:
            return head + f"{now_text} *** disconnected"
        if ch.status == ECA_NORDACCESS:
            return head + f"{now_text} *** no read access"
        if ch.status != ECA_NORMAL:
            from ..eca import message

            return head + f"{now_text} *** CA error {message(ch.status)}"
        if resp is None:
            return head + f"{now_text} *** no data available (timeout)"
        dbr = int(resp.data_type)
        if not 14 <= dbr <= 20:
            return head + "can't print data type"
        md = resp.metadata
        return head + self._stamps(ch, F.md_stamp(md), now) + self._values(ch, resp, dbr, md, req_elems)

    def _stamps(self, ch: Channel, server: tuple[int, int], client: tuple[int, int]) -> str:
        absolute = not ch.first_stamp_printed
        if self._first is None:
            self._first = server
        if self.kind == RELATIVE:
            ref_c, ref_s = self.start, self._first
        elif self.kind == INCREMENTAL:
            ref_c, ref_s = self._prev_client, self._prev_server
        elif self.kind == BY_CHANNEL:
            ref_c, ref_s = ch.prev_client, ch.prev_server
        else:
            absolute = True
        out = ""
        if absolute:
            if self.server_stamps:
                out += F.stamp_text(*server)
            if self.client_stamps:
                out += f"({F.stamp_text(*client)})"
            ch.first_stamp_printed = True
        else:
            if self.server_stamps:
                out += f"              {_diff(server, ref_s):+12.6f}"
            if self.client_stamps:
                out += f"              ({_diff(client, ref_c):+12.6f})"
        if self.kind == BY_CHANNEL:
            ch.prev_client, ch.prev_server = client, server
        self._prev_client, self._prev_server = client, server
        return out

    def _values(self, ch: Channel, resp: Any, dbr: int, md: Any, req_elems: int) -> str:
        style = self.style
        sep = style.separator
        data = resp.tolist()
        n = ch.n_elems
        if style.char_as_string and dbr == F.TIME_OFFSET + F.CHAR and (req_elems or n > 1):
            elems = req_elems if req_elems and req_elems < n else n
            out = sep + style.char_string(data, min(elems, len(data)))
        else:
            out = sep + str(n) if req_elems or n > 1 else ""
            for text in style.values(data, min(n, len(data)), dbr, md):
                out += sep + text
        if md.status or md.severity:
            return out + f"{sep}{F.status_text(md.status)}{sep}{F.severity_text(md.severity)}"
        return out + sep + sep
