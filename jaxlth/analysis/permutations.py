"""Permutation symmetries of a network, derived from its forward pass (Git Re-Basin's specs, automatic).

Hidden units can be permuted without changing the function a network computes: the output axis
of a kernel, its bias and the BatchNorm vectors after it, and the input axis of every kernel that
reads those units, all permuted alike. Residual networks share one permutation along a stage's
skip path. :func:`spec` finds these *groups* by tracing ``model.apply`` to a jaxpr and following
each parameter axis through the computation: a contraction ties a kernel's input axis to the
feature axis of what it reads; elementwise operations (bias, BatchNorm, residual additions) tie
the feature axes they combine; a flatten ``(N, H, W, C) -> (N, H W C)`` makes the next kernel's
input axis a *tiled* view (index ``s C + c``) of the channel group. Axes that touch the input or
the logits, and axes that flow through an operation it does not know, stay fixed — so a spec is
never wrong, only possibly incomplete; :func:`permute` with random permutations leaves the logits
unchanged for every model of the registry (tested), and the tests pin the number of groups.

A spec is ``{group: [(collection, path, axis, inner), ...]}``: ``collection`` is ``"params"`` or
``"batch_stats"``, ``path`` the leaf's key tuple, ``inner`` ``None`` for a plain axis or the group's
size for a tiled one. Permutations are ``{group: (size,) int array}``; ``perm[i]`` is the unit of
the original network placed at position ``i``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlth.analysis import forward_graph

PyTree = Any


def spec(apply_fn: Callable, params: PyTree, batch_stats: PyTree, input_shape: tuple[int, ...]) -> dict:
    """The permutation groups of ``apply_fn(params, batch_stats, x) -> logits`` (eval mode).

    ``input_shape``: one example's shape; the trace uses a batch of 2.
    """
    return analyze(apply_fn, params, batch_stats, input_shape).spec


class Symmetry:
    """A network's permutation groups (``spec``) and, per group, the activations that carry it
    (``probes``: ``(equation, output)`` positions of top-level values of the traced forward pass
    whose last axis is the group), for activation matching (:func:`activations`)."""

    def __init__(self, spec_: dict, traced: Callable, leaves: list, probes: dict):
        self.spec, self.traced, self.leaves, self.probes = spec_, traced, leaves, probes

    def flat_args(self, params: PyTree, batch_stats: PyTree) -> list:
        trees = {
            "params": traverse_util.flatten_dict(_plain(params)),
            "batch_stats": traverse_util.flatten_dict(_plain(batch_stats)),
        }
        return [trees[c][path] for c, path, _ in self.leaves]


def activations(symmetry: Symmetry, params: PyTree, batch_stats: PyTree, x: jax.Array) -> dict:
    """``{group: [(examples * positions, units) arrays]}``: the group's activations on inputs ``x``.

    The forward pass is traced again for ``x``'s batch size (same equations, other shapes) and
    evaluated with the probed values as its outputs.
    """
    closed = jax.make_jaxpr(symmetry.traced)(symmetry.flat_args(params, batch_stats), x)
    eqns = closed.jaxpr.eqns
    order = [(group, i, j) for group, positions in symmetry.probes.items() for i, j in positions]
    jaxpr = closed.jaxpr.replace(outvars=[eqns[i].outvars[j] for _, i, j in order])
    values = jax.core.eval_jaxpr(jaxpr, closed.consts, *symmetry.flat_args(params, batch_stats), x)
    out = {group: [] for group in symmetry.spec}
    for (group, _, _), value in zip(order, values):
        out[group].append(jnp.reshape(value, (-1, value.shape[-1])))
    return out


def analyze(
    apply_fn: Callable, params: PyTree, batch_stats: PyTree, input_shape: tuple[int, ...], batch: int = 2
) -> Symmetry:
    """The :class:`Symmetry` of ``apply_fn`` (see :func:`spec`), traced with ``batch`` examples."""
    leaves = [("params", path, leaf) for path, leaf in traverse_util.flatten_dict(_plain(params)).items()]
    leaves += [("batch_stats", path, leaf) for path, leaf in traverse_util.flatten_dict(_plain(batch_stats)).items()]
    x = jnp.zeros((batch, *input_shape), jnp.float32)

    def traced(flat, x):
        p = traverse_util.unflatten_dict({path: v for (c, path, _), v in zip(leaves, flat) if c == "params"})
        b = traverse_util.unflatten_dict({path: v for (c, path, _), v in zip(leaves, flat) if c == "batch_stats"})
        return apply_fn(p, b, x)

    closed = jax.make_jaxpr(traced)([leaf for _, _, leaf in leaves], x)
    groups = forward_graph.Groups()
    env = {}
    members = {}  # node -> (collection, path, axis); tiled views: (node, collection, path, axis, inner)
    tiled = []
    for i, (var, (collection, path, leaf)) in enumerate(zip(closed.jaxpr.invars, leaves)):
        labels = []
        for axis in range(np.ndim(leaf)):
            node = (i, axis)
            members[node] = (collection, path, axis)
            labels.append((node, None) if np.shape(leaf)[axis] > 1 else None)
        env[var] = labels
    env[closed.jaxpr.invars[-1]] = [None] * (len(input_shape) + 1)
    outs = forward_graph.walk(closed.jaxpr, env, groups, tiled)
    for labels in outs:
        groups.fix(labels)
    spec_ = forward_graph.collect(members, tiled, groups)
    roots = {groups.find(_node_of(members, entries[0])): name for name, entries in spec_.items()}
    probes = {name: [] for name in spec_}  # (equation, output) positions in the top-level jaxpr
    for i, eqn in enumerate(closed.jaxpr.eqns):
        for j, v in enumerate(eqn.outvars):
            labels = env.get(v)
            if labels and len(labels) >= 2 and labels[-1] is not None and labels[-1][1] is None:
                name = roots.get(groups.find(labels[-1][0]))
                if name is not None:
                    probes[name].append((i, j))
    return Symmetry(spec_, traced, leaves, probes)


def _node_of(members: dict, entry) -> tuple:
    collection, path, axis, _ = entry
    return next(node for node, member in members.items() if member == (collection, path, axis))


def sizes(spec_: dict, params: PyTree, batch_stats: PyTree) -> dict[str, int]:
    """The number of units each group permutes."""
    trees = {
        "params": traverse_util.flatten_dict(_plain(params)),
        "batch_stats": traverse_util.flatten_dict(_plain(batch_stats)),
    }
    out = {}
    for name, entries in spec_.items():
        collection, path, axis, inner = entries[0]
        out[name] = inner or np.shape(trees[collection][path])[axis]
    return out


def permute(spec_: dict, perms: dict, params: PyTree, batch_stats: PyTree) -> tuple[PyTree, PyTree]:
    """``(params, batch_stats)`` with every group's axes permuted by ``perms[group]``."""
    trees = {
        "params": traverse_util.flatten_dict(_plain(params)),
        "batch_stats": traverse_util.flatten_dict(_plain(batch_stats)),
    }
    for name, entries in spec_.items():
        for collection, path, axis, inner in entries:
            trees[collection][path] = take(trees[collection][path], perms[name], axis, inner)
    return (
        traverse_util.unflatten_dict(trees["params"]),
        traverse_util.unflatten_dict(trees["batch_stats"]) if trees["batch_stats"] else {},
    )


