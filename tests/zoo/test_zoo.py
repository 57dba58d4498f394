"""The zoo: every entry loads offline, with the layers and shapes its summary promises."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch

from farms_viz import FarmsError, analyze
from farms_viz.io.sources import ModuleSource
from farms_viz.pipeline.schema import COLUMNS
from farms_viz.pipeline.sources import open_source
from farms_viz.zoo import digits
from farms_viz.zoo import registry as zoo

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(window=32, ops=2)


@pytest.fixture(scope="module", autouse=True)
def offline_cache(tmp_path_factory):
    """No network, and the digits models built once into a private cache."""
    cache = tmp_path_factory.mktemp("cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is several times faster on a shared machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("FARMS_VIZ_CACHE", str(cache))
        digits.ensure_built()
        yield cache
    torch.set_num_threads(threads)


def _linear_shapes(name: str) -> dict:
    return {r.layer: r.shape for r in open_source(name).tensors() if r.kind == "linear"}


def test_list_entries_have_one_line_summaries():
    entries = zoo.list_entries()
    names = [e.name for e in entries]
    assert len(names) == len(set(names))
    assert {"minilm", "minilm-init", "mobilenet-v2", "efficientnet-lite0", "llama-7b-published",
            "digits-mlp@0", "digits-cnn@30"} <= set(names)
    for e in entries:
        assert e.summary and "\n" not in e.summary and callable(e.build)


def test_minilm_has_37_linear_layers_with_bert_shapes():
    refs = list(open_source("minilm").tensors())
    lin = {r.layer: r.shape for r in refs if r.kind == "linear"}
    assert len(lin) == 37
    assert Counter(lin.values()) == {(384, 384): 6 * 4 + 1, (1536, 384): 6, (384, 1536): 6}
    assert lin["pooler.dense"] == (384, 384)
    assert lin["encoder.layer.5.intermediate.dense"] == (1536, 384)
    assert {r.layer for r in refs if r.kind == "embedding"} == {
        "embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings"}
    assert not any("LayerNorm" in r.layer or "position_ids" in r.layer for r in refs)


def test_minilm_init_has_the_same_layer_names_and_order():
    trained = [r.layer for r in open_source("minilm").tensors()]
    src = open_source("minilm-init")
    assert isinstance(src, ModuleSource)
    assert [r.layer for r in src.tensors()] == trained
    assert _linear_shapes("minilm-init") == _linear_shapes("minilm")


def test_minilm_analyses_with_status_ok():
    t = analyze("minilm", **SMALL).table
    assert len(t) == 37 and (t["status"] == "ok").all()
    assert t["alpha_raw"].between(1, 20).all()


def test_cnn_zoo_conv_kinds():
    for name, n_conv, n_dw in (("mobilenet-v2", 52, 17), ("efficientnet-lite0", 49, 16)):
        refs = list(open_source(name).tensors())
        kinds = Counter(r.kind for r in refs)
        assert kinds["conv2d"] + kinds["conv2d_depthwise"] == n_conv and kinds["conv2d_depthwise"] == n_dw
        assert kinds["linear"] == 1
        dw = next(r for r in refs if r.kind == "conv2d_depthwise")
        assert dw.shape[1] == 1 and dw.shape[2] * dw.shape[3] > 1


@pytest.mark.parametrize("name", ["mobilenet-v2", "efficientnet-lite0"])
def test_cnn_zoo_analyses_with_status_ok(name):
    t = analyze(name, preset="cnn", **SMALL).table
    assert (t["status"] == "ok").mean() > 0.9
    dw = t[t["kind"] == "conv2d_depthwise"].iloc[0]
    assert dw["cols"] == 1 and dw["n_slices"] in (9, 25)  # kh*kw slices of out x 1, as the release and WW
    pw = t[(t["kind"] == "conv2d") & (t["n_slices"] == 1)]
    assert len(pw) > 10  # 1x1 convs: one slice each


def test_digits_models_learn_and_record_accuracy():
    acc = digits.accuracy()["test_accuracy"]
    for arch in digits.ARCHS:
        assert acc[arch]["0"] < 0.3 and acc[arch]["30"] > 0.9
        assert acc[arch]["30"] >= acc[arch]["1"]
    entry = next(e for e in zoo.list_entries() if e.name == "digits-mlp@30")
    assert f"{acc['mlp']['30']:.3f}" in entry.summary


@pytest.mark.parametrize("name", [f"digits-{a}@{e}" for a in digits.ARCHS for e in digits.EPOCHS])
def test_digits_entries_analyse(name):
    t = analyze(name, preset="cnn", window=16, ops=2).table
    expected = ["fc1", "fc2", "fc3"] if "mlp" in name else ["conv1", "conv2", "fc1", "fc2"]
    assert list(t["layer"]) == expected
    assert (t["status"] == "ok").sum() >= len(expected) - 1


def test_digits_checkpoints_change_with_training():
    a = open_source("digits-mlp@0").content_id()
    assert a != open_source("digits-mlp@30").content_id()
    assert a == open_source("digits-mlp@0").content_id()


@pytest.mark.slow
def test_digits_build_is_deterministic_and_concurrency_safe(tmp_path):
    """Two processes building into the same empty cache both succeed; the files equal the first build's."""
    env = {**os.environ, "FARMS_VIZ_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "farms_viz.zoo.digits"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate() for p in procs]  # reads and closes both pipes
    assert [p.returncode for p in procs] == [0, 0], outs
    new, old = tmp_path / "digits" / digits.VERSION, digits.cache_dir()
    for arch in digits.ARCHS:
        for e in digits.EPOCHS:
            name = digits.checkpoint_name(arch, e)
            assert (new / name).read_bytes() == (old / name).read_bytes()


def test_llama_published_is_metrics_only_in_file_order():
    src = open_source("llama-7b-published")
    assert list(src.tensors()) == []
    m = analyze("llama-7b-published").table  # laid out as a report: every column, absent ones NaN
    csv = pd.read_csv(zoo.LLAMA_CSV)
    assert len(m) == 224 and list(m["layer"]) == list(csv["layer"])
    assert set(COLUMNS) <= set(m.columns) and "block" in m.columns
    assert (m["kind"] == "linear").all() and (m["status"] == "published alphas (no weights)").all()
    pd.testing.assert_series_equal(m["alpha_farms"], csv["alpha_farms"])
    assert m["aspect_ratio"].max() == pytest.approx(11008 / 4096)
    assert m["xmin_raw"].isna().all()
    rep = analyze("llama-7b-published")
    assert rep.metrics_only and len(rep.table) == 224


def test_unknown_zoo_name():
    with pytest.raises(FarmsError, match="farms-viz zoo"):
        zoo.open_zoo("resnet-9000")


def test_cli_zoo_and_analyze_minilm(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "farms_viz", "zoo"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0 and "minilm" in r.stdout and "llama-7b-published" in r.stdout
    out = tmp_path / "m.csv"
    r = subprocess.run([sys.executable, "-m", "farms_viz", "analyze", "minilm", "--out", str(out), "--quiet",
                        "--window", "32", "--ops", "2"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(out)) == 37
