"""Fields served by the record IOC for the device tests (name -> initial value, see ``_record_ioc``).

:data:`DEVICES` groups them per device so a test can put one device back
to its first state (:func:`initial_writes`); :data:`FIELDS` is all of them.
"""

from __future__ import annotations

from typing import Any


def _char(text: str, size: int = 256) -> dict[str, Any]:
    return {"char": size, "value": text}


def _enum(strings: list[str], value: int = 0) -> dict[str, Any]:
    return {"enum": strings, "value": value}


def _scaler(name: str, nchan: int) -> dict[str, Any]:
    out: dict[str, Any] = {f"{name}.CNT": 0, f"{name}.CONT": 0, f"{name}.TP": 1.0, f"{name}.T": 0.0, f"{name}.VAL": 0}
    out[f"{name}_calcEnable.VAL"] = 0
    for i in range(1, nchan + 1):
        out[f"{name}.NM{i}"] = f"chan{i}"
        out[f"{name}.S{i}"] = float(10 * i)
        out[f"{name}_calc{i}.VAL"] = float(i)
        out[f"{name}_calc{i}.CALC"] = "A"
    return out


_MCA_SCALARS = {"CALO": 0.5, "CALS": 0.01, "CALQ": 0.0, "TTH": 0.0, "EGU": "keV", "PRTM": 1.0, "PLTM": 0.0,
                "ACQG": 0, "NUSE": 64, "DWEL": 0.1, "ERTM": 0.0, "ELTM": 0.0, "IDTIM": 0.0}  # fmt: skip
SPECTRUM = [float((i * 7) % 23) for i in range(64)]


def _mca(name: str, nrois: int = 32) -> dict[str, Any]:
    out: dict[str, Any] = {f"{name}.{k}": v for k, v in _MCA_SCALARS.items()}
    out[f"{name}.VAL"] = list(SPECTRUM)
    out[name] = list(SPECTRUM)
    out[f"{name}.NORD"] = 64
    for i in range(nrois):
        named = i < 2
        out[f"{name}.R{i}NM"] = f"roi{i}" if named else ""
        out[f"{name}.R{i}LO"] = 10 * i + 5 if named else -1
        out[f"{name}.R{i}HI"] = 10 * i + 10 if named else -1
        out[f"{name}.R{i}"] = 0.0
        out[f"{name}.R{i}N"] = 0.0
    return out


def _transform(name: str) -> dict[str, Any]:
    out: dict[str, Any] = {f"{name}.COPT": 0, f"{name}.PREC": 3, f"{name}.RTYP": "transform"}
    for row in "ABCDEFGHIJKLMNOP":
        out[f"{name}.{row}"] = 0.0
        out[f"{name}.INP{row}"] = ""
        out[f"{name}.I{row}V"] = 0
        out[f"{name}.CLC{row}"] = ""
        out[f"{name}.OUT{row}"] = ""
        out[f"{name}.O{row}V"] = 0
        out[f"{name}.CMT{row}"] = ""
        out[f"{name}.C{row}V"] = 0
        out[f"{name}.L{row}"] = 0.0
    return out


_SENS = ["1", "2", "5", "10", "20", "50", "100", "200", "500"]
_UNITS = ["pA/V", "nA/V", "uA/V", "mA/V"]


def _srs570(prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}sens_num": _enum(_SENS, 3),
        f"{prefix}sens_unit": _enum(_UNITS, 1),
        f"{prefix}offset_num": _enum(_SENS, 0),
        f"{prefix}offset_unit": _enum(_UNITS, 0),
        f"{prefix}offset_sign": _enum(["+", "-"]),
        f"{prefix}offset_on": _enum(["OFF", "ON"]),
        f"{prefix}off_u_put": 0.0,
        f"{prefix}bias_put": 1.5,
        f"{prefix}gain_mode": _enum(["LOW NOISE", "HIGH BW", "LOW DRIFT"], 1),
        f"{prefix}filter_type": _enum(["No filter", "6 dB highpass", "12 dB highpass"], 2),
        f"{prefix}invert_on": _enum(["OFF", "ON"], 1),
        f"{prefix}init.PROC": 0,
    }


