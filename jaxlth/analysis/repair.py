"""REPAIR (Jordan et al., ICLR 2023): undoing the variance collapse of interpolated networks.

Averaging the weights of two networks shrinks the spread of its hidden units' preactivations;
REPAIR resets each unit's mean and standard deviation (over training inputs) to the interpolation
of the endpoints' own, ``(1 - alpha) stat_A + alpha stat_B``, and folds that affine correction
into the network's weights, so the repaired network is an ordinary network of the same model.

A *site* is a module whose output units carry a per-unit scale and shift: a ``Dense``/``Conv``
with ``kernel`` and ``bias``, or a ``BatchNorm`` with ``scale`` and ``bias`` (convolutions
without bias are followed by one). Only hidden units are corrected: a site's ``bias`` must belong
to a permutation group of the network (:mod:`jaxlth.analysis.permutations`), so the logits never
are. Statistics are taken over all examples and spatial positions of the REPAIR images in one
pass, in evaluation mode; the correction of a site is applied before later sites are measured
(as REPAIR's BatchNorm layers in train mode do), so one pass corrects every site exactly.

Statistics are ``{module path: (mean, std)}``, each ``(units,)``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxlth.training import functions as fn

PyTree = Any
EPSILON = 1e-5  # added to variances


def sites(spec: dict, params: PyTree) -> tuple[tuple[str, ...], ...]:
    """The module paths REPAIR corrects: modules with a ``bias`` and a ``kernel`` or ``scale`` whose
    bias is permuted by a group of ``spec`` (hidden units). Sorted; hashable (a static argument)."""
    flat = traverse_util.flatten_dict(params.unfreeze() if hasattr(params, "unfreeze") else dict(params))
    permuted = {path for entries in spec.values() for collection, path, _, _ in entries if collection == "params"}
    out = []
    for path in flat:
        module, leaf = path[:-1], path[-1]
        if leaf == "bias" and path in permuted and ((*module, "kernel") in flat or (*module, "scale") in flat):
            out.append(module)
    return tuple(sorted(out))


def _forward(model: nn.Module, params, batch_stats, x, site_paths, targets=None):
    """Logits of ``x`` and the statistics met at every site; with ``targets``, each site's output is
    renormalised to its target mean and std before the pass goes on."""
    found = {}
    wanted = set(site_paths)

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        path = tuple(context.module.path)
        if context.method_name != "__call__" or path not in wanted:
            return out
        axes = tuple(range(out.ndim - 1))
        mean = jnp.mean(out, axis=axes)
        std = jnp.sqrt(jnp.var(out, axis=axes) + EPSILON)
        found[path] = (mean, std)
        if targets is None:
            return out
        goal_mean, goal_std = targets[path]
        return (out - mean) * (goal_std / std) + goal_mean

    with nn.intercept_methods(interceptor):
        logits, _ = fn.logits(model, params, batch_stats, x, False)
    missing = wanted - set(found)
    if missing:
        raise ValueError(f"REPAIR sites never called by the model: {sorted(missing)}")
    return logits, found


def statistics(model: nn.Module, params, batch_stats, x, site_paths) -> dict:
    """``{site: (mean, std)}`` of one network's site outputs on preprocessed inputs ``x``."""
    return _forward(model, params, batch_stats, x, site_paths)[1]


def interpolate_statistics(alpha, stats_a: dict, stats_b: dict) -> dict:
    """REPAIR's targets: ``(1 - alpha) A + alpha B`` of the means and of the standard deviations."""
    return jax.tree.map(lambda a, b: (1.0 - alpha) * a + alpha * b, stats_a, stats_b)


def repair(model: nn.Module, params, batch_stats, x, site_paths, targets: dict) -> PyTree:
    """``params`` with every site's units reset to ``targets`` on inputs ``x``, folded into weights.

    A site computes ``y = w * z + b`` per unit (``w`` the kernel's output column or BatchNorm's
    scale); the corrected ``(y - mean) * s + goal_mean`` with ``s = goal_std / std`` is the same
    site with ``w * s`` and ``(b - mean) * s + goal_mean``. Pruned weights stay exactly zero.
    """
    _, found = _forward(model, params, batch_stats, x, site_paths, targets)
    flat = traverse_util.flatten_dict(params.unfreeze() if hasattr(params, "unfreeze") else dict(params))
    for path, (mean, std) in found.items():
        goal_mean, goal_std = targets[path]
        s = goal_std / std
        weight = (*path, "kernel") if (*path, "kernel") in flat else (*path, "scale")
        flat[weight] = (flat[weight] * s).astype(flat[weight].dtype)
        flat[(*path, "bias")] = ((flat[(*path, "bias")] - mean) * s + goal_mean).astype(flat[(*path, "bias")].dtype)
    return traverse_util.unflatten_dict(flat)


__all__ = ["sites", "statistics", "interpolate_statistics", "repair"]
