"""Sources: every file format round-trips to the same table as the nn.Module; bad inputs fail politely."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from farms_viz import FarmsError, analyze
from farms_viz.io.sources import ModuleSource, natural_key
from farms_viz.pipeline.sources import open_source

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(window=16, ops=3, include_embeddings=True)
COMPARED = ["layer", "kind", "rows", "cols", "alpha_raw", "alpha_farms", "status"]


class Conv1D(nn.Module):
    """Same layout as transformers.pytorch_utils.Conv1D (weight stored in x out)."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.1)
        self.bias = nn.Parameter(torch.zeros(nf))


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = Conv1D(96, 32)  # stored 32 x 96, analysed as 96 x 32
        self.c_proj = Conv1D(32, 32)


class Tiny(nn.Module):
    """Linear (12 of them, to test layer.9 < layer.10), Conv2d, depthwise Conv2d, Embedding, HF Conv1D."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(100, 32)
        self.conv = nn.Conv2d(3, 24, 3)
        self.dw = nn.Conv2d(24, 24, 3, groups=24)
        self.norm = nn.LayerNorm(32)
        self.attn = Attn()
        self.layers = nn.ModuleList([nn.Linear(32, 48 if i % 2 == 0 else 32) for i in range(12)])
        self.register_buffer("position_ids", torch.arange(16).expand(1, -1).clone())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small matrices: one thread is several times faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> Tiny:
    return Tiny()


@pytest.fixture(scope="module")
def reference(model) -> pd.DataFrame:
    return _table(model)


def _table(src) -> pd.DataFrame:
    t = analyze(src, **SMALL).table
    return t[COMPARED].sort_values("layer").reset_index(drop=True)


def _sd(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _hf_folder(folder: Path, sd: dict, fmt: str, shards: int, model_type: str = "gpt2") -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    keys = list(sd)
    parts = [keys[i::shards] for i in range(shards)]
    weight_map = {}
    for i, part in enumerate(parts, 1):
        if fmt == "safetensors":
            name = "model.safetensors" if shards == 1 else f"model-{i:05d}-of-{shards:05d}.safetensors"
            save_file({k: sd[k] for k in part}, str(folder / name))
        else:
            name = "pytorch_model.bin" if shards == 1 else f"pytorch_model-{i:05d}-of-{shards:05d}.bin"
            torch.save({k: sd[k] for k in part}, folder / name)
        weight_map.update({k: name for k in part})
    if shards > 1:
        index = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
        (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def test_module_source_finds_each_layer_kind(model):
    kinds = {r.layer: r.kind for r in ModuleSource(model).tensors()}
    assert kinds["embed"] == "embedding" and kinds["conv"] == "conv2d"
    assert kinds["dw"] == "conv2d_depthwise" and kinds["attn.c_attn"] == "conv1d_hf"
    assert kinds["layers.11"] == "linear" and "norm" not in kinds and len(kinds) == 17


def test_hf_gpt2_folder_matches_module_exactly(model, reference, tmp_path):
    folder = _hf_folder(tmp_path / "gpt2", _sd(model), "safetensors", shards=2)
    got = _table(str(folder))
    pd.testing.assert_frame_equal(got, reference)
    row = got.set_index("layer").loc["attn.c_attn"]
    assert (row["kind"], row["rows"], row["cols"]) == ("conv1d_hf", 96, 32)


@pytest.mark.parametrize("fmt,shards", [("safetensors", 1), ("bin", 1), ("bin", 2)])
def test_hf_folder_variants_match_module(model, reference, tmp_path, fmt, shards):
    folder = _hf_folder(tmp_path / "m", _sd(model), fmt, shards)
    pd.testing.assert_frame_equal(_table(folder), reference)


def _non_hf(t: pd.DataFrame) -> pd.DataFrame:
    """Without the Conv1D rows: a bare file has no config.json saying the model is GPT-2-like."""
    return t[~t["layer"].str.startswith("attn.")].reset_index(drop=True)


@pytest.mark.parametrize("variant", ["safetensors", "pt", "bin", "pth-nested", "pt-legacy", "pt-dataparallel",
                                     "folder-of-safetensors", "folder-of-pt"])
def test_file_formats_match_module(model, reference, tmp_path, variant):
    sd = _sd(model)
    if variant == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(sd, str(path))
    elif variant in ("pt", "bin"):
        path = tmp_path / f"w.{variant}"
        torch.save(sd, path)
    elif variant == "pth-nested":
        path = tmp_path / "ckpt.pth"
        torch.save({"epoch": 3, "state_dict": sd, "lr": 0.1}, path)
    elif variant == "pt-legacy":
        path = tmp_path / "old.pt"
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    elif variant == "pt-dataparallel":
        path = tmp_path / "dp.pt"
        torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, path)
    else:
        path = tmp_path / "folder"
        path.mkdir()
        keys = list(sd)
        for i, part in enumerate((keys[:9], keys[9:])):
            if variant == "folder-of-safetensors":
                save_file({k: sd[k] for k in part}, str(path / f"part{i}.safetensors"))
            else:
                torch.save({k: sd[k] for k in part}, path / f"part{i}.pt")
    got = _table(path)
    pd.testing.assert_frame_equal(_non_hf(got), _non_hf(reference))


def test_files_list_layers_in_natural_order(model, tmp_path):
    save_file(_sd(model), str(tmp_path / "w.safetensors"))
    layers = [r.layer for r in open_source(tmp_path / "w.safetensors").tensors()]
    assert layers.index("layers.9") < layers.index("layers.10")
    assert layers == sorted(layers, key=natural_key)
    assert "position_ids" not in layers and "norm" not in layers


def test_half_precision_loads_and_integer_weights_get_a_status(tmp_path):
    torch.manual_seed(1)
    w = torch.randn(64, 32)
    save_file({"a.weight": w.half(), "b.weight": w.bfloat16(), "c.weight": w,
               "q.weight": torch.randint(-8, 8, (64, 32), dtype=torch.int8),
               "emb.position_ids": torch.arange(8)[None]}, str(tmp_path / "mixed.safetensors"))
    t = analyze(tmp_path / "mixed.safetensors", window=16, ops=3).table.set_index("layer")
    assert list(t.index) == ["a", "b", "c", "q"]
    assert (t.loc[["a", "b", "c"], "status"] == "ok").all()
    np.testing.assert_allclose(t.loc["a", "alpha_raw"], t.loc["c", "alpha_raw"], rtol=1e-2)
    assert t.loc["q", "dtype"] == "int8" and "int8" in t.loc["q", "status"]


def test_content_id_changes_when_weights_change(tmp_path):
    p = tmp_path / "w.safetensors"
    save_file({"a.weight": torch.zeros(4, 4)}, str(p))
    before = open_source(p).content_id()
    assert open_source(p).content_id() == before
    save_file({"a.weight": torch.ones(4, 4)}, str(p))
    assert open_source(p).content_id() != before


# ---------------------------------------------------------------- hostile pickles

class Hostile:
    """Unpickling this would run ``touch marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pt"
    torch.save({"fc.weight": torch.randn(8, 8), "payload": Hostile(marker)}, path)
    with pytest.raises(FarmsError) as e:
        analyze(path, window=4, ops=2)
    msg = str(e.value)
    assert "hostile.pt" in msg and "nothing in it was executed" in msg and "safetensors" in msg
    assert not marker.exists()


