"""Where a layer's correlation traps sit: the entries of W whose removal clears them.

A trap is an eigenvalue of the element-wise shuffled matrix beyond the MP bulk edge (plus WW's
Tracy-Widom margin) fitted to that randomized ESD. Shuffling moves every entry, but a single huge
entry stays huge wherever it lands, so it alone makes such an eigenvalue. ``core.randomize.trap_entries``
removes the entries with the largest |w - mean| one at a time (each set to its slice's mean),
shuffles again with the SAME seeded permutations as the report and refits, until no trap is left.
This module loads the layer's matrix again (the report keeps only spectra) and bounds the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from farms_viz.core.matrices import to_matrices
from farms_viz.core.randomize import TrapEntries, trap_entries
from farms_viz.errors import FarmsError
from farms_viz.pipeline.sources import open_source
from farms_viz.settings import Settings

#: trap_entries does one shuffle, eigendecomposition and MP fit per step, at most MAX_REMOVED + 1.
#: Measured on 2 cores (one planted entry, 2 steps): 384 x 1536 1.4 s, 512 x 2048 2.1 s,
#: 1024 x 4096 12.9 s; 512 x 2048 with 40 planted entries (16 removals, not cleared) 10.4 s. So a
#: layer of at most 2**20 entries costs at most ~10 s; larger ones are not searched.
MAX_REMOVED = 16
MAX_TRAP_ENTRIES = 2**20


@dataclass(frozen=True)
class LayerTraps:
    """The trap entries of one layer (``positions`` as (slice, row, col)), or why they were not searched."""

    entries: TrapEntries | None
    skipped: str | None = None


def searchable(rows: int, cols: int, n_slices: int = 1) -> str | None:
    """None when a layer of this size is searched on demand, else the sentence saying why not."""
    n = rows * cols * max(1, n_slices)
    if n > MAX_TRAP_ENTRIES:
        return (f"The entries behind the traps are not searched for a layer of {n:,} entries (more than "
                f"{MAX_TRAP_ENTRIES:,}): each step of the search is a new eigendecomposition of the whole matrix.")
    return None


def layer_trap_entries(source, layer: str, settings: Settings, max_removed: int = MAX_REMOVED) -> LayerTraps:
    """Open ``source`` again, cut layer ``layer`` into its matrices as the analysis did (conv
    normalisation included) and find its trap entries with the report's seed."""
    src = open_source(source)
    ref = next((r for r in src.tensors() if r.layer == layer and r.kind is not None), None)
    if ref is None:
        raise FarmsError(f"{layer!r} is not a weight matrix of {src.name}.")
    mats = to_matrices(ref.load(), ref.kind, settings.conv_norm)
    skipped = searchable(mats.rows, mats.cols, mats.n_slices)
    if skipped:
        return LayerTraps(None, skipped)
    w = mats.slices.detach().to("cpu").double().numpy()
    return LayerTraps(trap_entries(w, settings.seed, max_entries=max_removed))


#: how the entries are found, in the words the layer browser shows
HOW = ("found by removing the entries with the largest |w − mean| one at a time (each set to its slice's "
       "mean), shuffling again with the same seed and refitting the randomized ESD's MP bulk, until no "
       "eigenvalue is beyond the trap threshold")


def trap_sentence(n_traps: int | None, found: LayerTraps | None = None) -> str:
    """What the |W| picture shows about the raw side's correlation traps, in one or two sentences.
    ``n_traps`` None: the randomized ESD is off; ``found`` None with traps: not searched yet."""
    if n_traps is None:
        return "The randomized ESD is off (sidebar), so no correlation traps are looked for."
    if n_traps == 0:
        return "The raw randomized ESD has no correlation traps: no entry stands out."
    if found is None or found.entries is None:
        return f"The raw randomized ESD has {n_traps} correlation trap(s). " + (found.skipped if found else "")
    e = found.entries
    n = len(e.positions)
    if e.cleared:
        return (f"The {n} entr{'y' if n == 1 else 'ies'} ringed on |W| cause{'s' if n == 1 else ''} the raw randomized ESD's "
                f"{e.num_traps_before} correlation trap(s): {HOW}.")
    return (f"Removing the {n} largest entries left {e.num_traps_after} of {e.num_traps_before} correlation "
            f"traps, so no few entries explain them (a large mean, or many large entries, does this); the "
            f"ringed entries are the ones tried, {HOW}.")
