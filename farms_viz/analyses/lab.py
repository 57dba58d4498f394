"""The aspect-ratio lab's numerics: random matrices, one matrix raw vs FARMS, the bias sweep.

No Streamlit or Plotly here. Analysis goes through :func:`farms_viz.pipeline.analyze.analyze_layer`
(the same code the app and the CLI use); this module only makes matrices and loops.

Normalisation: the noise entries are divided by sqrt(N), N the long side, so a Gaussian
matrix has Marchenko-Pastur scale N * sigma^2 = 1 and bulk edges (1 +- 1/sqrt(Q))^2.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

import numpy as np
import torch

from farms_viz.core.mp import MPFit, mp_edges, tracy_widom_scale
from farms_viz.errors import FarmsError
from farms_viz.io.formats import read_npy
from farms_viz.io.refs import TensorRef
from farms_viz.pipeline.layer import analyze_layer
from farms_viz.pipeline.schema import LayerSpectra, Progress
from farms_viz.settings import Settings, in_bounds

MAX_SIDE = 4096
DISTRIBUTIONS = {
    "gaussian": "Gaussian",
    "student_t": "Student-t (ν degrees of freedom)",
    "pareto": "Pareto-tailed (tail index μ)",
    "planted": "Gaussian + planted low-rank signal",
}
#: lab defaults: FARMS windows of at most LAB_WINDOW rows, PER_DIM windows per side (chosen for speed,
#: see benchmarks/bench_lab.py), the median-tail fit rule (stable on pure noise, see the README)
LAB_WINDOW = 256
PER_DIM = 5
FIT = "xmin_mid"
SWEEP_RATIOS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
SWEEP_MODES = {"short": "fixed short side", "entries": "fixed number of entries"}
#: Seeds numpy's generators accept as one 32-bit word (``seed=-1`` raised ValueError in the sweep).
SEED_MAX = 2**32 - 1


def check_seed(seed) -> int:
    """``seed`` as an int from 0 to SEED_MAX, or FarmsError with that range."""
    try:
        ok = not isinstance(seed, bool) and int(seed) == seed and 0 <= seed <= SEED_MAX
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise FarmsError(f"the seed must be a whole number from 0 to {SEED_MAX} (got {seed!r}).")
    return int(seed)



@dataclass(frozen=True)
class MatrixSpec:
    """A random matrix to make: shape, entry distribution and its parameter, seed.

    gaussian   N(0, 1) / sqrt(N)
    student_t  t_nu / sqrt(N)                      (entry tail P(|x| > t) ~ t^-nu)
    pareto     s * U^(-1/mu) / sqrt(N), s = +-1    (P(|x| > t) = t^-mu for t >= 1)
    planted    N(0, 1) / sqrt(N) + strength * sum_k u_k v_k^T, u, v orthonormal (rank ``rank``)

    ``q4_1``: the matrix is then stored at 4 bits and read back, GGML's Q4_1 round trip (blocks of 32
    along each row, a shorter last one where the width is not a multiple of 32: 16 levels between the
    block's min and max; ``zoo.ggml``), as SmolLM2-135M's
    matrices are stored: what quantization alone does to a spectrum.
    """

    rows: int = 1000
    cols: int = 1000
    dist: str = "gaussian"
    nu: float = 3.0
    mu: float = 1.5
    strength: float = 2.0
    rank: int = 3
    seed: int = 0
    q4_1: bool = False

    def __post_init__(self):
        for name in ("rows", "cols"):
            object.__setattr__(self, name, in_bounds(name, getattr(self, name), 2, MAX_SIDE, whole=True))
        if self.dist not in DISTRIBUTIONS:
            raise FarmsError(f"Unknown distribution {self.dist!r}; choose one of {', '.join(DISTRIBUTIONS)}.")
        object.__setattr__(self, "nu", in_bounds("ν (degrees of freedom)", self.nu, 0.5, 1000))
        object.__setattr__(self, "mu", in_bounds("μ (tail index)", self.mu, 0.5, 1000))
        object.__setattr__(self, "strength", in_bounds("the signal strength", self.strength, 0, 1e6))
        object.__setattr__(self, "rank", in_bounds("the signal rank", self.rank, 1, min(self.rows, self.cols),
                                                   whole=True))
        object.__setattr__(self, "seed", check_seed(self.seed))

    @property
    def long(self) -> int:
        return max(self.rows, self.cols)

    @property
    def short(self) -> int:
        return min(self.rows, self.cols)

    @property
    def aspect_ratio(self) -> float:
        return self.long / self.short

    def entry_variance(self) -> float:
        """Variance of the noise entries (as made, i.e. after the 1/sqrt(N) scaling); inf if infinite."""
        if self.dist in ("gaussian", "planted"):
            v = 1.0
        elif self.dist == "student_t":
            v = self.nu / (self.nu - 2) if self.nu > 2 else math.inf
        else:
            v = self.mu / (self.mu - 2) if self.mu > 2 else math.inf
        return v / self.long

    def tail_alpha(self) -> float | None:
        """The ESD tail exponent theory predicts for entries with tail index < 2: 1 + index / 2."""
        index = {"student_t": self.nu, "pareto": self.mu}.get(self.dist)
        return 1 + index / 2 if index is not None and index < 2 else None

    def replace(self, **changes) -> "MatrixSpec":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)


def make_matrix(spec: MatrixSpec) -> torch.Tensor:
    """The ``spec.rows x spec.cols`` float32 matrix (reproducible from ``spec.seed``)."""
    rng = np.random.default_rng(spec.seed)
    shape = (spec.rows, spec.cols)
    if spec.dist in ("gaussian", "planted"):
        x = rng.standard_normal(shape, dtype=np.float32)
    elif spec.dist == "student_t":
        x = rng.standard_t(spec.nu, shape).astype(np.float32)
    else:
        u = rng.random(shape, dtype=np.float32)
        mag = np.maximum(1.0 - u, np.float32(np.finfo(np.float32).tiny)) ** np.float32(-1.0 / spec.mu)
        x = np.where(rng.random(shape, dtype=np.float32) < 0.5, -mag, mag)
    x *= np.float32(1.0 / math.sqrt(spec.long))
    if spec.dist == "planted" and spec.strength > 0:
        u, _ = np.linalg.qr(rng.standard_normal((spec.rows, spec.rank)))
        v, _ = np.linalg.qr(rng.standard_normal((spec.cols, spec.rank)))
        x += (spec.strength * u @ v.T).astype(np.float32)
    w = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if spec.q4_1:
        from farms_viz.zoo.ggml import q4_1_round_trip_any_width

        w = q4_1_round_trip_any_width(w)
    return w


@lru_cache(maxsize=16)
def quantization_error(spec: MatrixSpec) -> float:
    """||W - Q4_1(W)||_F / ||W||_F of ``spec``'s matrix (made without quantization); cached, as the
    page asks for it on every rerun (a 4096 x 4096 matrix takes ~0.5 s to make and round-trip)."""
    from farms_viz.zoo.ggml import q4_1_round_trip_any_width

    w = make_matrix(spec.replace(q4_1=False))
    return float(torch.linalg.norm(w - q4_1_round_trip_any_width(w)) / torch.linalg.norm(w))


def load_npy(data: bytes, name: str = "the file") -> torch.Tensor:
    """A 2-D float matrix from the bytes of a .npy file (no pickles), as float32."""
    if data[:2] == b"PK":
        raise FarmsError(f"{name} is an .npz archive; save one matrix with np.save instead.")
    if data[:6] != b"\x93NUMPY":
        raise FarmsError(f"{name} is not a readable .npy array (it does not start with the .npy header).")
    a = read_npy(data, name)  # the header's claims checked against the bytes before anything is allocated
    if a.ndim != 2:
        raise FarmsError(f"{name} has shape {a.shape}; the lab needs a 2-D matrix.")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise FarmsError(f"{name} has dtype {a.dtype}; the lab needs real numbers.")
    if min(a.shape) < 2 or max(a.shape) > MAX_SIDE:
        raise FarmsError(f"{name} is {a.shape[0]} x {a.shape[1]}; each side must be from 2 to {MAX_SIDE}.")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise FarmsError(f"{name} contains NaN or Inf entries; no spectrum is computed from them.")
    return torch.from_numpy(np.ascontiguousarray(a))


def lab_settings(rows: int, cols: int, window: int | None = None, per_dim: int = PER_DIM,
                 fit: str = FIT) -> Settings:
    """FARMS settings for the lab: square windows of ``window`` rows (default min(short side,
    LAB_WINDOW)), ``per_dim`` windows per side."""
    w = min(rows, cols, LAB_WINDOW) if window is None else int(window)
    return Settings(fit=fit, window=max(2, w), q=1.0, ops=int(per_dim))


def analyze_matrix(w: torch.Tensor, settings: Settings, name: str = "lab matrix") -> tuple[dict, LayerSpectra]:
    """Raw vs FARMS analysis of one matrix through the project's pipeline (``analyze_layer``)."""
    if w.ndim != 2:
        raise FarmsError(f"the lab analyses 2-D matrices, this one has shape {tuple(w.shape)}.")
    ref = TensorRef(name, tuple(w.shape), "float32", "linear", lambda: w)
    with torch.inference_mode():
        row, spec = analyze_layer(ref, settings)
    if spec is None:
        raise FarmsError(f"{name} cannot be analysed: {row['status']}.")
    return row, spec


