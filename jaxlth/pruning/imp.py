"""The pure pieces of IMP: pruning a level's mask and building each level's starting network.

All functions act on stacked replicates (a leading axis ``R`` on every leaf) and are compiled
once per shape; ``prune`` is one call for all replicates, each pruning its own network.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxlth.pruning import magnitude
from jaxlth.pruning import masks as mask_lib
from jaxlth.pruning import prune as prune_lib

PyTree = Any
RETRAIN_MODES = ("weight_rewind", "lr_rewind", "finetune")  # how a pruned level retrains (Renda et al. 2020)
SCOPES = prune_lib.SCOPES  # global | layerwise | erk (jaxlth.pruning.prune)


@functools.partial(jax.jit, static_argnames=("fraction", "scope"))
def prune(params: PyTree, mask: PyTree, fraction: float, scope: str) -> PyTree:
    """The next level's masks: each replicate removes ``fraction`` of its remaining weights.

    ``global`` ranks ``|w|`` across all prunable layers, ``layerwise`` within each layer, ``erk``
    within each layer to its ERK density; the number removed is ``ceil(fraction * remaining)``
    (OpenLTH's rule, :func:`jaxlth.pruning.prune.prune`). Masks are nested.
    """
    return jax.vmap(functools.partial(_magnitude, scope=scope), (0, 0, None))(params, mask, fraction)


def _magnitude(params: PyTree, mask: PyTree, fraction, scope: str) -> PyTree:
    return prune_lib.prune(magnitude.scores(params, mask), mask, fraction, scope)


@functools.partial(jax.jit, static_argnames="scope")
def prune_each(params: PyTree, mask: PyTree, fractions: jax.Array, scope: str) -> PyTree:
    """Like :func:`prune`, with its own fraction per stacked network: ``fractions`` is ``(R,)``.

    A prune-fraction sweep stacks ``R * F`` networks (:mod:`jaxlth.training.copies`); each removes
    ``ceil(fractions[i] * remaining)`` of its weights, in float32 like :func:`prune`.
    """
    return jax.vmap(functools.partial(_magnitude, scope=scope))(params, mask, fractions.astype(jnp.float32))


@functools.partial(jax.jit, static_argnames="scope")
def prune_to_densities(params: PyTree, mask: PyTree, densities: jax.Array, scope: str) -> PyTree:
    """Masks ``(D, R, ...)``: each replicate's ``mask`` pruned at once to each density in ``densities``.

    Density ``d`` removes ``ceil((1 - d) * remaining)`` weights (the rule of :func:`prune`); one
    compiled program serves every list of ``D`` densities.
    """
    per_replicate = jax.vmap(functools.partial(_magnitude, scope=scope), (0, 0, None))
    return jax.vmap(lambda d: per_replicate(params, mask, 1.0 - d))(densities)


@jax.jit
def on_mask(params: PyTree, mask: PyTree) -> PyTree:
    """``params`` with pruned weights set to 0 (a new tree: safe to donate)."""
    return jax.tree.map(lambda x: x.copy(), mask_lib.apply(params, mask))
