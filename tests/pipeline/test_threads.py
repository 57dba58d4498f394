"""analyze() leaves the process's thread settings as it found them: torch's count in the calling
thread, torch's default for threads started later, numpy's BLAS threads; also after an exception and
when analyses overlap in several threads (app sessions)."""

from __future__ import annotations

import threading

import pytest
import torch
from threadpoolctl import threadpool_info

from farms_viz import analyze
from farms_viz.core.threads import default_threads, torch_threads


def blas_threads() -> list[int]:
    return sorted(i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas")


def state() -> tuple:
    return torch.get_num_threads(), default_threads(), blas_threads()


def layers(side: int, n: int = 4) -> dict:
    g = torch.Generator().manual_seed(side)
    return {f"l{i}.weight": torch.randn(side, 2 * side, generator=g) for i in range(n)}


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the machine may have one core: two threads make the pool route run
    yield
    torch.set_num_threads(before)


def test_thread_settings_are_as_the_caller_left_them(two_threads):
    before = state()
    assert before[0] == 2
    analyze(layers(128), window=64, ops=3, cache=False)  # layers in a pool, one torch thread each
    assert state() == before
    analyze({"big.weight": torch.randn(600, 600)}, window=100, ops=5, cache=False)  # windows split over threads
    assert state() == before


def test_thread_settings_are_restored_after_an_exception(two_threads):
    before = state()

    def stop(done, total, layer):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze(layers(128, 6), window=64, ops=3, cache=False, progress=stop)
    with pytest.raises(KeyboardInterrupt):  # one layer at a time, its windows split over threads
        analyze({f"w{i}.weight": torch.randn(600, 600) for i in range(3)}, window=100, ops=5, cache=False,
                progress=stop)
    assert state() == before


def test_overlapping_analyses_leave_the_default_for_new_threads(two_threads):
    """A thread that starts while another analysis has torch at one thread sees 1; when it has
    finished its own analysis it must not 'restore' that 1 as the process default."""
    before = state()
    inside, release = threading.Event(), threading.Event()
    errors = []

    def long_one():
        try:
            with torch_threads(1):  # what analyze's pool holds while it runs
                inside.set()
                release.wait(30)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def late_one():
        try:
            analyze(layers(128, 2), window=64, ops=3, cache=False)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    a = threading.Thread(target=long_one)
    a.start()
    assert inside.wait(30)
    b = threading.Thread(target=late_one)  # started while torch's default is 1
    b.start()
    b.join(60)
    release.set()
    a.join(60)
    assert not errors
    assert state() == before


def test_numpy_blas_is_one_thread_inside_a_block_and_restored_after(two_threads):
    """The layer pool's threads call numpy's BLAS (gram.NUMPY_GRAM): inside torch_threads(1) it runs
    one thread per call, outside it has the count the caller set."""
    import numpy  # noqa: F401  (its BLAS must be loaded for threadpoolctl to see it)

    before = blas_threads()
    if not before:
        pytest.skip("no BLAS library visible to threadpoolctl")
    with torch_threads(1):
        assert blas_threads() == [1] * len(before)
        with torch_threads(1):  # nested: still one, and the outer block restores
            assert blas_threads() == [1] * len(before)
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
