"""Hardening, round 2 (issue 20): hostile patterns, huge weights, out-of-range settings, --out
checks, damaged cache records, terminal escapes, CSV formulas and tiny xmin_mid tails."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from farms_viz import analyze
from farms_viz.analyses.diagnosis import filter_layers
from farms_viz.analyses.lab import SEED_MAX, MatrixSpec, sweep
from farms_viz.cli import _Bar, check_out, main, terminal_text
from farms_viz.core.fits import MIN_EIGS, fit_power_law
from farms_viz.core.spectra import batched_esd, farms_esd
from farms_viz.errors import FarmsError
from farms_viz.io.cache import LayerCache, tensor_key
from farms_viz.io.tables import csv_safe, to_csv
from farms_viz.pipeline.layer import analyze_layer
from farms_viz.pipeline.layerfilter import MAX_PATTERN, compile_filter, filter_names
from farms_viz.pipeline.sources import open_source
from farms_viz.settings import BOUNDS, Settings

#: Patterns that take exponential time in a backtracking engine on names of ~50 characters.
#: catastrophic-backtracking patterns and whether each matches every one of _names() (all end in "a" * 30
#: and contain the "c" of "encoder"; none holds a "Z", a "!" or ends in "xx")
HOSTILE = {r"([\w.]|[\w.])*Z": False, r"(a+)+$": True, r"(\w|\w)*!": False, r"(.*\.)*x{2}$": False,
           r"((ab)*|b)*c": True}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(d))
    return d


def _names(n: int = 10_000) -> list[str]:
    return [f"encoder.layer.{i % 12}.attention.self.query_key_value_{i}.weight" + "a" * 30 for i in range(n)]


def _within(seconds: float, fn):
    """fn() run in a daemon thread; fails the test (instead of hanging it) past ``seconds``."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("out", fn()), daemon=True)
    t0 = time.perf_counter()
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s"
    return box["out"], time.perf_counter() - t0


# --- regular expressions -------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,matches", HOSTILE.items())
def test_hostile_layer_filter_on_10000_names_finishes_within_5_s(pattern, matches):
    names = _names()
    hits, _ = _within(5, lambda: filter_names(names, pattern))
    assert len(hits) == len(names) and set(hits) == {matches}


def test_hostile_filter_on_the_overview_table_is_fast_and_exact():
    table = pd.DataFrame({"layer": _names(10_000) + ["layers.0.Z"], "kind": "linear"})
    out, took = _within(5, lambda: filter_layers(table, r"([\w.]|[\w.])*Z"))
    assert list(out["layer"]) == ["layers.0.Z"]


def test_layer_filter_keeps_python_syntax_for_ordinary_patterns():
    names = ["layers.0.attn.q", "layers.1.mlp.fc", "layers.10.attn.k", "features.0"]
    assert filter_names(names, r"layers\.[0-1]\.attn") == [True, False, False, False]
    assert filter_names(names, r"layers\.\d+\.attn") == [True, False, True, False]
    assert filter_names(names, r"^features") == [False, False, False, True]
    assert filter_names(names, r"(?i)MLP") == [False, True, False, False]
    assert filter_names(names, "") == [True] * 4


@pytest.mark.parametrize("pattern", ["(", "[a-", r"(a)\1", "(?=attn)", r"(?<!x)y", "a{2000}", "x" * (MAX_PATTERN + 1)])
def test_invalid_or_oversized_layer_filter_is_a_sentence(pattern):
    with pytest.raises(FarmsError, match="layer filter"):
        compile_filter(pattern)


@pytest.mark.parametrize("pattern", ["(", "(a+)+$"])
def test_published_metrics_filter_uses_the_same_engine(pattern):
    if pattern == "(":
        with pytest.raises(FarmsError, match="not a valid regular expression"):
            analyze("llama-7b-published", layers=pattern)
    else:
        report, _ = _within(10, lambda: analyze("llama-7b-published", layers=pattern))
        assert report.metrics_only and report.table.empty


def test_cli_hostile_layers_returns_quickly_with_a_sentence(tmp_path, capsys):
    names = {("a" * 40) + f".{i}.weight": torch.randn(8, 4) for i in range(3)}
    rc, took = _within(10, lambda: main(["analyze", _safetensors(tmp_path, names), "--out",
                                         str(tmp_path / "t.csv"), "--quiet", "--layers", "(a+)+$"]))
    assert rc == 2 and "matching" in capsys.readouterr().err


