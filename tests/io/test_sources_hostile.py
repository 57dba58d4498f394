"""Hostile and damaged inputs to the sources (issue 20): each is refused with one sentence, quickly,
or read correctly; never analysed as "ok" with wrong numbers, never hanging, never a traceback.

Files are built in tmp_path by ``hostilekit``; every case has a variant besides the reported one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hostilekit import (
    deep_dict_pt,
    deep_json,
    hf_folder,
    many_tensors,
    pickle_bomb_pt,
    record_bomb_pt,
    rezip,
    short_record_pt,
    strided_view_pt,
    write_index,
)
from safetensors.torch import save_file

import farms_viz.io.formats as formats
import farms_viz.io.sources as sources
import farms_viz.io.torchfile as torchfile
from farms_viz import FarmsError, analyze
from farms_viz.io.formats import read_npy
from farms_viz.pipeline.sources import open_source

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(window=16, ops=2, cache=False)


def _weights(n: int = 3, rows: int = 60, cols: int = 20, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {f"layers.{i}.weight": torch.randn(rows, cols, generator=g) for i in range(n)}


def _one_sentence(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 600, msg
    return msg


def _load_all(src) -> dict:
    return {r.layer: r.load() for r in src.tensors()}


# ---------------------------------------------------------------- storage records that lie

@pytest.mark.parametrize("record,short", [("0", 28), ("1", 28), ("2", 4), ("1", 2400)])
def test_short_storage_record_is_refused_not_analysed(tmp_path, record, short):
    path = short_record_pt(tmp_path, _weights(), record, short)
    with pytest.raises(FarmsError) as e:
        analyze(path, **SMALL)
    msg = _one_sentence(e)
    assert path.name in msg and f"data/{record}" in msg and "truncated" in msg


def test_longer_storage_record_is_refused(tmp_path):
    honest = tmp_path / "w.pt"
    torch.save(_weights(), honest)
    path = rezip(honest, tmp_path / "long.pt", edit=lambda n, d: d + b"\0" * 8 if n.endswith("/data/1") else d)
    with pytest.raises(FarmsError, match="data/1 holds"):
        open_source(path)


def test_missing_storage_record_is_refused(tmp_path):
    honest = tmp_path / "w.pt"
    torch.save(_weights(), honest)
    path = tmp_path / "gone.pt"
    import zipfile

    with zipfile.ZipFile(honest) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            if not info.filename.endswith("/data/2"):
                zout.writestr(info.filename, zin.read(info))
    with pytest.raises(FarmsError, match="data/2, which is missing"):
        open_source(path)


def test_tensors_read_at_their_offsets_equal_torch_load(tmp_path):
    """Views into shared storages, transposes, half precision, empty and nested entries all come back exact."""
    w = torch.randn(10, 6)
    sd = {"a.weight": w, "tied.weight": w, "slice.weight": w[2:5], "t.weight": torch.randn(3, 4).t(),
          "h.weight": torch.randn(4, 4).half(), "b.weight": torch.randn(5, 5).bfloat16(),
          "e.weight": torch.zeros(0, 3), "inner": {"fc.weight": torch.randn(7, 2)}}
    path = tmp_path / "views.pt"
    torch.save(sd, path)
    ref = torch.load(path, weights_only=True)
    f = sources.open_weights_file(path)
    flat = {**{k: v for k, v in ref.items() if k != "inner"}, "inner.fc.weight": ref["inner"]["fc.weight"]}
    assert list(f.entries) == list(flat)
    for k, v in flat.items():
        got = f.load(k)
        assert got.dtype == v.dtype and got.shape == v.shape and torch.equal(got, v), k


def test_extra_zip_entries_do_not_change_what_is_read(tmp_path):
    """``archive/metadata.pkl`` (or any other entry) is not taken for the checkpoint's ``data.pkl``."""
    import zipfile

    path = tmp_path / "extra.pt"
    sd = _weights(2)
    torch.save(sd, path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("extra/metadata.pkl", b"not a pickle")
    got = _load_all(open_source(path))
    assert all(torch.equal(got[k.removesuffix(".weight")], v) for k, v in sd.items())


def test_deflated_honest_records_load_exactly(tmp_path):
    """A re-zipped checkpoint whose records are deflated (ratio ~1.1) is honest and read in full."""
    honest = tmp_path / "w.pt"
    sd = _weights()
    torch.save(sd, honest)
    path = rezip(honest, tmp_path / "deflated.pt", compress=lambda n: True)
    got = _load_all(open_source(path))
    assert all(torch.equal(got[k.removesuffix(".weight")], v) for k, v in sd.items())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_quantized_tensors_fall_back_to_a_whole_load_and_get_a_status(tmp_path):
    """Quantized tensors have no meta-device form: the file (its zip directory checked) is loaded whole."""
    path = tmp_path / "q.pt"
    q = torch.quantize_per_tensor(torch.randn(8, 8), 0.1, 0, torch.qint8)
    torch.save({"q.weight": q, "fc.weight": torch.randn(60, 20)}, path)
    t = analyze(path, **SMALL).table.set_index("layer")
    assert t.loc["fc", "status"] == "ok" and "qint8" in t.loc["q", "status"]


# ---------------------------------------------------------------- zip bombs, views, tensor counts

@pytest.mark.parametrize("kind,size", [("pickle", 8 * 2**20), ("pickle", 64 * 2**20),
                                       ("record", 1024), ("record", 4096)])
def test_zip_bomb_is_refused_before_expanding(tmp_path, kind, size):
    path = pickle_bomb_pt(tmp_path, size) if kind == "pickle" else record_bomb_pt(tmp_path, size, size)
    t0 = time.perf_counter()
    with pytest.raises(FarmsError) as e:
        open_source(path)
    assert "zip bomb" in _one_sentence(e) and path.name in str(e.value)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("make", ["strided", "expanded"])
def test_view_far_larger_than_its_storage_is_refused_per_layer(tmp_path, make, legacy):
    side = 3000
    g = torch.Generator().manual_seed(0)
    if make == "strided":
        view = torch.randn(2 * side, generator=g).as_strided((side, side), (1, 1))
    else:  # one row repeated: stride (0, 1)
        view = torch.randn(side, generator=g).expand(side, side)
    path = tmp_path / "view.pt"
    torch.save({"view.weight": view, "fc.weight": torch.randn(60, 20, generator=g)}, path,
               _use_new_zipfile_serialization=not legacy)
    t0 = time.perf_counter()
    t = analyze(path, **SMALL).table.set_index("layer")
    assert time.perf_counter() - t0 < 5
    assert "view" in t.loc["view", "status"] and "stored values" in t.loc["view", "status"]
    assert t.loc["fc", "status"] == "ok"


def test_small_repeating_views_and_the_strided_builder_still_load(tmp_path):
    """The bound is on size: a small broadcast view is read (and equals torch.load's)."""
    path = tmp_path / "small.pt"
    row = torch.randn(16)
    torch.save({"b.weight": row.expand(16, 16)}, path)
    assert torch.equal(_load_all(open_source(path))["b"], row.expand(16, 16))
    big = strided_view_pt(tmp_path, 3000)
    with pytest.raises(FarmsError, match="view of only 5999 stored values"):
        next(open_source(big).tensors()).load()


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_each_file_is_parsed_once_however_many_tensors(tmp_path, monkeypatch, fmt):
    calls = []
    for mod, name in ((torchfile, "_unpickle_meta"), (formats, "_safetensors_header")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, real=real, name=name: calls.append(name) or real(*a))
    path = many_tensors(tmp_path, 300, fmt)
    got = _load_all(open_source(path))
    assert len(got) == 300 and len(calls) == 1


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_opening_cost_grows_linearly_with_the_tensor_count(tmp_path, fmt):
    def cost(n):
        path = many_tensors(tmp_path, n, fmt)
        best = float("inf")
        for _ in range(3):  # best of 3: the machine is shared
            t0 = time.perf_counter()
            _load_all(open_source(path))
            best = min(best, time.perf_counter() - t0)
        return best

    small, large = cost(1000), cost(4000)
    assert large / small < 10, f"4x the tensors cost {large / small:.1f}x the time (quadratic would be 16x)"


# ---------------------------------------------------------------- files that are not files

def _unhang(fifo: Path, after: float = 5.0) -> threading.Timer:
    """If the code under test hangs opening ``fifo``, open its write end after ``after`` s to release it."""
    def release():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    timer = threading.Timer(after, release)
    timer.start()
    return timer


@pytest.mark.parametrize("name", ["model.safetensors", "weights.pt", "noext"])
def test_fifo_named_as_the_model_is_refused_at_once(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    timer = _unhang(fifo)
    t0 = time.perf_counter()
    try:
        with pytest.raises(FarmsError) as e:
            open_source(fifo)
    finally:
        timer.cancel()
    assert "FIFO" in _one_sentence(e) and time.perf_counter() - t0 < 2


def test_fifo_named_by_an_index_is_refused(tmp_path):
    folder = hf_folder(tmp_path / "m", _weights(4))
    os.mkfifo(folder / "pipe.safetensors")
    write_index(folder, {"layers.0.weight": "model-00001-of-00002.safetensors", "layers.1.weight": "pipe.safetensors"})
    timer = _unhang(folder / "pipe.safetensors")
    try:
        with pytest.raises(FarmsError, match="pipe.safetensors is a FIFO"):
            open_source(folder)
    finally:
        timer.cancel()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_character_device_is_refused_directly_and_through_a_link(tmp_path, device):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    link = tmp_path / "model.pt"
    link.symlink_to(device)
    for target in (device, link):
        with pytest.raises(FarmsError, match="character device"):
            open_source(target)


def test_fifo_through_the_cli_exits_with_a_sentence(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    cmd = [sys.executable, "-m", "farms_viz", "analyze", str(fifo), "--out", str(tmp_path / "t.csv"), "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0 and "Traceback" not in r.stderr and "FIFO" in r.stderr


# ---------------------------------------------------------------- folders whose index points outside

def _outside(tmp_path: Path) -> Path:
    p = tmp_path / "secret.safetensors"
    save_file({"stolen.weight": torch.randn(8, 8)}, str(p))
    return p


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "nested-dotdot"])
def test_index_pointing_outside_the_folder_is_refused(tmp_path, how):
    secret = _outside(tmp_path)
    folder = hf_folder(tmp_path / "m", _weights(4))
    if how == "dotdot":
        target = "../secret.safetensors"
    elif how == "absolute":
        target = str(secret)
    elif how == "nested-dotdot":
        (folder / "sub").mkdir()
        target = "sub/../../secret.safetensors"
    else:
        (folder / "link.safetensors").symlink_to(secret)
        target = "link.safetensors"
    write_index(folder, {"layers.0.weight": "model-00001-of-00002.safetensors", "stolen.weight": target})
    with pytest.raises(FarmsError) as e:
        open_source(folder)
    assert "outside" in _one_sentence(e)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors.index.json"])
def test_config_or_index_linked_out_of_the_folder_is_refused(tmp_path, name):
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"model_type": "bert", "weight_map": {"x.weight": "model-00001-of-00002.safetensors"}}))
    folder = hf_folder(tmp_path / "m", _weights(2))
    (folder / name).unlink()
    (folder / name).symlink_to(outside)
    with pytest.raises(FarmsError, match="outside"):
        open_source(folder)


