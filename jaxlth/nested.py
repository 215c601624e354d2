"""Nested dicts of numpy arrays, as a finished run's networks and masks are read back: their leading
(replicate) axis, a function over every array, and a mask applied on the host."""

from __future__ import annotations

from typing import Any

import numpy as np

PyTree = Any


def leading(tree: PyTree) -> int:
    """The size of the leading axis of a nested dict of arrays (0 when it holds none)."""
    return next((n for n in map(leading, tree.values()) if n), 0) if isinstance(tree, dict) else len(np.asarray(tree))


def map_tree(tree: PyTree, fn) -> PyTree:
    """``fn`` applied to every array of a nested dict."""
    return {k: map_tree(v, fn) for k, v in tree.items()} if isinstance(tree, dict) else fn(tree)


def apply_mask(params: PyTree, mask: PyTree) -> PyTree:
    """``params`` (numpy) with the weights ``mask`` prunes set to 0."""
    if isinstance(mask, dict):
        return {k: apply_mask(v, mask[k]) if k in mask else v for k, v in params.items()}
    return np.where(mask, params, 0).astype(params.dtype)
