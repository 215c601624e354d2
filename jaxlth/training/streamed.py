"""The compiled programs of a run whose data streams from the host (:mod:`jaxlth.data.streaming`).

A :class:`StreamProgram` is a :class:`~jaxlth.training.program.Program` whose chunk takes its
batches as an argument: the host reads the ``T`` steps' batches of the replicates this process
holds, they are placed like the states (replicate axis sharded), and one ``lax.scan`` runs the
same SGD step (:meth:`Program._update`) over them. Evaluation streams the split in batches and
averages over all its examples. Chunks are at most ``chunk_steps`` long (the batches of a chunk
are on the device at once); the loop cuts every segment at multiples of it, so a resumed run
executes the same chunks.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxlth import sharding
from jaxlth.data.streaming import Stream
from jaxlth.training.program import Program
from jaxlth.training.state import TrainState

PyTree = Any


class StreamProgram(Program):
    """A :class:`Program` fed by a :class:`~jaxlth.data.streaming.Stream` (``data`` arguments are it)."""

    def __init__(self, model, tx, schedule, spec, stream: Stream, mesh: Mesh | None, chunk_steps: int):
        super().__init__(model, tx, schedule, spec)
        self.stream, self.mesh, self.chunk_steps = stream, mesh, chunk_steps
        self._train_given = jax.jit(self._train_given_chunk, donate_argnums=0)
        self.train_chunk = self._train_streamed  # in place of the device-data chunk Program compiles

    def local_replicates(self, count: int) -> list[int]:
        """The replicates whose states this process holds (all of them in a single process)."""
        if self.mesh is None:
            return list(range(count))
        rows = NamedSharding(self.mesh, PartitionSpec(sharding.AXIS)).addressable_devices_indices_map((count,))
        return sorted({r for index in rows.values() for r in range(count)[index[0]]})

    def _train_streamed(self, state: TrainState, mask: PyTree, data, start_step, *, num_steps: int):
        """Trains from ``start_step`` for ``num_steps`` steps on the streamed batches (``data`` is
        the stream). Returns the state and the chunk's mean ``(loss, accuracy)``, each ``(R,)``."""
        keys = sharding.to_host(state.data_key)
        local = self.local_replicates(keys.shape[0])
        images, labels = self.stream.steps([tuple(keys[r]) for r in local], int(start_step), num_steps)
        images, labels = (self._place_steps(x, local, keys.shape[0]) for x in (images, labels))
        return self._train_given(state, mask, images, labels, jnp.asarray(start_step, jnp.int32))

    def _place_steps(self, local_rows: np.ndarray, local: list[int], count: int) -> jax.Array:
        """``(T, R_local, ...)`` host batches -> the global ``(T, R, ...)`` array, replicate axis sharded."""
        if self.mesh is None:
            return jnp.asarray(local_rows)
        target = NamedSharding(self.mesh, PartitionSpec(None, sharding.AXIS))
        position = {r: i for i, r in enumerate(local)}
        shape = (local_rows.shape[0], count, *local_rows.shape[2:])

        def rows(index):
            wanted = range(count)[index[1]]
            return local_rows[index[0]][:, [position[r] for r in wanted]][(slice(None), slice(None), *index[2:])]

        return jax.make_array_from_callback(shape, target, rows)

    def _train_given_chunk(self, state: TrainState, mask: PyTree, images: jax.Array, labels: jax.Array,
                           start_step: jax.Array):
        step_all = jax.vmap(self._step_given, in_axes=(0, 0, 0, 0, None))

        def body(state, batch):
            x, y, step = batch
            return step_all(state, mask, x, y, step)

        steps = start_step + jnp.arange(images.shape[0], dtype=jnp.int32)
        state, (loss, acc) = lax.scan(body, state, (images, labels, steps))
        return state, (jnp.mean(loss, axis=0), jnp.mean(acc, axis=0))

    def _step_given(self, state: TrainState, mask: PyTree, images: jax.Array, labels: jax.Array, step: jax.Array):
        """One SGD step of one replicate on a host-augmented batch of stored images."""
        state, (loss, correct) = self._update(state, mask, self.preprocess(images), labels, step)
        return state, (loss, jnp.mean(correct))

    def evaluate_data(self, params: PyTree, batch_stats: PyTree, data, split: str) -> tuple[jax.Array, jax.Array]:
        """``(R,)`` mean loss and accuracy over the whole streamed ``split``."""
        loss_sum, correct_sum, n = 0.0, 0.0, 0
        for images, labels in self.stream.eval_batches(split):
            images, labels = sharding.replicate((jnp.asarray(images), jnp.asarray(labels)), self.mesh)
            loss, acc = sharding.to_host(self.evaluate(params, batch_stats, images, labels))
            count = int(labels.shape[0])
            loss_sum = loss_sum + loss.astype(np.float64) * count
            correct_sum, n = correct_sum + acc.astype(np.float64) * count, n + count
        return (loss_sum / n).astype(np.float32), (correct_sum / n).astype(np.float32)

    def data_state(self, step: int) -> dict:
        """The Grain iterator's state before ``step``: checkpoints record it."""
        return {"data_iterator": self.stream.iterator_state(step)}
