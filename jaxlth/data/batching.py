"""Device-resident batching: the batch at global step ``s`` is a pure function of ``(key, s)``.

Each epoch ``e = s // steps_per_epoch`` visits the training set in the order of
``permutation(fold_in(order_key, e))``; step ``s`` takes the slice
``[(s % steps_per_epoch) * batch_size, ... + batch_size)`` of it, and the ``N % batch_size``
examples left at the end of an epoch are dropped. Augmentation noise at step ``s`` comes from
``fold_in(augment_key, s)``. Nothing depends on where a run started, so resuming is exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

ORDER_STREAM = 0
AUGMENT_STREAM = 1


def order_key(data_key: jax.Array) -> jax.Array:
    """The key that fixes the data order (one replicate)."""
    return jax.random.fold_in(data_key, ORDER_STREAM)


def augment_key(data_key: jax.Array, step: jax.Array) -> jax.Array:
    """The key for the augmentation of the batch at global ``step`` (one replicate)."""
    return jax.random.fold_in(jax.random.fold_in(data_key, AUGMENT_STREAM), step)


def epoch_permutation(data_key: jax.Array, epoch: jax.Array, num_examples: int) -> jax.Array:
    """``(num_examples,)`` int32: the order in which epoch ``epoch`` visits the training set."""
    return jax.random.permutation(jax.random.fold_in(order_key(data_key), epoch), num_examples)


def batch_indices(permutation: jax.Array, step: jax.Array, batch_size: int, steps_per_epoch: int) -> jax.Array:
    """``(batch_size,)`` indices of the batch at global ``step``, given that epoch's permutation."""
    start = (step % steps_per_epoch) * batch_size
    return lax.dynamic_slice(permutation, (start,), (batch_size,))


def indices_at(data_key: jax.Array, step: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """``(batch_size,)`` indices of the batch at global ``step`` computed from scratch (reference)."""
    steps_per_epoch = num_examples // batch_size
    perm = epoch_permutation(data_key, step // steps_per_epoch, num_examples)
    return batch_indices(perm, step, batch_size, steps_per_epoch)
