"""Per-example scores: EL2N and GraNd (Paul et al. 2021) and forgetting (Toneva et al. 2019).

EL2N and GraNd are pure functions of ONE network (no replicate axis; the caller ``jax.vmap``-s
them over stacked replicates and averages), evaluated in eval mode (BatchNorm with its running
statistics) on unaugmented training examples:

* ``el2n(x, y) = ‖softmax(f(x)) − onehot(y)‖₂`` (unitless, in ``[0, √2]``);
* ``grand(x, y) = ‖∇_w ℓ(f(x), y)‖₂`` over every trainable parameter (kernels, biases, BatchNorm
  scales and offsets, as Paul et al.'s code does; BatchNorm running statistics are not
  parameters); for a pruned network, pruned kernel entries are not parameters either. Per-example
  gradients come from ``vmap(vjp)`` over ``chunk`` examples at a time, so memory holds
  ``chunk`` gradients (per replicate), never ``N``.

Both keep the digits of confident examples, the end of the ranking pruning by score removes: the
label's entry of ``softmax − onehot`` (the cross-entropy's gradient in the logits) is
``−Σ_{j≠y} p_j``, a sum of the other classes' probabilities, each accurate to float32's relative
precision, instead of ``p_y − 1``, a difference near 1 that loses them (float32's spacing below 1,
6e-8, is 6% of ``1 − p_y = 1e-6``).
GraNd is the logits' pullback (``jax.vjp``) of that vector, the chain rule of the cross-entropy's
gradient; the training loss is not touched. Both scale the vector by its largest entry before
squaring, so scores below ~1e-19 do not underflow to 0.

Forgetting comes from the history recorded during training (:mod:`jaxlth.training.history`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxlth.pruning import masks as mask_lib
from jaxlth.subsets import average, forgetting  # noqa: F401  (re-exported: the scores' API)
from jaxlth.training.functions import logits

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
    chunks = (images.reshape(num, size, *images.shape[1:]), labels.reshape(num, size, *labels.shape[1:]))
    out = lax.map(lambda xy: fn(*xy), chunks)
    return out.reshape(-1)[:n]


def logit_error(out: jax.Array, labels: jax.Array) -> jax.Array:
    """``(B, C)`` float32 ``softmax(out) − onehot(labels)`` of logits ``out`` ``(B, C)``, int ``labels`` ``(B,)``
    (or ``softmax(out) − labels`` of soft targets ``(B, C)``: a distilled set's).

    The label's entry is ``−Σ_{j≠y} p_j`` (``= p_y − 1``), accurate when ``p_y`` is near 1.
    """
    p = jax.nn.softmax(out.astype(jnp.float32))
    if labels.ndim == out.ndim:
        return p - labels.astype(jnp.float32)
    is_label = labels[..., None] == jnp.arange(out.shape[-1])
    others = jnp.where(is_label, 0.0, p)
    return jnp.where(is_label, -jnp.sum(others, axis=-1, keepdims=True), others)


def _scaled(error: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(scale (B,), error / scale (B, C))``: ``scale`` the largest ``|entry|`` (1 where all are 0),
    so squares of tiny errors (below ~1e-19) do not underflow in float32."""
    scale = jnp.max(jnp.abs(error), axis=-1, keepdims=True)
    scale = jnp.where(scale > 0, scale, 1.0)
    return scale[..., 0], error / scale


def el2n(
    program, params: PyTree, batch_stats: PyTree, images: jax.Array, labels: jax.Array, chunk: int = 1000
) -> jax.Array:
    """``(N,)`` EL2N of stored training ``images`` ``(N, ...)`` with int ``labels`` ``(N,)`` (or soft ``(N, C)``)."""

    def one_chunk(x, y):
        out, _ = logits(program.model, params, batch_stats, program.preprocess(x), train=False)
        scale, unit = _scaled(logit_error(out, y))
        return scale * jnp.sqrt(jnp.sum(unit * unit, axis=-1))

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

    def example_grad(p, x, y):
        """``(scale, gradient / scale)``: the logits' pullback of ``logit_error / scale``."""
        out, pullback = jax.vjp(lambda q: logits(program.model, q, batch_stats, x[None], train=False)[0], p)
        scale, unit = _scaled(logit_error(out, y[None]))
        return scale[0], pullback(unit.astype(out.dtype))[0]

    per_example_grad = jax.vmap(example_grad, in_axes=(None, 0, 0))

    def one_chunk(x, y):
        scale, grads = per_example_grad(params, program.preprocess(x), y)
        grads = mask_lib.apply(grads, mask)
        squares = [jnp.sum(jnp.reshape(g * g, (g.shape[0], -1)), axis=-1) for g in jax.tree.leaves(grads)]
        return scale * jnp.sqrt(sum(squares))

    return _chunked(one_chunk, images, labels, chunk)