def permute_mask(spec_: dict, perms: dict, mask: PyTree) -> PyTree:
    """A mask (booleans over the prunable kernels) permuted with its weights: the same entries of
    :func:`permute` restricted to the mask's leaves; per-layer densities are unchanged."""
    flat = traverse_util.flatten_dict(_plain(mask))
    for name, entries in spec_.items():
        for collection, path, axis, inner in entries:
            if collection == "params" and path in flat:
                flat[path] = take(flat[path], perms[name], axis, inner)
    return traverse_util.unflatten_dict(flat)


def take(x: jax.Array, perm: jax.Array, axis: int, inner: int | None = None) -> jax.Array:
    """``x`` with ``axis`` permuted (a tiled axis ``(outer * inner)``: its inner index)."""
    if inner is None:
        return jnp.take(x, perm, axis=axis)
    shape = np.shape(x)
    split = jnp.reshape(x, (*shape[:axis], shape[axis] // inner, inner, *shape[axis + 1 :]))
    return jnp.reshape(jnp.take(split, perm, axis=axis + 1), shape)


def random_permutations(spec_: dict, group_sizes: dict, key: jax.Array) -> dict:
    """A random permutation per group (keys split in the spec's order)."""
    keys = jax.random.split(key, max(len(spec_), 1))
    return {name: jax.random.permutation(k, group_sizes[name]) for k, name in zip(keys, spec_)}


def _plain(tree):
    return tree.unfreeze() if hasattr(tree, "unfreeze") else dict(tree)


__all__ = ["spec", "sizes", "permute", "permute_mask", "take", "random_permutations"]