def theory_mp(variance: float, n_long: int, n_short: int, eigs: np.ndarray | None = None) -> MPFit | None:
    """The Marchenko-Pastur law for an n_long x n_short matrix of i.i.d. entries of known ``variance``.

    Theory, not a fit: scale = n_long * variance. Spikes are the eigenvalues of ``eigs`` above
    lambda+ plus one Tracy-Widom scale. None when the variance is infinite (no MP law).
    """
    if not (math.isfinite(variance) and variance > 0):
        return None
    Q = n_long / n_short
    scale = n_long * variance
    lo, hi = mp_edges(Q, scale)
    spikes = 0
    if eigs is not None and len(eigs):
        spikes = int(np.sum(np.asarray(eigs) > hi + tracy_widom_scale(n_long, n_short, scale)))
    return MPFit(Q, scale, math.sqrt(variance), lo, hi, spikes)


@dataclass
class LabResult:
    """One matrix analysed: the pipeline's row and spectra, MP theory for raw and FARMS, timing."""

    spec: MatrixSpec | None
    row: dict
    spectra: LayerSpectra
    theory_raw: MPFit | None
    theory_farms: MPFit | None
    seconds: float

    def theory(self, which: str) -> MPFit | None:
        """The MP law of the ``raw`` or ``farms`` side from the entries' known variance (None: unknown)."""
        return getattr(self, f"theory_{which}")

    @property
    def alpha_raw(self) -> float:
        return self.spectra.fit_raw.alpha

    @property
    def alpha_farms(self) -> float:
        return self.spectra.fit_farms.alpha


