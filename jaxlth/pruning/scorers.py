"""Scorers: how important each prunable weight is, as a tree shaped like the mask (higher = keep).

A scorer is one pure function of one replicate,

    score(params, batch_stats, mask, model, batches, key) -> scores

``params`` are the network's weights with the mask already applied, ``model`` a :class:`Model`
(the network's logits in eval mode and the shape of its inputs), ``batches`` a few training
batches ``(x (K, B, *input_shape) preprocessed, y (K, B))`` or ``None`` for a data-free scorer,
``key`` its random key. ``jax.vmap`` it for replicates. :mod:`jaxlth.pruning.prune` turns scores
into masks; :mod:`jaxlth.pruning.at_init` iterates scorers over rounds (SynFlow).

* ``magnitude``: ``|w|`` (IMP's scorer, on trained weights; "magnitude at initialisation" on init).
* ``random``: i.i.d. uniform scores (random pruning; with the ``layerwise`` and ``erk`` scopes:
  Liu et al. 2022's uniform and ERK random sparse networks).
* ``snip`` (Lee et al. 2019): ``|g ⊙ w|``, ``g`` the gradient of the mean cross-entropy over the batches.

* ``grasp`` (Wang et al. 2020): GraSP removes the weights of highest ``S = -w ⊙ Hg``, with ``g`` the
  gradient and ``H`` the Hessian of the cross-entropy of the logits divided by a temperature
  (200 in the authors' code); as an importance (higher = keep) that is ``w ⊙ Hg = -S``. ``Hg`` is
  one forward-over-reverse Hessian-vector product; no Hessian is formed.
* ``synflow`` (Tanaka et al. 2020): data-free. With every
  parameter replaced by its absolute value, ``R = sum(f(1))`` on one all-ones input; score
  ``|∂R/∂w ⊙ w|``. BatchNorm runs in eval mode on its running statistics (left as they are), as in
  Frankle et al. 2021's code and by default in the authors'.
  ``R`` is homogeneous in each layer's weights, so it is computed on weights rescaled by a
  constant per layer (their mean absolute value; an exact rescaling of every score, which keeps
  the ranking when biases are zero) only when needed to stay inside float32: see :func:`synflow`.

``snip`` and ``grasp`` normalise BatchNorm with the batch's own statistics when
``model.batch_statistics`` is true (Frankle et al. 2021's code scores in train mode) and with the
running statistics otherwise (SNIP's and Synaptic-Flow's code).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxlth.pruning import magnitude as magnitude_lib
from jaxlth.pruning import prune as prune_lib

PyTree = Any
GRASP_TEMPERATURE = 200.0  # Wang et al. (2020)'s code divides the logits by T = 200 while scoring


@dataclasses.dataclass(frozen=True)
class Model:
    """What a scorer may evaluate of one replicate's network.

    ``logits(params, batch_stats, x, train) -> (B, classes)``, ``x`` preprocessed inputs of shape
    ``(B, *input_shape)``; ``train=True`` normalises BatchNorm with the batch's statistics.
    ``batch_statistics``: whether the data scorers (SNIP, GraSP) do so.
    """

    logits: Callable
    input_shape: tuple[int, ...]
    batch_statistics: bool = True


def magnitude(params, batch_stats, mask, model, batches, key) -> PyTree:
    return magnitude_lib.scores(params, mask)


def random(params, batch_stats, mask, model, batches, key) -> PyTree:
    leaves = jax.tree.leaves(mask)
    keys = jax.random.split(key, max(len(leaves), 1))
    return _like_mask(mask, [jax.random.uniform(k, m.shape) for k, m in zip(keys, leaves)])


def batch_mean(fn: Callable, batches, like: PyTree) -> PyTree:
    """The mean over the ``K`` batches of ``fn(x, y)`` (a tree like ``like``), by a scan: the memory of one batch."""
    x, y = batches

    def add(total, batch):
        return jax.tree.map(jnp.add, total, fn(*batch)), None

    total, _ = jax.lax.scan(add, jax.tree.map(jnp.zeros_like, like), (x, y))
    return jax.tree.map(lambda t: t / x.shape[0], total)


def mean_gradient(loss_of_batch: Callable, params: PyTree, batches) -> PyTree:
    """The mean over the batches of ``grad(loss_of_batch)(params, x, y)``."""
    return batch_mean(lambda x, y: jax.grad(loss_of_batch)(params, x, y), batches, params)


def _cross_entropy(model: Model, batch_stats, temperature: float = 1.0) -> Callable:
    def loss(params, x, y):
        logits = model.logits(params, batch_stats, x, model.batch_statistics) / temperature
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    return loss


def snip(params, batch_stats, mask, model, batches, key) -> PyTree:
    g = mean_gradient(_cross_entropy(model, batch_stats), params, batches)
    return _like_mask(
        mask, [jnp.abs(gw * w) for gw, w in zip(prune_lib.leaves_like(g, mask), prune_lib.leaves_like(params, mask))]
    )


def hessian_gradient(params, batch_stats, model: Model, batches, temperature: float = GRASP_TEMPERATURE) -> PyTree:
    """``Hg``: the Hessian of the tempered mean loss times its gradient ``g`` (both over all batches),
    one forward-over-reverse product ``jvp(grad L, g)`` per batch."""
    loss = _cross_entropy(model, batch_stats, temperature)
    g = jax.lax.stop_gradient(mean_gradient(loss, params, batches))

    def hvp(x, y):
        return jax.jvp(lambda p: jax.grad(loss)(p, x, y), (params,), (g,))[1]

    return batch_mean(hvp, batches, params)


def grasp(params, batch_stats, mask, model, batches, key, temperature: float = GRASP_TEMPERATURE) -> PyTree:
    hg = hessian_gradient(params, batch_stats, model, batches, temperature)
    return _like_mask(
        mask, [w * h for w, h in zip(prune_lib.leaves_like(params, mask), prune_lib.leaves_like(hg, mask))]
    )


def synflow(params, batch_stats, mask, model, batches, key) -> PyTree:
    """``|∂R/∂w ⊙ w|`` of the linearised network (every parameter ``|θ|``, all-ones input, eval mode).

    When the kernels' absolute values would make ``R`` overflow float32 (deep networks), every
    masked kernel is divided by its mean absolute kept value first. With zero biases (any network
    at initialisation here) each layer's scores are then multiplied by the same positive constant,
    so the ranking is unchanged; without, the rescaled network is a close but not exact stand-in.
    """
    positive = jax.tree.map(jnp.abs, params)
    ones = jnp.ones((1, *model.input_shape), jnp.float32)

    def flow(p):
        return jnp.sum(model.logits(p, batch_stats, ones, False))

    def scores_of(p):
        g = jax.grad(flow)(p)
        return _like_mask(
            mask, [jnp.abs(gw * w) for gw, w in zip(prune_lib.leaves_like(g, mask), prune_lib.leaves_like(p, mask))]
        )

    plain = scores_of(positive)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(s)) for s in jax.tree.leaves(plain)]))
    return jax.lax.cond(finite, lambda: plain, lambda: scores_of(_rescaled(positive, mask)))


def _rescaled(params: PyTree, mask: PyTree) -> PyTree:
    """``params`` with each masked kernel divided by the mean of its non-zero absolute values."""
    flat = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    for path, keep in jax.tree_util.tree_flatten_with_path(mask)[0]:
        w = flat[path]
        scale = jnp.sum(jnp.abs(w)) / jnp.maximum(jnp.sum(keep & (w != 0)), 1)
        flat[path] = w / jnp.maximum(scale, jnp.finfo(jnp.float32).tiny)
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    return jax.tree.unflatten(jax.tree.structure(params), [flat[p] for p in paths])


def _like_mask(mask: PyTree, leaves: list[jax.Array]) -> PyTree:
    return jax.tree.unflatten(jax.tree.structure(mask), [jnp.asarray(v, jnp.float32) for v in leaves])


@dataclasses.dataclass(frozen=True)
class Scorer:
    """A named scorer: its function, whether it needs training batches, its default rounds."""

    name: str
    score: Callable
    needs_data: bool = False
    rounds: int = 1  # SynFlow: 100 rounds with the exponential density schedule (Tanaka et al. 2020)


SCORERS = {
    s.name: s
    for s in (
        Scorer("magnitude", magnitude),
        Scorer("random", random),
        Scorer("snip", snip, needs_data=True),
        Scorer("grasp", grasp, needs_data=True),
        Scorer("synflow", synflow, rounds=100),
    )
}
