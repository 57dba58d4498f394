"""Reading files that may be hostile: regular files only, bounded JSON, safetensors, ``.npy``.

A damaged or hostile file can claim more than it holds (a header 1 GB long, an array of
100000^2 float64 in a few bytes, a FIFO that never ends, JSON nested 100,000 deep). Every
reader here reads regular files only and checks each size a file claims against the file
before reading or allocating it; each safetensors header is parsed once and each tensor's bytes
are read at its offset (re-opening per tensor made 10,000 tensors cost 94 s).
``torch.save`` files: :mod:`farms_viz.io.torchfile`.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
from pathlib import Path

import numpy as np
import torch

from farms_viz.errors import FarmsError

_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
              "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
              "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
             "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "float8_e4m3fn": 1, "float8_e5m2": 1}
#: largest config.json / index.json read: real ones are under 10 MiB (a 90k-tensor index is ~9 MiB)
JSON_MAX_BYTES = 64 * 2**20
#: largest safetensors header read (the format's own reference reader caps it at 100 MB)
HEADER_MAX_BYTES = 100 * 2**20

_NOT_REGULAR = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
                stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def shown(path, limit: int = 120) -> str:
    """A path for a message: at most ``limit`` characters, control characters escaped."""
    s = os.fspath(path)
    s = s.encode("unicode_escape").decode("ascii") if not s.isprintable() else s
    return s if len(s) <= limit else s[: limit // 2] + "..." + s[-(limit // 2 - 3):]


def open_regular(path: Path, what: str = "weights file") -> io.FileIO:
    """``path`` opened for binary reading if it is a regular file (after links); FarmsError otherwise.

    Opening a FIFO for reading waits for a writer, forever; O_NONBLOCK makes that open return at
    once (it changes nothing for regular files), and fstat on the open descriptor checks the file
    that was actually opened, not a name that may have been swapped after a first look. ``what``
    names the kind of file expected, for the message.
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise FarmsError(f"{shown(path)} is {_NOT_REGULAR.get(stat.S_IFMT(st.st_mode), 'not a regular file')}, "
                             f"not a {what}, so it was not opened.")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise FarmsError(f"{shown(path)} cannot be read: {e.strerror or e}.") from None
    except ValueError:  # embedded NUL
        raise FarmsError(f"{shown(path)} is not a usable path (it contains a NUL byte).") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FarmsError(f"{shown(path)} is not a regular file, so it was not read.")
    os.set_blocking(fd, True)
    return io.FileIO(fd, "rb", closefd=True)


def read_exact(f: io.FileIO, offset: int, n: int, path: Path) -> bytearray:
    """``n`` bytes at ``offset``; FarmsError when the file ends first (truncated or changed meanwhile)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    f.seek(offset)
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise FarmsError(f"{path} ended {n - got} bytes early: it is truncated or changed while being read.")
        got += k
    return buf


def tensor_from_bytes(buf: bytearray, dtype: str, shape: tuple) -> torch.Tensor:
    """A tensor over ``buf`` (little-endian bytes, no copy)."""
    t = getattr(torch, dtype)
    if not buf:
        return torch.empty(shape, dtype=t)
    return torch.frombuffer(buf, dtype=t).reshape(shape)


def read_json(path: Path, limit: int = JSON_MAX_BYTES) -> dict:
    """A JSON object from a file of at most ``limit`` bytes (config.json, an index)."""
    with open_regular(path) as f:
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise FarmsError(f"{path} is larger than {limit // 2**20} MiB, far beyond any config or index file, "
                         f"so it was not read.")
    return json_object(raw, f"{path} nests its JSON too deeply to be a config or index file, so it was not read.",
                       f"{path} is not valid JSON.", f"{path} is not a JSON object.")


def json_object(raw: bytes, too_deep: str, not_json: str, not_object: str) -> dict:
    """``raw`` parsed as a JSON object, else FarmsError with the sentence for what is wrong (JSON
    nested thousands deep raises RecursionError in the parser)."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise FarmsError(too_deep) from None
    except (UnicodeDecodeError, ValueError):
        raise FarmsError(not_json) from None
    if not isinstance(data, dict):
        raise FarmsError(not_object)
    return data


