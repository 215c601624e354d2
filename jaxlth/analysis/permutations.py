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

PyTree = Any
ELEMENTWISE = {"add", "sub", "mul", "div", "max", "min", "pow", "select_n", "exp", "log", "tanh", "logistic",
               "rsqrt", "sqrt", "neg", "abs", "sign", "convert_element_type", "stop_gradient", "copy", "square",
               "integer_pow", "erf", "exp2", "log1p", "expm1", "add_any", "ge", "gt", "le", "lt", "eq", "ne",
               "and", "or", "not", "clamp"}
CALLS = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
         "custom_vjp_call": "call_jaxpr", "remat": "jaxpr", "checkpoint": "jaxpr"}


class _Groups:
    """Union-find over parameter axes; an axis joined with something fixed is fixed."""

    def __init__(self):
        self.parent, self.fixed = {}, set()

    def find(self, node):
        self.parent.setdefault(node, node)
        while self.parent[node] != node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return node

    def union(self, a, b):
        """Joins two labels (``(node, inner)`` or ``None`` = fixed); returns the joined label."""
        if a is None or b is None or a[1] != b[1]:
            for label in (a, b):
                if label is not None:
                    self.fixed.add(self.find(label[0]))
            return None
        ra, rb = self.find(a[0]), self.find(b[0])
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.fixed:
                self.fixed.add(ra)
        return (ra, a[1])

    def fix(self, labels):
        for label in labels:
            if label is not None:
                self.fixed.add(self.find(label[0]))


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
        trees = {"params": traverse_util.flatten_dict(_plain(params)),
                 "batch_stats": traverse_util.flatten_dict(_plain(batch_stats))}
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


def analyze(apply_fn: Callable, params: PyTree, batch_stats: PyTree, input_shape: tuple[int, ...],
            batch: int = 2) -> Symmetry:
    """The :class:`Symmetry` of ``apply_fn`` (see :func:`spec`), traced with ``batch`` examples."""
    leaves = [("params", path, leaf) for path, leaf in traverse_util.flatten_dict(_plain(params)).items()]
    leaves += [("batch_stats", path, leaf) for path, leaf in traverse_util.flatten_dict(_plain(batch_stats)).items()]
    x = jnp.zeros((batch, *input_shape), jnp.float32)

    def traced(flat, x):
        p = traverse_util.unflatten_dict({path: v for (c, path, _), v in zip(leaves, flat) if c == "params"})
        b = traverse_util.unflatten_dict({path: v for (c, path, _), v in zip(leaves, flat) if c == "batch_stats"})
        return apply_fn(p, b, x)

    closed = jax.make_jaxpr(traced)([leaf for _, _, leaf in leaves], x)
    groups = _Groups()
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
    outs = _walk(closed.jaxpr, env, groups, tiled)
    for labels in outs:
        groups.fix(labels)
    spec_ = _collect(members, tiled, groups)
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


