"""``torch.save`` files read without trusting them: the pickle parsed once, every size checked.

A damaged or hostile ``.pt`` can claim more than it holds: a storage record shorter than its
tensors (torch's mmap load reads on into the next record and gives wrong numbers: alpha 1.53
instead of 2.68), a deflated pickle or storage that expands ~1000x (a 3 MB file reached 6.5 GB),
a view that repeats a few stored values as a huge matrix (a 98 KB file cost 110 s and 3.7 GB).
Here the pickle goes once through torch's weights-only unpickler (nothing in it runs) with
tensors on the meta device, every storage record's size is checked against the zip's directory,
and each tensor's bytes are read at their offset (re-reading the pickle per tensor made 1,000
tensors cost 95 s).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
import sys
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import torch

from farms_viz.errors import FarmsError
from farms_viz.io.formats import (
    ITEMSIZE,
    available_memory,
    check_memory,
    is_int,
    open_regular,
    read_exact,
    shown,
    tensor_from_bytes,
)

#: a deflated zip entry may expand to at most this many times its compressed size (+ ZIP_SLACK):
#: weights and pickles deflate by 1.1-3x, a zip bomb by ~1000x
ZIP_MAX_RATIO = 16
ZIP_SLACK = 2**20
#: a view may materialise at most this many times the values it addresses (+ VIEW_SLACK bytes):
#: a saved weight addresses each stored value once; a 12000^2 view of 24000 floats cost 110 s and 3.7 GB
VIEW_MAX_RATIO = 2
VIEW_SLACK = 2**20
#: nesting of dicts in a state dict (optimizer states nest 3-4 levels)
MAX_NESTING = 32

def _refused_pickle(path: Path, msg: str) -> FarmsError:
    code = any(w in msg for w in ("GLOBAL", "unrecognized function", "new object", "weights only", "weights_only"))
    if code:
        what = msg.split("GLOBAL ", 1)[1].split()[0] if "GLOBAL " in msg else ""
        return FarmsError(
            f"{path} asks to run code or holds non-tensor objects{f' ({what})' if what else ''}, so it was refused "
            f"and nothing in it was executed; if you trust it, load it yourself and save the weights with "
            f"safetensors.torch.save_file(model.state_dict(), 'model.safetensors').")
    first = (msg.splitlines() or ["unpickling failed"])[0][:200]
    return FarmsError(f"{path} is corrupt or not a PyTorch file ({first}).")


def _unpickle_meta(raw: bytes, path: Path) -> tuple[object, dict]:
    """The checkpoint's object tree with tensors on the meta device (no data read), and the storages
    it names: key -> (dtype, nbytes). torch's own weights-only unpickler refuses any pickle that
    would run code; storages come back as meta storages tagged with their record key."""
    from torch import _weights_only_unpickler

    storages: dict[str, tuple[torch.dtype, int, object]] = {}

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and _ascii(pid[0]) == "storage"):
            raise FarmsError(f"{path} is corrupt: its pickle names an unknown kind of data record.")
        _, storage_type, key, _location, numel = pid
        key = _ascii(key)
        dtype = torch.uint8 if storage_type is torch.UntypedStorage else getattr(storage_type, "dtype", None)
        if not isinstance(dtype, torch.dtype) or not is_int(numel) or numel < 0 or not isinstance(key, str):
            raise FarmsError(f"{path} is corrupt: its pickle describes a data record it cannot hold.")
        if key not in storages:
            nbytes = numel * torch._utils._element_size(dtype)
            untyped = torch.UntypedStorage(nbytes, device="meta")
            untyped._farms_key = key
            typed = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
            storages[key] = (dtype, nbytes, typed)
        return storages[key][2]

    unpickler = _weights_only_unpickler.Unpickler(io.BytesIO(raw), encoding="utf-8")
    unpickler.persistent_load = persistent_load
    try:
        obj = unpickler.load()
    except FarmsError:
        raise
    except pickle.UnpicklingError as e:
        raise _refused_pickle(path, str(e)) from None
    except MemoryError:
        raise FarmsError(f"{path} does not fit in memory.") from None
    except Exception as e:  # EOF, bad opcodes, a tensor rebuilt out of its storage's bounds
        if "Quantized" in str(e):
            raise NeedsWholeLoad() from None
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise FarmsError(f"{path} is corrupt and cannot be read as a PyTorch file ({first}).") from None
    return obj, {k: (d, n) for k, (d, n, _) in storages.items()}


class NeedsWholeLoad(Exception):
    """The file holds tensors that have no meta-device form (torch's quantized tensors)."""


def _ascii(x):
    return x.decode("ascii", "replace") if isinstance(x, bytes) else x


def _extent(shape: tuple, stride: tuple) -> int:
    """Elements a view addresses from its first one (0 for an empty view)."""
    if any(s == 0 for s in shape):
        return 0
    return 1 + sum((s - 1) * st for s, st in zip(shape, stride))


def check_view(path: Path, key: str, shape: tuple, dtype: str, addressed: int) -> None:
    """Refuse a tensor that would materialise far more values than the ``addressed`` ones it is made of."""
    n = math.prod(shape)
    if n > VIEW_MAX_RATIO * addressed and n * ITEMSIZE.get(dtype, 4) > VIEW_SLACK:
        raise FarmsError(f"{path}: tensor {key!r} is a {'x'.join(map(str, shape))} view of only {addressed} stored "
                         f"values (each repeated ~{n / max(addressed, 1):.0f} times), so it was not analysed.")


class _Record:
    """Where a storage's bytes lie in the zip: data offset, compression, sizes."""

    __slots__ = ("offset", "deflated", "compressed", "size")

    def __init__(self, offset: int, deflated: bool, compressed: int, size: int):
        self.offset, self.deflated, self.compressed, self.size = offset, deflated, compressed, size


def _zip_entries(f: io.FileIO, path: Path) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The zip's central directory, every entry's sizes checked against the file."""
    size = os.fstat(f.fileno()).st_size
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as e:
        raise FarmsError(f"{path} is corrupt or truncated and cannot be read as a PyTorch file ({e}).") from None
    infos = zf.infolist()
    if len({i.filename for i in infos}) != len(infos):
        raise FarmsError(f"{path} is corrupt: its zip directory names an entry twice.")
    for i in infos:
        if i.compress_type == zipfile.ZIP_STORED:
            ok = i.file_size == i.compress_size
        elif i.compress_type == zipfile.ZIP_DEFLATED:
            ok = i.file_size <= ZIP_MAX_RATIO * i.compress_size + ZIP_SLACK
            if not ok:
                raise FarmsError(f"{path} is a zip bomb: entry {i.filename!r} would expand from {i.compress_size} to "
                                 f"{i.file_size} bytes, so it was not read.")
        else:
            raise FarmsError(f"{path}: entry {i.filename!r} uses a compression PyTorch files do not use.")
        if not ok or i.header_offset + i.compress_size > size:
            raise FarmsError(f"{path} is corrupt or truncated: entry {i.filename!r} does not fit in the file.")
    return zf, infos


def _data_offset(f: io.FileIO, info: zipfile.ZipInfo, size: int, path: Path) -> int:
    """Where an entry's bytes start (after its local header, whose extra field can differ from the directory's)."""
    head = read_exact(f, info.header_offset, 30, path)
    if head[:4] != b"PK\x03\x04":
        raise FarmsError(f"{path} is corrupt: entry {info.filename!r} has no local header.")
    n, m = struct.unpack("<HH", head[26:30])
    start = info.header_offset + 30 + n + m
    if start + info.compress_size > size:
        raise FarmsError(f"{path} is corrupt or truncated: entry {info.filename!r} does not fit in the file.")
    return start


class TorchZipFile:
    """A zip-format ``torch.save`` file: its pickle parsed once (tensors on the meta device), every
    storage record's size checked against what its tensors need, then each tensor read at its offset.
    Nothing in the file is executed (torch's weights-only unpickler)."""

    held = False

    def __init__(self, path: Path):
        self.path = path
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            zf, infos = _zip_entries(f, path)
            pkls = [i for i in infos if i.filename.rsplit("/", 1)[-1] == "data.pkl" and i.filename.count("/") <= 1]
            if len(pkls) != 1:
                if any(i.filename.endswith("constants.pkl") for i in infos):
                    raise FarmsError(f"{path} is a TorchScript archive, which holds code; save the model's "
                                     f"state_dict() with torch.save or safetensors to analyse it.")
                raise FarmsError(f"{path} is a zip file but not a PyTorch checkpoint (no single data.pkl).")
            prefix = pkls[0].filename[: -len("data.pkl")]
            order = next((i for i in infos if i.filename == prefix + "byteorder"), None)
            if order is not None and zf.read(order) not in (b"little", sys.byteorder.encode()):
                raise FarmsError(f"{path} stores big-endian tensors; re-save it on a little-endian machine.")
            try:
                raw = zf.read(pkls[0])
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
                raise FarmsError(f"{path} is corrupt: its pickle cannot be read ({e}).") from None
            obj, storages = _unpickle_meta(raw, path)
            del raw
            records = {i.filename[len(prefix) + 5:]: i for i in infos if i.filename.startswith(prefix + "data/")}
            self._records: dict[str, _Record] = {}
            for key, (_dtype, nbytes) in storages.items():
                info = records.get(key)
                if info is None:
                    raise FarmsError(f"{path} is corrupt: its tensors need data record data/{key}, which is missing.")
                if info.file_size != nbytes:
                    raise FarmsError(f"{path} is corrupt or truncated: data record data/{key} holds {info.file_size} "
                                     f"bytes but its tensors need {nbytes}.")
                self._records[key] = _Record(_data_offset(f, info, size, path),
                                             info.compress_type == zipfile.ZIP_DEFLATED, info.compress_size, nbytes)
        sd = flatten_state_dict(obj, path)
        self.entries: dict[str, tuple[tuple, str]] = {}
        self._views: dict[str, tuple] = {}
        for name, t in sd.items():
            key = getattr(t.untyped_storage(), "_farms_key", None)
            dtype = str(t.dtype).replace("torch.", "")
            shape, stride, offset = tuple(t.shape), tuple(t.stride()), t.storage_offset()
            extent = _extent(shape, stride)
            if key is None or dtype not in ITEMSIZE or any(s < 0 for s in stride) or \
                    (offset + extent) * t.element_size() > self._records[key].size:
                raise FarmsError(f"{path} is corrupt: tensor {name!r} lies outside its data record.")
            self.entries[name] = (shape, dtype)
            self._views[name] = (key, offset, stride, extent)
        if not self.entries:
            raise FarmsError(f"{path} holds no tensors.")

    def load(self, key: str) -> torch.Tensor:
        shape, dtype = self.entries[key]
        rkey, offset, stride, extent = self._views[key]
        check_view(self.path, key, shape, dtype, extent)
        check_memory(self.path, key, shape, dtype)
        item = ITEMSIZE[dtype]
        rec = self._records[rkey]
        with open_regular(self.path) as f:
            if not rec.deflated:
                buf = read_exact(f, rec.offset + offset * item, extent * item, self.path)
            else:
                packed = read_exact(f, rec.offset, rec.compressed, self.path)
                try:
                    whole = zlib.decompressobj(-15).decompress(bytes(packed), rec.size)
                except zlib.error as e:
                    raise FarmsError(f"{self.path} is corrupt: tensor {key!r} cannot be decompressed ({e}).") from None
                if len(whole) != rec.size:
                    raise FarmsError(f"{self.path} is corrupt: tensor {key!r} decompresses to fewer bytes than it needs.")
                buf = bytearray(whole[offset * item:(offset + extent) * item])
        return tensor_from_bytes(buf, dtype, (extent,)).as_strided(shape, stride) if extent else \
            torch.empty(shape, dtype=getattr(torch, dtype))


class TorchHeldFile:
    """A ``torch.save`` file read whole by ``torch.load(weights_only=True)`` and held: old (non-zip)
    files, which cannot be read in pieces, and zip files holding quantized tensors (after their zip
    directory passed :class:`TorchZipFile`'s checks; torch's own loader checks record sizes)."""

    held = True

    def __init__(self, path: Path):
        self.path = path
        try:
            with open_regular(path) as f:  # the checked open file itself, not the name again (a swap to a FIFO)
                if os.fstat(f.fileno()).st_size > available_memory() // 2:
                    raise FarmsError(f"{path} is an old-format (non-zip) or quantized PyTorch file larger than half "
                                     "the available memory; re-save it with torch.save or as safetensors to analyse it.")
                obj = torch.load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise _refused_pickle(path, str(e)) from None
        except FarmsError:
            raise
        except MemoryError:
            raise FarmsError(f"{path} does not fit in memory.") from None
        except Exception as e:  # EOF, truncated storages
            first = (str(e).splitlines() or [type(e).__name__])[0][:200]
            raise FarmsError(f"{path} is corrupt or truncated and cannot be read as a PyTorch file ({first}).") from None
        self._held = flatten_state_dict(obj, path)
        self.entries = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in self._held.items()}
        if not self.entries:
            raise FarmsError(f"{path} holds no tensors.")

    def load(self, key: str) -> torch.Tensor:
        t = self._held[key]
        check_view(self.path, key, tuple(t.shape), self.entries[key][1],
                   min(_extent(tuple(t.shape), t.stride()), t.untyped_storage().nbytes() // max(t.element_size(), 1)))
        return t


_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "weights")


def flatten_state_dict(obj, path: Path) -> dict:
    """The name -> tensor mapping of a loaded checkpoint (unwrapping ``state_dict``/``model`` keys);
    nested dicts give dotted names, at most :data:`MAX_NESTING` levels deep."""
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
    stack = [("", iter(obj.items()))]  # depth-first in dict order, without recursion
    while stack:
        prefix, items = stack[-1]
        for k, v in items:
            name = f"{prefix}{k}"
            if isinstance(v, torch.Tensor):
                out[name] = v
            elif isinstance(v, Mapping):
                if len(stack) >= MAX_NESTING:
                    raise FarmsError(f"{path} nests dicts more than {MAX_NESTING} levels deep (under "
                                     f"{shown(prefix.split('.')[0], 40)!r}), which no state dict does, so it was not read.")
                stack.append((name + ".", iter(v.items())))
                break
        else:
            stack.pop()
    for wrapper in ("module.", "_orig_mod."):  # DataParallel / torch.compile prefixes
        if out and all(k.startswith(wrapper) for k in out):
            out = {k[len(wrapper):]: v for k, v in out.items()}
    return out


def open_torch_file(path: Path):
    """A ``torch.save`` file, read in pieces where its format allows (:class:`TorchZipFile`)."""
    with open_regular(path) as f:
        zipped = f.read(4) == b"PK\x03\x04"
    if zipped:
        try:
            return TorchZipFile(path)
        except NeedsWholeLoad:
            pass
    return TorchHeldFile(path)