def test_cli_compare_refuses_an_invalid_filter_before_analysing(tmp_path, capsys):
    f = _safetensors(tmp_path, {"x.weight": torch.randn(8, 4)})
    assert main(["compare", f, f, "--out", str(tmp_path / "c.csv"), "--quiet", "--layers", "(?=x)"]) == 2
    assert "not a valid regular expression" in capsys.readouterr().err


# --- large finite weights, unexpected exceptions --------------------------------------------------

def _safetensors(tmp_path: Path, tensors: dict, name: str = "m.safetensors") -> str:
    from safetensors.torch import save_file

    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return str(path)


@pytest.mark.parametrize("scale", [2.0 ** 84, 2.0 ** -90, 2.0 ** 120])
def test_esd_of_a_power_of_two_scaled_matrix_is_exactly_scaled(scale):
    g = torch.Generator().manual_seed(3)
    w = torch.randn(2, 90, 40, generator=g)
    base = batched_esd(w)
    assert np.array_equal(batched_esd(w * scale), base * scale ** 2)
    sq = torch.randn(1, 30, 30, generator=g)
    assert np.array_equal(batched_esd(sq * scale), batched_esd(sq) * scale ** 2)
    e, _ = farms_esd(w * scale, 16, 1.0, 3)
    assert np.array_equal(e, farms_esd(w, 16, 1.0, 3)[0] * scale ** 2)


@pytest.mark.parametrize("dtype,scale", [(torch.float32, 1e25), (torch.float32, 3e37), (torch.bfloat16, 1e38),
                                         (torch.float16, 2000.0), (torch.float64, 1e30)])
def test_large_finite_weights_give_the_scale_free_alpha(dtype, scale):
    g = torch.Generator().manual_seed(5)
    w = torch.randn(120, 48, generator=g).clamp(-3, 3)
    big = (w.double() * scale).to(dtype)
    assert bool(torch.isfinite(big).all())
    r = analyze({"big.weight": big, "unit.weight": (big.double() / scale).float()}, window=24, ops=3,
                cache=False).table.set_index("layer")
    assert (r["status"] == "ok").all(), r["status"].tolist()
    for col in ("alpha_raw", "alpha_farms"):
        assert r.loc["big", col] == pytest.approx(r.loc["unit", col], rel=1e-3)
    assert r.loc["big", "spectral_norm"] == pytest.approx(r.loc["unit", "spectral_norm"] * scale ** 2, rel=1e-3)


def test_weights_beyond_float32_get_a_status_and_the_run_goes_on():
    g = torch.Generator().manual_seed(6)
    t = {"huge.weight": torch.randn(50, 20, generator=g, dtype=torch.float64) * 1e200,
         "fine.weight": torch.randn(50, 20, generator=g)}
    r = analyze(t, window=16, ops=3, cache=False).table.set_index("layer")
    assert "beyond the range of float32" in r.loc["huge", "status"]
    assert r.loc["fine", "status"] == "ok" and math.isfinite(r.loc["fine", "alpha_raw"])


def test_float64_eigenvalues_past_float64_range_are_a_farms_error():
    with pytest.raises(FarmsError, match="float64"):  # square: the float64 route, no float32 cast
        batched_esd(torch.randn(1, 20, 20, dtype=torch.float64) * 1e200)


def test_an_unexpected_exception_in_one_layer_is_its_status(monkeypatch):
    import farms_viz.pipeline.layer as report

    real = report.fit_mp

    def flaky(eigs, n_long, n_short, *a, **k):
        if n_long == 77:
            raise np.linalg.LinAlgError("Eigenvalues did not converge")
        return real(eigs, n_long, n_short, *a, **k)

    monkeypatch.setattr(report, "fit_mp", flaky)
    t = {"bad.weight": torch.randn(77, 20), "good.weight": torch.randn(60, 20), "good2.weight": torch.randn(30, 20)}
    r = analyze(t, window=16, ops=3, cache=False).table.set_index("layer")
    assert r.loc["bad", "status"].startswith("internal error: LinAlgError")
    assert (r.loc[["good", "good2"], "status"] == "ok").all()


