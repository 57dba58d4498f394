"""Pruning from files: an allocation file in, a safetensors file of pruned weights out, and the
dense vs pruned measure of the models farms-viz trains (``farms-viz prune``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from farms_viz.analyses.calibrate import CALIBRATED, LABELS
from farms_viz.analyses.prune import Pruned, prune
from farms_viz.errors import FarmsError
from farms_viz.zoo import evaluate as zoo_eval


def read_allocation(path: str) -> pd.DataFrame:
    """An allocation as written by ``farms-viz allocate --scheme alphapruning``: a CSV with
    ``layer, ratio_raw, ratio_farms`` or the JSON ``{"raw": {layer: ratio}, "farms": {...}}``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FarmsError(f"the allocation {path} is not a file (write one with 'farms-viz allocate').")
    try:
        if p.suffix.lower() == ".json":
            d = json.loads(p.read_text())
            if not (isinstance(d, dict) and isinstance(d.get("raw"), dict) and isinstance(d.get("farms"), dict)):
                raise ValueError('not {"raw": {layer: value}, "farms": {...}}')
            if d.get("scheme", "alphapruning") != "alphapruning":
                raise FarmsError(f"{path} is a {d['scheme']} allocation; pruning needs an AlphaPruning one.")
            layers = list(d["raw"])
            return pd.DataFrame({"layer": layers, "ratio_raw": [d["raw"][k] for k in layers],
                                 "ratio_farms": [d["farms"].get(k) for k in layers]})
        t = pd.read_csv(p)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise FarmsError(f"{path} cannot be read as an allocation ({e}).") from None
    if "lr_raw" in t.columns:
        raise FarmsError(f"{path} holds TempBalance learning rates; pruning needs an AlphaPruning allocation.")
    return t


def save(pruned: Pruned, path: str) -> None:
    """The pruned layers' weights as one safetensors file (tensor names ``<layer>.weight``)."""
    from safetensors.torch import save_file

    try:
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in pruned.weights.items()}, str(path),
                  metadata={"farms_viz": "pruned", "method": pruned.method})
    except OSError as e:
        raise FarmsError(f"{path} cannot be written: {e.strerror or e}.") from None


@dataclass
class Outcome:
    """One ``farms-viz prune`` run: the pruning and, with ``evaluate``, the measure dense and pruned."""

    pruned: Pruned
    metric: str | None = None
    dense: float | None = None
    value: float | None = None


def run(source: str, allocation: str | None, column: str | None, method: str = "magnitude",
        sparsity: float | None = None, calibration: int | None = None, evaluate: bool = False) -> Outcome:
    """Prune ``source`` by the allocation file's ``column`` (or uniformly to ``sparsity``).

    A model farms-viz trains (``tinylm*``, ``digits-*``) is pruned as a module, so Wanda
    and SparseGPT can run it on ``calibration`` samples of its training data and ``evaluate`` can measure it; any other
    source is pruned tensor by tensor (magnitude only).
    """
    if (allocation is None) == (sparsity is None):
        raise FarmsError("give either --allocation FILE (with --column) or --sparsity S (uniform).")
    sparsities = sparsity if allocation is None else read_allocation(allocation)
    if allocation is not None and column is None:
        raise FarmsError("--allocation needs --column (ratio_raw, ratio_farms or uniform).")
    model = zoo_eval.trained(source)
    if model is None:
        if evaluate:
            zoo_eval.require(source)
        if method in CALIBRATED:
            raise FarmsError(f"{LABELS[method]} runs the model to read its layers' inputs; {source!r} is not a model "
                             "farms-viz can run (tinylm*, digits-*). Use --method magnitude, or the Python API "
                             "with your nn.Module.")
        return Outcome(prune(source, sparsities, method, column=column if allocation else None))
    if calibration is not None and calibration < 1:
        raise FarmsError(f"--calibration must be a positive number of samples (got {calibration}).")
    dense = model.load(None)
    inputs = model.calibration(calibration or model.default_calibration) if method in CALIBRATED else None
    pruned = prune(dense, sparsities, method, inputs, column=column if allocation else None)
    if not evaluate:
        return Outcome(pruned)
    return Outcome(pruned, model.metric, model.evaluate(dense), model.evaluate(pruned.model))
