"""``Alarm``: call a function when a PV's value crosses a trip point, as pyepics' ``epics.Alarm``.

Threads: :meth:`Alarm.check_alarm` runs on compat's callback thread for the
PV (one at a time per PV, in order), and once in the constructor's thread.
``_lock`` guards ``alarm_state`` and ``last_alert`` so that the check in the
constructor and a first monitor update cannot both fire; the user callback
runs after the lock is released.
"""

from __future__ import annotations

import operator
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import pv

__all__ = ["Alarm"]


class Alarm:
    """Run *callback* when ``comparison(value, trip_point)`` becomes true.

    Parameters
    ----------
    pvname : str or compat.PV
        The PV to watch.
    comparison : str or callable
        ``'eq'``, ``'ne'``, ``'le'``, ``'lt'``, ``'ge'``, ``'gt'`` (an
        underscore may surround them, as ``'__gt__'``), the symbols ``'=='``,
        ``'!='``, ``'<='``, ``'<'``, ``'>='``, ``'>'``, or a function of
        ``(value, trip_point)``.
    trip_point
        The value compared with.
    callback : callable, optional
        Called as ``callback(pvname=, value=, char_value=, trip_point=,
        comparison=, **kw)`` (*kw*: the PV's other callback arguments) when
        the comparison turns true; without one a line
        ``Alarm: NAME=VALUE (TIME)`` is printed.
    alert_delay : float
        Seconds after an alert during which a new alert is not given.

    Raises
    ------
    UserWarning
        No PV, *comparison* or *trip_point* (pyepics raises this too).

    Notes
    -----
    The comparison is checked on each change of the PV (its monitor), and
    once at construction.  An unknown comparison name never alerts, as in
    pyepics.
    """

    ops: dict[str, Callable[[Any, Any], Any]] = {  # noqa: RUF012 (pyepics' class attribute)
        "eq": operator.eq, "==": operator.eq, "ne": operator.ne, "!=": operator.ne,
        "le": operator.le, "<=": operator.le, "lt": operator.lt, "<": operator.lt,
        "ge": operator.ge, ">=": operator.ge, "gt": operator.gt, ">": operator.gt,
    }  # fmt: skip

    def __init__(
        self,
        pvname: str | pv.PV,
        comparison: str | Callable[[Any, Any], Any] | None = None,
        trip_point: Any = None,
        callback: Callable[..., Any] | None = None,
        alert_delay: float = 10,
    ) -> None:
        self.pv: pv.PV | None = None
        if isinstance(pvname, pv.PV):
            self.pv = pvname
        elif isinstance(pvname, str):
            self.pv = pv.get_pv(pvname)
            self.pv.connect()
        if self.pv is None or comparison is None or trip_point is None:
            raise UserWarning("alarm requires valid PV, comparison, and trip_point")
        self._lock = threading.Lock()
        self.trip_point = trip_point
        self.last_alert: float = 0
        self.alert_delay = alert_delay
        self.user_callback = callback
        self.cmp: Callable[[Any, Any], Any] | None = None
        self.comp_name = "Not Defined"
        if callable(comparison):
            self.comp_name = getattr(comparison, "__name__", repr(comparison))
            self.cmp = comparison
        else:
            self.cmp = self.ops.get(comparison.replace("_", ""))
            if self.cmp is not None:
                self.comp_name = comparison
        self.alarm_state = False
        self.pv.add_callback(self.check_alarm)
        self.check_alarm()

    def __repr__(self) -> str:
        name = self.pv.pvname if self.pv is not None else None
        return f"<Alarm pvname='{name}',comp='{self.comp_name}','trip_point={self.trip_point}>"

    def reset(self) -> None:
        """Re-arm: forget the alarm state and the time of the last alert."""
        with self._lock:
            self.last_alert = 0
            self.alarm_state = False

    def check_alarm(self, pvname: str | None = None, value: Any = None, char_value: Any = None, **kw: Any) -> None:
        """Compare *value* with the trip point; alert when the comparison has just turned true.

        This is the PV callback; it does nothing when called without a PV
        name and value (as the constructor does, like pyepics).
        """
        if pvname is None or value is None or self.cmp is None or self.trip_point is None:
            return
        if char_value is None:
            char_value = value
        state = bool(self.cmp(value, self.trip_point))
        now = time.time()
        with self._lock:
            fire = state and not self.alarm_state and (now - self.last_alert) > self.alert_delay
            self.alarm_state = state
            if fire:
                self.last_alert = now
        if not fire:
            return
        if callable(self.user_callback):
            self.user_callback(
                pvname=pvname,
                value=value,
                char_value=char_value,
                trip_point=self.trip_point,
                comparison=self.comp_name,
                **kw,
            )
        else:
            sys.stdout.write(f"Alarm: {pvname}={char_value} ({time.ctime()})\n")