# --- settings bounds, seeds ----------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("q", math.inf), ("q", float("1e400")), ("q", math.nan), ("q", 0.0),
                                         ("q", 1e6), ("xmin_pos", math.inf), ("xmin_pos", 1.0), ("xmin_pos", "2x"),
                                         ("conv_norm", math.inf), ("conv_norm", -1.0), ("window", 10 ** 9),
                                         ("window", 2.5), ("ops", 65), ("ops", math.inf), ("ops", True)])
def test_out_of_bounds_settings_are_refused_with_a_sentence(field, value):
    with pytest.raises(FarmsError, match=field):
        Settings(**{field: value})


def test_bounds_are_settings_fields_and_their_ends_are_accepted():
    names = {f for f in Settings().as_dict()}
    for field, (low, high) in BOUNDS.items():
        assert field in names and low < high
        assert getattr(Settings(**{field: low}), field) == low
        assert getattr(Settings(**{field: high}), field) == high


@pytest.mark.parametrize("flag,value", [("--q", "inf"), ("--q", "1e400"), ("--xmin-pos", "nan"), ("--ops", "1000")])
def test_cli_out_of_bounds_option_exits_2_with_a_sentence(tmp_path, capsys, flag, value):
    assert main(["analyze", "llama-7b-published", "--out", str(tmp_path / "t.csv"), flag, value]) == 2
    err = capsys.readouterr().err
    assert "must be" in err and "Traceback" not in err


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 1.5, "x", math.inf])
def test_lab_seed_out_of_range_is_a_sentence(seed):
    with pytest.raises(FarmsError, match="seed"):
        MatrixSpec(rows=50, cols=20, seed=seed)


def test_lab_sweep_refuses_seeds_past_the_range():
    with pytest.raises(FarmsError, match="seed"):
        sweep(MatrixSpec(seed=SEED_MAX - 1), size=16, ratios=[1, 2], n_seeds=3)


# --- --out checks --------------------------------------------------------------------------------

@pytest.fixture
def no_analysis(monkeypatch):
    """Fails a test that reaches an analysis (the --out check must come first)."""
    import farms_viz.analyses.allocate_io as alloc_io
    import farms_viz.cli as cli

    def boom(*a, **k):
        raise AssertionError("the analysis ran before --out was checked")

    monkeypatch.setattr(cli, "analyze", boom)
    monkeypatch.setattr(alloc_io, "read_table", boom)


@pytest.mark.parametrize("command", ["analyze", "compare", "allocate"])
def test_out_is_checked_before_the_analysis(tmp_path, capsys, no_analysis, command):
    src = _safetensors(tmp_path, {"x.weight": torch.randn(8, 4)})
    (tmp_path / "d.csv").mkdir()
    table = tmp_path / "t.csv"
    table.write_text("layer,rows,cols,alpha_raw,alpha_farms\na,4,4,2,3\n")
    link = tmp_path / "link.csv"
    link.symlink_to(table)
    args = {"analyze": ["analyze", src], "compare": ["compare", src, str(table)],
            "allocate": ["allocate", str(table), "--scheme", "tempbalance", "--lr", "0.1"]}[command]
    outs = {str(tmp_path / "d.csv"): "directory", "/proc/farms-viz-test.csv": "cannot be written",
            str(tmp_path / "missing" / "x.csv"): "does not exist", str(link): "is the input"}
    if command == "analyze":
        outs = {k: v for k, v in outs.items() if v != "is the input"}
        outs[str(tmp_path / "m.json")] = None  # a new file next to the input is fine (the analysis then runs)
    for out, why in outs.items():
        if why is None:
            with pytest.raises(AssertionError, match="the analysis ran"):
                main([*args, "--out", out, "--quiet"] if command != "allocate" else [*args, "--out", out])
            continue
        argv = [*args, "--out", out] + (["--quiet"] if command != "allocate" else [])
        assert main(argv) == 2, out
        assert why in capsys.readouterr().err


