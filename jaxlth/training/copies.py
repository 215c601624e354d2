"""The replicate x copy layout: ``C`` copies of each of ``R`` replicates on one stacked axis.

Copies (instability's SGD-noise copies, perturbation groups, one-shot densities) train together
with the replicates in one vmapped program, so their leaves carry one leading axis of size
``R * C``, ordered replicate-major: copy ``c`` of replicate ``r`` sits at ``r * C + c``. Every
function here is that convention; nothing else in jaxlth computes such an index.

:func:`repeat`, :func:`stack` and :func:`select` are each one jitted program over the whole tree (``select``'s
copy a traced index): run eagerly, every leaf's op compiled on its own, for every copy index again (a tiny
pruning-at-init run compiled ~100 such programs).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def index(replicate: int, copy: int, copies: int) -> int:
    """Position of copy ``copy`` of ``replicate`` on the stacked axis."""
    return replicate * copies + copy


def coordinates(replicates: int, copies: int) -> list[tuple[int, int]]:
    """``[(r, c), ...]`` for every position of the stacked axis, in order."""
    return [(i // copies, i % copies) for i in range(replicates * copies)]


@functools.partial(jax.jit, static_argnums=1)
def repeat(tree: PyTree, copies: int) -> PyTree:
    """``(R, ...) -> (R * copies, ...)``: each replicate's leaves repeated ``copies`` times."""
    return jax.tree.map(lambda x: jnp.repeat(x, copies, axis=0), tree)


@jax.jit
def stack(trees: list[PyTree]) -> PyTree:
    """``C`` trees with leaves ``(R, ...)`` -> one tree ``(R * C, ...)`` (tree ``c`` is copy ``c``)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs, axis=1).reshape(-1, *xs[0].shape[1:]), *trees)


def select(tree: PyTree, copy: int, copies: int) -> PyTree:
    """Copy ``copy`` of every replicate: ``(R * copies, ...) -> (R, ...)`` (one copy: ``tree`` itself)."""
    return tree if copies == 1 else _select(tree, copy, copies)


@functools.partial(jax.jit, static_argnums=2)
def _select(tree: PyTree, copy: jax.Array, copies: int) -> PyTree:
    def one(x):
        by_replicate = x.reshape(x.shape[0] // copies, copies, *x.shape[1:])
        return jax.lax.dynamic_index_in_dim(by_replicate, copy, axis=1, keepdims=False)

    return jax.tree.map(one, tree)


def split(tree: PyTree, copies: int) -> list[PyTree]:
    """All copies: ``[select(tree, c, copies) for c in range(copies)]``."""
    return [select(tree, c, copies) for c in range(copies)]


def positions(replicates: int, copies: int, replicate: int | None = None, copy: int | None = None) -> np.ndarray:
    """Stacked positions of the chosen replicate(s) and copy(ies), replicate-major."""
    rs = [replicate] if replicate is not None else range(replicates)
    cs = [copy] if copy is not None else range(copies)
    return np.asarray([index(r, c, copies) for r in rs for c in cs])
