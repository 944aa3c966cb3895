"""Pure parts of the command-line tools: getopt, C number parsing, value formatting."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from caclient.cli import _format as F
from caclient.cli._cparse import scan_double, sscanf_int, sscanf_uint, strtod
from caclient.cli._getopt import Option, getopt

ROOT = Path(__file__).resolve().parent.parent


def test_getopt_permutes_combines_and_attaches() -> None:
    opts, operands = getopt(["pv1", "-tn", "-w5", "pv2", "-#", "3", "-lx", "--", "-a"], ":tnw:#:l:")
    assert opts == [Option("t", None, "t"), Option("n", None, "n"), Option("w", "5", "w"), Option("#", "3", "#"),
                    Option("l", "x", "l")]  # fmt: skip
    assert operands == ["pv1", "pv2", "-a"]


def test_getopt_argument_may_start_with_a_dash() -> None:
    assert getopt(["-w", "-1", "pv"], ":w:") == ([Option("w", "-1", "w")], ["pv"])


def test_getopt_posixly_correct_stops_at_the_first_operand() -> None:
    assert getopt(["-t", "pv", "1", "-t"], ":t", posixly_correct=True) == ([Option("t", None, "t")], ["pv", "1", "-t"])


def test_getopt_reports_unknown_and_missing() -> None:
    assert getopt(["-x"], ":t")[0] == [Option("?", None, "x")]
    assert getopt(["-t", "-w"], ":tw:")[0] == [Option("t", None, "t"), Option(":", None, "w")]


def test_c_number_parsing() -> None:
    assert scan_double("0x1p-1") == 0.5
    assert scan_double(" 2.5 ") == 2.5
    assert scan_double("0.5s") is None
    assert scan_double("1e999") is None
    assert strtod("12abc")[:2] == (12.0, 2)
    assert strtod("abc")[1] == 0
    assert math.isinf(strtod("-inf")[0])
    assert sscanf_int("5x") == 5 and sscanf_int("x") is None
    assert sscanf_uint("-3") == 2**32 - 3
    assert sscanf_uint("-1", 64) == 2**64 - 1


def test_integer_styles() -> None:
    assert F.sprint_long(42, F.HEX) == "0x2A"
    assert F.sprint_long(-1, F.HEX) == "0xFFFFFFFF"
    assert F.sprint_long(8, F.OCT) == "0o10"
    assert F.sprint_long(5, F.BIN) == "101"
    assert F.sprint_long(0, F.BIN) == "0"
    assert F.sprint_long(-1, F.BIN) == "1" * 32


def test_float_formats_and_nan() -> None:
    assert F.c_float("%g", 3.5) == "3.5"
    assert F.c_float("%-.3e", 3.5) == "3.500e+00"
    assert F.c_float("%g", float("nan")) == "nan"
    assert F.c_float("%g", -float("nan")) == "-nan"


def test_escape_round_trip() -> None:
    raw = 'a\tb\n"q"\\\x01\x7f\xff'
    escaped = F.escape(raw)
    assert escaped == 'a\\tb\\n\\"q\\"\\\\\\x01\\x7f\\xff'
    assert F.unescape(escaped, 100) == raw
    assert F.unescape("x" * 50, 40) == "x" * 39


def test_time_stamps() -> None:
    assert F.stamp_text(0, 0) == "<undefined>"
    text = F.stamp_text(1, 999_999_999)
    assert text.endswith(".999999")  # rounding never carries into the seconds
    assert F.stamp_text(1, 1_000_000_000).endswith("************")


@pytest.mark.timeout(120)
def test_demo_still_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "caclient", "demo", "--bulk", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo finished OK" in proc.stdout


def test_python_m_caclient_usage() -> None:
    proc = subprocess.run([sys.executable, "-m", "caclient"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "get       caget" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "caclient", "bogus"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "unknown command 'bogus'" in proc.stderr
