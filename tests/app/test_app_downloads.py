"""The app's files: the full table as the CLI writes it, a layer's numbers and eigenvalues, the Lab's sweep,
the HTML report, and every file and PNG named safely after the model, the layer and the settings."""

from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
import torch
from appkit import ROOT, linked_app, ok
from safetensors.torch import save_file

from farms_viz.analyses.lab import SWEEP_RATIOS
from farms_viz.app import downloads
from farms_viz.app.downloads import NAME_CHARS, chart_config, safe_name, settings_tag
from farms_viz.cli import main as cli
from farms_viz.figures.style import elide, subtitle
from farms_viz.settings import Settings

OVERVIEW = str(ROOT / "pages" / "1_Model_overview.py")
BROWSER = str(ROOT / "pages" / "2_Layer_browser.py")
LAB = str(ROOT / "pages" / "5_Lab.py")
SMALL = "digits-mlp@30"
SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


@pytest.fixture
def files(monkeypatch) -> dict:
    """The files the page offers, by button key: ``(file name, bytes)`` (a deferred file is made)."""
    seen = {}
    real = downloads.download

    def record(container, label, data, stem, suffix, key, **kw):
        seen[key] = (stem + suffix, data() if callable(data) else data)
        return real(container, label, data, stem, suffix, key, **kw)

    monkeypatch.setattr(downloads, "download", record)
    return seen


def _chart_files(at) -> list[str]:
    return [json.loads(c.proto.config)["toImageButtonOptions"]["filename"] for c in at.get("plotly_chart")]


def _chart_subtitles(at) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"].get("subtitle", {}).get("text", "") for c in
            at.get("plotly_chart")]


# ------------------------------------------------------------------ names

@pytest.mark.parametrize("parts,name", [
    (("minilm", "encoder.layer.0.attention.self.query", "esd-raw"), "minilm-encoder_layer_0_attention_self_query-esd-raw"),
    (("/etc/passwd", '"quoted" name', "../..", "a\x00b"), "etc_passwd-quoted_name-a_b"),
    (("org/model@rev", "ü"), "org_model_rev"),
    (("", None, "..."), "farms-viz"),
])
def test_safe_name_keeps_letters_digits_dash_underscore(parts, name):
    assert safe_name(*parts) == name


def test_safe_name_caps_each_part_and_the_whole():
    name = safe_name("m" * 3000, "L" * 3000, "esd-raw", "x" * 500)
    assert len(name) <= NAME_CHARS and SAFE.match(name)
    assert "-esd-raw-" in name  # a long layer name does not push the figure's name out


def test_chart_config_names_the_png_and_hides_the_logo():
    cfg = chart_config("minilm", "fc1", "tail-farms", settings_tag(Settings.preset("llm")))
    assert cfg == {"displaylogo": False,
                   "toImageButtonOptions": {"filename": "minilm-fc1-tail-farms-xmin_peak-w2000-q1-ops15"}}


