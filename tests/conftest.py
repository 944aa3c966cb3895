"""Shared pytest configuration for caclient.

At import time this installs a loopback-only EPICS environment into
``os.environ`` (see :mod:`caclient.testing.env`), so every test, pyepics/libca
and every child process inherit it: nothing searches or beacons beyond
127.0.0.1, and nothing uses the default ports.

Fixtures
--------
epics_ioc
    Session-wide EPICS C IOC serving ``caclient/testing/test.db``.
caproto_ioc
    Session-wide caproto IOC serving ``caclient/testing/_caproto_ioc.py``.
ioc
    Parametrized over both (ids ``'epics'`` and ``'caproto'``).

Every test is also checked for leaked ``caclient*`` threads and sockets; mark a
test ``@pytest.mark.allow_leaks`` to skip that check.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from caclient.testing import (  # noqa: E402
    CaprotoIOC,
    EpicsIOC,
    IOCHandle,
    apply_loopback_env,
    loopback_env,
)

apply_loopback_env(loopback_env())

LEAK_GRACE_SECONDS = 5.0
THREAD_PREFIX = "caclient"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_leaks: do not fail the test for new caclient* threads or sockets left open",
    )


# ---------------------------------------------------------------- IOC fixtures
@pytest.fixture(scope="session")
def epics_ioc() -> Iterator[IOCHandle]:
    """The EPICS C IOC on the test database, for the whole session."""
    with EpicsIOC() as handle:  # (started on entry, stopped on exit)
        yield handle


@pytest.fixture(scope="session")
def caproto_ioc() -> Iterator[IOCHandle]:
    """The caproto test IOC, for the whole session."""
    with CaprotoIOC() as handle:
        yield handle


@pytest.fixture(scope="session", params=["epics", "caproto"], ids=["epics", "caproto"])
def ioc(request: pytest.FixtureRequest) -> IOCHandle:
    """Each kind of IOC in turn (the session-wide handles above)."""
    handle: IOCHandle = request.getfixturevalue(f"{request.param}_ioc")
    return handle


# ---------------------------------------------------------------- leak check
def _caclient_threads() -> dict[int, str]:
    """Map ident -> name of live threads whose name starts with 'caclient'."""
    return {
        t.ident: t.name
        for t in threading.enumerate()
        if t.ident is not None and t.name.startswith(THREAD_PREFIX) and t.is_alive()
    }


def _open_sockets() -> dict[str, str]:
    """Map a key per open socket of this process -> a description of it."""
    fd_dir = "/proc/self/fd"
    if os.path.isdir(fd_dir):
        found: dict[str, str] = {}
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:"):
                found[target] = f"fd {fd} ({target})"
        return found
    import psutil

    return {
        f"fd{c.fd}:{c.laddr}": f"fd {c.fd} {c.laddr} -> {c.raddr}" for c in psutil.Process().net_connections(kind="all")
    }


@pytest.fixture(autouse=True)
def _leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves new caclient* threads or open sockets behind."""
    if request.node.get_closest_marker("allow_leaks") is not None:
        yield
        return
    threads_before = _caclient_threads()
    sockets_before = _open_sockets()
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    while True:
        new_threads = {ident: name for ident, name in _caclient_threads().items() if ident not in threads_before}
        new_sockets = {key: desc for key, desc in _open_sockets().items() if key not in sockets_before}
        if not (new_threads or new_sockets) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    problems = []
    if new_threads:
        problems.append(f"threads still running: {sorted(new_threads.values())}")
        frames = sys._current_frames()
        for ident, name in sorted(new_threads.items(), key=lambda item: item[1]):
            frame = frames.get(ident)
            if frame is not None:  # where it is stuck, for the report
                problems.append(f"{name}:\n" + "".join(traceback.format_stack(frame)))
    if new_sockets:
        problems.append(f"sockets still open: {sorted(new_sockets.values())}")
    if problems:
        pytest.fail("resource leak after test: " + "; ".join(problems), pytrace=False)