def test_hostile_pickle_through_the_cli_exits_cleanly(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pt"
    torch.save({"payload": Hostile(marker)}, path)
    out = tmp_path / "x.csv"
    r = subprocess.run([sys.executable, "-m", "farms_viz", "analyze", str(path), "--out", str(out), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "hostile.pt" in r.stderr
    assert not marker.exists() and not out.exists()


def test_whole_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(nn.Linear(4, 4), path)
    with pytest.raises(FarmsError, match="module.pt.*nothing in it was executed"):
        open_source(path)


# ---------------------------------------------------------------- bad inputs

def _truncated_safetensors(p: Path) -> None:
    save_file({"a.weight": torch.randn(64, 64)}, str(p))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _impossible_offsets(p: Path) -> None:
    header = json.dumps({"a.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 10**9]}}).encode()
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)


def _truncated_pt(p: Path) -> None:
    torch.save({"a.weight": torch.randn(64, 64)}, p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


BAD_FILES = {
    "empty.safetensors": lambda p: p.write_bytes(b""),
    "empty.pt": lambda p: p.write_bytes(b""),
    "random.safetensors": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
    "random.bin": lambda p: p.write_bytes(np.random.default_rng(1).bytes(4096)),
    "truncated.safetensors": _truncated_safetensors,
    "offsets.safetensors": _impossible_offsets,
    "config.safetensors": lambda p: p.write_text(json.dumps({"model_type": "bert", "hidden_size": 384})),
    "notes.pt": lambda p: p.write_text("these are not weights\n"),
    "truncated.pt": _truncated_pt,
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_raises_one_sentence_naming_it(tmp_path, name):
    p = tmp_path / name
    BAD_FILES[name](p)
    with pytest.raises(FarmsError) as e:
        analyze(p, window=8, ops=2)
    msg = str(e.value)
    assert name in msg and "\n" not in msg and "Traceback" not in msg


def test_missing_path(tmp_path):
    with pytest.raises(FarmsError, match="nope.safetensors does not exist"):
        open_source(tmp_path / "nope.safetensors")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FarmsError, match="empty.*no weight files"):
        open_source(tmp_path / "empty")


def test_hf_folder_with_a_missing_shard(model, tmp_path):
    folder = _hf_folder(tmp_path / "m", _sd(model), "safetensors", shards=2)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FarmsError, match="model-00002-of-00002.safetensors"):
        open_source(folder)


def test_unknown_zoo_name_suggests_the_list():
    with pytest.raises(FarmsError) as e:
        open_source("minilmm")
    assert "minilmm" in str(e.value) and "farms-viz zoo" in str(e.value) and "'minilm'" in str(e.value)


def test_unreachable_hub_id_fails_fast_in_one_sentence(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(FarmsError) as e:
        open_source("org/does-not-exist")
    assert "org/does-not-exist" in str(e.value) and "hub" in str(e.value)
    assert time.perf_counter() - t0 < 30


def test_tensor_bigger_than_memory_is_refused_before_loading(tmp_path, monkeypatch):
    import farms_viz.io.formats as formats

    save_file({"a.weight": torch.randn(64, 64)}, str(tmp_path / "w.safetensors"))
    monkeypatch.setattr(formats, "available_memory", lambda: 1000)
    monkeypatch.setattr(formats, "MEMORY_CHECK_FROM", 0)
    ref = next(open_source(tmp_path / "w.safetensors").tensors())
    with pytest.raises(FarmsError, match="w.safetensors.*memory"):
        ref.load()


# ---------------------------------------------------------------- streaming memory bound

STREAM_SCRIPT = textwrap.dedent("""
    import resource, sys
    from farms_viz import analyze
    import farms_viz.pipeline.analyze, farms_viz.core.spectra, farms_viz.core.fits, farms_viz.core.matrices, farms_viz.core.mp
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = analyze(sys.argv[1], window=64, ops=2)
    assert (report.table["status"] == "ok").all(), report.table["status"].tolist()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) * 1024, len(report.table))
""")


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_streaming_keeps_peak_memory_well_below_file_size(tmp_path, fmt):
    g = torch.Generator().manual_seed(0)
    sd = {f"layers.{i}.weight": torch.randn(512, 4096, generator=g) for i in range(24)}  # 24 x 8 MiB
    path = tmp_path / f"big.{fmt}"
    if fmt == "safetensors":
        save_file(sd, str(path))
    else:
        torch.save(sd, path)
    del sd
    size = path.stat().st_size
    r = subprocess.run([sys.executable, "-c", STREAM_SCRIPT, str(path)], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    growth, n = map(int, r.stdout.split())
    assert n == 24
    assert growth < size / 2, f"peak RSS grew {growth / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"


@pytest.mark.parametrize("header_len", [0x580, 0x280, 0x380, 0x480])
def test_a_safetensors_header_length_that_reads_like_a_pickle_opcode_is_still_safetensors(tmp_path, header_len):
    """Bytes 80 0N start a pickle (protocol N) and also a safetensors header of 0xN80 bytes."""
    from farms_viz.io.formats import sniff_format

    w = torch.randn(8, 4)
    raw = json.dumps({"w.weight": {"dtype": "F32", "shape": [8, 4], "data_offsets": [0, 128]}}).encode()
    raw = raw + b" " * (header_len - len(raw))
    p = tmp_path / "w.safetensors"
    p.write_bytes(header_len.to_bytes(8, "little") + raw + w.numpy().tobytes())
    assert p.read_bytes()[:2] == bytes([0x80, header_len >> 8])
    assert sniff_format(p) == "safetensors"
    torch.testing.assert_close(next(iter(open_source(str(p)).tensors())).load(), w)
