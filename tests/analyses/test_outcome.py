"""Outcome of allocations: the measured table equals a direct analyse -> allocate -> prune -> evaluate,
its summary equals numpy's statistics, rows are cached by what decides them, bad input is one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farms_viz import FarmsError, alphapruning, analyze, prune
from farms_viz.analyses import outcome
from farms_viz.io import results
from farms_viz.zoo import digits, tinylm


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """A private cache with the small tiny LM (seeds 0 and 1) built, on one torch thread."""
    cache = tmp_path_factory.mktemp("cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FARMS_VIZ_CACHE", str(cache))
        for seed in (0, 1):
            tinylm.ensure_built("small", seed)
        yield cache
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_table():
    """With a fixed epsilon and per-matrix alphas: rows that a direct computation (below) can repeat."""
    return outcome.measure("tinylm-small", "magnitude", [0.5, 0.7], seeds=(0, 1), epsilon=0.3, mapping="matrix")


def _direct(model, preset, blocks_only, sparsity, column, method="magnitude", calibration=None):
    """The same measure without outcome.py: analyse, allocate, prune."""
    alloc = alphapruning(analyze(model, preset=preset, cache=False).table, sparsity, 0.3, blocks_only=blocks_only)
    return prune(model, alloc, method, calibration, column=column)


def test_table_has_a_row_per_seed_allocation_and_sparsity(small_table):
    t = small_table
    assert list(t.columns) == list(outcome.COLUMNS)
    assert len(t) == 2 * 2 * 3
    assert sorted(set(zip(t["seed"], t["sparsity"], t["allocation"]))) == sorted(
        (s, x, a) for s in (0, 1) for x in (0.5, 0.7) for a in outcome.ALLOCATIONS)
    assert set(t["metric"]) == {"held-out perplexity"} and set(t["method"]) == {"magnitude"}
    # achieved sparsity over the allocated layers is the target to within a weight per layer
    assert np.allclose(t["achieved"], t["sparsity"], atol=1e-3)
    assert (t["seconds"] > 0).all()


@pytest.mark.parametrize("seed,sparsity,allocation", [(0, 0.5, "uniform"), (1, 0.7, "farms"), (1, 0.5, "raw")])
def test_rows_equal_a_direct_prune_and_perplexity(small_table, seed, sparsity, allocation):
    model = tinylm.load("small", seed)
    pruned = _direct(model, "llm", True, sparsity, outcome.COLUMN[allocation])
    row = small_table[(small_table["seed"] == seed) & (small_table["sparsity"] == sparsity)
                      & (small_table["allocation"] == allocation)].iloc[0]
    assert row["value"] == pytest.approx(tinylm.perplexity(pruned.model, "heldout"), rel=1e-12)
    assert row["dense"] == pytest.approx(tinylm.perplexity(model, "heldout"), rel=1e-12)
    # blocks only: the embedding and lm_head stay dense, as AlphaPruning does
    assert not {"embed_tokens", "lm_head"} & set(pruned.report["layer"])


def test_summary_is_numpys_mean_sd_min_max_over_seeds(small_table):
    s = outcome.summarize(small_table)
    assert len(s) == 2 * 3 and (s["n"] == 2).all()
    for r in s.itertuples():
        v = small_table[(small_table["allocation"] == r.allocation) & (small_table["sparsity"] == r.sparsity)]["value"]
        v = v.to_numpy(float)
        assert r.mean == pytest.approx(v.mean()) and r.sd == pytest.approx(np.std(v, ddof=1))
        assert (r.min, r.max) == (v.min(), v.max())
    assert list(s["allocation"][:3]) == list(outcome.ALLOCATIONS)  # uniform, raw, FARMS per sparsity
    text = outcome.format_summary(s)
    assert "mean ± sd over seeds (n = 2)" in text
    first = s.iloc[0]
    assert f"{first['mean']:.3f} ± {first['sd']:.3f}" in text
    md = outcome.format_summary(s, markdown=True)
    assert "| sparsity | uniform | AlphaPruning, raw α | AlphaPruning, FARMS α |" in md


def test_rows_come_from_the_disk_cache_keyed_by_what_decides_them(small_table, monkeypatch, private_cache):
    assert list((private_cache / "outcome").rglob("*.json"))

    def no_prune(*a, **k):
        raise AssertionError("pruned again")

    monkeypatch.setattr(outcome, "prune", no_prune)
    again = outcome.measure("tinylm-small", "magnitude", [0.7, 0.5], seeds=(1, 0), epsilon=0.3, mapping="matrix")
    key = ["seed", "sparsity", "allocation"]
    assert again.sort_values(key)[["value", "seconds"]].to_numpy().tolist() == \
        small_table.sort_values(key)[["value", "seconds"]].to_numpy().tolist()
    # another epsilon moves the AlphaPruning sparsities (new keys) but not the uniform ones (cached)
    with pytest.raises(AssertionError, match="pruned again"):
        outcome.measure("tinylm-small", "magnitude", [0.5], seeds=(0,), allocations=("raw",), epsilon=0.2,
                        mapping="matrix")
    assert len(outcome.measure("tinylm-small", "magnitude", [0.5], seeds=(0,), allocations=("uniform",),
                               epsilon=0.2, mapping="matrix")) == 1
    with pytest.raises(AssertionError, match="pruned again"):  # cache=False always computes
        outcome.measure("tinylm-small", "magnitude", [0.5], seeds=(0,), allocations=("uniform",), cache=False)


def test_digits_wanda_rows_equal_a_direct_computation():
    t = outcome.measure("digits-cnn", "wanda", [0.6], seeds=(0,), allocations=("uniform", "farms"), epsilon=0.3,
                        mapping="matrix")
    assert len(t) == 2 and set(t["metric"]) == {"test accuracy"}
    model = digits.load("cnn", 30)
    calib = digits.data()[0][:128]
    for r in t.itertuples():
        pruned = _direct(model, "cnn", False, 0.6, outcome.COLUMN[r.allocation], "wanda", calib)
        assert r.value == digits.evaluate(pruned.model)
    assert t["dense"].iloc[0] == digits.evaluate(model) == pytest.approx(0.9933, abs=1e-4)


def test_epsilon_search_picks_the_best_tuning_value_and_never_reads_the_heldout_part(monkeypatch):
    """The release protocol (block-wise, epsilon searched per arm): for each arm, every epsilon of the
    grid is tried on the TUNING measure, the best one is kept and only it is measured held out."""
    calls = {"tune": 0, "heldout": 0}
    real = outcome.zoo_eval.tinylm_model

    def counted(*a, **k):
        t = real(*a, **k)

        def ev(m, f=t.evaluate):
            calls["heldout"] += 1
            return f(m)

        def tu(m, f=t.tune):
            calls["tune"] += 1
            return f(m)
        return outcome.zoo_eval.Trained(t.name, t.metric, t.higher_is_better, t.load, ev, t.calibration,
                                        t.default_calibration, tu)

    monkeypatch.setattr(outcome.zoo_eval, "tinylm_model", counted)
    monkeypatch.setitem(outcome.FAMILIES, "tinylm-small", outcome.Family(
        "tinylm-small", (0,), "llm", True, lambda s: counted("small", s), "test"))
    t = outcome.measure("tinylm-small", "magnitude", [0.7], seeds=(0,), allocations=("raw", "farms"), cache=False)
    grid = outcome.EPSILONS
    assert calls == {"tune": 2 * len(grid), "heldout": 2 + 1}  # + the dense model
    model = tinylm.load("small", 0)
    table = analyze(model, preset="llm", cache=False).table
    for r in t.itertuples():
        tuned = {}
        for e in grid:
            alloc = alphapruning(table, 0.7, e, block_wise=True, blocks_only=True)
            tuned[e] = tinylm.perplexity(prune(model, alloc, column=outcome.COLUMN[r.allocation]).model, "train",
                                         outcome.zoo_eval.TUNE_WINDOWS)
        best = min(tuned, key=tuned.get)
        assert r.epsilon == best and r.epsilon_rule == "searched on tuning data" and r.mapping == "block"
        assert r.tune_value == pytest.approx(tuned[best], rel=1e-12)
        alloc = alphapruning(table, 0.7, best, block_wise=True, blocks_only=True)
        held = tinylm.perplexity(prune(model, alloc, column=outcome.COLUMN[r.allocation]).model, "heldout")
        assert r.value == pytest.approx(held, rel=1e-12)
    assert "(ε " in outcome.format_summary(outcome.summarize(t))


def test_progress_counts_every_row():
    seen = []
    outcome.measure("tinylm-small", "magnitude", [0.5], seeds=(0,), progress=lambda d, n, w: seen.append((d, n)))
    assert seen[-1] == (3, 3) and [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("kwargs,words", [
    (dict(model_name="minilm-init", method="magnitude", sparsities=[0.5]), "not a model farms-viz can prune"),
    (dict(model_name="tinylm-small", method="obs", sparsities=[0.5]), "unknown pruning method"),
    (dict(model_name="tinylm-small", method="magnitude", sparsities=[0.5], epsilon="best"), "'search' or a number"),
    (dict(model_name="tinylm-small", method="magnitude", sparsities=[0.5], mapping="row"), "unknown mapping"),
    (dict(model_name="tinylm-small", method="magnitude", sparsities=[0.5], cap="clip"), "unknown cap rule"),
    (dict(model_name="tinylm-small", method="magnitude", sparsities=[1.0]), "between 0 and 1"),
    (dict(model_name="tinylm-small", method="magnitude", sparsities=[]), "at least one"),
    (dict(model_name="tinylm-small", method="magnitude", sparsities="abc"), "must be numbers"),
    (dict(model_name="tinylm-small", method="magnitude", sparsities=[0.5], allocations=("best",)),
     "unknown allocation"),
    (dict(model_name="tinylm-small", method="magnitude", sparsities=[0.5], seeds=(-1,)), "whole numbers"),
    (dict(model_name="minilm", method="magnitude", sparsities=[0.5], seeds=(0, 1)), "only seed 0"),
])
def test_bad_input_gets_one_sentence(kwargs, words):
    with pytest.raises(FarmsError, match=words):
        outcome.measure(**kwargs)


def test_zoo_names_map_to_their_family():
    assert outcome.family("tinylm-seed2").name == "tinylm"
    assert outcome.family("digits-cnn@30").name == "digits-cnn"
    with pytest.raises(FarmsError, match="digits-cnn"):
        outcome.family("digits-cnn@3")


def test_code_version_ignores_docstrings_and_comments_but_not_code():
    a = results.code_text('"""doc"""\ndef f(x):\n    """what"""\n    return x + 1  # one\n')
    assert a == results.code_text("def f(x):\n    return x + 1\n")
    assert a != results.code_text("def f(x):\n    return x + 2\n")


def test_cli_measure_prints_the_summary_and_writes_every_run(small_table, tmp_path, capsys):
    from farms_viz.cli import main

    out = tmp_path / "runs.csv"
    assert main(["measure", "tinylm-small", "--sparsities", "0.5,0.7", "--seeds", "0,1", "--quiet",
                 "--epsilon", "0.3", "--mapping", "matrix", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert outcome.format_summary(outcome.summarize(small_table)) in text
    assert "12 runs;" in text and f"wrote {out}" in text
    import pandas as pd

    rows = pd.read_csv(out)
    assert list(rows.columns) == list(outcome.COLUMNS) and len(rows) == 12
    assert sorted(rows["value"]) == pytest.approx(sorted(small_table["value"]), rel=1e-12)


@pytest.mark.parametrize("args,words", [
    (["--sparsities", "0.5,x"], "numbers separated by commas"),
    (["--seeds", "0,one"], "numbers separated by commas"),
    (["--sparsities", "1.5"], "between 0 and 1"),
    (["--allocations", "best"], "unknown allocation"),
    (["--out", "runs.json"], "must end in .csv"),
])
def test_cli_measure_bad_input_is_one_sentence(args, words, capsys):
    from farms_viz.cli import main

    assert main(["measure", "tinylm-small", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
