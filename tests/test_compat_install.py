"""compat.install() and ``python -m compat``: pyepics programs run on compat unchanged.

Each program runs in a child process (with the compat IOC's environment) so
that the import hook, and real pyepics where a test imports it, stay out of
the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from compat_support import cioc_fixture, epics_fixture  # noqa: F401

from caclient.testing import IOCHandle

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = """
import json, os, sys
import epics
import epics.ca, epics.dbr, epics.pv, epics.utils, epics.device, epics.devices, epics.multiproc
from epics.pv import get_pv
from epics import caget, PV
out = {
    "name": __name__,
    "argv": sys.argv,
    "path0": sys.path[0],
    "epics": epics.__name__,
    "subs": {m.__name__: m is sys.modules["compat." + m.__name__.split(".")[-1]]
             for m in (epics.ca, epics.dbr, epics.pv, epics.utils, epics.device, epics.devices, epics.multiproc)},
    "same_pv_module": sys.modules["epics.pv"] is sys.modules["compat.pv"],
    "value": caget(sys.argv[1] + "ao", timeout=5),
    "pv_class": PV.__module__,
}
for name in ("motor", "alarm"):
    try:
        mod = __import__("epics." + name, fromlist=["x"])
        out[name] = mod.__name__
    except ImportError as exc:
        out[name] = "ImportError: " + str(exc)
with open(f"/proc/{os.getpid()}/maps") as fh:
    out["libca"] = any("libca." in line for line in fh)
print("RESULT " + json.dumps(out))
"""


def run(args: list[str], ioc: IOCHandle | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with the IOC's environment and this checkout on the path."""
    env = dict(os.environ) if ioc is None else ioc.env
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def result(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON a program printed after ``RESULT``."""
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return out
    raise AssertionError(f"no result in {proc.stdout!r} / {proc.stderr!r}")


def check_mapped(out: dict[str, Any], ioc: IOCHandle) -> None:
    assert out["name"] == "__main__"
    assert out["epics"] == "compat"
    assert out["subs"] == {
        "compat.ca": True,
        "compat.dbr": True,
        "compat.pv": True,
        "compat.utils": True,
        "compat.device": True,
        "compat.devices": True,
        "compat.multiproc": True,
    }
    assert out["same_pv_module"] is True
    assert out["pv_class"] == "compat.pv"
    assert out["value"] == 0.0 or isinstance(out["value"], float)
    for name in ("motor", "alarm"):
        # compat.motor/compat.alarm are mapped; until they exist the import fails clearly
        assert out[name] == f"compat.{name}" or (
            out[name].startswith("ImportError:") and f"'compat.{name}'" in out[name]
        ), out[name]
    assert out["libca"] is False


def test_runner_runs_a_program_unchanged(cioc: IOCHandle, tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    out = result(run(["-m", "compat", str(prog), cioc.prefix, "--flag"], cioc, cwd=str(ROOT)))
    check_mapped(out, cioc)
    assert out["argv"] == [str(prog), cioc.prefix, "--flag"]
    assert out["path0"] == str(tmp_path)


def test_runner_module_form(cioc: IOCHandle, tmp_path: Path) -> None:
    (tmp_path / "progmod.py").write_text(PROGRAM)
    out = result(run(["-m", "compat", "-m", "progmod", cioc.prefix], cioc, cwd=str(tmp_path)))
    check_mapped(out, cioc)
    assert out["argv"] == [str(tmp_path / "progmod.py"), cioc.prefix]


def test_runner_exit_status_and_errors(tmp_path: Path) -> None:
    prog = tmp_path / "exits.py"
    prog.write_text("import sys, epics\nsys.exit(3)\n")
    assert run(["-m", "compat", str(prog)]).returncode == 3
    prog.write_text("import epics\nraise ValueError('boom')\n")
    proc = run(["-m", "compat", str(prog)])
    assert proc.returncode == 1
    assert "ValueError: boom" in proc.stderr
    missing = run(["-m", "compat", str(tmp_path / "nothere.py")])
    assert missing.returncode == 2
    assert "nothere.py" in missing.stderr
    usage = run(["-m", "compat"])
    assert usage.returncode == 2
    assert "usage: python -m compat" in usage.stderr


def script(code: str) -> subprocess.CompletedProcess[str]:
    return run(["-c", textwrap.dedent(code)])


def test_install_twice_is_a_no_op_and_uninstall_undoes_it() -> None:
    proc = script(
        """
        import sys, compat
        compat.install()
        compat.install()
        hooks = [f for f in sys.meta_path if type(f).__name__ == "AliasFinder"]
        import epics, epics.pv
        assert epics is compat and epics.pv is compat.pv, epics
        compat.uninstall()
        assert "epics" not in sys.modules and "epics.pv" not in sys.modules
        assert not compat._install.installed()
        import epics
        print("RESULT", len(hooks), epics.__name__, epics.__file__.endswith("epics/__init__.py"))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT 1 epics True" in proc.stdout


def test_real_pyepics_untouched_unless_asked() -> None:
    proc = script(
        """
        import compat, compat.pv
        import epics
        print("RESULT", epics.__name__, epics.pv.PV is compat.pv.PV)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT epics False" in proc.stdout


def test_install_after_real_pyepics_is_a_clear_error() -> None:
    proc = script(
        """
        import epics, compat
        try:
            compat.install()
        except RuntimeError as exc:
            print("RESULT", exc)
        import epics as again
        print("STILL", again.__name__, compat._install.installed())
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT compat.install(): pyepics is already imported in this process (epics" in proc.stdout
    assert "STILL epics False" in proc.stdout


@pytest.mark.parametrize("how", ["get_pv", "caget", "caput", "Device"])
def test_default_pv_class_is_honoured(epics: Any, cioc: IOCHandle, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    class Mine(epics.PV):  # type: ignore[name-defined, misc]
        made: list[str] = []  # noqa: RUF012

        def __init__(self, pvname: str, **kw: Any) -> None:
            super().__init__(pvname, **kw)
            Mine.made.append(self.pvname)

    monkeypatch.setattr(epics.pv, "default_pv_class", Mine)
    name = cioc.pv("ao")
    if how == "get_pv":
        assert isinstance(epics.get_pv(name, connect=True), Mine)
    elif how == "caget":
        assert epics.caget(name) is not None
    elif how == "caput":
        assert epics.caput(name, 1.0, wait=True) == 1
    else:
        dev = epics.Device(cioc.prefix, attrs=("ao",))
        assert isinstance(dev.PV("ao"), Mine)
    assert Mine.made == [name]
    assert isinstance(epics.get_pv(name), Mine)
