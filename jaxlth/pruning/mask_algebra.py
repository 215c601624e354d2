"""Set algebra of masks: the intersection and union of ``k`` masks, how much they overlap, and by chance.

The masks are pytrees of booleans over the same prunable kernels (:mod:`jaxlth.pruning.masks`); with
``replicate_axis=True`` every leaf carries a leading replicate axis ``R`` and replicate ``r`` of each
mask meets replicate ``r`` of the others. Masks over other layers, of other shapes or not boolean are
refused with one sentence (:class:`jaxlth.errors.UserError`).

Overlap of masks ``m_1 .. m_k`` (in a layer, or over all prunable weights): the fraction of the
weights kept by any of them that all of them keep, ``|m_1 ∩ .. ∩ m_k| / |m_1 ∪ .. ∪ m_k|`` (the
Jaccard index; 1 for identical masks, 0 when no weight is kept by all; for ``k = 2``
:func:`jaxlth.pruning.masks.overlap`). Chance: the same ratio for ``k`` independent masks that keep,
in every layer, as many weights as each mask keeps there, chosen uniformly at random. In a layer of
``n`` weights where mask ``i`` keeps a fraction ``d_i``, each weight is kept by mask ``i`` with
probability ``d_i``, so ``E|∩| = n Π d_i`` and ``E|∪| = n (1 − Π (1 − d_i))``; chance is
``Σ n Π d_i / Σ n (1 − Π (1 − d_i))`` over the layers counted: the ratio of the expected counts,
which the expected ratio approaches as the layers grow (to ``O(1/n)``). For two masks of the same
densities it is :func:`jaxlth.pruning.masks.chance_overlap`.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlth.errors import UserError
from jaxlth.pruning import masks as mask_lib

PyTree = Any
OPERATIONS = ("intersection", "union")
ALL = "all"  # agreement's entry over every prunable weight


def intersection(*masks: PyTree) -> PyTree:
    """The weights every mask keeps: a mask of the same structure (replicate axes pair up)."""
    return _elementwise(jnp.logical_and, masks)


def union(*masks: PyTree) -> PyTree:
    """The weights any mask keeps: a mask of the same structure (replicate axes pair up)."""
    return _elementwise(jnp.logical_or, masks)


def compose(operation: str, *masks: PyTree) -> PyTree:
    """:func:`intersection` or :func:`union` of ``masks``, by name (one of :data:`OPERATIONS`)."""
    if operation not in OPERATIONS:
        raise UserError(f"unknown mask operation {operation!r}; choose {' or '.join(OPERATIONS)}")
    return intersection(*masks) if operation == "intersection" else union(*masks)


def overlap(*masks: PyTree, replicate_axis: bool = False, per_layer: bool = False):
    """``|∩| / |∪|`` of the masks over every prunable weight (shape ``()``, ``(R,)`` with a replicate
    axis), or with ``per_layer=True`` a dict by layer name (1 in a layer none of them keeps any of)."""
    return _entry(agreement(*masks, replicate_axis=replicate_axis), "overlap", per_layer)


def chance_overlap(*masks: PyTree, replicate_axis: bool = False, per_layer: bool = False):
    """The :func:`overlap` that independent random masks of the masks' per-layer counts have (the
    module docstring); shapes as :func:`overlap`."""
    return _entry(agreement(*masks, replicate_axis=replicate_axis), "chance", per_layer)


def agreement(*masks: PyTree, replicate_axis: bool = False) -> dict[str, dict[str, jax.Array]]:
    """Per layer name, and :data:`ALL` over every prunable weight: ``weights`` (the count), ``density``
    (each mask's kept fraction, ``(k,)`` or ``(k, R)``), ``intersection`` and ``union`` (the fractions
    they keep), ``overlap`` and ``chance`` (shape ``()`` or ``(R,)``)."""
    flat = _checked(masks, replicate_axis)
    stacked = {mask_lib.layer_name(path): jnp.stack([jnp.asarray(f[path]) for f in flat]) for path in flat[0]}
    found = _agreement(stacked, replicate_axis)
    return {name: found[name] for name in [*stacked, ALL]}  # the masks' order (jit returns keys sorted)


def agreement_rows(*masks: PyTree, replicate_axis: bool = False) -> list[dict]:
    """:func:`agreement` as table rows (numbers as Python floats): per replicate (a ``replicate``
    column with a replicate axis), one row per layer in the masks' order and one ``layer = "all"``,
    with ``weights``, ``density_0`` .. ``density_{k-1}``, ``intersection``, ``union``, ``overlap``, ``chance``."""
    found = agreement(*masks, replicate_axis=replicate_axis)
    table = {name: {k: np.asarray(v) for k, v in entry.items()} for name, entry in found.items()}
    rows = []
    for r in range(len(table[ALL]["overlap"]) if replicate_axis else 1):
        for name in table:
            entry = {k: v[..., r] if replicate_axis else v for k, v in table[name].items()}
            rows.append(
                {
                    **({"replicate": r} if replicate_axis else {}),
                    "layer": name,
                    "weights": int(entry["weights"]),
                    **{f"density_{i}": float(d) for i, d in enumerate(entry["density"])},
                    **{k: float(entry[k]) for k in ("intersection", "union", "overlap", "chance")},
                }
            )
    return rows


def paired(masks: Sequence[PyTree], stacked: Sequence[bool]) -> tuple[list[PyTree], bool]:
    """``masks`` of which those marked ``stacked`` carry a leading replicate axis, made to pair up:
    ``(masks, False)`` when none does, else every one stacked (a single mask repeated to the length
    of the stacks, which must agree) and ``True``."""
    sizes = sorted({len(leaves[0]) for m, s in zip(masks, stacked) if s and (leaves := jax.tree.leaves(m))})
    if len(sizes) > 1:
        raise UserError(
            f"masks stacking {' and '.join(map(str, sizes))} networks cannot pair up replicate by replicate; "
            "choose one replicate of each"
        )
    if not sizes:
        return list(masks), False
    repeat = functools.partial(jax.tree.map, lambda x: np.repeat(np.asarray(x)[None], sizes[0], axis=0))
    return [m if s else repeat(m) for m, s in zip(masks, stacked)], True


@functools.partial(jax.jit, static_argnames="replicate_axis")
def _agreement(stacked: dict[str, jax.Array], replicate_axis: bool) -> dict[str, dict[str, jax.Array]]:
    """:func:`agreement` of ``{layer: (k, [R,] ...) booleans}``: one compiled program per structure."""
    counts = {}
    for name, leaf in stacked.items():
        first = 2 if replicate_axis else 1  # the first axis of a weight
        size = math.prod(leaf.shape[first:])
        kept = jnp.sum(leaf, axis=tuple(range(first, leaf.ndim)), dtype=jnp.int32)
        within = tuple(range(first - 1, leaf.ndim - 1))
        shared = jnp.sum(jnp.all(leaf, axis=0), axis=within, dtype=jnp.int32)
        either = jnp.sum(jnp.any(leaf, axis=0), axis=within, dtype=jnp.int32)
        density = kept / size
        expected = (size * jnp.prod(density, axis=0), size * (1 - jnp.prod(1 - density, axis=0)))
        counts[name] = (size, kept, shared, either, *expected)
    counts[ALL] = tuple(sum(parts) for parts in zip(*counts.values()))
    return {name: _fractions(*c) for name, c in counts.items()}


def _fractions(size, kept, shared, either, expected_shared, expected_either) -> dict[str, jax.Array]:
    """Counts as fractions of the ``size`` weights; masks that keep none of them overlap by 1."""
    return {
        "weights": jnp.full(shared.shape, size, jnp.float32),
        "density": (kept / size).astype(jnp.float32),
        "intersection": (shared / size).astype(jnp.float32),
        "union": (either / size).astype(jnp.float32),
        "overlap": jnp.where(either > 0, shared / jnp.maximum(either, 1), 1.0).astype(jnp.float32),
        "chance": jnp.where(expected_either > 0, expected_shared / jnp.maximum(expected_either, 1e-12), 1.0).astype(
            jnp.float32
        ),
    }


def _entry(table: dict, key: str, per_layer: bool):
    return {name: v[key] for name, v in table.items() if name != ALL} if per_layer else table[ALL][key]


def _elementwise(op, masks: tuple[PyTree, ...]) -> PyTree:
    flat = _checked(masks)
    return traverse_util.unflatten_dict({p: functools.reduce(op, [jnp.asarray(f[p]) for f in flat]) for p in flat[0]})


def _checked(masks: tuple[PyTree, ...], replicate_axis: bool = False) -> list[dict[tuple, Any]]:
    """The masks flattened by path, checked: at least one, the same layers and shapes, booleans."""
    if not masks:
        raise UserError("no mask given: compose at least one")
    flat = [traverse_util.flatten_dict(_plain(m)) for m in masks]
    first = flat[0]
    if not first:
        raise UserError("the masks cover no prunable layer: there is nothing to compose")
    for i, other in enumerate(flat[1:], start=1):  # masks numbered from 0, as agreement's density_i
        for path in sorted(set(first) ^ set(other)):
            has, lacks = (0, i) if path in first else (i, 0)
            raise UserError(
                f"mask {has} covers {mask_lib.layer_name(path)} and mask {lacks} does not: "
                "masks of different prunable layers cannot be composed"
            )
        for path in first:
            if jnp.shape(first[path]) != jnp.shape(other[path]):
                raise UserError(
                    f"mask {i} has shape {jnp.shape(other[path])} for {mask_lib.layer_name(path)} and mask 0 "
                    f"{jnp.shape(first[path])}: masks of different shapes cannot be composed"
                )
    for i, one in enumerate(flat):
        for path, leaf in one.items():
            if np.result_type(leaf) != np.bool_:
                raise UserError(
                    f"mask {i} holds {np.result_type(leaf)} values for {mask_lib.layer_name(path)}: masks are booleans"
                )
            if replicate_axis and jnp.ndim(leaf) < 1:
                raise UserError(f"mask {i} has no replicate axis on {mask_lib.layer_name(path)}")
    return flat


def _plain(tree: PyTree) -> dict:
    """Nested plain dicts (Flax FrozenDicts and Orbax's restored mappings alike)."""
    if hasattr(tree, "items"):
        return {str(k): _plain(v) for k, v in tree.items()}
    return tree
