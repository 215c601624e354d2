"""The pure pieces of IMP: pruning a level's mask and building each level's starting network.

All functions act on stacked replicates (a leading axis ``R`` on every leaf) and are compiled
once per shape; ``prune`` is one call for all replicates, each pruning its own network.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxlth.errors import UserError
from jaxlth.pruning import magnitude
from jaxlth.pruning import masks as mask_lib
from jaxlth.pruning import prune as prune_lib

PyTree = Any
RETRAIN_MODES = ("weight_rewind", "lr_rewind", "finetune")
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


def check_settings(config) -> None:
    """Raises UserError for lottery settings that cannot work (needs no data)."""
    lot = config.lottery
    if not (isinstance(lot.levels, int) and lot.levels >= 0):
        raise UserError(f"lottery.levels must be a non-negative integer, got {lot.levels!r}")
    fractions(config)
    if lot.scope not in SCOPES:
        raise UserError(f"unknown lottery.scope {lot.scope!r}; choose {', '.join(SCOPES)}")
    if lot.retrain not in RETRAIN_MODES:
        raise UserError(f"unknown lottery.retrain {lot.retrain!r}; choose one of {', '.join(RETRAIN_MODES)}")


def fractions(config) -> tuple[float, ...]:
    """``lottery.prune_fraction`` as a tuple: one number, or the fractions of a sweep, each in (0, 1).

    Raises UserError for an empty sweep, a value outside (0, 1) or one listed twice.
    """
    value = config.lottery.prune_fraction
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"lottery.prune_fraction must be a number or a tuple of numbers, got {value!r}") from None
    if not values:
        raise UserError("lottery.prune_fraction is an empty tuple; give one fraction or several, e.g. (0.2, 0.4)")
    if any(not 0.0 < v < 1.0 for v in values):
        raise UserError(f"lottery.prune_fraction must be in (0, 1), got {value!r}")
    if len(set(values)) != len(values):
        raise UserError(f"lottery.prune_fraction lists a fraction twice: {value!r}")
    return values


def check(config, rewind_step: int, total_steps: int) -> None:
    """:func:`check_settings`, and the rewind step (in iterations) against the length of training."""
    check_settings(config)
    lot = config.lottery
    if not 0 <= rewind_step < total_steps:
        raise UserError(f"lottery.rewind ({lot.rewind} = {rewind_step} steps) must come before the end of "
                        f"training ({config.train.steps} = {total_steps} steps)")


def parse_overrides(text: str) -> dict[str, str]:
    """``"lr=0.05,optimizer=adam"`` -> ``{"lr": "0.05", "optimizer": "adam"}``."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise UserError(f"lottery.retrain_overrides item {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out
