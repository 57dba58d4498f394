"""The heavy-job budget: a cap on concurrent jobs, first come first served, cancellable while queued."""

from __future__ import annotations

import threading
import time

import pytest

from farms_viz.app.budget import Cancelled, JobBudget, default_slots


def _run_jobs(budget: JobBudget, n: int, seconds: float):
    """n threads that each hold a slot for ``seconds``; returns (max concurrent, start order, waits seen)."""
    active, peak, order, waits = [0], [0], [], {}
    lock = threading.Lock()

    def work(i):
        with budget.slot(on_wait=lambda ahead: waits.setdefault(i, []).append(ahead), poll=0.01):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                order.append(i)
            time.sleep(seconds)
            with lock:
                active[0] -= 1

    threads = []
    for i in range(n):
        t = threading.Thread(target=work, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.02)  # a definite arrival order
    for t in threads:
        t.join(10)
    return peak[0], order, waits


@pytest.mark.parametrize("slots,n", [(1, 4), (2, 5), (3, 3)])
def test_no_more_jobs_run_at_once_than_slots(slots, n):
    budget = JobBudget(slots)
    peak, order, _ = _run_jobs(budget, n, 0.15)
    assert peak == min(slots, n)
    assert budget.peak == peak
    assert order == list(range(n))  # first come, first served
    assert budget.running == 0 and budget.waiting == 0


def test_a_waiting_job_is_told_how_many_jobs_are_ahead():
    budget = JobBudget(1)
    _, _, waits = _run_jobs(budget, 3, 0.2)
    assert 0 not in waits  # the first job never waits
    assert waits[1][0] == 1  # one job (running) ahead
    assert waits[2][0] == 2  # the running one and job 1
    assert waits[2][-1] == 1  # and it counts down
    assert budget.waited == 2


def test_cancelled_while_waiting_gives_its_place_back():
    budget = JobBudget(1)
    release = threading.Event()
    started = threading.Event()

    def holder():
        with budget.slot():
            started.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    started.wait(5)
    gone = [False]
    seen = []

    def waiter():
        try:
            with budget.slot(on_wait=seen.append, cancelled=lambda: gone[0], poll=0.01):
                seen.append("ran")
        except Cancelled:
            seen.append("cancelled")

    w = threading.Thread(target=waiter)
    w.start()
    time.sleep(0.1)
    assert budget.waiting == 1
    gone[0] = True
    w.join(5)
    assert seen[-1] == "cancelled" and "ran" not in seen
    assert budget.waiting == 0
    release.set()
    t.join(5)
    assert budget.running == 0
    with budget.slot():  # the slot is free again
        assert budget.running == 1


def test_an_exception_from_on_wait_or_the_job_frees_the_place():
    budget = JobBudget(1)
    with budget.slot():
        def boom(ahead):
            raise RuntimeError("visitor left")

        with pytest.raises(RuntimeError):
            with budget.slot(on_wait=boom):
                pass
        assert budget.waiting == 0
    with pytest.raises(ValueError):
        with budget.slot():
            raise ValueError("job failed")
    assert budget.running == 0 and budget.waiting == 0


@pytest.mark.parametrize("value,expected", [("3", 3), (" 1 ", 1)])
def test_slots_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("FARMS_VIZ_JOBS", value)
    assert default_slots() == expected


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_slot_counts_are_refused(monkeypatch, value):
    monkeypatch.setenv("FARMS_VIZ_JOBS", value)
    with pytest.raises(ValueError, match="FARMS_VIZ_JOBS"):
        default_slots()


def test_default_slots_is_half_the_cores_within_1_to_4(monkeypatch):
    monkeypatch.delenv("FARMS_VIZ_JOBS", raising=False)
    for cores, slots in ((1, 1), (2, 1), (8, 4), (64, 4)):
        monkeypatch.setattr("os.cpu_count", lambda c=cores: c)
        assert default_slots() == slots
