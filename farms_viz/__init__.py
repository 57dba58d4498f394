"""farms-viz: raw and FARMS (Fixed-Aspect-Ratio Matrix Subsampling) eigenspectrum analysis of weights.

What users call (each documented where it lives):

- :func:`analyze` a model (zoo name, path, hub id, ``nn.Module``, dict of tensors) -> :class:`Report`
- :func:`open_source` what :func:`analyze` opens, without analysing it
- :func:`compare` two checkpoints layer by layer
- :func:`alphapruning`, :func:`tempbalance` -> :class:`Allocation`; :func:`param_groups` for optimizers
- :func:`prune` a model or its weights to per-layer sparsities (magnitude or Wanda), exact to one weight
- :class:`TempBalance` sets an optimizer's layer-wise learning rates from the model's alphas while it trains
- :class:`Settings` (presets ``llm`` / ``cnn``) and :class:`FarmsError`, the one error users can cause
"""

from farms_viz.analyses.allocate import Allocation, alphapruning, param_groups, tempbalance
from farms_viz.analyses.compare import compare
from farms_viz.analyses.prune import prune
from farms_viz.analyses.tempbalance_optimizer import TempBalance
from farms_viz.errors import FarmsError
from farms_viz.pipeline.analyze import Report, analyze
from farms_viz.pipeline.sources import open_source
from farms_viz.settings import Settings

__all__ = ["Allocation", "FarmsError", "Report", "Settings", "TempBalance", "alphapruning", "analyze", "compare",
           "open_source", "param_groups", "prune", "tempbalance"]
__version__ = "0.1.0"
