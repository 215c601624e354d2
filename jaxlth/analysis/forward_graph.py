"""Following parameter axes through a traced forward pass: the union-find behind
:mod:`jaxlth.analysis.permutations`.

Labels: every parameter axis is a node; a value's axis carries ``(node, inner)`` (``inner``: the
group's size when the axis is a flatten's tiled view) or ``None`` (data, fixed). :func:`walk`
interprets the equations of a jaxpr (contractions, convolutions, broadcasts, elementwise
operations, reductions, reshapes, transposes, concatenations, slices, squeezes, nested calls);
anything else fixes what flows through it. :func:`collect` turns the classes into groups of
``(collection, path, axis, inner)``.
"""

from __future__ import annotations

import numpy as np

ELEMENTWISE = {
    "add",
    "sub",
    "mul",
    "div",
    "max",
    "min",
    "pow",
    "select_n",
    "exp",
    "log",
    "tanh",
    "logistic",
    "rsqrt",
    "sqrt",
    "neg",
    "abs",
    "sign",
    "convert_element_type",
    "stop_gradient",
    "copy",
    "square",
    "integer_pow",
    "erf",
    "erfc",
    "exp2",
    "log1p",
    "expm1",
    "add_any",
    "ge",
    "gt",
    "le",
    "lt",
    "eq",
    "ne",
    "and",
    "or",
    "not",
    "clamp",
}
CALLS = {
    "jit": "jaxpr",
    "pjit": "jaxpr",
    "closed_call": "call_jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "remat": "jaxpr",
    "checkpoint": "jaxpr",
}


class Groups:
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


def walk(jaxpr, env: dict, groups: Groups, tiled: list) -> list:
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
            for v, labels in zip(eqn.outvars, walk(sub, inner_env, groups, tiled)):
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
        elif name == "concatenate":  # the joined axis is fixed, the others combine as in an elementwise op
            out = [None] * len(out_shape)
            for d in range(len(out_shape)):
                column = [lab[d] for lab in ins]
                if d == eqn.params["dimension"]:
                    groups.fix(column)
                else:
                    out[d] = _join(column, groups)
        elif name == "slice":  # an axis taken whole keeps its label; a cut one is fixed
            out = [None] * len(out_shape)
            for d, label in enumerate(ins[0]):
                if out_shape[d] == shapes[0][d]:
                    out[d] = label
                else:
                    groups.fix([label])
        elif name == "squeeze":
            dropped = {d % len(ins[0]) for d in eqn.params["dimensions"]}
            out = [lab for d, lab in enumerate(ins[0]) if d not in dropped]
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
    return [
        env.get(v, [None] * len(v.aval.shape)) if hasattr(v, "aval") and type(v).__name__ != "Literal" else []
        for v in jaxpr.outvars
    ]


def _join(labels: list, groups: Groups):
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


def _contract(activation, kernel_axis, groups: Groups, tiled: list) -> None:
    """A contraction of an activation axis with a kernel axis."""
    if activation is not None and activation[1] is not None and kernel_axis is not None and kernel_axis[1] is None:
        tiled.append((kernel_axis[0], activation[0], activation[1]))  # a flatten's tiled view of a group
        return
    groups.union(activation, kernel_axis)


def _reshape(labels: list, before: tuple, after: tuple, groups: Groups) -> list:
    out = [None] * len(after)
    if before and after and before[-1] == after[-1] and labels[-1] is not None:
        out[-1] = labels[-1]
        return out
    last = labels[-1] if labels else None
    flatten = 1 <= len(after) < len(before) and after[-1] == int(np.prod(before[len(after) - 1 :]))
    if last is not None and last[1] is None and flatten:
        out[-1] = (last[0], before[-1])  # flatten: the channel group, tiled
        return out
    groups.fix(labels)
    return out


def collect(members: dict, tiled: list, groups: Groups) -> dict:
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