def run_matrix(spec: MatrixSpec | None, settings: Settings, w: torch.Tensor | None = None,
               name: str = "lab matrix") -> LabResult:
    """Make ``spec``'s matrix (or take ``w``) and analyse it raw vs FARMS, with MP theory lines."""
    t0 = time.perf_counter()
    if w is None:
        w = make_matrix(spec)
    row, sp = analyze_matrix(w, settings, name)
    var = spec.entry_variance() if spec is not None else math.nan
    g = sp.grid
    tr = theory_mp(var, max(sp.rows, sp.cols), min(sp.rows, sp.cols), sp.esd_raw)
    tf = theory_mp(var, max(g.h, g.w), min(g.h, g.w), sp.esd_farms)
    return LabResult(spec, row, sp, tr, tf, time.perf_counter() - t0)


# ------------------------------------------------------------------ the bias sweep

def sweep_shape(ratio: float, mode: str, size: int) -> tuple[int, int]:
    """(rows, cols) of a tall matrix of aspect ratio ~``ratio``.

    ``short``: short side ``size``, long side size * ratio.
    ``entries``: about size^2 entries, sides size * sqrt(ratio) and size / sqrt(ratio).
    """
    if mode == "short":
        short, long_ = size, round(size * ratio)
    elif mode == "entries":
        short = max(2, round(size / math.sqrt(ratio)))
        long_ = round(size * size / short)
    else:
        raise FarmsError(f"Unknown sweep mode {mode!r}; choose one of {', '.join(SWEEP_MODES)}.")
    if long_ > MAX_SIDE:
        raise FarmsError(f"aspect ratio {ratio:g} with {SWEEP_MODES[mode]} {size} needs a side of {long_}, "
                         f"over the lab's {MAX_SIDE}; lower the size or the largest aspect ratio.")
    return long_, short


