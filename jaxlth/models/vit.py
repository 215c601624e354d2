"""Vision Transformer (Dosovitskiy et al. 2021), pre-norm, as timm's and big_vision's ``ViT``.

Images ``(N, H, W, C)`` are cut into ``P x P`` patches (``H`` and ``W`` multiples of ``P``), each
flattened in ``(row, column, channel)`` order and embedded by the Dense layer ``patch_embedding``
(a ``P x P`` stride-``P`` convolution written as a matrix product, so every prunable kernel is a
2-D Dense kernel). With ``pool="cls"`` a learned ``cls_token`` is put before the ``T'`` patch
tokens; a learned ``position_embedding`` ``(1, T, D)`` is added. Then ``depth`` blocks

    x = x + attention(norm1(x)),    x = x + mlp(norm2(x))

with multi-head self-attention (Dense ``query``, ``key``, ``value`` and ``out``, all ``(D, D)``;
heads split by a reshape) and an MLP ``fc1 (D, mlp_ratio D)``, exact GELU, ``fc2``; LayerNorms with
epsilon 1e-6; no dropout (train and eval compute the same). The final ``norm`` is applied to every
token, then the ``cls`` token (or the mean of the tokens with ``pool="mean"``, as big_vision's
``gap``; timm's ``global_pool="avg"`` normalises after pooling instead) goes to ``output``.

Initialisation as big_vision / timm's JAX mode: Xavier-uniform kernels and zero biases in the
blocks, LeCun-normal patch embedding, normal position embedding (std 0.02: timm's truncation at
``±2`` never bites), a near-zero ``cls_token`` (std 1e-6). The ``output`` layer is the repository's
usual Dense (``init.dense``, OpenLTH's), not zero-initialised: lottery experiments prune and measure it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlth.errors import UserError
from jaxlth.models import init

LN_EPSILON = 1e-6
POOLS = ("cls", "mean")


def patches(x: jax.Array, size: int) -> jax.Array:
    """``(N, H, W, C) -> (N, H W / size^2, size^2 C)``: non-overlapping patches, each flattened
    in ``(row, column, channel)`` order (a ``(size, size, C, D)`` conv kernel reshaped to
    ``(size^2 C, D)`` embeds them alike)."""
    n, h, w, c = x.shape
    if h % size or w % size:
        raise UserError(f"a ViT needs image sides divisible by its patch_size {size}, got {h}x{w} images")
    x = jnp.reshape(x, (n, h // size, size, w // size, size, c))
    x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
    return jnp.reshape(x, (n, (h // size) * (w // size), size * size * c))


def _dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.xavier_uniform(), name=name)


class Attention(nn.Module):
    """Multi-head self-attention; ``(N, T, D) -> (N, T, D)``."""

    heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, t, d = x.shape
        split = (n, t, self.heads, d // self.heads)
        q, k, v = (jnp.reshape(_dense(d, name)(x), split) for name in ("query", "key", "value"))
        scores = jnp.einsum("nqhc,nkhc->nhqk", q, k) * (d // self.heads) ** -0.5
        weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(x.dtype)
        y = jnp.reshape(jnp.einsum("nhqk,nkhc->nqhc", weights, v), (n, t, d))
        return _dense(d, "out")(y)


class MLP(nn.Module):
    """``fc1``, exact GELU, ``fc2``; ``(N, T, D) -> (N, T, D)``."""

    hidden: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.gelu(_dense(self.hidden, "fc1")(x), approximate=False)
        return _dense(x.shape[-1], "fc2")(y)


class Block(nn.Module):
    """Pre-norm transformer block; ``(N, T, D) -> (N, T, D)``."""

    heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + Attention(self.heads, name="attention")(nn.LayerNorm(LN_EPSILON, name="norm1")(x))
        hidden = self.mlp_ratio * x.shape[-1]
        return x + MLP(hidden, name="mlp")(nn.LayerNorm(LN_EPSILON, name="norm2")(x))


class ViT(nn.Module):
    """Vision Transformer; ``x`` ``(N, H, W, C)`` -> logits ``(N, num_classes)``."""

    num_classes: int
    patch_size: int = 4
    width: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: int = 4
    pool: str = "cls"  # "cls" or "mean"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        del train  # no dropout, no BatchNorm: training and evaluation compute the same function
        tokens = patches(x, self.patch_size)
        x = nn.Dense(self.width, kernel_init=nn.initializers.lecun_normal(), name="patch_embedding")(tokens)
        if self.pool == "cls":
            cls = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, self.width))
            x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.width)), x], axis=1)
        x = x + self.param("position_embedding", nn.initializers.normal(0.02), (1, *x.shape[1:]))
        for i in range(self.depth):
            x = Block(self.heads, self.mlp_ratio, name=f"block{i}")(x)
        x = nn.LayerNorm(LN_EPSILON, name="norm")(x)
        x = x[:, 0] if self.pool == "cls" else jnp.mean(x, axis=1)
        return init.dense(x, self.num_classes, name="output")
