"""What the user names -> a lazy stream of named weight tensors (the one place that touches files).

A :class:`Source` yields :class:`TensorRef` objects; each opens its tensor only when
``load()`` is called, so a model is never fully in memory. Formats: a zoo name, an
``nn.Module``, a dict of tensors, a ``.safetensors`` file, a ``.pt``/``.pth``/``.bin`` state
dict (only ever read with ``torch.load(weights_only=True)``), a folder of such files or a
Hugging Face model folder (single or sharded, with or without an index), and a hub id.
Safetensors files list their tensors in natural name order (``layer.9`` before ``layer.10``);
``torch.save`` state dicts keep their own (model) order.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .errors import FarmsError
from .matrices import infer_kind

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

_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
              "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
              "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
_ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
             "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "float8_e4m3fn": 1, "float8_e5m2": 1}
_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
#: Hugging Face model types built from transformers' ``Conv1D`` (weights stored in x out)
CONV1D_MODEL_TYPES = frozenset({"gpt2", "openai-gpt", "imagegpt", "decision_transformer"})
_CONV1D_NAMES = re.compile(r"(^|\.)(c_attn|c_proj|c_fc|q_attn)\.weight$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "weights")


def natural_key(name: str) -> list:
    """Sort key that orders ``layer.9`` before ``layer.10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def sniff_format(path: Path) -> str:
    """``safetensors`` or ``torch`` from a file's first bytes; FarmsError for anything else."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise FarmsError(f"{path} cannot be read: {e.strerror or e}.") from None
    if size == 0:
        raise FarmsError(f"{path} is empty (0 bytes), so it holds no weights.")
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head.lstrip()[:1] in (b"{", b"[") or _looks_like_text(head):
        raise FarmsError(f"{path} is a text file (JSON or similar), not a safetensors or PyTorch weights file.")
    raise FarmsError(f"{path} is not a safetensors or PyTorch weights file (unrecognised or corrupt contents).")


def _looks_like_text(b: bytes) -> bool:
    return bool(b) and all(c in b"\t\r\n" or 32 <= c < 127 for c in b)


def read_safetensors_header(path: Path) -> dict:
    """Parse and validate a safetensors header without reading any tensor data."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise FarmsError(f"{path} is not a safetensors file: it is shorter than a header ({size} bytes).")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100 * 2**20):
                raise FarmsError(f"{path} is not a valid safetensors file: its header claims {n} bytes but the file has {size}.")
            raw = f.read(n)
    except OSError as e:
        raise FarmsError(f"{path} cannot be read: {e.strerror or e}.") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FarmsError(f"{path} is not a valid safetensors file: its header is not JSON.") from None
    if not isinstance(header, dict):
        raise FarmsError(f"{path} is not a valid safetensors file: its header is not a table of tensors.")
    data_len = size - 8 - n
    for k, v in header.items():
        if k == "__metadata__":
            continue
        try:
            a, b = v["data_offsets"]
            shape = [int(d) for d in v["shape"]]
            dtype = v["dtype"]
            ok = 0 <= a <= b <= data_len and all(d >= 0 for d in shape)
            if ok and dtype in _ST_DTYPES:
                ok = b - a == math.prod(shape) * _ITEMSIZE[_ST_DTYPES[dtype]]
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise FarmsError(f"{path} is corrupt: tensor {k!r} has an impossible shape or data offsets (the file may be truncated).")
        if dtype not in _ST_DTYPES:
            raise FarmsError(f"{path} holds tensor {k!r} of unknown dtype {dtype!r}.")
    return header


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable, else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62


def _check_memory(path: Path, key: str, shape: tuple, dtype: str) -> None:
    """Refuse before loading a tensor that (with its float32 copy) would not fit in memory."""
    n = math.prod(shape)
    need = n * _ITEMSIZE.get(dtype, 4) + n * 4
    avail = available_memory()
    if need > avail:
        raise FarmsError(f"{path}: tensor {key!r} {tuple(shape)} needs about {need / 2**30:.1f} GiB but only "
                         f"{avail / 2**30:.1f} GiB of memory is available, so it was not loaded.")


