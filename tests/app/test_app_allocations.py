"""The Allocations page through AppTest: renders for MiniLM, the LLaMA-7B example, both schemes."""

from __future__ import annotations

import pytest
from appkit import charts, metrics, ok, small_app
from streamlit.testing.v1 import AppTest

PAGE = "pages/3_Allocations.py"


def _page() -> AppTest:
    """The Allocations page with small FARMS settings (3 x 3 windows)."""
    at = small_app()
    at.switch_page(PAGE)
    return ok(at.run())


def test_minilm_alphapruning_renders_with_exact_mean_and_downloads():
    at = _page()
    assert "minilm" in at.title[0].value
    m = metrics(at)
    assert m["Target sparsity"] == "0.70"
    assert m["Weighted mean, raw α"] == "0.7000" and m["Weighted mean, FARMS α"] == "0.7000"
    assert charts(at) == 4  # per layer, per block, attention vs MLP, heatmap
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 15
    assert len(at.get("download_button")) == 2
    assert not at.error and not at.warning
    assert any("Not pruned" in c.value and "pooler.dense" in c.value for c in at.caption)


def test_minilm_pooler_included_is_capped_and_reported():
    at = _page()
    at.toggle(key="w_al_blocks_only").set_value(False)
    ok(at.run())
    assert len(at.warning) == 1 and "pooler.dense" in at.warning[0].value
    assert metrics(at)["Weighted mean, FARMS α"] == "0.7000"


def test_llama_example_button_switches_source_and_shows_caps():
    at = _page()
    at.button(key="al_llama").click()
    ok(at.run())
    assert "llama-7b-published" in at.title[0].value
    assert at.session_state["source"].value == "llama-7b-published"
    assert metrics(at)["Weighted mean, FARMS α"] == "0.7000"
    assert charts(at) == 4
    assert not at.warning
    at.slider(key="w_al_sparsity").set_value(0.8)
    ok(at.run())
    assert len(at.warning) == 1 and "capped at 1" in at.warning[0].value and "raw and FARMS" in at.warning[0].value
    assert metrics(at)["Weighted mean, raw α"] == "0.8000"
    at.toggle(key="w_al_block_wise").set_value(True)
    ok(at.run())
    assert charts(at) == 2 and any("Block-wise" in c.value for c in at.caption)
    at.button(key="al_back").click()
    ok(at.run())
    assert "minilm" in at.title[0].value


@pytest.mark.parametrize("amap", ["linear", "sqrt", "log2", "step"])
def test_tempbalance_maps_render(amap):
    at = _page()
    at.radio(key="w_al_scheme").set_value("tempbalance")
    ok(at.run())
    at.selectbox(key="w_al_map").set_value(amap)
    at.checkbox(key="w_al_keep_first").check()
    ok(at.run())
    m = metrics(at)
    assert m["Base lr"] == "0.001" and "–" in m["lr range, FARMS α"]
    assert charts(at) == 4 and not at.error
    assert f"--map {amap}" in " ".join(c.value for c in at.caption)


@pytest.mark.parametrize("blocks_only", [True, False])
def test_page_numbers_equal_the_cli_command_it_prints(tmp_path, blocks_only):
    """The page prints 'Same numbers from the command line: farms-viz allocate ...'; run that
    command on the same model and settings and compare every value the page shows."""
    import shlex

    import pandas as pd

    from farms_viz import analyze
    from farms_viz.cli import main

    at = _page()
    at.toggle(key="w_al_blocks_only").set_value(blocks_only)
    ok(at.run())
    caption = next(c.value for c in at.caption if "Same numbers from the command line" in c.value)
    command = caption.split("`")[1]
    assert ("--blocks-only" in command) == blocks_only
    report = tmp_path / "minilm.csv"
    analyze("minilm", ops=3).save(str(report))
    out = tmp_path / "alloc.csv"
    args = shlex.split(command.replace("REPORT", str(report)).replace("FILE.csv", str(out)))
    assert args[0] == "farms-viz" and main(args[1:]) == 0
    cli = pd.read_csv(out).set_index("layer")
    shown = at.dataframe[0].value  # the layers that move most, with both values
    assert len(shown) == 15
    for _, r in shown.iterrows():
        assert r["ratio_farms"] == pytest.approx(cli.loc[r["layer"], "ratio_farms"], abs=1e-9)
        assert r["ratio_raw"] == pytest.approx(cli.loc[r["layer"], "ratio_raw"], abs=1e-9)
    assert ("pooler.dense" in cli.index) == (not blocks_only)
