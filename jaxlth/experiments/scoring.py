"""Pruning methods on a run's networks: the model a scorer sees, the examples it scores on, and the
vmapped calls that turn every replicate's network into masks (:mod:`jaxlth.pruning.at_init`).

Shared by ``prune_at_init`` (masks at initialisation or at step k) and ``lottery.scorer`` (IMP
levels pruned by another scorer). Replicate ``r`` scores on its own ``per_class`` examples of
every class (unaugmented, chosen with the stream :data:`SCORING_EXAMPLES`) in batches of
:func:`jaxlth.pruning.at_init.chunking`. A training set of soft targets (a distilled set's learned
labels) is scored with each example's argmax class as its label.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlth import rng
from jaxlth.data.dataset import classes_of
from jaxlth.errors import UserError
from jaxlth.pruning import at_init, scorers
from jaxlth.training import copies as copies_lib
from jaxlth.training import functions as fn
from jaxlth.training.setup import Setup

PyTree = Any
SCORING_EXAMPLES = rng.Stream(
    "scoring examples (SNIP, GraSP) of replicate r: per_class examples of each class", rng.DATA_KEY, 4000
)


def model(setup: Setup, batch_statistics: bool = True) -> scorers.Model:
    """The setup's network as a scorer sees it (logits of preprocessed inputs); one object per
    network and mode, so the jitted scoring compiles once."""
    return model_for(setup.program.model, tuple(setup.program.spec.image_shape), batch_statistics)


@functools.lru_cache(maxsize=None)
def model_for(module, image_shape: tuple[int, ...], batch_statistics: bool = True) -> scorers.Model:
    """A Flax module (``train`` keyword) as a scorer's :class:`~jaxlth.pruning.scorers.Model`."""

    def logits(params, batch_stats, x, train):
        return fn.logits(module, params, batch_stats, x, train)[0]

    return scorers.Model(logits, image_shape, batch_statistics)


def check_examples(setup: Setup, per_class: int, field: str) -> None:
    """Raises UserError when some class has fewer than ``per_class`` training examples."""
    counts = np.bincount(classes_of(setup.dataset.train_labels), minlength=setup.dataset.num_classes)
    if per_class > counts.min():
        raise UserError(
            f"{field} = {per_class}, but class {int(counts.argmin())} has only {int(counts.min())} training examples"
        )


def batches(setup: Setup, per_class: int) -> tuple[jax.Array, jax.Array] | None:
    """``(x (R, K, B, *input_shape), y (R, K, B))``: each replicate's scoring batches; ``None`` for 0."""
    if per_class == 0:
        return None
    classes = setup.dataset.num_classes
    k, b = at_init.chunking(per_class, classes)
    data, spec = setup.data, setup.program.spec
    labels = data.train_labels if data.train_labels.ndim == 1 else jnp.argmax(data.train_labels, -1).astype(jnp.int32)

    def of_replicate(key):
        idx = at_init.balanced_examples(key, labels, per_class, classes)
        x = fn.preprocess(data.train_images[idx], spec)
        return x.reshape(k, b, *x.shape[1:]), labels[idx].reshape(k, b)

    return jax.jit(jax.vmap(of_replicate))(jax.vmap(SCORING_EXAMPLES.key)(setup.data_keys()))


def method_keys(config, method: str, level: int = 0) -> jax.Array:
    """``(R, 2)``: each replicate's key for ``method`` at IMP ``level`` (0: at initialisation)."""
    return rng.replicate_keys(config.seed, config.replicates, rng.method_stream(method, level))


@functools.partial(jax.jit, static_argnames="how")
def _masks_at_densities(network, mask, data, keys, densities, *, how: at_init.Pruning):
    def one(replicate_network, m, replicate_data, key):
        return at_init.masks_at_densities(how, replicate_network, m, replicate_data, key, densities)

    return jax.vmap(one)(network, mask, data, keys)


def pruning(
    setup: Setup, scorer_name: str, scope: str, rounds: int = 0, invert: bool = False, batch_statistics: bool = True
) -> at_init.Pruning:
    """How ``scorer_name`` prunes the setup's networks (``rounds`` 0: the scorer's own; ``batch_statistics``:
    BatchNorm normalises with the batch's statistics while scoring, else with the running ones)."""
    scorer = scorers.SCORERS[scorer_name]
    return at_init.Pruning(scorer, model(setup, batch_statistics), scope, rounds or scorer.rounds, invert)


def masks_at_densities(how: at_init.Pruning, network: dict, mask: PyTree, data, keys: jax.Array, densities) -> PyTree:
    """Masks ``(R, D, ...)``: replicate ``r``'s ``network`` pruned as ``how`` says from ``mask`` to each density."""
    return _masks_at_densities(network, mask, data, keys, jnp.asarray(densities, jnp.float32), how=how)


@functools.partial(jax.jit, static_argnames="how")
def _prune_each(network, mask, data, keys, fractions, *, how: at_init.Pruning):
    def one(replicate_network, m, replicate_data, key, fraction):
        return at_init.prune_fraction(how, replicate_network, m, replicate_data, key, fraction)

    return jax.vmap(one)(network, mask, data, keys, fractions)


def prune_each(
    how: at_init.Pruning, network: dict, mask: PyTree, data, keys: jax.Array, fractions: jax.Array, copies: int = 1
) -> PyTree:
    """Each stacked network (``R * copies``) minus ``ceil(fractions[i] * remaining)`` weights as ``how`` says.

    ``data`` and ``keys`` have one entry per replicate; copy ``c`` of replicate ``r`` uses replicate
    ``r``'s (the copies are the fractions of a prune-fraction sweep).
    """
    if copies > 1:
        data, keys = copies_lib.repeat(data, copies), copies_lib.repeat(keys, copies)
    return _prune_each(network, mask, data, keys, jnp.asarray(fractions, jnp.float32), how=how)
