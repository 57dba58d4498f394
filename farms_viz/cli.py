"""The ``farms-viz`` command line tool (same ``analyze()`` as the app)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

from farms_viz.analyses import allocate_io as alloc_io
from farms_viz.analyses import outcome, prune_io
from farms_viz.analyses.allocate import CAPS, MAPS, SCHEMES, allocated_params, alphapruning, tempbalance, weighted_mean
from farms_viz.analyses.compare import change_text, compare_summary, compare_tables, diagnosis_changes
from farms_viz.analyses.matching import MATCH_MODES, MATCH_TEXT
from farms_viz.analyses.prune import METHODS
from farms_viz.analyses.summary import summary_lines
from farms_viz.errors import FarmsError
from farms_viz.figures.html_report import report_html
from farms_viz.io.tables import to_csv
from farms_viz.pipeline.analyze import analyze
from farms_viz.pipeline.ray import EXECUTORS
from farms_viz.settings import CONV_RULES, DEVICES, FITS, PRESETS, SETTING_FIELDS
from farms_viz.zoo import registry as zoo


def terminal_text(text: str, newlines: bool = True) -> str:
    """``text`` with control and format characters shown as escapes (``\\x1b``), so a layer
    or file name cannot move the cursor, recolour or rewrite the terminal (ANSI sequences start
    with ESC or CSI) or reorder it (bidi overrides). Newlines stay when ``newlines``."""
    out = []
    for ch in str(text):
        if ch == "\n" and newlines:
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            out.append(ascii(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)


def _print(text: str = "", file=None) -> None:
    print(terminal_text(text), file=file)


def check_out(out: str, inputs=(), suffixes=(".csv", ".json")) -> Path:
    """``--out`` checked before any analysis: ending in one of ``suffixes``, not a directory or special file,
    in a folder where a file can be created, and not one of ``inputs`` (nor a file inside an
    input folder): the analysis would otherwise run to the end and then fail, or overwrite
    the weights it read."""
    s = str(out)
    if not s.endswith(tuple(suffixes)):
        raise FarmsError(f"--out must end in {' or '.join(suffixes)} (got {s}).")
    p = Path(s).expanduser()
    if p.is_dir():
        raise FarmsError(f"--out {s} is a directory; give a file name such as {p / ('report' + suffixes[0])}.")
    if p.exists() and not p.is_file():
        raise FarmsError(f"--out {s} exists and is not a regular file.")
    for src in inputs:
        q = Path(str(src)).expanduser()
        if not q.exists():
            continue  # a zoo name or a hub id
        if p.exists() and os.path.samefile(p, q):
            raise FarmsError(f"--out {s} is the input {src}; writing the table would overwrite it.")
        if q.is_dir() and p.exists() and p.resolve().is_relative_to(q.resolve()):
            raise FarmsError(f"--out {s} is a file of the input folder {src}; choose a new file name.")
    parent = p.parent
    if not parent.is_dir():
        raise FarmsError(f"--out {s}: the folder {parent} does not exist.")
    if p.exists():
        if not os.access(p, os.W_OK):
            raise FarmsError(f"--out {s} cannot be written (permission denied).")
    else:
        try:  # os.access says yes for root even under /proc; only creating a file tells
            with tempfile.NamedTemporaryFile(dir=parent, prefix=".farms-viz-", suffix=".tmp"):
                pass
        except OSError as e:
            raise FarmsError(f"--out {s} cannot be written in {parent} ({e.strerror or e}).") from None
    return p


class _Bar:
    """A one-line progress bar on stderr (the layer being analysed, done/total)."""

    def __init__(self, stream=None, width: int = 28):
        self.stream = stream or sys.stderr
        self.width = width
        self.t0 = time.perf_counter()

    def __call__(self, done: int, total: int, layer: str) -> None:
        frac = done / total if total else 1.0
        fill = int(round(self.width * frac))
        bar = "#" * fill + "-" * (self.width - fill)
        layer = terminal_text(layer, newlines=False)
        name = (layer[:48] + "...") if len(layer) > 51 else layer
        self.stream.write(f"\r[{bar}] {done}/{total} {time.perf_counter() - self.t0:6.1f}s {name:<51}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=list(PRESETS), default="llm",
                   help="the paper's settings: llm (xmin_peak, 2000/1.0/15, default) or cnn (xmin_mid, 100/1.0/9)")
    p.add_argument("--fit", choices=FITS, help="power-law xmin rule (xmin_peak: the FARMS release's, "
                   "lower bound included; ks: WeightWatcher's)")
    p.add_argument("--xmin-pos", type=float, help="xmin_mid: xmin = esd[int(N / xmin_pos)] (default 2)")
    p.add_argument("--window", type=int, help="FARMS window rows (default 2000; capped by the short side)")
    p.add_argument("--q", type=float, help="FARMS window aspect ratio cols/rows (default 1.0)")
    p.add_argument("--ops", type=int, help="FARMS windows per dimension (default 15)")
    p.add_argument("--conv-rule", choices=CONV_RULES, help="FARMS on conv layers: release (default: the "
                   "release's C x C blocks per kernel slice, block alphas averaged) or grid (the window grid "
                   "on every slice, one pooled ESD)")
    p.add_argument("--device", choices=DEVICES, help="where the linear algebra runs (default cpu)")
    p.add_argument("--include-embeddings", action="store_true", default=None, help="analyse embedding tables too")
    p.add_argument("--layers", metavar="REGEX", help="only layers whose name matches REGEX")
    p.add_argument("--randomize", action=argparse.BooleanOptionalAction, default=None,
                   help="also the ESD of the element-wise shuffled matrix: rand_* columns and num_traps "
                        "(WeightWatcher's randomize=True; default on)")
    p.add_argument("--seed", type=int, metavar="N", help="the shuffle's seed for --randomize (default 0)")


def _settings_kwargs(a) -> dict:
    return dict(preset=a.preset, layers=a.layers, **{f: getattr(a, f, None) for f in SETTING_FIELDS})


def _summary(report) -> str:
    t = report.table
    if report.metrics_only:
        ok = t
        lines = [f"{report.name}: {len(t)} layers of published metrics (no weights, no spectra)"]
        for col in ("alpha_raw", "alpha_farms"):
            s = t[col].dropna() if col in t else []
            if len(s):
                lines.append(f"  {col:<12} mean {s.mean():.3f}  std {s.std(ddof=0):.3f}  min {s.min():.3f}  max {s.max():.3f}")
        return "\n".join(lines)
    ok = t[t["status"] == "ok"]
    lines = [f"{report.name}: {len(t)} layers, {len(ok)} analysed"
             + (f", {len(t) - len(ok)} with a status (see the 'status' column)" if len(ok) < len(t) else "")]
    if len(ok) and "alpha_raw" in ok:
        for col in ("alpha_raw", "alpha_farms"):
            s = ok[col].dropna()
            if len(s):
                lines.append(f"  {col:<12} mean {s.mean():.3f}  std {s.std(ddof=0):.3f}  min {s.min():.3f}  max {s.max():.3f}")
    return "\n".join(lines + summary_lines(report.summary()))


def cmd_analyze(a) -> int:
    check_out(a.out, [a.source])
    if a.address and a.executor != "ray":
        raise FarmsError("--address is the Ray cluster to use; give it with --executor ray.")
    report = analyze(a.source, progress=None if a.quiet else _Bar(), cache=not a.no_cache,
                     executor=a.executor, address=a.address, **_settings_kwargs(a))
    report.save(a.out)
    _print(_summary(report))
    _print(f"wrote {a.out}")
    return 0


def cmd_report(a) -> int:
    """Analyse a model exactly as ``analyze`` would and write the one-file HTML report."""
    out = check_out(a.out, [a.source], suffixes=(".html", ".htm"))
    report = analyze(a.source, progress=None if a.quiet else _Bar(), cache=not a.no_cache, **_settings_kwargs(a))
    # backslashreplace: a file name that is not UTF-8 (Python keeps its bytes as lone surrogates) cannot fail it
    out.write_text(report_html(report), encoding="utf-8", errors="backslashreplace")
    _print(_summary(report))
    _print(f"wrote {a.out} ({out.stat().st_size / 1e6:.1f} MB; opens in a browser, offline)")
    return 0


def cmd_compare(a) -> int:
    """Analyse A and B with the same options (each exactly as ``analyze`` would) and write the matched table."""
    check_out(a.out, [a.a, a.b])
    reports = [analyze(src, progress=None if a.quiet else _Bar(), cache=not a.no_cache, **_settings_kwargs(a))
               for src in (a.a, a.b)]
    cmp = compare_tables(*reports, match=a.match)
    if a.out.endswith(".json"):
        cmp.to_json(a.out, orient="records", indent=1, double_precision=15)
    else:
        to_csv(cmp, a.out)
    s = compare_summary(cmp)
    _print(f"A = {reports[0].name}, B = {reports[1].name}: {s['matched']} layers matched, {s['only_a']} only in A, "
          f"{s['only_b']} only in B, {s['shape_differs']} with a different shape")
    _print(f"  {s['matching']}")
    _print(f"  mean delta alpha (B - A): raw {s['mean_delta_raw']:+.3f}  FARMS {s['mean_delta_farms']:+.3f}")
    ch = diagnosis_changes(cmp)
    _print(f"  diagnosis changes: {s['changed_raw']} raw, {s['changed_farms']} FARMS")
    for _, r in ch.head(10).iterrows():
        _print(f"    {r['layer']}: {change_text(r)}")
    _print(f"wrote {a.out}")
    return 0


def cmd_allocate(a) -> int:
    """TempBalance learning rates or AlphaPruning sparsities from raw and FARMS alphas of a table."""
    check_out(a.out, [a.report])
    table = alloc_io.read_table(a.report, progress=_Bar())
    if a.scheme == "alphapruning":
        if a.sparsity is None:
            raise FarmsError("--scheme alphapruning needs --sparsity S (e.g. 0.7).")
        alloc = alphapruning(table, a.sparsity, a.epsilon, block_wise=a.block_wise, block_size=a.block_size,
                             blocks_only=a.blocks_only, cap=a.cap)
    else:
        if a.lr is None:
            raise FarmsError("--scheme tempbalance needs --lr LR (the base learning rate).")
        alloc = tempbalance(table, a.lr, a.map, a.lr_min_ratio, a.lr_max_ratio, a.keep_first, a.keep_last)
    alloc_io.write(alloc, a.out)
    c_raw, c_farms = alloc.columns()
    d = alloc.table[c_farms] - alloc.table[c_raw]
    opts = ", ".join(f"{k}={v}" for k, v in alloc.settings.items() if v is not None)
    _print(f"{a.scheme}: {len(alloc.table)} layers ({opts})")
    if a.scheme == "alphapruning":
        p = allocated_params(alloc, table)
        if alloc.left_out:
            _print(f"  {len(alloc.left_out)} layers outside transformer blocks left dense: "
                   + ", ".join(alloc.left_out[:5]) + (" ..." if len(alloc.left_out) > 5 else ""))
        _print(f"  weighted mean sparsity: raw {weighted_mean(alloc.table[c_raw], p):.4f}  "
              f"FARMS {weighted_mean(alloc.table[c_farms], p):.4f}")
        for w in ("raw", "farms"):
            if alloc.capped[w]:
                _print(f"  {len(alloc.capped[w])} layers capped at sparsity 1 ({w}); the excess went to the others")
    if alloc.missing["farms"] or alloc.missing["raw"]:
        _print(f"  {len(set(alloc.missing['raw']) | set(alloc.missing['farms']))} layers without alpha get "
              + ("the target sparsity" if a.scheme == "alphapruning" else "the base lr"))
    i = int(d.abs().idxmax())
    _print(f"  largest move FARMS - raw: {alloc.table['layer'][i]} {d[i]:+.4g}")
    _print(f"wrote {a.out}")
    return 0


def cmd_prune(a) -> int:
    """Prune a model by an allocation's column (or uniformly) and write the pruned layers' weights."""
    check_out(a.out, [a.source] + ([a.allocation] if a.allocation else []), suffixes=(".safetensors",))
    if a.report:
        check_out(a.report, [a.source, a.out], suffixes=(".csv",))
    res = prune_io.run(a.source, a.allocation, a.column, a.method, a.sparsity, a.calibration, a.evaluate)
    prune_io.save(res.pruned, a.out)
    rep = res.pruned.report
    if a.report:
        to_csv(rep, a.report)
    target, achieved = res.pruned.overall()
    _print(f"{a.method} pruning of {a.source}: {len(rep)} layers, weighted mean sparsity target {target:.4f}, "
           f"achieved {achieved:.4f}")
    _print(rep.to_string(index=False, max_rows=40, formatters={"target": "{:.4f}".format,
                                                               "achieved": "{:.4f}".format}))
    if res.metric:
        _print(f"{res.metric}: dense {res.dense:.4f}  pruned {res.value:.4f}")
    _print(f"wrote {a.out}" + (f" and {a.report}" if a.report else ""))
    return 0


def _list(text: str, what: str, cast) -> list:
    """``"0.5,0.7"`` -> [0.5, 0.7]; one sentence when an item is not a ``cast``."""
    try:
        return [cast(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise FarmsError(f"--{what} takes numbers separated by commas, e.g. "
                         f"{'0.5,0.7' if cast is float else '0,1,2'} (got {text!r}).") from None


def cmd_measure(a) -> int:
    """Prune a model farms-viz can evaluate by uniform / AlphaPruning-raw / -FARMS sparsities and
    print the measure per sparsity (mean ± sd over seeds)."""
    if a.out:
        check_out(a.out, [], suffixes=(".csv",))
    table = outcome.measure(a.model, a.method, _list(a.sparsities, "sparsities", float),
                            allocations=_list(a.allocations, "allocations", str),
                            seeds=None if a.seeds is None else _list(a.seeds, "seeds", int),
                            epsilon=outcome.parse_epsilon(a.epsilon), mapping=a.mapping, cap=a.cap, text=a.text,
                            progress=None if a.quiet else _Bar(), cache=not a.no_cache)
    _print(outcome.format_summary(outcome.summarize(table)))
    _print(f"{len(table)} runs; {table['seconds'].sum():.1f} s of pruning and measuring"
           + (" (cached runs keep their first time)" if not a.no_cache else ""))
    if a.out:
        to_csv(table, a.out)
        _print(f"wrote {a.out}")
    return 0


def cmd_zoo(a) -> int:
    for entry in zoo.list_entries():
        _print(f"{entry.name:<22} {entry.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="farms-viz", description="Raw vs FARMS eigenspectrum (HT-SR) analysis of model weights.")
    sub = p.add_subparsers(dest="command", required=True)
    pa = sub.add_parser("analyze", help="analyse a model and write a table (a row per layer)")
    pa.add_argument("source", help="a zoo name (see 'farms-viz zoo'), a .safetensors/.pt/.bin file, a Hugging Face folder or hub id")
    pa.add_argument("--out", required=True, help="FILE.csv or FILE.json")
    pa.add_argument("--quiet", action="store_true", help="no progress bar")
    pa.add_argument("--no-cache", action="store_true",
                    help="recompute every layer instead of reusing the disk cache ($FARMS_VIZ_CACHE or ~/.cache/farms-viz)")
    _add_analysis_options(pa)
    pa.add_argument("--executor", choices=EXECUTORS, default="local",
                    help="local: in this process (default); ray: a Ray task per layer (pip install 'farms-viz[ray]')")
    pa.add_argument("--address", metavar="ADDR",
                    help="with --executor ray: a running Ray cluster (e.g. 10.0.0.5:6379 or ray://host:10001); "
                         "default: start a local Ray")
    pa.set_defaults(func=cmd_analyze)
    pr = sub.add_parser("report", help="analyse a model and write a one-file HTML report (figures and tables)")
    pr.add_argument("source", help="a zoo name, a .safetensors/.pt/.bin file, a Hugging Face folder or hub id")
    pr.add_argument("--out", required=True, help="FILE.html (self-contained: opens offline, no server)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.add_argument("--no-cache", action="store_true", help="recompute every layer instead of reusing the disk cache")
    _add_analysis_options(pr)
    pr.set_defaults(func=cmd_report)
    pc = sub.add_parser("compare", help="analyse two checkpoints with the same options and match their layers")
    pc.add_argument("a", metavar="A", help="the first checkpoint (zoo name, file, folder or hub id), e.g. before")
    pc.add_argument("b", metavar="B", help="the second checkpoint, e.g. after; deltas are B - A")
    pc.add_argument("--out", required=True, help="FILE.csv or FILE.json (a row per layer, matched as --match says)")
    pc.add_argument("--match", choices=MATCH_MODES, default="auto",
                    help="how layers of A and B pair up: " + "; ".join(f"{k}: {v}" for k, v in MATCH_TEXT.items())
                         + " (default auto)")
    pc.add_argument("--quiet", action="store_true", help="no progress bar")
    pc.add_argument("--no-cache", action="store_true", help="recompute every layer instead of reusing the disk cache")
    _add_analysis_options(pc)
    pc.set_defaults(func=cmd_compare)
    pl = sub.add_parser("allocate", help="layer-wise learning rates (TempBalance) or sparsities (AlphaPruning), raw vs FARMS")
    pl.add_argument("report", help="a table from 'farms-viz analyze' (.csv/.json), any CSV with layer, rows, cols, "
                                   "alpha_raw, alpha_farms, or a zoo name such as llama-7b-published")
    pl.add_argument("--scheme", choices=SCHEMES, required=True)
    pl.add_argument("--out", required=True, help="FILE.csv (layer, ratio_raw, ratio_farms or lr_raw, lr_farms) "
                                                 "or FILE.json ({\"raw\": {layer: value}, \"farms\": {...}})")
    pl.add_argument("--sparsity", type=float, help="alphapruning: target parameter-weighted mean sparsity S")
    pl.add_argument("--epsilon", type=float, default=0.3, help="alphapruning: ratios span [1-E, 1+E] before scaling (default 0.3)")
    pl.add_argument("--block-size", type=int, help="alphapruning: average alpha over blocks of K consecutive layers")
    pl.add_argument("--block-wise", action="store_true", help="alphapruning: average alpha per transformer block "
                                                              "(blocks read from names like layers.N.)")
    pl.add_argument("--blocks-only", action="store_true", help="alphapruning: allocate only the layers inside "
                    "transformer blocks (names like layers.N.); the others stay dense, as in AlphaPruning")
    pl.add_argument("--cap", choices=CAPS, default="redistribute", help="alphapruning: ratios above 1 go to 1, the "
                    "excess spread over the others (default), or to the FARMS release's 0.998 (release)")
    pl.add_argument("--lr", type=float, help="tempbalance: the base learning rate")
    pl.add_argument("--map", choices=MAPS, default="linear", help="tempbalance map (default linear)")
    pl.add_argument("--lr-min-ratio", type=float, default=0.5, help="tempbalance linear/step: lowest lr / base lr (default 0.5)")
    pl.add_argument("--lr-max-ratio", type=float, default=1.5, help="tempbalance linear/step: highest lr / base lr (default 1.5)")
    pl.add_argument("--keep-first", action="store_true", help="tempbalance: leave the first layer at the base lr")
    pl.add_argument("--keep-last", action="store_true", help="tempbalance: leave the last layer at the base lr")
    pl.set_defaults(func=cmd_allocate)
    pp = sub.add_parser("prune", help="prune each layer to its sparsity (magnitude or Wanda), exact to one weight")
    pp.add_argument("source", help="a zoo name, weights file or folder; Wanda and --evaluate need a model "
                                   "farms-viz trains (tinylm*, digits-*)")
    pp.add_argument("--allocation", metavar="FILE", help="an AlphaPruning allocation from 'farms-viz allocate' "
                                                         "(.csv or .json)")
    pp.add_argument("--column", help="the allocation's column: ratio_raw, ratio_farms, or uniform (every listed "
                                     "layer at the allocation's weighted mean)")
    pp.add_argument("--sparsity", type=float, help="instead of --allocation: this sparsity on every linear/conv layer")
    pp.add_argument("--method", choices=METHODS, default="magnitude", help="magnitude (|W|, per layer; default), "
                    "wanda (|W| x input norm, per output row) or sparsegpt (OBS updates from the inputs' Hessian)")
    pp.add_argument("--calibration", type=int, metavar="N", help="wanda, sparsegpt: samples of the model's training data "
                                                                 "(default 32 windows for tinylm, 128 images for digits)")
    pp.add_argument("--evaluate", action="store_true", help="also measure the model dense and pruned (tinylm: "
                                                            "held-out perplexity; digits: test accuracy)")
    pp.add_argument("--out", required=True, help="FILE.safetensors: the pruned layers' weights")
    pp.add_argument("--report", metavar="FILE.csv", help="also write the per-layer table (layer, target, achieved, "
                                                         "numel, zeros)")
    pp.set_defaults(func=cmd_prune)
    pm = sub.add_parser("measure", help="prune by uniform, AlphaPruning-raw and -FARMS sparsities and measure "
                                        "(mean ± sd over training seeds)")
    pm.add_argument("model", help="tinylm, smollm2-135m, digits-cnn, digits-mlp, minilm (a proxy), or a causal LM's "
                                  "Hugging Face folder or hub id")
    pm.add_argument("--text", metavar="FILE", help="a causal LM's perplexity on this UTF-8 text (last fifth held out)")
    pm.add_argument("--method", choices=METHODS, default="magnitude", help="magnitude (default), wanda or sparsegpt")
    pm.add_argument("--sparsities", default="0.5,0.6,0.7,0.8", help="target sparsities, e.g. 0.5,0.7 "
                                                                     "(default 0.5,0.6,0.7,0.8)")
    pm.add_argument("--seeds", help="training seeds, e.g. 0,1 (default: the model's; an unbuilt tiny LM seed trains first)")
    pm.add_argument("--epsilon", default="search", help="AlphaPruning's spread: 'search' (default: the best of "
                    f"{', '.join(f'{e:g}' for e in outcome.EPSILONS)} on tuning data, per arm) or a number")
    pm.add_argument("--mapping", choices=outcome.MAPPINGS, default="block", help="block: a transformer block's "
                    "mean alpha (the releases' default); matrix: each its own")
    pm.add_argument("--cap", choices=CAPS, default="redistribute", help="as for allocate")
    pm.add_argument("--allocations", default="uniform,raw,farms", help="any of uniform,raw,farms")
    pm.add_argument("--out", metavar="FILE.csv", help="also write every run (a row per seed, allocation, sparsity)")
    pm.add_argument("--quiet", action="store_true", help="no progress bar")
    pm.add_argument("--no-cache", action="store_true", help="measure again instead of reading cached runs")
    pm.set_defaults(func=cmd_measure)
    pz = sub.add_parser("zoo", help="list the models that work offline")
    pz.set_defaults(func=cmd_zoo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except FarmsError as e:
        _print(f"farms-viz: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _print("farms-viz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
