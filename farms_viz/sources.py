"""What the user names -> a lazy stream of named weight tensors (file formats: :mod:`farms_viz.formats`).

A :class:`Source` yields :class:`TensorRef` objects; each opens its tensor only when
``load()`` is called, so a model is never fully in memory. Formats: a zoo name, an
``nn.Module``, a dict of tensors, a ``.safetensors`` file, a ``.pt``/``.pth``/``.bin`` state
dict (only ever read with torch's weights-only unpickler), a folder of such files or a
Hugging Face model folder (single or sharded, with or without an index), and a hub id.
Safetensors files list their tensors in natural name order (``layer.9`` before ``layer.10``);
``torch.save`` state dicts keep their own (model) order.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .errors import FarmsError
from .formats import (SafetensorsFile, available_memory, open_regular, read_json,  # noqa: F401 (re-exported)
                      read_safetensors_header, shown, sniff_format)
from .matrices import infer_kind
from .torchfile import open_torch_file

_SUFFIX = re.compile(r"\.weight$")


@dataclass
class TensorRef:
    """One named weight tensor, loaded on demand.

    ``layer`` is the module name (the tensor name without ``.weight``), ``kind`` one of
    :data:`farms_viz.matrices.KINDS`, or None for tensors that are not matrix layers.
    """

    layer: str
    shape: tuple[int, ...]
    dtype: str
    kind: str | None
    load: Callable[[], torch.Tensor] = field(repr=False)
    #: (file path, tensor name) when the tensor can be re-opened from a file elsewhere (Ray workers)
    origin: tuple[str, str] | None = None


class Source:
    """A named collection of weight tensors."""

    name: str = "source"
    #: metrics-only sources (no weights) carry a ready table instead of tensors
    metrics = None

    def tensors(self) -> Iterator[TensorRef]:
        raise NotImplementedError

    def content_id(self) -> str:
        """A string that changes when the weights change (for caches)."""
        raise NotImplementedError


def _layer_name(tensor_name: str) -> str:
    return _SUFFIX.sub("", tensor_name)


def _is_weight(name: str, shape, dtype: str) -> bool:
    """Tensors worth considering as layers: weights with >= 2 dims (buffers such as *_ids are not)."""
    if len(shape) < 2:
        return False
    if name.endswith("_ids") or name.endswith("position_ids"):
        return False
    return True


class DictSource(Source):
    """A mapping name -> tensor or array (tensor names; ``.weight`` is stripped)."""

    def __init__(self, tensors: dict, name: str = "dict"):
        self._t = {k: (v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))) for k, v in tensors.items()}
        self.name = name

    def tensors(self) -> Iterator[TensorRef]:
        for k, v in self._t.items():
            shape = tuple(v.shape)
            if not _is_weight(k, shape, str(v.dtype)):
                continue
            yield TensorRef(_layer_name(k), shape, str(v.dtype).replace("torch.", ""),
                            infer_kind(k, shape), (lambda v=v: v))

    def content_id(self) -> str:
        h = hashlib.sha256()
        for k, v in self._t.items():
            h.update(k.encode())
            h.update(str(tuple(v.shape)).encode())
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                     if v.numel() else b"")
        return h.hexdigest()


class ModuleSource(Source):
    """An ``nn.Module``: Linear, Conv1d/2d, Embedding and Hugging Face Conv1D layers by type."""

    def __init__(self, module: torch.nn.Module, name: str | None = None, natural_order: bool = False):
        self.module = module
        self.name = name or type(module).__name__
        #: list layers in natural name order (as files do) instead of ``named_modules`` order
        self.natural_order = natural_order

    def tensors(self) -> Iterator[TensorRef]:
        refs = self._refs()
        if self.natural_order:
            refs = sorted(refs, key=lambda r: natural_key(r.layer))
        yield from refs

    def _refs(self) -> list[TensorRef]:
        out = []
        for mname, m in self.module.named_modules():
            kind = module_kind(m)
            if kind is None:
                continue
            w = m.weight
            out.append(TensorRef(mname, tuple(w.shape), str(w.dtype).replace("torch.", ""), kind,
                                 (lambda w=w: w.detach())))
        return out

    def content_id(self) -> str:
        h = hashlib.sha256()
        for ref in self.tensors():
            t = ref.load().cpu().contiguous()
            h.update(ref.layer.encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()


def module_kind(m: torch.nn.Module) -> str | None:
    """The layer kind of a module, by type (None for modules that hold no weight matrix)."""
    import torch.nn as nn

    w = getattr(m, "weight", None)
    if not isinstance(w, torch.Tensor):
        return None
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, nn.Conv2d):
        # same rule as matrices.infer_kind on a saved tensor, so a module and its state dict agree:
        # one input channel per group (depthwise, or a 1-channel input) -> one out x kh*kw matrix
        if w.shape[1] == 1 and w.shape[2] * w.shape[3] > 1:
            return "conv2d_depthwise"
        return "conv2d"
    if isinstance(m, nn.Conv1d):
        return "conv1d"
    if isinstance(m, nn.Embedding):
        return "embedding"
    if type(m).__name__ == "Conv1D" and w.ndim == 2:  # transformers.pytorch_utils.Conv1D (GPT-2)
        return "conv1d_hf"
    return None


# ---------------------------------------------------------------- file formats

_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
#: names that end like a file, so ``models/x.pt`` is a mistyped path and never a hub id
_FILE_SUFFIXES = (*_TORCH_SUFFIXES, ".safetensors", ".json", ".npy", ".npz", ".onnx", ".gguf", ".h5", ".msgpack")
#: Hugging Face model types built from transformers' ``Conv1D`` (weights stored in x out)
CONV1D_MODEL_TYPES = frozenset({"gpt2", "openai-gpt", "imagegpt", "decision_transformer"})
_CONV1D_NAMES = re.compile(r"(^|\.)(c_attn|c_proj|c_fc|q_attn)\.weight$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")
#: a config.json is a few KiB; this is plenty and bounds what a hostile one costs
CONFIG_MAX_BYTES = 8 * 2**20


def natural_key(name: str) -> list:
    """Sort key that orders ``layer.9`` before ``layer.10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def open_weights_file(path: Path):
    """A ``.safetensors`` or ``torch.save`` file (by its contents), parsed once and checked."""
    return SafetensorsFile(path) if sniff_format(path) == "safetensors" else open_torch_file(path)


