"""The pure functions of one replicate that training, evaluation and every analysis are built from.

Nothing here is jitted or vmapped (:class:`jaxlth.training.program.Program` does that): each
function takes one network's ``params`` and ``batch_stats`` (``{}`` for models without
BatchNorm) and arrays without a replicate axis, so a Hessian-vector product, a per-example
gradient or a saliency score composes them with ``jax.grad``/``jax.vmap`` directly.

Images come as stored (uint8 pixels, or floats for mnist1d and distilled sets) with shape
``(B, *image_shape)``; labels are int32 ``(B,)`` (or a distilled set's float32 ``(B, K)`` soft targets).
Text comes as int32 tokens ``(B, 2, T)`` (:class:`~jaxlth.data.dataset.Text`),
its labels per its objective (:mod:`jaxlth.training.objectives`). ``spec`` is a :class:`Spec`: the
static facts of the data layout.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxlth import rng
from jaxlth.data import augment as augment_lib
from jaxlth.data import batching
from jaxlth.data.text import masking
from jaxlth.training import objectives, text_eval

PyTree = Any


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
    dtype: str = "float32"  # of activations and matmuls; "bfloat16": mixed precision (weights stay float32)
    step_loop: str = "scan"  # "scan": a chunk's steps in one lax.scan; "host": one compiled step per call;
    # "replicates": the host loop run for one replicate at a time (conv nets on a CPU: training.per_replicate)
    text: Any = None  # a text dataset's jaxlth.data.dataset.Text (tokens, objective, metrics); None for images

    @property
    def looped(self) -> bool:
        """Whether a chunk is a host loop over one compiled step (``step_loop`` ``host`` or ``replicates``)."""
        return self.step_loop in ("host", "replicates")

    @property
    def objective(self) -> str:
        """``classify``, ``regress`` or ``mlm`` (:mod:`jaxlth.training.objectives`)."""
        return objectives.objective_of(self.text)


class MixedPrecision:
    """``model`` computing in ``dtype`` (bfloat16): its float32 parameters and the inputs are cast
    for the forward pass (the gradients flow back to the float32 master weights), BatchNorm keeps
    its running statistics in float32 (they are not cast; Flax reduces in float32), and the logits
    come back as float32. Stands in for the Flax module wherever ``apply`` is called."""

    def __init__(self, model: nn.Module, dtype: str):
        self.model, self.dtype = model, jnp.dtype(dtype)

    def apply(self, variables: dict, x: jax.Array, **kwargs):
        cast = jax.tree.map(lambda p: p.astype(self.dtype) if p.dtype == jnp.float32 else p, variables["params"])
        x = x.astype(self.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x  # tokens stay ints
        out = self.model.apply(dict(variables, params=cast), x, **kwargs)
        if isinstance(out, tuple):  # (logits, updated collections)
            return out[0].astype(jnp.float32), out[1]
        return out.astype(jnp.float32)

    def init(self, *args, **kwargs):
        return self.model.init(*args, **kwargs)


def computing_in(model: nn.Module, dtype: str):
    """``model`` itself for float32, else :class:`MixedPrecision`."""
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16, got {dtype!r}")
    return model if dtype == "float32" else MixedPrecision(model, dtype)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``(B,)`` softmax cross-entropy of integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def variables(params: PyTree, batch_stats: PyTree) -> dict:
    """The Flax variables of a network (no ``batch_stats`` collection when it has none)."""
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def preprocess(images: jax.Array, spec: Spec) -> jax.Array:
    """Stored images -> normalised float32 network inputs, unaugmented (evaluation, analyses); text
    tokens as they are (int32)."""
    if spec.text is not None:
        return images.astype(jnp.int32)
    x = images.astype(jnp.float32) / spec.pixel_scale
    return augment_lib.normalize(x, spec.mean, spec.std, 1.0)


def augmented(images: jax.Array, key: jax.Array, spec: Spec) -> jax.Array:
    """Stored images -> augmented (``spec.augmentation``, noise from ``key``), normalised inputs."""
    x = images.astype(jnp.float32) / spec.pixel_scale
    x = augment_lib.augment_batch(key, x, spec.augmentation)
    return augment_lib.normalize(x, spec.mean, spec.std, 1.0)


def logits(
    model: nn.Module, params: PyTree, batch_stats: PyTree, x: jax.Array, train: bool = False, *, dropout_key=None
):
    """``((B, classes) logits, batch_stats)`` of preprocessed inputs ``x``.

    ``train=True`` normalises with the batch's own BatchNorm statistics and returns the updated
    running statistics; ``train=False`` uses the running statistics and returns them unchanged.
    ``dropout_key`` (with ``train=True``) drives the dropout of models that have it (BERT); without
    it they compute deterministically.
    """
    rngs = {"dropout": dropout_key} if train and dropout_key is not None else None
    if train and batch_stats:
        out, updates = model.apply(variables(params, batch_stats), x, train=True, mutable=["batch_stats"], rngs=rngs)
        return out, updates["batch_stats"]
    return model.apply(variables(params, batch_stats), x, train=train, rngs=rngs), batch_stats


def per_example_loss(
    model, params, batch_stats, x, y, train: bool = False, *, objective: str = objectives.CLASSIFY, dropout_key=None
):
    """``((B,) loss, (B, classes) logits, batch_stats)`` of preprocessed inputs ``x`` (the loss of
    ``objective``: cross-entropy for images)."""
    out, batch_stats = logits(model, params, batch_stats, x, train, dropout_key=dropout_key)
    return objectives.per_example(objective, out, y), out, batch_stats


def mean_loss(
    model, params, batch_stats, x, y, train: bool = True, *, objective: str = objectives.CLASSIFY, dropout_key=None
):
    """The training objective: ``(mean loss, (batch_stats, correct))``; differentiable in ``params``.

    ``correct`` is ``(B,)``: whether each example's prediction is right (bool; its mean is the
    batch accuracy; see :func:`jaxlth.training.objectives.correct` for text).
    """
    out, batch_stats = logits(model, params, batch_stats, x, train, dropout_key=dropout_key)
    loss = objectives.batch_loss(objective, out, y)
    return loss, (batch_stats, objectives.correct(objective, out, y))


def loss_and_grads(
    model, params, batch_stats, x, y, train: bool = True, *, objective: str = objectives.CLASSIFY, dropout_key=None
):
    """``((mean loss, (batch_stats, correct)), grads)``: :func:`mean_loss` and its gradient in ``params``."""

    def loss(p):
        return mean_loss(model, p, batch_stats, x, y, train, objective=objective, dropout_key=dropout_key)

    return jax.value_and_grad(loss, has_aux=True)(params)


def dropout_key(data_key: jax.Array, step, spec: Spec):
    """The dropout key of global ``step`` (one replicate) for text models; ``None`` for images."""
    return None if spec.text is None else jax.random.fold_in(rng.DROPOUT.key(data_key), step)


def evaluate(model, spec: Spec, params, batch_stats, images: jax.Array, labels: jax.Array):
    """``(mean loss, accuracy)`` on a whole split of stored images, in eval mode, in batches of
    ``spec.eval_batch_size`` (the last one padded and masked). For text, the second value is the
    task's main metric (:func:`evaluate_metrics`)."""
    if spec.text is not None:
        out = evaluate_metrics(model, spec, params, batch_stats, images, labels)
        return out["loss"], out[spec.text.metrics[0]]
    n = images.shape[0]
    size = min(spec.eval_batch_size, n)
    num_batches = -(-n // size)
    pad = num_batches * size - n
    images = jnp.pad(images, [(0, pad)] + [(0, 0)] * (images.ndim - 1))
    labels = jnp.pad(labels, [(0, pad)] + [(0, 0)] * (labels.ndim - 1))
    valid = jnp.arange(num_batches * size) < n
    batches = (
        images.reshape(num_batches, size, *images.shape[1:]),
        labels.reshape(num_batches, size, *labels.shape[1:]),
        valid.reshape(num_batches, size),
    )

    def one_batch(carry, batch):
        x, y, ok = batch
        losses, out, _ = per_example_loss(model, params, batch_stats, preprocess(x, spec), y, train=False)
        loss = jnp.sum(jnp.where(ok, losses, 0.0))
        correct = jnp.sum(jnp.where(ok, objectives.correct(objectives.CLASSIFY, out, y), False))
        return (carry[0] + loss, carry[1] + correct), None

    (loss, correct), _ = lax.scan(one_batch, (jnp.float32(0), jnp.int32(0)), batches)
    return loss / n, correct / n


def evaluate_metrics(model, spec: Spec, params, batch_stats, images: jax.Array, labels: jax.Array) -> dict:
    """``{"loss": ..., metric: ...}`` on a whole split: ``accuracy`` for images, the task's metrics
    (:mod:`jaxlth.training.metrics`) for text; each a float32 scalar."""
    if spec.text is None:
        loss, accuracy = evaluate(model, spec, params, batch_stats, images, labels)
        return {"loss": loss, "accuracy": accuracy}
    return text_eval.evaluate(lambda x: logits(model, params, batch_stats, x)[0], spec, images, labels)


def init(model, spec: Spec, init_key: jax.Array) -> tuple[PyTree, PyTree]:
    """``(params, batch_stats)`` of a freshly initialised network."""
    dummy = jnp.zeros((1, *spec.image_shape), jnp.int32 if spec.text is not None else jnp.float32)
    initial = model.init(init_key, dummy, train=False)
    return initial["params"], initial.get("batch_stats", {})


def train_batch(
    images: jax.Array,
    labels: jax.Array,
    data_key: jax.Array,
    perms: jax.Array,
    first_epoch,
    step,
    spec: Spec,
    examples: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(x, y, indices)``: the augmented, normalised training batch of global ``step`` (one replicate)
    and the ``(B,)`` indices of its examples in ``images``.

    ``perms`` holds the replicate's data orders of the epochs from ``first_epoch`` on
    (:func:`jaxlth.data.batching.chunk_permutations`), permutations of ``spec.num_train``
    positions; with ``examples`` (``(spec.num_train,)`` indices into ``images``) a position is the
    example ``examples[position]``, else the example of that index.
    """
    idx = batching.chunk_batch_indices(perms, first_epoch, step, spec.batch_size, spec.steps_per_epoch)
    if examples is not None:
        idx = examples[idx]
    if spec.text is not None:
        x, y = images[idx].astype(jnp.int32), labels[idx]
        if spec.objective == objectives.MLM:
            inputs, y = masking.mask_tokens(jax.random.fold_in(rng.MLM_MASKS.key(data_key), step), x[:, 0], spec.text)
            x = x.at[:, 0].set(inputs)
        return x, y, idx
    return augmented(images[idx], batching.augment_key(data_key, step), spec), labels[idx], idx
