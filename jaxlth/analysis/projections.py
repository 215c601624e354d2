"""How far one IMP level can prune (Paul et al. 2023, Sec. 3.3): curvature and projections of ONE network.

Pure functions of one network (no replicate axis; ``jax.vmap`` them over stacked replicates):

* :func:`projection_masks`: the level's mask with a further fraction ``p`` of its remaining weights
  pruned by magnitude, for a grid of ``p`` (IMP's next mask if the level pruned ``p``);
* :func:`projection_path`: loss and error along the straight segment from the trained network
  ``w`` to its projection ``m' * w`` (``alpha = 0``: ``w``; ``alpha = 1``: the pruned network);
* :func:`quadratic_change`: the second-order prediction of the loss change along that segment,
  ``g.delta + 1/2 delta' H delta`` with ``delta = m' * w - w``;
* :func:`measure`: everything above plus the top eigenvalues and the trace of the (masked)
  Hessian, in one function to ``jit(vmap(...))``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxlth.analysis import curvature
from jaxlth.pruning import magnitude
from jaxlth.pruning import masks as mask_lib

PyTree = Any
SUBSPACES = ("mask", "full")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The static choices of a landscape measurement (``experiment = "landscape"`` documents them)."""

    top_k: int = 5
    iterations: int = 40
    probes: int = 50
    bn_mode: str = "eval"
    chunk: int = 1000
    subspace: str = "mask"  # mask: M H M on the level's kept weights; full: H
    scope: str = "global"  # magnitude ranking of the projection (the lottery run's scope)


def projection_masks(params: PyTree, mask: PyTree, fractions: jax.Array, scope: str) -> PyTree:
    """``(G, ...)`` masks: ``mask`` minus ``ceil(p * remaining)`` of its smallest-``|w|`` weights, per ``p``."""
    fn = magnitude.prune_global if scope == "global" else magnitude.prune_layerwise
    return jax.vmap(lambda p: fn(params, mask, p))(fractions.astype(jnp.float32))


def _along(params: PyTree, delta: PyTree, alpha) -> PyTree:
    return jax.tree.map(lambda w, d: (w + alpha * d).astype(w.dtype), params, delta)


def projection_delta(params: PyTree, projected_mask: PyTree) -> PyTree:
    """``m' * w - w``: minus the weights the projection removes (zero on every other leaf)."""
    return jax.tree.map(lambda a, b: a - b, mask_lib.apply(params, projected_mask), params)


def projection_path(
    program,
    params: PyTree,
    batch_stats: PyTree,
    projected_mask: PyTree,
    alphas: jax.Array,
    images: jax.Array,
    labels: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """``(loss (A,), error (A,))`` in eval mode at ``w + alpha (m' * w - w)`` for each alpha.

    ``images``/``labels``: a whole evaluation set as stored. Errors are fractions.
    """
    delta = projection_delta(params, projected_mask)

    def one(alpha):
        loss, accuracy = program.evaluate_one(_along(params, delta, alpha), batch_stats, images, labels)
        return loss, 1.0 - accuracy

    return lax.map(one, alphas)


def quadratic_change(loss, params: PyTree, delta: PyTree) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(g . delta, 1/2 delta' H delta, loss(w + delta) - loss(w))`` of scalar ``loss`` at ``params``.

    The first two are the Taylor terms the measured change (the third) is compared with.
    """
    value, grads = jax.value_and_grad(loss)(params)
    h_delta = curvature.hvp(loss, params, delta)
    flat = lambda tree: ravel_pytree(tree)[0]  # noqa: E731
    first = jnp.vdot(flat(grads), flat(delta))
    second = 0.5 * jnp.vdot(flat(delta), flat(h_delta))
    return first, second, loss(_along(params, delta, 1.0)) - value


def measure(
    program,
    settings: Settings,
    network: dict,
    mask: PyTree,
    key: jax.Array,
    fractions: jax.Array,
    alphas: jax.Array,
    subset: tuple[jax.Array, jax.Array],
    eval_sets: dict,
) -> dict:
    """All landscape measurements of one trained network on ``mask``.

    Args:
      network: ``{"params", "batch_stats"}``; mask: its level's mask; key: the Lanczos and
        Hutchinson randomness; fractions ``(G,)``: projection fractions; alphas ``(A,)``;
      subset: ``(images, labels)`` of the training examples the Hessian is taken on;
      eval_sets: ``{split: (images, labels)}`` the projection paths are evaluated on.

    ``residuals`` are ``||H v - lambda v||`` of the returned unit eigenpairs (eigenvalue units): some
    exact eigenvalue of the (masked) Hessian lies within each of its ``lambda``.

    Returns ``{"eigenvalues" (k,), "residuals" (k,), "trace", "trace_stderr", "dim",
    "first_order" (G,), "second_order" (G,), "loss_change" (G,), "distance" (G,), "weight_norm",
    "<split>_loss" (G, A), "<split>_error" (G, A)}``.
    """
    params, batch_stats = network["params"], network["batch_stats"]
    loss = curvature.subset_loss(program, batch_stats, *subset, bn_mode=settings.bn_mode, chunk=settings.chunk)
    operator_mask = mask if settings.subspace == "mask" else None
    matvec, dim, _ = curvature.flat_operator(loss, params, operator_mask)
    space = curvature.subspace_vector(params, operator_mask)
    eigen_key, trace_key = jax.random.split(key)
    eigen = curvature.top_eigenpairs(matvec, space.size, eigen_key, settings.top_k, settings.iterations, space)
    trace, stderr = curvature.hutchinson_trace(matvec, space.size, trace_key, settings.probes, space)
    projected = projection_masks(params, mask, fractions, settings.scope)

    def per_fraction(projected_mask):
        delta = projection_delta(params, projected_mask)
        first, second, change = quadratic_change(loss, params, delta)
        paths = {
            split: projection_path(program, params, batch_stats, projected_mask, alphas, *data)
            for split, data in eval_sets.items()
        }
        return first, second, change, jnp.linalg.norm(ravel_pytree(delta)[0]), paths

    first, second, change, distance, paths = lax.map(per_fraction, projected)
    out = {
        "eigenvalues": eigen.values,
        "residuals": eigen.residuals,
        "trace": trace,
        "trace_stderr": stderr,
        "dim": jnp.asarray(dim, jnp.float32),
        "first_order": first,
        "second_order": second,
        "loss_change": change,
        "distance": distance,
        "weight_norm": jnp.linalg.norm(ravel_pytree(mask_lib.apply(params, mask))[0]),
    }
    for split, (losses, errors) in paths.items():
        out[f"{split}_loss"], out[f"{split}_error"] = losses, errors
    return out
