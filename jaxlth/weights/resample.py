"""Position embeddings of a ViT trained at another image size, resampled to this one's patch grid."""

from __future__ import annotations

import math

import jax
import numpy as np

from jaxlth.errors import UserError


def grid_side(patches: int, what: str) -> int:
    """The side ``g`` of a square ``g x g`` grid of ``patches`` patches."""
    side = math.isqrt(patches)
    if side * side != patches or side == 0:
        raise UserError(f"{what} has {patches} patch positions, not those of a square grid")
    return side


def positions(table: np.ndarray, tokens: int, prefix: int = 1) -> np.ndarray:
    """``table`` ``(1, prefix + g^2, D)`` -> ``(1, tokens, D)``: the ``prefix`` leading entries (the
    ``cls`` token's) kept as they are, the ``g x g`` grid of patch positions resized to the
    ``g' x g'`` grid ``tokens - prefix`` makes, by bilinear interpolation (``jax.image.resize``,
    antialiased when it shrinks; float32). The same grid gives ``table`` itself."""
    if table.ndim != 3 or table.shape[0] != 1:
        raise UserError(f"a position embedding has shape (1, tokens, width), not {table.shape}")
    old = grid_side(table.shape[1] - prefix, "the checkpoint's position embedding")
    new = grid_side(tokens - prefix, "this network's position embedding")
    if old == new:
        return table
    width = table.shape[2]
    grid = np.asarray(table[0, prefix:], np.float32).reshape(old, old, width)
    resized = np.asarray(jax.image.resize(grid, (new, new, width), method="bilinear"))
    out = np.concatenate([np.asarray(table[0, :prefix], np.float32), resized.reshape(new * new, width)])
    return out[None]
