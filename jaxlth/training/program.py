"""The compiled programs of a training run: init, a chunk of steps in one loop, eval.

The per-replicate mathematics is in :mod:`jaxlth.training.functions`; a :class:`Program` only
binds it to one model, optimizer, schedule and data layout, ``jax.vmap``-s it over the leading
replicate axis of the state and the mask (the dataset is shared, unbatched), and ``jax.jit``-s
it. The steps between two evaluations run inside one ``lax.fori_loop`` with the state donated, so a
chunk costs one dispatch and no host synchronisation per step, and its length is a traced value: one
program serves every chunk that touches as many epochs; with ``spec.step_loop == "host"``
a chunk is a host loop over one compiled step instead (XLA:CPU runs convolutions in a loop ~30x more
slowly), and with ``"replicates"`` (conv nets on a CPU) that loop and the evaluations run one
replicate at a time, each the program of a one-replicate run (:mod:`~jaxlth.training.per_replicate`:
XLA:CPU's vmapped convolutions are slow grouped ones). ``spec.dtype == "bfloat16"`` runs the forward
passes in mixed precision (:class:`~jaxlth.training.functions.MixedPrecision`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxlth.data import batching
from jaxlth.pruning import masks as mask_lib
from jaxlth.training import functions as fn
from jaxlth.training import history as history_lib
from jaxlth.training import hyper, per_replicate
from jaxlth.training.functions import Spec, cross_entropy  # noqa: F401  (re-exported)
from jaxlth.training.state import ExampleState, TrainState

PyTree = Any


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """The dataset on the device. Images stay in their stored dtype (uint8 for pixels). ``extra_tests``:
    more evaluation splits ``{split: (inputs, labels)}`` (MNLI's ``test_mismatched``)."""

    train_images: jax.Array
    train_labels: jax.Array
    test_images: jax.Array
    test_labels: jax.Array
    extra_tests: dict = dataclasses.field(default_factory=dict)


jax.tree_util.register_dataclass(
    DeviceData,
    data_fields=["train_images", "train_labels", "test_images", "test_labels", "extra_tests"],
    meta_fields=[],
)


def _labels(labels) -> jax.Array:
    """Labels on the device: float32 scores (regression) stay floats, classes become int32."""
    labels = np.asarray(labels)
    return jax.device_put(labels.astype(np.float32 if np.issubdtype(labels.dtype, np.floating) else np.int32))


def to_device(dataset) -> DeviceData:
    """Puts a :class:`~jaxlth.data.dataset.Dataset`'s arrays on the default device (``device_put``:
    ``jnp.asarray`` would compile a program for each array's shape)."""
    extra = {split: (jax.device_put(x), _labels(y)) for split, (x, y) in getattr(dataset, "extra_tests", {}).items()}
    return DeviceData(
        jax.device_put(dataset.train_images),
        _labels(dataset.train_labels),
        jax.device_put(dataset.test_images),
        _labels(dataset.test_labels),
        extra,
    )


class Program:
    """The jitted, replicate-vmapped functions of one training setup.

    One replicate's functions are public attributes too (``evaluate_one``, ``preprocess``,
    ``per_example_loss``, ``loss_and_grads``: :mod:`~jaxlth.training.functions` bound to this
    model and spec) for analyses that compose them under their own ``jit``/``vmap``.
    """

    def __init__(
        self,
        model: nn.Module,
        tx: optax.GradientTransformation,
        schedule: Callable,
        spec: Spec,
        grid: hyper.Grid = hyper.NONE,
    ):
        self.model = model
        self.tx = tx
        self.schedule = schedule
        self.spec = spec
        self.grid = grid  # a hyper-parameter sweep's settings: each network's values in its optimizer state
        self.numbers = grid.numbers(spec.steps_per_epoch) if grid.fields else None
        computing = fn.computing_in(model, spec.dtype)  # the forward passes; parameters stay float32
        self.preprocess = functools.partial(fn.preprocess, spec=spec)
        self.evaluate_one = functools.partial(fn.evaluate, computing, spec)
        self.per_example_loss = functools.partial(fn.per_example_loss, computing, objective=spec.objective)
        self.loss_and_grads = functools.partial(fn.loss_and_grads, computing, objective=spec.objective)
        self.init = jax.jit(lambda init_keys, data_keys: self._placed(jax.vmap(self._init_one)(init_keys, data_keys)))
        if spec.looped:  # XLA:CPU runs convolutions ~30x slower inside a loop (jax#12868)
            self._steps = jax.jit(self._one_step_of_all, donate_argnums=0)
            self._perms = jax.jit(self._chunk_perms, static_argnames="num_epochs")
            alone = spec.step_loop == "replicates"
            self.train_chunk = self._train_chunk_by_replicate if alone else self._train_chunk_on_host
        else:
            # one program per number of epochs a chunk touches: its length is a traced value
            self._chunk = jax.jit(self._train_chunk, static_argnames="num_epochs", donate_argnums=0)
            self.train_chunk = self._train_chunk_of
        self._evaluate = jax.jit(jax.vmap(self.evaluate_one, in_axes=(0, 0, None, None)))
        metrics_one = functools.partial(fn.evaluate_metrics, computing, spec)
        self._evaluate_metrics = jax.jit(jax.vmap(metrics_one, in_axes=(0, 0, None, None)))
        self.evaluate, self.evaluate_metrics = self._evaluate, self._evaluate_metrics
        if spec.step_loop == "replicates":  # XLA:CPU's vmapped convolutions are grouped ones, slow
            self.evaluate = per_replicate.one_at_a_time(self._evaluate, 2)
            self.evaluate_metrics = per_replicate.one_at_a_time(self._evaluate_metrics, 2)
        self.fresh_opt_state = jax.jit(lambda params: hyper.place(jax.vmap(tx.init)(params), self.numbers))

    def _init_one(self, init_key: jax.Array, data_key: jax.Array) -> TrainState:
        params, batch_stats = fn.init(self.model, self.spec, init_key)
        return TrainState(params, batch_stats, self.tx.init(params), data_key)

    def _placed(self, state: TrainState) -> TrainState:
        """A stacked state whose optimizer states hold each network's swept values (setting-major)."""
        return state.replace(opt_state=hyper.place(state.opt_state, self.numbers)) if self.numbers else state

    def _step_one(
        self,
        state: TrainState,
        mask: PyTree,
        perms: jax.Array,
        first_epoch: jax.Array,
        step: jax.Array,
        data: DeviceData,
    ):
        """One SGD step of one replicate at global ``step``; pruned weights stay exactly 0.

        An :class:`ExampleState` trains on its ``examples`` and updates its ``history``.
        """
        chosen = isinstance(state, ExampleState)
        x, y, idx = fn.train_batch(
            data.train_images,
            data.train_labels,
            state.data_key,
            perms,
            first_epoch,
            step,
            self.spec,
            state.examples if chosen else None,
        )
        state, (loss, correct) = self._update(state, mask, x, y, step)
        if chosen and state.history:
            state = state.replace(history=history_lib.update(state.history, idx, correct))
        return state, (loss, jnp.mean(correct))

    def _update(self, state: TrainState, mask: PyTree, x: jax.Array, y: jax.Array, step: jax.Array):
        """The SGD update of one replicate on the preprocessed batch ``x``, ``y`` at global ``step``:
        ``(state, (loss, (B,) correct))``."""
        dropout = fn.dropout_key(state.data_key, step, self.spec)
        (loss, (batch_stats, correct)), grads = self.loss_and_grads(
            state.params, state.batch_stats, x, y, dropout_key=dropout
        )
        grads = mask_lib.apply(grads, mask)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        lr = self.schedule(step, **hyper.schedule_values(state.opt_state))  # a sweep: this network's lr, warmup
        params = jax.tree.map(lambda p, u: p - (lr * u).astype(p.dtype), state.params, updates)
        params = mask_lib.apply(params, mask)
        return state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state), (loss, correct)

    def evaluate_data(self, params: PyTree, batch_stats: PyTree, data: DeviceData, split: str):
        """``(R,)`` mean loss and accuracy of the stacked networks on a whole split (``"test"``/``"train"``)."""
        images, labels = (
            (data.test_images, data.test_labels) if split == "test" else (data.train_images, data.train_labels)
        )
        return self.evaluate(params, batch_stats, images, labels)

    def evaluate_splits(self, params: PyTree, batch_stats: PyTree, data: DeviceData, splits) -> dict:
        """``{split: {metric: (R,)}}``: the loss and the data's metrics (``accuracy`` for images, the
        task's for text) of the stacked networks on each of ``splits`` (``test``, ``train``, and the
        data's extra test splits)."""
        out = {}
        for split in splits:
            if split in ("test", "train"):
                images, labels = (
                    (data.test_images, data.test_labels) if split == "test" else (data.train_images, data.train_labels)
                )
            else:
                images, labels = data.extra_tests[split]
            out[split] = self.evaluate_metrics(params, batch_stats, images, labels)
        return out

    def data_state(self, step: int) -> dict:
        """What a checkpoint at ``step`` records about the input pipeline (nothing: the batches are
        computed on the device from the step)."""
        return {}

    def lower_training(self, state: TrainState, mask: PyTree, data: DeviceData, *, num_steps: int):
        """The training program a chunk of ``num_steps`` steps runs (one step on the host loops; one
        replicate's with ``step_loop="replicates"``), lowered for ``state``, ``mask`` and ``data`` (arrays
        or ``jax.ShapeDtypeStruct``: nothing runs). :mod:`jaxlth.training.memory` reads its memory."""
        step = jax.ShapeDtypeStruct((), jnp.int32)
        if self.spec.looped:
            state, mask = self._as_run(state), self._as_run(mask)
            first_epoch, perms = jax.eval_shape(
                functools.partial(self._chunk_perms, num_epochs=self._epochs(num_steps)), state.data_key, step
            )
            return self._steps.lower(state, mask, perms, first_epoch, step, data)
        return self._chunk.lower(state, mask, data, step, step, num_epochs=self._epochs(num_steps))

    def lower_evaluation(self, params: PyTree, batch_stats: PyTree, data: DeviceData):
        """The test-set evaluation, lowered like :meth:`lower_training`."""
        params, batch_stats = self._as_run(params), self._as_run(batch_stats)
        return self._evaluate.lower(params, batch_stats, data.test_images, data.test_labels)

    def held_bytes(self, inputs: PyTree, outputs: PyTree) -> int:
        """Bytes a chunk or an evaluation holds beside the program :meth:`lower_training` or
        :meth:`lower_evaluation` lowers: none (it takes the stacked ``inputs``), but with
        ``step_loop="replicates"`` the stacked ``inputs``, their one-replicate copies and the stacked
        ``outputs``."""
        return per_replicate.held_bytes(inputs, outputs) if self.spec.step_loop == "replicates" else 0

    def _as_run(self, stacked: PyTree) -> PyTree:
        """``stacked`` as the compiled programs take it: replicate 0's shapes with ``step_loop="replicates"``."""
        return per_replicate.first(stacked) if self.spec.step_loop == "replicates" else stacked

    def _epochs(self, num_steps: int) -> int:
        """How many epochs' data orders a chunk of ``num_steps`` steps needs, wherever it starts."""
        return batching.epochs_touched(num_steps, self.spec.steps_per_epoch)

    def _chunk_perms(self, data_key: jax.Array, start_step: jax.Array, *, num_epochs: int):
        """``(first_epoch, (R, num_epochs, N) orders)``: the data orders of the epochs from ``start_step``'s on."""
        spec = self.spec
        first_epoch = jnp.asarray(start_step, jnp.int32) // spec.steps_per_epoch
        perms = jax.vmap(batching.chunk_permutations, (0, None, None, None))(
            data_key, first_epoch, num_epochs, spec.num_train
        )
        return first_epoch, perms

    def _one_step_of_all(self, state, mask, perms, first_epoch, step, data):
        """Every replicate's step at global ``step`` (the body of a chunk)."""
        return jax.vmap(self._step_one, in_axes=(0, 0, 0, None, None, None))(
            state, mask, perms, first_epoch, step, data
        )

    def _train_chunk_on_host(self, state: TrainState, mask: PyTree, data: DeviceData, start_step, *, num_steps: int):
        """:meth:`_train_chunk` as a loop on the host over one compiled step (``spec.looped``)."""
        first_epoch, perms = self._perms(state.data_key, start_step, num_epochs=self._epochs(num_steps))
        metrics = []
        for step in range(int(start_step), int(start_step) + num_steps):
            state, step_metrics = self._steps(state, mask, perms, first_epoch, jnp.int32(step), data)
            metrics.append(step_metrics)
        return state, per_replicate.mean_in_step_order(metrics)

    def _train_chunk_by_replicate(self, state: TrainState, mask: PyTree, data: DeviceData, start_step, *, num_steps):
        """:meth:`_train_chunk_on_host` one replicate at a time (``spec.step_loop="replicates"``): each
        replicate's chunk is bitwise a one-replicate run's. A state on several devices keeps the vmapped step."""
        if not per_replicate.on_one_device((state, mask)):
            return self._train_chunk_on_host(state, mask, data, start_step, num_steps=num_steps)

        def chunk(state, mask):
            return self._train_chunk_on_host(state, mask, data, start_step, num_steps=num_steps)

        return per_replicate.each(chunk, state, mask)

    def _train_chunk_of(self, state: TrainState, mask: PyTree, data: DeviceData, start_step, *, num_steps: int):
        """Trains all replicates from global ``start_step`` for ``num_steps`` steps.

        Returns the new state and ``(loss, accuracy)`` of the training batches, each ``(R,)``
        averaged over the chunk's steps; chunks touching as many epochs share one compiled program.
        """
        num_epochs = self._epochs(num_steps)
        return self._chunk(state, mask, data, start_step, np.int32(num_steps), num_epochs=num_epochs)

    def _train_chunk(self, state: TrainState, mask: PyTree, data: DeviceData, start_step, num_steps, *, num_epochs):
        """:meth:`_train_chunk_of`, compiled: a loop of ``num_steps`` (traced) steps over ``num_epochs`` orders."""
        start_step = jnp.asarray(start_step, jnp.int32)
        first_epoch, perms = self._chunk_perms(state.data_key, start_step, num_epochs=num_epochs)

        def step(i, state):
            return self._one_step_of_all(state, mask, perms, first_epoch, start_step + i, data)

        def body(i, carry):
            state, (loss, acc) = step(i, carry[0])
            return state, carry[1] + loss.astype(jnp.float32), carry[2] + acc.astype(jnp.float32)

        zeros = jnp.zeros(state.data_key.shape[:1], jnp.float32)  # (R,): no second trace of the step for shapes
        state, loss_sum, acc_sum = lax.fori_loop(0, num_steps, body, (state, zeros, zeros))
        count = jnp.asarray(num_steps, jnp.float32)
        return state, (loss_sum / count, acc_sum / count)
