"""Analysis settings: one frozen, validated, hashable dataclass passed down the pipeline."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from farms_viz.errors import FarmsError

FITS = ("xmin_peak", "xmin_mid", "ks")
DEVICES = ("cpu", "cuda")
#: How FARMS treats conv layers: ``release`` = the FARMS release's blocks (one alpha per block,
#: averaged; see spectra.conv_blocks), ``grid`` = the linear window grid on every kernel slice,
#: all windows pooled into one ESD (farms-viz's earlier rule).
CONV_RULES = ("release", "grid")

#: The paper's settings (FARMS, ICML 2025): LLM experiments and image classification.
PRESETS: dict[str, dict] = {
    "llm": dict(fit="xmin_peak", xmin_pos=2.0, window=2000, q=1.0, ops=15),
    "cnn": dict(fit="xmin_mid", xmin_pos=2.0, window=100, q=1.0, ops=9),
}

#: Accepted range of each numeric setting, ``low <= value <= high`` (both ends included), defined
#: once for the library, the CLI and the app's URL values. Values must also be finite; ``window``
#: and ``ops`` whole numbers. Upper ends keep one request bounded: ops 64 is 4,096 windows per
#: slice (the release uses 9-15); q 1000 and window 100,000 exceed any layer's shape; xmin_pos
#: 1.001 keeps xmin below the largest eigenvalue for up to ~1,000 eigenvalues.
BOUNDS: dict[str, tuple[float, float]] = {
    "xmin_pos": (1.001, 1000.0),
    "window": (1, 100_000),
    "q": (0.001, 1000.0),
    "ops": (1, 64),
    "conv_norm": (1e-6, 1e6),
    "seed": (0, 2**32 - 1),
}
_WHOLE = ("window", "ops", "seed")


def in_bounds(name: str, value, low: float, high: float, whole: bool | None = None):
    """``value`` as an int (``whole``; default: window and ops) or a float within ``low..high``, or
    FarmsError with the accepted range (also for text, bools, NaN and infinities)."""
    whole = name in _WHOLE if whole is None else whole
    kind = "a whole number" if whole else "a number"
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        x = math.nan
    if isinstance(value, bool) or not math.isfinite(x) or not low <= x <= high \
            or (whole and x != int(x)):
        raise FarmsError(f"{name} must be {kind} from {low:g} to {high:g} (got {value!r}).")
    return int(x) if whole else x


@dataclass(frozen=True)
class Settings:
    """Everything that changes the numbers of an analysis.

    fit        power-law xmin rule: ``xmin_peak`` (FARMS/AlphaPruning release),
               ``xmin_mid`` (TempBalance), ``ks`` (WeightWatcher).
    xmin_pos   for ``xmin_mid``: xmin = esd[int(N / xmin_pos)].
    window     FARMS window rows (capped by the matrix's short side).
    q          FARMS window aspect ratio, window cols = int(window rows * q).
    ops        FARMS windows per dimension (the release's ``sampling_ops_per_dim``).
    conv_norm  conv slices are scaled by sqrt(conv_norm) (eigenvalues by conv_norm).
    conv_rule  FARMS on conv layers: ``release`` (the release's blocks, block alphas averaged)
               or ``grid`` (the window grid on every kernel slice, one pooled ESD).
    device     ``cpu`` or ``cuda`` for the linear algebra.
    include_embeddings  analyse embedding matrices too (skipped by default).
    randomize  also the ESD of the element-wise shuffled matrix (WeightWatcher's randomize=True:
               rand_* columns, correlation traps), raw and through the FARMS windows.
    seed       the shuffle's seed (numpy's default_rng): the same seed, the same randomized ESD.
    """

    fit: str = "xmin_peak"
    xmin_pos: float = 2.0
    window: int = 2000
    q: float = 1.0
    ops: int = 15
    conv_norm: float = 0.5
    conv_rule: str = "release"
    device: str = "cpu"
    include_embeddings: bool = False
    randomize: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.fit not in FITS:
            raise FarmsError(f"Unknown fit rule {self.fit!r}; choose one of {', '.join(FITS)}.")
        for name, (low, high) in BOUNDS.items():
            value = in_bounds(name, getattr(self, name), low, high)
            object.__setattr__(self, name, value)
        if self.conv_rule not in CONV_RULES:
            raise FarmsError(f"Unknown conv rule {self.conv_rule!r}; choose one of {', '.join(CONV_RULES)}.")
        if self.device not in DEVICES:
            raise FarmsError(f"Unknown device {self.device!r}; choose cpu or cuda.")

    @classmethod
    def preset(cls, name: str = "llm", **overrides) -> "Settings":
        """The paper's settings for ``llm`` or ``cnn``; explicit non-None overrides win."""
        if name not in PRESETS:
            raise FarmsError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
        values = dict(PRESETS[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def resolve(cls, settings: "Settings | None" = None, preset: str | None = None, **options) -> "Settings":
        """``settings`` (or the ``preset``, default ``llm``) with the non-None ``options`` applied;
        FarmsError for an option that is not a setting."""
        unknown = sorted(set(options) - set(SETTING_FIELDS))
        if unknown:
            raise FarmsError(f"{', '.join(unknown)} {'is not a setting' if len(unknown) == 1 else 'are not settings'}; "
                             f"the settings are {', '.join(SETTING_FIELDS)}.")
        given = {k: v for k, v in options.items() if v is not None}
        if settings is None:
            return cls.preset(preset or "llm", **given)
        return settings.replace(**given)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """The settings in words, every field once (``fit xmin_peak · FARMS windows of 2000 rows ...``)."""
        words = [f"fit {self.fit}" + (f" (xmin_pos {self.xmin_pos:g})" if self.fit == "xmin_mid" else ""),
                 f"FARMS windows of {self.window} rows, q {self.q:g}, {self.ops} × {self.ops} per matrix",
                 f"conv layers: {'release blocks' if self.conv_rule == 'release' else 'window grid'}, "
                 f"conv_norm {self.conv_norm:g}", f"device {self.device}"]
        if self.include_embeddings:
            words.append("embeddings included")
        words.append(f"randomized ESD seed {self.seed}" if self.randomize else "no randomized ESD")
        return " · ".join(words)

    def key(self) -> str:
        """A stable string for cache keys."""
        return ";".join(f"{k}={v}" for k, v in sorted(self.as_dict().items()))


#: Every setting's name, in declaration order: the keywords ``analyze`` takes, the CLI's options
#: (``--xmin-pos`` is ``xmin_pos``), the app's sidebar keys (``s_<name>``).
SETTING_FIELDS = tuple(f.name for f in dataclasses.fields(Settings))
