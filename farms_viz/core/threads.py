"""Process-wide thread settings, changed only inside a block and always given back.

``torch.set_num_threads`` sets the calling thread's OpenMP/MKL thread count AND a process-wide
default that threads started later inherit. A plain save/set/restore in each caller is not enough
when analyses overlap (two app sessions, or a caller's own threads): a thread started while another
analysis had set 1 saves 1 and "restores" it, leaving every later thread of the process at 1. So
the process-wide default is saved by the first block to open and given back by the last to close;
each thread's own count is given back to what that thread had.

numpy's BLAS (OpenBLAS, which computes the Gram products on CPU: see ``gram.NUMPY_GRAM``) has one
process-wide count and no per-thread one: it is set to ``n`` by the first block to open and given
back by the last to close. Otherwise each layer thread's BLAS call would start two more threads on a
2-core machine, whose spinning slowed the layer pool by 25% (2 x 2048 x 2048, windows 512).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import torch

_LOCK = threading.Lock()
#: [open blocks, the process default saved by the first, the BLAS counts saved by the first]
_OPEN: list = [0, None, None]
_POOL: list = [0, None]  # [workers, ThreadPoolExecutor]
_BLAS: list = []  # [threadpoolctl controllers of numpy's BLAS libraries], found once


def _blas() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded (numpy's), looked up once (18 ms)."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _BLAS[0]


def default_threads() -> int:
    """torch's process-wide default: the intra-op thread count a newly started thread gets."""
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(torch.get_num_threads()), name="farms-threads-probe")
    t.start()
    t.join()
    return out[0]


def _set_default(n: int) -> None:
    t = threading.Thread(target=torch.set_num_threads, args=(n,), name="farms-threads-restore")
    t.start()
    t.join()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block (for work spread over Python threads,
    each of which should use one torch thread), and numpy's BLAS threads too; after it, this thread's
    count is what it was and, once no such block is open in any thread, so are the process-wide
    default and the BLAS count."""
    with _LOCK:
        if _OPEN[0] == 0:
            _OPEN[1] = default_threads()
            _OPEN[2] = [(lib, lib.num_threads) for lib in _blas()]
            for lib, _ in _OPEN[2]:
                lib.set_num_threads(n)
        _OPEN[0] += 1
        before = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _LOCK:
            _OPEN[0] -= 1
            torch.set_num_threads(before)
            if _OPEN[0] == 0:
                for lib, count in _OPEN[2]:
                    lib.set_num_threads(count)
                if _OPEN[1] != before:
                    _set_default(_OPEN[1])


def shared_pool(n: int) -> ThreadPoolExecutor:
    """A thread pool of at least ``n`` threads kept for the process (starting threads per call cost
    ~1 ms each here)."""
    with _LOCK:
        if _POOL[1] is None or _POOL[0] < n:
            # A smaller pool is dropped, not shut down: another thread (a second app session) may
            # be about to submit to it. Its idle threads stay; the size only grows to the threads.
            _POOL[:] = [n, ThreadPoolExecutor(n, thread_name_prefix="farms-eigvalsh")]
        return _POOL[1]