def _scan(name: str) -> dict[str, Any]:
    out: dict[str, Any] = {f"{name}.RTYP": "sscan", f"{name}.VAL": 0, f"{name}.SMSG": "old message",
                           f"{name}.CMND": 0, f"{name}.NPTS": 10, f"{name}.EXSC": 0, f"{name}.NAME": name,
                           f"{name}.PDLY": 0.0, f"{name}.PAUS": 0, f"{name}.CPT": 0, f"{name}.DDLY": 0.0,
                           f"{name}.PASM": 0}  # fmt: skip
    for i in range(1, 5):
        out.update({f"{name}.P{i}PV": "", f"{name}.P{i}SP": 0.0, f"{name}.P{i}EP": 0.0, f"{name}.P{i}SI": 0.0,
                    f"{name}.P{i}CP": 0.0, f"{name}.P{i}WD": 0.0, f"{name}.P{i}PA": [0.0] * 8,
                    f"{name}.P{i}AR": 0, f"{name}.P{i}SM": 0, f"{name}.R{i}PV": ""})  # fmt: skip
        out.update({f"{name}.T{i}PV": "", f"{name}.T{i}NV": 0, f"{name}.T{i}CD": 1.0})
    for i in range(1, 71):
        out[f"{name}.D{i:02d}PV"] = ""
    return out


_PATHS = ("FilePath", "FileName", "FileTemplate")


def _file_plugin(prefix: str, attrs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in attrs:
        base = attr.removesuffix("_RBV")
        if base in _PATHS or base == "FullFileName":
            text = {"FilePath": "/data/", "FileName": "scan", "FileTemplate": "%s%s_%4.4d.tif"}.get(base, "/data/x")
            out[prefix + attr] = _char(text)
        elif base in ("WriteMessage", "NDArrayPort"):
            out[prefix + attr] = _char("none")
        else:
            out[prefix + attr] = 0
    out[prefix + "FileNumber"] = 7
    out[prefix + "FileNumber_RBV"] = 7
    return out


def _ints(prefix: str, attrs: tuple[str, ...], floats: tuple[str, ...] = ()) -> dict[str, Any]:
    return {prefix + a: (0.5 if a.removesuffix("_RBV") in floats else 0) for a in attrs}


def _devices() -> dict[str, dict[str, Any]]:
    from compat.devices import AD_Camera, AD_FilePlugin, AD_ImagePlugin, AD_OverlayPlugin, AD_PerkinElmer, Struck
    from compat.devices.mca import DXP, MultiXMAP

    cam = _ints("cam1:", AD_Camera.attrs, floats=("AcquirePeriod", "AcquireTime", "Gain", "TimeRemaining"))
    cam["cam1:ImageMode"] = _enum(["Single", "Multiple", "Continuous"])
    cam["cam1:ImageMode_RBV"] = _enum(["Single", "Multiple", "Continuous"])
    image = _ints("image1:", AD_ImagePlugin.attrs)
    image["image1:ArrayData"] = [float(i) for i in range(16)]
    overlay = _ints("Over1:1:", AD_OverlayPlugin.attrs)
    overlay["Over1:1:Name"] = "box"
    overlay["Over1:1:Name_RBV"] = "box"
    pe = _ints("PE1:cam1:", AD_PerkinElmer.camattrs, floats=("AcquireTime",))
    pe.update(_file_plugin("PE1:netCDF1:", AD_PerkinElmer.pathattrs))
    struck = {f"SIS1:{a}": 0 for a in Struck.attrs}
    struck["SIS1:Dwell"] = 0.5
    struck["SIS1:PresetReal"] = 0.0
    struck["SIS1:InitialChannelAdvance"] = 0
    for i in (1, 2):
        struck.update(_mca(f"SIS1:mca{i}", nrois=2))
    xmap: dict[str, Any] = {f"xmap:{a}": 0 for a in MultiXMAP.attrs}
    xmap.update(_file_plugin("xmap:netCDF1:", (*MultiXMAP.pathattrs, "FilePath_RBV", "FileNumber_RBV")))
    for i in (1, 2):
        xmap.update(_mca(f"xmap:mca{i}"))
        xmap.update({f"xmap:dxp{i}:{a}": float(i) for a in DXP._attrs})
        xmap[f"xmap:dxp{i}:CurrentPixel"] = 0
    return {
        "scaler": _scaler("scaler1", 8),
        "mca": _mca("mca1"),
        "struck": struck,
        "transform": _transform("tran1"),
        "srs570": _srs570("A1"),
        "scan": _scan("scan1"),
        "cam": cam,
        "image": image,
        "overlay": overlay,
        "file": _file_plugin("TIFF1:", AD_FilePlugin.attrs),
        "pe": pe,
        "xmap": xmap,
        "other": {"notmotor.RTYP": "ai", "notmotor.VAL": 1.0, "notscan.RTYP": "ai"},
    }


DEVICES: dict[str, dict[str, Any]] = _devices()
FIELDS: dict[str, Any] = {name: value for fields in DEVICES.values() for name, value in fields.items()}


def initial_writes(device: str) -> dict[str, Any]:
    """``{name: value to write}`` that puts a device's PVs back to their first values."""
    out = {}
    for name, value in DEVICES[device].items():
        if name.endswith(".RTYP"):
            continue
        if isinstance(value, dict):
            value = value["value"]
        out[name] = value
    return out
