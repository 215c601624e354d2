"""Per-example scores: EL2N and GraNd (Paul et al. 2021) and forgetting (Toneva et al. 2019).

EL2N and GraNd are pure functions of ONE network (no replicate axis; the caller ``jax.vmap``-s
them over stacked replicates and averages), evaluated in eval mode (BatchNorm with its running
statistics) on unaugmented training examples:

* ``el2n(x, y) = ‖softmax(f(x)) − onehot(y)‖₂`` (unitless, in ``[0, √2]``);
* ``grand(x, y) = ‖∇_w ℓ(f(x), y)‖₂`` over every trainable parameter (kernels, biases, BatchNorm
  scales and offsets, as Paul et al.'s code does; BatchNorm running statistics are not
  parameters); for a pruned network, pruned kernel entries are not parameters either. Per-example
  gradients come from ``vmap(grad)`` over ``chunk`` examples at a time, so memory holds
  ``chunk`` gradients (per replicate), never ``N``.

Forgetting comes from the history recorded during training (:mod:`jaxlth.training.history`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxlth.pruning import masks as mask_lib
from jaxlth.subsets import average, forgetting  # noqa: F401  (re-exported: the scores' API)
from jaxlth.training.functions import cross_entropy, logits

PyTree = Any


def _chunked(fn, images: jax.Array, labels: jax.Array, chunk: int) -> jax.Array:
    """``fn(x_chunk, y_chunk) -> (chunk,)`` over all ``N`` examples in a ``lax.map``; ``(N,)``.

    The last chunk is padded (with copies of example 0) and the padding dropped.
    """
    n = images.shape[0]
    size = max(1, min(int(chunk), n))
    num = -(-n // size)
    pad = num * size - n
    images = jnp.concatenate([images, jnp.repeat(images[:1], pad, axis=0)]) if pad else images
    labels = jnp.concatenate([labels, jnp.repeat(labels[:1], pad, axis=0)]) if pad else labels
    out = lax.map(lambda xy: fn(*xy), (images.reshape(num, size, *images.shape[1:]), labels.reshape(num, size)))
    return out.reshape(-1)[:n]


def el2n(
    program, params: PyTree, batch_stats: PyTree, images: jax.Array, labels: jax.Array, chunk: int = 1000
) -> jax.Array:
    """``(N,)`` EL2N of stored training ``images`` ``(N, ...)`` with int ``labels`` ``(N,)``."""

    def one_chunk(x, y):
        out, _ = logits(program.model, params, batch_stats, program.preprocess(x), train=False)
        error = jax.nn.softmax(out.astype(jnp.float32)) - jax.nn.one_hot(y, out.shape[-1])
        return jnp.sqrt(jnp.sum(error * error, axis=-1))

    return _chunked(one_chunk, images, labels, chunk)


def grand(
    program,
    params: PyTree,
    batch_stats: PyTree,
    images: jax.Array,
    labels: jax.Array,
    chunk: int = 16,
    mask: PyTree | None = None,
) -> jax.Array:
    """``(N,)`` GraNd: the norm of each example's loss gradient in every trainable parameter.

    ``mask`` (a pruned network's): the gradient of pruned kernel entries is left out.
    """
    mask = mask if mask is not None else {}

    def example_loss(p, x, y):
        out, _ = logits(program.model, p, batch_stats, x[None], train=False)
        return cross_entropy(out, y[None])[0]

    per_example_grad = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))

    def one_chunk(x, y):
        grads = mask_lib.apply(per_example_grad(params, program.preprocess(x), y), mask)
        squares = [jnp.sum(jnp.reshape(g * g, (g.shape[0], -1)), axis=-1) for g in jax.tree.leaves(grads)]
        return jnp.sqrt(sum(squares))

    return _chunked(one_chunk, images, labels, chunk)