def sniff_format(path: Path) -> str:
    """``safetensors`` or ``torch`` from a file's first bytes; FarmsError for anything else."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(16)
    if size == 0:
        raise FarmsError(f"{path} is empty (0 bytes), so it holds no weights.")
    # safetensors first: its header length is little-endian, so a header of 0x580 bytes starts
    # 80 05, which also reads as a pickle's protocol-5 opcode (a GPT-2 shard was refused as a pickle)
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= size - 8:
        return "safetensors"
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        return "torch"
    if head.lstrip()[:1] in (b"{", b"[") or _looks_like_text(head):
        raise FarmsError(f"{path} is a text file (JSON or similar), not a safetensors or PyTorch weights file.")
    raise FarmsError(f"{path} is not a safetensors or PyTorch weights file (unrecognised or corrupt contents).")


def _looks_like_text(b: bytes) -> bool:
    return bool(b) and all(c in b"\t\r\n" or 32 <= c < 127 for c in b)


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


#: tensors needing less than this are loaded without asking the system (reading /proc/meminfo was
#: half the time of opening 32,000 small tensors)
MEMORY_CHECK_FROM = 16 * 2**20


def check_memory(path: Path, key: str, shape: tuple, dtype: str) -> None:
    """Refuse before loading a tensor that (with its float32 copy) would not fit in memory."""
    n = math.prod(shape)
    need = n * ITEMSIZE.get(dtype, 4) + n * 4
    if need < MEMORY_CHECK_FROM:
        return
    avail = available_memory()
    if need > avail:
        raise FarmsError(f"{path}: tensor {key!r} {tuple(shape)} needs about {need / 2**30:.1f} GiB but only "
                         f"{avail / 2**30:.1f} GiB of memory is available, so it was not loaded.")


def is_int(x) -> bool:
    """An int that is not a bool (JSON and pickles give both)."""
    return isinstance(x, int) and not isinstance(x, bool)


# ---------------------------------------------------------------- safetensors

def _safetensors_header(path: Path) -> tuple[dict, int]:
    """(header, start of the data) of a safetensors file, every entry checked against the file size."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) < 8:
            raise FarmsError(f"{path} is not a safetensors file: it is shorter than a header ({size} bytes).")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, HEADER_MAX_BYTES):
            raise FarmsError(f"{path} is not a valid safetensors file: its header claims {n} bytes but the file has {size}.")
        raw = f.read(n)
    bad = f"{path} is not a valid safetensors file: its header"
    header = json_object(raw, f"{bad} nests too deeply.", f"{bad} is not JSON.", f"{bad} is not a table of tensors.")
    data_len = size - 8 - n
    for k, v in header.items():
        if k == "__metadata__":
            continue
        try:
            a, b = v["data_offsets"]
            shape, dtype = v["shape"], v["dtype"]
            ok = (is_int(a) and is_int(b) and isinstance(shape, list) and all(is_int(d) and d >= 0 for d in shape)
                  and 0 <= a <= b <= data_len)
            if ok and dtype in _ST_DTYPES:
                ok = b - a == math.prod(shape) * ITEMSIZE[_ST_DTYPES[dtype]]
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise FarmsError(f"{path} is corrupt: tensor {k!r} has an impossible shape or data offsets (the file may be truncated).")
        if dtype not in _ST_DTYPES:
            raise FarmsError(f"{path} holds tensor {k!r} of unknown dtype {dtype!r}.")
    return header, 8 + n


class SafetensorsFile:
    """One ``.safetensors`` file: the header parsed once, then a tensor's bytes read at its offset."""

    held = False

    def __init__(self, path: Path):
        self.path = path
        header, start = _safetensors_header(path)
        self.entries = {k: (tuple(v["shape"]), _ST_DTYPES[v["dtype"]]) for k, v in header.items() if k != "__metadata__"}
        self._spans = {k: (start + v["data_offsets"][0], v["data_offsets"][1] - v["data_offsets"][0])
                       for k, v in header.items() if k != "__metadata__"}

    def load(self, key: str) -> torch.Tensor:
        shape, dtype = self.entries[key]
        check_memory(self.path, key, shape, dtype)
        offset, n = self._spans[key]
        with open_regular(self.path) as f:
            buf = read_exact(f, offset, n, self.path)
        return tensor_from_bytes(buf, dtype, shape)


# ---------------------------------------------------------------- .npy

def read_npy(data: bytes, name: str = "the file") -> np.ndarray:
    """The array in the bytes of a ``.npy`` file, read only if its header's shape and dtype account
    for exactly the bytes that follow (a header may claim 100000^2 float64 in a few bytes); no pickles."""
    from numpy.lib import format as npformat

    f = io.BytesIO(data)
    try:
        version = npformat.read_magic(f)
        readers = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}
        if version not in readers:
            raise FarmsError(f"{name} is a .npy file of version {version[0]}.{version[1]}, which is not read; "
                             f"save it again with np.save.")
        shape, fortran, dtype = readers[version](f)
    except FarmsError:
        raise
    except Exception as e:  # ValueError for bad magic or header
        raise FarmsError(f"{name} is not a readable .npy array ({(str(e).splitlines() or ['bad header'])[0][:200]}).") from None
    if dtype.hasobject:
        raise FarmsError(f"{name} holds Python objects (a pickle); only plain numeric .npy arrays "
                         "are loaded, since a pickle can run code.")
    need, have = math.prod(shape) * dtype.itemsize, len(data) - f.tell()
    if need != have:
        raise FarmsError(f"{name} is not a readable .npy array: its header claims shape {shape} of {dtype} "
                         f"({need} bytes) but {have} bytes follow it.")
    try:
        a = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=f.tell())
        return a.reshape(shape, order="F" if fortran else "C")
    except ValueError as e:
        raise FarmsError(f"{name} is not a readable .npy array ({e}).") from None
