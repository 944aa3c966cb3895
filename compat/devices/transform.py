"""``Transform``: the synApps transform record, as pyepics' ``epics.devices.Transform``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..device import Device

__all__ = ["Transform"]


class Transform(Device):
    """A transform record: 16 rows A .. P, each with value, input link, expression, output link, comment.

    Parameters
    ----------
    prefix : str
        The record name.
    **kwargs
        Passed on to :class:`compat.Device`.

    Notes
    -----
    A row is a letter; :meth:`get_row` and the ``set_*`` methods return
    None for anything else.  pyepics' versions of these methods fail with a
    NameError on Python 3 (and ``set_comment``/``set_input`` always); these
    work (see the migration guide).
    """

    attr_fmts = {  # noqa: RUF012 (pyepics' class attribute)
        "Value": "%s",
        "Input": "INP%s",
        "Input_Valid": "I%sV",
        "Expression": "CLC%s",
        "Output": "OUT%s",
        "Output_Valid": "O%sV",
        "Comment": "CMT%s",
        "Expression_Valid": "C%sV",
        "Previous_Value": "L%s",
    }
    rows = "ABCDEFGHIJKLMNOP"

    def __init__(self, prefix: str, **kwargs: Any) -> None:
        if prefix.endswith("."):
            prefix = prefix[:-1]
        self.attrs = ["COPT", "PREC"]
        for fmt in self.attr_fmts.values():
            self.attrs.extend(fmt % row for row in self.rows)
        super().__init__(prefix, delim=".", attrs=self.attrs, **kwargs)

    def _valid_row(self, row: Any) -> bool:
        return isinstance(row, str) and len(row) == 1 and row in self.rows

    def get_row(self, row: str = "A") -> dict[str, Any] | None:
        """Everything about a row: ``{'Value', 'Input', 'Input_Valid', 'Expression', 'Output', 'Output_Valid',
        'Comment', 'Expression_Valid', 'Previous_Value'}`` (for row B: fields B, INPB, IBV, CLCB, ...)."""
        if not self._valid_row(row):
            return None
        return {label: self._pvs[fmt % row].get() for label, fmt in self.attr_fmts.items()}

    def set_row(self, row: str = "A", data: Mapping[str, Any] | None = None) -> None:
        """Write the writable entries of *data* (a :meth:`get_row` dict) to a row."""
        if not self._valid_row(row):
            return
        for key, value in (data or {}).items():
            if key in self.attr_fmts:
                thispv = self._pvs[self.attr_fmts[key] % row]
                if thispv.write_access:
                    thispv.put(value)

    def set_calc(self, row: str = "A", calc: str = "") -> None:
        """Set a row's expression."""
        if self._valid_row(row):
            self._pvs[self.attr_fmts["Expression"] % row].put(calc)

    def set_comment(self, row: str = "A", comment: str = "") -> None:
        """Set a row's comment."""
        if self._valid_row(row):
            self._pvs[self.attr_fmts["Comment"] % row].put(comment)

    def set_input(self, row: str = "A", input: str = "") -> None:
        """Set a row's input link."""
        if self._valid_row(row):
            self._pvs[self.attr_fmts["Input"] % row].put(input)
