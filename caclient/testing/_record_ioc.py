"""caproto server of record-like PVs for device tests (run in a child process by :class:`CaprotoIOC`).

Usage::

    python -m caclient.testing._record_ioc --prefix T1234: --interfaces 127.0.0.1 \\
        [--fields FILE.json] [--motor m1 ...] [--fake-motor]

* ``--fields FILE.json``: a JSON object ``{"NAME": initial value}``; each
  name becomes the PV ``prefix + NAME`` with a type taken from its value
  (float -> DOUBLE, int -> LONG, str -> STRING, list of numbers -> DOUBLE
  array, ``{"enum": [strings], "value": i}`` -> ENUM,
  ``{"char": n, "value": text}`` -> CHAR array of *n*).  This stands in for
  record types no test server has (scaler, mca, sscan, transform, the
  areaDetector plugins): the device classes only need their fields as PVs.
* ``--motor NAME``: a simulated motor record ``prefix + NAME`` (see
  :class:`SimMotor`), with user/dial/raw coordinates, soft and hard limits,
  SET mode, tweaks, STOP and put completion on the drive fields.
* ``--fake-motor``: caproto's own ``fake_motor_record`` example IOC
  (motors ``mtr1`` .. ``mtr3``).

Threads: everything runs on the server's asyncio loop (put hooks and the
motion tasks).  Imported only in the child process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

# caproto's server waits this long for more monitor updates to batch before sending them; with 0 it
# sends what it has at once, so that _Ordered's rounds suffice.  (Read when caproto.server is imported.)
os.environ.setdefault("CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC", "0")

from caproto import (
    ChannelChar,
    ChannelData,
    ChannelDouble,
    ChannelEnum,
    ChannelInteger,
    ChannelString,
    SkipWrite,
)

from caclient.testing._caproto_ioc import serve
from caclient.testing._protocol import hard_exit

__all__ = ["HARD_HIGH", "HARD_LOW", "SimMotor", "build_fields", "channel_for", "main"]

#: Dial positions of the simulated motor's hard limit switches.
HARD_HIGH = 200.0
HARD_LOW = -200.0
_TICK = 0.02
# Event-loop rounds a client's write waits so that its monitor updates go out first (see _Ordered).
_FLUSH_ROUNDS = 50

Hook = Callable[[Any], Awaitable[Any]]


def _scalar(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


class _Ordered:
    """Mix-in: a client's write completes only after the monitor updates it caused have been sent.

    An IOC posts monitors while it processes a record, before it reports a
    put complete; caproto's server queues them to other tasks, so the
    completion can overtake them, and a client reading its monitors right
    after a put then sees the old values.  Letting the event loop run a
    number of rounds here (no clock involved) lets those tasks send first.
    """

    async def write_from_dbr(self, *args: Any, **kwargs: Any) -> Any:
        result = await super().write_from_dbr(*args, **kwargs)  # type: ignore[misc]
        for _ in range(_FLUSH_ROUNDS):
            await asyncio.sleep(0)
        return result


class _Hooked(_Ordered):
    """Mix-in: a channel whose writes go through an async *hook* (value -> value or SkipWrite)."""

    hook: Hook | None = None

    async def verify_value(self, data: Any) -> Any:
        data = await super().verify_value(data)  # type: ignore[misc]
        if self.hook is not None:
            return await self.hook(_scalar(data))
        return data


class HDouble(_Hooked, ChannelDouble):  # type: ignore[misc]
    """A DOUBLE channel with a write hook."""


class HInteger(_Hooked, ChannelInteger):  # type: ignore[misc]
    """A LONG channel with a write hook."""


class HEnum(_Hooked, ChannelEnum):  # type: ignore[misc]
    """An ENUM channel with a write hook."""


class ODouble(_Ordered, ChannelDouble):  # type: ignore[misc]
    """A DOUBLE channel whose writes complete after their monitor updates."""


class OInteger(_Ordered, ChannelInteger):  # type: ignore[misc]
    """A LONG channel whose writes complete after their monitor updates."""


class OEnum(_Ordered, ChannelEnum):  # type: ignore[misc]
    """An ENUM channel whose writes complete after their monitor updates."""


class OString(_Ordered, ChannelString):  # type: ignore[misc]
    """A STRING channel whose writes complete after their monitor updates."""


class OChar(_Ordered, ChannelChar):  # type: ignore[misc]
    """A CHAR array channel whose writes complete after their monitor updates."""


def channel_for(value: Any) -> ChannelData:
    """A channel holding *value*, its type chosen from the value (see the module docstring)."""
    if isinstance(value, dict) and "enum" in value:
        strs = list(value["enum"])
        return OEnum(value=strs[int(value.get("value", 0))], enum_strings=strs)
    if isinstance(value, dict) and "char" in value:
        return OChar(value=str(value.get("value", "")), max_length=int(value["char"]))
    if isinstance(value, bool) or isinstance(value, int):
        return OInteger(value=int(value))
    if isinstance(value, float):
        return ODouble(value=value, precision=4)
    if isinstance(value, str):
        return OString(value=value)
    if isinstance(value, list):
        return ODouble(value=[float(v) for v in value], max_length=max(1, len(value)))
    raise ValueError(f"no channel type for {value!r}")


def build_fields(prefix: str, fields: Mapping[str, Any]) -> dict[str, ChannelData]:
    """The PVs ``prefix + name`` for a ``{name: initial value}`` mapping."""
    return {prefix + name: channel_for(value) for name, value in fields.items()}


class SimMotor:
    """A motor record simulation: the fields the pyepics ``Motor`` class uses.

    Coordinates: ``user = dial + OFF`` and ``raw = round(dial / MRES)``.
    A write to VAL, DVAL or RVAL moves at VELO units/s (put completion when
    the motion ends); outside the dial soft limits it sets LVIO and does not
    move.  Hard limit switches sit at dial :data:`HARD_HIGH` and
    :data:`HARD_LOW` (HLS/LLS).  With SET=1 those writes redefine the
    position instead (VAL changes OFF; DVAL and RVAL the dial position).
    TWF/TWR move by TWV; STOP=1 stops where the motor is.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.dial = 0.0
        self.target = 0.0
        self.task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        f: dict[str, Any] = {
            "VAL": HDouble(value=0.0, precision=3),
            "DVAL": HDouble(value=0.0, precision=3),
            "RVAL": HInteger(value=0),
            "RBV": ODouble(value=0.0, precision=3),
            "DRBV": ODouble(value=0.0, precision=3),
            "RRBV": OInteger(value=0),
            "OFF": HDouble(value=0.0, precision=3),
            "MRES": ODouble(value=0.001, precision=4),
            "HLM": HDouble(value=100.0, precision=3),
            "LLM": HDouble(value=-100.0, precision=3),
            "DHLM": HDouble(value=100.0, precision=3),
            "DLLM": HDouble(value=-100.0, precision=3),
            "DMOV": OInteger(value=1),
            "MOVN": OInteger(value=0),
            "LVIO": OInteger(value=0),
            "HLS": OInteger(value=0),
            "LLS": OInteger(value=0),
            "STOP": HInteger(value=0),
            "SET": HEnum(value="Use", enum_strings=["Use", "Set"]),
            "SPMG": HEnum(value="Go", enum_strings=["Stop", "Pause", "Move", "Go"]),
            "FOFF": OEnum(value="Variable", enum_strings=["Variable", "Frozen"]),
            "TWV": ODouble(value=1.0, precision=3),
            "TWF": HInteger(value=0),
            "TWR": HInteger(value=0),
            "VELO": ODouble(value=50.0, precision=3),
            "ACCL": ODouble(value=0.1, precision=3),
            "VBAS": ODouble(value=0.0, precision=3),
            "BDST": ODouble(value=0.0, precision=3),
            "PREC": OInteger(value=3),
            "EGU": OString(value="mm"),
            "DESC": OString(value=f"sim motor {name}"),
            "RTYP": OString(value="motor"),
            "DTYP": OString(value="Soft Channel"),
            "STAT": OEnum(value="NO_ALARM", enum_strings=["NO_ALARM", "READ", "WRITE", "HIHI"]),
        }
        self.f = f
        hooks: dict[str, Hook] = {
            "VAL": self._put_user,
            "DVAL": self._put_dial,
            "RVAL": self._put_raw,
            "STOP": self._put_stop,
            "SPMG": self._put_spmg,
            "SET": self._put_set,
            "TWF": self._put_twf,
            "TWR": self._put_twr,
            "OFF": self._put_off,
            "HLM": self._limit_hook("DHLM", user=True),
            "LLM": self._limit_hook("DLLM", user=True),
            "DHLM": self._limit_hook("HLM", user=False),
            "DLLM": self._limit_hook("LLM", user=False),
        }
        for key, hook in hooks.items():
            f[key].hook = hook

    def pvdb(self, prefix: str) -> dict[str, ChannelData]:
        """This motor's PVs (``NAME.FIELD``, ``NAME`` for VAL and ``NAME_able.VAL``)."""
        db: dict[str, ChannelData] = {f"{prefix}{self.name}.{k}": v for k, v in self.f.items()}
        db[f"{prefix}{self.name}"] = self.f["VAL"]
        able = OInteger(value=0)
        db[f"{prefix}{self.name}_able.VAL"] = able
        db[f"{prefix}{self.name}_able"] = able
        return db

    # ------------------------------------------------------------ helpers
    def _v(self, key: str) -> Any:
        return self.f[key].value

    @property
    def off(self) -> float:
        return float(self._v("OFF"))

    @property
    def mres(self) -> float:
        return float(self._v("MRES")) or 1.0

    async def _set(self, key: str, value: Any) -> None:
        if self.f[key].value != value:
            await self.f[key].write(value, verify_value=False)

    async def _show_position(self) -> None:
        await self._set("DRBV", self.dial)
        await self._set("RBV", self.dial + self.off)
        await self._set("RRBV", round(self.dial / self.mres))

    async def _show_target(self, dial: float) -> None:
        await self._set("DVAL", dial)
        await self._set("VAL", dial + self.off)
        await self._set("RVAL", round(dial / self.mres))

    def _limit_hook(self, other: str, user: bool) -> Hook:
        async def hook(value: Any) -> Any:
            value = float(value)
            await self._set(other, value - self.off if user else value + self.off)
            return value

        return hook

    # ------------------------------------------------------------ puts
    async def _put_user(self, value: Any) -> Any:
        value = float(value)
        if self._v("SET") == "Set":
            await self._set("OFF", value - self.dial)
            await self._after_offset()
            raise SkipWrite()
        await self._move(value - self.off)
        raise SkipWrite()

    async def _put_dial(self, value: Any) -> Any:
        await self._dial_or_set(float(value))
        raise SkipWrite()

    async def _put_raw(self, value: Any) -> Any:
        await self._dial_or_set(int(value) * self.mres)
        raise SkipWrite()

    async def _dial_or_set(self, dial: float) -> None:
        if self._v("SET") == "Set":
            self.dial = self.target = dial
            await self._show_target(dial)
            await self._show_position()
            return
        await self._move(dial)

    async def _put_off(self, value: Any) -> Any:
        await self._set("OFF", float(value))
        await self._after_offset()
        raise SkipWrite()

    async def _after_offset(self) -> None:
        await self._set("HLM", float(self._v("DHLM")) + self.off)
        await self._set("LLM", float(self._v("DLLM")) + self.off)
        await self._show_target(self.target)
        await self._show_position()

    async def _put_set(self, value: Any) -> Any:
        return value

    async def _put_stop(self, value: Any) -> Any:
        if int(value):
            await self._halt()
        return 0

    async def _put_spmg(self, value: Any) -> Any:
        if value in ("Stop", 0):
            await self._halt()
        return value

    async def _put_twf(self, value: Any) -> Any:
        if int(value):
            await self._move(self.target + float(self._v("TWV")))
        return 0

    async def _put_twr(self, value: Any) -> Any:
        if int(value):
            await self._move(self.target - float(self._v("TWV")))
        return 0

    async def _halt(self) -> None:
        self.target = self.dial
        await self._show_target(self.dial)

    # ------------------------------------------------------------ motion
    async def _move(self, dial: float) -> None:
        """Start a move to *dial* and wait until the motor stops (put completion)."""
        if not float(self._v("DLLM")) <= dial <= float(self._v("DHLM")):
            await self._set("LVIO", 1)
            await self._show_target(self.target)
            return
        await self._set("LVIO", 0)
        self.target = dial
        await self._show_target(dial)
        if self.task is None or self.task.done():
            self.idle.clear()
            await self._set("DMOV", 0)
            await self._set("MOVN", 1)
            self.task = asyncio.get_running_loop().create_task(self._run())
        await self.idle.wait()

    async def _run(self) -> None:
        try:
            while True:
                diff = self.target - self.dial
                if abs(diff) < 1e-9:
                    if diff:
                        self.dial = self.target
                        await self._show_position()
                    break
                if (diff > 0 and self.dial >= HARD_HIGH) or (diff < 0 and self.dial <= HARD_LOW):
                    await self._halt()
                    break
                step = max(float(self._v("VELO")), 1e-6) * _TICK
                self.dial = self.target if abs(diff) <= step else self.dial + (step if diff > 0 else -step)
                self.dial = min(max(self.dial, HARD_LOW), HARD_HIGH)
                await self._set("HLS", int(self.dial >= HARD_HIGH))
                await self._set("LLS", int(self.dial <= HARD_LOW))
                await self._show_position()
                await asyncio.sleep(_TICK)
        finally:
            await self._set("MOVN", 0)
            await self._set("DMOV", 1)
            self.idle.set()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve the PVs."""
    parser = argparse.ArgumentParser(prog="python -m caclient.testing._record_ioc")
    parser.add_argument("--prefix", default="rec:")
    parser.add_argument("--interfaces", nargs="+", default=["127.0.0.1"])
    parser.add_argument("--fields", metavar="FILE.json")
    parser.add_argument("--motor", action="append", default=[], metavar="NAME")
    parser.add_argument("--fake-motor", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        pvdb: dict[str, Any] = {}
        if args.fields:
            with open(args.fields, encoding="utf-8") as fh:
                pvdb.update(build_fields(args.prefix, json.load(fh)))
        if args.fake_motor:
            from caproto.ioc_examples.fake_motor_record import FakeMotorIOC

            pvdb.update(FakeMotorIOC(prefix=args.prefix).pvdb)
        for name in args.motor:
            pvdb.update(SimMotor(name).pvdb(args.prefix))
        serve(pvdb, args.interfaces)
    except BaseException:
        logging.getLogger(__name__).exception("record test IOC failed")
        hard_exit(1)
    hard_exit(0)


if __name__ == "__main__":
    main()
