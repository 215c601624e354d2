"""A network's pruned Dense kernels as ``jax.experimental.sparse.BCOO`` matrices, and its forward pass
multiplying by them.

Every ``flax.linen.Dense`` layer whose kernel the mask covers is replaced, through
``flax.linen.intercept_methods``, by ``bcoo_dot_general(x, W) + b`` with ``W`` the BCOO matrix of the
kernel's kept weights; every other layer (convolutions, the layers a run keeps dense, embeddings,
norms) computes as before, densely. A kernel's BCOO holds exactly the weights its mask keeps (in
row-major order, so its indices are sorted and unique), also a kept weight that happens to be 0.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse

PyTree = Any


def kernel_key(module: nn.Module) -> str:
    """``"params/block0/mlp/fc1/kernel"``: the flat name of a bound module's kernel."""
    return "/".join(("params", *module.path, "kernel"))


def is_dense_call(context) -> bool:
    return isinstance(context.module, nn.Dense) and context.method_name == "__call__"


def dense_kernels(forward: Callable, *args) -> list[str]:
    """The flat names of the kernels of the Dense layers ``forward(*args)`` calls (traced by shape only)."""
    found = []

    def record(next_fun, call_args, kwargs, context):
        if is_dense_call(context):
            found.append(kernel_key(context.module))
        return next_fun(*call_args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(forward, *args)
    return list(dict.fromkeys(found))


def to_bcoo(kernel: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(data (nse,), indices (nse, 2) int32)`` of the weights ``mask`` keeps, row-major."""
    indices = np.argwhere(np.asarray(mask, bool)).astype(np.int32)
    return np.asarray(kernel)[tuple(indices.T)], indices


def sparse_forward(forward: Callable, shapes: dict[str, tuple[int, ...]], dtype: str) -> Callable:
    """``(params, parts, batch_stats, inputs) -> logits``: ``forward(params, batch_stats, inputs)`` with the
    Dense kernels named in ``shapes`` given as ``parts[name] = (data, indices)`` (and absent from
    ``params``). ``dtype``: what the forward pass computes in (``float32``; ``bfloat16`` casts the
    kernels as mixed precision casts the dense ones)."""

    def apply(params: PyTree, parts: dict, batch_stats: PyTree, inputs: jax.Array) -> jax.Array:
        def multiply(next_fun, args, kwargs, context):
            key = kernel_key(context.module) if is_dense_call(context) else None
            if key not in parts:
                return next_fun(*args, **kwargs)
            module, (x,) = context.module, args
            bias = module.get_variable("params", "bias") if module.use_bias else None
            computes = module.dtype or jnp.result_type(x, jnp.dtype(dtype), *([] if bias is None else [bias]))
            data, indices = parts[key]
            kernel = sparse.BCOO(
                (data.astype(computes), indices), shape=shapes[key], indices_sorted=True, unique_indices=True
            )
            y = sparse.bcoo_dot_general(
                x.astype(computes),
                kernel,
                dimension_numbers=(((x.ndim - 1,), (0,)), ((), ())),
                precision=module.precision,
            )
            return y if bias is None else y + bias.astype(computes)

        with nn.intercept_methods(multiply):
            return forward(params, batch_stats, inputs)

    return apply