def test_single_weights_file_linked_out_of_the_folder_is_refused(tmp_path):
    secret = _outside(tmp_path)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(secret)
    with pytest.raises(FarmsError, match="outside"):
        open_source(folder)
    assert "stolen" in {r.layer for r in open_source(secret).tensors()}  # named directly, it is read


def test_shards_in_a_subfolder_and_the_hub_cache_layout_are_accepted(tmp_path, monkeypatch):
    sd = _weights(4)
    folder = hf_folder(tmp_path / "m", sd)
    (folder / "sub").mkdir()
    (folder / "model-00002-of-00002.safetensors").rename(folder / "sub" / "b.safetensors")
    write_index(folder, {k: ("model-00001-of-00002.safetensors" if i % 2 == 0 else "sub/b.safetensors")
                         for i, k in enumerate(sd)})
    assert len(list(open_source(folder).tensors())) == 4
    # huggingface_hub's cache: snapshots/<rev>/<file> are links to ../../blobs/<hash>
    repo = tmp_path / "hub" / "models--org--name"
    snap, blobs = repo / "snapshots" / "abc123", repo / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    for p in folder.glob("*"):
        if p.is_file():
            (blobs / p.name).write_bytes(p.read_bytes())
            (snap / p.name).symlink_to(Path("../../blobs") / p.name)
    write_index(blobs, {k: "model-00001-of-00002.safetensors" for k in list(sd)[::2]})
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(snap))
    assert {r.layer for r in open_source("org/name").tensors()} == {"layers.0", "layers.2"}


