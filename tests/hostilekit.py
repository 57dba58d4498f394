"""Builders of hostile and damaged weight files, for the tests and ``benchmarks/bench_hostile.py``.

Imported as ``from hostilekit import ...`` (pytest puts tests/ on sys.path; the benchmark adds it).
Each builder writes into a folder it is given and returns the path; nothing is held in memory
beyond what the file holds.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import torch


def rezip(src: Path, dst: Path, edit=lambda name, data: data, compress=lambda name: False) -> Path:
    """Copy the zip-format ``torch.save`` file ``src`` to ``dst`` entry by entry: ``edit(name, bytes)``
    may change an entry's bytes, ``compress(name)`` stores it deflated instead of stored."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            kind = zipfile.ZIP_DEFLATED if compress(info.filename) else zipfile.ZIP_STORED
            zout.writestr(info.filename, edit(info.filename, zin.read(info)), compress_type=kind, compresslevel=9)
    return dst


def short_record_pt(folder: Path, tensors: dict, record: str, short: int = 28) -> Path:
    """A ``.pt`` whose storage record ``data/<record>`` lost its last ``short`` bytes (what a torn copy leaves)."""
    honest = folder / "honest.pt"
    torch.save(tensors, honest)
    return rezip(honest, folder / f"short-{record}.pt",
                 edit=lambda n, d: d[:-short] if n.endswith(f"/data/{record}") else d)


def pickle_bomb_pt(folder: Path, expanded: int, n_tensors: int = 8) -> Path:
    """A ``.pt`` whose ``data.pkl`` (a state dict plus one ``expanded``-character string) is deflated to a
    ~1000x smaller record: the file is small, its pickle is not."""
    src = folder / "bomb-src.pt"
    sd = {f"layers.{i}.weight": torch.randn(16, 16) for i in range(n_tensors)}
    sd["padding"] = "a" * expanded
    torch.save(sd, src)
    out = rezip(src, folder / "pickle-bomb.pt", compress=lambda n: n.endswith("data.pkl"))
    src.unlink()
    return out


def record_bomb_pt(folder: Path, rows: int, cols: int) -> Path:
    """A ``.pt`` holding one ``rows x cols`` float32 tensor of zeros whose storage record is deflated
    (~1000x smaller than the tensor)."""
    src = folder / "record-src.pt"
    torch.save({"big.weight": torch.zeros(rows, cols)}, src)
    out = rezip(src, folder / "record-bomb.pt", compress=lambda n: "/data/" in n)
    src.unlink()
    return out


def strided_view_pt(folder: Path, side: int, name: str = "strided.pt") -> Path:
    """A ``.pt`` whose one weight is a ``side x side`` view with strides (1, 1) of ``2 * side`` stored
    floats: the file holds 8 * side bytes of data, the tensor claims 4 * side**2."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(2 * side, generator=g)
    path = folder / name
    torch.save({"view.weight": base.as_strided((side, side), (1, 1))}, path)
    return path


def many_tensors(folder: Path, n: int, fmt: str, side: int = 4) -> Path:
    """``n`` small ``side x side`` weights in one ``.pt`` or ``.safetensors`` file."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    sd = {f"layers.{i}.weight": torch.randn(side, side, generator=g) for i in range(n)}
    path = folder / f"many-{n}.{'pt' if fmt == 'pt' else 'safetensors'}"
    if fmt == "pt":
        torch.save(sd, path)
    else:
        save_file(sd, str(path))
    return path


def deep_dict_pt(folder: Path, depth: int) -> Path:
    """A ``.pt`` state dict with one real weight and a value nested ``depth`` dicts deep (written as
    pickle opcodes, since pickling it would recurse)."""
    src = folder / "deep-src.pt"
    marker = "DEEPMARKER"
    torch.save({"fc.weight": torch.randn(8, 8), "deep": marker}, src)
    opcode = b"X" + struct.pack("<I", len(marker)) + marker.encode()
    nested = b"}X\x01\x00\x00\x00a" * depth + b"}" + b"s" * depth

    def edit(name, data):
        if name.endswith("data.pkl"):
            assert data.count(opcode) == 1
            return data.replace(opcode, nested)
        return data

    out = rezip(src, folder / f"deep-{depth}.pt", edit=edit)
    src.unlink()
    return out


def deep_json(depth: int, kind: str = "list") -> str:
    """JSON nested ``depth`` levels: ``[[[...]]]`` or ``{"a": {"a": ... 1}}``."""
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


def hf_folder(folder: Path, tensors: dict, model_type="bert") -> Path:
    """A minimal sharded Hugging Face folder: config.json, two safetensors shards and the index."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    keys = list(tensors)
    weight_map = {}
    for i, part in enumerate((keys[::2], keys[1::2]), 1):
        name = f"model-{i:05d}-of-00002.safetensors"
        save_file({k: tensors[k].contiguous() for k in part}, str(folder / name))
        weight_map.update({k: name for k in part})
    write_index(folder, weight_map)
    return folder


def write_index(folder: Path, weight_map: dict) -> Path:
    p = folder / "model.safetensors.index.json"
    p.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return p
