"""The docs build without warnings; the code is ruff-clean and mypy --strict clean.

These run the tools as the developers do, so CI keeps them true.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(300)
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    if importlib.util.find_spec("sphinx") is None:
        pytest.skip("sphinx is not installed")
    proc = _run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(120)
def test_ruff_clean() -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    dirs = [d for d in ("caclient", "compat", "tools", "tests") if (ROOT / d).is_dir()]
    proc = _run([sys.executable, "-m", "ruff", "check", *dirs])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(300)
def test_mypy_strict_on_caclient() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed")
    proc = _run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", "/dev/null"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
