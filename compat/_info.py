"""The text of ``PV.info`` (what :func:`compat.cainfo` prints), in pyepics' layout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._convert import is_ndarray

if TYPE_CHECKING:
    from .pv import PV

_REPORTED = (
    "char_value",
    "count",
    "nelm",
    "type",
    "units",
    "precision",
    "host",
    "access",
    "monitor_delta",
    "status",
    "char_status",
    "severity",
    "char_severity",
    "timestamp",
    "posixseconds",
    "nanoseconds",
    "upper_ctrl_limit",
    "lower_ctrl_limit",
    "upper_disp_limit",
    "lower_disp_limit",
    "upper_alarm_limit",
    "lower_alarm_limit",
    "upper_warning_limit",
    "lower_warning_limit",
)


def _value_text(value: Any, count: int, spec: str) -> str:
    if count == 1:
        if is_ndarray(value) and value.size == 1:
            value = value[0]
        return format(value, spec)
    more = ",...." if count > 10 else ""
    shown: Any = ("unknown",)
    try:
        shown = [format(value[i], spec) for i in range(min(5, count))]
    except ValueError:
        shown = [repr(value[i]) for i in range(min(5, count))]
    except TypeError:
        pass
    return f" array  [{','.join(shown)}{more}]"


def info_text(pv: PV) -> str | None:
    """The multi-line report of *pv*, or None when it cannot connect."""
    from .pv import fmt_time  # (pv imports this module)

    if not pv.wait_for_connection():
        return None
    pv.get_ctrlvars()
    pv._refresh()
    family = "native"
    xtype = pv._args["typefull"]
    if "_" in xtype:
        family, xtype = xtype.split("_")
    spec = "d"
    if xtype in ("float", "double"):
        spec = "g"
    elif xtype in ("string", "char"):
        spec = "s"
    pv._set_charval(pv._args["value"], call_ca=False)
    lines = [f"== {pv.pvname}  ({family}_{xtype}) =="]
    fields = {"value": _value_text(pv._args["value"], pv.count, spec)}
    for name in _REPORTED:
        att = getattr(pv, name)
        if att is None:
            continue
        if name == "timestamp":
            att = f"{att:.3f} ({fmt_time(att)})"
        elif name == "char_value":
            att = f"'{att}'"
        fields[name] = str(att)
    for key, text in fields.items():
        width = 20 if len(key) > 14 else 15
        lines.append(f"   {key:{width}s} = {text}")
    if xtype == "enum":
        lines.append("   enum strings: ")
        for index, state in enumerate(pv.enum_strs or ()):
            lines.append(f"       {index} = {state}")
    if pv._monref is not None:
        lines.append(f"   PV is internally monitored, with {len(pv.callbacks)} user-defined callbacks")
        for index in sorted(pv.callbacks):
            func = pv.callbacks[index][0]
            name = getattr(func, "func_name", None) or getattr(func, "__name__", None) or repr(func)
            code = getattr(func, "func_code", None) or getattr(func, "__code__", None)
            lines.append(f"      {name} in file '{getattr(code, 'co_filename', '?')}'")
    else:
        lines.append("   PV is NOT internally monitored")
    lines.append("=============================")
    return "\n".join(lines)
