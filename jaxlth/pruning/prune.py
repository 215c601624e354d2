"""The one rule every pruning method shares: keep the weights of highest score.

A *score* tree mirrors the mask (one float array per prunable kernel); higher means more
important. :func:`prune` (a fraction of what remains, IMP's rule) and :func:`prune_to_density`
(straight to a target density, pruning at initialisation) turn scores into a new mask. Already
pruned weights stay pruned, so masks are nested. Every function acts on one replicate and is
jittable with a traced ``fraction``/``density``; ``jax.vmap`` them for replicate or density axes.

Scopes (how the kept weights are spread over layers):

* ``global``: one ranking across all layers;
* ``layerwise``: every layer keeps the same fraction of its own weights;
* ``erk``: layer ``l`` keeps the Erdős–Rényi-Kernel density of Evci et al. (2020),
  ``eps * (sum of its kernel's dims) / (product of its kernel's dims)``, with ``eps`` chosen so the
  overall density is the target; layers whose density would exceed 1 are kept dense and ``eps`` is
  solved again over the rest (the procedure of RigL's ``sparse_utils``).

Counts follow OpenLTH: :func:`prune` removes ``ceil(fraction * remaining)`` (float32 products
within a few roundings above an integer count as that integer, as OpenLTH's float64 would) (per layer for
``layerwise``); :func:`prune_to_density` keeps ``N - ceil((1 - d) * N)`` (``floor(d * N)`` up to
float rounding; per layer for ``layerwise``, ``floor(erk_l * N_l)`` for ``erk``). Ties are broken by
position (a stable sort); NaN and ``-inf`` scores rank below every finite score.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any
SCOPES = ("global", "layerwise", "erk")


def prune(scores: PyTree, mask: PyTree, fraction, scope: str = "global") -> PyTree:
    """``mask`` minus ``ceil(fraction * remaining)`` of its kept weights, lowest scores first."""
    keeps, treedef = jax.tree.flatten(mask)
    values = leaves_like(scores, mask)
    if scope == "layerwise":
        counts = [jnp.sum(k) - ceil_count(fraction * jnp.sum(k)) for k in keeps]
        return keep_per_layer(values, keeps, counts, treedef)
    remaining = sum(jnp.sum(k) for k in keeps)
    kept = remaining - ceil_count(fraction * remaining)
    if scope == "global":
        return keep_global(values, keeps, kept, treedef)
    _check(scope)
    return keep_per_layer(values, keeps, _erk_counts(keeps, kept / _size(keeps)), treedef)


def prune_to_density(scores: PyTree, mask: PyTree, density, scope: str = "global") -> PyTree:
    """``mask`` cut to ``density`` of all prunable weights, lowest scores first (never regrows)."""
    _check(scope)
    keeps, treedef = jax.tree.flatten(mask)
    values = leaves_like(scores, mask)
    if scope == "layerwise":
        counts = [k.size - ceil_count((1.0 - density) * k.size) for k in keeps]
        return keep_per_layer(values, keeps, counts, treedef)
    total = _size(keeps)
    if scope == "global":
        return keep_global(values, keeps, total - ceil_count((1.0 - density) * total), treedef)
    return keep_per_layer(values, keeps, _erk_counts(keeps, density), treedef)


def erk_densities(shapes: list[tuple[int, ...]], density, power: float = 1.0) -> jax.Array:
    """``(L,)`` ERK layer densities whose weighted mean (by layer size) is ``density``.

    ``shapes``: the kernels' shapes (Dense ``(in, out)``, Conv ``(h, w, in, out)``). The raw
    density of a layer is ``(sum(shape) / prod(shape)) ** power``; the ``j`` layers of largest raw
    density are made dense for the smallest ``j`` that keeps every other layer at most 1.
    """
    sizes = np.array([np.prod(s) for s in shapes], np.float64)
    raw = np.array([(np.sum(s) / np.prod(s)) ** power for s in shapes], np.float64)
    order = np.argsort(-raw, kind="stable")
    dense_sizes = np.concatenate([[0.0], np.cumsum(sizes[order])])  # weights in the j densest layers
    rest = np.concatenate([np.cumsum((raw * sizes)[order][::-1])[::-1], [0.0]])  # sum raw*n over the others
    target = density * sizes.sum()
    eps = (target - jnp.asarray(dense_sizes, jnp.float32)) / jnp.maximum(jnp.asarray(rest, jnp.float32), 1e-30)
    largest_left = jnp.asarray(np.concatenate([raw[order], [0.0]]), jnp.float32)
    first_valid = jnp.argmax(largest_left * eps <= 1.0)
    dense = jnp.zeros(len(shapes), bool).at[order].set(jnp.arange(len(shapes)) < first_valid)
    return jnp.where(dense, 1.0, jnp.clip(eps[first_valid] * jnp.asarray(raw, jnp.float32), 0.0, 1.0))


def ceil_count(x) -> jax.Array:
    """``ceil(x)`` as int32, counting a float32 product within a few roundings above an integer as that
    integer: ``0.3 * 800`` is ``240.00002`` in float32 and removes 240 weights, as in float64 (OpenLTH)."""
    x = jnp.asarray(x, jnp.float32)
    return jnp.ceil(x - jnp.abs(x) * 4 * jnp.finfo(jnp.float32).eps).astype(jnp.int32)


def _erk_counts(keeps: list[jax.Array], density) -> list[jax.Array]:
    layer = erk_densities([k.shape for k in keeps], density)
    return [jnp.floor(layer[i] * k.size).astype(jnp.int32) for i, k in enumerate(keeps)]


def keep_global(values: list[jax.Array], keeps: list[jax.Array], count, treedef) -> PyTree:
    """The mask (``treedef``) keeping the ``count`` highest ``values`` among ``keeps`` over all layers."""
    flat = _keep_top(jnp.concatenate([v.ravel() for v in values]), jnp.concatenate([k.ravel() for k in keeps]), count)
    pieces = jnp.split(flat, np.cumsum([k.size for k in keeps])[:-1].tolist())
    return jax.tree.unflatten(treedef, [p.reshape(k.shape) for p, k in zip(pieces, keeps)])


def keep_per_layer(values: list[jax.Array], keeps: list[jax.Array], counts: list, treedef) -> PyTree:
    """The mask (``treedef``) keeping, in layer ``i``, the ``counts[i]`` highest ``values[i]`` among ``keeps[i]``."""
    return jax.tree.unflatten(
        treedef, [_keep_top(v.ravel(), k.ravel(), c).reshape(k.shape) for v, k, c in zip(values, keeps, counts)]
    )


@jax.jit
def _keep_top(scores: jax.Array, keep: jax.Array, count) -> jax.Array:
    """Flat mask: the ``min(count, sum(keep))`` kept entries of highest score.

    The result of a stable ascending sort (pruned entries first, then kept ones by score; the
    last ``count`` positions survive, so among tied scores the later positions are kept), found
    without sorting: the threshold (the ``count``-th largest score) is built bit by bit over the
    scores' order-preserving 32-bit codes, 32 passes of compare-and-count (linear in the number of
    weights; SynFlow runs this 100 times per mask). One compiled program per length: called eagerly,
    its loop and branch were traced, lowered and compiled again at every call (new closures).
    """
    scores = scores.astype(jnp.float32)
    lowest = jnp.isnan(scores) | (scores == -jnp.inf)
    scores = jnp.where(lowest, jnp.finfo(jnp.float32).min, jnp.where(scores == 0, 0.0, scores))  # -0.0 ties +0.0
    code = _order_code(scores)
    code = jnp.where(keep, code, jnp.uint32(0))  # pruned entries below every kept one (codes >= 1)
    count = jnp.minimum(count, jnp.sum(keep)).astype(jnp.int32)

    def add_bit(i, threshold):
        candidate = threshold | (jnp.uint32(1) << (jnp.uint32(31) - i.astype(jnp.uint32)))
        return jnp.where(jnp.sum((code >= candidate).astype(jnp.int32)) >= count, candidate, threshold)

    threshold = jax.lax.fori_loop(0, 32, add_bit, jnp.uint32(0))
    above = code > threshold
    ties = code == threshold
    need = count - jnp.sum(above.astype(jnp.int32))

    def last_ties():  # the ``need`` tied entries of highest position (a cumsum: only when ties exceed it)
        from_here = jnp.cumsum(ties[::-1].astype(jnp.int32))[::-1]
        return ties & (from_here <= need)

    chosen = above | jax.lax.cond(jnp.sum(ties.astype(jnp.int32)) == need, lambda: ties, last_ties)
    return chosen & (count > 0)


def _order_code(x: jax.Array) -> jax.Array:
    """uint32 codes ordered as the float32 values ``x`` are; finite values map to codes >= 1."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    negative = (bits >> 31) == 1
    return jnp.where(negative, ~bits, bits | jnp.uint32(0x80000000))


def leaves_like(scores: PyTree, mask: PyTree) -> list[jax.Array]:
    """The leaves of ``scores`` at the mask's paths, in the mask's leaf order (extra leaves ignored)."""
    flat = dict(jax.tree_util.tree_flatten_with_path(scores)[0])
    return [flat[path] for path, _ in jax.tree_util.tree_flatten_with_path(mask)[0]]


def _size(keeps: list[jax.Array]) -> int:
    return int(sum(k.size for k in keeps))


def _check(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
