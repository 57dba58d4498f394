"""The metrics beyond alpha in the figures: the randomized ESD and traps, trap entries on |W|, any
metric in the overview's bars and aspect-ratio plot."""

from __future__ import annotations

import numpy as np

from farms_viz.core.metrics import fit_mp_kde
from farms_viz.core.mp import fit_mp
from farms_viz.core.randomize import randomized_esd, trap_entries
from farms_viz.core.spectra import window_grid
from farms_viz.figures import layer as figures
from farms_viz.pipeline.metrics import RandSide


def _by_meta(fig, meta):
    hits = [t for t in fig.data if t.meta == meta]
    assert hits, f"no trace with meta {meta!r} in {[t.meta for t in fig.data]}"
    return hits[0]


def _planted(rows=128, cols=256, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)) / np.sqrt(cols)
    w[10, 20] = 30.0
    return w


def _rand_side(w):
    r = randomized_esd(w, 0)
    f = fit_mp_kde(r.esd, max(w.shape), min(w.shape))
    return RandSide(r.esd, f.bulk_max, f.spike_edge, int(max(f.num_spikes, 0)))


def test_randomized_esd_outline_edges_and_the_planted_trap():
    w = _planted()
    e = np.sort(np.linalg.eigvalsh(w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T))
    rand = _rand_side(w)
    assert rand.n_traps == 1  # one huge entry: one eigenvalue ~ 30^2 beyond the bulk
    fig = figures.esd_histogram(e, fit_mp(e, 256, 128), "raw", rand=rand)
    outline = _by_meta(fig, "randomized ESD")
    assert outline.name.startswith("randomized ESD (128 eigenvalues)") and outline.fill is None
    assert _by_meta(fig, "randomized bulk edge").x[0] == rand.bulk_max
    assert _by_meta(fig, "trap threshold").x[0] == rand.spike_edge
    traps = _by_meta(fig, "traps")
    assert len(traps.x) == 1 and traps.x[0] > 800 and traps.name == "correlation traps (1)"
    # without a randomized side none of these is drawn
    plain = figures.esd_histogram(e, fit_mp(e, 256, 128), "raw")
    assert not [t for t in plain.data if t.meta in ("randomized ESD", "traps", "trap threshold")]


def test_no_trap_marker_when_the_randomized_esd_stays_inside_its_edge():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((128, 256)) / 16
    e = np.sort(np.linalg.eigvalsh(w @ w.T))
    rand = _rand_side(w)
    fig = figures.esd_histogram(e, fit_mp(e, 256, 128), "raw", rand=rand)
    assert rand.n_traps == 0 and not [t for t in fig.data if t.meta == "traps"]
    assert _by_meta(fig, "randomized ESD")


def test_trap_entries_ringed_on_the_picture_at_their_position():
    w = _planted()
    found = trap_entries(w, 0)
    assert found.cleared and found.positions.tolist() == [[10, 20]]
    fig = figures.window_grid_figure(np.abs(w), window_grid(128, 256, 64, 1.0, 2), traps=found.positions)
    ring = _by_meta(fig, "trap entries")
    assert (ring.x[0], ring.y[0]) == (20.5, 10.5) and ring.name == "trap entries (1)"
    assert "slice" not in ring.hovertemplate
    assert not [t for t in figures.window_grid_figure(np.abs(w), window_grid(128, 256, 64, 1.0, 2)).data
                if t.meta == "trap entries"]
