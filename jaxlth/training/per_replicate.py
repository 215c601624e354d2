"""Replicate-vmapped programs run one replicate at a time: conv nets on a CPU.

XLA:CPU lowers a convolution whose inputs and kernels are both batched by ``jax.vmap`` into a
grouped convolution, ~8x slower per replicate at ``R = 2`` than ``R`` separate ones. With
``spec.step_loop == "replicates"`` a :class:`~jaxlth.training.program.Program` cuts replicate
``r`` out of every stacked argument (a leading axis of 1), runs on it the very program a
one-replicate run compiles, and stacks the outputs back: each replicate's arithmetic is bitwise
a one-replicate run's. Arguments spread over several devices (a sharded replicate axis, several
processes) keep the vmapped program.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

PyTree = Any


def on_one_device(tree: PyTree) -> bool:
    """Whether every array of ``tree`` lies on one device (numpy arrays and tracers count as nowhere)."""
    devices = set()
    for x in jax.tree.leaves(tree):
        if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer):
            devices |= set(x.sharding.device_set)
    return len(devices) <= 1


def count(tree: PyTree) -> int:
    """The replicates of a stacked pytree: its leaves' leading size ``R``."""
    return jax.tree.leaves(tree)[0].shape[0]


@functools.partial(jax.jit, static_argnames="count")
def split(tree: PyTree, *, count: int) -> tuple:
    """``(R, ...)`` leaves -> ``count = R`` pytrees of ``(1, ...)`` leaves, replicate ``r`` in the ``r``-th
    (copies, one dispatch)."""
    return tuple(jax.tree.map(lambda x: lax.slice_in_dim(x, r, r + 1), tree) for r in range(count))


@jax.jit
def stack(parts: tuple) -> PyTree:
    """``R`` pytrees of ``(1, ...)`` leaves -> one of ``(R, ...)`` leaves (one dispatch)."""
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)


def each(function: Callable, *stacked: PyTree) -> PyTree:
    """``function(*parts)`` for each replicate's parts of ``stacked`` (leading axes of 1), its
    outputs stacked on axis 0: the replicates run one after another, each as a one-replicate run."""
    replicates = count(stacked)
    if replicates == 1:
        return function(*stacked)
    parts = [split(tree, count=replicates) for tree in stacked]
    return stack(tuple(function(*args) for args in zip(*parts)))


def one_at_a_time(vmapped: Callable, leading: int) -> Callable:
    """``vmapped`` (compiled, its first ``leading`` arguments on the replicate axis) run by :func:`each`
    when those arguments are on one device, as is when they are spread over several."""

    def run(*args):
        if not on_one_device(args[:leading]):
            return vmapped(*args)
        return each(lambda *parts: vmapped(*parts, *args[leading:]), *args[:leading])

    return run


def first(tree: PyTree) -> PyTree:
    """The shapes of replicate 0 of a stacked pytree (arrays or ``jax.ShapeDtypeStruct``), its axis 0 of size 1."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype), tree)


def held_bytes(inputs: PyTree, outputs: PyTree) -> int:
    """Bytes :func:`each` holds beyond one replicate's program: the stacked ``inputs`` (the caller's),
    their one-replicate copies, and the stacked ``outputs``."""
    return 2 * _bytes(inputs) + _bytes(outputs)


def _bytes(tree: PyTree) -> int:
    return sum(int(x.size) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def mean_in_step_order(metrics: list[tuple[jax.Array, ...]]) -> tuple[jax.Array, ...]:
    """Means of a host loop's ``[(loss, accuracy)]`` (each ``(R,)``), summed in step order from 0 as the
    compiled chunk sums them (the same bits)."""
    sums = functools.reduce(
        lambda a, b: [x + y for x, y in zip(a, b)], metrics, [jnp.zeros_like(m) for m in metrics[0]]
    )
    return tuple(total / jnp.float32(len(metrics)) for total in sums)
