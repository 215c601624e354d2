"""Masks from scorers: the pruning methods, one shot or over rounds, to one density or to many at once.

A *method* is a scorer (:mod:`jaxlth.pruning.scorers`) with a scope (:mod:`jaxlth.pruning.prune`):
``uniform`` and ``erk`` are random scores spread over layers by those density rules (Liu et al.
2022); the other methods take the scope of the experiment (``global`` in Frankle et al. 2021).

Rounds: ``n`` rounds take the mask from its density ``d_0`` to ``d`` through the exponential
schedule ``d_0 (d / d_0) ** (k / n)``, ``k = 1..n``, rescoring the pruned network each round
(Tanaka et al. 2020 for SynFlow; from the dense mask this is ``d ** (k / n)``). Every function acts
on one replicate; ``jax.vmap`` them over replicates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxlth import rng
from jaxlth.errors import UserError
from jaxlth.pruning import masks as mask_lib
from jaxlth.pruning import prune as prune_lib
from jaxlth.pruning import scorers as scorers_lib

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Method:
    """A pruning method: its scorer and, when it fixes one, its scope."""

    name: str
    scorer: str
    scope: str | None = None  # None: the experiment's scope

    @property
    def is_random(self) -> bool:
        """Random scores: shuffling, reinitialising or inverting gives the same distribution of networks."""
        return self.scorer == "random"


METHODS = {
    m.name: m
    for m in (
        Method("random", "random"),
        Method("magnitude", "magnitude"),
        Method("snip", "snip"),
        Method("grasp", "grasp"),
        Method("synflow", "synflow"),
        Method("uniform", "random", "layerwise"),
        Method("erk", "random", "erk"),
    )
}


def method(name: str, field: str) -> Method:
    """The method called ``name`` (``field`` names the config field in the error)."""
    if name not in METHODS:
        raise UserError(f"unknown {field} {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


def scorer(name: str, field: str) -> scorers_lib.Scorer:
    """The scorer called ``name`` (``field`` names the config field in the error)."""
    if name not in scorers_lib.SCORERS:
        raise UserError(f"unknown {field} {name!r}; choose from {', '.join(scorers_lib.SCORERS)}")
    return scorers_lib.SCORERS[name]


def check_data(scorer_: scorers_lib.Scorer, batches) -> None:
    """Raises UserError when ``scorer_`` needs training batches and is given none (a data-free path)."""
    if scorer_.needs_data and batches is None:
        raise UserError(
            f"{scorer_.name} scores on training examples, but this path gives it none "
            f"(a data-free method such as synflow, magnitude or random needs none)"
        )


@dataclasses.dataclass(frozen=True)
class Pruning:
    """How a scorer prunes one replicate's network: the scorer, the model it sees, the scope of the
    rule, the number of rounds and whether the scores are negated (the most important weights go).
    Hashable: it is a static argument of the compiled functions that use it."""

    scorer: scorers_lib.Scorer
    model: scorers_lib.Model
    scope: str
    rounds: int = 1
    invert: bool = False


def scores_of(how: Pruning, network: dict, mask: PyTree, batches, key) -> PyTree:
    """The scores of the pruned network ``params ⊙ mask`` (negated when ``how.invert``)."""
    check_data(how.scorer, batches)
    params = mask_lib.apply(network["params"], mask)
    scores = how.scorer.score(params, network.get("batch_stats", {}), mask, how.model, batches, key)
    return jax.tree.map(jnp.negative, scores) if how.invert else scores


def mask_at_density(how: Pruning, network: dict, mask: PyTree, batches, key, density) -> PyTree:
    """``mask`` pruned to ``density`` in ``how.rounds`` rounds (round ``k`` scores with ``fold_in(key, k)``)."""
    start = mask_lib.density(mask)

    def one_round(k, current):
        target = jnp.where(k == how.rounds - 1, density, start * (density / start) ** ((k + 1) / how.rounds))
        scores = scores_of(how, network, current, batches, rng.round_key(key, k))
        return prune_lib.prune_to_density(scores, current, target, how.scope)

    if how.rounds == 1:
        return one_round(0, mask)
    return jax.lax.fori_loop(0, how.rounds, one_round, mask)


def masks_at_densities(how: Pruning, network: dict, mask: PyTree, batches, key, densities: jax.Array) -> PyTree:
    """Masks ``(D, ...)``, one per density: one-round scorers score once and prune ``D`` times;
    iterative ones run their rounds for every density (vmapped)."""
    if how.rounds == 1:
        scores = scores_of(how, network, mask, batches, rng.round_key(key, 0))
        return jax.vmap(lambda d: prune_lib.prune_to_density(scores, mask, d, how.scope))(densities)
    return jax.vmap(lambda d: mask_at_density(how, network, mask, batches, key, d))(densities)


def prune_fraction(how: Pruning, network: dict, mask: PyTree, batches, key, fraction) -> PyTree:
    """``mask`` minus ``ceil(fraction * remaining)`` weights by ``how.scorer`` (an IMP level with another
    scorer): one round prunes exactly that count; more rounds reach the same density by the schedule."""
    if how.rounds == 1:
        return prune_lib.prune(scores_of(how, network, mask, batches, rng.round_key(key, 0)), mask, fraction, how.scope)
    remaining = sum(jnp.sum(m) for m in jax.tree.leaves(mask))
    kept = remaining - prune_lib.ceil_count(fraction * remaining)
    return mask_at_density(how, network, mask, batches, key, kept / mask_lib.num_prunable(mask))


def balanced_examples(key: jax.Array, labels: jax.Array, per_class: int, num_classes: int) -> jax.Array:
    """``(per_class * num_classes,)`` indices: ``per_class`` random examples of each class, interleaved
    (position ``i`` holds class ``i % num_classes``), so any ``num_classes * q`` consecutive ones are balanced.

    Every class must have at least ``per_class`` examples (checked by the caller).
    """
    noise = jax.random.uniform(key, labels.shape)

    def of_class(c):
        return jax.lax.top_k(jnp.where(labels == c, noise, -1.0), per_class)[1]

    return jax.vmap(of_class)(jnp.arange(num_classes)).T.reshape(-1)


def chunking(per_class: int, num_classes: int, max_batch: int = 512) -> tuple[int, int]:
    """``(K, B)``: the ``per_class * num_classes`` scoring examples as ``K`` batches of ``B``, with ``B``
    the largest ``num_classes * q`` (``q`` dividing ``per_class``) of at most ``max(max_batch, num_classes)``."""
    q = max(q for q in range(1, per_class + 1) if per_class % q == 0 and (q * num_classes <= max_batch or q == 1))
    return per_class // q, q * num_classes
