"""Evaluation of a text model on a whole split: its loss and its task's metrics, in one program.

Classification and regression (GLUE): the split is run in batches of ``spec.eval_batch_size`` (the
last padded), each example's loss and prediction kept, and the task's metrics
(:mod:`jaxlth.training.metrics`) computed over the ``N`` real examples on the device: F1, Matthews
correlation and the correlations are not means over batches. Masked-language modelling: every
example's predicted tokens are fixed (stream ``MLM_EVAL`` folded with the example's index, so every
evaluation of every run predicts the same tokens); the loss and the accuracy are means over all
predicted tokens of the split.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxlth.data.text import masking
from jaxlth.training import metrics as metrics_lib
from jaxlth.training import objectives


def _batched(arrays, size: int):
    """``arrays`` (each ``(N, ...)``) padded to a multiple of ``size`` and split ``(batches, size, ...)``."""
    n = arrays[0].shape[0]
    batches = -(-n // size)
    pad = batches * size - n
    return tuple(jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(batches, size, *a.shape[1:]) for a in arrays)


def evaluate(forward, spec, tokens: jax.Array, labels: jax.Array) -> dict:
    """``{"loss", metric...}`` float32 scalars of one network on a split of ``(N, 2, T)`` tokens;
    ``forward(x)`` is the network's evaluation-mode output on a batch ``x``."""
    n, size = tokens.shape[0], min(spec.eval_batch_size, tokens.shape[0])
    objective = spec.objective
    x_all = tokens.astype(jnp.int32)
    if objective == objectives.MLM:
        inputs, targets = masking.eval_masks(x_all[:, 0], spec.text)
        x_all = x_all.at[:, 0].set(inputs)

        def mlm_batch(carry, batch):
            x, y = batch
            out = forward(x)
            predicted = y >= 0
            losses = objectives.per_example(objective, out, y) * jnp.sum(predicted, -1)
            right = jnp.sum((jnp.argmax(out, -1) == y) & predicted)
            return (carry[0] + jnp.sum(losses), carry[1] + right, carry[2] + jnp.sum(predicted)), None

        zero = (jnp.float32(0), jnp.int32(0), jnp.int32(0))
        (loss, right, count), _ = lax.scan(mlm_batch, zero, _batched((x_all, targets), size))
        count = jnp.maximum(count, 1)
        return {"loss": loss / count, "accuracy": right / count}

    def one_batch(_, batch):
        x, y = batch
        out = forward(x)
        return None, (objectives.per_example(objective, out, y), objectives.predictions(objective, out))

    _, (losses, predictions) = lax.scan(one_batch, None, _batched((x_all, labels), size))
    losses, predictions = losses.reshape(-1)[:n], predictions.reshape(-1)[:n]
    out = {"loss": jnp.mean(losses)}
    out.update(metrics_lib.task_metrics(spec.text.metrics, predictions, labels))
    return out
