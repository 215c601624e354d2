"""What a sparse network costs: parameters, nonzero parameters, compression and FLOPs per example.

Blalock et al. (2020, "What is the state of neural network pruning?") ask every pruning result to
report its size and its speed beside its accuracy: the compression ratio (all parameters / nonzero
parameters) and the theoretical FLOPs (multiply-adds) of one example's forward pass. Both come here
from the model itself, never from a hand-written table per model: :func:`layer_flops` traces
``apply_fn`` on one example to a jaxpr and counts the multiply-adds of every ``dot_general``
(``out elements x contracted size``) and ``conv_general_dilated`` (``out elements x kernel elements
per output channel``, i.e. ``H_out W_out k k C_in/groups C_out``), each attributed to the parameter
it multiplies (followed back through reshapes, transposes, casts and elementwise operations with
no per-example operand, so a masked kernel ``kernel * mask`` is still its kernel). A per-example
product with no one parameter (two per-example values: attention's ``q k^T`` and ``weights v``) is
counted as ``other`` and never pruned; products of parameters alone are not per-example work and are
not counted. Elementwise operations,
normalisation and pooling count nothing: FLOPs here are multiply-adds of contractions, as in the
papers (ResNet-20 on 32x32 CIFAR: 40.8M).

:func:`costs` applies a mask (leading replicate axis ``R``): the sparse FLOPs of a layer are its
dense count times its kernel's density (a layer outside the mask counts dense), and the nonzero
parameters are the weights the mask keeps plus every parameter it does not cover.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np
from flax import traverse_util

from jaxlth.analysis.forward_graph import CALLS
from jaxlth.tables import COSTS as COLUMNS

PyTree = Any
# an operand traced back to a parameter keeps its attribution through these (with no per-example operand)
PASS = {
    "convert_element_type",
    "reshape",
    "transpose",
    "copy",
    "squeeze",
    "expand_dims",
    "reduce_precision",
    "mul",
    "div",
    "add",
    "sub",
    "neg",
    "select_n",
    "stop_gradient",
}
DATA = "data"  # the label of a value that depends on the example


@dataclasses.dataclass(frozen=True)
class Flops:
    """Multiply-adds of one example's forward pass: ``by_leaf`` ``{params path: count}`` of the
    contractions each parameter takes part in, ``other`` those of no one parameter (attention's)."""

    by_leaf: dict[tuple[str, ...], int]
    other: int = 0

    @property
    def dense(self) -> int:
        return sum(self.by_leaf.values()) + self.other


def layer_flops(apply_fn: Callable, params: PyTree, batch_stats: PyTree, example: jax.ShapeDtypeStruct) -> Flops:
    """The :class:`Flops` of ``apply_fn(params, batch_stats, x)`` for one example ``x`` of
    ``example.shape`` (no batch axis) and dtype. ``params`` and ``batch_stats`` may be arrays or
    ``jax.ShapeDtypeStruct`` (nothing is computed: the function is only traced).

    Raises:
      ValueError: for a loop, branch or call the count cannot see through (``while``, ``cond``).
    """
    flat = traverse_util.flatten_dict(_plain(params))
    paths = list(flat)
    x = jax.ShapeDtypeStruct((1, *example.shape), example.dtype)

    def traced(leaves, batch_stats, x):
        return apply_fn(traverse_util.unflatten_dict(dict(zip(paths, leaves))), batch_stats, x)

    shapes = [jax.ShapeDtypeStruct(np.shape(v), getattr(v, "dtype", np.float32)) for v in flat.values()]
    closed = jax.make_jaxpr(traced)(shapes, _shapes(batch_stats), x)
    invars = closed.jaxpr.invars
    env = {v: i for i, v in enumerate(invars[: len(paths)])}  # a parameter's label: its index
    env[invars[-1]] = DATA
    counts: dict = {}
    _walk(closed.jaxpr, env, counts, 1)
    return Flops({p: counts[i] for i, p in enumerate(paths) if i in counts}, counts.get(DATA, 0))


def costs(flops: Flops, params: PyTree, mask: PyTree) -> dict[str, np.ndarray]:
    """``{column: (R,) array}`` (:data:`COLUMNS`) of the networks of ``mask`` (booleans over the prunable
    kernels, leading replicate axis ``R``): ``total_params`` (every parameter, not the batch
    statistics), ``prunable_params`` (the mask's entries), ``nonzero_params`` (what the mask keeps
    plus the parameters outside it), ``compression`` (``total / nonzero``), ``dense_flops`` and
    ``flops`` (multiply-adds per example: each layer's count times its kernel's density).
    ``params``: one network's parameters (arrays or shapes, no replicate axis)."""
    sizes = {p: int(np.prod(np.shape(v))) for p, v in traverse_util.flatten_dict(_plain(params)).items()}
    masks = traverse_util.flatten_dict(_plain(mask))
    unknown = [p for p in masks if p not in sizes]
    if unknown:
        raise ValueError(f"the mask covers {'/'.join(unknown[0])}, which is not a parameter of the model")
    kept = {p: np.asarray(m).reshape(np.shape(m)[0], -1).sum(axis=1, dtype=np.int64) for p, m in masks.items()}
    replicates = next(iter(kept.values())).shape[0] if kept else 1
    total, prunable = sum(sizes.values()), sum(sizes[p] for p in masks)
    nonzero = total - prunable + sum(kept.values(), np.zeros(replicates, np.int64))
    sparse = np.full(replicates, float(flops.other))
    for path, count in flops.by_leaf.items():
        sparse += count * (kept[path] / sizes[path] if path in kept else 1.0)
    return {
        "total_params": np.full(replicates, total, np.int64),
        "prunable_params": np.full(replicates, prunable, np.int64),
        "nonzero_params": nonzero,
        "compression": total / nonzero,
        "dense_flops": np.full(replicates, flops.dense, np.int64),
        "flops": sparse,
    }


def _walk(jaxpr, env: dict, counts: dict, times: int) -> None:
    """Adds the multiply-adds of ``jaxpr``'s contractions (``times`` over) to ``counts`` by label."""

    def label(v):
        return env.get(v) if hasattr(v, "aval") and type(v).__name__ != "Literal" else None

    for eqn in jaxpr.eqns:
        name, ins = eqn.primitive.name, [label(v) for v in eqn.invars]
        out = DATA if DATA in ins else None
        inner = _inner_jaxpr(eqn)
        if name in CALLS and CALLS[name] in eqn.params:  # nested calls: the same labels inside
            inner = getattr(eqn.params[CALLS[name]], "jaxpr", eqn.params[CALLS[name]])
            sub = dict(zip(inner.invars, ins))
            _walk(inner, sub, counts, times)
            for v, o in zip(eqn.outvars, inner.outvars):
                env[v] = sub.get(o) if hasattr(o, "aval") and type(o).__name__ != "Literal" else None
            continue
        if name == "scan":
            sub = dict(zip(inner.invars, ins))
            _walk(inner, sub, counts, times * int(eqn.params["length"]))
            for v in eqn.outvars:
                env[v] = out
            continue
        if inner is not None:
            raise ValueError(f"cannot count the FLOPs inside a {name!r}: a loop, branch or call of unknown extent")
        if name in ("dot_general", "conv_general_dilated"):
            owners = [i for i in ins if i is not None and i != DATA]
            if DATA in ins:  # per-example work: a parameter's, or of no one parameter (never pruned)
                owner = owners[0] if len(owners) == 1 else DATA
                counts[owner] = counts.get(owner, 0) + times * _contracted(eqn)
        elif out is None and name in PASS:  # a parameter, cast, reshaped or masked: still that parameter
            owners = [(i, v) for i, v in zip(ins, eqn.invars) if i is not None]
            if len(owners) == 1 and _size(owners[0][1]) == _size(eqn.outvars[0]):
                out = owners[0][0]
        for v in eqn.outvars:
            env[v] = out


def _contracted(eqn) -> int:
    """Multiply-adds of one contraction: output elements x the size summed over per element."""
    if eqn.primitive.name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        return _size(eqn.outvars[0]) * int(np.prod([lhs[d] for d in contract], dtype=np.int64))
    rhs = eqn.invars[1].aval.shape
    out_channels = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
    return _size(eqn.outvars[0]) * int(np.prod(rhs, dtype=np.int64)) // out_channels


def _inner_jaxpr(eqn):
    """The jaxpr an equation runs (a scan's body, a loop's, a branch's, another call's), or None."""
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr", "body_jaxpr", "branches"):
        value = eqn.params.get(key)
        if value is not None:
            value = value[0] if isinstance(value, tuple) else value
            return getattr(value, "jaxpr", value)
    return None


def _size(v) -> int:
    return int(np.prod(v.aval.shape, dtype=np.int64))


def _shapes(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda v: jax.ShapeDtypeStruct(np.shape(v), getattr(v, "dtype", np.float32)), _plain(tree))


def _plain(tree):
    return tree.unfreeze() if hasattr(tree, "unfreeze") else dict(tree or {})


__all__ = ["COLUMNS", "Flops", "layer_flops", "costs"]