def test_out_equal_to_the_input_file_or_inside_an_input_folder_is_refused(tmp_path):
    weights = tmp_path / "w.json"
    weights.write_text("{}")
    with pytest.raises(FarmsError, match="is the input"):
        check_out(str(weights), [str(weights)])
    hard = tmp_path / "hard.csv"
    os.link(weights, hard)
    with pytest.raises(FarmsError, match="is the input"):
        check_out(str(hard), [str(weights)])
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(FarmsError, match="input folder"):
        check_out(str(folder / "config.json"), [str(folder)])
    assert check_out(str(folder / "report.csv"), [str(folder)]) == folder / "report.csv"
    assert not list(folder.glob(".farms-viz-*"))  # the probe file is gone


# --- damaged cache records -----------------------------------------------------------------------

def _entry(cache_dir: Path):
    files = sorted(cache_dir.rglob("*.npz"))
    assert len(files) == 1
    return files[0]


def _rewrite(path: Path, change):
    """Rewrite a cache entry with its JSON record passed through ``change`` (same key)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    record = json.loads(bytes(arrays.pop("_record")).decode())
    out = change(record, arrays)
    if isinstance(out, bytes):
        arrays["_record"] = np.frombuffer(out, dtype=np.uint8)
    else:
        arrays["_record"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _set(path, value):
    def change(record, arrays):
        obj = record
        for k in path[:-1]:
            obj = obj[k]
        if value is KeyError:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value
    return change


DAMAGE = {
    "truncated npz": None,
    "bad json": lambda r, a: b'{"key": ',
    "record a list": lambda r, a: json.dumps([r]).encode(),
    "row a list": _set(["row"], [1, 2]),
    "alpha as text": _set(["row", "alpha_raw"], "2.5"),
    "unknown column": _set(["row", "evil"], 1),
    "fit alpha as text": _set(["fits", 0, "alpha"], "x"),
    "fit missing": _set(["fits"], [{"alpha": 2.0}]),
    "grid starts as text": _set(["grid", "row_starts"], ["0"]),
    "grid missing": _set(["grid"], KeyError),
    "mp missing": _set(["mp"], KeyError),
    "kind a number": _set(["kind"], 3),
    "esd missing": lambda r, a: a.__delitem__("esd_raw"),
    "esd of text": lambda r, a: a.__setitem__("esd_farms", np.array(["a", "b"])),
    "thumbnail 1-D": lambda r, a: a.__setitem__("thumbnail", np.zeros(3)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_cache_record_is_a_miss_and_is_replaced(cache_dir, damage):
    w = torch.randn(60, 24, generator=torch.Generator().manual_seed(8))
    settings = Settings(window=16, ops=3)
    ref = next(open_source({"x.weight": w}).tensors())
    cache = LayerCache()
    fresh, _ = analyze_layer(ref, settings, None)
    analyze_layer(ref, settings, cache)
    path = _entry(cache_dir)
    if damage == "truncated npz":
        path.write_bytes(path.read_bytes()[:-200])
    else:
        _rewrite(path, DAMAGE[damage])
    for i in range(2):  # the damaged entry is dropped and rewritten; the second run reads the good one
        row, spec = analyze_layer(ref, settings, cache)
        assert row["status"] == "ok" and spec is not None
        assert row["alpha_farms"] == fresh["alpha_farms"] and row["alpha_raw"] == fresh["alpha_raw"]
        if i == 0:
            rewritten = path.stat().st_mtime_ns
    assert path.stat().st_mtime_ns == rewritten  # a hit: the second run wrote nothing
    key = tensor_key(w, ref.kind, settings)
    record, arrays = cache.get(key)
    assert record["row"]["alpha_raw"] == fresh["alpha_raw"] and arrays["esd_raw"].ndim == 1


# --- terminal escapes ----------------------------------------------------------------------------

ESCAPES = ["\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "\x9b31m", "\u202eevil", "a\rb", "x\x00y", "\x7f"]


@pytest.mark.parametrize("bad", ESCAPES)
def test_progress_bar_shows_control_characters_escaped(bad):
    buf = io.StringIO()
    _Bar(buf)(0, 2, f"layers.0.{bad}.q")
    text = buf.getvalue()
    assert text.startswith("\r") and "\n" not in text
    assert not any(ch in text[1:] for ch in "\x1b\x07\x9b\u202e\x00\x7f\r")
    assert terminal_text(bad, newlines=False) in text


def test_cli_summary_and_errors_carry_no_escape_sequences(tmp_path, capsys):
    src = _safetensors(tmp_path, {"layers.\x1b[31mred\x1b[0m.weight": torch.randn(40, 20),
                                  "\u202ename.weight": torch.randn(30, 20)})
    assert main(["analyze", src, "--out", str(tmp_path / "t.csv"), "--window", "16", "--ops", "3"]) == 0
    assert main(["analyze", src, "--out", str(tmp_path / "u.csv"), "--quiet", "--layers", "\x1b[2J("]) == 2
    cap = capsys.readouterr()
    for text in (cap.out, cap.err):
        assert "\x1b" not in text and "\u202e" not in text
    assert "\\x1b[31mred" in cap.err and "\\x1b[2J" in cap.err


# --- CSV formulas --------------------------------------------------------------------------------

FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1+1", "\r=1+1",
            "=HYPERLINK(\"http://x\")"]


def _cells(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_safe_quotes_formula_text_but_keeps_numbers():
    t = pd.DataFrame({"layer": FORMULAS + ["ok.name", "-1.5"], "alpha": [-0.5] * 9, "n": [-3] * 9})
    out = csv_safe(t)
    assert all(v.startswith("'") for v in out["layer"][:7])
    assert list(out["layer"][7:]) == ["ok.name", "-1.5"]
    assert out["alpha"].tolist() == [-0.5] * 9 and out["n"].tolist() == [-3] * 9
    rows = list(csv.reader(io.StringIO(to_csv(t), newline="")))
    assert rows[1][1] == "-0.5" and rows[1][2] == "-3"


def test_every_csv_the_package_writes_quotes_formula_layer_names(tmp_path, cache_dir):
    names = {f"{n}.weight": torch.randn(40 + 4 * i, 16) for i, n in enumerate(FORMULAS[:4])}
    src = _safetensors(tmp_path, names)
    assert main(["analyze", src, "--out", str(tmp_path / "r.csv"), "--quiet", "--window", "16", "--ops", "3"]) == 0
    assert main(["compare", src, src, "--out", str(tmp_path / "c.csv"), "--quiet", "--window", "16", "--ops", "3"]) == 0
    assert main(["allocate", str(tmp_path / "r.csv"), "--scheme", "alphapruning", "--sparsity", "0.5",
                 "--out", str(tmp_path / "a.csv")]) == 0
    for name in ("r.csv", "c.csv", "a.csv"):
        rows = _cells(tmp_path / name)
        col = rows[0].index("layer")
        layers = [r[col] for r in rows[1:]]
        assert layers and all(v.startswith("'") for v in layers), (name, layers)
        numbers = [float(v) for r in rows[1:] for v in r if v and v[0] == "-" and v[1:2].isdigit()]
        assert all(x < 0 for x in numbers)  # negative numbers are written as numbers


# --- xmin_mid tail size --------------------------------------------------------------------------

@pytest.mark.parametrize("n,xmin_pos", [(1000, 1.0000001), (1000, 1.001), (6, 2.0), (10, 1.5), (300, 1.01)])
def test_xmin_mid_refuses_a_tail_under_min_eigs(n, xmin_pos):
    eigs = 1.0 + np.arange(n) * 1e-6  # closely spaced: a two-point tail gave alpha in the thousands
    f = fit_power_law(eigs, "xmin_mid", xmin_pos)
    tail = n - min(int(n / xmin_pos), n - 2)
    assert tail < MIN_EIGS
    assert f.status != "ok" and math.isnan(f.alpha) and "tail" in f.status


def test_xmin_mid_fits_a_tail_of_min_eigs():
    eigs = np.sort(np.random.default_rng(0).pareto(2.0, 10) + 1)
    f = fit_power_law(eigs, "xmin_mid", 2.0)
    assert f.status == "ok" and f.n_tail == MIN_EIGS


def test_layer_with_a_tiny_xmin_mid_tail_gets_a_status():
    r = analyze({"x.weight": torch.randn(20, 8)}, fit="xmin_mid", xmin_pos=1.5, window=8, ops=2,
                cache=False).table
    assert "tail" in r["status"][0] and math.isnan(r["alpha_raw"][0])
