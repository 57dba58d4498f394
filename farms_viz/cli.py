"""The ``farms-viz`` command line tool (same ``analyze()`` as the app)."""

from __future__ import annotations

import argparse
import sys
import time

from .errors import FarmsError


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
        name = (layer[:48] + "...") if len(layer) > 51 else layer
        self.stream.write(f"\r[{bar}] {done}/{total} {time.perf_counter() - self.t0:6.1f}s {name:<51}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=["llm", "cnn"], default="llm",
                   help="the paper's settings: llm (xmin_peak, 2000/1.0/15, default) or cnn (xmin_mid, 100/1.0/9)")
    p.add_argument("--fit", choices=["xmin_peak", "xmin_mid", "ks"], help="power-law xmin rule")
    p.add_argument("--xmin-pos", type=float, help="xmin_mid: xmin = esd[int(N / xmin_pos)] (default 2)")
    p.add_argument("--window", type=int, help="FARMS window rows (default 2000; capped by the short side)")
    p.add_argument("--q", type=float, help="FARMS window aspect ratio cols/rows (default 1.0)")
    p.add_argument("--ops", type=int, help="FARMS windows per dimension (default 15)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="where the linear algebra runs (default cpu)")
    p.add_argument("--include-embeddings", action="store_true", default=None, help="analyse embedding tables too")
    p.add_argument("--layers", metavar="REGEX", help="only layers whose name matches REGEX")


def _settings_kwargs(a) -> dict:
    return dict(preset=a.preset, fit=a.fit, xmin_pos=a.xmin_pos, window=a.window, q=a.q, ops=a.ops,
                device=a.device, include_embeddings=a.include_embeddings, layers=a.layers)


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
    return "\n".join(lines)


def cmd_analyze(a) -> int:
    from .report import analyze

    if not (a.out.endswith(".csv") or a.out.endswith(".json")):
        raise FarmsError(f"--out must end in .csv or .json (got {a.out}).")
    report = analyze(a.source, progress=None if a.quiet else _Bar(), cache=not a.no_cache, **_settings_kwargs(a))
    report.save(a.out)
    print(_summary(report))
    print(f"wrote {a.out}")
    return 0


def cmd_zoo(a) -> int:
    from . import zoo

    for entry in zoo.list_entries():
        print(f"{entry.name:<22} {entry.summary}")
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
    pa.set_defaults(func=cmd_analyze)
    pz = sub.add_parser("zoo", help="list the models that work offline")
    pz.set_defaults(func=cmd_zoo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except FarmsError as e:
        print(f"farms-viz: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("farms-viz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
