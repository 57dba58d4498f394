"""Uploads on disk: a private folder per session, no symlink followed, replaced files and ended sessions deleted."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys

import pytest

from farms_viz.app.uploads import PREFIX, UploadFolder, remove_stale, safe_name
from farms_viz.errors import FarmsError


def _mode(p) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.fixture
def folder(tmp_path):
    f = UploadFolder(tmp_path)
    yield f
    f.close()


def test_each_session_gets_its_own_private_folder(tmp_path):
    a, b = UploadFolder(tmp_path), UploadFolder(tmp_path)
    assert a.path != b.path
    assert _mode(a.path) == 0o700 and _mode(b.path) == 0o700
    p = a.save("home", "id1", "w.safetensors", io.BytesIO(b"abc"), 3, 10)
    assert p.parent == a.path and p.read_bytes() == b"abc"
    assert _mode(p) == 0o600
    assert b.files() == []


def test_the_process_folder_is_private_and_removed_at_exit(tmp_path):
    code = ("import tempfile, sys; tempfile.tempdir = sys.argv[1]\n"
            "from farms_viz.app.uploads import UploadFolder\n"
            "f = UploadFolder(); print(f.path.parent)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    root = out.stdout.strip()
    assert os.path.basename(root).startswith(PREFIX)
    assert not os.path.exists(root)  # atexit removed it


def test_same_upload_again_is_not_rewritten_and_a_new_one_replaces_it(folder):
    p1 = folder.save("home", "id1", "a.pt", io.BytesIO(b"one"), 3, 10)
    mtime = p1.stat().st_mtime_ns
    assert folder.save("home", "id1", "a.pt", io.BytesIO(b"one"), 3, 10) == p1  # every rerun
    assert p1.stat().st_mtime_ns == mtime
    p2 = folder.save("home", "id2", "b.pt", io.BytesIO(b"two"), 3, 10)
    assert not p1.exists() and p2.read_bytes() == b"two"
    p3 = folder.save("cmp_a", "id3", "b.pt", io.BytesIO(b"three"), 5, 10)  # slots are independent
    assert p2.exists() and p3.exists() and p2 != p3
    folder.forget("home")
    assert not p2.exists() and p3.exists()


def test_a_planted_symlink_is_never_followed(folder, tmp_path):
    target = tmp_path / "victim.txt"
    # an attacker who could write into the folder plants the name the next upload would get
    (folder.path / "home-w.pt").symlink_to(target)
    with pytest.raises(FarmsError, match="already in the upload folder"):
        folder.save("home", "id1", "w.pt", io.BytesIO(b"payload"), 7, 10)
    assert not target.exists()  # nothing was written through the link
    target.write_text("keep")
    (folder.path / "home-x.pt").symlink_to(target)
    with pytest.raises(FarmsError):
        folder.save("home", "id2", "x.pt", io.BytesIO(b"payload"), 7, 10)
    assert target.read_text() == "keep"


@pytest.mark.parametrize("name,expected", [("../../etc/passwd", "passwd"), ("..", "upload"),
                                           (".hidden.pt", "hidden.pt"), ("a b/c\\d.pt", "d.pt"),
                                           ("ünï cödé.safetensors", "_n__c_d_.safetensors"),
                                           ("x" * 300 + ".pt", "x" * 97 + ".pt")])
def test_file_names_are_flattened(name, expected):
    assert safe_name(name) == expected


def test_over_the_limit_is_refused_before_writing(folder):
    with pytest.raises(FarmsError, match="over the upload limit of 1 MB"):
        folder.save("home", "id1", "big.pt", io.BytesIO(b"\0" * (2 * 2**20)), 2 * 2**20, 1)
    assert folder.files() == []


def test_close_deletes_everything_and_later_saves_say_so(folder):
    p = folder.save("home", "id1", "a.pt", io.BytesIO(b"one"), 3, 10)
    folder.close()
    assert not p.exists() and not folder.path.exists()
    with pytest.raises(FarmsError, match="session ended"):
        folder.save("home", "id2", "b.pt", io.BytesIO(b"two"), 3, 10)


def test_stale_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = tmp_path / f"{PREFIX}{dead}-abc"
    (stale / "session-x").mkdir(parents=True)
    (stale / "session-x" / "w.pt").write_bytes(b"old")
    alive = tmp_path / f"{PREFIX}{os.getpid()}-def"
    alive.mkdir()
    other = tmp_path / f"{PREFIX}notapid"
    other.mkdir()
    link = tmp_path / f"{PREFIX}{dead}-link"
    link.symlink_to(other)
    removed = remove_stale(tmp_path)
    assert removed == [stale] and not stale.exists()
    assert alive.exists() and other.exists() and link.is_symlink()


def test_the_app_saves_to_the_session_folder_and_release_deletes_it():
    """appserver's session-scoped folder: on_release (Streamlit's session end) removes the files."""
    from farms_viz.app import server as appserver

    f = UploadFolder()
    p = f.save("home", "id", "w.pt", io.BytesIO(b"x"), 1, 1)
    appserver._release_uploads(f)
    assert not p.exists() and not f.path.exists()


def test_an_upload_error_names_the_uploaded_file_not_the_servers_copy():
    """The file is saved as ``home-my_text.safetensors`` in the session's upload folder; the page's
    sentence names ``my text.safetensors``, as the visitor chose it."""
    from appkit import ok, small_app

    at = ok(small_app().run())
    at.radio(key="w_pick_kind").set_value("upload").run()
    at.get("file_uploader")[0].upload("my text.safetensors", b'{"not": "weights"}\n')
    ok(at.run())
    (err,) = [e.value for e in at.error]
    assert "my text.safetensors is a text file" in err
    assert "home-my_text" not in err and PREFIX not in err and "/" not in err.split(" is a text file")[0]
