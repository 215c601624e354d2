"""On-device data augmentation and normalisation: pure JAX, jittable and vmappable.

``kind`` is a Python string, so it is static: jit with ``static_argnames="kind"`` or close
over it (``functools.partial``). Augment raw pixels (before ``normalize``) to pad with black,
as torchvision's ``RandomCrop(32, padding=4)`` before ``Normalize`` does.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

KINDS = ("none", "cifar")
CIFAR_PAD = 4  # pixels of zero padding on each side before the random crop


def random_crop_flip(key: jax.Array, images: jax.Array, pad: int = CIFAR_PAD) -> jax.Array:
    """Per example: zero-pad by ``pad`` pixels, crop back to ``H x W`` at a uniformly random
    offset, and flip left-right with probability 1/2.

    Args:
      key: a PRNG key; the result is a function of ``(key, images)`` only.
      images: ``(B, H, W, C)``, any dtype.

    Returns:
      ``(B, H, W, C)``, same dtype.
    """
    b, h, w, c = images.shape
    crop_key, flip_key = jax.random.split(key)
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(crop_key, (b, 2), 0, 2 * pad + 1)
    zero = jnp.zeros((), offsets.dtype)

    def crop(image, offset):
        return lax.dynamic_slice(image, (offset[0], offset[1], zero), (h, w, c))

    cropped = jax.vmap(crop)(padded, offsets)
    flip = jax.random.bernoulli(flip_key, 0.5, (b,))
    return jnp.where(flip[:, None, None, None], cropped[:, :, ::-1, :], cropped)


def augment_batch(key: jax.Array, images: jax.Array, kind: str) -> jax.Array:
    """Augments a batch ``(B, H, W, C)``; ``kind`` is ``"none"`` (identity) or ``"cifar"``.

    ``"cifar"``: 4-pixel zero padding, random ``H x W`` crop and random horizontal flip, drawn
    independently per example from ``key``. Shape and dtype are kept.
    """
    if kind == "none":
        return images
    if kind == "cifar":
        return random_crop_flip(key, images, CIFAR_PAD)
    raise ValueError(f"unknown augmentation {kind!r}; choose one of {', '.join(KINDS)}")


def normalize(images: jax.Array, mean: Sequence[float], std: Sequence[float], pixel_scale: float) -> jax.Array:
    """``(images / pixel_scale - mean) / std`` as float32, mean and std per channel (last axis).

    Args:
      images: ``(..., C)`` uint8 pixels or float values.
      mean, std: ``(C,)`` statistics of ``images / pixel_scale``.
      pixel_scale: 255.0 for uint8 pixels, 1.0 for float data.
    """
    x = jnp.asarray(images).astype(jnp.float32) / jnp.float32(pixel_scale)
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
