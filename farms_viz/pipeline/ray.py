"""Run :func:`farms_viz.pipeline.analyze.analyze_layer` per tensor as Ray tasks (``analyze(..., executor="ray")``).

Each task analyses one tensor. File tensors travel as a small description (file path, tensor
name, kind) and are opened where the task runs, so no weights pass through the driver; tensors
of in-memory sources (a dict, an ``nn.Module``) are put in Ray's object store, a bounded number
at a time. Rows come back in any order and are put in the local order; a task that raises
becomes that layer's ``status`` while the others finish; lost workers are retried by Ray
(``max_retries``). ``settings.device == "cuda"`` asks one GPU per task.

Ray is optional (``pip install farms-viz[ray]``). Its usage statistics are switched off before
it is imported, and a Ray started here listens on the loopback address only.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from farms_viz.errors import FarmsError
from farms_viz.io.cache import LayerCache
from farms_viz.io.refs import TensorRef
from farms_viz.io.sources import open_weights_file
from farms_viz.pipeline.layer import analyze_layer, empty_row
from farms_viz.pipeline.schema import LayerSpectra, Progress
from farms_viz.settings import Settings

EXECUTORS = ("local", "ray")
#: retries of a task whose worker died (Ray's own; exceptions raised by the task are not retried)
MAX_RETRIES = 3
#: CPUs of a Ray started on demand (a real cluster is given by ``address``)
LOCAL_CPUS = 4
#: environment of every worker: no usage statistics (they would go to a public address)
WORKER_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
#: the address this process's Ray connection was made for (Ray itself is per-process state)
_CONNECTED: dict[str, str | None] = {}
#: environment of a Ray started here, while it starts: its node address is 127.0.0.1 (no route
#: probe towards a public resolver), and plain-HTTP clients (Ray's cloud-metadata probe at
#: 169.254.169.254, which runs even with usage statistics off) go to a closed loopback port.
#: Ray's gRPC ignores these proxy variables (``RAY_grpc_enable_http_proxy`` is off by default).
LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                 **{k: "http://127.0.0.1:9" for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
                 **{k: "127.0.0.1,localhost,::1" for k in ("no_proxy", "NO_PROXY")}}


@lru_cache(maxsize=4)
def _opened(path: str, size: int, mtime_ns: int):
    """A weights file parsed once per worker process and kept while its size and mtime stay the same
    (opening it per tensor made a file of n tensors cost n header parses on the workers)."""
    return open_weights_file(Path(path))


@dataclass(frozen=True)
class FileTensor:
    """A tensor named by where it lives: picklable, a few hundred bytes."""

    layer: str
    shape: tuple[int, ...]
    dtype: str
    kind: str | None
    path: str
    key: str

    def ref(self) -> TensorRef:
        def load():
            st = os.stat(self.path)
            return _opened(self.path, st.st_size, st.st_mtime_ns).load(self.key)

        return TensorRef(self.layer, self.shape, self.dtype, self.kind, load, owned=True)


@dataclass(frozen=True)
class StoredTensor:
    """A tensor already in memory, sent through the object store (``tensor`` is resolved by Ray)."""

    layer: str
    shape: tuple[int, ...]
    dtype: str
    kind: str | None

    def ref(self, tensor) -> TensorRef:
        return TensorRef(self.layer, self.shape, self.dtype, self.kind, lambda: tensor)


def analyze_task(job: FileTensor | StoredTensor, settings: Settings, use_cache: bool, tensor=None
                 ) -> tuple[dict, LayerSpectra | None]:
    """The body of one Ray task: ``analyze_layer`` on the worker (its own disk cache, if any)."""
    ref = job.ref() if isinstance(job, FileTensor) else job.ref(tensor)
    with torch.inference_mode():
        return analyze_layer(ref, settings, LayerCache() if use_cache else None)


def failure_status(exc: BaseException) -> str:
    """The ``status`` of a layer whose task failed: the original error, in one line."""
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps what the task raised
    text = (str(cause).strip().splitlines() or [""])[0][:300]
    return f"failed on the Ray cluster: {type(cause).__name__}" + (f": {text}" if text else "")


@contextmanager
def _environ(values: dict[str, str]):
    """``os.environ`` with ``values`` set, restored afterwards (processes started inside keep them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def import_ray():
    """``ray``, with usage statistics off; FarmsError when it is not installed."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        import ray
    except ImportError:
        raise FarmsError("the ray executor needs Ray: install farms-viz[ray] (pip install 'farms-viz[ray]').") from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None):
    """Ray, connected: the running session, the cluster at ``address``, or a local Ray started now.

    A local Ray gets ``num_cpus`` (default min(cores, LOCAL_CPUS)), no dashboard, worker logs
    kept out of the driver's output, and binds to 127.0.0.1.
    """
    local = not address or _is_loopback(address)
    with _environ(LOCAL_RAY_ENV if local else {}):  # read by ray_constants when ray is first imported
        ray = import_ray()
    # Ray may have been imported before (without LOCAL_RAY_ENV): a local Ray's node address must
    # still be loopback, and a remote cluster needs the usual multi-node address again.
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        constants.ENABLE_RAY_CLUSTER = not local
    if ray.is_initialized():
        if not address or _CONNECTED.get("address") == address:
            return ray
        ray.shutdown()  # another cluster was asked for
    env = dict(WORKER_ENV)
    if os.environ.get("FARMS_VIZ_CACHE"):
        env["FARMS_VIZ_CACHE"] = os.environ["FARMS_VIZ_CACHE"]
    common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                  runtime_env={"env_vars": env})
    try:
        with _environ(LOCAL_RAY_ENV if local else {}):  # processes started here inherit it
            if address:
                ray.init(address=address, **common)
            else:
                ray.init(num_cpus=num_cpus or max(1, min(os.cpu_count() or 1, LOCAL_CPUS)), **common)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError: all mean "no cluster"
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise FarmsError(f"cannot start or reach {where} ({first}).") from None
    _CONNECTED["address"] = address
    return ray


def _is_loopback(address: str) -> bool:
    """Whether a Ray address (``host:port``, ``ray://host:port``) names this machine's loopback."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _job(ref: TensorRef) -> FileTensor | StoredTensor:
    if ref.origin is not None:
        return FileTensor(ref.layer, tuple(ref.shape), ref.dtype, ref.kind, *ref.origin)
    return StoredTensor(ref.layer, tuple(ref.shape), ref.dtype, ref.kind)


def analyze_refs(refs: list[TensorRef], settings: Settings, *, executor: str = "ray", address: str | None = None,
                 cache: bool = True, progress: Progress | None = None, max_in_flight: int | None = None
                 ) -> tuple[list[dict], dict[str, LayerSpectra]]:
    """Rows (in ``refs`` order) and spectra of ``refs``, computed as Ray tasks.

    ``progress(done, total, layer)`` is called once before the first result, after each
    finished layer (``layer`` is the one that just finished) and once at the end.
    At most ``max_in_flight`` tasks (default: twice the CPUs or GPUs of the cluster) are
    submitted at a time, which bounds what in-memory tensors occupy in the object store.
    """
    if executor != "ray":
        raise FarmsError(f"Unknown executor {executor!r}; choose local or ray.")
    ray = connect(address)
    resources = ray.cluster_resources()
    if settings.device == "cuda":
        slots = int(resources.get("GPU", 0))
        if slots < 1:
            raise FarmsError("device cuda asks one GPU per task, but the Ray cluster has no GPUs; use device cpu.")
        opts = dict(num_cpus=1, num_gpus=1)
    else:
        slots = max(1, int(resources.get("CPU", 1)))
        opts = dict(num_cpus=1)
    remote = ray.remote(analyze_task).options(max_retries=MAX_RETRIES, retry_exceptions=False, **opts)
    limit = max_in_flight or 2 * slots
    n = len(refs)
    results: list[tuple[dict, LayerSpectra | None] | None] = [None] * n
    pending: dict = {}
    nxt = done = 0
    if progress:
        progress(0, n, refs[0].layer if refs else "")
    while nxt < n or pending:
        while nxt < n and len(pending) < limit:
            ref, job = refs[nxt], _job(refs[nxt])
            if isinstance(job, FileTensor):
                pending[remote.remote(job, settings, cache)] = nxt
            else:
                try:
                    tensor = ref.load()
                    tensor = ray.put(tensor.detach().cpu() if isinstance(tensor, torch.Tensor) else tensor)
                except FarmsError as e:  # as analyze_layer would report it
                    row = empty_row(ref)
                    row["status"] = str(e)
                    results[nxt] = (row, None)
                    done += 1
                    nxt += 1
                    continue
                pending[remote.remote(job, settings, cache, tensor)] = nxt
                del tensor  # the task holds it now; it leaves the store when the task is done
            nxt += 1
        if not pending:
            continue
        ready, _ = ray.wait(list(pending), num_returns=1)
        for obj in ready:
            i = pending.pop(obj)
            try:
                results[i] = ray.get(obj)
            except Exception as e:  # RayTaskError (the task raised), WorkerCrashedError after retries, ...
                row = empty_row(refs[i])
                row["status"] = failure_status(e)
                results[i] = (row, None)
            done += 1
            if progress and done < n:
                progress(done, n, refs[i].layer)
    if progress:
        progress(n, n, "")
    rows = [r for r, _ in results]
    spectra = {refs[i].layer: s for i, (_, s) in enumerate(results) if s is not None}
    return rows, spectra
