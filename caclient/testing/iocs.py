"""Start and stop throw-away Channel Access servers on the loopback interface.

Two kinds of IOC are provided, both run as child processes so that their
threads, sockets and EPICS global state never mix with the test process:

* :class:`EpicsIOC` - the real EPICS C IOC (RSRV) from ``epicscorelibs``,
  loading :data:`TEST_DB_PATH` or any other database;
* :class:`CaprotoIOC` - caproto's pure-Python server running
  :mod:`caclient.testing._caproto_ioc` (or another server module).

Each child gets an environment from :func:`~caclient.testing.env.loopback_env`
with its own freshly chosen server port, announces readiness with one line on
its stdout (see :mod:`caclient.testing._protocol`) and is stopped by its own
handle (:meth:`IOCHandle.stop`), or at interpreter exit as a safety net.

Example
-------
>>> with EpicsIOC() as ioc:                                    # doctest: +SKIP
...     env = ioc.env              # give this to the CA client under test
...     name = ioc.pv("ai")        # e.g. 'T1234:ai'
"""

from __future__ import annotations

import atexit
import collections
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TypeAlias

from caclient._closing import ClosingContext
from caclient.testing._protocol import parse_ready_line
from caclient.testing.env import LOOPBACK, loopback_env

__all__ = [
    "TEST_ACF_PATH",
    "TEST_DB_PATH",
    "CaprotoIOC",
    "DbSpec",
    "EpicsIOC",
    "IOCHandle",
    "make_numbered_db",
    "random_prefix",
]

_HERE = Path(__file__).resolve().parent

#: The test database served by :class:`EpicsIOC` by default (macro ``P``).
TEST_DB_PATH: str = str(_HERE / "test.db")

#: Access security file used with the test database (makes ``ro`` read-only).
TEST_ACF_PATH: str = str(_HERE / "test.acf")

#: A database to load: ``(path, macros)``; ``None`` macros mean ``"P=<prefix>"``.
DbSpec: TypeAlias = tuple[str | os.PathLike[str], str | None]

_OUTPUT_LINES = 2000
_PORT_ATTEMPTS = 3
_used_prefixes: set[str] = set()
_prefix_lock = threading.Lock()
_running: set[IOCHandle] = set()
_running_lock = threading.Lock()


def random_prefix(letter: str = "T") -> str:
    """Return a PV prefix such as ``'T1234:'``, unique within this process.

    Parameters
    ----------
    letter : str, optional
        Leading text of the prefix.

    Returns
    -------
    str
        `letter`, four random digits and a colon.
    """
    rng = random.SystemRandom()
    with _prefix_lock:
        for _ in range(10_000):
            prefix = f"{letter}{rng.randrange(10_000):04d}:"
            if prefix not in _used_prefixes:
                _used_prefixes.add(prefix)
                return prefix
    raise RuntimeError("ran out of unique PV prefixes")


def _repeater_port_from_environ() -> int | None:
    """Return the session's non-default ``EPICS_CA_REPEATER_PORT``, if any."""
    value = os.environ.get("EPICS_CA_REPEATER_PORT", "")
    if value.isdigit() and int(value) not in (0, 5065):
        return int(value)
    return None


