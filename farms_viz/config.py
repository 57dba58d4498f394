"""Analysis settings: one frozen, validated, hashable dataclass passed down the pipeline."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import FarmsError

FITS = ("xmin_peak", "xmin_mid", "ks")
DEVICES = ("cpu", "cuda")

#: The paper's settings (FARMS, ICML 2025): LLM experiments and image classification.
PRESETS: dict[str, dict] = {
    "llm": dict(fit="xmin_peak", xmin_pos=2.0, window=2000, q=1.0, ops=15),
    "cnn": dict(fit="xmin_mid", xmin_pos=2.0, window=100, q=1.0, ops=9),
}


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
    device     ``cpu`` or ``cuda`` for the linear algebra.
    include_embeddings  analyse embedding matrices too (skipped by default).
    """

    fit: str = "xmin_peak"
    xmin_pos: float = 2.0
    window: int = 2000
    q: float = 1.0
    ops: int = 15
    conv_norm: float = 0.5
    device: str = "cpu"
    include_embeddings: bool = False

    def __post_init__(self):
        if self.fit not in FITS:
            raise FarmsError(f"Unknown fit rule {self.fit!r}; choose one of {', '.join(FITS)}.")
        if not self.xmin_pos > 1:
            raise FarmsError(f"xmin_pos must be greater than 1 (got {self.xmin_pos}).")
        if int(self.window) != self.window or self.window < 1:
            raise FarmsError(f"window must be a positive whole number (got {self.window}).")
        if not (self.q > 0):
            raise FarmsError(f"q must be positive (got {self.q}).")
        if int(self.ops) != self.ops or self.ops < 1:
            raise FarmsError(f"ops must be a positive whole number (got {self.ops}).")
        if not (self.conv_norm > 0):
            raise FarmsError(f"conv_norm must be positive (got {self.conv_norm}).")
        if self.device not in DEVICES:
            raise FarmsError(f"Unknown device {self.device!r}; choose cpu or cuda.")
        object.__setattr__(self, "window", int(self.window))
        object.__setattr__(self, "ops", int(self.ops))
        object.__setattr__(self, "xmin_pos", float(self.xmin_pos))
        object.__setattr__(self, "q", float(self.q))

    @classmethod
    def preset(cls, name: str = "llm", **overrides) -> "Settings":
        """The paper's settings for ``llm`` or ``cnn``; explicit non-None overrides win."""
        if name not in PRESETS:
            raise FarmsError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
        values = dict(PRESETS[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A stable string for cache keys."""
        return ";".join(f"{k}={v}" for k, v in sorted(self.as_dict().items()))
