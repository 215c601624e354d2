"""The compiled programs of a run whose data streams from the host (:mod:`jaxlth.data.streaming`).

A :class:`StreamProgram` is a :class:`~jaxlth.training.program.Program` whose chunk takes its
batches as an argument: the host reads the ``T`` steps' batches of the replicates this process
holds, they are placed like the states (replicate axis sharded), and one ``lax.scan`` runs the
same SGD step (:meth:`Program._update`) over them (conv nets on a CPU: a host loop over one
compiled step, run for one replicate at a time, as :class:`Program` does). Evaluation streams the
split in batches and averages over all its examples. Chunks are at most ``data.stream_chunk_steps``
long (the batches of a chunk are on the device at once); the loop cuts every segment at multiples
of it, so a resumed run executes the same chunks.
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
from jaxlth.training import per_replicate
from jaxlth.training.program import Program
from jaxlth.training.state import TrainState

PyTree = Any


class StreamProgram(Program):
    """A :class:`Program` fed by a :class:`~jaxlth.data.streaming.Stream` (``data`` arguments are it)."""

    def __init__(self, model, tx, schedule, spec, stream: Stream, mesh: Mesh | None):
        super().__init__(model, tx, schedule, spec)
        self.stream, self.mesh = stream, mesh
        if spec.looped:  # conv nets on a CPU: one compiled step per call, as Program does
            self._step_of_all = jax.jit(jax.vmap(self._step_given, in_axes=(0, 0, 0, 0, None)), donate_argnums=0)
            alone = spec.step_loop == "replicates"
            self._train_given = self._train_given_by_replicate if alone else self._train_given_on_host
        else:
            self._train_given = jax.jit(self._train_given_chunk, donate_argnums=0)
        self.train_chunk = self._train_streamed  # in place of the device-data chunk Program compiles

    def _steps_sharding(self) -> NamedSharding:
        """``(T, R, B, ...)`` batches: replicates as the states, examples over the batch axis if split."""
        batch = sharding.BATCH if sharding.batch_split(self.mesh) > 1 else None
        return NamedSharding(self.mesh, PartitionSpec(None, sharding.AXIS, batch))

    def local_part(self, count: int) -> tuple[list[int], list[int]]:
        """``(replicates, positions)``: the replicates and the positions in their batches whose
        examples this process's devices hold (all of them in a single process)."""
        size = self.spec.batch_size
        if self.mesh is None:
            return list(range(count)), list(range(size))
        shards = self._steps_sharding().addressable_devices_indices_map((1, count, size))
        replicates = sorted({r for index in shards.values() for r in range(count)[index[1]]})
        positions = sorted({j for index in shards.values() for j in range(size)[index[2]]})
        return replicates, positions

    def _train_streamed(self, state: TrainState, mask: PyTree, data, start_step, *, num_steps: int):
        """Trains from ``start_step`` for ``num_steps`` steps on the streamed batches (``data`` is
        the stream). Returns the state and the chunk's mean ``(loss, accuracy)``, each ``(R,)``."""
        keys = sharding.to_host(state.data_key)
        replicates, positions = self.local_part(keys.shape[0])
        images, labels = self.stream.steps([tuple(keys[r]) for r in replicates], int(start_step), num_steps, positions)
        images, labels = (self._place_steps(x, replicates, positions, keys.shape[0]) for x in (images, labels))
        return self._train_given(state, mask, images, labels, jnp.asarray(start_step, jnp.int32))

    def _place_steps(self, local: np.ndarray, replicates: list[int], positions: list[int], count: int) -> jax.Array:
        """``(T, R_local, B_local, ...)`` host batches -> the global ``(T, R, B, ...)`` array."""
        if self.mesh is None:
            return jnp.asarray(local)
        row, column = {r: i for i, r in enumerate(replicates)}, {j: i for i, j in enumerate(positions)}
        size = self.spec.batch_size
        shape = (local.shape[0], count, size, *local.shape[3:])

        def part(index):
            rows = [row[r] for r in range(count)[index[1]]]
            columns = [column[j] for j in range(size)[index[2]]]
            return local[index[0]][:, rows][:, :, columns][(slice(None),) * 3 + tuple(index[3:])]

        return jax.make_array_from_callback(shape, self._steps_sharding(), part)

    def lower_training(self, state: TrainState, mask: PyTree, data, *, num_steps: int):
        """The program of a chunk of ``num_steps`` host batches (one step on the host loops, one replicate's
        with ``step_loop="replicates"``), lowered for these (possibly abstract) arguments; every replicate's
        whole batch on one device."""
        host = self.spec.looped
        state, mask = self._as_run(state), self._as_run(mask)
        batches = (*(() if host else (num_steps,)), state.data_key.shape[0], self.spec.batch_size)
        images = jax.ShapeDtypeStruct((*batches, *self.stream.dataset.image_shape), jnp.uint8)
        labels = jax.ShapeDtypeStruct(batches, jnp.int32)
        lowered = self._step_of_all if host else self._train_given
        return lowered.lower(state, mask, images, labels, jax.ShapeDtypeStruct((), jnp.int32))

    def lower_evaluation(self, params: PyTree, batch_stats: PyTree, data):
        """The evaluation of one streamed batch of ``eval_batch_size`` examples, lowered."""
        size = self.stream.eval_batch_size
        return self._evaluate.lower(
            self._as_run(params),
            self._as_run(batch_stats),
            jax.ShapeDtypeStruct((size, *self.stream.dataset.image_shape), jnp.uint8),
            jax.ShapeDtypeStruct((size,), jnp.int32),
        )

    def _train_given_chunk(
        self, state: TrainState, mask: PyTree, images: jax.Array, labels: jax.Array, start_step: jax.Array
    ):
        step_all = jax.vmap(self._step_given, in_axes=(0, 0, 0, 0, None))

        def body(carry, batch):  # the metrics summed in step order, as the device-data chunk sums them
            x, y, step = batch
            state, (loss, acc) = step_all(carry[0], mask, x, y, step)
            return (state, carry[1] + loss, carry[2] + acc), None

        steps = start_step + jnp.arange(images.shape[0], dtype=jnp.int32)
        shapes = jax.eval_shape(step_all, state, mask, images[0], labels[0], steps[0])[1]
        zeros = tuple(jnp.zeros(s.shape, s.dtype) for s in shapes)
        (state, loss_sum, acc_sum), _ = lax.scan(body, (state, *zeros), (images, labels, steps))
        count = jnp.float32(images.shape[0])
        return state, (loss_sum / count, acc_sum / count)

    def _train_given_on_host(
        self, state: TrainState, mask: PyTree, images: jax.Array, labels: jax.Array, start_step: jax.Array
    ):
        """:meth:`_train_given_chunk` as a host loop over one compiled step (``spec.looped``)."""
        metrics = []
        for t in range(images.shape[0]):
            state, step_metrics = self._step_of_all(state, mask, images[t], labels[t], start_step + t)
            metrics.append(step_metrics)
        return state, per_replicate.mean_in_step_order(metrics)

    def _train_given_by_replicate(
        self, state: TrainState, mask: PyTree, images: jax.Array, labels: jax.Array, start_step: jax.Array
    ):
        """:meth:`_train_given_on_host` one replicate at a time (``spec.step_loop="replicates"``), each
        bitwise a one-replicate run; a state on several devices keeps the vmapped step."""
        if not per_replicate.on_one_device((state, mask, images)):
            return self._train_given_on_host(state, mask, images, labels, start_step)

        def chunk(state, mask, images, labels):  # (1, T, B, ...) batches: back to (T, 1, B, ...)
            images, labels = jnp.swapaxes(images, 0, 1), jnp.swapaxes(labels, 0, 1)
            return self._train_given_on_host(state, mask, images, labels, start_step)

        images, labels = jnp.swapaxes(images, 0, 1), jnp.swapaxes(labels, 0, 1)  # replicates first
        return per_replicate.each(chunk, state, mask, images, labels)

    def _step_given(self, state: TrainState, mask: PyTree, images: jax.Array, labels: jax.Array, step: jax.Array):
        """One SGD step of one replicate on a host-augmented batch of stored images."""
        state, (loss, correct) = self._update(state, mask, self.preprocess(images), labels, step)
        return state, (loss, jnp.mean(correct))

    def evaluate_data(self, params: PyTree, batch_stats: PyTree, data, split: str) -> tuple[jax.Array, jax.Array]:
        """``(R,)`` mean loss and accuracy over the whole streamed ``split``."""
        loss_sum, correct_sum, n = 0.0, 0.0, 0
        split_over = sharding.batch_split(self.mesh)
        for images, labels in self.stream.eval_batches(split):
            if split_over > 1 and len(labels) % split_over == 0:  # examples over the batch axis, as in training
                target = NamedSharding(self.mesh, PartitionSpec(sharding.BATCH))
                images, labels = sharding.put(images, target), sharding.put(labels, target)
            else:
                images, labels = sharding.replicate((jnp.asarray(images), jnp.asarray(labels)), self.mesh)
            loss, acc = sharding.to_host(self.evaluate(params, batch_stats, images, labels))
            count = int(labels.shape[0])
            loss_sum = loss_sum + loss.astype(np.float64) * count
            correct_sum, n = correct_sum + acc.astype(np.float64) * count, n + count
        return (loss_sum / n).astype(np.float32), (correct_sum / n).astype(np.float32)

    def data_state(self, step: int) -> dict:
        """The Grain iterator's state before ``step``: checkpoints record it."""
        return {"data_iterator": self.stream.iterator_state(step)}