class IOCHandle(ClosingContext):
    """A Channel Access server running in a child process on 127.0.0.1.

    Subclasses provide :meth:`command`, the child's command line.  The child
    must print ``CACLIENT-TESTING-READY port=<tcp port>`` once it serves, and
    exit when its stdin closes or on SIGTERM.

    Parameters
    ----------
    prefix : str, optional
        PV name prefix; a unique random one (e.g. ``'T1234:'``) by default.

    Attributes
    ----------
    prefix : str
        The PV name prefix.
    """

    #: Short name of the kind of IOC, used in messages.
    kind = "ioc"

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix: str = random_prefix() if prefix is None else prefix
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES)
        self._ready = threading.Event()
        self._ready_port: int | None = None
        self._port: int | None = None
        self._env: dict[str, str] | None = None
        self._beacon_port: int | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ interface
    def command(self) -> list[str]:
        """Return the child's command line (argv list)."""
        raise NotImplementedError

    # ------------------------------------------------------------ properties
    @property
    def port(self) -> int:
        """The CA server port (TCP and UDP) on 127.0.0.1."""
        if self._port is None:
            raise RuntimeError(f"{self!r} is not started")
        return self._port

    @property
    def env(self) -> dict[str, str]:
        """A copy of the environment a CA client should use to reach this IOC."""
        if self._env is None:
            raise RuntimeError(f"{self!r} is not started")
        return dict(self._env)

    @property
    def pid(self) -> int:
        """Process id of the child."""
        if self._proc is None:
            raise RuntimeError(f"{self!r} is not started")
        return self._proc.pid

    @property
    def address(self) -> tuple[str, int]:
        """``('127.0.0.1', port)``."""
        return (LOOPBACK, self.port)

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def output(self) -> str:
        """The child's captured stdout and stderr (the last lines of it)."""
        return "".join(self._output)

    def pv(self, name: str) -> str:
        """Return the full PV name: ``prefix + name``."""
        return self.prefix + name

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 20.0, port: int | None = None) -> IOCHandle:
        """Start the child and wait until it serves.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for the ready line, per attempt.
        port : int, optional
            Serve on this port (e.g. to restart an IOC where it was, or
            where clients expect it); by default a free one is chosen.

        Returns
        -------
        IOCHandle
            `self`, for chaining.

        Raises
        ------
        RuntimeError
            If the child exits before it is ready, does not become ready
            within `timeout`, or keeps failing to get its port.  The message
            includes the child's output.
        """
        with self._lock:
            if self.running:
                return self
            self._stop_locked(timeout=5.0)
            last_error = ""
            for _ in range(_PORT_ATTEMPTS if port is None else 1):
                # A restarted IOC beacons where it did before (clients' repeaters listen there).
                repeater_port = _repeater_port_from_environ() or self._beacon_port
                env = loopback_env(server_port=port, repeater_port=repeater_port)
                port = int(env["EPICS_CA_SERVER_PORT"])
                self._launch(env)
                announced = self._wait_ready(timeout)
                if announced == port:
                    self._port = port
                    self._env = env
                    self._beacon_port = int(env["EPICS_CA_REPEATER_PORT"])
                    with _running_lock:
                        _running.add(self)
                    return self
                # Someone else took the port between choosing and binding it.
                last_error = f"asked for port {port}, server announced {announced}"
                self._stop_locked(timeout=5.0)
            raise RuntimeError(f"{self.kind} IOC could not get its port: {last_error}")

    def _launch(self, env: dict[str, str]) -> None:
        self._output.clear()
        self._ready.clear()
        self._ready_port = None
        # The child imports this package: make sure it finds the same copy,
        # whether or not it is installed or the working directory is elsewhere.
        env = dict(env)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen(
            self.command(),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read_output,
            args=(self._proc.stdout,),
            name=f"ioc-output-{self.kind}-{self.prefix}",
            daemon=True,
        )
        self._reader.start()

    def _read_output(self, stream: IO[str]) -> None:
        """Reader thread: collect output and spot the ready line."""
        try:
            for line in stream:
                self._output.append(line)
                port = parse_ready_line(line)
                if port is not None and not self._ready.is_set():
                    self._ready_port = port
                    self._ready.set()
        except (OSError, ValueError):
            pass  # pipe closed under us by stop()
        finally:
            self._ready.set()  # wake start() if the child exited

    def _wait_ready(self, timeout: float) -> int:
        """Wait for the ready line; return the announced port or raise."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if self._ready.wait(max(0.0, min(remaining, 0.2))):
                if self._ready_port is not None:
                    return self._ready_port
                reason = "exited before it was ready"
                break
            if self._proc.poll() is not None:
                reason = f"exited with code {self._proc.returncode} before it was ready"
                break
            if remaining <= 0:
                reason = f"was not ready within {timeout} s"
                break
        self._stop_locked(timeout=5.0)
        raise RuntimeError(f"{self.kind} IOC {reason}: {self.command()!r}\n--- output ---\n{self.output}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the child: close its stdin, SIGTERM, then SIGKILL; idempotent.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait after SIGTERM before killing, and again after.
        """
        with self._lock:
            self._stop_locked(timeout)

    def _stop_locked(self, timeout: float) -> None:
        with _running_lock:
            _running.discard(self)
        proc, self._proc = self._proc, None
        reader, self._reader = self._reader, None
        self._port = None
        self._env = None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                if proc.stdin is not None:
                    try:
                        proc.stdin.close()
                    except OSError:
                        pass
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
        finally:
            if reader is not None:
                # EOF arrives once the child (and anything it spawned that
                # inherited the pipe) has gone; do not wait for ever.
                reader.join(timeout)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except (OSError, ValueError):
                        pass
            if reader is not None:
                reader.join(timeout)

    def close(self) -> None:
        """Same as :meth:`stop` with its default timeout (what the end of a ``with`` block calls)."""
        self.stop()

    def __enter__(self) -> IOCHandle:
        return self.start()

    def __repr__(self) -> str:
        state = f"port={self._port}" if self._port is not None else "stopped"
        return f"<{type(self).__name__} prefix={self.prefix!r} {state}>"


