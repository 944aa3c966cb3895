"""ophyd-async's Channel Access backend (written for aioca) running unchanged on compat.aioca.

``ophyd-async`` is in the test extra (the test is skipped where it is not
installed).  The program below uses ophyd-async's CA signals; it runs in a child process
as ``python -m compat.aioca program.py`` against the aioca tests' IOC, with
real aioca nowhere in the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aioca_support import aioca_ioc

pytest.importorskip("ophyd_async")

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = """
import asyncio, sys
import numpy as np
from ophyd_async.core import Array1D, observe_value
from ophyd_async.epics.core import epics_signal_r, epics_signal_rw

P = sys.argv[1]

async def main():
    ao = epics_signal_rw(float, f"ca://{P}cb", name="ao")
    ai = epics_signal_r(float, f"ca://{P}ai", name="ai")
    mode = epics_signal_rw(str, f"ca://{P}mbbo", name="mode")
    text = epics_signal_rw(str, f"ca://{P}lstr.VAL$", name="text")
    wf = epics_signal_rw(Array1D[np.float32], f"ca://{P}floatwf", name="wf")
    for s in (ao, ai, mode, text, wf):
        await s.connect(timeout=5)
    await ao.set(3.25)
    print("ao", await ao.get_value())
    print("ai", (await ai.read())["ai"]["value"], (await ai.describe())["ai"]["units"])
    await mode.set("three")
    print("mode", await mode.get_value(), *(await mode.describe())["mode"]["choices"])
    await text.set("hello from ophyd-async")
    print("text", await text.get_value())
    await wf.set(np.array([1.5, 2.5], dtype=np.float32))
    print("wf", *(await wf.get_value()))
    seen = []
    async for v in observe_value(ao, timeout=5):
        seen.append(v)
        if len(seen) == 1:
            await ao.set(4.5)
        else:
            break
    import aioca
    print("observed", *seen, aioca.__name__, "epicscorelibs.ca.cadef" in sys.modules)
    aioca.purge_channel_caches()

asyncio.run(main())
"""


@pytest.mark.timeout(120)
def test_ophyd_async_ca_signals_run_on_compat_aioca(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    ioc = aioca_ioc(request.config)
    program = tmp_path / "ophyd_async_program.py"
    program.write_text(textwrap.dedent(PROGRAM))
    env = dict(ioc.env, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run(
        [sys.executable, "-m", "compat.aioca", str(program), ioc.prefix],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "ao 3.25",
        "ai 3.5 mm",
        "mode three zero one two three four",
        "text hello from ophyd-async",
        "wf 1.5 2.5",
        # ophyd-async imports epicscorelibs.ca.dbr for its DBR numbers, which loads libca (unused)
        "observed 3.25 4.5 compat.aioca True",
    ]
