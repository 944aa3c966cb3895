"""``Motor``: the EPICS motor record as a :class:`compat.Device`, as pyepics' ``epics.Motor``.

Fields are reached by name (``m.VAL``, ``m.get('RBV')``) or by the long
names pyepics gives them (``m.drive``, ``m.readback``, ``m.slew_speed``, see
:data:`Motor._alias`).  :meth:`Motor.move` returns pyepics' integer codes.

Threads: every method runs in the caller's thread and blocks there (up to
its timeout); field callbacks run on compat's callback threads.  A Motor
holds no lock of its own: its PVs are compat PVs, safe to use from any
thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import ca
from . import pv as _pv
from .device import Device

__all__ = ["Motor", "MotorException", "MotorLimitException"]


class MotorLimitException(Exception):
    """A soft or hard limit of the motor is active (raised by :meth:`compat.Motor.check_limits`)."""

    def __init__(self, msg: str, *args: Any) -> None:
        super().__init__(*args)
        self.msg = msg

    def __str__(self) -> str:
        return str(self.msg)


class MotorException(Exception):
    """A problem with a motor: no name, not a motor record, no such field."""

    def __init__(self, msg: str, *args: Any) -> None:
        super().__init__(*args)
        self.msg = msg

    def __str__(self) -> str:
        return str(self.msg)


class _NoSuchField(MotorException, AttributeError):
    """A field that does not connect, asked for as an attribute (also an AttributeError, for hasattr)."""


# The long names of the motor record's fields (pyepics' table).
_ALIAS: dict[str, str] = {
    "acceleration": "ACCL", "back_accel": "BACC", "backlash": "BDST", "back_speed": "BVEL", "card": "CARD",
    "dial_high_limit": "DHLM", "direction": "DIR", "dial_low_limit": "DLLM", "settle_time": "DLY",
    "done_moving": "DMOV", "dial_readback": "DRBV", "description": "DESC", "dial_drive": "DVAL", "units": "EGU",
    "encoder_step": "ERES", "freeze_offset": "FOFF", "move_fraction": "FRAC", "hi_severity": "HHSV",
    "hi_alarm": "HIGH", "hihi_alarm": "HIHI", "high_limit": "HLM", "high_limit_set": "HLS", "hw_limit": "HLSV",
    "home_forward": "HOMF", "home_reverse": "HOMR", "high_op_range": "HOPR", "high_severity": "HSV",
    "integral_gain": "ICOF", "jog_accel": "JAR", "jog_forward": "JOGF", "jog_reverse": "JOGR", "jog_speed": "JVEL",
    "last_dial_val": "LDVL", "low_limit": "LLM", "low_limit_set": "LLS", "lo_severity": "LLSV", "lolo_alarm": "LOLO",
    "low_op_range": "LOPR", "low_alarm": "LOW", "last_rel_val": "LRLV", "last_dial_drive": "LRVL",
    "last_SPMG": "LSPG", "low_severity": "LSV", "last_drive": "LVAL", "soft_limit": "LVIO", "in_progress": "MIP",
    "missed": "MISS", "moving": "MOVN", "resolution": "MRES", "motor_status": "MSTA", "offset": "OFF",
    "output_mode": "OMSL", "output": "OUT", "prop_gain": "PCOF", "precision": "PREC", "readback": "RBV",
    "retry_max": "RTRY", "retry_count": "RCNT", "retry_deadband": "RDBD", "dial_difference": "RDIF",
    "raw_encoder_pos": "REP", "raw_high_limit": "RHLS", "raw_low_limit": "RLLS", "relative_value": "RLV",
    "raw_motor_pos": "RMP", "raw_readback": "RRBV", "readback_res": "RRES", "raw_drive": "RVAL",
    "dial_speed": "RVEL", "s_speed": "S", "s_back_speed": "SBAK", "s_base_speed": "SBAS", "s_max_speed": "SMAX",
    "set": "SET", "stop_go": "SPMG", "s_revolutions": "SREV", "stop_command": "STOP", "t_direction": "TDIR",
    "tweak_forward": "TWF", "tweak_reverse": "TWR", "tweak_val": "TWV", "use_encoder": "UEIP",
    "u_revolutions": "UREV", "use_rdbl": "URIP", "drive": "VAL", "base_speed": "VBAS", "slew_speed": "VELO",
    "version": "VERS", "max_speed": "VMAX", "use_home": "ATHM", "deriv_gain": "DCOF", "use_torque": "CNEN",
    "device_type": "DTYP", "record_type": "RTYP", "status": "STAT",
}  # fmt: skip

# Return codes of Motor.move (pyepics' values).
NONFLOAT, OUTSIDE_LIMITS, UNCONNECTED = -13, -12, -11
TIMEOUT, TIMEOUT_BUTDONE = -8, -7
UNKNOWN_ERROR = -5
DONEW_SOFTLIM, DONEW_HARDLIM = -4, -3
DONE_OK = 0
MOVE_BEGUN, MOVE_BEGUN_CONFIRMED = 0, 1
NOWAIT_SOFTLIM, NOWAIT_HARDLIM = 4, 3


class Motor(Device):
    """An EPICS motor record.

    Parameters
    ----------
    name : str
        The record name (a trailing ``.VAL`` or ``.`` is dropped).
    timeout : float
        Seconds to wait for the record to connect.

    Raises
    ------
    MotorException
        No *name*, or the record does not connect within *timeout* or is not
        a motor record (its RTYP is not ``'motor'``).

    Notes
    -----
    ``m.FIELD`` reads a field and ``m.FIELD = value`` writes it; the long
    names of :data:`_alias` work the same way (``m.drive = 1.5``).  A name
    that is no field of the record raises :class:`~compat.motor.MotorException` (which is
    also an AttributeError) once its PV fails to connect.

    Examples
    --------
    >>> m = Motor("IOC:m1")                       # doctest: +SKIP
    >>> m.move(1.5, wait=True)                    # doctest: +SKIP
    0
    >>> m.get_position(readback=True, dial=True)  # doctest: +SKIP
    1.5
    """

    _extras = {"disabled": "_able.VAL"}  # noqa: RUF012 (pyepics' class attribute)
    _alias = _ALIAS
    _init_list = ("VAL", "DESC", "RTYP", "RBV", "PREC", "TWV", "FOFF", "VELO", "STAT", "SET", "LLM", "HLM", "SPMG",
                  "LVIO", "HLS", "LLS")  # fmt: skip

    def __init__(self, name: str | None = None, timeout: float = 3.0) -> None:
        if name is None:
            raise MotorException("must supply motor name")
        if name.endswith(".VAL"):
            name = name[:-4]
        if name.endswith("."):
            name = name[:-1]
        self.__dict__["_callbacks"] = {}
        super().__init__(name, delim=".", attrs=self._init_list, timeout=timeout)
        rtyp = self.PV("RTYP", connect=False)
        rtyp.wait_for_connection(timeout=timeout)
        if self.get("RTYP") != "motor":
            raise MotorException(f"{name} is not an Epics Motor")
        for key, suffix in self._extras.items():
            self.add_pv(f"{name}{suffix}", attr=key)

    # ------------------------------------------------------------ fields
    def _field(self, attr: str) -> str:
        return self._alias.get(attr, attr)

    def PV(self, attr: str, connect: bool = True, **kw: Any) -> _pv.PV:
        """The PV of field *attr* (a field name or one of the long names)."""
        attr = self._field(attr)
        thispv = self._pvs.get(attr)
        if thispv is None:
            return super().PV(attr, connect=connect, **kw)
        if connect and not thispv.connected:
            thispv.wait_for_connection()
        return thispv

    def put(self, attr: str, value: Any, wait: bool = False, use_complete: bool = False, timeout: float = 10) -> Any:
        """Write *value* to field *attr*; returns what :meth:`compat.PV.put` returns."""
        thispv = self.PV(attr)
        thispv.wait_for_connection()
        return thispv.put(value, wait=wait, use_complete=use_complete, timeout=timeout)

    def get(self, attr: str, as_string: bool = False, count: int | None = None, timeout: float | None = None) -> Any:
        """Read field *attr* (None if it is not connected)."""
        return self.PV(attr).get(as_string=as_string, count=count, timeout=timeout)

    def get_pv(self, attr: str) -> _pv.PV:
        """The PV of field *attr*."""
        return self.PV(attr)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        field = self._field(attr)
        if field in self._pvs:
            return self.get(field)
        thispv = self.PV(field, connect=True)
        if not thispv.connected:
            raise _NoSuchField(f"EpicsMotor has no attribute {attr}")
        return self.get(field)

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr.startswith("_") or attr == "name":
            self.__dict__[attr] = value
            return
        field = self._field(attr)
        if field in self._pvs:
            self.put(field, value)
        elif attr in self.__dict__:
            self.__dict__[attr] = value
        elif self._init:
            thispv = self.PV(field)
            if not thispv.connected:
                raise _NoSuchField(f"EpicsMotor has no attribute {attr}")
            self.put(field, value)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._alias) | set(dir(type(self))))

    def __repr__(self) -> str:
        return f"<epics.Motor: {self._prefix}: '{self.DESC}'>"

    def __str__(self) -> str:
        return self.__repr__()

    # ------------------------------------------------------------ limits
    def check_limits(self) -> None:
        """Raise :class:`~compat.motor.MotorLimitException` if the soft limit or a hard limit switch is active."""
        self._check_limits(self.get)

    def _check_limits_now(self) -> None:
        self._check_limits(self._read_now)

    @staticmethod
    def _check_limits(read: Callable[[str], Any]) -> None:
        for field, msg in (
            ("LVIO", "Soft limit violation"),
            ("HLS", "High hard limit violation"),
            ("LLS", "Low  hard limit violation"),
        ):
            if read(field) != 0:
                raise MotorLimitException(msg)

    def within_limits(self, val: float, dial: bool = False) -> bool:
        """Whether *val* is within the soft limits (user ones, or dial ones with *dial*).

        Raises
        ------
        MotorException
            A limit field could not be read.
        """
        low, high = ("DLLM", "DHLM") if dial else ("LLM", "HLM")
        lo, hi = self.get(low), self.get(high)
        if lo is None or hi is None:
            raise MotorException(f"cannot read the limits of {self._prefix}")
        return bool(lo <= val <= hi)

    # ------------------------------------------------------------ motion
    def move(
        self,
        val: Any = None,
        relative: bool = False,
        wait: bool = False,
        timeout: float = 300.0,
        dial: bool = False,
        step: bool = False,
        raw: bool = False,
        ignore_limits: bool = False,
        confirm_move: bool = False,
    ) -> int:
        """Move to *val*; returns pyepics' code.

        Parameters
        ----------
        val : float
            Target (user coordinates unless *dial* or *raw*).
        relative : bool
            Move by *val* from the current drive value.
        wait : bool
            Wait until the move is done (up to *timeout* seconds).
        dial, raw, step : bool
            Dial or raw (steps) coordinates (*step* is an old name of *raw*).
        ignore_limits : bool
            Do not check the soft limits first (the record still does).
        confirm_move : bool
            Without *wait*: wait up to 0.25 s for the motor to start moving.

        Returns
        -------
        int
            -13 not a number, -12 outside the soft limits, -11 not connected
            (nothing moved for these three); -8 timed out, -7 timed out but
            done; -5 unexpected put status; with *wait*: 0 done, -4 / -3 soft
            / hard limit seen; without: 0 started, 1 seen moving, 4 / 3 soft
            / hard limit seen.
        """
        step = step or raw
        try:
            target = float(val)
        except (TypeError, ValueError):
            return NONFLOAT
        drv = "DVAL" if dial else ("RVAL" if step else "VAL")
        if not self.PV(drv).connected:
            return UNCONNECTED
        if relative:
            current = self.get(drv)
            if current is None:
                return UNCONNECTED
            target += current
        if not ignore_limits and not step:
            try:
                if not self.within_limits(target, dial=dial):
                    return OUTSIDE_LIMITS
            except MotorException:
                return UNCONNECTED
        stat = self.put(drv, target, wait=wait, timeout=timeout)
        if stat is None:
            return UNCONNECTED
        now = self._read_now
        if wait and stat == -1:
            return TIMEOUT if now("DMOV") == 0 else TIMEOUT_BUTDONE
        if stat != 1:
            return UNKNOWN_ERROR
        if wait:
            if now("LVIO") == 1:
                return DONEW_SOFTLIM
            if now("HLS") == 1 or now("LLS") == 1:
                return DONEW_HARDLIM
            return DONE_OK
        if now("LVIO") == 1 or confirm_move:
            ca.poll(evt=1.0e-2)
        if confirm_move:
            start = time.monotonic()
            while now("MOVN") == 0 and time.monotonic() - start <= 0.25:
                ca.poll(evt=1.0e-3)
        if now("MOVN") == 1:
            return MOVE_BEGUN_CONFIRMED
        if now("LVIO") == 1:
            return NOWAIT_SOFTLIM
        if now("HLS") == 1 or now("LLS") == 1:
            return NOWAIT_HARDLIM
        return MOVE_BEGUN

    def _read_now(self, field: str) -> Any:
        """Read *field* from the record now (not the monitor's last value, which may lag a put's completion)."""
        return self.PV(field).get(use_monitor=False)

    def get_position(self, dial: bool = False, readback: bool = False, step: bool = False, raw: bool = False) -> Any:
        """The drive position (or with *readback* the readback), in user, dial or raw coordinates."""
        pos, rbv = ("VAL", "RBV")
        if dial:
            pos, rbv = ("DVAL", "DRBV")
        elif step or raw:
            pos, rbv = ("RVAL", "RRBV")
        return self.get(rbv if readback else pos)

    def tweak(self, direction: str = "foreward", wait: bool = False, timeout: float = 300.0) -> Any:
        """Move by the tweak step TWV: forward, or back when *direction* starts with 'rev' or 'back'.

        Returns 0 when done (or started), -1 on a limit or timeout, None when
        not connected.
        """
        field = "TWR" if direction.startswith(("rev", "back")) else "TWF"
        stat = self.put(field, 1, wait=wait, timeout=timeout)
        ret = stat
        if stat == 1:
            ret = 0
        if stat == -2:
            ret = -1
        try:
            self._check_limits_now()
        except MotorLimitException:
            ret = -1
        return ret

    def set_position(self, position: float, dial: bool = False, step: bool = False, raw: bool = False) -> None:
        """Redefine the current position as *position* (user, dial or raw): SET mode, write, Use mode."""
        self.put("SET", 1, wait=True)
        drv = "DVAL" if dial else ("RVAL" if step or raw else "VAL")
        self.put(drv, position, wait=True)
        self.put("SET", 0)

    def stop(self) -> None:
        """Stop the motor now (writes STOP)."""
        self.put("STOP", 1)

    def StopNow(self) -> None:
        """Same as :meth:`stop`."""
        self.stop()

    def refresh(self) -> None:
        """Kept for pyepics scripts: fields are always up to date (monitors)."""
        ca.poll()

    # ------------------------------------------------------------ callbacks
    def set_callback(self, attr: str = "VAL", callback: Callable[..., Any] | None = None, kws: Any = None) -> None:
        """Call *callback* on changes of field *attr*, with ``motor_field=attr`` and *kws* added."""
        self.get(attr)
        kw_args: dict[str, Any] = {"motor_field": attr}
        if kws is not None:
            kw_args.update(kws)
        index = self.PV(attr).add_callback(callback=callback, **kw_args)
        self._callbacks[attr] = index

    def clear_callback(self, attr: str = "drive") -> None:
        """Remove the callback :meth:`set_callback` set for *attr*."""
        index = self._callbacks.pop(attr, None)
        if index is not None:
            self.PV(attr).remove_callback(index=index)

    # ------------------------------------------------------------ reports
    def make_step_list(self, minstep: float = 0.0, maxstep: float | None = None, decades: int = 10) -> list[float]:
        """Step sizes 1, 2, 5 x powers of ten for a menu, from the precision up to *maxstep*."""
        if maxstep is None:
            maxstep = 0.6 * abs(self.HLM - self.LLM)
        prec = self.PREC
        out = []
        for i in range(decades):
            for j in (1, 2, 5):
                size = j * 10 ** (i - prec)
                if 0.98 * minstep < size <= maxstep:
                    out.append(size)
        return out

    def get_info(self) -> dict[str, Any]:
        """The main fields as text: DESC, VAL, RBV, PREC, VELO, STAT, SET, TWV, LLM, HLM, SPMG."""
        fields = ("DESC", "VAL", "RBV", "PREC", "VELO", "STAT", "SET", "TWV", "LLM", "HLM", "SPMG")
        return {attr: self.get(attr, as_string=True) for attr in fields}

    def show_info(self) -> None:
        """Print :meth:`get_info`."""
        out = [repr(self), "-" * 38]
        for name, value in self.get_info().items():
            out.append(f"{name:<16s} = {value}")
        out.append("-" * 38)
        ca.write("\n".join(out))

    def show_all(self) -> None:
        """Print every field of :data:`_alias` with its long name, value and PV name."""
        out = [
            f"# Motor {self._prefix}",
            "#  field               value                 PV name",
            "#" + "-" * 60,
        ]
        for attr in sorted(self._alias):
            field = self._alias[attr]
            value = self.get(field, as_string=True)
            if value is None:
                value = "Not Connected??"
            out.append(f" {attr:<18s}  {value:<18s}  {self.PV(field).pvname}")
        ca.write("\n".join(out))