def test_subtitle_escapes_and_elides_the_layer_name():
    sub = subtitle("m · <b onclick=x>&\x00" + "y" * 100, "xmin_peak, window 2000, q 1, ops 15", chars=40)
    text = sub["text"]
    assert "<b " not in text and "&lt;b onclick=x&gt;&amp;?" in text and "\x00" not in text
    first = text.split("<br>")[0]
    assert len(first.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")) == 40 and "…" in first
    assert elide("abcdefghij", 5) == "ab…ij"


# ------------------------------------------------------------------ model overview

def test_full_table_download_is_what_the_cli_writes(tmp_path, files):
    at = ok(linked_app(OVERVIEW, s_ops=3, model=SMALL).run())
    for fmt in ("csv", "json"):
        assert cli(["analyze", SMALL, "--ops", "3", "--quiet", "--out", str(tmp_path / f"t.{fmt}")]) == 0
    name, data = files["ov_full_csv"]
    assert name == "digits-mlp_30-farms-table.csv"
    cli_csv = (tmp_path / "t.csv").read_bytes()
    assert data.splitlines()[0] == cli_csv.splitlines()[0]  # the same columns, in the same order
    app_t, cli_t = pd.read_csv(io.BytesIO(data)), pd.read_csv(io.BytesIO(cli_csv))
    assert {"xmin_raw", "D_farms", "stable_rank", "n_spikes_raw", "status"} <= set(app_t)
    pd.testing.assert_frame_equal(app_t.drop(columns="seconds"), cli_t.drop(columns="seconds"))
    name, data = files["ov_full_json"]
    assert name == "digits-mlp_30-farms-table.json"
    app_j, cli_j = json.loads(data), json.loads((tmp_path / "t.json").read_bytes())
    assert [list(r) for r in app_j] == [list(r) for r in cli_j]
    assert [r["alpha_farms"] for r in app_j] == [r["alpha_farms"] for r in cli_j]
    # the diagnosis CSV stays, and the one-file report is named after the model
    assert files["ov_csv"][0] == "digits-mlp_30-farms-diagnosis.csv"
    name, html = files["ov_report"]
    assert name == "digits-mlp_30-farms-report.html"
    assert html.startswith(b"<!DOCTYPE html>") and b"digits-mlp@30" in html and b"fc3" in html
    assert not at.error


def test_overview_pngs_carry_model_and_settings():
    at = ok(linked_app(OVERVIEW, s_ops=3, model=SMALL).run())
    names = _chart_files(at)
    assert names and all(SAFE.match(n) and n.startswith("digits-mlp_30-xmin_peak-w2000-q1-ops3-") for n in names)
    assert len(set(names)) == len(names)
    subs = _chart_subtitles(at)
    assert subs[0] == "digits-mlp@30<br>xmin_peak, window 2000, q 1, ops 3"


# ------------------------------------------------------------------ layer browser

@pytest.fixture
def hostile_model(tmp_path):
    """A file whose layer name holds a path, quotes, a tag and a formula."""
    w = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    name = 'x/../"evil" <b>=cmd|calc'
    path = tmp_path / "m.safetensors"
    save_file({f"{name}.weight": w}, str(path))
    return str(path), name


def test_layer_downloads_hold_both_sides_and_safe_names(hostile_model, files):
    path, layer = hostile_model
    at = ok(linked_app(BROWSER, s_ops=3, model=path, layer=layer).run())
    assert at.selectbox(key="w_layer").value == layer
    name, data = files["br_numbers"]
    assert name == "m_safetensors-x_evil_b_cmd_calc-numbers.csv"
    numbers = pd.read_csv(io.BytesIO(data))
    assert list(numbers.columns) == ["quantity", "raw", "farms"]
    card = {r["quantity"]: (r["raw"], r["farms"]) for _, r in numbers.iterrows()}
    assert card["alpha"][0] in " ".join(t.value for t in at.markdown)  # the card's number, as shown
    assert "α by xmin_mid" in card and "tail size" in card
    name, data = files["br_eigenvalues"]
    assert name == "m_safetensors-x_evil_b_cmd_calc-eigenvalues.csv"
    eigs = pd.read_csv(io.BytesIO(data))
    assert list(eigs.columns) == ["side", "eigenvalue"]
    assert (eigs["side"] == "raw").sum() == 32  # the 32 eigenvalues of W^T W
    assert (eigs["side"] == "farms").sum() > 0
    for png in _chart_files(at):
        assert SAFE.match(png) and png.startswith("m_safetensors-x_evil_b_cmd_calc-"), png
    subs = _chart_subtitles(at)
    assert all("&lt;b&gt;" in s and "<b>" not in s for s in subs)


# ------------------------------------------------------------------ lab

def test_lab_sweep_csv_has_a_row_per_matrix(files):
    at = ok(linked_app(LAB, view="sweep", size="16", seeds="2").run())
    name, data = files["lab_sweep_csv"]
    assert name == "lab-sweep-gaussian-short-16-seeds2-xmin_mid.csv"
    t = pd.read_csv(io.BytesIO(data))
    assert list(t.columns) == ["aspect_ratio", "rows", "cols", "seed", "window", "alpha_raw", "alpha_farms"]
    assert len(t) == 2 * len(SWEEP_RATIOS) and t["seed"].tolist()[:2] == [0, 1]
    assert (t["cols"] == 16).all() and (t["window"] == 16).all()
    assert _chart_files(at) == ["lab-sweep-gaussian-short-16-seeds2-xmin_mid"]