# ---------------------------------------------------------------- JSON and config.json

@pytest.mark.parametrize("depth", [5_000, 100_000])
@pytest.mark.parametrize("kind", ["list", "dict"])
@pytest.mark.parametrize("where", ["config.json", "model.safetensors.index.json"])
def test_deeply_nested_json_is_a_sentence(tmp_path, depth, kind, where):
    folder = hf_folder(tmp_path / "m", _weights(2))
    (folder / where).write_text(deep_json(depth, kind) if kind == "list" else
                                '{"model_type": "bert", "x": ' + deep_json(depth, kind) + "}")
    with pytest.raises(FarmsError) as e:
        open_source(folder)
    assert "nests" in _one_sentence(e) or "not a JSON object" in str(e.value)


def test_deeply_nested_safetensors_header_is_a_sentence(tmp_path):
    raw = ('{"__metadata__": ' + deep_json(50_000, "dict") + "}").encode()
    p = tmp_path / "deep.safetensors"
    p.write_bytes(len(raw).to_bytes(8, "little") + raw)
    with pytest.raises(FarmsError, match="nests too deeply"):
        open_source(p)


@pytest.mark.parametrize("model_type", [["gpt2"], {"name": "gpt2"}, 3])
def test_model_type_that_is_not_a_name_is_a_sentence(tmp_path, model_type):
    folder = hf_folder(tmp_path / "m", _weights(2))
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    with pytest.raises(FarmsError, match="model_type"):
        open_source(folder)


