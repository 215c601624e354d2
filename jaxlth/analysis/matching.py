"""Weight matching (Ainsworth, Hayase & Srinivasa, *Git Re-Basin*, ICLR 2023): the permutation of
network B's hidden units that best aligns its weights with network A's.

For each permutation group of :func:`jaxlth.analysis.permutations.spec`, the permutation ``P``
maximising ``sum_l <W_A^l, P W_B^l Q_l^T>`` over the parameters the group touches (``Q_l``: the
current permutations of their other axes) is a linear assignment problem
(``scipy.optimize.linear_sum_assignment``); groups are visited in a seeded random order, again and
again, until a full pass changes nothing. One replicate, on the host (numpy): the assignments are
small and sequential.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import traverse_util
from scipy.optimize import linear_sum_assignment

from jaxlth.analysis import permutations

PyTree = Any


def _axes_by_leaf(spec: dict) -> dict:
    """``{(collection, path): {axis: (group, inner)}}``."""
    out = {}
    for group, entries in spec.items():
        for collection, path, axis, inner in entries:
            out.setdefault((collection, path), {})[axis] = (group, inner)
    return out


def _unit_major(x: np.ndarray, axis: int, inner: int | None) -> np.ndarray:
    """``x`` as ``(units, everything else)`` along ``axis`` (a tiled axis: its inner index)."""
    if inner is not None:
        shape = x.shape
        x = x.reshape(*shape[:axis], shape[axis] // inner, inner, *shape[axis + 1 :])
        axis += 1
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


def _permuted_except(x: np.ndarray, axes: dict, perms: dict, skip: int) -> np.ndarray:
    for axis, (group, inner) in axes.items():
        if axis == skip:
            continue
        perm = perms[group]
        if inner is None:
            x = np.take(x, perm, axis=axis)
        else:
            shape = x.shape
            x = np.take(
                x.reshape(*shape[:axis], shape[axis] // inner, inner, *shape[axis + 1 :]), perm, axis=axis + 1
            ).reshape(shape)
    return x


def weight_matching(
    spec: dict, sizes: dict, params_a: PyTree, params_b: PyTree, seed: int = 0, max_passes: int = 100
) -> dict:
    """``{group: (size,) int array}``: permutations of B's units (apply with
    :func:`jaxlth.analysis.permutations.permute` to B) that align B's parameters with A's.

    Only ``params`` enter the objective (kernels, biases, BatchNorm scale and offset), not the running
    statistics, as in Git Re-Basin; masks and statistics are permuted with the result.
    """
    a = {k: np.asarray(v, np.float64) for k, v in traverse_util.flatten_dict(_plain(params_a)).items()}
    b = {k: np.asarray(v, np.float64) for k, v in traverse_util.flatten_dict(_plain(params_b)).items()}
    axes = _axes_by_leaf(spec)
    perms = {group: np.arange(n) for group, n in sizes.items()}
    rng = np.random.default_rng(seed)
    names = list(spec)
    for _ in range(max_passes):
        changed = False
        for group in rng.permutation(names):
            n = sizes[group]
            cost = np.zeros((n, n))
            for collection, path, axis, inner in spec[group]:
                if collection != "params":
                    continue
                wa = _unit_major(a[path], axis, inner)
                wb = _unit_major(_permuted_except(b[path], axes[("params", path)], perms, axis), axis, inner)
                cost += wa @ wb.T
            _, columns = linear_sum_assignment(cost, maximize=True)
            old = cost[np.arange(n), perms[group]].sum()
            new = cost[np.arange(n), columns].sum()
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[group], changed = columns, True
        if not changed:
            break
    return perms


def _plain(tree):
    return tree.unfreeze() if hasattr(tree, "unfreeze") else dict(tree)


def activation_matching(
    symmetry, params_a: PyTree, stats_a: PyTree, params_b: PyTree, stats_b: PyTree, x, chunk: int = 128
) -> dict:
    """``{group: (size,) int array}``: permutations of B's units maximising the summed inner products
    of the two networks' activations on inputs ``x`` (preprocessed), one assignment per group
    (Ainsworth et al. 2023's activation matching; a group's activations are all the values of
    the forward pass that carry it, e.g. every block's output along a residual stage). The inner
    products are accumulated over chunks of ``chunk`` inputs, so memory stays that of one chunk."""
    costs = {}
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        acts_a = permutations.activations(symmetry, params_a, stats_a, part)
        acts_b = permutations.activations(symmetry, params_b, stats_b, part)
        for group in symmetry.spec:
            cost = sum(
                np.asarray(a, np.float64).T @ np.asarray(b, np.float64) for a, b in zip(acts_a[group], acts_b[group])
            )
            costs[group] = costs.get(group, 0.0) + cost
    return {group: linear_sum_assignment(costs[group], maximize=True)[1] for group in symmetry.spec}
