"""analyze(executor="ray"): the same table as the local executor, failures as statuses, the CLI."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from farms_viz import FarmsError, analyze
from farms_viz.io.sources import DictSource, Source, TensorRef, natural_key
from farms_viz.pipeline.sources import open_source

pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'farms-viz[ray]')")

from farms_viz.pipeline import ray as distributed  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OPTS = dict(window=48, ops=4, cache=False)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs, started the way analyze() starts one; one torch thread per task."""
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # Ray's own default for 1-CPU tasks, made explicit
    ray = distributed.connect(num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()
        distributed._CONNECTED.clear()
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old


@pytest.fixture
def one_thread():
    """The local executor with the workers' thread count, so float32 reductions match bit for bit."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    t = {f"blocks.{i}.mlp.weight": torch.randn(96 + 40 * i, 64, generator=g) for i in range(4)}
    t["blocks.10.attn.weight"] = torch.randn(64, 64, generator=g).half()  # natural order: after blocks.3
    t["conv.weight"] = torch.randn(24, 8, 3, 3, generator=g)
    nan = torch.randn(80, 40, generator=g)
    nan[2, 3] = float("nan")
    t["nan.weight"] = nan
    t["zero.weight"] = torch.zeros(32, 32)
    return t


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="seconds").reset_index(drop=True),
                                  b.drop(columns="seconds").reset_index(drop=True), check_exact=True)


def test_ray_table_equals_local_on_a_safetensors_file_with_failing_layers(ray_cluster, one_thread, tmp_path):
    t = _tensors()
    t["f8.weight"] = torch.randn(40, 24).to(torch.float8_e4m3fn)  # raises inside the task today
    path = tmp_path / "model.safetensors"
    save_file(t, str(path))
    seen = []
    remote = analyze(path, executor="ray", progress=lambda d, n, layer: seen.append((d, n, layer)), **OPTS)
    others = [k[:-len(".weight")] for k in t if k != "f8.weight"]  # RE2 filters: no look-ahead
    local = analyze(path, layers="^(" + "|".join(others) + ")$", **OPTS)
    tab = remote.table
    assert list(tab["layer"]) == sorted((k[:-len(".weight")] for k in t), key=natural_key)
    _same(tab[tab["layer"] != "f8"], local.table)
    assert tab.set_index("layer").loc["nan", "status"].startswith("1 NaN or Inf entries")
    assert tab.set_index("layer").loc["zero", "status"] == "all entries are zero; the spectrum is empty"
    # the layer whose task raises: its error is its status (or, should float8 become supported, the local row)
    try:
        f8_local = analyze(path, layers="^f8$", **OPTS).table
    except Exception as e:  # noqa: BLE001
        f8 = tab.set_index("layer").loc["f8"]
        assert f8["status"] == f"failed on the Ray cluster: {type(e).__name__}: {str(e).splitlines()[0]}"
        assert np.isnan(f8["alpha_raw"]) and np.isnan(f8["alpha_farms"]) and "f8" not in remote.spectra
    else:
        _same(tab[tab["layer"] == "f8"], f8_local)
    for name, spec in local.spectra.items():
        assert np.array_equal(spec.esd_raw, remote.spectra[name].esd_raw)
        assert np.array_equal(spec.esd_farms, remote.spectra[name].esd_farms)
        assert spec.grid == remote.spectra[name].grid
    n = len(tab)
    assert [d for d, _, _ in seen] == list(range(n + 1)) and all(m == n for _, m, _ in seen)
    assert seen[-1] == (n, n, "") and {layer for _, _, layer in seen[1:-1]} <= set(tab["layer"])


def test_file_tasks_get_a_path_and_a_key_not_the_weights(tmp_path):
    save_file({"a.weight": torch.randn(300, 200)}, str(tmp_path / "m.safetensors"))
    ref = next(open_source(tmp_path / "m.safetensors").tensors())
    job = distributed._job(ref)
    assert job == distributed.FileTensor("a", (300, 200), "float32", "linear",
                                         str((tmp_path / "m.safetensors").absolute()), "a.weight")
    assert len(pickle.dumps(job)) < 1000
    assert torch.equal(job.ref().load(), ref.load())


class _BrokenSource(Source):
    """In-memory tensors plus one whose 'tensor' is a list: analysing it raises in the task."""

    name = "broken"

    def __init__(self, tensors):
        self.inner = DictSource(tensors)

    def tensors(self):
        refs = list(self.inner.tensors())
        refs.insert(1, TensorRef("broken", (8, 8), "float32", "linear", lambda: [[1.0] * 8] * 8))
        yield from refs


def test_in_memory_sources_go_through_the_object_store_and_a_raising_task_is_a_status(ray_cluster, one_thread):
    t = _tensors()
    remote = analyze(_BrokenSource(t), executor="ray", **OPTS)
    local = analyze(dict(t), **OPTS)
    tab = remote.table
    assert list(tab["layer"]) == [list(local.table["layer"])[0], "broken", *list(local.table["layer"])[1:]]
    _same(tab[tab["layer"] != "broken"], local.table)
    broken = tab.set_index("layer").loc["broken"]
    # the task's own layer analysis turns the exception into the layer's status, as it does locally
    assert broken["status"] == "internal error: AttributeError: 'list' object has no attribute 'is_floating_point'"
    assert broken["kind"] == "linear" and (broken["rows"], broken["cols"]) == (8, 8)
    m = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 32))
    _same(analyze(m, executor="ray", **OPTS).table, analyze(m, **OPTS).table)


def test_cli_executor_ray_writes_the_local_table(ray_cluster, tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(_tensors(), str(path))
    address = ray_cluster.get_runtime_context().gcs_address
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    args = [str(path), "--window", "48", "--ops", "4", "--no-cache"]
    r = subprocess.run([sys.executable, "-m", "farms_viz", "analyze", *args, "--out", str(tmp_path / "ray.csv"),
                        "--executor", "ray", "--address", address], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "8 layers, 6 analysed, 2 with a status" in r.stdout
    assert "8/8" in r.stderr  # the progress bar reached the end
    subprocess.run([sys.executable, "-m", "farms_viz", "analyze", *args, "--out", str(tmp_path / "local.csv"),
                    "--quiet"], check=True, env=env, timeout=120)
    _same(pd.read_csv(tmp_path / "ray.csv"), pd.read_csv(tmp_path / "local.csv"))


def test_cli_address_needs_the_ray_executor(tmp_path, capsys):
    from farms_viz.cli import main

    assert main(["analyze", "minilm", "--out", str(tmp_path / "t.csv"), "--address", "127.0.0.1:6379"]) == 2
    assert "--executor ray" in capsys.readouterr().err


def test_without_ray_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(FarmsError, match=r"install farms-viz\[ray\]"):
        distributed.import_ray()
    with pytest.raises(FarmsError, match=r"install farms-viz\[ray\]"):
        analyze({"w.weight": torch.randn(16, 8)}, executor="ray", cache=False)


def test_unknown_executor_is_refused():
    with pytest.raises(FarmsError, match="Unknown executor 'dask'"):
        analyze({"w.weight": torch.randn(16, 8)}, executor="dask", cache=False)


def test_failure_status_names_the_original_error():
    class Wrapped(Exception):
        cause = MemoryError("CUDA out of memory.\nTried to allocate 2 GiB")

    assert distributed.failure_status(Wrapped()) == "failed on the Ray cluster: MemoryError: CUDA out of memory."
    assert distributed.failure_status(RuntimeError()) == "failed on the Ray cluster: RuntimeError"


@pytest.mark.parametrize("address, loopback", [("127.0.0.1:6379", True), ("localhost:6379", True),
                                               ("ray://127.0.0.1:10001", True), ("[::1]:6379", True),
                                               ("10.0.0.5:6379", False), ("ray://head:10001", False)])
def test_loopback_addresses_are_recognised(address, loopback):
    assert distributed._is_loopback(address) is loopback
