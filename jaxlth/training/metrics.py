"""GLUE's metrics over a whole split, in pure JAX: jittable, and vmappable over replicates.

Each metric is ``(predictions (N,), labels (N,)) -> float32 scalar``. Classification predictions are
class ids (the argmax of the logits), regression predictions the model's float outputs (:func:`predicted`
makes either from a model's outputs). F1 and Matthews correlation are binary, class 1 positive (MRPC,
QQP, CoLA). Where a metric is undefined it is 0, as scikit-learn reports it; so a constant predictor scores 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def accuracy(predictions: jax.Array, labels: jax.Array) -> jax.Array:
    """The fraction of ``predictions`` equal to ``labels``."""
    return jnp.mean(jnp.asarray(predictions) == jnp.asarray(labels), dtype=jnp.float32)


def _confusion(predictions: jax.Array, labels: jax.Array) -> tuple[jax.Array, ...]:
    """``(tp, fp, fn, tn)`` as float32 counts, class 1 positive."""
    p, t = jnp.asarray(predictions) == 1, jnp.asarray(labels) == 1
    return tuple(jnp.sum(mask, dtype=jnp.float32) for mask in (p & t, p & ~t, ~p & t, ~p & ~t))


def f1(predictions: jax.Array, labels: jax.Array) -> jax.Array:
    """Binary F1 of class 1: ``2 tp / (2 tp + fp + fn)``; 0 when nothing is predicted or labelled positive
    (scikit-learn's ``zero_division`` default)."""
    tp, fp, fn, _ = _confusion(predictions, labels)
    total = 2 * tp + fp + fn
    return jnp.where(total > 0, 2 * tp / jnp.maximum(total, 1), 0.0).astype(jnp.float32)


def mcc(predictions: jax.Array, labels: jax.Array) -> jax.Array:
    """Matthews correlation of binary predictions (CoLA's metric): in [-1, 1], 0 when undefined (a row or
    column of the confusion matrix empty), as ``sklearn.metrics.matthews_corrcoef``."""
    tp, fp, fn, tn = _confusion(predictions, labels)
    scale = jnp.sqrt((tp + fp) * (tp + fn)) * jnp.sqrt((tn + fp) * (tn + fn))
    return jnp.where(scale > 0, (tp * tn - fp * fn) / jnp.where(scale > 0, scale, 1.0), 0.0).astype(jnp.float32)


def pearson(predictions: jax.Array, labels: jax.Array) -> jax.Array:
    """Pearson's correlation coefficient; 0 when either is constant (``scipy.stats.pearsonr``: nan)."""
    x = jnp.asarray(predictions, jnp.float32)
    y = jnp.asarray(labels, jnp.float32)
    x, y = x - jnp.mean(x), y - jnp.mean(y)
    scale = jnp.sqrt(jnp.sum(x * x)) * jnp.sqrt(jnp.sum(y * y))
    return jnp.where(scale > 0, jnp.sum(x * y) / jnp.where(scale > 0, scale, 1.0), 0.0).astype(jnp.float32)


def ranks(values: jax.Array) -> jax.Array:
    """float32 ``(N,)`` ranks 1..N, tied values sharing their average rank (``scipy.stats.rankdata``)."""
    values = jnp.asarray(values)
    ordered = jnp.sort(values)
    below = jnp.searchsorted(ordered, values, side="left")  # values smaller: the first rank is below + 1
    through = jnp.searchsorted(ordered, values, side="right")  # values smaller or equal: the last rank
    return (below + through + 1).astype(jnp.float32) / 2


def spearman(predictions: jax.Array, labels: jax.Array) -> jax.Array:
    """Spearman's rank correlation: Pearson's of the ranks, ties averaged (``scipy.stats.spearmanr``)."""
    return pearson(ranks(predictions), ranks(labels))


METRICS = {"accuracy": accuracy, "f1": f1, "mcc": mcc, "pearson": pearson, "spearman": spearman}


def task_metrics(names, predictions: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """``{name: metric(predictions, labels)}`` for the metric ``names`` (a task's ``Text.metrics``)."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    return {name: METRICS[name](predictions, labels) for name in names}


def predicted(outputs: jax.Array, objective: str) -> jax.Array:
    """What a metric compares with the labels: int32 argmax of ``(..., N, C)`` logits (``classify``,
    ``mlm``), or the float32 score of ``(..., N, 1)`` outputs (``regress``)."""
    if objective == "regress":
        return jnp.asarray(outputs, jnp.float32)[..., 0]
    return jnp.argmax(outputs, axis=-1).astype(jnp.int32)
