"""What the user names -> a lazy stream of named weight tensors (file formats: :mod:`farms_viz.io.formats`).

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
from pathlib import Path
from typing import Callable, Iterator

import torch

from farms_viz.core.matrices import infer_kind
from farms_viz.errors import FarmsError
from farms_viz.io.formats import SafetensorsFile, open_regular, read_json, shown, sniff_format
from farms_viz.io.memory import DictSource, ModuleSource  # noqa: F401 (re-exported)
from farms_viz.io.refs import Source, TensorRef, is_weight, layer_name, natural_key  # noqa: F401 (re-exported)
from farms_viz.io.torchfile import open_torch_file


def fingerprint(path: Path) -> str:
    """A cheap id that changes when a file, or a file in a folder, is rewritten: sizes and mtimes
    ("" when the path cannot be read). :meth:`FileSource.content_id` also hashes the first and last MiB."""
    try:
        p = Path(path).expanduser()
        files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
        parts = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    except (OSError, ValueError, RuntimeError):  # ValueError: a NUL byte; RuntimeError: ~nosuchuser
        return ""
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
#: names that end like a file, so ``models/x.pt`` is a mistyped path and never a hub id
_FILE_SUFFIXES = (*_TORCH_SUFFIXES, ".safetensors", ".json", ".npy", ".npz", ".onnx", ".gguf", ".h5", ".msgpack")
#: Hugging Face model types built from transformers' ``Conv1D`` (weights stored in x out)
CONV1D_MODEL_TYPES = frozenset({"gpt2", "openai-gpt", "imagegpt", "decision_transformer"})
_CONV1D_NAMES = re.compile(r"(^|\.)(c_attn|c_proj|c_fc|q_attn)\.weight$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")
#: a config.json is a few KiB; this is plenty and bounds what a hostile one costs
CONFIG_MAX_BYTES = 8 * 2**20


def open_weights_file(path: Path):
    """A ``.safetensors`` or ``torch.save`` file (by its contents), parsed once and checked."""
    return SafetensorsFile(path) if sniff_format(path) == "safetensors" else open_torch_file(path)


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
            if not is_weight(k, shape, dtype):
                continue
            yield TensorRef(layer_name(k), shape, dtype, self._kind_of(k, shape),
                            (lambda shard=shard, k=k: shard.load(k)),
                            origin=None if shard.held else (str(shard.path.absolute()), k), owned=not shard.held)

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


def missing_message(p: Path) -> str:
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

    Accepts a :class:`Source`, an ``nn.Module``, a dict of name -> tensor/array, a path to a
    weights file or model folder, or a hub id ``org/name``. Zoo names are resolved one level up,
    by :func:`farms_viz.pipeline.sources.open_source`.
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
        raise FarmsError(missing_message(p))
    raise FarmsError(f"cannot analyse an object of type {type(source).__name__}.")
