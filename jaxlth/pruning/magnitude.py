"""Magnitude pruning (global or layerwise) and random pruning, as pure jittable functions.

Each function takes one replicate's trees; ``jax.vmap`` them for a replicate axis. The number of
weights removed follows OpenLTH: ``ceil(fraction * remaining)``, of the weights the mask still
keeps; already-pruned weights stay pruned, so masks are nested level to level.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def _remove_lowest(scores: jax.Array, keep: jax.Array, fraction: float) -> jax.Array:
    """New flat mask: ``keep`` minus the ``ceil(fraction * sum(keep))`` kept entries of lowest score.

    ``scores`` must be non-negative (magnitudes).
    Ties are broken by position (a stable sort), so exactly that many entries are removed.
    """
    remaining = jnp.sum(keep)
    num_remove = jnp.ceil(fraction * remaining).astype(jnp.int32)
    # Already-pruned entries sort first (scores are magnitudes, >= 0); then the kept ones by
    # ascending score. One stable sort key is ~25% faster than a two-key lexsort on a CPU.
    order = jnp.argsort(jnp.where(keep, scores, -1.0), stable=True)
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.size, dtype=order.dtype))
    num_pruned = keep.size - remaining
    return rank >= num_pruned + num_remove


def _flat(tree: PyTree) -> tuple[list[jax.Array], Any]:
    leaves, treedef = jax.tree.flatten(tree)
    return leaves, treedef


def prune_global(params: PyTree, mask: PyTree, fraction: float) -> PyTree:
    """Removes ``fraction`` of the remaining weights with the smallest ``|w|`` across all layers.

    ``params`` may hold more leaves than ``mask`` (biases, ...); only the masked kernels are scored.
    """
    mask_leaves, treedef = _flat(mask)
    weights = _masked_weights(params, mask)
    sizes = [m.size for m in mask_leaves]
    scores = jnp.concatenate([jnp.abs(w).ravel() for w in weights])
    keep = jnp.concatenate([m.ravel() for m in mask_leaves])
    new = _remove_lowest(scores, keep, fraction)
    pieces = jnp.split(new, list(_cumulative(sizes))[:-1])
    return jax.tree.unflatten(treedef, [p.reshape(m.shape) for p, m in zip(pieces, mask_leaves)])


def prune_layerwise(params: PyTree, mask: PyTree, fraction: float) -> PyTree:
    """Removes ``fraction`` of each layer's remaining weights, smallest ``|w|`` first."""
    mask_leaves, treedef = _flat(mask)
    weights = _masked_weights(params, mask)
    new = [_remove_lowest(jnp.abs(w).ravel(), m.ravel(), fraction).reshape(m.shape)
           for w, m in zip(weights, mask_leaves)]
    return jax.tree.unflatten(treedef, new)


def random_like(key: jax.Array, mask: PyTree, scope: str) -> PyTree:
    """A uniformly random mask keeping as many weights as ``mask`` does.

    ``scope="layerwise"`` keeps each layer's count (so per-layer densities match);
    ``scope="global"`` keeps only the total count, spread over layers at random.
    """
    mask_leaves, treedef = _flat(mask)
    keys = jax.random.split(key, len(mask_leaves))
    scores = [jax.random.uniform(k, m.shape) for k, m in zip(keys, mask_leaves)]
    if scope == "layerwise":
        new = [_keep_top(s.ravel(), jnp.sum(m)).reshape(m.shape) for s, m in zip(scores, mask_leaves)]
        return jax.tree.unflatten(treedef, new)
    if scope != "global":
        raise ValueError(f"scope must be 'layerwise' or 'global', got {scope!r}")
    flat = _keep_top(jnp.concatenate([s.ravel() for s in scores]), sum(jnp.sum(m) for m in mask_leaves))
    pieces = jnp.split(flat, list(_cumulative([m.size for m in mask_leaves]))[:-1])
    return jax.tree.unflatten(treedef, [p.reshape(m.shape) for p, m in zip(pieces, mask_leaves)])


def _keep_top(scores: jax.Array, count: jax.Array) -> jax.Array:
    """Flat mask of the ``count`` highest scores."""
    order = jnp.argsort(-scores, stable=True)
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.size, dtype=order.dtype))
    return rank < count


def _masked_weights(params: PyTree, mask: PyTree) -> list[jax.Array]:
    """The leaves of ``params`` at the mask's paths, in the mask's leaf order."""
    flat_params = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    return [flat_params[path] for path, _ in jax.tree_util.tree_flatten_with_path(mask)[0]]


def _cumulative(sizes: list[int]) -> list[int]:
    out, total = [], 0
    for s in sizes:
        total += s
        out.append(total)
    return out