#: kept under this name for the Ray workers that re-open files (farms_viz.distributed)
_open_shard = open_weights_file


def hf_kind_of(model_type: str | None) -> Callable[[str, tuple], str | None]:
    """The kind rule for a Hugging Face model type (``Conv1D`` weights of GPT-2-like models)."""
    if model_type in CONV1D_MODEL_TYPES:
        def kind_of(name: str, shape: tuple) -> str | None:
            if len(shape) == 2 and _CONV1D_NAMES.search(name):
                return "conv1d_hf"
            return infer_kind(name, shape)
        return kind_of
    return infer_kind


class FileSource(Source):
    """One or more weight files (shards, ``.safetensors`` or ``torch.save``), a tensor at a time.

    Tensors of ``torch.save`` state dicts keep the dict's order (a module's ``state_dict``
    order, i.e. model order); safetensors headers are stored sorted by name, so their
    tensors are listed in natural name order (``layer.9`` before ``layer.10``).
    """

    def __init__(self, paths: list[Path], name: str | None = None,
                 kind_of: Callable[[str, tuple], str | None] | None = None):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise FarmsError("no weight files were given.")
        self.name = name or (self.paths[0].name if len(self.paths) == 1 else self.paths[0].parent.name)
        self._shards = [open_weights_file(p) for p in self.paths]
        self._kind_of = kind_of or infer_kind
        index: dict[str, object] = {}
        for s in self._shards:
            for k in s.entries:
                index.setdefault(k, s)
        if not any(isinstance(s, SafetensorsFile) for s in self._shards):
            self._index = index
        else:
            self._index = {k: index[k] for k in sorted(index, key=natural_key)}

    def tensors(self) -> Iterator[TensorRef]:
        for k, shard in self._index.items():
            shape, dtype = shard.entries[k]
            if not _is_weight(k, shape, dtype):
                continue
            yield TensorRef(_layer_name(k), shape, dtype, self._kind_of(k, shape),
                            (lambda shard=shard, k=k: shard.load(k)),
                            origin=None if shard.held else (str(shard.path.absolute()), k))

    def content_id(self) -> str:
        h = hashlib.sha256()
        for p in self.paths:
            with open_regular(p) as f:  # first and last MiB: cheap and catches edits
                st = os.fstat(f.fileno())
                h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
                h.update(f.read(2**20))
                f.seek(max(0, st.st_size - 2**20))
                h.update(f.read())
        return h.hexdigest()


