"""Magnitude pruning (global or layerwise) and random masks, as pure jittable functions.

Each function takes one replicate's trees; ``jax.vmap`` them for a replicate axis. Magnitude
pruning is the scorer ``|w|`` (:func:`scores`) under the shared rule of :mod:`jaxlth.pruning.prune`:
``ceil(fraction * remaining)`` of the weights the mask still keeps are removed (OpenLTH's count),
already-pruned weights stay pruned, so masks are nested level to level.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxlth.pruning import prune as prune_lib

PyTree = Any


def scores(params: PyTree, mask: PyTree) -> PyTree:
    """``|w|`` of the masked kernels: a tree shaped like ``mask`` (``params`` may hold more leaves)."""
    return jax.tree.unflatten(jax.tree.structure(mask), [jnp.abs(w) for w in prune_lib.leaves_like(params, mask)])


def prune_global(params: PyTree, mask: PyTree, fraction: float) -> PyTree:
    """Removes ``fraction`` of the remaining weights with the smallest ``|w|`` across all layers."""
    return prune_lib.prune(scores(params, mask), mask, fraction, "global")


def prune_layerwise(params: PyTree, mask: PyTree, fraction: float) -> PyTree:
    """Removes ``fraction`` of each layer's remaining weights, smallest ``|w|`` first."""
    return prune_lib.prune(scores(params, mask), mask, fraction, "layerwise")


def random_like(key: jax.Array, mask: PyTree, scope: str) -> PyTree:
    """A uniformly random mask keeping as many weights as ``mask`` does.

    ``scope="layerwise"`` keeps each layer's count (so per-layer densities match);
    ``scope="global"`` keeps only the total count, spread over layers at random.
    """
    mask_leaves, treedef = jax.tree.flatten(mask)
    keys = jax.random.split(key, len(mask_leaves))
    random_scores = jax.tree.unflatten(treedef, [jax.random.uniform(k, m.shape) for k, m in zip(keys, mask_leaves)])
    return top_like(random_scores, mask, scope)


def top_like(scores_tree: PyTree, mask: PyTree, scope: str) -> PyTree:
    """The mask of the highest ``scores_tree`` entries over every prunable weight (pruned or not),
    keeping as many as ``mask`` does: per layer (``layerwise``) or in total (``global``)."""
    mask_leaves, treedef = jax.tree.flatten(mask)
    everything = jax.tree.leaves(jax.tree.map(jnp.ones_like, mask))
    values = prune_lib.leaves_like(scores_tree, mask)
    if scope == "layerwise":
        return prune_lib.keep_per_layer(values, everything, [jnp.sum(m) for m in mask_leaves], treedef)
    if scope != "global":
        raise ValueError(f"scope must be 'layerwise' or 'global', got {scope!r}")
    return prune_lib.keep_global(values, everything, sum(jnp.sum(m) for m in mask_leaves), treedef)