class EpicsIOC(IOCHandle):
    """The EPICS C soft IOC (RSRV) from ``epicscorelibs``, in a child process.

    Parameters
    ----------
    db_path : path or sequence of (path, macros), optional
        The database to load (default :data:`TEST_DB_PATH`), or several
        ``(path, macros)`` pairs; ``None`` macros in a pair mean
        ``"P=<prefix>"``.
    macros : str, optional
        Macros for a single `db_path`; default ``"P=<prefix>"``.
    prefix : str, optional
        PV name prefix; random and unique (e.g. ``'T1234:'``) by default.
    acf_path : path, optional
        Access security file; default :data:`TEST_ACF_PATH`, whose
        ``READONLY`` group makes ``ro`` read-only.  ``None`` turns access
        security off.
    """

    kind = "epics"

    def __init__(
        self,
        db_path: str | os.PathLike[str] | Sequence[DbSpec] = TEST_DB_PATH,
        macros: str | None = None,
        prefix: str | None = None,
        acf_path: str | os.PathLike[str] | None = TEST_ACF_PATH,
    ) -> None:
        super().__init__(prefix)
        default_macros = f"P={self.prefix}"
        if isinstance(db_path, (str, os.PathLike)):
            specs: list[DbSpec] = [(db_path, macros)]
        else:
            specs = list(db_path)
        self.dbs: list[tuple[str, str]] = [
            (os.path.abspath(os.fspath(path)), default_macros if m is None else m) for path, m in specs
        ]
        self.acf_path = None if acf_path is None else os.path.abspath(os.fspath(acf_path))

    def command(self) -> list[str]:
        """Return the command line of the ``_softioc`` launcher."""
        argv = [sys.executable, "-m", "caclient.testing._softioc"]
        if self.acf_path is not None:
            argv += ["--acf", self.acf_path]
        for path, macros in self.dbs:
            argv += [path, macros]
        return argv


class CaprotoIOC(IOCHandle):
    """caproto's pure-Python CA server, in a child process.

    Parameters
    ----------
    prefix : str, optional
        PV name prefix; random and unique (e.g. ``'T1234:'``) by default.
    module : str, optional
        Server module run with ``python -m``.  It must accept ``--prefix``
        and ``--interfaces``, take its port from ``EPICS_CA_SERVER_PORT``
        and print the ready line (see
        :func:`caclient.testing._caproto_ioc.serve`).
    n_numbered : int, optional
        Number of extra float PVs ``{prefix}n{i}`` (passed as
        ``--n-numbered``; only when non-zero).
    extra_args : sequence of str, optional
        More arguments for the server module.
    """

    kind = "caproto"

    def __init__(
        self,
        prefix: str | None = None,
        module: str = "caclient.testing._caproto_ioc",
        n_numbered: int = 0,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(prefix)
        self.module = module
        self.n_numbered = n_numbered
        self.extra_args = list(extra_args)

    def command(self) -> list[str]:
        """Return the command line of the caproto server module."""
        argv = [
            sys.executable,
            "-m",
            self.module,
            "--prefix",
            self.prefix,
            "--interfaces",
            LOOPBACK,
        ]
        if self.n_numbered:
            argv += ["--n-numbered", str(self.n_numbered)]
        return argv + self.extra_args


def _numbered_records(n: int, kind: str, scan: str | None) -> Iterator[str]:
    for i in range(n):
        name = f"$(P)n{i}"
        lines = [f'record({kind}, "{name}") {{']
        if kind in ("calc", "calcout"):
            lines.append('    field(CALC, "A+1")')
            lines.append(f'    field(INPA, "{name} NPP")')
        if scan:
            lines.append(f'    field(SCAN, "{scan}")')
        lines.append("}")
        yield "\n".join(lines) + "\n"


def make_numbered_db(
    path: str | os.PathLike[str],
    n: int,
    kind: str = "ai",
    scan: str | None = None,
) -> str:
    """Write a database of `n` records named ``$(P)n0`` .. ``$(P)n{n-1}``.

    Parameters
    ----------
    path : path
        File to write (overwritten).
    n : int
        Number of records.
    kind : str, optional
        Record type, e.g. ``'ai'``, ``'ao'``, ``'longin'``.  For ``'calc'``
        (and ``'calcout'``) each record gets ``CALC "A+1"`` with ``INPA``
        linked to itself, so with a `scan` it counts up - use
        ``kind='calc', scan='.1 second'`` for 10 Hz monitor benchmarks.
    scan : str, optional
        ``SCAN`` field, e.g. ``'.1 second'``; passive when omitted.

    Returns
    -------
    str
        The absolute path written.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    out = os.path.abspath(os.fspath(path))
    with open(out, "w", encoding="ascii") as fh:
        fh.write(f"# {n} numbered {kind} records for caclient tests (macro P)\n")
        fh.writelines(_numbered_records(n, kind, scan))
    return out


@atexit.register
def _stop_all_running() -> None:
    """Safety net: stop every IOC whose handle was not stopped."""
    with _running_lock:
        handles = list(_running)
    for handle in handles:
        try:
            handle.stop(timeout=2.0)
        except Exception:
            pass
