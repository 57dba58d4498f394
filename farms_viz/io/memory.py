"""Weights already in memory as sources: a dict of tensors, an ``nn.Module``."""

from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np
import torch

from farms_viz.core.matrices import infer_kind
from farms_viz.io.refs import Source, TensorRef, is_weight, layer_name, natural_key


class DictSource(Source):
    """A mapping name -> tensor or array (tensor names; ``.weight`` is stripped)."""

    def __init__(self, tensors: dict, name: str = "dict"):
        self._t = {k: (v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))) for k, v in tensors.items()}
        self.name = name

    def tensors(self) -> Iterator[TensorRef]:
        for k, v in self._t.items():
            shape = tuple(v.shape)
            if not is_weight(k, shape, str(v.dtype)):
                continue
            yield TensorRef(layer_name(k), shape, str(v.dtype).replace("torch.", ""),
                            infer_kind(k, shape), (lambda v=v: v))

    def content_id(self) -> str:
        h = hashlib.sha256()
        for k, v in self._t.items():
            h.update(k.encode())
            h.update(str(tuple(v.shape)).encode())
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                     if v.numel() else b"")
        return h.hexdigest()


class ModuleSource(Source):
    """An ``nn.Module``: Linear, Conv1d/2d, Embedding and Hugging Face Conv1D layers by type."""

    def __init__(self, module: torch.nn.Module, name: str | None = None, natural_order: bool = False):
        self.module = module
        self.name = name or type(module).__name__
        #: list layers in natural name order (as files do) instead of ``named_modules`` order
        self.natural_order = natural_order

    def tensors(self) -> Iterator[TensorRef]:
        refs = self._refs()
        if self.natural_order:
            refs = sorted(refs, key=lambda r: natural_key(r.layer))
        yield from refs

    def _refs(self) -> list[TensorRef]:
        out = []
        for mname, m in self.module.named_modules():
            kind = module_kind(m)
            if kind is None:
                continue
            w = m.weight
            out.append(TensorRef(mname, tuple(w.shape), str(w.dtype).replace("torch.", ""), kind,
                                 (lambda w=w: w.detach())))
        return out

    def content_id(self) -> str:
        h = hashlib.sha256()
        for ref in self.tensors():
            t = ref.load().cpu().contiguous()
            h.update(ref.layer.encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()


def module_kind(m: torch.nn.Module) -> str | None:
    """The layer kind of a module, by type (None for modules that hold no weight matrix)."""
    import torch.nn as nn

    w = getattr(m, "weight", None)
    if not isinstance(w, torch.Tensor):
        return None
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, nn.Conv2d):
        # same rule as matrices.infer_kind on a saved tensor, so a module and its state dict agree:
        # one input channel per group (depthwise, or a 1-channel input) -> one out x kh*kw matrix
        if w.shape[1] == 1 and w.shape[2] * w.shape[3] > 1:
            return "conv2d_depthwise"
        return "conv2d"
    if isinstance(m, nn.Conv1d):
        return "conv1d"
    if isinstance(m, nn.Embedding):
        return "embedding"
    if type(m).__name__ == "Conv1D" and w.ndim == 2:  # transformers.pytorch_utils.Conv1D (GPT-2)
        return "conv1d_hf"
    return None
