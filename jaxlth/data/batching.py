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

from jaxlth import rng


def order_key(data_key: jax.Array) -> jax.Array:
    """The key that fixes the data order (one replicate)."""
    return rng.ORDER.key(data_key)


def augment_key(data_key: jax.Array, step: jax.Array) -> jax.Array:
    """The key for the augmentation of the batch at global ``step`` (one replicate)."""
    return jax.random.fold_in(rng.AUGMENT.key(data_key), step)


def epoch_permutation(data_key: jax.Array, epoch: jax.Array, num_examples: int) -> jax.Array:
    """``(num_examples,)`` int32: the order in which epoch ``epoch`` visits the training set."""
    return jax.random.permutation(jax.random.fold_in(order_key(data_key), epoch), num_examples)


def batch_indices(permutation: jax.Array, step: jax.Array, batch_size: int, steps_per_epoch: int) -> jax.Array:
    """``(batch_size,)`` indices of the batch at global ``step``, given that epoch's permutation."""
    start = (step % steps_per_epoch) * batch_size
    return lax.dynamic_slice(permutation, (start,), (batch_size,))


def chunk_permutations(data_key: jax.Array, first_epoch: jax.Array, num_epochs: int, num_examples: int) -> jax.Array:
    """``(num_epochs, num_examples)``: the orders of epochs ``first_epoch, first_epoch + 1, ...``.

    A training chunk computes the orders of all epochs it touches once, up front, so that the
    per-step work is a slice (a conditional inside the step loop costs ~10% on a CPU).
    """
    epochs = first_epoch + jnp.arange(num_epochs)
    return jax.vmap(epoch_permutation, (None, 0, None))(data_key, epochs, num_examples)


def chunk_batch_indices(
    permutations: jax.Array, first_epoch: jax.Array, step: jax.Array, batch_size: int, steps_per_epoch: int
) -> jax.Array:
    """``(batch_size,)`` indices at global ``step`` from :func:`chunk_permutations`' output."""
    row = step // steps_per_epoch - first_epoch
    start = (step % steps_per_epoch) * batch_size
    return lax.dynamic_slice(permutations, (row, start), (1, batch_size))[0]


def epochs_touched(num_steps: int, steps_per_epoch: int) -> int:
    """How many epochs a run of ``num_steps`` consecutive steps can touch, wherever it starts."""
    return -(-num_steps // steps_per_epoch) + 1


def indices_at(data_key: jax.Array, step: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """``(batch_size,)`` indices of the batch at global ``step`` computed from scratch (reference)."""
    steps_per_epoch = num_examples // batch_size
    perm = epoch_permutation(data_key, step // steps_per_epoch, num_examples)
    return batch_indices(perm, step, batch_size, steps_per_epoch)
