"""Matching training trajectories (MTT; Cazenavette et al., CVPR 2022): one outer iteration's loss.

An expert trajectory is a network trained on the real data, saved at every epoch. One iteration
draws an expert ``e`` and a start epoch ``t`` uniformly in ``[0, max_start_epoch)`` (MTT's
``randint(0, max_start_epoch)``), trains a student from ``θ_t`` for ``N = inner_steps`` SGD steps on
the synthetic set with the learned learning rate (:func:`jaxlth.distillation.student.train`), and
measures how far it lands from the expert's epoch ``t + M`` (``M = expert_epochs``), relative to how far
the expert moved::

    loss = ||θ̂_{t+N} - θ_{t+M}||² / ||θ_t - θ_{t+M}||²

over every parameter (BatchNorm running statistics are not parameters). The gradient flows to the
images, the learning rate and, when learned, the label logits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxlth.distillation import keys, student
from jaxlth.training import functions as fn

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Matching:
    """The static settings of MTT's objective."""

    inner_steps: int  # N: student steps on the synthetic set
    expert_epochs: int  # M: the expert's epochs the student's N steps must match
    max_start_epoch: int  # the start epoch t is drawn from [0, max_start_epoch)
    batch: int  # synthetic images per student step (divides N images)


def squared_distance(a: PyTree, b: PyTree) -> jax.Array:
    """``Σ (a - b)²`` over every leaf (float32)."""
    return sum(jnp.sum(jnp.square(x - y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def matching_loss(student_params: PyTree, start: PyTree, target: PyTree) -> jax.Array:
    """``||student - target||² / ||start - target||²``."""
    return squared_distance(student_params, target) / squared_distance(start, target)


def epoch_of(trajectory: PyTree, expert: jax.Array, epoch: jax.Array) -> PyTree:
    """Expert ``expert``'s network at ``epoch`` from leaves stacked ``(experts, epochs, ...)``."""
    return jax.tree.map(lambda x: x[expert, epoch], trajectory)


def loss(
    model,
    spec: fn.Spec,
    settings: Matching,
    trajectory: dict,
    images: jax.Array,
    targets: jax.Array,
    lr: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """The matching loss of one iteration (iteration key ``key``) for a synthetic set of ``images``
    (stored units) with ``targets`` (``(N,)`` classes or ``(N, K)`` probabilities) and learning rate ``lr``.

    ``trajectory``: ``{"params", "batch_stats"}`` with leaves ``(experts, epochs, ...)`` holding at
    least epochs ``0 .. max_start_epoch - 1 + expert_epochs``.
    """
    experts = jax.tree.leaves(trajectory["params"])[0].shape[0]
    expert = jax.random.randint(keys.EXPERT.key(key), (), 0, experts)
    t = jax.random.randint(keys.START_EPOCH.key(key), (), 0, settings.max_start_epoch)
    start = epoch_of(trajectory, expert, t)
    target = epoch_of(trajectory["params"], expert, t + settings.expert_epochs)
    order = student.minibatch_order(keys.BATCHES.key(key), images.shape[0], settings.batch, settings.inner_steps)
    trained = student.train(model, spec, start, images, targets, lr, order, keys.AUGMENT.key(key))
    return matching_loss(trained, start["params"], target)