class SafetensorsSource(FileSource):
    """One or more ``.safetensors`` files (kept as a name; any weight file format works)."""


# ---------------------------------------------------------------- folders and the hub

def _inside(p: Path, root: Path, what: Path) -> Path:
    """``p`` if it resolves to a file inside ``root``; FarmsError otherwise (``what`` named it).

    An index (or a symlink: config.json, an index, a shard) may name ``../x``, ``/etc/x`` or a
    link out of the folder: a model folder from elsewhere must not make farms-viz read files outside it."""
    try:
        real = p.resolve(strict=True)
    except FileNotFoundError:
        raise FarmsError(f"{what} lists shard {shown(p.name)} which is missing from {p.parent}.") from None
    except (OSError, RuntimeError, ValueError) as e:
        raise FarmsError(f"{what} names {shown(p)}, which cannot be opened ({getattr(e, 'strerror', None) or e}).") from None
    if not real.is_relative_to(root):
        raise FarmsError(f"{what} names {shown(p)}, which lies outside the model folder (at {shown(real)}); "
                         f"only files inside a model folder are read (name that file itself to analyse it).")
    return p


def _index_shards(index_path: Path, root: Path) -> list[Path]:
    wm = read_json(index_path).get("weight_map")
    if not isinstance(wm, dict) or not wm:
        raise FarmsError(f"{index_path} has no weight_map, so its shards are unknown.")
    if not all(isinstance(v, str) and v for v in wm.values()):
        raise FarmsError(f"{index_path} has a weight_map whose values are not all file names.")
    files = sorted(set(wm.values()), key=natural_key)
    return [_inside(index_path.parent / f, root, index_path) for f in files]


def _model_type(config: Path) -> str | None:
    model_type = read_json(config, CONFIG_MAX_BYTES).get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise FarmsError(f"{config} has a model_type that is a {type(model_type).__name__}, not a name such as "
                         f"'bert' or 'gpt2'.")
    return model_type


def open_folder(folder: Path, name: str | None = None, root: Path | None = None) -> FileSource:
    """A Hugging Face model folder (config.json + weights, sharded or not) or a folder of weight files.

    Only files that resolve inside ``root`` (default: the folder itself) are read."""
    try:
        root = (root or folder).resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise FarmsError(f"{folder} cannot be read: {getattr(e, 'strerror', None) or e}.") from None
    model_type = None
    config = folder / "config.json"
    if config.is_file():
        model_type = _model_type(_inside(config, root, folder))
    files: list[Path] = []
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            files = _index_shards(_inside(folder / index, root, folder), root)
            break
    if not files:
        for single in ("model.safetensors", "pytorch_model.bin"):
            if (folder / single).is_file():
                files = [folder / single]
                break
    if not files:
        entries = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: natural_key(p.name))
        files = [p for p in entries if p.suffix == ".safetensors"] or \
                [p for p in entries if p.suffix in _TORCH_SUFFIXES]
    if not files:
        what = "holds config.json but no weights" if model_type or config.is_file() else "holds no weight files"
        raise FarmsError(f"{folder} {what} (expected .safetensors, .pt, .pth or .bin files).")
    files = [_inside(p, root, folder) for p in files]
    return FileSource(files, name=name or folder.name, kind_of=hf_kind_of(model_type))


