"""Control branches: each turns (IMP mask, rewind state) of a level into another network to train.

A branch at level ``L`` answers "is it the mask, the weights, or their signs?" by training a
transformed network with the IMP schedule from the rewind step and comparing it with IMP at the
same level. Every transform is a pure function of one replicate, vmapped over replicates:

* ``random_prune``: a random mask with the IMP mask's per-layer density (``layerwise``, as in
  Frankle & Carbin 2019) or only its overall density (``global``); rewind weights on it.
* ``random_reinit``: the IMP mask on a fresh random initialisation (Frankle & Carbin 2019).
* ``shuffle``: the IMP mask, the surviving rewind weights permuted within each layer.
* ``sign_flip``: rewind weights on the IMP mask with random signs (Zhou et al. 2019's
  "random sign" control: magnitudes kept, signs lost).
* ``reinit_keep_sign``: fresh random magnitudes with the rewind weights' signs on the IMP mask
  (Zhou et al. 2019: the signs carry most of what a ticket needs).
* ``retrain``: the IMP mask and rewind weights, trained with other training settings
  (``lottery.retrain_overrides``).
* ``magnitude_at_rewind``: one-shot magnitude pruning of the rewind weights themselves, keeping as
  many weights as the IMP mask (in total for ``lottery.scope = global``, per layer otherwise), and
  those weights trained. With ``lottery.rewind = pretrained`` this is the pretrained-tickets papers'
  baseline: the pretrained weights pruned by magnitude in one shot, before any fine-tuning (Chen et
  al. 2020, 2021); at step 0 of a random initialisation it is magnitude pruning at initialisation.

Non-prunable leaves (biases, normalisation) come from the rewind state, except for the
reinitialising branches, which take them from the fresh initialisation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxlth.pruning import magnitude
from jaxlth.pruning import masks as mask_lib

PyTree = Any
Network = dict  # {"params": ..., "batch_stats": ...}


def _map_masked(fn: Callable, key: jax.Array, params: PyTree, mask: PyTree, *others: PyTree) -> PyTree:
    """``params`` with each masked kernel ``w`` replaced by ``fn(key_i, w, keep, *other_leaves)``."""
    flat = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    other_flats = [dict(jax.tree_util.tree_flatten_with_path(o)[0]) for o in others]
    mask_items = jax.tree_util.tree_flatten_with_path(mask)[0]
    keys = jax.random.split(key, max(len(mask_items), 1))
    for k, (path, keep) in zip(keys, mask_items):
        flat[path] = fn(k, flat[path], keep, *[o[path] for o in other_flats])
    treedef = jax.tree.structure(params)
    return jax.tree.unflatten(treedef, [flat[p] for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]])


def _shuffle_kept(key: jax.Array, weights: jax.Array, keep: jax.Array) -> jax.Array:
    """Permutes the kept entries of one kernel among the kept positions (others become 0)."""
    w, k = weights.ravel(), keep.ravel()
    kept_in_order = jnp.argsort(~k, stable=True)  # kept positions first, in index order
    kept_shuffled = jnp.argsort(jnp.where(k, jax.random.uniform(key, k.shape), 2.0), stable=True)
    out = jnp.zeros_like(w).at[kept_in_order].set(w[kept_shuffled])
    return jnp.where(k, out, 0).reshape(weights.shape)


def random_prune(key, mask, rewind: Network, fresh: Network | None, options) -> tuple[PyTree, Network]:
    new_mask = magnitude.random_like(key, mask, options.get("random_prune_scope", "layerwise"))
    return new_mask, dict(rewind, params=mask_lib.apply(rewind["params"], new_mask))


def random_reinit(key, mask, rewind: Network, fresh: Network, options) -> tuple[PyTree, Network]:
    return mask, dict(fresh, params=mask_lib.apply(fresh["params"], mask))


def shuffle(key, mask, rewind: Network, fresh: Network | None, options) -> tuple[PyTree, Network]:
    return mask, dict(rewind, params=_map_masked(_shuffle_kept, key, rewind["params"], mask))


def sign_flip(key, mask, rewind: Network, fresh: Network | None, options) -> tuple[PyTree, Network]:
    def flip(k, w, keep):
        signs = jnp.where(jax.random.bernoulli(k, 0.5, w.shape), 1, -1).astype(w.dtype)
        return jnp.where(keep, jnp.abs(w) * signs, 0)

    return mask, dict(rewind, params=_map_masked(flip, key, rewind["params"], mask))


def reinit_keep_sign(key, mask, rewind: Network, fresh: Network, options) -> tuple[PyTree, Network]:
    def keep_sign(k, w_fresh, keep, w_rewind):
        return jnp.where(keep, jnp.abs(w_fresh) * jnp.sign(w_rewind), 0)

    return mask, dict(fresh, params=_map_masked(keep_sign, key, fresh["params"], mask, rewind["params"]))


def retrain(key, mask, rewind: Network, fresh: Network | None, options) -> tuple[PyTree, Network]:
    return mask, dict(rewind, params=mask_lib.apply(rewind["params"], mask))


def magnitude_at_rewind(key, mask, rewind: Network, fresh: Network | None, options) -> tuple[PyTree, Network]:
    scope = "global" if options.get("scope", "global") == "global" else "layerwise"
    new_mask = magnitude.top_like(magnitude.scores(rewind["params"], mask), mask, scope)
    return new_mask, dict(rewind, params=mask_lib.apply(rewind["params"], new_mask))


@dataclasses.dataclass(frozen=True)
class Branch:
    """A named control: its transform, its legend label and whether it needs a freshly initialised network."""

    name: str
    transform: Callable
    label: str
    needs_fresh_init: bool = False
    other_training: bool = False


BRANCHES = {
    b.name: b
    for b in (
        Branch("random_prune", random_prune, "random pruning"),
        Branch("random_reinit", random_reinit, "random reinitialisation", needs_fresh_init=True),
        Branch("shuffle", shuffle, "shuffled weights"),
        Branch("sign_flip", sign_flip, "random signs"),
        Branch("reinit_keep_sign", reinit_keep_sign, "reinitialised, signs kept", needs_fresh_init=True),
        Branch("retrain", retrain, "retrained (other settings)", other_training=True),
        Branch("magnitude_at_rewind", magnitude_at_rewind, "one-shot magnitude at the rewind point"),
    )
}