class _SafetensorsShard:
    """One ``.safetensors`` file: the header now, a tensor at a time later."""

    def __init__(self, path: Path):
        self.path = path
        header = read_safetensors_header(path)
        self.entries = {k: (tuple(int(d) for d in v["shape"]), _ST_DTYPES[v["dtype"]])
                        for k, v in header.items() if k != "__metadata__"}

    def load(self, key: str) -> torch.Tensor:
        from safetensors import safe_open

        _check_memory(self.path, key, *self.entries[key])
        try:
            with safe_open(str(self.path), framework="pt") as f:
                return f.get_tensor(key)
        except Exception as e:  # safetensors raises its own error types
            raise FarmsError(f"{self.path}: tensor {key!r} cannot be read ({str(e).splitlines()[0]}).") from None


class _TorchShard:
    """One ``torch.save`` file, read only with ``weights_only=True`` (never runs code from the file).

    Zip-format files are memory-mapped and re-opened for each tensor, so only the tensor being
    analysed is resident; legacy-format files cannot be mapped and are held in memory.
    """

    def __init__(self, path: Path):
        self.path = path
        self._mmap = zipfile.is_zipfile(path)
        if not self._mmap and path.stat().st_size > available_memory() // 2:
            raise FarmsError(f"{path} is an old-format (non-zip) PyTorch file larger than half the available "
                             f"memory; re-save it with torch.save or as safetensors to analyse it.")
        sd = self._state_dict()
        self.entries = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items()}
        self._held = None if self._mmap else sd
        if not self.entries:
            raise FarmsError(f"{path} holds no tensors.")

    def _state_dict(self) -> dict:
        obj = _torch_load(self.path, self._mmap)
        return _flatten_state_dict(obj, self.path)

    def load(self, key: str) -> torch.Tensor:
        if self._held is not None:
            return self._held[key]
        _check_memory(self.path, key, *self.entries[key])
        return self._state_dict()[key]


def _torch_load(path: Path, mmap: bool):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "weights only" in msg.lower() or "weights_only" in msg:
            m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
            what = f" ({m.group(1)})" if m else ""
            raise FarmsError(
                f"{path} asks to run code or holds non-tensor objects{what}, so it was refused and nothing in it "
                f"was executed; if you trust it, load it yourself and save the weights with "
                f"safetensors.torch.save_file(model.state_dict(), 'model.safetensors')."
            ) from None
        raise FarmsError(f"{path} is corrupt or not a PyTorch file ({msg.splitlines()[0] if msg else 'unpickling failed'}).") from None
    except FarmsError:
        raise
    except MemoryError:
        raise FarmsError(f"{path} does not fit in memory.") from None
    except Exception as e:  # zip errors, EOF, truncated storages
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise FarmsError(f"{path} is corrupt or truncated and cannot be read as a PyTorch file ({first}).") from None


def _flatten_state_dict(obj, path: Path) -> dict:
    """The name -> tensor mapping of a loaded checkpoint (unwrapping ``state_dict``/``model`` keys)."""
    for _ in range(2):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
    if isinstance(obj, torch.Tensor):
        raise FarmsError(f"{path} holds a single tensor, not a state dict of named weights.")
    if not isinstance(obj, Mapping):
        raise FarmsError(f"{path} holds a {type(obj).__name__}, not a state dict of named weights.")
    out: dict[str, torch.Tensor] = {}

    def walk(d: Mapping, prefix: str) -> None:
        for k, v in d.items():
            name = f"{prefix}{k}"
            if isinstance(v, torch.Tensor):
                out[name] = v
            elif isinstance(v, Mapping):
                walk(v, name + ".")

    walk(obj, "")
    for wrapper in ("module.", "_orig_mod."):  # DataParallel / torch.compile prefixes
        if out and all(k.startswith(wrapper) for k in out):
            out = {k[len(wrapper):]: v for k, v in out.items()}
    return out


