"""The callback dispatcher: worker threads that run every user callback.

Theory of operation
-------------------
I/O threads never run user code.  They hand callbacks here as *jobs* tagged
with a *key* (a PV, a subscription).  Jobs with the same key run in submission
order and never concurrently; different keys share the ``max_workers`` threads
fairly: a worker runs at most ``BURST`` jobs of one key, then puts the key at
the back of the ready queue.  A single worker takes the jobs of up to 64 ready
keys per lock round (cheap under a flood of monitor updates); with several
workers each takes one key at a time, so a slow callback delays few others.

Threads
  ``caclient-cb-N`` workers run jobs.  Any thread may call :meth:`submit` /
  :meth:`submit_many`; submitting never blocks beyond the short ``_lock``.

Locks
  ``_lock`` (a leaf lock, guarded through ``_cond``) guards ``_queues``,
  ``_ready``, ``_spare``, ``_epoch``, ``_backlog``, ``_backlog_high``
  (its high-water mark, updated once per submission), ``_closed`` and
  ``_drain_watch``.  Jobs run with no
  lock held.  A key is at any moment in exactly one of: absent, in ``_ready``,
  or held by one worker — that is what keeps per-key order.

Errors
  An exception in a job is logged with its traceback (logger
  ``caclient.dispatch``) and counted; the worker carries on.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

log = logging.getLogger("caclient.dispatch")


class Job(NamedTuple):
    """One callback to run: ``fn(*args)``, after the earlier jobs of *key*.

    Queued as given (no repacking: every object a waiting job adds is one
    more for the cyclic garbage collector).  The monitor hot path builds the
    same three fields as a plain tuple (:data:`JobTuple`), which costs a
    fraction of a NamedTuple's construction; everything else builds a Job.
    """

    key: object
    fn: Callable[..., Any]
    args: tuple[Any, ...]


#: What the dispatcher accepts: a :class:`Job`, or the plain tuple of its fields.
JobTuple = tuple[object, Callable[..., Any], tuple[Any, ...]]

#: What a monitor handler returns when it handed the update on itself (to an
#: event loop's sink, see :meth:`caclient.Subscription._add_sink`): counted
#: as delivered, and there is no job for the dispatcher.
DELIVERED: JobTuple = cast("JobTuple", object())  # (compared by identity only)

_POOL = 1024  # empty per-key deques kept for reuse

# ``_queues`` maps a key to its single waiting job (the common case: no
# container at all), to a deque of its jobs, or, while a worker runs the
# key's only job, to _HELD.
_HELD: Any = object()

BURST = 8


@dataclass(frozen=True, slots=True)
class DispatcherStatistics:
    """A snapshot of the dispatcher's state."""

    workers: int
    backlog: int
    keys_waiting: int
    jobs_run: int
    errors: int
    backlog_high_water: int = 0  #: the largest backlog seen


