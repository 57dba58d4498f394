"""Messages in the words of the page: the web control to use, never a command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from appkit import linked_app, ok, small_app

from farms_viz.app.sources import SourceSpec, in_user_words, target
from farms_viz.errors import FarmsError
from farms_viz.zoo import registry


@pytest.mark.parametrize("typed,names", [("bert", "choose Source Model zoo"), ("minilm", "minilm ships with farms-viz"),
                                         ("org/name/extra", "choose Source Model zoo")])
def test_a_malformed_hub_id_names_the_web_control(typed, names):
    at = ok(small_app().run())
    at.radio(key="w_pick_kind").set_value("hub").run()
    at.text_input(key="w_pick_hub").input(typed).run()
    ok(at)
    (err,) = [e.value for e in at.error]
    assert "is not of the form owner/name" in err and names in err
    assert "farms-viz zoo" not in err and "run '" not in err


def test_a_link_to_an_unknown_model_names_the_model_list_not_the_cli():
    at = ok(linked_app(model="minilmm", s_ops=3).run())
    (err,) = [e.value for e in at.error]
    assert "did you mean 'minilm'?" in err and "choose Source Model zoo" in err
    assert "farms-viz zoo" not in err


def test_in_user_words_maps_the_saved_copy_back_to_the_uploaded_name(tmp_path):
    saved = tmp_path / "home-my_model.pt"
    spec = SourceSpec("upload", str(saved), label="my model.pt")
    msg = f"{saved} is not a safetensors or PyTorch weights file (unrecognised or corrupt contents)."
    assert in_user_words(msg, spec) == "my model.pt is not a safetensors or PyTorch weights file " \
                                       "(unrecognised or corrupt contents)."
    assert in_user_words(f"cannot read {saved.name}", spec) == "cannot read my model.pt"
    assert in_user_words(f"no room in {tmp_path}", spec) == "no room in the upload folder"
    star = SourceSpec("upload", str(saved), label="*bold*.pt")  # the name is text, not Markdown
    assert in_user_words(str(saved), star) == "\\*bold\\*.pt"
    assert registry.ZOO_HINT in registry.unknown_name_message("nosuch")  # the sentence the app rewrites


def test_a_vanished_upload_says_upload_it_again(tmp_path):
    with pytest.raises(FarmsError, match="no longer on the server.*upload it again"):
        target(SourceSpec("upload", str(Path(tmp_path) / "home-gone.pt"), label="gone.pt"))
