"""The layers of PyTorch checkpoints and the jaxlth (Flax) leaves each of their tensors becomes.

A :class:`Kind` lists a layer's tensors (:class:`Leaf`): the tensor's name in the file, the
jaxlth leaves it becomes (``"collection/relative path"``), and the two conversions. PyTorch's
layouts: Linear ``weight (out, in)``, Conv ``weight (O, I, kh, kw)``; Flax's: Dense
``kernel (in, out)``, Conv ``kernel (kh, kw, I, O)``. The conversions into jaxlth's layout return
views (transposes) where they can; the caller copies each result once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from jaxlth.errors import UserError

Arrays = tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One tensor of a checkpoint's layer. ``to_flax(tensor)`` gives the jaxlth leaves ``flax`` (in
    order); ``to_file(leaves, channels)`` the tensor back (``channels``: of the input images)."""

    file: str
    flax: tuple[str, ...]
    ndim: int
    to_flax: Callable[[np.ndarray], Arrays]
    to_file: Callable[[Arrays, int], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Kind:
    """A layer type: its name (for messages) and its tensors."""

    name: str
    leaves: tuple[Leaf, ...]

    def leaf(self, file: str) -> Leaf | None:
        """The tensor named ``file`` in this layer, or None."""
        return next((leaf for leaf in self.leaves if leaf.file == file), None)


def same(file: str, flax: str, ndim: int) -> Leaf:
    """A tensor stored alike in both layouts (biases, norms' scales, tokens)."""
    return Leaf(file, (flax,), ndim, lambda x: (x,), lambda leaves, channels: leaves[0])


def _conv_kernel(w: np.ndarray) -> Arrays:
    return (w.transpose(2, 3, 1, 0),)  # (O, I, kh, kw) -> (kh, kw, I, O)


def _linear_kernel(w: np.ndarray) -> Arrays:
    return (w.T,)  # (out, in) -> (in, out)


def _qkv_kernels(w: np.ndarray) -> Arrays:
    """timm's fused ``qkv.weight`` ``(3 D, D)``, rows query | key | value -> three ``(D, D)`` kernels."""
    if w.shape[0] != 3 * w.shape[1]:
        raise ValueError(f"a fused query-key-value weight has shape (3 D, D), not {w.shape}")
    return tuple(part.T for part in np.split(w, 3, axis=0))


def _qkv_biases(b: np.ndarray) -> Arrays:
    if b.shape[0] % 3:
        raise ValueError(f"a fused query-key-value bias has 3 D entries, not {b.shape[0]}")
    return tuple(np.split(b, 3))


def _patch_kernel(w: np.ndarray) -> Arrays:
    """A ``P x P`` stride-``P`` conv ``(D, C, P, P)`` -> the ViT's Dense kernel ``(P P C, D)`` on patches
    flattened in (row, column, channel) order (:func:`jaxlth.models.vit.patches`)."""
    return (w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]),)


def _patch_weight(leaves: Arrays, channels: int) -> np.ndarray:
    kernel = leaves[0]
    size = math.isqrt(kernel.shape[0] // channels)
    if size * size * channels != kernel.shape[0]:
        raise UserError(
            f"a patch-embedding kernel of {kernel.shape[0]} rows is not P x P patches of {channels} channels"
        )
    return kernel.reshape(size, size, channels, kernel.shape[1]).transpose(3, 2, 0, 1)


CONV = Kind(
    "convolution",
    (
        Leaf("weight", ("params/kernel",), 4, _conv_kernel, lambda k, c: k[0].transpose(3, 2, 0, 1)),
        same("bias", "params/bias", 1),
    ),
)
LINEAR = Kind(
    "linear layer",
    (Leaf("weight", ("params/kernel",), 2, _linear_kernel, lambda k, c: k[0].T), same("bias", "params/bias", 1)),
)
BATCHNORM = Kind(
    "BatchNorm",
    (
        same("weight", "params/scale", 1),
        same("bias", "params/bias", 1),
        same("running_mean", "batch_stats/mean", 1),
        same("running_var", "batch_stats/var", 1),
    ),
)
LAYERNORM = Kind("LayerNorm", (same("weight", "params/scale", 1), same("bias", "params/bias", 1)))
QKV = Kind(
    "fused query-key-value projection",
    (
        Leaf(
            "weight",
            tuple(f"params/{name}/kernel" for name in ("query", "key", "value")),
            2,
            _qkv_kernels,
            lambda kernels, c: np.concatenate([k.T for k in kernels], axis=0),
        ),
        Leaf(
            "bias",
            tuple(f"params/{name}/bias" for name in ("query", "key", "value")),
            1,
            _qkv_biases,
            lambda biases, c: np.concatenate(biases),
        ),
    ),
)
PATCH = Kind(
    "patch embedding",
    (Leaf("weight", ("params/kernel",), 4, _patch_kernel, _patch_weight), same("bias", "params/bias", 1)),
)