@pytest.mark.parametrize("where,size", [("config.json", 2**30), ("config.json", 9 * 2**20),
                                        ("model.safetensors.index.json", 2**30)])
def test_huge_json_is_not_read_whole(tmp_path, where, size):
    folder = hf_folder(tmp_path / "m", _weights(2))
    with open(folder / where, "wb") as f:
        f.write(b'{"model_type": "bert", "pad": "')
        f.truncate(size)  # sparse: costs no disk
    t0 = time.perf_counter()
    with pytest.raises(FarmsError, match="larger than"):
        open_source(folder)
    assert time.perf_counter() - t0 < 2


# ---------------------------------------------------------------- nested state dicts

@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_state_dict_is_a_sentence(tmp_path, depth):
    path = deep_dict_pt(tmp_path, depth)
    with pytest.raises(FarmsError) as e:
        open_source(path)
    assert "nests dicts" in _one_sentence(e)


def test_nesting_within_the_bound_still_gives_dotted_names(tmp_path):
    path = tmp_path / "nested.pt"
    w = torch.randn(6, 4)
    inner = {"fc.weight": w}
    for name in ("c", "b", "a"):
        inner = {name: inner}
    torch.save({"state_dict": inner}, path)
    got = _load_all(open_source(path))
    assert list(got) == ["a.b.c.fc"] and torch.equal(got["a.b.c.fc"], w)


# ---------------------------------------------------------------- paths and hub ids

@pytest.fixture
def no_hub(monkeypatch):
    """Fail if anything is sent to the hub; record well-formed ids that would be."""
    sent = []

    def fake(repo_id):
        sent.append(repo_id)
        raise FarmsError(f"{repo_id} sent to the hub")

    monkeypatch.setattr(sources, "open_hub", fake)
    return sent


@pytest.mark.parametrize("text", ["a\0b", "models/a\0b.pt", "x" * 3000, "models/" + "x" * 3000,
                                  "/" + "d" * 300 + "/" + "x" * 300 + ".pt"])
def test_unusable_path_is_one_sentence(text, no_hub):
    for given in (text, Path(text)):
        with pytest.raises(FarmsError) as e:
            open_source(given)
        assert len(_one_sentence(e)) < 400
    assert not no_hub


@pytest.mark.parametrize("text", ["./mdoel.safetensors", "models/x.pt", "models/x", "org/model.safetensors",
                                  "a/b/c", "../x/y", "~/nope/x"])
def test_mistyped_path_is_no_such_file_and_never_the_hub(tmp_path, monkeypatch, no_hub, text):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(FarmsError, match="does not exist") as e:
        open_source(text)
    _one_sentence(e)
    assert not no_hub


def test_only_a_well_formed_owner_name_goes_to_the_hub(tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    for text in ("sentence-transformers/all-MiniLM-L6-v2", "Qwen/Qwen2.5-7B"):
        with pytest.raises(FarmsError, match="sent to the hub"):
            open_source(text)
    assert no_hub == ["sentence-transformers/all-MiniLM-L6-v2", "Qwen/Qwen2.5-7B"]


# ---------------------------------------------------------------- .npy headers

def _npy_header(shape, descr="<f8", fortran=False) -> bytes:
    h = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode()
    h += b" " * (-(len(h) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h


@pytest.mark.parametrize("shape,body", [((100000, 100000), 64), ((3000, 3000), 3000 * 3000 * 4 - 8),
                                        ((2**40, 2**40), 0)])
def test_npy_header_claiming_more_than_the_file_holds_is_refused(shape, body):
    data = _npy_header(shape, "<f8" if body != 3000 * 3000 * 4 - 8 else "<f4") + b"\0" * body
    with pytest.raises(FarmsError, match="header claims"):
        read_npy(data, "m.npy")
    from farms_viz.analyses import lab

    with pytest.raises(FarmsError, match="m.npy"):
        lab.load_npy(data, "m.npy")


def test_npy_fortran_order_and_plain_arrays_read_exactly():
    import io

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    for arr in (a, np.asfortranarray(a)):
        buf = io.BytesIO()
        np.save(buf, arr)
        got = read_npy(buf.getvalue())
        assert got.shape == (3, 4) and (got == a).all()
