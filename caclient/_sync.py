"""Small synchronisation primitives shared by the engine.

* :class:`Pending` — a one-shot result slot completed by an I/O thread and
  waited on by a caller.  Completing it sets an Event and nothing else: no user
  code ever runs on the thread that completes it.
* :class:`Wakeup` — a socketpair used to wake a thread blocked in ``select``.
* :class:`IOThread` — the class of the engine's UDP and circuit threads, so that
  blocking calls can refuse to run on them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ._errors import BlockingCallError


class IOThread(threading.Thread):
    """A thread that must never block on anything but its own sockets."""


def ensure_not_io_thread(what: str) -> None:
    """Raise :class:`BlockingCallError` when called from an engine I/O thread."""
    if isinstance(threading.current_thread(), IOThread):
        raise BlockingCallError(
            f"{what} is a blocking call and cannot run on the engine I/O thread "
            f"{threading.current_thread().name!r}; call it from a callback or your own thread"
        )


class Pending:
    """A one-shot result slot: completed once by an I/O thread, waited on by one caller.

    It is built on a lock that is created held and released on completion (a
    lock is much cheaper to make than an Event, and a bulk read makes
    thousands).  Attributes are written before the release and read after the
    waiter's acquire, so no other lock is needed.  ``callback`` (if any) is run
    by the dispatcher, never here.  Only one thread may wait on a Pending.

    ``notify`` (if set) is called as ``notify(pending)`` by the completing
    thread — an engine I/O thread — right after completion.  It is engine
    code only (caclient.asyncio hands the completion to an event loop with
    it): it must not block and must not run user code.
    """

    __slots__ = ("_lock", "_done", "result", "error", "callback", "key", "info", "notify")

    def __init__(self, callback: Callable[[Any], None] | None = None, key: object = None, info: Any = None) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.callback = callback
        self.key = key
        self.info = info
        self.notify: Callable[[Pending], None] | None = None

    def complete(self, result: Any) -> None:
        self.result = result
        self._set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._set()

    def _set(self) -> None:
        if not self._done:
            self._done = True
            self._lock.release()
            if self.notify is not None:
                self.notify(self)

    def done(self) -> bool:
        return self._done

    def wait(self, timeout: float | None) -> bool:
        """Wait until done or *timeout* seconds pass; True when done."""
        if self._done:
            return True
        self._lock.acquire(timeout=-1 if timeout is None else timeout)
        return self._done


class Deadline:
    """A point on the monotonic clock; ``remaining()`` never goes below zero."""

    __slots__ = ("at",)

    def __init__(self, timeout: float | None) -> None:
        self.at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        if self.at is None:
            return None
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at


class Wakeup:
    """A non-blocking socketpair: ``wake()`` from any thread, ``drain()`` by the owner."""

    def __init__(self) -> None:
        self.rsock, self.wsock = socket.socketpair()
        self.rsock.setblocking(False)
        self.wsock.setblocking(False)

    def fileno(self) -> int:
        return self.rsock.fileno()

    def writer_fileno(self) -> int:
        """The fd that ``wake()`` writes to (non-blocking), e.g. for ``signal.set_wakeup_fd``."""
        return self.wsock.fileno()

    def wake(self) -> None:
        try:
            self.wsock.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already pending, or closed during shutdown

    def drain(self) -> None:
        try:
            while self.rsock.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self.rsock.close()
        self.wsock.close()
