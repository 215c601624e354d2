"""Masks: pytrees of booleans over the prunable kernels of a parameter tree.

A mask mirrors the parameter tree but holds only the prunable leaves (Dense and Conv kernels,
never biases or normalisation parameters, minus any ``layers_to_ignore``). Leaves are boolean
arrays of the kernel's shape; ``True`` keeps a weight. Every function here works the same on
trees with a leading replicate axis on every leaf (density then comes back per replicate).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlth import sharding
from jaxlth.errors import UserError

PyTree = Any
PRUNABLE_LEAF_NAMES = ("kernel",)


def layer_name(path: tuple[str, ...]) -> str:
    """``("Dense_0", "kernel") -> "Dense_0/kernel"``: how layers are named in reports and patterns."""
    return "/".join(str(p) for p in path)


def prunable_paths(params: PyTree, layers_to_ignore: Iterable[str] = ()) -> list[tuple[str, ...]]:
    """Paths of the prunable leaves: kernels with at least 2 dims whose name no pattern matches.

    ``layers_to_ignore`` are regular expressions searched in the ``/``-joined path
    (``"output"`` ignores ``output/kernel``).
    """
    try:
        patterns = [re.compile(p) for p in layers_to_ignore]
    except re.error as e:
        raise UserError(f"layers_to_ignore holds an invalid regular expression: {e}") from None
    paths = []
    for path, leaf in traverse_util.flatten_dict(_as_dict(params)).items():
        if path[-1] not in PRUNABLE_LEAF_NAMES or jnp.ndim(leaf) < 2:
            continue
        if any(p.search(layer_name(path)) for p in patterns):
            continue
        paths.append(path)
    return paths


def ones_like(params: PyTree, layers_to_ignore: Iterable[str] = ()) -> PyTree:
    """The dense mask: all-True over the prunable leaves of ``params``."""
    flat = traverse_util.flatten_dict(_as_dict(params))
    paths = prunable_paths(params, layers_to_ignore)
    # (put from the host: jnp.ones compiles a program per shape)
    return traverse_util.unflatten_dict({p: jax.device_put(np.ones(jnp.shape(flat[p]), bool)) for p in paths})


def apply(params: PyTree, mask: PyTree) -> PyTree:
    """``params`` with the masked-out prunable weights set to exactly 0 (other leaves untouched)."""
    flat_mask = traverse_util.flatten_dict(_as_dict(mask))
    if not flat_mask:
        return params
    flat = traverse_util.flatten_dict(_as_dict(params))
    for path, keep in flat_mask.items():
        flat[path] = jnp.where(keep, flat[path], jnp.zeros((), flat[path].dtype))
    return traverse_util.unflatten_dict(flat)


def layer_density(mask: PyTree, replicate_axis: bool = False) -> dict[str, jax.Array]:
    """Fraction of kept weights per prunable layer; shape ``()`` or ``(R,)`` with a replicate axis."""
    out = {}
    for path, m in traverse_util.flatten_dict(_as_dict(mask)).items():
        axes = tuple(range(1, m.ndim)) if replicate_axis else None
        out[layer_name(path)] = jnp.mean(m.astype(jnp.float32), axis=axes)
    return out


def density(mask: PyTree, replicate_axis: bool = False) -> jax.Array:
    """Fraction of prunable weights kept overall; shape ``()`` or ``(R,)`` with a replicate axis."""
    leaves = jax.tree.leaves(mask)
    if not leaves:
        return jnp.ones(())
    axes = (lambda m: tuple(range(1, m.ndim))) if replicate_axis else (lambda m: None)
    kept = sum(jnp.sum(m, axis=axes(m), dtype=jnp.float32) for m in leaves)
    total = sum(m[0].size if replicate_axis else m.size for m in leaves)
    return kept / total


def overlap(mask_a: PyTree, mask_b: PyTree, replicate_axis: bool = False, per_layer: bool = False):
    """Jaccard overlap of two masks' kept weights: ``|a and b| / |a or b|`` (1 when identical).

    Overall (shape ``()``, or ``(R,)`` with a replicate axis, pairing replicate ``r`` with ``r``)
    or, with ``per_layer=True``, a dict by layer name like :func:`layer_density`. For nested IMP
    masks ``b`` inside ``a`` it is ``density(b) / density(a)``; two independent random masks of
    densities ``p`` and ``q`` overlap by about ``pq / (p + q - pq)``. ``k`` masks, their intersection
    and union: :mod:`jaxlth.pruning.mask_algebra`.
    """
    flat_a = traverse_util.flatten_dict(_as_dict(mask_a))
    flat_b = traverse_util.flatten_dict(_as_dict(mask_b))
    if set(flat_a) != set(flat_b):
        raise ValueError("the masks cover different layers")

    def counts(a, b):
        axes = tuple(range(1, a.ndim)) if replicate_axis else None
        both = jnp.sum(jnp.logical_and(a, b), axis=axes, dtype=jnp.float32)
        either = jnp.sum(jnp.logical_or(a, b), axis=axes, dtype=jnp.float32)
        return both, either

    by_layer = {layer_name(path): counts(flat_a[path], flat_b[path]) for path in flat_a}
    if per_layer:
        return {name: both / jnp.maximum(either, 1.0) for name, (both, either) in by_layer.items()}
    both = sum(c[0] for c in by_layer.values())
    either = sum(c[1] for c in by_layer.values())
    return both / jnp.maximum(either, 1.0)


def chance_overlap(mask: PyTree, per_layer: bool = False):
    """The :func:`overlap` two independent random masks with ``mask``'s per-layer densities have.

    With ``n`` weights and density ``d`` per layer: ``sum n d^2 / sum n (2d - d^2)`` (the ratio of
    the expected intersection to the expected union; exact as the layers grow). One replicate; ``k``
    masks of their own densities: :func:`jaxlth.pruning.mask_algebra.chance_overlap`.
    """
    parts = {}
    for path, m in traverse_util.flatten_dict(_as_dict(mask)).items():
        d = jnp.mean(m.astype(jnp.float32))
        parts[layer_name(path)] = (m.size * d * d, m.size * (2 * d - d * d))
    if per_layer:
        return {name: both / jnp.maximum(either, 1e-12) for name, (both, either) in parts.items()}
    return sum(p[0] for p in parts.values()) / jnp.maximum(sum(p[1] for p in parts.values()), 1e-12)


def replicate_density(mask: PyTree, replicates: int) -> np.ndarray:
    """``(R,)`` numpy: each replicate's fraction of prunable weights kept (ones for ``{}``, dense)."""
    if not jax.tree.leaves(mask):
        return np.ones(replicates)
    return replicate_densities(mask)[0]


def replicate_densities(mask: PyTree) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Numpy ``(R,)`` :func:`density` and ``{layer: (R,)}`` :func:`layer_density` (by layer name) of a
    stacked mask, computed by one compiled program per mask structure (run eagerly, the same arithmetic
    compiles five small programs for every layer shape)."""
    return sharding.to_host(_replicate_densities(mask))


@jax.jit
def _replicate_densities(mask: PyTree) -> tuple[jax.Array, dict[str, jax.Array]]:
    return density(mask, replicate_axis=True), layer_density(mask, replicate_axis=True)


def num_prunable(mask: PyTree, replicate_axis: bool = False) -> int:
    """Number of prunable weights (one replicate)."""
    return int(sum(m[0].size if replicate_axis else m.size for m in jax.tree.leaves(mask)))


def _as_dict(tree: PyTree) -> dict:
    """Flax ``FrozenDict``/``dict`` trees as plain nested dicts (masks and params are dicts)."""
    if hasattr(tree, "unfreeze"):
        return tree.unfreeze()
    return tree
