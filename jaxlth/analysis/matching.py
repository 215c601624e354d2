"""Weight matching (Ainsworth, Hayase & Srinivasa, *Git Re-Basin*, ICLR 2023): the permutation of
network B's hidden units that best aligns its weights with network A's.

For each permutation group of :func:`jaxlth.analysis.permutations.spec`, the permutation ``P``
maximising ``sum_l <W_A^l, P W_B^l Q_l^T>`` over the parameters the group touches (``Q_l``: the
current permutations of their other axes) is a linear assignment problem
(``scipy.optimize.linear_sum_assignment``); groups are visited in a seeded random order, again and
again, until a full pass changes nothing. The result depends on that order (each pass ends in a
local optimum of the coordinate ascent), so :func:`weight_matching` can restart from several orders
and keep the best. Its *objective* is ``<theta_A, pi(theta_B)>``: the inner product of A's and
permuted B's parameter vectors, summed over every ``params`` leaf (kernels, biases, BatchNorm scale
and offset; not normalised, float64) — the quantity each assignment raises (the leaves no group
touches add a constant). One replicate, on the host (numpy): the assignments are small and sequential.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import traverse_util

from jaxlth.analysis import permutations

PyTree = Any


def _best_columns(cost: np.ndarray) -> np.ndarray:
    """The columns, one per row of the square ``cost``, of the assignment maximising its sum. SciPy's
    optimize package is imported here, on first use: it costs ~0.8 s of every run's start-up otherwise."""
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(cost, maximize=True)[1]


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


def _permuted_except(x: np.ndarray, axes: dict, perms: dict, skip: int | None) -> np.ndarray:
    """``x`` with every axis in ``axes`` permuted except ``skip`` (``None``: every one)."""
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
    spec: dict,
    sizes: dict,
    params_a: PyTree,
    params_b: PyTree,
    seed: int = 0,
    max_passes: int = 100,
    restart_seeds=(),
) -> tuple[dict, float]:
    """``(perms, objective)``: ``{group: (size,) int array}``, permutations of B's units (apply with
    :func:`jaxlth.analysis.permutations.permute` to B) that align B's parameters with A's, and their
    objective ``<theta_A, pi(theta_B)>`` (module docstring).

    Restart 0 visits the groups in the orders of ``numpy.random.default_rng(seed)`` (one fresh
    order per pass); each of ``restart_seeds`` (numpy seeds: ints or sequences of ints, e.g. a
    key's data) is one more restart from its own generator. The permutations of the highest
    objective are kept (the earliest restart on ties), so no ``restart_seeds`` is the single order.
    Only ``params`` enter the objective, not the running statistics, as in Git Re-Basin; masks and
    statistics are permuted with the result.
    """
    a = {k: np.asarray(v, np.float64) for k, v in traverse_util.flatten_dict(_plain(params_a)).items()}
    b = {k: np.asarray(v, np.float64) for k, v in traverse_util.flatten_dict(_plain(params_b)).items()}
    best, best_objective = None, -np.inf
    for restart_seed in (seed, *restart_seeds):
        perms = _ascend(spec, sizes, a, b, np.random.default_rng(restart_seed), max_passes)
        found = _objective(spec, perms, a, b)
        if best is None or found > best_objective:
            best, best_objective = perms, found
    return best, best_objective


def _ascend(spec: dict, sizes: dict, a: dict, b: dict, rng: np.random.Generator, max_passes: int) -> dict:
    """Coordinate ascent from the identity: one assignment per group, in ``rng``'s orders, until a
    pass changes nothing."""
    axes = _axes_by_leaf(spec)
    perms = {group: np.arange(n) for group, n in sizes.items()}
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
            columns = _best_columns(cost)
            old = cost[np.arange(n), perms[group]].sum()
            new = cost[np.arange(n), columns].sum()
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[group], changed = columns, True
        if not changed:
            break
    return perms


def _objective(spec: dict, perms: dict, a: dict, b: dict) -> float:
    """``<theta_A, pi(theta_B)>`` over every ``params`` leaf of the flattened float64 ``a`` and ``b``."""
    axes = _axes_by_leaf(spec)
    return float(
        sum(np.vdot(a[path], _permuted_except(b[path], axes.get(("params", path), {}), perms, None)) for path in a)
    )


def _plain(tree):
    return tree.unfreeze() if hasattr(tree, "unfreeze") else dict(tree)


def activation_matching(
    symmetry, params_a: PyTree, stats_a: PyTree, params_b: PyTree, stats_b: PyTree, x, chunk: int = 128
) -> tuple[dict, float]:
    """``(perms, objective)``: ``{group: (size,) int array}``, permutations of B's units maximising the
    summed inner products of the two networks' activations on inputs ``x`` (preprocessed), one
    assignment per group (Ainsworth et al. 2023's activation matching; a group's activations are
    all the values of the forward pass that carry it, e.g. every block's output along a residual
    stage), and that maximum: the inner products of A's and permuted B's activations summed over
    every group, activation, position and input (not normalised, float64; the groups are
    independent, so the order they are solved in does not matter). The inner products are
    accumulated over chunks of ``chunk`` inputs, so memory stays that of one chunk."""
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
    perms = {group: _best_columns(costs[group]) for group in symmetry.spec}
    objective = sum(costs[g][np.arange(len(perms[g])), perms[g]].sum() for g in symmetry.spec)
    return perms, float(objective)