def _open_shard(path: Path):
    fmt = sniff_format(path)
    return _SafetensorsShard(path) if fmt == "safetensors" else _TorchShard(path)


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
        self._shards = [_open_shard(p) for p in self.paths]
        self._kind_of = kind_of or infer_kind
        index: dict[str, object] = {}
        for s in self._shards:
            for k in s.entries:
                index.setdefault(k, s)
        if all(isinstance(s, _TorchShard) for s in self._shards):
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
                            origin=(str(shard.path.absolute()), k) if getattr(shard, "_held", None) is None else None)

    def content_id(self) -> str:
        h = hashlib.sha256()
        for p in self.paths:
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
            with open(p, "rb") as f:  # first and last MiB: cheap and catches edits
                h.update(f.read(2**20))
                f.seek(max(0, st.st_size - 2**20))
                h.update(f.read())
        return h.hexdigest()


class SafetensorsSource(FileSource):
    """One or more ``.safetensors`` files (kept as a name; any weight file format works)."""


# ---------------------------------------------------------------- folders and the hub

def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise FarmsError(f"{path} cannot be read: {e.strerror or e}.") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FarmsError(f"{path} is not valid JSON.") from None
    if not isinstance(data, dict):
        raise FarmsError(f"{path} is not a JSON object.")
    return data


def _index_shards(index_path: Path) -> list[Path]:
    wm = _read_json(index_path).get("weight_map")
    if not isinstance(wm, dict) or not wm:
        raise FarmsError(f"{index_path} has no weight_map, so its shards are unknown.")
    files = sorted(set(map(str, wm.values())), key=natural_key)
    paths = [index_path.parent / f for f in files]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FarmsError(f"{index_path} lists shard {missing[0]} which is missing from {index_path.parent}.")
    return paths


def open_folder(folder: Path, name: str | None = None) -> FileSource:
    """A Hugging Face model folder (config.json + weights, sharded or not) or a folder of weight files."""
    model_type = None
    config = folder / "config.json"
    if config.is_file():
        model_type = _read_json(config).get("model_type")
    files: list[Path] = []
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            files = _index_shards(folder / index)
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
    return FileSource(files, name=name or folder.name, kind_of=hf_kind_of(model_type))


def open_hub(repo_id: str) -> FileSource:
    """A Hugging Face hub id: download (or find in the local cache) its json/weights, then open it."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FarmsError(f"{repo_id} looks like a hub id, but huggingface_hub is not installed.") from None
    try:
        folder = snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.bin"], etag_timeout=10)
    except Exception:
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            why = "HF_HUB_OFFLINE is set and it is not in the local cache"
        else:
            why = "the hub is unreachable or no such model exists (check the id and the network)"
        raise FarmsError(f"{repo_id} is not an existing path and cannot be fetched from the Hugging Face hub: {why}.") from None
    return open_folder(Path(folder), name=repo_id)


def open_path(p: Path) -> Source:
    """A file or folder on disk."""
    if p.is_dir():
        return open_folder(p)
    if p.suffix == ".json":
        raise FarmsError(f"{p} is a JSON file; give its folder or the weights file instead.")
    return FileSource([p])


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
        if isinstance(source, str):
            from . import zoo

            if zoo.has_entry(text):
                return zoo.open_zoo(text)
        p = Path(text).expanduser()
        if p.exists():
            return open_path(p)
        if isinstance(source, str) and _HUB_ID.match(text):
            return open_hub(text)
        if isinstance(source, str) and "/" not in text and os.sep not in text and not p.suffix:
            from . import zoo

            raise FarmsError(zoo.unknown_name_message(text))
        raise FarmsError(f"{p} does not exist.")
    raise FarmsError(f"cannot analyse an object of type {type(source).__name__}.")
