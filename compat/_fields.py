"""``PV._args``: pyepics' dict of a PV's fields, stored compactly.

A PV keeps 30 fields (value, alarm, time stamp, control fields ...).  As a
dict they cost about 830 bytes per PV; as a list of values with one shared
key table they cost under 300.  :class:`Fields` keeps the dict interface the
code uses (``f["value"]``, ``get``, ``update``, ``copy()`` giving a real
dict) and lets the monitor path write by position.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

#: Every field, in pyepics' order (its ``PV._fields`` plus nelm, type, typefull).
KEYS: tuple[str, ...] = (
    "pvname",
    "value",
    "char_value",
    "status",
    "ftype",
    "chid",
    "host",
    "count",
    "access",
    "write_access",
    "read_access",
    "severity",
    "timestamp",
    "posixseconds",
    "nanoseconds",
    "precision",
    "units",
    "enum_strs",
    "monitor_delta",
    "upper_disp_limit",
    "lower_disp_limit",
    "upper_alarm_limit",
    "lower_alarm_limit",
    "lower_warning_limit",
    "upper_warning_limit",
    "upper_ctrl_limit",
    "lower_ctrl_limit",
    "nelm",
    "type",
    "typefull",
)
INDEX: dict[str, int] = {key: i for i, key in enumerate(KEYS)}

# Positions used on the monitor path.
VALUE, CHAR_VALUE, STATUS, FTYPE, COUNT = (INDEX[k] for k in ("value", "char_value", "status", "ftype", "count"))
SEVERITY, TIMESTAMP, POSIXSECONDS, NANOSECONDS = (
    INDEX[k] for k in ("severity", "timestamp", "posixseconds", "nanoseconds")
)
PRECISION, NELM = INDEX["precision"], INDEX["nelm"]
#: Runs of adjacent fields the monitor path writes with one slice assignment.
HEAD = slice(VALUE, FTYPE + 1)  # value, char_value, status, ftype
STAMP = slice(SEVERITY, NANOSECONDS + 1)  # severity, timestamp, posixseconds, nanoseconds
assert KEYS[HEAD] == ("value", "char_value", "status", "ftype")
assert KEYS[STAMP] == ("severity", "timestamp", "posixseconds", "nanoseconds")
#: What a monitor update changes (positions and names).
MONITORED = tuple((INDEX[k], k) for k in ("value", "char_value", "status", "severity", "timestamp",
                                          "posixseconds", "nanoseconds", "count", "ftype"))  # fmt: skip

_get = list.__getitem__
_set = list.__setitem__


class Fields(list[Any]):
    """A PV's fields: a fixed-size list of values read and written by name (see module docstring).

    ``stamp`` counts the writes made by name, so that a copy kept for the
    callbacks knows when it must be rebuilt; the monitor path writes by
    position (and updates such a copy itself).
    """

    __slots__ = ("stamp",)

    def __init__(self) -> None:
        super().__init__([None] * len(KEYS))
        self.stamp = 0

    def __getitem__(self, key: str) -> Any:  # type: ignore[override]
        return _get(self, INDEX[key])

    def __setitem__(self, key: str, value: Any) -> None:  # type: ignore[override]
        _set(self, INDEX[key], value)
        self.stamp += 1

    def get(self, key: str, default: Any = None) -> Any:
        """The field *key*, or *default* for a name that is not a field."""
        i = INDEX.get(key)
        return default if i is None else _get(self, i)

    def update(self, other: Mapping[str, Any] = {}, **kw: Any) -> None:  # (never mutated)
        """Set the fields named in *other* and *kw* (other names are ignored)."""
        for source in (other, kw):
            for key, value in source.items():
                i = INDEX.get(key)
                if i is not None:
                    _set(self, i, value)
        self.stamp += 1

    def copy(self) -> dict[str, Any]:  # type: ignore[override]
        """A real dict of every field."""
        return dict(zip(KEYS, list.__iter__(self)))  # noqa: B905 (same length by construction)

    def keys(self) -> tuple[str, ...]:
        return KEYS

    def items(self) -> Iterator[tuple[str, Any]]:
        return zip(KEYS, list.__iter__(self))  # noqa: B905

    def __contains__(self, key: object) -> bool:
        return key in INDEX

    def __iter__(self) -> Iterator[str]:
        return iter(KEYS)

    def __repr__(self) -> str:
        return repr(self.copy())