def _walk(jaxpr, env: dict, groups: _Groups, tiled: list) -> list:
    def read(v):
        if not hasattr(v, "aval") or type(v).__name__ == "Literal":
            return [None] * len(getattr(v.aval, "shape", ())) if hasattr(v, "aval") else []
        return env.get(v, [None] * len(v.aval.shape))

    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        shapes = [tuple(getattr(v.aval, "shape", ())) for v in eqn.invars]
        out_shape = tuple(eqn.outvars[0].aval.shape) if eqn.outvars else ()
        if name in CALLS and CALLS[name] in eqn.params:
            sub = eqn.params[CALLS[name]]
            sub = getattr(sub, "jaxpr", sub)
            inner_env = dict(zip(sub.invars, ins))
            for v, labels in zip(eqn.outvars, _walk(sub, inner_env, groups, tiled)):
                env[v] = labels
            continue
        if name == "dot_general":
            (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
            for a, b in zip(lc, rc):
                _contract(ins[0][a], ins[1][b], groups, tiled)
            for a, b in zip(lb, rb):
                groups.union(ins[0][a], ins[1][b])
            free_l = [ins[0][d] for d in range(len(ins[0])) if d not in lc and d not in lb]
            free_r = [ins[1][d] for d in range(len(ins[1])) if d not in rc and d not in rb]
            out = [ins[0][d] for d in lb] + free_l + free_r
        elif name == "conv_general_dilated" and eqn.params.get("feature_group_count", 1) == 1:
            lhs, rhs, spec_out = eqn.params["dimension_numbers"]
            _contract(ins[0][lhs[1]], ins[1][rhs[1]], groups, tiled)
            out = [None] * len(out_shape)
            out[spec_out[1]] = ins[1][rhs[0]]
        elif name == "broadcast_in_dim":
            out = [None] * len(out_shape)
            for src, dst in enumerate(eqn.params["broadcast_dimensions"]):
                out[dst] = ins[0][src] if shapes[0][src] == out_shape[dst] else None
        elif name in ELEMENTWISE:
            out = [None] * len(out_shape)
            for d in range(len(out_shape)):
                labels = [lab[d] for lab, s in zip(ins, shapes) if len(s) == len(out_shape) and s[d] == out_shape[d]]
                out[d] = _join(labels, groups)
        elif name in ("reduce_sum", "reduce_max", "reduce_min", "argmax", "argmin", "reduce_prod"):
            axes = eqn.params["axes"]
            out = [lab for d, lab in enumerate(ins[0]) if d not in axes]
        elif name in ("reduce_window_max", "reduce_window_sum", "reduce_window_min", "reduce_window"):
            out = list(ins[0]) if shapes[0][-1:] == out_shape[-1:] else [None] * len(out_shape)
            if out_shape[-1:] != shapes[0][-1:]:
                groups.fix(ins[0])
        elif name == "reshape":
            out = _reshape(ins[0], shapes[0], out_shape, groups)
        elif name == "transpose":
            out = [ins[0][d] for d in eqn.params["permutation"]]
        else:  # unknown: whatever flows through it stays as it is
            for labels in ins:
                groups.fix(labels)
            out = [None] * len(out_shape)
        for v in eqn.outvars:
            env[v] = out if len(out) == len(v.aval.shape) else [None] * len(v.aval.shape)
    return [env.get(v, [None] * len(v.aval.shape)) if hasattr(v, "aval") and type(v).__name__ != "Literal"
            else [] for v in jaxpr.outvars]


def _join(labels: list, groups: _Groups):
    present = [lab for lab in labels if lab is not None]
    if not present:
        return None
    if len(present) < len(labels):  # an unlabelled operand of full size (data, a fixed axis): fixed
        groups.fix(present)
        return None
    joined = present[0]
    for lab in present[1:]:
        joined = groups.union(joined, lab)
    return joined


def _contract(activation, kernel_axis, groups: _Groups, tiled: list) -> None:
    """A contraction of an activation axis with a kernel axis."""
    if activation is not None and activation[1] is not None and kernel_axis is not None and kernel_axis[1] is None:
        tiled.append((kernel_axis[0], activation[0], activation[1]))  # a flatten's tiled view of a group
        return
    groups.union(activation, kernel_axis)


def _reshape(labels: list, before: tuple, after: tuple, groups: _Groups) -> list:
    out = [None] * len(after)
    if before and after and before[-1] == after[-1] and labels[-1] is not None:
        out[-1] = labels[-1]
        return out
    last = labels[-1] if labels else None
    if last is not None and last[1] is None and len(after) >= 1 and after[-1] == int(np.prod(before[len(after) - 1:])):
        out[-1] = (last[0], before[-1])  # flatten: the channel group, tiled
        return out
    groups.fix(labels)
    return out


def _collect(members: dict, tiled: list, groups: _Groups) -> dict:
    """Groups of at least two plain axes (a lone axis is one nothing else reads: a spatial kernel
    axis), none fixed; plus the tiled views of those groups."""
    by_root = {}
    for node, (collection, path, axis) in members.items():
        if node not in groups.parent:
            continue
        root = groups.find(node)
        if root not in groups.fixed:
            by_root.setdefault(root, []).append((collection, path, axis, None))
    by_root = {root: entries for root, entries in by_root.items() if len(entries) >= 2}
    for kernel_node, group_node, inner in tiled:
        root = groups.find(group_node)
        kernel_root = groups.find(kernel_node)
        if root in by_root and kernel_root not in by_root and kernel_root not in groups.fixed:
            collection, path, axis = members[kernel_node]
            by_root[root].append((collection, path, axis, inner))
        elif root in by_root:
            del by_root[root]  # a view the spec cannot express: the group stays fixed
    named = {}
    for index, (root, entries) in enumerate(sorted(by_root.items(), key=lambda item: str(sorted(item[1])[0]))):
        entries.sort(key=lambda e: (e[0], e[1], e[2]))
        named[f"P{index}_{'/'.join(entries[0][1])}"] = entries
    return named


def sizes(spec_: dict, params: PyTree, batch_stats: PyTree) -> dict[str, int]:
    """The number of units each group permutes."""
    trees = {"params": traverse_util.flatten_dict(_plain(params)),
             "batch_stats": traverse_util.flatten_dict(_plain(batch_stats))}
    out = {}
    for name, entries in spec_.items():
        collection, path, axis, inner = entries[0]
        out[name] = inner or np.shape(trees[collection][path])[axis]
    return out


def permute(spec_: dict, perms: dict, params: PyTree, batch_stats: PyTree) -> tuple[PyTree, PyTree]:
    """``(params, batch_stats)`` with every group's axes permuted by ``perms[group]``."""
    trees = {"params": traverse_util.flatten_dict(_plain(params)),
             "batch_stats": traverse_util.flatten_dict(_plain(batch_stats))}
    for name, entries in spec_.items():
        for collection, path, axis, inner in entries:
            trees[collection][path] = take(trees[collection][path], perms[name], axis, inner)
    return (traverse_util.unflatten_dict(trees["params"]),
            traverse_util.unflatten_dict(trees["batch_stats"]) if trees["batch_stats"] else {})


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
    split = jnp.reshape(x, (*shape[:axis], shape[axis] // inner, inner, *shape[axis + 1:]))
    return jnp.reshape(jnp.take(split, perm, axis=axis + 1), shape)


def random_permutations(spec_: dict, group_sizes: dict, key: jax.Array) -> dict:
    """A random permutation per group (keys split in the spec's order)."""
    keys = jax.random.split(key, max(len(spec_), 1))
    return {name: jax.random.permutation(k, group_sizes[name]) for k, name in zip(keys, spec_)}


def _plain(tree):
    return tree.unfreeze() if hasattr(tree, "unfreeze") else dict(tree)


__all__ = ["spec", "sizes", "permute", "permute_mask", "take", "random_permutations"]
