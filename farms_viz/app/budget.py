"""A cap on concurrent heavy jobs across all sessions of one server process, with a FIFO queue.

A job (an analysis that is not cached, a Lab matrix or sweep) holds one of ``slots`` slots while it
runs; later jobs wait in order and can say how many jobs are ahead of them. Waiting and the
job's own steps call back, so the caller can show the queue and stop the job when its visitor
has gone (the Streamlit glue raises from those callbacks). No Streamlit here.

Why a cap: one maximal job costs up to ~1 GB and pins both cores of a small server (README,
"Reliability / served mode"); without it thirty students opening the same heavy link would
run thirty at once and exhaust the machine's memory.
"""

from __future__ import annotations

import itertools
import os
import threading
from contextlib import contextmanager
from typing import Callable

#: environment variable: how many heavy jobs may run at once in one server process
JOBS_ENV = "FARMS_VIZ_JOBS"
#: how often a waiting job re-checks its place and whether it was cancelled (seconds)
POLL_S = 0.5


class Cancelled(Exception):
    """The job's visitor went away (or asked for something else) before or while it ran."""


def default_slots() -> int:
    """``$FARMS_VIZ_JOBS`` if set, else half the CPU cores (at least 1, at most 4): every job
    already uses all cores for its linear algebra, so more at once only share them and add memory."""
    raw = os.environ.get(JOBS_ENV, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            raise ValueError(f"{JOBS_ENV}={raw!r} is not a whole number of jobs") from None
        if n < 1:
            raise ValueError(f"{JOBS_ENV} must be 1 or more (got {n})")
        return n
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class JobBudget:
    """At most ``slots`` jobs at once; the others wait first come, first served."""

    def __init__(self, slots: int | None = None):
        self.slots = default_slots() if slots is None else int(slots)
        if self.slots < 1:
            raise ValueError("a job budget needs at least one slot")
        self._cond = threading.Condition()
        self._running = 0
        self._queue: list[int] = []
        self._tickets = itertools.count()
        #: the most jobs that ever ran at once (the load test reads it)
        self.peak = 0
        #: jobs that had to wait for a slot
        self.waited = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _ahead(self, ticket: int) -> int:
        """Jobs this one waits for: the running ones plus those queued before it, less the slots
        that will be free for it once they are done."""
        return self._running + self._queue.index(ticket) - (self.slots - 1)

    @contextmanager
    def slot(self, on_wait: Callable[[int], None] | None = None,
             cancelled: Callable[[], bool] | None = None, poll: float = POLL_S):
        """Hold one slot for the ``with`` body.

        While waiting, ``on_wait(ahead)`` (the number of jobs ahead) and ``cancelled()`` are called
        at once and every ``poll`` seconds: ``on_wait`` may raise to give up, ``cancelled()`` True
        gives up with :class:`Cancelled`. The queue place is given back however the wait ends.
        """
        with self._cond:
            ticket = next(self._tickets)
            self._queue.append(ticket)
        waited = False
        try:
            while True:
                with self._cond:
                    if self._queue[0] == ticket and self._running < self.slots:
                        self._queue.pop(0)
                        self._running += 1
                        self.peak = max(self.peak, self._running)
                        self.waited += waited
                        self._cond.notify_all()
                        break
                    ahead = max(1, self._ahead(ticket))
                waited = True
                if on_wait is not None:
                    on_wait(ahead)
                if cancelled is not None and cancelled():
                    raise Cancelled("the job was cancelled while it waited for a slot")
                with self._cond:
                    self._cond.wait(poll)
        except BaseException:
            with self._cond:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                self._cond.notify_all()
            raise
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()
