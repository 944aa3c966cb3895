"""The command-line reference is generated from the tools' usage texts and must be current;
the intersphinx inventories must match their generator; the client never imports caproto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(60)
def test_cli_reference_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.gen_cli_docs", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == 0, proc.stderr


def test_cli_reference_shows_every_usage_text() -> None:
    from caclient.cli import caget, cainfo, camonitor, caput

    text = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")
    for module in (caget, caput, camonitor, cainfo):
        for line in module.USAGE.strip("\n").splitlines():
            assert line.rstrip() in text


def test_inventories_match_their_generator() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "_inventories"))
    try:
        import make_inventories
    finally:
        sys.path.pop(0)
    for filename, (project, version, entries) in make_inventories.FILES.items():
        expected = make_inventories.inventory(project, version, entries)
        assert (ROOT / "docs" / "_inventories" / filename).read_bytes() == expected, filename


@pytest.mark.timeout(60)
def test_the_client_does_not_import_caproto() -> None:
    code = (
        "import sys, caclient, compat, caclient.cli.caget, caclient.cli._format, caclient.eca; "
        "print(sorted(m for m in sys.modules if m == 'caproto' or m.startswith('caproto.')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