class Dispatcher:
    """Runs callbacks on worker threads, ordered per key, fair across keys.

    Parameters
    ----------
    max_workers : int
        Number of worker threads.
    name : str
        Prefix of the worker thread names.
    """

    def __init__(self, max_workers: int = 1, name: str = "caclient-cb") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queues: dict[object, Any] = {}  # key → a Job, a deque of Jobs, or _HELD
        self._spare: list[deque[JobTuple]] = []  # empty deques for reuse (guarded by _lock)
        self._epoch = 0  # bumped when shutdown(cancel_pending=True) drops every queue
        self._ready: deque[object] = deque()
        self._backlog = 0
        self._backlog_high = 0
        self._closed = False
        self._jobs_run = 0
        self._errors = 0
        self._drain_watch: list[tuple[int, Callable[[], None]]] = []
        # One worker takes many keys' jobs per lock round; with several
        # workers it takes one key at a time so that a slow callback holds up
        # as few other keys as possible.
        self._take = 64 if max_workers == 1 else 1
        self._threads = [
            threading.Thread(target=self._worker, name=f"{name}-{i}", daemon=True) for i in range(max_workers)
        ]
        self._idents: frozenset[int] = frozenset()
        for t in self._threads:
            t.start()
        self._idents = frozenset(t.ident for t in self._threads if t.ident is not None)

    # -- submission (any thread) -------------------------------------------------
    def submit(self, key: object, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` behind earlier jobs of *key*."""
        with self._cond:
            if self._closed:
                return
            if self._enqueue(Job(key, fn, args)):
                self._ready.append(key)
                self._cond.notify()
            self._backlog += 1
            if self._backlog > self._backlog_high:
                self._backlog_high = self._backlog

    def _enqueue(self, job: JobTuple) -> bool:
        # Under _lock: queue *job* behind its key's; True when the key is new
        # (then the caller puts it in _ready).
        queues = self._queues
        key = job[0]
        q = queues.get(key)
        if q is None:
            queues[key] = job
            return True
        if q is _HELD:
            queues[key] = job  # (the worker holding the key requeues it)
        elif q.__class__ is not deque:
            d = self._spare.pop() if self._spare else deque()
            d.append(q)
            d.append(job)
            queues[key] = d
        else:
            q.append(job)
        return False

    def submit_many(self, jobs: Iterable[JobTuple]) -> int:
        """Queue many ``(key, fn, args)`` jobs with one lock round; returns the backlog."""
        with self._cond:
            if self._closed:
                return 0
            queues = self._queues
            ready = self._ready
            enqueue = self._enqueue
            new_keys = 0
            n = 0
            for job in jobs:
                n += 1
                key = job[0]
                if key not in queues:  # (the common case, inlined)
                    queues[key] = job
                    ready.append(key)
                    new_keys += 1
                elif enqueue(job):
                    ready.append(key)
                    new_keys += 1
            backlog = self._backlog = self._backlog + n
            if backlog > self._backlog_high:
                self._backlog_high = backlog
            if new_keys:
                self._cond.notify(new_keys)
            return backlog

    def watch_drain(self, low_water: int, fn: Callable[[], None]) -> None:
        """Call *fn* once (on a worker, no lock held) when the backlog falls to *low_water*."""
        with self._cond:
            if self._backlog > low_water:
                self._drain_watch.append((low_water, fn))
                return
        fn()  # already drained: nothing will run to notice it later

    @property
    def backlog(self) -> int:
        """Jobs queued and not yet finished."""
        return self._backlog

    def on_worker_thread(self) -> bool:
        """True when the calling thread is one of this dispatcher's workers."""
        return threading.get_ident() in self._idents

    def statistics(self) -> DispatcherStatistics:
        with self._cond:
            return DispatcherStatistics(
                len(self._threads), self._backlog, len(self._ready), self._jobs_run, self._errors, self._backlog_high
            )

    # -- workers -------------------------------------------------------------------
    def _worker(self) -> None:
        cond = self._cond
        while True:
            taken: list[object] = []
            batch: list[JobTuple] = []
            with cond:
                while not self._ready and not self._closed:
                    cond.wait()
                if not self._ready:
                    return  # closed and nothing left for us
                # Take up to BURST jobs of each ready key, up to _take jobs in
                # all.  The keys taken are held by this worker until it
                # puts them back, which is what keeps per-key order.
                ready, queues = self._ready, self._queues
                epoch = self._epoch
                while ready and len(batch) < self._take:
                    key = ready.popleft()
                    q = queues[key]
                    if q.__class__ is not deque:
                        batch.append(q)
                        queues[key] = _HELD
                    else:
                        n = len(q)
                        if n == 1:
                            batch.append(q.popleft())
                        else:
                            batch.extend([q.popleft() for _ in range(min(BURST, n))])
                    taken.append(key)
            errors = 0
            for job in batch:
                try:
                    job[1](*job[2])
                except Exception:
                    errors += 1
                    log.exception("exception in callback %r", job[1])
            drained: list[Callable[[], None]] = []
            with cond:
                # max(): shutdown(cancel_pending=True) may have zeroed the
                # backlog and dropped our keys' queues while we ran.
                self._backlog = max(0, self._backlog - len(batch))
                self._jobs_run += len(batch)
                self._errors += errors
                requeued = 0
                queues = self._queues
                if self._epoch != epoch:
                    taken = []  # dropped by shutdown(cancel_pending=True) meanwhile
                for key in taken:
                    q = queues[key]
                    if q is _HELD:
                        del queues[key]
                    elif q.__class__ is not deque or q:
                        self._ready.append(key)
                        requeued += 1
                    else:
                        del queues[key]
                        if len(self._spare) < _POOL:
                            self._spare.append(q)
                if requeued:
                    cond.notify(requeued)
                if self._drain_watch:
                    backlog = self._backlog
                    drained = [fn for low, fn in self._drain_watch if backlog <= low]
                    if drained:
                        self._drain_watch = [w for w in self._drain_watch if backlog > w[0]]
            del batch, taken
            for hook in drained:
                try:
                    hook()
                except Exception:
                    log.exception("exception in drain hook")

    # -- shutdown --------------------------------------------------------------------
    def shutdown(self, wait: bool = True, timeout: float | None = 2.0, cancel_pending: bool = False) -> None:
        """Stop the workers once the queued jobs ran (or are dropped with *cancel_pending*).

        Safe to call from a worker thread (that worker is not joined).
        """
        with self._cond:
            self._closed = True
            if cancel_pending:
                self._epoch += 1
                self._queues.clear()
                self._ready.clear()
                self._backlog = 0
            self._cond.notify_all()
        if wait:
            me = threading.current_thread()
            for t in self._threads:
                if t is not me:
                    t.join(timeout)
