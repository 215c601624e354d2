"""SGD on a synthetic set: MTT's differentiable inner loop, and a fresh network trained on a distilled set.

A student step draws a minibatch of ``batch`` synthetic images (passes over the set in random orders,
as MTT's chunks of a permutation), applies the real data's preprocessing (and its augmentation, when
the dataset has one: jaxlth's crops and flips are differentiable in the pixels), and takes one plain
SGD step of the learned learning rate on the cross-entropy of its labels: hard (``(N,)`` int32) or
soft (``(N, K)`` probabilities). The scan over steps wraps each step in ``jax.checkpoint``: the
backward pass through ``S`` steps keeps ``S`` parameter vectors, not every activation of every step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxlth.training import functions as fn

PyTree = Any


def minibatch_order(key: jax.Array, num_images: int, batch: int, steps: int) -> jax.Array:
    """``(steps, batch)`` int32: step ``s`` takes chunk ``s mod (N / batch)`` of pass ``s // (N / batch)``,
    each pass a fresh random permutation of the ``N`` images (``batch`` divides ``N``)."""
    per_pass = num_images // batch
    passes = -(-steps // per_pass)
    perms = jax.vmap(lambda k: jax.random.permutation(k, num_images))(jax.random.split(key, passes))
    return perms.reshape(-1)[: steps * batch].reshape(steps, batch).astype(jnp.int32)


def batch_loss(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean cross-entropy of hard labels ``(B,)`` or soft targets ``(B, K)`` (probabilities)."""
    if targets.ndim == 1:
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))
    return jnp.mean(optax.softmax_cross_entropy(logits, targets))


def train(
    model,
    spec: fn.Spec,
    network: dict,
    images: jax.Array,
    targets: jax.Array,
    lr: jax.Array,
    order: jax.Array,
    augment_key: jax.Array,
    remat: bool = True,
) -> PyTree:
    """The params after ``len(order)`` SGD steps of learning rate ``lr`` on ``images`` (stored units,
    ``(N, *image_shape)``) from ``network`` (``{"params", "batch_stats"}``; BatchNorm normalises with
    each minibatch's statistics, train mode). Differentiable in ``images``, ``targets`` and ``lr``."""
    batch_stats = network["batch_stats"]
    augmenting = spec.augmentation != "none"

    def step(params, xs):
        indices, s = xs
        raw = images[indices]
        x = fn.augmented(raw, jax.random.fold_in(augment_key, s), spec) if augmenting else fn.preprocess(raw, spec)

        def loss(p):
            logits, _ = fn.logits(model, p, batch_stats, x, train=True)
            return batch_loss(logits, targets[indices])

        grads = jax.grad(loss)(params)
        return jax.tree.map(lambda p, g: p - lr * g, params, grads), None

    body = jax.checkpoint(step) if remat else step
    params, _ = lax.scan(body, network["params"], (order, jnp.arange(order.shape[0])))
    return params
