"""A source of weights as the pipeline sees it: named tensors, each loaded only when asked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch

_SUFFIX = re.compile(r"\.weight$")


@dataclass
class TensorRef:
    """One named weight tensor, loaded on demand.

    ``layer`` is the module name (the tensor name without ``.weight``), ``kind`` one of
    :data:`farms_viz.core.matrices.KINDS`, or None for tensors that are not matrix layers.
    """

    layer: str
    shape: tuple[int, ...]
    dtype: str
    kind: str | None
    load: Callable[[], torch.Tensor] = field(repr=False)
    #: (file path, tensor name) when the tensor can be re-opened from a file elsewhere (Ray workers)
    origin: tuple[str, str] | None = None
    #: ``load()`` returns a new tensor on each call that nothing else holds (read from a file), so the
    #: pipeline may overwrite it once done with it (the randomized ESD shuffles it in place)
    owned: bool = False


class Source:
    """A named collection of weight tensors."""

    name: str = "source"
    #: metrics-only sources (no weights) carry a ready table instead of tensors
    metrics = None
    #: ... and the Settings those published numbers were computed with (None: unknown)
    metrics_settings = None

    def tensors(self) -> Iterator[TensorRef]:
        raise NotImplementedError

    def content_id(self) -> str:
        """A string that changes when the weights change (for caches)."""
        raise NotImplementedError


def layer_name(tensor_name: str) -> str:
    return _SUFFIX.sub("", tensor_name)


def is_weight(name: str, shape, dtype: str) -> bool:
    """Tensors worth considering as layers: weights with >= 2 dims (buffers such as *_ids are not)."""
    if len(shape) < 2:
        return False
    if name.endswith("_ids") or name.endswith("position_ids"):
        return False
    return True


def natural_key(name: str) -> list:
    """Sort key that orders ``layer.9`` before ``layer.10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
