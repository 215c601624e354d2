"""The compiled programs of a training run: init, a chunk of steps in one ``lax.scan``, eval.

Everything is written for one replicate and ``jax.vmap``-ed over the leading replicate axis of
the state and the mask; the dataset is shared (unbatched). The steps between two evaluations run
inside one ``lax.scan`` under ``jax.jit`` with the state donated, so a chunk costs one dispatch
and no host synchronisation per step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxlth.data import augment as augment_lib
from jaxlth.data import batching
from jaxlth.pruning import masks as mask_lib
from jaxlth.training.state import TrainState

PyTree = Any


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """The dataset on the device. Images stay in their stored dtype (uint8 for pixels)."""

    train_images: jax.Array
    train_labels: jax.Array
    test_images: jax.Array
    test_labels: jax.Array


jax.tree_util.register_dataclass(
    DeviceData, data_fields=["train_images", "train_labels", "test_images", "test_labels"], meta_fields=[]
)


def to_device(dataset) -> DeviceData:
    """Puts a :class:`~jaxlth.data.dataset.Dataset`'s arrays on the default device."""
    return DeviceData(
        jnp.asarray(dataset.train_images),
        jnp.asarray(dataset.train_labels, jnp.int32),
        jnp.asarray(dataset.test_images),
        jnp.asarray(dataset.test_labels, jnp.int32),
    )


@dataclasses.dataclass(frozen=True)
class Spec:
    """Static facts a program is compiled for."""

    batch_size: int
    steps_per_epoch: int
    num_train: int
    image_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_scale: float
    augmentation: str
    eval_batch_size: int


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``(B,)`` softmax cross-entropy of integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


class Program:
    """The jitted functions of one training setup (model, optimizer, schedule, data layout)."""

    def __init__(self, model: nn.Module, tx: optax.GradientTransformation, schedule: Callable, spec: Spec):
        self.model = model
        self.tx = tx
        self.schedule = schedule
        self.spec = spec
        self.init = jax.jit(jax.vmap(self._init_one))
        self.train_chunk = jax.jit(self._train_chunk, static_argnames="num_steps", donate_argnums=0)
        self.evaluate = jax.jit(jax.vmap(self._evaluate_one, in_axes=(0, 0, None, None)))
        self.fresh_opt_state = jax.jit(jax.vmap(tx.init))

    # ----- one replicate -------------------------------------------------------------------------
    def _variables(self, params, batch_stats):
        return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}

    def _init_one(self, init_key: jax.Array, data_key: jax.Array) -> TrainState:
        dummy = jnp.zeros((1, *self.spec.image_shape), jnp.float32)
        variables = self.model.init(init_key, dummy, train=False)
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        return TrainState(params, batch_stats, self.tx.init(params), data_key)

    def _prepare(self, images: jax.Array) -> jax.Array:
        x = images.astype(jnp.float32) / self.spec.pixel_scale
        return augment_lib.normalize(x, self.spec.mean, self.spec.std, 1.0)

    def _loss(self, params, batch_stats, x, y):
        variables = self._variables(params, batch_stats)
        if batch_stats:
            logits, updates = self.model.apply(variables, x, train=True, mutable=["batch_stats"])
            batch_stats = updates["batch_stats"]
        else:
            logits = self.model.apply(variables, x, train=True)
        loss = jnp.mean(cross_entropy(logits, y))
        return loss, (batch_stats, jnp.mean(jnp.argmax(logits, -1) == y))

    def _step_one(self, state: TrainState, mask: PyTree, perms: jax.Array, first_epoch: jax.Array, step: jax.Array,
                  data: DeviceData):
        """One SGD step of one replicate at global ``step``; pruned weights stay exactly 0.

        ``perms`` holds this replicate's data orders of the epochs from ``first_epoch`` on.
        """
        spec = self.spec
        idx = batching.chunk_batch_indices(perms, first_epoch, step, spec.batch_size, spec.steps_per_epoch)
        x = data.train_images[idx].astype(jnp.float32) / spec.pixel_scale
        x = augment_lib.augment_batch(batching.augment_key(state.data_key, step), x, spec.augmentation)
        x = augment_lib.normalize(x, spec.mean, spec.std, 1.0)
        y = data.train_labels[idx]
        (loss, (batch_stats, acc)), grads = jax.value_and_grad(self._loss, has_aux=True)(
            state.params, state.batch_stats, x, y
        )
        grads = mask_lib.apply(grads, mask)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        lr = self.schedule(step)
        params = jax.tree.map(lambda p, u: p - (lr * u).astype(p.dtype), state.params, updates)
        params = mask_lib.apply(params, mask)
        return state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state), (loss, acc)

    def _evaluate_one(self, params, batch_stats, images: jax.Array, labels: jax.Array):
        """``(mean loss, accuracy)`` of one replicate on a whole split, in eval mode."""
        n = images.shape[0]
        size = min(self.spec.eval_batch_size, n)
        num_batches = -(-n // size)
        pad = num_batches * size - n
        images = jnp.pad(images, [(0, pad)] + [(0, 0)] * (images.ndim - 1))
        labels = jnp.pad(labels, (0, pad))
        valid = jnp.arange(num_batches * size) < n
        batches = (
            images.reshape(num_batches, size, *images.shape[1:]),
            labels.reshape(num_batches, size),
            valid.reshape(num_batches, size),
        )
        variables = self._variables(params, batch_stats)

        def one_batch(carry, batch):
            x, y, ok = batch
            logits = self.model.apply(variables, self._prepare(x), train=False)
            loss = jnp.sum(jnp.where(ok, cross_entropy(logits, y), 0.0))
            correct = jnp.sum(jnp.where(ok, jnp.argmax(logits, -1) == y, False))
            return (carry[0] + loss, carry[1] + correct), None

        (loss, correct), _ = lax.scan(one_batch, (jnp.float32(0), jnp.int32(0)), batches)
        return loss / n, correct / n

    # ----- all replicates ------------------------------------------------------------------------
    def _train_chunk(self, state: TrainState, mask: PyTree, data: DeviceData, start_step: jax.Array, *, num_steps: int):
        """Trains all replicates from global ``start_step`` for ``num_steps`` steps.

        Returns the new state and ``(loss, accuracy)`` of the training batches, each ``(R,)``
        averaged over the chunk's steps.
        """
        spec = self.spec
        start_step = jnp.asarray(start_step, jnp.int32)
        first_epoch = start_step // spec.steps_per_epoch
        num_epochs = batching.epochs_touched(num_steps, spec.steps_per_epoch)
        perms = jax.vmap(batching.chunk_permutations, (0, None, None, None))(
            state.data_key, first_epoch, num_epochs, spec.num_train
        )
        step_all = jax.vmap(self._step_one, in_axes=(0, 0, 0, None, None, None))

        def body(state, step):
            return step_all(state, mask, perms, first_epoch, step, data)

        steps = start_step + jnp.arange(num_steps, dtype=jnp.int32)
        state, (loss, acc) = lax.scan(body, state, steps)
        return state, (jnp.mean(loss, axis=0), jnp.mean(acc, axis=0))
