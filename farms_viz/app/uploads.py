"""Uploaded weights on disk: one private folder per session, deleted when replaced and at session end.

Before, every upload went to one shared ``$TMPDIR/farms_viz_uploads`` under a predictable name,
followed symlinks (a planted dangling link received an upload at a path of the planter's
choosing) and was never deleted. Now:

- each server process makes one ``farms_viz-<pid>-*`` folder with mode 0700 (``mkdtemp``), and
  each session a 0700 folder inside it;
- a file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600, never opened if it exists;
- bytes are copied in 1 MiB chunks from the upload's file object (no second in-memory copy);
- a slot's file (home page, compare A / B) is deleted as soon as another file replaces it, the
  session's folder when the session ends (:meth:`UploadFolder.close`), the process folder at exit,
  and folders of processes that are gone at the next start (:func:`remove_stale`).

No Streamlit here; ``appstate`` ties a folder to a session.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from farms_viz.errors import FarmsError

PREFIX = "farms_viz-"
CHUNK = 2**20
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

_root_lock = threading.Lock()
_root: list[Path] = []  # this process's folder, made on first use (one per process, like the pid)


def safe_name(name: str) -> str:
    """A file name made of letters, digits and ``._-`` only, at most 100 characters, never hidden."""
    base = os.path.basename(str(name).replace("\\", "/"))
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in base)[-100:]
    safe = safe.lstrip(".")
    return safe or "upload"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(parent: str | os.PathLike | None = None) -> list[Path]:
    """Delete the upload folders left by farms-viz processes that are no longer running (a
    server killed before its exit handler ran). Only real folders owned by this user are touched."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for e in entries:
        if not e.name.startswith(PREFIX):
            continue
        try:
            pid = int(e.name[len(PREFIX):].split("-", 1)[0])
            st_ = os.lstat(e.path)
        except (ValueError, OSError):
            continue
        if not stat.S_ISDIR(st_.st_mode) or st_.st_uid != os.getuid() or pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(e.path, ignore_errors=True)
        removed.append(Path(e.path))
    return removed


def process_root(parent: str | os.PathLike | None = None) -> Path:
    """This process's private upload folder (0700), made on first call; removed at exit."""
    with _root_lock:
        if _root and _root[0].is_dir():
            return _root[0]
        remove_stale(parent)
        root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
        _root[:] = [root]
        atexit.register(shutil.rmtree, root, True)
        return root


class UploadFolder:
    """One session's uploads: a private folder and, per slot, the file it currently holds."""

    def __init__(self, parent: str | os.PathLike | None = None):
        root = process_root() if parent is None else Path(parent)
        self.path = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        self._files: dict[str, tuple[str, Path]] = {}
        self._lock = threading.Lock()

    def save(self, slot: str, file_id: str, name: str, data: BinaryIO, size: int, limit_mb: int) -> Path:
        """The path of upload ``file_id`` in ``slot``, written once from ``data`` (a file object).

        The same ``file_id`` again (every rerun of the page) returns the same path without writing;
        a new one deletes the slot's previous file first. Over ``limit_mb``: FarmsError.
        """
        if size > limit_mb * 2**20:
            raise FarmsError(f"{name} is {size / 2**20:.0f} MB, over the upload limit of {limit_mb} MB "
                             "(set server.maxUploadSize in .streamlit/config.toml, or open the file by path).")
        with self._lock:
            held = self._files.get(slot)
            if held is not None and held[0] == file_id and held[1].exists():
                return held[1]
            self._drop(slot)
            if not self.path.is_dir():
                raise FarmsError("This session's upload folder is gone (the session ended); reload the page.")
            p = self.path / f"{slot}-{safe_name(name)}"
            try:
                fd = os.open(p, _FLAGS, 0o600)
            except FileExistsError:
                raise FarmsError(f"Could not store {name}: a file of that name is already in the upload "
                                 "folder; upload it again.") from None
            try:
                with os.fdopen(fd, "wb") as f:
                    data.seek(0)
                    shutil.copyfileobj(data, f, CHUNK)
            except BaseException:
                p.unlink(missing_ok=True)
                raise
            self._files[slot] = (file_id, p)
            return p

    def _drop(self, slot: str) -> None:
        held = self._files.pop(slot, None)
        if held is not None:
            held[1].unlink(missing_ok=True)

    def forget(self, slot: str) -> None:
        """Delete the file of ``slot`` (its upload widget was cleared)."""
        with self._lock:
            self._drop(slot)

    def files(self) -> list[Path]:
        return sorted(p for p in self.path.iterdir()) if self.path.is_dir() else []

    def close(self) -> None:
        """Delete the folder and every file in it (the session ended)."""
        with self._lock:
            self._files.clear()
            shutil.rmtree(self.path, ignore_errors=True)