@dataclass
class SweepResult:
    """alpha raw / FARMS per aspect ratio (rows) and seed (columns)."""

    dist: MatrixSpec
    mode: str
    size: int
    window: int
    per_dim: int
    shapes: list[tuple[int, int]]
    aspect_ratios: np.ndarray
    alpha_raw: np.ndarray
    alpha_farms: np.ndarray
    seconds: float = 0.0
    seeds: list[int] = field(default_factory=list)

    def alphas(self, which: str) -> np.ndarray:
        """alpha of the ``raw`` or ``farms`` side: aspect ratios (rows) x seeds (columns)."""
        return getattr(self, f"alpha_{which}")

    def mean(self, which: str) -> np.ndarray:
        a = self.alphas(which)
        with np.errstate(all="ignore"):
            return np.nanmean(a, axis=1)

    def band(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """mean -+ one standard deviation over seeds (zero width for one seed)."""
        a = self.alphas(which)
        with np.errstate(all="ignore"):
            m = np.nanmean(a, axis=1)
            s = np.nan_to_num(np.nanstd(a, axis=1)) if a.shape[1] > 1 else np.zeros(len(m))
        return m - s, m + s

    def spread(self, which: str) -> tuple[float, float, float]:
        """(lowest mean alpha, highest mean alpha, largest seed-to-seed sd) over the aspect ratios."""
        m = self.mean(which)
        lo, hi = self.band(which)
        with np.errstate(all="ignore"):
            return float(np.nanmin(m)), float(np.nanmax(m)), float(np.nanmax((hi - lo) / 2))

    def slope(self, which: str) -> float:
        """Least-squares change of mean alpha per doubling of the aspect ratio."""
        m = self.mean(which)
        ok = np.isfinite(m)
        if ok.sum() < 2:
            return math.nan
        return float(np.polyfit(np.log2(self.aspect_ratios[ok]), m[ok], 1)[0])


def sweep(dist: MatrixSpec, mode: str = "short", size: int = 256, ratios=SWEEP_RATIOS, n_seeds: int = 5,
          per_dim: int = PER_DIM, fit: str = FIT, progress: Progress | None = None) -> SweepResult:
    """alpha raw and alpha FARMS of ``dist``'s matrices as the aspect ratio runs over ``ratios``.

    Every FARMS analysis uses the same square window, the smallest short side in the sweep
    (capped at LAB_WINDOW), so each point is measured at one fixed aspect ratio, 1.
    ``progress(done, total, what)`` is called before each matrix and once at the end.
    """
    if int(n_seeds) != n_seeds or not 1 <= n_seeds <= 20:
        raise FarmsError(f"the number of seeds must be from 1 to 20 (got {n_seeds}).")
    ratios = [float(r) for r in ratios]
    if not ratios or min(ratios) < 1:
        raise FarmsError("aspect ratios must be 1 or more.")
    t0 = time.perf_counter()
    shapes = [sweep_shape(r, mode, int(size)) for r in ratios]
    window = min(min(s) for s in shapes)
    window = min(window, LAB_WINDOW)
    settings = Settings(fit=fit, window=window, q=1.0, ops=int(per_dim))
    if dist.seed + int(n_seeds) - 1 > SEED_MAX:
        raise FarmsError(f"the sweep's seeds run from {dist.seed} to {dist.seed + int(n_seeds) - 1}; "
                         f"the last must be at most {SEED_MAX}.")
    seeds = [dist.seed + k for k in range(int(n_seeds))]
    a_raw = np.full((len(ratios), len(seeds)), np.nan)
    a_farms = np.full_like(a_raw, np.nan)
    total, done = len(ratios) * len(seeds), 0
    for i, (rows, cols) in enumerate(shapes):
        for j, seed in enumerate(seeds):
            if progress:
                progress(done, total, f"{rows} × {cols}, seed {seed}")
            spec = dist.replace(rows=rows, cols=cols, seed=seed, rank=min(dist.rank, cols))
            _, sp = analyze_matrix(make_matrix(spec), settings)
            a_raw[i, j], a_farms[i, j] = sp.fit_raw.alpha, sp.fit_farms.alpha
            done += 1
    if progress:
        progress(total, total, "")
    ar = np.array([r / c for r, c in shapes])
    return SweepResult(dist, mode, int(size), window, int(per_dim), shapes, ar, a_raw, a_farms,
                       time.perf_counter() - t0, seeds)