def open_hub(repo_id: str) -> FileSource:
    """A Hugging Face hub id: download (or find in the local cache) its json/weights, then open it."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FarmsError(f"{repo_id} looks like a hub id, but huggingface_hub is not installed.") from None
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.bin"], etag_timeout=10))
    except Exception:
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            why = "HF_HUB_OFFLINE is set and it is not in the local cache"
        else:
            why = "the hub is unreachable or no such model exists (check the id and the network)"
        raise FarmsError(f"{repo_id} is not an existing path and cannot be fetched from the Hugging Face hub: {why}.") from None
    # the hub cache links snapshots/<revision>/<file> to ../../blobs/<hash>: the repo's cache folder is the root
    root = folder.parents[1] if folder.parent.name == "snapshots" else folder
    return open_folder(folder, name=repo_id, root=root)


def open_path(p: Path) -> Source:
    """A file or folder on disk."""
    if p.is_dir():
        return open_folder(p)
    if p.suffix == ".json":
        raise FarmsError(f"{p} is a JSON file; give its folder or the weights file instead.")
    return FileSource([p])


def looks_like_hub_id(text: str) -> bool:
    """``owner/name`` that cannot be a mistyped local path: no file suffix (``models/x.pt``) and no
    local folder called ``owner`` (then ``owner/name`` meant a file in it)."""
    if not _HUB_ID.match(text):
        return False
    owner, name = text.split("/")
    return not name.lower().endswith(_FILE_SUFFIXES) and not os.path.lexists(owner)


def _missing(p: Path) -> str:
    """``p does not exist``, naming the nearest folder above it that does (a typo is usually below it)."""
    try:
        near = next((q for q in p.parents if q not in (Path("."), Path(q.anchor)) and q.is_dir()), None)
    except OSError:
        near = None
    hint = f" ({shown(near)} exists, but not {shown(p.relative_to(near))} in it)" if near is not None else ""
    return f"{shown(p)} does not exist{hint}."


# ---------------------------------------------------------------- dispatch

def open_source(source) -> Source:
    """Turn what the user names into a :class:`Source`.

    Accepts a :class:`Source`, an ``nn.Module``, a dict of name -> tensor/array, a zoo name
    (``farms-viz zoo``), a path to a weights file or model folder, or a hub id ``org/name``.
    """
    if isinstance(source, Source):
        return source
    if isinstance(source, torch.nn.Module):
        return ModuleSource(source)
    if isinstance(source, dict):
        return DictSource(source)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if not isinstance(text, str):
            raise FarmsError(f"cannot analyse a path given as {type(text).__name__}; give it as text.")
        if "\0" in text:
            raise FarmsError(f"{shown(text)} is not a usable path (it contains a NUL byte).")
        if isinstance(source, str):
            from . import zoo

            if zoo.has_entry(text):
                return zoo.open_zoo(text)
        p = Path(text)
        try:
            p = p.expanduser()
        except RuntimeError:  # ~user with no such user: a literal name
            pass
        try:
            exists = p.exists() or p.is_symlink()
        except OSError as e:
            raise FarmsError(f"{shown(text)} is not a usable path ({e.strerror or e}).") from None
        if exists:
            return open_path(p)
        if isinstance(source, str) and looks_like_hub_id(text):
            return open_hub(text)
        if isinstance(source, str) and "/" not in text and os.sep not in text and not p.suffix:
            from . import zoo

            raise FarmsError(zoo.unknown_name_message(text))
        raise FarmsError(_missing(p))
    raise FarmsError(f"cannot analyse an object of type {type(source).__name__}.")
